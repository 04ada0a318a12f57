// The one way tests (and the benchmark) run reservoird, in four modes:
//   - in process: startInProcessDaemon, daemon/app.ts's startDaemon on a temp socket, SQLite file
//     and state dir, with an optional fake clock;
//   - child process: DaemonProcess, `node build/test-bundles/reservoird.cjs --socket ...`;
//   - packaged executable: DaemonProcess with `executable` (build/bin/reservoird or a snapshot);
//   - supervised: SupervisedDaemon, a child process restarted after every death, as systemd would.
// Plus the operator endpoints tests read (leases, usage, health) through the real client.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Daemon, type DaemonOptions, startDaemon } from '../../daemon/app.js';
import { callDaemon } from '../../src/client.js';
import { type LeaseView, type LeasesResponse, type UsageView, collectLeases } from '../../src/protocol.js';
import { DAEMON_BUNDLE, ROOT, bundlesReady } from './build.js';
import type { Cleanup } from './cleanup.js';
import { removeDir, tempDir } from './tmp.js';

/** Node 24 from the project (node_modules/.bin/node), else the one running the tests. */
export const NODE = existsSync(join(ROOT, 'node_modules', '.bin', 'node')) ? join(ROOT, 'node_modules', '.bin', 'node') : process.execPath;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface DaemonPaths {
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly dbPath: string;
}

/** Where a daemon rooted at dir keeps its socket, state dir and database. */
export function daemonPaths(dir: string): DaemonPaths {
  const stateDir = join(dir, 'state');
  return { dir, socket: join(dir, 'run', 'reservoir.sock'), stateDir, dbPath: join(stateDir, 'reservoir.db') };
}

// ---------------------------------------------------------------------------------------------
// What tests read from a daemon

/** Every lease (of one network, or all), page after page ([] when the daemon does not know the network). */
export async function leasesOf(socket: string, network?: string): Promise<LeaseView[]> {
  try {
    const page = (after: string | undefined, limit: number) =>
      callDaemon<LeasesResponse>('leases', { socket, timeoutMs: 10_000, query: { network, after, limit: String(limit) } });
    return (await collectLeases(page)).leases;
  } catch (err) {
    if ((err as { code?: number }).code === 107) return [];
    throw err;
  }
}

/** The IPs (no prefix) leased to one attachment, sorted. */
export async function ipsOf(socket: string, network: string, containerId: string, ifname = 'eth0'): Promise<string[]> {
  const leases = await leasesOf(socket, network);
  return leases.filter((l) => l.containerId === containerId && l.ifname === ifname).map((l) => l.ip).sort();
}

export async function usageOf(socket: string, network: string): Promise<UsageView> {
  const answer = await callDaemon<{ networks: UsageView[] }>('usage', { socket, timeoutMs: 10_000, query: { network } });
  return answer.networks[0]!;
}

export interface Health {
  readonly ok: boolean;
  readonly pid: number;
  readonly leases: number;
  readonly networks: number;
}

export function health(socket: string, timeoutMs = 2_000): Promise<Health> {
  return callDaemon<Health>('health', { socket, timeoutMs });
}

// ---------------------------------------------------------------------------------------------
// In process

/** A clock a test moves by hand (holds, grace periods), injected as DaemonOptions.now. */
export class Clock {
  static readonly START = 1_750_000_000_000;
  constructor(public ms = Clock.START) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface InProcessDaemon extends DaemonPaths {
  /** The running daemon (a new one after restart()). */
  readonly daemon: Daemon;
  /** Stop serving (the files stay). */
  stop(): Promise<void>;
  /** Serve again on the same socket and database (a daemon restart). */
  restart(): Promise<void>;
  /** Stop and remove the temp directory (again: no-op). */
  close(): Promise<void>;
}

/** startDaemon in this process, in a fresh temp dir; options override the defaults (no CNI config dir). */
export async function startInProcessDaemon(label: string, options: Partial<DaemonOptions> = {}): Promise<InProcessDaemon> {
  const paths = daemonPaths(tempDir(label));
  const full: DaemonOptions = { socket: paths.socket, dbPath: paths.dbPath, stateDir: paths.stateDir, cniConfDir: undefined, ...options };
  let running: Daemon | undefined = await startDaemon(full);
  let closed = false;
  const handle: InProcessDaemon = {
    ...paths,
    get daemon() {
      if (!running) throw new Error('the in-process daemon is stopped');
      return running;
    },
    async stop() {
      const current = running;
      running = undefined;
      await current?.close();
    },
    async restart() {
      await handle.stop();
      running = await startDaemon(full);
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.stop();
      removeDir(paths.dir);
    },
  };
  return handle;
}

// ---------------------------------------------------------------------------------------------
// Child process (the test bundle or a packaged executable)

export interface DaemonSpec {
  readonly socket: string;
  readonly stateDir: string;
  readonly db?: string;
  /** --reclaim-grace seconds; default 0 (off: tests use made-up netns paths); 'default': the daemon's own. */
  readonly reclaimGrace?: number | 'default';
  /** --log-level; default warn. */
  readonly logLevel?: string;
  readonly extraArgs?: readonly string[];
  /** A packaged reservoird to run; default: Node with the test bundle (build/test-bundles/reservoird.cjs). */
  readonly executable?: string;
  readonly cwd?: string;
  /** The daemon's PATH. */
  readonly path?: string;
  /** More environment (RESERVOIR_* twins, fault-injection points). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const liveChildren = new Set<ChildProcess>();
const HAVE_PDEATHSIG = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Keep at most this much of a daemon's output (a runaway log must not eat the runner's memory). */
const OUTPUT_LIMIT = 256 * 1024;

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly spawnedAt = performance.now();
  stderr = '';
  stdout = '';
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;

  private constructor(readonly spec: DaemonSpec) {
    const grace = spec.reclaimGrace ?? 0;
    const args = [
      '--socket',
      spec.socket,
      '--state-dir',
      spec.stateDir,
      '--cni-conf-dir',
      '',
      '--log-level',
      spec.logLevel ?? 'warn',
      ...(grace === 'default' ? [] : ['--reclaim-grace', String(grace)]),
      ...(spec.db ? ['--db', spec.db] : []),
      ...(spec.extraArgs ?? []),
    ];
    const program = spec.executable ? [spec.executable, ...args] : [NODE, DAEMON_BUNDLE, ...args];
    // setpriv --pdeathsig: if the test runner itself is killed, the kernel kills the daemon too
    // (afterAll never runs then). setpriv execs the daemon: the pid stays the daemon's.
    const [cmd, ...argv] = HAVE_PDEATHSIG ? ['setpriv', '--pdeathsig', 'KILL', ...program] : program;
    this.child = spawn(cmd!, argv, {
      cwd: spec.cwd ?? ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: spec.path ?? process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env },
    });
    liveChildren.add(this.child);
    this.child.stdout!.on('data', (c: Buffer) => {
      if (this.stdout.length < OUTPUT_LIMIT) this.stdout += c.toString();
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      if (this.stderr.length < OUTPUT_LIMIT) this.stderr += c.toString();
    });
    this.exited = new Promise((resolve) => {
      const ended = (exit: Exit) => {
        liveChildren.delete(this.child);
        this.exit ??= exit;
        resolve(this.exit);
      };
      this.child.once('exit', (code, signal) => ended({ code, signal }));
      this.child.once('error', (err) => {
        this.stderr += `cannot start ${cmd}: ${err.message}\n`;
        ended({ code: null, signal: null });
      });
    });
  }

  /** Spawn without waiting for it to serve. */
  static async spawn(spec: DaemonSpec): Promise<DaemonProcess> {
    if (!spec.executable) await bundlesReady();
    return new DaemonProcess(spec);
  }

  /** Spawn and wait until /v1/health answers; throws (with the daemon's output) if it exits first. */
  static async start(spec: DaemonSpec, timeoutMs = 15_000): Promise<DaemonProcess> {
    const d = await DaemonProcess.spawn(spec);
    try {
      await d.ready(timeoutMs);
    } catch (err) {
      d.kill('SIGKILL');
      await d.exited;
      throw err;
    }
    return d;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get socket(): string {
    return this.spec.socket;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** What the daemon wrote (stderr, then stdout). */
  get log(): string {
    return `${this.stderr}${this.stdout}`;
  }

  /** Resolves with ms from spawn to the first healthy answer from this process. */
  async ready(timeoutMs = 15_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (!this.alive) throw new Error(`reservoird exited (${JSON.stringify(this.exit)}) before answering: ${this.log.trim()}`);
      try {
        const h = await health(this.spec.socket, 1_000);
        if (h.ok && h.pid === this.pid) return performance.now() - this.spawnedAt;
      } catch {
        // not serving yet
      }
      if (performance.now() > deadline) throw new Error(`reservoird did not answer /v1/health within ${timeoutMs} ms: ${this.log.trim()}`);
      await sleep(5);
    }
  }

  /** Send a signal (SIGKILL by default; SIGSTOP/SIGCONT pause and resume it) if it still runs. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /** Send `signal` (SIGTERM), SIGKILL after graceMs; resolves with how it ended. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
    if (!this.alive) return this.exit!;
    this.child.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

export interface DaemonInDir {
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  /** The process serving now (a new one after restart()). */
  readonly daemon: DaemonProcess;
  /** Stop the current process (if it still runs) and start another on the same socket and state. */
  restart(): Promise<DaemonProcess>;
}

/**
 * A child-process daemon in a fresh temp dir of cleanup's (socket DIR/run/r.sock, state DIR/state;
 * spec adds flags), started and serving; cleanup stops whichever process serves by then.
 */
export async function startDaemonIn(cleanup: Cleanup, label: string, spec: Partial<DaemonSpec> = {}): Promise<DaemonInDir> {
  const dir = cleanup.tempDir(label);
  const full: DaemonSpec = { socket: join(dir, 'run', 'r.sock'), stateDir: join(dir, 'state'), ...spec };
  let current = await DaemonProcess.start(full);
  cleanup.add(`stop reservoird in ${dir}`, () => current.stop());
  return {
    dir,
    socket: full.socket,
    stateDir: full.stateDir,
    get daemon() {
      return current;
    },
    async restart() {
      await current.stop();
      current = await DaemonProcess.start(full);
      return current;
    },
  };
}

/** Run the daemon to completion (for start-up refusals): how it ended and its output, bounded in time. */
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
// Supervised

/**
 * A child-process daemon restarted after every death, restartDelayMs() after it, as a service
 * manager would. Deaths the test did not ask for (expectDeath) are collected in unexpectedDeaths.
 */
export class SupervisedDaemon {
  current: DaemonProcess | undefined;
  spawns = 0;
  readonly unexpectedDeaths: string[] = [];
  private stopping = false;
  private readonly expected = new WeakSet<DaemonProcess>();
  private readonly loop: Promise<void>;

  constructor(
    readonly spec: DaemonSpec,
    private readonly restartDelayMs: () => number,
  ) {
    this.loop = this.supervise();
  }

  private async supervise(): Promise<void> {
    while (!this.stopping) {
      const d = await DaemonProcess.spawn(this.spec);
      this.spawns++;
      this.current = d;
      if (this.stopping) {
        await d.stop();
        break;
      }
      const exit = await d.exited;
      if (this.stopping) break;
      if (!this.expected.has(d)) this.unexpectedDeaths.push(`reservoird ${d.pid} died on its own (${JSON.stringify(exit)}): ${d.log.trim().slice(0, 2000)}`);
      await sleep(this.restartDelayMs());
    }
  }

  /** Kill d (a death the test causes; the supervisor restarts it) and wait until it is gone. */
  async kill(d: DaemonProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.expected.add(d);
    d.kill(signal);
    await d.exited;
  }

  /** Wait until the current daemon serves (the supervisor may be restarting it). */
  async serving(): Promise<DaemonProcess> {
    for (;;) {
      const d = this.current;
      if (d?.alive) {
        try {
          await d.ready(15_000);
          if (d.alive) return d;
        } catch {
          // killed between checks: the supervisor restarts it
        }
      }
      await sleep(20);
    }
  }

  /** Stop supervising and stop the current daemon. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.current?.stop();
    await this.loop;
  }
}
