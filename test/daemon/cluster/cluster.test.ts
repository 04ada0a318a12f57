// Cluster networks across three reservoird "nodes" (in-process, each its own socket, state and
// node name) on a real three-member etcd: the method holds cluster-wide (issue 11, rules 2-8).
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { main } from '../../../ctl/main.js';
import { KeyLayout, encodeApp, encodeLease } from '../../../daemon/cluster/keys.js';
import { Cleanup } from '../../support/cleanup.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';
import { netconf } from '../../support/netconf.js';
import { type TestDaemon, addErr, addOk, delOk, op, opErr, plugin, startTestDaemon, waitFor } from '../support.js';

const cleanup = new Cleanup();
let etcd: EtcdCluster;
let nodes: TestDaemon[] = [];
let prefix = '';
let round = 0;

async function startNodes(): Promise<void> {
  prefix = `/t${process.pid}-${++round}`;
  nodes = [];
  for (const name of ['node-a', 'node-b', 'node-c']) nodes.push(await startTestDaemon({ nodeName: name, etcd: { endpoints: etcd.endpoints, prefix } }));
}

async function stopNodes(): Promise<void> {
  for (const node of nodes) await node.close();
  nodes = [];
}

describeWithPrereqs('cluster networks on etcd', ['etcd'], () => {
  beforeAll(async () => {
    etcd = await startEtcdCluster(cleanup);
  }, 60_000);
  afterAll(async () => {
    await stopNodes();
    await cleanup.run();
  });
  beforeEach(async () => {
    await stopNodes();
    await startNodes();
  }, 30_000);

  const shared = (socket: string, ipam: Record<string, unknown> = {}) =>
    netconf('shared', socket, {
      scope: 'cluster',
      ranges: [[{ subnet: '10.90.0.0/24', rangeStart: '10.90.0.10', rangeEnd: '10.90.0.60' }]],
      reserved: [{ entry: '10.90.0.50-10.90.0.52', group: 'db' }],
      ...ipam,
    });
  const [a, b, c] = [0, 1, 2].map((i) => () => nodes[i]!);
  const pod = (name: string) => ({ K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: name });
  /** Runs `fn` while another tenant of the same etcd writes: its writes move etcd's revision past anything of ours. */
  const whileOthersWrite = async (name: string, fn: () => Promise<void>) => {
    const client = await etcd.client();
    const foreign = etcd.prefix(name);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await client.put(`${foreign}${i % 50}`).value(String(i));
    })();
    try {
      await fn();
    } finally {
      writing = false;
      await writer;
    }
  };

  it('hands out every dynamic IP once across nodes, and a stateless DEL frees it for every node at once', async () => {
    const got = new Map<string, string>();
    await Promise.all(
      nodes.flatMap((node, n) =>
        Array.from({ length: 12 }, async (_, i) => {
          const [ip] = await addOk(shared(node.socket), { containerId: `c${n}-${i}` });
          expect(got.has(ip!), `${ip} handed out twice`).toBe(false);
          got.set(ip!, `c${n}-${i}`);
        }),
      ),
    );
    expect(got.size).toBe(36);
    for (const ip of got.keys()) expect(ip >= '10.90.0.10' && !['10.90.0.50', '10.90.0.51', '10.90.0.52'].includes(ip)).toBe(true);
    // every node lists all of them, each with its node
    const listed = await waitFor(async () => {
      const now = (await op(c().socket, 'leases', { query: { network: 'shared' } })).leases as Array<{ ip: string; node: string; containerId: string }>;
      return now.length === 36 ? now : undefined;
    }, 2_000, 'node-c sees the 36 leases');
    expect(new Set(listed.map((l) => l.node))).toEqual(new Set(['node-a', 'node-b', 'node-c']));
    expect(listed.find((l) => l.containerId === 'c1-0')!.node).toBe('node-b');
    // a DEL on node-a frees the IP; node-b can ask for exactly that IP right away
    const freed = [...got].find(([, container]) => container === 'c0-0')![0];
    await delOk(shared(a().socket), { containerId: 'c0-0' });
    await waitFor(async () => ((await op(b().socket, 'leases', { query: { network: 'shared' } })).leases.length === 35 ? true : undefined), 2_000, 'node-b sees the release');
    expect(await addOk(shared(b().socket), { containerId: 'later', args: { IP: freed } })).toEqual([freed]);
  });

  it('gives a reserved IP only on request, to exactly one node, and names the holder and its node to the others', async () => {
    const outcomes = await Promise.all(
      nodes.map((node, n) => plugin('ADD', shared(node.socket), { containerId: `r${n}`, args: { IP: '10.90.0.51' } })),
    );
    const winners = outcomes.filter((o) => o.exit === 0);
    expect(winners).toHaveLength(1);
    const winner = outcomes.indexOf(winners[0]!);
    for (const loser of outcomes.filter((o) => o.exit !== 0)) {
      expect(loser.out.code).toBe(101);
      expect(loser.out.msg).toContain(`container r${winner}`);
      expect(loser.out.msg).toContain(`on node ${['node-a', 'node-b', 'node-c'][winner]}`);
      expect(loser.out.msg).toMatch(/free in reserved group "db": 10\.90\.0\.50, 10\.90\.0\.52/);
    }
    // dynamic ADDs never get a reserved IP, whichever node
    for (let i = 0; i < 40; i++) {
      const [ip] = await addOk(shared(nodes[i % 3]!.socket), { containerId: `d${i}` });
      expect(['10.90.0.50', '10.90.0.51', '10.90.0.52']).not.toContain(ip);
    }
    // the group hands out what is left; then it is exhausted everywhere
    const groupIps = [await addOk(shared(b().socket), { containerId: 'g1', args: { RESERVOIR_GROUP: 'db' } }), await addOk(shared(c().socket), { containerId: 'g2', args: { RESERVOIR_GROUP: 'db' } })].flat();
    expect(groupIps.sort()).toEqual(['10.90.0.50', '10.90.0.52']);
    expect((await addErr(shared(a().socket), { containerId: 'g3', args: { RESERVOIR_GROUP: 'db' } })).code).toBe(103);
  });

  it('answers the losers of a race for one reserved IP at once on an etcd that others write to (no wait for the watch)', async () => {
    await whileOthersWrite('foreign', async () => {
      for (const node of [a(), b()]) await addOk(shared(node.socket), { containerId: `warm-${node.daemon.cluster!.health().node}` });
      const lagged = () => nodes.reduce((sum, node) => sum + node.daemon.cluster!.health().stats.watchLagged, 0);
      const before = lagged();
      for (let round = 0; round < 3; round++) {
        const ip = `10.90.0.${50 + round}`;
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, (_, i) => plugin('ADD', shared((i % 2 === 0 ? a() : b()).socket), { containerId: `race${round}-${i}`, args: { IP: ip } })),
        );
        expect(outcomes.filter((o) => o.exit === 0)).toHaveLength(1);
        for (const lost of outcomes.filter((o) => o.exit !== 0)) expect((lost.out as { code: number }).code).toBe(101);
      }
      expect(lagged() - before).toBe(0);
    });
  });

  it('runs a claim again at once when a reserved entry changed under it, on an etcd that others write to (the reserved entries read afresh, no wait for the watch)', async () => {
    await whileOthersWrite('foreign-reserved', async () => {
      await addOk(shared(a().socket), { containerId: 'warm-a' });
      await addOk(shared(b().socket), { containerId: 'warm-b' });
      const stats = () => ({ ...a().daemon.cluster!.health().stats });
      const before = stats();
      // node-b adds and removes an entry while node-a claims: node-a's claim, planned before its
      // watch brings the change, fails on the range compare of the network's reserved entries
      let rounds = 0;
      for (; rounds < 100 && stats().conflicts - before.conflicts < 6; rounds++) {
        const entry = '10.90.0.49';
        const change = rounds % 2 === 0 ? op(b().socket, 'reservedAdd', { params: { network: 'shared' }, body: { entry, group: 'late' } }) : op(b().socket, 'reservedRemove', { params: { network: 'shared' }, query: { entry } });
        // a refused change (the IP in use by the claim, or no entry to remove) writes nothing: no race that round
        await Promise.all([addOk(shared(a().socket), { containerId: `x${rounds}` }), change.catch(() => undefined)]);
        await delOk(shared(a().socket), { containerId: `x${rounds}` });
      }
      expect(stats().conflicts - before.conflicts, `range compare failures provoked in ${rounds} rounds`).toBeGreaterThanOrEqual(6);
      expect(stats().watchLagged - before.watchLagged).toBe(0);
    });
  });

  it('refuses, from any node, a change of a reserved entry that touches an in-use IP, naming every holder and its node', async () => {
    await addOk(shared(a().socket), { containerId: 'first' });
    await op(a().socket, 'reservedAdd', { params: { network: 'shared' }, body: { entry: '10.90.0.41-10.90.0.43', group: 'ops' } });
    await addOk(shared(a().socket), { containerId: 'x1', args: { IP: '10.90.0.41' } });
    await addOk(shared(b().socket), { containerId: 'x2', args: { IP: '10.90.0.43' } });
    // node-c learns the network and both claims through its watch (107 "not registered" before)
    await waitFor(async () => ((await op(c().socket, 'leases', { query: { network: 'shared' } })).leases.length === 3 ? true : undefined), 2_000, 'node-c sees the claims');
    const refused = await opErr(c().socket, 'reservedRemove', { params: { network: 'shared' }, query: { entry: '10.90.0.41-10.90.0.43' } });
    expect(refused.code).toBe(105);
    expect(refused.message).toMatch(/10\.90\.0\.41 \(container x1 ifname eth0 on node node-a\)/);
    expect(refused.message).toMatch(/10\.90\.0\.43 \(container x2 ifname eth0 on node node-b\)/);
    // an operator entry added on one node is reserved on all of them at once
    await op(c().socket, 'reservedAdd', { params: { network: 'shared' }, body: { entry: '10.90.0.40', group: 'web' } });
    await waitFor(async () => ((await op(a().socket, 'reservedList', { params: { network: 'shared' } })).entries.some((e: { entry: string }) => e.entry === '10.90.0.40') ? true : undefined), 2_000, 'node-a sees the entry');
    for (let i = 0; i < 45; i++) {
      const run = await plugin('ADD', shared(nodes[i % 3]!.socket), { containerId: `w${i}` });
      if (run.exit === 0) expect((run.out.ips as Array<{ address: string }>)[0]!.address).not.toBe('10.90.0.40/24');
    }
    // and an entry over an IP in use on another node is refused on this one
    const leased = (await op(a().socket, 'leases', { query: { network: 'shared' } })).leases.find((l: { node: string; reserved: boolean }) => l.node === 'node-b' && !l.reserved);
    const overlap = await opErr(a().socket, 'reservedAdd', { params: { network: 'shared' }, body: { entry: leased.ip } });
    expect(overlap.message).toContain('on node node-b');
    // a free entry moved on one node and removed on another: every node follows
    const entries = async (node: TestDaemon) => ((await op(node.socket, 'reservedList', { params: { network: 'shared' } })).entries as Array<{ entry: string; group: string }>).map((e) => e.entry);
    const w0 = (await op(a().socket, 'leases', { query: { network: 'shared' } })).leases.find((l: { containerId: string }) => l.containerId === 'w0').ip as string;
    await delOk(shared(a().socket), { containerId: 'w0' });
    await waitFor(async () => ((await op(b().socket, 'leases', { query: { network: 'shared' } })).leases.some((l: { ip: string }) => l.ip === w0) ? undefined : true), 2_000, 'node-b sees the release');
    await op(b().socket, 'reservedSet', { params: { network: 'shared' }, body: { entry: '10.90.0.40', to: w0 } });
    await waitFor(async () => ((await entries(c())).includes(w0) && !(await entries(c())).includes('10.90.0.40') ? true : undefined), 2_000, 'node-c sees the move');
    await waitFor(async () => ((await entries(a())).includes(w0) ? true : undefined), 2_000, 'node-a sees the move');
    await op(a().socket, 'reservedRemove', { params: { network: 'shared' }, query: { entry: w0 } });
    await waitFor(async () => ((await entries(b())).includes(w0) ? undefined : true), 2_000, 'node-b sees the removal');
    expect(await entries(c())).not.toContain('10.90.0.40');
  });

  it('keeps a stateful app\'s IP across nodes: 101 while attached elsewhere, the same IP once released there', async () => {
    const statefulConf = (socket: string) => shared(socket, { defaultKind: 'stateful' });
    const [ip] = await addOk(statefulConf(a().socket), { containerId: 'db0-a', args: pod('db-0') });
    const elsewhere = await addErr(statefulConf(b().socket), { containerId: 'db0-b', args: pod('db-0') });
    expect(elsewhere.code).toBe(101);
    expect(elsewhere.msg).toContain('on node node-a');
    expect(elsewhere.msg).toContain('DEL that container on node node-a first');
    await delOk(statefulConf(a().socket), { containerId: 'db0-a', args: pod('db-0') });
    // held, by the app, visible from every node
    // every node's copy follows etcd by its watch, a few milliseconds behind
    const seen = (node: TestDaemon, state: string) =>
      waitFor(async () => (await op(node.socket, 'leases', { query: { network: 'shared' } })).leases.find((l: { ip: string; state: string }) => l.ip === ip && l.state === state), 2_000, `${state} seen`);
    expect(await seen(c(), 'held')).toMatchObject({ state: 'held', app: 'default/db-0' });
    expect(await addOk(statefulConf(b().socket), { containerId: 'db0-b', args: pod('db-0') })).toEqual([ip]);
    const moved = await seen(a(), 'attached');
    expect(moved).toMatchObject({ state: 'attached', node: 'node-b', containerId: 'db0-b' });
  });

  it('gives a stateful app no second IP on a node whose copy had not yet seen the app attached elsewhere: 101, whoever raced', async () => {
    // node-z (no daemon: nobody ends its attachments) attaches app default/db-N at IP .20+N by
    // a transaction of its own, and node-b is asked for the same app at the same moment, before
    // its watch can bring node-z's claim: node-b's claim of the app fails on the app's key, and
    // the app's IPs must be read before it decides again
    const layout = new KeyLayout(prefix);
    const client = await etcd.client();
    const statefulConf = (socket: string) => shared(socket, { defaultKind: 'stateful' });
    await addOk(shared(b().socket), { containerId: 'warm-b' });
    const conflicts = () => b().daemon.cluster!.health().stats.conflicts;
    const before = conflicts();
    let raced = 0;
    for (let n = 0; n < 30 && conflicts() - before < 8; n++) {
      const app = `default/db-${n}`;
      const ip = 0x0a5a0014n + BigInt(n);
      const lease = { network: 'shared', family: 4 as const, ip, containerId: `z${n}`, ifname: 'eth0', netns: '/var/run/netns/z', app, kind: 'stateful' as const, createdAt: Date.now(), detachedAt: null, podUid: null, ownerUid: null, ordinal: n, node: 'node-z' };
      const keys = [layout.app('shared', app), layout.lease('shared', 4, ip)];
      const direct = client.kv.txn({
        compare: keys.map((key) => ({ key: Buffer.from(key), target: 'Create' as never, result: 'Equal' as never, create_revision: 0 })),
        success: [
          { request_put: { key: Buffer.from(keys[0]!), value: Buffer.from(encodeApp([{ family: 4, ip }], 'node-z/test/1')) } },
          { request_put: { key: Buffer.from(keys[1]!), value: Buffer.from(encodeLease(lease, 'node-z/test/1')) } },
        ],
      });
      const asked = plugin('ADD', statefulConf(b().socket), { containerId: `b${n}`, args: pod(`db-${n}`) });
      const [{ succeeded }, answer] = await Promise.all([direct, asked]);
      if (!succeeded) continue; // node-b's claim landed first: its answer stands, node-z's is the one refused
      raced++;
      expect(answer.exit, `node-b answered ${JSON.stringify(answer.out)} for ${app}, attached on node-z`).not.toBe(0);
      expect((answer.out as { code: number }).code).toBe(101);
      expect((answer.out as { msg: string }).msg).toContain('on node node-z');
    }
    expect(raced).toBeGreaterThan(0);
    expect(conflicts() - before, 'node-b planned before its watch brought node-z\'s claim').toBeGreaterThanOrEqual(8);
  });

  it('release --node ends a gone node\'s attachments (stateful IPs stay held for their apps)', async () => {
    await addOk(shared(c().socket), { containerId: 'gone1' });
    await addOk(shared(c().socket, { defaultKind: 'stateful' }), { containerId: 'gone2', args: pod('web-0') });
    await addOk(shared(a().socket), { containerId: 'stays' });
    // each node's copy follows etcd by its watch: wait until node-a has seen node-c's claims
    const listed = async (node: TestDaemon) => (await op(node.socket, 'leases', { query: { network: 'shared' } })).leases as Array<{ containerId: string | null; app: string | null; state: string }>;
    await waitFor(async () => ((await listed(a())).length === 3 ? true : undefined), 2_000, 'node-a sees the three leases');
    const answer = await op(a().socket, 'releaseNode', { params: { node: 'node-c' } });
    expect(answer).toEqual({ node: 'node-c', released: 1, held: 1 });
    const leases = await waitFor(async () => {
      const now = await listed(b());
      return now.some((l) => l.containerId === 'gone1' || l.containerId === 'gone2') ? undefined : now;
    }, 2_000, 'node-b sees the releases');
    expect(leases.map((l) => l.containerId).sort()).toEqual([null, 'stays']);
    expect(leases.find((l) => l.app === 'default/web-0')!.state).toBe('held');
  });

  it('release --node goes page by page through a network: more attachments than one page, interleaved with other nodes\'', async () => {
    const wide = (socket: string) => shared(socket, { ranges: [[{ subnet: '10.92.0.0/24' }]], reserved: [] });
    await Promise.all(Array.from({ length: 70 }, (_, i) => addOk(wide(nodes[i % 2 === 0 ? 2 : 0]!.socket), { containerId: `p${i}` })));
    const seen = async () => (await op(b().socket, 'leases', { query: { network: 'shared' } })).leases as Array<{ node: string }>;
    await waitFor(async () => ((await seen()).length === 70 ? true : undefined), 3_000, 'node-b sees the 70 leases');
    expect(await op(b().socket, 'releaseNode', { params: { node: 'node-c' } })).toEqual({ node: 'node-c', released: 35, held: 0 });
    expect((await seen()).map((l) => l.node)).toEqual(Array(35).fill('node-a'));
  });

  it('fixes a cluster network\'s pools at its first registration: a node with other ranges is refused (7) and shows why in usage', async () => {
    await addOk(shared(a().socket), { containerId: 'first' });
    const other = shared(b().socket, { ranges: [[{ subnet: '10.91.0.0/24' }]], reserved: [] });
    const refused = await addErr(other, { containerId: 'second' });
    expect(refused.code).toBe(7);
    expect(refused.msg).toMatch(/cluster network whose pools were fixed when it was first registered/);
    expect(refused.msg).toContain('10.91.0.1-10.91.0.254');
    // node-b knows node-a's lease through its watch: a moment after node-a's answer
    await waitFor(async () => ((await op(b().socket, 'leases', { query: { network: 'shared' } })).leases.length === 1 ? true : undefined), 3_000, 'node-b sees the one lease');
    const usage = (await op(b().socket, 'usage', { query: { network: 'shared' } })).networks[0];
    expect(usage.disagreement).toMatch(/pools were fixed/);
  });

  it('costs one etcd transaction per dynamic ADD in steady state, full or empty', async () => {
    const big = (socket: string) => netconf('big', socket, { scope: 'cluster', ranges: [[{ subnet: '10.100.0.0/16' }]] });
    const node = a();
    const stats = () => node.daemon.cluster!.health().stats;
    await addOk(big(node.socket), { containerId: 'warm' });
    const before = stats().txns;
    for (let i = 0; i < 30; i++) await addOk(big(node.socket), { containerId: `s${i}` });
    expect(stats().txns - before).toBe(30);
  });

  it('callers that ask again as soon as they are answered are all answered, sharing transactions', async () => {
    const big = (socket: string) => netconf('big', socket, { scope: 'cluster', ranges: [[{ subnet: '10.100.0.0/16' }]] });
    const node = a();
    const stats = () => node.daemon.cluster!.health().stats;
    await addOk(big(node.socket), { containerId: 'warm' });
    const before = { ...stats() }; // the counters move in place
    // five callers, each asking again as soon as it is answered, as kubelet does with pods: a batch
    // waits for the callers it answered (units.ts afterBatch), and must leave none of them waiting
    const ips = await Promise.all(Array.from({ length: 5 }, async (_, caller) => {
      const got: string[] = [];
      for (let i = 0; i < 12; i++) got.push(...(await addOk(big(node.socket), { containerId: `r${caller}-${i}` })));
      return got;
    }));
    expect(new Set(ips.flat()).size).toBe(60);
    const after = stats();
    expect(after.units - before.units).toBe(60);
    expect(after.txns - before.txns).toBeLessThan(60);
  });

  it('refuses a cluster network on a daemon without etcd with code 7, saying what to change', async () => {
    const lone = await startTestDaemon({ nodeName: 'lone' });
    try {
      const refused = await addErr(shared(lone.socket), { containerId: 'l1' });
      expect(refused.code).toBe(7);
      expect(refused.msg).toMatch(/runs without etcd; start it with --etcd-endpoints/);
      expect((await op(lone.socket, 'leases')).leases).toEqual([]);
    } finally {
      await lone.close();
    }
  });

  it('check finds nothing wrong in a healthy cluster, and the journal follows each node\'s attachments', async () => {
    await addOk(shared(a().socket), { containerId: 'j1' });
    await addOk(shared(b().socket), { containerId: 'j2' });
    for (const node of nodes) {
      const report = await op(node.socket, 'clusterCheck');
      expect(report).toMatchObject({ orphans: [], lost: [], conflicts: [], owed: 0 });
    }
    expect(a().daemon.cluster!.health().journal.attached).toBe(1);
    // usage counts the whole network on every node: its own commits and the others' (through the watch)
    for (const node of nodes) {
      const usage = await waitFor(async () => {
        const u = (await op(node.socket, 'usage', { query: { network: 'shared' } })).networks[0];
        return u.attached === 2 ? u : undefined;
      }, 2_000, 'usage counts both attachments');
      expect(usage).toMatchObject({ attached: 2, dynamicInUse: 2, held: 0 });
    }
    expect(c().daemon.cluster!.health().journal.attached).toBe(0);
  });
  it('reservoirctl: leases and reserved list show the node; check, release --node and health speak of the cluster', async () => {
    const ctl = async (socket: string, ...argv: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main({ argv, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { RESERVOIR_SOCKET: socket } });
      return { code, stdout, stderr };
    };
    await addOk(shared(b().socket), { containerId: 'cli1', args: { IP: '10.90.0.50' } });
    // node-a's and node-c's copies follow node-b's commit by the watch
    for (const node of [a(), c()]) await waitFor(async () => ((await op(node.socket, 'leases', { query: { network: 'shared' } })).leases.length === 1 ? true : undefined), 2_000, 'the other nodes see the lease');
    const leases = await ctl(a().socket, 'leases', 'shared');
    expect(leases.stdout).toMatch(/^IP\s+NETWORK\s+NODE\s+STATE/);
    expect(leases.stdout).toMatch(/^10\.90\.0\.50\s+shared\s+node-b\s+attached/m);
    expect((await ctl(c().socket, 'reserved', 'list', 'shared')).stdout).toMatch(/^10\.90\.0\.50\s+10\.90\.0\.50-10\.90\.0\.52\s+db\s+leased\s+node-b\s+cli1\/eth0/m);
    const check = await ctl(b().socket, 'check');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain('node node-b: 0 orphan(s), 0 lost, 0 conflict(s); 0 change(s) owed');
    const health = await ctl(b().socket, 'health');
    expect(health.stdout).toMatch(/etcd\s+.*prefix \/t.*node node-b; following at revision \d+; journal 1 attached, 0 releasing, 0 in conflict; 0 change\(s\) owed/);
    const release = await ctl(a().socket, 'release', '--node', 'node-b');
    expect(release.code, release.stderr).toBe(0);
    expect(release.stdout).toBe('node node-b: released 1 lease(s); 0 stateful IP(s) stay held by their apps\n');
    expect((await ctl(a().socket, 'release', 'shared')).code).toBe(2);
  });
}, { timeout: 60_000 });
