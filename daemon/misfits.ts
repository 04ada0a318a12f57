// Leases that no longer fit their network's config, found through the store: each place a misfit
// can be (network-change.ts misfitSpans) is one index range, so counting and listing them costs
// the number of misfits, not the number of leases.
import type { IpamConfig } from '../src/config.js';
import { fitOf, misfitSpans } from './network-change.js';
import type { LeaseRecord, Store } from './store.js';

export interface Misfit {
  readonly lease: LeaseRecord;
  readonly reason: string;
}

export function countMisfits(store: Store, network: string, config: IpamConfig): number {
  let count = 0;
  for (const span of misfitSpans(config)) count += store.countLeasesBetween(network, span.family, span.start, span.end);
  return count;
}

/** Up to `limit` misfits of a network, in address order within what was found. */
export function findMisfits(store: Store, network: string, config: IpamConfig, limit: number): Misfit[] {
  const found: Misfit[] = [];
  for (const span of misfitSpans(config)) {
    if (found.length >= limit) break;
    for (const lease of store.leasesBetween(network, span.family, span.start, span.end, limit - found.length)) {
      const fit = fitOf(config, lease.family, lease.ip);
      if (!fit.fits) found.push({ lease, reason: fit.reason });
    }
  }
  return found.sort((a, b) => a.lease.family - b.lease.family || (a.lease.ip < b.lease.ip ? -1 : a.lease.ip > b.lease.ip ? 1 : 0));
}
