// The project's TypeScript the benchmark needs, re-exported so bench/run.mjs can bundle it with
// esbuild at start (one CommonJS file in a temp dir) and import it. Nothing is copied: the
// network-namespace helpers are test/e2e/netns.ts's, the store and services are the daemon's.
export {
  Cleanup,
  CNI_PLUGIN_DIR,
  HARNESS_BIN,
  buildHarness,
  createNetns,
  deleteLink,
  deleteNetns,
  linkExists,
  pickFreeSubnet24,
  requirePrereqs,
  runCni,
  uniqueName,
  writeConflist,
} from '../test/e2e/netns.js';
export { SqliteStore } from '../daemon/sqlite-store.js';
export { CniService } from '../daemon/cni-service.js';
export { Networks } from '../daemon/networks.js';
export { NetnsReconciler } from '../daemon/reconciler.js';
export { silentLogger } from '../daemon/log.js';
export { parseInvocation } from '../src/invocation.js';
export { parseIp, toKey } from '../src/address.js';
