// A daemon that cannot see the runtime's netns directory (a container without the hostPath
// mount) must neither reclaim leases nor hand a stateful app's IP to a new container because a
// path is missing, and must say so in health. Real daemon, real files: a temp directory stands
// for the runtime's netns directory and a file in it for each namespace (the daemon only asks
// whether the path exists).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runPlugin } from '../../src/plugin.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, op, startTestDaemon } from './support.js';

const GRACE = 60_000;

let td: TestDaemon | undefined;
afterEach(async () => {
  await td?.close();
  td = undefined;
});

async function add(conf: Record<string, unknown>, containerId: string, netns: string, args?: string): Promise<{ exit: number; out: any }> {
  let text = '';
  const exit = await runPlugin({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: containerId, CNI_IFNAME: 'eth0', CNI_NETNS: netns, CNI_ARGS: args, CNI_PATH: '/opt/cni/bin' },
    stdin: async () => Buffer.from(JSON.stringify(conf)),
    stdout: (t) => (text += t),
  });
  return { exit, out: JSON.parse(text) };
}

async function sweep(d: TestDaemon): Promise<number> {
  return d.daemon.reconciler!.sweep((fn) => d.daemon.queue.run(fn));
}

describe('netns visibility', () => {
  it('a daemon that cannot see the netns directory reclaims nothing and says so in health', async () => {
    td = await startTestDaemon({ reclaimGraceMs: GRACE });
    const conf = netconf('blind', td.socket, { ranges: [[{ subnet: '10.41.0.0/24' }]] });
    // The runtime's directory exists on the "host" only: the daemon never sees it.
    const hostOnly = join(td.dir, 'host-netns');
    for (let i = 0; i < 5; i++) expect((await add(conf, `c${i}`, join(hostOnly, `ns-${i}`))).exit).toBe(0);
    expect(await sweep(td)).toBe(0);
    td.clock.advance(GRACE * 10);
    expect(await sweep(td)).toBe(0);
    const { leases } = await op(td.socket, 'leases', { query: { network: 'blind' } });
    expect(leases).toHaveLength(5);
    const health = await op(td.socket, 'health');
    expect(health.netns).toEqual([expect.objectContaining({ root: hostOnly, visible: false })]);
    expect(health.netns[0].why).toMatch(/mount the runtime's netns directory/);
  });

  it('a directory that exists but in which an ADD namespace is missing is not trusted either', async () => {
    td = await startTestDaemon({ reclaimGraceMs: GRACE });
    const conf = netconf('empty', td.socket, { ranges: [[{ subnet: '10.41.1.0/24' }]] });
    const dir = join(td.dir, 'netns');
    mkdirSync(dir); // an empty directory of the container's own image, not the host's
    expect((await add(conf, 'c1', join(dir, 'ns-1'))).exit).toBe(0);
    td.clock.advance(GRACE * 2);
    await sweep(td);
    expect(await sweep(td)).toBe(0);
    expect((await op(td.socket, 'health')).netns[0]).toMatchObject({ root: dir, visible: false });
  });

  it('where the directory is visible, a vanished namespace is reclaimed after the grace period', async () => {
    td = await startTestDaemon({ reclaimGraceMs: GRACE });
    const conf = netconf('seen', td.socket, { ranges: [[{ subnet: '10.41.2.0/24' }]] });
    const dir = join(td.dir, 'netns');
    mkdirSync(dir);
    for (const n of ['a', 'b']) writeFileSync(join(dir, n), '');
    expect((await add(conf, 'ca', join(dir, 'a'))).exit).toBe(0);
    expect((await add(conf, 'cb', join(dir, 'b'))).exit).toBe(0);
    rmSync(join(dir, 'b'));
    expect(await sweep(td)).toBe(0);
    td.clock.advance(GRACE);
    expect(await sweep(td)).toBe(1);
    const { leases } = await op(td.socket, 'leases', { query: { network: 'seen' } });
    expect(leases.map((l: any) => l.containerId)).toEqual(['ca']);
    expect((await op(td.socket, 'health')).netns[0]).toMatchObject({ root: dir, visible: true });
  });

  it('after a restart with every namespace gone and no ADD yet, an existing directory is trusted (node reboot)', async () => {
    td = await startTestDaemon({ reclaimGraceMs: GRACE });
    const conf = netconf('reboot', td.socket, { ranges: [[{ subnet: '10.41.3.0/24' }]] });
    const dir = join(td.dir, 'netns');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), '');
    expect((await add(conf, 'ca', join(dir, 'a'))).exit).toBe(0);
    rmSync(join(dir, 'a'));
    await td.restart();
    expect(await sweep(td)).toBe(0);
    td.clock.advance(GRACE);
    expect(await sweep(td)).toBe(1);
  });

  it('a stateful app is not moved off a container whose namespace the daemon cannot see', async () => {
    td = await startTestDaemon({ reclaimGraceMs: 0 });
    const conf = netconf('sticky', td.socket, { ranges: [[{ subnet: '10.41.4.0/24' }]] });
    const app = 'K8S_POD_NAMESPACE=db;K8S_POD_NAME=pg-0;RESERVOIR_KIND=stateful';
    const hostOnly = join(td.dir, 'host-netns');
    const first = await add(conf, 'old', join(hostOnly, 'old'), app);
    expect(first.exit).toBe(0);
    const second = await add(conf, 'new', join(hostOnly, 'new'), app);
    expect(second.exit).toBe(1);
    expect(second.out.code).toBe(101);
    expect(second.out.msg).toMatch(/cannot see/);

    // Where it does see the directory, a container whose namespace is gone is taken over.
    const dir = join(td.dir, 'netns');
    mkdirSync(dir);
    writeFileSync(join(dir, 'x'), '');
    const app2 = 'K8S_POD_NAMESPACE=db;K8S_POD_NAME=pg-1;RESERVOIR_KIND=stateful';
    const x = await add(conf, 'x', join(dir, 'x'), app2);
    rmSync(join(dir, 'x'));
    writeFileSync(join(dir, 'y'), '');
    const y = await add(conf, 'y', join(dir, 'y'), app2);
    expect(y.exit).toBe(0);
    expect(y.out.ips[0].address).toBe(x.out.ips[0].address);
  });
});
