// The Kubernetes rules as pure functions: ordinals (Kube-OVN #4955 parsed them wrong), the
// retention policies, pins by ordinal, and what happens to a StatefulSet's holds.
import { describe, expect, it } from 'vitest';
import { ordinalOf, podFacts, retentionOf, statefulSetFacts } from '../../daemon/kube/facts.js';
import { decideHolds, pinnedIpOf, statefulSetRecord } from '../../daemon/kube/policy.js';
import type { LeaseRecord } from '../../daemon/store.js';

const pod = (name: string, labels: Record<string, string> = {}) =>
  podFacts({ metadata: { namespace: 'db', name, uid: `uid-${name}`, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'x', uid: 's', controller: true }] } })!;

const sts = (replicas: number, start: number | undefined, annotations: Record<string, string> = {}, uid = 'sts-1') =>
  statefulSetFacts({ metadata: { namespace: 'db', name: 'pg', uid, annotations }, spec: { replicas, ...(start === undefined ? {} : { ordinals: { start } }) } })!;

function hold(ordinal: number, ip: number, attached = false): LeaseRecord {
  return {
    network: 'n',
    family: 4,
    ip: 0x0a000000n + BigInt(ip),
    containerId: attached ? `c${ordinal}` : null,
    ifname: attached ? 'eth0' : null,
    netns: null,
    app: `db/pg-${ordinal}`,
    kind: 'stateful',
    createdAt: 0,
    detachedAt: attached ? null : 1,
    podUid: null,
    ownerUid: 'sts-1',
    ordinal,
  };
}

describe('ordinals', () => {
  it('come from the pod-index label, else from the name after "<statefulset>-" only', () => {
    expect(ordinalOf(pod('db-1-3'), 'db-1')).toBe(3);
    expect(ordinalOf(pod('db-1-3'), 'db')).toBeUndefined(); // "1-3" is not an ordinal
    expect(ordinalOf(pod('pg-07'), 'pg')).toBeUndefined();
    expect(ordinalOf(pod('anything', { 'apps.kubernetes.io/pod-index': '12' }), 'pg')).toBe(12);
  });
});

describe('retention policies', () => {
  it('default to Delete on deletion and Retain on scale-down, and read either case', () => {
    const record = statefulSetRecord(sts(1, undefined), 0);
    expect([record.whenDeleted, record.whenScaled]).toEqual(['Delete', 'Retain']);
    expect(retentionOf({ k: 'retain' }, 'k', 'Delete')).toBe('Retain');
    expect(retentionOf({ k: 'nonsense' }, 'k', 'Delete')).toBe('Delete');
  });
});

describe('pins by ordinal', () => {
  it('ordinal start+i gets the i-th IP; an ordinal outside the list is an error naming the annotation', () => {
    const record = statefulSetRecord(sts(3, 5, { 'reservoir.io/ips': '10.0.0.5, 10.0.0.6' }), 0);
    expect(pinnedIpOf(record, 6)).toEqual({ family: 4, value: 0x0a000006n });
    expect(() => pinnedIpOf(record, 4)).toThrow(/reservoir\.io\/ips pins 2 IPs to ordinals 5-6, but pod pg-4 has ordinal 4/);
    const bad = statefulSetRecord(sts(1, 0, { 'reservoir.io/ips': '10.0.0.5,nope' }), 0);
    expect(() => pinnedIpOf(bad, 0)).toThrow(/entry 1 "nope" is not an IP address/);
  });
});

describe('what happens to the holds', () => {
  const record = statefulSetRecord(sts(3, 0, {}), 0);

  it('deleted: detached holds go, attached ones wait (their pods are still being torn down)', () => {
    const d = decideHolds(record, undefined, [hold(0, 1), hold(1, 2, true)], 1);
    expect(d.release.map((h) => h.ordinal)).toEqual([0]);
    expect(d.record).toBeDefined(); // kept while a hold remains
    expect(decideHolds(record, undefined, [hold(0, 1)], 1).record).toBeUndefined();
  });

  it('recreated (another UID) is deleted for the old one; Retain keeps everything', () => {
    expect(decideHolds(record, sts(3, 0, {}, 'sts-2'), [hold(0, 1)], 1).release).toHaveLength(1);
    const retain = statefulSetRecord(sts(3, 0, { 'reservoir.io/when-deleted': 'Retain' }), 0);
    expect(decideHolds(retain, undefined, [hold(0, 1)], 1).release).toEqual([]);
  });

  it('scaled down: only with when-scaled Delete, only ordinals outside start..start+replicas-1', () => {
    const holds = [hold(5, 1), hold(6, 2), hold(7, 3), hold(4, 4)];
    expect(decideHolds(record, sts(1, 5), holds, 1).release).toEqual([]);
    const d = decideHolds(record, sts(1, 5, { 'reservoir.io/when-scaled': 'Delete' }), holds, 1);
    expect(d.release.map((h) => h.ordinal).sort()).toEqual([4, 6, 7]);
  });

  it('re-pinned: a detached hold on the old IP goes, a running pod is refused and keeps its IP', () => {
    const pinned = statefulSetRecord(sts(2, 0, { 'reservoir.io/ips': '10.0.0.1,10.0.0.2' }), 0);
    const now = sts(2, 0, { 'reservoir.io/ips': '10.0.0.1,10.0.0.9' });
    const d = decideHolds(pinned, now, [hold(0, 1, true), hold(1, 2)], 1);
    expect(d.release.map((h) => h.ordinal)).toEqual([1]);
    expect(d.refused).toEqual([]);
    const moved = decideHolds(pinned, sts(2, 0, { 'reservoir.io/ips': '10.0.0.8,10.0.0.2' }), [hold(0, 1, true), hold(1, 2)], 1);
    expect(moved.release).toEqual([]);
    expect(moved.refused).toEqual([expect.stringMatching(/now pins 10\.0\.0\.8 to ordinal 0, but its running pod holds 10\.0\.0\.1/)]);
  });
});
