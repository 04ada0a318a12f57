// The project's TypeScript the benchmark needs, re-exported so bench/run.mjs can bundle it
// (scripts/build.mjs bundleFile, one CommonJS file in a temp dir) and import it. Nothing is
// copied: the daemon launcher, netconf builder, Cleanup, prerequisite registry and netns helpers
// are the tests' own (test/support), the store and services are the daemon's.
export { Cleanup } from '../test/support/cleanup.js';
export { DaemonProcess } from '../test/support/daemon.js';
export { netconf, conflist } from '../test/support/netconf.js';
export { missingPrereqs } from '../test/support/prereqs.js';
export {
  CNI_PLUGIN_DIR,
  createNetns,
  deleteLink,
  deleteLinkAtCleanup,
  pickFreeSubnet24,
  runCni,
  uniqueName,
  writeConflist,
} from '../test/support/netns.js';
export { SqliteStore } from '../daemon/sqlite-store.js';
export { CniService } from '../daemon/cni-service.js';
export { Networks } from '../daemon/networks.js';
export { Ledger } from '../daemon/ledger.js';
export { ReservedRules } from '../daemon/reserved-rules.js';
export { NetnsReconciler } from '../daemon/reconciler.js';
export { NetnsView } from '../daemon/netns-view.js';
export { silentLogger } from '../daemon/log.js';
export { parseInvocation } from '../src/invocation.js';
export { parseIp, toKey } from '../src/address.js';
export { startEtcdCluster } from '../test/support/etcd.js';
export { connectEtcd } from '../daemon/cluster/etcd-kv.js';
export { KeyLayout } from '../daemon/cluster/keys.js';
