// The daemon's HTTP API against hostile clients (over-size bodies, slow and half-open
// connections, unknown paths, badly typed input) and who may talk to it at all (socket and
// directory modes, other users, symlinks, a second daemon, a stale socket).
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, type ServerDeps } from '../../daemon/server.js';
import { ErrorCodes } from '../../src/errors.js';
import { MAX_BODY_BYTES } from '../../src/defaults.js';
import { Cleanup } from '../support/cleanup.js';
import { DaemonProcess, health, NODE, runDaemonToExit, sleep, startDaemonIn } from '../support/daemon.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { rawRequest } from '../support/http.js';
import { netconf } from '../support/netconf.js';
import { cniErrorProblems, runPluginProcess } from './support.js';

const KNOWN_CODES = new Set<number>(Object.values(ErrorCodes).map((c) => c.code));
const HTTP_OF = new Map<number, number>(Object.values(ErrorCodes).map((c) => [c.code, c.http]));

// The daemon's own limits, read from a server built the way the daemon builds it.
const probeServer = createApiServer({} as ServerDeps);
const HEADERS_TIMEOUT_MS = probeServer.headersTimeout;
const REQUEST_TIMEOUT_MS = probeServer.requestTimeout;
probeServer.close();
/** How late after its timeout the daemon may close a stalled connection. */
const CLOSE_SLACK_MS = 3_000;

const cleanup = new Cleanup();
let root: string;
let socket: string;
let daemon: DaemonProcess;

beforeAll(async () => {
  ({ dir: root, socket, daemon } = await startDaemonIn(cleanup, 'api'));
  chmodSync(root, 0o755); // so that only the daemon's own modes keep other users out
  const add = await runPluginProcess({ env: addEnv('api-seed'), stdin: JSON.stringify(netconf('apinet', socket)) });
  expect(add.code, add.stdout + add.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  // the daemon survived everything thrown at it
  if (daemon?.alive) expect((await health(socket)).pid).toBe(daemon.pid);
  await cleanup.run();
}, 60_000);

function addEnv(container: string, command = 'ADD') {
  return { CNI_COMMAND: command, CNI_CONTAINERID: container, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${container}` };
}

interface RawResult {
  readonly response: string;
  readonly closedAfterMs: number;
  readonly error: string | undefined;
}

/**
 * Open the socket, write the pieces as one write, and wait until the daemon closes the
 * connection. One write: a second one after the daemon's 413-and-close fails with EPIPE, and
 * Node then drops the socket before reading the answer already waiting in it.
 */
function rawExchange(path: string, pieces: ReadonlyArray<string | Buffer>, giveUpMs: number): Promise<RawResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const s = connect(path);
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      error = `still open after ${giveUpMs} ms`;
      s.destroy();
    }, giveUpMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ response: Buffer.concat(chunks).toString('utf8'), closedAfterMs: performance.now() - started, error });
    });
    s.on('connect', () => {
      if (pieces.length > 0) s.write(Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
    });
  });
}

function parseRaw(response: string): { status: number; json: any; headers: string } {
  const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(response);
  if (!m) return { status: 0, json: undefined, headers: '' };
  let body = m[3]!;
  if (/transfer-encoding: chunked/i.test(m[2]!)) body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), json, headers: m[2]! };
}

function expectCniError(answer: { status: number; json: any; text?: string }, status?: number): void {
  expect(cniErrorProblems(answer.json, KNOWN_CODES), answer.text ?? JSON.stringify(answer.json)).toEqual([]);
  expect(answer.status, answer.text).toBe(HTTP_OF.get(answer.json.code));
  if (status !== undefined) expect(answer.status, answer.text).toBe(status);
}

describe('daemon API hardening', () => {
  it(`rejects bodies over ${MAX_BODY_BYTES} bytes with 413`, async () => {
    const big = Buffer.alloc(MAX_BODY_BYTES + 1, 0x20);
    // declared too large up front
    const declared = await rawExchange(
      socket,
      [`POST /v1/cni/add HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`, big.subarray(0, 4096)],
      10_000,
    );
    const d = parseRaw(declared.response);
    expect(d.status, declared.response + declared.error).toBe(413);
    expect(d.json.code).toBe(ErrorCodes.REQUEST_TOO_LARGE.code);
    // streamed without a length (chunked): found out while reading
    const piece = Buffer.alloc(64 * 1024, 0x20);
    const chunks: Buffer[] = [Buffer.from('POST /v1/cni/add HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')];
    for (let sent = 0; sent <= MAX_BODY_BYTES + piece.length; sent += piece.length) {
      chunks.push(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    }
    const streamed = await rawExchange(socket, chunks, 10_000);
    const s = parseRaw(streamed.response);
    expect(s.status, `${streamed.response.slice(0, 300)} / ${streamed.error}`).toBe(413);
    expect(s.json.code).toBe(ErrorCodes.REQUEST_TOO_LARGE.code);
    // a body at the limit is read (and then judged on its content)
    const pad = MAX_BODY_BYTES - JSON.stringify({ env: {}, config: {}, pad: '' }).length;
    const atLimit = await rawRequest({ socket, method: 'POST', path: '/v1/cni/add', body: JSON.stringify({ env: {}, config: {}, pad: 'x'.repeat(pad) }) });
    expect(atLimit.status).not.toBe(413);
    expectCniError(atLimit, 400);
    expect((await health(socket)).pid).toBe(daemon.pid);
  }, 30_000);

  it(`closes slow and half-open clients (headers ${HEADERS_TIMEOUT_MS} ms, request ${REQUEST_TIMEOUT_MS} ms)`, async () => {
    const bound = (ms: number) => ms + CLOSE_SLACK_MS;
    const silent = rawExchange(socket, [], bound(HEADERS_TIMEOUT_MS) + 5_000);
    const halfHeaders = rawExchange(socket, ['POST /v1/cni/add HTTP/1.1\r\nHost: r\r\nContent-Ty'], bound(HEADERS_TIMEOUT_MS) + 5_000);
    const halfBody = rawExchange(socket, ['POST /v1/cni/add HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"env": {'], bound(REQUEST_TIMEOUT_MS) + 5_000);
    // meanwhile everyone else is served
    await sleep(500);
    const t0 = performance.now();
    expect((await health(socket)).ok).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1_000);
    const [a, b, c] = await Promise.all([silent, halfHeaders, halfBody]);
    console.log(
      `api: stalled clients closed after ${Math.round(a.closedAfterMs)} ms (silent), ${Math.round(b.closedAfterMs)} ms (half headers), ` +
        `${Math.round(c.closedAfterMs)} ms (half body); limits ${HEADERS_TIMEOUT_MS}/${REQUEST_TIMEOUT_MS} ms`,
    );
    expect(a.closedAfterMs, a.error).toBeLessThan(bound(HEADERS_TIMEOUT_MS));
    expect(b.closedAfterMs, b.error).toBeLessThan(bound(HEADERS_TIMEOUT_MS));
    expect(c.closedAfterMs, c.error).toBeLessThan(bound(REQUEST_TIMEOUT_MS));
    expect(b.error ?? '').not.toMatch(/still open/);
  }, 60_000);

  it('answers unknown paths and methods with a JSON 404', async () => {
    const cases: Array<[string, string]> = [
      ['GET', '/'],
      ['GET', '/v2/health'],
      ['GET', '/v1/health/extra'],
      ['POST', '/v1/health'],
      ['DELETE', '/v1/leases'],
      ['PUT', '/v1/cni/add'],
      ['GET', '/v1/networks/%ZZ/reserved'],
      ['GET', '/v1/networks/a/b/reserved'],
      ['GET', `/${'x'.repeat(4000)}`],
      ['OPTIONS', '/v1/cni/add'],
    ];
    for (const [method, path] of cases) {
      const answer = await rawRequest({ socket, method, path });
      expect(answer.headers['content-type'], `${method} ${path}`).toMatch(/application\/json/);
      expectCniError(answer, 404);
      expect(answer.json.code, `${method} ${path}`).toBe(ErrorCodes.NOT_FOUND.code);
    }
  });

  it('validates the input of every endpoint (bad types -> 400 with a CNI code)', async () => {
    const conf = netconf('apinet', socket);
    const env = addEnv('api-v');
    const bad: Array<[string, string, unknown]> = [];
    for (const route of ['add', 'del', 'check', 'gc', 'status']) {
      const path = `/v1/cni/${route}`;
      // a config each command would accept, so that every other check is reached
      const base: Record<string, unknown> =
        route === 'gc' ? { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] } : route === 'status' ? { ...conf, cniVersion: '1.1.0' } : conf;
      const ipam = base.ipam as Record<string, unknown>;
      bad.push(
        ['POST', path, undefined],
        ['POST', path, 'not json'],
        ['POST', path, '{"env": '],
        ['POST', path, Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
        ['POST', path, []],
        ['POST', path, null],
        ['POST', path, 'true'],
        ['POST', path, '"a string"'],
        ['POST', path, 42],
        ['POST', path, { config: base }],
        ['POST', path, { env: 5, config: base }],
        ['POST', path, { env: [], config: base }],
        ['POST', path, { env: { ...env, CNI_CONTAINERID: 5 }, config: base }],
        ['POST', path, { env: { ...env, CNI_ARGS: ['a'] }, config: base }],
        ['POST', path, { env }],
        ['POST', path, { env, config: [] }],
        ['POST', path, { env, config: 'x' }],
        ['POST', path, { env, config: null }],
        ['POST', path, { env, config: { ...base, cniVersion: 5 } }],
        ['POST', path, { env, config: { ...base, cniVersion: '9.9.9' } }],
        ['POST', path, { env, config: { ...base, name: ['x'] } }],
        ['POST', path, { env, config: { ...base, ipam: 'x' } }],
        ['POST', path, { env, config: { ...base, ipam: { ...ipam, ranges: 'x' } } }],
        ['POST', path, { env, config: { ...base, ipam: { ...ipam, ranges: [[{ subnet: 10 }]] } } }],
        ['POST', path, { env, config: { ...base, ipam: { ...ipam, timeout: 5 } } }],
        ['POST', path, { env, config: { ...base, runtimeConfig: 'x' } }],
        ['POST', path, { env: { ...env, CNI_ARGS: 'K8S_POD_NAME' }, config: base }],
      );
      if (route === 'add' || route === 'del' || route === 'check') {
        bad.push(['POST', path, { env: {}, config: base }], ['POST', path, { env: { ...env, CNI_IFNAME: 'a/b' }, config: base }]);
      }
      if (route === 'gc') {
        bad.push(
          ['POST', path, { env, config: { ...base, 'cni.dev/valid-attachments': 'x' } }],
          ['POST', path, { env, config: { ...base, 'cni.dev/valid-attachments': [{ containerID: 1, ifname: 'eth0' }] } }],
          ['POST', path, { env, config: { ...base, 'cni.dev/valid-attachments': undefined } }],
        );
      }
      if (route === 'add') {
        bad.push(
          ['POST', path, { env, config: { ...base, runtimeConfig: { ips: '10.77.0.9' } } }],
          ['POST', path, { env, config: { ...base, runtimeConfig: { ips: [10] } } }],
          ['POST', path, { env, config: { ...base, runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'reservoir.io/ip': 7 } } } }],
        );
      }
    }
    for (const method of ['POST', 'PUT']) {
      const path = '/v1/networks/apinet/reserved';
      bad.push(
        [method, path, undefined],
        [method, path, 'nope'],
        [method, path, []],
        [method, path, {}],
        [method, path, { entry: 5 }],
        [method, path, { entry: '' }],
        [method, path, { entry: 'x'.repeat(300) }],
        [method, path, { entry: '10.77.1.1', group: 5 }],
        [method, path, { entry: '10.77.1.1', note: 7 }],
        [method, path, { entry: '10.77.1.1', to: ['x'] }],
        [method, path, { entry: '10.77.1.1', group: { a: 1 } }],
      );
    }
    bad.push(['DELETE', '/v1/networks/apinet/reserved', undefined]);
    bad.push(['DELETE', '/v1/networks/apinet/reserved?entry=', undefined]);
    bad.push(['GET', '/v1/networks/apinet/reserved?state=bogus', undefined]);
    for (const query of ['limit=0', 'limit=10001', 'limit=1.5', 'after=bogus', 'network=apinet&after=', 'limit=3&after=YXBpbmV0LzQvMGE='])
      bad.push(['GET', `/v1/leases?${query}`, undefined]);
    bad.push(
      ['POST', '/v1/release', undefined],
      ['POST', '/v1/release', []],
      ['POST', '/v1/release', { network: 5, app: 'a' }],
      ['POST', '/v1/release', { network: 'apinet' }],
      ['POST', '/v1/release', { network: 'apinet', app: null }],
      ['POST', '/v1/release', 'garbage'],
    );
    for (const path of ['/v1/health', '/v1/usage', '/v1/leases', '/v1/backup', '/v1/networks/apinet/reserved']) bad.push(['GET', path, 'not json']);
    // nested 100,000 deep: parses, but must not overflow the stack further on (was a 500)
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const confText = JSON.stringify(conf);
    bad.push(['POST', '/v1/cni/add', `{"env":${JSON.stringify(env)},"config":${confText.slice(0, -2)},"deep":${deep}}}`]);
    bad.push(['POST', '/v1/cni/del', `{"env":${JSON.stringify(env)},"config":${confText.slice(0, -1)},"deep":${deep}}`]);
    bad.push(['POST', '/v1/networks/apinet/reserved', `{"entry":"10.77.1.1","x":${deep}}`]);

    const seen = new Map<string, number>();
    for (const [method, path, body] of bad) {
      const label = `${method} ${path} ${Buffer.isBuffer(body) ? '<binary>' : JSON.stringify(body)?.slice(0, 120)}`;
      const answer = await rawRequest({ socket, method, path, body });
      expect(answer.status, `${label} -> ${answer.status} ${answer.text}`).toBe(400);
      expect(cniErrorProblems(answer.json, KNOWN_CODES), `${label} -> ${answer.text}`).toEqual([]);
      expect(HTTP_OF.get(answer.json.code), label).toBe(400);
      seen.set(ROUTE_KEY(method, path), (seen.get(ROUTE_KEY(method, path)) ?? 0) + 1);
    }
    // every route was fed bad input
    expect([...seen.keys()].sort()).toEqual(
      [
        'POST /v1/cni/add',
        'POST /v1/cni/del',
        'POST /v1/cni/check',
        'POST /v1/cni/gc',
        'POST /v1/cni/status',
        'GET /v1/health',
        'GET /v1/usage',
        'GET /v1/leases',
        'GET /v1/networks/:network/reserved',
        'POST /v1/networks/:network/reserved',
        'PUT /v1/networks/:network/reserved',
        'DELETE /v1/networks/:network/reserved',
        'POST /v1/release',
        'GET /v1/backup',
      ].sort(),
    );
    console.log(`api: ${bad.length} badly typed requests, every one answered 400 with a CNI code`);
    // valid shapes naming unknown things are 404s with their own codes, not 400s or 500s
    for (const [method, path, body, code] of [
      ['GET', '/v1/usage?network=nope', undefined, 107],
      ['GET', '/v1/leases?network=nope', undefined, 107],
      ['GET', '/v1/networks/nope/reserved', undefined, 107],
      ['POST', '/v1/release', { network: 'apinet', app: 'ns/none' }, 112],
      ['DELETE', '/v1/networks/apinet/reserved?entry=10.77.3.3', undefined, 108],
    ] as Array<[string, string, unknown, number]>) {
      const answer = await rawRequest({ socket, method, path, body });
      expectCniError(answer);
      expect(answer.json.code, `${method} ${path}: ${answer.text}`).toBe(code);
    }
    expect((await health(socket)).pid).toBe(daemon.pid);
  }, 60_000);
});

function ROUTE_KEY(method: string, path: string): string {
  const p = path.split('?')[0]!.replace(/^\/v1\/networks\/[^/]+\/reserved$/, '/v1/networks/:network/reserved');
  return `${method} ${p}`;
}

describeWithPrereqs('who gets in', ['root', 'setpriv'], () => {
  it('the socket is 0660 inside a 0750 directory, owned by root', () => {
    const sock = statSync(socket);
    const dir = statSync(join(root, 'run'));
    expect(sock.isSocket()).toBe(true);
    expect((sock.mode & 0o777).toString(8)).toBe('660');
    expect((dir.mode & 0o777).toString(8)).toBe('750');
    expect(sock.uid).toBe(0);
    expect(dir.uid).toBe(0);
  });

  it('another user gets code 11 "permission denied"; a member of --socket-group gets in', async () => {
    const r = await runPluginProcess({ env: addEnv('nobody-1'), stdin: JSON.stringify(netconf('apinet', socket)), asNobody: true, killAfterMs: 10_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(cniErrorProblems(r.json, KNOWN_CODES)).toEqual([]);
    expect(r.json.code).toBe(ErrorCodes.TRY_AGAIN_LATER.code);
    expect(r.json.msg).toMatch(/permission denied/i);
    console.log(`api: plugin as uid 65534 -> code ${r.json.code}: ${r.json.msg}`);

    // the group route: a daemon with --socket-group lets exactly that group in
    const gid = 4242;
    const gsock = join(root, 'grun', 'r.sock');
    const g = await DaemonProcess.start({ socket: gsock, stateDir: join(root, 'gstate'), extraArgs: ['--socket-group', String(gid)] });
    cleanup.add('stop group daemon', () => g.stop());
    expect(statSync(gsock).gid).toBe(gid);
    const member = await runPluginProcess({
      env: addEnv('grp-1'),
      stdin: JSON.stringify(netconf('grpnet', gsock)),
      asNobody: true,
      nobodyGroups: [gid],
    });
    expect(member.code, member.stdout + member.stderr).toBe(0);
    const outsider = await runPluginProcess({ env: addEnv('grp-2'), stdin: JSON.stringify(netconf('grpnet', gsock)), asNobody: true });
    expect(outsider.json?.code, outsider.stdout).toBe(11);
    expect(outsider.json.msg).toMatch(/permission denied/i);
    await g.stop();
  }, 60_000);

  it('refuses a socket path that is a symlink, and touches neither link nor target', async () => {
    for (const kind of ['to a file', 'dangling']) {
      const dir = join(root, `sym-${kind.replace(' ', '-')}`);
      const target = join(root, `target-${kind.replace(' ', '-')}`);
      const link = join(dir, 'r.sock');
      mkdirSync(dir, { recursive: true });
      if (kind === 'to a file') writeFileSync(target, 'precious');
      symlinkSync(target, link);
      const r = await runDaemonToExit({ socket: link, stateDir: join(root, `sym-state-${kind.replace(' ', '-')}`) });
      expect(r.timedOut).toBe(false);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(/symlink/);
      expect(r.stderr).toContain(link);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      if (kind === 'to a file') expect(readFileSync(target, 'utf8')).toBe('precious');
      console.log(`api: symlinked socket (${kind}) -> exit ${r.code}: ${r.stderr.trim()}`);
    }
  }, 30_000);

  it('refuses a socket another live daemon serves; that daemon is unaffected', async () => {
    const before = statSync(socket).ino;
    const r = await runDaemonToExit({ socket, stateDir: join(root, 'second-state') });
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/another reservoird already serves/);
    console.log(`api: second daemon on a live socket -> exit ${r.code}: ${r.stderr.trim()}`);
    expect(daemon.alive).toBe(true);
    expect(statSync(socket).ino).toBe(before);
    expect((await health(socket)).pid).toBe(daemon.pid);
    const add = await runPluginProcess({ env: addEnv('after-second'), stdin: JSON.stringify(netconf('apinet', socket)) });
    expect(add.code, add.stdout).toBe(0);
  }, 30_000);

  it('removes a stale socket (no listener) and starts; refuses a non-socket file', async () => {
    const dir = join(root, 'stale');
    const path = join(dir, 'r.sock');
    mkdirSync(dir, { recursive: true });
    // a listener that dies without cleaning up, as a crashed daemon does
    const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(NODE, ['-e', script]);
    expect(lstatSync(path).isSocket()).toBe(true);
    const d = await DaemonProcess.start({ socket: path, stateDir: join(root, 'stale-state') });
    cleanup.add('stop stale daemon', () => d.stop());
    expect((await health(path)).pid).toBe(d.pid);
    await d.stop();

    const file = join(root, 'stale', 'file.sock');
    writeFileSync(file, 'not a socket');
    const r = await runDaemonToExit({ socket: file, stateDir: join(root, 'file-state') });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/not a socket/);
    expect(readFileSync(file, 'utf8')).toBe('not a socket');
  }, 30_000);
});
