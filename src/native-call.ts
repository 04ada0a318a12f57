// The plugin's native helper: reservoir_call.node (native/unix-call.c). It does one HTTP exchange
// over the unix socket without node:net (a cold Node spends ~4-5 ms loading node:net and the
// stream machinery under it, about as much as the rest of an ADD), and reads stdin and writes
// stdout without node:fs (loading node:fs costs a bun-compiled plugin ~1.4 ms a start, more than
// the rest of its own work). It sits beside the plugin (build/bin/, dist/, /opt/cni/bin/); a
// plugin copied without it still works, over node:fs and node:net (src/client.ts), only slower.
// This module imports nothing: under bun even node:path costs a start-up.

export const NATIVE_CALL_FILE = 'reservoir_call.node';

/**
 * Connect, send `request`, read the whole answer, before `timeoutMs`. Throws an Error whose
 * `code` is an errno name (ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT, ...), as node:net would.
 */
export type Exchange = (socket: string, request: Buffer, timeoutMs: number) => Buffer;

/** read(2) or write(2) of fd into or from the whole buffer: the byte count; throws with an errno `code`. */
export type FdTransfer = (fd: number, buffer: Buffer) => number;

export interface NativeHelper {
  readonly call?: Exchange;
  /** Absent in an addon older than the plugin: the plugin then reads and writes with node:fs. */
  readonly read?: FdTransfer;
  readonly write?: FdTransfer;
}

/**
 * The running program's file, with symlinks resolved: the script for `node dist/reservoir.cjs`,
 * else the executable. A Node SEA's argv[1] is the executable itself; a bun-compiled one's names
 * the script inside the executable's embedded file system (/$bunfs/root/...), which has no
 * directory to look in, and its process.execPath is /proc/self/exe's target, already resolved.
 */
function programFile(): string {
  const script = process.argv[1];
  return script === undefined || script.startsWith('/$bunfs/') ? process.execPath : process.getBuiltinModule('node:fs').realpathSync(script);
}

/**
 * The addon beside `program` (the packaged plugin, bun-compiled, loads it as Node does), with
 * only the functions it has. Undefined when it is absent or does not load, so the plugin falls
 * back to node:fs and node:net rather than fail a pod.
 */
export function loadNativeHelper(program?: string): NativeHelper | undefined {
  try {
    const file = program ?? programFile();
    const resolved = program === undefined ? file : process.getBuiltinModule('node:fs').realpathSync(file);
    const addon = { exports: {} as Record<string, unknown> };
    process.dlopen(addon, resolved.slice(0, resolved.lastIndexOf('/') + 1) + NATIVE_CALL_FILE);
    const fn = <T>(name: string) => (typeof addon.exports[name] === 'function' ? (addon.exports[name] as T) : undefined);
    return { call: fn<Exchange>('call'), read: fn<FdTransfer>('read'), write: fn<FdTransfer>('write') };
  } catch {
    return undefined;
  }
}

/** The addon's exchange, or undefined (node:net then). */
export function loadNativeExchange(program?: string): Exchange | undefined {
  return loadNativeHelper(program)?.call;
}
