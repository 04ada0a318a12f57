// The daemon executable: flags and environment in, startDaemon, signals wired. Nothing else.
import { getgrnam } from '../daemon/group.js';
import { startDaemon } from '../daemon/app.js';
import { etcdSelfTest } from '../daemon/cluster/etcd-client.js';
import { parseDaemonFlags } from '../daemon/flags.js';
import { createLogger } from '../daemon/log.js';

async function main(): Promise<void> {
  const flags = parseDaemonFlags(process.argv.slice(2), process.env);
  const log = createLogger(flags.logLevel);
  const daemon = await startDaemon({
    socket: flags.socket,
    dbPath: flags.dbPath,
    stateDir: flags.stateDir,
    cniConfDir: flags.cniConfDir,
    socketGid: flags.socketGroup === undefined ? undefined : getgrnam(flags.socketGroup),
    reclaimGraceMs: flags.reclaimGraceMs,
    nodeName: flags.nodeName,
    httpListen: flags.httpListen,
    historyMaxAgeMs: flags.historyMaxAgeMs,
    historyMaxEvents: flags.historyMaxEvents,
    kube: flags.kube,
    etcd: flags.etcd,
    installCni: flags.installCni === undefined ? undefined : { fromDir: flags.installCni, binDir: flags.cniBinDir },
    installConflist: flags.installConflist,
    log,
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('reservoird stopping', { signal });
    daemon.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Not a user interface: proves a packaged reservoird loads the etcd client and reaches etcd (test/e2e/etcd-client.test.ts). */
async function selfTest(endpoints: string): Promise<void> {
  process.stdout.write(`${JSON.stringify(await etcdSelfTest(endpoints))}\n`);
  process.exit(0);
}

const selfTestEndpoints = process.env.RESERVOIR_ETCD_SELFTEST;
(selfTestEndpoints ? selfTest(selfTestEndpoints) : main()).catch((err: unknown) => {
  process.stderr.write(`reservoird: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
