// The mirror's note of when each node's leases last changed (check compares a node's report only
// with etcd's claims no later change explains): puts, moves between nodes, deletions, reloads.
import { expect, it } from 'vitest';
import { KeyLayout, encodeLease, encodeReserved } from '../../../daemon/cluster/keys.js';
import { Mirror } from '../../../daemon/cluster/mirror.js';

const layout = new KeyLayout('/p');
const lease = (ip: bigint, node: string) => ({ network: 'n', family: 4 as const, ip, containerId: `c${ip}`, ifname: 'eth0', netns: null, app: null, kind: 'stateless' as const, createdAt: 1, detachedAt: null, node });
const put = (ip: bigint, node: string, rev: number) => ({ type: 'put' as const, key: layout.lease('n', 4, ip), value: encodeLease(lease(ip, node), 'u'), modRevision: rev, createRevision: rev });

it('knows the last revision that changed a node\'s leases in a network', () => {
  const mirror = new Mirror(layout, undefined);
  try {
    mirror.reload([{ key: layout.lease('n', 4, 1n), value: encodeLease(lease(1n, 'a'), 'u'), modRevision: 3, createRevision: 3 }], 5);
    expect(mirror.nodeChangedAt('n', 'a')).toBe(3);
    expect(mirror.nodeChangedAt('n', 'b')).toBe(0);
    expect(mirror.nodeChangedAt('m', 'a')).toBe(0);
    mirror.apply([put(2n, 'b', 6)]);
    expect([mirror.nodeChangedAt('n', 'a'), mirror.nodeChangedAt('n', 'b')]).toEqual([3, 6]);
    // an IP that goes from a to b changes both
    mirror.apply([put(1n, 'b', 7)]);
    expect([mirror.nodeChangedAt('n', 'a'), mirror.nodeChangedAt('n', 'b')]).toEqual([7, 7]);
    // a deletion counts for the node that held it
    mirror.apply([{ type: 'delete', key: layout.lease('n', 4, 2n), value: '', modRevision: 9, createRevision: 0 }]);
    expect([mirror.nodeChangedAt('n', 'a'), mirror.nodeChangedAt('n', 'b')]).toEqual([7, 9]);
    // an earlier revision never lowers it; a node report is no lease
    mirror.apply([put(3n, 'a', 4), { type: 'put', key: layout.node('a'), value: '{}', modRevision: 10, createRevision: 10 }]);
    expect(mirror.nodeChangedAt('n', 'a')).toBe(7);
  } finally {
    mirror.close();
  }
});

it('overwrites a holder in place, frees an address on deletion, and skips what it already knows', () => {
  const told: string[] = [];
  const mirror = new Mirror(layout, undefined, (network) => told.push(network));
  try {
    mirror.reload([], 1);
    told.length = 0;
    mirror.apply([put(10n, 'a', 2), put(11n, 'a', 2)]);
    expect(told).toEqual(['n']);
    expect(mirror.store.occupiedCovering('n', 4, 10n)).toEqual({ start: 10n, end: 11n });
    // another node's container takes 10 (a move): one lease there, of b, and 10-11 still one taken run
    mirror.apply([put(10n, 'b', 3)]);
    expect(mirror.store.leaseAt('n', 4, 10n)?.node).toBe('b');
    expect(mirror.store.attachedLeases('n').map((l) => [l.ip, l.node])).toEqual([[10n, 'b'], [11n, 'a']]);
    expect(mirror.store.occupiedCovering('n', 4, 11n)).toEqual({ start: 10n, end: 11n });
    // this daemon's own commit, come back by the watch: already known, nothing is applied or told
    told.length = 0;
    mirror.apply([put(10n, 'c', 3)]);
    expect(mirror.store.leaseAt('n', 4, 10n)?.node).toBe('b');
    expect(told).toEqual([]);
    // a deletion frees the address; the node it held is the one that changed
    mirror.apply([{ type: 'delete', key: layout.lease('n', 4, 10n), value: '', modRevision: 4, createRevision: 0 }]);
    expect(mirror.store.leaseAt('n', 4, 10n)).toBeUndefined();
    expect(mirror.store.occupiedCovering('n', 4, 10n)).toBeUndefined();
    expect(mirror.store.occupiedCovering('n', 4, 11n)).toEqual({ start: 11n, end: 11n });
    expect([mirror.nodeChangedAt('n', 'a'), mirror.nodeChangedAt('n', 'b')]).toEqual([3, 4]);
    // the deletion coming back again changes nothing
    told.length = 0;
    mirror.apply([{ type: 'delete', key: layout.lease('n', 4, 10n), value: '', modRevision: 4, createRevision: 0 }]);
    expect(told).toEqual([]);
    // one list that changes a key twice: the newer revision stands, whatever the order
    mirror.apply([put(20n, 'a', 10), put(20n, 'b', 9)]);
    expect(mirror.store.leaseAt('n', 4, 20n)?.node).toBe('a');
  } finally {
    mirror.close();
  }
});

it('takes a prefix read whole ahead of the watch: newer entries in, missing ones out, nothing newer undone; seen whole up to its revision', () => {
  const mirror = new Mirror(layout, undefined);
  const reserved = (start: bigint, group: string) =>
    encodeReserved({ network: 'n', family: 4, start, end: start, group, note: null, source: 'operator', entry: `10.0.0.${start}`, namespaces: null }, 'u');
  const entry = (start: bigint, group: string, rev: number) => ({ key: layout.reserved('n', 4, start), value: reserved(start, group), modRevision: rev, createRevision: rev });
  const groups = () => mirror.store.listReserved('n').map((r) => [r.start, r.group]);
  const prefix = layout.reservedOf('n');
  try {
    mirror.reload([entry(1n, 'a', 2), entry(2n, 'a', 2), entry(3n, 'a', 2)], 5);
    expect(mirror.seenWhole(prefix)).toBe(5);
    // the watch has brought 3 changed at 9 already; the read, at 8, has 1 changed at 7, 2 gone, 4 new
    mirror.apply([{ type: 'put', ...entry(3n, 'c', 9) }]);
    mirror.refreshPrefix(prefix, [entry(1n, 'b', 7), entry(3n, 'b', 6), entry(4n, 'b', 8)], 8);
    expect(groups()).toEqual([[1n, 'b'], [3n, 'c'], [4n, 'b']]);
    expect(mirror.seenWhole(prefix)).toBe(8);
    expect(mirror.seenWhole(layout.reservedOf('m'))).toBe(5); // another network's: what the watch says
    // the watch then brings what the read already had: nothing comes back, nothing changes
    mirror.apply([{ type: 'put', ...entry(2n, 'a', 6) }, { type: 'put', ...entry(1n, 'a', 7) }]);
    expect(groups()).toEqual([[1n, 'b'], [3n, 'c'], [4n, 'b']]);
    mirror.watchedTo(12);
    expect(mirror.seenWhole(prefix)).toBe(12);
  } finally {
    mirror.close();
  }
});
