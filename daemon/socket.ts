// The daemon's unix socket, owned in one place: the directory and file modes, refusing symlinks
// and a socket another live daemon serves, and removing a stale one left by a crash.
import { connect } from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ReservoirError } from '../src/errors.js';

export const SOCKET_DIR_MODE = 0o750;
export const SOCKET_MODE = 0o660;

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const done = (live: boolean) => {
      probe.destroy();
      resolve(live);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
    probe.setTimeout(1_000, () => done(true));
  });
}

/** Make `path` ready to listen on; throws a clear error instead of stealing or following anything. */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: SOCKET_DIR_MODE });
  const dirStat = lstatSync(dir);
  if (dirStat.isSymbolicLink()) throw new ReservoirError('IO_FAILURE', `socket directory ${dir} is a symlink; refusing to use it`);
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (stat.isSymbolicLink()) throw new ReservoirError('IO_FAILURE', `socket path ${path} is a symlink; remove it and start again`);
  if (!stat.isSocket()) throw new ReservoirError('IO_FAILURE', `socket path ${path} exists and is not a socket; refusing to remove it`);
  if (await isLive(path)) {
    throw new ReservoirError('IO_FAILURE', `another reservoird already serves ${path}; stop it first (systemctl stop reservoird)`);
  }
  unlinkSync(path);
}

/** After listen: 0660, owned by root and the configured group, inside a 0750 directory. */
export function secureSocket(path: string, gid: number | undefined): void {
  chmodSync(dirname(path), SOCKET_DIR_MODE);
  chmodSync(path, SOCKET_MODE);
  if (gid !== undefined) {
    chownSync(path, 0, gid);
    chownSync(dirname(path), 0, gid);
  }
}
