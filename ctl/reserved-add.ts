// reservoirctl reserved add NET ENTRY [--group G] [--note TEXT]
import type { Argv } from 'yargs';
import type { ReservedChangeBody, ReservedEntryView } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, show } from './common.js';
import { count } from './format.js';

export const command = 'add <network> <entry>';
export const describe = 'Reserve an IP, a range or a CIDR so only pods asking for it (or its group) get it';

interface AddArgs {
  network: string;
  entry: string;
  group: string | undefined;
  note: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & AddArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('entry', { type: 'string', demandOption: true, describe: '"IP", "IP-IP" or "CIDR"' })
    .option('group', { type: 'string', describe: 'group name pods ask for (CNI_ARGS RESERVOIR_GROUP)' })
    .option('note', { type: 'string', describe: 'free text shown by `reserved list`' })
    .example(`$0 reserved add net1 10.0.0.50 --note 'db primary'  # one IP`, '')
    .example('$0 reserved add net1 10.0.0.64/28 --group db  # for RESERVOIR_GROUP=db', '') as Argv<GlobalOptions & AddArgs>;
}

export function describeEntry(view: ReservedEntryView): string {
  const size = BigInt(view.size) === 1n ? '1 address' : `${count(view.size)} addresses`;
  return `"${view.entry}" (${size}, ${view.used} in use, group ${view.group ?? '-'}, note ${view.note === null ? '-' : JSON.stringify(view.note)})`;
}

export async function handler(argv: Args<AddArgs>): Promise<void> {
  const body: { -readonly [K in keyof ReservedChangeBody]: ReservedChangeBody[K] } = { entry: argv.entry };
  // An empty --group/--note means "none" here: there is nothing to clear on a new entry.
  if (argv.group) body.group = argv.group;
  if (argv.note) body.note = argv.note;
  const answer = await call<ReservedEntryView>('reservedAdd', argv, { params: { network: argv.network }, body });
  show(argv, answer, (view) => `added reserved entry ${describeEntry(view)} to network ${argv.network}\n`);
}
