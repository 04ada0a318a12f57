// reservoirctl reserved rm NET ENTRY
import type { Argv } from 'yargs';
import type { ReservedEntryView } from '../src/protocol.js';
import { type Args, type GlobalOptions, change, show } from './common.js';
import { describeEntry } from './reserved-add.js';

export const command = 'rm <network> <entry>';
export const describe = 'Delete a reserved entry (refused while any of its IPs is in use)';

interface RmArgs {
  network: string;
  entry: string;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & RmArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('entry', { type: 'string', demandOption: true, describe: 'the entry as `reserved list` shows it' })
    .example('$0 reserved rm mynet 10.0.0.50', 'the IP becomes dynamic again') as Argv<GlobalOptions & RmArgs>;
}

export async function handler(argv: Args<RmArgs>): Promise<void> {
  const answer = await change<ReservedEntryView>('reservedRemove', argv, { params: { network: argv.network }, query: { entry: argv.entry } }, `reservoirctl reserved list ${argv.network}`);
  show(argv, answer, (view) => `removed reserved entry ${describeEntry(view)} from network ${argv.network}\n`);
}
