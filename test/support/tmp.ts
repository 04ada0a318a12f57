// Temporary directories for tests: short paths (a unix socket path holds at most 107 bytes),
// removed by the caller (Cleanup.tempDir, or removeDir in afterAll). On /dev/shm when it is
// writable and roomy, else os.tmpdir(). An executable to run belongs under os.tmpdir() instead
// (tempDir(label, tmpdir())): a container may mount /dev/shm noexec.
import { accessSync, constants, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Room the tests' stores need at once (podman's default /dev/shm is 64 MB). */
const FAST_MIN_FREE = 1 << 30;

let base: string | undefined;

/** tmpfs when there is one: SQLite's fsync per commit costs tens of ms on a real disk. */
function fastBase(): string {
  base ??= (() => {
    try {
      accessSync('/dev/shm', constants.W_OK);
      const fs = statfsSync('/dev/shm');
      return fs.bavail * fs.bsize >= FAST_MIN_FREE ? '/dev/shm' : tmpdir();
    } catch {
      return tmpdir();
    }
  })();
  return base;
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
