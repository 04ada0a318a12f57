// Backup: GET /v1/backup streams a consistent SQLite copy while ADDs keep committing; restoring
// it (stop, replace the file, drop -wal/-shm, start) gives back exactly the leases of that moment.
import { copyFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteOptions } from '../../daemon/native-addon.js';
import { SCHEMA_VERSION } from '../../daemon/sqlite-store.js';
import { runPlugin } from '../../src/plugin.js';
import { Cleanup } from '../support/cleanup.js';
import { leasesOf, sleep, startDaemonIn } from '../support/daemon.js';
import { rawRequest } from '../support/http.js';
import { netconf } from '../support/netconf.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

interface Add {
  readonly container: string;
  readonly start: number;
  readonly end: number;
  readonly ip: string | undefined;
}

async function add(conf: string, container: string): Promise<Add> {
  const start = performance.now();
  let out = '';
  const code = await runPlugin({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: container, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${container}` },
    stdin: async () => Buffer.from(conf),
    stdout: (text) => (out = text),
  });
  const end = performance.now();
  return { container, start, end, ip: code === 0 ? (JSON.parse(out).ips[0].address as string).split('/')[0] : undefined };
}

function hexToIpv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

describe('backup and restore under load', () => {
  it('streams a consistent copy during concurrent ADDs; a restore gives back the leases at backup time', async () => {
    const served = await startDaemonIn(cleanup, 'backup');
    const { dir, socket, stateDir } = served;
    const dbPath = join(stateDir, 'reservoir.db');
    const conf = JSON.stringify(netconf('bk', socket, { timeout: '10s', ranges: [[{ subnet: '10.210.0.0/16' }]] }));

    // a store worth copying: 1,500 leases
    for (let i = 0; i < 1_500; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => add(conf, `pre-${i + j}`)));
      expect(batch.every((a) => a.ip)).toBe(true);
    }

    // writers keep going while the backup runs
    const adds: Add[] = [];
    let stop = false;
    let n = 0;
    const writers = Array.from({ length: 8 }, async () => {
      while (!stop) adds.push(await add(conf, `live-${n++}`));
    });
    await sleep(300);
    const t0 = performance.now();
    const answer = await rawRequest({ socket, method: 'GET', path: '/v1/backup', timeoutMs: 60_000 });
    const t1 = performance.now();
    await sleep(300);
    stop = true;
    await Promise.all(writers);
    expect(answer.status, answer.text.slice(0, 300)).toBe(200);
    expect(answer.headers['content-type']).toBe('application/vnd.sqlite3');
    const backupFile = join(dir, 'backup.db');
    writeFileSync(backupFile, answer.body);
    expect(readdirSync(stateDir).filter((f) => f.startsWith('.backup'))).toEqual([]); // temp copy removed

    // a valid, internally consistent store
    const copy = new Database(backupFile, sqliteOptions({ readonly: true, fileMustExist: true }));
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(copy.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const rows = copy.prepare("SELECT container_id AS c, ip FROM leases WHERE network = 'bk'").all() as Array<{ c: string; ip: string }>;
    const runs = copy.prepare("SELECT start_ip AS s, end_ip AS e FROM occupied WHERE network = 'bk' AND family = 4").all() as Array<{ s: string; e: string }>;
    copy.close();
    const inBackup = new Map(rows.map((r) => [r.c, hexToIpv4(r.ip)]));
    // the free-space index agrees with the leases: the copy is one moment, not a mix of two
    const covered = runs.reduce((sum, r) => sum + (Number.parseInt(r.e, 16) - Number.parseInt(r.s, 16) + 1), 0);
    expect(covered).toBe(rows.length);
    for (const r of rows) {
      const x = Number.parseInt(r.ip, 16);
      expect(runs.some((run) => Number.parseInt(run.s, 16) <= x && x <= Number.parseInt(run.e, 16))).toBe(true);
    }

    const ackedBefore = adds.filter((a) => a.ip && a.end < t0);
    const startedAfter = adds.filter((a) => a.start > t1);
    expect(ackedBefore.length).toBeGreaterThan(0);
    expect(startedAfter.length).toBeGreaterThan(0);
    for (let i = 0; i < 1_500; i++) expect(inBackup.has(`pre-${i}`)).toBe(true);
    for (const a of ackedBefore) expect(inBackup.get(a.container), a.container).toBe(a.ip);
    for (const a of startedAfter) expect(inBackup.has(a.container), a.container).toBe(false);
    const during = adds.filter((a) => a.ip && a.end >= t0 && a.start <= t1);
    for (const a of during) if (inBackup.has(a.container)) expect(inBackup.get(a.container)).toBe(a.ip);
    console.log(
      `backup: ${answer.body.length} bytes in ${Math.round(t1 - t0)} ms with ${rows.length} leases; ` +
        `${adds.length} concurrent ADDs (${ackedBefore.length} before, ${during.length} during, ${startedAfter.length} after)`,
    );

    // restore
    await served.daemon.stop();
    copyFileSync(backupFile, dbPath);
    rmSync(`${dbPath}-wal`, { force: true });
    rmSync(`${dbPath}-shm`, { force: true });
    await served.restart();
    const restored = await leasesOf(socket, 'bk');
    expect(new Map(restored.map((l) => [l.containerId!, l.ip]))).toEqual(inBackup);
    // and the restored store allocates around what it holds
    const after = await add(conf, 'after-restore');
    expect(after.ip).toBeDefined();
    expect([...inBackup.values()]).not.toContain(after.ip);
    await served.daemon.stop();
  }, 180_000);
});
