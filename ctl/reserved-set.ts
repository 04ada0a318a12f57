// reservoirctl reserved set NET ENTRY [--to NEW_ENTRY] [--group G] [--note TEXT] [--namespaces GLOB,...]
import type { Argv } from 'yargs';
import type { ReservedChangeBody, ReservedEntryView } from '../src/protocol.js';
import { type Args, type GlobalOptions, change, show } from './common.js';
import { describeEntry, namespaceList } from './reserved-add.js';

export const command = 'set <network> <entry>';
export const describe = 'Change a reserved entry: resize or move it, change its group or note';

interface SetArgs {
  network: string;
  entry: string;
  to: string | undefined;
  group: string | undefined;
  note: string | undefined;
  namespaces: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & SetArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('entry', { type: 'string', demandOption: true, describe: 'the entry as `reserved list` shows it' })
    .option('to', { type: 'string', describe: 'new "IP", "IP-IP" or "CIDR"; IPs it drops must be free' })
    .option('group', { type: 'string', describe: 'new group; --group "" removes the group (all its IPs must be free)' })
    .option('note', { type: 'string', describe: 'new note; --note "" removes it' })
    .option('namespaces', { type: 'string', describe: 'who may claim it: comma list of namespace names or globs; --namespaces "" allows any pod (IPs in use stay)' })
    .check((argv) => {
      if (argv.to === undefined && argv.group === undefined && argv.note === undefined && argv.namespaces === undefined) {
        throw new Error('nothing to change: give --to, --group, --note or --namespaces');
      }
      return true;
    })
    .example('$0 reserved set net1 10.0.0.50 --to 10.0.0.50-10.0.0.59  # grow it to a range', '')
    .example(`$0 reserved set net1 10.0.0.50 --group ''  # remove its group`, '') as Argv<GlobalOptions & SetArgs>;
}

export async function handler(argv: Args<SetArgs>): Promise<void> {
  const body: { -readonly [K in keyof ReservedChangeBody]: ReservedChangeBody[K] } = { entry: argv.entry };
  if (argv.to !== undefined) body.to = argv.to;
  if (argv.group !== undefined) body.group = argv.group === '' ? null : argv.group;
  if (argv.note !== undefined) body.note = argv.note === '' ? null : argv.note;
  if (argv.namespaces !== undefined) body.namespaces = argv.namespaces === '' ? null : namespaceList(argv.namespaces);
  const answer = await change<ReservedEntryView>('reservedSet', argv, { params: { network: argv.network }, body }, `reservoirctl reserved list ${argv.network}`);
  show(argv, answer, (view) => `changed reserved entry "${argv.entry}" of network ${argv.network}: now ${describeEntry(view)}\n`);
}
