// Raw HTTP over the daemon's unix socket (node:http with socketPath, no curl), for tests of the
// daemon's HTTP layer that the real client would never send.
import { request } from 'node:http';

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: any;
}

export interface RawRequest {
  readonly socket: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string | Buffer;
  /** Send the body with Transfer-Encoding: chunked (no Content-Length) in pieces of this size. */
  readonly chunkSize?: number;
  readonly headers?: Record<string, string>;
}

export function rawRequest(options: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const headers: Record<string, string | number> = { connection: 'close', ...options.headers };
    if (body && !options.chunkSize) headers['content-length'] = body.length;
    if (body) headers['content-type'] ??= 'application/json';
    const req = request({ socketPath: options.socket, method: options.method, path: options.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
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
