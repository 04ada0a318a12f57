// reservoird's flags; each has an environment twin (RESERVOIR_*) for systemd units and pods.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET } from '../src/defaults.js';
import type { Level } from './log.js';

export interface DaemonFlags {
  readonly socket: string;
  readonly stateDir: string;
  readonly dbPath: string;
  readonly cniConfDir: string | undefined;
  readonly socketGroup: string | undefined;
  readonly logLevel: Level;
  readonly reclaimGraceMs: number | undefined;
}

export const USAGE = `usage: reservoird [options]
  --socket PATH        unix socket to serve (default ${DEFAULT_SOCKET}; env RESERVOIR_SOCKET)
  --state-dir DIR      state directory (default /var/lib/reservoir; env RESERVOIR_STATE_DIR)
  --db PATH            SQLite lease store (default STATE_DIR/reservoir.db; env RESERVOIR_DB)
  --cni-conf-dir DIR   CNI config directory to learn networks from, "" to disable
                       (default /etc/cni/net.d; env RESERVOIR_CNI_CONF_DIR)
  --socket-group NAME  group owning the socket, besides root (env RESERVOIR_SOCKET_GROUP)
  --log-level LEVEL    debug, info, warn or error (default info; env RESERVOIR_LOG_LEVEL)
  --reclaim-grace SECONDS  release a lease whose network namespace has been gone this long
                       (default 60; 0 disables; env RESERVOIR_RECLAIM_GRACE)
`;

export function parseDaemonFlags(argv: string[], env: NodeJS.ProcessEnv): DaemonFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        db: { type: 'string' },
        'cni-conf-dir': { type: 'string' },
        'socket-group': { type: 'string' },
        'log-level': { type: 'string' },
        'reclaim-grace': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const stateDir = values['state-dir'] ?? env.RESERVOIR_STATE_DIR ?? '/var/lib/reservoir';
  const level = values['log-level'] ?? env.RESERVOIR_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`--log-level ${level}: use debug, info, warn or error`);
  const confDir = values['cni-conf-dir'] ?? env.RESERVOIR_CNI_CONF_DIR ?? '/etc/cni/net.d';
  const graceText = values['reclaim-grace'] ?? env.RESERVOIR_RECLAIM_GRACE;
  if (graceText !== undefined && !/^\d+(\.\d+)?$/.test(graceText)) throw new Error(`--reclaim-grace ${graceText}: give seconds, e.g. 60 (0 disables)`);
  return {
    reclaimGraceMs: graceText === undefined ? undefined : Math.round(Number(graceText) * 1000),
    socket: values.socket ?? env.RESERVOIR_SOCKET ?? DEFAULT_SOCKET,
    stateDir,
    dbPath: values.db ?? env.RESERVOIR_DB ?? join(stateDir, 'reservoir.db'),
    cniConfDir: confDir === '' ? undefined : confDir,
    socketGroup: values['socket-group'] ?? env.RESERVOIR_SOCKET_GROUP,
    logLevel: level as Level,
  };
}
