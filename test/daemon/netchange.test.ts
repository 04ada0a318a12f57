// Networks that change under running pods, and configs that go stale: which config governs a
// network (README, "Which config is authoritative"), one rule book for reserved entries whichever
// way they came, range sets known by content, and leases that no longer fit. A real reservoird
// on a temp SQLite file, the plugin in-process, restarts on the same file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../ctl/main.js';
import type { Logger } from '../../daemon/log.js';
import { MIGRATIONS } from '../../daemon/sqlite-store.js';
import { startInProcessDaemon, usageOf } from '../support/daemon.js';
import { conflist, netconf as netConf } from '../support/netconf.js';
import {
  type TestDaemon,
  addErr,
  addOk,
  delOk,
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

/** A logger that keeps what it was told, to check what an operator would read. */
function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function confDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rsv-netchange-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A conflist for `name` in the watched directory, as an operator writes it. */
function writeConflist(dir: string, file: string, name: string, ipam: Record<string, unknown>): string {
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify(conflist(name, td.socket, ipam)));
  return path;
}

const addresses = (out: Record<string, unknown>) => (out.ips as Array<{ address: string; gateway?: string }>).map((i) => `${i.address} gw ${i.gateway ?? '-'}`);

async function addResult(conf: Record<string, unknown>, containerId: string): Promise<string[]> {
  const { exit, out } = await plugin('ADD', conf, { containerId });
  expect(exit, JSON.stringify(out)).toBe(0);
  return addresses(out);
}

const entries = async (network: string) =>
  ((await op(td.socket, 'reservedList', { params: { network } })).entries as Array<{ entry: string; source: string; note: string | null; group: string | null }>).map(
    (e) => `${e.entry} ${e.source} ${e.group ?? '-'} ${e.note ?? '-'}`,
  );

describe('which config governs a network', () => {
  it('a file in the CNI config directory wins over what an ADD carries: its reserved IPs are never handed out', async () => {
    const dir = confDir();
    const log = recordingLogger();
    td = await startTestDaemon({ cniConfDir: dir, log });
    const ipam = { ranges: [[{ subnet: '10.77.0.0/24' }]], reserved: ['10.77.0.2-10.77.0.4'] };
    const file = writeConflist(dir, '10-filed.conflist', 'filed', ipam);
    await waitFor(async () => (await usageOf(td.socket, 'filed'))?.network, 5_000, 'network filed');
    // A node with a stale conflist: the same network without `reserved`.
    const stale = netConf('filed', td.socket, { ranges: ipam.ranges });
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(...(await addOk(stale, { containerId: `stale-${i}` })));
    expect(got).toEqual(['10.77.0.5', '10.77.0.6', '10.77.0.7', '10.77.0.8', '10.77.0.9']);
    expect(await entries('filed')).toEqual(['10.77.0.2-10.77.0.4 config - -']);
    // Shown and logged: the difference, the file, how many ADDs.
    const usage = await usageOf(td.socket, 'filed');
    expect(usage.configFile).toBe(file);
    expect(usage.staleRequests).toMatchObject({ requests: 5, differences: ['ipam.reserved: the file has ["10.77.0.2-10.77.0.4"], the request nothing'] });
    expect((await op(td.socket, 'health')).staleConfigs).toBe(1);
    const warned = log.lines.filter((l) => l.level === 'warn' && l.msg.includes("another config than the network's config file"));
    expect(warned).toHaveLength(1); // once per distinct config, not once per ADD
    expect(warned[0]!.fields).toMatchObject({ network: 'filed', file, differences: usage.staleRequests!.differences });
    // An ADD with the file's config clears the warning.
    await addOk(netConf('filed', td.socket, ipam), { containerId: 'current' });
    expect((await usageOf(td.socket, 'filed')).staleRequests).toBeNull();
    expect((await op(td.socket, 'health')).staleConfigs).toBe(0);
  });

  it("served by the file's rules means its defaultKind too", async () => {
    const dir = confDir();
    td = await startTestDaemon({ cniConfDir: dir });
    const ranges = [[{ subnet: '10.76.0.0/24' }]];
    writeConflist(dir, '10-kind.conflist', 'kind', { ranges, defaultKind: 'stateful' });
    await waitFor(async () => (await usageOf(td.socket, 'kind'))?.network, 5_000, 'network kind');
    const stale = netConf('kind', td.socket, { ranges });
    const app = { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'db-0' };
    expect(await addOk(stale, { containerId: 'db', args: app })).toEqual(['10.76.0.2']);
    await delOk(stale, { containerId: 'db', args: app });
    expect(await usageOf(td.socket, 'kind')).toMatchObject({ held: 1 });
    const anonymous = await addErr(stale, { containerId: 'nobody' });
    expect(anonymous.code).toBe(4);
    expect(anonymous.msg).toContain('makes apps stateful by default');
    // Asked for explicitly, the pod's kind still wins.
    await addOk(stale, { containerId: 'web', args: { RESERVOIR_KIND: 'stateless' } });
    await delOk(stale, { containerId: 'web' });
    expect(await usageOf(td.socket, 'kind')).toMatchObject({ held: 1, attached: 0 });
  });

  it('DEL, CHECK and GC never change the stored config; a network without a file follows its latest ADD', async () => {
    td = await startTestDaemon();
    const v1 = netConf('learned', td.socket, { ranges: [[{ subnet: '10.85.0.0/24', rangeStart: '10.85.0.10', rangeEnd: '10.85.0.20' }]], reserved: ['10.85.0.15'] });
    const v2 = netConf('learned', td.socket, { ranges: [[{ subnet: '10.85.0.0/24' }]] });
    expect(await addOk(v1, { containerId: 'a' })).toEqual(['10.85.0.10']);
    expect(await addOk(v1, { containerId: 'b' })).toEqual(['10.85.0.11']);
    const before = await usageOf(td.socket, 'learned');
    expect(before).toMatchObject({ size: '11', reservedTotal: '1' });
    // libcni sends the ADD-time config again on DEL; a CHECK or GC may carry an old one.
    const check = await plugin('CHECK', { ...v2, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.85.0.10/24' }] } }, { containerId: 'a' });
    expect(check.exit, JSON.stringify(check.out)).toBe(0);
    await delOk(v2, { containerId: 'b' });
    const gc = await plugin('GC', { ...v2, 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] });
    expect(gc.exit, JSON.stringify(gc.out)).toBe(0);
    expect(await usageOf(td.socket, 'learned')).toMatchObject({ size: '11', reservedTotal: '1' });
    expect(await entries('learned')).toEqual(['10.85.0.15 config - -']);
    // An ADD is what changes a network no file declares.
    expect(before.configFile).toBeNull();
    await addOk(v2, { containerId: 'c' });
    expect(await usageOf(td.socket, 'learned')).toMatchObject({ size: '253', reservedTotal: '0' });
  });

  it('a network whose file is removed is learned from requests from then on, leases and entries kept', async () => {
    const dir = confDir();
    td = await startTestDaemon({ cniConfDir: dir });
    const ipam = { ranges: [[{ subnet: '10.86.0.0/24' }]], reserved: ['10.86.0.9'] };
    const file = writeConflist(dir, '10-gone.conflist', 'gone', ipam);
    await waitFor(async () => (await usageOf(td.socket, 'gone'))?.configFile === file || undefined, 5_000, 'network gone from its file');
    expect(await addOk(netConf('gone', td.socket, ipam), { containerId: 'a' })).toEqual(['10.86.0.2']);
    rmSync(file);
    await waitFor(async () => (await usageOf(td.socket, 'gone')).configFile === null || undefined, 5_000, 'file forgotten');
    expect(await usageOf(td.socket, 'gone')).toMatchObject({ attached: 1, reservedTotal: '1' });
    // Now an ADD's config is the network's.
    await addOk(netConf('gone', td.socket, { ranges: ipam.ranges }), { containerId: 'b' });
    expect(await entries('gone')).toEqual([]);
  });
  it('a daemon started without a config directory lets requests govern a network a file used to', async () => {
    const dir = confDir();
    td = await startTestDaemon({ cniConfDir: dir });
    const file = writeConflist(dir, '10-was.conflist', 'was', { ranges: [[{ subnet: '10.75.0.0/24' }]] });
    await waitFor(async () => (await usageOf(td.socket, 'was'))?.configFile === file || undefined, 5_000, 'network was from its file');
    await td.stop();
    const again = await startInProcessDaemon('netchange-nodir', { socket: td.socket, dbPath: td.dbPath, stateDir: td.stateDir, reclaimGraceMs: 0, sweepIntervalMs: 3_600_000 });
    try {
      expect((await usageOf(td.socket, 'was')).configFile).toBeNull();
      await addOk(netConf('was', td.socket, { ranges: [[{ subnet: '10.75.0.0/24' }]], reserved: ['10.75.0.2'] }), { containerId: 'a' });
      expect(await entries('was')).toEqual(['10.75.0.2 config - -']);
    } finally {
      await again.close();
    }
  });
});

describe('one rule book for reserved entries, whichever way they came', () => {
  const ERR_FROM_CONFIG = 118;

  it('the operator cannot change or delete a config entry (118, edit the file); the decision survives restarts and reloads', async () => {
    const dir = confDir();
    td = await startTestDaemon({ cniConfDir: dir });
    const ranges = [[{ subnet: '10.87.0.0/24' }]];
    const file = writeConflist(dir, '10-book.conflist', 'book', { ranges, reserved: [{ entry: '10.87.0.20-10.87.0.29', group: 'db', note: 'v1' }] });
    await waitFor(async () => (await entries('book')).length === 1 || undefined, 5_000, 'entry imported');
    const rm = await opErr(td.socket, 'reservedRemove', { params: { network: 'book' }, query: { entry: '10.87.0.20-10.87.0.29' } });
    expect(rm.code).toBe(ERR_FROM_CONFIG);
    expect(rm.message).toContain(`declared by the CNI config file ${file}`);
    expect(rm.message).toContain('edit the "reserved" list');
    const set = await opErr(td.socket, 'reservedSet', { params: { network: 'book' }, body: { entry: '10.87.0.20-10.87.0.29', note: 'mine' } });
    expect(set.code).toBe(ERR_FROM_CONFIG);
    // Operator entries stay the operator's.
    await op(td.socket, 'reservedAdd', { params: { network: 'book' }, body: { entry: '10.87.0.40' } });
    await op(td.socket, 'reservedSet', { params: { network: 'book' }, body: { entry: '10.87.0.40', note: 'ops' } });

    await td.restart();
    expect(await entries('book')).toEqual(['10.87.0.20-10.87.0.29 config db v1', '10.87.0.40 operator - ops']);
    expect((await opErr(td.socket, 'reservedRemove', { params: { network: 'book' }, query: { entry: '10.87.0.20-10.87.0.29' } })).code).toBe(ERR_FROM_CONFIG);

    // A note-only change of the file reaches the store, and stays across a restart.
    writeConflist(dir, '10-book.conflist', 'book', { ranges, reserved: [{ entry: '10.87.0.20-10.87.0.29', group: 'db', note: 'v2' }] });
    await waitFor(async () => (await entries('book')).includes('10.87.0.20-10.87.0.29 config db v2') || undefined, 5_000, 'note v2');
    await td.restart();
    expect(await entries('book')).toEqual(['10.87.0.20-10.87.0.29 config db v2', '10.87.0.40 operator - ops']);
  });

  it('a change of only the note (or the text) of a config entry reaches the store', async () => {
    td = await startTestDaemon();
    const ranges = [[{ subnet: '10.84.0.0/24' }]];
    await addOk(netConf('notes', td.socket, { ranges, reserved: [{ entry: '10.84.0.50-10.84.0.51', note: 'first' }] }), { containerId: 'a' });
    await addOk(netConf('notes', td.socket, { ranges, reserved: [{ entry: '10.84.0.50-10.84.0.51', note: 'second' }] }), { containerId: 'b' });
    expect(await entries('notes')).toEqual(['10.84.0.50-10.84.0.51 config - second']);
    await addOk(netConf('notes', td.socket, { ranges, reserved: [{ entry: '10.84.0.50/31', note: 'second' }] }), { containerId: 'c' });
    expect(await entries('notes')).toEqual(['10.84.0.50/31 config - second']);
  });

  it('the same rule holds for a network learned from requests, across a restart', async () => {
    td = await startTestDaemon();
    const conf = netConf('asked', td.socket, { ranges: [[{ subnet: '10.88.0.0/24' }]], reserved: [{ entry: '10.88.0.50', note: 'vip' }] });
    await addOk(conf, { containerId: 'a' });
    const rm = await opErr(td.socket, 'reservedRemove', { params: { network: 'asked' }, query: { entry: '10.88.0.50' } });
    expect(rm.code).toBe(ERR_FROM_CONFIG);
    expect(rm.message).toContain('the network config that the pods\' CNI requests carry');
    await td.restart();
    await addOk(conf, { containerId: 'b' });
    expect(await entries('asked')).toEqual(['10.88.0.50 config - vip']);
    // Changing the note in the config the ADDs carry changes the entry.
    await addOk(netConf('asked', td.socket, { ranges: [[{ subnet: '10.88.0.0/24' }]], reserved: [{ entry: '10.88.0.50', note: 'the vip' }] }), { containerId: 'c' });
    expect(await entries('asked')).toEqual(['10.88.0.50 config - the vip']);
  });

  it('a config entry is never put over a live lease (105 semantics): reported, and applied once the lease is gone', async () => {
    td = await startTestDaemon();
    const ranges = [[{ subnet: '10.89.0.0/24', rangeStart: '10.89.0.10', rangeEnd: '10.89.0.40' }]];
    const v1 = netConf('live', td.socket, { ranges, reserved: ['10.89.0.30'] });
    expect(await addOk(v1, { containerId: 'dyn' })).toEqual(['10.89.0.10']);
    // v2 reserves the live dynamic lease and grows .30 over another one.
    expect(await addOk(v1, { containerId: 'dyn2', args: { IP: '10.89.0.31' } })).toEqual(['10.89.0.31']);
    const v2 = netConf('live', td.socket, { ranges, reserved: ['10.89.0.10-10.89.0.12', '10.89.0.30-10.89.0.31'] });
    await addOk(v2, { containerId: 'other', args: { IP: '10.89.0.20' } });
    const list = await op(td.socket, 'reservedList', { params: { network: 'live' } });
    expect(list.entries.map((e: { entry: string }) => e.entry)).toEqual(['10.89.0.30']);
    expect(list.conflicts).toHaveLength(2);
    // The grown entry first (an entry that changes), then the new one.
    expect(list.conflicts[0]).toMatch(/^reserved entry "10\.89\.0\.30-10\.89\.0\.31" from the config not applied: cannot reserve .* in use by 10\.89\.0\.31 \(container dyn2 /);
    expect(list.conflicts[1]).toMatch(/^reserved entry "10\.89\.0\.10-10\.89\.0\.12" from the config not applied: cannot reserve .* in use by 10\.89\.0\.10 \(container dyn /);
    expect([...(await reservedStates(td.socket, 'live')).keys()]).toEqual(['10.89.0.30']);
    // Conflicts are kept with the network: shown after a restart before any CNI call.
    await td.restart();
    expect((await op(td.socket, 'reservedList', { params: { network: 'live' } })).conflicts).toEqual(list.conflicts);
    await delOk(v2, { containerId: 'dyn' });
    await delOk(v2, { containerId: 'dyn2' });
    await addOk(v2, { containerId: 'later' });
    const applied = await op(td.socket, 'reservedList', { params: { network: 'live' } });
    expect(applied.entries.map((e: { entry: string }) => e.entry)).toEqual(['10.89.0.10-10.89.0.12', '10.89.0.30-10.89.0.31']);
    expect(applied.conflicts).toEqual([]);
  });
});

describe('range sets are known by content, not by position', () => {
  it('reordered [[v4],[v6]] -> [[v6],[v4]]: a repeated ADD returns the same addresses with their prefixes and gateways', async () => {
    td = await startTestDaemon();
    const v4 = [{ subnet: '10.78.0.0/24' }];
    const v6 = [{ subnet: 'fd78::/64' }];
    expect(await addResult(netConf('dual', td.socket, { ranges: [v4, v6] }), 'pod')).toEqual(['10.78.0.2/24 gw 10.78.0.1', 'fd78::2/64 gw fd78::1']);
    const swapped = netConf('dual', td.socket, { ranges: [v6, v4] });
    expect(await addResult(swapped, 'pod')).toEqual(['fd78::2/64 gw fd78::1', '10.78.0.2/24 gw 10.78.0.1']);
    // Round robin continues where each set was, whatever its position.
    expect(await addResult(swapped, 'next')).toEqual(['fd78::3/64 gw fd78::1', '10.78.0.3/24 gw 10.78.0.1']);
    const check = await plugin('CHECK', { ...swapped, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.78.0.2/24' }, { address: 'fd78::2/64' }] } }, { containerId: 'pod' });
    expect(check.exit, JSON.stringify(check.out)).toBe(0);
  });

  it('a range set inserted in front: the attachment keeps its IPv4 address and gets an IPv6 one', async () => {
    td = await startTestDaemon();
    const v4 = [{ subnet: '10.79.0.0/24' }];
    expect(await addResult(netConf('grow', td.socket, { ranges: [v4] }), 'pod')).toEqual(['10.79.0.2/24 gw 10.79.0.1']);
    expect(await addResult(netConf('grow', td.socket, { ranges: [[{ subnet: 'fd79::/64' }], v4] }), 'pod')).toEqual([
      'fd79::2/64 gw fd79::1',
      '10.79.0.2/24 gw 10.79.0.1',
    ]);
  });

  it('a store written before range sets were known by content opens and answers by content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rsv-netchange-v1-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, 'v1.db');
    const ipam = { type: 'reservoir', socket: join(dir, 'r.sock'), timeout: '30s', ranges: [[{ subnet: 'fd90::/64' }], [{ subnet: '10.90.0.0/24' }]] };
    // Schema version 1 with a lease that remembered its set by index (1: the IPv4 set).
    const raw = new Database(dbPath);
    raw.exec(MIGRATIONS[0]!);
    raw.pragma('user_version = 1');
    raw.prepare('INSERT INTO networks (name, ipam, created_at, updated_at) VALUES (?, ?, 1, 1)').run('old', JSON.stringify(ipam));
    raw.prepare(`INSERT INTO leases (network, family, ip, range_set, container_id, ifname, netns, app, kind, created_at) VALUES ('old', 4, '0a5a0007', 1, 'pod', 'eth0', '/var/run/netns/pod', NULL, 'stateless', 1)`).run();
    raw.prepare(`INSERT INTO occupied (network, family, start_ip, end_ip) VALUES ('old', 4, '0a5a0007', '0a5a0007')`).run();
    raw.close();
    td = await startTestDaemon({ dbPath, socket: ipam.socket });
    const conf = { cniVersion: '1.1.0', name: 'old', type: 'bridge', ipam };
    expect(await addResult(conf, 'pod')).toEqual(['fd90::2/64 gw fd90::1', '10.90.0.7/24 gw 10.90.0.1']);
  });
});

describe('a lease that no longer fits is reported, never answered with a wrong prefix or gateway', () => {
  const LEASE_MISFIT = 119;

  it('subnet renumbered: ADD and CHECK refuse it naming the fix; usage, leases, health and the log report it; misfits --release frees it', async () => {
    const log = recordingLogger();
    td = await startTestDaemon({ log });
    const v1 = netConf('renum', td.socket, { ranges: [[{ subnet: '10.80.0.0/24' }]] });
    const v2 = netConf('renum', td.socket, { ranges: [[{ subnet: '10.81.0.0/24' }]] });
    expect(await addResult(v1, 'old')).toEqual(['10.80.0.2/24 gw 10.80.0.1']);
    expect(await addResult(v2, 'new')).toEqual(['10.81.0.2/24 gw 10.81.0.1']);

    const again = await addErr(v2, { containerId: 'old' });
    expect(again.code).toBe(LEASE_MISFIT);
    expect(again.msg).toContain('holds 10.80.0.2 in network "renum", which no longer fits');
    expect(again.msg).toContain('it lies in no subnet of the config (10.81.0.0/24)');
    expect(again.msg).toContain('reservoirctl misfits renum --release');
    const check = await plugin('CHECK', { ...v2, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.80.0.2/24' }] } }, { containerId: 'old' });
    expect(check.exit).toBe(1);
    expect(check.out).toMatchObject({ code: LEASE_MISFIT });
    const checkBare = await plugin('CHECK', v2, { containerId: 'old' });
    expect(checkBare.out).toMatchObject({ code: LEASE_MISFIT });

    expect(await usageOf(td.socket, 'renum')).toMatchObject({ misfits: 1, attached: 2 });
    expect((await op(td.socket, 'health')).misfits).toBe(1);
    const { leases } = await op(td.socket, 'leases', { query: { network: 'renum' } });
    expect(leases.map((l: { ip: string; misfit?: string }) => `${l.ip} ${l.misfit ?? 'fits'}`)).toEqual([
      '10.80.0.2 it lies in no subnet of the config (10.81.0.0/24)',
      '10.81.0.2 fits',
    ]);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg.includes('no longer fit') && l.fields.network === 'renum' && l.fields.misfits === 1)).toBe(true);

    // reservoirctl misfits lists it and --release frees it; the next ADD gets an address that fits.
    const ctl = async (...argv: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main({ argv, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { RESERVOIR_SOCKET: td.socket } });
      return { code, stdout, stderr };
    };
    const listed = await ctl('misfits', 'renum');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^10\.80\.0\.2\s+attached\s+stateless\s+-\s+old\s+eth0\s+it lies in no subnet of the config \(10\.81\.0\.0\/24\)$/m);
    expect(listed.stdout).toContain('1 lease(s) no longer fit; release them with: reservoirctl misfits renum --release');
    const usage = await ctl('usage', 'renum');
    expect(usage.stderr).toContain('network renum: 1 lease(s) no longer fit its config; see reservoirctl misfits renum');
    const released = await ctl('misfits', 'renum', '--release', '-o', 'json');
    expect(released.code, released.stderr).toBe(0);
    expect(JSON.parse(released.stdout)).toEqual({ network: 'renum', released: 1, ips: ['10.80.0.2'] });
    expect((await ctl('misfits', 'renum')).stdout).toBe('every lease of network renum fits its config\n');
    expect(await addResult(v2, 'old')).toEqual(['10.81.0.3/24 gw 10.81.0.1']);
    expect((await ctl('misfits', 'nosuch')).stderr).toContain('(code 107)');
  });

  it('gateway moved onto a leased IP: that pod is refused instead of being told it is its own gateway', async () => {
    td = await startTestDaemon();
    const v1 = netConf('gw', td.socket, { ranges: [[{ subnet: '10.82.0.0/24' }]] });
    const v2 = netConf('gw', td.socket, { ranges: [[{ subnet: '10.82.0.0/24', gateway: '10.82.0.3' }]] });
    await addOk(v1, { containerId: 'a' }); // .2
    await addOk(v1, { containerId: 'b' }); // .3
    expect(await addResult(v2, 'c')).toEqual(['10.82.0.4/24 gw 10.82.0.3']);
    const err = await addErr(v2, { containerId: 'b' });
    expect(err.code).toBe(LEASE_MISFIT);
    expect(err.msg).toContain('holds 10.82.0.3');
    expect(err.msg).toContain('it is now the gateway of 10.82.0.0/24');
    expect((await plugin('CHECK', v2, { containerId: 'b' })).out).toMatchObject({ code: LEASE_MISFIT });
    expect(await addResult(v2, 'a')).toEqual(['10.82.0.2/24 gw 10.82.0.3']);
    const misfits = await op(td.socket, 'misfits', { params: { network: 'gw' } });
    expect(misfits).toMatchObject({ network: 'gw', total: 1 });
    expect(misfits.leases).toEqual([
      expect.objectContaining({ ip: '10.82.0.3', containerId: 'b', ifname: 'eth0', app: null, kind: 'stateless', state: 'attached', misfit: 'it is now the gateway of 10.82.0.0/24' }),
    ]);
    expect(misfits.leases).toHaveLength(1);
  });

  it('range shrunk: a stateful hold outside the range is refused at the next ADD of its app, and released by misfits --release', async () => {
    td = await startTestDaemon();
    const app = { RESERVOIR_KIND: 'stateful', RESERVOIR_APP: 'db-0' };
    const v1 = netConf('shrink', td.socket, { ranges: [[{ subnet: '10.83.0.0/24', rangeStart: '10.83.0.10', rangeEnd: '10.83.0.40' }]] });
    const v2 = netConf('shrink', td.socket, { ranges: [[{ subnet: '10.83.0.0/24', rangeStart: '10.83.0.10', rangeEnd: '10.83.0.20' }]] });
    expect(await addOk(v1, { containerId: 'first', args: { ...app, IP: '10.83.0.30' } })).toEqual(['10.83.0.30']);
    await delOk(v1, { containerId: 'first' }); // held for db-0
    const err = await addErr(v2, { containerId: 'second', args: app });
    expect(err.code).toBe(LEASE_MISFIT);
    expect(err.msg).toContain('stateful app db-0 holds 10.83.0.30');
    expect(err.msg).toContain('outside its allocatable range 10.83.0.10-10.83.0.20');
    // A failed ADD changes nothing, the config it carried included; the next one that succeeds registers it.
    expect((await usageOf(td.socket, 'shrink')).size).toBe('31');
    expect(await addOk(v2, { containerId: 'other' })).toEqual(['10.83.0.10']);
    expect(await usageOf(td.socket, 'shrink')).toMatchObject({ misfits: 1, held: 1 });
    expect(await op(td.socket, 'misfitsRelease', { params: { network: 'shrink' } })).toEqual({ network: 'shrink', released: 1, ips: ['10.83.0.30'] });
    expect(await addOk(v2, { containerId: 'second', args: app })).toEqual(['10.83.0.11']);
  });
});
