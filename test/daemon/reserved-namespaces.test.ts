// Reserved entries limited to namespaces: a pod of another namespace asking for such an IP or
// group gets code 117 naming the allowed namespaces, with or without the Kubernetes API (the
// namespace is K8S_POD_NAMESPACE). From the config and from reservoirctl reserved add|set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../ctl/main.js';
import { parseIpamConfig } from '../../src/config.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, addErr, addOk, delOk, op, startTestDaemon } from './support.js';

let td: TestDaemon;
let conf: Record<string, unknown>;

const pod = (namespace: string, name: string) => ({ K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name });

async function ctl(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main({ argv, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { RESERVOIR_SOCKET: td.socket } });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  td = await startTestDaemon();
  conf = netconf('nsnet', td.socket, {
    ranges: [[{ subnet: '10.42.0.0/24' }]],
    reserved: [
      { entry: '10.42.0.60-10.42.0.61', group: 'db', namespaces: ['db', 'team-*'] },
      { entry: '10.42.0.70', namespaces: ['ops'] },
      { entry: '10.42.0.80', group: 'open' },
    ],
  });
  await addOk(conf, { containerId: 'warmup', args: pod('default', 'warm') });
});

afterAll(async () => {
  await td.close();
});

describe('reserved entries limited to namespaces', () => {
  it('refuses a requested IP to a pod of another namespace with 117 naming the allowed ones', async () => {
    const err = await addErr(conf, { containerId: 'a1', args: pod('web', 'x'), annotations: { 'reservoir.io/ip': '10.42.0.60' } });
    expect(err.code).toBe(117);
    expect(err.msg).toContain('10.42.0.60');
    expect(err.msg).toContain('only for namespaces db, team-*');
    expect(err.msg).toContain('namespace "web"');
    // nothing was leased for the refused pod
    const { leases } = await op(td.socket, 'leases', { query: { network: 'nsnet' } });
    expect(leases.map((l: any) => l.containerId)).toEqual(['warmup']);
  });

  it('gives it to a pod of an allowed namespace, by name or by glob', async () => {
    expect(await addOk(conf, { containerId: 'a2', args: pod('db', 'pg'), annotations: { 'reservoir.io/ip': '10.42.0.60' } })).toEqual(['10.42.0.60']);
    expect(await addOk(conf, { containerId: 'a3', args: pod('team-blue', 'pg'), annotations: { 'reservoir.io/group': 'db' } })).toEqual(['10.42.0.61']);
    await delOk(conf, { containerId: 'a2' });
    await delOk(conf, { containerId: 'a3' });
  });

  it('refuses a group to another namespace, and to a pod that names no namespace', async () => {
    const other = await addErr(conf, { containerId: 'g1', args: pod('teamblue', 'x'), annotations: { 'reservoir.io/group': 'db' } });
    expect(other.code).toBe(117);
    expect(other.msg).toContain('reserved group "db"');
    const anonymous = await addErr(conf, { containerId: 'g2', args: { RESERVOIR_GROUP: 'db' } });
    expect(anonymous.code).toBe(117);
    expect(anonymous.msg).toContain('names no namespace');
    // an entry without namespaces is for anyone
    expect(await addOk(conf, { containerId: 'g3', args: { RESERVOIR_GROUP: 'open' } })).toEqual(['10.42.0.80']);
    await delOk(conf, { containerId: 'g3' });
  });

  it('an IP in use by an allowed pod still answers 117 to a forbidden one (it learns nothing about the holder)', async () => {
    await addOk(conf, { containerId: 'o1', args: pod('ops', 'mon'), ips: ['10.42.0.70'] });
    const err = await addErr(conf, { containerId: 'o2', args: pod('web', 'mon'), ips: ['10.42.0.70'] });
    expect(err.code).toBe(117);
    expect(err.msg).not.toContain('o1');
    await delOk(conf, { containerId: 'o1' });
  });

  it('reservoirctl reserved add|set --namespaces sets, changes and clears who may claim', async () => {
    const added = await ctl('reserved', 'add', 'nsnet', '10.42.0.90-10.42.0.91', '--group', 'cache', '--namespaces', 'cache,team-*');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('namespaces cache,team-*');
    expect((await addErr(conf, { containerId: 'k1', args: pod('web', 'r'), annotations: { 'reservoir.io/group': 'cache' } })).code).toBe(117);

    const narrowed = await ctl('reserved', 'set', 'nsnet', '10.42.0.90-10.42.0.91', '--namespaces', 'web');
    expect(narrowed.code, narrowed.stderr).toBe(0);
    expect(await addOk(conf, { containerId: 'k2', args: pod('web', 'r'), annotations: { 'reservoir.io/group': 'cache' } })).toEqual(['10.42.0.90']);
    const err = await addErr(conf, { containerId: 'k3', args: pod('cache', 'r'), annotations: { 'reservoir.io/group': 'cache' } });
    expect(err.code).toBe(117);
    expect(err.msg).toContain('only for namespaces web;');

    const listed = await ctl('reserved', 'list', 'nsnet', '-o', 'json');
    const entry = JSON.parse(listed.stdout).entries.find((e: any) => e.entry === '10.42.0.90-10.42.0.91');
    expect(entry.namespaces).toEqual(['web']);
    const table = await ctl('reserved', 'list', 'nsnet');
    expect(table.stdout).toMatch(/^10\.42\.0\.90-10\.42\.0\.91\s+cache\s+web\s+2\s+1\s+operator/m);

    const cleared = await ctl('reserved', 'set', 'nsnet', '10.42.0.90-10.42.0.91', '--namespaces', '');
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(await addOk(conf, { containerId: 'k3', args: pod('cache', 'r'), annotations: { 'reservoir.io/group': 'cache' } })).toEqual(['10.42.0.91']);

    const bad = await ctl('reserved', 'set', 'nsnet', '10.42.0.90-10.42.0.91', '--namespaces', 'Team_A');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('not a namespace name or glob');
  });

  it('the config keeps namespaces across a daemon restart and applies a changed list', async () => {
    await td.restart();
    expect((await addErr(conf, { containerId: 'r1', args: pod('web', 'x'), ips: ['10.42.0.61'] })).code).toBe(117);
    const changed = netconf('nsnet', td.socket, {
      ranges: [[{ subnet: '10.42.0.0/24' }]],
      reserved: [
        { entry: '10.42.0.60-10.42.0.61', group: 'db', namespaces: ['web'] },
        { entry: '10.42.0.70', namespaces: ['ops'] },
        { entry: '10.42.0.80', group: 'open' },
      ],
    });
    expect(await addOk(changed, { containerId: 'r2', args: pod('web', 'x'), ips: ['10.42.0.61'] })).toEqual(['10.42.0.61']);
  });

  it('the shared validator refuses a bad namespaces list with a message saying what to write', () => {
    const parse = (namespaces: unknown) => () => parseIpamConfig({ ranges: [[{ subnet: '10.42.0.0/24' }]], reserved: [{ entry: '10.42.0.60', namespaces }] });
    expect(parse([])).toThrow(/ipam\.reserved\[0\]\.namespaces: must be a list of 1 to 64 namespace names or globs/);
    expect(parse('db')).toThrow(/must be a list/);
    expect(parse(['db', 'Bad_NS'])).toThrow(/ipam\.reserved\[0\]\.namespaces\[1\]: "Bad_NS" is not a namespace name or glob/);
    expect(parseIpamConfig({ ranges: [[{ subnet: '10.42.0.0/24' }]], reserved: [{ entry: '10.42.0.60', namespaces: ['db', 'team-*', 'a?c'] }] }).reserved[0]!.namespaces).toEqual(['db', 'team-*', 'a?c']);
  });
});
