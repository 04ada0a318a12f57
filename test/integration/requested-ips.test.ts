// Requested IPs from every source the plugin reads, their precedence and their errors; and
// dual-stack networks (one IPv4 and one IPv6 range set). Every supported cniVersion.
import { describe, expect, it } from 'vitest';
import { ipsOf, leasesOf } from '../support/daemon.js';
import { useInProcessDaemon } from '../support/hooks.js';
import { VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectError, expectOk, runPlugin } from '../support/plugin.js';
import { containerId, hexContainerId } from '../support/tmp.js';

const d = useInProcessDaemon('req');

function addressesOf(result: any): string[] {
  if (Array.isArray(result.ips)) return result.ips.map((ip: { address: string }) => ip.address);
  return ['ip4', 'ip6'].filter((k) => result[k]).map((k) => result[k].ip);
}

const ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';

describe.concurrent.each(VERSIONS)('cniVersion %s', (version) => {
  let networks = 0;
  const setup = (ranges: unknown = [[{ subnet: '10.30.0.0/24' }]]) => {
    const network = netName(`req${++networks}`, version);
    const conf = (extra?: Record<string, unknown>) => netconf(network, d.socket, { ranges }, { cniVersion: version, ...extra });
    return { network, conf };
  };

  it('takes the requested IP from CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips and the pod annotation', async () => {
    const { network, conf } = setup();
    const ids = [containerId('env'), containerId('args'), containerId('rc'), containerId('annot'), containerId('env2')];
    const runs = await Promise.all([
      runPlugin({ command: 'ADD', containerId: ids[0], args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod-a;FOO=bar;IP=10.30.0.50', config: conf() }),
      runPlugin({ command: 'ADD', containerId: ids[1], config: conf({ args: { cni: { ips: ['10.30.0.51'] } } }) }),
      runPlugin({ command: 'ADD', containerId: ids[2], config: conf({ runtimeConfig: { ips: ['10.30.0.52/24'] } }) }),
      runPlugin({ command: 'ADD', containerId: ids[3], config: conf({ runtimeConfig: { [ANNOTATIONS]: { 'reservoir.io/ip': '10.30.0.53' } } }) }),
      // IgnoreUnknown=true is accepted too, and an IP with the subnet's prefix
      runPlugin({ command: 'ADD', containerId: ids[4], args: 'IgnoreUnknown=true;IP=10.30.0.54/24', config: conf() }),
    ]);
    const expected = ['10.30.0.50/24', '10.30.0.51/24', '10.30.0.52/24', '10.30.0.53/24', '10.30.0.54/24'];
    runs.forEach((run, i) => expect(addressesOf(expectOk(run, 'object'))).toEqual([expected[i]]));
    for (const [i, id] of ids.entries()) expect(await ipsOf(d.socket, network, id)).toEqual([expected[i]!.split('/')[0]]);
  });

  it('CNI_ARGS with an unknown key and no IgnoreUnknown is refused (code 4) and leases nothing', async () => {
    const { network, conf } = setup();
    const id = containerId('strict');
    expectError(await runPlugin({ command: 'ADD', containerId: id, args: 'FOO=bar;IP=10.30.0.60', config: conf() }), 4, /FOO/);
    expect(await ipsOf(d.socket, network, id)).toEqual([]);
  });

  it('a prefix that is not the subnet\'s, or IP= given twice, is refused (code 4 from CNI_ARGS, 7 from the config) and leases nothing', async () => {
    const { network, conf } = setup();
    const ids = [containerId('pfx'), containerId('pfx'), containerId('dup')];
    expectError(await runPlugin({ command: 'ADD', containerId: ids[0], args: 'IP=10.30.0.7/8', config: conf() }), 4, /has prefix \/8 but lies in subnet 10\.30\.0\.0\/24/);
    expectError(await runPlugin({ command: 'ADD', containerId: ids[1], config: conf({ runtimeConfig: { ips: ['10.30.0.7/16'] } }) }), 7, /10\.30\.0\.7\/24/);
    expectError(await runPlugin({ command: 'ADD', containerId: ids[2], args: 'IP=10.30.0.8;IP=10.30.0.9', config: conf() }), 4, /gives IP twice/);
    expect(await leasesOf(d.socket, network)).toEqual([]);
  });

  it('precedence: args.cni.ips wins over CNI_ARGS, runtimeConfig.ips over both and over the annotation', async () => {
    const { conf } = setup();
    const [argsOverEnv, runtimeOverAll, annotationOverEnv] = await Promise.all([
      runPlugin({ command: 'ADD', containerId: containerId('p1'), args: 'IgnoreUnknown=1;IP=10.30.0.70', config: conf({ args: { cni: { ips: ['10.30.0.71'] } } }) }),
      runPlugin({
        command: 'ADD',
        containerId: containerId('p2'),
        args: 'IgnoreUnknown=1;IP=10.30.0.72',
        config: conf({
          args: { cni: { ips: ['10.30.0.73'] } },
          runtimeConfig: { ips: ['10.30.0.74'], [ANNOTATIONS]: { 'reservoir.io/ip': '10.30.0.75' } },
        }),
      }),
      runPlugin({
        command: 'ADD',
        containerId: containerId('p3'),
        args: 'IgnoreUnknown=1;IP=10.30.0.76',
        config: conf({ runtimeConfig: { [ANNOTATIONS]: { 'reservoir.io/ip': '10.30.0.77' } } }),
      }),
    ]);
    expect(addressesOf(expectOk(argsOverEnv, 'object'))).toEqual(['10.30.0.71/24']);
    expect(addressesOf(expectOk(runtimeOverAll, 'object'))).toEqual(['10.30.0.74/24']);
    expect(addressesOf(expectOk(annotationOverEnv, 'object'))).toEqual(['10.30.0.77/24']);
  });

  it('a requested IP already taken: code 101 naming the holder, and the loser leases nothing', async () => {
    const { network, conf } = setup();
    const holder = hexContainerId();
    const loser = hexContainerId();
    expectOk(await runPlugin({ command: 'ADD', containerId: holder, args: 'IP=10.30.0.80', config: conf() }), 'object');
    const holdings = async () => (await leasesOf(d.socket, network)).map((l) => `${l.ip} ${l.containerId}/${l.ifname}`);
    const before = await holdings();
    expect(before).toEqual([`10.30.0.80 ${holder}/eth0`]);
    const [fromEnv, fromArgs] = await Promise.all([
      runPlugin({ command: 'ADD', containerId: loser, args: 'IP=10.30.0.80', config: conf() }),
      runPlugin({ command: 'ADD', containerId: loser, ifname: 'eth1', config: conf({ args: { cni: { ips: ['10.30.0.80'] } } }) }),
    ]);
    for (const run of [fromEnv, fromArgs]) {
      const error = expectError(run, 101, /10\.30\.0\.80/);
      // Holders are named by their short id (the first 12 characters, as docker and crictl show them).
      expect(error.msg).toContain(`container ${holder.slice(0, 12)}`);
      expect(error.msg).not.toContain(loser.slice(0, 12));
      expect(error.cniVersion).toBe(version);
    }
    expect(await holdings()).toEqual(before);
    // The holder's own repeated ADD with the same request is not a conflict.
    expect(addressesOf(expectOk(await runPlugin({ command: 'ADD', containerId: holder, args: 'IP=10.30.0.80', config: conf() }), 'object'))).toEqual([
      '10.30.0.80/24',
    ]);
  });

  it('a requested IP outside the ranges: code 102, nothing leased', async () => {
    const { network, conf } = setup([[{ subnet: '10.30.0.0/24', rangeStart: '10.30.0.10', rangeEnd: '10.30.0.99' }]]);
    const id = containerId('out');
    const runs = await Promise.all([
      runPlugin({ command: 'ADD', containerId: id, args: 'IP=10.31.0.5', config: conf() }),
      runPlugin({ command: 'ADD', containerId: id, ifname: 'eth1', config: conf({ args: { cni: { ips: ['10.30.0.200'] } } }) }),
      runPlugin({ command: 'ADD', containerId: id, ifname: 'eth2', config: conf({ runtimeConfig: { ips: ['10.30.0.1'] } }) }),
      runPlugin({ command: 'ADD', containerId: id, ifname: 'eth3', config: conf({ runtimeConfig: { ips: ['fd00::5'] } }) }),
    ]);
    expectError(runs[0]!, 102, /10\.31\.0\.5/);
    expectError(runs[1]!, 102, /10\.30\.0\.200.*rangeEnd/);
    expectError(runs[2]!, 102, /gateway/);
    expectError(runs[3]!, 102, /fd00::5/);
    expect(await leasesOf(d.socket, network)).toEqual([]);
  });

  it('dual-stack: one IPv4 and one IPv6 address, the IPv6 one in its /64', async () => {
    const { network, conf } = setup([[{ subnet: '10.40.0.0/24' }], [{ subnet: 'fd00:40::/64' }]]);
    const id = containerId('dual');
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: id, config: conf() }), 'object');
    const addresses = addressesOf(result);
    expect(addresses).toHaveLength(2);
    expect(addresses[0]).toMatch(/^10\.40\.0\.\d+\/24$/);
    expect(addresses[1]).toMatch(/^fd00:40::[0-9a-f]+\/64$/);
    if (version === '0.1.0' || version === '0.2.0') {
      expect(result.ip6).toEqual({ ip: addresses[1], gateway: 'fd00:40::1' });
    } else {
      const families = result.ips.map((ip: { version?: string }) => ip.version);
      expect(families).toEqual(version.startsWith('0.') ? ['4', '6'] : [undefined, undefined]);
      expect(result.ips[1].gateway).toBe('fd00:40::1');
    }
    expect(await ipsOf(d.socket, network, id)).toEqual(addresses.map((a) => a.split('/')[0]).sort());
    // Requesting one IP of each family places each in its own range set.
    const both = expectOk(
      await runPlugin({ command: 'ADD', containerId: containerId('dual-req'), config: conf({ runtimeConfig: { ips: ['fd00:40::abcd', '10.40.0.99'] } }) }),
      'object',
    );
    expect(addressesOf(both)).toEqual(['10.40.0.99/24', 'fd00:40::abcd/64']);
    expectOk(await runPlugin({ command: 'DEL', containerId: id, config: conf() }));
    expect(await ipsOf(d.socket, network, id)).toEqual([]);
  });
});
