// One JSON object per line on stderr: journald and `kubectl logs` keep it, jq reads it.
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
