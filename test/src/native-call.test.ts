// The plugin's native exchange (native/unix-call.c through src/native-call.ts) against real unix
// socket servers: what it returns, how it fails, and that src/client.ts reports exactly the same
// answers and errors over it as over node:net.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, copyFileSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallOptions, callDaemon } from '../../src/client.js';
import { ReservoirError } from '../../src/errors.js';
import { type Exchange, NATIVE_CALL_FILE, loadNativeExchange, loadNativeHelper } from '../../src/native-call.js';
import { BUNDLE_DIR, PLUGIN_BUNDLE, bundlesReady } from '../support/build.js';
import { removeDir, tempDir } from '../support/tmp.js';

let dir: string;
let exchange: Exchange;
/** A socket file nobody listens on. */
let deadSocketPath: string;
const servers: Server[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  await bundlesReady();
  dir = tempDir('native');
  const loaded = loadNativeExchange(PLUGIN_BUNDLE);
  if (!loaded) throw new Error(`${join(BUNDLE_DIR, NATIVE_CALL_FILE)} did not load`);
  exchange = loaded;
  deadSocketPath = await deadSocket();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  removeDir(dir);
});

let sockets = 0;

/** A unix socket server; `onConnection` decides what each connection gets. */
async function serve(onConnection: (socket: Socket, request: () => Buffer) => void): Promise<string> {
  const path = join(dir, `s${++sockets}.sock`);
  const server = createServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    onConnection(socket, () => Buffer.concat(chunks));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return path;
}

/** Answer once the request's head and Content-Length body are in. */
function answerWhole(answer: string, seen?: (request: Buffer) => void) {
  return (socket: Socket, request: () => Buffer) => {
    socket.on('data', () => {
      const bytes = request();
      const end = bytes.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(bytes.subarray(0, end).toString('latin1'))?.[1] ?? 0);
      if (bytes.length < end + 4 + length) return;
      seen?.(bytes);
      socket.end(answer);
    });
  };
}

const json = (status: string, body: string) => `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;

/** A socket file nobody listens on: its listener was SIGKILLed, so the file stayed. */
async function deadSocket(): Promise<string> {
  const path = join(dir, `dead${++sockets}.sock`);
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up'))`]);
  children.push(child);
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  return path;
}

function thrown(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn();
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error('expected a throw');
}

describe('loadNativeExchange', () => {
  it('loads the addon beside the program, following symlinks to it', () => {
    expect(loadNativeExchange(PLUGIN_BUNDLE)).toBeTypeOf('function');
    const link = join(dir, 'plugin-link.cjs');
    symlinkSync(PLUGIN_BUNDLE, link);
    expect(loadNativeExchange(link)).toBeTypeOf('function');
  });

  it('is undefined (node:net then) when the addon is missing or is not one', () => {
    const alone = join(dir, 'alone.cjs');
    copyFileSync(PLUGIN_BUNDLE, alone);
    expect(loadNativeExchange(alone)).toBeUndefined();
    const broken = tempDir('native-broken');
    try {
      copyFileSync(PLUGIN_BUNDLE, join(broken, 'reservoir.cjs'));
      writeFileSync(join(broken, NATIVE_CALL_FILE), 'not an ELF file');
      expect(loadNativeExchange(join(broken, 'reservoir.cjs'))).toBeUndefined();
    } finally {
      removeDir(broken);
    }
    expect(loadNativeExchange(join(dir, 'no-such-program'))).toBeUndefined();
  });
});

describe("the helper's read and write (the plugin's stdin and stdout)", () => {
  it('reads and writes a file descriptor as read(2) and write(2) do', () => {
    const helper = loadNativeHelper(PLUGIN_BUNDLE)!;
    const file = join(dir, 'fd-io');
    const out = openSync(file, 'w');
    try {
      expect(helper.write!(out, Buffer.from('{"cniVersion":"1.1.0"}'))).toBe(22);
    } finally {
      closeSync(out);
    }
    expect(readFileSync(file, 'utf8')).toBe('{"cniVersion":"1.1.0"}');
    const into = Buffer.alloc(64);
    const fd = openSync(file, 'r');
    try {
      expect(helper.read!(fd, into)).toBe(22);
      expect(into.subarray(0, 22).toString()).toBe('{"cniVersion":"1.1.0"}');
      expect(helper.read!(fd, into)).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  it('throws with the errno name as code, as node:fs does', () => {
    const helper = loadNativeHelper(PLUGIN_BUNDLE)!;
    expect(thrown(() => helper.read!(987654, Buffer.alloc(8))).code).toBe('EBADF');
    const fd = openSync(dir, 'r');
    try {
      expect(thrown(() => helper.read!(fd, Buffer.alloc(8))).code).toBe('EIO'); // EISDIR: the plugin redoes it with node:fs
    } finally {
      closeSync(fd);
    }
  });
});

describe('the native exchange', () => {
  it('sends the request as given and returns the whole answer', async () => {
    let received: Buffer | undefined;
    const answer = json('200 OK', JSON.stringify({ result: { ips: [] }, pad: 'x'.repeat(200_000) }));
    const socket = await serve(answerWhole(answer, (request) => (received = request)));
    const body = JSON.stringify({ hello: 'world' });
    const request = Buffer.from(`POST /v1/cni/add HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    // The addon blocks this thread, and the server runs on it: let it answer from a worker turn.
    const got = await new Promise<Buffer>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', `
        const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(join(BUNDLE_DIR, NATIVE_CALL_FILE))});
        process.stdout.write(m.exports.call(${JSON.stringify(socket)}, Buffer.from(${JSON.stringify(request.toString('base64'))}, 'base64'), 5000));`]);
      children.push(child);
      const out: Buffer[] = [];
      child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
      child.on('exit', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`exit ${code}`))));
    });
    expect(got.toString()).toBe(answer);
    expect(received?.equals(request)).toBe(true);
  });

  it('fails like node:net: ENOENT, ECONNREFUSED, and ETIMEDOUT at its deadline', async () => {
    const missing = thrown(() => exchange(join(dir, 'missing.sock'), Buffer.from('x'), 1000));
    expect([missing.code, missing.syscall]).toEqual(['ENOENT', 'connect']);
    const refused = thrown(() => exchange(deadSocketPath, Buffer.from('x'), 1000));
    expect([refused.code, refused.syscall]).toEqual(['ECONNREFUSED', 'connect']);
    // This server's process is the one the exchange blocks: the kernel queues the connection
    // and the request, and nothing ever answers.
    const mute = await serve(() => undefined);
    const started = performance.now();
    const late = thrown(() => exchange(mute, Buffer.from('GET / HTTP/1.1\r\n\r\n'), 300));
    const elapsed = performance.now() - started;
    expect([late.code, late.syscall]).toEqual(['ETIMEDOUT', 'read']);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(2_000);
  });

  it('refuses bad arguments with a TypeError', () => {
    expect(() => (exchange as unknown as (...a: unknown[]) => unknown)('/x.sock', 'not a buffer', 100)).toThrow(TypeError);
    expect(() => exchange('', Buffer.from('x'), 100)).toThrow(TypeError);
    expect(() => exchange(`/${'x'.repeat(107)}`, Buffer.from('x'), 100)).toThrow(TypeError); // 108 bytes: no room for the NUL
    // 107 bytes fit sun_path, as for node:net: the path is tried (and does not exist).
    expect(thrown(() => exchange(`/${'x'.repeat(106)}`, Buffer.from('x'), 100)).code).toBe('ENOENT');
    expect(() => exchange('/x.sock', Buffer.from('x'), 0)).toThrow(TypeError);
  });
});

describe('callDaemon answers the same over the native exchange as over node:net', () => {
  // The servers run in this process, and the native exchange blocks it: each server lives in a
  // child process here, so both transports can be compared on the same sockets.
  const SERVER = `
    const net = require('node:net');
    const [path, mode] = process.argv.slice(1);
    net.createServer((socket) => {
      socket.on('error', () => {});
      let bytes = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        bytes = Buffer.concat([bytes, chunk]);
        const end = bytes.indexOf('\\r\\n\\r\\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\\d+)/i.exec(bytes.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        if (bytes.length < end + 4 + length) return;
        const reply = (status, body) => socket.end('HTTP/1.1 ' + status + '\\r\\ncontent-type: application/json\\r\\ncontent-length: ' + Buffer.byteLength(body) + '\\r\\nconnection: close\\r\\n\\r\\n' + body);
        if (mode === 'ok') reply('200 OK', JSON.stringify({ echo: JSON.parse(bytes.subarray(end + 4).toString()) }));
        else if (mode === 'refused') reply('409 Conflict', JSON.stringify({ code: 101, msg: '10.1.0.7 is held by ns/web-0' }));
        else if (mode === 'not-json') reply('500 Internal Server Error', 'oops');
        else if (mode === 'not-http') socket.end('SSH-2.0-OpenSSH\\r\\n\\r\\n');
        else if (mode === 'close') socket.destroy();
        // mode 'mute': never answer
      });
    }).listen(path, () => process.stdout.write('up'));`;

  async function childServer(mode: string): Promise<string> {
    const path = join(dir, `c${++sockets}.sock`);
    const child = spawn(process.execPath, ['-e', SERVER, path, mode]);
    children.push(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    return path;
  }

  async function both(options: CallOptions): Promise<[unknown, unknown]> {
    const settle = (p: Promise<unknown>) =>
      p.then(
        (value) => ({ value }),
        (err: unknown) => (err instanceof ReservoirError ? { code: err.code, msg: err.message } : { unexpected: String(err) }),
      );
    const overNet = await settle(callDaemon('cniAdd', options));
    const overNative = await settle(callDaemon('cniAdd', { ...options, exchange }));
    return [overNet, overNative];
  }

  it.each(['ok', 'refused', 'not-json', 'not-http', 'close', 'mute', 'missing', 'dead'])('%s', async (mode) => {
    const socket = mode === 'missing' ? join(dir, 'missing.sock') : mode === 'dead' ? deadSocketPath : await childServer(mode);
    const started = performance.now();
    const [overNet, overNative] = await both({ socket, timeoutMs: 400, body: { env: {}, config: { name: 'n' } } });
    expect(overNative).toEqual(overNet);
    expect(overNet).not.toHaveProperty('unexpected');
    if (mode === 'ok') expect(overNet).toEqual({ value: { echo: { env: {}, config: { name: 'n' } } } });
    else expect((overNet as { code: number }).code).toBe(mode === 'refused' ? 101 : mode === 'not-json' ? 999 : 11);
    if (mode === 'mute') expect((overNet as { msg: string }).msg).toMatch(/did not answer within 400 ms/);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
