// Which journal writes wait for the disk: a batch that only adds attachments commits without an
// fsync (etcd's quorum holds its claims), one that removes a line waits (lost, the line would be
// claimed again after a power cut). Observed on the real daemon, real etcd and real SQLite file.
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { Journal } from '../../../daemon/cluster/journal.js';
import { Cleanup } from '../../support/cleanup.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';
import { netconf } from '../../support/netconf.js';
import { type TestDaemon, addOk, delOk, startTestDaemon } from '../support.js';

const cleanup = new Cleanup();
let etcd: EtcdCluster;
let node: TestDaemon;

describeWithPrereqs('the cluster journal and the disk', ['etcd'], () => {
  beforeAll(async () => {
    etcd = await startEtcdCluster(cleanup);
    node = await startTestDaemon({ nodeName: 'node-a', etcd: { endpoints: etcd.endpoints, prefix: `/sync${process.pid}` } });
    cleanup.add('stop the daemon', () => node.close());
  }, 60_000);
  afterAll(() => cleanup.run());

  it('writes an ADD\'s journal line without waiting for the disk and a DEL\'s removal waiting for it', async () => {
    const modes: Array<{ attached: boolean; synchronous: number }> = [];
    const follow = Journal.prototype.follow;
    const spy = vi.spyOn(Journal.prototype, 'follow').mockImplementation(function (this: Journal, ...args: Parameters<Journal['follow']>) {
      const db = (this as unknown as { db: { pragma(sql: string, o: { simple: true }): number } }).db;
      modes.push({ attached: args[3]?.containerId != null, synchronous: db.pragma('synchronous', { simple: true }) });
      return follow.apply(this, args);
    });
    try {
      const conf = netconf('shared', node.socket, { scope: 'cluster', ranges: [[{ subnet: '10.91.0.0/24' }]] });
      const [ip] = await addOk(conf, { containerId: 'c1' });
      await delOk(conf, { containerId: 'c1' });
      expect(ip).toMatch(/^10\.91\.0\./);
      expect(modes).toEqual([
        { attached: true, synchronous: 1 }, // NORMAL
        { attached: false, synchronous: 2 }, // FULL
      ]);
    } finally {
      spy.mockRestore();
    }
  });
});
