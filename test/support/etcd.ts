// A real etcd cluster for the cluster-network tests and the benchmark: Debian's etcd 3.4 members
// (/usr/bin/etcd, package etcd-server) on 127.0.0.1, on free random ports (never Debian's own
// service's 2379/2380), each with its own data dir under one temp dir, started by the test and
// removed by its Cleanup (even when the test fails, or the worker exits). Faults are the real
// thing: kill -9 a member, SIGSTOP it (a paused leader: ambiguous commits), stop a majority
// (quorum lost) and start them again on the same data (they rejoin).
//
// TLS (tls: true): a CA, a server certificate for IP 127.0.0.1 and a client certificate, made
// with openssl; client traffic is https with --client-cert-auth, peer traffic stays plain http
// on loopback (what the daemon sees is the client side).
//
//   const etcd = await startEtcdCluster(cleanup, { members: 3, tls: false });
//   const client = await etcd.client();            // an etcd3 Etcd3 on every endpoint, closed at cleanup
//   const i = await etcd.leader(); await etcd.kill(i); await etcd.restart(i);
//   const down = await etcd.stopQuorum(); ... await etcd.restoreQuorum();
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Etcd3, IOptions } from 'etcd3';
import { loadEtcd } from '../../daemon/cluster/etcd-client.js';
import type { Cleanup } from './cleanup.js';
import { ETCD } from './prereqs.js';
import { randomSuffix } from './netns.js';

export interface EtcdTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface EtcdMember {
  readonly name: string;
  clientUrl: string;
  peerUrl: string;
  readonly dataDir: string;
  process: ChildProcess | undefined;
  paused: boolean;
  /** The last 4 KB of its stderr (errors only: --log-level error). */
  stderr: string;
}

export interface EtcdClusterOptions {
  /** Members (default 3). */
  readonly members?: number;
  /** Client traffic over TLS with client certificates (default false). */
  readonly tls?: boolean;
  /** --heartbeat-interval in ms (default 100). */
  readonly heartbeatMs?: number;
  /** --election-timeout in ms (default 1000): reliable on a loaded 2-core machine; 500 saw spurious elections. */
  readonly electionMs?: number;
  /** More etcd flags for every member, e.g. ['--max-txn-ops', '16']. */
  readonly extraArgs?: readonly string[];
}

export interface EtcdCluster {
  /** Client URLs, one per member (https with tls). */
  readonly endpoints: string[];
  readonly members: readonly EtcdMember[];
  /** Client certificates (and the CA) when started with tls. */
  readonly tls: EtcdTls | undefined;
  /** The election timeout the members run with (ms). */
  readonly electionMs: number;
  /** An etcd3 client on `endpoints` (TLS set up), closed at cleanup. `options` are merged in. */
  client(options?: Partial<IOptions>): Promise<Etcd3>;
  /** A fresh key prefix ("/test-XXXXXX/") for one test's keys. */
  prefix(label?: string): string;
  /** The member index of the current leader (asks each live member); waits up to 10 s for one. */
  leader(): Promise<number>;
  /** Signal a member (default SIGKILL) and wait for it to exit. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP / SIGCONT a member. */
  pause(index: number): void;
  resume(index: number): void;
  /** Start a stopped member again on its data dir (it rejoins the cluster). */
  restart(index: number): Promise<void>;
  /** Kill a majority (the leader among them); returns their indexes. */
  stopQuorum(): Promise<number[]>;
  /** Restart every stopped member, resume every paused one, wait until all are healthy. */
  restoreQuorum(): Promise<void>;
  /** Every live member answers its /health with true. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kill every member (the data dirs go with the cleanup's temp dir). */
  close(): Promise<void>;
}

/** A port nobody listens on now (the kernel's choice: ephemeral range, never 2379/2380). */
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

const START_ATTEMPTS = 3;

export async function startEtcdCluster(cleanup: Cleanup, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const count = options.members ?? 3;
  const heartbeatMs = options.heartbeatMs ?? 100;
  const electionMs = options.electionMs ?? 1000;
  const dir = cleanup.tempDir('etcd');
  const certs = options.tls ? makeCertificates(dir) : undefined;
  const scheme = certs ? 'https' : 'http';
  const token = `reservoir-test-${process.pid}-${randomSuffix(6)}`;
  const members: EtcdMember[] = [];
  for (let i = 0; i < count; i++) members.push({ name: `m${i}`, clientUrl: '', peerUrl: '', dataDir: join(dir, `m${i}`), process: undefined, paused: false, stderr: '' });
  const pickPorts = async () => {
    for (const m of members) {
      m.clientUrl = `${scheme}://127.0.0.1:${await freePort()}`;
      m.peerUrl = `http://127.0.0.1:${await freePort()}`;
    }
  };
  const launch = (m: EtcdMember, state: 'new' | 'existing') => {
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', members.map((x) => `${x.name}=${x.peerUrl}`).join(','),
      '--initial-cluster-state', state,
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(heartbeatMs),
      '--election-timeout', String(electionMs),
      '--logger', 'zap',
      '--log-level', 'error',
      ...(certs ? ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth'] : []),
      ...(options.extraArgs ?? []),
    ];
    // A clean environment: etcd reads every ETCD_* variable as a flag.
    const child = spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    m.stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      m.stderr = (m.stderr + d.toString()).slice(-4000);
    });
    child.on('exit', () => {
      if (m.process === child) m.process = undefined;
    });
    m.process = child;
    m.paused = false;
  };
  const killAll = () => {
    for (const m of members) {
      if (m.process && m.paused) m.process.kill('SIGCONT');
      m.process?.kill('SIGKILL');
    }
  };
  cleanup.addSync('etcd members', killAll);

  const tlsFiles = certs && { ca: readFileSync(certs.ca), cert: readFileSync(certs.cert), key: readFileSync(certs.key) };
  const get = (url: string, body?: string) => httpText(url, body, tlsFiles);
  const live = () => members.filter((m) => m.process && !m.paused);
  const clients: Etcd3[] = [];
  cleanup.add('etcd clients', () => {
    for (const c of clients) c.close();
  });

  const cluster: EtcdCluster = {
    get endpoints() {
      return members.map((m) => m.clientUrl);
    },
    members,
    tls: certs && { ca: certs.ca, cert: certs.cert, key: certs.key },
    electionMs,
    async client(extra = {}) {
      const { Etcd3 } = await loadEtcd();
      const credentials = tlsFiles && { rootCertificate: tlsFiles.ca, certChain: tlsFiles.cert, privateKey: tlsFiles.key };
      const client = new Etcd3({ hosts: cluster.endpoints, ...(credentials ? { credentials } : {}), ...extra });
      clients.push(client);
      return client;
    },
    prefix(label = 'test') {
      return `/${label}-${randomSuffix(8)}/`;
    },
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
      if (m.paused && signal !== 'SIGSTOP') child.kill('SIGCONT');
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
        child.kill(signal);
        m.paused = signal === 'SIGSTOP';
        return;
      }
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill(signal);
      });
      m.process = undefined;
      m.paused = false;
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
    async stopQuorum() {
      const leader = await cluster.leader();
      const down = [leader, ...members.keys()].filter((i, at, all) => all.indexOf(i) === at && members[i]!.process).slice(0, Math.floor(count / 2) + 1);
      for (const i of down) await cluster.kill(i);
      return down;
    },
    async restoreQuorum() {
      for (const [i, m] of members.entries()) {
        if (!m.process) await cluster.restart(i);
        else if (m.paused) cluster.resume(i);
      }
      await cluster.waitHealthy();
    },
    async waitHealthy(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const up = live();
        const healthy = await Promise.all(up.map(async (m) => (await get(`${m.clientUrl}/health`))?.includes('"health":"true"') ?? false));
        if (up.length > 0 && healthy.every(Boolean)) return;
        if (Date.now() > until) {
          const tails = members.map((m) => `${m.name} (${m.process ? 'running' : 'not running'}): ${m.stderr.trim() || '-'}`).join('\n');
          throw new Error(`etcd not healthy within ${timeoutMs} ms:\n${tails}`);
        }
        await sleep(100);
      }
    },
    async close() {
      for (const i of members.keys()) await cluster.kill(i);
    },
  };

  // A port picked free may be taken before etcd binds it (parallel test files): start again on new ports.
  for (let attempt = 1; ; attempt++) {
    await pickPorts();
    for (const m of members) launch(m, 'new');
    const failed = await startedOrFailed(members, () => cluster.waitHealthy(30_000));
    if (!failed) return cluster;
    await cluster.close();
    const bindError = members.some((m) => /address already in use/.test(m.stderr));
    if (!bindError || attempt >= START_ATTEMPTS) throw failed;
    for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
  }
}

/** Every member up and healthy (undefined), or why not: one exited (a port taken) or none got healthy. */
async function startedOrFailed(members: readonly EtcdMember[], healthy: () => Promise<void>): Promise<Error | undefined> {
  let exited: EtcdMember | undefined;
  const watch = new Promise<void>((resolve) => {
    for (const m of members) m.process?.once('exit', () => resolve(void (exited ??= m)));
  });
  const ready = healthy();
  ready.catch(() => undefined); // still polling when a member exited first: its timeout is no news
  try {
    await Promise.race([ready, watch]);
  } catch (err) {
    return err as Error;
  }
  return exited ? new Error(`etcd member ${exited.name} exited while starting: ${exited.stderr.trim() || '(no output)'}`) : undefined;
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
