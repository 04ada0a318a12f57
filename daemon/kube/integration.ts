// The Kubernetes integration: on when reservoird has a kubeconfig or runs in a cluster. It
// watches the pods of its node and the StatefulSets, tells ADD what the API knows about its pod
// (never waiting long for it), releases a StatefulSet's holds when it goes or shrinks (by its
// policy), ends the attachments of other nodes once the API confirms the node and their pods gone
// (cluster networks), and fences every release while the API is unreachable or the watches are
// behind. Every release is decided on a fresh read from the API, never on the cache alone.
import { formatValue } from '../../src/address.js';
import type { CniInvocation } from '../../src/invocation.js';
import type { KubernetesHealth } from '../../src/protocol.js';
import type { Ledger } from '../ledger.js';
import type { Logger } from '../log.js';
import type { RunUnit } from '../reconciler.js';
import type { LeaseRecord, Store } from '../store.js';
import { type KubeClient, type KubeConnection, connect } from './client.js';
import { type PodFacts, type StatefulSetFacts, podFacts, statefulSetFacts, statefulSetOwner } from './facts.js';
import { type GoneNodeVerdict, boundAttachmentsByNode, boundPodOf, decideGoneNode, nodesToAsk } from './gone-nodes.js';
import { type AddRequest, admit, decideHolds } from './policy.js';
import { Reflector } from './reflector.js';

export interface KubeOptions extends KubeConnection {
  readonly nodeName: string;
  /** How long an ADD may wait for the API before it falls back to CNI_ARGS and annotations. */
  readonly addBoundMs?: number;
  /** How often the StatefulSet holds are checked even without a watch event. */
  readonly resyncMs?: number;
  readonly retryMs?: { readonly min: number; readonly max: number };
}

export const DEFAULT_ADD_BOUND_MS = 1_000;
const READ_BOUND_MS = 10_000;

/** The cluster networks as the integration sees them (ClusterService): other nodes' attachments, and their end. */
export interface ClusterAttachments {
  /** Other nodes' attachments, from this daemon's copy of etcd. */
  attachmentsOfOtherNodes(): readonly LeaseRecord[];
  /** End each attachment still as judged, through the cluster units; stateful IPs stay held. */
  endConfirmedGone(node: string, ends: readonly GoneNodeVerdict[]): Promise<{ released: number; held: number }>;
}

/** What health shows of the integration: the wire protocol's shape. */
export type KubeHealth = KubernetesHealth;

class Timeout extends Error {}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

export class KubeIntegration {
  private readonly pods: Reflector<PodFacts>;
  private readonly statefulSets: Reflector<StatefulSetFacts>;
  private readonly addBoundMs: number;
  private resyncTimer: NodeJS.Timeout | undefined;
  private pending: Promise<void> | undefined;
  private again = false;
  private goneNodesDue = false;
  private run: RunUnit | undefined;
  private cluster: ClusterAttachments | undefined;
  private refusedNow: string[] = [];
  /** How many attachments each gone node kept at the last pass: the log says so once per change, not every pass. */
  private readonly goneNodeKept = new Map<string, number>();
  /** The last read failure about each node, logged once until it changes. */
  private readonly goneNodeErrors = new Map<string, string>();
  released = 0;
  /** Attachments of gone nodes ended since start (stateless freed + stateful left held). */
  releasedOfGoneNodes = 0;

  private constructor(
    private readonly client: KubeClient,
    private readonly options: KubeOptions,
    private readonly store: Store,
    private readonly ledger: Ledger,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.addBoundMs = options.addBoundMs ?? DEFAULT_ADD_BOUND_MS;
    const retryMs = options.retryMs ?? { min: 500, max: 30_000 };
    const key = (f: { namespace: string; name: string }) => `${f.namespace}/${f.name}`;
    this.pods = new Reflector(
      client,
      {
        what: `pods of node ${options.nodeName}`,
        list: () => client.listPods(this.nodeSelector()),
        path: '/api/v1/pods',
        query: { fieldSelector: this.nodeSelector() },
        facts: podFacts,
        key,
        // Releases wait for both watches: the later of the two to catch up starts the pass.
        onSynced: () => this.schedule(),
        retryMs,
      },
      log,
    );
    this.statefulSets = new Reflector(
      client,
      {
        what: 'statefulsets',
        list: () => client.listStatefulSets(),
        path: '/apis/apps/v1/statefulsets',
        query: {},
        facts: statefulSetFacts,
        key,
        onChange: () => this.schedule(false),
        onSynced: () => this.schedule(),
        retryMs,
      },
      log,
    );
  }

  static async start(options: KubeOptions, store: Store, ledger: Ledger, log: Logger, now: () => number): Promise<KubeIntegration> {
    const client = await connect(options);
    const kube = new KubeIntegration(client, options, store, ledger, log, now);
    kube.pods.start();
    kube.statefulSets.start();
    log.info('kubernetes integration on', { server: client.server, node: options.nodeName, client: client.library });
    return kube;
  }

  /** Start checking StatefulSet holds, through the daemon's write queue, and (with cluster networks) gone nodes. */
  begin(run: RunUnit, cluster?: ClusterAttachments): void {
    this.run = run;
    this.cluster = cluster;
    this.resyncTimer = setInterval(() => this.schedule(), this.options.resyncMs ?? 30_000);
    this.resyncTimer.unref();
    this.schedule();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.pods.stop();
    this.statefulSets.stop();
    await this.pending;
  }

  /** Why nothing may be released now, or undefined when the watches are in step with the API. */
  fence(): string | undefined {
    for (const r of [this.pods, this.statefulSets]) {
      if (!r.synced) return `the Kubernetes API is unreachable or the watch has not caught up (${r.lastError ?? 'starting'})`;
    }
    return undefined;
  }

  /**
   * What the API knows about an ADD's pod, within the ADD bound: its kind, its StatefulSet and
   * ordinal, its pinned IP or group, its annotations. With the API away, the invocation as the
   * plugin sent it (CNI_ARGS, annotations, defaultKind), and a log line that says so.
   */
  async admit(inv: CniInvocation, reparse: (podAnnotations: Readonly<Record<string, string>>) => CniInvocation): Promise<AddRequest> {
    if (inv.podNamespace === undefined || inv.podName === undefined) return inv;
    const started = Date.now();
    let pod: PodFacts | undefined;
    let sts: StatefulSetFacts | undefined;
    try {
      pod = this.freshPod(inv.podNamespace, inv.podName, inv.podUid) ?? podFacts(await within(this.client.getPod(inv.podNamespace, inv.podName), this.addBoundMs));
      if (!pod) {
        this.log.warn('pod not found in the Kubernetes API; using CNI_ARGS, annotations and defaultKind', { pod: `${inv.podNamespace}/${inv.podName}` });
        return inv;
      }
      const owner = statefulSetOwner(pod);
      if (owner) {
        const cached = this.statefulSets.get(`${pod.namespace}/${owner.name}`);
        sts = cached?.uid === owner.uid ? cached : statefulSetFacts(await within(this.client.getStatefulSet(pod.namespace, owner.name), Math.max(1, this.addBoundMs - (Date.now() - started))));
      }
    } catch (err) {
      if (!pod) {
        this.log.warn('kubernetes API unavailable for ADD; using CNI_ARGS, annotations and defaultKind', { pod: `${inv.podNamespace}/${inv.podName}`, error: (err as Error).message });
        return inv;
      }
      this.log.warn('StatefulSet not readable for ADD; its pinned IPs and group are not applied', { pod: `${inv.podNamespace}/${inv.podName}`, error: (err as Error).message });
    }
    return admit(inv, reparse, pod, sts, this.now());
  }

  /**
   * The pods of this node from one consistent list (a resourceVersion), for the leak rule: a
   * lease is the pod's while a pod of that UID (or, without a UID, that name) is listed. Leases
   * made after the list began are never judged by it. Undefined when the API cannot be read.
   */
  async podPresence(): Promise<((lease: LeaseRecord) => boolean) | undefined> {
    if (this.fence()) return undefined;
    const listedAt = this.now();
    let items: readonly unknown[];
    try {
      ({ items } = await within(this.client.listPods(this.nodeSelector()), READ_BOUND_MS));
    } catch (err) {
      this.log.warn('kubernetes pod list failed: leak reclaim paused', { error: (err as Error).message });
      return undefined;
    }
    const uids = new Set<string>();
    const names = new Set<string>();
    for (const item of items) {
      const pod = podFacts(item);
      if (!pod) continue;
      uids.add(pod.uid);
      names.add(`${pod.namespace}/${pod.name}`);
    }
    return (lease) => {
      if (lease.createdAt >= listedAt || lease.app === null) return lease.app !== null;
      return lease.podUid ? uids.has(lease.podUid) : names.has(lease.app);
    };
  }

  health(): KubeHealth {
    return {
      server: this.client.server,
      node: this.options.nodeName,
      fenced: this.fence() ?? null,
      watches: [this.pods, this.statefulSets].map((r, i) => ({
        what: i === 0 ? `pods of node ${this.options.nodeName}` : 'statefulsets',
        synced: r.synced,
        resumes: r.resumes,
        relists: r.relists,
        error: r.lastError ?? null,
      })),
      released: this.released,
      releasedOfGoneNodes: this.releasedOfGoneNodes,
      refused: this.refusedNow,
    };
  }

  /**
   * One pass over the StatefulSets that hold IPs here, then, unless `goneNodes` is false, over
   * gone nodes; coalesces requests made meanwhile. A StatefulSet event asks for the first only:
   * gone nodes cost a Node read per other node, so they wait for the resync (or a list).
   */
  schedule(goneNodes = true): Promise<void> {
    if (!this.run) return Promise.resolve();
    if (goneNodes) this.goneNodesDue = true;
    if (this.pending) {
      this.again = true;
      return this.pending;
    }
    this.pending = (async () => {
      do {
        this.again = false;
        await this.reconcile(this.run!).catch((err: unknown) => this.log.error('statefulset reconcile failed', { error: String(err) }));
        if (this.cluster && this.goneNodesDue) {
          this.goneNodesDue = false;
          await this.endGoneNodes(this.cluster).catch((err: unknown) => this.log.error('gone-node release failed', { error: String(err) }));
        }
      } while (this.again);
    })().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async reconcile(run: RunUnit): Promise<void> {
    if (this.fence()) return;
    const refused: string[] = [];
    for (const record of await run(() => this.store.listStatefulSets())) {
      let current: StatefulSetFacts | undefined;
      try {
        // A fresh read decides: the cache may be behind (a recreated StatefulSet not seen yet).
        current = statefulSetFacts(await within(this.client.getStatefulSet(record.namespace, record.name), READ_BOUND_MS));
      } catch (err) {
        this.log.warn('statefulset read failed: its holds stay', { statefulset: `${record.namespace}/${record.name}`, error: (err as Error).message });
        continue;
      }
      if (this.fence()) return;
      const decision = await run(() => decideHolds(record, current, this.store.leasesOfOwner(record.uid), this.now()));
      const released: LeaseRecord[] = [];
      // One unit per network: a cluster network's holds are released through etcd (RunUnit).
      for (const network of new Set(decision.release.map((hold) => hold.network))) {
        released.push(
          ...(await run(() => {
            const gone: LeaseRecord[] = [];
            for (const hold of decision.release.filter((h) => h.network === network)) {
              const current = this.store.leaseAt(hold.network, hold.family, hold.ip);
              // Only what is still as decided on: an ADD may have attached it meanwhile.
              if (!current || current.containerId !== null || current.ownerUid !== record.uid || current.app !== hold.app) continue;
              this.ledger.remove(current, 'statefulset');
              gone.push(hold);
            }
            return gone;
          }, network)),
        );
      }
      await run(() => {
        if (decision.record) this.store.putStatefulSet(decision.record);
        else this.store.deleteStatefulSet(record.uid);
      });
      const done = { released, decision };
      refused.push(...done.decision.refused);
      this.released += done.released.length;
      for (const hold of done.released) {
        this.log.info('stateful hold released', { network: hold.network, app: hold.app, ip: formatValue(hold.family, hold.ip), ordinal: hold.ordinal, reason: done.decision.reason, statefulset: `${record.namespace}/${record.name}` });
      }
    }
    for (const message of refused) if (!this.refusedNow.includes(message)) this.log.warn('statefulset IP change refused while its pod runs', { problem: message });
    this.refusedNow = refused;
  }

  /**
   * Issue 11 rule 6: another node's attachments end once the API says, on reads taken now, that
   * its Node is gone (404) and that each one's pod is gone. One Node read per other node with
   * bound attachments, nothing more while every node exists; any failure or a fence: nothing
   * ends this pass. With more than a few other nodes, only some of them each pass (nodesToAsk):
   * the other daemons ask about the rest.
   */
  private async endGoneNodes(cluster: ClusterAttachments): Promise<void> {
    if (this.fence()) return;
    for (const [node, attachments] of nodesToAsk(boundAttachmentsByNode(this.options.nodeName, cluster.attachmentsOfOtherNodes()), Math.random)) {
      let pods: Map<string, PodFacts | undefined>;
      let podsOnNode: Set<string>;
      try {
        if ((await within(this.client.getNode(node), READ_BOUND_MS)) !== undefined) continue;
        // Still bound to the node by UID, whatever the lease's app says: not gone.
        const listed = await within(this.client.listPods(`spec.nodeName=${node}`), READ_BOUND_MS);
        podsOnNode = new Set(listed.items.flatMap((item) => podFacts(item)?.uid ?? []));
        pods = new Map();
        for (const lease of attachments) {
          const pod = boundPodOf(lease)!;
          const key = `${pod.namespace}/${pod.name}`;
          if (pods.has(key)) continue;
          const read = await within(this.client.getPod(pod.namespace, pod.name), READ_BOUND_MS);
          // Only a 404 says "deleted"; an object that cannot be read as a pod says nothing.
          const facts = read === undefined ? undefined : podFacts(read);
          if (read !== undefined && !facts) throw new Error(`pod ${key}: the API's answer is not a pod`);
          pods.set(key, facts);
        }
      } catch (err) {
        const error = (err as Error).message;
        if (this.goneNodeErrors.get(node) !== error) this.log.warn('kubernetes read failed: the attachments of other nodes stay', { node, error });
        this.goneNodeErrors.set(node, error);
        return;
      }
      this.goneNodeErrors.delete(node);
      if (this.fence()) return;
      const decision = decideGoneNode(node, attachments, { node: 'absent', podsOnNode, pods });
      const ended = decision.release.length > 0 ? await cluster.endConfirmedGone(node, decision.release) : { released: 0, held: 0 };
      this.releasedOfGoneNodes += ended.released + ended.held;
      if (ended.released + ended.held > 0) {
        this.log.info('node gone from the Kubernetes API: ended the attachments whose pods it confirmed gone', { node, released: ended.released, held: ended.held, kept: decision.kept.length });
      } else if (this.goneNodeKept.get(node) !== decision.kept.length) {
        this.log.info('node gone from the Kubernetes API: its attachments stay while their pods exist', { node, kept: decision.kept.length });
      }
      this.goneNodeKept.set(node, decision.kept.length);
    }
  }

  private nodeSelector(): string {
    return `spec.nodeName=${this.options.nodeName}`;
  }

  /** The watched pod, if it is the one the runtime named (a same-name pod with another UID is not). */
  private freshPod(namespace: string, name: string, uid: string | undefined): PodFacts | undefined {
    // Without the runtime's UID the cache cannot tell a recreated pod from the old one: read it.
    const pod = uid === undefined ? undefined : this.pods.get(`${namespace}/${name}`);
    return pod?.uid === uid ? pod : undefined;
  }
}
