// A minimal HTTP/1.1 client over a unix socket for the benchmark's own calls (set-up, scale,
// health): one connection per request, "Connection: close", as the plugin does. The throughput
// load itself comes from bench/loadgen.go.
import { connect } from 'node:net';

/** POST/GET once; resolves { status, body (string), ms } and never keeps the connection. */
export function rawRequest(socketPath, method, path, body, timeoutMs = 30_000) {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: reservoird\r\nConnection: close\r\n` +
    (payload ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n` : '') +
    '\r\n';
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = connect(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    // No half-close: Node's HTTP server (httpAllowHalfOpen false) drops a request whose client
    // has ended its side before the answer. The daemon closes after answering (Connection: close).
    sock.on('connect', () => sock.write(head + payload));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const sep = text.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m || sep < 0) {
        reject(new Error(`${method} ${path}: malformed answer ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      resolve({ status: Number(m[1]), body: text.slice(sep + 4), ms: performance.now() - started });
    });
  });
}

/** A CNI call body for /v1/cni/{add,del}: what the plugin forwards. */
export function cniBody(config, containerId, { netns = '/var/run/netns/bench', ifname = 'eth0', args } = {}) {
  const env = { CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: ifname };
  if (args) env.CNI_ARGS = args;
  return JSON.stringify({ env, config });
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
