// The lease store under the daemon: start-up time on a big store, refusing corrupt or newer
// files without touching them, migrations from every earlier schema version, and a full or
// read-only disk (tmpfs) answered with code 113 and nothing half-written.
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteOptions } from '../../daemon/native-addon.js';
import { MIGRATIONS, SCHEMA_VERSION, SqliteStore } from '../../daemon/sqlite-store.js';
import { bundlesReady } from '../support/build.js';
import { Cleanup } from '../support/cleanup.js';
import { DaemonProcess, health, leasesOf, runDaemonToExit } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { mountExt4Image, mountTmpfs } from '../support/mounts.js';
import { netconf } from '../support/netconf.js';
import { run } from '../support/netns.js';
import { Rng } from '../support/random.js';
import { runPluginProcess, seedFrom, sha256File } from './support.js';

const STARTUP_BOUND_MS = 3_000; // the issue asks for < 1 s; generous for loaded CI machines
const LEASES = 100_000;

const cleanup = new Cleanup();
let root: string;

beforeAll(async () => {
  await bundlesReady();
  root = cleanup.tempDir('store');
}, 120_000);

afterAll(() => cleanup.run(), 60_000);

function dirs(name: string) {
  const base = join(root, name);
  return { socket: join(base, 'run', 'r.sock'), stateDir: join(base, 'state'), db: join(base, 'state', 'reservoir.db') };
}

function openRaw(path: string, readonly = false): Database.Database {
  return new Database(path, sqliteOptions(readonly ? { readonly: true, fileMustExist: true } : {}));
}

function addEnv(container: string, command = 'ADD') {
  return { CNI_COMMAND: command, CNI_CONTAINERID: container, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${container}` };
}

function schemaOf(path: string): string[] {
  const db = openRaw(path, true);
  try {
    return (db.prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as Array<{ type: string; name: string; sql: string }>).map(
      (r) => `${r.type} ${r.name}: ${r.sql.replace(/\s+/g, ' ').trim()}`,
    );
  } finally {
    db.close();
  }
}

/** Leases as "network container/ifname=ip kind state", sorted: what must survive, without ages. */
function leaseKeys(leases: Awaited<ReturnType<typeof leasesOf>>): string[] {
  return leases.map((l) => `${l.network} ${l.containerId}/${l.ifname}=${l.ip} ${l.kind} ${l.state}`).sort();
}

function fileList(dir: string): string[] {
  return readdirSync(dir).sort();
}

describe('start-up on a big store', () => {
  it(`answers /v1/health quickly with ${LEASES} leases`, async () => {
    const d = dirs('big');
    mkdirSync(d.stateDir, { recursive: true });
    const store = SqliteStore.open({ path: d.db });
    const now = Date.now();
    const ipam = { type: 'reservoir', socket: d.socket, ranges: [[{ subnet: '10.64.0.0/12' }]] };
    const base = 0x0a400000n; // 10.64.0.0
    const t0 = performance.now();
    store.transaction(() => {
      store.putNetwork('big', JSON.stringify(ipam), now);
      for (let i = 0; i < LEASES; i++) {
        store.insertLease({
          network: 'big',
          family: 4,
          ip: base + 2n + BigInt(i),
          containerId: `c${i}`,
          ifname: 'eth0',
          netns: `/var/run/netns/c${i}`,
          app: null,
          kind: 'stateless',
          createdAt: now,
          detachedAt: null,
        });
      }
    });
    store.close();
    console.log(`store: filled ${LEASES} leases in ${Math.round(performance.now() - t0)} ms (${(statSync(d.db).size / 1048576).toFixed(1)} MiB)`);

    const daemon = await DaemonProcess.spawn({ socket: d.socket, stateDir: d.stateDir });
    cleanup.add('stop big daemon', () => daemon.stop());
    const startupMs = await daemon.ready(15_000);
    console.log(`store: reservoird start-up on ${LEASES} leases (process spawn -> /v1/health answering): ${Math.round(startupMs)} ms`);
    expect(startupMs).toBeLessThan(STARTUP_BOUND_MS);
    const h = await health(d.socket);
    expect(h.leases).toBe(LEASES);

    // and it allocates past the 100,000-address run at once
    const add = await runPluginProcess({ env: addEnv('after-big'), stdin: JSON.stringify(netconf('big', d.socket, { ranges: [[{ subnet: '10.64.0.0/12' }]] })) });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect(add.json.ips[0].address).toBe('10.65.134.162/12'); // 10.64.0.2 + 100,000
    await daemon.stop();
  }, 120_000);
});

describe('refusing files it must not touch', () => {
  async function expectRefusal(name: string, prepare: (db: string) => void, pattern: RegExp) {
    const d = dirs(name);
    mkdirSync(d.stateDir, { recursive: true });
    prepare(d.db);
    const before = sha256File(d.db);
    const filesBefore = fileList(d.stateDir);
    const r = await runDaemonToExit({ socket: d.socket, stateDir: d.stateDir }, 15_000);
    expect(r.timedOut, `reservoird kept running on ${name}: ${r.stderr}`).toBe(false);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).toContain(d.db);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(sha256File(d.db)).toBe(before);
    expect(fileList(d.stateDir)).toEqual(filesBefore);
    expect(existsSync(d.socket)).toBe(false);
    return r.stderr.trim();
  }

  it('a file of random bytes', async () => {
    const rng = new Rng(seedFrom('RESERVOIR_STORE_SEED'));
    const msg = await expectRefusal('random', (db) => writeFileSync(db, rng.bytes(256 * 1024)), /corrupt|not a database/i);
    console.log(`store: random bytes -> ${msg}`);
  }, 30_000);

  it('a valid SQLite store with one garbage page', async () => {
    const rng = new Rng(seedFrom('RESERVOIR_STORE_SEED'));
    const msg = await expectRefusal(
      'garbage-page',
      (db) => {
        const store = SqliteStore.open({ path: db });
        store.transaction(() => {
          store.putNetwork('n', JSON.stringify({ type: 'reservoir', ranges: [[{ subnet: '10.1.0.0/16' }]] }), 1);
          for (let i = 0; i < 5_000; i++) {
            store.insertLease({ network: 'n', family: 4, ip: 0x0a010002n + BigInt(i * 2), containerId: `c${i}`, ifname: 'eth0', netns: null, app: null, kind: 'stateless', createdAt: 1, detachedAt: null });
          }
        });
        store.close(); // checkpoints: everything is in the main file, no -wal left
        const raw = openRaw(db);
        const pageSize = raw.pragma('page_size', { simple: true }) as number;
        const pages = raw.pragma('page_count', { simple: true }) as number;
        const free = raw.pragma('freelist_count', { simple: true }) as number;
        raw.close();
        expect(free).toBe(0); // so every page is in use
        expect(pages).toBeGreaterThan(20);
        const page = Math.floor(pages / 2); // a b-tree page in the middle; page 1 (header, schema) stays valid
        const fd = openSync(db, 'r+');
        writeSync(fd, rng.bytes(pageSize), 0, pageSize, (page - 1) * pageSize);
        closeSync(fd);
        // still a valid SQLite header (magic, user_version at offset 60): only the page is garbage
        expect(readHeader(db).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
        expect(readHeader(db).readUInt32BE(60)).toBe(SCHEMA_VERSION);
        expect(existsSync(`${db}-wal`)).toBe(false);
      },
      /corrupt|malformed/i,
    );
    console.log(`store: garbage page -> ${msg}`);
  }, 30_000);

  it('a store from a newer reservoird (WAL mode, as reservoird writes it)', async () => {
    const msg = await expectRefusal(
      'newer-wal',
      (db) => {
        SqliteStore.open({ path: db }).close();
        const raw = openRaw(db);
        raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
        raw.close();
      },
      /newer/i,
    );
    console.log(`store: newer schema -> ${msg}`);
  }, 30_000);

  it('a store from a newer reservoird (rollback-journal mode)', async () => {
    await expectRefusal(
      'newer-rollback',
      (db) => {
        const raw = openRaw(db);
        for (const sql of MIGRATIONS) raw.exec(sql);
        raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
        raw.close();
        expect(readHeader(db)[18]).toBe(1); // legacy (rollback journal) format
      },
      /newer/i,
    );
  }, 30_000);
});

/** The 100-byte SQLite file header. */
function readHeader(path: string): Buffer {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(100);
  readSync(fd, buf, 0, 100, 0);
  closeSync(fd);
  return buf;
}

describe('migrations', () => {
  const fresh = () => {
    const d = dirs('fresh-schema');
    mkdirSync(d.stateDir, { recursive: true });
    SqliteStore.open({ path: d.db }).close();
    return schemaOf(d.db);
  };

  const versions = Array.from({ length: SCHEMA_VERSION }, (_, v) => v);
  it.each(versions)('from schema version %i to the current one', async (version) => {
    const target = fresh();
    for (const variant of version === 0 ? ['empty file', 'no file'] : ['populated']) {
      const d = dirs(`migrate-${version}-${variant.replace(/ /g, '-')}`);
      mkdirSync(d.stateDir, { recursive: true });
      if (variant === 'empty file') writeFileSync(d.db, '');
      if (version > 0) {
        const raw = openRaw(d.db);
        raw.pragma('journal_mode = WAL');
        for (let v = 0; v < version; v++) raw.exec(MIGRATIONS[v]!);
        raw.pragma(`user_version = ${version}`);
        raw.close();
      }
      const daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
      cleanup.add('stop migrate daemon', () => daemon.stop());
      const add = await runPluginProcess({ env: addEnv(`m${version}`), stdin: JSON.stringify(netconf('mig', d.socket)) });
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(await leasesOf(d.socket, 'mig')).toHaveLength(1);
      await daemon.stop();
      const raw = openRaw(d.db, true);
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      raw.close();
      expect(schemaOf(d.db)).toEqual(target);
    }
  }, 60_000);
});

describeWithPrereqs('disk full and read-only store (tmpfs)', ['root', 'tmpfs'], () => {
  const conf = (socket: string) => JSON.stringify(netconf('disk', socket));
  let d: ReturnType<typeof dirs>;
  let daemon: DaemonProcess;
  let filler: string;

  beforeAll(async () => {
    d = dirs('disk');
    mountTmpfs(cleanup, d.stateDir, '2m');
    daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
    cleanup.add('stop disk daemon', () => daemon.stop());
  }, 60_000);

  it('disk full: ADD and DEL fail with code 113, nothing half-written', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await runPluginProcess({ env: addEnv(`full-ok-${i}`), stdin: conf(d.socket) });
      expect(r.code, r.stdout).toBe(0);
    }
    const before = await leasesOf(d.socket, 'disk');
    expect(before).toHaveLength(10);

    filler = join(d.stateDir, 'filler');
    fillDisk(filler);
    const adds = [];
    for (let i = 0; i < 3; i++) adds.push(await runPluginProcess({ env: addEnv(`full-fail-${i}`), stdin: conf(d.socket) }));
    const del = await runPluginProcess({ env: addEnv('full-ok-0', 'DEL'), stdin: conf(d.socket) });
    for (const r of [...adds, del]) {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.json.code, r.stdout).toBe(113);
      expect(r.json.msg).toMatch(/disk is full|cannot be written/);
    }
    console.log(`store: disk full -> code ${adds[0]!.json.code}: ${adds[0]!.json.msg}`);
    // reads still work while full
    expect(leaseKeys(await leasesOf(d.socket, 'disk'))).toEqual(leaseKeys(before));

    rmSync(filler);
    await daemon.stop();
    daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
    const after = await leasesOf(d.socket, 'disk');
    expect(leaseKeys(after)).toEqual(leaseKeys(before));
    const again = await runPluginProcess({ env: addEnv('full-fail-0'), stdin: conf(d.socket) });
    expect(again.code, again.stdout).toBe(0);
  }, 120_000);

  it('read-only tmpfs: cannot be remounted under a running daemon; at start-up it is refused with a clear message', async () => {
    const before = await leasesOf(d.socket, 'disk');
    // reservoird holds the store open for writing, and Linux refuses to remount a filesystem
    // read-only while files on it are open for writing (EBUSY). (The ext4 test below turns a
    // disk read-only under a running daemon the way the kernel does after I/O errors.)
    const live = run('mount', ['-o', 'remount,ro', d.stateDir]);
    if (live.status === 0) {
      try {
        const r = await runPluginProcess({ env: addEnv('ro-live'), stdin: conf(d.socket) });
        expect(r.json?.code, r.stdout).toBe(113);
      } finally {
        run('mount', ['-o', 'remount,rw', d.stateDir]);
      }
    } else {
      console.log(`store: remount,ro with reservoird running refused: ${live.stderr.trim().split('\n')[0]}`);
    }

    // stopped, remounted read-only, started: refused with a clear message, the file untouched;
    // the plugin meanwhile answers 11 (daemon unreachable)
    await daemon.stop();
    const sha = sha256File(d.db);
    expect(run('mount', ['-o', 'remount,ro', d.stateDir]).status).toBe(0);
    try {
      const r = await runDaemonToExit({ socket: d.socket, stateDir: d.stateDir }, 15_000);
      expect(r.timedOut).toBe(false);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(d.db);
      expect(r.stderr).toMatch(/cannot be written|read-only|readonly/i);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      console.log(`store: store on a read-only tmpfs -> exit ${r.code}: ${r.stderr.trim()}`);
      const add = await runPluginProcess({ env: addEnv('ro-down'), stdin: conf(d.socket) });
      expect(add.json?.code, add.stdout).toBe(11);
      expect(sha256File(d.db)).toBe(sha);
    } finally {
      run('mount', ['-o', 'remount,rw', d.stateDir]);
    }
    daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
    expect(leaseKeys(await leasesOf(d.socket, 'disk'))).toEqual(leaseKeys(before));
  }, 120_000);
});

describeWithPrereqs('a disk that turns read-only under a running daemon (ext4, errors=remount-ro)', ['root', 'ext4-loop'], () => {
  it('ADD and DEL fail with code 113, reads go on, nothing half-written', async () => {
    const d = dirs('ext4');
    const image = join(root, 'ext4.img');
    const mount = mountExt4Image(cleanup, image, d.stateDir, 16);
    let daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
    cleanup.add('stop ext4 daemon', () => daemon.stop());
    const conf = JSON.stringify(netconf('ext4net', d.socket));
    for (let i = 0; i < 10; i++) {
      const r = await runPluginProcess({ env: addEnv(`ext4-ok-${i}`), stdin: conf });
      expect(r.code, r.stdout).toBe(0);
    }
    const before = await leasesOf(d.socket, 'ext4net');

    mount.triggerError(); // what ext4 does on an I/O error: remount read-only, files stay open
    expect(mount.options()).toMatch(/(^|,)(ro|emergency_ro)(,|$)/);
    const add = await runPluginProcess({ env: addEnv('ext4-fail'), stdin: conf });
    const del = await runPluginProcess({ env: addEnv('ext4-ok-0', 'DEL'), stdin: conf });
    for (const r of [add, del]) {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.json.code, r.stdout).toBe(113);
      expect(r.json.msg).toMatch(/cannot be written|read-only|readonly/i);
      expect(r.json.msg).toContain(d.db);
    }
    console.log(`store: disk turned read-only under reservoird -> code ${add.json.code}: ${add.json.msg}`);
    expect(leaseKeys(await leasesOf(d.socket, 'ext4net'))).toEqual(leaseKeys(before));
    expect((await health(d.socket)).pid).toBe(daemon.pid);

    // repaired and mounted again: exactly the leases acknowledged before
    await daemon.stop();
    mount.repairAndRemount();
    daemon = await DaemonProcess.start({ socket: d.socket, stateDir: d.stateDir });
    expect(leaseKeys(await leasesOf(d.socket, 'ext4net'))).toEqual(leaseKeys(before));
    const again = await runPluginProcess({ env: addEnv('ext4-fail'), stdin: conf });
    expect(again.code, again.stdout).toBe(0);
    await daemon.stop();
  }, 120_000);
});

/** Write until ENOSPC: big chunks, then pages, then bytes. */
function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  expect(() => appendFileSync(path, 'x')).toThrow(/ENOSPC/);
}
