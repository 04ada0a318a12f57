// Who holds what, on a real SQLite store: the holder list of an "in use" message stops at its
// limit and says how many more there are; free reserved IPs and reserved usage count each
// address once, only within the entries and ranges asked about.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freeReservedIps, holdersBetween } from '../../daemon/holders.js';
import { entriesInRangeSet, reservedUsage } from '../../daemon/reserved-usage.js';
import { SqliteStore } from '../../daemon/sqlite-store.js';
import type { ReservedRecord } from '../../daemon/store.js';
import { parseIp } from '../../src/address.js';
import { parseIpamConfig } from '../../src/config.js';
import { removeDir, tempDir } from '../support/tmp.js';

let dir: string;
let store: SqliteStore;
beforeEach(() => {
  dir = tempDir('holders');
  store = SqliteStore.open({ path: join(dir, 'leases.db') });
});
afterEach(() => {
  store.close();
  removeDir(dir);
});

const v = (text: string) => parseIp(text).value;

function lease(ip: string, id = `c-${ip}`) {
  const { family, value } = parseIp(ip);
  store.insertLease({ network: 'h', family, ip: value, containerId: id, ifname: 'eth0', netns: '/n', app: null, kind: 'stateless', createdAt: 1, detachedAt: null });
}

function reserved(id: number, start: string, end: string, group: string | null = null): ReservedRecord {
  const s = parseIp(start);
  return { id, network: 'h', family: s.family, start: s.value, end: v(end), group, note: null, source: 'operator', entry: `${start}-${end}`, namespaces: null };
}

describe('holdersBetween', () => {
  it.each([
    [20, 20, undefined],
    [21, 20, 'and 1 more'],
    [25, 20, 'and 5 more'],
  ])('%i holders: lists %i%s', (holders, listed, more) => {
    for (let i = 0; i < holders; i++) lease(`10.0.0.${10 + i}`);
    lease('10.0.0.200'); // outside the span asked about
    const described = holdersBetween(store, 'h', 4, v('10.0.0.1'), v('10.0.0.100'));
    const ips = described.filter((d) => d.includes('(container'));
    expect(ips).toHaveLength(listed);
    expect(ips[0]).toBe('10.0.0.10 (container c-10.0.0.10 ifname eth0)');
    expect(described.at(-1)).toBe(more ?? ips.at(-1));
  });

  it('a smaller limit works the same', () => {
    for (let i = 0; i < 5; i++) lease(`10.0.0.${10 + i}`);
    expect(holdersBetween(store, 'h', 4, v('10.0.0.1'), v('10.0.0.100'), 3)).toEqual([
      '10.0.0.10 (container c-10.0.0.10 ifname eth0)',
      '10.0.0.11 (container c-10.0.0.11 ifname eth0)',
      '10.0.0.12 (container c-10.0.0.12 ifname eth0)',
      'and 2 more',
    ]);
  });
});

describe('freeReservedIps', () => {
  it('jumps over leased runs, crosses entries in order, and stops at the limit', () => {
    for (const ip of ['10.0.0.50', '10.0.0.51', '10.0.0.53', '10.0.0.54']) lease(ip);
    const entries = [reserved(1, '10.0.0.50', '10.0.0.54'), reserved(2, '10.0.0.60', '10.0.0.61')];
    expect(freeReservedIps(store, 'h', entries, 10).map((f) => [f.value, f.entry.id])).toEqual([
      [v('10.0.0.52'), 1],
      [v('10.0.0.60'), 2],
      [v('10.0.0.61'), 2],
    ]);
    expect(freeReservedIps(store, 'h', entries, 2).map((f) => f.value)).toEqual([v('10.0.0.52'), v('10.0.0.60')]);
    expect(freeReservedIps(store, 'h', entries, 0)).toEqual([]);
  });
});

describe('reserved usage', () => {
  it('counts each entry\'s addresses and leases once; free = total - used', () => {
    lease('10.0.0.50');
    lease('10.0.0.99'); // leased but not reserved
    expect(reservedUsage(store, 'h', [reserved(1, '10.0.0.50', '10.0.0.59'), reserved(2, '10.0.0.70', '10.0.0.70')])).toEqual({ total: 11n, used: 1, free: 10n });
    expect(reservedUsage(store, 'h', [])).toEqual({ total: 0n, used: 0, free: 0n });
  });

  it('entriesInRangeSet keeps the entries of its family that touch one of its ranges, even partly', () => {
    const [set] = parseIpamConfig({
      type: 'reservoir',
      ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20' }, { subnet: '10.0.1.0/24', rangeStart: '10.0.1.10', rangeEnd: '10.0.1.20' }]],
    }).rangeSets;
    const inside = reserved(1, '10.0.0.12', '10.0.0.13');
    const straddling = reserved(2, '10.0.0.20', '10.0.0.25');
    const touchingStart = reserved(3, '10.0.1.5', '10.0.1.10');
    const secondRange = reserved(4, '10.0.1.15', '10.0.1.15');
    const between = reserved(5, '10.0.0.21', '10.0.1.9');
    const otherSubnet = reserved(6, '10.0.2.10', '10.0.2.20');
    const otherFamily = { ...reserved(7, 'fd00::10', 'fd00::20') };
    const kept = entriesInRangeSet([inside, straddling, touchingStart, secondRange, between, otherSubnet, otherFamily], set!);
    expect(kept.map((e) => e.id)).toEqual([1, 2, 3, 4]);
  });
});
