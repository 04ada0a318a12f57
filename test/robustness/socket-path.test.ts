// Where the daemon's socket may live, and what it changes there: a shared directory (/tmp-like,
// world-writable, another user's) is refused with a reason and left exactly as it was; a
// directory that is not reservoird's own keeps its mode; and a stopped daemon whose backlog is
// full keeps its socket: a second daemon refuses to take it over.
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundlesReady } from '../support/build.js';
import { Cleanup } from '../support/cleanup.js';
import { DaemonProcess, health, runDaemonToExit } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';

const cleanup = new Cleanup();
let root: string;

beforeAll(async () => {
  await bundlesReady();
  root = cleanup.tempDir('rsv-sockdir-');
  chmodSync(root, 0o755);
});
afterAll(() => cleanup.run(), 60_000);

const modeOf = (path: string) => (statSync(path).mode & 0o7777).toString(8);

/** Connect until the listener's accept queue is full (EAGAIN); the open connections fill it. */
async function fillBacklog(path: string): Promise<{ sockets: Socket[]; refusal: string }> {
  const sockets: Socket[] = [];
  for (let i = 0; i < 20_000; i++) {
    const socket = connect(path);
    const outcome = await new Promise<string | undefined>((resolve) => {
      socket.once('connect', () => resolve(undefined));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    if (outcome !== undefined) {
      socket.destroy();
      return { sockets, refusal: outcome };
    }
    sockets.push(socket);
  }
  throw new Error('the backlog never filled');
}

describeWithPrereqs('the socket directory', ['root'], () => {
  it('refuses a shared sticky directory (as /tmp) and leaves its mode alone', async () => {
    const shared = join(root, 'tmp');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const r = await runDaemonToExit({ socket: join(shared, 'r.sock'), stateDir: join(root, 'state-tmp') });
    expect(r.timedOut, 'the daemon started on a socket in a shared directory').toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/refusing socket directory .*\/tmp: it is writable by everyone \(mode 1777\)/);
    expect(r.stderr).toMatch(/\/tmp\/reservoir\/r\.sock/); // what to use instead
    expect(modeOf(shared)).toBe('1777');
  });

  it('refuses a directory under a world-writable, non-sticky one, and one owned by another user', async () => {
    const open = join(root, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = await runDaemonToExit({ socket: join(open, 'run', 'r.sock'), stateDir: join(root, 'state-open') });
    expect(r.timedOut).toBe(false);
    expect(r.stderr).toMatch(/open: it is writable by everyone \(mode 777\) and not sticky/);
    expect(modeOf(open)).toBe('777');

    const theirs = join(root, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 65534, 65534);
    const t = await runDaemonToExit({ socket: join(theirs, 'r.sock'), stateDir: join(root, 'state-theirs') });
    expect(t.timedOut).toBe(false);
    expect(t.stderr).toMatch(/theirs: it belongs to uid 65534/);
    expect(modeOf(theirs)).toBe('755');
    expect(statSync(theirs).uid).toBe(65534);
  });

  it('keeps the mode and group of a directory that is not its own; the socket itself is 0660', async () => {
    const run = join(root, 'run-shared');
    mkdirSync(run, { mode: 0o755 });
    chmodSync(run, 0o755);
    writeFileSync(join(run, 'other.pid'), '1');
    const socket = join(run, 'r.sock');
    const d = await DaemonProcess.start({ socket, stateDir: join(root, 'state-shared'), extraArgs: ['--socket-group', '4243'] });
    cleanup.add('stop daemon in a shared dir', () => d.stop());
    expect(modeOf(run)).toBe('755');
    expect(statSync(run).gid).toBe(0);
    expect(modeOf(socket)).toBe('660');
    expect(statSync(socket).gid).toBe(4243);
    expect((await health(socket)).pid).toBe(d.pid);
    await d.stop();
  });

  it('a stopped daemon whose backlog is full keeps its socket: a second daemon refuses to start', async () => {
    const socket = join(root, 'held', 'r.sock');
    const held = await DaemonProcess.start({ socket, stateDir: join(root, 'state-held') });
    cleanup.add('stop held daemon', () => {
      held.kill('SIGCONT');
      return held.stop();
    });
    const inode = statSync(socket).ino;
    held.kill('SIGSTOP');
    let sockets: Socket[] = [];
    try {
      const filled = await fillBacklog(socket);
      sockets = filled.sockets;
      expect(filled.refusal).toBe('EAGAIN');
      const second = await runDaemonToExit({ socket, stateDir: join(root, 'state-second') });
      expect(second.timedOut, 'the second daemon took the socket over').toBe(false);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/held by a process that does not accept connections \(connect: EAGAIN/);
      expect(statSync(socket).ino).toBe(inode);
    } finally {
      held.kill('SIGCONT');
      for (const s of sockets) s.destroy();
    }
    expect((await health(socket, 10_000)).pid).toBe(held.pid);
    await held.stop();
  }, 60_000);
});
