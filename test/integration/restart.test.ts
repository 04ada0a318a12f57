// reservoird as a real child process (node reservoird.cjs --socket S --state-dir D
// --cni-conf-dir ""): leases survive a restart, after SIGTERM and after SIGKILL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlesReady } from '../support/build.js';
import { DaemonProcess, daemonPaths, ipsOf, leasesOf } from '../support/daemon.js';
import { VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectOk, runPlugin } from '../support/plugin.js';
import { containerId, removeDir, tempDir } from '../support/tmp.js';

let dir: string;
let daemon: DaemonProcess;

beforeAll(async () => {
  await bundlesReady();
  dir = tempDir('restart');
  daemon = await DaemonProcess.start(daemonPaths(dir));
});
afterAll(async () => {
  await daemon?.stop('SIGKILL');
  removeDir(dir);
});

function addressesOf(result: any): string[] {
  if (Array.isArray(result.ips)) return result.ips.map((ip: { address: string }) => ip.address);
  return ['ip4', 'ip6'].filter((k) => result[k]).map((k) => result[k].ip);
}

describe.each(['SIGTERM', 'SIGKILL'] as const)('after %s', (signal) => {
  it('a repeated ADD returns the same IPs and the leases endpoint still shows them, for every version', async () => {
    const conf = (version: string) =>
      netconf(netName(`rs-${signal.toLowerCase()}`, version), daemon.socket, { ranges: [[{ subnet: '10.70.0.0/24' }], [{ subnet: 'fd00:70::/64' }]] }, { cniVersion: version });
    const ids = VERSIONS.map(() => containerId('keep'));
    const before = await Promise.all(VERSIONS.map((version, i) => runPlugin({ command: 'ADD', containerId: ids[i], config: conf(version) })));
    const addresses = before.map((run) => addressesOf(expectOk(run, 'object')));
    // One more ADD then DEL, so the restart must also keep the round-robin cursor.
    const gone = containerId('gone');
    const goneAddresses = addressesOf(expectOk(await runPlugin({ command: 'ADD', containerId: gone, config: conf('1.1.0') }), 'object'));
    expectOk(await runPlugin({ command: 'DEL', containerId: gone, config: conf('1.1.0') }));

    const pid = daemon.pid;
    const ended = await daemon.stop(signal);
    if (signal === 'SIGTERM') expect(ended).toEqual({ code: 0, signal: null });
    else expect(ended).toEqual({ code: null, signal: 'SIGKILL' });
    daemon = await DaemonProcess.start(daemonPaths(dir));
    expect(daemon.pid).not.toBe(pid);

    await Promise.all(
      VERSIONS.map(async (version, i) => {
        const network = netName(`rs-${signal.toLowerCase()}`, version);
        expect(await ipsOf(daemon.socket, network, ids[i]!)).toEqual(addresses[i]!.map((a) => a.split('/')[0]).sort());
        const leases = await leasesOf(daemon.socket, network);
        expect(leases.every((l) => l.containerId === ids[i] && l.state === 'attached')).toBe(true);
      }),
    );
    const again = await Promise.all(VERSIONS.map((version, i) => runPlugin({ command: 'ADD', containerId: ids[i], config: conf(version) })));
    again.forEach((run, i) => expect(addressesOf(expectOk(run, 'object'))).toEqual(addresses[i]));
    const next = addressesOf(expectOk(await runPlugin({ command: 'ADD', containerId: containerId('next'), config: conf('1.1.0') }), 'object'));
    expect(next[0]).not.toBe(goneAddresses[0]);
    expect(next[1]).not.toBe(goneAddresses[1]);
  });
});
