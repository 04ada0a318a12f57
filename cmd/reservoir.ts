// The CNI plugin executable: wire the real process to runPlugin. Nothing else loads here.
// stdin and stdout go through the native helper beside the plugin when it has them (under bun,
// loading node:fs costs a start ~1.4 ms); node:fs does everything the helper does not, so every
// outcome, error and message is node:fs's.
import { MAX_STDIN_BYTES } from '../src/defaults.js';
import { type FdTransfer, loadNativeHelper } from '../src/native-call.js';
import { runPlugin } from '../src/plugin.js';

const native = loadNativeHelper();

const fs = () => process.getBuiltinModule('node:fs');
const fsRead: FdTransfer = (fd, buffer) => fs().readSync(fd, buffer, 0, buffer.length, null);
const fsWrite: FdTransfer = (fd, buffer) => fs().writeSync(fd, buffer);

/**
 * One transfer: the helper's when it has one, else node:fs's. EAGAIN and EBADF are thrown as
 * node:fs throws them (the callers below handle them); any other failure of the helper is redone
 * with node:fs, so what propagates is node:fs's own error.
 */
function transfer(helper: FdTransfer | undefined, fallback: FdTransfer, fd: number, buffer: Buffer): number {
  if (helper === undefined) return fallback(fd, buffer);
  try {
    return helper(fd, buffer);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EBADF') throw err;
    return fallback(fd, buffer);
  }
}

/** Read stdin synchronously (fast, no stream machinery), stopping just past the size limit. */
function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = transfer(native?.read, fsRead, 0, chunk);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return readStdinAsync(chunks, total);
      if (code === 'EOF' || code === 'EBADF') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(chunk.subarray(0, n)));
    total += n;
    if (total > MAX_STDIN_BYTES) break;
  }
  return Promise.resolve(Buffer.concat(chunks));
}

/** A non-blocking stdin (rare: some callers hand over a socket) is read the stream way. */
async function readStdinAsync(chunks: Buffer[], total: number): Promise<Buffer> {
  for await (const piece of process.stdin) {
    chunks.push(piece as Buffer);
    total += (piece as Buffer).length;
    if (total > MAX_STDIN_BYTES) break;
  }
  return Buffer.concat(chunks);
}

/**
 * Write all of `text` to stdout, then exit with `code`. The answer is the last thing the plugin
 * does: exiting right away skips the environment and heap teardown of a natural exit. Synchronous
 * write to fd 1 (no stream set-up); a non-blocking stdout that is full (EAGAIN) is finished the
 * stream way, and the process exits once that write has been flushed.
 */
function answer(text: string, code: number): void {
  let rest = Buffer.from(text);
  while (rest.length > 0) {
    let n: number;
    try {
      n = transfer(native?.write, fsWrite, 1, rest);
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code;
      if (errno === 'EAGAIN') {
        process.stdout.on('error', () => process.exit(code));
        process.stdout.write(rest, () => process.exit(code));
        return;
      }
      break; // EPIPE, EBADF: nobody reads the answer; the exit code still tells
    }
    rest = rest.subarray(n);
  }
  process.exit(code);
}

let out = '';
runPlugin({ env: process.env, stdin: readStdin, stdout: (text) => (out += `${text}\n`), exchange: () => native?.call }).then((code) => answer(out, code));
