// The Kubernetes integration against a faithful fake API (test/support/fake-kube.ts) through the
// real @kubernetes/client-node: a real reservoird (in-process) with a real SQLite store, the
// plugin run in-process. Each rule of the issue has tests that fail without it.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeOptions } from '../../daemon/kube/integration.js';
import { createLogger } from '../../daemon/log.js';
import { runPlugin } from '../../src/plugin.js';
import { FakeKube } from '../support/fake-kube.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, op, startTestDaemon, waitFor } from './support.js';

const NODE = 'node-a';

interface Env {
  readonly fake: FakeKube;
  readonly td: TestDaemon;
  readonly conf: Record<string, unknown>;
  readonly logs: Array<Record<string, any>>;
  readonly netnsDir: string;
}

let env: Env | undefined;
afterEach(async () => {
  await env?.td.close();
  await env?.fake.close();
  env = undefined;
});

async function setUp(ipam: Record<string, unknown> = {}, options: { grace?: number; kube?: Partial<KubeOptions> } = {}): Promise<Env> {
  const fake = await FakeKube.start();
  const logs: Array<Record<string, any>> = [];
  const log = createLogger('debug', (line) => void logs.push(JSON.parse(line)));
  const dir = join('/tmp', `rsv-kube-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'));
  const td = await startTestDaemon({
    log,
    reclaimGraceMs: options.grace ?? 0,
    kube: { kubeconfig, nodeName: NODE, retryMs: { min: 50, max: 200 }, resyncMs: 100, ...options.kube },
  });
  const netnsDir = join(td.dir, 'netns');
  mkdirSync(netnsDir);
  const conf = netconf('kubenet', td.socket, { ranges: [[{ subnet: '10.44.0.0/24' }]], ...ipam });
  env = { fake, td, conf, logs, netnsDir };
  await waitFor(async () => ((await op(td.socket, 'health')).kubernetes?.fenced === null ? true : undefined), 10_000, 'watches in step');
  rmSync(dir, { recursive: true, force: true });
  return env;
}

interface Call {
  readonly pod?: any;
  readonly containerId: string;
  readonly args?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  /** Leave K8S_POD_UID out (an older runtime). */
  readonly noUid?: boolean;
}

function cniEnv(e: Env, command: 'ADD' | 'DEL', call: Call): Record<string, string | undefined> {
  const args: Record<string, string> = { ...call.args };
  if (call.pod) {
    args.K8S_POD_NAMESPACE = call.pod.metadata.namespace;
    args.K8S_POD_NAME = call.pod.metadata.name;
    if (!call.noUid) args.K8S_POD_UID = call.pod.metadata.uid;
  }
  const netns = join(e.netnsDir, call.containerId);
  if (command === 'ADD') writeFileSync(netns, '');
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_IFNAME: 'eth0',
    CNI_NETNS: netns,
    CNI_ARGS: Object.entries(args).map(([k, v]) => `${k}=${v}`).join(';') || undefined,
    CNI_PATH: '/opt/cni/bin',
  };
}

async function cni(e: Env, command: 'ADD' | 'DEL', call: Call): Promise<{ exit: number; out: any }> {
  const config: Record<string, unknown> = { ...e.conf };
  if (call.annotations) config.runtimeConfig = { 'io.kubernetes.cri.pod-annotations': call.annotations };
  let text = '';
  const exit = await runPlugin({ env: cniEnv(e, command, call), stdin: async () => Buffer.from(JSON.stringify(config)), stdout: (t) => (text += t) });
  return { exit, out: text ? JSON.parse(text) : {} };
}

async function add(e: Env, call: Call): Promise<string> {
  const { exit, out } = await cni(e, 'ADD', call);
  if (exit !== 0) throw new Error(`ADD ${call.containerId} failed: ${JSON.stringify(out)}`);
  return out.ips[0].address.split('/')[0];
}

async function del(e: Env, call: Call): Promise<void> {
  const { exit, out } = await cni(e, 'DEL', call);
  if (exit !== 0) throw new Error(`DEL ${call.containerId} failed: ${JSON.stringify(out)}`);
  rmSync(join(e.netnsDir, call.containerId), { force: true });
}

async function leases(e: Env): Promise<any[]> {
  return (await op(e.td.socket, 'leases', { query: { network: 'kubenet' } })).leases;
}

async function leaseOf(e: Env, app: string): Promise<any | undefined> {
  return (await leases(e)).find((l) => l.app === app);
}

/** Let the daemon's StatefulSet pass run (it runs on watch events and every resync). */
async function settle(e: Env): Promise<void> {
  await e.td.daemon.kube!.schedule();
  await e.td.daemon.kube!.schedule();
}

describe('rule 1: kind from the API', () => {
  it('a StatefulSet pod is stateful without any annotation: DEL keeps its IP held, the next pod of the ordinal gets it', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2 });
    const pod = e.fake.createStatefulSetPod(sts, 0);
    const ip = await add(e, { pod, containerId: 'c1' });
    expect(await leaseOf(e, 'db/pg-0')).toMatchObject({ kind: 'stateful', state: 'attached' });
    await del(e, { pod, containerId: 'c1' });
    expect(await leaseOf(e, 'db/pg-0')).toMatchObject({ ip, kind: 'stateful', state: 'held' });
    e.fake.delete('pods', 'db', 'pg-0');
    const again = e.fake.createStatefulSetPod(sts, 0);
    expect(await add(e, { pod: again, containerId: 'c2' })).toBe(ip);
  });

  it('other pods (a ReplicaSet\'s) are stateless, even where defaultKind says stateful', async () => {
    const e = await setUp({ defaultKind: 'stateful' });
    const rs = e.fake.createReplicaSet('web', 'front-7c9');
    const pod = e.fake.createPod({ namespace: 'web', name: 'front-7c9-x1', owner: rs });
    await add(e, { pod, containerId: 'w1' });
    expect(await leaseOf(e, 'web/front-7c9-x1')).toMatchObject({ kind: 'stateless' });
    await del(e, { pod, containerId: 'w1' });
    expect(await leaseOf(e, 'web/front-7c9-x1')).toBeUndefined();
  });

  it('an explicit reservoir.io/kind annotation still wins, from the runtime or from the pod object', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'cache', replicas: 2 });
    const fromRuntime = e.fake.createStatefulSetPod(sts, 0);
    await add(e, { pod: fromRuntime, containerId: 'k1', annotations: { 'reservoir.io/kind': 'stateless' } });
    await del(e, { pod: fromRuntime, containerId: 'k1' });
    expect(await leaseOf(e, 'db/cache-0')).toBeUndefined();
    // no annotations from the runtime (CRI-O before 1.29): the daemon reads the pod's own
    const fromPod = e.fake.createStatefulSetPod(sts, 1, NODE, { 'reservoir.io/kind': 'stateless' });
    await add(e, { pod: fromPod, containerId: 'k2' });
    expect(await leaseOf(e, 'db/cache-1')).toMatchObject({ kind: 'stateless' });
  });

  it('reads reservoir.io/ip and reservoir.io/group from the pod object when the runtime passes no annotations', async () => {
    const e = await setUp({ reserved: [{ entry: '10.44.0.50-10.44.0.51', group: 'edge' }] });
    const a = e.fake.createPod({ namespace: 'web', name: 'a', annotations: { 'reservoir.io/ip': '10.44.0.77' } });
    expect(await add(e, { pod: a, containerId: 'p1' })).toBe('10.44.0.77');
    const b = e.fake.createPod({ namespace: 'web', name: 'b', annotations: { 'reservoir.io/group': 'edge' } });
    expect(await add(e, { pod: b, containerId: 'p2' })).toBe('10.44.0.50');
    // annotations the runtime passes win over the pod object's
    const c = e.fake.createPod({ namespace: 'web', name: 'c', annotations: { 'reservoir.io/ip': '10.44.0.78' } });
    expect(await add(e, { pod: c, containerId: 'p3', annotations: { 'reservoir.io/ip': '10.44.0.79' } })).toBe('10.44.0.79');
  });

  it('the identity is bound to the StatefulSet UID and the ordinal (a StatefulSet named like an ordinal is no trap)', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'db-1', replicas: 3, ordinalsStart: 10 });
    const pod = e.fake.createStatefulSetPod(sts, 11);
    await add(e, { pod, containerId: 'o1' });
    const stored = e.td.daemon.store.leasesOfOwner(sts.metadata.uid);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ app: 'db/db-1-11', ordinal: 11, ownerUid: sts.metadata.uid, podUid: pod.metadata.uid });
  });
});

describe('rule 2: holds released when the StatefulSet goes or shrinks, by its policy', () => {
  async function statefulSetWithHolds(e: Env, annotations: Record<string, string>, replicas = 3) {
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas, annotations });
    const ips: string[] = [];
    for (let i = 0; i < replicas; i++) {
      const pod = e.fake.createStatefulSetPod(sts, i);
      ips.push(await add(e, { pod, containerId: `s${i}` }));
      await del(e, { pod, containerId: `s${i}` });
      e.fake.delete('pods', 'db', `pg-${i}`);
    }
    return { sts, ips };
  }

  it('deleting the StatefulSet releases its holds (default when-deleted: Delete)', async () => {
    const e = await setUp();
    await statefulSetWithHolds(e, {});
    await settle(e);
    expect(await leases(e)).toHaveLength(3);
    e.fake.delete('statefulsets', 'db', 'pg');
    await waitFor(async () => ((await leases(e)).length === 0 ? true : undefined), 10_000, 'holds released');
    expect(e.logs.some((l) => l.msg === 'stateful hold released' && l.reason === 'StatefulSet deleted')).toBe(true);
  });

  it('when-deleted: Retain keeps them, and a recreated StatefulSet gets them back', async () => {
    const e = await setUp();
    const { ips } = await statefulSetWithHolds(e, { 'reservoir.io/when-deleted': 'Retain' }, 2);
    e.fake.delete('statefulsets', 'db', 'pg');
    await settle(e);
    expect((await leases(e)).map((l) => l.ip).sort()).toEqual([...ips].sort());
    const again = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2 });
    expect(await add(e, { pod: e.fake.createStatefulSetPod(again, 1), containerId: 'r1' })).toBe(ips[1]);
    expect(e.td.daemon.store.leasesOfOwner(again.metadata.uid)).toHaveLength(1);
  });

  it('a StatefulSet recreated with a new UID: the old holds are released, its pods get new IPs', async () => {
    const e = await setUp();
    const { ips } = await statefulSetWithHolds(e, {}, 2);
    e.fake.delete('statefulsets', 'db', 'pg');
    const again = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2 });
    // the new pod-0 may come before the daemon's pass: the ADD itself drops the old incarnation's hold
    const fresh = await add(e, { pod: e.fake.createStatefulSetPod(again, 0), containerId: 'n0' });
    expect(fresh).not.toBe(ips[0]);
    await waitFor(async () => ((await leases(e)).length === 1 ? true : undefined), 10_000, 'old pod-1 hold released');
    expect(e.td.daemon.store.leasesOfOwner(again.metadata.uid).map((l) => l.app)).toEqual(['db/pg-0']);
  });

  it('scale-down keeps the holds of the removed ordinals by default; a retained hold returns to its ordinal on scale-up', async () => {
    const e = await setUp();
    const { sts, ips } = await statefulSetWithHolds(e, {}, 3);
    e.fake.updateStatefulSet('db', 'pg', { replicas: 1 });
    await settle(e);
    expect(await leases(e)).toHaveLength(3);
    e.fake.updateStatefulSet('db', 'pg', { replicas: 3 });
    expect(await add(e, { pod: e.fake.createStatefulSetPod(sts, 2), containerId: 'u2' })).toBe(ips[2]);
  });

  it('when-scaled: Delete releases the holds of ordinals >= start + replicas, and only those', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 4, ordinalsStart: 5, annotations: { 'reservoir.io/when-scaled': 'Delete' } });
    for (const ordinal of [5, 6, 7, 8]) {
      const pod = e.fake.createStatefulSetPod(sts, ordinal);
      await add(e, { pod, containerId: `d${ordinal}` });
      await del(e, { pod, containerId: `d${ordinal}` });
    }
    e.fake.updateStatefulSet('db', 'pg', { replicas: 2 }); // ordinals 5 and 6 stay
    await waitFor(async () => ((await leases(e)).length === 2 ? true : undefined), 10_000, 'scaled-down holds released');
    expect((await leases(e)).map((l) => l.app).sort()).toEqual(['db/pg-5', 'db/pg-6']);
  });
});

describe('rule 3: leaks, judged against one consistent pod list', () => {
  const GRACE = 60_000;

  it('a stateless lease whose pod is gone from the API and whose netns is gone is reclaimed after the grace; one whose pod lives is not', async () => {
    const e = await setUp({}, { grace: GRACE });
    const live = e.fake.createPod({ namespace: 'web', name: 'live' });
    const dead = e.fake.createPod({ namespace: 'web', name: 'dead' });
    await add(e, { pod: live, containerId: 'l1' });
    await add(e, { pod: dead, containerId: 'd1' });
    e.td.clock.advance(1);
    // both namespaces vanish (say, a remount); only one pod has left the API
    rmSync(join(e.netnsDir, 'l1'));
    rmSync(join(e.netnsDir, 'd1'));
    e.fake.delete('pods', 'web', 'dead');
    const sweep = () => e.td.daemon.reconciler!.sweep((fn) => e.td.daemon.queue.run(fn));
    expect(await sweep()).toBe(0);
    e.td.clock.advance(GRACE);
    expect(await sweep()).toBe(1);
    expect((await leases(e)).map((l) => l.app)).toEqual(['web/live']);
  });

  it('a new pod with the same name (new UID) is not mistaken for the old one', async () => {
    const e = await setUp({}, { grace: GRACE });
    const old = e.fake.createPod({ namespace: 'web', name: 'same' });
    await add(e, { pod: old, containerId: 'old' });
    e.td.clock.advance(1);
    rmSync(join(e.netnsDir, 'old'));
    e.fake.delete('pods', 'web', 'same');
    e.fake.createPod({ namespace: 'web', name: 'same' }); // not started here yet
    const sweep = () => e.td.daemon.reconciler!.sweep((fn) => e.td.daemon.queue.run(fn));
    await sweep();
    e.td.clock.advance(GRACE);
    expect(await sweep()).toBe(1);
    expect(await leases(e)).toEqual([]);
  });

  it('a lease made after the list was taken is never judged by it', async () => {
    const e = await setUp({}, { grace: GRACE });
    const presence = await e.td.daemon.kube!.podPresence();
    e.td.clock.advance(1);
    const pod = e.fake.createPod({ namespace: 'web', name: 'fresh' });
    await add(e, { pod, containerId: 'f1' });
    const [lease] = e.td.daemon.store.attachedLeases('kubenet');
    expect(presence!(lease!)).toBe(true);
  });
});

describe('rule 4: fencing, never guessing', () => {
  const GRACE = 60_000;

  it('nothing is reclaimed while the API is unreachable; it is once the API is back', async () => {
    const e = await setUp({}, { grace: GRACE });
    const pod = e.fake.createPod({ namespace: 'web', name: 'gone' });
    await add(e, { pod, containerId: 'g1' });
    e.td.clock.advance(1);
    rmSync(join(e.netnsDir, 'g1'));
    e.fake.delete('pods', 'web', 'gone');
    await e.fake.down();
    const sweep = () => e.td.daemon.reconciler!.sweep((fn) => e.td.daemon.queue.run(fn));
    await waitFor(async () => ((await op(e.td.socket, 'health')).kubernetes.fenced !== null ? true : undefined), 10_000, 'fence up');
    await sweep();
    e.td.clock.advance(GRACE * 5);
    expect(await sweep()).toBe(0);
    expect(await leases(e)).toHaveLength(1);
    await e.fake.up();
    await waitFor(async () => ((await op(e.td.socket, 'health')).kubernetes.fenced === null ? true : undefined), 10_000, 'fence down');
    await sweep();
    e.td.clock.advance(GRACE);
    expect(await sweep()).toBe(1);
  });

  it('an API that is down while a StatefulSet is deleted: the release happens when it is back', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 1 });
    const pod = e.fake.createStatefulSetPod(sts, 0);
    await add(e, { pod, containerId: 'x0' });
    await del(e, { pod, containerId: 'x0' });
    await e.fake.down();
    e.fake.delete('pods', 'db', 'pg-0');
    e.fake.delete('statefulsets', 'db', 'pg');
    await waitFor(async () => ((await op(e.td.socket, 'health')).kubernetes.fenced !== null ? true : undefined), 10_000, 'fence up');
    await settle(e);
    expect(await leases(e)).toHaveLength(1);
    const health = await op(e.td.socket, 'health');
    expect(health.kubernetes.fenced).toMatch(/unreachable/);
    await e.fake.up();
    await waitFor(async () => ((await leases(e)).length === 0 ? true : undefined), 10_000, 'hold released once the API is back');
  });

  it('a watch that breaks resumes from its resourceVersion and sees what happened meanwhile', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 1 });
    await waitFor(async () => (e.td.daemon.kube!.health().watches[1]!.synced ? true : undefined), 5_000, 'synced');
    e.fake.breakWatches();
    e.fake.updateStatefulSet('db', 'pg', { annotations: { 'reservoir.io/when-deleted': 'Retain' } });
    await waitFor(async () => (e.fake.openWatches === 2 ? true : undefined), 10_000, 'watches back');
    const pod = e.fake.createStatefulSetPod(sts, 0);
    await add(e, { pod, containerId: 'b0' });
    await del(e, { pod, containerId: 'b0' });
    e.fake.delete('statefulsets', 'db', 'pg');
    await settle(e);
    expect(await leases(e)).toHaveLength(1); // Retain, as the watch saw after the break
    expect(e.td.daemon.kube!.health().watches.every((w) => w.resumes + w.relists > 0)).toBe(true);
  });

  it('a watch from a compacted resourceVersion (410 Gone) lists again', async () => {
    const e = await setUp();
    const before = e.td.daemon.kube!.health().watches[1]!.relists;
    e.fake.createStatefulSet({ namespace: 'db', name: 'one' });
    e.fake.compact();
    e.fake.breakWatches();
    e.fake.createStatefulSet({ namespace: 'db', name: 'two' });
    await waitFor(async () => (e.td.daemon.kube!.health().watches[1]!.relists > before ? true : undefined), 10_000, 'relist after 410');
    await waitFor(async () => (e.fake.openWatches === 2 ? true : undefined), 10_000, 'watches back');
  });

  it('a watch cut by client-node\'s inactivity timeout is resumed, and later events still arrive', async () => {
    const e = await setUp({}, { kube: { watchIdleMs: 300 } });
    await waitFor(async () => (e.td.daemon.kube!.health().watches[1]!.resumes >= 2 ? true : undefined), 10_000, 'idle watch resumed');
    expect(e.td.daemon.kube!.fence()).toBeUndefined();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'late', replicas: 1 });
    await waitFor(async () => (e.td.daemon.kube!.health().watches[1]!.synced ? true : undefined), 5_000, 'synced');
    const pod = e.fake.createStatefulSetPod(sts, 0);
    await add(e, { pod, containerId: 'i0' });
    await del(e, { pod, containerId: 'i0' });
    e.fake.delete('statefulsets', 'db', 'late');
    await waitFor(async () => ((await leases(e)).length === 0 ? true : undefined), 10_000, 'release after idle resumes');
  });

  it('a wrong token: the API refuses, the daemon stays fenced and says why', async () => {
    const fake = await FakeKube.start();
    const dir = join('/tmp', `rsv-kube-token-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'), 'not-the-token');
    const td = await startTestDaemon({ kube: { kubeconfig, nodeName: NODE, retryMs: { min: 50, max: 200 } } });
    try {
      await waitFor(async () => ((await op(td.socket, 'health')).kubernetes.fenced?.includes('401') ? true : undefined), 10_000, 'fenced on 401');
    } finally {
      await td.close();
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rule 5: IPs pinned by ordinal', () => {
  it('reservoir.io/ips gives ordinal start+i the i-th IP; an ordinal past the list is refused clearly', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 3, ordinalsStart: 3, annotations: { 'reservoir.io/ips': '10.44.0.62, 10.44.0.61' } });
    expect(await add(e, { pod: e.fake.createStatefulSetPod(sts, 4), containerId: 'q4' })).toBe('10.44.0.61');
    expect(await add(e, { pod: e.fake.createStatefulSetPod(sts, 3), containerId: 'q3' })).toBe('10.44.0.62');
    const past = await cni(e, 'ADD', { pod: e.fake.createStatefulSetPod(sts, 5), containerId: 'q5' });
    expect(past.exit).toBe(1);
    expect(past.out.code).toBe(7);
    expect(past.out.msg).toMatch(/StatefulSet db\/pg: annotation reservoir\.io\/ips pins 2 IPs to ordinals 3-4, but pod pg-5 has ordinal 5/);
    expect((await leases(e)).find((l) => l.containerId === 'q5')).toBeUndefined();
  });

  it('reservoir.io/ip-group gives each ordinal its own stable IP from the group, namespaces honoured', async () => {
    const e = await setUp({ reserved: [{ entry: '10.44.0.80-10.44.0.82', group: 'db', namespaces: ['db'] }] });
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2, annotations: { 'reservoir.io/ip-group': 'db' } });
    const p0 = e.fake.createStatefulSetPod(sts, 0);
    const p1 = e.fake.createStatefulSetPod(sts, 1);
    const ip1 = await add(e, { pod: p1, containerId: 'g1' });
    const ip0 = await add(e, { pod: p0, containerId: 'g0' });
    expect([ip0, ip1].sort()).toEqual(['10.44.0.80', '10.44.0.81']);
    await del(e, { pod: p0, containerId: 'g0' });
    await del(e, { pod: p1, containerId: 'g1' });
    expect(await add(e, { pod: e.fake.createStatefulSetPod(sts, 1), containerId: 'g1b' })).toBe(ip1);
    // the same group asked for by a StatefulSet of another namespace: 117
    const other = e.fake.createStatefulSet({ namespace: 'web', name: 'pg', replicas: 1, annotations: { 'reservoir.io/ip-group': 'db' } });
    const refused = await cni(e, 'ADD', { pod: e.fake.createStatefulSetPod(other, 0), containerId: 'x0' });
    expect(refused.out.code).toBe(117);
  });

  it('a changed list is refused for ordinals whose pods run (event and health), applied to the others', async () => {
    const e = await setUp();
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2, annotations: { 'reservoir.io/ips': '10.44.0.60,10.44.0.61' } });
    const p0 = e.fake.createStatefulSetPod(sts, 0);
    const p1 = e.fake.createStatefulSetPod(sts, 1);
    await add(e, { pod: p0, containerId: 'v0' });
    await add(e, { pod: p1, containerId: 'v1' });
    await del(e, { pod: p1, containerId: 'v1' });
    e.fake.updateStatefulSet('db', 'pg', { annotations: { 'reservoir.io/ips': '10.44.0.70,10.44.0.71' } });
    await waitFor(
      async () => ((await op(e.td.socket, 'health')).kubernetes.refused.length === 1 ? true : undefined),
      10_000,
      'refusal in health',
    );
    const health = await op(e.td.socket, 'health');
    expect(health.kubernetes.refused[0]).toMatch(/pins 10\.44\.0\.70 to ordinal 0, but its running pod holds 10\.44\.0\.60/);
    expect(e.logs.some((l) => l.msg === 'statefulset IP change refused while its pod runs')).toBe(true);
    // ordinal 1 was not running: its old IP is no longer held
    await waitFor(async () => ((await leases(e)).every((l) => l.ip !== '10.44.0.61') ? true : undefined), 10_000, 'old pin freed');
    expect(await add(e, { pod: e.fake.createStatefulSetPod(sts, 1), containerId: 'v1b' })).toBe('10.44.0.71');
    expect((await leaseOf(e, 'db/pg-0')).ip).toBe('10.44.0.60');
    // pod 0 restarts: its new incarnation gets the new IP, the old one is not left held
    await del(e, { pod: p0, containerId: 'v0' });
    expect(await add(e, { pod: p0, containerId: 'v0b' })).toBe('10.44.0.70');
    expect((await leases(e)).map((l) => l.ip).sort()).toEqual(['10.44.0.70', '10.44.0.71']);
  });
});

describe('rule 6: ADD never waits long on the API', () => {
  it('with the API black-holed, ADD falls back to CNI_ARGS, annotations and defaultKind, and logs it', async () => {
    const e = await setUp({}, { kube: { addBoundMs: 300 } });
    const sts = e.fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 1 });
    const pod = e.fake.createStatefulSetPod(sts, 0);
    e.fake.hang(true);
    // not in the watch cache under this UID: the daemon must ask the API, which never answers
    const stray = { metadata: { ...pod.metadata, uid: 'not-watched-yet' } };
    await add(e, { pod: stray, containerId: 'h1', args: { RESERVOIR_KIND: 'stateful' } });
    expect(await leaseOf(e, 'db/pg-0')).toMatchObject({ kind: 'stateful' });
    const other = { metadata: { namespace: 'web', name: 'w', uid: 'u-w' } };
    await add(e, { pod: other, containerId: 'h2' });
    expect(await leaseOf(e, 'web/w')).toMatchObject({ kind: 'stateless' });
    expect(e.logs.filter((l) => l.msg === 'kubernetes API unavailable for ADD; using CNI_ARGS, annotations and defaultKind')).toHaveLength(2);
    e.fake.hang(false);
  });

  it('with the API down, ADD falls back the same way', async () => {
    const e = await setUp({ defaultKind: 'stateful' });
    await e.fake.down();
    await add(e, { pod: { metadata: { namespace: 'web', name: 'z', uid: 'u-z' } }, containerId: 'z1' });
    expect(await leaseOf(e, 'web/z')).toMatchObject({ kind: 'stateful' });
    expect(e.logs.some((l) => l.msg === 'kubernetes API unavailable for ADD; using CNI_ARGS, annotations and defaultKind')).toBe(true);
  });
});
