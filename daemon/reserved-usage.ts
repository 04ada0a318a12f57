// How much of a network's reserved space is free: reserved addresses that hold no lease. One
// definition for `reservoirctl usage` and the POOL_EXHAUSTED message, so the two always agree.
// Counts per entry through the store's lease count (no walk over the addresses of big entries).
import type { RangeSet } from '../src/config.js';
import type { ReservedRecord, Store } from './store.js';

export interface ReservedUsage {
  /** Addresses the entries cover. */
  readonly total: bigint;
  /** Of those, addresses that hold a lease (attached or held). */
  readonly used: number;
  /** total - used */
  readonly free: bigint;
}

/** Size, leased and free addresses of the given reserved entries (each entry counted once). */
export function reservedUsage(store: Store, network: string, entries: readonly ReservedRecord[]): ReservedUsage {
  let total = 0n;
  let used = 0;
  for (const entry of entries) {
    total += entry.end - entry.start + 1n;
    used += store.countLeasesBetween(network, entry.family, entry.start, entry.end);
  }
  return { total, used, free: total - BigInt(used) };
}

/** The entries that touch a range set: same family, overlapping at least one of its ranges. */
export function entriesInRangeSet(entries: readonly ReservedRecord[], set: RangeSet): ReservedRecord[] {
  return entries.filter((entry) => entry.family === set.family && set.ranges.some((range) => entry.start <= range.end && range.start <= entry.end));
}
