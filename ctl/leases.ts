// reservoirctl leases [NET]: every IP handed out, to whom, since when.
import type { Argv } from 'yargs';
import type { LeaseView } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, show } from './common.js';
import { age, dash, table } from './format.js';

export const command = 'leases [network]';
export const describe = 'List leased IPs: attached containers and held stateful apps';

interface LeasesArgs {
  network: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & LeasesArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'only this network (default: all)' })
    .example('$0 leases mynet', 'leases of one network') as Argv<GlobalOptions & LeasesArgs>;
}

export function leasesTable(leases: readonly LeaseView[]): string {
  if (leases.length === 0) return 'no leases\n';
  return table(
    [
      { header: 'IP' },
      { header: 'NETWORK' },
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
  const answer = await call<{ leases: LeaseView[] }>('leases', argv, { query: { network: argv.network } });
  show(argv, answer, (a) => leasesTable(a.leases));
}
