// A real etcd cluster for the cluster-network tests and the benchmark: Debian's etcd 3.4 members
// on loopback (random free ports, own data dirs), started by the test and removed by its Cleanup.
// Faults are the real thing: kill -9 a member, SIGSTOP it (a paused leader: ambiguous commits),
// stop two of three (quorum lost) and start them again on the same data.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { ETCD } from './prereqs.js';

export interface EtcdTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  process: ChildProcess | undefined;
  paused: boolean;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: readonly EtcdMember[];
  /** Client certificates (and the CA) when started with tls. */
  readonly tls: EtcdTls | undefined;
  /** The member index of the current leader (asks each live member). */
  leader(): Promise<number>;
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  pause(index: number): void;
  resume(index: number): void;
  /** Start a stopped member again on its data (it rejoins). */
  restart(index: number): Promise<void>;
  /** Every live member answers its health endpoint. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export function makeCertificates(dir: string): EtcdTls & { readonly serverCert: string; readonly serverKey: string } {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=reservoir-test-ca', '-keyout', f('ca.key'), '-out', f('ca.crt'));
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=reservoir-test-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${who}.ext`), '-out', f(`${who}.crt`));
  }
  return { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key'), serverCert: f('server.crt'), serverKey: f('server.key') };
}

export async function startEtcdCluster(cleanup: Cleanup, options: { members?: number; tls?: boolean } = {}): Promise<EtcdCluster> {
  const count = options.members ?? 3;
  const dir = cleanup.tempDir('etcd');
  const certs = options.tls ? makeCertificates(dir) : undefined;
  const scheme = certs ? 'https' : 'http';
  const members: EtcdMember[] = [];
  for (let i = 0; i < count; i++) {
    members.push({ name: `m${i}`, clientUrl: `${scheme}://127.0.0.1:${await freePort()}`, peerUrl: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, `m${i}`), process: undefined, paused: false });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (m: EtcdMember, state: 'new' | 'existing') => {
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', `reservoir-test-${process.pid}`,
      // a loaded 2-core machine: elections quick enough for tests, not so quick that load triggers them
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      '--logger', 'zap',
      '--log-level', 'error',
      ...(certs ? ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth'] : []),
    ];
    const child = spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch } });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('exit', () => {
      if (m.process === child) m.process = undefined;
    });
    (child as ChildProcess & { stderrTail?: () => string }).stderrTail = () => stderr;
    m.process = child;
    m.paused = false;
  };
  for (const m of members) launch(m, 'new');
  cleanup.addSync('etcd members', () => {
    for (const m of members) {
      if (m.process && m.paused) m.process.kill('SIGCONT');
      m.process?.kill('SIGKILL');
    }
  });

  const tlsFiles = certs && { ca: readFileSync(certs.ca), cert: readFileSync(certs.cert), key: readFileSync(certs.key) };
  const get = (url: string, body?: string) => httpText(url, body, tlsFiles);

  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.clientUrl),
    members,
    tls: certs && { ca: certs.ca, cert: certs.cert, key: certs.key },
    async leader() {
      for (let attempt = 0; attempt < 100; attempt++) {
        const ids = new Map<string, number>();
        let leaderId: string | undefined;
        for (const [i, m] of members.entries()) {
          if (!m.process || m.paused) continue;
          // etcd's JSON gateway: maintenance status names the member and its leader
          const text = await get(`${m.clientUrl}/v3/maintenance/status`, '{}');
          if (!text) continue;
          let status: { header?: { member_id?: string }; leader?: string };
          try {
            status = JSON.parse(text) as typeof status;
          } catch {
            continue;
          }
          ids.set(String(status.header?.member_id), i);
          if (status.leader && status.leader !== '0') leaderId = String(status.leader);
        }
        if (leaderId && ids.has(leaderId)) return ids.get(leaderId)!;
        await sleep(100);
      }
      throw new Error('no etcd leader elected within 10 s');
    },
    async kill(index, signal = 'SIGKILL') {
      const m = members[index]!;
      const child = m.process;
      if (!child) return;
      if (m.paused) child.kill('SIGCONT');
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill(signal);
      });
      m.process = undefined;
    },
    pause(index) {
      const m = members[index]!;
      m.process?.kill('SIGSTOP');
      m.paused = true;
    },
    resume(index) {
      const m = members[index]!;
      m.process?.kill('SIGCONT');
      m.paused = false;
    },
    async restart(index) {
      const m = members[index]!;
      if (m.process) return;
      launch(m, 'existing');
    },
    async waitHealthy(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const live = members.filter((m) => m.process && !m.paused);
        const healthy = await Promise.all(live.map(async (m) => (await get(`${m.clientUrl}/health`))?.includes('"health":"true"') ?? false));
        if (healthy.every(Boolean) && live.length > 0) return;
        if (Date.now() > until) {
          const tails = members.map((m) => `${m.name}: ${(m.process as (ChildProcess & { stderrTail?: () => string }) | undefined)?.stderrTail?.() ?? 'not running'}`).join('\n');
          throw new Error(`etcd not healthy within ${timeoutMs} ms:\n${tails}`);
        }
        await sleep(100);
      }
    },
    async close() {
      for (const i of members.keys()) await cluster.kill(i);
    },
  };
  await cluster.waitHealthy();
  return cluster;
}

/** GET (or POST body to) a member's HTTP endpoint; undefined when it does not answer within a second. */
function httpText(url: string, body: string | undefined, tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = (url.startsWith('https:') ? https.request : http.request)(url, { method: body === undefined ? 'GET' : 'POST', timeout: 1000, ...(tls ?? {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
      res.on('error', () => resolve(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
    request.end(body);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
