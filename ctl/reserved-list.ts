// reservoirctl reserved list NET [--free | --used]: entries, then every reserved IP and its holder.
import type { Argv } from 'yargs';
import type { ReservedIpView, ReservedListResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, ioOf, show } from './common.js';
import { count, dash, table } from './format.js';

export const command = 'list <network>';
export const describe = 'List the reserved entries of a network and each reserved IP with its holder';

interface ListArgs {
  network: string;
  free: boolean | undefined;
  used: boolean | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & ListArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .option('free', { type: 'boolean', describe: 'list only free reserved IPs' })
    .option('used', { type: 'boolean', describe: 'list only reserved IPs in use (leased or held)' })
    .conflicts('free', 'used')
    .example('$0 reserved list mynet --used', 'who holds reserved IPs') as Argv<GlobalOptions & ListArgs>;
}

function holder(ip: ReservedIpView): string {
  return ip.app ?? ip.attachment ?? '-';
}

export function reservedTables(list: ReservedListResponse): string {
  if (list.entries.length === 0) {
    return `network ${list.network} has no reserved entries (add one: reservoirctl reserved add ${list.network} ENTRY)\n`;
  }
  const entries = table(
    [{ header: 'ENTRY' }, { header: 'GROUP' }, { header: 'NAMESPACES' }, { header: 'SIZE', align: 'right' }, { header: 'USED', align: 'right' }, { header: 'SOURCE' }, { header: 'NOTE' }],
    list.entries.map((e) => [e.entry, dash(e.group), e.namespaces === null ? 'any' : e.namespaces.join(','), count(e.size), String(e.used), e.source, dash(e.note)]),
  );
  const ips =
    list.ips.length === 0
      ? 'no reserved IPs match\n'
      : table(
          [{ header: 'IP' }, { header: 'ENTRY' }, { header: 'GROUP' }, { header: 'STATE' }, { header: 'NODE' }, { header: 'HOLDER' }],
          list.ips.map((ip) => [ip.ip, ip.entry, dash(ip.group), ip.state, dash(ip.node), holder(ip)]),
        );
  const truncated = list.freeTruncated ? 'more free reserved IPs exist than listed (the daemon lists a bounded number); see the SIZE and USED columns above\n' : '';
  const u = list.usage;
  const summary = `reserved: ${u.reservedUsed} of ${count(u.reservedTotal)} in use (${u.reservedUsed - u.reservedHeld} leased, ${u.reservedHeld} held), ${count(u.reservedFree)} free\n`;
  return `${entries}\n${ips}${truncated}${summary}`;
}

export async function handler(argv: Args<ListArgs>): Promise<void> {
  const state = argv.free ? 'free' : argv.used ? 'used' : undefined;
  const answer = await call<ReservedListResponse>('reservedList', argv, { params: { network: argv.network }, query: { state } });
  const io = ioOf(argv);
  for (const conflict of answer.conflicts) io.stderr(`reservoirctl: warning: ${conflict}\n`);
  show(argv, answer, reservedTables);
}
