import { describe, expect, it } from 'vitest';
import {
  COMMANDS,
  COMMAND_SINCE,
  type CniVersion,
  type IpamResult,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  addressesOfResult,
  compareVersions,
  convertResult,
  isSupportedVersion,
  versionInfo,
} from '../../src/cni.js';
import { ReservoirError } from '../../src/errors.js';

const dual: IpamResult = {
  ips: [
    { address: '10.22.0.5/16', gateway: '10.22.0.1' },
    { address: 'fd00::5/64', gateway: 'fd00::1' },
    { address: '10.23.0.7/24' },
    { address: 'fd01::7/64', gateway: 'fd01::1' },
  ],
  routes: [
    { dst: '0.0.0.0/0' },
    { dst: '::/0', gw: 'fd00::1' },
    { dst: '192.168.0.0/16', gw: '10.22.0.254' },
    { dst: 'fd10::/48' },
  ],
  dns: { nameservers: ['10.22.0.53'], domain: 'cluster.local', search: ['svc'], options: ['ndots:5'] },
};

const v6only: IpamResult = {
  ips: [{ address: 'fd00::5/64', gateway: 'fd00::1' }],
  routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
};

describe('SUPPORTED_VERSIONS and compareVersions', () => {
  it('lists every version from 0.1.0 to 1.1.0, oldest first, the latest last', () => {
    expect([...SUPPORTED_VERSIONS]).toEqual(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    expect(LATEST_VERSION).toBe('1.1.0');
    expect(SUPPORTED_VERSIONS.at(-1)).toBe(LATEST_VERSION);
  });

  it('orders every pair of supported versions by their position', () => {
    SUPPORTED_VERSIONS.forEach((a, i) => {
      SUPPORTED_VERSIONS.forEach((b, j) => {
        expect(compareVersions(a, b), `${a} vs ${b}`).toBe(Math.sign(i - j));
      });
    });
  });

  it.each<[string, string, number]>([
    ['1.10.0', '1.9.0', 1],
    ['0.10.0', '0.9.9', 1],
    ['2.0.0', '1.99.99', 1],
    ['1.0', '1.0.0', 0],
    ['1', '1.0.0', 0],
    ['1.0.1', '1.0', 1],
    ['0.3.1', '0.3.0', 1],
    ['0.4.0', '0.4.0', 0],
    ['0.1.0', '1.0.0', -1],
  ])('compareVersions(%s, %s) = %i', (a, b, expected) => {
    expect(compareVersions(a, b)).toBe(expected);
    expect(compareVersions(b, a)).toBe(-expected || 0);
  });

  it('isSupportedVersion', () => {
    for (const version of SUPPORTED_VERSIONS) expect(isSupportedVersion(version)).toBe(true);
    for (const version of ['0.5.0', '1.0', '1.2.0', '', ' 1.0.0', 'v1.0.0', null, undefined, 1, ['1.0.0']]) {
      expect(isSupportedVersion(version), String(version)).toBe(false);
    }
  });

  it('COMMAND_SINCE: CHECK from 0.4.0, GC and STATUS from 1.1.0, the rest from 0.1.0', () => {
    expect([...COMMANDS]).toEqual(['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS']);
    expect(COMMAND_SINCE).toEqual({ ADD: '0.1.0', DEL: '0.1.0', VERSION: '0.1.0', CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' });
    for (const command of COMMANDS) expect(isSupportedVersion(COMMAND_SINCE[command])).toBe(true);
  });
});

describe('versionInfo', () => {
  it('defaults to the latest version and lists all supported ones', () => {
    expect(versionInfo()).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it.each(SUPPORTED_VERSIONS)('answers in the caller\'s version %s', (version) => {
    expect(versionInfo(version).cniVersion).toBe(version);
    expect(versionInfo(version).supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
  });

  it('returns a copy: mutating it leaves SUPPORTED_VERSIONS alone', () => {
    const info = versionInfo();
    info.supportedVersions.push('9.9.9' as never);
    expect(SUPPORTED_VERSIONS).toHaveLength(7);
    expect(versionInfo().supportedVersions).toHaveLength(7);
  });
});

describe('convertResult', () => {
  it.each(['1.0.0', '1.1.0'] as const)('%s: the current shape, unchanged', (version) => {
    expect(convertResult(dual, version)).toEqual({
      cniVersion: version,
      ips: dual.ips,
      routes: dual.routes,
      dns: dual.dns,
    });
    const ips = convertResult(dual, version).ips as Array<Record<string, unknown>>;
    for (const ip of ips) expect(ip).not.toHaveProperty('version');
    expect(convertResult(dual, version)).not.toHaveProperty('ip4');
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'] as const)('%s: each IP carries version "4" or "6"', (version) => {
    expect(convertResult(dual, version)).toEqual({
      cniVersion: version,
      ips: [
        { version: '4', address: '10.22.0.5/16', gateway: '10.22.0.1' },
        { version: '6', address: 'fd00::5/64', gateway: 'fd00::1' },
        { version: '4', address: '10.23.0.7/24' },
        { version: '6', address: 'fd01::7/64', gateway: 'fd01::1' },
      ],
      routes: dual.routes,
      dns: dual.dns,
    });
  });

  it.each(['0.1.0', '0.2.0'] as const)('%s: ip4/ip6 with the first IP per family and routes sorted to their family', (version) => {
    expect(convertResult(dual, version)).toEqual({
      cniVersion: version,
      ip4: {
        ip: '10.22.0.5/16',
        gateway: '10.22.0.1',
        routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.22.0.254' }],
      },
      ip6: {
        ip: 'fd00::5/64',
        gateway: 'fd00::1',
        routes: [{ dst: '::/0', gw: 'fd00::1' }, { dst: 'fd10::/48' }],
      },
      dns: dual.dns,
    });
    expect(convertResult(dual, version)).not.toHaveProperty('ips');
    expect(convertResult(dual, version)).not.toHaveProperty('routes');
  });

  it.each(['0.1.0', '0.2.0'] as const)('%s: a family without IPs is left out, with its routes', (version) => {
    expect(convertResult(v6only, version)).toEqual({
      cniVersion: version,
      ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0' }] },
      dns: {},
    });
  });

  it('0.2.0: no gateway and no routes means neither key', () => {
    const out = convertResult({ ips: [{ address: '10.0.0.5/24' }], routes: [] }, '0.2.0');
    expect(out).toEqual({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.5/24' }, dns: {} });
    expect(out.ip4).not.toHaveProperty('gateway');
    expect(out.ip4).not.toHaveProperty('routes');
  });

  it.each(SUPPORTED_VERSIONS)('%s: dns passes through, {} when absent', (version) => {
    expect(convertResult(dual, version).dns).toEqual(dual.dns);
    expect(convertResult(v6only, version).dns).toEqual({});
  });

  it.each(SUPPORTED_VERSIONS)('%s: a result without IPs', (version) => {
    const out = convertResult({ ips: [], routes: [] }, version);
    expect(out.cniVersion).toBe(version);
    if (compareVersions(version, '0.3.0') >= 0) expect(out.ips).toEqual([]);
    else expect(Object.keys(out).sort()).toEqual(['cniVersion', 'dns']);
  });

  it.each(SUPPORTED_VERSIONS)('%s: the output does not share arrays with the input', (version) => {
    const input: IpamResult = { ips: [{ address: '10.0.0.5/24', gateway: '10.0.0.1' }], routes: [{ dst: '0.0.0.0/0' }] };
    const out = convertResult(input, version);
    const json = JSON.stringify(out);
    if (Array.isArray(out.ips)) (out.ips as unknown[]).push('x');
    if (Array.isArray(out.routes)) (out.routes as unknown[]).push('x');
    if (Array.isArray(out.ips)) (out.ips[0] as Record<string, unknown>).address = 'changed';
    expect(input.ips).toEqual([{ address: '10.0.0.5/24', gateway: '10.0.0.1' }]);
    expect(input.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    expect(JSON.parse(json).cniVersion).toBe(version);
  });

  it('each version produces a shape addressesOfResult reads back', () => {
    for (const version of SUPPORTED_VERSIONS) {
      const back = addressesOfResult(JSON.parse(JSON.stringify(convertResult(dual, version as CniVersion))));
      if (compareVersions(version, '0.3.0') >= 0) expect(back).toEqual(dual.ips.map((ip) => ip.address));
      else expect(back).toEqual(['10.22.0.5/16', 'fd00::5/64']);
    }
  });
});

describe('addressesOfResult', () => {
  it.each<[string, unknown, string[]]>([
    ['1.0.0', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.5/24', gateway: '10.0.0.1' }, { address: 'fd00::5/64' }], routes: [] }, ['10.0.0.5/24', 'fd00::5/64']],
    ['1.1.0 with interfaces', { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.5/24', interface: 0 }] }, ['10.0.0.5/24']],
    ['0.4.0', { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.5/24' }, { version: '6', address: 'fd00::5/64' }] }, ['10.0.0.5/24', 'fd00::5/64']],
    ['0.3.1', { cniVersion: '0.3.1', ips: [{ version: '4', address: '10.0.0.5/24' }] }, ['10.0.0.5/24']],
    ['0.2.0', { cniVersion: '0.2.0', ip4: { ip: '10.0.0.5/24', gateway: '10.0.0.1' }, ip6: { ip: 'fd00::5/64' }, dns: {} }, ['10.0.0.5/24', 'fd00::5/64']],
    ['0.2.0 IPv6 only', { cniVersion: '0.2.0', ip6: { ip: 'fd00::5/64' } }, ['fd00::5/64']],
    ['0.1.0 IPv4 only', { ip4: { ip: '10.0.0.5/24' } }, ['10.0.0.5/24']],
    ['no addresses', { cniVersion: '1.0.0', ips: [] }, []],
    ['empty object', {}, []],
    ['null legacy keys (Go omitempty misses)', { ip4: null, ips: null }, []],
  ])('%s', (_name, prevResult, expected) => {
    expect(addressesOfResult(prevResult)).toEqual(expected);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'prevResult: must be a JSON object'],
    ['a string', '10.0.0.5/24', 'prevResult: must be a JSON object'],
    ['a number', 5, 'prevResult: must be a JSON object'],
    ['an array', [{ address: '10.0.0.5/24' }], 'prevResult: must be a JSON object'],
    ['ips not an array', { ips: '10.0.0.5/24' }, 'prevResult.ips: must be an array'],
    ['ips an object', { ips: { address: '10.0.0.5/24' } }, 'prevResult.ips: must be an array'],
    ['ip without address', { ips: [{ address: '10.0.0.5/24' }, { gateway: '10.0.0.1' }] }, 'prevResult.ips[1].address'],
    ['ip address a number', { ips: [{ address: 167772165 }] }, 'prevResult.ips[0].address'],
    ['ip a string', { ips: ['10.0.0.5/24'] }, 'prevResult.ips[0].address'],
    ['ip null', { ips: [null] }, 'prevResult.ips[0].address'],
    ['ip4 a string', { ip4: '10.0.0.5/24' }, 'prevResult.ip4.ip'],
    ['ip6 without ip', { ip6: { gateway: 'fd00::1' } }, 'prevResult.ip6.ip'],
    ['ip4.ip a number', { ip4: { ip: 5 } }, 'prevResult.ip4.ip'],
  ])('malformed: %s -> code 7', (_name, prevResult, message) => {
    let caught: unknown;
    try {
      addressesOfResult(prevResult);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ReservoirError);
    expect((caught as ReservoirError).code).toBe(7);
    expect((caught as ReservoirError).message).toContain(`invalid config: ${message}`);
  });
});
