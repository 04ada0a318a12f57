// The netns reconciler, against a real SQLite store with a fake clock and a fake "does this
// namespace exist": leases whose namespace is gone longer than the grace are released as DEL
// would (stateless freed, stateful held), over several pages, and nothing else is touched.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniService } from '../../daemon/cni-service.js';
import { Ledger } from '../../daemon/ledger.js';
import { ReservedRules } from '../../daemon/reserved-rules.js';
import { silentLogger } from '../../daemon/log.js';
import { Networks } from '../../daemon/networks.js';
import { NetnsView } from '../../daemon/netns-view.js';
import { NetnsReconciler, RECONCILE_PAGE } from '../../daemon/reconciler.js';
import { SqliteStore } from '../../daemon/sqlite-store.js';
import { Clock } from '../support/daemon.js';
import { removeDir, tempDir } from '../support/tmp.js';

const GRACE = 60_000;
const COUNT = RECONCILE_PAGE * 2 + 100;

describe('NetnsReconciler', () => {
  let dir: string;
  let store: SqliteStore;
  let clock: Clock;
  let gone: Set<string>;
  let reconciler: NetnsReconciler;
  const run = <T>(fn: () => T) => Promise.resolve(store.transaction(fn));

  beforeEach(() => {
    dir = tempDir('reconcile');
    store = SqliteStore.open({ path: join(dir, 'leases.db') });
    clock = new Clock();
    gone = new Set();
    const networks = new Networks(store, silentLogger, new ReservedRules(store));
    const netns = new NetnsView(silentLogger, { exists: (path) => !gone.has(path), isDirectory: (path) => path === '/fake' });
    const cni = new CniService(store, networks, new Ledger(store, 'node-a', clock.now), silentLogger, netns, clock.now);
    reconciler = new NetnsReconciler(store, networks, cni, silentLogger, netns, GRACE, clock.now);
    store.transaction(() => {
      store.putNetwork('net', JSON.stringify({ type: 'reservoir', ranges: [[{ subnet: '10.30.0.0/16' }]] }), clock.now());
      for (let i = 0; i < COUNT; i++) {
        store.insertLease({
          network: 'net',
          family: 4,
          ip: 0x0a1e0000n + 10n + BigInt(i),
          containerId: `c${i}`,
          ifname: 'eth0',
          netns: `/fake/ns-${i}`,
          app: i % 10 === 0 ? `ns/db-${i}` : null,
          kind: i % 10 === 0 ? 'stateful' : 'stateless',
          createdAt: clock.now(),
          detachedAt: null,
        });
      }
    });
  });

  afterEach(() => {
    store.close();
    removeDir(dir);
  });

  it('releases, after the grace period, exactly the leases whose namespace is gone, across pages', async () => {
    // Every third namespace vanishes, spread over all pages.
    for (let i = 0; i < COUNT; i += 3) gone.add(`/fake/ns-${i}`);
    expect(await reconciler.sweep(run)).toBe(0); // first sighting starts the grace period
    clock.advance(GRACE - 1);
    expect(await reconciler.sweep(run)).toBe(0);
    clock.advance(1);
    expect(await reconciler.sweep(run)).toBe(gone.size);
    expect(reconciler.reclaimed).toBe(gone.size);

    for (let i = 0; i < COUNT; i++) {
      const lease = store.leaseAt('net', 4, 0x0a1e0000n + 10n + BigInt(i));
      if (!gone.has(`/fake/ns-${i}`)) expect(lease, `live lease ${i}`).toMatchObject({ containerId: `c${i}`, netns: `/fake/ns-${i}` });
      else if (i % 10 === 0) expect(lease, `stateful hold ${i}`).toMatchObject({ containerId: null, app: `ns/db-${i}`, kind: 'stateful' });
      else expect(lease, `stateless lease ${i}`).toBeUndefined();
    }
    expect(await reconciler.sweep(run)).toBe(0); // nothing left to do
  });

  it('forgets a namespace that comes back, and never releases a lease that changed hands meanwhile', async () => {
    gone.add('/fake/ns-1').add('/fake/ns-2');
    await reconciler.sweep(run);
    gone.delete('/fake/ns-1'); // back (a slow runtime, a remount)
    // ns-2's container was DELed and its IP went to a new container, whose namespace is fine.
    store.transaction(() => {
      store.deleteLease('net', 4, 0x0a1e0000n + 12n);
      store.insertLease({ network: 'net', family: 4, ip: 0x0a1e0000n + 12n, containerId: 'fresh', ifname: 'eth0', netns: '/fake/fresh', app: null, kind: 'stateless', createdAt: clock.now(), detachedAt: null });
    });
    clock.advance(GRACE);
    expect(await reconciler.sweep(run)).toBe(0);
    gone.add('/fake/ns-1');
    clock.advance(GRACE);
    expect(await reconciler.sweep(run)).toBe(0); // gone again: a new grace period starts
    expect(store.leaseAt('net', 4, 0x0a1e0000n + 11n)?.containerId).toBe('c1');
    expect(store.leaseAt('net', 4, 0x0a1e0000n + 12n)?.containerId).toBe('fresh');
  });
});
