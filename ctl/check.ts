// reservoirctl check [NET] [--repair]: this node's journal against etcd (cluster networks), and
// the other nodes through etcd: their last reports, silent nodes, counts that disagree.
import type { Argv } from 'yargs';
import type { ClusterCheckItem, ClusterCheckResponse, ClusterNodeView } from '../src/protocol.js';
import { type Args, CtlError, EXIT_CODES, type GlobalOptions, call, change, show } from './common.js';
import { age, table } from './format.js';

export const command = 'check [network]';
export const describe = "Compare this node's attachments in cluster networks with etcd, and the other nodes' reports: orphans, lost claims, conflicts, silent nodes (--repair fixes them on every node while allocation goes on)";

interface CheckArgs {
  network: string | undefined;
  repair: boolean | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & CheckArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'only this cluster network (default: all)' })
    .option('repair', { type: 'boolean', describe: 'release orphans, claim lost attachments again where the IP is free, mark conflicts; asks every other node to do the same and waits for them (at most 5 s)' })
    .example('$0 check', 'what is wrong, if anything')
    .example('$0 check --repair', 'and fix it') as Argv<GlobalOptions & CheckArgs>;
}

const itemColumns = [{ header: 'PROBLEM' }, { header: 'NETWORK' }, { header: 'IP' }, { header: 'NODE' }, { header: 'HOLDER' }, { header: 'WHY' }];

function itemRows(kind: string, items: readonly ClusterCheckItem[]): string[][] {
  return items.map((item) => [kind, item.network, item.ip, item.node, item.holder, item.problem]);
}

/** Whether the answer shows anything to fix (repaired orphans and lost claims are fixed; conflicts need a DEL). */
export function hasProblems(r: ClusterCheckResponse): boolean {
  const own = r.repaired ? r.conflicts.length : r.orphans.length + r.lost.length + r.conflicts.length;
  return own > 0 || (r.nodes ?? []).some((n) => n.problems.length > 0) || (r.repairRequest?.silent.length ?? 0) > 0;
}

function nodeReport(n: ClusterNodeView): string {
  const held = Object.entries(n.attachments).map(([network, count]) => `${count} in ${network}`).join(', ') || 'none';
  const r = n.report;
  let head = `node ${n.node}: `;
  if (!r) head += 'no report';
  else {
    head += `report ${age((n.reportAgeMs ?? 0) / 1000)} old (version ${r.version}, up since ${new Date(r.startedAt).toISOString()})`;
    const c = r.lastCheck;
    head += c ? `; last check: ${c.orphans.total} orphan(s), ${c.lost.total} lost, ${c.conflicts.total} conflict(s)${c.repaired ? ', repaired' : ''}` : '; no check yet';
    if (r.repairedAt !== null) head += `; repaired at ${new Date(r.repairedAt).toISOString()}`;
  }
  head += `; attachments in etcd: ${held}\n`;
  const c = r?.lastCheck;
  const rows = c ? [...itemRows('orphan', c.orphans.items), ...itemRows('lost', c.lost.items), ...itemRows('conflict', c.conflicts.items)] : [];
  const listed = rows.length > 0 ? table(itemColumns, rows).replace(/^(?=.)/gm, '  ') : '';
  return `${head}${listed}${n.problems.map((p) => `  ! ${p}\n`).join('')}`;
}

export function checkReport(r: ClusterCheckResponse): string {
  const rows = [...itemRows('orphan', r.orphans), ...itemRows('lost', r.lost), ...itemRows('conflict', r.conflicts)];
  const summary = `node ${r.node}: ${r.orphans.length} orphan(s), ${r.lost.length} lost, ${r.conflicts.length} conflict(s); ${r.owed} change(s) owed to etcd${r.repaired ? '; repaired (conflicts need a DEL of one of the two containers)' : ''}\n`;
  let out = rows.length === 0 ? summary : `${table(itemColumns, rows)}${summary}`;
  for (const n of r.nodes ?? []) out += nodeReport(n);
  const q = r.repairRequest;
  if (q) {
    out += `repair asked of ${q.asked.length} other node(s): ${q.answered.length} answered${q.answered.length ? ` (${q.answered.join(', ')})` : ''}`;
    out += q.silent.length ? `; no answer from ${q.silent.join(', ')}: gone? \`reservoirctl release --node NAME\`\n` : '\n';
  }
  return out;
}

export async function handler(argv: Args<CheckArgs>): Promise<void> {
  const answer = argv.repair
    ? await change<ClusterCheckResponse>('clusterRepair', argv, { body: argv.network === undefined ? {} : { network: argv.network } }, 'reservoirctl check')
    : await call<ClusterCheckResponse>('clusterCheck', argv, { query: { network: argv.network } });
  show(argv, answer, checkReport);
  if (hasProblems(answer)) throw new CtlError(argv.repair ? 'check --repair left something to fix (listed above)' : 'check found something to fix (listed above); `reservoirctl check --repair` fixes orphans and lost claims on every node', EXIT_CODES.PROBLEMS.code);
}
