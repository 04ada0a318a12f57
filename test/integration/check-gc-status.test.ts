// CHECK (cniVersion >= 0.4.0), GC and STATUS (1.1.0) through the real plugin process.
import { describe, expect, it } from 'vitest';
import { ipsOf, leasesOf } from '../support/daemon.js';
import { useInProcessDaemon } from '../support/hooks.js';
import { CHECK_VERSIONS, VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectError, expectOk, runPlugin } from '../support/plugin.js';
import { containerId } from '../support/tmp.js';
import { join } from 'node:path';

const d = useInProcessDaemon('cgs');

let networks = 0;
function setup(version: string, ranges: unknown = [[{ subnet: '10.50.0.0/24' }]], socket?: string) {
  const network = netName(`cgs${++networks}`, version);
  const conf = (extra?: Record<string, unknown>) => netconf(network, socket ?? d.socket, { ranges }, { cniVersion: version, ...extra });
  return { network, conf };
}

describe.concurrent.each(CHECK_VERSIONS)('CHECK, cniVersion %s', (version) => {
  it('passes with the result of ADD as prevResult', async () => {
    const { conf } = setup(version, [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd00:50::/64' }]]);
    const id = containerId('check');
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: id, config: conf() }), 'object');
    const [plain, eth1Missing] = await Promise.all([
      runPlugin({ command: 'CHECK', containerId: id, config: conf({ prevResult: result }) }),
      runPlugin({ command: 'CHECK', containerId: id, ifname: 'eth1', config: conf({ prevResult: result }) }),
    ]);
    expectOk(plain);
    expectError(eth1Missing, 109, /eth1/);
  });

  it('fails with 109 when the attachment holds no lease (never added, or deleted)', async () => {
    const { conf } = setup(version);
    const id = containerId('nolease');
    const deleted = containerId('deleted');
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: deleted, config: conf() }), 'object');
    expectOk(await runPlugin({ command: 'DEL', containerId: deleted, config: conf() }));
    const [never, gone] = await Promise.all([
      runPlugin({ command: 'CHECK', containerId: id, config: conf({ prevResult: result }) }),
      runPlugin({ command: 'CHECK', containerId: deleted, config: conf({ prevResult: result }) }),
    ]);
    expectError(never, 109, new RegExp(id));
    expectError(gone, 109, new RegExp(deleted));
  });

  it('fails with 110 when prevResult differs from the lease', async () => {
    const { conf } = setup(version);
    const id = containerId('mismatch');
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: id, config: conf() }), 'object');
    const address: string = result.ips[0].address;
    const other = address.startsWith('10.50.0.200/') ? '10.50.0.201/24' : '10.50.0.200/24';
    const wrongIp = structuredClone(result);
    wrongIp.ips[0].address = other;
    const extraIp = structuredClone(result);
    extraIp.ips.push({ ...(version.startsWith('0.') ? { version: '4' } : {}), address: '10.50.0.202/24' });
    const wrongPrefix = structuredClone(result);
    wrongPrefix.ips[0].address = address.replace('/24', '/25');
    const runs = await Promise.all(
      [wrongIp, extraIp, wrongPrefix].map((prevResult) => runPlugin({ command: 'CHECK', containerId: id, config: conf({ prevResult }) })),
    );
    expectError(runs[0]!, 110, new RegExp(`${other}.*${address}`));
    expectError(runs[1]!, 110, /10\.50\.0\.202/);
    expectError(runs[2]!, 110);
  });
});

describe.concurrent('CHECK, GC and STATUS before the versions that define them', () => {
  it.each(VERSIONS.filter((v) => !CHECK_VERSIONS.includes(v)))('CHECK with cniVersion %s: code 1', async (version) => {
    const { conf } = setup(version);
    expectError(await runPlugin({ command: 'CHECK', containerId: containerId('old'), config: conf() }), 1, /CHECK needs cniVersion 0\.4\.0/);
  });
  it.each(VERSIONS.filter((v) => v !== '1.1.0'))('GC and STATUS with cniVersion %s: code 1', async (version) => {
    const { conf } = setup(version);
    const [gc, status] = await Promise.all([
      runPlugin({ command: 'GC', config: conf({ 'cni.dev/valid-attachments': [] }) }),
      runPlugin({ command: 'STATUS', config: conf() }),
    ]);
    expectError(gc, 1, /GC needs cniVersion 1\.1\.0/);
    expectError(status, 1, /STATUS needs cniVersion 1\.1\.0/);
  });
});

describe.concurrent('GC, cniVersion 1.1.0', () => {
  it('releases the leases of attachments not in cni.dev/valid-attachments and keeps the valid ones', async () => {
    const { network, conf } = setup('1.1.0', [[{ subnet: '10.51.0.0/24' }], [{ subnet: 'fd00:51::/64' }]]);
    const keep = containerId('keep');
    const drop = containerId('drop');
    const both = containerId('both');
    const adds = await Promise.all([
      runPlugin({ command: 'ADD', containerId: keep, config: conf() }),
      runPlugin({ command: 'ADD', containerId: drop, config: conf() }),
      runPlugin({ command: 'ADD', containerId: both, ifname: 'eth0', config: conf() }),
      runPlugin({ command: 'ADD', containerId: both, ifname: 'eth1', config: conf() }),
    ]);
    adds.forEach((run) => expectOk(run, 'object'));
    expect(await leasesOf(d.socket, network)).toHaveLength(8);
    const keptEth1 = await ipsOf(d.socket, network, both, 'eth1');
    const keptMain = await ipsOf(d.socket, network, keep);

    const gc = await runPlugin({
      command: 'GC',
      config: conf({
        'cni.dev/valid-attachments': [
          { containerID: keep, ifname: 'eth0' },
          { containerID: both, ifname: 'eth1' },
          { containerID: containerId('unrelated'), ifname: 'eth0' },
        ],
      }),
    });
    expectOk(gc);
    const left = (await leasesOf(d.socket, network)).map((l) => `${l.containerId}/${l.ifname}`).sort();
    expect(left).toEqual([`${both}/eth1`, `${both}/eth1`, `${keep}/eth0`, `${keep}/eth0`].sort());
    expect(await ipsOf(d.socket, network, both, 'eth1')).toEqual(keptEth1);
    expect(await ipsOf(d.socket, network, keep)).toEqual(keptMain);

    // A second GC changes nothing; an empty list releases everything.
    expectOk(await runPlugin({ command: 'GC', config: conf({ 'cni.dev/valid-attachments': [{ containerID: keep, ifname: 'eth0' }, { containerID: both, ifname: 'eth1' }] }) }));
    expect(await leasesOf(d.socket, network)).toHaveLength(4);
    expectOk(await runPlugin({ command: 'GC', config: conf({ 'cni.dev/valid-attachments': [] }) }));
    expect(await leasesOf(d.socket, network)).toEqual([]);
  });

  it('GC without cni.dev/valid-attachments is an invalid config (7)', async () => {
    const { conf } = setup('1.1.0');
    expectError(await runPlugin({ command: 'GC', config: conf() }), 7, /cni\.dev\/valid-attachments/);
  });
});

describe.concurrent('STATUS, cniVersion 1.1.0', () => {
  it('exit 0 with the daemon up', async () => {
    const { conf } = setup('1.1.0');
    expectOk(await runPlugin({ command: 'STATUS', config: conf() }));
  });

  it('code 50 when the daemon is down', async () => {
    const { conf } = setup('1.1.0', undefined, join(d.dir, 'nobody-here.sock'));
    const run = await runPlugin({ command: 'STATUS', config: conf() });
    expectError(run, 50, /nobody-here\.sock/);
  });

  it('code 50 when a range set is full (/30: one usable IP besides the gateway)', async () => {
    const { conf } = setup('1.1.0', [[{ subnet: '10.52.0.0/24' }], [{ subnet: '10.53.0.0/30' }]]);
    expectOk(await runPlugin({ command: 'STATUS', config: conf() }));
    const id = containerId('full');
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: id, config: conf() }), 'object');
    expect(result.ips.map((ip: { address: string }) => ip.address)).toEqual([expect.stringMatching(/^10\.52\.0\./), '10.53.0.2/30']);
    expectError(await runPlugin({ command: 'STATUS', config: conf() }), 50, /range set 1.*10\.53\.0\.2/);
    expectOk(await runPlugin({ command: 'DEL', containerId: id, config: conf() }));
    expectOk(await runPlugin({ command: 'STATUS', config: conf() }));
  });
});
