// Every unit of work may run more than once (daemon/store.ts): a store that retries a unit after
// a conflict runs it, rolls it back and runs it again. The same scenario, through the real
// services, the socket and the write queue, on two daemons with real SQLite files: one plain, one
// whose store rehearses every unit first (test/support/rerun-store.ts). Both must answer every
// request alike (values and errors), and log, count (history, ledger, metrics) and remember
// (stale configs, reserved conflicts) exactly alike: a rehearsal leaves no trace but in the store.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../daemon/log.js';
import type { Store } from '../../daemon/store.js';
import { RerunStore } from '../support/rerun-store.js';
import { conflist, netconf } from '../support/netconf.js';
import { removeDir, tempDir } from '../support/tmp.js';
import { type TestDaemon, op, plugin, startTestDaemon, waitFor } from './support.js';

const opened: TestDaemon[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const td of opened.splice(0)) await td.close();
  for (const dir of dirs.splice(0)) removeDir(dir);
});

const FILED = {
  ranges: [[{ subnet: '10.61.0.0/24' }]],
  reserved: ['10.61.0.2-10.61.0.4', { entry: '10.61.0.20-10.61.0.29', group: 'db', namespaces: ['db'] }],
};
const FILED_EDITED = { ranges: FILED.ranges, reserved: ['10.61.0.2-10.61.0.4', { entry: '10.61.0.20-10.61.0.29', group: 'db' }, '10.61.0.100'] };
const ASKED_V1 = { ranges: [[{ subnet: '10.62.0.0/24', rangeStart: '10.62.0.10' }]], reserved: ['10.62.0.50'] };
/** The range shrinks away from 10.62.0.10 (a misfit), and an entry lands on the leased 10.62.0.12 (a conflict). */
const ASKED_V2 = { ranges: [[{ subnet: '10.62.0.0/24', rangeStart: '10.62.0.11' }]], reserved: ['10.62.0.50', '10.62.0.12'] };

interface Run {
  /** Every answer, in order: "step: value" or "step: error CODE message". */
  readonly transcript: string[];
  /** Log lines without their time. */
  readonly logs: string[];
  readonly history: string[];
  readonly metrics: string[];
  readonly store: Store;
}

/** The scenario on a fresh daemon; `wrap` is the store around its SQLite store, if any. */
async function scenario(label: string, wrap?: (store: Store) => Store): Promise<Run> {
  const confDir = tempDir(`${label}-conf`);
  dirs.push(confDir);
  const lines: string[] = [];
  const log = createLogger('debug', (line) => void lines.push(line));
  let store: Store | undefined;
  const td = await startTestDaemon({
    cniConfDir: confDir,
    log,
    wrapStore: (opened) => (store = wrap ? wrap(opened) : opened),
  });
  opened.push(td);
  const socket = td.socket;
  const normalize = (text: string) => text.replaceAll(td.dir, '<dir>').replaceAll(confDir, '<conf>');
  const transcript: string[] = [];
  const record = async (step: string, call: () => Promise<unknown>) => {
    try {
      transcript.push(normalize(`${step}: ${JSON.stringify(await call())}`));
    } catch (err) {
      const e = err as { codeName?: string; message: string };
      transcript.push(normalize(`${step}: error ${e.codeName ?? ''} ${e.message}`));
    }
  };
  const cni = (step: string, command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS', conf: Record<string, unknown>, call: Parameters<typeof plugin>[2] = {}) =>
    record(step, async () => {
      const { exit, out } = await plugin(command, conf, call);
      return { exit, out };
    });
  const writeFiled = (ipam: Record<string, unknown>) => writeFileSync(join(confDir, '10-filed.conflist'), JSON.stringify(conflist('filed', socket, ipam)));
  const entries = async (network: string) => ((await op(socket, 'reservedList', { params: { network } })).entries as Array<{ entry: string }>).map((e) => e.entry).join(',');

  // A network from a file, and ADDs that carry its config or a stale one.
  writeFiled(FILED);
  await waitFor(async () => (await op(socket, 'usage')).networks.find((n: { network: string }) => n.network === 'filed'), 8_000, 'network filed');
  const filed = netconf('filed', socket, FILED);
  const stale = netconf('filed', socket, { ranges: FILED.ranges });
  const db = { K8S_POD_NAMESPACE: 'db', K8S_POD_NAME: 'db-0', RESERVOIR_KIND: 'stateful' };
  await cni('add a1', 'ADD', filed, { containerId: 'a1' });
  await cni('add stale-1', 'ADD', stale, { containerId: 'stale-1' });
  await cni('add stale-2', 'ADD', stale, { containerId: 'stale-2' });
  await record('stale requests', async () => (await op(socket, 'usage')).networks.find((n: { network: string }) => n.network === 'filed').staleRequests);
  await cni('add db-0 requested reserved', 'ADD', filed, { containerId: 'db0-c1', args: { ...db, IP: '10.61.0.20' } });
  await cni('add from another namespace (117, a refusal)', 'ADD', filed, { containerId: 'web', args: { K8S_POD_NAMESPACE: 'web', K8S_POD_NAME: 'w', IP: '10.61.0.21' } });
  await cni('add lost race (101, a refusal)', 'ADD', filed, { containerId: 'racer', args: { K8S_POD_NAMESPACE: 'db', K8S_POD_NAME: 'r', IP: '10.61.0.20' } });
  await cni('add by group', 'ADD', filed, { containerId: 'grp', args: { K8S_POD_NAMESPACE: 'db', K8S_POD_NAME: 'g', RESERVOIR_GROUP: 'db' } });
  await cni('add unknown group', 'ADD', filed, { containerId: 'nogrp', args: { RESERVOIR_GROUP: 'none' } });
  await cni('repeated add a1', 'ADD', filed, { containerId: 'a1' });
  // A stateful hold: DEL keeps it, the next container gets it back; a second live container is refused or takes over.
  await cni('del db-0', 'DEL', filed, { containerId: 'db0-c1', args: db });
  await cni('add db-0 again (reattached)', 'ADD', filed, { containerId: 'db0-c2', args: db });
  await cni('add db-0 in a third container', 'ADD', filed, { containerId: 'db0-c3', args: db });
  await cni('check a1', 'CHECK', { ...filed, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.61.0.5/24' }] } }, { containerId: 'a1' });
  await cni('check nobody', 'CHECK', filed, { containerId: 'nobody' });
  await cni('status filed', 'STATUS', filed);
  await record('usage filed', async () => (await op(socket, 'usage')).networks.find((n: { network: string }) => n.network === 'filed'));

  // A network learned from requests, then changed under its leases: a misfit, a conflict.
  const askedV1 = netconf('asked', socket, ASKED_V1);
  const askedV2 = netconf('asked', socket, ASKED_V2);
  for (const id of ['b1', 'b2', 'b3']) await cni(`add ${id} to asked`, 'ADD', askedV1, { containerId: id });
  await cni('add b4 with a changed config', 'ADD', askedV2, { containerId: 'b4' });
  await cni('repeated add of the misfit b1 (119)', 'ADD', askedV2, { containerId: 'b1' });
  await record('misfits', () => op(socket, 'misfits', { params: { network: 'asked' } }));
  await record('release misfits', () => op(socket, 'misfitsRelease', { params: { network: 'asked' } }));
  await record('reserved list asked', () => op(socket, 'reservedList', { params: { network: 'asked' } }));

  // The operator's reserved entries: add, a refused add (105, a refusal), set, remove, a config entry (118).
  await record('reserved add', () => op(socket, 'reservedAdd', { params: { network: 'asked' }, body: { entry: '10.62.0.60-10.62.0.69', group: 'x' } }));
  await record('reserved add over a lease (105)', () => op(socket, 'reservedAdd', { params: { network: 'asked' }, body: { entry: '10.62.0.11' } }));
  await record('reserved add overlapping (106)', () => op(socket, 'reservedAdd', { params: { network: 'asked' }, body: { entry: '10.62.0.65' } }));
  await record('reserved set', () => op(socket, 'reservedSet', { params: { network: 'asked' }, body: { entry: '10.62.0.60-10.62.0.69', to: '10.62.0.60-10.62.0.65', note: 'n' } }));
  await record('reserved rm', () => op(socket, 'reservedRemove', { params: { network: 'asked' }, query: { entry: '10.62.0.60-10.62.0.65' } }));
  await record('reserved rm of a config entry (118)', () => op(socket, 'reservedRemove', { params: { network: 'asked' }, query: { entry: '10.62.0.50' } }));
  await cni('del b3', 'DEL', askedV2, { containerId: 'b3' });
  await cni('add b5 (the conflict can apply now that 10.62.0.12 is free)', 'ADD', askedV2, { containerId: 'b5' });
  await record('reserved list asked after', () => op(socket, 'reservedList', { params: { network: 'asked' } }));

  // Releases: an attached hold is refused, a detached one goes; GC; the file edited.
  await record('release attached hold', () => op(socket, 'release', { body: { network: 'filed', app: 'db/db-0' } }));
  await cni('del db-0 again', 'DEL', filed, { containerId: 'db0-c2', args: db });
  await cni('del db-0 third', 'DEL', filed, { containerId: 'db0-c3', args: db });
  await record('release hold', () => op(socket, 'release', { body: { network: 'filed', app: 'db/db-0' } }));
  await record('release unknown', () => op(socket, 'release', { body: { network: 'filed', app: 'db/db-0' } }));
  await cni('gc filed', 'GC', { ...filed, 'cni.dev/valid-attachments': [{ containerID: 'a1', ifname: 'eth0' }] });
  writeFiled(FILED_EDITED);
  await waitFor(async () => ((await entries('filed')) === '10.61.0.2-10.61.0.4,10.61.0.20-10.61.0.29,10.61.0.100' ? true : undefined), 8_000, 'the edited file applied');
  await cni('add from another namespace after the edit', 'ADD', filed, { containerId: 'web2', args: { K8S_POD_NAMESPACE: 'web', K8S_POD_NAME: 'w2', IP: '10.61.0.21' } });
  await cni('status asked', 'STATUS', askedV2);

  for (const network of ['filed', 'asked']) {
    await record(`reserved list ${network}`, () => op(socket, 'reservedList', { params: { network } }));
    await record(`leases ${network}`, () => op(socket, 'leases', { query: { network } }));
  }
  await record('usage', () => op(socket, 'usage'));
  const health = await op(socket, 'health');
  transcript.push(`health: staleConfigs ${health.staleConfigs}`);
  const history = [] as string[];
  for (const network of ['filed', 'asked']) {
    for (const event of (await op(socket, 'history', { params: { network }, query: { limit: '1000' } })).events) history.push(normalize(JSON.stringify(event)));
  }
  const exposition = (await td.daemon.metrics.exposition()).text;
  const metrics = exposition.split('\n').filter((l) => l.startsWith('reservoir_') && !l.includes('_duration_seconds'));
  const logs = lines.map((line) => {
    const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
    return normalize(JSON.stringify(rest));
  });
  return { transcript, logs, history, metrics, store: store! };
}

describe('a unit of work run twice has the effect of running it once', () => {
  it('ADD, DEL, CHECK, GC, STATUS, reserved entries, releases, misfits, holds, refusals and config changes: same answers, logs, history and metrics', async () => {
    const once = await scenario('once');
    const twice = await scenario('twice', (store) => new RerunStore(store));
    const rerun = twice.store as RerunStore;

    // The rehearsals happened, and a rehearsal answered as the real run did.
    expect(rerun.stats.units).toBeGreaterThan(35);
    expect(rerun.stats.droppedEffects).toBeGreaterThan(20);
    expect(rerun.stats.droppedRegardless).toBeGreaterThanOrEqual(3); // the refusals of 117, 101 (twice) and 105
    expect(rerun.mismatches).toEqual([]);

    expect(twice.transcript).toEqual(once.transcript);
    expect(twice.logs).toEqual(once.logs);
    expect(twice.history).toEqual(once.history);
    expect(twice.metrics).toEqual(once.metrics);

    // And what "once" means, checked on the rerun daemon itself.
    const count = (lines: readonly string[], text: string) => lines.filter((l) => l.includes(text)).length;
    expect(count(twice.logs, '"msg":"network registered"')).toBe(4); // filed (file), asked (request), asked changed, filed edited
    // once per distinct stale config: `stale` twice, then the old file config once the file changed
    expect(count(twice.logs, "another config than the network's config file")).toBe(2);
    expect(count(twice.logs, '"msg":"reserved config conflict"')).toBe(1);
    expect(count(twice.logs, 'leases no longer fit the changed network config')).toBe(1);
    expect(count(twice.logs, '"msg":"reserved entry added"')).toBe(1);
    expect(count(twice.logs, '"msg":"reserved entry changed"')).toBe(1);
    expect(count(twice.logs, '"msg":"reserved entry removed"')).toBe(1);
    expect(count(twice.logs, '"msg":"stateful hold released"')).toBe(1);
    expect(count(twice.logs, '"msg":"gc released leases"')).toBe(1);
    const refusals = twice.history.filter((h) => h.includes('"event":"refusal"'));
    expect(refusals.map((h) => (JSON.parse(h) as { reason: string }).reason).sort()).toEqual(['forbidden', 'in_use', 'lost_race', 'refused_change']);
    expect(twice.transcript).toContainEqual(expect.stringMatching(/^add stale-2: .*"exit":0/));
    expect(twice.transcript.find((t) => t.startsWith('stale requests: '))).toContain('"requests":2');
    const refusalMetrics = twice.metrics.filter((m) => m.startsWith('reservoir_reserved_refusals_total{'));
    expect(refusalMetrics.map((m) => /reason="(\w+)"/.exec(m)![1]).sort()).toEqual(['forbidden', 'in_use', 'lost_race', 'refused_change']);
    for (const line of refusalMetrics) expect(line).toMatch(/ 1$/);
  }, 60_000);
});
