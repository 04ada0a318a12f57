// The allocator decides; it never reads or writes the store. Everything it must avoid (leased
// IPs, reserved entries) reaches it as exclusion sets that answer one question: "which excluded
// interval covers x?". Each answer lets the search jump a whole interval, so finding the next
// free IP costs the number of intervals crossed, not the number of addresses: a /8 with 100,000
// leases or an IPv6 /64 costs what an empty /24 costs.
import type { Family, Ip } from '../src/address.js';
import { formatValue } from '../src/address.js';
import type { IpRange, RangeSet } from '../src/config.js';
import { describeRange } from '../src/config.js';

export interface Span {
  readonly start: bigint;
  readonly end: bigint;
}

export interface ExclusionSet {
  /** The excluded interval (inclusive) that contains x, if any. */
  covering(family: Family, x: bigint): Span | undefined;
}

/** The smallest address in [from, to] that no exclusion covers and that is not the range's gateway. */
export function firstFree(range: IpRange, from: bigint, to: bigint, exclusions: readonly ExclusionSet[]): bigint | undefined {
  const family = range.subnet.family;
  let x = from < range.start ? range.start : from;
  const last = to > range.end ? range.end : to;
  search: while (x <= last) {
    if (x === range.gateway) {
      x += 1n;
      continue;
    }
    for (const exclusion of exclusions) {
      const span = exclusion.covering(family, x);
      if (span) {
        x = span.end + 1n;
        continue search;
      }
    }
    return x;
  }
  return undefined;
}

export interface Allocation {
  readonly value: bigint;
  readonly rangeIndex: number;
}

/**
 * Round-robin inside a range set: start just after the last allocated address, walk to the end
 * of its range, through the following ranges, wrap to the first, and finish just before where
 * it began. A just-freed IP is thus reused only after the whole set has been walked.
 */
export function allocateNext(set: RangeSet, lastAllocated: bigint | undefined, exclusions: readonly ExclusionSet[]): Allocation | undefined {
  const ranges = set.ranges;
  const home = lastAllocated === undefined ? -1 : ranges.findIndex((r) => r.start <= lastAllocated && lastAllocated <= r.end);
  if (home < 0) {
    for (let i = 0; i < ranges.length; i++) {
      const value = firstFree(ranges[i]!, ranges[i]!.start, ranges[i]!.end, exclusions);
      if (value !== undefined) return { value, rangeIndex: i };
    }
    return undefined;
  }
  const cursor = lastAllocated!;
  const homeRange = ranges[home]!;
  const after = firstFree(homeRange, cursor + 1n, homeRange.end, exclusions);
  if (after !== undefined) return { value: after, rangeIndex: home };
  for (let step = 1; step < ranges.length; step++) {
    const i = (home + step) % ranges.length;
    const value = firstFree(ranges[i]!, ranges[i]!.start, ranges[i]!.end, exclusions);
    if (value !== undefined) return { value, rangeIndex: i };
  }
  const before = firstFree(homeRange, homeRange.start, cursor, exclusions);
  return before === undefined ? undefined : { value: before, rangeIndex: home };
}

/** Why a requested IP cannot come from this range set, or the index of the range it belongs to. */
export type Placement = { readonly rangeIndex: number } | { readonly problem: string };

export function placeRequested(set: RangeSet, ip: Ip): Placement {
  if (ip.family !== set.family) return { problem: `${formatValue(ip.family, ip.value)} is IPv${ip.family}; this range set is IPv${set.family}` };
  const text = formatValue(ip.family, ip.value);
  // Several ranges may share one subnet (10.0.0.10-20 and 10.0.0.30-40 of 10.0.0.0/24): an IP
  // outside one of them may still lie in another, so only the gateway ends the search early.
  let problem: string | undefined;
  for (let i = 0; i < set.ranges.length; i++) {
    const range = set.ranges[i]!;
    const subnetLast = range.subnet.network | ((1n << BigInt((ip.family === 4 ? 32 : 128) - range.subnet.prefix)) - 1n);
    if (ip.value < range.subnet.network || ip.value > subnetLast) continue;
    if (ip.value === range.gateway) return { problem: `${text} is the gateway of ${describeRange(range)}` };
    if (ip.value === range.subnet.network) problem ??= `${text} is the network address of its subnet`;
    else if (ip.family === 4 && ip.value === subnetLast) problem ??= `${text} is the broadcast address of its subnet`;
    else if (ip.value < range.start) problem ??= `${text} comes before rangeStart of ${describeRange(range)}`;
    else if (ip.value > range.end) problem ??= `${text} comes after rangeEnd of ${describeRange(range)}`;
    else return { rangeIndex: i };
  }
  return { problem: problem ?? `${text} is in none of the ranges ${set.ranges.map(describeRange).join(', ')}` };
}

/** Exclusions over a sorted, non-overlapping list of spans held in memory (tests, reserved groups). */
export class SpanList implements ExclusionSet {
  private readonly spans: Span[];
  constructor(
    private readonly family: Family,
    spans: readonly Span[],
  ) {
    this.spans = [...spans].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  covering(family: Family, x: bigint): Span | undefined {
    if (family !== this.family) return undefined;
    let lo = 0;
    let hi = this.spans.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const span = this.spans[mid]!;
      if (x < span.start) hi = mid - 1;
      else if (x > span.end) lo = mid + 1;
      else return span;
    }
    return undefined;
  }
}
