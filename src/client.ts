// The daemon client shared by plugin and CLI. Every failure to reach the daemon becomes code 11
// (try again later) within a bounded time: a kubelet waiting on a hung plugin is worse than an error.
import { request } from 'node:http';
import { ReservoirError, errorFromBody } from './errors.js';
import { ROUTES, type RouteName, routePath } from './protocol.js';

export interface CallOptions {
  readonly socket: string;
  readonly timeoutMs: number;
  readonly params?: Record<string, string>;
  readonly query?: Record<string, string | undefined>;
  readonly body?: unknown;
}

/** Epoch ms after which the daemon must not start the request's work (daemon/server.ts reads it). */
export const DEADLINE_HEADER = 'x-reservoir-deadline';

const UNREACHABLE_HINT = 'is reservoird running? (systemctl status reservoird, or reservoirctl health)';

/** Call one route; resolve with the parsed JSON body of a 2xx answer, reject with a ReservoirError. */
export function callDaemon<T>(route: RouteName, options: CallOptions): Promise<T> {
  return callDaemonRaw(route, options).then((buffer) => {
    try {
      return JSON.parse(buffer.toString('utf8')) as T;
    } catch {
      throw new ReservoirError('INTERNAL', `reservoird answered ${ROUTES[route].path} with something that is not JSON`);
    }
  });
}

/** Same, but resolves with the raw body (used for backups). */
export function callDaemonRaw(route: RouteName, options: CallOptions): Promise<Buffer> {
  const { method } = ROUTES[route];
  const path = routePath(route, options.params, options.query);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  // The daemon starts no ADD after this moment: we will have given up (code 11) before its
  // answer could reach us, and the lease would belong to an attachment the runtime thinks failed.
  const deadline = Date.now() + options.timeoutMs - Math.min(250, Math.floor(options.timeoutMs / 10));
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: ReservoirError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new ReservoirError('TRY_AGAIN_LATER', `reservoird at ${options.socket} did not answer within ${options.timeoutMs} ms; ${UNREACHABLE_HINT}`));
    }, options.timeoutMs);
    const req = request(
      {
        socketPath: options.socket,
        method,
        path,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': payload.length, connection: 'close', [DEADLINE_HEADER]: deadline }
          : { connection: 'close', [DEADLINE_HEADER]: deadline },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => fail(new ReservoirError('TRY_AGAIN_LATER', `reading reservoird's answer failed: ${err.message}`)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          const status = res.statusCode ?? 500;
          if (status >= 200 && status < 300) return resolve(body);
          let parsed: unknown;
          try {
            parsed = JSON.parse(body.toString('utf8'));
          } catch {
            parsed = { code: 999, msg: `reservoird answered HTTP ${status} without a JSON error body` };
          }
          reject(errorFromBody(parsed));
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code ?? err.message;
      if (err.code === 'EACCES') {
        fail(new ReservoirError('TRY_AGAIN_LATER', `permission denied on ${options.socket}: run as root or as a member of the socket's group`));
        return;
      }
      fail(new ReservoirError('TRY_AGAIN_LATER', `cannot reach reservoird at ${options.socket} (${reason}); ${UNREACHABLE_HINT}`));
    });
    req.end(payload);
  });
}
