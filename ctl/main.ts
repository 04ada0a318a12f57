// reservoirctl: wire the command modules into one yargs parser and map every outcome to an exit
// code. I/O is injected so tests run the CLI in-process; cmd/reservoirctl.ts wires the real process.
import yargs from 'yargs';
import { DEFAULT_SOCKET } from '../src/defaults.js';
import { ReservoirError } from '../src/errors.js';
import * as backup from './backup.js';
import * as check from './check.js';
import { CtlError, type CtlIo, EXIT_CODES, IO } from './common.js';
import * as health from './health.js';
import * as history from './history.js';
import * as leases from './leases.js';
import * as misfits from './misfits.js';
import * as release from './release.js';
import * as reserved from './reserved.js';
import * as usage from './usage.js';

export { EXIT_CODES, type CtlIo } from './common.js';

export const PROGRAM = 'reservoirctl';

/** A yargs validation failure, turned into exit code 2 by main(). */
class UsageError extends Error {}

/** The command path the user typed ("reserved add"), for the "run ... --help" hint. */
function commandPath(argv: readonly string[]): string {
  const path: string[] = [];
  const top = new Set([health, usage, leases, misfits, reserved, release, history, backup].map((m) => m.command.split(' ')[0]));
  const sub = new Set(reserved.subcommands.map((m) => m.command.split(' ')[0]));
  const words = argv.filter((a) => !a.startsWith('-'));
  if (words[0] && top.has(words[0])) {
    path.push(words[0]);
    if (words[0] === 'reserved' && words[1] && sub.has(words[1])) path.push(words[1]);
  }
  return [PROGRAM, ...path].join(' ');
}

function buildParser(io: CtlIo) {
  const envSocket = io.env.RESERVOIR_SOCKET;
  return yargs([...io.argv])
    .scriptName(PROGRAM)
    .usage(`$0 <command> [options]\n\nInspect and manage reservoird, the reservoir IPAM daemon, over its unix socket.`)
    .option('socket', {
      type: 'string',
      describe: "reservoird's unix socket",
      default: envSocket ? envSocket : DEFAULT_SOCKET,
      defaultDescription: `$RESERVOIR_SOCKET or ${DEFAULT_SOCKET}`,
      requiresArg: true,
    })
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'output format', requiresArg: true })
    .option('timeout', { type: 'number', default: 5000, describe: 'how long to wait for reservoird (ms)', requiresArg: true })
    .check((argv) => {
      const t = argv.timeout;
      if (!Number.isInteger(t) || t < 1 || t > 3_600_000) throw new Error(`--timeout must be a whole number of milliseconds between 1 and 3600000, not ${String(t)}`);
      if (argv.socket === '') throw new Error('--socket must be a path');
      return true;
    })
    .command(health)
    .command(usage)
    .command(leases)
    .command(misfits)
    .command(reserved)
    .command(release)
    .command(history)
    .command(backup)
    .command(check)
    .demandCommand(1, 'give a command: health, usage, leases, misfits, reserved, release, history or backup')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .epilog(
      `Exit codes: ${Object.values(EXIT_CODES)
        .map((e) => `${e.code} ${e.meaning.split(':')[0]}`)
        .join('; ')}.`,
    )
    .wrap(100)
    .fail((msg, err) => {
      // Errors thrown by a handler pass through untouched; everything else is a usage error.
      if (err && !msg && !(err.name === 'YError')) throw err;
      throw new UsageError(msg || err?.message || 'invalid usage');
    });
}

/** Run reservoirctl once; resolves with the exit code (see EXIT_CODES). Never throws. */
export async function main(io: CtlIo): Promise<number> {
  let output = '';
  try {
    await buildParser(io).parseAsync([...io.argv], { [IO]: io }, (_err, _argv, text) => {
      output = text;
    });
  } catch (err) {
    return report(err, io);
  }
  if (output) io.stdout(`${output}\n`);
  return EXIT_CODES.OK.code;
}

function report(err: unknown, io: CtlIo): number {
  if (err instanceof UsageError) {
    io.stderr(`${PROGRAM}: ${err.message}\nRun '${commandPath(io.argv)} --help' for usage.\n`);
    return EXIT_CODES.USAGE.code;
  }
  if (err instanceof CtlError) {
    io.stderr(`${PROGRAM}: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof ReservoirError) {
    const details = err.details ? `\n  details: ${err.details}` : '';
    if (err.codeName === 'TRY_AGAIN_LATER') {
      io.stderr(
        `${PROGRAM}: ${err.message} (code ${err.code})${details}\n` +
          `  (if reservoird listens elsewhere, pass --socket PATH or set RESERVOIR_SOCKET)\n`,
      );
      return EXIT_CODES.UNREACHABLE.code;
    }
    io.stderr(`${PROGRAM}: ${err.message} (code ${err.code})${details}\n`);
    return EXIT_CODES.REFUSED.code;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr(`${PROGRAM}: internal error: ${message} (a bug: please report it)\n`);
  return EXIT_CODES.REFUSED.code;
}
