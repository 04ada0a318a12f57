// Vitest global setup: bundle the plugin and the daemon once per run, before any test file.
import { buildTestBundles } from './build.js';

export default async function setup(): Promise<void> {
  await buildTestBundles();
  // Workers inherit this: they need not rebuild (see bundlesReady).
  process.env.RESERVOIR_TEST_BUNDLES = '1';
}
