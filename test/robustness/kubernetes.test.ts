// End to end with Kubernetes: the bundled plugin as a process, a real reservoird process started
// with --kubeconfig and --node-name (loading the Kubernetes client from kube-client.cjs beside its
// bundle, as packaged), and the fake API driven through the real @kubernetes/client-node. A
// StatefulSet pod gets its pinned IP without any annotation, keeps it across DEL, and loses it
// when the StatefulSet is deleted; the API going down in between only delays that.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { DaemonProcess, leasesOf, sleep } from '../support/daemon.js';
import { FakeKube } from '../support/fake-kube.js';
import { netconf } from '../support/netconf.js';
import { callDaemon } from '../../src/client.js';
import { runPluginProcess } from './support.js';

const healthOf = (socket: string): Promise<any> => callDaemon('health', { socket, timeoutMs: 5_000 });

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

async function until(what: string, check: () => Promise<boolean>, boundMs = 15_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${boundMs} ms`);
    await sleep(100);
  }
}

describe('Kubernetes end to end (bundled plugin, reservoird process, fake API)', () => {
  it('StatefulSet pod: pinned IP from the API, held across DEL, released when the StatefulSet is deleted (after an API outage)', async () => {
    const fake = await FakeKube.start();
    cleanup.add('stop fake API', () => fake.close());
    const dir = cleanup.tempDir('kube-e2e');
    const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'));
    const socket = join(dir, 'run', 'r.sock');
    const daemon = await DaemonProcess.start({ socket, stateDir: join(dir, 'state'), logLevel: 'info', extraArgs: ['--kubeconfig', kubeconfig, '--node-name', 'node-e2e'] });
    cleanup.add('stop daemon', () => daemon.stop());
    await until('watches in step', async () => (await healthOf(socket)).kubernetes?.fenced === null);
    const health = await healthOf(socket);
    expect(health.kubernetes).toMatchObject({ server: fake.url, node: 'node-e2e', fenced: null });

    const conf = JSON.stringify(netconf('e2ekube', socket, { ranges: [[{ subnet: '10.45.0.0/24' }]] }));
    const netnsDir = join(dir, 'netns');
    mkdirSync(netnsDir);
    const sts = fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 1, annotations: { 'reservoir.io/ips': '10.45.0.60' } });
    const pod = fake.createStatefulSetPod(sts, 0, 'node-e2e');
    const call = (command: string, container: string) => {
      writeFileSync(join(netnsDir, container), '');
      return runPluginProcess({
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: container,
          CNI_IFNAME: 'eth0',
          CNI_NETNS: join(netnsDir, container),
          CNI_PATH: '/opt/cni/bin',
          CNI_ARGS: `K8S_POD_NAMESPACE=db;K8S_POD_NAME=pg-0;K8S_POD_UID=${pod.metadata.uid}`,
        },
        stdin: conf,
      });
    };
    const added = await call('ADD', 'e2e-c1');
    expect(added.code, added.stdout + added.stderr).toBe(0);
    expect(added.json.ips[0].address).toBe('10.45.0.60/24');
    expect((await call('DEL', 'e2e-c1')).code).toBe(0);
    expect(await leasesOf(socket, 'e2ekube')).toEqual([expect.objectContaining({ ip: '10.45.0.60', app: 'db/pg-0', kind: 'stateful', state: 'held' })]);

    // The StatefulSet is deleted while the API is down: nothing is released until it is back.
    await fake.down();
    fake.delete('pods', 'db', 'pg-0');
    fake.delete('statefulsets', 'db', 'pg');
    await until('fenced', async () => (await healthOf(socket)).kubernetes?.fenced !== null);
    await sleep(1_000);
    expect(await leasesOf(socket, 'e2ekube')).toHaveLength(1);
    await fake.up();
    await until('hold released once the API is back', async () => (await leasesOf(socket, 'e2ekube')).length === 0, 60_000);
    // the log line follows the release's commit (after the StatefulSet's record is updated) and reaches us by a pipe
    await until('the release is logged', async () => daemon.stderr.includes('stateful hold released'), 5_000);
    // as packaged: the client came from its own bundle beside the daemon's, not from node_modules
    expect(daemon.stderr).toMatch(/"msg":"kubernetes integration on".*"client":"[^"]*\/kube-client\.cjs"/);
  }, 120_000);
});
