// The PACKAGED executables with Kubernetes: reservoird (a Node SEA) started with --kubeconfig
// loads the client from kube-client.cjs beside itself (a SEA's own require loads built-ins
// only), the packaged plugin runs as a process, the fake API is driven through the real
// @kubernetes/client-node. A StatefulSet's pods get their pinned IPs without any annotation, keep
// them across DEL, and lose them when the StatefulSet is deleted; a ReplicaSet's pod is stateless.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeKube } from '../support/fake-kube.js';
import { Cleanup } from '../support/cleanup.js';
import { startReservoirEnv } from './support.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

function runExecutable(file: string, stdin: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

async function until(what: string, check: () => boolean, boundMs = 20_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${boundMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Kubernetes through the packaged executables', () => {
  it('StatefulSet pods: pinned IPs, held across DEL, released with the StatefulSet; health shows the API', async () => {
    const fake = await FakeKube.start();
    cleanup.add('stop fake API', () => fake.close());
    const dir = cleanup.tempDir('e2e-kube');
    const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'));
    const env = await startReservoirEnv(cleanup, ['--kubeconfig', kubeconfig, '--node-name', 'node-e2e']);
    await until('watches in step', () => /kubernetes\s+\S+, node node-e2e; in step/.test(env.ctl(['health']).stdout));
    expect(env.daemon.log).toMatch(/"msg":"kubernetes integration on".*"client":"[^"]*\/bin\/kube-client\.cjs"/);

    const conf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'kube-e2e',
      type: 'bridge',
      ipam: { type: 'reservoir', socket: env.socket, timeout: '10s', ranges: [[{ subnet: '10.46.0.0/24' }]] },
    });
    const netnsDir = join(dir, 'netns');
    mkdirSync(netnsDir);
    // Asynchronous: the fake API lives in this process and must answer while the plugin runs.
    const plugin = async (command: string, container: string, pod: any) => {
      writeFileSync(join(netnsDir, container), '');
      const r = await runExecutable(join(env.bin, 'reservoir'), conf, {
          CNI_COMMAND: command,
          CNI_CONTAINERID: container,
          CNI_IFNAME: 'eth0',
          CNI_NETNS: join(netnsDir, container),
          CNI_PATH: '/opt/cni/bin',
          CNI_ARGS: `K8S_POD_NAMESPACE=${pod.metadata.namespace};K8S_POD_NAME=${pod.metadata.name};K8S_POD_UID=${pod.metadata.uid}`,
      });
      return { status: r.status, json: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
    };

    const sts = fake.createStatefulSet({ namespace: 'db', name: 'pg', replicas: 2, ordinalsStart: 1, annotations: { 'reservoir.io/ips': '10.46.0.61,10.46.0.62' } });
    for (const ordinal of [1, 2]) {
      const pod = fake.createStatefulSetPod(sts, ordinal, 'node-e2e');
      const added = await plugin('ADD', `pg-${ordinal}`, pod);
      expect(added.status, JSON.stringify(added)).toBe(0);
      expect(added.json.ips[0].address, env.daemon.log).toBe(`10.46.0.6${ordinal}/24`);
      expect((await plugin('DEL', `pg-${ordinal}`, pod)).status).toBe(0);
    }
    const rs = fake.createReplicaSet('web', 'front-1');
    const web = fake.createPod({ namespace: 'web', name: 'front-1-a', nodeName: 'node-e2e', owner: rs });
    expect((await plugin('ADD', 'web-1', web)).status).toBe(0);
    expect((await plugin('DEL', 'web-1', web)).status).toBe(0);
    expect(env.leases('kube-e2e').map((l) => `${l.app} ${l.ip} ${l.kind} ${l.state}`)).toEqual(['db/pg-1 10.46.0.61 stateful held', 'db/pg-2 10.46.0.62 stateful held']);

    fake.delete('pods', 'db', 'pg-1');
    fake.delete('pods', 'db', 'pg-2');
    fake.delete('statefulsets', 'db', 'pg');
    await until('holds released with the StatefulSet', () => env.leases('kube-e2e').length === 0);
  }, 300_000);
});
