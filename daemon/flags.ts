// reservoird's flags; each has an environment twin (RESERVOIR_*) for systemd units and pods.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET } from '../src/defaults.js';
import { DEFAULT_ETCD_PREFIX, type EtcdOptions } from './cluster/kv.js';
import type { Level } from './log.js';

export interface DaemonFlags {
  readonly socket: string;
  readonly stateDir: string;
  readonly dbPath: string;
  readonly cniConfDir: string | undefined;
  readonly socketGroup: string | undefined;
  readonly logLevel: Level;
  readonly reclaimGraceMs: number | undefined;
  readonly nodeName: string;
  readonly httpListen: HttpListen | undefined;
  readonly historyMaxAgeMs: number;
  readonly historyMaxEvents: number;
  /** The Kubernetes integration: undefined = off. */
  readonly kube: { readonly kubeconfig: string | undefined; readonly nodeName: string } | undefined;
  /** Directory holding the packaged plugin files to install into cniBinDir at start. */
  readonly installCni: string | undefined;
  readonly cniBinDir: string;
  /** Conflist to install into cniConfDir once the socket is served. */
  readonly installConflist: string | undefined;
  /** etcd for cluster networks: undefined = none (a cluster network's ADD is refused). */
  readonly etcd: EtcdOptions | undefined;
}

/** Where --http-listen serves: a host (IPv4, IPv6 or a name) and a port (0: any free one). */
export interface HttpListen {
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_HISTORY_DAYS = 30;
export const DEFAULT_HISTORY_EVENTS = 100_000;

/** "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", "localhost:9464". */
export function parseHttpListen(text: string): HttpListen {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new Error(`--http-listen ${text}: give ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (the status page and /metrics; read-only)`);
  }
  return { host: match[1] ?? match[2]!, port };
}

function parseEtcd(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): EtcdOptions | undefined {
  const text = (values['etcd-endpoints'] as string | undefined) ?? env.RESERVOIR_ETCD_ENDPOINTS;
  const file = (flag: string, envName: string): string | undefined => {
    const path = (values[flag] as string | undefined) ?? (env[envName] || undefined);
    if (path !== undefined && !existsSync(path)) throw new Error(`--${flag} ${path}: no such file`);
    return path;
  };
  const cacert = file('etcd-cacert', 'RESERVOIR_ETCD_CACERT');
  const cert = file('etcd-cert', 'RESERVOIR_ETCD_CERT');
  const key = file('etcd-key', 'RESERVOIR_ETCD_KEY');
  const prefix = (values['etcd-prefix'] as string | undefined) ?? env.RESERVOIR_ETCD_PREFIX ?? DEFAULT_ETCD_PREFIX;
  if (text === undefined || text === '') {
    if (cacert || cert || key || values['etcd-prefix'] !== undefined) throw new Error('--etcd-prefix, --etcd-cacert, --etcd-cert and --etcd-key need --etcd-endpoints');
    return undefined;
  }
  const endpoints = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) throw new Error(`--etcd-endpoints ${endpoint}: give URLs such as https://10.0.0.5:2379 (comma-separated)`);
    if (endpoint.startsWith('https:') && !cacert) throw new Error(`--etcd-endpoints ${endpoint}: an https endpoint needs --etcd-cacert (the CA that signed etcd's certificate)`);
  }
  if (endpoints.length === 0) throw new Error('--etcd-endpoints: give at least one URL');
  if ((cert === undefined) !== (key === undefined)) throw new Error('--etcd-cert and --etcd-key go together (the client certificate and its key)');
  if (!/^\/[A-Za-z0-9._\/-]*$/.test(prefix) || prefix.includes('//')) throw new Error(`--etcd-prefix ${prefix}: give a key prefix such as /reservoir (starting with "/"; letters, digits, ".", "_", "-", "/")`);
  return { endpoints, prefix, cacert, cert, key };
}

/** Where a pod's service account token is mounted: with KUBERNETES_SERVICE_HOST, "in cluster". */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export const USAGE = `usage: reservoird [options]
  --socket PATH        unix socket to serve (default ${DEFAULT_SOCKET}; env RESERVOIR_SOCKET)
  --state-dir DIR      state directory (default /var/lib/reservoir; env RESERVOIR_STATE_DIR)
  --db PATH            SQLite lease store (default STATE_DIR/reservoir.db; env RESERVOIR_DB)
  --cni-conf-dir DIR   CNI config directory to learn networks from, "" to disable
                       (default /etc/cni/net.d; env RESERVOIR_CNI_CONF_DIR)
  --socket-group NAME  group owning the socket, besides root (env RESERVOIR_SOCKET_GROUP)
  --log-level LEVEL    debug, info, warn or error (default info; env RESERVOIR_LOG_LEVEL)
  --reclaim-grace SECONDS  release a lease whose network namespace has been gone this long
                       (default 60; 0 disables; env RESERVOIR_RECLAIM_GRACE)
  --node-name NAME     this node's name: shown as the node of every holder, and the node whose
                       pods reservoird watches (default the host name; env RESERVOIR_NODE_NAME)
  --http-listen ADDR:PORT  serve the read-only status page and /metrics over TCP
                       (off by default; env RESERVOIR_HTTP_LISTEN)
  --history-days DAYS  keep per-IP history this long (default ${DEFAULT_HISTORY_DAYS}; env RESERVOIR_HISTORY_DAYS)
  --history-events N   and at most this many events (default ${DEFAULT_HISTORY_EVENTS}; env RESERVOIR_HISTORY_EVENTS)
  --kubeconfig FILE    turn the Kubernetes integration on with this kubeconfig (env KUBECONFIG);
                       in a pod it is on by itself (KUBERNETES_SERVICE_HOST + service account)
  --install-cni DIR    at start, install the plugin files in DIR (the plugin and its addon)
                       into --cni-bin-dir, atomically (env RESERVOIR_INSTALL_CNI)
  --etcd-endpoints URLS  etcd for cluster networks ("scope": "cluster"), comma-separated
                       (env RESERVOIR_ETCD_ENDPOINTS; none: cluster networks are refused)
  --etcd-prefix PREFIX  key prefix in etcd (default ${DEFAULT_ETCD_PREFIX}; env RESERVOIR_ETCD_PREFIX)
  --etcd-cacert FILE   CA of etcd's certificate, for https endpoints (env RESERVOIR_ETCD_CACERT)
  --etcd-cert FILE     client certificate (env RESERVOIR_ETCD_CERT), with
  --etcd-key FILE      its key (env RESERVOIR_ETCD_KEY)
  --cni-bin-dir DIR    where --install-cni puts them (default /opt/cni/bin; env RESERVOIR_CNI_BIN_DIR)
  --install-conflist FILE  once the socket is served, install FILE into --cni-conf-dir,
                       atomically (env RESERVOIR_INSTALL_CONFLIST)
`;

export function parseDaemonFlags(argv: string[], env: NodeJS.ProcessEnv): DaemonFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        db: { type: 'string' },
        'cni-conf-dir': { type: 'string' },
        'socket-group': { type: 'string' },
        'log-level': { type: 'string' },
        'reclaim-grace': { type: 'string' },
        'node-name': { type: 'string' },
        'http-listen': { type: 'string' },
        'history-days': { type: 'string' },
        'history-events': { type: 'string' },
        kubeconfig: { type: 'string' },
        'install-cni': { type: 'string' },
        'cni-bin-dir': { type: 'string' },
        'install-conflist': { type: 'string' },
        'etcd-endpoints': { type: 'string' },
        'etcd-prefix': { type: 'string' },
        'etcd-cacert': { type: 'string' },
        'etcd-cert': { type: 'string' },
        'etcd-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const stateDir = values['state-dir'] ?? env.RESERVOIR_STATE_DIR ?? '/var/lib/reservoir';
  const level = values['log-level'] ?? env.RESERVOIR_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`--log-level ${level}: use debug, info, warn or error`);
  const confDir = values['cni-conf-dir'] ?? env.RESERVOIR_CNI_CONF_DIR ?? '/etc/cni/net.d';
  const graceText = values['reclaim-grace'] ?? env.RESERVOIR_RECLAIM_GRACE;
  if (graceText !== undefined && !/^\d+(\.\d+)?$/.test(graceText)) throw new Error(`--reclaim-grace ${graceText}: give seconds, e.g. 60 (0 disables)`);
  const nodeName = values['node-name'] ?? env.RESERVOIR_NODE_NAME ?? hostname();
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/.test(nodeName)) throw new Error(`--node-name ${nodeName}: give a node name (letters, digits, ".", "-", "_")`);
  const listenText = values['http-listen'] ?? env.RESERVOIR_HTTP_LISTEN;
  const daysText = values['history-days'] ?? env.RESERVOIR_HISTORY_DAYS ?? String(DEFAULT_HISTORY_DAYS);
  if (!/^\d+(\.\d+)?$/.test(daysText) || Number(daysText) <= 0) throw new Error(`--history-days ${daysText}: give a number of days above 0, e.g. 30`);
  const eventsText = values['history-events'] ?? env.RESERVOIR_HISTORY_EVENTS ?? String(DEFAULT_HISTORY_EVENTS);
  if (!/^[1-9]\d{0,9}$/.test(eventsText)) throw new Error(`--history-events ${eventsText}: give a whole number of events of at least 1, e.g. 100000`);
  const kubeconfig = values.kubeconfig ?? (env.KUBECONFIG || undefined);
  const inCluster = kubeconfig === undefined && !!env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN);
  if (kubeconfig !== undefined && !existsSync(kubeconfig)) throw new Error(`--kubeconfig ${kubeconfig}: no such file`);
  const installConflist = values['install-conflist'] ?? env.RESERVOIR_INSTALL_CONFLIST;
  if (installConflist !== undefined && confDir === '') throw new Error('--install-conflist needs a --cni-conf-dir to install into');
  return {
    etcd: parseEtcd(values, env),
    kube: kubeconfig !== undefined || inCluster ? { kubeconfig, nodeName } : undefined,
    nodeName,
    httpListen: listenText === undefined || listenText === '' ? undefined : parseHttpListen(listenText),
    historyMaxAgeMs: Math.round(Number(daysText) * 86_400_000),
    historyMaxEvents: Number(eventsText),
    installCni: values['install-cni'] ?? env.RESERVOIR_INSTALL_CNI,
    cniBinDir: values['cni-bin-dir'] ?? env.RESERVOIR_CNI_BIN_DIR ?? '/opt/cni/bin',
    installConflist,
    reclaimGraceMs: graceText === undefined ? undefined : Math.round(Number(graceText) * 1000),
    socket: values.socket ?? env.RESERVOIR_SOCKET ?? DEFAULT_SOCKET,
    stateDir,
    dbPath: values.db ?? env.RESERVOIR_DB ?? join(stateDir, 'reservoir.db'),
    cniConfDir: confDir === '' ? undefined : confDir,
    socketGroup: values['socket-group'] ?? env.RESERVOIR_SOCKET_GROUP,
    logLevel: level as Level,
  };
}
