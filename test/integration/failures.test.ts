// Failure paths: the daemon down or hung (code 11 within the configured timeout, no lease left
// behind), a full range (code 100, nothing leased), and range sets that roll back together.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemon } from '../../src/client.js';
import { bundlesReady } from '../support/build.js';
import { DaemonProcess, type InProcessDaemon, daemonPaths, ipsOf, leasesOf, startInProcessDaemon } from '../support/daemon.js';
import { VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectError, expectOk, runPlugin } from '../support/plugin.js';
import { containerId, removeDir, tempDir } from '../support/tmp.js';

/** What "within the configured timeout" allows on a loaded 2-core machine: a bound, not a speed test. */
const BOUND_MS = 5_000;

let d: InProcessDaemon;
const dirs: string[] = [];

beforeAll(async () => {
  await bundlesReady();
  d = await startInProcessDaemon('fail');
});
afterAll(async () => {
  await d?.close();
  dirs.forEach(removeDir);
});

function addressesOf(result: any): string[] {
  if (Array.isArray(result.ips)) return result.ips.map((ip: { address: string }) => ip.address);
  return ['ip4', 'ip6'].filter((k) => result[k]).map((k) => result[k].ip);
}

async function queuedUnits(socket: string): Promise<number> {
  const health = await callDaemon<{ batches: { units: number } }>('health', { socket, timeoutMs: 5_000 });
  return health.batches.units;
}

describe('daemon down', () => {
  it('no daemon on the socket: ADD ends with code 11 at once, for every version', async () => {
    const dir = tempDir('down');
    dirs.push(dir);
    const socket = `${dir}/missing.sock`;
    const runs = await Promise.all(
      VERSIONS.map((version) =>
        runPlugin({ command: 'ADD', containerId: containerId('down'), config: netconf(netName('down', version), socket, { timeout: '1s' }, { cniVersion: version }) }),
      ),
    );
    runs.forEach((run, i) => {
      const error = expectError(run, 11, /missing\.sock/);
      expect(error.cniVersion).toBe(VERSIONS[i]);
      expect(run.durationMs).toBeLessThan(BOUND_MS);
    });
  });

  it('a socket nobody answers on: ADD gives up with code 11 after the configured 1s timeout', async () => {
    const dir = tempDir('mute');
    dirs.push(dir);
    const socket = `${dir}/run/mute.sock`;
    mkdirSync(dirname(socket), { recursive: true });
    const connections = new Set<Socket>();
    const mute: Server = createServer((socket) => {
      connections.add(socket); // accepts, reads nothing, never answers
    });
    await new Promise<void>((resolve) => mute.listen(socket, resolve));
    try {
      const runs = await Promise.all(
        VERSIONS.map((version) =>
          runPlugin({ command: 'ADD', containerId: containerId('mute'), config: netconf(netName('mute', version), socket, { timeout: '1s' }, { cniVersion: version }) }),
        ),
      );
      for (const run of runs) {
        expectError(run, 11, /did not answer within 1000 ms/);
        expect(run.durationMs).toBeGreaterThanOrEqual(900);
        expect(run.durationMs).toBeLessThan(BOUND_MS);
      }
    } finally {
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => {
        mute.close(() => resolve());
      });
    }
  });

  it('a daemon stopped while the plugin runs: code 11, and no lease once it is back', async () => {
    const network = 'down-restart';
    const conf = (version: string) => netconf(network, d.socket, { timeout: '1s' }, { cniVersion: version });
    const ids = VERSIONS.map(() => containerId('back'));
    await d.stop();
    let runs;
    try {
      runs = await Promise.all(VERSIONS.map((version, i) => runPlugin({ command: 'ADD', containerId: ids[i], config: conf(version) })));
    } finally {
      await d.restart();
    }
    for (const run of runs) {
      expectError(run, 11, /cannot reach reservoird/);
      expect(run.durationMs).toBeLessThan(BOUND_MS);
    }
    expect(await leasesOf(d.socket, network)).toEqual([]);
    // and the same ADDs succeed now
    const again = await Promise.all(VERSIONS.map((version, i) => runPlugin({ command: 'ADD', containerId: ids[i], config: conf(version) })));
    again.forEach((run) => expectOk(run, 'object'));
    expect(await leasesOf(d.socket, network)).toHaveLength(VERSIONS.length);
  });

  it('a hung daemon (SIGSTOP): code 11 within the timeout, and no lease once it resumes', async () => {
    const dir = tempDir('hung');
    dirs.push(dir);
    const daemon = await DaemonProcess.start(daemonPaths(dir));
    try {
      const conf = (version: string) => netconf(netName('hung', version), daemon.socket, { timeout: '1s' }, { cniVersion: version });
      // register the networks first, so the only thing a late ADD could do is lease
      await Promise.all(VERSIONS.map((version) => runPlugin({ command: 'DEL', containerId: containerId('warm'), config: conf(version) }).then((run) => expectOk(run))));
      const ids = VERSIONS.map(() => containerId('hung'));
      const unitsBefore = await queuedUnits(daemon.socket);
      daemon.kill('SIGSTOP');
      let runs;
      try {
        runs = await Promise.all(VERSIONS.map((version, i) => runPlugin({ command: 'ADD', containerId: ids[i], config: conf(version) })));
      } finally {
        daemon.kill('SIGCONT');
      }
      for (const run of runs) {
        expectError(run, 11, /did not answer within 1000 ms/);
        expect(run.durationMs).toBeLessThan(BOUND_MS);
      }
      // Let the resumed daemon work through what the timed-out plugins had sent: each ADD it
      // reads is one unit of its write queue (counted whether it succeeds or not).
      const until = Date.now() + 5_000;
      while ((await queuedUnits(daemon.socket)) < unitsBefore + VERSIONS.length && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await Promise.all(VERSIONS.map(async (version) => expect(await leasesOf(daemon.socket, netName('hung', version))).toEqual([])));
    } finally {
      await daemon.stop();
    }
  });
});

describe.concurrent.each(VERSIONS)('cniVersion %s', (version) => {
  it('exhaustion: a full range gives code 100 saying what to do, and the failed ADD leases nothing', async () => {
    const network = netName('full', version);
    // /29: .1 is the gateway, .2-.6 are the 5 allocatable addresses
    const conf = netconf(network, d.socket, { ranges: [[{ subnet: '10.60.0.0/29' }]] }, { cniVersion: version });
    const fill = await Promise.all([1, 2, 3, 4, 5].map(() => runPlugin({ command: 'ADD', containerId: containerId('fill'), config: conf })));
    const taken = fill.map((run) => addressesOf(expectOk(run, 'object'))[0]).sort();
    expect(taken).toEqual(['10.60.0.2/29', '10.60.0.3/29', '10.60.0.4/29', '10.60.0.5/29', '10.60.0.6/29']);
    const before = await leasesOf(d.socket, network);
    expect(before).toHaveLength(5);

    const id = containerId('late');
    const error = expectError(await runPlugin({ command: 'ADD', containerId: id, config: conf }), 100);
    expect(error.msg).toMatch(/range set 0 .*10\.60\.0\.\d-10\.60\.0\.6/);
    expect(error.msg).toMatch(/widen the range or release leases/);
    expect(error.msg).toContain(`reservoirctl leases ${network}`);
    const after = await leasesOf(d.socket, network);
    expect(after.map((l) => `${l.ip} ${l.containerId}`)).toEqual(before.map((l) => `${l.ip} ${l.containerId}`));
    expect(await ipsOf(d.socket, network, id)).toEqual([]);
  });

  it('range sets roll back together: a free IPv4 set and an exhausted IPv6 set lease nothing', async () => {
    const network = netName('rollback', version);
    const conf = netconf(network, d.socket, { ranges: [[{ subnet: '10.61.0.0/24' }], [{ subnet: 'fd00:61::/64', rangeStart: 'fd00:61::10', rangeEnd: 'fd00:61::10' }]] }, { cniVersion: version });
    const first = containerId('first');
    expect(addressesOf(expectOk(await runPlugin({ command: 'ADD', containerId: first, config: conf }), 'object'))).toEqual([
      expect.stringMatching(/^10\.61\.0\.\d+\/24$/),
      'fd00:61::10/64',
    ]);
    const id = containerId('second');
    const runs = await Promise.all([
      runPlugin({ command: 'ADD', containerId: id, config: conf }),
      // with a requested IPv4 address too
      runPlugin({ command: 'ADD', containerId: id, ifname: 'eth1', config: { ...conf, runtimeConfig: { ips: ['10.61.0.77'] } } }),
    ]);
    expectError(runs[0]!, 100, /range set 1/);
    expectError(runs[1]!, 100, /range set 1/);
    const leases = await leasesOf(d.socket, network);
    expect(leases.map((l) => l.containerId)).toEqual([first, first]);
    expect(leases.find((l) => l.ip === '10.61.0.77')).toBeUndefined();
  });
});
