// What the services need from persistent storage, and nothing about how it is kept. SQLite is
// the first implementation (sqlite-store.ts); a cluster-wide store can come later behind this.
// Every method is synchronous and runs inside `transaction`, so a use case commits as one unit.
import type { Family } from '../src/address.js';
import type { AppKind } from '../src/config.js';
import type { Span } from './allocator.js';

export interface LeaseRecord {
  readonly network: string;
  readonly family: Family;
  readonly ip: bigint;
  readonly rangeSet: number;
  /** Null when a stateful app's IP is held with no container attached. */
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly netns: string | null;
  readonly app: string | null;
  readonly kind: AppKind;
  readonly createdAt: number;
  readonly detachedAt: number | null;
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

export interface NetworkRecord {
  readonly name: string;
  /** The ipam object as JSON text, parsed again with the same validator on load. */
  readonly ipam: string;
  readonly updatedAt: number;
}

export interface Store {
  /** Run fn atomically. Nested calls become savepoints: an inner failure undoes only the inner part. */
  transaction<T>(fn: () => T): T;
  /** Like transaction, but for a batch of independent units sharing one commit (group commit). */
  batch(units: ReadonlyArray<() => void>): void;

  getNetwork(name: string): NetworkRecord | undefined;
  putNetwork(name: string, ipam: string, now: number): void;
  listNetworks(): NetworkRecord[];

  leasesOfAttachment(network: string, containerId: string, ifname: string): LeaseRecord[];
  leasesOfApp(network: string, app: string): LeaseRecord[];
  leaseAt(network: string, family: Family, ip: bigint): LeaseRecord | undefined;
  /** Leases inside [start, end], in address order, at most `limit`. */
  leasesBetween(network: string, family: Family, start: bigint, end: bigint, limit: number): LeaseRecord[];
  countLeasesBetween(network: string, family: Family, start: bigint, end: bigint): number;
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

  /** The run of consecutive leased addresses containing x, if x is leased. */
  occupiedCovering(network: string, family: Family, x: bigint): Span | undefined;

  getCursor(network: string, rangeSet: number): bigint | undefined;
  setCursor(network: string, rangeSet: number, family: Family, ip: bigint): void;

  listReserved(network: string): ReservedRecord[];
  reservedCovering(network: string, family: Family, x: bigint): ReservedRecord | undefined;
  insertReserved(record: Omit<ReservedRecord, 'id'>, now: number): void;
  updateReserved(id: number, record: Omit<ReservedRecord, 'id' | 'network' | 'source'>): void;
  deleteReserved(id: number): void;

  /** A consistent copy of the whole store, written by the store to a path it chose. */
  backupTo(path: string): Promise<void>;
  close(): void;
}
