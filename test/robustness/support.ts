// Helpers of the robustness tests only: the plugin as a child process (optionally as uid 65534),
// seeds, and checks of CNI error objects. The daemon, Cleanup, prerequisites, raw HTTP, mounts and
// namespaces are test/support's.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, linkSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { NATIVE_CALL, PLUGIN_EXE, bundlesReady } from '../support/build.js';
import { removeDir, tempDir } from '../support/tmp.js';

export const SOAK = process.env.RESERVOIR_SOAK === '1';

/** A seed from $name if set (to reproduce a failure), else a fresh random one. */
export function seedFrom(name: string): number {
  const text = process.env[name];
  if (text !== undefined && /^\d+$/.test(text)) return Number(text) >>> 0;
  return randomBytes(4).readUInt32LE(0);
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
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

const liveChildren = new Set<ReturnType<typeof spawn>>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/**
 * The plugin executable and its addon in a directory uid 65534 can read: the clone itself may
 * sit where only root gets in (root's home is 0700). Under os.tmpdir(), not /dev/shm, which a
 * container may mount noexec. Hard links where the file system allows, else copies; removed when
 * the run ends.
 */
function filesForNobody(plugin: string): { dir: string; plugin: string } {
  const dir = tempDir('nobody', tmpdir());
  chmodSync(dir, 0o755);
  const place = (from: string, name: string, mode: number) => {
    const to = join(dir, name);
    // A link shares the original's mode: only where that already lets others in.
    const others = mode & 0o007;
    try {
      if ((statSync(from).mode & others) !== others) throw new Error('copy instead');
      linkSync(from, to);
    } catch {
      copyFileSync(from, to);
      chmodSync(to, mode);
    }
    return to;
  };
  // The addon beside the plugin, as installed: the plugin loads it from its own directory.
  place(NATIVE_CALL, basename(NATIVE_CALL), 0o644);
  return { dir, plugin: place(plugin, basename(plugin), 0o755) };
}

export async function runPluginProcess(call: PluginCall): Promise<PluginRun> {
  await bundlesReady();
  const plugin = PLUGIN_EXE; // the shipped executable
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const [k, v] of Object.entries(call.env)) if (v !== undefined) env[k] = v;
  const nobody = call.asNobody ? filesForNobody(plugin) : undefined;
  const [cmd, args] = nobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', call.nobodyGroups?.length ? `--groups=${call.nobodyGroups.join(',')}` : '--clear-groups', nobody.plugin]]
    : [plugin, []];
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
      removeDir(nobody?.dir);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      removeDir(nobody?.dir);
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
