// Issue 11 rule 6, pure: which attachments of another node end because the Kubernetes API
// confirms both that the node is gone and that the attachment's pod is gone. The I/O (reading the
// Node and the pods, releasing through the cluster units) is integration.ts's; this only decides.
// Nobody can know about an attachment without a pod binding (podman, cnitool): it never ends here.
import type { LeaseRecord } from '../store.js';
import type { PodFacts } from './facts.js';

/** The pod an attachment was made for: its namespace/name (the lease's app) and its UID. */
export interface BoundPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

/** What the API said, each on a fresh read taken for this decision. */
export interface GoneNodeFacts {
  /** The Node object: present, or absent (the API answered 404). NotReady is present. */
  readonly node: 'present' | 'absent';
  /** UIDs of the pods the API still binds to the node (one list by spec.nodeName); undefined: not read. */
  readonly podsOnNode?: ReadonlySet<string> | undefined;
  /** Each bound pod read by "namespace/name": the pod, or undefined for 404. A name not in the map was not read. */
  readonly pods?: ReadonlyMap<string, PodFacts | undefined> | undefined;
}

export interface GoneNodeVerdict {
  readonly lease: LeaseRecord;
  readonly why: string;
}

export interface GoneNodeDecision {
  readonly release: readonly GoneNodeVerdict[];
  readonly kept: readonly GoneNodeVerdict[];
}

const POD_PART = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * The pod of an attachment, when it has a Kubernetes binding: a pod UID and an app of the form
 * namespace/name (a RESERVOIR_APP without a slash names no pod). Undefined otherwise.
 */
export function boundPodOf(lease: LeaseRecord): BoundPod | undefined {
  if (!lease.podUid || lease.app === null) return undefined;
  const parts = lease.app.split('/');
  if (parts.length !== 2 || !POD_PART.test(parts[0]!) || !POD_PART.test(parts[1]!)) return undefined;
  return { namespace: parts[0]!, name: parts[1]!, uid: lease.podUid };
}

/** The attachments worth asking the API about: other nodes', with a pod binding, by node (one Node read each). */
export function boundAttachmentsByNode(self: string, leases: Iterable<LeaseRecord>): Map<string, LeaseRecord[]> {
  const byNode = new Map<string, LeaseRecord[]>();
  for (const lease of leases) {
    if (lease.containerId === null || !lease.node || lease.node === self || !boundPodOf(lease)) continue;
    let list = byNode.get(lease.node);
    if (!list) byNode.set(lease.node, (list = []));
    list.push(lease);
  }
  return byNode;
}

/** About how many daemons ask the API about each other node in a pass, whatever the cluster's size. */
export const ASKERS_PER_NODE = 2;

/**
 * The chance that this daemon asks about a given node in a pass, `others` being the other
 * nodes it would ask about. Every daemon sees every node's attachments in its copy of etcd; if
 * each asked about all the others, the API would get N x (N - 1) Node reads per resync (9,900
 * per 30 s at 100 nodes). The other nodes are about as many as the daemons that could ask about
 * one of them, so this chance keeps about ASKERS_PER_NODE reads per node per pass. Up to that
 * many other nodes, every daemon asks about every one, as before.
 */
export function askProbability(others: number): number {
  return others <= ASKERS_PER_NODE ? 1 : ASKERS_PER_NODE / others;
}

/** The nodes to ask the API about in this pass: each of `byNode` with askProbability. */
export function nodesToAsk<T>(byNode: ReadonlyMap<string, T>, random: () => number): Map<string, T> {
  const chance = askProbability(byNode.size);
  if (chance >= 1) return new Map(byNode);
  return new Map([...byNode].filter(() => random() < chance));
}

/**
 * Why the attachment's pod is gone from the node, or undefined when it may still run there: the
 * pod is gone when the API has no pod of that name (404), has one with another UID (a new pod),
 * or binds it to another node; and only when no pod of its UID is listed on the node.
 */
export function podGoneWhy(node: string, pod: BoundPod, read: PodFacts | undefined, podsOnNode: ReadonlySet<string>): string | undefined {
  if (podsOnNode.has(pod.uid)) return undefined;
  const name = `pod ${pod.namespace}/${pod.name}`;
  if (read === undefined) return `${name} is deleted`;
  if (read.uid !== pod.uid) return `${name} is a new pod (UID ${read.uid}, was ${pod.uid})`;
  if (read.nodeName !== undefined && read.nodeName !== node) return `${name} is bound to node ${read.nodeName}`;
  return undefined;
}

/** Which of a node's attachments end, given the API's facts. Everything not confirmed stays. */
export function decideGoneNode(node: string, attachments: readonly LeaseRecord[], facts: GoneNodeFacts): GoneNodeDecision {
  const release: GoneNodeVerdict[] = [];
  const kept: GoneNodeVerdict[] = [];
  for (const lease of attachments) {
    const pod = boundPodOf(lease);
    if (lease.containerId === null) kept.push({ lease, why: 'a stateful hold: it is kept for its app' });
    else if (lease.node !== node) kept.push({ lease, why: `an attachment of node ${lease.node ?? '(this node)'}, not of ${node}` });
    else if (!pod) kept.push({ lease, why: 'no Kubernetes pod binding: nobody can know that its container is gone' });
    else if (facts.node === 'present') kept.push({ lease, why: `node ${node} exists in the Kubernetes API` });
    else if (facts.podsOnNode === undefined || !facts.pods?.has(lease.app!)) kept.push({ lease, why: 'its pod was not read' });
    else {
      const why = podGoneWhy(node, pod, facts.pods.get(lease.app!), facts.podsOnNode);
      if (why === undefined) kept.push({ lease, why: `pod ${lease.app} still exists on node ${node}` });
      else release.push({ lease, why: `node ${node} is gone from the Kubernetes API and ${why}` });
    }
  }
  return { release, kept };
}
