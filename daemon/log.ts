// One JSON object per line on stderr: journald and `kubectl logs` keep it, jq reads it.
import type { Store } from './store.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(minimum: Level = 'info', write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < RANK[minimum]) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The logger of code that runs inside units of work (store.ts): a line said inside a transaction
 * is written once it has committed, and never if it rolls back, so a unit that runs twice (a
 * conflict retries it) or is undone logs what happened exactly once. Outside a transaction a line
 * is written at once (onCommit runs its effect at once there).
 */
export function afterCommit(store: Pick<Store, 'onCommit'>, log: Logger): Logger {
  if (log === silentLogger) return log;
  const defer = (level: Level) => (msg: string, fields?: Record<string, unknown>) => store.onCommit(() => log[level](msg, fields));
  return { debug: defer('debug'), info: defer('info'), warn: defer('warn'), error: defer('error') };
}
