// Mounts for the disk tests (root only): a small tmpfs to fill up, an ext4 image on a loop device
// that the kernel turns read-only on demand. Each is unmounted (lazily if busy) at cleanup.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { run } from './netns.js';

/** Run a command that must succeed; returns its stdout, throws with its stderr. */
export function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.error?.message ?? r.stderr).trim()}`);
  return r.stdout;
}

function mountLine(dir: string): string[] | undefined {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .find((fields) => fields[1] === dir);
}

/** The device mounted on dir ("/dev/loop3"), or undefined when dir is no mount point. */
export function mountSource(dir: string): string | undefined {
  return mountLine(dir)?.[0];
}

function unmountAtCleanup(cleanup: Cleanup, dir: string): void {
  cleanup.addSync(`umount ${dir}`, () => {
    for (let i = 0; i < 3 && mountLine(dir); i++) {
      if (run('umount', [dir]).status !== 0) run('umount', ['-l', dir]);
    }
    if (mountLine(dir)) throw new Error(`${dir} is still mounted`);
  });
}

/** Mount a tmpfs of `size` (e.g. "2m") on a new dir. */
export function mountTmpfs(cleanup: Cleanup, dir: string, size: string): string {
  mkdirSync(dir, { recursive: true });
  must('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  unmountAtCleanup(cleanup, dir);
  return dir;
}

/**
 * An ext4 image of sizeMb on a loop device, mounted with errors=remount-ro: triggerError()
 * makes the kernel turn it read-only under open files, as it does after an I/O error.
 */
export function mountExt4Image(cleanup: Cleanup, image: string, dir: string, sizeMb: number) {
  mkdirSync(dir, { recursive: true });
  must('truncate', ['-s', `${sizeMb}M`, image]);
  must('mkfs.ext4', ['-q', image]);
  const mount = () => must('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  mount();
  unmountAtCleanup(cleanup, dir);
  return {
    triggerError(): void {
      const device = mountSource(dir)!.replace(/^\/dev\//, '');
      writeFileSync(join('/sys/fs/ext4', device, 'trigger_fs_error'), '1');
    },
    options(): string {
      return mountLine(dir)?.[3] ?? '';
    },
    /** umount, e2fsck, mount again (the daemon must be stopped). */
    repairAndRemount(): void {
      must('umount', [dir]);
      const fsck = run('e2fsck', ['-fy', image]);
      if (fsck.status !== null && fsck.status > 3) throw new Error(`e2fsck ${image} failed (${fsck.status}): ${fsck.stderr}`);
      mount();
    },
  };
}
