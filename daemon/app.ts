// Build the daemon from its parts (fastify's build/listen split): tests call buildDaemon with a
// temp socket and a temp SQLite file; cmd/reservoird.ts only parses flags and calls it.
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { CniService } from './cni-service.js';
import { watchConfigDir } from './config-dir.js';
import { DEFAULT_HISTORY_DAYS, DEFAULT_HISTORY_EVENTS, type HttpListen } from './flags.js';
import { InstallError, installConflist, installPluginFiles } from './install-cni.js';
import { Ledger } from './ledger.js';
import { type Logger, silentLogger } from './log.js';
import { KubeIntegration, type KubeOptions } from './kube/integration.js';
import { NetnsView } from './netns-view.js';
import { Metrics } from './metrics.js';
import { Networks } from './networks.js';
import { OperatorService } from './operator-service.js';
import { ReservedRules } from './reserved-rules.js';
import { createApiServer, removeLeftoverBackups } from './server.js';
import { NetnsReconciler } from './reconciler.js';
import { prepareSocketPath, secureSocket } from './socket.js';
import { type StatusServer, createStatusServer } from './status-http.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './store.js';
import { WriteQueue } from './write-queue.js';
import { Cluster } from './cluster/cluster.js';
import { ClusterService } from './cluster/cluster-service.js';
import { connectEtcd } from './cluster/etcd-kv.js';
import type { EtcdOptions } from './cluster/kv.js';
import { NodeReports, type NodeReportOptions } from './cluster/node-reports.js';
import { RoutingStore } from './cluster/routing-store.js';
import { Units } from './units.js';

export const VERSION = '0.1.0';
export const DEFAULT_RECLAIM_GRACE_MS = 60_000;
/** How often the cluster journal is reconciled with etcd when no reclaim grace paces it. */
const CLUSTER_RECONCILE_MS = 30_000;
/** History retention removes at most this many events per unit of work (a unit never stalls CNI calls for long). */
export const HISTORY_PRUNE_CHUNK = 5_000;

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
  /** This node's name, recorded as the node of every holder (default: the host name). */
  readonly nodeName?: string;
  /** Serve the read-only status page and /metrics over TCP here; undefined: no TCP at all. */
  readonly httpListen?: HttpListen | undefined;
  readonly historyMaxAgeMs?: number;
  readonly historyMaxEvents?: number;
  /** The Kubernetes integration (a kubeconfig or in cluster); undefined = off. */
  readonly kube?: KubeOptions | undefined;
  /** Install the plugin files of `fromDir` into `binDir` before serving (reservoird --install-cni). */
  readonly installCni?: { readonly fromDir: string; readonly binDir: string } | undefined;
  /** Install this conflist into cniConfDir once serving (reservoird --install-conflist). */
  readonly installConflist?: string | undefined;
  /** etcd for cluster networks (reservoird --etcd-*); undefined: node networks only. */
  readonly etcd?: EtcdOptions | undefined;
  /** Node reports in etcd for `check` across nodes: heartbeat, refresh, staleness, repair wait (tests shorten them). */
  readonly nodeReports?: NodeReportOptions | undefined;
  /** Tests, node scope: the store the services and the write queue use, around the SQLite one (test/support/rerun-store.ts runs every unit twice). */
  readonly wrapStore?: ((store: Store) => Store) | undefined;
}

export interface Daemon {
  readonly server: Server;
  readonly store: Store;
  readonly cni: CniService;
  readonly operator: OperatorService;
  readonly queue: WriteQueue;
  readonly units: Units;
  /** Cluster networks (etcd), when on. */
  readonly cluster: ClusterService | undefined;
  readonly reconciler: NetnsReconciler | undefined;
  readonly ledger: Ledger;
  readonly metrics: Metrics;
  /** The --http-listen server, when asked for. */
  readonly status: StatusServer | undefined;
  /** Drop history beyond the retention now (the sweep does it too); resolves with how many went. */
  pruneHistory(): Promise<number>;
  readonly kube: KubeIntegration | undefined;
  close(): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const log = options.log ?? silentLogger;
  const now = options.now ?? Date.now;
  // The plugin goes in before the socket is served and the conflist after: a runtime that finds
  // the conflist (containerd then reports the network ready) finds a plugin and a daemon too.
  if (options.installCni) {
    for (const path of await installPluginFiles(options.installCni.fromDir, options.installCni.binDir)) log.info('installed', { path });
  }
  if (options.installConflist && !options.cniConfDir) throw new InstallError('installConflist needs a cniConfDir to install into');
  mkdirSync(options.stateDir, { recursive: true, mode: 0o750 });
  const sqlite = SqliteStore.open({ path: options.dbPath, ...(options.nativeBinding ? { nativeBinding: options.nativeBinding } : {}) });
  await removeLeftoverBackups(options.stateDir).catch((err: unknown) => log.warn('could not remove leftover backup copies', { error: String(err) }));
  const node = options.nodeName ?? hostname();
  // Cluster networks read from a copy of etcd and write through it (cluster/); without etcd the
  // services get the SQLite store itself, with nothing in between.
  let cluster: Cluster | undefined;
  let routing: RoutingStore | undefined;
  let store: Store = options.wrapStore ? options.wrapStore(sqlite) : sqlite;
  if (options.etcd) {
    try {
      cluster = new Cluster(
        await connectEtcd(options.etcd),
        options.etcd,
        sqlite,
        (mirror) => (routing = new RoutingStore(sqlite, mirror, node)),
        log,
        node,
        (network) => ledger.recount(network),
        options.nativeBinding,
      );
      store = routing!;
    } catch (err) {
      sqlite.close();
      throw err;
    }
  }
  const ledger = new Ledger(store, node, now);

  const rules = new ReservedRules(store);
  const networks = new Networks(store, log, rules, (network) => ledger.reservedChanged(network));
  // Without a config directory no file governs a network (one that did when the daemon last ran is learned from requests now).
  if (!options.cniConfDir) store.transaction(() => networks.forgetFilesExcept(new Set(), new Set(), now()));
  ledger.load(networks.names());
  const netns = options.netns ?? new NetnsView(log);
  const cni = new CniService(store, networks, ledger, log, netns, now);
  const operator = new OperatorService(store, networks, ledger, rules, log, now);
  const metrics = new Metrics(ledger, () => operator.usage(undefined));
  // Node-scope units commit in the queue's batches, through the services' store (a test's wrapStore included).
  const queue = new WriteQueue(routing ? sqlite : store, undefined, undefined, (seconds) => metrics.commit(seconds));
  const units = new Units(queue, cluster && { units: cluster.units, routing: routing! });
  const clusterService = cluster && new ClusterService(cluster, store, cni, ledger, log, options.reclaimGraceMs ?? DEFAULT_RECLAIM_GRACE_MS, now);
  const nodeReports = cluster && clusterService && new NodeReports(cluster, clusterService, VERSION, log, options.nodeReports, now);
  if (clusterService) clusterService.reports = nodeReports;

  const graceMs = options.reclaimGraceMs ?? DEFAULT_RECLAIM_GRACE_MS;
  let kube: KubeIntegration | undefined;
  try {
    kube = options.kube ? await KubeIntegration.start(options.kube, store, ledger, log, now) : undefined;
  } catch (err) {
    store.close();
    throw err;
  }
  const reconciler = graceMs > 0 ? new NetnsReconciler(store, networks, cni, log, netns, graceMs, now, kube && (() => kube!.podPresence()), node) : undefined;
  const historyMaxAgeMs = options.historyMaxAgeMs ?? DEFAULT_HISTORY_DAYS * 86_400_000;
  const historyMaxEvents = options.historyMaxEvents ?? DEFAULT_HISTORY_EVENTS;
  const pruneHistory = async (): Promise<number> => {
    let removed = 0;
    for (;;) {
      const n = await queue.run(() => store.pruneHistory(now() - historyMaxAgeMs, historyMaxEvents, HISTORY_PRUNE_CHUNK));
      removed += n;
      if (n < HISTORY_PRUNE_CHUNK) return removed;
    }
  };
  const server = createApiServer({
    cni,
    operator,
    units,
    store,
    log,
    version: VERSION,
    stateDir: options.stateDir,
    reclaimed: () => reconciler?.reclaimed ?? 0,
    netns: () => netns.roots(),
    metrics,
    kube,
    cluster: clusterService,
  });

  const socketDirectory = await prepareSocketPath(options.socket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  secureSocket(options.socket, options.socketGid, socketDirectory);

  if (options.installConflist && options.cniConfDir) {
    try {
      log.info('installed', { path: await installConflist(options.installConflist, options.cniConfDir, options.socket) });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
      throw err;
    }
  }

  let status: StatusServer | undefined;
  if (options.httpListen) {
    await metrics.load(); // histograms from the first request on
    status = createStatusServer({ operator, metrics, ledger, log, version: VERSION });
    const { host, port } = options.httpListen;
    const tcp = status.server;
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
      throw new Error(`--http-listen ${host}:${port}: cannot listen: ${(err as Error).message}`);
    }
    const address = tcp.address();
    log.info('status page listening', { address: typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address) });
  }

  const run = <T>(fn: () => T, network?: string) => units.run(network, fn);
  // With cluster networks, the integration also ends the attachments of nodes the API confirms gone.
  kube?.begin(run, clusterService);
  const configDir = options.cniConfDir ? watchConfigDir(options.cniConfDir, networks, units, log, now) : undefined;
  const stopWatching = () => configDir?.stop();
  if (cluster && clusterService) {
    cluster.onLoaded = () => {
      ledger.load([...cluster.mirror.networks]);
      configDir?.rescan(); // a cluster network's file waited for etcd
      void clusterService.afterLoad();
      void kube?.schedule(); // gone nodes are looked at once the copy of etcd is there, not only at the next resync
      nodeReports?.loaded();
    };
    cluster.onWatched = (events) => nodeReports?.watched(events);
    await cluster.start();
  }
  let reconciling = false;
  let pruning = false;
  const sweepMs = options.sweepIntervalMs ?? Math.min(30_000, Math.max(1_000, graceMs / 2));
  // The cluster reconcile walks the copy of etcd and publishes this node's report: at the sweep's
  // pace when a reclaim grace paces orphans, else every 30 s (with reclaim off the sweep runs
  // each second, and would walk every node's leases each second).
  const clusterReconcileTicks = options.sweepIntervalMs !== undefined || graceMs > 0 ? 1 : Math.max(1, Math.round(CLUSTER_RECONCILE_MS / sweepMs));
  let ticks = 0;
  const sweep = setInterval(() => {
    for (const name of networks.names()) {
      units.run(name, () => operator.expireHolds(name)).catch((err: unknown) => log.error('hold expiry failed', { network: name, error: String(err) }));
    }
    if (++ticks % clusterReconcileTicks === 0 && cluster?.health().connected && clusterService) void clusterService.afterLoad();
    if (!pruning) {
      pruning = true;
      pruneHistory()
        .catch((err: unknown) => log.error('history retention failed', { error: String(err) }))
        .finally(() => {
          pruning = false;
        });
    }
    if (reconciler && !reconciling) {
      reconciling = true;
      reconciler
        .sweep(run)
        .catch((err: unknown) => log.error('reconcile failed', { error: String(err) }))
        .finally(() => {
          reconciling = false;
        });
    }
  }, sweepMs);
  sweep.unref();

  log.info('reservoird listening', { socket: options.socket, db: options.dbPath, version: VERSION });
  return {
    server,
    store,
    cni,
    operator,
    queue,
    units,
    cluster: clusterService,
    reconciler,
    ledger,
    metrics,
    status,
    pruneHistory,
    kube,
    async close() {
      clearInterval(sweep);
      nodeReports?.stop();
      stopWatching();
      await status?.close();
      await kube?.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await cluster?.close();
      store.close();
    },
  };
}
