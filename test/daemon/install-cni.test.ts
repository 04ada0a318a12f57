// The DaemonSet pod's installer (daemon/install-cni.ts): atomic replacement of the plugin, its
// addon and the conflist in the host's directories, against real files and real processes.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InstallError,
  installConflist,
  installFileAtomic,
  installOrder,
  installPluginFiles,
  isStaleTemp,
  tempNameFor,
} from '../../daemon/install-cni.js';
import { parseDaemonFlags } from '../../daemon/flags.js';
import { bundleFile } from '../../scripts/build.mjs';
import { runDaemonToExit, startInProcessDaemon } from '../support/daemon.js';
import { removeDir, tempDir } from '../support/tmp.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('install', tmpdir()); // executables run from here: not on /dev/shm, which may be noexec
});
afterEach(() => removeDir(dir));

function fileWith(name: string, bytes: Buffer | string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  chmodSync(path, mode);
  return path;
}

function makeDir(name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  return path;
}

const conflist = (socket?: string) =>
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'podnet',
    plugins: [{ type: 'bridge', bridge: 'cni0', ipam: { type: 'reservoir', ranges: [[{ subnet: '10.22.0.0/16' }]], ...(socket ? { socket } : {}) } }],
  });

describe('installOrder', () => {
  it('puts the plugin after the files it loads from beside itself and skips hidden names', () => {
    expect(installOrder(['reservoir', 'reservoir_call.node', '.reservoir.1.ab.reservoir-tmp', 'z.node'])).toEqual(['reservoir_call.node', 'z.node', 'reservoir']);
  });
});

describe('temp names', () => {
  it('are hidden, never end like a CNI config, and only other processes own stale ones', () => {
    const name = tempNameFor('10-reservoir.conflist', 42, '0badbeef');
    expect(name.startsWith('.')).toBe(true);
    expect(name).not.toMatch(/\.(conf|conflist|json)$/);
    expect(isStaleTemp(name, '10-reservoir.conflist', 7)).toBe(true);
    expect(isStaleTemp(name, '10-reservoir.conflist', 42)).toBe(false);
    expect(isStaleTemp(name, '10-reservoir', 7)).toBe(false);
    expect(isStaleTemp(tempNameFor('10-reservoir.conflist', 7, '0badbeef'), '10-reservoir', 7)).toBe(false);
    expect(isStaleTemp('10-reservoir.conflist', '10-reservoir.conflist', 7)).toBe(false);
  });
});

describe('installFileAtomic', () => {
  it('installs with the source mode, replaces in place with a new inode, and leaves no temp file', async () => {
    const bin = makeDir('bin');
    const v1 = fileWith('v1', 'one', 0o755);
    const v2 = fileWith('v2', 'two', 0o755);
    const dest = await installFileAtomic(v1, bin, 'reservoir');
    expect(readFileSync(dest, 'utf8')).toBe('one');
    expect(statSync(dest).mode & 0o777).toBe(0o755);
    const firstInode = statSync(dest).ino;
    await installFileAtomic(v2, bin, 'reservoir');
    expect(readFileSync(dest, 'utf8')).toBe('two');
    expect(statSync(dest).ino).not.toBe(firstInode);
    expect(readdirSync(bin)).toEqual(['reservoir']);
  });

  it('lets a reader that has the old file open read the complete old one while it is replaced', async () => {
    const bin = makeDir('bin');
    const old = randomBytes(3 << 20);
    await installFileAtomic(fileWith('old', old), bin, 'reservoir_call.node');
    const fd = openSync(join(bin, 'reservoir_call.node'), 'r');
    try {
      const seen = Buffer.alloc(old.length);
      let at = readSync(fd, seen, 0, 1 << 20, 0);
      await installFileAtomic(fileWith('new', randomBytes(old.length)), bin, 'reservoir_call.node');
      while (at < old.length) {
        const n = readSync(fd, seen, at, old.length - at, at);
        if (n === 0) break;
        at += n;
      }
      expect(at).toBe(old.length);
      expect(seen.equals(old)).toBe(true);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(join(bin, 'reservoir_call.node')).equals(old)).toBe(false);
  });

  it('replaces an executable that is running (writing it in place fails with ETXTBSY)', async () => {
    const bin = makeDir('bin');
    const sleep = spawnSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).stdout.trim();
    await installFileAtomic(sleep, bin, 'reservoir', 0o755);
    const running = spawn(join(bin, 'reservoir'), ['30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => running.once('spawn', resolve));
      expect(() => writeFileSync(join(bin, 'reservoir'), 'x')).toThrow(/ETXTBSY/);
      await installFileAtomic(fileWith('new', '#!/bin/sh\necho new\n', 0o755), bin, 'reservoir');
      expect(running.exitCode).toBeNull();
      expect(spawnSync(join(bin, 'reservoir'), { encoding: 'utf8' }).stdout).toBe('new\n');
    } finally {
      running.kill('SIGKILL');
    }
  });

  it('keeps the old file whole when the installer dies mid-copy, and the next run removes its temp file', async () => {
    const bin = makeDir('bin');
    const old = randomBytes(1 << 20);
    await installFileAtomic(fileWith('old', old, 0o755), bin, 'reservoir');

    // A child process installs from a FIFO that we feed half a file, then it is SIGKILLed.
    const fifo = join(dir, 'source.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const child = await installerChild(fifo, bin);
    try {
      const writer = openSync(fifo, 'w');
      const half = randomBytes(512 << 10);
      writeFileSync(writer, half);
      await until(() => readdirSync(bin).some((n) => n.endsWith('.reservoir-tmp') && statSync(join(bin, n)).size === half.length));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      closeSync(writer);
    } finally {
      child.kill('SIGKILL');
    }
    const left = readdirSync(bin).filter((n) => n !== 'reservoir');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.reservoir\.\d+\.[0-9a-f]{8}\.reservoir-tmp$/);
    expect(readFileSync(join(bin, 'reservoir')).equals(old)).toBe(true);

    const next = randomBytes(1 << 20);
    await installFileAtomic(fileWith('next', next, 0o755), bin, 'reservoir');
    expect(readdirSync(bin)).toEqual(['reservoir']);
    expect(readFileSync(join(bin, 'reservoir')).equals(next)).toBe(true);
  });

  it('names the source when it cannot be read, and leaves the destination alone', async () => {
    const bin = makeDir('bin');
    await expect(installFileAtomic(join(dir, 'missing'), bin, 'reservoir')).rejects.toThrow(InstallError);
    await expect(installFileAtomic(join(dir, 'missing'), bin, 'reservoir')).rejects.toThrow(/cannot read .*missing to install it as .*bin\/reservoir/);
    expect(readdirSync(bin)).toEqual([]);
  });
});

describe('installPluginFiles', () => {
  it('installs every file of the packaged plugin directory, the plugin last', async () => {
    const from = makeDir('from');
    const bin = makeDir('bin');
    writeFileSync(join(from, 'reservoir_call.node'), 'addon');
    writeFileSync(join(from, 'reservoir'), 'plugin', { mode: 0o755 });
    mkdirSync(join(from, 'subdir'));
    const installed = await installPluginFiles(from, bin);
    expect(installed).toEqual([join(bin, 'reservoir_call.node'), join(bin, 'reservoir')]);
    expect(readdirSync(bin).sort()).toEqual(['reservoir', 'reservoir_call.node']);
    expect(statSync(join(bin, 'reservoir')).mode & 0o777).toBe(0o755);
  });

  it('refuses a directory without the plugin', async () => {
    const from = makeDir('from');
    writeFileSync(join(from, 'reservoir_call.node'), 'addon');
    await expect(installPluginFiles(from, makeDir('bin'))).rejects.toThrow(/no reservoir plugin executable/);
    await expect(installPluginFiles(join(dir, 'nope'), makeDir('bin'))).rejects.toThrow(/--install-cni .*nope: cannot list/);
  });
});

describe('installConflist', () => {
  it('installs a conflist that talks to this daemon, 0644', async () => {
    const conf = makeDir('net.d');
    const source = fileWith('10-reservoir.conflist', conflist('/run/r/r.sock'), 0o600);
    const dest = await installConflist(source, conf, '/run/r/r.sock');
    expect(dest).toBe(join(conf, '10-reservoir.conflist'));
    expect(statSync(dest).mode & 0o777).toBe(0o644);
    expect(JSON.parse(readFileSync(dest, 'utf8')).name).toBe('podnet');
  });

  it('refuses one whose socket is not the one served, one without a reservoir IPAM, and broken JSON', async () => {
    const conf = makeDir('net.d');
    await expect(installConflist(fileWith('a.conflist', conflist()), conf, '/run/r/r.sock')).rejects.toThrow(
      /network podnet talks to \/run\/reservoir\/reservoir.sock but this reservoird serves \/run\/r\/r.sock/,
    );
    await expect(installConflist(fileWith('b.conflist', JSON.stringify({ name: 'x', type: 'bridge', ipam: { type: 'host-local' } })), conf, '/s')).rejects.toThrow(/no plugin in it has "ipam"/);
    await expect(installConflist(fileWith('c.conflist', '{"name": '), conf, '/s')).rejects.toThrow(/not a readable JSON CNI config/);
    const badRange = JSON.stringify({ name: 'bad', type: 'bridge', ipam: { type: 'reservoir', ranges: [[{ subnet: '10.22.0.1/16' }]] } });
    await expect(installConflist(fileWith('d.conflist', badRange), conf, '/run/reservoir/reservoir.sock')).rejects.toThrow(/network bad: invalid config: .*subnet/);
    expect(readdirSync(conf)).toEqual([]);
  });
});

describe('reservoird --install-cni / --install-conflist', () => {
  it('parses the flags and their environment twins', () => {
    const flags = parseDaemonFlags(['--install-cni', '/img/cni', '--install-conflist', '/cfg/10.conflist'], {});
    expect(flags).toMatchObject({ installCni: '/img/cni', cniBinDir: '/opt/cni/bin', installConflist: '/cfg/10.conflist' });
    expect(parseDaemonFlags([], { RESERVOIR_INSTALL_CNI: '/a', RESERVOIR_CNI_BIN_DIR: '/b', RESERVOIR_INSTALL_CONFLIST: '/c' })).toMatchObject({
      installCni: '/a',
      cniBinDir: '/b',
      installConflist: '/c',
    });
    expect(() => parseDaemonFlags(['--install-conflist', '/c', '--cni-conf-dir', ''], {})).toThrow(/--install-conflist needs a --cni-conf-dir/);
  });

  it('installs the plugin before serving and the conflist once serving, and learns the network from it', async () => {
    const from = makeDir('from');
    writeFileSync(join(from, 'reservoir'), 'plugin', { mode: 0o755 });
    const bin = makeDir('bin');
    const conf = makeDir('net.d');
    const socket = join(dir, 'r.sock');
    const daemon = await startInProcessDaemon('install', {
      socket,
      cniConfDir: conf,
      installCni: { fromDir: from, binDir: bin },
      installConflist: fileWith('10-reservoir.conflist', conflist(socket)),
    });
    try {
      expect(readFileSync(join(bin, 'reservoir'), 'utf8')).toBe('plugin');
      expect(readdirSync(conf)).toEqual(['10-reservoir.conflist']);
      await until(() => daemon.daemon.store.listNetworks().some((n) => n.name === 'podnet'));
    } finally {
      await daemon.close();
    }
  });

  it('exits with the reason when the conflist talks to another socket, installing nothing', async () => {
    const conf = makeDir('net.d');
    const exit = await runDaemonToExit({
      socket: join(dir, 'r.sock'),
      stateDir: join(dir, 'state'),
      extraArgs: ['--cni-conf-dir', conf, '--install-conflist', fileWith('10-reservoir.conflist', conflist('/elsewhere.sock'))],
    });
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/network podnet talks to \/elsewhere.sock but this reservoird serves .*r\.sock/);
    expect(readdirSync(conf)).toEqual([]);
  });
});

/** Polls `ok` every 20 ms for up to 10 s. */
async function until(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A node process running installFileAtomic(source, bin, 'reservoir') (./install-cni-child.ts). */
async function installerChild(source: string, bin: string): Promise<ChildProcess> {
  const script = await bundleFile({ entry: join(import.meta.dirname, 'install-cni-child.ts'), outfile: join(dir, 'installer.cjs') });
  return spawn(process.execPath, [script, source, bin], { stdio: 'ignore' });
}
