// A node's report in etcd (PREFIX/v1/nodes/NODE) and what `check` on another node makes of it:
// building the report from the journal and the last check, keeping its value small, deciding
// when it is worth writing again, and comparing the reports with what etcd alone shows.
// Pure: no I/O (the digest is a hash of the journal's lines).
import { createHash } from 'node:crypto';
import type { ClusterCheckItem, ClusterCheckResponse, ClusterJournalCounts, ClusterNodeReport, ClusterNodeView, ClusterReportList } from '../../src/protocol.js';

/** Items kept of each list of a report's last check (the total is kept too). */
export const REPORT_LIST_CAP = 100;
/** Characters kept of each text field of an item (a holder, a problem sentence). */
const REPORT_TEXT_CAP = 300;
/** A report's value stays well under etcd's request limit (1.5 MiB by default). */
export const REPORT_MAX_BYTES = 256 * 1024;

/** One row of a node's journal, as the report counts it. */
export interface JournalRow {
  readonly network: string;
  readonly family: number;
  readonly ip: bigint;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly state: 'attached' | 'releasing' | 'conflict';
}

/** Attachments by state, and a digest of the lines, per network. */
export function journalCounts(rows: readonly JournalRow[]): Record<string, ClusterJournalCounts> {
  const lines = new Map<string, string[]>();
  const counts = new Map<string, { attached: number; releasing: number; conflict: number }>();
  for (const row of rows) {
    const c = counts.get(row.network) ?? { attached: 0, releasing: 0, conflict: 0 };
    c[row.state]++;
    counts.set(row.network, c);
    const list = lines.get(row.network) ?? [];
    list.push(`${row.family} ${row.ip.toString(16)} ${row.containerId ?? ''} ${row.ifname ?? ''} ${row.state}`);
    lines.set(row.network, list);
  }
  const out: Record<string, ClusterJournalCounts> = {};
  for (const network of [...counts.keys()].sort()) {
    const digest = createHash('sha256').update(lines.get(network)!.sort().join('\n')).digest('hex').slice(0, 16);
    out[network] = { ...counts.get(network)!, digest };
  }
  return out;
}

export function capList(items: readonly ClusterCheckItem[], cap = REPORT_LIST_CAP): ClusterReportList {
  const text = (s: string) => (s.length > REPORT_TEXT_CAP ? `${s.slice(0, REPORT_TEXT_CAP - 1)}…` : s);
  return {
    total: items.length,
    items: items.slice(0, cap).map((i) => ({ network: text(i.network), ip: i.ip, holder: text(i.holder), node: text(i.node), problem: text(i.problem) })),
  };
}

export interface ReportInput {
  readonly node: string;
  readonly version: string;
  readonly startedAt: number;
  readonly now: number;
  readonly revision: number;
  readonly journal: readonly JournalRow[];
  /** The last check and when it ran (undefined: none yet). */
  readonly lastCheck: { readonly at: number; readonly network: string | null; readonly result: ClusterCheckResponse } | undefined;
  readonly repairedAt: number | null;
  readonly repairId: string | null;
}

export function buildReport(input: ReportInput): ClusterNodeReport {
  const c = input.lastCheck;
  return {
    node: input.node,
    version: input.version,
    startedAt: input.startedAt,
    writtenAt: input.now,
    revision: input.revision,
    networks: journalCounts(input.journal),
    lastCheck: c
      ? { at: c.at, network: c.network, repaired: c.result.repaired, orphans: capList(c.result.orphans), lost: capList(c.result.lost), conflicts: capList(c.result.conflicts) }
      : null,
    repairedAt: input.repairedAt,
    repairId: input.repairId,
  };
}

/** The report as etcd's value: lists cut further while it is too big (the totals stay). */
export function encodeReport(report: ClusterNodeReport, maxBytes = REPORT_MAX_BYTES): string {
  let text = JSON.stringify(report);
  for (let cap = REPORT_LIST_CAP; Buffer.byteLength(text) > maxBytes && report.lastCheck && cap > 0; cap = Math.floor(cap / 2)) {
    const c = report.lastCheck;
    const cut = (l: ClusterReportList) => ({ total: l.total, items: l.items.slice(0, Math.floor(cap / 2)) });
    text = JSON.stringify({ ...report, lastCheck: { ...c, orphans: cut(c.orphans), lost: cut(c.lost), conflicts: cut(c.conflicts) } });
  }
  return text;
}

/** A report read from etcd; undefined for a value this daemon cannot read (written by a newer one?). */
export function decodeReport(text: string): ClusterNodeReport | undefined {
  try {
    const v = JSON.parse(text) as Partial<ClusterNodeReport>;
    if (typeof v.node !== 'string' || typeof v.writtenAt !== 'number' || typeof v.networks !== 'object' || v.networks === null) return undefined;
    return {
      node: v.node,
      version: typeof v.version === 'string' ? v.version : 'unknown',
      startedAt: typeof v.startedAt === 'number' ? v.startedAt : 0,
      writtenAt: v.writtenAt,
      revision: typeof v.revision === 'number' ? v.revision : 0,
      networks: v.networks,
      lastCheck: v.lastCheck ?? null,
      repairedAt: v.repairedAt ?? null,
      repairId: v.repairId ?? null,
    };
  } catch {
    return undefined;
  }
}

/** Whether a new report says anything the written one does not (times and revisions aside): the heartbeat writes only then, or when the last write is old. */
export function sameContent(a: ClusterNodeReport, b: ClusterNodeReport): boolean {
  const strip = (r: ClusterNodeReport) => JSON.stringify({ ...r, writtenAt: 0, revision: 0, lastCheck: r.lastCheck && { ...r.lastCheck, at: 0 } });
  return strip(a) === strip(b);
}

/** A repair request in etcd (PREFIX/v1/nodes/NODE/repair). */
export interface RepairRequest {
  readonly id: string;
  readonly by: string;
  readonly at: number;
  readonly network: string | null;
}

export function decodeRepairRequest(text: string): RepairRequest | undefined {
  try {
    const v = JSON.parse(text) as Partial<RepairRequest>;
    if (typeof v.id !== 'string' || typeof v.by !== 'string') return undefined;
    return { id: v.id, by: v.by, at: typeof v.at === 'number' ? v.at : 0, network: typeof v.network === 'string' ? v.network : null };
  } catch {
    return undefined;
  }
}

export interface CompareInput {
  /** The node running `check` (its own findings are the fresh check, not compared here). */
  readonly self: string;
  readonly now: number;
  /** A report older than this is stale: the node is silent. */
  readonly staleMs: number;
  /** Only this network (undefined: every one). */
  readonly network: string | undefined;
  readonly reports: ReadonlyMap<string, ClusterNodeReport>;
  /** Attachments in etcd per node, per network. */
  readonly attachments: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** The last revision that changed a lease of the node in the network. */
  readonly changedAt: (network: string, node: string) => number;
}

/** Every other node with a report or with attachments in etcd, as `check` shows it, by name. */
export function compareNodes(input: CompareInput): ClusterNodeView[] {
  const names = new Set([...input.reports.keys(), ...input.attachments.keys()]);
  names.delete(input.self);
  const inScope = (network: string) => input.network === undefined || network === input.network;
  return [...names].sort().map((node) => {
    const report = input.reports.get(node) ?? null;
    const attachments: Record<string, number> = {};
    for (const [network, n] of input.attachments.get(node) ?? []) if (inScope(network) && n > 0) attachments[network] = n;
    const held = Object.values(attachments).reduce((a, b) => a + b, 0);
    const problems: string[] = [];
    const hint = `gone? \`reservoirctl release --node ${node}\``;
    const ageMs = report ? Math.max(0, input.now - report.writtenAt) : null;
    const silent = report === null || ageMs! > input.staleMs;
    if (report === null) {
      if (held > 0) problems.push(`node ${node} holds ${held} attachment(s) in etcd but never published a report: ${hint}`);
    } else if (silent) {
      problems.push(`node ${node} silent for ${duration(ageMs!)}${held > 0 ? ` with ${held} attachment(s) in etcd` : ''}: ${hint}`);
    }
    const disagreements: Array<{ network: string; etcd: number; journal: number }> = [];
    if (report) {
      const networks = new Set([...Object.keys(attachments), ...Object.keys(report.networks).filter(inScope)]);
      for (const network of [...networks].sort()) {
        const counts = report.networks[network];
        // etcd still holds what the node released while etcd was away (releasing)
        const journal = counts ? counts.attached + counts.releasing : 0;
        const etcd = attachments[network] ?? 0;
        // a change of the node's leases after the report explains a difference: not a finding
        if (etcd !== journal && input.changedAt(network, node) <= report.revision) {
          disagreements.push({ network, etcd, journal });
          problems.push(`etcd says node ${node} holds ${etcd} attachment(s) of ${network}, its journal says ${journal}: run \`reservoirctl check --repair\``);
        }
      }
      const c = report.lastCheck;
      if (c) {
        const found = (l: ClusterReportList) => (input.network === undefined ? l.total : l.items.filter((i) => i.network === input.network).length);
        const open = c.repaired ? 0 : found(c.orphans) + found(c.lost);
        if (open > 0) problems.push(`node ${node}'s last check found ${found(c.orphans)} orphan(s) and ${found(c.lost)} lost claim(s): run \`reservoirctl check --repair\``);
        if (found(c.conflicts) > 0) problems.push(`node ${node}'s last check found ${found(c.conflicts)} conflict(s): DEL one of the two containers of each`);
      }
    }
    return { node, report, reportAgeMs: ageMs, silent, attachments, disagreements, problems };
  });
}

export function duration(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}
