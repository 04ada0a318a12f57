// Network namespaces, links, addresses, ping and the cnirun harness (test/harness/cnirun.go, a
// libcni-based mini runtime), for the e2e and robustness tests and the benchmark's storm.
//
// Everything that touches the host creates uniquely named objects ("rsv-xxxx" namespaces,
// "rsv..."-style links) and registers them with a Cleanup (./cleanup.ts) so they are removed even
// when a test fails. Never pass names of pre-existing host interfaces to the delete helpers.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../scripts/build.mjs';
import type { Cleanup } from './cleanup.js';

// ---------------------------------------------------------------------------
// Paths and constants

export const HARNESS_DIR: string = join(ROOT, 'test', 'harness');
export const HARNESS_BIN: string = join(HARNESS_DIR, 'bin', 'cnirun');
export const HARNESS_BUILD: string = join(HARNESS_DIR, 'build.sh');
/** Debian's containernetworking-plugins install dir. */
export const CNI_PLUGIN_DIR = '/usr/lib/cni';
export const NETNS_DIR = '/var/run/netns';
/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME_LEN = 15;

// ---------------------------------------------------------------------------
// Low-level command execution

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started (e.g. ENOENT). */
  error?: Error;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): ExecResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    input: opts.input,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error } : {}) };
}

/** Run `ip ARGS...`; throws with stderr on failure, returns stdout. */
export function ip(args: string[], opts: { timeoutMs?: number } = {}): string {
  const r = run('ip', args, opts);
  if (r.error || r.status !== 0) {
    throw new Error(`ip ${args.join(' ')} failed (exit ${r.status}): ${r.error?.message ?? r.stderr.trim()}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------
// Names

/** n lowercase [a-z0-9] random characters. */
export function randomSuffix(n = 4): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[bytes[i]! % alphabet.length];
  return s;
}

/** prefix + random suffix; throws if the result exceeds 15 chars (IFNAMSIZ). */
export function uniqueName(prefix: string, randLen = 4): string {
  const name = prefix + randomSuffix(randLen);
  if (name.length > MAX_IFNAME_LEN) throw new Error(`name ${name} is longer than ${MAX_IFNAME_LEN} chars`);
  return name;
}

// ---------------------------------------------------------------------------
// Namespaces

export interface Netns {
  name: string;
  /** /var/run/netns/NAME, what CNI wants as CNI_NETNS. */
  path: string;
}

export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

export function listNetns(): string[] {
  const r = run('ip', ['-j', 'netns', 'list']);
  if (r.status !== 0 || r.stdout.trim() === '') return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
}

/**
 * Create a uniquely named namespace ("rsv-" + 6 random chars by default),
 * bring its loopback up, and register it with cleanup (if given).
 */
export function createNetns(cleanup?: Cleanup, prefix = 'rsv-'): Netns {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const name = prefix + randomSuffix(6);
    if (netnsExists(name)) continue;
    try {
      ip(['netns', 'add', name]);
    } catch (e) {
      // concurrent first-time mounts of /run/netns can race; retry
      lastErr = e;
      continue;
    }
    cleanup?.addSync(`ip netns del ${name}`, () => deleteNetns(name));
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return { name, path: netnsPath(name) };
  }
  throw new Error(`could not create netns: ${String(lastErr)}`);
}

/** Create named namespaces in one `ip -batch` call (fast for hundreds); each is deleted at cleanup. */
export function netnsAdd(cleanup: Cleanup, names: readonly string[]): string[] {
  cleanup.addSync(`delete ${names.length} netns`, () => netnsDel(names));
  const r = run('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join(''), timeoutMs: 120_000 });
  if (r.status !== 0) throw new Error(`ip netns add failed: ${r.error?.message ?? r.stderr}`);
  return names.map(netnsPath);
}

/** Delete the namespaces that still exist, in one `ip -batch` call (ignores ones already gone). */
export function netnsDel(names: readonly string[]): void {
  const present = names.filter(netnsExists);
  if (present.length === 0) return;
  const r = run('ip', ['-force', '-batch', '-'], { input: present.map((n) => `netns del ${n}\n`).join(''), timeoutMs: 120_000 });
  const left = present.filter(netnsExists);
  if (left.length > 0) throw new Error(`could not delete ${left.length} namespaces (${left.slice(0, 3).join(', ')}…): ${r.stderr}`);
}

/** Delete a namespace; no-op if it does not exist. */
export function deleteNetns(name: string): void {
  if (!netnsExists(name)) return;
  const r = run('ip', ['netns', 'del', name]);
  if (r.status !== 0 && netnsExists(name)) {
    throw new Error(`ip netns del ${name} failed: ${r.stderr.trim()}`);
  }
}

/** Run argv inside the namespace (`ip netns exec NS ...`). Never throws on non-zero exit. */
export function execInNetns(ns: string, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): ExecResult {
  return run('ip', ['netns', 'exec', ns, ...argv], opts);
}

// ---------------------------------------------------------------------------
// Links and addresses

function nsArgs(ns?: string | null): string[] {
  return ns ? ['-n', ns] : [];
}

export function linkExists(name: string, ns?: string | null): boolean {
  return run('ip', [...nsArgs(ns), 'link', 'show', 'dev', name]).status === 0;
}

export function listLinks(ns?: string | null): string[] {
  const out = ip([...nsArgs(ns), '-j', 'link', 'show']);
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

/** Delete the link NAME (in ns; undefined = host) at cleanup: for links a plugin or a test made. */
export function deleteLinkAtCleanup(cleanup: Cleanup, name: string, ns?: string): void {
  cleanup.addSync(`ip link del ${name}`, () => deleteLink(name, ns));
}

/** Delete a link; no-op if it (or its namespace) no longer exists. */
export function deleteLink(name: string, ns?: string | null): void {
  if (ns && !netnsExists(ns)) return;
  if (!linkExists(name, ns)) return;
  const r = run('ip', [...nsArgs(ns), 'link', 'del', 'dev', name]);
  if (r.status !== 0 && linkExists(name, ns)) {
    throw new Error(`ip link del ${name} failed: ${r.stderr.trim()}`);
  }
}

/** Create a host bridge (must be a fresh unique name), set it up, register it. */
export function createBridge(name: string, cleanup?: Cleanup): string {
  if (linkExists(name)) throw new Error(`refusing to reuse existing link ${name}`);
  ip(['link', 'add', 'name', name, 'type', 'bridge']);
  if (cleanup) deleteLinkAtCleanup(cleanup, name);
  ip(['link', 'set', 'dev', name, 'up']);
  return name;
}

/**
 * Create a veth pair in the host with fresh unique names, register the host end,
 * optionally move the peer into peerNs, and bring both ends up.
 */
export function createVethPair(hostName: string, peerName: string, cleanup?: Cleanup, peerNs?: string): void {
  for (const n of [hostName, peerName]) {
    if (linkExists(n)) throw new Error(`refusing to reuse existing link ${n}`);
  }
  ip(['link', 'add', 'name', hostName, 'type', 'veth', 'peer', 'name', peerName]);
  if (cleanup) deleteLinkAtCleanup(cleanup, hostName);
  if (peerNs) ip(['link', 'set', 'dev', peerName, 'netns', peerNs]);
  ip(['link', 'set', 'dev', hostName, 'up']);
  ip([...nsArgs(peerNs), 'link', 'set', 'dev', peerName, 'up']);
}

/** Add an address (CIDR) to a link in ns (null/undefined = host; only for links you created). */
export function addAddress(ns: string | null | undefined, ifname: string, cidr: string): void {
  ip([...nsArgs(ns), 'addr', 'add', cidr, 'dev', ifname]);
}

export interface IfAddr {
  family: 'inet' | 'inet6';
  address: string;
  prefixlen: number;
  scope: string;
  /** address/prefixlen */
  cidr: string;
}

/** Addresses of an interface (`ip -j -n NS addr show dev IF`); ns null = host. Throws if missing. */
export function getAddresses(ns: string | null | undefined, ifname: string): IfAddr[] {
  const out = ip([...nsArgs(ns), '-j', 'addr', 'show', 'dev', ifname]);
  const parsed = JSON.parse(out) as { addr_info?: { family: string; local: string; prefixlen: number; scope: string }[] }[];
  const infos = parsed[0]?.addr_info ?? [];
  return infos
    .filter((a) => a.family === 'inet' || a.family === 'inet6')
    .map((a) => ({
      family: a.family as 'inet' | 'inet6',
      address: a.local,
      prefixlen: a.prefixlen,
      scope: a.scope,
      cidr: `${a.local}/${a.prefixlen}`,
    }));
}

/** Global-scope IPv4 CIDRs of an interface, e.g. ["10.99.7.2/24"]. */
export function getIPv4Cidrs(ns: string | null | undefined, ifname: string): string[] {
  return getAddresses(ns, ifname)
    .filter((a) => a.family === 'inet' && a.scope === 'global')
    .map((a) => a.cidr);
}

/**
 * Pick a random 10.99.X.0/24 (X in 1..254) that no host address or route overlaps.
 * Returns { subnet, prefix } where prefix is "10.99.X" for building addresses.
 */
export function pickFreeSubnet24(base = '10.99'): { subnet: string; prefix: string } {
  const used = new Set<string>();
  const collect = (s: string) => {
    const m = /^(\d+\.\d+\.\d+)\./.exec(s);
    if (m) used.add(m[1]!);
  };
  for (const a of JSON.parse(ip(['-j', '-4', 'addr', 'show'])) as { addr_info?: { local: string }[] }[]) {
    for (const i of a.addr_info ?? []) collect(i.local);
  }
  for (const r of JSON.parse(ip(['-j', '-4', 'route', 'show', 'table', 'all'])) as { dst: string }[]) {
    if (r.dst?.startsWith(base + '.')) collect(r.dst);
    // a wider route covering base.* (e.g. 10.0.0.0/8) is not considered a clash
  }
  for (let i = 0; i < 100; i++) {
    const x = 1 + (randomBytes(1)[0]! % 254);
    const prefix = `${base}.${x}`;
    if (!used.has(prefix)) return { subnet: `${prefix}.0/24`, prefix };
  }
  throw new Error(`no free ${base}.X.0/24 subnet found`);
}

// ---------------------------------------------------------------------------
// Ping

export function pingAvailable(): boolean {
  const r = run('ping', ['-V']);
  return !r.error;
}

/**
 * `ip netns exec NS ping -c1 -W2 ADDR`, retried (default 3 attempts) to ride
 * out first-packet ARP/neighbour setup. Returns true on success.
 */
export function ping(ns: string, addr: string, opts: { attempts?: number; waitSec?: number } = {}): boolean {
  return pingDetailed(ns, addr, opts).ok;
}

/** Like ping() but throws with ping's output on failure (better test messages). */
export function assertPing(ns: string, addr: string, opts: { attempts?: number; waitSec?: number } = {}): void {
  const r = pingDetailed(ns, addr, opts);
  if (!r.ok) throw new Error(`ping ${addr} from netns ${ns} failed:\n${r.output}`);
}

function pingDetailed(ns: string, addr: string, opts: { attempts?: number; waitSec?: number }): { ok: boolean; output: string } {
  const attempts = opts.attempts ?? 3;
  const wait = String(opts.waitSec ?? 2);
  let output = '';
  for (let i = 0; i < attempts; i++) {
    const r = execInNetns(ns, ['ping', '-c1', '-W', wait, addr], { timeoutMs: 10_000 });
    if (r.error) throw new Error(`cannot run ping (apt-get install iputils-ping): ${r.error.message}`);
    output = r.stdout + r.stderr;
    if (r.status === 0) return { ok: true, output };
  }
  return { ok: false, output };
}

// ---------------------------------------------------------------------------
// Temp files and conflists

/**
 * Write a conflist (object or JSON string) to DIR/NAME.conflist; DIR defaults
 * to a fresh temp dir registered with cleanup. Returns the file path.
 */
export function writeConflist(conflist: object | string, cleanup: Cleanup, dir?: string): string {
  const d = dir ?? cleanup.tempDir('conf');
  const text = typeof conflist === 'string' ? conflist : JSON.stringify(conflist, null, 2);
  const name = (JSON.parse(text) as { name?: string }).name ?? 'net';
  const file = join(d, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomSuffix(4)}.conflist`);
  writeFileSync(file, text);
  return file;
}

// ---------------------------------------------------------------------------
// cnirun harness

export type CniCommand = 'add' | 'check' | 'del';

export interface CniError {
  /** CNI error code when the plugin returned a structured error; undefined otherwise. */
  code?: number;
  msg: string;
  details?: string;
}

/** Minimal shape of a CNI 1.0 result (as printed by libcni). */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
  [k: string]: unknown;
}

export interface CniRunOutcome {
  ok: boolean;
  exitCode: number;
  /** Parsed ADD result (add only, when ok). */
  result?: CniResult;
  error?: CniError;
  stdout: string;
  stderr: string;
}

export interface CniRunOptions {
  /** libcni cache dir; required because ADD/CHECK/DEL must share it (cleanup.tempDir). */
  cacheDir: string;
  /** Plugin dirs; default [CNI_PLUGIN_DIR]. */
  cniPath?: string[];
  /** RuntimeConfig capability args, e.g. { ips: ['10.0.0.5/24'] }. */
  capArgs?: Record<string, unknown>;
  /** CNI_ARGS-style args: { K: 'V' } or "K=V;K2=V2". */
  extraArgs?: Record<string, string> | string;
  /** Extra environment for cnirun (and thus the plugins). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Run the cnirun harness (async so tests can run ADDs concurrently). Never rejects on plugin failure. */
export function runCni(
  cmd: CniCommand,
  conflistPath: string,
  containerId: string,
  netnsPathOrName: string,
  ifname: string,
  opts: CniRunOptions,
): Promise<CniRunOutcome> {
  const nsPath = netnsPathOrName.includes('/') ? netnsPathOrName : netnsPath(netnsPathOrName);
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...opts.env,
    CNI_PATH: (opts.cniPath ?? [CNI_PLUGIN_DIR]).join(':'),
    CNI_CACHE_DIR: opts.cacheDir,
  };
  delete env.CAP_ARGS;
  delete env.EXTRA_ARGS;
  if (opts.capArgs) env.CAP_ARGS = JSON.stringify(opts.capArgs);
  if (opts.extraArgs) {
    env.EXTRA_ARGS =
      typeof opts.extraArgs === 'string'
        ? opts.extraArgs
        : Object.entries(opts.extraArgs)
            .map(([k, v]) => `${k}=${v}`)
            .join(';');
  }
  return new Promise((resolvePromise) => {
    execFile(
      HARNESS_BIN,
      [cmd, conflistPath, containerId, nsPath, ifname],
      { env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const exitCode = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        const out: CniRunOutcome = { ok: !err, exitCode, stdout, stderr };
        const trimmed = stdout.trim();
        if (!err) {
          if (cmd === 'add' && trimmed) out.result = JSON.parse(trimmed) as CniResult;
        } else {
          let parsed: CniError | undefined;
          if (trimmed.startsWith('{')) {
            try {
              parsed = JSON.parse(trimmed) as CniError;
            } catch {
              parsed = undefined;
            }
          }
          out.error = parsed ?? { msg: stderr.trim() || err.message };
        }
        resolvePromise(out);
      },
    );
  });
}

/** Build the harness via build.sh (no-op when up to date). Returns an error message or undefined. */
export function buildHarness(): string | undefined {
  const r = run('sh', [HARNESS_BUILD], { timeoutMs: 300_000 });
  if (r.error || r.status !== 0) return (r.stderr || r.stdout || r.error?.message || 'build failed').trim();
  return undefined;
}
