// A store with many leases, written straight into the SQLite file a daemon will open, by the same
// services the daemon runs (one transaction: 40,000 ADDs take about a second).
import { CniService } from '../../daemon/cni-service.js';
import { Ledger } from '../../daemon/ledger.js';
import { silentLogger } from '../../daemon/log.js';
import { NetnsView } from '../../daemon/netns-view.js';
import { Networks } from '../../daemon/networks.js';
import { ReservedRules } from '../../daemon/reserved-rules.js';
import { SqliteStore } from '../../daemon/sqlite-store.js';
import { parseInvocation } from '../../src/invocation.js';

/** The CNI_* variables of attachment `id` (ifname eth0). */
export function attachmentEnv(id: string): { CNI_CONTAINERID: string; CNI_IFNAME: string; CNI_NETNS: string } {
  return { CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${id}` };
}

/** ADD containers `${prefix}-0` ... `${prefix}-${count - 1}` with `config` into the store at dbPath. */
export function seedLeases(dbPath: string, config: Record<string, unknown>, count: number, prefix = 'seed'): void {
  const store = SqliteStore.open({ path: dbPath });
  try {
    const cni = new CniService(store, new Networks(store, silentLogger, new ReservedRules(store)), new Ledger(store, 'seed'), silentLogger, new NetnsView(silentLogger));
    store.transaction(() => {
      for (let i = 0; i < count; i++) cni.add(parseInvocation('ADD', attachmentEnv(`${prefix}-${i}`), config));
    });
  } finally {
    store.close();
  }
}
