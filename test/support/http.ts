// Raw HTTP over the daemon's unix socket (node:http with socketPath, no curl), for tests of the
// daemon's HTTP layer that the real client would never send (and for the backup's bytes); or over
// TCP to 127.0.0.1:port (the read-only status port, --http-listen).
import { request } from 'node:http';

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly text: string;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly json: any;
}

export interface RawRequest {
  /** The unix socket; or `port` on 127.0.0.1. */
  readonly socket?: string;
  readonly port?: number;
  readonly method: string;
  readonly path: string;
  /** A string or Buffer is sent as is, anything else as JSON. */
  readonly body?: unknown;
  /** Send the body with Transfer-Encoding: chunked (no Content-Length) in pieces of this size. */
  readonly chunkSize?: number;
  readonly headers?: Record<string, string>;
  /** Give up when the socket is idle this long (default 20 s). */
  readonly timeoutMs?: number;
}

export function rawRequest(options: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const body =
      options.body === undefined
        ? undefined
        : Buffer.isBuffer(options.body)
          ? options.body
          : Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
    const headers: Record<string, string | number> = { connection: 'close', ...options.headers };
    if (body && !options.chunkSize) headers['content-length'] = body.length;
    if (body) headers['content-type'] ??= 'application/json';
    const where = options.socket !== undefined ? { socketPath: options.socket } : { host: '127.0.0.1', port: options.port };
    const req = request({ ...where, method: options.method, path: options.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        const text = all.toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all, text, json });
      });
    });
    const timeoutMs = options.timeoutMs ?? 20_000;
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${options.method} ${options.path}: no answer within ${timeoutMs} ms`)));
    // The daemon may answer (413) and close before it has read the whole body: that is fine,
    // the answer is what we check; only fail when no answer came at all.
    req.on('error', (err) => setTimeout(() => reject(err), 200));
    if (!body) return void req.end();
    if (!options.chunkSize) return void req.end(body);
    let offset = 0;
    const pump = () => {
      while (offset < body.length) {
        const piece = body.subarray(offset, offset + options.chunkSize!);
        offset += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}
