// `reservoirctl check` across nodes (issue 11, rule 7): three in-process reservoird "nodes" on a
// real three-member etcd, talking only through it. Each publishes its report under
// PREFIX/v1/nodes/NODE; check on one node lists another's orphans from its report, counts that
// disagree and silent nodes; --repair on one node makes the others repair and answer.
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../../ctl/main.js';
import { VERSION } from '../../../daemon/app.js';
import type { NodeReportOptions } from '../../../daemon/cluster/node-reports.js';
import { REPORT_LIST_CAP, REPORT_MAX_BYTES } from '../../../daemon/cluster/node-report.js';
import type { ClusterCheckResponse, ClusterNodeReport } from '../../../src/protocol.js';
import { Cleanup } from '../../support/cleanup.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';
import { netconf } from '../../support/netconf.js';
import { type TestDaemon, addOk, op, startTestDaemon, waitFor } from '../support.js';

const cleanup = new Cleanup();
let etcd: EtcdCluster;
let client: Etcd3;
let round = 0;

async function startNodes(reports: NodeReportOptions = {}): Promise<{ prefix: string; nodes: TestDaemon[] }> {
  const prefix = `/n${process.pid}-${++round}`;
  const nodes: TestDaemon[] = [];
  for (const name of ['node-a', 'node-b', 'node-c']) {
    const node = await startTestDaemon({ nodeName: name, etcd: { endpoints: etcd.endpoints, prefix }, nodeReports: reports });
    cleanup.add(`stop ${name}`, () => node.close().catch(() => undefined));
    nodes.push(node);
  }
  return { prefix, nodes };
}

const conf = (socket: string) => netconf('shared', socket, { scope: 'cluster', ranges: [[{ subnet: '10.91.0.0/24' }]] });

async function ctl(socket: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main({ argv, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { RESERVOIR_SOCKET: socket } });
  return { code, stdout, stderr };
}

async function reportIn(prefix: string, node: string): Promise<{ report: ClusterNodeReport; bytes: number } | undefined> {
  const text = await client.get(`${prefix}/v1/nodes/${node}`).string();
  return text === null ? undefined : { report: JSON.parse(text) as ClusterNodeReport, bytes: Buffer.byteLength(text) };
}

/** Remove journal lines of a node's containers (as a crash between etcd's commit and the journal's leaves it): etcd keeps claims the node no longer knows (orphans). */
function forgetInJournal(node: TestDaemon, containers: readonly string[]): void {
  const journal = node.daemon.cluster!.cluster.journal;
  const rows = journal.attachments().filter((a) => containers.includes(a.lease.containerId!));
  expect(rows).toHaveLength(containers.length);
  journal.transaction(() => {
    for (const { lease } of rows) journal.forget(lease.network, lease.family, lease.ip);
  });
}

describeWithPrereqs('check across nodes, through etcd', ['etcd'], () => {
  beforeAll(async () => {
    etcd = await startEtcdCluster(cleanup);
    client = await etcd.client();
  }, 60_000);
  afterAll(() => cleanup.run());

  it('each node publishes its report when it starts and after a check, not on every ADD; the report stays small with many findings', async () => {
    const { prefix, nodes } = await startNodes(); // default heartbeat: a minute
    const [, b] = nodes as [TestDaemon, TestDaemon, TestDaemon];
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const first = await waitFor(() => reportIn(prefix, name), 5_000, `${name}'s report in etcd`);
      expect(first.report).toMatchObject({ node: name, version: VERSION, networks: {}, repairedAt: null });
      expect(first.report.lastCheck).toMatchObject({ orphans: { total: 0 }, lost: { total: 0 }, conflicts: { total: 0 } });
    }
    const count = REPORT_LIST_CAP + 20;
    const containers = Array.from({ length: count }, (_, i) => `many${i}`);
    for (const c of containers) await addOk(conf(b.socket), { containerId: c });
    // ADDs write no report
    expect((await reportIn(prefix, 'node-b'))!.report.networks).toEqual({});
    forgetInJournal(b, containers.slice(0, count - 3));
    const check = await ctl(b.socket, 'check');
    expect(check.code, check.stderr).toBe(4);
    expect(check.stdout).toContain(`node node-b: ${count - 3} orphan(s), 0 lost, 0 conflict(s)`);
    const after = await waitFor(async () => {
      const r = await reportIn(prefix, 'node-b');
      return r?.report.lastCheck?.orphans.total === count - 3 ? r : undefined;
    }, 5_000, "node-b's report after its check");
    expect(after.report.networks.shared).toMatchObject({ attached: 3, releasing: 0, conflict: 0 });
    expect(after.report.lastCheck!.orphans.items).toHaveLength(REPORT_LIST_CAP);
    expect(after.bytes).toBeLessThan(REPORT_MAX_BYTES);
    expect(after.bytes).toBeLessThan(100 * 1024);
  }, 60_000);

  it("check on node-a lists node-b's orphan from its report and the counts that disagree; check --repair on node-a makes node-b repair it", async () => {
    const { prefix, nodes } = await startNodes({ heartbeatMs: 100 });
    const [a, b] = nodes as [TestDaemon, TestDaemon, TestDaemon];
    await addOk(conf(a.socket), { containerId: 'a1' });
    const [orphanIp] = await addOk(conf(b.socket), { containerId: 'b1' });
    await addOk(conf(b.socket), { containerId: 'b2' });
    await addOk(conf(b.socket), { containerId: 'b3' });
    forgetInJournal(b, ['b1']);
    // node-b's heartbeat publishes its journal's new size: etcd says 3, node-b's journal 2
    const disagree = await waitFor(async () => {
      const r = (await op(a.socket, 'clusterCheck')) as ClusterCheckResponse;
      const view = r.nodes!.find((n) => n.node === 'node-b');
      return view?.disagreements.length ? r : undefined;
    }, 5_000, 'node-a sees the counts of node-b disagree');
    const viewB = disagree.nodes!.find((n) => n.node === 'node-b')!;
    expect(viewB).toMatchObject({ silent: false, attachments: { shared: 3 }, disagreements: [{ network: 'shared', etcd: 3, journal: 2 }] });
    expect(disagree.nodes!.map((n) => n.node)).toEqual(['node-b', 'node-c']);
    expect(disagree.nodes!.find((n) => n.node === 'node-c')).toMatchObject({ silent: false, problems: [] });
    const human = await ctl(a.socket, 'check');
    expect(human.code).toBe(4);
    expect(human.stdout).toContain('etcd says node node-b holds 3 attachment(s) of shared, its journal says 2');
    // node-b's own check finds the orphan; node-a shows it from node-b's report
    await op(b.socket, 'clusterCheck');
    const listed = await waitFor(async () => {
      const r = await ctl(a.socket, 'check');
      return r.stdout.includes('node node-b: report') && r.stdout.includes('last check: 1 orphan(s)') ? r : undefined;
    }, 5_000, "node-a lists node-b's orphan");
    expect(listed.code).toBe(4);
    expect(listed.stdout).toMatch(new RegExp(`^  orphan\\s+shared\\s+${orphanIp!.replace(/\./g, '\\.')}\\s+node-b\\s+container b1`, 'm'));
    expect(listed.stdout).toContain("node node-b's last check found 1 orphan(s) and 0 lost claim(s): run `reservoirctl check --repair`");
    // --repair on node-a: node-b repairs, answers with a fresh report; the orphan is gone from etcd
    const repair = await ctl(a.socket, 'check', '--repair', '-o', 'json');
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    const answer = JSON.parse(repair.stdout) as ClusterCheckResponse;
    expect(answer.repairRequest).toMatchObject({ asked: ['node-b', 'node-c'], answered: ['node-b', 'node-c'], silent: [] });
    const repairedB = answer.nodes!.find((n) => n.node === 'node-b')!.report!;
    expect(repairedB.repairId).toBe(answer.repairRequest!.id);
    expect(repairedB.repairedAt).not.toBeNull();
    expect(repairedB.lastCheck).toMatchObject({ repaired: true, orphans: { total: 1, items: [expect.objectContaining({ ip: orphanIp, node: 'node-b' })] } });
    const inEtcd = (await reportIn(prefix, 'node-b'))!.report;
    expect(inEtcd.repairId).toBe(answer.repairRequest!.id);
    await waitFor(async () => {
      const leases = (await op(a.socket, 'leases', { query: { network: 'shared' } })).leases as Array<{ containerId: string }>;
      return leases.map((l) => l.containerId).sort().join() === 'a1,b2,b3' ? true : undefined;
    }, 5_000, "the orphan's claim leaves etcd");
    expect(await client.get(`${prefix}/v1/nodes/node-b/repair`).string()).toContain(answer.repairRequest!.id);
    // nothing left to fix anywhere
    const clean = await waitFor(async () => {
      const r = await ctl(a.socket, 'check');
      return r.code === 0 ? r : undefined;
    }, 5_000, 'check is clean after the repair');
    expect(clean.stdout).toContain('node node-b: report');
  }, 60_000);

  it('a stopped node whose claims stay in etcd is named silent with the release hint once its report is stale; --repair names it unanswered', async () => {
    const { nodes } = await startNodes({ heartbeatMs: 100, refreshMs: 1_000, staleMs: 10_000, repairWaitMs: 1_500 });
    const [a, b, c] = nodes as [TestDaemon, TestDaemon, TestDaemon];
    await addOk(conf(c.socket), { containerId: 'c1' });
    await addOk(conf(c.socket), { containerId: 'c2' });
    await waitFor(async () => ((await op(a.socket, 'clusterCheck')) as ClusterCheckResponse).nodes?.find((n) => n.node === 'node-c')?.report?.networks.shared?.attached === 2 || undefined, 5_000, "node-c's report counts its attachments");
    await c.close();
    // fresh: not silent yet
    expect(((await op(a.socket, 'clusterCheck')) as ClusterCheckResponse).nodes!.find((n) => n.node === 'node-c')!.silent).toBe(false);
    // 12 minutes pass for the live nodes; node-b's heartbeat writes again, node-c is gone
    a.clock.advance(720_000);
    b.clock.advance(720_000);
    const stale = await waitFor(async () => {
      const r = (await op(a.socket, 'clusterCheck')) as ClusterCheckResponse;
      return r.nodes!.find((n) => n.node === 'node-b')!.reportAgeMs! < 10_000 ? r : undefined;
    }, 5_000, "node-b's heartbeat refreshes its report");
    expect(stale.nodes!.find((n) => n.node === 'node-b')).toMatchObject({ silent: false, problems: [] });
    expect(stale.nodes!.find((n) => n.node === 'node-c')).toMatchObject({
      silent: true,
      attachments: { shared: 2 },
      problems: ['node node-c silent for 12 min with 2 attachment(s) in etcd: gone? `reservoirctl release --node node-c`'],
    });
    const human = await ctl(a.socket, 'check');
    expect(human.code).toBe(4);
    expect(human.stdout).toContain('  ! node node-c silent for 12 min with 2 attachment(s) in etcd: gone? `reservoirctl release --node node-c`');
    const started = Date.now();
    const repair = await ctl(a.socket, 'check', '--repair');
    expect(repair.code).toBe(4);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(repair.stdout).toContain('repair asked of 2 other node(s): 1 answered (node-b); no answer from node-c: gone? `reservoirctl release --node NAME`');
    // released from node-a, the silent node's claims are gone and so is the finding
    expect((await ctl(a.socket, 'release', '--node', 'node-c')).code).toBe(0);
    await waitFor(async () => ((await op(a.socket, 'clusterCheck')) as ClusterCheckResponse).nodes!.find((n) => n.node === 'node-c')!.attachments.shared === undefined || undefined, 5_000, "node-c's claims released");
  }, 60_000);

  it('a node stopped during --repair answers the request when it starts again', async () => {
    const { prefix, nodes } = await startNodes({ heartbeatMs: 100, repairWaitMs: 1_000 });
    const [a, b] = nodes as [TestDaemon, TestDaemon, TestDaemon];
    await addOk(conf(b.socket), { containerId: 'b1' });
    await addOk(conf(b.socket), { containerId: 'b2' });
    forgetInJournal(b, ['b1']);
    await waitFor(() => reportIn(prefix, 'node-b'), 5_000, "node-b's report");
    // node-a asks the nodes its copy of etcd knows: wait until the watch has brought both reports
    await waitFor(async () => {
      const seen = (JSON.parse((await ctl(a.socket, 'check', '-o', 'json')).stdout) as ClusterCheckResponse).nodes ?? [];
      return ['node-b', 'node-c'].every((n) => seen.some((v) => v.node === n && v.report !== null)) ? true : undefined;
    }, 5_000, "node-a sees node-b's and node-c's reports");
    await b.stop();
    const asked = JSON.parse((await ctl(a.socket, 'check', '--repair', '-o', 'json')).stdout) as ClusterCheckResponse;
    expect(asked.repairRequest).toMatchObject({ asked: ['node-b', 'node-c'], answered: ['node-c'], silent: ['node-b'] });
    await b.restart();
    const answered = await waitFor(async () => {
      const r = await reportIn(prefix, 'node-b');
      return r?.report.repairId === asked.repairRequest!.id ? r.report : undefined;
    }, 10_000, 'node-b answers the request after its restart');
    expect(answered.repairedAt).not.toBeNull();
    expect(answered.lastCheck).toMatchObject({ repaired: true, orphans: { total: 1 } });
    await waitFor(async () => {
      const leases = (await op(a.socket, 'leases', { query: { network: 'shared' } })).leases as Array<{ containerId: string }>;
      return leases.map((l) => l.containerId).join() === 'b2' ? true : undefined;
    }, 5_000, "the orphan's claim leaves etcd");
  }, 60_000);
}, { timeout: 60_000 });
