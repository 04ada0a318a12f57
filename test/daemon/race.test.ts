// Races on reserved IPs: many ADDs asking for the same free reserved IP at once. Exactly one wins;
// every other gets 101 naming the winner's container and offering up to 5 free reserved IPs of
// the same group. Once in-process (50 concurrent runPlugin calls), once with 50 real plugin
// processes (the shipped plugin executable).
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bundlesReady } from '../support/build.js';
import { netconf } from '../support/netconf.js';
import { runPlugin } from '../support/plugin.js';
import { type PluginOutcome, type TestDaemon, addOk, ipsOf, op, plugin, reservedStates, startTestDaemon } from './support.js';

const RACERS = 50;

let td: TestDaemon;
beforeEach(async () => {
  td = await startTestDaemon();
});
afterEach(async () => {
  await td.close();
});

/** .20-.29 group "db", .30-.31 group "tiny", .32 ungrouped. */
const conf = () =>
  netconf('race', td.socket, {
    ranges: [[{ subnet: '10.99.0.0/24', rangeStart: '10.99.0.10', rangeEnd: '10.99.0.60' }]],
    reserved: [{ entry: '10.99.0.20-10.99.0.29', group: 'db' }, { entry: '10.99.0.30-10.99.0.31', group: 'tiny' }, '10.99.0.32'],
  });

const ids = Array.from({ length: RACERS }, (_, i) => `racer-${String(i).padStart(2, '0')}`);

/** One winner with the IP; every loser 101 naming the winner and offering `offered` exactly. */
function judge(outcomes: Array<{ id: string; exit: number; out: Record<string, unknown> }>, ip: string, offered: string[]): string {
  const winners = outcomes.filter((o) => o.exit === 0);
  expect(winners.map((w) => w.id)).toHaveLength(1);
  const winner = winners[0]!;
  expect(ipsOf(winner.out)).toEqual([ip]);
  const losers = outcomes.filter((o) => o.exit !== 0);
  expect(losers).toHaveLength(RACERS - 1);
  for (const loser of losers) {
    const { code, msg } = loser.out as { code: number; msg: string };
    expect(code).toBe(101);
    expect(msg).toContain(`requested IP ${ip} is in use by container ${winner.id}`);
    for (const other of outcomes) if (other !== winner) expect(msg).not.toContain(other.id);
    const listed = /: ([\d., ]+)$/.exec(msg)?.[1]?.split(', ') ?? [];
    expect(listed).toEqual(offered);
  }
  return winner.id;
}

describe('rule 7: concurrent requests for the same free reserved IP', () => {
  it('50 concurrent in-process plugin ADDs: exactly one wins, the rest get 101 with the holder and 5 free IPs of the group', async () => {
    await addOk(conf(), { containerId: 'warmup', args: { IP: '10.99.0.21' } }); // registers the network, takes one of the group
    const outcomes = await Promise.all(
      ids.map(async (id) => ({ id, ...(await plugin('ADD', conf(), { containerId: id, args: { IP: '10.99.0.24' } })) })),
    );
    const winner = judge(outcomes, '10.99.0.24', ['10.99.0.20', '10.99.0.22', '10.99.0.23', '10.99.0.25', '10.99.0.26']);
    const used = await reservedStates(td.socket, 'race', 'used');
    expect([...used.keys()]).toEqual(['10.99.0.21', '10.99.0.24']);
    expect(used.get('10.99.0.24').attachment).toBe(`${winner}/eth0`);
    expect((await op(td.socket, 'leases')).leases).toHaveLength(2);
  });

  it('the offer lists fewer when the group has fewer free, and none left is said so', async () => {
    await addOk(conf(), { containerId: 'warmup' });
    const outcomes = await Promise.all(
      ids.map(async (id) => ({ id, ...(await plugin('ADD', conf(), { containerId: id, annotations: { 'reservoir.io/ip': '10.99.0.30' } })) })),
    );
    judge(outcomes, '10.99.0.30', ['10.99.0.31']);
    await addOk(conf(), { containerId: 'last', args: { RESERVOIR_GROUP: 'tiny' } });
    const none = await plugin('ADD', conf(), { containerId: 'late', args: { IP: '10.99.0.31' } });
    expect(none.out).toMatchObject({ code: 101 });
    expect(none.out.msg).toContain('container last');
    expect(none.out.msg).toContain('no free IP left in reserved group "tiny"');
  });

  it('50 concurrent group requests for a group of 10: 10 distinct IPs of it, 40 get 103', async () => {
    await addOk(conf(), { containerId: 'warmup' });
    const outcomes = await Promise.all(ids.map((id) => plugin('ADD', conf(), { containerId: id, args: { RESERVOIR_GROUP: 'db' } })));
    const won = outcomes.filter((o) => o.exit === 0).flatMap((o) => ipsOf(o.out));
    expect(won.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `10.99.0.${20 + i}`));
    const lost = outcomes.filter((o) => o.exit !== 0);
    expect(lost).toHaveLength(40);
    for (const o of lost) expect(o.out.code).toBe(103);
  });
});

describe('rule 7 with real plugin processes', () => {
  beforeAll(() => bundlesReady(), 120_000);

  it('50 concurrent plugin processes ADD: exactly one wins, the rest get 101 with the holder and 5 free IPs', async () => {
    await addOk(conf(), { containerId: 'warmup', args: { IP: '10.99.0.20' } });
    const config = JSON.stringify(conf());
    const outcomes = await Promise.all(ids.map(async (id) => ({ id, ...(await runProcess(id, config, 'IP=10.99.0.27')) })));
    const winner = judge(outcomes, '10.99.0.27', ['10.99.0.21', '10.99.0.22', '10.99.0.23', '10.99.0.24', '10.99.0.25']);
    const used = await reservedStates(td.socket, 'race', 'used');
    expect([...used.keys()]).toEqual(['10.99.0.20', '10.99.0.27']);
    expect(used.get('10.99.0.27').attachment).toBe(`${winner}/eth0`);
  }, 120_000);
});

/** The shipped plugin as a process (test/support/plugin.ts), as the runtime runs it. */
async function runProcess(containerId: string, config: string, args: string): Promise<PluginOutcome> {
  const run = await runPlugin({ command: 'ADD', containerId, args, config });
  if (run.json === undefined || run.json.unparsable !== undefined) {
    throw new Error(`plugin ${containerId} exited ${run.exitCode} with stdout ${JSON.stringify(run.stdout)} stderr ${run.stderr.slice(0, 2000)}`);
  }
  return { exit: run.exitCode ?? -1, out: run.json as Record<string, unknown> };
}
