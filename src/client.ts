// The daemon client shared by plugin and CLI. Every failure to reach the daemon becomes code 11
// (try again later) within a bounded time: a kubelet waiting on a hung plugin is worse than an error.
// The bytes travel over node:net, or over the plugin's native exchange (src/native-call.ts): the
// request and the reading of the answer are the same either way.
import { DEADLINE_HEADER, MAX_BODY_BYTES } from './defaults.js';
import { ErrorCodes, ReservoirError, errorFromBody } from './errors.js';
import type { Exchange } from './native-call.js';
import { ROUTES, type RouteName, routePath } from './protocol.js';

export interface CallOptions {
  readonly socket: string;
  readonly timeoutMs: number;
  readonly params?: Record<string, string>;
  readonly query?: Record<string, string | undefined>;
  readonly body?: unknown;
  /** A synchronous exchange (the plugin's native addon); node:net when absent. */
  readonly exchange?: Exchange | undefined;
}

/** Failures after the request was sent and before a whole answer came: it may have been carried out. */
const UNANSWERED = new WeakSet<ReservoirError>();

/** Whether `err` is a call that reached reservoird, or may have, but got no answer in time. */
export function answerMissed(err: unknown): boolean {
  return err instanceof ReservoirError && UNANSWERED.has(err);
}

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
  if (payload && payload.length > MAX_BODY_BYTES) {
    // reservoird would answer 413 and close while we still write: we saw EPIPE and reported
    // "try again later" (11) for a request that can never succeed.
    return Promise.reject(
      new ReservoirError('REQUEST_TOO_LARGE', `the request to reservoird would be ${payload.length} bytes, over its ${MAX_BODY_BYTES}-byte limit; shrink the network configuration`),
    );
  }
  // The daemon neither starts an ADD after this moment nor lets one it commits after it stand:
  // we will have given up (code 11) before its answer could reach us, and the lease would belong
  // to an attachment the runtime thinks failed. The margin up to our own timeout covers the
  // answer's way from the daemon's last look at the clock to us.
  const deadline = Date.now() + options.timeoutMs - Math.min(250, Math.floor(options.timeoutMs / 10));
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${DEADLINE_HEADER}: ${deadline}\r\n` +
    (payload ? `Content-Type: application/json\r\nContent-Length: ${payload.length}\r\n` : '') +
    '\r\n';
  const request = payload ? Buffer.concat([Buffer.from(head), payload]) : Buffer.from(head);
  if (options.exchange) {
    try {
      return Promise.resolve(bodyOf(parseAnswer(options.exchange(options.socket, request, options.timeoutMs), true)!, options));
    } catch (err) {
      return Promise.reject(err instanceof ReservoirError ? err : failureOf(err as NodeJS.ErrnoException, options));
    }
  }
  return exchangeOverNet(request, options);
}

/** The same exchange on node:net, loaded only now: the plugin with its native exchange never pays for it. */
function exchangeOverNet(request: Buffer, options: CallOptions): Promise<Buffer> {
  const { connect } = process.getBuiltinModule('node:net');
  return new Promise((resolve, reject) => {
    let settled = false;
    let chunks: Buffer[] = [];
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      settle();
    };
    const timer = setTimeout(() => {
      finish(() => reject(failureOf({ code: 'ETIMEDOUT' } as NodeJS.ErrnoException, options)));
    }, options.timeoutMs);
    /** Settle once the answer is complete (or can no longer be): true when settled. */
    const complete = (eof: boolean): boolean => {
      if (settled) return true;
      const answer = parseAnswer(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), eof);
      if (answer === undefined) return false;
      finish(() => {
        try {
          resolve(bodyOf(answer, options));
        } catch (err) {
          reject(err);
        }
      });
      return true;
    };
    // A raw HTTP/1.1 exchange on node:net: node:http's load and agent cost a few ms of CPU in a
    // plugin that runs once per pod. We never half-close (reservoird drops a request whose
    // client has ended its side); it closes after answering (Connection: close).
    const socket = connect(options.socket);
    socket.on('connect', () => socket.write(request));
    // Parse once the answer is whole: at its Content-Length, else (chunked backups) at EOF.
    let received = 0;
    let headSeen = false;
    let needed: number | undefined;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (!headSeen) {
        if (chunks.length > 1) chunks = [Buffer.concat(chunks)];
        const end = chunks[0]!.indexOf('\r\n\r\n');
        if (end < 0) return;
        headSeen = true;
        const length = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i.exec(chunks[0]!.subarray(0, end + 2).toString('latin1'));
        if (length) needed = end + 4 + Number(length[1]);
      }
      if (needed !== undefined && received >= needed) complete(false);
    });
    socket.on('end', () => complete(true));
    socket.on('close', () => complete(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (chunks.length > 0 && complete(true)) return;
      finish(() => reject(failureOf(err, options)));
    });
  });
}

/** Why the daemon could not be reached or did not answer, as code 11 with what to do. */
function failureOf(err: NodeJS.ErrnoException, options: CallOptions): ReservoirError {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new ReservoirError('TRY_AGAIN_LATER', `permission denied on ${options.socket}: run as root or as a member of the socket's group`);
  }
  if (err.code === 'ETIMEDOUT') {
    const error = new ReservoirError('TRY_AGAIN_LATER', `reservoird at ${options.socket} did not answer within ${options.timeoutMs} ms; ${UNREACHABLE_HINT}`);
    UNANSWERED.add(error);
    return error;
  }
  return unreachable(options, err.code ?? err.message);
}

function unreachable(options: CallOptions, reason: string): ReservoirError {
  return new ReservoirError('TRY_AGAIN_LATER', `cannot reach reservoird at ${options.socket} (${reason}); ${UNREACHABLE_HINT}`);
}

/** The body of a 2xx answer; otherwise the error the answer stands for. */
function bodyOf(answer: Answer, options: CallOptions): Buffer {
  if ('broken' in answer) {
    const error = answer.broken === 'no answer' ? unreachable(options, 'ECONNRESET') : new ReservoirError('TRY_AGAIN_LATER', `reading reservoird's answer failed: ${answer.broken}`);
    UNANSWERED.add(error);
    throw error;
  }
  const { status, body } = answer;
  if (status >= 200 && status < 300) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = { code: ErrorCodes.INTERNAL.code, msg: `reservoird answered HTTP ${status} without a JSON error body` };
  }
  throw errorFromBody(parsed);
}

type Answer = { readonly status: number; readonly body: Buffer } | { readonly broken: string };

/**
 * The status and body of an HTTP/1.1 answer read so far; undefined while more is to come.
 * Bodies come with Content-Length (JSON) or chunked (backups); without either, up to EOF.
 */
export function parseAnswer(bytes: Buffer, eof: boolean): Answer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return eof ? { broken: bytes.length === 0 ? 'no answer' : 'the connection closed mid-answer' } : undefined;
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
  if (!status) return { broken: `not an HTTP answer: ${JSON.stringify(lines[0]!.slice(0, 80))}` };
  let length: number | undefined;
  let chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
  }
  const rest = bytes.subarray(end + 4);
  if (chunked) {
    const body = dechunk(rest);
    if (body) return { status: Number(status[1]), body };
  } else if (length !== undefined && Number.isSafeInteger(length)) {
    if (rest.length >= length) return { status: Number(status[1]), body: rest.subarray(0, length) };
  } else if (eof) {
    return { status: Number(status[1]), body: rest };
  }
  return eof ? { broken: 'the connection closed mid-answer' } : undefined;
}

/** A chunked body, or undefined while its last chunk has not arrived. */
function dechunk(bytes: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (eol + 2 + size + 2 > bytes.length) return undefined;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
