// Cluster networks under faults, with reservoird as child processes (the test bundle) and the
// shipped plugin: etcd's leader killed or paused mid-storm, quorum lost and regained, a daemon
// killed between etcd's commit and its journal's, TLS with certificates made here, and a race of
// 30 plugin processes over 3 nodes for one reserved IP. Across all of them: no IP acknowledged to
// two live attachments, no acknowledged lease lost.
import { afterAll, expect, it } from 'vitest';
import { Cleanup } from '../../support/cleanup.js';
import { DaemonProcess, type DaemonInDir, leasesOf, sleep, startDaemonIn } from '../../support/daemon.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';
import { netconf } from '../../support/netconf.js';
import { type PluginRun, runPlugin } from '../../support/plugin.js';
import { op, waitFor } from '../support.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

let round = 0;

async function startNodes(etcd: EtcdCluster, count: number, options: { extra?: string[]; env?: Record<string, string>; grace?: number } = {}): Promise<DaemonInDir[]> {
  const prefix = `/f${process.pid}-${++round}`;
  const nodes: DaemonInDir[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push(
      await startDaemonIn(cleanup, `node${i}`, {
        reclaimGrace: options.grace ?? 0,
        extraArgs: ['--node-name', `node-${i}`, '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', prefix, ...(options.extra ?? [])],
        ...(options.env ? { env: options.env } : {}),
      }),
    );
  }
  return nodes;
}

const conf = (socket: string, ipam: Record<string, unknown> = {}) =>
  netconf('cnet', socket, { scope: 'cluster', ranges: [[{ subnet: '10.120.0.0/16' }]], reserved: [{ entry: '10.120.0.200-10.120.0.202', group: 'db' }], ...ipam });

function add(socket: string, containerId: string, args?: string): Promise<PluginRun> {
  return runPlugin({ command: 'ADD', containerId, config: conf(socket), ...(args ? { args } : {}) });
}

function ipOf(run: PluginRun): string | undefined {
  return run.exitCode === 0 ? (run.json.ips[0].address as string).split('/')[0] : undefined;
}

/** Every acknowledged ADD's IP is held by that container in etcd (as a node reads it), and no IP twice. */
async function expectNoDuplicateNoLoss(socket: string, acknowledged: ReadonlyMap<string, string>): Promise<void> {
  const leases = await leasesOf(socket, 'cnet');
  const byIp = new Map<string, string>();
  for (const lease of leases) {
    expect(byIp.has(lease.ip), `${lease.ip} listed twice`).toBe(false);
    byIp.set(lease.ip, lease.containerId!);
  }
  const holders = new Map<string, string>();
  for (const [container, ip] of acknowledged) {
    expect(holders.get(ip), `${ip} acknowledged to ${holders.get(ip)} and ${container}`).toBeUndefined();
    holders.set(ip, container);
    expect(byIp.get(ip), `acknowledged ${ip} of ${container} lost`).toBe(container);
  }
}

/** ADDs from `workers` concurrent loops over the nodes until stop() resolves; the acknowledged ones. */
async function storm(nodes: readonly DaemonInDir[], label: string, during: () => Promise<void>, workers = 6): Promise<{ acknowledged: Map<string, string>; failed: PluginRun[] }> {
  const acknowledged = new Map<string, string>();
  const failed: PluginRun[] = [];
  let stop = false;
  let n = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (!stop) {
      const id = `${label}-${w}-${n++}`;
      const run = await add(nodes[n % nodes.length]!.socket, id);
      const ip = ipOf(run);
      if (ip) acknowledged.set(id, ip);
      else failed.push(run);
    }
  });
  await during();
  stop = true;
  await Promise.all(loops);
  return { acknowledged, failed };
}

describeWithPrereqs('cluster networks under faults', ['etcd', 'openssl'], () => {
  it('loses quorum: ADD fails with 11 within the plugin timeout and records nothing; DEL and CHECK work from the journal; the release reaches etcd when it is back, across a restart', async () => {
    const etcd = await startEtcdCluster(cleanup);
    const [a, b] = await startNodes(etcd, 2);
    const before = await add(a!.socket, 'kept');
    const keptIp = ipOf(before)!;
    const checkedIp = ipOf(await add(a!.socket, 'checked'))!;
    expect(keptIp).toBeDefined();
    const leader = await etcd.leader();
    const others = [0, 1, 2].filter((i) => i !== leader);
    await etcd.kill(others[0]!);
    await etcd.kill(others[1]!);
    const lost = await add(a!.socket, 'during');
    expect(lost.exitCode, lost.stdout).toBe(1);
    expect(lost.json.code).toBe(11);
    expect(lost.json.msg).toMatch(/etcd/);
    expect(lost.durationMs).toBeLessThan(5_800);
    // DEL succeeds from the journal, CHECK answers from it
    const del = await runPlugin({ command: 'DEL', containerId: 'kept', config: conf(a!.socket) });
    expect(del.exitCode, del.stdout).toBe(0);
    const check = await runPlugin({ command: 'CHECK', containerId: 'checked', config: { ...conf(a!.socket), prevResult: { cniVersion: '1.1.0', ips: [{ address: `${checkedIp}/16` }] } } });
    expect(check.exitCode, check.stdout).toBe(0);
    // node networks do not notice
    const local = await runPlugin({ command: 'ADD', containerId: 'local1', config: netconf('localnet', a!.socket, { ranges: [[{ subnet: '10.121.0.0/24' }]] }) });
    expect(local.exitCode, local.stdout).toBe(0);
    // a daemon restarted while etcd is away starts and serves, and keeps what it owes
    await a!.restart();
    await etcd.restart(others[0]!);
    await etcd.restart(others[1]!);
    await etcd.waitHealthy(30_000);
    await waitFor(
      async () => {
        const seen = (await leasesOf(b!.socket, 'cnet')).map((l) => l.containerId);
        return seen.includes('checked') && !seen.includes('kept') ? true : undefined;
      },
      20_000,
      'the release taken while etcd was away reaches etcd, and the other node sees it',
    );
    const leases = await leasesOf(b!.socket, 'cnet');
    expect(leases.map((l) => l.containerId).sort()).toEqual(['checked']);
    // and ADD works again, on both nodes
    await waitFor(async () => (ipOf(await add(b!.socket, 'after')) ? true : undefined), 15_000, 'ADD works after quorum is back');
  }, 120_000);

  for (const fault of ['kill -9', 'SIGSTOP'] as const) {
    it(`keeps every acknowledged lease and never gives an IP twice when the etcd leader gets ${fault} mid-storm`, async () => {
      const etcd = await startEtcdCluster(cleanup);
      const nodes = await startNodes(etcd, 3);
      const { acknowledged, failed } = await storm(nodes, fault === 'kill -9' ? 'k' : 'p', async () => {
        await sleep(1_500);
        const leader = await etcd.leader();
        if (fault === 'kill -9') {
          await etcd.kill(leader);
          await sleep(2_500);
          await etcd.restart(leader);
        } else {
          etcd.pause(leader);
          await sleep(3_000);
          etcd.resume(leader);
        }
        await etcd.waitHealthy(30_000);
        await sleep(1_500);
      });
      expect(acknowledged.size).toBeGreaterThan(20);
      for (const run of failed) expect(run.json?.code, run.stdout).toBe(11);
      // every node sees the same, once its copy has caught up
      await sleep(1_000);
      for (const node of nodes) await expectNoDuplicateNoLoss(node.socket, acknowledged);
    }, 120_000);
  }

  it('a daemon killed between etcd\'s commit and its journal: the orphan claim is released after the reclaim grace, never duplicated', async () => {
    const etcd = await startEtcdCluster(cleanup);
    const [victim] = await startNodes(etcd, 1, { env: { RESERVOIR_FAULT: 'after-etcd-commit' }, grace: 1 });
    const died = await add(victim!.socket, 'orphan');
    expect(died.exitCode).not.toBe(0);
    expect((await victim!.daemon.exited).signal).toBe('SIGKILL');
    // restarted without the fault: the claim in etcd for this node that its journal does not know goes
    const restarted = await DaemonProcess.start({ ...victim!.daemon.spec, env: {} });
    cleanup.add('stop the restarted daemon', () => restarted.stop());
    await waitFor(async () => ((await op(victim!.socket, 'health')).cluster.connected ? true : undefined), 10_000, 'the restarted daemon follows etcd');
    await waitFor(async () => ((await leasesOf(victim!.socket, 'cnet')).length === 0 ? true : undefined), 20_000, 'the orphan is released');
    expect((await op(victim!.socket, 'clusterCheck')).orphans).toEqual([]);
    // it was there, in etcd, for this node: released as an orphan, on the record
    const events = (await op(victim!.socket, 'history', { params: { network: 'cnet' } })).events as Array<{ event: string; reason: string; containerId: string }>;
    expect(events).toContainEqual(expect.objectContaining({ event: 'release', reason: 'orphan', containerId: 'orphan' }));
    expect(ipOf(await add(victim!.socket, 'orphan'))).toBeDefined();
  }, 90_000);

  it('an ADD that arrives while a starting daemon loads its copy of etcd waits for the load instead of failing with 11', async () => {
    const etcd = await startEtcdCluster(cleanup);
    // every member paused: the daemon serves, and its first load waits on etcd
    for (const i of [0, 1, 2]) etcd.pause(i);
    const [node] = await startNodes(etcd, 1);
    expect((await op(node!.socket, 'health')).cluster.connected).toBe(false);
    const adding = add(node!.socket, 'early');
    await sleep(800);
    for (const i of [0, 1, 2]) etcd.resume(i);
    const early = await adding;
    expect(early.exitCode, early.stdout).toBe(0);
    expect(early.durationMs).toBeGreaterThan(700);
    expect((await leasesOf(node!.socket, 'cnet')).map((l) => l.containerId)).toEqual(['early']);
  }, 60_000);

  it('speaks TLS with client certificates made by the test, and refuses a client without one', async () => {
    const etcd = await startEtcdCluster(cleanup, { tls: true });
    const tls = etcd.tls!;
    const [secure] = await startNodes(etcd, 1, { extra: ['--etcd-cacert', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key] });
    // the daemon serves before its first load from etcd (slower over TLS): an ADD before it gets 11
    await waitFor(async () => ((await op(secure!.socket, 'health')).cluster.connected ? true : undefined), 10_000, 'the TLS daemon follows etcd');
    expect(ipOf(await add(secure!.socket, 'tls1'))).toBeDefined();
    const [anonymous] = await startNodes(etcd, 1, { extra: ['--etcd-cacert', tls.ca] });
    const refused = await add(anonymous!.socket, 'tls2');
    expect(refused.json.code, refused.stdout).toBe(11);
  }, 60_000);

  it('a race of 30 plugin processes over 3 nodes for one reserved IP has exactly one winner; the others get 101 naming it', async () => {
    const etcd = await startEtcdCluster(cleanup);
    const nodes = await startNodes(etcd, 3);
    // the network exists on every node before the race
    for (const [i, node] of nodes.entries()) expect(ipOf(await add(node.socket, `warm${i}`))).toBeDefined();
    const runs = await Promise.all(Array.from({ length: 30 }, (_, i) => add(nodes[i % 3]!.socket, `racer${i}`, 'IP=10.120.0.201')));
    const winners = runs.filter((r) => r.exitCode === 0);
    expect(winners).toHaveLength(1);
    const winner = `racer${runs.indexOf(winners[0]!)}`;
    const node = `node-${runs.indexOf(winners[0]!) % 3}`;
    for (const loser of runs.filter((r) => r.exitCode !== 0)) {
      expect(loser.json.code, loser.stdout).toBe(101);
      expect(loser.json.msg).toContain(`container ${winner}`);
      expect(loser.json.msg).toContain(`on node ${node}`);
      expect(loser.json.msg).toMatch(/free in reserved group "db": 10\.120\.0\.200, 10\.120\.0\.202/);
    }
  }, 90_000);
}, { timeout: 120_000 });
