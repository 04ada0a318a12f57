// Learn networks from the CNI config directory (default /etc/cni/net.d), so operators can
// reserve IPs before the first pod arrives. Rescans on every change, debounced; a broken file
// is logged with its name and skipped, never fatal.
import { type FSWatcher, readFileSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { asReservoirError } from '../src/errors.js';
import type { Logger } from './log.js';
import type { Networks } from './networks.js';
import type { Units } from './units.js';

export const PLUGIN_TYPE = 'reservoir';
const CONFIG_FILE = /\.(conf|conflist|json)$/;

/** The (name, ipam) pairs of every reservoir-typed IPAM in one config file's text. */
export function reservoirNetworksIn(text: string): Array<{ name: string; ipam: Record<string, unknown> }> {
  const doc = JSON.parse(text) as Record<string, unknown>;
  const plugins = Array.isArray(doc.plugins) ? (doc.plugins as Array<Record<string, unknown>>) : [doc];
  const found: Array<{ name: string; ipam: Record<string, unknown> }> = [];
  for (const plugin of plugins) {
    const ipam = plugin?.ipam as Record<string, unknown> | undefined;
    if (ipam && typeof ipam === 'object' && ipam.type === PLUGIN_TYPE && typeof doc.name === 'string') {
      found.push({ name: doc.name, ipam });
    }
  }
  return found;
}

export function scanConfigDir(dir: string, networks: Networks, units: Units, log: Logger, now: () => number): Promise<number> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => CONFIG_FILE.test(f)).sort();
  } catch {
    return Promise.resolve(0);
  }
  // libcni takes the first file (in name order) that declares a network; so does reservoird.
  const declared = new Map<string, { ipam: Record<string, unknown>; path: string }>();
  const unreadable = new Set<string>();
  for (const file of files) {
    const path = join(dir, file);
    let found: Array<{ name: string; ipam: Record<string, unknown> }>;
    try {
      found = reservoirNetworksIn(readFileSync(path, 'utf8'));
    } catch (err) {
      unreadable.add(path);
      log.warn('skipping unreadable CNI config', { path, error: (err as Error).message });
      continue;
    }
    for (const { name, ipam } of found) {
      const first = declared.get(name);
      if (first) log.warn('network declared by two CNI config files; the first wins', { network: name, used: first.path, ignored: path });
      else declared.set(name, { ipam, path });
    }
  }
  const registered = Promise.all(
    [...declared].map(([name, { ipam, path }]) =>
      unitOfFile(units, name, ipam, () => networks.fromFile(name, ipam, path, now())).then(
        () => 1,
        (err: unknown) => {
          log.warn('skipping invalid CNI config', { path, network: name, error: asReservoirError(err).message });
          return 0;
        },
      ),
    ),
  ).then((counts) => counts.reduce<number>((a, b) => a + b, 0));
  // A file that cannot be read keeps its networks: it may be half written.
  const forgotten = units
    .run(undefined, () => networks.forgetFilesExcept(new Set(declared.keys()), unreadable, now()))
    .catch((err: unknown) => log.warn('could not update networks whose config file is gone', { dir, error: asReservoirError(err).message }));
  return Promise.all([registered, forgotten]).then(([count]) => count);
}

/** A file's network registers in its scope: a cluster network through etcd (refused without it). */
function unitOfFile(units: Units, name: string, ipam: Record<string, unknown>, fn: () => unknown): Promise<unknown> {
  const scope = ipam.scope === 'cluster' ? 'cluster' : 'node';
  try {
    units.refuseWithoutEtcd(name, scope);
  } catch (err) {
    return Promise.reject(err);
  }
  return units.run(name, fn, { scope });
}

/**
 * Scan now and on every change (and when `rescan` is called: a cluster network's file waits for
 * etcd); returns a function that stops watching. A directory that does
 * not exist yet (or is removed) is looked for again every few seconds, so a CNI config written
 * after reservoird started is still learned.
 */
export function watchConfigDir(dir: string, networks: Networks, units: Units, log: Logger, now: () => number, retryMs = 2_000): { stop: () => void; rescan: () => void } {
  const rescan = () => void scanConfigDir(dir, networks, units, log, now);
  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  const arm = (): boolean => {
    try {
      watcher = watch(dir, () => {
        clearTimeout(debounce);
        debounce = setTimeout(rescan, 200);
      });
    } catch {
      return false;
    }
    watcher.on('error', (err) => {
      log.warn('CNI config directory watch failed; retrying', { dir, error: err.message });
      watcher?.close();
      watcher = undefined;
    });
    rescan();
    return true;
  };
  if (!arm()) log.warn('CNI config directory does not exist yet; watching for it', { dir });
  const retry = setInterval(() => {
    if (!watcher && arm()) log.info('watching the CNI config directory', { dir });
  }, retryMs);
  retry.unref();
  return {
    rescan,
    stop: () => {
      clearInterval(retry);
      clearTimeout(debounce);
      watcher?.close();
    },
  };
}
