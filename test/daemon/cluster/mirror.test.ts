// The mirror's note of when each node's leases last changed (check compares a node's report only
// with etcd's claims no later change explains): puts, moves between nodes, deletions, reloads.
import { expect, it } from 'vitest';
import { KeyLayout, encodeLease } from '../../../daemon/cluster/keys.js';
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
