// Leaks: a container that died without DEL (or a node that rebooted) leaves a lease whose
// network namespace no longer exists. After a grace period such a lease is released as DEL
// would release it: a stateless IP is freed, a stateful one stays held for its app. Only a
// namespace known to be gone counts (netns-view.ts): one the daemon cannot see may be alive.
// A pass reads the leases in pages, each page its own unit of the write queue, so a store with
// a million leases neither blocks ADDs for seconds nor loads every lease into memory.
import { type Family, formatValue } from '../src/address.js';
import type { CniService } from './cni-service.js';
import { type Logger, afterCommit } from './log.js';
import type { NetnsView } from './netns-view.js';
import type { Networks } from './networks.js';
import type { LeaseRecord, Store } from './store.js';
import type { RunUnit } from './write-queue.js';

export type { RunUnit };

export const RECONCILE_PAGE = 512;


export class NetnsReconciler {
  /** When each lease was first seen without its namespace, by "network|family|ip|container". */
  private readonly missingSince = new Map<string, number>();
  /** Leases released since start, for the health endpoint and the logs. */
  reclaimed = 0;
  /** Lines said inside a unit wait for its commit (log.ts, afterCommit). */
  private readonly log: Logger;

  constructor(
    private readonly store: Store,
    private readonly networks: Networks,
    private readonly cni: CniService,
    log: Logger,
    private readonly netns: NetnsView,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
    /**
     * With the Kubernetes API: whether a lease's pod still exists, from one fresh list; undefined
     * when the API cannot be read, and then nothing is released (a lease goes only when both its
     * pod and its namespace are gone).
     */
    private readonly podPresence?: () => Promise<((lease: LeaseRecord) => boolean) | undefined>,
    /** This node: a cluster network's leases of other nodes are theirs to reclaim. */
    private readonly node?: string,
  ) {
    this.log = afterCommit(store, log);
  }

  /** One pass over every attached lease. Returns how many leases it released. */
  async sweep(run: RunUnit): Promise<number> {
    const seen = new Set<string>();
    let released = 0;
    const podAlive = this.podPresence ? await this.podPresence() : () => false;
    if (!podAlive) return 0;
    for (const network of await run(() => this.networks.names())) {
      let after: { family: Family; ip: bigint } | undefined;
      for (;;) {
        const page = await run(() => this.store.attachedLeasesAfter(network, after, RECONCILE_PAGE));
        // A cluster network's leases of other nodes name namespaces of other machines: not ours to judge.
        const due = this.due(page.filter((lease) => !lease.node || lease.node === this.node), seen, podAlive);
        if (due.length > 0) released += await run(() => this.release(network, due), network);
        if (page.length < RECONCILE_PAGE) break;
        const last = page[page.length - 1]!;
        after = { family: last.family, ip: last.ip };
      }
    }
    for (const key of this.missingSince.keys()) if (!seen.has(key)) this.missingSince.delete(key);
    this.reclaimed += released;
    if (released > 0) this.log.info('reconcile pass', { released, totalReclaimed: this.reclaimed });
    return released;
  }

  /** The leases of a page whose namespace has been gone for the whole grace period. */
  private due(page: readonly LeaseRecord[], seen: Set<string>, podAlive: (lease: LeaseRecord) => boolean): LeaseRecord[] {
    const now = this.now();
    const due: LeaseRecord[] = [];
    for (const lease of page) {
      // Only a namespace known to be gone counts: one this daemon cannot see may be alive.
      if (lease.netns === null || this.netns.state(lease.netns) !== 'gone' || podAlive(lease)) continue;
      const key = `${lease.network}|${lease.family}|${lease.ip}|${lease.containerId}`;
      seen.add(key);
      const since = this.missingSince.get(key) ?? now;
      this.missingSince.set(key, since);
      if (now - since >= this.graceMs) due.push(lease);
    }
    return due;
  }

  /** Release what is still as we saw it: a DEL or a new ADD may have come in between. */
  private release(network: string, due: readonly LeaseRecord[]): number {
    let released = 0;
    for (const seen of due) {
      const lease = this.store.leaseAt(network, seen.family, seen.ip);
      if (!lease || lease.containerId !== seen.containerId || lease.ifname !== seen.ifname || lease.netns !== seen.netns) continue;
      this.cni.release(lease, 'netns_gone');
      const key = `${lease.network}|${lease.family}|${lease.ip}|${lease.containerId}`;
      this.store.onCommit(() => this.missingSince.delete(key));
      released++;
      this.log.info('released a lease whose network namespace is gone', {
        network,
        ip: formatValue(lease.family, lease.ip),
        container: lease.containerId,
        netns: lease.netns,
        kind: lease.kind,
      });
    }
    return released;
  }
}
