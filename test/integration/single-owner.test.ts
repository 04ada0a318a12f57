// One reservoird per store: a second daemon pointed at the same SQLite file (say, one left
// running after its supervisor died, its socket file removed) must refuse to start, not share it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemon } from '../../src/client.js';
import { DaemonProcess, daemonPaths, runDaemonToExit } from '../support/daemon.js';
import { removeDir, tempDir } from '../support/tmp.js';

describe('one reservoird per lease store', () => {
  let dir: string;
  let first: DaemonProcess;

  beforeAll(async () => {
    dir = tempDir('single-owner');
    first = await DaemonProcess.start(daemonPaths(dir));
  });

  afterAll(async () => {
    await first.stop();
    removeDir(dir);
  });

  it('a second daemon on the same store, with its own socket, refuses to start and says why', async () => {
    const { dbPath } = daemonPaths(dir);
    const second = await runDaemonToExit({ socket: join(dir, 'other.sock'), stateDir: join(dir, 'other-state'), db: dbPath }, 20_000);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('held by another process');
    expect(second.stderr).toContain(dbPath);
    // The first daemon is unaffected.
    await expect(callDaemon('health', { socket: first.socket, timeoutMs: 5_000 })).resolves.toMatchObject({ ok: true, pid: first.pid });
  });
});
