// HTTP/1.1 + JSON over the unix socket. Routing goes through one table (protocol.ts ROUTES ->
// handler); the handlers only decode and validate input, then call a service. Request bodies
// are bounded, slow clients time out, unknown paths get a JSON 404.
import { createReadStream } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { formatValue } from '../src/address.js';
import { DEADLINE_HEADER, MAX_BODY_BYTES } from '../src/defaults.js';
import { ReservoirError, asReservoirError } from '../src/errors.js';
import { type CniInvocation, type LeaseCommand, parseInvocation } from '../src/invocation.js';
import {
  type ClusterCheckResponse,
  type ClusterHealthView,
  HISTORY_DEFAULT,
  HISTORY_MAX,
  type HealthResponse,
  LEASES_PAGE_DEFAULT,
  LEASES_PAGE_MAX,
  MISFITS_LISTED,
  type MisfitsReleaseResponse,
  PROTOCOL_VERSION,
  ROUTES,
  type ReleaseNodeResponse,
  type ReservedChangeBody,
  type RouteName,
} from '../src/protocol.js';
import type { CniService } from './cni-service.js';
import type { KubeIntegration } from './kube/integration.js';
import type { Logger } from './log.js';
import type { NetnsRootView } from './netns-view.js';
import type { Metrics } from './metrics.js';
import type { OperatorService } from './operator-service.js';
import { describeOverlap } from './overlaps.js';
import type { Store } from './store.js';
import type { Units } from './units.js';

export interface ServerDeps {
  readonly cni: CniService;
  readonly operator: OperatorService;
  readonly units: Units;
  readonly store: Store;
  readonly log: Logger;
  readonly version: string;
  /** Where the daemon may write temporary files (backups); never taken from a request. */
  readonly stateDir: string;
  /** Leases the reconciler released since start. */
  readonly reclaimed: () => number;
  /** Which netns directories the daemon can see (no reclaim or take-over where it cannot). */
  readonly netns: () => readonly NetnsRootView[];
  readonly metrics: Metrics;
  /** The Kubernetes integration, when on. */
  readonly kube?: KubeIntegration | undefined;
  /** Cluster networks (etcd), when on. */
  readonly cluster?: ClusterSide | undefined;
}

/** What the API needs of the cluster side (daemon/cluster/cluster-service.ts). */
export interface ClusterSide {
  health(): ClusterHealthView;
  /** DEL of a cluster network while etcd is away: the journal releases it later. */
  delOffline(inv: CniInvocation): void;
  checkCluster(network: string | undefined, repair: boolean, deadline?: number): Promise<ClusterCheckResponse>;
  releaseNode(node: string): Promise<ReleaseNodeResponse>;
}

function clusterOf(deps: ServerDeps): ClusterSide {
  if (!deps.cluster) throw new ReservoirError('BAD_REQUEST', 'this reservoird runs without etcd (--etcd-endpoints): it has no cluster networks');
  return deps.cluster;
}

interface Call {
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  readonly body: unknown;
  /** Epoch ms after which the client no longer waits for the answer (the deadline header, set by src/client.ts). */
  readonly deadline?: number | undefined;
}

/** A handler answers with a JSON value, a file to stream (backups) or a text (metrics). */
type Answer = unknown | { readonly stream: string; readonly cleanup: () => Promise<void> } | TextAnswer;
type Handler = (call: Call) => Answer | Promise<Answer>;

/** A non-JSON answer: the Prometheus exposition, the status page. */
export class TextAnswer {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

/** Send a text answer (200). */
export function sendText(res: ServerResponse, answer: TextAnswer): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, ['content-type', answer.contentType, 'content-length', String(Buffer.byteLength(answer.text))]);
  res.end(answer.text);
}

/** ?limit= of a history listing: 1..HISTORY_MAX, HISTORY_DEFAULT when absent. */
export function historyLimit(query: URLSearchParams): number {
  const text = query.get('limit');
  if (text === null) return HISTORY_DEFAULT;
  if (!/^[1-9][0-9]{0,5}$/.test(text) || Number(text) > HISTORY_MAX) {
    throw new ReservoirError('BAD_REQUEST', `limit must be a whole number from 1 to ${HISTORY_MAX} (default ${HISTORY_DEFAULT})`);
  }
  return Number(text);
}

/** Count and time a CNI call for the metrics: code 0 when it succeeded, else its CNI error code. */
function timed(metrics: Metrics, command: LeaseCommand, handler: Handler): Handler {
  return async (call) => {
    const started = performance.now();
    try {
      const answer = await handler(call);
      metrics.cniRequest(command, 0, (performance.now() - started) / 1000);
      return answer;
    } catch (err) {
      metrics.cniRequest(command, asReservoirError(err).code, (performance.now() - started) / 1000);
      throw err;
    }
  };
}

const startedAt = Date.now();

/** Misfit leases released per unit of the write queue. */
const MISFITS_PAGE = 512;
/** Temporary copies for GET /v1/backup: `${BACKUP_PREFIX}${pid}-${n}.db` in the state directory. */
const BACKUP_PREFIX = '.backup-';

/** Copies that a daemon killed mid-backup left behind: those of processes that no longer run. */
export async function removeLeftoverBackups(stateDir: string): Promise<void> {
  const names = (await readdir(stateDir)).filter((name) => {
    const pid = new RegExp(`^${BACKUP_PREFIX}(\\d+)-\\d+\\.db$`).exec(name)?.[1];
    return pid !== undefined && !processRuns(Number(pid));
  });
  await Promise.all(names.map((name) => unlink(join(stateDir, name)).catch(() => undefined)));
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ReservoirError('BAD_REQUEST', 'the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, key: string, optional = false): string | undefined {
  const value = body[key];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new ReservoirError('BAD_REQUEST', `"${key}" must be a non-empty string of at most 256 characters`);
  }
  return value;
}

function nullableString(body: Record<string, unknown>, key: string): string | null | undefined {
  const value = body[key];
  if (value === undefined || value === null) return value as null | undefined;
  return stringField(body, key);
}

function cniInvocation(command: LeaseCommand, body: unknown, podAnnotations?: Readonly<Record<string, string>>) {
  const { env, config } = objectBody(body);
  if (env === null || typeof env !== 'object' || Array.isArray(env)) throw new ReservoirError('BAD_REQUEST', '"env" must be an object of CNI_* strings');
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && typeof value !== 'string') throw new ReservoirError('BAD_REQUEST', `env.${key} must be a string`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ReservoirError('DECODE_FAILURE', '"config" must be the network configuration object');
  }
  return parseInvocation(command, env as Record<string, string>, config as Record<string, unknown>, podAnnotations);
}

function reservedChange(body: unknown): ReservedChangeBody {
  const obj = objectBody(body);
  const change: { entry: string; to?: string; group?: string | null; note?: string | null; namespaces?: readonly string[] | null } = { entry: stringField(obj, 'entry')! };
  const to = stringField(obj, 'to', true);
  if (to !== undefined) change.to = to;
  const group = nullableString(obj, 'group');
  if (group !== undefined) change.group = group;
  const note = nullableString(obj, 'note');
  if (note !== undefined) change.note = note;
  const namespaces = obj.namespaces;
  if (namespaces !== undefined) {
    if (namespaces !== null && (!Array.isArray(namespaces) || !namespaces.every((n) => typeof n === 'string'))) {
      throw new ReservoirError('BAD_REQUEST', '"namespaces" must be a list of namespace globs, or null for any namespace');
    }
    change.namespaces = namespaces as readonly string[] | null;
  }
  return change;
}

function filterOf(query: URLSearchParams): 'all' | 'free' | 'used' {
  const state = query.get('state') ?? 'all';
  if (state !== 'all' && state !== 'free' && state !== 'used') throw new ReservoirError('BAD_REQUEST', 'state must be all, free or used');
  return state;
}

function pageLimit(query: URLSearchParams): number {
  const text = query.get('limit');
  if (text === null) return LEASES_PAGE_DEFAULT;
  if (!/^[1-9][0-9]{0,5}$/.test(text) || Number(text) > LEASES_PAGE_MAX) {
    const shown = text.length > 20 ? `${text.slice(0, 20)}...` : text;
    throw new ReservoirError('BAD_REQUEST', `limit must be a whole number from 1 to ${LEASES_PAGE_MAX} (default ${LEASES_PAGE_DEFAULT}), not ${JSON.stringify(shown)}`);
  }
  return Number(text);
}

export function buildHandlers(deps: ServerDeps): Record<RouteName, Handler> {
  const { cni, operator, units, store, metrics } = deps;
  let backups = 0;
  return {
    cniAdd: timed(metrics, 'ADD', async ({ body, deadline }) => {
      const plain = cniInvocation('ADD', body);
      const inv = deps.kube ? await deps.kube.admit(plain, (annotations) => cniInvocation('ADD', body, annotations)) : plain;
      // A plugin that gave up reported "try again later": the queue neither starts an ADD past
      // its deadline nor lets one committed past it stand (write-queue.ts).
      units.refuseWithoutEtcd(inv.network, inv.ipam.scope);
      return units
        .run(inv.network, () => cni.addUndoable(inv), { deadline, undo: (added) => added.undo(), scope: inv.ipam.scope })
        .then(({ result }) => ({ result }));
    }),
    cniDel: timed(metrics, 'DEL', ({ body, deadline }) => {
      const inv = cniInvocation('DEL', body);
      // A cluster network's DEL succeeds while etcd is away: the journal takes it (cluster/journal.ts).
      return units.run(inv.network, () => (cni.del(inv), {}), { deadline, offline: () => (deps.cluster?.delOffline(inv), {}) });
    }),
    cniCheck: timed(metrics, 'CHECK', ({ body, deadline }) => {
      const inv = cniInvocation('CHECK', body);
      return units.run(inv.network, () => (cni.check(inv), {}), { deadline, offline: () => (cni.check(inv), {}) });
    }),
    cniGc: timed(metrics, 'GC', ({ body }) => {
      const inv = cniInvocation('GC', body);
      return cni.gc(inv, (fn) => units.run(inv.network, fn));
    }),
    cniStatus: timed(metrics, 'STATUS', ({ body }) => {
      const inv = cniInvocation('STATUS', body);
      return units.run(inv.network, () => cni.status(inv), { offline: () => cni.status(inv) });
    }),
    health: () => {
      const counts = store.countLeases(undefined);
      return {
        ok: true,
        version: deps.version,
        protocol: PROTOCOL_VERSION,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        networks: store.listNetworks().length,
        leases: counts.total,
        batches: units.stats,
        cluster: deps.cluster?.health() ?? null,
        reclaimed: deps.reclaimed(),
        netns: deps.netns(),
        kubernetes: deps.kube?.health() ?? null,
        ...operator.networkWarnings(),
        warnings: operator.overlaps().map(describeOverlap),
      } satisfies HealthResponse;
    },
    usage: ({ query }) => ({ networks: operator.usage(query.get('network') ?? undefined) }),
    leases: ({ query }) => operator.leases(query.get('network') ?? undefined, pageLimit(query), query.get('after') ?? undefined),
    reservedList: ({ params, query }) => operator.reservedList(params.network!, filterOf(query)),
    reservedAdd: ({ params, body }) => {
      const change = reservedChange(body);
      return units.run(params.network!, () => operator.reservedAdd(params.network!, change));
    },
    reservedSet: ({ params, body }) => {
      const change = reservedChange(body);
      return units.run(params.network!, () => operator.reservedSet(params.network!, change));
    },
    reservedRemove: ({ params, query }) => {
      const entry = query.get('entry');
      if (!entry) throw new ReservoirError('BAD_REQUEST', 'give the entry to remove as ?entry=');
      return units.run(params.network!, () => operator.reservedRemove(params.network!, entry));
    },
    release: ({ body }) => {
      const obj = objectBody(body);
      const network = stringField(obj, 'network')!;
      const app = stringField(obj, 'app')!;
      return units.run(network, () => operator.release(network, app));
    },
    history: ({ params, query }) => ({ events: operator.history(params.network!, query.get('ip') ?? undefined, historyLimit(query)) }),
    metrics: async () => {
      const { contentType, text } = await metrics.exposition();
      return new TextAnswer(contentType, text);
    },
    misfits: ({ params }) => operator.misfits(params.network!),
    misfitsRelease: async ({ params }) => {
      // A page per unit of the write queue, so releasing a renumbered /16 never holds up CNI calls.
      const ips: string[] = [];
      let released = 0;
      for (;;) {
        const page = await units.run(params.network!, () => operator.releaseMisfits(params.network!, MISFITS_PAGE));
        released += page.length;
        for (const lease of page) if (ips.length < MISFITS_LISTED) ips.push(formatValue(lease.family, lease.ip));
        if (page.length > 0) deps.log.info('released leases that no longer fit the network', { network: params.network, released: page.length, by: 'operator' });
        if (page.length < MISFITS_PAGE) break;
      }
      return { network: params.network!, released, ips } satisfies MisfitsReleaseResponse;
    },
    clusterCheck: ({ query }) => clusterOf(deps).checkCluster(query.get('network') ?? undefined, false),
    clusterRepair: ({ body, deadline }) => clusterOf(deps).checkCluster(body === undefined || body === null ? undefined : stringField(objectBody(body), 'network', true), true, deadline),
    releaseNode: ({ params }) => clusterOf(deps).releaseNode(params.node!),
    backup: async () => {
      const path = join(deps.stateDir, `${BACKUP_PREFIX}${process.pid}-${++backups}.db`);
      await store.backupTo(path);
      return { stream: path, cleanup: () => unlink(path).catch(() => undefined) };
    },
  };
}

interface CompiledRoute {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: Handler;
}

function compile(handlers: Record<RouteName, Handler>): CompiledRoute[] {
  return (Object.keys(ROUTES) as RouteName[]).map((name) => ({
    method: ROUTES[name].method,
    parts: ROUTES[name].path.split('/'),
    handler: handlers[name],
  }));
}

function match(routes: readonly CompiledRoute[], method: string, path: string): { handler: Handler; params: Record<string, string> } | undefined {
  const parts = path.split('/');
  for (const route of routes) {
    if (route.method !== method || route.parts.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      const pattern = route.parts[i]!;
      if (pattern.startsWith(':')) {
        try {
          params[pattern.slice(1)] = decodeURIComponent(parts[i]!);
        } catch {
          ok = false;
        }
      } else ok = pattern === parts[i];
    }
    if (ok) return { handler: route.handler, params };
  }
  return undefined;
}

/** Deeper than any real request; handlers JSON.stringify parts of it (the ipam), which recurses. */
const MAX_BODY_DEPTH = 160;

/**
 * A body nested 100,000 deep parses fine but overflowed the stack later (500, code 999). Recursion
 * is bounded by MAX_BODY_DEPTH + 1 frames; no per-node allocation (this runs for every request).
 */
function tooDeep(value: unknown, depth = 1): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth > MAX_BODY_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (tooDeep(value[i], depth + 1)) return true;
    return false;
  }
  // JSON.parse makes plain objects: every key is an own enumerable property
  for (const key in value) if (tooDeep((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      reject(new ReservoirError('REQUEST_TOO_LARGE', `request body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Stop reading but keep the connection: the handler answers 413, then closes it
        // (destroying it here lost the answer: the client saw only a reset).
        req.off('data', onData);
        req.pause();
        reject(new ReservoirError('REQUEST_TOO_LARGE', `request body is over the ${MAX_BODY_BYTES}-byte limit`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('error', reject);
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        reject(new ReservoirError('DECODE_FAILURE', `the request body is not JSON: ${(err as Error).message}`));
        return;
      }
      if (tooDeep(parsed)) {
        reject(new ReservoirError('DECODE_FAILURE', `the request body is nested more than ${MAX_BODY_DEPTH} levels deep`));
        return;
      }
      resolve(parsed);
    });
  });
}

const bigintAsString = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);

export function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  let text: string;
  try {
    // A replacer runs for every key; answers rarely hold a BigInt, so try without one first
    // (JSON.stringify throws on a BigInt, and then the replacer gives the very same text).
    text = JSON.stringify(body);
  } catch {
    text = JSON.stringify(body, bigintAsString);
  }
  // One string: Node sends the head and the body in one write.
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))]);
  res.end(text);
}

/**
 * Request targets that new URL() leaves as they are: "/"-separated non-empty segments of these
 * characters, none "." or "..". Only the others go through new URL() (~2 us per request).
 */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9_.-]+)+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/** Characters new URL() would escape, strip or cut at in a query (URLSearchParams decodes the escapes again). */
const URL_SPECIAL_IN_QUERY = /[#\s"<>`{}|\\^]/;

export function target(url: string): { path: string; query: URLSearchParams } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  if (PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path) && !URL_SPECIAL_IN_QUERY.test(query)) {
    return { path, query: new URLSearchParams(query) };
  }
  const parsed = new URL(url, 'http://reservoird');
  return { path: parsed.pathname, query: parsed.searchParams };
}

export function createApiServer(deps: ServerDeps): Server {
  const routes = compile(buildHandlers(deps));
  // headersTimeout/requestTimeout are enforced only when Node checks connections, every 30 s by
  // default: a stalled client would hold its connection up to 30 s past the limits below.
  const server = createServer({ connectionsCheckingInterval: 1_000 }, async (req, res) => {
    const url = target(req.url ?? '/');
    const found = match(routes, req.method ?? 'GET', url.path);
    try {
      if (!found) throw new ReservoirError('NOT_FOUND', `no such endpoint: ${req.method} ${url.path}`);
      const body = await readBody(req);
      const deadlineHeader = req.headers[DEADLINE_HEADER];
      const deadline = typeof deadlineHeader === 'string' && /^\d{1,16}$/.test(deadlineHeader) ? Number(deadlineHeader) : undefined;
      const answer = await found.handler({ params: found.params, query: url.query, body, deadline });
      if (answer instanceof TextAnswer) {
        sendText(res, answer);
        return;
      }
      if (answer && typeof answer === 'object' && 'stream' in answer) {
        const { stream, cleanup } = answer as { stream: string; cleanup: () => Promise<void> };
        // The copy is the whole store: it goes, and its fd closes, however the answer ends
        // (pipe() left both behind when the client hung up mid-stream, or before the copy was made).
        if (res.destroyed) {
          await cleanup();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/vnd.sqlite3' });
        pipeline(createReadStream(stream), res, () => void cleanup());
        return;
      }
      send(res, 200, answer);
    } catch (err) {
      const error = asReservoirError(err);
      if (error.codeName === 'INTERNAL') deps.log.error('request failed', { path: url.path, error: String((err as Error)?.stack ?? err) });
      send(res, error.http, error.toJSON());
      if (error.codeName === 'REQUEST_TOO_LARGE') req.destroy();
    }
  });
  // A client that opens the socket and stalls must not hold the daemon's resources.
  server.headersTimeout = 5_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.timeout = 30_000;
  return server;
}
