// Who holds what: the words every "in use" error and listing uses, and the search for free
// reserved IPs that errors offer as alternatives. Shared by the CNI and operator services.
import { type Family, formatValue } from '../src/address.js';
import type { ExclusionSet } from './allocator.js';
import type { LeaseRecord, ReservedRecord, Store } from './store.js';

export function describeLease(lease: LeaseRecord): string {
  if (lease.containerId !== null) {
    const app = lease.app ? `, app ${lease.app} (${lease.kind})` : '';
    const node = lease.node ? ` on node ${lease.node}` : '';
    return `container ${lease.containerId.slice(0, 12)} ifname ${lease.ifname}${node}${app}`;
  }
  return `stateful app ${lease.app} (held, no container attached)`;
}

/** Leased and reserved addresses as exclusion sets for the allocator, read through the store. */
export function exclusionsOf(store: Store, network: string): { leased: ExclusionSet; reserved: ExclusionSet } {
  return {
    leased: { covering: (family, x) => store.occupiedCovering(network, family, x) },
    reserved: { covering: (family, x) => store.reservedCovering(network, family, x) },
  };
}

/** Up to `limit` holders of addresses in [start, end], described. */
export function holdersBetween(store: Store, network: string, family: Family, start: bigint, end: bigint, limit = 20): string[] {
  const leases = store.leasesBetween(network, family, start, end, limit + 1);
  const described = leases.slice(0, limit).map((l) => `${formatValue(l.family, l.ip)} (${describeLease(l)})`);
  if (leases.length > limit) described.push(`and ${store.countLeasesBetween(network, family, start, end) - limit} more`);
  return described;
}

/** Free addresses of the given reserved entries, in order, at most `limit`. Jumps over leased runs. */
export function freeReservedIps(store: Store, network: string, entries: readonly ReservedRecord[], limit: number): Array<{ family: Family; value: bigint; entry: ReservedRecord }> {
  const found: Array<{ family: Family; value: bigint; entry: ReservedRecord }> = [];
  for (const entry of entries) {
    let x = entry.start;
    while (x <= entry.end && found.length < limit) {
      const run = store.occupiedCovering(network, entry.family, x);
      if (run) {
        x = run.end + 1n;
        continue;
      }
      found.push({ family: entry.family, value: x, entry });
      x += 1n;
    }
    if (found.length >= limit) break;
  }
  return found;
}

export function sameGroup(entries: readonly ReservedRecord[], group: string | null): ReservedRecord[] {
  return entries.filter((entry) => entry.group === group);
}
