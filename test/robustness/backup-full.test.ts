// A backup that cannot be written (the state directory's disk is full) fails with 113 and leaves
// no half-written copy behind; the daemon serves on.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { callDaemonRaw } from '../../src/client.js';
import { netconf } from '../support/netconf.js';
import { seedLeases } from '../support/seed.js';
import { bundlesReady } from '../support/build.js';
import { Cleanup } from '../support/cleanup.js';
import { DaemonProcess, health } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { mountTmpfs } from '../support/mounts.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

describeWithPrereqs('a backup on a full disk', ['root', 'tmpfs'], () => {
  let daemon: DaemonProcess;
  let stateDir: string;

  beforeAll(async () => {
    await bundlesReady();
    const root = cleanup.tempDir('rsv-bkfull-');
    const dbDir = join(root, 'db');
    mkdirSync(dbDir);
    const db = join(dbDir, 'reservoir.db');
    // a store of several MB, and a state directory (where backup copies go) of 512 kB
    seedLeases(db, netconf('full', join(root, 'run', 'r.sock'), { ranges: [[{ subnet: '10.93.0.0/16' }]] }), 20_000);
    stateDir = mountTmpfs(cleanup, join(root, 'state'), '512k');
    daemon = await DaemonProcess.start({ socket: join(root, 'run', 'r.sock'), stateDir, db });
    cleanup.add('stop daemon', () => daemon.stop());
  }, 120_000);

  it('fails with 113 and leaves no partial copy', async () => {
    let code: number | undefined;
    try {
      await callDaemonRaw('backup', { socket: daemon.spec.socket, timeoutMs: 30_000 });
    } catch (err) {
      code = (err as { code: number }).code;
    }
    expect(code).toBe(113);
    expect(readdirSync(stateDir).filter((name) => name.startsWith('.backup-'))).toEqual([]);
    expect((await health(daemon.spec.socket)).pid).toBe(daemon.pid);
  });
});
