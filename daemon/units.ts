// Where a unit of store work runs: node-scope networks through the write queue (SQLite, group
// commit), cluster networks through their optimistic etcd batches (cluster/units.ts). Callers
// say which network a unit is about; the rest is decided here.
import type { NetworkScope } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type { ClusterUnits } from './cluster/units.js';
import type { RoutingStore } from './cluster/routing-store.js';
import type { UnitOptions as QueueOptions, WriteQueue } from './write-queue.js';

export interface UnitOptions<T> extends QueueOptions<T> {
  /** The scope the request's config gives (a cluster network's first ADD is not in etcd yet). */
  readonly scope?: NetworkScope | undefined;
  /** A cluster network's answer from this node's journal when etcd cannot be reached (DEL, CHECK). */
  readonly offline?: (() => T) | undefined;
}

export class Units {
  constructor(
    private readonly queue: WriteQueue,
    private readonly cluster: { readonly units: ClusterUnits; readonly routing: RoutingStore } | undefined,
  ) {}

  /** Whether a unit of this network (with this request scope) runs on etcd. */
  isCluster(network: string | undefined, scope?: NetworkScope): boolean {
    if (network === undefined || !this.cluster) return false;
    return scope === 'cluster' || this.cluster.routing.isCluster(network);
  }

  run<T>(network: string | undefined, fn: () => T, options: UnitOptions<T> = {}): Promise<T> {
    if (this.isCluster(network, options.scope)) return this.cluster!.units.run(network!, fn, { deadline: options.deadline, offline: options.offline });
    return this.queue.run(fn, { deadline: options.deadline, undo: options.undo });
  }

  /** A cluster network's ADD on a daemon without etcd: refused, saying what to change. */
  refuseWithoutEtcd(network: string, scope: NetworkScope): void {
    if (scope === 'cluster' && !this.cluster) {
      throw new ReservoirError(
        'INVALID_CONFIG',
        `invalid config: network "${network}" has "scope": "cluster", but this reservoird runs without etcd; start it with --etcd-endpoints (and the same --etcd-prefix as the other nodes), or make the network "scope": "node"`,
      );
    }
  }

  get stats(): WriteQueue['stats'] {
    return this.queue.stats;
  }
}
