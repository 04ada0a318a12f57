// App kinds: stateless apps lose their IP on DEL; stateful apps keep it, held by their identity,
// across DEL/ADD with new containers and daemon restarts, until released or expired.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { usageOf } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, addErr, addOk, delOk, op, opErr, plugin, reservedStates, startTestDaemon } from './support.js';

let td: TestDaemon;
beforeEach(async () => {
  td = await startTestDaemon();
});
afterEach(async () => {
  await td.close();
});

const pod = (namespace: string, name: string, extra: Record<string, string> = {}) => ({ K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, ...extra });

function single(extra: Record<string, unknown> = {}) {
  return netconf('one', td.socket, {
    ranges: [[{ subnet: '10.70.0.0/24', rangeStart: '10.70.0.10', rangeEnd: '10.70.0.40' }]],
    reserved: [{ entry: '10.70.0.30-10.70.0.34', group: 'db' }],
    ...extra,
  });
}

function dual(extra: Record<string, unknown> = {}) {
  return netconf('dual', td.socket, {
    ranges: [
      [{ subnet: '10.80.0.0/24', rangeStart: '10.80.0.10', rangeEnd: '10.80.0.40' }],
      [{ subnet: 'fd00:80::/64', rangeStart: 'fd00:80::10', rangeEnd: 'fd00:80::40' }],
    ],
    reserved: [{ entry: '10.80.0.30-10.80.0.34', group: 'db' }, { entry: 'fd00:80::30-fd00:80::34', group: 'db' }],
    ...extra,
  });
}

async function leases(network?: string): Promise<any[]> {
  return (await op(td.socket, 'leases', { query: { network } })).leases;
}
async function kindOf(containerId: string): Promise<string> {
  const found = (await leases()).filter((l) => l.containerId === containerId);
  expect(found.length).toBeGreaterThan(0);
  return found[0].kind;
}

describe('rule 8: kind = annotation reservoir.io/kind > CNI_ARGS RESERVOIR_KIND > ipam.defaultKind (stateless)', () => {
  it('defaults to stateless', async () => {
    await addOk(single(), { containerId: 'a', args: pod('ns', 'a') });
    expect(await kindOf('a')).toBe('stateless');
    await delOk(single(), { containerId: 'a', args: pod('ns', 'a') });
    expect(await leases()).toEqual([]);
  });

  it('ipam.defaultKind applies when nothing else says', async () => {
    await addOk(single({ defaultKind: 'stateful' }), { containerId: 'a', args: pod('ns', 'a') });
    expect(await kindOf('a')).toBe('stateful');
    await delOk(single({ defaultKind: 'stateful' }), { containerId: 'a', args: pod('ns', 'a') });
    expect(await leases()).toMatchObject([{ state: 'held', app: 'ns/a', kind: 'stateful' }]);
  });

  it('CNI_ARGS RESERVOIR_KIND beats ipam.defaultKind, both ways', async () => {
    await addOk(single(), { containerId: 'up', args: pod('ns', 'up', { RESERVOIR_KIND: 'stateful' }) });
    await addOk(single({ defaultKind: 'stateful' }), { containerId: 'down', args: pod('ns', 'down', { RESERVOIR_KIND: 'stateless' }) });
    expect(await kindOf('up')).toBe('stateful');
    expect(await kindOf('down')).toBe('stateless');
  });

  it('the annotation beats CNI_ARGS and defaultKind, both ways', async () => {
    await addOk(single(), { containerId: 'up', args: pod('ns', 'up', { RESERVOIR_KIND: 'stateless' }), annotations: { 'reservoir.io/kind': 'stateful' } });
    await addOk(single({ defaultKind: 'stateful' }), {
      containerId: 'down',
      args: pod('ns', 'down', { RESERVOIR_KIND: 'stateful' }),
      annotations: { 'reservoir.io/kind': 'stateless' },
    });
    expect(await kindOf('up')).toBe('stateful');
    expect(await kindOf('down')).toBe('stateless');
  });

  it('an unknown kind is invalid; a stateful app without identity is refused', async () => {
    expect((await addErr(single(), { containerId: 'a', annotations: { 'reservoir.io/kind': 'sticky' } })).code).toBe(7);
    expect((await addErr(single(), { containerId: 'a', args: { RESERVOIR_KIND: 'sticky' } })).code).toBe(4); // an env variable
    expect((await addErr(single(), { containerId: 'a', args: { RESERVOIR_KIND: 'stateful' } })).code).toBe(4);
  });
});

describe('rule 9: stateless DEL frees; stateful DEL detaches and the identity keeps its IPs', () => {
  it('stateless: DEL frees the IP for anyone', async () => {
    const [ip] = await addOk(single(), { containerId: 'a', args: pod('ns', 'a') });
    await delOk(single(), { containerId: 'a' });
    expect(await leases()).toEqual([]);
    expect(await addOk(single(), { containerId: 'b', args: { IP: ip! } })).toEqual([ip]);
  });

  it('stateful: DEL keeps the IPs held; a new container of the same pod gets the same IPs in every range set', async () => {
    const first = await addOk(dual(), { containerId: 'sts-0-a', args: pod('prod', 'pg-0', { RESERVOIR_KIND: 'stateful' }) });
    expect(first).toHaveLength(2);
    await addOk(dual(), { containerId: 'other-1', args: pod('prod', 'web-1') });
    await delOk(dual(), { containerId: 'sts-0-a' });
    expect(await leases('dual')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ip: first[0], state: 'held', containerId: null, app: 'prod/pg-0', kind: 'stateful' }),
        expect.objectContaining({ ip: first[1], state: 'held', containerId: null, app: 'prod/pg-0', kind: 'stateful' }),
      ]),
    );
    // Others come and go meanwhile; none gets the held IPs.
    for (let i = 0; i < 3; i++) {
      const ips = await addOk(dual(), { containerId: `churn-${i}`, args: pod('prod', `churn-${i}`) });
      expect(ips.some((ip) => first.includes(ip))).toBe(false);
      await delOk(dual(), { containerId: `churn-${i}` });
    }
    const again = await addOk(dual(), { containerId: 'sts-0-b', args: pod('prod', 'pg-0', { RESERVOIR_KIND: 'stateful' }) });
    expect(again).toEqual(first);
    expect((await leases('dual')).filter((l) => l.app === 'prod/pg-0')).toMatchObject([
      { containerId: 'sts-0-b', state: 'attached' },
      { containerId: 'sts-0-b', state: 'attached' },
    ]);
  });

  it('stateful: the same IPs after a daemon restart', async () => {
    const first = await addOk(dual(), { containerId: 'c1', args: pod('prod', 'pg-1'), annotations: { 'reservoir.io/kind': 'stateful', 'reservoir.io/group': 'db' } });
    await delOk(dual(), { containerId: 'c1' });
    await td.restart();
    // A stateless pod asking the same group after the restart does not get them.
    const other = await addOk(dual(), { containerId: 'x', args: { RESERVOIR_GROUP: 'db' } });
    expect(other.some((ip) => first.includes(ip))).toBe(false);
    await td.restart();
    const again = await addOk(dual(), { containerId: 'c2', args: pod('prod', 'pg-1'), annotations: { 'reservoir.io/kind': 'stateful', 'reservoir.io/group': 'db' } });
    expect(again).toEqual(first);
  });

  it('a held IP is never given to anyone else, however full the pool', async () => {
    const conf = netconf('tiny', td.socket, { ranges: [[{ subnet: '10.90.0.0/24', rangeStart: '10.90.0.10', rangeEnd: '10.90.0.15' }]] });
    await addOk(conf, { containerId: 'f0', args: pod('ns', 'f0') }); // .10
    await addOk(conf, { containerId: 'f1', args: pod('ns', 'f1') }); // .11
    const [held] = await addOk(conf, { containerId: 'keep', args: pod('ns', 'keeper', { RESERVOIR_KIND: 'stateful' }) }); // .12
    await delOk(conf, { containerId: 'keep' });
    await delOk(conf, { containerId: 'f0' });
    await delOk(conf, { containerId: 'f1' });
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(...(await addOk(conf, { containerId: `fill-${i}`, args: pod('ns', `fill-${i}`) })));
    expect(got.sort()).toEqual(['10.90.0.10', '10.90.0.11', '10.90.0.13', '10.90.0.14', '10.90.0.15']);
    expect((await addErr(conf, { containerId: 'over', args: pod('ns', 'over') })).code).toBe(100);
    const asked = await addErr(conf, { containerId: 'thief', args: { IP: held! } });
    expect(asked.code).toBe(101);
    expect(asked.msg).toContain('stateful app ns/keeper');
    // Another stateful app is not the holder either.
    expect((await addErr(conf, { containerId: 'other', args: pod('ns', 'other', { RESERVOIR_KIND: 'stateful' }) })).code).toBe(100);
    expect(await addOk(conf, { containerId: 'keep-2', args: pod('ns', 'keeper', { RESERVOIR_KIND: 'stateful' }) })).toEqual([held]);
  });

  it('a stateful app asking for a group keeps the IP it first got from it', async () => {
    const ask = { RESERVOIR_GROUP: 'db', RESERVOIR_KIND: 'stateful' };
    await addOk(single(), { containerId: 'early', args: { IP: '10.70.0.30' } });
    const [mine] = await addOk(single(), { containerId: 'db-a', args: pod('prod', 'db-0', ask) });
    expect(mine).toBe('10.70.0.31');
    await delOk(single(), { containerId: 'db-a' });
    await delOk(single(), { containerId: 'early' }); // .30, the group's first IP, is free again
    expect((await reservedStates(td.socket, 'one')).get('10.70.0.30').state).toBe('free');
    expect(await addOk(single(), { containerId: 'db-b', args: pod('prod', 'db-0', ask) })).toEqual([mine]);
    await delOk(single(), { containerId: 'db-b' });
    await td.restart();
    expect(await addOk(single(), { containerId: 'db-c', args: pod('prod', 'db-0', ask) })).toEqual([mine]);
    // A stateless app asking the group gets another one.
    expect(await addOk(single(), { containerId: 'sl', args: pod('prod', 'sl', { RESERVOIR_GROUP: 'db' }) })).toEqual(['10.70.0.30']);
  });

  it('GC detaches a stateful lease (still held) and frees a stateless one', async () => {
    const [kept] = await addOk(single(), { containerId: 'st', args: pod('ns', 'st', { RESERVOIR_KIND: 'stateful' }) });
    await addOk(single(), { containerId: 'sl', args: pod('ns', 'sl') });
    const gc = await plugin('GC', { ...single(), 'cni.dev/valid-attachments': [] });
    expect(gc.exit).toBe(0);
    expect(await leases()).toMatchObject([{ ip: kept, state: 'held', app: 'ns/st' }]);
    expect(await addOk(single(), { containerId: 'st-2', args: pod('ns', 'st', { RESERVOIR_KIND: 'stateful' }) })).toEqual([kept]);
  });
});

describe('rule 10: releasing and expiring holds', () => {
  it('release is refused while attached (111), works after DEL, unknown app -> 112', async () => {
    const [ip] = await addOk(single(), { containerId: 'c', args: pod('ns', 'pg', { RESERVOIR_KIND: 'stateful', RESERVOIR_GROUP: 'db' }) });
    const attached = await opErr(td.socket, 'release', { body: { network: 'one', app: 'ns/pg' } });
    expect(attached.code).toBe(111);
    expect(attached.message).toContain('container c');
    expect((await leases())[0]).toMatchObject({ ip, state: 'attached' });
    await delOk(single(), { containerId: 'c' });
    expect(await op(td.socket, 'release', { body: { network: 'one', app: 'ns/pg' } })).toEqual({ released: [ip] });
    expect(await leases()).toEqual([]);
    expect((await reservedStates(td.socket, 'one')).get(ip!).state).toBe('free');
    expect((await opErr(td.socket, 'release', { body: { network: 'one', app: 'ns/pg' } })).code).toBe(112);
    expect((await opErr(td.socket, 'release', { body: { network: 'one', app: 'ns/never' } })).code).toBe(112);
    // A stateless app holds nothing to release.
    await addOk(single(), { containerId: 'sl', args: pod('ns', 'sl') });
    expect((await opErr(td.socket, 'release', { body: { network: 'one', app: 'ns/sl' } })).code).toBe(112);
    expect((await opErr(td.socket, 'release', { body: { network: 'nosuch', app: 'ns/pg' } })).code).toBe(107);
  });

  it('ipam.holdFor frees holds not reclaimed in time (injected clock)', async () => {
    const conf = single({ holdFor: '1s' });
    const [gone] = await addOk(conf, { containerId: 'a', args: pod('ns', 'a', { RESERVOIR_KIND: 'stateful', RESERVOIR_GROUP: 'db' }) });
    const [back] = await addOk(conf, { containerId: 'b', args: pod('ns', 'b', { RESERVOIR_KIND: 'stateful', RESERVOIR_GROUP: 'db' }) });
    const [stays] = await addOk(conf, { containerId: 'c', args: pod('ns', 'c', { RESERVOIR_KIND: 'stateful' }) });
    await delOk(conf, { containerId: 'a' });
    await delOk(conf, { containerId: 'b' });
    const expire = () => td.daemon.queue.run(() => td.daemon.operator.expireHolds());
    td.clock.advance(999);
    expect(await expire()).toBe(0); // within holdFor: not yet
    expect((await usageOf(td.socket, 'one')).held).toBe(2);
    // b comes back in time; a does not.
    expect(await addOk(conf, { containerId: 'b2', args: pod('ns', 'b', { RESERVOIR_KIND: 'stateful', RESERVOIR_GROUP: 'db' }) })).toEqual([back]);
    td.clock.advance(2);
    expect(await expire()).toBe(1);
    const states = await reservedStates(td.socket, 'one');
    expect(states.get(gone!).state).toBe('free');
    expect(states.get(back!).state).toBe('leased');
    expect((await leases()).map((l) => l.ip).sort()).toEqual([back, stays].sort());
    // An attached stateful lease never expires, however old; a new DEL starts a new hold.
    td.clock.advance(3_600_000);
    expect(await expire()).toBe(0);
    await delOk(conf, { containerId: 'c' });
    td.clock.advance(999);
    expect(await expire()).toBe(0);
    td.clock.advance(2);
    expect(await expire()).toBe(1);
    expect((await leases()).map((l) => l.ip)).toEqual([back]);
    // After expiry the app gets a fresh IP like anyone: the old one may go to others meanwhile.
    expect(await addOk(conf, { containerId: 'x', args: { IP: gone! } })).toEqual([gone]);
  });

  it('holdFor below the 1s minimum is an invalid config; without holdFor holds never expire', async () => {
    expect((await addErr(single({ holdFor: '500ms' }), { containerId: 'a' })).code).toBe(7);
    await addOk(single(), { containerId: 'a', args: pod('ns', 'a', { RESERVOIR_KIND: 'stateful' }) });
    await delOk(single(), { containerId: 'a' });
    td.clock.advance(10 * 365 * 86_400_000);
    expect(await td.daemon.queue.run(() => td.daemon.operator.expireHolds())).toBe(0);
    expect((await usageOf(td.socket, 'one')).held).toBe(1);
  });
});

describe('rule 11: GET leases lists attachments and holds with app, kind, IPs, age', () => {
  it('lists both, filtered by network, with their age from the daemon clock', async () => {
    await addOk(single(), { containerId: 'web-1', args: pod('shop', 'web-1') });
    td.clock.advance(5_000);
    const pg = await addOk(dual(), { containerId: 'pg-1', args: pod('shop', 'pg-0', { RESERVOIR_KIND: 'stateful', RESERVOIR_GROUP: 'db' }) });
    td.clock.advance(7_000);
    await delOk(dual(), { containerId: 'pg-1' });
    td.clock.advance(3_000);
    const all = await leases();
    expect(all).toEqual([
      expect.objectContaining({ network: 'dual', ip: pg[0], containerId: null, ifname: null, app: 'shop/pg-0', kind: 'stateful', state: 'held', reserved: true, ageSeconds: 10 }),
      expect.objectContaining({ network: 'dual', ip: pg[1], containerId: null, ifname: null, app: 'shop/pg-0', kind: 'stateful', state: 'held', reserved: true, ageSeconds: 10 }),
      expect.objectContaining({ network: 'one', ip: '10.70.0.10', containerId: 'web-1', ifname: 'eth0', app: 'shop/web-1', kind: 'stateless', state: 'attached', reserved: false, ageSeconds: 15 }),
    ]);
    expect(pg[0]).toMatch(/^10\.80\.0\.3[0-4]$/);
    expect(pg[1]).toMatch(/^fd00:80::3[0-4]$/);
    expect((await leases('one')).map((l) => l.ip)).toEqual(['10.70.0.10']);
    expect((await opErr(td.socket, 'leases', { query: { network: 'nosuch' } })).code).toBe(107);
  });
});
