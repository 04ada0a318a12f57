// How the plugin process (the shipped executable) reaches the daemon: over the native exchange
// that sits beside it (src/native-call.ts), or over node:net when the plugin was copied alone.
// Both give the same answers; the observable is the dynamic loader's LD_DEBUG=libs report, which
// names the addon when it is initialised.
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonInitialised } from '../../scripts/native.mjs';
import { PLUGIN_EXE, bundlesReady } from '../support/build.js';
import { type InProcessDaemon, ipsOf, startInProcessDaemon } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';
import { expectError, expectOk, runPlugin } from '../support/plugin.js';
import { containerId, removeDir, tempDir } from '../support/tmp.js';

let d: InProcessDaemon;
let dir: string;
let alone: string;

beforeAll(async () => {
  await bundlesReady();
  d = await startInProcessDaemon('transport');
  dir = tempDir('transport');
  alone = join(dir, 'reservoir');
  copyFileSync(PLUGIN_EXE, alone);
  chmodSync(alone, 0o755);
});
afterAll(async () => {
  await d?.close();
  removeDir(dir);
});

const conf = (socket = d.socket) => netconf('transport', socket, { ranges: [[{ subnet: '10.21.0.0/24' }]] }, { cniVersion: '1.0.0' });

describe.each([
  ['beside its native exchange', undefined, true],
  ['copied alone (node:net)', () => alone, false],
] as const)('the plugin %s', (_label, program, usesAddon) => {
  it('ADD, CHECK and DEL reach the daemon', async () => {
    const id = containerId('tr');
    const env = { LD_DEBUG: 'libs' };
    const add = await runPlugin({ command: 'ADD', containerId: id, config: conf(), env, program: program?.() });
    const result = expectOk(add, 'object');
    expect(result.ips.map((ip: { address: string }) => ip.address.split('/')[0])).toEqual(await ipsOf(d.socket, 'transport', id));
    expectOk(await runPlugin({ command: 'CHECK', containerId: id, config: { ...conf(), prevResult: result }, env, program: program?.() }));
    const del = await runPlugin({ command: 'DEL', containerId: id, config: conf(), env, program: program?.() });
    expectOk(del);
    expect(await ipsOf(d.socket, 'transport', id)).toEqual([]);
    for (const run of [add, del]) expect(addonInitialised(run.stderr)).toBe(usesAddon);
  });

  it('an absent daemon is code 11 naming the socket', async () => {
    const socket = join(dir, 'absent.sock');
    const run = await runPlugin({ command: 'ADD', containerId: containerId('tr'), config: conf(socket), program: program?.() });
    expectError(run, 11, /cannot reach reservoird at .*absent\.sock \(ENOENT\)/);
  });
});
