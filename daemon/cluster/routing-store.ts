// One Store for the services over two: node-scope networks in the daemon's SQLite file, cluster
// networks in the mirror of etcd (mirror.ts). Reads of a cluster network go to the mirror; its
// writes are allowed only inside a cluster unit (units.ts), which records which etcd keys they
// touch, rolls the mirror back and commits the keys to etcd. History is this node's account and
// always goes to the SQLite file; inside a cluster unit it is written after the etcd commit.
import type { Family } from '../../src/address.js';
import { parseIp } from '../../src/address.js';
import { ReservoirError } from '../../src/errors.js';
import type { Span } from '../allocator.js';
import type { HistoryRecord, LeaseBinding, LeasePosition, LeaseRecord, NetworkRecord, ReservedRecord, StatefulSetRecord, Store } from '../store.js';
import type { Mirror } from './mirror.js';

/** What one run of a cluster batch wrote, besides the mirror rows: applied after the etcd commit. */
export class Capture {
  constructor(readonly network: string) {}

  /** etcd keys (layout form) whose records the batch changed. */
  readonly dirty = new Set<string>();
  readonly effects: Array<() => void> = [];
  readonly regardless: Array<() => void> = [];
  /** History lines, with their placeholder ids (negative), written to SQLite after the commit. */
  readonly history: Array<{ placeholder: number; line: Omit<HistoryRecord, 'id'> }> = [];
  readonly cursors = new Map<string, bigint>();
  /** Lease keys that refusals of this run rested on (read afresh before a refusal is answered). */
  readonly consulted = new Set<string>();

  mark(): [number, number, number, number] {
    return [this.dirty.size, this.effects.length, this.regardless.length, this.history.length];
  }

  /**
   * An inner unit rolled back: what it registered goes (its dirty keys stay: they compare equal and
   * drop out), but for its commitRegardless writes: those are for exactly this case (a refusal's history).
   */
  rollbackTo(mark: [number, number, number, number]): void {
    this.effects.length = mark[1];
    this.history.length = mark[3];
  }
}

export class RoutingStore implements Store {
  /** The open cluster batch, if any (units.ts sets it around a synchronous run). */
  capture: Capture | undefined;
  /** Round-robin cursors of cluster networks: this node's own (they spread nodes over a range). */
  private readonly cursors = new Map<string, bigint>();
  /** Per cluster network: where this node's round-robin starts anew after it lost a race for an IP. */
  private readonly salts = new Map<string, string>();
  private placeholder = 0;
  private readonly resolved = new Map<number, number>();

  constructor(
    readonly local: Store,
    /** undefined: the daemon runs without etcd; every network is node-scope. */
    readonly mirror: Mirror | undefined,
    readonly node: string,
  ) {}

  /** Whether a network is cluster-scope (known in etcd, or being created by the open batch). */
  isCluster(network: string): boolean {
    return this.mirror !== undefined && this.mirror.networks.has(network);
  }

  private reads(network: string): Store {
    return this.isCluster(network) || this.capture?.network === network ? this.mirror!.store : this.local;
  }

  /** The store a write of this network goes to: a cluster unit writes its own network only, and only it writes a cluster network. */
  private writes(network: string): Store {
    if (this.capture?.network === network) return this.mirror!.store;
    if (this.capture) throw new ReservoirError('INTERNAL', `a unit of cluster network "${this.capture.network}" wrote network "${network}"`);
    if (this.isCluster(network)) throw new ReservoirError('INTERNAL', `cluster network "${network}" written outside a cluster unit`);
    return this.local;
  }

  private dirty(key: string): void {
    this.capture!.dirty.add(key);
  }

  private dirtyLease(lease: { network: string; family: Family; ip: bigint }, app: string | null, kind: string): void {
    const layout = this.mirror!.layout;
    this.dirty(layout.lease(lease.network, lease.family, lease.ip));
    if (kind === 'stateful' && app !== null) this.dirty(layout.app(lease.network, app));
  }

  // --- units -------------------------------------------------------------------------------

  transaction<T>(fn: () => T): T {
    const capture = this.capture;
    if (!capture) return this.local.transaction(fn);
    const mark = capture.mark();
    try {
      return this.mirror!.store.transaction(fn);
    } catch (err) {
      capture.rollbackTo(mark);
      throw err;
    }
  }

  batch(units: ReadonlyArray<() => void>): void {
    if (this.capture) throw new ReservoirError('INTERNAL', 'a batch inside a cluster unit');
    this.local.batch(units);
  }

  onCommit(effect: () => void): void {
    if (this.capture) this.capture.effects.push(effect);
    else this.local.onCommit(effect);
  }

  refusalRestsOn(network: string, ips: ReadonlyArray<{ family: Family; ip: bigint }>): void {
    if (this.capture?.network !== network) return;
    for (const { family, ip } of ips) this.capture.consulted.add(this.mirror!.layout.lease(network, family, ip));
  }

  commitRegardless(write: () => void): void {
    if (this.capture) this.capture.regardless.push(write);
    else this.local.commitRegardless(write);
  }

  // --- networks ----------------------------------------------------------------------------

  getNetwork(name: string): NetworkRecord | undefined {
    return this.reads(name).getNetwork(name);
  }

  putNetwork(name: string, ipam: string, now: number, file?: string | null): void {
    const store = this.writes(name);
    if (this.capture) {
      if (this.local.getNetwork(name)) {
        throw new ReservoirError('INVALID_CONFIG', `invalid config: network "${name}" is a node-scope network on this node already; a cluster network needs a name of its own (or remove the node network's leases first)`);
      }
      this.dirty(this.mirror!.layout.network(name));
    }
    store.putNetwork(name, ipam, now, file);
  }

  setReservedConflicts(name: string, conflicts: readonly string[]): void {
    if (this.capture) this.dirty(this.mirror!.layout.network(name));
    this.writes(name).setReservedConflicts(name, conflicts);
  }

  listNetworks(): NetworkRecord[] {
    const local = this.local.listNetworks();
    if (!this.mirror) return local;
    return [...local, ...this.mirror.store.listNetworks()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // --- leases: reads -----------------------------------------------------------------------

  leasesOfAttachment(network: string, containerId: string, ifname: string): LeaseRecord[] {
    return this.reads(network).leasesOfAttachment(network, containerId, ifname);
  }

  leasesOfApp(network: string, app: string): LeaseRecord[] {
    return this.reads(network).leasesOfApp(network, app);
  }

  leaseAt(network: string, family: Family, ip: bigint): LeaseRecord | undefined {
    return this.reads(network).leaseAt(network, family, ip);
  }

  leasesBetween(network: string, family: Family, start: bigint, end: bigint, limit: number): LeaseRecord[] {
    return this.reads(network).leasesBetween(network, family, start, end, limit);
  }

  countLeasesBetween(network: string, family: Family, start: bigint, end: bigint): number {
    return this.reads(network).countLeasesBetween(network, family, start, end);
  }

  leaseCountsBetween(network: string, family: Family, start: bigint, end: bigint): { total: number; held: number } {
    return this.reads(network).leaseCountsBetween(network, family, start, end);
  }

  leasesAfter(network: string | undefined, after: LeasePosition | undefined, limit: number): LeaseRecord[] {
    if (network !== undefined) return this.reads(network).leasesAfter(network, after, limit);
    const local = this.local.leasesAfter(undefined, after, limit);
    if (!this.mirror) return local;
    // Both lists are in (network, family, ip) order and network names do not repeat across them.
    const merged = [...local, ...this.mirror.store.leasesAfter(undefined, after, limit)];
    merged.sort((a, b) => (a.network !== b.network ? (a.network < b.network ? -1 : 1) : a.family !== b.family ? a.family - b.family : a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    return merged.slice(0, limit);
  }

  countLeases(network: string | undefined): { total: number; held: number } {
    if (network !== undefined) return this.reads(network).countLeases(network);
    const local = this.local.countLeases(undefined);
    if (!this.mirror) return local;
    const cluster = this.mirror.store.countLeases(undefined);
    return { total: local.total + cluster.total, held: local.held + cluster.held };
  }

  attachedLeases(network: string): LeaseRecord[] {
    return this.reads(network).attachedLeases(network);
  }

  attachedLeasesAfter(network: string, after: { family: Family; ip: bigint } | undefined, limit: number): LeaseRecord[] {
    return this.reads(network).attachedLeasesAfter(network, after, limit);
  }

  detachedBefore(network: string, cutoff: number): LeaseRecord[] {
    return this.reads(network).detachedBefore(network, cutoff);
  }

  leasesOfOwner(ownerUid: string): LeaseRecord[] {
    const local = this.local.leasesOfOwner(ownerUid);
    return this.mirror ? [...local, ...this.mirror.store.leasesOfOwner(ownerUid)] : local;
  }

  occupiedCovering(network: string, family: Family, x: bigint): Span | undefined {
    return this.reads(network).occupiedCovering(network, family, x);
  }

  // --- leases: writes ----------------------------------------------------------------------

  insertLease(lease: LeaseRecord): void {
    const store = this.writes(lease.network);
    if (this.capture) {
      this.dirtyLease(lease, lease.app, lease.kind);
      store.insertLease({ ...lease, node: lease.node ?? this.node });
    } else store.insertLease(lease);
  }

  deleteLease(network: string, family: Family, ip: bigint): void {
    const store = this.writes(network);
    if (this.capture) {
      const before = store.leaseAt(network, family, ip);
      this.dirtyLease({ network, family, ip }, before?.app ?? null, before?.kind ?? 'stateless');
    }
    store.deleteLease(network, family, ip);
  }

  detachLease(network: string, family: Family, ip: bigint, now: number): void {
    const store = this.writes(network);
    if (this.capture) this.dirty(this.mirror!.layout.lease(network, family, ip));
    store.detachLease(network, family, ip, now);
  }

  attachLease(network: string, family: Family, ip: bigint, containerId: string, ifname: string, netns: string | null): void {
    const store = this.writes(network);
    if (!this.capture) return store.attachLease(network, family, ip, containerId, ifname, netns);
    // Attached here now: the lease's node becomes this one (a stateful app moved to this node).
    const before = store.leaseAt(network, family, ip);
    if (!before) return;
    this.dirty(this.mirror!.layout.lease(network, family, ip));
    store.deleteLease(network, family, ip);
    store.insertLease({ ...before, containerId, ifname, netns, detachedAt: null, node: this.node });
  }

  bindLease(network: string, family: Family, ip: bigint, binding: LeaseBinding): void {
    const store = this.writes(network);
    if (this.capture) this.dirty(this.mirror!.layout.lease(network, family, ip));
    store.bindLease(network, family, ip, binding);
  }

  // --- StatefulSets: facts of the Kubernetes API, kept on this node ---------------------------

  putStatefulSet(record: StatefulSetRecord): void {
    if (this.capture) this.capture.effects.unshift(() => this.local.putStatefulSet(record));
    else this.local.putStatefulSet(record);
  }

  getStatefulSet(uid: string): StatefulSetRecord | undefined {
    return this.local.getStatefulSet(uid);
  }

  listStatefulSets(): StatefulSetRecord[] {
    return this.local.listStatefulSets();
  }

  deleteStatefulSet(uid: string): void {
    if (this.capture) this.capture.effects.unshift(() => this.local.deleteStatefulSet(uid));
    else this.local.deleteStatefulSet(uid);
  }

  // --- cursors -----------------------------------------------------------------------------

  getCursor(network: string, setKey: string): bigint | undefined {
    if (!this.isCluster(network) && this.capture?.network !== network) return this.local.getCursor(network, setKey);
    const key = `${network}\u0000${setKey}`;
    return this.capture?.cursors.get(key) ?? this.cursors.get(key) ?? seededCursor(setKey, `${this.node}${this.salts.get(network) ?? ''}`);
  }

  /**
   * This node lost a race for an IP of the network: another node allocates next to its cursor.
   * Start again at a random point of each range set, away from the other's frontier (in a
   * sparse network two nodes then rarely meet again; in a full one they still find what is free).
   */
  scatterCursors(network: string): void {
    for (const key of [...this.cursors.keys()]) if (key.startsWith(`${network}\u0000`)) this.cursors.delete(key);
    this.salts.set(network, `#${Math.random().toString(36).slice(2)}`);
  }

  setCursor(network: string, setKey: string, family: Family, ip: bigint): void {
    if (this.capture?.network !== network) return this.writes(network).setCursor(network, setKey, family, ip);
    this.capture.cursors.set(`${network}\u0000${setKey}`, ip);
  }

  /** A committed cluster batch's cursors become this node's. */
  keepCursors(cursors: ReadonlyMap<string, bigint>): void {
    for (const [key, ip] of cursors) this.cursors.set(key, ip);
  }

  // --- reserved entries --------------------------------------------------------------------

  listReserved(network: string): ReservedRecord[] {
    return this.reads(network).listReserved(network);
  }

  reservedCovering(network: string, family: Family, x: bigint): ReservedRecord | undefined {
    return this.reads(network).reservedCovering(network, family, x);
  }

  insertReserved(record: Omit<ReservedRecord, 'id'>, now: number): void {
    const store = this.writes(record.network);
    if (this.capture) this.dirty(this.mirror!.layout.reserved(record.network, record.family, record.start));
    store.insertReserved(record, now);
  }

  updateReserved(id: number, record: Omit<ReservedRecord, 'id' | 'network' | 'source'>): void {
    if (!this.capture) return this.local.updateReserved(id, record);
    const before = this.reservedById(id);
    if (before) {
      this.dirty(this.mirror!.layout.reserved(before.network, before.family, before.start));
      this.dirty(this.mirror!.layout.reserved(before.network, record.family, record.start));
    }
    this.mirror!.store.updateReserved(id, record);
  }

  deleteReserved(id: number): void {
    if (!this.capture) return this.local.deleteReserved(id);
    const before = this.reservedById(id);
    if (before) this.dirty(this.mirror!.layout.reserved(before.network, before.family, before.start));
    this.mirror!.store.deleteReserved(id);
  }

  /** Ids of a cluster batch are the mirror's (a unit reads an entry, then changes it by id); a batch changes its own network only. */
  private reservedById(id: number): ReservedRecord | undefined {
    return this.mirror!.store.listReserved(this.capture!.network).find((r) => r.id === id);
  }

  // --- history: this node's account, always in SQLite ----------------------------------------

  appendHistory(event: Omit<HistoryRecord, 'id'>): number {
    if (!this.capture) return this.local.appendHistory(event);
    const placeholder = --this.placeholder;
    this.capture.history.push({ placeholder, line: event });
    return placeholder;
  }

  /** Write a committed batch's history (in a SQLite transaction of the caller's). */
  writeHistory(lines: Capture['history']): void {
    for (const { placeholder, line } of lines) this.resolved.set(placeholder, this.local.appendHistory(line));
  }

  historyId(id: number): number {
    if (id >= 0) return id;
    const real = this.resolved.get(id);
    this.resolved.delete(id);
    return real ?? id;
  }

  history(network: string | undefined, ip: { family: Family; ip: bigint } | undefined, limit: number, before?: number): HistoryRecord[] {
    return this.local.history(network, ip, limit, before);
  }

  pruneHistory(before: number, keep: number, chunk: number): number {
    return this.local.pruneHistory(before, keep, chunk);
  }

  backupTo(path: string): Promise<void> {
    return this.local.backupTo(path);
  }

  close(): void {
    this.local.close();
    this.mirror?.close();
  }
}

/**
 * Where a node's round-robin starts in a range set it has not allocated from yet: a point given
 * by a hash of its name, so nodes start apart and rarely want the same free IP at the same time.
 * Only a hint: every claim is a compare-and-swap, whoever's cursor is where.
 */
export function seededCursor(setKey: string, node: string): bigint | undefined {
  const colon = setKey.indexOf(':');
  const familyText = setKey.slice(0, colon);
  const first = setKey.slice(colon + 1).split(',')[0];
  if (!first || (familyText !== '4' && familyText !== '6')) return undefined;
  const dash = first.lastIndexOf('-');
  try {
    const start = parseIp(first.slice(0, dash)).value;
    const end = parseIp(first.slice(dash + 1)).value;
    const size = end - start + 1n;
    if (size <= 1n) return undefined;
    let hash = 2166136261;
    for (let i = 0; i < node.length; i++) hash = Math.imul(hash ^ node.charCodeAt(i), 16777619) >>> 0;
    // FNV-1a alone puts names that differ in their last letter (node-1, node-2) close together: mix
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b) >>> 0;
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35) >>> 0;
    hash ^= hash >>> 16;
    hash >>>= 0;
    return start + (BigInt(hash) % size);
  } catch {
    return undefined;
  }
}
