// Build the daemon from its parts (fastify's build/listen split): tests call buildDaemon with a
// temp socket and a temp SQLite file; cmd/reservoird.ts only parses flags and calls it.
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { CniService } from './cni-service.js';
import { watchConfigDir } from './config-dir.js';
import { holdersBetween } from './holders.js';
import { type Logger, silentLogger } from './log.js';
import { NetnsView } from './netns-view.js';
import { Networks } from './networks.js';
import { OperatorService } from './operator-service.js';
import { createApiServer } from './server.js';
import { NetnsReconciler } from './reconciler.js';
import { prepareSocketPath, secureSocket } from './socket.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './store.js';
import { WriteQueue } from './write-queue.js';

export const VERSION = '0.1.0';
export const DEFAULT_RECLAIM_GRACE_MS = 60_000;

export interface DaemonOptions {
  readonly socket: string;
  readonly dbPath: string;
  readonly stateDir: string;
  /** CNI config directory to learn networks from; undefined disables it. */
  readonly cniConfDir?: string | undefined;
  readonly socketGid?: number | undefined;
  readonly log?: Logger;
  readonly now?: () => number;
  /** How often holds expire and leases are reconciled (ms). */
  readonly sweepIntervalMs?: number;
  /** How long a lease's network namespace may be missing before the lease is released; 0 = never. */
  readonly reclaimGraceMs?: number;
  readonly nativeBinding?: string | object;
  /** What the daemon can see of the runtime's network namespaces (tests inject a probe). */
  readonly netns?: NetnsView;
}

export interface Daemon {
  readonly server: Server;
  readonly store: Store;
  readonly cni: CniService;
  readonly operator: OperatorService;
  readonly queue: WriteQueue;
  readonly reconciler: NetnsReconciler | undefined;
  close(): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const log = options.log ?? silentLogger;
  const now = options.now ?? Date.now;
  mkdirSync(options.stateDir, { recursive: true, mode: 0o750 });
  const store = SqliteStore.open({ path: options.dbPath, ...(options.nativeBinding ? { nativeBinding: options.nativeBinding } : {}) });
  const networks = new Networks(store, log, (network, family, start, end) => holdersBetween(store, network, family, start, end));
  const netns = options.netns ?? new NetnsView(log);
  const cni = new CniService(store, networks, log, netns, now);
  const operator = new OperatorService(store, networks, log, now);
  const queue = new WriteQueue(store);

  const graceMs = options.reclaimGraceMs ?? DEFAULT_RECLAIM_GRACE_MS;
  const reconciler = graceMs > 0 ? new NetnsReconciler(store, networks, cni, log, netns, graceMs, now) : undefined;
  const server = createApiServer({
    cni,
    operator,
    queue,
    store,
    log,
    version: VERSION,
    stateDir: options.stateDir,
    reclaimed: () => reconciler?.reclaimed ?? 0,
    netns: () => netns.roots(),
  });

  await prepareSocketPath(options.socket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  secureSocket(options.socket, options.socketGid);

  const stopWatching = options.cniConfDir ? watchConfigDir(options.cniConfDir, networks, queue, log, now) : () => undefined;
  let reconciling = false;
  const sweep = setInterval(() => {
    queue.run(() => operator.expireHolds()).catch((err: unknown) => log.error('hold expiry failed', { error: String(err) }));
    if (reconciler && !reconciling) {
      reconciling = true;
      reconciler
        .sweep((fn) => queue.run(fn))
        .catch((err: unknown) => log.error('reconcile failed', { error: String(err) }))
        .finally(() => {
          reconciling = false;
        });
    }
  }, options.sweepIntervalMs ?? Math.min(30_000, Math.max(1_000, graceMs / 2)));
  sweep.unref();

  log.info('reservoird listening', { socket: options.socket, db: options.dbPath, version: VERSION });
  return {
    server,
    store,
    cni,
    operator,
    queue,
    reconciler,
    async close() {
      clearInterval(sweep);
      stopWatching();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      store.close();
    },
  };
}
