// reservoirctl reserved <list|add|set|rm>: the parent of the reserved-entry commands.
import type { Argv } from 'yargs';
import type { GlobalOptions } from './common.js';
import * as add from './reserved-add.js';
import * as list from './reserved-list.js';
import * as rm from './reserved-rm.js';
import * as set from './reserved-set.js';

export const command = 'reserved';
export const describe = 'Manage reserved IPs: list, add, set, rm';

export const subcommands = [list, add, set, rm] as const;

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return yargs
    .command(list)
    .command(add)
    .command(set)
    .command(rm)
    .demandCommand(1, 'give a subcommand: list, add, set or rm');
}

/** Never reached: yargs runs a subcommand or fails with a usage error. */
export function handler(): void {}
