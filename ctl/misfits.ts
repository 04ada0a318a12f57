// reservoirctl misfits NET [--release]: leases that no longer fit their network's config (subnet
// renumbered, range shrunk, gateway moved onto a leased IP), and releasing them.
import type { Argv } from 'yargs';
import type { MisfitsReleaseResponse, MisfitsResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, show } from './common.js';
import { dash, table } from './format.js';

export const command = 'misfits <network>';
export const describe = "List leases that no longer fit the network's config; --release frees them";

interface MisfitsArgs {
  network: string;
  release: boolean | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & MisfitsArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .option('release', {
      type: 'boolean',
      describe: 'delete every misfit lease (held stateful ones too); pods that used them keep the address until they are recreated',
    })
    .example('$0 misfits mynet', 'after renumbering a subnet or moving a gateway')
    .example('$0 misfits mynet --release', 'then delete the pods listed, so they get an address that fits') as Argv<GlobalOptions & MisfitsArgs>;
}

export function misfitsTable(answer: MisfitsResponse): string {
  if (answer.total === 0) return `every lease of network ${answer.network} fits its config\n`;
  const rows = table(
    [{ header: 'IP' }, { header: 'STATE' }, { header: 'KIND' }, { header: 'APP' }, { header: 'CONTAINER' }, { header: 'IFNAME' }, { header: 'WHY' }],
    answer.leases.map((l) => [l.ip, l.state, l.kind, dash(l.app), dash(l.containerId?.slice(0, 12)), dash(l.ifname), dash(l.misfit)]),
  );
  const more = answer.total > answer.leases.length ? `${answer.total - answer.leases.length} more not listed\n` : '';
  return `${rows}${more}${answer.total} lease(s) no longer fit; release them with: reservoirctl misfits ${answer.network} --release\n`;
}

export async function handler(argv: Args<MisfitsArgs>): Promise<void> {
  if (argv.release) {
    const answer = await call<MisfitsReleaseResponse>('misfitsRelease', argv, { params: { network: argv.network } });
    show(argv, answer, (a) =>
      a.released === 0
        ? `no lease of network ${a.network} needed releasing\n`
        : `released ${a.released} lease(s) of network ${a.network}: ${a.ips.join(', ')}${a.released > a.ips.length ? ', ...' : ''}\n` +
          'pods that used them keep the address until they are recreated: delete them (a repeated ADD now gets an address that fits)\n',
    );
    return;
  }
  const answer = await call<MisfitsResponse>('misfits', argv, { params: { network: argv.network } });
  show(argv, answer, misfitsTable);
}
