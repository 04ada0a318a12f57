// reservoirctl usage [NET]: how full each network is.
import type { Argv } from 'yargs';
import type { UsageView } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, ioOf, show } from './common.js';
import { count, table, usageBar } from './format.js';

export const command = 'usage [network]';
export const describe = 'Show how full each network is (dynamic, reserved, held and attached IPs)';

interface UsageArgs {
  network: string | undefined;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & UsageArgs> {
  return yargs
    .positional('network', { type: 'string', describe: 'only this network (default: all)' })
    .example('$0 usage', 'every network')
    .example('$0 usage mynet -o json', 'one network, as JSON') as Argv<GlobalOptions & UsageArgs>;
}

export function usageTable(networks: readonly UsageView[]): string {
  if (networks.length === 0) return 'no networks registered yet (reservoird learns a network from the CNI config directory or its first ADD)\n';
  return table(
    [
      { header: 'NETWORK' },
      { header: 'SIZE', align: 'right' },
      { header: 'DYNAMIC', align: 'right' },
      { header: 'RESERVED', align: 'right' },
      { header: 'HELD', align: 'right' },
      { header: 'ATTACHED', align: 'right' },
      { header: 'USAGE' },
    ],
    networks.map((n) => {
      const size = BigInt(n.size);
      const used = BigInt(n.dynamicInUse) + BigInt(n.reservedUsed);
      return [
        n.network,
        count(n.size),
        String(n.dynamicInUse),
        `${n.reservedUsed}/${count(n.reservedTotal)}`,
        String(n.held),
        String(n.attached),
        usageBar(used, size),
      ];
    }),
  );
}

/** What an operator should act on: leases that no longer fit, runtimes that carry a stale config. */
export function networkWarnings(n: UsageView): string[] {
  const warnings: string[] = [];
  if (n.disagreement) warnings.push(`network ${n.network}: ${n.disagreement}`);
  if (n.misfits > 0) warnings.push(`network ${n.network}: ${n.misfits} lease(s) no longer fit its config; see reservoirctl misfits ${n.network}`);
  if (n.staleRequests) {
    warnings.push(
      `network ${n.network}: ${n.staleRequests.requests} ADD(s) carried another config than ${n.configFile ?? 'its config file'} (served by the file): ${n.staleRequests.differences.join('; ')}`,
    );
  }
  return warnings;
}

/** Each overlap once, even when both of its networks are listed. */
export function usageWarnings(networks: readonly UsageView[]): string {
  const lines = [...new Set(networks.flatMap((n) => n.overlaps ?? []))];
  return lines.map((line) => `warning: ${line}\n`).join('');
}

export async function handler(argv: Args<UsageArgs>): Promise<void> {
  const answer = await call<{ networks: UsageView[] }>('usage', argv, { query: { network: argv.network } });
  const io = ioOf(argv);
  for (const warning of answer.networks.flatMap(networkWarnings)) io.stderr(`reservoirctl: warning: ${warning}\n`);
  show(argv, answer, (a) => usageTable(a.networks) + usageWarnings(a.networks));
}
