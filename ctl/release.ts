// reservoirctl release NET NAMESPACE/POD: free a stateful app's held IP.
import type { Argv } from 'yargs';
import type { ReleaseResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, change, show } from './common.js';

export const command = 'release <network> <app>';
export const describe = "Free a stateful app's held IP (refused while a pod of it is attached)";

interface ReleaseArgs {
  network: string;
  app: string;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & ReleaseArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('app', { type: 'string', demandOption: true, describe: 'NAMESPACE/POD (or the RESERVOIR_APP name), as `leases` shows it' })
    .example('$0 release mynet default/db-0', 'after deleting the StatefulSet for good') as Argv<GlobalOptions & ReleaseArgs>;
}

export async function handler(argv: Args<ReleaseArgs>): Promise<void> {
  const answer = await change<ReleaseResponse>('release', argv, { body: { network: argv.network, app: argv.app } }, `reservoirctl leases ${argv.network}`);
  show(argv, answer, (r) => `released ${r.released.join(', ')} held by ${argv.app} in network ${argv.network}\n`);
}
