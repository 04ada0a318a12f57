// Installs the CNI plugin, the files it loads from beside itself, and the conflist into the
// host's directories (reservoird --install-cni / --install-conflist, run by the DaemonSet's pod).
// Each file goes to a temp file in its destination directory, is fsynced and chmodded, then
// renamed over the old name, and the directory is fsynced: kubelet never executes a half-written
// plugin, and the rename gives the name a new inode, so a process that has the old file open or
// running keeps the complete old one. A crash leaves at most a temp file of ours (hidden, never
// named *.conf/*.conflist/*.json, so neither the runtime nor our config watcher reads it); the
// next run removes it.
import { randomBytes } from 'node:crypto';
import { open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseIpamConfig } from '../src/config.js';
import { PLUGIN_TYPE, reservoirNetworksIn } from './config-dir.js';

const TEMP_SUFFIX = '.reservoir-tmp';
const CHUNK = 1 << 20;

export class InstallError extends Error {
  override name = 'InstallError';
}

/** The temp name for `name` in its destination directory: `.NAME.PID.RANDOM.reservoir-tmp` (RANDOM: 8 hex digits). */
export function tempNameFor(name: string, pid: number, random: string): string {
  return `.${name}.${pid}.${random}${TEMP_SUFFIX}`;
}

/** Whether `entry` is a temp file left for `name` by an installer other than process `pid`. */
export function isStaleTemp(entry: string, name: string, pid: number): boolean {
  const prefix = `.${name}.`;
  if (!entry.startsWith(prefix) || !entry.endsWith(TEMP_SUFFIX)) return false;
  const owner = /^(\d+)\.[0-9a-f]{8}$/.exec(entry.slice(prefix.length, -TEMP_SUFFIX.length));
  return owner !== null && Number(owner[1]) !== pid;
}

/**
 * The order to install a plugin directory's files in: every file the plugin loads from beside
 * itself first, the plugin itself (`reservoir`) last, so a runtime that finds the new plugin
 * also finds its addon. Hidden names (temp files) are not installed.
 */
export function installOrder(names: readonly string[]): string[] {
  const visible = names.filter((n) => !n.startsWith('.')).sort();
  return [...visible.filter((n) => n !== PLUGIN_TYPE), ...visible.filter((n) => n === PLUGIN_TYPE)];
}

/** Removes temp files that an earlier, interrupted run left for `name` in `dir`. */
export async function removeStaleTemps(dir: string, name: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(dir)) {
    if (!isStaleTemp(entry, name, process.pid)) continue;
    await unlink(join(dir, entry)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    removed.push(entry);
  }
  return removed;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Copies `source` to `dir/name` atomically with `mode` (default: the source's permission bits).
 * Returns the destination path.
 */
export async function installFileAtomic(source: string, dir: string, name = basename(source), mode?: number): Promise<string> {
  const destination = join(dir, name);
  await removeStaleTemps(dir, name);
  const temp = join(dir, tempNameFor(name, process.pid, randomBytes(4).toString('hex')));
  const input = await open(source, 'r').catch((err: Error) => {
    throw new InstallError(`cannot read ${source} to install it as ${destination}: ${err.message}`);
  });
  let output;
  try {
    const permissions = mode ?? (await input.stat()).mode & 0o777;
    output = await open(temp, 'wx', 0o600);
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await input.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      let written = 0;
      while (written < bytesRead) written += (await output.write(buffer, written, bytesRead - written)).bytesWritten;
    }
    await output.sync();
    await output.chmod(permissions);
    await output.close();
    output = undefined;
    await rename(temp, destination);
    await fsyncDir(dir);
    return destination;
  } catch (err) {
    await output?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (err instanceof InstallError) throw err;
    throw new InstallError(`cannot install ${source} as ${destination}: ${(err as Error).message}`);
  } finally {
    await input.close();
  }
}

/** Installs every file of `fromDir` (the packaged plugin and its addon) into `binDir`, the plugin last. */
export async function installPluginFiles(fromDir: string, binDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(fromDir);
  } catch (err) {
    throw new InstallError(`--install-cni ${fromDir}: cannot list the plugin files: ${(err as Error).message}`);
  }
  const files: string[] = [];
  for (const name of installOrder(names)) {
    if ((await stat(join(fromDir, name))).isFile()) files.push(name);
  }
  if (!files.includes(PLUGIN_TYPE)) throw new InstallError(`--install-cni ${fromDir}: no ${PLUGIN_TYPE} plugin executable in it`);
  const installed: string[] = [];
  for (const name of files) installed.push(await installFileAtomic(join(fromDir, name), binDir));
  return installed;
}

/**
 * Installs a conflist into the CNI config directory under its own name, readable by all (0644),
 * after checking that it names a valid reservoir IPAM that talks to `socket` (the one this daemon
 * serves): a broken ConfigMap must stop this pod, not every pod sandbox on the node.
 */
export async function installConflist(source: string, confDir: string, socket: string): Promise<string> {
  let networks;
  try {
    networks = reservoirNetworksIn(await readFile(source, 'utf8'));
  } catch (err) {
    throw new InstallError(`--install-conflist ${source}: not a readable JSON CNI config: ${(err as Error).message}`);
  }
  if (networks.length === 0) throw new InstallError(`--install-conflist ${source}: no plugin in it has "ipam": {"type": "${PLUGIN_TYPE}", ...}`);
  for (const { name, ipam } of networks) {
    let wants;
    try {
      ({ socket: wants } = parseIpamConfig(ipam));
    } catch (err) {
      throw new InstallError(`--install-conflist ${source}: network ${name}: ${(err as Error).message}`);
    }
    if (wants !== socket) {
      throw new InstallError(`--install-conflist ${source}: network ${name} talks to ${wants} but this reservoird serves ${socket}; make ipam.socket and --socket agree`);
    }
  }
  return installFileAtomic(source, confDir, basename(source), 0o644);
}
