// One reservoird per store: a second daemon pointed at the same SQLite file (say, one left
// running after its supervisor died, its socket file removed) must refuse to start, not share it.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemon } from '../../src/client.js';
import { DAEMON_BUNDLE, ROOT } from '../support/build.js';
import { ChildDaemon } from '../support/daemon.js';
import { removeDir, tempDir } from '../support/tmp.js';

describe('one reservoird per lease store', () => {
  let dir: string;
  let first: ChildDaemon;

  beforeAll(async () => {
    dir = tempDir('single-owner');
    first = new ChildDaemon(dir);
    await first.start();
  });

  afterAll(async () => {
    await first.stop();
    removeDir(dir);
  });

  it('a second daemon on the same store, with its own socket, refuses to start and says why', async () => {
    const second = spawnSync(
      process.execPath,
      [DAEMON_BUNDLE, '--socket', join(dir, 'other.sock'), '--state-dir', join(dir, 'other-state'), '--db', first.paths.dbPath, '--cni-conf-dir', ''],
      { cwd: ROOT, encoding: 'utf8', timeout: 20_000 },
    );
    expect(second.status).not.toBe(0);
    expect(second.stderr).toContain('held by another process');
    expect(second.stderr).toContain(first.paths.dbPath);
    // The first daemon is unaffected.
    await expect(callDaemon('health', { socket: first.socket, timeoutMs: 5_000 })).resolves.toMatchObject({ ok: true, pid: first.pid });
  });
});
