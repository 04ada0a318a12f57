// The CNI plugin executable: wire the real process to runPlugin. Nothing else loads here.
import { readSync } from 'node:fs';
import { MAX_STDIN_BYTES, runPlugin } from '../src/plugin.js';

/** Read stdin synchronously (fast, no stream machinery), stopping just past the size limit. */
function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
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

runPlugin({ env: process.env, stdin: readStdin, stdout: (text) => process.stdout.write(`${text}\n`) }).then(
  (code) => {
    process.exitCode = code;
  },
);
