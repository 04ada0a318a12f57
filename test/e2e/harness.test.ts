// Self-test of the e2e harness (cnirun + netns helpers) using Debian's own
// bridge/macvlan + host-local plugins. Does not involve reservoir itself.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import {
  addAddress,
  assertPing,
  createBridge,
  createNetns,
  createVethPair,
  getIPv4Cidrs,
  linkExists,
  deleteLinkAtCleanup,
  listNetns,
  netnsExists,
  pickFreeSubnet24,
  randomSuffix,
  runCni,
  uniqueName,
  writeConflist,
  type Netns,
} from '../support/netns.js';

const TIMEOUT = 60_000;

/** Host-local stores one file per allocated IP under DATADIR/NETNAME/. */
function hostLocalIPs(dataDir: string, netName: string): string[] {
  const dir = join(dataDir, netName);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
}

describeWithPrereqs('harness self-test: bridge + host-local', ['root', 'netns', 'harness', 'bridge', 'host-local', 'ping'], () => {
  const cleanup = new Cleanup();
  const run = randomSuffix(4);
  const bridge = uniqueName('rsvbr');
  const netName = `rsvtest-${run}`;
  const { subnet, prefix } = pickFreeSubnet24();
  const gateway = `${prefix}.1`;
  let nsA: Netns;
  let nsB: Netns;
  let conf: string;
  let cacheDir: string;
  let dataDir: string;
  const createdLinks: string[] = [];
  const createdNs: string[] = [];
  const idA = `rsv-${run}-a`;
  const idB = `rsv-${run}-b`;
  const addrs: Record<string, string> = {};

  beforeAll(() => {
    createBridge(bridge, cleanup);
    createdLinks.push(bridge);
    nsA = createNetns(cleanup);
    nsB = createNetns(cleanup);
    createdNs.push(nsA.name, nsB.name);
    cacheDir = cleanup.tempDir('cache');
    dataDir = cleanup.tempDir('data');
    conf = writeConflist(
      {
        cniVersion: '1.0.0',
        name: netName,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: false, // never touch host NAT rules
            ipam: { type: 'host-local', dataDir, ranges: [[{ subnet, gateway }]] },
          },
        ],
      },
      cleanup,
    );
  });

  afterAll(async () => {
    await cleanup.run();
    for (const n of createdNs) expect(netnsExists(n), `netns ${n} left behind`).toBe(false);
    for (const l of createdLinks) expect(linkExists(l), `link ${l} left behind`).toBe(false);
  });

  it('ADD gives each namespace an address on the bridge', async () => {
    for (const [id, ns] of [
      [idA, nsA],
      [idB, nsB],
    ] as const) {
      const r = await runCni('add', conf, id, ns.path, 'eth0', { cacheDir });
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
      const res = r.result!;
      expect(res.cniVersion).toBe('1.0.0');
      expect(res.ips).toHaveLength(1);
      const ip = res.ips![0]!;
      expect(ip.address.startsWith(`${prefix}.`)).toBe(true);
      expect(ip.gateway).toBe(gateway);
      // the bridge plugin creates a host-side veth; register it just in case DEL fails
      const hostVeth = res.interfaces!.find((i) => !i.sandbox && i.name !== bridge);
      expect(hostVeth).toBeDefined();
      deleteLinkAtCleanup(cleanup, hostVeth!.name);
      createdLinks.push(hostVeth!.name);
      expect(getIPv4Cidrs(ns.name, 'eth0')).toEqual([ip.address]);
      addrs[id] = ip.address.split('/')[0]!;
    }
    expect(addrs[idA]).not.toBe(addrs[idB]);
    expect(getIPv4Cidrs(null, bridge)).toEqual([`${gateway}/24`]);
    expect(hostLocalIPs(dataDir, netName).sort()).toEqual([addrs[idA], addrs[idB]].sort());
  });

  it('namespaces ping each other and the gateway', () => {
    assertPing(nsA.name, addrs[idB]!);
    assertPing(nsB.name, addrs[idA]!);
    assertPing(nsA.name, gateway);
    assertPing(nsB.name, gateway);
  });

  it('CHECK passes', async () => {
    for (const [id, ns] of [
      [idA, nsA],
      [idB, nsB],
    ] as const) {
      const r = await runCni('check', conf, id, ns.path, 'eth0', { cacheDir });
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
    }
  });

  it('a plugin error is reported with its CNI code', async () => {
    // same container/ifname again: bridge refuses because eth0 already exists
    const r = await runCni('add', conf, idA, nsA.path, 'eth0', { cacheDir });
    expect(r.ok).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(typeof r.error?.code).toBe('number');
    expect(r.error?.msg).toMatch(/already exists/);
  });

  it('DEL removes the address, a second DEL succeeds', async () => {
    for (const [id, ns] of [
      [idA, nsA],
      [idB, nsB],
    ] as const) {
      const r = await runCni('del', conf, id, ns.path, 'eth0', { cacheDir });
      expect(r.error).toBeUndefined();
      expect(linkExists('eth0', ns.name)).toBe(false);
      const again = await runCni('del', conf, id, ns.path, 'eth0', { cacheDir });
      expect(again.error).toBeUndefined();
      expect(again.ok).toBe(true);
    }
    expect(hostLocalIPs(dataDir, netName)).toEqual([]);
    for (const l of createdLinks.filter((l) => l !== bridge)) expect(linkExists(l)).toBe(false);
  });
}, { timeout: TIMEOUT });

describeWithPrereqs('harness self-test: macvlan on a veth parent + host-local', ['root', 'netns', 'harness', 'macvlan', 'host-local', 'ping'], () => {
  const cleanup = new Cleanup();
  const run = randomSuffix(4);
  // host end (macvlan master) and peer end (moved into a "LAN" namespace)
  const parent = `rsvv${run}h`;
  const peer = `rsvv${run}p`;
  const netName = `rsvmv-${run}`;
  const { subnet, prefix } = pickFreeSubnet24();
  const lanAddr = `${prefix}.1`;
  const staticA = `${prefix}.60`;
  const staticB = `${prefix}.61`;
  let lan: Netns;
  let nsA: Netns;
  let nsB: Netns;
  let conf: string;
  let cacheDir: string;
  let dataDir: string;
  const idA = `rsv-${run}-ma`;
  const idB = `rsv-${run}-mb`;
  const createdNs: string[] = [];

  beforeAll(() => {
    lan = createNetns(cleanup);
    nsA = createNetns(cleanup);
    nsB = createNetns(cleanup);
    createdNs.push(lan.name, nsA.name, nsB.name);
    createVethPair(parent, peer, cleanup, lan.name);
    addAddress(lan.name, peer, `${lanAddr}/24`);
    cacheDir = cleanup.tempDir('cache');
    dataDir = cleanup.tempDir('data');
    conf = writeConflist(
      {
        cniVersion: '1.0.0',
        name: netName,
        plugins: [
          {
            type: 'macvlan',
            master: parent,
            mode: 'bridge',
            capabilities: { ips: true },
            ipam: { type: 'host-local', dataDir, ranges: [[{ subnet, rangeStart: `${prefix}.10` }]] },
          },
        ],
      },
      cleanup,
    );
  });

  afterAll(async () => {
    await cleanup.run();
    for (const n of createdNs) expect(netnsExists(n), `netns ${n} left behind`).toBe(false);
    expect(linkExists(parent)).toBe(false);
    expect(listNetns().filter((n) => createdNs.includes(n))).toEqual([]);
  });

  it('ADD with CAP_ARGS ips and with CNI_ARGS IP picks the requested addresses', async () => {
    const a = await runCni('add', conf, idA, nsA.path, 'eth0', { cacheDir, capArgs: { ips: [`${staticA}/24`] } });
    expect(a.error).toBeUndefined();
    expect(a.result!.ips![0]!.address).toBe(`${staticA}/24`);
    expect(getIPv4Cidrs(nsA.name, 'eth0')).toEqual([`${staticA}/24`]);

    const b = await runCni('add', conf, idB, nsB.path, 'eth0', {
      cacheDir,
      extraArgs: { IgnoreUnknown: '1', IP: staticB },
    });
    expect(b.error).toBeUndefined();
    expect(b.result!.ips![0]!.address).toBe(`${staticB}/24`);
    expect(getIPv4Cidrs(nsB.name, 'eth0')).toEqual([`${staticB}/24`]);
  });

  it('macvlan endpoints ping each other and the peer namespace', () => {
    assertPing(nsA.name, staticB);
    assertPing(nsB.name, staticA);
    assertPing(nsA.name, lanAddr);
    assertPing(lan.name, staticB);
  });

  it('CHECK passes; requesting an allocated IP fails with a structured error', async () => {
    for (const [id, ns] of [
      [idA, nsA],
      [idB, nsB],
    ] as const) {
      const r = await runCni('check', conf, id, ns.path, 'eth0', { cacheDir });
      expect(r.error).toBeUndefined();
    }
    const extra = createNetns(cleanup);
    createdNs.push(extra.name);
    const dup = await runCni('add', conf, `rsv-${run}-mc`, extra.path, 'eth0', {
      cacheDir,
      capArgs: { ips: [`${staticA}/24`] },
    });
    expect(dup.ok).toBe(false);
    // host-local's plain Go errors reach libcni as CNI code 999 (ErrInternal)
    expect(dup.error?.code).toBe(999);
    expect(dup.error?.msg).toMatch(/is not available|already allocated/);
    // Debian's macvlan 1.1.1 leaves eth0 behind when IPAM fails, and libcni
    // does not DEL after a failed ADD; a real runtime does, so emulate it.
    const del = await runCni('del', conf, `rsv-${run}-mc`, extra.path, 'eth0', { cacheDir });
    expect(del.error).toBeUndefined();
    expect(linkExists('eth0', extra.name)).toBe(false);
  });

  it('DEL removes the interfaces and releases the IPs; second DEL succeeds', async () => {
    for (const [id, ns] of [
      [idA, nsA],
      [idB, nsB],
    ] as const) {
      expect((await runCni('del', conf, id, ns.path, 'eth0', { cacheDir })).error).toBeUndefined();
      expect(linkExists('eth0', ns.name)).toBe(false);
      expect((await runCni('del', conf, id, ns.path, 'eth0', { cacheDir })).ok).toBe(true);
    }
    expect(hostLocalIPs(dataDir, netName)).toEqual([]);
  });
}, { timeout: TIMEOUT });
