// A client that leaves a backup early (after the first bytes, or before the copy is even made)
// leaves neither the daemon's temporary copy of the store nor an open fd on it behind; a copy
// left by a daemon killed mid-backup goes at the next start.
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemonRaw } from '../../src/client.js';
import { bundlesReady } from '../support/build.js';
import { DaemonProcess, type DaemonPaths, daemonPaths } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';
import { seedLeases } from '../support/seed.js';
import { removeDir, tempDir } from '../support/tmp.js';

let dir: string;
let daemon: DaemonProcess;
let paths: DaemonPaths;

beforeAll(async () => {
  await bundlesReady();
  dir = tempDir('bkab');
  paths = daemonPaths(dir);
  mkdirSync(paths.stateDir, { recursive: true });
  // a store of several MB: far more than the socket buffers hold, so a copy is still streaming when the client leaves
  seedLeases(paths.dbPath, netconf('bk', paths.socket, { ranges: [[{ subnet: '10.92.0.0/16' }]] }), 20_000);
  daemon = await DaemonProcess.start({ socket: paths.socket, stateDir: paths.stateDir });
}, 120_000);

afterAll(async () => {
  await daemon?.stop('SIGTERM');
  removeDir(dir);
});

const backupFiles = () => readdirSync(paths.stateDir).filter((name) => name.startsWith('.backup-'));

/** The daemon's open fds on a backup copy (deleted or not). */
function backupFds(): string[] {
  const fdDir = `/proc/${daemon.pid}/fd`;
  return readdirSync(fdDir).flatMap((fd) => {
    try {
      const target = readlinkSync(join(fdDir, fd));
      return target.includes('.backup-') ? [target] : [];
    } catch {
      return []; // closed while we looked
    }
  });
}

/** Send GET /v1/backup and hang up once `bytes` bytes of the answer arrived (0: right after sending). */
function leaveEarly(bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.socket);
    let received = 0;
    socket.on('connect', () => {
      socket.write('GET /v1/backup HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      if (bytes === 0) {
        socket.destroy();
        resolve(0);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) {
        socket.destroy();
        resolve(received);
      }
    });
    socket.on('error', reject);
  });
}

async function settled(): Promise<{ files: string[]; fds: string[] }> {
  const until = Date.now() + 10_000;
  for (;;) {
    const now = { files: backupFiles(), fds: backupFds() };
    if ((now.files.length === 0 && now.fds.length === 0) || Date.now() > until) return now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('aborted backups', () => {
  it('a client that hangs up mid-stream leaves no copy and no fd', async () => {
    for (let i = 0; i < 3; i++) expect(await leaveEarly(64 * 1024)).toBeGreaterThanOrEqual(64 * 1024);
    expect(await settled()).toEqual({ files: [], fds: [] });
  });

  it('a client that hangs up before the copy is made leaves no copy and no fd', async () => {
    for (let i = 0; i < 3; i++) await leaveEarly(0);
    expect(await settled()).toEqual({ files: [], fds: [] });
  });

  it('a whole backup still arrives, and its copy goes afterwards', async () => {
    const copy = await callDaemonRaw('backup', { socket: daemon.socket, timeoutMs: 30_000 });
    expect(copy.subarray(0, 16).toString('latin1')).toBe('SQLite format 3\u0000');
    expect(await settled()).toEqual({ files: [], fds: [] });
  });

  it('a copy left by a daemon killed mid-backup is removed at the next start', async () => {
    const gone = spawnSync('true').pid; // a process that has ended, as a killed daemon has
    writeFileSync(join(paths.stateDir, `.backup-${gone}-1.db`), 'left by a killed daemon');
    writeFileSync(join(paths.stateDir, `.backup-${process.pid}-1.db`), 'a live process is mid-backup');
    await daemon.stop('SIGTERM');
    daemon = await DaemonProcess.start({ socket: paths.socket, stateDir: paths.stateDir });
    expect(backupFiles()).toEqual([`.backup-${process.pid}-1.db`]);
  });
});
