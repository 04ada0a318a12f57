// Leaks: containers whose network namespace vanishes without a DEL (a crashed runtime, a node
// reboot) are reclaimed by the daemon's reconciler after its grace period; live ones are not.
// Real namespaces: `ip netns add rsv-<run>-...`, CNI_NETNS=/var/run/netns/NAME.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runPlugin } from '../../src/plugin.js';
import { type LeaseView } from '../../src/protocol.js';
import { Cleanup } from '../support/cleanup.js';
import { leasesOf, sleep, startDaemonIn } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { netconf } from '../support/netconf.js';
import { NETNS_DIR, netnsAdd, netnsDel, randomSuffix } from '../support/netns.js';
import { runPluginProcess } from './support.js';

const GRACE_S = 1;
/** The reconciler sweeps every max(1 s, grace/2); a lease goes after grace + one sweep. */
const RECLAIM_BOUND_MS = 20_000;

const run = randomSuffix(5);
const cleanup = new Cleanup();
afterAll(async () => {
  await cleanup.run();
  // belt and braces: nothing of this run stays behind
  const left = readdirSync(NETNS_DIR).filter((n) => n.startsWith(`rsv-${run}-`));
  netnsDel(left);
}, 120_000);

async function addInProcess(conf: string, container: string, netns: string, args?: string): Promise<string> {
  let out = '';
  const code = await runPlugin({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: container, CNI_IFNAME: 'eth0', CNI_NETNS: netns, CNI_ARGS: args },
    stdin: async () => Buffer.from(conf),
    stdout: (text) => (out = text),
  });
  if (code !== 0) throw new Error(`ADD ${container} failed: ${out}`);
  return (JSON.parse(out).ips[0].address as string).split('/')[0]!;
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

async function waitFor(what: string, check: () => Promise<boolean>, boundMs: number): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > boundMs) throw new Error(`${what}: not within ${boundMs} ms`);
    await sleep(100);
  }
  return performance.now() - started;
}

describeWithPrereqs('leaked leases are reclaimed (real network namespaces)', ['root', 'netns'], () => {
  it('reclaims 200 containers whose netns vanished without DEL; live ones untouched', async () => {
    const { socket, daemon } = await startDaemonIn(cleanup, 'leaks', { reclaimGrace: GRACE_S });
    const conf = JSON.stringify(netconf('leaky', socket, { timeout: '10s', ranges: [[{ subnet: '10.220.0.0/16' }]] }));

    const dead = Array.from({ length: 200 }, (_, i) => `rsv-${run}-dead-${i}`);
    const live = Array.from({ length: 20 }, (_, i) => `rsv-${run}-live-${i}`);
    netnsAdd(cleanup, [...dead, ...live]);
    const ipOf = new Map<string, string>();
    // a few through the real executable, the rest in-process (same code, same daemon)
    for (const name of [...live.slice(0, 3), ...dead.slice(0, 3)]) {
      const r = await runPluginProcess({
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: name, CNI_IFNAME: 'eth0', CNI_NETNS: join(NETNS_DIR, name) },
        stdin: conf,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      ipOf.set(name, r.json.ips[0].address.split('/')[0]);
    }
    await inBatches([...live.slice(3), ...dead.slice(3)], 16, async (name) => ipOf.set(name, await addInProcess(conf, name, join(NETNS_DIR, name))));
    expect((await leasesOf(socket, 'leaky')).length).toBe(220);

    // the containers die without DEL: their namespaces go
    netnsDel(dead);
    const tookMs = await waitFor(
      'every dead container reclaimed',
      async () => (await leasesOf(socket, 'leaky')).filter((l) => l.containerId!.includes('-dead-')).length === 0,
      RECLAIM_BOUND_MS,
    );
    // two more sweeps: the live ones stay exactly as they were
    await sleep(2_500);
    const leases = await leasesOf(socket, 'leaky');
    expect(leases.map((l) => `${l.containerId}=${l.ip}/${l.state}`).sort()).toEqual(live.map((n) => `${n}=${ipOf.get(n)}/attached`).sort());
    console.log(`leaks: 200 leases whose netns vanished reclaimed ${(tookMs / 1000).toFixed(1)} s after the netns went (grace ${GRACE_S} s); 20 live untouched`);
    expect(daemon.alive).toBe(true);
  }, 180_000);

  it('after a node reboot (all netns gone, daemon restarted): stateless leases reclaimed, stateful holds kept', async () => {
    const served = await startDaemonIn(cleanup, 'reboot', { reclaimGrace: GRACE_S });
    const { socket } = served;
    const conf = JSON.stringify(netconf('rebootnet', socket, { timeout: '10s', ranges: [[{ subnet: '10.221.0.0/16' }]] }));
    const stateless = Array.from({ length: 60 }, (_, i) => `rsv-${run}-web-${i}`);
    const stateful = Array.from({ length: 20 }, (_, i) => `rsv-${run}-db-${i}`);
    netnsAdd(cleanup, [...stateless, ...stateful]);
    const ipOf = new Map<string, string>();
    const appArgs = (i: number) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=db-${i};RESERVOIR_KIND=stateful`;
    await inBatches(stateless, 16, async (n) => ipOf.set(n, await addInProcess(conf, n, join(NETNS_DIR, n))));
    await inBatches(
      stateful.map((n, i) => [n, i] as const),
      16,
      async ([n, i]) => ipOf.set(n, await addInProcess(conf, n, join(NETNS_DIR, n), appArgs(i))),
    );
    expect((await leasesOf(socket, 'rebootnet')).length).toBe(80);

    // the node goes down hard: daemon killed, every namespace gone; then it comes back
    served.daemon.kill('SIGKILL');
    await served.daemon.exited;
    netnsDel([...stateless, ...stateful]);
    await served.restart();

    const byApp = (leases: readonly LeaseView[]) => new Map(leases.filter((l) => l.kind === 'stateful').map((l) => [l.app, l]));
    const tookMs = await waitFor(
      'stateless leases reclaimed after the reboot',
      async () => (await leasesOf(socket, 'rebootnet')).every((l) => l.kind === 'stateful' && l.state === 'held'),
      RECLAIM_BOUND_MS,
    );
    await sleep(2_500);
    const leases = await leasesOf(socket, 'rebootnet');
    expect(leases.filter((l) => l.kind === 'stateless')).toEqual([]);
    const holds = byApp(leases);
    expect(holds.size).toBe(20);
    stateful.forEach((n, i) => {
      const hold = holds.get(`ns/db-${i}`);
      expect(hold, `db-${i}`).toBeDefined();
      expect(hold!.state).toBe('held');
      expect(hold!.containerId).toBeNull();
      expect(hold!.ip).toBe(ipOf.get(n));
    });
    // the pod comes back in a new container and gets its IP again
    const again = `rsv-${run}-db-0-new`;
    netnsAdd(cleanup, [again]);
    expect(await addInProcess(conf, again, join(NETNS_DIR, again), appArgs(0))).toBe(ipOf.get(stateful[0]!));
    console.log(`leaks: reboot -> 60 stateless leases reclaimed in ${(tookMs / 1000).toFixed(1)} s, 20 stateful holds kept with their IPs`);
  }, 180_000);
});
