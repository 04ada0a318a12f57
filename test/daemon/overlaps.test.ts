// Two differently named networks that share a subnet both hand out its IPs (allowed, as in
// host-local: they may be isolated), and usage, health and the log say so.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../daemon/log.js';
import { subnetOverlaps } from '../../daemon/overlaps.js';
import { parseIpamConfig } from '../../src/config.js';
import type { HealthResponse } from '../../src/protocol.js';
import { usageOf } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, addOk, op, startTestDaemon } from './support.js';

let td: TestDaemon;
afterEach(async () => {
  await td?.close();
});

const net = (name: string, ...subnets: string[][]) => ({ name, config: parseIpamConfig({ type: 'reservoir', ranges: subnets.map((set) => set.map((subnet) => ({ subnet }))) }) });

describe('subnetOverlaps', () => {
  it('finds each shared subnet pair once, across range sets, and nothing else', () => {
    expect(
      subnetOverlaps([net('a', ['10.83.0.0/24'], ['fd83::/64']), net('b', ['10.83.0.0/16']), net('c', ['10.84.0.0/24'], ['fd83::/48']), net('d', ['10.83.1.0/24'])]),
    ).toEqual([
      { network: 'a', subnet: '10.83.0.0/24', other: 'b', otherSubnet: '10.83.0.0/16' },
      { network: 'a', subnet: 'fd83::/64', other: 'c', otherSubnet: 'fd83::/48' },
      { network: 'b', subnet: '10.83.0.0/16', other: 'd', otherSubnet: '10.83.1.0/24' },
    ]);
  });

  it('adjacent subnets, other families and one network with itself do not overlap', () => {
    expect(subnetOverlaps([net('a', ['10.83.0.0/24']), net('b', ['10.83.1.0/24']), net('c', ['fd00::/64']), net('a', ['10.83.0.0/24'])])).toEqual([]);
    expect(subnetOverlaps([net('a', ['10.83.0.0/25', '10.83.0.128/25']), net('b', ['10.83.0.128/25'])])).toEqual([
      { network: 'a', subnet: '10.83.0.128/25', other: 'b', otherSubnet: '10.83.0.128/25' },
    ]);
  });
});

describe('overlapping networks in the daemon', () => {
  it('both hand out 10.83.0.2; usage, health and the log warn about it', async () => {
    const lines: string[] = [];
    td = await startTestDaemon({ log: createLogger('warn', (line) => lines.push(line)) });
    const a = netconf('ovl-a', td.socket, { ranges: [[{ subnet: '10.83.0.0/24' }]] });
    const b = netconf('ovl-b', td.socket, { ranges: [[{ subnet: '10.83.0.0/24' }]] });
    const lone = netconf('ovl-lone', td.socket, { ranges: [[{ subnet: '10.85.0.0/24' }]] });
    expect(await addOk(a, { containerId: 'ca' })).toEqual(['10.83.0.2']);
    expect(await addOk(b, { containerId: 'cb' })).toEqual(['10.83.0.2']);
    await addOk(lone, { containerId: 'cl' });
    const warning = 'subnet 10.83.0.0/24 of network "ovl-a" overlaps 10.83.0.0/24 of network "ovl-b": both may hand out the same IPs';
    expect((await usageOf(td.socket, 'ovl-a')).overlaps).toEqual([expect.stringContaining(warning)]);
    expect((await usageOf(td.socket, 'ovl-b')).overlaps).toEqual([expect.stringContaining(warning)]);
    expect((await usageOf(td.socket, 'ovl-lone')).overlaps).toEqual([]);
    const health = await op<HealthResponse>(td.socket, 'health');
    expect(health.warnings).toEqual([expect.stringContaining(warning)]);
    const logged = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'subnets overlap');
    expect(logged).toEqual([expect.objectContaining({ level: 'warn', network: 'ovl-b', other: 'ovl-a' })]);
  });
});
