// The plugin and the daemon bundled by the project's one recipe (scripts/build.mjs buildBundles:
// esbuild and the native exchange), and the plugin executable as shipped (scripts/bun.mjs
// compilePlugin, as scripts/package.mjs makes it), into build/test-bundles/ (git-ignored, apart from dist/ so a
// concurrent `npm run build` and a test run never see each other's half-written files).
// Called once per run from test/support/global-setup.ts; bundlesReady() lets a test file run
// on its own too. buildBundles writes under temporary names and renames: parallel runs are safe.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compilePlugin } from '../../scripts/bun.mjs';
import { ETCD_CLIENT_FILE, KUBE_CLIENT_FILE, ROOT, buildBundles } from '../../scripts/build.mjs';
import { NATIVE_CALL_FILE } from '../../scripts/native.mjs';

export { ROOT };
export const BUNDLE_DIR = join(ROOT, 'build', 'test-bundles');
/** The plugin as a Node bundle (node PLUGIN_BUNDLE): what the Node SEA plugin embedded. */
export const PLUGIN_BUNDLE = join(BUNDLE_DIR, 'reservoir.cjs');
/** The plugin as shipped: the bun-compiled executable, beside the native exchange. */
export const PLUGIN_EXE = join(BUNDLE_DIR, 'reservoir');
export const DAEMON_BUNDLE = join(BUNDLE_DIR, 'reservoird.cjs');
/** Beside the plugin bundle, as in dist/ and build/bin/: the plugin loads it from there. */
export const NATIVE_CALL = join(BUNDLE_DIR, NATIVE_CALL_FILE);
/** Beside the daemon bundle, as packaged: reservoird loads the Kubernetes client from there. */
export const KUBE_CLIENT = join(BUNDLE_DIR, KUBE_CLIENT_FILE);
/** Beside the daemon bundle, as packaged: reservoird loads the etcd client from there. */
export const ETCD_CLIENT = join(BUNDLE_DIR, ETCD_CLIENT_FILE);

export async function buildTestBundles(): Promise<{ plugin: string; daemon: string }> {
  await buildBundles({ outdir: BUNDLE_DIR, names: ['reservoir', 'reservoird'], log: () => undefined });
  compilePlugin(PLUGIN_EXE);
  return { plugin: PLUGIN_EXE, daemon: DAEMON_BUNDLE };
}

let building: Promise<unknown> | undefined;

/** Build unless global setup already did (running one file with a bare `vitest run FILE`). */
export function bundlesReady(): Promise<unknown> {
  if ([PLUGIN_BUNDLE, PLUGIN_EXE, DAEMON_BUNDLE, NATIVE_CALL, KUBE_CLIENT, ETCD_CLIENT].every((f) => existsSync(f)) && process.env.RESERVOIR_TEST_BUNDLES === '1') return Promise.resolve();
  building ??= buildTestBundles();
  return building;
}
