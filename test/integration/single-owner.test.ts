// One reservoird per store: a second daemon pointed at the same SQLite file (say, one left
// running after its supervisor died, its socket file removed) must refuse to start, not share it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { callDaemon } from '../../src/client.js';
import { runDaemonToExit } from '../support/daemon.js';
import { useDaemonProcess } from '../support/hooks.js';

describe('one reservoird per lease store', () => {
  const first = useDaemonProcess('single-owner');

  it('a second daemon on the same store, with its own socket, refuses to start and says why', async () => {
    const { dir, dbPath } = first.paths;
    const second = await runDaemonToExit({ socket: join(dir, 'other.sock'), stateDir: join(dir, 'other-state'), db: dbPath }, 20_000);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('held by another process');
    expect(second.stderr).toContain(dbPath);
    // The first daemon is unaffected.
    await expect(callDaemon('health', { socket: first.process.socket, timeoutMs: 5_000 })).resolves.toMatchObject({ ok: true, pid: first.process.pid });
  });
});
