// Run the REAL plugin as shipped (build/test-bundles/reservoir, bun-compiled, beside its native
// exchange) as a runtime would: CNI_* environment, the network config on stdin, one JSON object
// (or nothing) back on stdout. A `program` ending in .cjs is a Node bundle, run with this Node.
import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { PLUGIN_EXE, ROOT } from './build.js';

export type CniCommandName = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION' | string;

export interface PluginCall {
  readonly command?: CniCommandName | undefined;
  readonly containerId?: string | undefined;
  readonly ifname?: string | undefined;
  /** Defaults to a plausible path for ADD/CHECK/DEL; pass null to leave CNI_NETNS unset. */
  readonly netns?: string | null | undefined;
  readonly args?: string | undefined;
  /** An object is JSON-encoded; a string or Buffer is sent as is. */
  readonly config: unknown;
  /** Extra or overriding environment; undefined values unset a variable. */
  readonly env?: Record<string, string | undefined>;
  readonly killAfterMs?: number;
  /** Another plugin to run: an executable, or a Node bundle (.cjs). Default: PLUGIN_EXE. */
  readonly program?: string;
}

export interface PluginRun {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as one JSON value; undefined when stdout is empty. */
  readonly json: any;
  readonly durationMs: number;
}

export function runPlugin(call: PluginCall): Promise<PluginRun> {
  const env: Record<string, string> = { CNI_PATH: '/opt/cni/bin' };
  const set = (key: string, value: string | null | undefined) => {
    if (value !== undefined && value !== null) env[key] = value;
  };
  set('CNI_COMMAND', call.command);
  set('CNI_CONTAINERID', call.containerId);
  set('CNI_IFNAME', call.ifname ?? (call.containerId ? 'eth0' : undefined));
  set('CNI_NETNS', call.netns === undefined ? (call.containerId ? `/var/run/netns/${call.containerId}` : undefined) : call.netns);
  set('CNI_ARGS', call.args);
  for (const [key, value] of Object.entries(call.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const input = typeof call.config === 'string' || Buffer.isBuffer(call.config) ? call.config : JSON.stringify(call.config);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const program = call.program ?? PLUGIN_EXE;
    const [command, args] = program.endsWith('.cjs') ? [process.execPath, [program]] : [program, []];
    const child = spawn(command, args, { env, cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const killer = setTimeout(() => child.kill('SIGKILL'), call.killAfterMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(killer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      let json: unknown;
      if (stdout.trim() !== '') {
        try {
          json = JSON.parse(stdout);
        } catch {
          json = { unparsable: stdout };
        }
      }
      resolve({ exitCode, signal, stdout, stderr, json, durationMs: performance.now() - started });
    });
    child.stdin.on('error', () => undefined); // the plugin may exit before reading all of stdin
    child.stdin.end(input);
  });
}

const STACK_LINE = /^\s+at .+[(:]\d+/m;

function describeRun(run: PluginRun): string {
  return `exit ${run.exitCode}${run.signal ? ` (${run.signal})` : ''}, stdout: ${run.stdout.trim() || '(empty)'}${run.stderr ? `, stderr: ${run.stderr.trim()}` : ''}`;
}

/** Exit 0 and nothing but one JSON object (or nothing at all, for DEL/GC/STATUS) on stdout. */
export function expectOk(run: PluginRun, output: 'object' | 'empty' = 'empty'): any {
  expect(run.exitCode, describeRun(run)).toBe(0);
  if (output === 'empty') expect(run.stdout.trim(), describeRun(run)).toBe('');
  else expectSingleObject(run);
  return run.json;
}

/** Exit 1 with exactly one CNI error object on stdout, the given code, no stack trace anywhere. */
export function expectError(run: PluginRun, code: number, msg?: RegExp | string): { code: number; msg: string; details?: string; cniVersion?: string } {
  expect(run.exitCode, describeRun(run)).toBe(1);
  expectSingleObject(run);
  expect(run.json.code, describeRun(run)).toBe(code);
  expect(typeof run.json.msg).toBe('string');
  expect(run.json.msg.length).toBeGreaterThan(0);
  expect(run.stdout).not.toMatch(STACK_LINE);
  expect(run.stderr).not.toMatch(STACK_LINE);
  if (msg !== undefined) expect(run.json.msg).toMatch(msg);
  return run.json;
}

function expectSingleObject(run: PluginRun): void {
  const text = run.stdout.trim();
  expect(text, describeRun(run)).not.toBe('');
  expect(text.split('\n'), 'one line of output').toHaveLength(1);
  expect(run.json, describeRun(run)).toBeTypeOf('object');
  expect(Array.isArray(run.json)).toBe(false);
  expect(run.json.unparsable, describeRun(run)).toBeUndefined();
}
