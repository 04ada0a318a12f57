// reservoirctl release NET NAMESPACE/POD: free a stateful app's held IP;
// reservoirctl release --node NAME: a node that is gone lets go of its attachments (cluster networks).
import type { Argv } from 'yargs';
import type { ReleaseNodeResponse, ReleaseResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, change, show } from './common.js';

export const command = 'release [network] [app]';
export const describe = "Free a stateful app's held IP (refused while a pod of it is attached), or every attachment of a node that is gone (--node)";

interface ReleaseArgs {
  network: string | undefined;
  app: string | undefined;
  node: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & ReleaseArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'network name' })
    .positional('app', { type: 'string', describe: 'NAMESPACE/POD (or the RESERVOIR_APP name), as `leases` shows it' })
    .option('node', {
      type: 'string',
      requiresArg: true,
      describe: "a node that is gone: end its containers' leases in every cluster network (stateful IPs stay held by their apps, for their next pod on any node)",
    })
    .check((argv) => {
      if (argv.node !== undefined && (argv.network !== undefined || argv.app !== undefined)) throw new Error('give either --node NAME, or a network and an app, not both');
      if (argv.node === undefined && (argv.network === undefined || argv.app === undefined)) throw new Error('give a network and an app (NAMESPACE/POD), or --node NAME');
      return true;
    })
    .example('$0 release mynet default/db-0', 'after deleting the StatefulSet for good')
    .example('$0 release --node worker-3', 'worker-3 is gone for good: its pods will not DEL') as Argv<GlobalOptions & ReleaseArgs>;
}

export async function handler(argv: Args<ReleaseArgs>): Promise<void> {
  if (argv.node !== undefined) {
    const answer = await change<ReleaseNodeResponse>('releaseNode', argv, { params: { node: argv.node } }, 'reservoirctl leases');
    show(argv, answer, (r) => `node ${r.node}: released ${r.released} lease(s); ${r.held} stateful IP(s) stay held by their apps\n`);
    return;
  }
  const answer = await change<ReleaseResponse>('release', argv, { body: { network: argv.network, app: argv.app } }, `reservoirctl leases ${argv.network}`);
  show(argv, answer, (r) => `released ${r.released.join(', ')} held by ${argv.app} in network ${argv.network}\n`);
}
