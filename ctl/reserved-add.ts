// reservoirctl reserved add NET ENTRY [--group G] [--note TEXT] [--namespaces GLOB,...]
import type { Argv } from 'yargs';
import type { ReservedChangeBody, ReservedEntryView } from '../src/protocol.js';
import { type Args, type GlobalOptions, change, show } from './common.js';
import { count } from './format.js';

export const command = 'add <network> <entry>';
export const describe = 'Reserve an IP, a range or a CIDR so only pods asking for it (or its group) get it';

interface AddArgs {
  network: string;
  entry: string;
  group: string | undefined;
  note: string | undefined;
  namespaces: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & AddArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('entry', { type: 'string', demandOption: true, describe: '"IP", "IP-IP" or "CIDR"' })
    .option('group', { type: 'string', describe: 'group name pods ask for (CNI_ARGS RESERVOIR_GROUP)' })
    .option('note', { type: 'string', describe: 'free text shown by `reserved list`' })
    .option('namespaces', { type: 'string', describe: 'only pods of these namespaces may claim it: comma list of names or globs (db,team-*)' })
    .example(`$0 reserved add net1 10.0.0.50 --note 'db primary'  # one IP`, '')
    .example('$0 reserved add net1 10.0.0.64/28 --group db  # for RESERVOIR_GROUP=db', '')
    .example("$0 reserved add net1 10.0.0.80-10.0.0.89 --namespaces 'db,team-*'  # only pods of these namespaces", '') as Argv<GlobalOptions & AddArgs>;
}

export function describeEntry(view: ReservedEntryView): string {
  const size = BigInt(view.size) === 1n ? '1 address' : `${count(view.size)} addresses`;
  const namespaces = view.namespaces === null ? '' : `, namespaces ${view.namespaces.join(',')}`;
  return `"${view.entry}" (${size}, ${view.used} in use, group ${view.group ?? '-'}${namespaces}, note ${view.note === null ? '-' : JSON.stringify(view.note)})`;
}

/** "db,team-*" -> ["db", "team-*"]; the daemon validates each glob. */
export function namespaceList(text: string): string[] {
  return text.split(',').map((n) => n.trim()).filter((n) => n !== '');
}

export async function handler(argv: Args<AddArgs>): Promise<void> {
  const body: { -readonly [K in keyof ReservedChangeBody]: ReservedChangeBody[K] } = { entry: argv.entry };
  // An empty --group/--note means "none" here: there is nothing to clear on a new entry.
  if (argv.group) body.group = argv.group;
  if (argv.note) body.note = argv.note;
  if (argv.namespaces) body.namespaces = namespaceList(argv.namespaces);
  const answer = await change<ReservedEntryView>('reservedAdd', argv, { params: { network: argv.network }, body }, `reservoirctl reserved list ${argv.network}`);
  show(argv, answer, (view) => `added reserved entry ${describeEntry(view)} to network ${argv.network}\n`);
}
