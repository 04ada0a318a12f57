// ADD / DEL / repeat ADD / second interface / round robin, through the real plugin process and a
// real daemon (in-process, temp socket, temp SQLite file), for every supported cniVersion.
import { describe, expect, it } from 'vitest';
import { ipsOf, leasesOf, usageOf } from '../support/daemon.js';
import { useInProcessDaemon } from '../support/hooks.js';
import { VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectOk, runPlugin } from '../support/plugin.js';
import { containerId } from '../support/tmp.js';

const d = useInProcessDaemon('life');

/** The addresses ("ip/prefix") of an ADD result in any version's shape. */
function addressesOf(result: any): string[] {
  if (Array.isArray(result.ips)) return result.ips.map((ip: { address: string }) => ip.address);
  return ['ip4', 'ip6'].filter((k) => result[k]).map((k) => result[k].ip);
}

const bare = (address: string) => address.split('/')[0]!;

// Versions and tests run concurrently; each test has a network of its own.
describe.concurrent.each(VERSIONS)('cniVersion %s', (version) => {
  let networks = 0;
  const setup = () => {
    const network = netName(`life${++networks}`, version);
    const conf = () => netconf(network, d.socket, { ranges: [[{ subnet: '10.20.0.0/24' }]] }, { cniVersion: version });
    const add = (id: string, ifname = 'eth0') => runPlugin({ command: 'ADD', containerId: id, ifname, config: conf() });
    const del = (id: string, ifname = 'eth0') => runPlugin({ command: 'DEL', containerId: id, ifname, config: conf() });
    return { network, conf, add, del };
  };

  it('ADD allocates and answers in the shape of the version', async () => {
    const { network, add } = setup();
    const id = containerId('shape');
    const result = expectOk(await add(id), 'object');
    expect(result.cniVersion).toBe(version);
    if (version === '0.1.0' || version === '0.2.0') {
      expect(result.ips).toBeUndefined();
      expect(result.ip6).toBeUndefined();
      expect(result.ip4).toEqual({ ip: expect.stringMatching(/^10\.20\.0\.\d+\/24$/), gateway: '10.20.0.1' });
    } else {
      expect(result.ip4).toBeUndefined();
      expect(result.ips).toHaveLength(1);
      const expected: Record<string, unknown> = { address: expect.stringMatching(/^10\.20\.0\.\d+\/24$/), gateway: '10.20.0.1' };
      if (version.startsWith('0.')) expected.version = '4';
      expect(result.ips[0]).toEqual(expected);
      expect(result.routes).toEqual([]);
      expect(result.interfaces).toBeUndefined();
    }
    const [address] = addressesOf(result);
    expect(bare(address!)).not.toBe('10.20.0.1');
    expect(await ipsOf(d.socket, network, id)).toEqual([bare(address!)]);
  });

  it('DEL releases: the IP is free again', async () => {
    const { network, conf, add, del } = setup();
    const id = containerId('del');
    const [address] = addressesOf(expectOk(await add(id), 'object'));
    const ip = bare(address!);
    const leases = await leasesOf(d.socket, network);
    expect(leases.find((l) => l.ip === ip)).toMatchObject({ containerId: id, ifname: 'eth0', state: 'attached' });
    const inUse = (await usageOf(d.socket, network)).dynamicInUse;

    expectOk(await del(id));
    expect((await leasesOf(d.socket, network)).find((l) => l.ip === ip)).toBeUndefined();
    expect((await usageOf(d.socket, network)).dynamicInUse).toBe(inUse - 1);
    // Free means it can be had again: request exactly that IP.
    const other = containerId('reuse');
    const again = expectOk(await runPlugin({ command: 'ADD', containerId: other, args: `IP=${ip}`, config: conf() }), 'object');
    expect(addressesOf(again)).toEqual([address]);
    expectOk(await del(other));
  });

  it('a repeated ADD of the same attachment returns the same IPs; eth1 gets another IP', async () => {
    const { network, add, del } = setup();
    const id = containerId('repeat');
    const first = addressesOf(expectOk(await add(id), 'object'));
    const [repeat, eth1] = await Promise.all([add(id), add(id, 'eth1')]);
    expect(addressesOf(expectOk(repeat, 'object'))).toEqual(first);
    const second = addressesOf(expectOk(eth1, 'object'));
    expect(second).toHaveLength(1);
    expect(second).not.toEqual(first);
    expect(await ipsOf(d.socket, network, id, 'eth0')).toEqual(first.map(bare));
    expect(await ipsOf(d.socket, network, id, 'eth1')).toEqual(second.map(bare));
    // DEL of eth0 leaves eth1 alone.
    expectOk(await del(id, 'eth0'));
    expect(await ipsOf(d.socket, network, id, 'eth0')).toEqual([]);
    expect(await ipsOf(d.socket, network, id, 'eth1')).toEqual(second.map(bare));
  });

  it('DEL of an unknown attachment succeeds, and so does a repeated DEL', async () => {
    const { network, conf, add, del } = setup();
    const unknown = containerId('unknown');
    const id = containerId('twice');
    const [unknownDel, unknownNet, added] = await Promise.all([
      del(unknown),
      // a network the daemon has never seen
      runPlugin({ command: 'DEL', containerId: unknown, config: netconf(`${network}-never`, d.socket, {}, { cniVersion: version }) }),
      add(id),
    ]);
    expectOk(unknownDel);
    expectOk(unknownNet);
    expectOk(added, 'object');
    const before = (await leasesOf(d.socket, network)).length;
    expectOk(await del(id));
    const [again, thrice] = await Promise.all([del(id), del(id)]);
    expectOk(again);
    expectOk(thrice);
    expect((await leasesOf(d.socket, network)).length).toBe(before - 1);
    // DEL without CNI_NETNS (the runtime may have lost the namespace) succeeds too.
    expectOk(await runPlugin({ command: 'DEL', containerId: id, netns: null, config: conf() }));
  });

  it('round robin: after ADD/DEL of X, the next ADD does not get X', async () => {
    const { add, del } = setup();
    const a = containerId('rr-a');
    const x = addressesOf(expectOk(await add(a), 'object'));
    expectOk(await del(a));
    const b = containerId('rr-b');
    const next = addressesOf(expectOk(await add(b), 'object'));
    expect(next).not.toEqual(x);
    expectOk(await del(b));
    const c = containerId('rr-c');
    const third = addressesOf(expectOk(await add(c), 'object'));
    expect(third).not.toEqual(x);
    expect(third).not.toEqual(next);
  });
});
