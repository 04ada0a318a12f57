// Temporary directories for tests: short paths (a unix socket path holds at most 107 bytes),
// removed by the caller (Cleanup.tempDir, or removeDir in afterAll). On /dev/shm when writable,
// else os.tmpdir().
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** tmpfs when there is one: SQLite's fsync per commit costs tens of ms on a real disk. */
function fastBase(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** A fresh "rsv-LABEL-XXXXXX" directory on tmpfs, or under `base` (e.g. a disk, for hardlinks to build/). */
export function tempDir(label: string, base = fastBase()): string {
  return mkdtempSync(join(base, `rsv-${label}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

let counter = 0;

/** A container id unique in this run: letters, digits and "-", as runtimes make them. */
export function containerId(label = 'c'): string {
  counter++;
  return `${label}-${process.pid}-${counter}-${randomBytes(3).toString('hex')}`;
}

/** A 64-hex container id, like containerd's and docker's. */
export function hexContainerId(): string {
  return randomBytes(32).toString('hex');
}
