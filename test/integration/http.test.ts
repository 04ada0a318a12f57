// The daemon's HTTP layer, spoken to directly with node:http over the unix socket: JSON errors
// with CNI codes for unknown paths, oversized and malformed bodies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessDaemon, startInProcessDaemon } from '../support/daemon.js';
import { rawRequest } from '../support/http.js';
import { netconf } from '../support/netconf.js';

let d: InProcessDaemon;

beforeAll(async () => {
  d = await startInProcessDaemon('http');
});
afterAll(async () => {
  await d?.close();
});

const MIB = 1024 * 1024;

function expectCniError(answer: { status: number; json: any; headers: Record<string, unknown> }, status: number, code: number) {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.json).toEqual({ code, msg: expect.any(String) });
  expect(answer.json.msg).not.toMatch(/\n\s+at /);
}

describe.concurrent('reservoird HTTP', () => {
  it('answers /v1/health', async () => {
    const answer = await rawRequest({ socket: d.socket, method: 'GET', path: '/v1/health' });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ ok: true, protocol: 1, pid: process.pid });
  });

  it('unknown path or method: 404 {code: 115}', async () => {
    const answers = await Promise.all([
      rawRequest({ socket: d.socket, method: 'GET', path: '/nope' }),
      rawRequest({ socket: d.socket, method: 'POST', path: '/v1/cni/add/extra', body: '{}' }),
      rawRequest({ socket: d.socket, method: 'GET', path: '/v1/cni/add' }),
      rawRequest({ socket: d.socket, method: 'DELETE', path: '/v1/health' }),
      rawRequest({ socket: d.socket, method: 'GET', path: '/' }),
    ]);
    for (const answer of answers) {
      expectCniError(answer, 404, 115);
      expect(answer.json.msg).toMatch(/no such endpoint/);
    }
  });

  it('a body over 1 MiB: 413 {code: 116}, declared by Content-Length or sent chunked', async () => {
    const big = Buffer.alloc(MIB + 1, 0x20);
    const [declared, chunked] = await Promise.all([
      rawRequest({ socket: d.socket, method: 'POST', path: '/v1/cni/add', body: big }),
      rawRequest({ socket: d.socket, method: 'POST', path: '/v1/cni/add', body: big, chunkSize: 64 * 1024 }),
    ]);
    expectCniError(declared, 413, 116);
    expectCniError(chunked, 413, 116);
    // and the daemon still serves
    expect((await rawRequest({ socket: d.socket, method: 'GET', path: '/v1/health' })).status).toBe(200);
  });

  it('a body of exactly 1 MiB is read (and judged on its content)', async () => {
    const text = JSON.stringify({ env: {}, config: { pad: 'x' } });
    const body = Buffer.alloc(MIB, 0x20);
    body.write(text);
    const answer = await rawRequest({ socket: d.socket, method: 'POST', path: '/v1/cni/add', body });
    expectCniError(answer, 400, 7);
  });

  it('a malformed body: 400 with a CNI code', async () => {
    const socket = d.socket;
    const post = (body: string) => rawRequest({ socket, method: 'POST', path: '/v1/cni/add', body });
    const valid = netconf('http-net', socket);
    const [notJson, array, noEnv, badEnv, configNotObject, badConfig, badEnvValue, missing] = await Promise.all([
      post('{"env": '),
      post('[]'),
      post(JSON.stringify({ config: valid })),
      post(JSON.stringify({ env: 'CNI_CONTAINERID=x', config: valid })),
      post(JSON.stringify({ env: {}, config: 'x' })),
      post(JSON.stringify({ env: { CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/x' }, config: { ...valid, ipam: { ranges: 5 } } })),
      post(JSON.stringify({ env: { CNI_CONTAINERID: 5 }, config: valid })),
      post(JSON.stringify({ env: { CNI_IFNAME: 'eth0', CNI_NETNS: '/x' }, config: valid })),
    ]);
    expectCniError(notJson, 400, 6);
    expectCniError(array, 400, 114);
    expectCniError(noEnv, 400, 114);
    expectCniError(badEnv, 400, 114);
    expectCniError(configNotObject, 400, 6);
    expectCniError(badConfig, 400, 7);
    expect(badConfig.json.msg).toMatch(/ipam\.ranges/);
    expectCniError(badEnvValue, 400, 114);
    expectCniError(missing, 400, 4);
    // An empty body is malformed too.
    expectCniError(await rawRequest({ socket, method: 'POST', path: '/v1/cni/del' }), 400, 114);
  });

  it('an operator route with a bad body or query: 400 {code: 114}', async () => {
    const [release, state] = await Promise.all([
      rawRequest({ socket: d.socket, method: 'POST', path: '/v1/release', body: JSON.stringify({ network: 'x' }) }),
      rawRequest({ socket: d.socket, method: 'GET', path: '/v1/networks/x/reserved?state=maybe' }),
    ]);
    expectCniError(release, 400, 114);
    expect([400, 404]).toContain(state.status);
  });
});
