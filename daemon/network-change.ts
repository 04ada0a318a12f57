// How a network's config meets the leases it already has, and a request's config the one that
// governs: pure, no store. A range set is known by its content, never by its position in
// `ranges` (configs get reordered for dual-stack, a set gets inserted in front): a lease belongs
// to the set whose ranges hold its address, and a lease that no set holds, or that became a
// gateway, no longer fits ("misfit") and is reported instead of being answered with a made-up
// prefix or gateway.
import { type Family, cidrContains, familyBits, formatCidr, formatValue } from '../src/address.js';
import type { IpRange, IpamConfig, RangeSet } from '../src/config.js';
import { describeRange, show } from '../src/config.js';

export type LeaseFit =
  | { readonly fits: true; readonly setIndex: number; readonly range: IpRange }
  | { readonly fits: false; readonly reason: string };

/** Where an address stands in a config: inside an allocatable range of one set, or why not. */
export function fitOf(config: IpamConfig, family: Family, ip: bigint): LeaseFit {
  const ranges = config.rangeSets.flatMap((set) => set.ranges).filter((r) => r.subnet.family === family);
  const gatewayOf = ranges.find((r) => r.gateway === ip && cidrContains(r.subnet, { family, value: ip }));
  if (gatewayOf) return { fits: false, reason: `it is now the gateway of ${formatCidr(gatewayOf.subnet)}` };
  for (const [setIndex, set] of config.rangeSets.entries()) {
    const range = set.ranges.find((r) => r.subnet.family === family && r.start <= ip && ip <= r.end);
    if (range) return { fits: true, setIndex, range };
  }
  const subnet = ranges.find((r) => cidrContains(r.subnet, { family, value: ip }));
  if (subnet) {
    const inSubnet = ranges.filter((r) => formatCidr(r.subnet) === formatCidr(subnet.subnet)).map(describeRange);
    return { fits: false, reason: `it lies in ${formatCidr(subnet.subnet)} but outside its allocatable range ${inSubnet.join(', ')}` };
  }
  const subnets = [...new Set(config.rangeSets.flatMap((set) => set.ranges.map((r) => formatCidr(r.subnet))))];
  return { fits: false, reason: `it lies in no subnet of the config (${subnets.join(', ')})` };
}

/** A range set's identity: its family and ranges, in order of address (positions do not count). */
export function rangeSetKey(set: RangeSet): string {
  const ranges = [...set.ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return `${set.family}:${ranges.map((r) => `${formatValue(set.family, r.start)}-${formatValue(set.family, r.end)}`).join(',')}`;
}

/**
 * Where a misfit can be: every address outside the config's allocatable ranges (per family, the
 * gaps between them and around them), plus each gateway that lies inside a range. The store
 * answers "leases in this span" with an index seek, so finding misfits never walks the leases
 * that fit.
 */
export function misfitSpans(config: IpamConfig): Array<{ family: Family; start: bigint; end: bigint }> {
  const spans: Array<{ family: Family; start: bigint; end: bigint }> = [];
  for (const family of [4, 6] as const) {
    const ranges = config.rangeSets
      .flatMap((set) => set.ranges)
      .filter((r) => r.subnet.family === family)
      .sort((a, b) => (a.start < b.start ? -1 : 1));
    let next = 0n;
    for (const range of ranges) {
      if (range.start > next) spans.push({ family, start: next, end: range.start - 1n });
      if (range.end + 1n > next) next = range.end + 1n;
    }
    const last = (1n << BigInt(familyBits(family))) - 1n;
    if (next <= last) spans.push({ family, start: next, end: last });
    const inRange = (x: bigint) => ranges.some((r) => r.start <= x && x <= r.end);
    const gateways = new Set(ranges.map((r) => r.gateway).filter((g): g is bigint => g !== undefined && inRange(g)));
    for (const gateway of [...gateways].sort((a, b) => (a < b ? -1 : 1))) spans.push({ family, start: gateway, end: gateway });
  }
  return spans;
}

/**
 * How a request's ipam differs from the one that governs the network (the file's), key by key,
 * ignoring the order of keys in objects; empty when they mean the same.
 */
export function configDifferences(governing: Record<string, unknown>, request: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(governing), ...Object.keys(request)])].sort();
  const differences: string[] = [];
  for (const key of keys) {
    if (canonical(governing[key]) === canonical(request[key])) continue;
    differences.push(`ipam.${key}: the file has ${show(governing[key])}, the request ${show(request[key])}`);
  }
  return differences;
}

function canonical(value: unknown): string {
  if (value === undefined) return 'undefined';
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
