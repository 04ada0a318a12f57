// Helpers for the daemon tests: an in-process reservoird (test/support/daemon.ts) with a clock the
// test moves, no reclaim and no sweep; the plugin run in-process through runPlugin; the operator
// routes called through the same client the CLI uses.
import type { DaemonOptions } from '../../daemon/app.js';
import { callDaemon } from '../../src/client.js';
import { ReservoirError } from '../../src/errors.js';
import { runPlugin } from '../../src/plugin.js';
import type { RouteName } from '../../src/protocol.js';
import { Clock, type InProcessDaemon, startInProcessDaemon } from '../support/daemon.js';

export interface TestDaemon extends InProcessDaemon {
  readonly clock: Clock;
}

/** A daemon on a frozen clock: fake netns paths are never reclaimed, holds expire only when a test says so. */
export async function startTestDaemon(options: Partial<DaemonOptions> = {}): Promise<TestDaemon> {
  const clock = new Clock();
  const daemon = await startInProcessDaemon('daemon', { now: clock.now, reclaimGraceMs: 0, sweepIntervalMs: 3_600_000, ...options });
  return Object.assign(daemon, { clock });
}

export interface Invoke {
  readonly containerId: string;
  readonly ifname?: string;
  /** CNI_ARGS as key/value pairs. */
  readonly args?: Record<string, string>;
  /** Pod annotations (runtimeConfig["io.kubernetes.cri.pod-annotations"]). */
  readonly annotations?: Record<string, string>;
  /** runtimeConfig.ips */
  readonly ips?: readonly string[];
}

export interface PluginOutcome {
  readonly exit: number;
  readonly out: Record<string, unknown>;
}

/** Run the plugin in-process, as the runtime would run the binary. */
export async function plugin(command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS', conf: Record<string, unknown>, call: Partial<Invoke> = {}): Promise<PluginOutcome> {
  const config: Record<string, unknown> = { ...conf };
  const runtimeConfig: Record<string, unknown> = {};
  if (call.annotations) runtimeConfig['io.kubernetes.cri.pod-annotations'] = call.annotations;
  if (call.ips) runtimeConfig.ips = call.ips;
  if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = runtimeConfig;
  const args = call.args ? Object.entries(call.args).map(([k, v]) => `${k}=${v}`).join(';') : undefined;
  const env: Record<string, string | undefined> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_IFNAME: call.containerId === undefined ? undefined : (call.ifname ?? 'eth0'),
    CNI_NETNS: call.containerId === undefined ? undefined : `/var/run/netns/${call.containerId}`,
    CNI_ARGS: args,
    CNI_PATH: '/opt/cni/bin',
  };
  let text = '';
  const exit = await runPlugin({ env, stdin: async () => Buffer.from(JSON.stringify(config)), stdout: (t) => (text += t) });
  return { exit, out: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** ADD that must succeed: the bare IPs ("10.0.0.5", ...) in range-set order. */
export async function addOk(conf: Record<string, unknown>, call: Invoke): Promise<string[]> {
  const { exit, out } = await plugin('ADD', conf, call);
  if (exit !== 0) throw new Error(`ADD ${call.containerId} failed: ${JSON.stringify(out)}`);
  return ipsOf(out);
}

/** ADD that must fail: the CNI error object. */
export async function addErr(conf: Record<string, unknown>, call: Invoke): Promise<{ code: number; msg: string }> {
  const { exit, out } = await plugin('ADD', conf, call);
  if (exit === 0) throw new Error(`ADD ${call.containerId} unexpectedly succeeded: ${JSON.stringify(out)}`);
  return out as { code: number; msg: string };
}

export async function delOk(conf: Record<string, unknown>, call: Invoke): Promise<void> {
  const { exit, out } = await plugin('DEL', conf, call);
  if (exit !== 0) throw new Error(`DEL ${call.containerId} failed: ${JSON.stringify(out)}`);
}

export function ipsOf(result: Record<string, unknown>): string[] {
  return ((result.ips ?? []) as Array<{ address: string }>).map((ip) => ip.address.split('/')[0]!);
}

export interface OpCall {
  readonly params?: Record<string, string>;
  readonly query?: Record<string, string | undefined>;
  readonly body?: unknown;
}

/** Call an operator route; resolves with the answer, rejects with a ReservoirError. */
export function op<T = any>(socket: string, route: RouteName, call: OpCall = {}): Promise<T> {
  return callDaemon<T>(route, { socket, timeoutMs: 30_000, ...call });
}

/** Call an operator route that must fail; resolves with the error. */
export async function opErr(socket: string, route: RouteName, call: OpCall = {}): Promise<ReservoirError> {
  try {
    const answer = await op(socket, route, call);
    throw new Error(`${route} unexpectedly succeeded: ${JSON.stringify(answer)}`);
  } catch (err) {
    if (err instanceof ReservoirError) return err;
    throw err;
  }
}

/** Every IPv4 address from a to b (same /24), as text. */
export function ipv4Range(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i <= to; i++) out.push(`${prefix}.${i}`);
  return out;
}

/** The state of each reserved IP, by address. */
export async function reservedStates(socket: string, network: string, state?: 'free' | 'used'): Promise<Map<string, any>> {
  const list = await op(socket, 'reservedList', { params: { network }, query: { state } });
  return new Map((list.ips as Array<{ ip: string }>).map((ip) => [ip.ip, ip]));
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
