// --http-listen: the read-only TCP side. The status page, /metrics, the JSON the page reads and
// an event stream that tells the page when something committed. GET and HEAD only (405 for any
// other method), a fixed set of paths (404 for the rest): no CNI or operator endpoint is
// reachable here, and nothing here can change a lease.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { ReservoirError, asReservoirError } from '../src/errors.js';
import { STATUS_ROUTES, type StatusView } from '../src/protocol.js';
import type { HistoryRecord } from './store.js';
import type { Ledger } from './ledger.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { type OperatorService, historyView } from './operator-service.js';
import { TextAnswer, historyLimit, send, sendText, target } from './server.js';
import { STATUS_PAGE } from './status-page.js';

/** Events the page gets with its first read. */
export const RECENT_EVENTS = 50;
/** IPs per page of a reserved listing, by default and at most. */
export const RESERVED_PAGE_DEFAULT = 100;
export const RESERVED_PAGE_MAX = 1000;
/** Pushes are coalesced: at most one per this many ms, however busy the daemon is. */
export const PUSH_INTERVAL_MS = 250;
/** Watchers of the event stream at once; more get 503 (each holds a connection). */
export const MAX_WATCHERS = 64;
const KEEPALIVE_MS = 15_000;

export interface StatusDeps {
  readonly operator: OperatorService;
  readonly metrics: Metrics;
  readonly ledger: Ledger;
  readonly log: Logger;
  readonly version: string;
}

function wholeNumber(query: URLSearchParams, key: string, fallback: number, max: number): number {
  const text = query.get(key);
  if (text === null) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) throw new ReservoirError('BAD_REQUEST', `${key} must be a whole number from 0 to ${max}`);
  return Number(text);
}

/** Pushes committed events to the pages watching, coalesced. */
class EventStream {
  private readonly watchers = new Set<ServerResponse>();
  private pending: HistoryRecord[] = [];
  private changed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly keepalive: NodeJS.Timeout;

  constructor(ledger: Ledger) {
    ledger.watch({
      event: (record) => {
        if (this.watchers.size === 0) return;
        this.pending.push(record);
        if (this.pending.length > RECENT_EVENTS) this.pending.shift();
        this.schedule();
      },
      changed: () => {
        if (this.watchers.size === 0) return;
        this.changed = true;
        this.schedule();
      },
    });
    this.keepalive = setInterval(() => {
      for (const res of this.watchers) res.write(': keepalive\n\n');
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  open(req: IncomingMessage, res: ServerResponse): void {
    if (this.watchers.size >= MAX_WATCHERS) throw new ReservoirError('TRY_AGAIN_LATER', `${MAX_WATCHERS} pages are watching already; try again later`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.write('retry: 2000\n\n');
    this.watchers.add(res);
    req.on('close', () => this.watchers.delete(res));
  }

  close(): void {
    clearInterval(this.keepalive);
    if (this.timer) clearTimeout(this.timer);
    for (const res of this.watchers) res.end();
    this.watchers.clear();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const data = JSON.stringify({ events: this.pending.map(historyView), changed: this.changed });
      this.pending = [];
      this.changed = false;
      for (const res of this.watchers) res.write(`event: change\ndata: ${data}\n\n`);
    }, PUSH_INTERVAL_MS);
    this.timer.unref();
  }
}

const PAGE = new TextAnswer('text/html; charset=utf-8', STATUS_PAGE);
const PAGE_HEADERS = {
  // Everything the page needs is in it; it may talk to this server only.
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export interface StatusServer {
  readonly server: Server;
  close(): Promise<void>;
}

export function createStatusServer(deps: StatusDeps): StatusServer {
  const { operator, metrics, ledger } = deps;
  const stream = new EventStream(ledger);
  const networkPath = (path: string, suffix: string): string | undefined => {
    const prefix = '/api/networks/';
    if (!path.startsWith(prefix) || !path.endsWith(`/${suffix}`)) return undefined;
    const name = path.slice(prefix.length, -suffix.length - 1);
    if (name === '' || name.includes('/')) return undefined;
    return decodeURIComponent(name);
  };

  const answer = async (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> => {
    if (path === STATUS_ROUTES.page) {
      res.setHeaders(new Map(Object.entries(PAGE_HEADERS)));
      sendText(res, PAGE);
      return;
    }
    if (path === STATUS_ROUTES.metrics) {
      const { contentType, text } = await metrics.exposition();
      sendText(res, new TextAnswer(contentType, text));
      return;
    }
    if (path === STATUS_ROUTES.status) {
      const view: StatusView = { node: ledger.node, version: deps.version, networks: operator.usage(undefined), events: operator.recentHistory(RECENT_EVENTS) };
      send(res, 200, view);
      return;
    }
    if (path === STATUS_ROUTES.events) {
      stream.open(req, res);
      return;
    }
    const reserved = networkPath(path, 'reserved');
    if (reserved !== undefined) {
      const state = query.get('state') ?? 'all';
      if (state !== 'all' && state !== 'used') throw new ReservoirError('BAD_REQUEST', 'state must be all or used');
      const offset = wholeNumber(query, 'offset', 0, 1e9);
      const limit = Math.max(1, wholeNumber(query, 'limit', RESERVED_PAGE_DEFAULT, RESERVED_PAGE_MAX));
      send(res, 200, operator.reservedPage(reserved, state, offset, limit));
      return;
    }
    const history = networkPath(path, 'history');
    if (history !== undefined) {
      send(res, 200, { events: operator.history(history, query.get('ip') ?? undefined, historyLimit(query)) });
      return;
    }
    throw new ReservoirError('NOT_FOUND', `no such page: ${path} (this port serves only the status page, /metrics and the page's read-only API)`);
  };

  const server = createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      // Read-only: nothing sent here can change anything. The body is not read.
      const error = new ReservoirError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here: this port is read-only (GET, HEAD); operators use reservoirctl on the unix socket`);
      const text = JSON.stringify(error.toJSON());
      res.writeHead(error.http, { allow: 'GET, HEAD', 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
      res.end(text);
      req.resume();
      return;
    }
    let url: { path: string; query: URLSearchParams };
    try {
      url = target(req.url ?? '/');
    } catch {
      send(res, 400, new ReservoirError('BAD_REQUEST', 'the request target is not a URL path').toJSON());
      return;
    }
    answer(req, res, url.path, url.query).catch((err: unknown) => {
      const error = asReservoirError(err);
      if (error.codeName === 'INTERNAL') deps.log.error('status request failed', { path: url.path, error: String((err as Error)?.stack ?? err) });
      send(res, error.http, error.toJSON());
    });
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  return {
    server,
    async close() {
      stream.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
