// A Store that runs every unit of work twice: once rehearsed (run, then rolled back, its
// onCommit effects and commitRegardless writes dropped) and once for real, as a store that
// retries a unit after a conflict does. Wrapped around any Store (startDaemon's wrapStore
// option), it shows what a unit does besides writing to the store: whatever a rehearsal left
// behind (a log line, a count, an in-memory record) shows twice. It also compares the two runs:
// a unit must answer the same (value or error) both times; differences go to `mismatches`.
import { inspect } from 'node:util';
import type { Family } from '../../src/address.js';
import type { Span } from '../../daemon/allocator.js';
import type {
  HistoryRecord,
  LeaseBinding,
  LeasePosition,
  LeaseRecord,
  NetworkRecord,
  ReservedRecord,
  StatefulSetRecord,
  Store,
} from '../../daemon/store.js';

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

const ROLLBACK = Symbol('rerun-store: rehearsal rolled back');

export class RerunStore implements Store {
  /** Units rehearsed, and effects and commitRegardless writes a rehearsal asked for (dropped). */
  readonly stats = { units: 0, droppedEffects: 0, droppedRegardless: 0 };
  /** Units whose two runs answered differently: "rehearsal: ... / real run: ...". */
  readonly mismatches: string[] = [];
  private depth = 0;
  private rehearsing = false;

  constructor(readonly inner: Store) {}

  transaction<T>(fn: () => T): T {
    if (this.depth > 0) return this.nested(() => this.inner.transaction(fn));
    this.stats.units++;
    const first = this.nested(() => this.rehearse(fn));
    const second = this.nested((): Outcome => {
      try {
        return { ok: true, value: this.inner.transaction(fn) };
      } catch (error) {
        return { ok: false, error };
      }
    });
    const [a, b] = [describe(first), describe(second)];
    if (a !== b) this.mismatches.push(`rehearsal: ${a} / real run: ${b}`);
    if (!second.ok) throw second.error;
    return second.value as T;
  }

  batch(units: ReadonlyArray<() => void>): void {
    this.inner.batch(units);
  }

  onCommit(effect: () => void): void {
    if (this.rehearsing) this.stats.droppedEffects++;
    else this.inner.onCommit(effect);
  }

  commitRegardless(write: () => void): void {
    if (this.rehearsing) this.stats.droppedRegardless++;
    else this.inner.commitRegardless(write);
  }

  private nested<T>(run: () => T): T {
    this.depth++;
    try {
      return run();
    } finally {
      this.depth--;
    }
  }

  /** Run fn in a transaction of the inner store and roll it back, whatever fn did. */
  private rehearse(fn: () => unknown): Outcome {
    let outcome: Outcome | undefined;
    this.rehearsing = true;
    try {
      this.inner.transaction(() => {
        try {
          outcome = { ok: true, value: fn() };
        } catch (error) {
          outcome = { ok: false, error };
        }
        throw ROLLBACK;
      });
    } catch (error) {
      if (error !== ROLLBACK) outcome = { ok: false, error };
    } finally {
      this.rehearsing = false;
    }
    return outcome!;
  }

  getNetwork(name: string): NetworkRecord | undefined {
    return this.inner.getNetwork(name);
  }
  putNetwork(name: string, ipam: string, now: number, file?: string | null): void {
    this.inner.putNetwork(name, ipam, now, file);
  }
  setReservedConflicts(name: string, conflicts: readonly string[]): void {
    this.inner.setReservedConflicts(name, conflicts);
  }
  listNetworks(): NetworkRecord[] {
    return this.inner.listNetworks();
  }
  leasesOfAttachment(network: string, containerId: string, ifname: string): LeaseRecord[] {
    return this.inner.leasesOfAttachment(network, containerId, ifname);
  }
  leasesOfApp(network: string, app: string): LeaseRecord[] {
    return this.inner.leasesOfApp(network, app);
  }
  leaseAt(network: string, family: Family, ip: bigint): LeaseRecord | undefined {
    return this.inner.leaseAt(network, family, ip);
  }
  leasesBetween(network: string, family: Family, start: bigint, end: bigint, limit: number): LeaseRecord[] {
    return this.inner.leasesBetween(network, family, start, end, limit);
  }
  countLeasesBetween(network: string, family: Family, start: bigint, end: bigint): number {
    return this.inner.countLeasesBetween(network, family, start, end);
  }
  leaseCountsBetween(network: string, family: Family, start: bigint, end: bigint): { total: number; held: number } {
    return this.inner.leaseCountsBetween(network, family, start, end);
  }
  leasesAfter(network: string | undefined, after: LeasePosition | undefined, limit: number): LeaseRecord[] {
    return this.inner.leasesAfter(network, after, limit);
  }
  countLeases(network: string | undefined): { total: number; held: number } {
    return this.inner.countLeases(network);
  }
  attachedLeases(network: string): LeaseRecord[] {
    return this.inner.attachedLeases(network);
  }
  attachedLeasesAfter(network: string, after: { family: Family; ip: bigint } | undefined, limit: number): LeaseRecord[] {
    return this.inner.attachedLeasesAfter(network, after, limit);
  }
  detachedBefore(network: string, cutoff: number): LeaseRecord[] {
    return this.inner.detachedBefore(network, cutoff);
  }
  insertLease(lease: LeaseRecord): void {
    this.inner.insertLease(lease);
  }
  deleteLease(network: string, family: Family, ip: bigint): void {
    this.inner.deleteLease(network, family, ip);
  }
  detachLease(network: string, family: Family, ip: bigint, now: number): void {
    this.inner.detachLease(network, family, ip, now);
  }
  attachLease(network: string, family: Family, ip: bigint, containerId: string, ifname: string, netns: string | null): void {
    this.inner.attachLease(network, family, ip, containerId, ifname, netns);
  }
  bindLease(network: string, family: Family, ip: bigint, binding: LeaseBinding): void {
    this.inner.bindLease(network, family, ip, binding);
  }
  leasesOfOwner(ownerUid: string): LeaseRecord[] {
    return this.inner.leasesOfOwner(ownerUid);
  }
  putStatefulSet(record: StatefulSetRecord): void {
    this.inner.putStatefulSet(record);
  }
  getStatefulSet(uid: string): StatefulSetRecord | undefined {
    return this.inner.getStatefulSet(uid);
  }
  listStatefulSets(): StatefulSetRecord[] {
    return this.inner.listStatefulSets();
  }
  deleteStatefulSet(uid: string): void {
    this.inner.deleteStatefulSet(uid);
  }
  occupiedCovering(network: string, family: Family, x: bigint): Span | undefined {
    return this.inner.occupiedCovering(network, family, x);
  }
  getCursor(network: string, setKey: string): bigint | undefined {
    return this.inner.getCursor(network, setKey);
  }
  setCursor(network: string, setKey: string, family: Family, ip: bigint): void {
    this.inner.setCursor(network, setKey, family, ip);
  }
  listReserved(network: string): ReservedRecord[] {
    return this.inner.listReserved(network);
  }
  reservedCovering(network: string, family: Family, x: bigint): ReservedRecord | undefined {
    return this.inner.reservedCovering(network, family, x);
  }
  insertReserved(record: Omit<ReservedRecord, 'id'>, now: number): void {
    this.inner.insertReserved(record, now);
  }
  updateReserved(id: number, record: Omit<ReservedRecord, 'id' | 'network' | 'source'>): void {
    this.inner.updateReserved(id, record);
  }
  deleteReserved(id: number): void {
    this.inner.deleteReserved(id);
  }
  appendHistory(event: Omit<HistoryRecord, 'id'>): number {
    return this.inner.appendHistory(event);
  }
  historyId(id: number): number {
    return this.inner.historyId ? this.inner.historyId(id) : id;
  }
  refusalRestsOn(network: string, ips: ReadonlyArray<{ family: Family; ip: bigint }>): void {
    this.inner.refusalRestsOn?.(network, ips);
  }
  history(network: string | undefined, ip: { family: Family; ip: bigint } | undefined, limit: number, before?: number): HistoryRecord[] {
    return this.inner.history(network, ip, limit, before);
  }
  pruneHistory(before: number, keep: number, chunk: number): number {
    return this.inner.pruneHistory(before, keep, chunk);
  }
  backupTo(path: string): Promise<void> {
    return this.inner.backupTo(path);
  }
  close(): void {
    this.inner.close();
  }
}

/** An outcome as text: a value without its functions (bigints as numbers), or an error's class, code and message. */
function describe(outcome: Outcome): string {
  if (outcome.ok) return `value ${JSON.stringify(outcome.value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'function' ? '[function]' : v)) ?? 'undefined'}`;
  const error = outcome.error;
  return error instanceof Error ? `error ${error.name} ${(error as { codeName?: string }).codeName ?? ''} ${error.message}` : `thrown ${inspect(error)}`;
}
