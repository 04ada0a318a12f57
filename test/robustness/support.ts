// Shared helpers of the robustness tests: the real daemon and plugin as child processes, raw HTTP
// over the unix socket, a seeded PRNG, tmpfs mounts and network namespaces, and one Cleanup that
// undoes everything (processes, mounts, namespaces, temp dirs) even when a test fails.
//
// Prerequisites (root, tmpfs, netns, setpriv): without them a suite is skipped, except under
// CI=true, where a missing prerequisite fails the suite instead (see describeWithPrereqs).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { DAEMON_BUNDLE, PLUGIN_BUNDLE, ROOT, bundlesReady } from '../support/build.js';
import { type LeaseView, type LeasesResponse, collectLeases } from '../../src/protocol.js';

export { ROOT };

/** Node 24 from the project (node_modules/.bin/node), else the one running vitest. */
export const NODE = existsSync(join(ROOT, 'node_modules', '.bin', 'node')) ? join(ROOT, 'node_modules', '.bin', 'node') : process.execPath;
export const CI = process.env.CI === 'true' || process.env.CI === '1';
export const SOAK = process.env.RESERVOIR_SOAK === '1';

/** Bundle plugin and daemon (once per run) and return their paths. */
export async function bundles(): Promise<{ plugin: string; daemon: string }> {
  await bundlesReady();
  return { plugin: PLUGIN_BUNDLE, daemon: DAEMON_BUNDLE };
}

export { Rng } from '../support/random.js';

/** A seed from $name if set (to reproduce a failure), else a fresh random one. */
export function seedFrom(name: string): number {
  const text = process.env[name];
  if (text !== undefined && /^\d+$/.test(text)) return Number(text) >>> 0;
  return randomBytes(4).readUInt32LE(0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function randomSuffix(n = 6): string {
  return randomBytes(n).toString('hex').slice(0, n);
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Cleanup: LIFO list of undo steps; each step runs even if an earlier one throws.

export class Cleanup {
  private readonly steps: Array<{ label: string; fn: () => unknown }> = [];

  add(label: string, fn: () => unknown): void {
    this.steps.push({ label, fn });
  }

  async run(): Promise<void> {
    const errors: string[] = [];
    while (this.steps.length > 0) {
      const { label, fn } = this.steps.pop()!;
      try {
        await fn();
      } catch (err) {
        errors.push(`${label}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) console.warn(`cleanup problems:\n  ${errors.join('\n  ')}`);
  }

  /** A fresh temp dir under /tmp, removed at cleanup. */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.add(`rm ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

export type Prereq = 'root' | 'tmpfs' | 'netns' | 'setpriv' | 'ext4-loop';

function probe(name: Prereq): string | undefined {
  switch (name) {
    case 'root':
      return process.getuid?.() === 0 ? undefined : 'root (uid 0)';
    case 'tmpfs': {
      if (process.getuid?.() !== 0) return 'tmpfs (needs root)';
      const dir = mkdtempSync(join(tmpdir(), 'rsv-probe-'));
      try {
        const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
        if (m.status !== 0) return `tmpfs (mount -t tmpfs failed: ${(m.stderr || m.error?.message || '').trim()})`;
        spawnSync('umount', [dir]);
        return undefined;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    case 'netns': {
      const name = `rsv-probe-${randomSuffix()}`;
      const a = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
      if (a.status !== 0) return `network namespaces (ip netns add failed: ${(a.stderr || a.error?.message || '').trim()})`;
      spawnSync('ip', ['netns', 'del', name]);
      return undefined;
    }
    case 'ext4-loop': {
      if (process.getuid?.() !== 0) return 'ext4 on a loop device (needs root)';
      const dir = mkdtempSync(join(tmpdir(), 'rsv-probe-'));
      const image = join(dir, 'probe.img');
      const mnt = join(dir, 'mnt');
      try {
        mkdirSync(mnt);
        const steps: Array<[string, string[]]> = [
          ['truncate', ['-s', '4M', image]],
          ['mkfs.ext4', ['-q', image]],
          ['mount', ['-o', 'loop,errors=remount-ro', image, mnt]],
        ];
        for (const [cmd, args] of steps) {
          const r = spawnSync(cmd, args, { encoding: 'utf8' });
          if (r.status !== 0) return `ext4 on a loop device (${cmd} failed: ${(r.stderr || r.error?.message || '').trim()})`;
        }
        const device = mountSource(mnt);
        const trigger = device ? join('/sys/fs/ext4', device.replace(/^\/dev\//, ''), 'trigger_fs_error') : '';
        const ok = trigger !== '' && existsSync(trigger);
        spawnSync('umount', [mnt]);
        return ok ? undefined : `ext4 on a loop device (no ${trigger || 'mount source'})`;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    case 'setpriv': {
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
      return r.status === 0 ? undefined : 'setpriv (util-linux) able to drop to uid 65534';
    }
  }
}

const probed = new Map<Prereq, string | undefined>();

export function missingPrereqs(needs: readonly Prereq[]): string[] {
  return needs
    .map((n) => {
      if (!probed.has(n)) probed.set(n, probe(n));
      return probed.get(n);
    })
    .filter((m): m is string => m !== undefined);
}

/**
 * describe() that needs host capabilities. Missing ones skip the suite locally; under CI=true
 * they fail it (a CI machine that silently skips these tests proves nothing).
 */
export function describeWithPrereqs(name: string, needs: readonly Prereq[], fn: () => void): void {
  const missing = missingPrereqs(needs);
  if (missing.length === 0) {
    describe(name, fn);
  } else if (CI) {
    describe(name, () => {
      it('has its prerequisites', () => {
        throw new Error(`missing prerequisites (CI=true forbids skipping): ${missing.join('; ')}`);
      });
    });
  } else {
    describe.skip(`${name} [skipped, missing: ${missing.join('; ')}]`, fn);
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP over the unix socket

export interface ApiAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly text: string;
  /** Parsed JSON body, or undefined when it is not JSON. */
  readonly json: any;
}

export function api(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  options: { timeoutMs?: number; headers?: Record<string, string | number> } = {},
): Promise<ApiAnswer> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: {
          connection: 'close',
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...options.headers,
        },
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          const text = buf.toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export type { LeaseView } from '../../src/protocol.js';

/** Every lease, page after page ([] when the daemon does not know the network). */
export async function getLeases(socket: string, network?: string): Promise<LeaseView[]> {
  const page = async (after: string | undefined, limit: number) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (network) query.set('network', network);
    if (after !== undefined) query.set('after', after);
    const answer = await api(socket, 'GET', `/v1/leases?${query}`);
    if (answer.status === 404 && answer.json?.code === 107) return { leases: [] };
    if (answer.status !== 200) throw new Error(`GET /v1/leases?${query}: HTTP ${answer.status} ${answer.text}`);
    return answer.json as LeasesResponse;
  };
  return (await collectLeases(page)).leases;
}

export async function health(socket: string, timeoutMs = 2_000): Promise<{ ok: boolean; pid: number; leases: number; networks: number }> {
  const answer = await api(socket, 'GET', '/v1/health', undefined, { timeoutMs });
  if (answer.status !== 200) throw new Error(`GET /v1/health: HTTP ${answer.status} ${answer.text}`);
  return answer.json;
}

// ---------------------------------------------------------------------------------------------
// The daemon as a child process

const liveChildren = new Set<ChildProcess>();
const HAVE_PDEATHSIG = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export interface DaemonSpec {
  readonly socket: string;
  readonly stateDir: string;
  readonly db?: string;
  /** --reclaim-grace seconds; default 0 (off). */
  readonly reclaimGrace?: number;
  readonly extraArgs?: readonly string[];
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly spawnedAt = performance.now();
  stderr = '';
  stdout = '';
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;

  private constructor(daemonBundle: string, readonly spec: DaemonSpec) {
    const args = [
      daemonBundle,
      '--socket',
      spec.socket,
      '--state-dir',
      spec.stateDir,
      '--cni-conf-dir',
      '',
      '--reclaim-grace',
      String(spec.reclaimGrace ?? 0),
      '--log-level',
      'warn',
      ...(spec.db ? ['--db', spec.db] : []),
      ...(spec.extraArgs ?? []),
    ];
    // setpriv --pdeathsig: if the test runner itself is killed, the kernel kills the daemon too
    // (afterAll never runs then). setpriv execs node: the pid stays the daemon's.
    const [cmd, argv] = HAVE_PDEATHSIG ? ['setpriv', ['--pdeathsig', 'KILL', NODE, ...args]] : [NODE, args];
    this.child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    liveChildren.add(this.child);
    this.child.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => {
      if (this.stderr.length < 256 * 1024) this.stderr += c.toString();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        liveChildren.delete(this.child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  static async spawn(spec: DaemonSpec): Promise<DaemonProcess> {
    const { daemon } = await bundles();
    return new DaemonProcess(daemon, spec);
  }

  /** Spawn and wait until /v1/health answers; throws (with the daemon's stderr) if it exits. */
  static async start(spec: DaemonSpec, timeoutMs = 15_000): Promise<DaemonProcess> {
    const d = await DaemonProcess.spawn(spec);
    await d.ready(timeoutMs);
    return d;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with ms from spawn to the first healthy answer. */
  async ready(timeoutMs = 15_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (!this.alive) throw new Error(`reservoird exited (${JSON.stringify(this.exit)}) before answering: ${this.stderr.trim()}`);
      try {
        const h = await health(this.spec.socket, 1_000);
        if (h.ok && h.pid === this.pid) return performance.now() - this.spawnedAt;
      } catch {
        // not yet
      }
      if (performance.now() > deadline) throw new Error(`reservoird did not answer /v1/health within ${timeoutMs} ms: ${this.stderr.trim()}`);
      await sleep(5);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 5_000): Promise<Exit> {
    if (!this.alive) return this.exit!;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** Run the daemon to completion (for start-up refusals): exit code and output, bounded in time. */
export async function runDaemonToExit(spec: DaemonSpec, timeoutMs = 10_000): Promise<Exit & { stderr: string; stdout: string; timedOut: boolean }> {
  const d = await DaemonProcess.spawn(spec);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    d.kill('SIGKILL');
  }, timeoutMs);
  const exit = await d.exited;
  clearTimeout(timer);
  return { ...exit, stderr: d.stderr, stdout: d.stdout, timedOut };
}

// ---------------------------------------------------------------------------------------------
// The plugin as a child process

export interface PluginRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly timedOut: boolean;
  /** stdout parsed as JSON, undefined if empty or not JSON. */
  readonly json: any;
}

export interface PluginCall {
  readonly env: Record<string, string | undefined>;
  readonly stdin: string | Buffer;
  /** Kill the plugin after this long and report timedOut (a hang). */
  readonly killAfterMs?: number;
  /** Run as uid/gid 65534 (setpriv), with no supplementary groups unless nobodyGroups. */
  readonly asNobody?: boolean;
  readonly nobodyGroups?: readonly number[];
}

export async function runPluginProcess(call: PluginCall): Promise<PluginRun> {
  const { plugin } = await bundles();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const [k, v] of Object.entries(call.env)) if (v !== undefined) env[k] = v;
  const [cmd, args] = call.asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', call.nobodyGroups?.length ? `--groups=${call.nobodyGroups.join(',')}` : '--clear-groups', NODE, plugin]]
    : [NODE, [plugin]];
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => undefined); // the plugin may stop reading (over-size stdin)
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, call.killAfterMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      const endedAt = performance.now();
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, ms: endedAt - startedAt, startedAt, endedAt, timedOut, json });
    });
    child.stdin.end(call.stdin);
  });
}

/** A network configuration for the plugin with a reservoir ipam section. */
export function netConf(name: string, socket: string, ipam: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name,
    type: 'bridge',
    ...extra,
    ipam: { type: 'reservoir', socket, timeout: '2s', ranges: [[{ subnet: '10.77.0.0/16' }]], ...ipam },
  };
}

// ---------------------------------------------------------------------------------------------
// Mounts and network namespaces (root only)

function sh(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}

export function must(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function tryRun(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  return sh(cmd, args);
}

function isMountPoint(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

/** Mount a tmpfs of `size` (e.g. "2m") on a new dir; unmounted (lazily if busy) at cleanup. */
export function mountTmpfs(cleanup: Cleanup, dir: string, size: string): string {
  mkdirSync(dir, { recursive: true });
  must('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  cleanup.add(`umount ${dir}`, () => {
    for (let i = 0; i < 3 && isMountPoint(dir); i++) {
      if (sh('umount', [dir]).status !== 0) sh('umount', ['-l', dir]);
    }
    if (isMountPoint(dir)) throw new Error(`${dir} is still mounted`);
  });
  return dir;
}

function mountSource(dir: string): string | undefined {
  const line = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === dir);
  return line?.split(' ')[0];
}

/**
 * An ext4 image of sizeMb on a loop device, mounted with errors=remount-ro: triggerError()
 * makes the kernel turn it read-only under open files, as it does after an I/O error.
 */
export function mountExt4Image(cleanup: Cleanup, image: string, dir: string, sizeMb: number) {
  mkdirSync(dir, { recursive: true });
  must('truncate', ['-s', `${sizeMb}M`, image]);
  must('mkfs.ext4', ['-q', image]);
  const mount = () => must('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  mount();
  cleanup.add(`umount ${dir}`, () => {
    for (let i = 0; i < 3 && isMountPoint(dir); i++) {
      if (sh('umount', [dir]).status !== 0) sh('umount', ['-l', dir]);
    }
    if (isMountPoint(dir)) throw new Error(`${dir} is still mounted`);
  });
  return {
    triggerError(): void {
      const device = mountSource(dir)!.replace(/^\/dev\//, '');
      writeFileSync(join('/sys/fs/ext4', device, 'trigger_fs_error'), '1');
    },
    options(): string {
      const line = readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[1] === dir);
      return line?.split(' ')[3] ?? '';
    },
    /** umount, e2fsck, mount again (the daemon must be stopped). */
    repairAndRemount(): void {
      must('umount', [dir]);
      const fsck = sh('e2fsck', ['-fy', image]);
      if (fsck.status !== null && fsck.status > 3) throw new Error(`e2fsck ${image} failed (${fsck.status}): ${fsck.stderr}`);
      mount();
    },
  };
}

export const NETNS_DIR = '/var/run/netns';

/** Create named network namespaces in one `ip -batch` call; each is deleted at cleanup. */
export function netnsAdd(cleanup: Cleanup, names: readonly string[]): string[] {
  cleanup.add(`delete ${names.length} netns`, () => netnsDel(names));
  const r = spawnSync('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join(''), encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`ip netns add failed: ${r.stderr}`);
  return names.map((n) => join(NETNS_DIR, n));
}

/** Delete namespaces that still exist (ignores ones already gone). */
export function netnsDel(names: readonly string[]): void {
  const present = names.filter((n) => existsSync(join(NETNS_DIR, n)));
  if (present.length === 0) return;
  const r = spawnSync('ip', ['-force', '-batch', '-'], { input: present.map((n) => `netns del ${n}\n`).join(''), encoding: 'utf8', timeout: 120_000 });
  const left = present.filter((n) => existsSync(join(NETNS_DIR, n)));
  if (left.length > 0) throw new Error(`could not delete ${left.length} namespaces (${left.slice(0, 3).join(', ')}…): ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// CNI error checks

export const STACK_LINE = /\n\s+at /;

/** Problems with a CNI error object as the spec shapes it; empty when well-formed. */
export function cniErrorProblems(value: unknown, knownCodes: ReadonlySet<number>): string[] {
  const problems: string[] = [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return ['stdout is not a JSON object'];
  const { code, msg, details } = value as Record<string, unknown>;
  if (typeof code !== 'number' || !knownCodes.has(code)) problems.push(`code ${JSON.stringify(code)} is not a documented code`);
  if (typeof msg !== 'string' || msg.trim() === '') problems.push('msg is not a non-empty string');
  if (typeof msg === 'string' && (STACK_LINE.test(msg) || msg.includes('    at '))) problems.push('msg holds a stack trace');
  if (details !== undefined && typeof details !== 'string') problems.push('details is not a string');
  if (typeof details === 'string' && (STACK_LINE.test(details) || details.includes('    at '))) problems.push('details holds a stack trace');
  return problems;
}
