// E2E support for the PACKAGED reservoir executables (build/bin/*): packaging when stale, a
// private snapshot of the executables, the packaged reservoird (test/support/daemon.ts) on a temp
// socket, the reservoirctl CLI, random dual-stack subnets and IPv6 address state.
//
// Everything is registered with a Cleanup (test/support/cleanup.ts) so it is removed even on failure.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { ROOT as REPO_ROOT } from '../support/build.js';
import type { Cleanup } from '../support/cleanup.js';
import { DaemonProcess } from '../support/daemon.js';
import { CNI_PLUGIN_DIR, ip } from '../support/netns.js';
import { removeDir, tempDir } from '../support/tmp.js';

// ---------------------------------------------------------------------------
// Packaging

export const BUILD_BIN = join(REPO_ROOT, 'build', 'bin');
export const EXECUTABLES = ['reservoir', 'reservoird', 'reservoirctl'] as const;
export const SQLITE_ADDON = 'better_sqlite3.node';
/** The plugin's socket transport (native/unix-call.c), beside the plugin. */
export const NATIVE_CALL_ADDON = 'reservoir_call.node';
/** The Kubernetes client, beside reservoird: loaded only with --kubeconfig or in a pod. */
export const KUBE_CLIENT = 'kube-client.cjs';
/** The etcd client, beside reservoird: loaded only with --etcd-endpoints. */
export const ETCD_CLIENT = 'etcd-client.cjs';
/** Sources whose change makes build/bin stale. */
const SOURCE_DIRS = ['src', 'cmd', 'daemon', 'ctl', 'native'];
const PACKAGE_LOCK = join(REPO_ROOT, 'build', '.e2e-package.lock');

function newestMtime(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.isFile()) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Why build/bin must be (re)built, or undefined when it is up to date. */
export function packagingStaleReason(): string | undefined {
  const files = [...EXECUTABLES, SQLITE_ADDON, NATIVE_CALL_ADDON, KUBE_CLIENT, ETCD_CLIENT].map((n) => join(BUILD_BIN, n));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  const oldest = Math.min(...EXECUTABLES.map((n) => statSync(join(BUILD_BIN, n)).mtimeMs));
  for (const d of SOURCE_DIRS) {
    if (newestMtime(join(REPO_ROOT, d)) > oldest) return `${d}/ changed after build/bin was packaged`;
  }
  return undefined;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the executables in DIR are not the real reservoir (e.g. stand-ins packaged with
 * `package.mjs --entry-dir`), or undefined when they look right. Costs ~0.3 s.
 */
export function binariesProblem(dir: string): string | undefined {
  // a scratch cwd: a stand-in may create files named after its arguments
  const cwd = tempDir('probe');
  try {
    return probeAll(dir, cwd);
  } finally {
    removeDir(cwd);
  }
}

function probeAll(dir: string, cwd: string): string | undefined {
  const probe = (name: string, args: string[], env: Record<string, string>, want: RegExp[]): string | undefined => {
    const r = spawnSync(join(dir, name), args, { encoding: 'utf8', timeout: 15_000, env, cwd, input: '' });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (r.error) return `${name}: ${r.error.message}`;
    const missing = want.filter((w) => !w.test(out));
    return missing.length ? `${name} ${args.join(' ')} does not look like reservoir's (no ${missing.join(', ')} in ${JSON.stringify(out.slice(0, 200))})` : undefined;
  };
  return (
    probe('reservoir', [], { CNI_COMMAND: 'VERSION' }, [/"supportedVersions"/]) ??
    probe('reservoirctl', ['--help'], {}, [/\bleases\b/, /\breserved\b/, /\brelease\b/]) ??
    probe('reservoird', ['--help'], {}, [/--state-dir/, /--cni-conf-dir/])
  );
}

/**
 * Package build/bin when it is missing, older than the sources, or not the real thing (`npm run
 * package` when the script exists, else scripts/package.mjs with node_modules' Node 24). A lock
 * file keeps parallel test workers from packaging at the same time. Returns what it did.
 */
export function ensurePackaged(): string {
  mkdirSync(join(REPO_ROOT, 'build'), { recursive: true });
  const deadline = Date.now() + 300_000;
  let packaged = 0;
  for (;;) {
    const why = packagingStaleReason() ?? binariesProblem(BUILD_BIN);
    if (!why) return packaged ? `packaged build/bin ${packaged}x` : 'build/bin is up to date';
    if (packaged >= 2) throw new Error(`build/bin is still unusable after packaging: ${why}`);
    let fd: number;
    try {
      fd = openSync(PACKAGE_LOCK, 'wx');
    } catch {
      // another worker is packaging: wait for it (or take over a lock whose owner died)
      let owner = NaN;
      try {
        owner = Number(readFileSync(PACKAGE_LOCK, 'utf8'));
      } catch {
        // vanished meanwhile
      }
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) rmSync(PACKAGE_LOCK, { force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${PACKAGE_LOCK}`);
      sleepSync(500);
      continue;
    }
    try {
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
      const nodeBin = join(REPO_ROOT, 'node_modules', '.bin', 'node');
      const [cmd, args]: [string, string[]] = pkg.scripts?.package
        ? ['npm', ['run', '--silent', 'package']]
        : [existsSync(nodeBin) ? nodeBin : process.execPath, [join(REPO_ROOT, 'scripts', 'package.mjs')]];
      const started = Date.now();
      const r = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 280_000, maxBuffer: 64 << 20 });
      if (r.error || r.status !== 0) {
        throw new Error(`packaging (${why}) failed: ${cmd} ${args.join(' ')} exit ${r.status}\n${r.stdout}${r.stderr}${r.error?.message ?? ''}`);
      }
      packaged++;
      console.info(`reservoir e2e: packaged build/bin (${why}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      rmSync(PACKAGE_LOCK, { force: true });
    }
  }
}

/**
 * Hardlink the executables (copy the addon) into DIR/bin, so a concurrent re-packaging, which
 * deletes and recreates build/bin/*, cannot pull them from under a running test.
 * Returns DIR/bin.
 */
export function snapshotBinaries(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const n of EXECUTABLES) {
    const src = join(BUILD_BIN, n);
    try {
      linkSync(src, join(bin, n));
    } catch {
      copyFileSync(src, join(bin, n));
    }
  }
  // copied, not linked: package.mjs rewrites the addons in place (copyFileSync), which must not
  // touch a file mapped by our running daemon
  for (const addon of [SQLITE_ADDON, NATIVE_CALL_ADDON, KUBE_CLIENT, ETCD_CLIENT]) copyFileSync(join(BUILD_BIN, addon), join(bin, addon));
  return bin;
}

// ---------------------------------------------------------------------------
// reservoirctl

export interface CtlRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout as JSON, when it parses. */
  json: any;
}

export function reservoirctl(bin: string, socket: string, args: string[]): CtlRun {
  const r = spawnSync(join(bin, 'reservoirctl'), ['--socket', socket, ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`cannot run reservoirctl: ${r.error.message}`);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

export interface Lease {
  network: string;
  ip: string;
  containerId: string | null;
  ifname: string | null;
  app: string | null;
  kind: 'stateful' | 'stateless';
  state: 'attached' | 'held';
  reserved: boolean;
}

// ---------------------------------------------------------------------------
// A whole environment: snapshot + daemon + CNI_PATH + libcni cache

export interface ReservoirEnv {
  dir: string;
  bin: string;
  daemon: DaemonProcess;
  socket: string;
  /** CNI_PATH entries: a dir with `reservoir` -> the packaged plugin, then /usr/lib/cni. */
  cniPath: string[];
  cacheDir: string;
  ctl(args: string[]): CtlRun;
  /** `reservoirctl leases NET -o json` ([] while the daemon does not know the network). */
  leases(network: string): Lease[];
}

/** Package if needed, snapshot, start reservoird; everything registered with cleanup. */
/** `daemonArgs`: more reservoird flags, e.g. --kubeconfig FILE --node-name NAME. */
export async function startReservoirEnv(cleanup: Cleanup, daemonArgs: readonly string[] = []): Promise<ReservoirEnv & { packaging: string }> {
  let packaging = ensurePackaged();
  // on the disk that holds build/bin, so that the snapshot hardlinks instead of copying ~380 MB
  const dir = cleanup.tempDir('e2e', tmpdir());
  let bin = snapshotBinaries(dir);
  // build/bin may have been replaced between the check and the snapshot (someone packaging)
  const problem = binariesProblem(bin);
  if (problem) {
    rmSync(bin, { recursive: true, force: true });
    packaging = `${ensurePackaged()} (snapshot was unusable: ${problem})`;
    bin = snapshotBinaries(dir);
    const again = binariesProblem(bin);
    if (again) throw new Error(`packaged executables are unusable: ${again}`);
  }
  const pluginDir = join(dir, 'cni');
  mkdirSync(pluginDir);
  // a symlink, as installations often have; it points at the snapshot (a hardlink of
  // build/bin/reservoir), which survives a concurrent re-packaging of build/bin
  symlinkSync(join(bin, 'reservoir'), join(pluginDir, 'reservoir'));
  const cacheDir = join(dir, 'cache');
  mkdirSync(cacheDir);
  // the daemon's own defaults (log level, reclaim grace), as installed: these namespaces are real
  const daemon = await DaemonProcess.start(
    { executable: join(bin, 'reservoird'), socket: join(dir, 'r.sock'), stateDir: join(dir, 'state'), cwd: dir, logLevel: 'info', reclaimGrace: 'default', extraArgs: daemonArgs },
    20_000,
  );
  cleanup.add('stop reservoird', () => daemon.stop('SIGTERM', 5_000));
  const ctl = (args: string[]) => reservoirctl(bin, daemon.socket, args);
  return {
    packaging,
    dir,
    bin,
    daemon,
    socket: daemon.socket,
    cniPath: [pluginDir, CNI_PLUGIN_DIR],
    cacheDir,
    ctl,
    leases(network: string): Lease[] {
      const r = ctl(['leases', network, '-o', 'json']);
      if (r.status === 1 && /code 107/.test(r.stderr)) return [];
      if (r.status !== 0) throw new Error(`reservoirctl leases ${network} failed (exit ${r.status}): ${r.stderr}`);
      return (r.json as { leases: Lease[] }).leases;
    },
  };
}

// ---------------------------------------------------------------------------
// Subnets and addresses

export interface DualStackSubnet {
  /** 10.98.X.0/24 */
  v4: string;
  /** "10.98.X" */
  v4Prefix: string;
  /** fd98:X::/64 */
  v6: string;
  /** "fd98:X::" */
  v6Prefix: string;
}

const pickedX = new Set<number>();

/** A random 10.98.X.0/24 + fd98:X::/64 that no host address or route overlaps, unique per process. */
export function pickDualStackSubnet(): DualStackSubnet {
  const used: { addr: ipaddr.IPv4 | ipaddr.IPv6; bits: number }[] = [];
  const note = (text: string | undefined, bits?: number) => {
    if (!text || text === 'default') return;
    try {
      if (text.includes('/')) {
        const [a, b] = ipaddr.parseCIDR(text);
        used.push({ addr: a, bits: b });
      } else {
        const a = ipaddr.parse(text);
        used.push({ addr: a, bits: bits ?? (a.kind() === 'ipv4' ? 32 : 128) });
      }
    } catch {
      // not an address (e.g. "fe80::/64" parses; anything else is ignored)
    }
  };
  for (const fam of ['-4', '-6']) {
    for (const l of JSON.parse(ip(['-j', fam, 'addr', 'show'])) as { addr_info?: { local: string; prefixlen: number }[] }[]) {
      for (const a of l.addr_info ?? []) note(`${a.local}/${a.prefixlen}`);
    }
    for (const r of JSON.parse(ip(['-j', fam, 'route', 'show', 'table', 'all'])) as { dst?: string }[]) note(r.dst);
  }
  const overlaps = (cidr: string) => {
    const [net, bits] = ipaddr.parseCIDR(cidr);
    return used.some((u) => {
      if (u.addr.kind() !== net.kind()) return false;
      // a route wider than /16 (10.0.0.0/8, fd00::/8, ::/0) is not a clash: more specific wins
      if (u.bits < (net.kind() === 'ipv4' ? 16 : 32)) return false;
      const b = Math.min(bits, u.bits);
      return (net as ipaddr.IPv4).match(u.addr as ipaddr.IPv4, b);
    });
  };
  for (let i = 0; i < 200; i++) {
    const x = 1 + (randomBytes(1)[0]! % 254);
    if (pickedX.has(x)) continue;
    const s: DualStackSubnet = { v4: `10.98.${x}.0/24`, v4Prefix: `10.98.${x}`, v6: `fd98:${x}::/64`, v6Prefix: `fd98:${x}::` };
    if (overlaps(s.v4) || overlaps(s.v6)) continue;
    pickedX.add(x);
    return s;
  }
  throw new Error('no free 10.98.X.0/24 + fd98:X::/64 found');
}

/** Is ADDR (no prefix) inside CIDR? */
export function inSubnet(addr: string, cidr: string): boolean {
  const a = ipaddr.parse(addr);
  const [net, bits] = ipaddr.parseCIDR(cidr);
  return a.kind() === net.kind() && (a as ipaddr.IPv4).match(net as ipaddr.IPv4, bits);
}

export interface AddrState {
  family: 'inet' | 'inet6';
  cidr: string;
  address: string;
  scope: string;
  tentative: boolean;
  dadfailed: boolean;
}

/** Every address of IFNAME in netns NS (null: the host; only for links the test made) with its DAD flags. */
export function addrStates(ns: string | null, ifname: string): AddrState[] {
  const out = ip([...(ns ? ['-n', ns] : []), '-j', 'addr', 'show', 'dev', ifname]);
  const parsed = JSON.parse(out) as {
    addr_info?: { family: string; local: string; prefixlen: number; scope: string; tentative?: boolean; dadfailed?: boolean }[];
  }[];
  return (parsed[0]?.addr_info ?? [])
    .filter((a) => a.family === 'inet' || a.family === 'inet6')
    .map((a) => ({
      family: a.family as 'inet' | 'inet6',
      address: a.local,
      cidr: `${a.local}/${a.prefixlen}`,
      scope: a.scope,
      tentative: a.tentative === true,
      dadfailed: a.dadfailed === true,
    }));
}

/** Global addresses of one family, as CIDRs, sorted. */
export function globalCidrs(ns: string | null, ifname: string, family: 'inet' | 'inet6'): string[] {
  return addrStates(ns, ifname)
    .filter((a) => a.family === family && a.scope === 'global')
    .map((a) => a.cidr)
    .sort();
}

/**
 * Wait (up to timeoutMs) until IFNAME in NS (null: host) has a global IPv6 address and all of
 * them have finished DAD. Returns true when none is tentative or dadfailed any more.
 */
export async function waitForDad(ns: string | null, ifname: string, timeoutMs = 3_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v6 = addrStates(ns, ifname).filter((a) => a.family === 'inet6' && a.scope === 'global');
    if (v6.some((a) => a.dadfailed)) return false;
    if (v6.length > 0 && !v6.some((a) => a.tentative)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
