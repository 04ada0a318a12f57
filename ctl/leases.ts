// reservoirctl leases [NET] [--limit N]: every IP handed out, to whom, since when.
import type { Argv } from 'yargs';
import { type LeaseView, type LeasesResponse, collectLeases } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, ioOf, show } from './common.js';
import { age, dash, table } from './format.js';

export const command = 'leases [network]';
export const describe = 'List leased IPs: attached containers and held stateful apps';

interface LeasesArgs {
  network: string | undefined;
  limit: number | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & LeasesArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'only this network (default: all)' })
    .option('limit', { type: 'number', describe: 'print at most this many leases (default: all)', requiresArg: true })
    .check((argv) => {
      const limit = argv.limit;
      if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw new Error(`--limit must be a whole number of at least 1, not ${String(limit)}`);
      return true;
    })
    .example('$0 leases mynet', 'leases of one network')
    .example('$0 leases --limit 20', 'the first 20 leases, in address order') as Argv<GlobalOptions & LeasesArgs>;
}

export function leasesTable(leases: readonly LeaseView[]): string {
  if (leases.length === 0) return 'no leases\n';
  return table(
    [
      { header: 'IP' },
      { header: 'NETWORK' },
      { header: 'NODE' },
      { header: 'STATE' },
      { header: 'KIND' },
      { header: 'APP' },
      { header: 'CONTAINER' },
      { header: 'IFNAME' },
      { header: 'RESERVED' },
      { header: 'AGE', align: 'right' },
    ],
    leases.map((l) => [
      l.ip,
      l.network,
      l.node,
      l.state,
      l.kind,
      dash(l.app),
      dash(l.containerId?.slice(0, 12)),
      dash(l.ifname),
      l.reserved ? 'yes' : '-',
      age(l.ageSeconds),
    ]),
  );
}

export async function handler(argv: Args<LeasesArgs>): Promise<void> {
  const { leases, more } = await collectLeases(
    (after, limit) => call<LeasesResponse>('leases', argv, { query: { network: argv.network, limit: String(limit), after } }),
    argv.limit,
  );
  for (const lease of leases) if (lease.misfit) ioOf(argv).stderr(`reservoirctl: warning: ${lease.ip} (network ${lease.network}) no longer fits its config: ${lease.misfit}\n`);
  if (more) ioOf(argv).stderr(`reservoirctl: showing the first ${leases.length} leases; more follow (leave out --limit to list them all)\n`);
  show(argv, { leases }, (a) => leasesTable(a.leases));
}
