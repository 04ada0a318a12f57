// End to end: the PACKAGED reservoir plugin (build/bin/reservoir, through a CNI_PATH symlink)
// as the ipam of Debian's bridge and macvlan plugins, driven by the real libcni (test/harness),
// against the packaged reservoird on a temp socket, inspected with the packaged reservoirctl.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { conflist } from '../support/netconf.js';
import {
  addAddress,
  assertPing,
  createBridge,
  createNetns,
  createVethPair,
  deleteLinkAtCleanup,
  ip,
  linkExists,
  listNetns,
  netnsExists,
  randomSuffix,
  runCni,
  uniqueName,
  writeConflist,
  type CniResult,
  type CniRunOptions,
  type Netns,
} from '../support/netns.js';
import {
  type DualStackSubnet,
  type ReservoirEnv,
  globalCidrs,
  inSubnet,
  pickDualStackSubnet,
  startReservoirEnv,
  waitForDad,
} from './support.js';

const TIMEOUT = 60_000;
/** Packaging (when build/bin is stale) takes up to a minute or two on 2 cores. */
const SETUP_TIMEOUT = 300_000;

describeWithPrereqs('reservoir e2e (packaged plugin + daemon, libcni, Debian plugins)', ['root', 'netns', 'harness', 'bridge', 'macvlan', 'ping'], () => {
  const cleanup = new Cleanup();
  const run = randomSuffix(4);
  const createdNs: string[] = [];
  const createdLinks: string[] = [];
  let env: ReservoirEnv;

  const opts = (extra: Partial<CniRunOptions> = {}): CniRunOptions => ({ cacheDir: env.cacheDir, cniPath: env.cniPath, ...extra });
  const ns = (): Netns => {
    const n = createNetns(cleanup);
    createdNs.push(n.name);
    return n;
  };
  const bridge = (): string => {
    const b = createBridge(uniqueName('rsvbr'), cleanup);
    createdLinks.push(b);
    return b;
  };
  /** Register the host-side veth the bridge plugin made, in case DEL never runs. */
  const trackHostVeth = (res: CniResult, br: string) => {
    for (const i of res.interfaces ?? []) {
      if (!i.sandbox && i.name !== br) {
        deleteLinkAtCleanup(cleanup, i.name);
        createdLinks.push(i.name);
      }
    }
  };
  const addrOf = (cidr: string) => cidr.split('/')[0]!;
  const v4Of = (res: CniResult) => res.ips!.find((i) => !i.address.includes(':'))!;
  const v6Of = (res: CniResult) => res.ips!.find((i) => i.address.includes(':'));
  const failMsg = (r: { error?: { msg: string }; stderr: string }) => `${r.error?.msg ?? ''}\n${r.stderr}\n--- reservoird log:\n${env.daemon.log}`;

  beforeAll(async () => {
    const started = Date.now();
    const e = await startReservoirEnv(cleanup);
    env = e;
    console.info(`reservoir e2e: ${e.packaging}; reservoird pid ${e.daemon.pid} up after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, SETUP_TIMEOUT);

  afterAll(async () => {
    await cleanup.run();
    for (const n of createdNs) expect(netnsExists(n), `netns ${n} left behind`).toBe(false);
    for (const l of createdLinks) expect(linkExists(l), `link ${l} left behind`).toBe(false);
    expect(listNetns().filter((n) => createdNs.includes(n))).toEqual([]);
  }, TIMEOUT);

  // -------------------------------------------------------------------------
  describe('bridge, dual-stack, 3 namespaces', () => {
    let net: DualStackSubnet;
    let br: string;
    let conf: string;
    const netName = `rsv-br-${run}`;
    const pods: { id: string; ns: Netns; v4: string; v6: string }[] = [];

    beforeAll(() => {
      net = pickDualStackSubnet();
      br = bridge();
      for (const x of ['a', 'b', 'c']) pods.push({ id: `rsv-${run}-br${x}`, ns: ns(), v4: '', v6: '' });
      conf = writeConflist(
        conflist(netName, env.socket, { ranges: [[{ subnet: net.v4 }], [{ subnet: net.v6 }]] }, { cniVersion: '1.0.0', plugin: { type: 'bridge', bridge: br, isGateway: true, ipMasq: false } }),
        cleanup,
      );
    });

    it('ADD gives each namespace one IPv4 and one IPv6 address from the ranges', async () => {
      for (const p of pods) {
        const r = await runCni('add', conf, p.id, p.ns.path, 'eth0', opts());
        expect(r.error, failMsg(r)).toBeUndefined();
        const res = r.result!;
        trackHostVeth(res, br);
        expect(res.ips).toHaveLength(2);
        const v4 = v4Of(res);
        const v6 = v6Of(res)!;
        expect(v4.address.endsWith('/24')).toBe(true);
        expect(v6.address.endsWith('/64')).toBe(true);
        expect(inSubnet(addrOf(v4.address), net.v4)).toBe(true);
        expect(inSubnet(addrOf(v6.address), net.v6)).toBe(true);
        expect(v4.gateway).toBe(`${net.v4Prefix}.1`);
        expect(v6.gateway).toBe(`${net.v6Prefix}1`);
        // what the kernel has is what the result says
        expect(globalCidrs(p.ns.name, 'eth0', 'inet')).toEqual([v4.address]);
        expect(globalCidrs(p.ns.name, 'eth0', 'inet6')).toEqual([v6.address]);
        p.v4 = addrOf(v4.address);
        p.v6 = addrOf(v6.address);
      }
      expect(new Set(pods.map((p) => p.v4)).size).toBe(3);
      expect(new Set(pods.map((p) => p.v6)).size).toBe(3);
      const leases = env.leases(netName);
      expect(leases).toHaveLength(6);
      for (const p of pods) {
        const mine = leases.filter((l) => l.containerId === p.id).map((l) => l.ip).sort();
        expect(mine).toEqual([p.v4, p.v6].sort());
      }
      expect(leases.every((l) => l.state === 'attached' && l.kind === 'stateless' && l.ifname === 'eth0')).toBe(true);
    });

    it('namespaces ping each other and the gateway over IPv4 and IPv6', async () => {
      const [a, b, c] = pods as [(typeof pods)[0], (typeof pods)[0], (typeof pods)[0]];
      assertPing(a.ns.name, b.v4);
      assertPing(b.ns.name, c.v4);
      assertPing(c.ns.name, a.v4);
      for (const p of pods) assertPing(p.ns.name, `${net.v4Prefix}.1`);
      // DAD cannot be turned off through CNI; Debian's bridge waits for it to settle, but do not
      // rely on that: give it up to 3 s, and only ping addresses that are usable.
      const settled = await Promise.all(pods.map((p) => waitForDad(p.ns.name, 'eth0')));
      const bridgeSettled = await waitForDad(null, br);
      expect(settled.every(Boolean), 'IPv6 addresses still tentative/dadfailed after 3 s').toBe(true);
      assertPing(a.ns.name, b.v6);
      assertPing(b.ns.name, c.v6);
      assertPing(c.ns.name, a.v6);
      if (bridgeSettled) assertPing(a.ns.name, `${net.v6Prefix}1`);
    });

    it('CHECK passes', async () => {
      for (const p of pods) {
        const r = await runCni('check', conf, p.id, p.ns.path, 'eth0', opts());
        expect(r.error, failMsg(r)).toBeUndefined();
        expect(r.ok).toBe(true);
      }
    });

    it('DEL removes the addresses and the leases; a second DEL succeeds', async () => {
      for (const p of pods) {
        const r = await runCni('del', conf, p.id, p.ns.path, 'eth0', opts());
        expect(r.error, failMsg(r)).toBeUndefined();
        expect(linkExists('eth0', p.ns.name)).toBe(false);
        expect(env.leases(netName).filter((l) => l.containerId === p.id)).toEqual([]);
        const again = await runCni('del', conf, p.id, p.ns.path, 'eth0', opts());
        expect(again.error, failMsg(again)).toBeUndefined();
        expect(again.ok).toBe(true);
      }
      expect(env.leases(netName)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('macvlan (bridge mode) on a veth parent, dual-stack', () => {
    let net: DualStackSubnet;
    let conf: string;
    let lan: Netns;
    const netName = `rsv-mv-${run}`;
    const parent = `rsvm${run}h`;
    const peer = `rsvm${run}p`;
    const pods: { id: string; ns: Netns; v4: string; v6: string }[] = [];

    beforeAll(() => {
      net = pickDualStackSubnet();
      lan = ns();
      for (const x of ['a', 'b']) pods.push({ id: `rsv-${run}-mv${x}`, ns: ns(), v4: '', v6: '' });
      createVethPair(parent, peer, cleanup, lan.name);
      createdLinks.push(parent);
      // the "LAN" side holds the gateway addresses (.1 / ::1 are reservoir's default gateways)
      addAddress(lan.name, peer, `${net.v4Prefix}.1/24`);
      addAddress(lan.name, peer, `${net.v6Prefix}1/64`);
      conf = writeConflist(
        conflist(netName, env.socket, { ranges: [[{ subnet: net.v4, rangeStart: `${net.v4Prefix}.10` }], [{ subnet: net.v6 }]] }, { cniVersion: '1.0.0', plugin: { type: 'macvlan', master: parent, mode: 'bridge' } }),
        cleanup,
      );
    });

    it('ADD gives each macvlan endpoint its addresses', async () => {
      for (const p of pods) {
        const r = await runCni('add', conf, p.id, p.ns.path, 'eth0', opts());
        expect(r.error, failMsg(r)).toBeUndefined();
        const res = r.result!;
        expect(res.interfaces?.find((i) => i.name === 'eth0')?.sandbox).toBe(p.ns.path);
        const v4 = v4Of(res);
        const v6 = v6Of(res)!;
        expect(inSubnet(addrOf(v4.address), net.v4)).toBe(true);
        expect(Number(addrOf(v4.address).split('.')[3])).toBeGreaterThanOrEqual(10);
        expect(inSubnet(addrOf(v6.address), net.v6)).toBe(true);
        expect(globalCidrs(p.ns.name, 'eth0', 'inet')).toEqual([v4.address]);
        expect(globalCidrs(p.ns.name, 'eth0', 'inet6')).toEqual([v6.address]);
        p.v4 = addrOf(v4.address);
        p.v6 = addrOf(v6.address);
      }
      expect(pods[0]!.v4).not.toBe(pods[1]!.v4);
      expect(env.leases(netName)).toHaveLength(4);
    });

    it('endpoints ping each other and the LAN side', async () => {
      const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
      assertPing(a.ns.name, b.v4);
      assertPing(b.ns.name, a.v4);
      assertPing(a.ns.name, `${net.v4Prefix}.1`);
      assertPing(lan.name, b.v4);
      const settled = await Promise.all([...pods.map((p) => waitForDad(p.ns.name, 'eth0')), waitForDad(lan.name, peer)]);
      expect(settled.every(Boolean), 'IPv6 addresses still tentative/dadfailed after 3 s').toBe(true);
      assertPing(a.ns.name, b.v6);
      assertPing(b.ns.name, `${net.v6Prefix}1`);
    });

    it('CHECK passes; DEL removes interface and leases; second DEL succeeds', async () => {
      for (const p of pods) {
        const c = await runCni('check', conf, p.id, p.ns.path, 'eth0', opts());
        expect(c.error, failMsg(c)).toBeUndefined();
      }
      for (const p of pods) {
        const d = await runCni('del', conf, p.id, p.ns.path, 'eth0', opts());
        expect(d.error, failMsg(d)).toBeUndefined();
        expect(linkExists('eth0', p.ns.name)).toBe(false);
        const again = await runCni('del', conf, p.id, p.ns.path, 'eth0', opts());
        expect(again.error, failMsg(again)).toBeUndefined();
      }
      expect(env.leases(netName)).toEqual([]);
      expect(linkExists(parent)).toBe(true);
    });
  });

  // -------------------------------------------------------------------------
  describe('30 concurrent ADDs', () => {
    const N = 30;
    let net: DualStackSubnet;
    let br: string;
    let conf: string;
    const netName = `rsv-cc-${run}`;
    const pods: { id: string; ns: Netns; ip: string }[] = [];

    beforeAll(() => {
      net = pickDualStackSubnet();
      br = bridge();
      for (let i = 0; i < N; i++) pods.push({ id: `rsv-${run}-cc${i}`, ns: ns(), ip: '' });
      conf = writeConflist(
        conflist(netName, env.socket, { ranges: [[{ subnet: net.v4 }]] }, { cniVersion: '1.0.0', plugin: { type: 'bridge', bridge: br, isGateway: true, ipMasq: false } }),
        cleanup,
      );
    });

    it('30 namespaces ADDed at once get 30 distinct IPs, all visible as leases', async () => {
      const started = Date.now();
      const results = await Promise.all(pods.map((p) => runCni('add', conf, p.id, p.ns.path, 'eth0', opts())));
      const elapsed = Date.now() - started;
      const failed = results.filter((r) => !r.ok);
      expect(failed.map((r) => failMsg(r)).slice(0, 3)).toEqual([]);
      results.forEach((r, i) => {
        trackHostVeth(r.result!, br);
        const v4 = v4Of(r.result!);
        pods[i]!.ip = addrOf(v4.address);
        expect(inSubnet(pods[i]!.ip, net.v4)).toBe(true);
        expect(globalCidrs(pods[i]!.ns.name, 'eth0', 'inet')).toEqual([v4.address]);
      });
      expect(new Set(pods.map((p) => p.ip)).size).toBe(N);
      expect(pods.map((p) => p.ip)).not.toContain(`${net.v4Prefix}.1`);
      const leases = env.leases(netName);
      expect(leases).toHaveLength(N);
      expect(new Map(leases.map((l) => [l.containerId, l.ip]))).toEqual(new Map(pods.map((p) => [p.id, p.ip])));
      console.info(`reservoir e2e: ${N} concurrent ADDs took ${(elapsed / 1000).toFixed(1)} s`);
    });

    it('30 concurrent DELs release everything', async () => {
      const results = await Promise.all(pods.map((p) => runCni('del', conf, p.id, p.ns.path, 'eth0', opts())));
      expect(results.filter((r) => !r.ok).map((r) => failMsg(r)).slice(0, 3)).toEqual([]);
      expect(env.leases(netName)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('reserved IPs', () => {
    let net: DualStackSubnet;
    let br: string;
    let conf: string;
    const netName = `rsv-rs-${run}`;
    let entry: string;
    let wanted: string;
    let ns1: Netns;
    let ns2: Netns;
    let ns3: Netns;
    let ns4: Netns;
    const id1 = `rsv-${run}-rs1`;
    const id2 = `rsv-${run}-rs2`;
    const id3 = `rsv-${run}-rs3`;
    const id4 = `rsv-${run}-rs4`;
    const annotations = (a: Record<string, string>) => ({ 'io.kubernetes.cri.pod-annotations': a });
    let groupIp = '';

    beforeAll(() => {
      net = pickDualStackSubnet();
      br = bridge();
      [ns1, ns2, ns3, ns4] = [ns(), ns(), ns(), ns()];
      entry = `${net.v4Prefix}.2-${net.v4Prefix}.9`;
      wanted = `${net.v4Prefix}.5`;
      conf = writeConflist(
        conflist(netName, env.socket, { ranges: [[{ subnet: net.v4 }]], reserved: [{ entry, group: 'db', note: 'e2e' }] }, { cniVersion: '1.0.0', plugin: {
          type: 'bridge',
          bridge: br,
          isGateway: true,
          ipMasq: false,
          capabilities: { ips: true, 'io.kubernetes.cri.pod-annotations': true },
        } }),
        cleanup,
      );
    });

    const isReserved = (addr: string) => {
      const last = Number(addr.split('.')[3]);
      return last >= 2 && last <= 9;
    };

    it('a plain ADD never gets a reserved IP', async () => {
      const r = await runCni('add', conf, id4, ns4.path, 'eth0', opts());
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      const got = addrOf(v4Of(r.result!).address);
      expect(isReserved(got)).toBe(false);
      expect(got).not.toBe(`${net.v4Prefix}.1`);
    });

    it('namespace 1 asks for a reserved IP by annotation and gets it', async () => {
      const r = await runCni('add', conf, id1, ns1.path, 'eth0', opts({ capArgs: annotations({ 'reservoir.io/ip': wanted }) }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      expect(v4Of(r.result!).address).toBe(`${wanted}/24`);
      expect(globalCidrs(ns1.name, 'eth0', 'inet')).toEqual([`${wanted}/24`]);
      const lease = env.leases(netName).find((l) => l.containerId === id1);
      expect(lease).toMatchObject({ ip: wanted, reserved: true, state: 'attached' });
    });

    it('namespace 2 asking for the same IP gets code 101 naming namespace 1', async () => {
      const r = await runCni('add', conf, id2, ns2.path, 'eth0', opts({ capArgs: annotations({ 'reservoir.io/ip': wanted }) }));
      expect(r.ok).toBe(false);
      expect(r.error?.code, failMsg(r)).toBe(101);
      expect(r.error?.msg).toContain(id1);
      expect(r.error?.msg).toContain(wanted);
      // bridge leaves its veth behind after a failed IPAM and libcni does not DEL after a failed
      // ADD; a real runtime does, so do it here: it must succeed and must not touch ns1's lease
      const d = await runCni('del', conf, id2, ns2.path, 'eth0', opts());
      expect(d.error, failMsg(d)).toBeUndefined();
      expect(linkExists('eth0', ns2.name)).toBe(false);
      const leases = env.leases(netName);
      expect(leases.filter((l) => l.containerId === id2)).toEqual([]);
      expect(leases.find((l) => l.containerId === id1)?.ip).toBe(wanted);
    });

    it('a group request gets a free reserved IP of the group', async () => {
      const r = await runCni('add', conf, id3, ns3.path, 'eth0', opts({ capArgs: annotations({ 'reservoir.io/group': 'db' }) }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      groupIp = addrOf(v4Of(r.result!).address);
      expect(isReserved(groupIp)).toBe(true);
      expect(groupIp).not.toBe(wanted);
      expect(globalCidrs(ns3.name, 'eth0', 'inet')).toEqual([`${groupIp}/24`]);
      assertPing(ns3.name, wanted);
    });

    it('two namespaces racing for the same reserved IP: exactly one wins, the other gets 101', async () => {
      const race = `${net.v4Prefix}.8`;
      const contenders = [
        { id: `rsv-${run}-rs5`, n: ns() },
        { id: `rsv-${run}-rs6`, n: ns() },
      ];
      const results = await Promise.all(
        contenders.map((c) => runCni('add', conf, c.id, c.n.path, 'eth0', opts({ capArgs: annotations({ 'reservoir.io/ip': race }) }))),
      );
      const winners = results.filter((r) => r.ok);
      expect(winners, results.map((r) => failMsg(r)).join('\n')).toHaveLength(1);
      const winner = contenders[results.indexOf(winners[0]!)]!;
      const loser = results.find((r) => !r.ok)!;
      expect(loser.error?.code, failMsg(loser)).toBe(101);
      expect(loser.error?.msg).toContain(winner.id);
      trackHostVeth(winners[0]!.result!, br);
      expect(env.leases(netName).filter((l) => l.ip === race).map((l) => l.containerId)).toEqual([winner.id]);
      for (const c of contenders) {
        const d = await runCni('del', conf, c.id, c.n.path, 'eth0', opts());
        expect(d.error, failMsg(d)).toBeUndefined();
      }
      expect(env.leases(netName).filter((l) => l.ip === race)).toEqual([]);
    });

    it('reserved rm of the config entry is refused (118: edit the config); of an operator entry in use, refused naming the holder (105) until DEL', async () => {
      const fromConfig = env.ctl(['reserved', 'rm', netName, entry]);
      expect(fromConfig.status, fromConfig.stderr).toBe(1);
      expect(fromConfig.stderr).toContain('edit the "reserved" list');
      expect(fromConfig.stderr).toMatch(/code 118/);
      const extra = `${net.v4Prefix}.20`;
      const added = env.ctl(['reserved', 'add', netName, extra]);
      expect(added.status, added.stderr).toBe(0);
      const id7 = `rsv-${run}-rs7`;
      const ns7 = ns();
      const r = await runCni('add', conf, id7, ns7.path, 'eth0', opts({ capArgs: annotations({ 'reservoir.io/ip': extra }) }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      const refused = env.ctl(['reserved', 'rm', netName, extra]);
      expect(refused.status, refused.stderr).toBe(1);
      expect(refused.stderr).toContain(id7);
      expect(refused.stderr).toMatch(/code 105/);
      for (const [id, n] of [
        [id1, ns1],
        [id3, ns3],
        [id7, ns7],
      ] as const) {
        const d = await runCni('del', conf, id, n.path, 'eth0', opts());
        expect(d.error, failMsg(d)).toBeUndefined();
      }
      const ok = env.ctl(['reserved', 'rm', netName, extra]);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(extra);
      const d4 = await runCni('del', conf, id4, ns4.path, 'eth0', opts());
      expect(d4.error, failMsg(d4)).toBeUndefined();
      expect(env.leases(netName)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('stateful app keeps its IP across DEL/ADD', () => {
    let net: DualStackSubnet;
    let br: string;
    let conf: string;
    let nsA: Netns;
    let nsB: Netns;
    const netName = `rsv-sf-${run}`;
    const idA = `rsv-${run}-sfa`;
    const idB = `rsv-${run}-sfb`;
    const idC = `rsv-${run}-sfc`;
    const app = 'default/web-0';
    const extraArgs = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;RESERVOIR_KIND=stateful';
    let first = '';

    beforeAll(() => {
      net = pickDualStackSubnet();
      br = bridge();
      [nsA, nsB] = [ns(), ns()];
      conf = writeConflist(
        conflist(netName, env.socket, { ranges: [[{ subnet: net.v4 }]] }, { cniVersion: '1.0.0', plugin: { type: 'bridge', bridge: br, isGateway: true, ipMasq: false } }),
        cleanup,
      );
    });

    it('ADD; release is refused while attached', async () => {
      const r = await runCni('add', conf, idA, nsA.path, 'eth0', opts({ extraArgs }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      first = v4Of(r.result!).address;
      expect(globalCidrs(nsA.name, 'eth0', 'inet')).toEqual([first]);
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), app, kind: 'stateful', state: 'attached', containerId: idA }]);
      const refused = env.ctl(['release', netName, app]);
      expect(refused.status, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/code 111/);
    });

    it('DEL keeps the IP held; ADD with a new container id in a new namespace gets it back', async () => {
      const d = await runCni('del', conf, idA, nsA.path, 'eth0', opts({ extraArgs }));
      expect(d.error, failMsg(d)).toBeUndefined();
      expect(linkExists('eth0', nsA.name)).toBe(false);
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), app, kind: 'stateful', state: 'held', containerId: null }]);

      const r = await runCni('add', conf, idB, nsB.path, 'eth0', opts({ extraArgs }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      expect(v4Of(r.result!).address).toBe(first);
      expect(globalCidrs(nsB.name, 'eth0', 'inet')).toEqual([first]);
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), app, state: 'attached', containerId: idB }]);
      assertPing(nsB.name, `${net.v4Prefix}.1`);
      expect(env.ctl(['release', netName, app]).status).toBe(1);
    });

    it('a second live container of the app is refused (101) until the first one\'s namespace is gone', async () => {
      const nsC = ns();
      const refused = await runCni('add', conf, idC, nsC.path, 'eth0', opts({ extraArgs }));
      expect(refused.ok).toBe(false);
      expect(refused.error?.code, failMsg(refused)).toBe(101);
      expect(refused.error?.msg).toContain(idB.slice(0, 12));
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), state: 'attached', containerId: idB }]);
      const cleanupFailed = await runCni('del', conf, idC, nsC.path, 'eth0', opts({ extraArgs }));
      expect(cleanupFailed.error, failMsg(cleanupFailed)).toBeUndefined();

      // The first container dies without DEL: its namespace vanishes, the app may take its IP over.
      ip(['netns', 'del', nsB.name]);
      const r = await runCni('add', conf, idC, nsC.path, 'eth0', opts({ extraArgs }));
      expect(r.error, failMsg(r)).toBeUndefined();
      trackHostVeth(r.result!, br);
      expect(v4Of(r.result!).address).toBe(first);
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), state: 'attached', containerId: idC }]);
      nsB = nsC;
    });

    it('after DEL, release frees the IP', async () => {
      const d = await runCni('del', conf, idC, nsB.path, 'eth0', opts({ extraArgs }));
      expect(d.error, failMsg(d)).toBeUndefined();
      expect(env.leases(netName)).toMatchObject([{ ip: addrOf(first), state: 'held' }]);
      const ok = env.ctl(['release', netName, app]);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(addrOf(first));
      expect(env.leases(netName)).toEqual([]);
      // releasing again: nothing is held any more
      expect(env.ctl(['release', netName, app]).status).toBe(1);
    });
  });
}, { timeout: TIMEOUT });

