// The `reservoir` plugin: env + stdin in, one daemon call, the result in the caller's cniVersion
// out. Process I/O is injected (as in cni's skel) so tests run it in-process; cmd/reservoir.ts
// only wires the real process to it. Keep this import graph tiny: it runs for every pod.
//
// Validation: reservoird validates every call with the same parseInvocation (src/invocation.ts)
// before it touches a lease, so on the common path the plugin checks only what it needs to make
// the call (command, stdin, cniVersion, ipam.socket, ipam.timeout) and leaves the full validation
// to the daemon: a cold process spends ~1.5 ms compiling and running it, and loading
// invocation.ts (config.ts, address.ts, ipaddr.js) costs more again. When the call fails in any
// way (daemon unreachable, timed out, or an error answer), the plugin runs the full validation
// itself and reports its error if the configuration is invalid: a caller sees exactly the code and
// message it would have got by validating first. Anything unusual (a socket or timeout that is not
// plainly valid, numbers JSON cannot carry to the daemon unchanged) is validated first, as before.
import { type CniCommand, COMMANDS, LATEST_VERSION, convertResult, isSupportedVersion, versionInfo } from './cni.js';
import { type CallOptions, callDaemon } from './client.js';
import { DEFAULT_SOCKET, DEFAULT_TIMEOUT_MS, MAX_STDIN_BYTES, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, durationMs, isSocketPath } from './defaults.js';
import { ReservoirError, asReservoirError } from './errors.js';
import type { CniEnv, LeaseCommand } from './invocation.js';
import type { Exchange } from './native-call.js';
import type { AddResponse, CniCallBody, GcResponse, RouteName, StatusResponse } from './protocol.js';

export interface PluginIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: () => Promise<Buffer>;
  readonly stdout: (text: string) => void;
  /**
   * How the bytes reach the daemon: the native exchange when this finds one, else node:net.
   * Called only when there is a daemon call to make (VERSION and refused input load nothing).
   */
  readonly exchange?: () => Exchange | undefined;
}

const ROUTE_OF: Record<LeaseCommand, RouteName> = {
  ADD: 'cniAdd',
  DEL: 'cniDel',
  CHECK: 'cniCheck',
  GC: 'cniGc',
  STATUS: 'cniStatus',
};

/** The validation module and what it pulls in (config.ts, address.ts, ipaddr.js), loaded on demand. */
const validation = () => import('./invocation.js');

/** Run one invocation; returns the process exit code. Never throws. */
export async function runPlugin(io: PluginIo): Promise<number> {
  let cniVersion: string = LATEST_VERSION;
  try {
    const command = parseCommand(io.env.CNI_COMMAND);
    const stdin = decodeStdin(await io.stdin());
    if (command === 'VERSION') {
      io.stdout(JSON.stringify(versionInfo(requestedVersion(stdin))));
      return 0;
    }
    const config = (await parseObject(stdin)) ?? (await validation()).decodeConfig(stdin);
    const exact = checkDepth(config);
    const version = isSupportedVersion(config.cniVersion) ? config.cniVersion : (await validation()).configVersion(config);
    cniVersion = version;
    /** Throws the full validation's error when the configuration or environment is invalid. */
    const validate = async () => (await validation()).parseInvocation(command, io.env, config);
    let target = exact ? daemonOf(config) : undefined;
    let validated = false;
    if (!target) {
      const { ipam } = await validate();
      target = { socket: ipam.socket, timeoutMs: ipam.timeoutMs };
      validated = true;
    }
    const env: CniEnv = {
      CNI_CONTAINERID: io.env.CNI_CONTAINERID,
      CNI_NETNS: io.env.CNI_NETNS,
      CNI_IFNAME: io.env.CNI_IFNAME,
      CNI_ARGS: io.env.CNI_ARGS,
    };
    const body: CniCallBody = { env, config };
    const options: CallOptions = { ...target, body, exchange: io.exchange?.() };
    /** The daemon call; a failed one reports an invalid configuration's error first, as if validated before it. */
    const call = <T>(route: RouteName): Promise<T> =>
      callDaemon<T>(route, options).catch(async (err: unknown) => {
        if (!validated) await validate();
        throw err;
      });
    switch (command) {
      case 'ADD': {
        const answer = await call<AddResponse>(ROUTE_OF.ADD);
        io.stdout(JSON.stringify(convertResult(answer.result, version)));
        return 0;
      }
      case 'GC': {
        const answer = await call<GcResponse>(ROUTE_OF.GC);
        if (answer.errors.length > 0) {
          throw new ReservoirError('IO_FAILURE', `GC released ${answer.released} leases but failed on ${answer.errors.length}: ${answer.errors.join('; ')}`);
        }
        return 0;
      }
      case 'STATUS': {
        const answer = await call<StatusResponse>(ROUTE_OF.STATUS).catch((err: unknown) => {
          // STATUS reports readiness: an unreachable daemon means "cannot serve ADD", not "retry".
          const cause = asReservoirError(err);
          if (cause.codeName !== 'TRY_AGAIN_LATER') throw cause;
          throw new ReservoirError('NOT_READY', cause.message);
        });
        if (!answer.ready) throw new ReservoirError('NOT_READY', answer.msg ?? 'reservoird cannot serve ADD now');
        return 0;
      }
      default:
        await call<unknown>(ROUTE_OF[command]);
        return 0;
    }
  } catch (err) {
    const error = asReservoirError(err);
    io.stdout(JSON.stringify(error.toJSON(cniVersion)));
    return 1;
  }
}

function parseCommand(value: string | undefined): CniCommand {
  if ((COMMANDS as readonly string[]).includes(value ?? '')) return value as CniCommand;
  const problem = value ? `CNI_COMMAND "${value.slice(0, 40)}" is not a CNI command` : 'CNI_COMMAND is missing';
  throw new ReservoirError('INVALID_ENV', `${problem}; use one of ${COMMANDS.join(', ')}`);
}

/** stdin as a JSON object; undefined when it is anything else (decodeConfig then says why). */
async function parseObject(stdin: string): Promise<Record<string, unknown> | undefined> {
  try {
    const parsed: unknown = JSON.parse(stdin);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // decodeConfig reports it
  }
  return undefined;
}

/** Deeper than any real configuration; JSON.stringify (forwarding it) recurses per level. */
export const MAX_CONFIG_DEPTH = 128;

/**
 * A config nested ~100,000 deep fits in 1 MiB and overflowed the stack when forwarded (code 999).
 * Returns whether the daemon receives the config exactly as parsed here: JSON carries neither
 * -0 nor the Infinity that an out-of-range number literal (1e999) parses to (they arrive as 0
 * and null), so such a config is validated here, on what the caller gave.
 */
function checkDepth(config: unknown): boolean {
  let exact = true;
  const stack: Array<[unknown, number]> = [[config, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value === 'number' && (!Number.isFinite(value) || Object.is(value, -0))) exact = false;
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_CONFIG_DEPTH) {
      throw new ReservoirError('DECODE_FAILURE', `the network configuration on stdin is nested more than ${MAX_CONFIG_DEPTH} levels deep`);
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return exact;
}

/**
 * Where and how long to call, by the same rules as src/config.ts (src/defaults.ts holds them);
 * undefined when ipam.socket or ipam.timeout is invalid, so the full validation says why.
 */
function daemonOf(config: Record<string, unknown>): { socket: string; timeoutMs: number } | undefined {
  const ipam = config.ipam;
  if (ipam === null || typeof ipam !== 'object' || Array.isArray(ipam)) return undefined;
  const { socket = DEFAULT_SOCKET, timeout } = ipam as Record<string, unknown>;
  if (!isSocketPath(socket)) return undefined;
  if (timeout === undefined) return { socket, timeoutMs: DEFAULT_TIMEOUT_MS };
  const ms = durationMs(timeout);
  return ms !== undefined && ms >= MIN_TIMEOUT_MS && ms <= MAX_TIMEOUT_MS ? { socket, timeoutMs: Math.round(ms) } : undefined;
}

function decodeStdin(bytes: Buffer): string {
  if (bytes.length > MAX_STDIN_BYTES) {
    throw new ReservoirError('DECODE_FAILURE', `stdin holds ${bytes.length} bytes; a network configuration may hold at most ${MAX_STDIN_BYTES}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ReservoirError('DECODE_FAILURE', 'stdin is not valid UTF-8; the network configuration must be UTF-8 JSON');
  }
}

/** VERSION answers in the config's cniVersion when stdin names a supported one. */
function requestedVersion(stdin: string) {
  try {
    const version = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return isSupportedVersion(version) ? version : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}
