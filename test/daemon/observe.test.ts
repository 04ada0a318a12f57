// Issue 13: metrics, per-IP history and the read-only status port, against a real daemon (temp
// socket, temp SQLite file, TCP on 127.0.0.1 with an ephemeral port).
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../ctl/main.js';
import { ipGauges } from '../../daemon/metrics.js';
import { callDaemonRaw } from '../../src/client.js';
import type { HistoryEntryView, StatusView, UsageView } from '../../src/protocol.js';
import { usageOf } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { type RawAnswer, rawRequest } from '../support/http.js';
import { metricValue } from '../support/metrics.js';
import { netconf } from '../support/netconf.js';
import { PROMTOOL } from '../support/prereqs.js';
import { type TestDaemon, addErr, addOk, delOk, op, opErr, startTestDaemon, waitFor } from './support.js';

async function tcp(td: TestDaemon, method: string, path: string, body?: string): Promise<{ status: number; headers: RawAnswer['headers']; body: string }> {
  const { port } = td.daemon.status!.server.address() as AddressInfo;
  const answer = await rawRequest({ port, method, path, body });
  return { status: answer.status, headers: answer.headers, body: answer.text };
}

async function ctl(td: TestDaemon, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main({ argv, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { RESERVOIR_SOCKET: td.socket } });
  return { code, stdout, stderr };
}

async function scrape(td: TestDaemon): Promise<string> {
  const reply = await tcp(td, 'GET', '/metrics');
  expect(reply.status).toBe(200);
  expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return reply.body;
}

async function history(td: TestDaemon, network: string, ip?: string): Promise<HistoryEntryView[]> {
  const run = await ctl(td, 'history', network, ...(ip ? [ip] : []), '-o', 'json');
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { events: HistoryEntryView[] }).events;
}

const pod = (name: string, extra: Record<string, string> = {}) => ({ K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: name, ...extra });

/** Two dynamic pods (one deleted), a reserved claim, a stateful hold, a lost race, a claim of a held IP, a refused `reserved rm` and `reserved add`. */
async function activity(td: TestDaemon, conf: Record<string, unknown>): Promise<void> {
  await addOk(conf, { containerId: 'dyn1', args: pod('a') });
  await addOk(conf, { containerId: 'dyn2', args: pod('a2') });
  expect(await addOk(conf, { containerId: 'asker', args: pod('b', { IP: '10.50.0.20' }) })).toEqual(['10.50.0.20']);
  expect(await addOk(conf, { containerId: 'keeper', args: pod('c', { RESERVOIR_GROUP: 'g', RESERVOIR_KIND: 'stateful' }) })).toEqual(['10.50.0.21']);
  await delOk(conf, { containerId: 'keeper' });
  expect((await addErr(conf, { containerId: 'racer', args: pod('d', { IP: '10.50.0.20' }) })).code).toBe(101);
  expect((await addErr(conf, { containerId: 'taker', args: pod('e', { IP: '10.50.0.21' }) })).code).toBe(101);
  // The config's entry changes only in the config (118); reserving IPs in use is refused naming them (105).
  expect((await opErr(td.socket, 'reservedRemove', { params: { network: 'obs' }, query: { entry: '10.50.0.20-10.50.0.24' } })).code).toBe(118);
  expect((await opErr(td.socket, 'reservedAdd', { params: { network: 'obs' }, body: { entry: '10.50.0.10-10.50.0.11' } })).code).toBe(105);
  await delOk(conf, { containerId: 'dyn2' });
}

const obsConf = (socket: string) =>
  netconf('obs', socket, {
    ranges: [[{ subnet: '10.50.0.0/24', rangeStart: '10.50.0.10', rangeEnd: '10.50.0.29' }]],
    reserved: [{ entry: '10.50.0.20-10.50.0.24', group: 'g' }],
  });

describe('metrics, history and the status port', () => {
  let td: TestDaemon;
  let conf: Record<string, unknown>;

  beforeEach(async () => {
    td = await startTestDaemon({ httpListen: { host: '127.0.0.1', port: 0 }, nodeName: 'node-a' });
    conf = obsConf(td.socket);
  });

  afterEach(async () => {
    await td.close();
  });

  it('counts what happened, and agrees with reservoirctl usage -o json', async () => {
    await activity(td, conf);
    const text = await scrape(td);
    const ips = (pool: string, state: string) => metricValue(text, 'reservoir_ips', { network: 'obs', pool, state });
    expect([ips('dynamic', 'free'), ips('dynamic', 'leased'), ips('dynamic', 'held')]).toEqual([14, 1, 0]);
    expect([ips('reserved', 'free'), ips('reserved', 'leased'), ips('reserved', 'held')]).toEqual([3, 1, 1]);
    expect(metricValue(text, 'reservoir_cni_requests_total', { command: 'ADD', code: '0' })).toBe(4);
    expect(metricValue(text, 'reservoir_cni_requests_total', { command: 'ADD', code: '101' })).toBe(2);
    expect(metricValue(text, 'reservoir_cni_requests_total', { command: 'DEL', code: '0' })).toBe(2);
    const refusals = (reason: string) => metricValue(text, 'reservoir_reserved_refusals_total', { network: 'obs', reason });
    expect([refusals('lost_race'), refusals('in_use'), refusals('refused_change')]).toEqual([1, 1, 1]);
    expect(metricValue(text, 'reservoir_cni_request_duration_seconds_count', { command: 'ADD' })).toBe(6);
    expect(metricValue(text, 'reservoir_store_commit_duration_seconds_count')).toBeGreaterThanOrEqual(8);
    expect(metricValue(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const usage = await ctl(td, 'usage', 'obs', '-o', 'json');
    expect(usage.code, usage.stderr).toBe(0);
    const [view] = (JSON.parse(usage.stdout) as { networks: UsageView[] }).networks;
    for (const gauge of ipGauges(view!)) expect(ips(gauge.pool, gauge.state), `${gauge.pool} ${gauge.state}`).toBe(gauge.value);
    expect(view).toMatchObject({ size: '20', dynamicSize: '15', dynamicInUse: 1, reservedUsed: 2, reservedHeld: 1, held: 1, attached: 2 });
    // the page reads the same numbers
    const status = JSON.parse((await tcp(td, 'GET', '/api/status')).body) as StatusView;
    expect(status.networks).toEqual([view]);
    expect(status.node).toBe('node-a');
  });

  it('counts a claim refused for another namespace (117) as forbidden, and keeps it in the history', async () => {
    const guarded = netconf('guarded', td.socket, {
      ranges: [[{ subnet: '10.51.0.0/24' }]],
      reserved: [{ entry: '10.51.0.20-10.51.0.24', group: 'db', namespaces: ['db'] }],
    });
    await addOk(guarded, { containerId: 'member', args: { K8S_POD_NAMESPACE: 'db', K8S_POD_NAME: 'm' } }); // registers the network
    expect((await addErr(guarded, { containerId: 'intruder', args: pod('x', { IP: '10.51.0.20' }) })).code).toBe(117);
    expect((await addErr(guarded, { containerId: 'intruder', args: pod('x', { RESERVOIR_GROUP: 'db' }) })).code).toBe(117);
    const text = await scrape(td);
    expect(metricValue(text, 'reservoir_reserved_refusals_total', { network: 'guarded', reason: 'forbidden' })).toBe(2);
    expect(metricValue(text, 'reservoir_cni_requests_total', { command: 'ADD', code: '117' })).toBe(2);
    const [refusal, ...rest] = await history(td, 'guarded', '10.51.0.20');
    expect(rest).toEqual([]);
    expect(refusal).toMatchObject({ event: 'refusal', reason: 'forbidden', app: 'default/x', containerId: 'intruder', holder: null });
    expect(refusal!.detail).toMatch(/only for namespaces db/);
  });

  it('a config that reserves IPs in use waits for them, then moves the counts as a fresh count at start-up does', async () => {
    const plain = netconf('obs', td.socket, { ranges: [[{ subnet: '10.50.0.0/24', rangeStart: '10.50.0.10', rangeEnd: '10.50.0.29' }]] });
    for (const id of ['p0', 'p1', 'p2']) await addOk(plain, { containerId: id });
    expect(await usageOf(td.socket, 'obs')).toMatchObject({ dynamicInUse: 3, reservedUsed: 0 });
    // the next call brings a config whose reserved entry covers two of those leases
    const reserving = netconf('obs', td.socket, {
      ranges: [[{ subnet: '10.50.0.0/24', rangeStart: '10.50.0.10', rangeEnd: '10.50.0.29' }]],
      reserved: ['10.50.0.11-10.50.0.15'],
    });
    // A config entry is never put over live leases (the rule the operator's `reserved add` has): not applied, reported.
    expect(await addOk(reserving, { containerId: 'p3' })).toEqual(['10.50.0.13']);
    const kept = await usageOf(td.socket, 'obs');
    expect(kept).toMatchObject({ dynamicInUse: 4, reservedUsed: 0, reservedTotal: '0' });
    expect((await op(td.socket, 'reservedList', { params: { network: 'obs' } })).conflicts).toHaveLength(1);
    await td.restart();
    expect(await usageOf(td.socket, 'obs')).toEqual(kept);
    // Once the leases there are gone, the entry is applied and the counts move between the pools.
    for (const id of ['p0', 'p1', 'p2', 'p3']) await delOk(reserving, { containerId: id });
    await addOk(reserving, { containerId: 'p4' });
    const applied = await usageOf(td.socket, 'obs');
    expect(applied).toMatchObject({ dynamicInUse: 1, reservedUsed: 0, reservedTotal: '5' });
    await td.restart();
    expect(await usageOf(td.socket, 'obs')).toEqual(applied);
  });

  it('a lost race inside one group commit: one winner, the losers counted and in the history, the counts exact', async () => {
    const racers = Array.from({ length: 12 }, (_, i) => `racer${i}`);
    const outcomes = await Promise.all(racers.map((id) => addErr(conf, { containerId: id, args: pod(id, { IP: '10.50.0.22' }) }).catch(() => undefined)));
    // addErr throws for the one ADD that succeeded
    const lost = outcomes.filter((o) => o !== undefined);
    expect(lost.map((o) => o!.code)).toEqual(Array(11).fill(101));
    expect(td.daemon.queue.stats.batches).toBeLessThan(12); // they did share commits
    const text = await scrape(td);
    expect(metricValue(text, 'reservoir_reserved_refusals_total', { network: 'obs', reason: 'lost_race' })).toBe(11);
    expect(metricValue(text, 'reservoir_ips', { network: 'obs', pool: 'reserved', state: 'leased' })).toBe(1);
    expect(metricValue(text, 'reservoir_ips', { network: 'obs', pool: 'reserved', state: 'free' })).toBe(4);
    const events = await history(td, 'obs', '10.50.0.22');
    expect(events.filter((e) => e.event === 'claim')).toHaveLength(1);
    const winner = events.find((e) => e.event === 'claim')!.app;
    const refusals = events.filter((e) => e.event === 'refusal');
    expect(refusals).toHaveLength(11);
    for (const refusal of refusals) {
      expect(refusal).toMatchObject({ reason: 'lost_race', node: 'node-a' });
      expect(refusal.holder).toContain(winner!);
      expect(refusal.app).not.toBe(winner);
    }
  });

  it('keeps the history of an IP in time order, across a restart', async () => {
    await activity(td, conf);
    const before = await history(td, 'obs', '10.50.0.21');
    expect(before.map((e) => [e.event, e.reason, e.app])).toEqual([
      ['claim', 'group', 'default/c'],
      ['hold', 'del', 'default/c'],
      ['refusal', 'in_use', 'default/e'],
    ]);
    expect(before[0]).toMatchObject({ containerId: 'keeper', ifname: 'eth0', kind: 'stateful', node: 'node-a' });
    expect(before[2]!.holder).toBe('stateful app default/c (held, no container attached)');
    const refused = (await history(td, 'obs', '10.50.0.10')).filter((e) => e.event === 'refusal');
    expect(refused.map((e) => [e.reason, e.app])).toEqual([['refused_change', 'operator']]);
    expect(refused[0]!.detail).toMatch(/cannot reserve "10\.50\.0\.10-10\.50\.0\.11"/);
    const usage = await usageOf(td.socket, 'obs');

    await td.restart();
    expect(await history(td, 'obs', '10.50.0.21')).toEqual(before);
    expect(await usageOf(td.socket, 'obs')).toEqual(usage); // counted again at start-up: the same
    const all = await history(td, 'obs');
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => a - b));
    expect(all.filter((e) => e.ip === '10.50.0.11').map((e) => [e.event, e.reason])).toEqual([
      ['claim', 'dynamic'],
      ['refusal', 'refused_change'],
      ['release', 'del'],
    ]);
    const table = await ctl(td, 'history', 'obs', '10.50.0.20');
    expect(table.stdout).toMatch(/^TIME\s+IP\s+EVENT\s+WHY\s+WHO\s+NODE\s+HELD BY\n/);
    expect(table.stdout).toMatch(/10\.50\.0\.20\s+refusal\s+lost_race\s+default\/d racer\/eth0\s+node-a\s+container asker/);
  });

  it('drops the oldest history beyond the retention', async () => {
    await td.close();
    td = await startTestDaemon({ historyMaxEvents: 5, historyMaxAgeMs: 60_000 });
    conf = netconf('obs', td.socket, { ranges: [[{ subnet: '10.50.0.0/24', rangeStart: '10.50.0.10', rangeEnd: '10.50.0.29' }]] });
    for (let i = 0; i < 6; i++) {
      await addOk(conf, { containerId: `c${i}` });
      await delOk(conf, { containerId: `c${i}` });
    }
    expect(await td.daemon.pruneHistory()).toBe(7);
    const kept = await history(td, 'obs');
    expect(kept).toHaveLength(5);
    expect(kept.at(-1)).toMatchObject({ event: 'release', containerId: 'c5' });
    td.clock.advance(61_000);
    await addOk(conf, { containerId: 'late' });
    expect(await td.daemon.pruneHistory()).toBe(5);
    expect((await history(td, 'obs')).map((e) => e.containerId)).toEqual(['late']);
  });

  it('answers 405 to every method but GET and HEAD, and serves no CNI or operator endpoint', async () => {
    await addOk(conf, { containerId: 'dyn1' });
    const add = JSON.stringify({ env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'tcp', CNI_IFNAME: 'eth0', CNI_NETNS: '/x', CNI_PATH: '/opt/cni/bin' }, config: conf });
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND']) {
      for (const path of ['/', '/metrics', '/api/status', '/v1/cni/add', '/v1/networks/obs/reserved', '/v1/release']) {
        const reply = await tcp(td, method, path, method === 'TRACE' ? undefined : add);
        expect(reply.status, `${method} ${path}`).toBe(405);
        expect(reply.headers.allow).toBe('GET, HEAD');
        expect(JSON.parse(reply.body).code).toBe(122);
      }
    }
    for (const path of ['/v1/usage', '/v1/leases', '/v1/backup', '/v1/health', '/v1/networks/obs/reserved', '/v1/cni/add']) {
      expect((await tcp(td, 'GET', path)).status, path).toBe(404);
    }
    expect((await tcp(td, 'HEAD', '/')).status).toBe(200);
    expect((await usageOf(td.socket, 'obs')).attached).toBe(1); // nothing was leased over TCP
    const page = await tcp(td, 'GET', '/');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body).not.toMatch(/https?:\/\//); // self-contained: nothing from elsewhere
  });

  it('pushes committed events to the event stream, coalesced', async () => {
    const { port } = td.daemon.status!.server.address() as AddressInfo;
    let received = '';
    const stream = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/api/events' }, resolve).on('error', reject).end();
    });
    expect(stream.headers['content-type']).toBe('text/event-stream');
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (received += chunk));
    await addOk(conf, { containerId: 'live', args: pod('live', { IP: '10.50.0.23' }) });
    await waitFor(async () => (received.includes('event: change') ? true : undefined), 5_000, 'a change event');
    const data = JSON.parse(/data: (.*)\n/.exec(received)![1]!) as { events: HistoryEntryView[] };
    expect(data.events).toEqual([expect.objectContaining({ event: 'claim', ip: '10.50.0.23', app: 'default/live', reason: 'requested' })]);
    stream.destroy();
  });
});

describeWithPrereqs('the exposition', ['promtool'], () => {
  let td: TestDaemon;
  let conf: Record<string, unknown>;

  beforeEach(async () => {
    td = await startTestDaemon({ nodeName: 'node-a' });
    conf = obsConf(td.socket);
  });

  afterEach(async () => {
    await td.close();
  });

  it('serves /metrics on the unix socket too, and the exposition passes promtool', async () => {
    await activity(td, conf);
    const text = (await callDaemonRaw('metrics', { socket: td.socket, timeoutMs: 5_000 })).toString('utf8');
    expect(metricValue(text, 'reservoir_ips', { network: 'obs', pool: 'reserved', state: 'held' })).toBe(1);
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
  });

});
