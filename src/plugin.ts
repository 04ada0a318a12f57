// The `reservoir` plugin: env + stdin in, one daemon call, the result in the caller's cniVersion
// out. Process I/O is injected (as in cni's skel) so tests run it in-process; cmd/reservoir.ts
// only wires the real process to it. Keep this import graph tiny: it runs for every pod.
import { type CniCommand, COMMANDS, LATEST_VERSION, convertResult, isSupportedVersion, versionInfo } from './cni.js';
import { callDaemon } from './client.js';
import { ReservoirError, asReservoirError } from './errors.js';
import { type CniEnv, type LeaseCommand, configVersion, decodeConfig, parseInvocation } from './invocation.js';
import type { AddResponse, CniCallBody, GcResponse, RouteName, StatusResponse } from './protocol.js';

export const MAX_STDIN_BYTES = 1024 * 1024;

export interface PluginIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: () => Promise<Buffer>;
  readonly stdout: (text: string) => void;
}

const ROUTE_OF: Record<LeaseCommand, RouteName> = {
  ADD: 'cniAdd',
  DEL: 'cniDel',
  CHECK: 'cniCheck',
  GC: 'cniGc',
  STATUS: 'cniStatus',
};

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
    const config = decodeConfig(stdin);
    checkDepth(config);
    cniVersion = configVersion(config);
    const invocation = parseInvocation(command, io.env, config);
    const env: CniEnv = {
      CNI_CONTAINERID: io.env.CNI_CONTAINERID,
      CNI_NETNS: io.env.CNI_NETNS,
      CNI_IFNAME: io.env.CNI_IFNAME,
      CNI_ARGS: io.env.CNI_ARGS,
    };
    const body: CniCallBody = { env, config };
    const options = { socket: invocation.ipam.socket, timeoutMs: invocation.ipam.timeoutMs, body };
    switch (command) {
      case 'ADD': {
        const answer = await callDaemon<AddResponse>(ROUTE_OF.ADD, options);
        io.stdout(JSON.stringify(convertResult(answer.result, invocation.cniVersion)));
        return 0;
      }
      case 'GC': {
        const answer = await callDaemon<GcResponse>(ROUTE_OF.GC, options);
        if (answer.errors.length > 0) {
          throw new ReservoirError('IO_FAILURE', `GC released ${answer.released} leases but failed on ${answer.errors.length}: ${answer.errors.join('; ')}`);
        }
        return 0;
      }
      case 'STATUS': {
        const answer = await callDaemon<StatusResponse>(ROUTE_OF.STATUS, options).catch((err: unknown) => {
          // STATUS reports readiness: an unreachable daemon means "cannot serve ADD", not "retry".
          const cause = asReservoirError(err);
          if (cause.codeName !== 'TRY_AGAIN_LATER') throw cause;
          throw new ReservoirError('NOT_READY', cause.message);
        });
        if (!answer.ready) throw new ReservoirError('NOT_READY', answer.msg ?? 'reservoird cannot serve ADD now');
        return 0;
      }
      default:
        await callDaemon<unknown>(ROUTE_OF[command], options);
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

/** Deeper than any real configuration; JSON.stringify (forwarding it) recurses per level. */
export const MAX_CONFIG_DEPTH = 128;

/** A config nested ~100,000 deep fits in 1 MiB and overflowed the stack when forwarded (code 999). */
function checkDepth(config: unknown): void {
  const stack: Array<[unknown, number]> = [[config, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_CONFIG_DEPTH) {
      throw new ReservoirError('DECODE_FAILURE', `the network configuration on stdin is nested more than ${MAX_CONFIG_DEPTH} levels deep`);
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
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
