// reservoirctl history NET [IP] [--limit N]: who had an IP, when, and who was refused it and why.
import type { Argv } from 'yargs';
import { HISTORY_DEFAULT, HISTORY_MAX, type HistoryEntryView, type HistoryResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, show } from './common.js';
import { dash, table } from './format.js';

export const command = 'history <network> [ip]';
export const describe = 'Show the history of a network or of one IP: claims, holds, releases and refusals, oldest first';

interface HistoryArgs {
  network: string;
  ip: string | undefined;
  limit: number;
}

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions & HistoryArgs> {
  return yargs
    .positional('network', { type: 'string', demandOption: true, describe: 'network name' })
    .positional('ip', { type: 'string', describe: 'only this IP' })
    .option('limit', { type: 'number', default: HISTORY_DEFAULT, describe: `the last N events (at most ${HISTORY_MAX})`, requiresArg: true })
    .check((argv) => {
      const limit = argv.limit;
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > HISTORY_MAX) throw new Error(`--limit must be a whole number from 1 to ${HISTORY_MAX}, not ${String(limit)}`);
      return true;
    })
    .example('$0 history podnet 10.22.0.60', 'who had 10.22.0.60, and who was refused it')
    .example('$0 history podnet --limit 20 -o json', 'the last 20 events of the network, as JSON') as Argv<GlobalOptions & HistoryArgs>;
}

function who(event: HistoryEntryView): string {
  const container = event.containerId ? `${event.containerId.slice(0, 12)}/${event.ifname}` : null;
  return [event.app, container].filter((part) => part !== null).join(' ') || '-';
}

export function historyTable(events: readonly HistoryEntryView[]): string {
  if (events.length === 0) return 'no events\n';
  return table(
    [{ header: 'TIME' }, { header: 'IP' }, { header: 'EVENT' }, { header: 'WHY' }, { header: 'WHO' }, { header: 'NODE' }, { header: 'HELD BY' }],
    events.map((e) => [new Date(e.at).toISOString().replace('T', ' ').slice(0, 19), e.ip, e.event, e.reason, who(e), dash(e.node), dash(e.holder)]),
  );
}

export async function handler(argv: Args<HistoryArgs>): Promise<void> {
  const answer = await call<HistoryResponse>('history', argv, { params: { network: argv.network }, query: { ip: argv.ip, limit: String(argv.limit) } });
  show(argv, answer, (a) => historyTable(a.events));
}
