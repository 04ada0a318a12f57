// Finds and loads better-sqlite3's native addon (better_sqlite3.node) without relying on
// node_modules, so the daemon works as a plain `node dist/reservoird.cjs`, under vitest, and as
// a packaged single executable (SEA), where require() can load built-in modules only.
//
// The addon is loaded here with process.dlopen and the loaded object is handed to better-sqlite3
// as its `nativeBinding` option: lib/database.js (13.2.0) accepts "a string or addon object", and
// lib/binding.js returns an object as-is. A path string would NOT work in a SEA, because
// better-sqlite3 would then require() it with the bundle's require, which is the SEA's
// builtins-only require.
//
// Resolution order (the first file that exists is loaded; a file that exists but fails to load
// is an error, not a reason to try the next one):
//   1. $RESERVOIR_SQLITE_ADDON                      (must exist if set)
//   2. better_sqlite3.node beside process.execPath   (packaged layout: build/bin/, installed bin dir)
//   3. better_sqlite3.node beside the running script (dist/ when run as node dist/reservoird.cjs)
//   4. better-sqlite3 in node_modules: build/Release/better_sqlite3.node, then
//      prebuilds/<platform>-<arch>.node, resolved from the script's directory and from the cwd.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';

export const SQLITE_ADDON_ENV = 'RESERVOIR_SQLITE_ADDON';
export const SQLITE_ADDON_FILE = 'better_sqlite3.node';

/** The loaded native addon; opaque to us, better-sqlite3 knows its shape. */
export type SqliteAddon = object;

export interface SqliteAddonCandidate {
  readonly path: string;
  /** Why this path is on the list, for error messages. */
  readonly source: string;
}

export class SqliteAddonError extends Error {
  override name = 'SqliteAddonError';
}

const loaded = new Map<string, SqliteAddon>();

/** The file this module was loaded from, or undefined if unknown. */
function moduleFile(): string | undefined {
  // scripts/build.mjs defines import.meta.url for the CommonJS bundles; under ESM (vitest) it is
  // native. Anything else (another bundler) may leave it empty: then we just skip this candidate.
  try {
    const url = import.meta.url;
    if (typeof url === 'string' && url.startsWith('file:')) return fileURLToPath(url);
  } catch {
    // fall through
  }
  return undefined;
}

function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const maps = readFileSync('/proc/self/maps', 'latin1');
    if (/\/ld-musl-[^/\s]*\.so/.test(maps)) return true;
  } catch {
    // not fatal: assume glibc
  }
  return false;
}

function nodeModulesCandidates(from: string, label: string): SqliteAddonCandidate[] {
  let pkgDir: string;
  try {
    pkgDir = dirname(createRequire(from).resolve('better-sqlite3/package.json'));
  } catch {
    return [];
  }
  const target = `${isMusl() ? 'linuxmusl' : process.platform}-${process.arch}`;
  return [
    { path: join(pkgDir, 'build', 'Release', SQLITE_ADDON_FILE), source: `node_modules build (${label})` },
    { path: join(pkgDir, 'prebuilds', `${target}.node`), source: `node_modules prebuild (${label})` },
  ];
}

/** Every place looked at, in order, duplicates removed. Exported for diagnostics and tests. */
export function sqliteAddonCandidates(env: NodeJS.ProcessEnv = process.env): SqliteAddonCandidate[] {
  const out: SqliteAddonCandidate[] = [];
  const fromEnv = env[SQLITE_ADDON_ENV];
  if (fromEnv) out.push({ path: resolve(fromEnv), source: `$${SQLITE_ADDON_ENV}` });
  out.push({ path: join(dirname(process.execPath), SQLITE_ADDON_FILE), source: 'beside the executable' });
  const script = moduleFile();
  if (script) out.push({ path: join(dirname(script), SQLITE_ADDON_FILE), source: 'beside the script' });
  if (script) out.push(...nodeModulesCandidates(script, 'from the script'));
  out.push(...nodeModulesCandidates(join(process.cwd(), 'noop.js'), 'from the cwd'));
  const seen = new Set<string>();
  return out.filter((c) => (seen.has(c.path) ? false : (seen.add(c.path), true)));
}

/** Which addon file loadSqliteAddon() would load, without loading it. */
export function locateSqliteAddon(env: NodeJS.ProcessEnv = process.env): SqliteAddonCandidate {
  const candidates = sqliteAddonCandidates(env);
  const fromEnv = env[SQLITE_ADDON_ENV];
  if (fromEnv && !existsSync(candidates[0]!.path)) {
    throw new SqliteAddonError(
      `${SQLITE_ADDON_ENV}=${fromEnv} but ${candidates[0]!.path} does not exist; ` +
        `point it at better-sqlite3's native addon (better_sqlite3.node) or unset it`,
    );
  }
  const found = candidates.find((c) => existsSync(c.path));
  if (found) return found;
  throw new SqliteAddonError(
    `cannot find better-sqlite3's native addon (${SQLITE_ADDON_FILE}). Looked in:\n` +
      candidates.map((c) => `  - ${c.path}  (${c.source})`).join('\n') +
      `\nInstall ${SQLITE_ADDON_FILE} beside the reservoird executable, or set ${SQLITE_ADDON_ENV} to its path.`,
  );
}

/**
 * Loads the addon (once per process) and returns it. Pass the result as better-sqlite3's
 * `nativeBinding` option, or use sqliteOptions() which does that for you.
 */
export function loadSqliteAddon(env: NodeJS.ProcessEnv = process.env): SqliteAddon {
  const { path, source } = locateSqliteAddon(env);
  const cached = loaded.get(path);
  if (cached) return cached;
  const mod = { exports: {} as SqliteAddon };
  try {
    // process.dlopen works in a SEA (require() there loads built-ins only) and outside one.
    process.dlopen(mod, path);
  } catch (err) {
    throw new SqliteAddonError(
      `cannot load better-sqlite3's native addon ${path} (${source}): ${(err as Error).message}`,
    );
  }
  loaded.set(path, mod.exports);
  return mod.exports;
}

/**
 * better-sqlite3 options with `nativeBinding` set to the loaded addon:
 *   new Database(file, sqliteOptions({ timeout: 1000 }))
 * @types/better-sqlite3 9.6 declares nativeBinding as a string only, but better-sqlite3 13.2's
 * lib/database.js accepts the addon object too, hence the cast.
 */
export function sqliteOptions(options: BetterSqlite3.Options = {}): BetterSqlite3.Options {
  return { ...options, nativeBinding: loadSqliteAddon() as unknown as string };
}
