// What the services need from persistent storage, and nothing about how it is kept. SQLite is
// the node's implementation (sqlite-store.ts); a cluster-wide store implements the same interface.
//
// The unit of work. A unit is the function given to `transaction` (the write queue gives each
// request's function to it, inside a `batch`); every other method is synchronous and is called
// from inside a unit. The contract, which every store keeps and every unit relies on:
// - consistent view: a unit reads the state as of its start plus its own writes, and nothing any
//   other unit does meanwhile (reads after writes inside a unit see those writes);
// - all-or-nothing: its writes commit together or not at all; a unit that throws leaves nothing
//   but what it gave to `commitRegardless`;
// - it may run more than once: a store may run it, roll it back and run it again (a conflict
//   with another writer retries it); test/support/rerun-store.ts makes every unit do so in tests.
//   So running it twice must have exactly the effect of running it once: a unit changes nothing
//   outside the store but through `onCommit` (logs: log.ts afterCommit; counts, watchers,
//   in-memory records), which runs once, after the commit of the attempt that committed, and
//   never for an attempt rolled back. A `commitRegardless` write of an attempt that is retried is
//   dropped with it; only the last attempt's is written;
// - outside a unit, `onCommit` runs its effect at once and `commitRegardless` writes at once.
// Nested `transaction` calls are savepoints: an inner failure undoes only the inner part. What a
// unit keeps in memory across attempts must be idempotent and safe to keep after a rollback
// (CniService's GC watchers, NetnsView's evidence about the filesystem); the rest waits for onCommit.
import type { Family } from '../src/address.js';
import type { AppKind } from '../src/config.js';
import type { Span } from './allocator.js';

export interface LeaseRecord {
  readonly network: string;
  readonly family: Family;
  readonly ip: bigint;
  /** Null when a stateful app's IP is held with no container attached. */
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly netns: string | null;
  readonly app: string | null;
  readonly kind: AppKind;
  readonly createdAt: number;
  readonly detachedAt: number | null;
  /** Kubernetes: the pod's UID, when known (a new pod of the same name has another one). */
  readonly podUid?: string | null;
  /** Kubernetes: the UID of the StatefulSet whose pod holds this IP, and the pod's ordinal. */
  readonly ownerUid?: string | null;
  readonly ordinal?: number | null;
  /** Cluster networks: the node of the holder (null or absent: this node, a node-scope network). */
  readonly node?: string | null;
}

/** Who holds a lease in Kubernetes terms (LeaseRecord's podUid, ownerUid, ordinal). */
export interface LeaseBinding {
  readonly podUid: string | null;
  readonly ownerUid: string | null;
  readonly ordinal: number | null;
}

/** The last state seen of a StatefulSet whose pods hold IPs here: its policies outlive it. */
export interface StatefulSetRecord {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly whenDeleted: 'Delete' | 'Retain';
  readonly whenScaled: 'Delete' | 'Retain';
  readonly ordinalsStart: number;
  /** reservoir.io/ips as written, or null. */
  readonly ips: string | null;
  readonly updatedAt: number;
}

/** A lease's place in the store's order (network, family, ip): where a page of a listing ends. */
export interface LeasePosition {
  readonly network: string;
  readonly family: Family;
  readonly ip: bigint;
}

export interface ReservedRecord {
  readonly id: number;
  readonly network: string;
  readonly family: Family;
  readonly start: bigint;
  readonly end: bigint;
  readonly group: string | null;
  readonly note: string | null;
  readonly source: 'config' | 'operator';
  readonly entry: string;
  /** Namespace globs of the pods that may claim it; null = any pod. */
  readonly namespaces: readonly string[] | null;
}

export type HistoryEventKind = 'claim' | 'hold' | 'release' | 'refusal';

/** One line of an IP's history: a claim, a hold (stateful, detached), a release or a refusal. */
export interface HistoryRecord {
  /** Assigned by the store, increasing: the order of events. */
  readonly id: number;
  readonly at: number;
  readonly network: string;
  readonly family: Family;
  readonly ip: bigint;
  readonly event: HistoryEventKind;
  /** Why (a release: del, gc, netns_gone, ...; a refusal: lost_race, in_use, ...). */
  readonly reason: string;
  /** Who: the claimant, the holder released, or who asked and was refused. */
  readonly app: string | null;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly kind: AppKind | null;
  readonly node: string | null;
  /** A refusal: who held the IP. */
  readonly holder: string | null;
  readonly detail: string | null;
}

export interface NetworkRecord {
  readonly name: string;
  /** The ipam object as JSON text, parsed again with the same validator on load. */
  readonly ipam: string;
  /** The CNI config file that declares the network (it wins over requests); null: learned from requests. */
  readonly file: string | null;
  /** Entries of the config's `reserved` list that could not be applied, and why. */
  readonly reservedConflicts: readonly string[];
  readonly updatedAt: number;
}

export interface Store {
  /**
   * Run the unit fn atomically over a consistent view (see the top of this file); fn may be run
   * more than once. Nested calls become savepoints: an inner failure undoes only the inner part.
   */
  transaction<T>(fn: () => T): T;
  /** Like transaction, but for a batch of independent units sharing one commit (group commit). */
  batch(units: ReadonlyArray<() => void>): void;
  /**
   * Run `effect` once the outermost transaction has committed (metrics, pushes to watchers);
   * dropped if the transaction that registered it, or any around it, rolls back.
   */
  onCommit(effect: () => void): void;
  /**
   * Write in the same commit as the current transaction even when the unit asking rolls back:
   * the history of a refused request. Runs at the end of the outermost transaction, in a
   * savepoint of its own; outside a transaction, or when the outermost one rolls back, in a
   * transaction of its own.
   */
  commitRegardless(write: () => void): void;

  getNetwork(name: string): NetworkRecord | undefined;
  putNetwork(name: string, ipam: string, now: number, file?: string | null): void;
  setReservedConflicts(name: string, conflicts: readonly string[]): void;
  listNetworks(): NetworkRecord[];

  leasesOfAttachment(network: string, containerId: string, ifname: string): LeaseRecord[];
  leasesOfApp(network: string, app: string): LeaseRecord[];
  leaseAt(network: string, family: Family, ip: bigint): LeaseRecord | undefined;
  /** Leases inside [start, end], in address order, at most `limit`. */
  leasesBetween(network: string, family: Family, start: bigint, end: bigint, limit: number): LeaseRecord[];
  countLeasesBetween(network: string, family: Family, start: bigint, end: bigint): number;
  /** Leases inside [start, end], and how many of them are held (no container). */
  leaseCountsBetween(network: string, family: Family, start: bigint, end: bigint): { total: number; held: number };
  /**
   * Leases of one network (all when undefined) after `after` (exclusive; from the first when
   * undefined) in (network, family, ip) order, at most `limit`: a listing read page by page.
   */
  leasesAfter(network: string | undefined, after: LeasePosition | undefined, limit: number): LeaseRecord[];
  countLeases(network: string | undefined): { total: number; held: number };
  attachedLeases(network: string): LeaseRecord[];
  /** Attached leases after (family, ip) in address order, at most `limit`: pages for long scans. */
  attachedLeasesAfter(network: string, after: { family: Family; ip: bigint } | undefined, limit: number): LeaseRecord[];
  detachedBefore(network: string, cutoff: number): LeaseRecord[];

  insertLease(lease: LeaseRecord): void;
  deleteLease(network: string, family: Family, ip: bigint): void;
  detachLease(network: string, family: Family, ip: bigint, now: number): void;
  attachLease(network: string, family: Family, ip: bigint, containerId: string, ifname: string, netns: string | null): void;
  /** Record whose (Kubernetes) lease this is. */
  bindLease(network: string, family: Family, ip: bigint, binding: LeaseBinding): void;
  /** Leases of every network held by pods of one StatefulSet (by its UID). */
  leasesOfOwner(ownerUid: string): LeaseRecord[];

  putStatefulSet(record: StatefulSetRecord): void;
  getStatefulSet(uid: string): StatefulSetRecord | undefined;
  listStatefulSets(): StatefulSetRecord[];
  deleteStatefulSet(uid: string): void;

  /** The run of consecutive leased addresses containing x, if x is leased. */
  occupiedCovering(network: string, family: Family, x: bigint): Span | undefined;

  /** Round-robin cursors, by range set content (rangeSetKey): a set keeps its cursor wherever it moves in the config. */
  getCursor(network: string, setKey: string): bigint | undefined;
  setCursor(network: string, setKey: string, family: Family, ip: bigint): void;

  listReserved(network: string): ReservedRecord[];
  reservedCovering(network: string, family: Family, x: bigint): ReservedRecord | undefined;
  insertReserved(record: Omit<ReservedRecord, 'id'>, now: number): void;
  updateReserved(id: number, record: Omit<ReservedRecord, 'id' | 'network' | 'source'>): void;
  deleteReserved(id: number): void;

  /** Append an event; returns its id. */
  appendHistory(event: Omit<HistoryRecord, 'id'>): number;
  /**
   * The id an appended event has once committed, where appendHistory could only give a stand-in
   * (a cluster unit writes its history after etcd's commit); absent: ids are final at once.
   */
  historyId?(id: number): number;
  /**
   * A refusal rests on these IPs' records (who holds them): a store whose view may be a few
   * milliseconds old (a cluster network's copy of etcd) reads them afresh before it answers.
   */
  refusalRestsOn?(network: string, ips: ReadonlyArray<{ family: Family; ip: bigint }>): void;
  /**
   * The last `limit` events (before id `before`, when given) of a network, or of one of its IPs,
   * or of every network when network is undefined; oldest first.
   */
  history(network: string | undefined, ip: { family: Family; ip: bigint } | undefined, limit: number, before?: number): HistoryRecord[];
  /**
   * Drop the oldest events: those beyond the newest `keep`, and those older than `before` (ms),
   * at most `chunk` per call (a call is one unit of work). Returns how many went.
   */
  pruneHistory(before: number, keep: number, chunk: number): number;

  /** A consistent copy of the whole store, written by the store to a path it chose. */
  backupTo(path: string): Promise<void>;
  close(): void;
}
