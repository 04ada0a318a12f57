// GC runs in chunks (units of GC_CHUNK leases) so it never holds the write queue for long; an
// ADD that lands between two chunks, for a container the GC's caller did not list, keeps its
// lease even when its address lies in a page the GC has not read yet. An ADD undone (its caller
// gave up) gives a stateful hold back as it was.
import { afterEach, describe, expect, it } from 'vitest';
import { GC_CHUNK } from '../../daemon/cni-service.js';
import { parseInvocation } from '../../src/invocation.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, startTestDaemon } from './support.js';

let td: TestDaemon;
afterEach(async () => {
  await td?.close();
});

const envOf = (id: string, args?: string) => ({ CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${id}`, CNI_ARGS: args });

describe('GC in chunks', () => {
  it('releases every unlisted lease over several units and spares an attachment ADDed between them', async () => {
    td = await startTestDaemon();
    const { cni, store } = td.daemon;
    const conf = netconf('chunks', td.socket, { ranges: [[{ subnet: '10.60.0.0/20' }]] });
    const total = GC_CHUNK * 2 + 7;
    store.transaction(() => {
      for (let i = 0; i < total; i++) cni.add(parseInvocation('ADD', envOf(`old-${i}`), conf));
    });
    cni.add(parseInvocation('ADD', envOf('kept'), conf));
    const gc = parseInvocation('GC', {}, { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'kept', ifname: 'eth0' }] });
    let units = 0;
    const result = await cni.gc(gc, async (fn) => {
      const value = store.transaction(fn);
      // between the first and the second unit: a new container asks for an address in the last page
      if (++units === 1) store.transaction(() => cni.add(parseInvocation('ADD', envOf('newcomer'), { ...conf, runtimeConfig: { ips: ['10.60.15.200'] } })));
      return value;
    });
    expect(result).toEqual({ released: total, errors: [] });
    expect(units).toBeGreaterThanOrEqual(3);
    const left = store.attachedLeases('chunks').map((l) => l.containerId).sort();
    expect(left).toEqual(['kept', 'newcomer']);
  });

  it('an undone ADD of a stateful app gives its held IP back, detached as before', async () => {
    td = await startTestDaemon();
    const { cni, store } = td.daemon;
    const conf = netconf('undo', td.socket, { ranges: [[{ subnet: '10.61.0.0/24' }]] });
    const app = 'K8S_POD_NAMESPACE=db;K8S_POD_NAME=db-0;RESERVOIR_KIND=stateful';
    const first = cni.add(parseInvocation('ADD', envOf('c1', app), conf));
    cni.del(parseInvocation('DEL', envOf('c1', app), conf));
    const [held] = store.leasesOfApp('undo', 'db/db-0');
    expect(held?.containerId).toBeNull();
    // the pod comes back asking for another IP: its hold yields, then the caller gives up
    const added = store.transaction(() => cni.addUndoable(parseInvocation('ADD', envOf('c2', app), { ...conf, runtimeConfig: { ips: ['10.61.0.77'] } })));
    expect(added.result.ips[0]!.address).toBe('10.61.0.77/24');
    store.transaction(() => added.undo());
    expect(store.leasesOfApp('undo', 'db/db-0')).toEqual([held]);
    expect(store.leaseAt('undo', 4, 0x0a3d004dn)).toBeUndefined();
    expect(first.ips[0]!.address).not.toBe('10.61.0.77/24');
    // and a plain reattach undone is detached again
    const again = store.transaction(() => cni.addUndoable(parseInvocation('ADD', envOf('c3', app), conf)));
    expect(again.result.ips[0]!.address).toBe(first.ips[0]!.address);
    store.transaction(() => again.undo());
    expect(store.leasesOfApp('undo', 'db/db-0')).toEqual([held]);
  });
});
