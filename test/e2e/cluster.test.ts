// End to end, cluster scope: two PACKAGED reservoird "nodes" on a real three-member etcd, the
// packaged plugin as the ipam of Debian's bridge plugin, driven by the real libcni (test/harness)
// into real network namespaces, inspected with the packaged reservoirctl. A reserved IP taken on
// one node is refused on the other (naming the node), and once DELed there it is the other's;
// `check` on one node shows the other's report, and `check --repair` is answered by the other.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../support/etcd.js';
import { conflist } from '../support/netconf.js';
import { type CniResult, createBridge, createNetns, deleteLinkAtCleanup, randomSuffix, runCni, uniqueName, writeConflist } from '../support/netns.js';
import { type ReservoirEnv, globalCidrs, pickDualStackSubnet, startReservoirEnv } from './support.js';

const SETUP_TIMEOUT = 300_000;

describeWithPrereqs('reservoir e2e, cluster networks (packaged, two nodes on etcd, libcni, bridge)', ['root', 'netns', 'harness', 'bridge', 'etcd'], () => {
  const cleanup = new Cleanup();
  const run = randomSuffix(4);
  let etcd: EtcdCluster;
  let nodes: ReservoirEnv[];

  beforeAll(async () => {
    etcd = await startEtcdCluster(cleanup);
    const prefix = `/e2e-${run}`;
    nodes = [];
    for (const name of ['e2e-node-a', 'e2e-node-b']) nodes.push(await startReservoirEnv(cleanup, ['--node-name', name, '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', prefix]));
  }, SETUP_TIMEOUT);
  afterAll(() => cleanup.run(), 60_000);

  it('one reserved IP, one holder in the cluster: refused on the other node with its name, free for it after DEL', async () => {
    const net = pickDualStackSubnet();
    const reservedIp = `${net.v4Prefix}.50`;
    const netName = `rsv-cl-${run}`;
    const confOf = (env: ReservoirEnv, br: string) =>
      writeConflist(
        conflist(netName, env.socket, { scope: 'cluster', ranges: [[{ subnet: net.v4 }]], reserved: [{ entry: reservedIp, group: 'db' }] }, { cniVersion: '1.0.0', plugin: { type: 'bridge', bridge: br, isGateway: true, ipMasq: false } }),
        cleanup,
      );
    const [a, b] = nodes as [ReservoirEnv, ReservoirEnv];
    const brA = createBridge(uniqueName('rsvca'), cleanup);
    const brB = createBridge(uniqueName('rsvcb'), cleanup);
    const confA = confOf(a, brA);
    const confB = confOf(b, brB);
    const track = (res: CniResult | undefined, br: string) => {
      for (const i of res?.interfaces ?? []) if (!i.sandbox && i.name !== br) deleteLinkAtCleanup(cleanup, i.name);
    };
    const nsA = createNetns(cleanup);
    const nsB = createNetns(cleanup);
    const group = { RESERVOIR_GROUP: 'db', IgnoreUnknown: '1' };

    const first = await runCni('add', confA, `rsv-${run}-a`, nsA.path, 'eth0', { cacheDir: a.cacheDir, cniPath: a.cniPath, extraArgs: group });
    expect(first.error, `${first.error?.msg}\n${a.daemon.log}`).toBeUndefined();
    track(first.result, brA);
    expect(first.result!.ips![0]!.address).toBe(`${reservedIp}/24`);
    expect(globalCidrs(nsA.name, 'eth0', 'inet')).toEqual([`${reservedIp}/24`]);

    const refused = await runCni('add', confB, `rsv-${run}-b`, nsB.path, 'eth0', { cacheDir: b.cacheDir, cniPath: b.cniPath, extraArgs: group });
    expect(refused.error?.code, refused.stderr).toBe(103);
    expect(refused.error!.msg).toContain(`${reservedIp} (container rsv-${run}-a`);
    expect(refused.error!.msg).toContain('on node e2e-node-a');

    const listed = b.ctl(['leases', netName, '-o', 'json']);
    expect(listed.status, listed.stderr).toBe(0);
    expect((listed.json as { leases: Array<{ ip: string; node: string }> }).leases).toEqual([expect.objectContaining({ ip: reservedIp, node: 'e2e-node-a' })]);

    const del = await runCni('del', confA, `rsv-${run}-a`, nsA.path, 'eth0', { cacheDir: a.cacheDir, cniPath: a.cniPath, extraArgs: group });
    expect(del.error).toBeUndefined();
    // a fresh namespace: the bridge plugin leaves its veth in one whose ADD failed at the ipam
    const nsB2 = createNetns(cleanup);
    const second = await runCni('add', confB, `rsv-${run}-b2`, nsB2.path, 'eth0', { cacheDir: b.cacheDir, cniPath: b.cniPath, extraArgs: group });
    expect(second.error, `${second.error?.msg}\n${b.daemon.log}`).toBeUndefined();
    track(second.result, brB);
    expect(second.result!.ips![0]!.address).toBe(`${reservedIp}/24`);
    const delB = await runCni('del', confB, `rsv-${run}-b2`, nsB2.path, 'eth0', { cacheDir: b.cacheDir, cniPath: b.cniPath, extraArgs: group });
    expect(delB.error).toBeUndefined();
    expect(a.ctl(['check']).status).toBe(0);

    // check across nodes, through etcd: node-a sees node-b's report, and --repair is answered by node-b
    type Check = { nodes?: Array<{ node: string; report: unknown; silent: boolean }>; repairRequest?: { asked: string[]; answered: string[]; silent: string[] } };
    let seen: Check | undefined;
    for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
      seen = a.ctl(['check', '-o', 'json']).json as Check;
      if (seen.nodes?.some((n) => n.node === 'e2e-node-b' && n.report !== null)) break;
    }
    expect(seen?.nodes).toEqual([expect.objectContaining({ node: 'e2e-node-b', silent: false })]);
    const repair = a.ctl(['check', '--repair', '-o', 'json']);
    expect(repair.status, repair.stderr).toBe(0);
    expect((repair.json as Check).repairRequest).toMatchObject({ asked: ['e2e-node-b'], answered: ['e2e-node-b'], silent: [] });
  }, 120_000);
});
