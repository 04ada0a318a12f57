// The pure parts of `check` across nodes: a node's report (counts, digest, capped lists, a value
// that stays small), when it is worth writing again, and what another node's report and etcd's
// claims say together (silent nodes, counts that disagree, findings left open).
import { describe, expect, it } from 'vitest';
import { REPORT_LIST_CAP, REPORT_MAX_BYTES, buildReport, capList, compareNodes, decodeRepairRequest, decodeReport, duration, encodeReport, journalCounts, sameContent, type CompareInput, type ReportInput } from '../../../daemon/cluster/node-report.js';
import type { ClusterCheckItem, ClusterCheckResponse, ClusterNodeReport } from '../../../src/protocol.js';

const row = (network: string, ip: number, state: 'attached' | 'releasing' | 'conflict' = 'attached') => ({ network, family: 4, ip: BigInt(ip), containerId: `c${ip}`, ifname: 'eth0', state });
const item = (n: number, network = 'net'): ClusterCheckItem => ({ network, ip: `10.0.0.${n % 250}`, holder: `container c${n}`, node: 'b', problem: 'etcd gives it to a container of this node that the journal does not know' });
const result = (over: Partial<ClusterCheckResponse> = {}): ClusterCheckResponse => ({ node: 'b', orphans: [], lost: [], conflicts: [], owed: 0, repaired: false, ...over });
const input = (over: Partial<ReportInput> = {}): ReportInput => ({ node: 'b', version: '0.1.0', startedAt: 1_000, now: 5_000, revision: 40, journal: [], lastCheck: undefined, repairedAt: null, repairId: null, ...over });

describe('a node report', () => {
  it('counts the journal by network and state, with a digest that follows its lines and not their order', () => {
    const counts = journalCounts([row('n1', 1), row('n1', 2, 'releasing'), row('n1', 3, 'conflict'), row('n2', 4)]);
    expect(Object.keys(counts)).toEqual(['n1', 'n2']);
    expect(counts.n1).toMatchObject({ attached: 1, releasing: 1, conflict: 1 });
    expect(counts.n2).toMatchObject({ attached: 1, releasing: 0, conflict: 0 });
    expect(journalCounts([row('n1', 3, 'conflict'), row('n1', 2, 'releasing'), row('n1', 1)]).n1!.digest).toBe(counts.n1!.digest);
    expect(journalCounts([row('n1', 1), row('n1', 2), row('n1', 3, 'conflict')]).n1!.digest).not.toBe(counts.n1!.digest);
    expect(counts.n1!.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(journalCounts([])).toEqual({});
  });

  it('keeps the first items of each list and their total, and cuts long texts', () => {
    const many = Array.from({ length: 250 }, (_, i) => item(i));
    const capped = capList(many);
    expect(capped.total).toBe(250);
    expect(capped.items).toHaveLength(REPORT_LIST_CAP);
    expect(capped.items[0]).toEqual(many[0]);
    const long = capList([{ ...item(1), problem: 'x'.repeat(5_000) }]);
    expect(long.items[0]!.problem.length).toBe(300);
    expect(long.items[0]!.problem.endsWith('…')).toBe(true);
  });

  it('builds from the journal and the last check, and reads back what it wrote', () => {
    const report = buildReport(input({ journal: [row('n', 1)], lastCheck: { at: 4_000, network: 'n', result: result({ orphans: [item(1, 'n')], repaired: true }) }, repairedAt: 4_000, repairId: 'a-1' }));
    expect(report).toMatchObject({ node: 'b', version: '0.1.0', startedAt: 1_000, writtenAt: 5_000, revision: 40, repairedAt: 4_000, repairId: 'a-1' });
    expect(report.lastCheck).toEqual({ at: 4_000, network: 'n', repaired: true, orphans: { total: 1, items: [item(1, 'n')] }, lost: { total: 0, items: [] }, conflicts: { total: 0, items: [] } });
    expect(decodeReport(encodeReport(report))).toEqual(report);
    expect(buildReport(input()).lastCheck).toBeNull();
    expect(decodeReport('not json')).toBeUndefined();
    expect(decodeReport('{"node":"b"}')).toBeUndefined();
    // a report of a newer daemon with fields missing still reads
    expect(decodeReport('{"node":"b","writtenAt":3,"networks":{}}')).toMatchObject({ node: 'b', version: 'unknown', lastCheck: null, repairedAt: null, repairId: null });
  });

  it('stays small with many findings and many attachments: lists capped, totals kept', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => ({ ...item(i), holder: `container ${'c'.repeat(200)}${i}` }));
    const journal = Array.from({ length: 20_000 }, (_, i) => row(`net${i % 20}`, i));
    const report = buildReport(input({ journal, lastCheck: { at: 1, network: null, result: result({ orphans: many, lost: many, conflicts: many }) } }));
    const text = encodeReport(report);
    expect(Buffer.byteLength(text)).toBeLessThan(REPORT_MAX_BYTES);
    expect(decodeReport(text)!.lastCheck!.orphans.total).toBe(20_000);
    // a tighter limit cuts the lists further, never the totals
    const tight = encodeReport(report, 20_000);
    expect(Buffer.byteLength(tight)).toBeLessThanOrEqual(20_000);
    const back = decodeReport(tight)!;
    expect(back.lastCheck!.lost.total).toBe(20_000);
    expect(back.lastCheck!.lost.items.length).toBeLessThan(REPORT_LIST_CAP);
  });

  it('is worth writing again only when it says something new, times and revisions aside', () => {
    const base = buildReport(input({ journal: [row('n', 1)], lastCheck: { at: 4_000, network: null, result: result() } }));
    expect(sameContent(base, buildReport(input({ journal: [row('n', 1)], now: 9_000, revision: 90, lastCheck: { at: 8_000, network: null, result: result() } })))).toBe(true);
    expect(sameContent(base, buildReport(input({ journal: [row('n', 1), row('n', 2)], lastCheck: { at: 4_000, network: null, result: result() } })))).toBe(false);
    expect(sameContent(base, buildReport(input({ journal: [row('n', 1)], lastCheck: { at: 4_000, network: null, result: result({ orphans: [item(1)] }) } })))).toBe(false);
    expect(sameContent(base, buildReport(input({ journal: [row('n', 1)], lastCheck: { at: 4_000, network: null, result: result() }, repairId: 'x' })))).toBe(false);
  });

  it('reads a repair request, and nothing else as one', () => {
    expect(decodeRepairRequest('{"id":"a-1","by":"a","at":5,"network":null}')).toEqual({ id: 'a-1', by: 'a', at: 5, network: null });
    expect(decodeRepairRequest('{"id":"a-1","by":"a","network":"n"}')).toEqual({ id: 'a-1', by: 'a', at: 0, network: 'n' });
    expect(decodeRepairRequest('{"by":"a"}')).toBeUndefined();
    expect(decodeRepairRequest('{')).toBeUndefined();
  });
});

describe('comparing the other nodes with etcd', () => {
  const reportOf = (node: string, over: Partial<ClusterNodeReport> = {}): ClusterNodeReport => ({ ...buildReport(input({ node, now: 10_000 })), ...over });
  const compare = (over: Partial<CompareInput>) =>
    compareNodes({ self: 'a', now: 10_000, staleMs: 60_000, network: undefined, reports: new Map(), attachments: new Map(), changedAt: () => 0, ...over });
  const counts = (attached: number, releasing = 0) => ({ attached, releasing, conflict: 0, digest: 'd' });

  it('lists every other node with a report or attachments, by name, never itself', () => {
    const views = compare({ reports: new Map([['c', reportOf('c')], ['a', reportOf('a')]]), attachments: new Map([['b', new Map([['n', 0]])], ['a', new Map([['n', 3]])]]) });
    expect(views.map((v) => v.node)).toEqual(['b', 'c']);
    expect(views[0]).toMatchObject({ report: null, silent: true, attachments: {}, problems: [] }); // nothing held: nothing to say
    expect(views[1]).toMatchObject({ silent: false, reportAgeMs: 0, problems: [], disagreements: [] });
  });

  it('names a node that never reported but holds attachments, with the release hint', () => {
    const [view] = compare({ attachments: new Map([['b', new Map([['n', 2], ['m', 1]])]]) });
    expect(view).toMatchObject({ node: 'b', silent: true, reportAgeMs: null, attachments: { n: 2, m: 1 } });
    expect(view!.problems).toEqual(['node b holds 3 attachment(s) in etcd but never published a report: gone? `reservoirctl release --node b`']);
  });

  it('calls a node silent once its report is older than the threshold, and not before', () => {
    const reports = new Map([['b', reportOf('b', { writtenAt: 10_000 - 720_000, networks: { n: counts(2) } })]]);
    const attachments = new Map([['b', new Map([['n', 2]])]]);
    const [stale] = compare({ reports, attachments, staleMs: 719_999 });
    expect(stale).toMatchObject({ silent: true, reportAgeMs: 720_000 });
    expect(stale!.problems).toEqual(['node b silent for 12 min with 2 attachment(s) in etcd: gone? `reservoirctl release --node b`']);
    const [fresh] = compare({ reports, attachments, staleMs: 720_000 });
    expect(fresh).toMatchObject({ silent: false, problems: [] });
  });

  it('shows counts that disagree unless a change after the report explains them; releasing rows are still in etcd', () => {
    const reports = new Map([['b', reportOf('b', { revision: 50, networks: { n: counts(2, 1), m: counts(4) } })]]);
    const attachments = new Map([['b', new Map([['n', 3], ['m', 5], ['k', 1]])]]);
    const [view] = compare({ reports, attachments, changedAt: () => 50 });
    expect(view!.disagreements).toEqual([
      { network: 'k', etcd: 1, journal: 0 },
      { network: 'm', etcd: 5, journal: 4 },
    ]);
    expect(view!.problems).toContain('etcd says node b holds 5 attachment(s) of m, its journal says 4: run `reservoirctl check --repair`');
    // a lease of b changed after its report: the counts may both be right
    expect(compare({ reports, attachments, changedAt: (network) => (network === 'm' ? 51 : 0) })[0]!.disagreements.map((d) => d.network)).toEqual(['k']);
    // one network asked for: only it
    expect(compare({ reports, attachments, network: 'm' })[0]).toMatchObject({ attachments: { m: 5 }, disagreements: [{ network: 'm', etcd: 5, journal: 4 }] });
    // the journal has attachments etcd does not
    const lost = compare({ reports: new Map([['b', reportOf('b', { networks: { n: counts(2) } })]]) })[0]!;
    expect(lost.disagreements).toEqual([{ network: 'n', etcd: 0, journal: 2 }]);
  });

  it('repeats what the node\'s last check found and left open; a repair closes orphans and lost claims, never conflicts', () => {
    const lastCheck = (repaired: boolean) => ({ at: 9_000, network: null, repaired, orphans: capList([item(1, 'n'), item(2, 'm')]), lost: capList([item(3, 'n')]), conflicts: capList([item(4, 'n')]) });
    const open = compare({ reports: new Map([['b', reportOf('b', { lastCheck: lastCheck(false) })]]) })[0]!;
    expect(open.problems).toEqual([
      "node b's last check found 2 orphan(s) and 1 lost claim(s): run `reservoirctl check --repair`",
      "node b's last check found 1 conflict(s): DEL one of the two containers of each",
    ]);
    const repaired = compare({ reports: new Map([['b', reportOf('b', { lastCheck: lastCheck(true) })]]) })[0]!;
    expect(repaired.problems).toEqual(["node b's last check found 1 conflict(s): DEL one of the two containers of each"]);
    const onlyM = compare({ network: 'm', reports: new Map([['b', reportOf('b', { lastCheck: lastCheck(false) })]]) })[0]!;
    expect(onlyM.problems).toEqual(["node b's last check found 1 orphan(s) and 0 lost claim(s): run `reservoirctl check --repair`"]);
  });

  it('says how long in words a reader takes in', () => {
    expect(duration(5_400)).toBe('5 s');
    expect(duration(720_000)).toBe('12 min');
    expect(duration(3 * 3_600_000)).toBe('3 h');
  });
});
