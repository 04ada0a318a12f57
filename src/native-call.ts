// The plugin's fast way to the daemon: reservoir_call.node (native/unix-call.c), which does one
// HTTP exchange over the unix socket without node:net. A cold Node spends ~4-5 ms loading node:net
// and the stream machinery under it, about as much as the rest of an ADD; the addon loads in a
// fraction of that. It sits beside the plugin (build/bin/, dist/, /opt/cni/bin/); a plugin copied
// without it still works, over node:net (src/client.ts), only slower.
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const NATIVE_CALL_FILE = 'reservoir_call.node';

/**
 * Connect, send `request`, read the whole answer, before `timeoutMs`. Throws an Error whose
 * `code` is an errno name (ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT, ...), as node:net would.
 */
export type Exchange = (socket: string, request: Buffer, timeoutMs: number) => Buffer;

/**
 * The running program's file: the script for `node dist/reservoir.cjs`, else the executable. A
 * Node SEA's argv[1] is the executable itself; a bun-compiled one's names the script inside the
 * executable's embedded file system (/$bunfs/root/...), which has no directory to look in.
 */
function programFile(): string {
  const script = process.argv[1];
  return script === undefined || script.startsWith('/$bunfs/') ? process.execPath : script;
}

/**
 * The addon beside the running program (the packaged plugin, bun-compiled, loads it as Node
 * does). Undefined when it is absent or does not load, so the plugin falls back to node:net
 * rather than fail a pod.
 */
export function loadNativeExchange(program = programFile()): Exchange | undefined {
  try {
    const file = join(dirname(realpathSync(program)), NATIVE_CALL_FILE);
    if (!existsSync(file)) return undefined;
    const addon = { exports: {} as { call?: unknown } };
    process.dlopen(addon, file);
    return typeof addon.exports.call === 'function' ? (addon.exports.call as Exchange) : undefined;
  } catch {
    return undefined;
  }
}
