// Leaks: a container that died without DEL (or a node that rebooted) leaves a lease whose
// network namespace no longer exists. After a grace period such a lease is released as DEL
// would release it: a stateless IP is freed, a stateful one stays held for its app.
import { existsSync } from 'node:fs';
import { formatValue } from '../src/address.js';
import type { CniService } from './cni-service.js';
import type { Logger } from './log.js';
import type { Networks } from './networks.js';
import type { Store } from './store.js';

export class NetnsReconciler {
  /** When each lease was first seen without its namespace, by "network|family|ip". */
  private readonly missingSince = new Map<string, number>();
  /** Leases released since start, for the health endpoint and the logs. */
  reclaimed = 0;

  constructor(
    private readonly store: Store,
    private readonly networks: Networks,
    private readonly cni: CniService,
    private readonly log: Logger,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
    private readonly netnsExists: (path: string) => boolean = existsSync,
  ) {}

  /** One pass; run it inside the write queue. Returns how many leases it released. */
  sweep(): number {
    const now = this.now();
    const seen = new Set<string>();
    let released = 0;
    for (const network of this.networks.names()) {
      for (const lease of this.store.attachedLeases(network)) {
        if (lease.netns === null || this.netnsExists(lease.netns)) continue;
        const key = `${network}|${lease.family}|${lease.ip}`;
        seen.add(key);
        const since = this.missingSince.get(key) ?? now;
        this.missingSince.set(key, since);
        if (now - since < this.graceMs) continue;
        this.cni.release(lease);
        this.missingSince.delete(key);
        released++;
        this.log.info('released a lease whose network namespace is gone', {
          network,
          ip: formatValue(lease.family, lease.ip),
          container: lease.containerId,
          netns: lease.netns,
          kind: lease.kind,
          missingForMs: now - since,
        });
      }
    }
    for (const key of this.missingSince.keys()) if (!seen.has(key)) this.missingSince.delete(key);
    this.reclaimed += released;
    if (released > 0) this.log.info('reconcile pass', { released, totalReclaimed: this.reclaimed });
    return released;
  }
}
