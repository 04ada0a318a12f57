// Bundles the plugin and the daemon (cmd/reservoir.ts, cmd/reservoird.ts) the way
// scripts/build.mjs does, and compiles the plugin's native exchange (scripts/native.mjs) beside
// them, into build/test-bundles/ (git-ignored, apart from dist/ so a
// concurrent `npm run build` and a test run never see each other's half-written files).
// Called once per run from test/support/global-setup.ts; bundlesReady() lets a test file run
// on its own too. Files are written to a temporary name and renamed, so parallel runs are safe.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { NATIVE_CALL_FILE, buildNativeCall } from '../../scripts/native.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE_DIR = join(ROOT, 'build', 'test-bundles');
export const PLUGIN_BUNDLE = join(BUNDLE_DIR, 'reservoir.cjs');
export const DAEMON_BUNDLE = join(BUNDLE_DIR, 'reservoird.cjs');
/** Beside the plugin bundle, as in dist/ and build/bin/: the plugin loads it from there. */
export const NATIVE_CALL = join(BUNDLE_DIR, NATIVE_CALL_FILE);

// As in scripts/build.mjs: esbuild empties import.meta in CommonJS output, and
// daemon/native-addon.ts needs the bundle's own location to find better-sqlite3's addon.
const IMPORT_META_URL = '__reservoir_import_meta_url';

export async function buildTestBundles(): Promise<{ plugin: string; daemon: string }> {
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [
      { in: join(ROOT, 'cmd', 'reservoir.ts'), out: 'reservoir' },
      { in: join(ROOT, 'cmd', 'reservoird.ts'), out: 'reservoird' },
    ],
    outdir: BUNDLE_DIR,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    keepNames: true,
    banner: { js: `var ${IMPORT_META_URL}=require("node:url").pathToFileURL(__filename).href;` },
    define: {
      'import.meta.url': IMPORT_META_URL,
      'import.meta.filename': '__filename',
      'import.meta.dirname': '__dirname',
    },
    nodePaths: [join(ROOT, 'node_modules')],
    absWorkingDir: ROOT,
    logLevel: 'silent',
    write: false,
  });
  for (const file of result.outputFiles) {
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  buildNativeCall(NATIVE_CALL);
  return { plugin: PLUGIN_BUNDLE, daemon: DAEMON_BUNDLE };
}

let building: Promise<unknown> | undefined;

/** Build unless global setup already did (running one file with a bare `vitest run FILE`). */
export function bundlesReady(): Promise<unknown> {
  if (existsSync(PLUGIN_BUNDLE) && existsSync(DAEMON_BUNDLE) && existsSync(NATIVE_CALL) && process.env.RESERVOIR_TEST_BUNDLES === '1') return Promise.resolve();
  building ??= buildTestBundles();
  return building;
}
