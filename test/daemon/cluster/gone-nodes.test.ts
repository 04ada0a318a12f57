// Issue 11 rule 6, the Kubernetes half: a node that is gone keeps its claims until the API
// confirms its pods gone. Three in-process reservoird "nodes" on a real three-member etcd, each
// with the Kubernetes integration on against one faithful fake API (test/support/fake-kube.ts)
// through the real @kubernetes/client-node. node-c is the node that goes: its daemon is stopped,
// its Node object deleted; node-a and node-b must end its attachments only once the API says the
// pods are gone, never those without a pod binding, never those of a node that exists.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { main } from '../../../ctl/main.js';
import type { KubeOptions } from '../../../daemon/kube/integration.js';
import { createLogger } from '../../../daemon/log.js';
import { Cleanup } from '../../support/cleanup.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';
import { FakeKube } from '../../support/fake-kube.js';
import { netconf } from '../../support/netconf.js';
import { type TestDaemon, addErr, addOk, op, startTestDaemon, waitFor } from '../support.js';

const NODES = ['node-a', 'node-b', 'node-c'] as const;
const cleanup = new Cleanup();
let etcd: EtcdCluster;
let fake: FakeKube | undefined;
let nodes: TestDaemon[] = [];
let logs: Array<Record<string, any>> = [];
let round = 0;

interface Lease {
  readonly ip: string;
  readonly node: string;
  readonly containerId: string | null;
  readonly app: string | null;
  readonly state: string;
}

/** Three daemons sharing etcd and the API; `resyncMs`: how often each looks again by itself. */
async function startNodes(resyncMs: number): Promise<void> {
  fake = await FakeKube.start();
  for (const name of NODES) fake.createNode(name);
  const kubeconfig = fake.writeKubeconfig(join(cleanup.tempDir('gone-kube'), 'kubeconfig'));
  const prefix = `/g${process.pid}-${++round}`;
  logs = [];
  nodes = [];
  for (const nodeName of NODES) {
    const kube: KubeOptions = { kubeconfig, nodeName, retryMs: { min: 50, max: 200 }, resyncMs };
    const log = createLogger('info', (line) => void logs.push({ ...JSON.parse(line), daemon: nodeName }));
    nodes.push(await startTestDaemon({ nodeName, log, etcd: { endpoints: etcd.endpoints, prefix }, kube }));
  }
  for (const node of nodes) await waitFor(async () => ((await op(node.socket, 'health')).kubernetes?.fenced === null ? true : undefined), 10_000, 'watches in step');
}

describeWithPrereqs('gone nodes, confirmed by the Kubernetes API', ['etcd'], () => {
  beforeAll(async () => {
    etcd = await startEtcdCluster(cleanup);
  }, 60_000);
  afterEach(async () => {
    for (const node of nodes) await node.close();
    nodes = [];
    await fake?.close();
    fake = undefined;
  });
  afterAll(async () => {
    await cleanup.run();
  });

  const shared = (socket: string) => netconf('shared', socket, { scope: 'cluster', ranges: [[{ subnet: '10.93.0.0/24', rangeStart: '10.93.0.10', rangeEnd: '10.93.0.60' }]] });
  const [a, b, c] = [0, 1, 2].map((i) => () => nodes[i]!);
  const podArgs = (pod: any) => ({ K8S_POD_NAMESPACE: pod.metadata.namespace, K8S_POD_NAME: pod.metadata.name, K8S_POD_UID: pod.metadata.uid });
  const leasesOn = async (node: TestDaemon) => (await op(node.socket, 'leases', { query: { network: 'shared' } })).leases as Lease[];
  const byContainer = (leases: Lease[]) => new Map(leases.map((l) => [l.containerId ?? `held ${l.app}`, l]));
  const requested = (path: string) => fake!.requests.filter((r) => r === `GET ${path}`).length;

  /**
   * On node-c: a stateless pod's attachment, a StatefulSet pod's (stateful), one without a pod
   * binding (podman); on node-a one of its own. Then node-c goes: its daemon stops.
   */
  async function nodeCWithAttachments() {
    const web = fake!.createPod({ namespace: 'web', name: 'front-1', nodeName: 'node-c' });
    const sts = fake!.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 1 });
    const db = fake!.createStatefulSetPod(sts, 0, 'node-c');
    const own = fake!.createPod({ namespace: 'web', name: 'front-2', nodeName: 'node-a' });
    const [webIp] = await addOk(shared(c().socket), { containerId: 'web-c', args: podArgs(web) });
    const [dbIp] = await addOk(shared(c().socket), { containerId: 'db-c', args: podArgs(db) });
    const [podmanIp] = await addOk(shared(c().socket), { containerId: 'podman-c' });
    await addOk(shared(a().socket), { containerId: 'front-a', args: podArgs(own) });
    for (const node of [a(), b()]) await waitFor(async () => ((await leasesOn(node)).length === 4 ? true : undefined), 3_000, `${node.daemon.ledger.node} sees the four attachments`);
    expect(byContainer(await leasesOn(a())).get('db-c')).toMatchObject({ state: 'attached', node: 'node-c' });
    await nodes.pop()!.close(); // node-c's daemon goes with its node
    return { web, sts, db, webIp: webIp!, dbIp: dbIp!, podmanIp: podmanIp! };
  }

  /** Let the StatefulSet passes the watch events asked for end. */
  const passesOfStatefulSetsOnly = async () => {
    for (const node of nodes) await node.daemon.kube!.schedule(false);
  };

  /** One full pass of each remaining daemon, begun after this call (a pass under way is followed by another). */
  const passes = async () => {
    for (const node of nodes) await node.daemon.kube!.schedule();
  };

  it('ends a gone node\'s attachments once its pods are gone: stateless freed for every node, stateful held and given to the app\'s next pod elsewhere; unbound kept', async () => {
    await startNodes(150);
    const { sts, webIp, dbIp, podmanIp } = await nodeCWithAttachments();
    fake!.delete('nodes', '', 'node-c');
    // The Node is gone but its pods are still in the API (the pod GC has not run): nothing ends.
    const podReads = requested('/api/v1/namespaces/web/pods/front-1');
    await waitFor(async () => (requested('/api/v1/namespaces/web/pods/front-1') > podReads ? true : undefined), 5_000, 'a daemon reads the pod of the gone node');
    await passes();
    expect([...byContainer(await leasesOn(b())).keys()].sort()).toEqual(['db-c', 'front-a', 'podman-c', 'web-c']);

    // The pods go; the StatefulSet controller makes db/pg-0 anew on node-b (another UID), whose
    // ADD is refused while the old attachment stands.
    fake!.delete('pods', 'web', 'front-1');
    fake!.delete('pods', 'db', 'pg-0');
    const db2 = fake!.createStatefulSetPod(sts, 0, 'node-b');
    const after = await waitFor(async () => {
      const now = byContainer(await leasesOn(b()));
      return !now.has('web-c') && !now.has('db-c') ? now : undefined;
    }, 10_000, 'node-c\'s pod attachments end');
    expect([...after.keys()].sort()).toEqual(['front-a', 'held db/pg-0', 'podman-c']);
    expect(after.get('held db/pg-0')).toMatchObject({ ip: dbIp, state: 'held' });
    expect(after.get('podman-c')).toMatchObject({ ip: podmanIp, state: 'attached', node: 'node-c' }); // nobody can know

    // Exactly one release of each, whichever daemon won (compare-and-swap), counted in its health.
    const counted = await Promise.all(nodes.map(async (node) => (await op(node.socket, 'health')).kubernetes.releasedOfGoneNodes as number));
    expect(counted.reduce((x, y) => x + y, 0)).toBe(2);
    const releaser = nodes[counted.findIndex((n) => n > 0)]!;
    let shown = '';
    expect(await main({ argv: ['health'], stdout: (t) => void (shown += t), stderr: () => undefined, env: { RESERVOIR_SOCKET: releaser.socket } })).toBe(0);
    expect(shown).toMatch(new RegExp(`^gone nodes\\s+${counted.find((n) => n > 0)} attachment\\(s\\) ended: their node and pod confirmed gone by the API$`, 'm'));
    const events = (await Promise.all(nodes.map(async (node) => (await op(node.socket, 'history', { params: { network: 'shared' } })).events))).flat();
    const ended = events.filter((e: { reason: string }) => e.reason === 'node_gone');
    expect(ended.map((e: { event: string; ip: string }) => `${e.event} ${e.ip}`).sort()).toEqual([`hold ${dbIp}`, `release ${webIp}`].sort());
    expect(ended.find((e: { ip: string }) => e.ip === webIp).detail).toBe('node node-c is gone from the Kubernetes API and pod web/front-1 is deleted');
    expect(ended.find((e: { ip: string }) => e.ip === dbIp).detail).toMatch(/^node node-c is gone from the Kubernetes API and pod db\/pg-0 is a new pod \(UID /);
    expect(logs.some((l) => l.msg === 'node gone from the Kubernetes API: ended the attachments whose pods it confirmed gone' && l.node === 'node-c' && l.released + l.held > 0)).toBe(true);

    // The freed IP is anyone's, at once; the held one goes to the app's next pod, on node-b.
    expect(await addOk(shared(a().socket), { containerId: 'takes-web', args: { IP: webIp } })).toEqual([webIp]);
    expect(await addOk(shared(b().socket), { containerId: 'db-b', args: podArgs(db2) })).toEqual([dbIp]);
    // and the unbound attachment of the gone node outlives further passes
    await passes();
    expect(byContainer(await leasesOn(a())).get('podman-c')).toMatchObject({ ip: podmanIp, state: 'attached' });
  });

  it('keeps every attachment of a node that exists, NotReady and with its pods gone, at one Node read per pass', async () => {
    await startNodes(3_600_000); // passes only when the test asks
    await nodeCWithAttachments();
    fake!.setNodeNotReady('node-c');
    fake!.delete('pods', 'web', 'front-1');
    fake!.delete('pods', 'db', 'pg-0');
    await passes();
    const nodeReads = requested('/api/v1/nodes/node-c');
    const before = fake!.requests.length;
    await a().daemon.kube!.schedule();
    // node-c holds three attachments; node-a's own is not asked about
    expect(requested('/api/v1/nodes/node-c') - nodeReads).toBe(1);
    expect(fake!.requests.slice(before).filter((r) => r.startsWith('GET /api/v1/nodes/') || r.includes('/pods/'))).toEqual(['GET /api/v1/nodes/node-c']);
    expect([...byContainer(await leasesOn(b())).keys()].sort()).toEqual(['db-c', 'front-a', 'podman-c', 'web-c']);
    expect((await op(a().socket, 'health')).kubernetes.releasedOfGoneNodes).toBe(0);
    // A StatefulSet event runs the StatefulSet pass only: Node reads wait for the resync.
    const settled = requested('/api/v1/nodes/node-c');
    fake!.updateStatefulSet('db', 'pg', { annotations: { 'reservoir.io/when-scaled': 'Delete' } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await passesOfStatefulSetsOnly();
    expect(requested('/api/v1/nodes/node-c')).toBe(settled);
  });

  it('ends nothing while the API is down; ends the confirmed ones once it is back', async () => {
    await startNodes(150);
    const { webIp } = await nodeCWithAttachments();
    await fake!.down();
    fake!.delete('nodes', '', 'node-c');
    fake!.delete('pods', 'web', 'front-1');
    for (const node of nodes) await waitFor(async () => ((await op(node.socket, 'health')).kubernetes.fenced !== null ? true : undefined), 10_000, 'fence up');
    await passes();
    await new Promise((resolve) => setTimeout(resolve, 400)); // several resyncs
    expect([...byContainer(await leasesOn(b())).keys()].sort()).toEqual(['db-c', 'front-a', 'podman-c', 'web-c']);
    await fake!.up();
    const after = await waitFor(async () => {
      const now = byContainer(await leasesOn(b()));
      return now.has('web-c') ? undefined : now;
    }, 10_000, 'the deleted pod\'s attachment ends once the API is back');
    // db/pg-0 still exists in the API (on the gone node): its attachment stays, as does the unbound one
    expect([...after.keys()].sort()).toEqual(['db-c', 'front-a', 'podman-c']);
    expect(await addOk(shared(b().socket), { containerId: 'takes-web', args: { IP: webIp } })).toEqual([webIp]);
    expect((await addErr(shared(b().socket), { containerId: 'db-b', args: { K8S_POD_NAMESPACE: 'db', K8S_POD_NAME: 'pg-0' } })).code).toBe(101);
  });

  it('ends nothing while the Node read is refused (a ClusterRole without get on nodes), says so once; ends once it is allowed', async () => {
    await startNodes(100);
    await nodeCWithAttachments();
    fake!.forbid('nodes', true);
    fake!.delete('nodes', '', 'node-c');
    fake!.delete('pods', 'web', 'front-1');
    const refusals = requested('/api/v1/nodes/node-c');
    await waitFor(async () => (requested('/api/v1/nodes/node-c') >= refusals + 6 ? true : undefined), 5_000, 'several passes read the Node');
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // refusals in more than one second: the log line must not change with the time
    await passes();
    expect(byContainer(await leasesOn(b())).has('web-c')).toBe(true);
    // node-b asks about node-a too (it holds a pod's attachment): each daemon says it once per node, not once per pass
    const warned = logs.filter((l) => l.msg === 'kubernetes read failed: the attachments of other nodes stay');
    expect(warned.length).toBeGreaterThan(0);
    expect(new Set(warned.map((l) => `${l.daemon} ${l.node}`)).size).toBe(warned.length);
    for (const line of warned) expect(line.error).toBe(`HTTP 403: nodes "${line.node}" is forbidden: User "system:serviceaccount:reservoir:reservoird" cannot get resource "nodes" in API group "" at the cluster scope`);
    fake!.forbid('nodes', false);
    await waitFor(async () => (byContainer(await leasesOn(b())).has('web-c') ? undefined : true), 10_000, 'the attachment ends once the read is allowed');
  });
}, { timeout: 60_000 });
