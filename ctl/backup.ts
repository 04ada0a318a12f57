// reservoirctl backup FILE [--force]: a consistent SQLite copy of the lease store, written
// atomically (FILE.tmp, fsync, then rename/link) with mode 0600: it names every pod and IP.
import { constants } from 'node:fs';
import { access, chmod, link, open, rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { type Args, CtlError, EXIT_CODES, type GlobalOptions, callRaw, show } from './common.js';

export const command = 'backup <file>';
export const describe = 'Save a consistent copy of the lease store (an SQLite file) to FILE';

interface BackupArgs {
  file: string;
  force: boolean | undefined;
}

export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & BackupArgs> {
  return yargs
    .positional('file', { type: 'string', demandOption: true, describe: 'where to write the backup' })
    .option('force', { type: 'boolean', describe: 'overwrite FILE if it exists' })
    .example('$0 backup /root/reservoir.db', 'a copy to keep off the node')
    .epilog('To restore: stop reservoird, copy the file over its database (--db), start reservoird.') as Argv<GlobalOptions & BackupArgs>;
}

function localFailure(what: string, path: string, err: unknown): CtlError {
  const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new CtlError(`cannot ${what} ${path} (${reason}); choose a writable path on a local filesystem`, EXIT_CODES.REFUSED.code);
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

const existsError = (path: string) => new CtlError(`${path} already exists; pass --force to overwrite it, or choose another file`, EXIT_CODES.REFUSED.code);

async function writeTemp(tmp: string, data: Buffer): Promise<void> {
  let handle;
  try {
    handle = await open(tmp, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await unlink(tmp); // left over by an interrupted run
    handle = await open(tmp, 'wx', 0o600);
  }
  try {
    await handle.writeFile(data);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Move tmp to path; without `force`, refuse atomically if path appeared meanwhile. */
async function install(tmp: string, path: string, force: boolean): Promise<void> {
  if (force) return rename(tmp, path);
  try {
    await link(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw existsError(path);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw err;
    // Filesystems without hard links: check, then rename (a small race, but no silent clobber in practice).
    if (await exists(path)) throw existsError(path);
    return rename(tmp, path);
  }
  await unlink(tmp);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    await handle.sync().finally(() => handle.close());
  } catch {
    // Not every filesystem lets a directory be fsynced; the rename itself is still atomic.
  }
}

export async function handler(argv: Args<BackupArgs>): Promise<void> {
  const path = resolve(argv.file);
  const force = argv.force === true;
  if (!force && (await exists(path))) throw existsError(path);
  const data = await callRaw('backup', argv);
  if (data.length < SQLITE_MAGIC.length || !data.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    throw new CtlError(`reservoird's backup (${data.length} bytes) is not an SQLite file; nothing written. Check the daemon's log`, EXIT_CODES.REFUSED.code);
  }
  const tmp = `${path}.tmp`;
  try {
    await writeTemp(tmp, data);
    await install(tmp, path, force);
    await chmod(path, 0o600);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (err instanceof CtlError) throw err;
    throw localFailure('write', path, err);
  }
  await syncDir(dirname(path));
  show(argv, { file: path, bytes: data.length }, (r) => `wrote backup of ${r.bytes} bytes to ${r.file} (mode 0600)\n`);
}
