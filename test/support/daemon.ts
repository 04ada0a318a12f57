// Daemons for integration tests: in-process (startDaemon on a temp socket and a temp SQLite
// file) or as a real child process (node build/test-bundles/reservoird.cjs), plus the operator
// endpoints the tests read (leases, usage) through the real client.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type Daemon, startDaemon } from '../../daemon/app.js';
import { callDaemon } from '../../src/client.js';
import { type LeaseView, type LeasesResponse, type UsageView, collectLeases } from '../../src/protocol.js';
import { DAEMON_BUNDLE, ROOT } from './build.js';
import { removeDir, tempDir } from './tmp.js';

export interface DaemonPaths {
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly dbPath: string;
}

export function daemonPaths(dir: string): DaemonPaths {
  const stateDir = join(dir, 'state');
  return { dir, socket: join(dir, 'run', 'reservoir.sock'), stateDir, dbPath: join(stateDir, 'reservoir.db') };
}

/** Every lease of a network, page after page ([] when the daemon does not know the network yet). */
export async function leasesOf(socket: string, network: string): Promise<LeaseView[]> {
  try {
    const page = (after: string | undefined, limit: number) =>
      callDaemon<LeasesResponse>('leases', { socket, timeoutMs: 5_000, query: { network, after, limit: String(limit) } });
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
  const answer = await callDaemon<{ networks: UsageView[] }>('usage', { socket, timeoutMs: 5_000, query: { network } });
  return answer.networks[0]!;
}

export interface InProcessDaemon extends DaemonPaths {
  daemon: Daemon;
  /** Stop serving (the files stay). */
  stop(): Promise<void>;
  /** Serve again on the same socket and database. */
  restart(): Promise<void>;
  /** Stop and remove the temp directory. */
  close(): Promise<void>;
}

export async function startInProcessDaemon(label: string): Promise<InProcessDaemon> {
  const paths = daemonPaths(tempDir(label));
  const open = () => startDaemon({ socket: paths.socket, dbPath: paths.dbPath, stateDir: paths.stateDir, cniConfDir: undefined });
  let running: Daemon | undefined = await open();
  const handle: InProcessDaemon = {
    ...paths,
    daemon: running,
    async stop() {
      const current = running;
      running = undefined;
      await current?.close();
    },
    async restart() {
      await handle.stop();
      running = await open();
      handle.daemon = running;
    },
    async close() {
      await handle.stop();
      removeDir(paths.dir);
    },
  };
  return handle;
}

/** reservoird as a real process: `node reservoird.cjs --socket S --state-dir D --cni-conf-dir ""`. */
export class ChildDaemon {
  readonly paths: DaemonPaths;
  private child: ChildProcess | undefined;
  private stderr = '';

  constructor(readonly dir: string) {
    this.paths = daemonPaths(dir);
  }

  get socket(): string {
    return this.paths.socket;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawn and wait until /v1/health answers. */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.child) throw new Error('daemon already running');
    this.stderr = '';
    const child = spawn(
      process.execPath,
      [DAEMON_BUNDLE, '--socket', this.paths.socket, '--state-dir', this.paths.stateDir, '--cni-conf-dir', '', '--log-level', 'warn'],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.once('exit', (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) {
        this.child = undefined;
        throw new Error(`reservoird exited during start (code ${exited.code}, signal ${exited.signal}): ${this.stderr}`);
      }
      try {
        await callDaemon('health', { socket: this.paths.socket, timeoutMs: 1_000 });
        return;
      } catch {
        if (Date.now() > deadline) {
          await this.stop('SIGKILL');
          throw new Error(`reservoird did not answer /v1/health within ${timeoutMs} ms: ${this.stderr}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  /** Send a signal and wait for the process to end; returns how it ended. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child) return { code: null, signal: null };
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
    return new Promise((resolve) => {
      const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', (code, sig) => {
        clearTimeout(force);
        resolve({ code, signal: sig });
      });
      child.kill(signal);
    });
  }

  /** Pause or resume the process (SIGSTOP / SIGCONT): a daemon that accepts but never answers. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  get log(): string {
    return this.stderr;
  }
}
