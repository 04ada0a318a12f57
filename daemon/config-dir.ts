// Learn networks from the CNI config directory (default /etc/cni/net.d), so operators can
// reserve IPs before the first pod arrives. Rescans on every change, debounced; a broken file
// is logged with its name and skipped, never fatal.
import { type FSWatcher, readFileSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { asReservoirError } from '../src/errors.js';
import type { Logger } from './log.js';
import type { Networks } from './networks.js';
import type { WriteQueue } from './write-queue.js';

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

export function scanConfigDir(dir: string, networks: Networks, queue: WriteQueue, log: Logger, now: () => number): Promise<number> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => CONFIG_FILE.test(f)).sort();
  } catch {
    return Promise.resolve(0);
  }
  const registrations = files.flatMap((file) => {
    const path = join(dir, file);
    try {
      return reservoirNetworksIn(readFileSync(path, 'utf8')).map((network) => ({ ...network, path }));
    } catch (err) {
      log.warn('skipping unreadable CNI config', { path, error: (err as Error).message });
      return [];
    }
  });
  return Promise.all(
    registrations.map(({ name, ipam, path }) =>
      queue.run(() => networks.register(name, ipam, now())).then(
        () => 1,
        (err: unknown) => {
          log.warn('skipping invalid CNI config', { path, network: name, error: asReservoirError(err).message });
          return 0;
        },
      ),
    ),
  ).then((counts) => counts.reduce<number>((a, b) => a + b, 0));
}

/**
 * Scan now and on every change; returns a function that stops watching. A directory that does
 * not exist yet (or is removed) is looked for again every few seconds, so a CNI config written
 * after reservoird started is still learned.
 */
export function watchConfigDir(dir: string, networks: Networks, queue: WriteQueue, log: Logger, now: () => number, retryMs = 2_000): () => void {
  const rescan = () => void scanConfigDir(dir, networks, queue, log, now);
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
  return () => {
    clearInterval(retry);
    clearTimeout(debounce);
    watcher?.close();
  };
}
