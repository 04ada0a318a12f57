// Reserved IPs: defined per network (operator routes, the ipam config, the CNI config directory),
// never handed out dynamically, given only to apps that ask, guarded while in use, and free again
// as soon as their holder goes away.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { Clock, usageOf } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';
import { removeDir, tempDir } from '../support/tmp.js';
import {
  type TestDaemon,
  addErr,
  addOk,
  delOk,
  ipv4Range,
  op,
  opErr,
  plugin,
  reservedStates,
  startTestDaemon,
  waitFor,
} from './support.js';

let td: TestDaemon;
afterEach(async () => {
  await td?.close();
});

/** 10.10.0.10-10.10.0.40, gateway 10.10.0.30 inside the range (so an entry can cover it). */
function blue(extra: Record<string, unknown> = {}) {
  return netconf('blue', td.socket, {
    ranges: [[{ subnet: '10.10.0.0/24', rangeStart: '10.10.0.10', rangeEnd: '10.10.0.40', gateway: '10.10.0.30' }]],
    ...extra,
  });
}

const add = (network: string, entry: string, group?: string, note?: string) =>
  op(td.socket, 'reservedAdd', { params: { network }, body: { entry, ...(group ? { group } : {}), ...(note ? { note } : {}) } });
const addFails = (network: string, entry: string) => opErr(td.socket, 'reservedAdd', { params: { network }, body: { entry } });
const list = (network: string) => op(td.socket, 'reservedList', { params: { network } });

describe('rule 1: reserved entries per network', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });

  it('accepts a single IP, a range a-b and a CIDR, each with an optional group and note', async () => {
    await addOk(blue(), { containerId: 'first' }); // registers the network
    await add('blue', '10.10.0.20', 'web', 'the VIP');
    await add('blue', '10.10.0.21-10.10.0.23', 'db');
    await add('blue', '10.10.0.32/29'); // .32-.39
    const { entries } = await list('blue');
    expect(entries).toEqual([
      { entry: '10.10.0.20', group: 'web', note: 'the VIP', source: 'operator', namespaces: null, size: '1', used: 0 },
      { entry: '10.10.0.21-10.10.0.23', group: 'db', note: null, source: 'operator', namespaces: null, size: '3', used: 0 },
      { entry: '10.10.0.32/29', group: null, note: null, source: 'operator', namespaces: null, size: '8', used: 0 },
    ]);
    const free = await reservedStates(td.socket, 'blue', 'free');
    expect([...free.keys()]).toEqual(['10.10.0.20', '10.10.0.21', '10.10.0.22', '10.10.0.23', ...ipv4Range('10.10.0', 32, 39)]);
  });

  it('refuses entries outside the ranges, overlapping another entry or covering the gateway (106)', async () => {
    await addOk(blue(), { containerId: 'first' });
    await add('blue', '10.10.0.20-10.10.0.25', 'db');
    const outsideSubnet = await addFails('blue', '10.10.1.5');
    const outsideRange = await addFails('blue', '10.10.0.38-10.10.0.45');
    const beforeRange = await addFails('blue', '10.10.0.5');
    const overlap = await addFails('blue', '10.10.0.25-10.10.0.27');
    const inside = await addFails('blue', '10.10.0.22');
    const gateway = await addFails('blue', '10.10.0.28/30'); // .28-.31 covers the gateway .30
    const gatewayIp = await addFails('blue', '10.10.0.30');
    for (const err of [outsideSubnet, outsideRange, beforeRange, overlap, inside, gateway, gatewayIp]) expect(err.code).toBe(106);
    expect(outsideRange.message).toMatch(/does not lie inside/);
    expect(overlap.message).toContain('10.10.0.20-10.10.0.25');
    expect(gateway.message).toContain('gateway 10.10.0.30');
    expect((await list('blue')).entries.map((e: { entry: string }) => e.entry)).toEqual(['10.10.0.20-10.10.0.25']);
    // A modification is held to the same rules.
    const moved = await opErr(td.socket, 'reservedSet', { params: { network: 'blue' }, body: { entry: '10.10.0.20-10.10.0.25', to: '10.10.0.29-10.10.0.31' } });
    expect(moved.code).toBe(106);
  });

  it('imports the ipam config reserved list when the network is first registered', async () => {
    const conf = blue({
      reserved: ['10.10.0.10', { entry: '10.10.0.11-10.10.0.12', group: 'db', note: 'primary and replica' }, { entry: '10.10.0.36/30', group: 'edge' }],
    });
    expect((await opErr(td.socket, 'reservedList', { params: { network: 'blue' } })).code).toBe(107);
    const [ip] = await addOk(conf, { containerId: 'first' });
    expect(ip).toBe('10.10.0.13'); // .10-.12 are reserved
    const { entries } = await list('blue');
    expect(entries).toEqual([
      { entry: '10.10.0.10', group: null, note: null, source: 'config', namespaces: null, size: '1', used: 0 },
      { entry: '10.10.0.11-10.10.0.12', group: 'db', note: 'primary and replica', source: 'config', namespaces: null, size: '2', used: 0 },
      { entry: '10.10.0.36/30', group: 'edge', note: null, source: 'config', namespaces: null, size: '4', used: 0 },
    ]);
  });

  it('refuses a config reserved list whose entry covers the gateway or overlaps another (invalid config)', async () => {
    const gw = await addErr(blue({ reserved: ['10.10.0.29-10.10.0.31'] }), { containerId: 'a' });
    expect(gw.code).toBe(7);
    expect(gw.msg).toContain('gateway');
    const overlap = await addErr(blue({ reserved: ['10.10.0.20-10.10.0.22', '10.10.0.22'] }), { containerId: 'a' });
    expect(overlap.code).toBe(7);
    expect(overlap.msg).toContain('overlaps');
  });

  it('registers networks from the CNI config directory before any pod, and watches it for new files', async () => {
    await td.close();
    const confDir = tempDir('netd');
    onTestFinished(() => removeDir(confDir));
    td = await startTestDaemon({ cniConfDir: confDir });
    const socket = td.socket;
    const ipam = (third: number, reserved: unknown[]) => ({
      type: 'reservoir',
      socket,
      timeout: '30s',
      ranges: [[{ subnet: `10.${third}.0.0/24`, rangeStart: `10.${third}.0.10`, rangeEnd: `10.${third}.0.20` }]],
      reserved,
    });
    // A conflist (bridge + reservoir) and, later, a single-plugin .conf.
    writeFileSync(
      join(confDir, '10-red.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'red', plugins: [{ type: 'bridge', ipam: ipam(41, [{ entry: '10.41.0.10', group: 'db' }]) }, { type: 'portmap' }] }),
    );
    writeFileSync(join(confDir, '05-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge', ipam: { type: 'host-local' } }] }));
    const red = await waitFor(async () => (await op(socket, 'usage')).networks.find((n: { network: string }) => n.network === 'red'), 5_000, 'network red');
    expect(red).toMatchObject({ size: '11', reservedTotal: '1', dynamicInUse: 0 });
    expect((await op(socket, 'usage')).networks.map((n: { network: string }) => n.network)).toEqual(['red']); // host-local one ignored
    // Reservations work before the first pod.
    await op(socket, 'reservedAdd', { params: { network: 'red' }, body: { entry: '10.41.0.11-10.41.0.12', group: 'db' } });
    expect((await list('red')).entries.map((e: { entry: string; source: string }) => `${e.entry}:${e.source}`)).toEqual([
      '10.41.0.10:config',
      '10.41.0.11-10.41.0.12:operator',
    ]);
    // The first pod's dynamic ADD already avoids them; a group request gets one.
    const redConf = { cniVersion: '1.0.0', name: 'red', type: 'bridge', ipam: ipam(41, [{ entry: '10.41.0.10', group: 'db' }]) };
    expect(await addOk(redConf, { containerId: 'pod-1' })).toEqual(['10.41.0.13']);
    expect(await addOk(redConf, { containerId: 'pod-2', args: { RESERVOIR_GROUP: 'db' } })).toEqual(['10.41.0.10']);

    writeFileSync(join(confDir, '20-green.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'green', type: 'macvlan', ipam: ipam(42, ['10.42.0.15']) }));
    const started = Date.now();
    await waitFor(async () => (await op(socket, 'usage')).networks.find((n: { network: string }) => n.network === 'green'), 5_000, 'network green');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await list('green')).entries.map((e: { entry: string }) => e.entry)).toEqual(['10.42.0.15']);
  });

  it('learns a CNI config directory created after the daemon started', async () => {
    await td.close();
    const parent = tempDir('netd-late');
    onTestFinished(() => removeDir(parent));
    const confDir = join(parent, 'net.d');
    td = await startTestDaemon({ cniConfDir: confDir });
    mkdirSync(confDir);
    writeFileSync(
      join(confDir, '10-late.conf'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'late', type: 'bridge', ipam: { type: 'reservoir', socket: td.socket, ranges: [[{ subnet: '10.43.0.0/24' }]] } }),
    );
    const late = await waitFor(async () => (await op(td.socket, 'usage')).networks.find((n: { network: string }) => n.network === 'late'), 8_000, 'network late');
    expect(late).toMatchObject({ network: 'late', size: '253' });
  });
});

describe('rule 2: reserved IPs are never allocated dynamically', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });

  // .10-.19: .12, .15-.16 (group g) and .18/31 reserved; .10, .11, .13, .14, .17 dynamic.
  const small = () =>
    netconf('small', td.socket, {
      ranges: [[{ subnet: '10.20.0.0/24', rangeStart: '10.20.0.10', rangeEnd: '10.20.0.19' }]],
      reserved: ['10.20.0.12', { entry: '10.20.0.15-10.20.0.16', group: 'g' }, '10.20.0.18/31'],
    });
  const RESERVED = ['10.20.0.12', '10.20.0.15', '10.20.0.16', '10.20.0.18', '10.20.0.19'];

  it('fills every non-reserved IP, then refuses the next dynamic ADD with 100 while the reserved stay free', async () => {
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(...(await addOk(small(), { containerId: `dyn-${i}` })));
    expect(got.sort()).toEqual(['10.20.0.10', '10.20.0.11', '10.20.0.13', '10.20.0.14', '10.20.0.17']);
    const err = await addErr(small(), { containerId: 'dyn-5' });
    expect(err.code).toBe(100);
    expect(err.msg).toContain('5 reserved IPs free but given only on request');
    const states = await reservedStates(td.socket, 'small');
    expect([...states.keys()]).toEqual(RESERVED);
    expect([...states.values()].every((s) => s.state === 'free')).toBe(true);
    // Freeing a dynamic IP makes room for exactly one more dynamic ADD, never a reserved one.
    await delOk(small(), { containerId: 'dyn-2' });
    const [again] = await addOk(small(), { containerId: 'dyn-6' });
    expect(RESERVED).not.toContain(again);
    expect((await addErr(small(), { containerId: 'dyn-7' })).code).toBe(100);
    // Asking still works, full pool or not.
    expect(await addOk(small(), { containerId: 'asks', args: { IP: '10.20.0.19' } })).toEqual(['10.20.0.19']);
    expect((await usageOf(td.socket, 'small'))).toMatchObject({ dynamicInUse: 5, reservedUsed: 1, reservedFree: '4' });
  });

  it('skips operator-added entries too, and many dynamic ADDs in a row never touch them', async () => {
    const conf = netconf('mid', td.socket, { ranges: [[{ subnet: '10.21.0.0/24', rangeStart: '10.21.0.10', rangeEnd: '10.21.0.60' }]] });
    await addOk(conf, { containerId: 'first' }); // .10
    await op(td.socket, 'reservedAdd', { params: { network: 'mid' }, body: { entry: '10.21.0.11-10.21.0.30' } });
    await op(td.socket, 'reservedAdd', { params: { network: 'mid' }, body: { entry: '10.21.0.40/29', group: 'x' } });
    const got: string[] = [];
    for (let i = 0; i < 22; i++) got.push(...(await addOk(conf, { containerId: `c${i}` })));
    // 51 addresses, 28 reserved, 1 first: 22 dynamic left.
    expect(got.every((ip) => { const last = Number(ip.split('.')[3]); return !(last >= 11 && last <= 30) && !(last >= 40 && last <= 47); })).toBe(true);
    expect(new Set(got).size).toBe(22);
    expect((await addErr(conf, { containerId: 'over' })).code).toBe(100);
  });
});

describe('rule 3: an app gets a reserved IP only by asking', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });
  const conf = () => blue({ reserved: [{ entry: '10.10.0.20-10.10.0.22', group: 'db' }, { entry: '10.10.0.23-10.10.0.24', group: 'cache' }, '10.10.0.25'] });

  it('by specific IP: CNI_ARGS IP=, runtimeConfig.ips, annotation reservoir.io/ip', async () => {
    expect(await addOk(conf(), { containerId: 'a', args: { IP: '10.10.0.25' } })).toEqual(['10.10.0.25']);
    expect(await addOk(conf(), { containerId: 'b', ips: ['10.10.0.21/24'] })).toEqual(['10.10.0.21']);
    expect(await addOk(conf(), { containerId: 'c', annotations: { 'reservoir.io/ip': '10.10.0.24' } })).toEqual(['10.10.0.24']);
    const states = await reservedStates(td.socket, 'blue', 'used');
    expect([...states.keys()]).toEqual(['10.10.0.21', '10.10.0.24', '10.10.0.25']);
    expect(states.get('10.10.0.25').attachment).toBe('a/eth0');
    expect(states.get('10.10.0.21').attachment).toBe('b/eth0');
    expect(states.get('10.10.0.24').attachment).toBe('c/eth0');
  });

  it('by group: annotation reservoir.io/group or CNI_ARGS RESERVOIR_GROUP', async () => {
    const [a] = await addOk(conf(), { containerId: 'a', annotations: { 'reservoir.io/group': 'cache' } });
    const [b] = await addOk(conf(), { containerId: 'b', args: { RESERVOIR_GROUP: 'cache' } });
    expect([a, b].sort()).toEqual(['10.10.0.23', '10.10.0.24']);
    const [c] = await addOk(conf(), { containerId: 'c', args: { RESERVOIR_GROUP: 'db' } });
    expect(['10.10.0.20', '10.10.0.21', '10.10.0.22']).toContain(c);
    // The annotation wins over CNI_ARGS.
    const [d] = await addOk(conf(), { containerId: 'd', annotations: { 'reservoir.io/group': 'db' }, args: { RESERVOIR_GROUP: 'cache' } });
    expect(['10.10.0.20', '10.10.0.21', '10.10.0.22']).toContain(d);
  });

  it('unknown group -> 104 naming the known groups', async () => {
    const err = await addErr(conf(), { containerId: 'a', args: { RESERVOIR_GROUP: 'nosuch' } });
    expect(err.code).toBe(104);
    expect(err.msg).toContain('"nosuch"');
    expect(err.msg).toContain('db');
    expect(err.msg).toContain('cache');
  });

  it('exhausted group -> 103 naming the holders', async () => {
    await addOk(conf(), { containerId: 'holder-one', args: { RESERVOIR_GROUP: 'cache', K8S_POD_NAMESPACE: 'prod', K8S_POD_NAME: 'redis-0' } });
    await addOk(conf(), { containerId: 'holder-two', annotations: { 'reservoir.io/group': 'cache' } });
    const err = await addErr(conf(), { containerId: 'late', args: { RESERVOIR_GROUP: 'cache' } });
    expect(err.code).toBe(103);
    expect(err.msg).toContain('holder-one');
    expect(err.msg).toContain('prod/redis-0');
    expect(err.msg).toContain('holder-two');
    expect(err.msg).toContain('10.10.0.23');
    expect(err.msg).toContain('10.10.0.24');
  });

  it('a free non-reserved IP inside the ranges can be asked for too; outside the ranges is 102', async () => {
    expect(await addOk(conf(), { containerId: 'a', args: { IP: '10.10.0.33' } })).toEqual(['10.10.0.33']);
    expect(await addOk(conf(), { containerId: 'b', ips: ['10.10.0.40'] })).toEqual(['10.10.0.40']);
    expect((await addErr(conf(), { containerId: 'c', args: { IP: '10.10.0.41' } })).code).toBe(102);
    expect((await addErr(conf(), { containerId: 'd', args: { IP: '10.10.0.30' } })).code).toBe(102); // the gateway
    // Dynamic ADDs now skip what was asked for.
    const dynamic: string[] = [];
    for (let i = 0; i < 5; i++) dynamic.push(...(await addOk(conf(), { containerId: `dyn${i}` })));
    expect(dynamic).toEqual(['10.10.0.10', '10.10.0.11', '10.10.0.12', '10.10.0.13', '10.10.0.14']);
  });
});

describe('rule 4: usage per reserved IP and per network', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });

  it('shows free / leased (attachment + app) / held (stateful), filters by state, and counts usage', async () => {
    const conf = netconf('use', td.socket, {
      ranges: [[{ subnet: '10.40.0.0/24', rangeStart: '10.40.0.10', rangeEnd: '10.40.0.29' }]],
      reserved: [{ entry: '10.40.0.20-10.40.0.24', group: 'g' }],
    });
    await addOk(conf, { containerId: 'dyn', args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'a' } });
    await addOk(conf, { containerId: 'asker', args: { IP: '10.40.0.20', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'b' } });
    await addOk(conf, { containerId: 'keeper', args: { RESERVOIR_GROUP: 'g', RESERVOIR_KIND: 'stateful', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'c' } });
    await delOk(conf, { containerId: 'keeper' });

    const all = await reservedStates(td.socket, 'use');
    expect([...all.keys()]).toEqual(ipv4Range('10.40.0', 20, 24));
    const node = td.daemon.ledger.node;
    expect(all.get('10.40.0.20')).toEqual({
      ip: '10.40.0.20',
      entry: '10.40.0.20-10.40.0.24',
      group: 'g',
      state: 'leased',
      attachment: 'asker/eth0',
      app: 'default/b',
      kind: 'stateless',
      since: Clock.START,
      node,
    });
    expect(all.get('10.40.0.21')).toEqual({
      ip: '10.40.0.21',
      entry: '10.40.0.20-10.40.0.24',
      group: 'g',
      state: 'held',
      attachment: null,
      app: 'default/c',
      kind: 'stateful',
      since: Clock.START,
      node,
    });
    for (const ip of ipv4Range('10.40.0', 22, 24)) expect(all.get(ip)).toMatchObject({ state: 'free', attachment: null, app: null, kind: null, since: null, node: null });

    expect([...(await reservedStates(td.socket, 'use', 'free')).keys()]).toEqual(ipv4Range('10.40.0', 22, 24));
    expect([...(await reservedStates(td.socket, 'use', 'used')).keys()]).toEqual(['10.40.0.20', '10.40.0.21']);
    expect((await list('use')).entries[0]).toMatchObject({ size: '5', used: 2 });

    expect(await usageOf(td.socket, 'use')).toEqual({
      network: 'use',
      size: '20',
      dynamicSize: '15',
      dynamicInUse: 1,
      dynamicHeld: 0,
      reservedTotal: '5',
      reservedUsed: 2,
      reservedHeld: 1,
      reservedFree: '3',
      held: 1,
      attached: 2,
      misfits: 0,
      configFile: null,
      staleRequests: null,
          scope: 'node',
          disagreement: null,
      overlaps: [],
    });
    expect((await list('use')).usage).toEqual(await usageOf(td.socket, 'use'));
    const bad = await opErr(td.socket, 'reservedList', { params: { network: 'use' }, query: { state: 'taken' } });
    expect(bad.code).toBe(114);
  });

  it('size leaves out a gateway inside the range', async () => {
    await addOk(blue(), { containerId: 'a' });
    expect(await usageOf(td.socket, 'blue')).toMatchObject({ size: '30', dynamicInUse: 1, reservedTotal: '0', held: 0, attached: 1 });
  });
});

describe('rule 5: entries in use cannot be dropped or regrouped', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });
  const conf = () => netconf('mod', td.socket, { ranges: [[{ subnet: '10.50.0.0/24', rangeStart: '10.50.0.10', rangeEnd: '10.50.0.60' }]] });
  const ENTRY = '10.50.0.20-10.50.0.29';
  const set = (body: Record<string, unknown>) => op(td.socket, 'reservedSet', { params: { network: 'mod' }, body });
  const setErr = (body: Record<string, unknown>) => opErr(td.socket, 'reservedSet', { params: { network: 'mod' }, body });
  const remove = (entry: string) => op(td.socket, 'reservedRemove', { params: { network: 'mod' }, query: { entry } });
  const removeErr = (entry: string) => opErr(td.socket, 'reservedRemove', { params: { network: 'mod' }, query: { entry } });

  /** Three holders inside ENTRY: two attached stateless, one held stateful. */
  async function threeHolders() {
    await addOk(conf(), { containerId: 'boot' });
    await op(td.socket, 'reservedAdd', { params: { network: 'mod' }, body: { entry: ENTRY, group: 'db', note: 'databases' } });
    await addOk(conf(), { containerId: 'alpha', args: { IP: '10.50.0.21' } });
    await addOk(conf(), { containerId: 'bravo', args: { IP: '10.50.0.25', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'bravo' } });
    await addOk(conf(), { containerId: 'charlie', args: { IP: '10.50.0.28', RESERVOIR_KIND: 'stateful', RESERVOIR_APP: 'charlie-app' } });
    await delOk(conf(), { containerId: 'charlie' });
  }
  function namesAll(message: string) {
    expect(message).toContain('10.50.0.21 (container alpha');
    expect(message).toContain('10.50.0.25 (container bravo');
    expect(message).toContain('ns/bravo');
    expect(message).toContain('10.50.0.28 (stateful app charlie-app');
  }
  async function unchanged() {
    expect((await list('mod')).entries).toEqual([{ entry: ENTRY, group: 'db', note: 'databases', source: 'operator', namespaces: null, size: '10', used: 3 }]);
  }

  it('DELETE of an entry in use -> 105 naming every holder', async () => {
    await threeHolders();
    const err = await removeErr(ENTRY);
    expect(err.code).toBe(105);
    namesAll(err.message);
    await unchanged();
  });

  it('PUT to a range that drops in-use IPs -> 105 naming every dropped holder', async () => {
    await threeHolders();
    const err = await setErr({ entry: ENTRY, to: '10.50.0.22-10.50.0.24' });
    expect(err.code).toBe(105);
    namesAll(err.message);
    // Dropping only the top end names only the holder there.
    const top = await setErr({ entry: ENTRY, to: '10.50.0.20-10.50.0.26' });
    expect(top.code).toBe(105);
    expect(top.message).toContain('charlie-app');
    expect(top.message).not.toContain('alpha');
    // Moving the whole entry elsewhere drops all of them too.
    const moved = await setErr({ entry: ENTRY, to: '10.50.0.40-10.50.0.49' });
    expect(moved.code).toBe(105);
    namesAll(moved.message);
    await unchanged();
  });

  it('PUT of a new group while IPs are in use -> 105 naming every holder', async () => {
    await threeHolders();
    const err = await setErr({ entry: ENTRY, group: 'other' });
    expect(err.code).toBe(105);
    expect(err.message).toContain('regroup');
    namesAll(err.message);
    const ungroup = await setErr({ entry: ENTRY, group: null });
    expect(ungroup.code).toBe(105);
    await unchanged();
    // A note is not a group: it may change.
    await set({ entry: ENTRY, note: 'still databases' });
  });

  it('changes of entries whose affected IPs are free succeed, shrinking around the used one included', async () => {
    await addOk(conf(), { containerId: 'boot' });
    await op(td.socket, 'reservedAdd', { params: { network: 'mod' }, body: { entry: ENTRY, group: 'db' } });
    await op(td.socket, 'reservedAdd', { params: { network: 'mod' }, body: { entry: '10.50.0.40-10.50.0.44', group: 'free' } });
    await addOk(conf(), { containerId: 'user', args: { IP: '10.50.0.25' } });
    // Shrink from both sides, keeping .25 inside: allowed.
    expect(await set({ entry: ENTRY, to: '10.50.0.24-10.50.0.26' })).toMatchObject({ entry: '10.50.0.24-10.50.0.26', group: 'db', size: '3', used: 1 });
    // Grow again, even to a CIDR.
    expect(await set({ entry: '10.50.0.24-10.50.0.26', to: '10.50.0.16/28' })).toMatchObject({ entry: '10.50.0.16/28', size: '16', used: 1 });
    // An all-free entry: regroup, move, delete.
    expect(await set({ entry: '10.50.0.40-10.50.0.44', group: 'renamed', note: 'n' })).toMatchObject({ group: 'renamed', note: 'n' });
    expect(await set({ entry: '10.50.0.40-10.50.0.44', to: '10.50.0.50' })).toMatchObject({ entry: '10.50.0.50', size: '1' });
    expect(await remove('10.50.0.50')).toMatchObject({ entry: '10.50.0.50' });
    expect((await list('mod')).entries.map((e: { entry: string }) => e.entry)).toEqual(['10.50.0.16/28']);
    // The dropped IPs are dynamic again: the entry is gone, so a dynamic ADD may land on .50.
    expect((await opErr(td.socket, 'reservedRemove', { params: { network: 'mod' }, query: { entry: '10.50.0.50' } })).code).toBe(108);
  });

  it('a changed config reserved list keeps the in-use part reserved and reports the conflict', async () => {
    const v1 = netconf('cfg', td.socket, {
      ranges: [[{ subnet: '10.51.0.0/24', rangeStart: '10.51.0.10', rangeEnd: '10.51.0.60' }]],
      reserved: [{ entry: '10.51.0.20-10.51.0.29', group: 'db' }, { entry: '10.51.0.40-10.51.0.44', group: 'gone' }, '10.51.0.50'],
    });
    await addOk(v1, { containerId: 'one', args: { IP: '10.51.0.22' } });
    await addOk(v1, { containerId: 'two', args: { IP: '10.51.0.27', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'two' } });
    await addOk(v1, { containerId: 'three', args: { IP: '10.51.0.50' } });
    // v2 drops the db entry and .50 (both in use) and the free "gone" entry.
    const v2 = netconf('cfg', td.socket, { ...(v1.ipam as object), reserved: ['10.51.0.55'] });
    await addOk(v2, { containerId: 'four' });
    const after = await list('cfg');
    expect(after.entries.map((e: { entry: string }) => e.entry)).toEqual(['10.51.0.20-10.51.0.29', '10.51.0.50', '10.51.0.55']);
    expect(after.conflicts.length).toBe(2);
    const text = after.conflicts.join('\n');
    expect(text).toContain('10.51.0.22 (container one');
    expect(text).toContain('10.51.0.27 (container two');
    expect(text).toContain('10.51.0.50 (container three');
    // The in-use IPs are still shown as reserved and leased.
    const used = await reservedStates(td.socket, 'cfg', 'used');
    expect([...used.keys()]).toEqual(['10.51.0.22', '10.51.0.27', '10.51.0.50']);
    // Still reported after a restart (conflicts are rebuilt at the first CNI call).
    await td.restart();
    await addOk(v2, { containerId: 'five' });
    expect((await list('cfg')).conflicts).toEqual(after.conflicts);
    // Once its holders are gone, an entry the config dropped goes too (at the next CNI call).
    await delOk(v2, { containerId: 'three' });
    await addOk(v2, { containerId: 'six' });
    const partly = await list('cfg');
    expect(partly.entries.map((e: { entry: string }) => e.entry)).toEqual(['10.51.0.20-10.51.0.29', '10.51.0.55']);
    expect(partly.conflicts).toHaveLength(1);
    expect(partly.conflicts[0]).not.toContain('container three');
    await delOk(v2, { containerId: 'one' });
    await delOk(v2, { containerId: 'two' });
    await addOk(v2, { containerId: 'seven' });
    const clean = await list('cfg');
    expect(clean.entries.map((e: { entry: string }) => e.entry)).toEqual(['10.51.0.55']);
    expect(clean.conflicts).toEqual([]);
  });

  it('a changed config reserved list may shrink an entry away from free IPs while keeping the used one', async () => {
    const v1 = netconf('cfg', td.socket, {
      ranges: [[{ subnet: '10.51.0.0/24', rangeStart: '10.51.0.10', rangeEnd: '10.51.0.60' }]],
      reserved: [{ entry: '10.51.0.20-10.51.0.29', group: 'db' }],
    });
    await addOk(v1, { containerId: 'one', args: { RESERVOIR_GROUP: 'db' } }); // .20
    await addOk(v1, { containerId: 'two', args: { IP: '10.51.0.25' } });
    const v2 = netconf('cfg', td.socket, { ...(v1.ipam as object), reserved: [{ entry: '10.51.0.20-10.51.0.25', group: 'db' }] });
    await addOk(v2, { containerId: 'three' });
    const after = await list('cfg');
    expect(after.conflicts).toEqual([]);
    expect(after.entries).toEqual([{ entry: '10.51.0.20-10.51.0.25', group: 'db', note: null, source: 'config', namespaces: null, size: '6', used: 2 }]);
    // v3 regroups it while in use: refused, reported, the old entry stays.
    const v3 = netconf('cfg', td.socket, { ...(v1.ipam as object), reserved: [{ entry: '10.51.0.20-10.51.0.25', group: 'web' }] });
    await addOk(v3, { containerId: 'four' });
    const regrouped = await list('cfg');
    expect(regrouped.entries).toEqual([{ entry: '10.51.0.20-10.51.0.25', group: 'db', note: null, source: 'config', namespaces: null, size: '6', used: 2 }]);
    expect(regrouped.conflicts.join('\n')).toContain('container one');
    expect(regrouped.conflicts.join('\n')).toContain('container two');
  });
});

describe('rule 6: a reserved IP is free again as soon as its holder goes away', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });
  const conf = () =>
    netconf('rel', td.socket, {
      ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.10', rangeEnd: '10.60.0.30' }]],
      reserved: [{ entry: '10.60.0.20-10.60.0.22', group: 'g' }],
    });
  const stateOf = async (ip: string) => (await reservedStates(td.socket, 'rel')).get(ip).state;

  it('stateless DEL frees it', async () => {
    await addOk(conf(), { containerId: 'a', args: { IP: '10.60.0.20' } });
    expect(await stateOf('10.60.0.20')).toBe('leased');
    await delOk(conf(), { containerId: 'a' });
    expect(await stateOf('10.60.0.20')).toBe('free');
    expect((await usageOf(td.socket, 'rel')).reservedUsed).toBe(0);
    expect(await addOk(conf(), { containerId: 'b', args: { IP: '10.60.0.20' } })).toEqual(['10.60.0.20']);
  });

  it('stateful release via POST release frees it', async () => {
    await addOk(conf(), { containerId: 'a', args: { RESERVOIR_GROUP: 'g', RESERVOIR_KIND: 'stateful', RESERVOIR_APP: 'keeper' } });
    await delOk(conf(), { containerId: 'a' });
    expect(await stateOf('10.60.0.20')).toBe('held');
    expect((await addErr(conf(), { containerId: 'b', args: { IP: '10.60.0.20' } })).code).toBe(101);
    expect(await op(td.socket, 'release', { body: { network: 'rel', app: 'keeper' } })).toEqual({ released: ['10.60.0.20'] });
    expect(await stateOf('10.60.0.20')).toBe('free');
    expect((await usageOf(td.socket, 'rel')).held).toBe(0);
    expect(await addOk(conf(), { containerId: 'b', args: { IP: '10.60.0.20' } })).toEqual(['10.60.0.20']);
  });

  it('GC frees a stateless lease the runtime no longer knows', async () => {
    await addOk(conf(), { containerId: 'kept', args: { IP: '10.60.0.21' } });
    await addOk(conf(), { containerId: 'leaked', args: { IP: '10.60.0.22' } });
    const gc = await plugin('GC', { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'kept', ifname: 'eth0' }] });
    expect(gc.exit).toBe(0);
    expect(await stateOf('10.60.0.21')).toBe('leased');
    expect(await stateOf('10.60.0.22')).toBe('free');
    expect(await addOk(conf(), { containerId: 'next', args: { IP: '10.60.0.22' } })).toEqual(['10.60.0.22']);
  });
});

describe('free reserved IPs: usage and the POOL_EXHAUSTED message count them the same way', () => {
  beforeEach(async () => {
    td = await startTestDaemon();
  });
  const freeInMessage = (msg: string) => Number(/(\d+) reserved IPs free but given only on request/.exec(msg)?.[1]);

  it('agree for a network with a reserved group where some IPs are leased', async () => {
    // .10-.19: .12 and group g .15-.17 reserved; .10, .11, .13, .14, .18, .19 dynamic.
    const conf = () =>
      netconf('agree', td.socket, {
        ranges: [[{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.10', rangeEnd: '10.22.0.19' }]],
        reserved: ['10.22.0.12', { entry: '10.22.0.15-10.22.0.17', group: 'g' }],
      });
    expect(await addOk(conf(), { containerId: 'grouped', args: { RESERVOIR_GROUP: 'g' } })).toEqual(['10.22.0.15']);
    expect(await addOk(conf(), { containerId: 'asked', args: { IP: '10.22.0.12' } })).toEqual(['10.22.0.12']);
    for (let i = 0; i < 6; i++) await addOk(conf(), { containerId: `dyn-${i}` });
    const err = await addErr(conf(), { containerId: 'one-too-many' });
    expect(err.code).toBe(100);
    expect(err.msg).toContain('8 leased, 2 reserved IPs free but given only on request');
    expect(await usageOf(td.socket, 'agree')).toMatchObject({ dynamicInUse: 6, reservedTotal: '4', reservedUsed: 2, reservedFree: '2' });
  });

  it('POOL_EXHAUSTED counts only the free reserved IPs of the exhausted range set', async () => {
    const conf = netconf('sets', td.socket, {
      ranges: [[{ subnet: '10.24.0.0/24', rangeStart: '10.24.0.10', rangeEnd: '10.24.0.14' }], [{ subnet: '10.25.0.0/24' }], [{ subnet: 'fd24::/64' }]],
      reserved: ['10.24.0.13-10.24.0.14', '10.25.0.50-10.25.0.59', 'fd24::50-fd24::5f'],
    });
    for (let i = 0; i < 3; i++) await addOk(conf, { containerId: `dyn-${i}` }); // .10-.12 in the first set
    const err = await addErr(conf, { containerId: 'one-too-many' });
    expect(err.code).toBe(100);
    expect(err.msg).toContain('no free IP in range set 0');
    expect(err.msg).toContain('3 leased, 2 reserved IPs free but given only on request');
  });

  it('count an entry once even when it spans two ranges of the exhausted range set', async () => {
    const v1 = netconf('split', td.socket, {
      ranges: [[{ subnet: '10.23.0.0/24', rangeStart: '10.23.0.10', rangeEnd: '10.23.0.40' }]],
      reserved: [{ entry: '10.23.0.18-10.23.0.25', group: 'db' }],
    });
    expect(await addOk(v1, { containerId: 'db', args: { RESERVOIR_GROUP: 'db' } })).toEqual(['10.23.0.18']);
    // v2 splits the range at .20/.21 and drops the entry; it stays reserved while .18 is in use.
    const v2 = netconf('split', td.socket, {
      ranges: [
        [
          { subnet: '10.23.0.0/24', rangeStart: '10.23.0.10', rangeEnd: '10.23.0.20' },
          { subnet: '10.23.0.0/24', rangeStart: '10.23.0.21', rangeEnd: '10.23.0.40' },
        ],
      ],
    });
    for (let i = 0; i < 23; i++) await addOk(v2, { containerId: `dyn-${i}` }); // .10-.17 and .26-.40
    expect((await list('split')).entries).toEqual([{ entry: '10.23.0.18-10.23.0.25', group: 'db', note: null, source: 'config', namespaces: null, size: '8', used: 1 }]);
    const err = await addErr(v2, { containerId: 'one-too-many' });
    expect(err.code).toBe(100);
    const usage = await usageOf(td.socket, 'split');
    expect(usage).toMatchObject({ reservedTotal: '8', reservedUsed: 1, reservedFree: '7' });
    expect(freeInMessage(err.msg)).toBe(7);
  });
});
