// The daemon's unix socket, owned in one place: where it may live, the directory and file modes,
// refusing symlinks and a socket some process still holds, and removing a stale one left by a
// crash.
//
// Where it may live: whoever can write to the socket's directory, or to a directory above it,
// can put a socket of their own in its place (a daemon that answers ADDs with IPs of its
// choosing). So every directory on the way must belong to root or to us; above the socket's own
// directory, one writable by others must be sticky (/tmp: others cannot rename what is ours in
// it). The socket's own directory must be writable by nobody else, sticky or not: while
// reservoird is down, anyone could create the socket path there and answer in its place.
// Modes: reservoird sets 0750 and the socket's group only on a directory of its own: one it
// creates, or one already 0750 (as it or install.sh left it). Any other directory stays as it is.
import { connect } from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ReservoirError } from '../src/errors.js';

export const SOCKET_DIR_MODE = 0o750;
export const SOCKET_MODE = 0o660;

/** What a connect to an existing socket file tells: someone serves it, nobody does, or we cannot tell. */
type Probe = { state: 'live' } | { state: 'stale' } | { state: 'gone' } | { state: 'unknown'; code: string };

function probe(path: string): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (result: Probe) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done({ state: 'live' }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // Only a refusal means nobody listens; EAGAIN is a listener whose backlog is full (a
      // stopped or hung daemon), EACCES one we may not reach: both are someone else's socket.
      if (err.code === 'ECONNREFUSED') done({ state: 'stale' });
      else if (err.code === 'ENOENT') done({ state: 'gone' });
      else done({ state: 'unknown', code: err.code ?? err.message });
    });
    socket.setTimeout(1_000, () => done({ state: 'unknown', code: 'no answer to connect within 1 s' }));
  });
}

/** Whether a listening unix socket bound to `path` exists in this network namespace (Linux; false elsewhere). */
export function listenerBoundTo(path: string, procNetUnix = '/proc/net/unix'): boolean {
  let table: string;
  try {
    table = readFileSync(procNetUnix, 'utf8');
  } catch {
    return false;
  }
  // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is __SO_ACCEPTCON (listening)
  return table.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields.length >= 8 && fields.slice(7).join(' ') === path && (Number.parseInt(fields[3]!, 16) & 0x10000) !== 0;
  });
}

/** Whether the socket's directory is reservoird's own (see the top of this file). */
export interface SocketDirectory {
  readonly own: boolean;
}

/** Make `path` ready to listen on; throws a clear error instead of stealing, following or loosening anything. */
export async function prepareSocketPath(path: string): Promise<SocketDirectory> {
  const dir = dirname(resolve(path));
  checkAncestors(dir);
  let created = false;
  try {
    mkdirSync(dir, { mode: SOCKET_DIR_MODE });
    chmodSync(dir, SOCKET_DIR_MODE); // the umask may have taken bits away
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = checkOwnDirectory(dir, path);
  const directory = { own: created || mode === SOCKET_DIR_MODE };
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return directory;
  }
  if (stat.isSymbolicLink()) throw new ReservoirError('IO_FAILURE', `socket path ${path} is a symlink; remove it and start again`);
  if (!stat.isSocket()) throw new ReservoirError('IO_FAILURE', `socket path ${path} exists and is not a socket; refusing to remove it`);
  const found = await probe(path);
  if (found.state === 'gone') return directory;
  if (found.state === 'live') {
    throw new ReservoirError('IO_FAILURE', `another reservoird already serves ${path}; stop it first (systemctl stop reservoird)`);
  }
  if (found.state === 'unknown') {
    throw new ReservoirError(
      'IO_FAILURE',
      `${path} is held by a process that does not accept connections (connect: ${found.code}; a stopped or hung reservoird?); refusing to take it over. Find it with "ss -xlp src ${path}", resume or stop it, and start again`,
    );
  }
  if (listenerBoundTo(resolve(path))) {
    throw new ReservoirError('IO_FAILURE', `${path} refused a connection but a process still listens on it (ss -xlp src ${path}); stop it first`);
  }
  unlinkSync(path);
  return directory;
}

/** After listen: the socket 0660, owned by us and the configured group; a directory of its own 0750, the same. */
export function secureSocket(path: string, gid: number | undefined, directory: SocketDirectory): void {
  const dir = dirname(resolve(path));
  const uid = process.geteuid?.() ?? 0;
  chmodSync(path, SOCKET_MODE);
  if (gid !== undefined) chownSync(path, uid, gid);
  if (!directory.own) return;
  chmodSync(dir, SOCKET_DIR_MODE);
  if (gid !== undefined) chownSync(dir, uid, gid);
}

const trusted = (uid: number) => uid === 0 || uid === (process.geteuid?.() ?? 0);

const FIX = "use a directory of reservoird's own, such as /run/reservoir (created 0750 if missing)";

function unsafe(dir: string, why: string, fix = FIX): ReservoirError {
  return new ReservoirError('IO_FAILURE', `refusing socket directory ${dir}: ${why}, so another user could put a socket of their own in reservoird's place; ${fix}`);
}

/** Every directory above the socket's: ours or root's, and writable by nobody else unless sticky. Creates missing ones 0755. */
function checkAncestors(dir: string): void {
  for (let at = dirname(dir); ; at = dirname(at)) {
    let stat;
    try {
      stat = statSync(at);
    } catch {
      stat = undefined; // missing: created below, by us
    }
    if (stat) {
      if (!trusted(stat.uid)) throw unsafe(at, `it belongs to uid ${stat.uid}`);
      if ((stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0) {
        throw unsafe(at, `it is writable by ${writers(stat.mode)} (mode ${(stat.mode & 0o7777).toString(8)}) and not sticky`);
      }
    }
    if (at === dirname(at)) break;
  }
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
}

/** The socket's own directory: a real directory, ours or root's, writable by nobody else. Returns its mode. */
function checkOwnDirectory(dir: string, path: string): number {
  const stat = lstatSync(dir);
  if (stat.isSymbolicLink()) throw new ReservoirError('IO_FAILURE', `socket directory ${dir} is a symlink; refusing to use it`);
  if (!stat.isDirectory()) throw new ReservoirError('IO_FAILURE', `socket directory ${dir} is not a directory`);
  if (!trusted(stat.uid)) throw unsafe(dir, `it belongs to uid ${stat.uid}`);
  if ((stat.mode & 0o022) !== 0) {
    const mode = (stat.mode & 0o7777).toString(8);
    throw unsafe(dir, `it is writable by ${writers(stat.mode)} (mode ${mode})`, `${FIX}, e.g. --socket ${dir === '/' ? '' : dir}/reservoir/${basename(path)}`);
  }
  return stat.mode & 0o7777;
}

function writers(mode: number): string {
  return (mode & 0o002) !== 0 ? 'everyone' : 'its group';
}
