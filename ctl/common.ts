// What every reservoirctl command shares: the injected process I/O, the global options, the exit
// codes and the way a command reaches the daemon. Commands never touch `process` directly.
import type { ArgumentsCamelCase } from 'yargs';
import { type CallOptions, answerMissed, callDaemon, callDaemonRaw } from '../src/client.js';
import type { ReservoirError } from '../src/errors.js';
import type { RouteName } from '../src/protocol.js';
import { json } from './format.js';

/** The process as reservoirctl sees it; tests pass their own. */
export interface CtlIo {
  /** Arguments after the program name. */
  readonly argv: readonly string[];
  /** Written as given (callers add no newline). */
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * Exit codes, for scripts and the README. Daemon error codes (CNI `code`) are printed in the
 * message, never used as the exit code: exit codes are 0-255 and the daemon's go up to 999.
 */
export const EXIT_CODES = {
  OK: { code: 0, meaning: 'success' },
  REFUSED: {
    code: 1,
    meaning: 'the request failed: reservoird refused it (the message ends with its error code), or a local step failed (e.g. the backup file exists)',
  },
  USAGE: { code: 2, meaning: 'usage error: unknown command or option, missing or invalid argument (nothing was sent to reservoird)' },
  UNREACHABLE: {
    code: 3,
    meaning: 'reservoird is unreachable or did not answer in time (error code 11); a change that was sent but got no answer may still apply (the message says so)',
  },
  PROBLEMS: { code: 4, meaning: 'check found something to fix: orphans, lost claims, conflicts, silent nodes, counts that disagree (the output lists them)' },
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES]['code'];

/** The key under which main() hands the I/O to handlers (yargs' parse context; a symbol so no option can clash). */
export const IO = Symbol('reservoirctl.io');

export interface GlobalOptions {
  socket: string;
  output: 'table' | 'json';
  timeout: number;
}

export type Args<T = {}> = ArgumentsCamelCase<T & GlobalOptions>;

/** A failure detected by reservoirctl itself, with its exit code and a message that says what to do. */
export class CtlError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'CtlError';
  }
}

export function ioOf(argv: object): CtlIo {
  const io = (argv as { [IO]?: CtlIo })[IO];
  if (!io) throw new Error('reservoirctl handler called without its I/O context');
  return io;
}

function callOptions(argv: Args, extra: Pick<CallOptions, 'params' | 'query' | 'body'>): CallOptions {
  return { socket: argv.socket, timeoutMs: argv.timeout, ...extra };
}

export function call<T>(route: RouteName, argv: Args, extra: Pick<CallOptions, 'params' | 'query' | 'body'> = {}): Promise<T> {
  return callDaemon<T>(route, callOptions(argv, extra));
}

/**
 * A call that changes something. When no answer came in time the request may still be carried
 * out (it waits in reservoird's queue, or its answer was lost): say so, and how to look.
 */
export async function change<T>(route: RouteName, argv: Args, extra: Pick<CallOptions, 'params' | 'query' | 'body'>, lookWith: string): Promise<T> {
  try {
    return await call<T>(route, argv, extra);
  } catch (err) {
    if (!answerMissed(err)) throw err;
    const error = err as ReservoirError;
    throw new CtlError(
      `${error.message} (code ${error.code})\n  the request was sent, so the change may still apply: check with "${lookWith}" before trying again`,
      EXIT_CODES.UNREACHABLE.code,
    );
  }
}

export function callRaw(route: RouteName, argv: Args, extra: Pick<CallOptions, 'params' | 'query' | 'body'> = {}): Promise<Buffer> {
  return callDaemonRaw(route, callOptions(argv, extra));
}

/** Print the daemon's answer as JSON (-o json) or as the command's own text. */
export function show<T>(argv: Args, answer: T, asText: (answer: T) => string): void {
  const io = ioOf(argv);
  io.stdout(argv.output === 'json' ? json(answer) : asText(answer));
}
