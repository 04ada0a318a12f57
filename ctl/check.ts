// reservoirctl check [NET] [--repair]: this node's journal against etcd (cluster networks).
import type { Argv } from 'yargs';
import type { ClusterCheckItem, ClusterCheckResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, change, show } from './common.js';
import { table } from './format.js';

export const command = 'check [network]';
export const describe = "Compare this node's attachments in cluster networks with etcd: orphans, lost claims, conflicts (--repair fixes them while allocation goes on)";

interface CheckArgs {
  network: string | undefined;
  repair: boolean | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & CheckArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'only this cluster network (default: all)' })
    .option('repair', { type: 'boolean', describe: 'release orphans, claim lost attachments again where the IP is free, mark conflicts' })
    .example('$0 check', 'what is wrong, if anything')
    .example('$0 check --repair', 'and fix it') as Argv<GlobalOptions & CheckArgs>;
}

export function checkReport(r: ClusterCheckResponse): string {
  const rows: ClusterCheckItem[] = [...r.orphans, ...r.lost, ...r.conflicts];
  const kind = (item: ClusterCheckItem) => (r.orphans.includes(item) ? 'orphan' : r.lost.includes(item) ? 'lost' : 'conflict');
  const summary = `node ${r.node}: ${r.orphans.length} orphan(s), ${r.lost.length} lost, ${r.conflicts.length} conflict(s); ${r.owed} change(s) owed to etcd${r.repaired ? '; repaired (conflicts need a DEL of one of the two containers)' : ''}\n`;
  if (rows.length === 0) return summary;
  return `${table(
    [{ header: 'PROBLEM' }, { header: 'NETWORK' }, { header: 'IP' }, { header: 'NODE' }, { header: 'HOLDER' }, { header: 'WHY' }],
    rows.map((item) => [kind(item), item.network, item.ip, item.node, item.holder, item.problem]),
  )}${summary}`;
}

export async function handler(argv: Args<CheckArgs>): Promise<void> {
  const answer = argv.repair
    ? await change<ClusterCheckResponse>('clusterRepair', argv, { body: argv.network === undefined ? {} : { network: argv.network } }, 'reservoirctl check')
    : await call<ClusterCheckResponse>('clusterCheck', argv, { query: { network: argv.network } });
  show(argv, answer, checkReport);
}
