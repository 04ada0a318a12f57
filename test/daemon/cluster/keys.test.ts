// The pure parts of cluster networks: the etcd key layout (every key parses back to what made
// it; keys sort like addresses) and where a node's round-robin starts in a range set.
import { describe, expect, it } from 'vitest';
import { KeyLayout, decodeApp, decodeLease, encodeApp, encodeLease, unitOf } from '../../../daemon/cluster/keys.js';
import { prefixEnd } from '../../../daemon/cluster/kv.js';
import { seededCursor } from '../../../daemon/cluster/routing-store.js';
import { parseIp } from '../../../src/address.js';

const layout = new KeyLayout('/reservoir/');

describe('key layout', () => {
  it('parses back every kind of key it makes, names with "/" included', () => {
    const keys = [
      { kind: 'network', network: 'net-1' },
      { kind: 'lease', network: 'net-1', family: 4, ip: parseIp('10.0.0.7').value },
      { kind: 'lease', network: 'n', family: 6, ip: parseIp('fd00::1').value },
      { kind: 'app', network: 'net-1', app: 'default/db-0' },
      { kind: 'reserved', network: 'net-1', family: 4, start: parseIp('10.0.0.50').value },
      { kind: 'node', node: 'worker-3' },
      { kind: 'repair', node: 'worker-3' },
      { kind: 'repair', node: 'a/b' },
    ] as const;
    for (const key of keys) expect(layout.parse(layout.keyOf(key))).toEqual(key);
    expect(layout.app('n', 'default/db-0')).toBe('/reservoir/v1/apps/n/default%2Fdb-0');
    expect(layout.parse('/reservoir/v1/leases/n/5/0a000001')).toBeUndefined();
    expect(layout.parse('/other/v1/networks/n')).toBeUndefined();
    // a node's repair request sits under its report's key, and nothing else does
    expect(layout.repair('worker-3')).toBe('/reservoir/v1/nodes/worker-3/repair');
    expect(layout.repair('worker-3').startsWith(layout.nodes())).toBe(true);
    expect(layout.parse('/reservoir/v1/nodes/worker-3/other')).toBeUndefined();
  });

  it('orders lease keys like addresses, and a range of addresses is one key range', () => {
    const ips = ['10.0.0.2', '10.0.0.10', '10.0.1.0', '10.0.0.255'].map((t) => parseIp(t).value);
    const keys = ips.map((ip) => layout.lease('n', 4, ip));
    expect([...keys].sort()).toEqual([...ips].sort((a, b) => (a < b ? -1 : 1)).map((ip) => layout.lease('n', 4, ip)));
    const range = layout.leaseRange('n', 4, parseIp('10.0.0.10').value, parseIp('10.0.0.255').value);
    const inside = keys.filter((k) => k >= range.key && k < range.rangeEnd);
    expect(inside.length).toBe(2);
    // networks whose names share a prefix do not share key ranges
    expect(layout.lease('n1', 4, 1n).startsWith(layout.leases('n'))).toBe(false);
    expect(prefixEnd('/a/')).toBe('/a0');
  });

  it('stamps every value with the unit that wrote it', () => {
    const lease = { network: 'n', family: 4 as const, ip: 5n, containerId: 'c', ifname: 'eth0', netns: null, app: null, kind: 'stateless' as const, createdAt: 1, detachedAt: null, node: 'a' };
    const text = encodeLease(lease, 'a/x/1');
    expect(unitOf(text)).toBe('a/x/1');
    expect(decodeLease('n', 4, 5n, text)).toEqual({ ...lease, podUid: null, ownerUid: null, ordinal: null, unit: 'a/x/1' });
  });
});

describe('where a node starts in a range set', () => {
  it('spreads nodes whose names differ only in the last letter, inside the first range', () => {
    const key = '4:10.0.0.1-10.0.255.254';
    const start = parseIp('10.0.0.1').value;
    const size = 65534n;
    const points = ['node-1', 'node-2', 'node-3', 'node-4'].map((n) => seededCursor(key, n)! - start);
    for (const p of points) expect(p >= 0n && p < size).toBe(true);
    const sorted = [...points].sort((a, b) => (a < b ? -1 : 1));
    // no two within 1/64 of the range of each other (FNV-1a alone put them 915 apart)
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 1]!).toBeGreaterThan(size / 64n);
  });

  it('is the same for a node every time, and works for IPv6 range sets', () => {
    expect(seededCursor('4:10.0.0.1-10.0.0.254', 'a')).toBe(seededCursor('4:10.0.0.1-10.0.0.254', 'a'));
    const v6 = seededCursor('6:fd00::1-fd00::ffff', 'a')!;
    expect(v6 >= parseIp('fd00::1').value && v6 <= parseIp('fd00::ffff').value).toBe(true);
    expect(seededCursor('4:10.0.0.5-10.0.0.5', 'a')).toBeUndefined();
  });
});

it('reads back the IPs an app key names, and nothing from a value it cannot read', () => {
  const ips = [
    { family: 4 as const, ip: 0x0a5a0014n },
    { family: 6 as const, ip: 0xfd000000000000000000000000000001n },
  ];
  expect(decodeApp(encodeApp(ips, 'n/s/1'))).toEqual(ips);
  expect(decodeApp(encodeApp([], 'n/s/1'))).toEqual([]);
  for (const text of ['', 'not json', '{}', '{"ips":"4/0a5a0014"}', '{"ips":[7,null]}']) expect(decodeApp(text)).toEqual([]);
});
