// Issue 11 rule 6 as a pure function: an attachment of another node ends only when the API says
// its Node is gone (404) and its pod is gone (404, a new pod of that name, or bound elsewhere), and
// no pod of its UID is still listed on the node. Every combination of the facts is tried.
import { describe, expect, it } from 'vitest';
import { podFacts } from '../../daemon/kube/facts.js';
import { ASKERS_PER_NODE, type GoneNodeFacts, askProbability, boundAttachmentsByNode, boundPodOf, decideGoneNode, nodesToAsk } from '../../daemon/kube/gone-nodes.js';
import type { LeaseRecord } from '../../daemon/store.js';

const GONE = 'node-c';

function attachment(over: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    network: 'shared',
    family: 4,
    ip: 0x0a5a000an,
    containerId: 'c1',
    ifname: 'eth0',
    netns: '/var/run/netns/c1',
    app: 'web/front-1',
    kind: 'stateless',
    createdAt: 1,
    detachedAt: null,
    podUid: 'uid-1',
    ownerUid: null,
    ordinal: null,
    node: GONE,
    ...over,
  };
}

const podObject = (uid: string, nodeName: string | undefined) =>
  podFacts({ metadata: { namespace: 'web', name: 'front-1', uid }, spec: nodeName === undefined ? {} : { nodeName } })!;

describe('which attachments have a pod binding', () => {
  it('a pod UID and an app that is namespace/name; nothing else names a pod', () => {
    expect(boundPodOf(attachment())).toEqual({ namespace: 'web', name: 'front-1', uid: 'uid-1' });
    expect(boundPodOf(attachment({ podUid: null }))).toBeUndefined(); // podman, cnitool, an older runtime
    expect(boundPodOf(attachment({ app: null }))).toBeUndefined();
    expect(boundPodOf(attachment({ app: 'myapp' }))).toBeUndefined(); // RESERVOIR_APP without a namespace
    expect(boundPodOf(attachment({ app: 'a/b/c' }))).toBeUndefined();
  });

  it('asks about other nodes only, each once, and only for bound attachments (holds and unbound ones cannot end here)', () => {
    const leases = [
      attachment({ node: 'node-a' }), // this node
      attachment({ node: 'node-b', ip: 1n }),
      attachment({ node: 'node-b', ip: 2n }),
      attachment({ node: 'node-c', ip: 3n, podUid: null }),
      attachment({ node: 'node-d', ip: 4n, containerId: null, ifname: null }),
      attachment({ node: null, ip: 5n }),
    ];
    const byNode = boundAttachmentsByNode('node-a', leases);
    expect([...byNode.keys()]).toEqual(['node-b']);
    expect(byNode.get('node-b')!.map((l) => l.ip)).toEqual([1n, 2n]);
  });
});

describe('which other nodes a daemon asks the API about in a pass', () => {
  const othersOf = (n: number) => new Map<string, number>(Array.from({ length: n }, (_, i) => [`node-${i}`, i]));
  /** A seeded generator (mulberry32), so that every run draws the same. */
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };

  it('asks about every other node while they are few', () => {
    for (const n of [0, 1, ASKERS_PER_NODE]) {
      expect(askProbability(n)).toBe(1);
      expect([...nodesToAsk(othersOf(n), () => 0.999).keys()]).toEqual([...othersOf(n).keys()]);
    }
  });

  it('keeps about ASKERS_PER_NODE reads per node per pass across the cluster, however many nodes', () => {
    for (const n of [3, 10, 60, 250]) {
      expect(askProbability(n)).toBeCloseTo(ASKERS_PER_NODE / n);
      // n + 1 daemons, each asking about the n others, over 150 passes: reads of node-0 per pass
      const random = seeded(n);
      const others = othersOf(n);
      let reads = 0;
      let passesWithout = 0;
      for (let pass = 0; pass < 150; pass++) {
        let thisPass = 0;
        for (let daemon = 0; daemon < n; daemon++) if (nodesToAsk(others, random).has('node-0')) thisPass++;
        reads += thisPass;
        if (thisPass === 0) passesWithout++;
      }
      expect(reads / 150).toBeGreaterThan(ASKERS_PER_NODE * 0.8);
      expect(reads / 150).toBeLessThan(ASKERS_PER_NODE * 1.2);
      // a gone node is asked about in most passes: (1 - 2/n)^n is at most e^-2, 14 %
      expect(passesWithout / 150).toBeLessThan(0.25);
    }
  });

  it('keeps what it picks whole: a node is asked about with all its attachments or not at all', () => {
    const picked = nodesToAsk(othersOf(50), seeded(7));
    for (const [node, value] of picked) expect(othersOf(50).get(node)).toBe(value);
  });
});

describe('the decision, for every combination of facts', () => {
  type PodRead = 'not read' | '404' | 'same uid, gone node' | 'same uid, unscheduled' | 'same uid, other node' | 'other uid';
  const podReads: PodRead[] = ['not read', '404', 'same uid, gone node', 'same uid, unscheduled', 'same uid, other node', 'other uid'];
  const reads: Record<PodRead, (m: Map<string, ReturnType<typeof podObject> | undefined>) => void> = {
    'not read': () => undefined,
    '404': (m) => m.set('web/front-1', undefined),
    'same uid, gone node': (m) => m.set('web/front-1', podObject('uid-1', GONE)),
    'same uid, unscheduled': (m) => m.set('web/front-1', podObject('uid-1', undefined)),
    'same uid, other node': (m) => m.set('web/front-1', podObject('uid-1', 'node-b')),
    'other uid': (m) => m.set('web/front-1', podObject('uid-2', 'node-b')),
  };
  const cases: Array<{ node: 'present' | 'absent'; bound: boolean; held: boolean; listed: 'not read' | 'listed' | 'not listed'; pod: PodRead }> = [];
  for (const node of ['present', 'absent'] as const)
    for (const bound of [true, false])
      for (const held of [false, true])
        for (const listed of ['not read', 'listed', 'not listed'] as const) for (const pod of podReads) cases.push({ node, bound, held, listed, pod });

  it.each(cases)('node $node, bound $bound, held $held, pod UID on the node: $listed, pod read: $pod', ({ node, bound, held, listed, pod }) => {
    const lease = attachment({ podUid: bound ? 'uid-1' : null, ...(held ? { containerId: null, ifname: null, kind: 'stateful' as const } : {}) });
    const pods = new Map();
    reads[pod](pods);
    const facts: GoneNodeFacts = {
      node,
      podsOnNode: listed === 'not read' ? undefined : new Set(listed === 'listed' ? ['uid-1'] : ['uid-other']),
      pods,
    };
    const decision = decideGoneNode(GONE, [lease], facts);
    // The rule as the issue states it, independently of how the function is written.
    const podGone = pod === '404' || pod === 'other uid' || pod === 'same uid, other node';
    const ends = !held && bound && node === 'absent' && listed === 'not listed' && podGone;
    expect(decision.release.map((v) => v.lease)).toEqual(ends ? [lease] : []);
    expect(decision.kept.map((v) => v.lease)).toEqual(ends ? [] : [lease]);
  });
});

describe('what the decision says', () => {
  const absent = (pods: Array<[string, ReturnType<typeof podObject> | undefined]>): GoneNodeFacts => ({ node: 'absent', podsOnNode: new Set(), pods: new Map(pods) });

  it('names the node and why the pod counts as gone', () => {
    const [deleted] = decideGoneNode(GONE, [attachment()], absent([['web/front-1', undefined]])).release;
    expect(deleted!.why).toBe('node node-c is gone from the Kubernetes API and pod web/front-1 is deleted');
    const [renewed] = decideGoneNode(GONE, [attachment()], absent([['web/front-1', podObject('uid-2', 'node-b')]])).release;
    expect(renewed!.why).toBe('node node-c is gone from the Kubernetes API and pod web/front-1 is a new pod (UID uid-2, was uid-1)');
    const [moved] = decideGoneNode(GONE, [attachment()], absent([['web/front-1', podObject('uid-1', 'node-b')]])).release;
    expect(moved!.why).toBe('node node-c is gone from the Kubernetes API and pod web/front-1 is bound to node node-b');
  });

  it('says why it keeps one: the node exists (NotReady counts as existing), no binding, the pod still there', () => {
    expect(decideGoneNode(GONE, [attachment()], { node: 'present' }).kept[0]!.why).toBe('node node-c exists in the Kubernetes API');
    expect(decideGoneNode(GONE, [attachment({ podUid: null })], absent([])).kept[0]!.why).toMatch(/no Kubernetes pod binding/);
    expect(decideGoneNode(GONE, [attachment()], absent([['web/front-1', podObject('uid-1', GONE)]])).kept[0]!.why).toBe('pod web/front-1 still exists on node node-c');
  });

  it('never ends an attachment of another node than the one judged, whatever the facts', () => {
    const other = attachment({ node: 'node-b' });
    const decision = decideGoneNode(GONE, [other], absent([['web/front-1', undefined]]));
    expect(decision.release).toEqual([]);
  });
});
