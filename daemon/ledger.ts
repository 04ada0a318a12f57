// The one way a lease changes. Each change is written to the store together with a line of the
// IP's history (same transaction, so no extra fsync), and once the transaction has committed it
// moves the in-memory counts (free / leased / held per pool) and reaches the watchers (metrics,
// the status page). A unit rolled back inside a group-commit batch leaves no trace in either.
// Refusals are history too: they are written with commitRegardless, so the refused unit rolls
// back while its refusal commits in the same batch.
import type { Family } from '../src/address.js';
import type { AppKind } from '../src/config.js';
import type { HistoryEventKind, HistoryRecord, LeaseRecord, Store } from './store.js';

export type Pool = 'dynamic' | 'reserved';
export type ClaimReason = 'requested' | 'group' | 'dynamic' | 'reattached' | 'takeover';
/** abandoned: an ADD whose caller gave up before its answer, undone (write-queue.ts). */
/** orphan: a cluster lease of this node that its journal does not know (a crash between etcd's commit and the journal's). */
/** node_gone: another node's attachment, its Node and its pod confirmed gone by the Kubernetes API. */
export type ReleaseReason = 'del' | 'gc' | 'netns_gone' | 'hold_expired' | 'operator' | 'replaced' | 'statefulset' | 'abandoned' | 'orphan' | 'node_gone';
export type RefusalReason = 'lost_race' | 'in_use' | 'forbidden' | 'refused_change';

export const REFUSAL_REASONS: readonly RefusalReason[] = ['lost_race', 'in_use', 'forbidden', 'refused_change'];
/** Releases the daemon made by itself (no DEL, no operator): the reclaimed metric. */
export const RECLAIM_REASONS: readonly ReleaseReason[] = ['gc', 'netns_gone', 'hold_expired', 'statefulset', 'orphan', 'node_gone'];

export interface PoolCounts {
  /** With a container attached. */
  leased: number;
  /** Held by a stateful app with no container. */
  held: number;
}

export interface Occupancy {
  dynamic: PoolCounts;
  reserved: PoolCounts;
}

/** Who asked, for a refusal's history. */
export interface Requester {
  readonly app: string | null;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly kind: AppKind | null;
}

/** An IP a refusal concerns and who held it. */
export interface RefusedIp {
  readonly family: Family;
  readonly ip: bigint;
  /** Who held it, if anyone. */
  readonly holder: string | null;
}

/** Told of committed changes only, in commit order. */
export interface LedgerWatcher {
  /** A history line; `reserved` says whether its IP lies in a reserved entry. */
  event?(record: HistoryRecord, reserved: boolean): void;
  /** A refusal that concerned reserved IPs (once per refused request, however many IPs it named). */
  refused?(network: string, reason: RefusalReason): void;
  /** The counts of a network changed without a history line (reserved entries changed). */
  changed?(network: string): void;
}

type LeaseState = 'leased' | 'held';

const stateOf = (lease: LeaseRecord): LeaseState => (lease.containerId === null ? 'held' : 'leased');

export class Ledger {
  private readonly counts = new Map<string, Occupancy>();
  private readonly watchers = new Set<LedgerWatcher>();

  constructor(
    private readonly store: Store,
    /** This daemon's node: the node of every holder it records. */
    readonly node: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count each network's leases once (start-up); from then on the counts follow the commits. */
  load(networks: readonly string[]): void {
    for (const network of networks) {
      const all = this.store.countLeases(network);
      const reserved = this.countReserved(network);
      this.counts.set(network, {
        reserved,
        dynamic: { leased: all.total - all.held - reserved.leased, held: all.held - reserved.held },
      });
    }
  }

  /** The committed counts of a network (zeros for one with no lease yet). Do not modify. */
  occupancy(network: string): Readonly<Occupancy> {
    return this.counts.get(network) ?? { dynamic: { leased: 0, held: 0 }, reserved: { leased: 0, held: 0 } };
  }

  watch(watcher: LedgerWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  claim(lease: LeaseRecord, reason: ClaimReason): void {
    this.store.insertLease(lease);
    this.record(lease, 'claim', reason, undefined, 'leased');
  }

  /** A stateful app's IP goes to its new container: back from a hold, or taken from a dead container. */
  reattach(hold: LeaseRecord, containerId: string, ifname: string, netns: string | null): void {
    this.store.attachLease(hold.network, hold.family, hold.ip, containerId, ifname, netns);
    const lease = { ...hold, containerId, ifname, netns, detachedAt: null };
    this.record(lease, 'claim', hold.containerId === null ? 'reattached' : 'takeover', stateOf(hold), 'leased');
  }

  /** A stateful IP stays held for its app with no container. */
  detach(lease: LeaseRecord, reason: ReleaseReason, detail: string | null = null): void {
    this.store.detachLease(lease.network, lease.family, lease.ip, this.now());
    this.record(lease, 'hold', reason, stateOf(lease), 'held', detail);
  }

  /** The lease ends: the IP is free. */
  remove(lease: LeaseRecord, reason: ReleaseReason, detail: string | null = null): void {
    this.store.deleteLease(lease.network, lease.family, lease.ip);
    this.record(lease, 'release', reason, stateOf(lease), undefined, detail);
  }

  /**
   * Record a refusal; the caller throws the error next, and its unit rolls back, but this commits
   * (commitRegardless). One history line per IP, one count.
   */
  refuse(network: string, reason: RefusalReason, ips: readonly RefusedIp[], who: Requester, detail: string): void {
    this.store.refusalRestsOn?.(network, ips);
    this.store.commitRegardless(() => {
      // refused changes and namespace refusals are about reserved entries by definition
      let reserved = reason === 'refused_change' || reason === 'forbidden';
      for (const refused of ips) {
        const inEntry = this.store.reservedCovering(network, refused.family, refused.ip) !== undefined;
        if (inEntry) reserved = true;
        const line: Omit<HistoryRecord, 'id'> = {
          at: this.now(),
          network,
          family: refused.family,
          ip: refused.ip,
          event: 'refusal',
          reason,
          app: who.app,
          containerId: who.containerId,
          ifname: who.ifname,
          kind: who.kind,
          node: this.node,
          holder: refused.holder,
          detail,
        };
        const id = this.store.appendHistory(line);
        this.store.onCommit(() => this.tell((w) => w.event?.({ ...line, id: this.store.historyId?.(id) ?? id }, inEntry)));
      }
      if (reserved) this.store.onCommit(() => this.tell((w) => w.refused?.(network, reason)));
    });
  }

  /**
   * Reserved entries of a network changed (added, moved, removed, reconciled with the config):
   * leases may have moved between the pools. Recount the reserved side (a range count per entry).
   */
  reservedChanged(network: string): void {
    const reserved = this.countReserved(network);
    if (!this.counts.has(network)) {
      // First seen since start (a new network, or leases written by another tool): count it all once.
      const all = this.store.countLeases(network);
      this.store.onCommit(() => {
        this.counts.set(network, { reserved, dynamic: { leased: all.total - all.held - reserved.leased, held: all.held - reserved.held } });
        this.tell((w) => w.changed?.(network));
      });
      return;
    }
    this.store.onCommit(() => {
      const counts = this.mutable(network);
      const leased = counts.dynamic.leased + counts.reserved.leased;
      const held = counts.dynamic.held + counts.reserved.held;
      counts.reserved = reserved;
      counts.dynamic = { leased: leased - reserved.leased, held: held - reserved.held };
      this.tell((w) => w.changed?.(network));
    });
  }

  /**
   * Count a network again from the store (outside a transaction): a cluster network changes by
   * other nodes' commits too, which reach this daemon through its copy of etcd, not its ledger.
   */
  recount(network: string): void {
    const all = this.store.countLeases(network);
    const reserved = this.countReserved(network);
    this.counts.set(network, { reserved, dynamic: { leased: all.total - all.held - reserved.leased, held: all.held - reserved.held } });
    this.tell((w) => w.changed?.(network));
  }

  private countReserved(network: string): PoolCounts {
    const counts: PoolCounts = { leased: 0, held: 0 };
    for (const entry of this.store.listReserved(network)) {
      const { total, held } = this.store.leaseCountsBetween(network, entry.family, entry.start, entry.end);
      counts.leased += total - held;
      counts.held += held;
    }
    return counts;
  }

  private record(lease: LeaseRecord, event: HistoryEventKind, reason: string, from: LeaseState | undefined, to: LeaseState | undefined, detail: string | null = null): void {
    const pool: Pool = this.store.reservedCovering(lease.network, lease.family, lease.ip) === undefined ? 'dynamic' : 'reserved';
    const line: Omit<HistoryRecord, 'id'> = {
      at: this.now(),
      network: lease.network,
      family: lease.family,
      ip: lease.ip,
      event,
      reason,
      app: lease.app,
      containerId: lease.containerId,
      ifname: lease.ifname,
      kind: lease.kind,
      node: this.node,
      holder: null,
      detail,
    };
    const id = this.store.appendHistory(line);
    this.store.onCommit(() => {
      const counts = this.mutable(lease.network)[pool];
      if (from !== undefined) counts[from]--;
      if (to !== undefined) counts[to]++;
      this.tell((w) => w.event?.({ ...line, id: this.store.historyId?.(id) ?? id }, pool === 'reserved'));
    });
  }

  private mutable(network: string): Occupancy {
    let counts = this.counts.get(network);
    if (!counts) {
      counts = { dynamic: { leased: 0, held: 0 }, reserved: { leased: 0, held: 0 } };
      this.counts.set(network, counts);
    }
    return counts;
  }

  private tell(call: (watcher: LedgerWatcher) => void): void {
    for (const watcher of this.watchers) call(watcher);
  }
}
