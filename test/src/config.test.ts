import { describe, expect, it } from 'vitest';
import { formatValue, parseIp } from '../../src/address.js';
import { DEFAULT_SOCKET, DEFAULT_TIMEOUT_MS } from '../../src/defaults.js';
import {
  type IpRange,
  type IpamConfig,
  checkReservedPlacement,
  describeInterval,
  describeRange,
  parseDuration,
  parseGroupName,
  parseIpamConfig,
  parseIpamConfigCached,
  parseKind,
  parseNetworkName,
  parseReservedEntry,
  show,
} from '../../src/config.js';
import { expectReservoirError } from '../support/expect-error.js';

const v = (text: string): bigint => parseIp(text).value;

function ok(ipam: Record<string, unknown>): IpamConfig {
  return parseIpamConfig(ipam);
}

/** Assert code 7 and that the message names the field and (each) offending value. */
function invalid(run: () => unknown, field: string, ...values: string[]): string {
  const message = expectReservoirError(run, 7, ...values);
  expect(message.startsWith(`invalid config: ${field}: `), `message "${message}" should name ${field}`).toBe(true);
  return message;
}

const ranges = (...sets: Array<Array<Record<string, unknown>>>) => ({ ranges: sets });
const bad = (ipam: Record<string, unknown>, field: string, ...values: string[]) => invalid(() => parseIpamConfig(ipam), field, ...values);

function rangeText(range: IpRange): [string, string, string | undefined] {
  const f = range.subnet.family;
  return [formatValue(f, range.start), formatValue(f, range.end), range.gateway === undefined ? undefined : formatValue(f, range.gateway)];
}

describe('parseIpamConfig: ranges and defaults', () => {
  it.each<[string, Record<string, unknown>, string, string, string]>([
    // subnet, explicit fields -> start, end, gateway
    ['IPv4 /24 defaults', { subnet: '10.0.0.0/24' }, '10.0.0.1', '10.0.0.254', '10.0.0.1'],
    ['IPv4 /16 defaults', { subnet: '10.22.0.0/16' }, '10.22.0.1', '10.22.255.254', '10.22.0.1'],
    ['IPv4 /30 defaults', { subnet: '10.0.0.4/30' }, '10.0.0.5', '10.0.0.6', '10.0.0.5'],
    ['IPv4 /8 defaults', { subnet: '10.0.0.0/8' }, '10.0.0.1', '10.255.255.254', '10.0.0.1'],
    ['IPv6 /64 defaults: last address is usable', { subnet: 'fd00::/64' }, 'fd00::1', 'fd00::ffff:ffff:ffff:ffff', 'fd00::1'],
    ['IPv6 /126 defaults', { subnet: 'fd00::/126' }, 'fd00::1', 'fd00::3', 'fd00::1'],
    ['explicit start/end', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.200' }, '10.0.0.100', '10.0.0.200', '10.0.0.1'],
    ['explicit gateway', { subnet: '10.0.0.0/24', gateway: '10.0.0.254' }, '10.0.0.1', '10.0.0.254', '10.0.0.254'],
    ['gateway outside start..end but inside subnet', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.200' }, '10.0.0.10', '10.0.0.20', '10.0.0.200'],
    ['start == end', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.7', rangeEnd: '10.0.0.7' }, '10.0.0.7', '10.0.0.7', '10.0.0.1'],
    ['start = first usable, end = last usable', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.1', rangeEnd: '10.0.0.254' }, '10.0.0.1', '10.0.0.254', '10.0.0.1'],
    ['IPv6 rangeEnd may be the last address', { subnet: 'fd00::/120', rangeEnd: 'fd00::ff' }, 'fd00::1', 'fd00::ff', 'fd00::1'],
    ['only rangeStart', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.50' }, '10.0.0.50', '10.0.0.254', '10.0.0.1'],
    ['only rangeEnd', { subnet: '10.0.0.0/24', rangeEnd: '10.0.0.50' }, '10.0.0.1', '10.0.0.50', '10.0.0.1'],
  ])('%s', (_name, range, start, end, gateway) => {
    const config = ok(ranges([range]));
    expect(config.rangeSets).toHaveLength(1);
    expect(config.rangeSets[0]!.ranges).toHaveLength(1);
    expect(rangeText(config.rangeSets[0]!.ranges[0]!)).toEqual([start, end, gateway]);
    expect(config.rangeSets[0]!.family).toBe(range.subnet!.toString().includes(':') ? 6 : 4);
  });

  it('keeps range sets and ranges in order, with their families', () => {
    const config = ok(
      ranges(
        [{ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24', rangeStart: '10.0.1.10' }],
        [{ subnet: 'fd00::/64' }],
        [{ subnet: '192.168.0.0/24' }],
      ),
    );
    expect(config.rangeSets.map((s) => s.family)).toEqual([4, 6, 4]);
    expect(config.rangeSets.map((s) => s.ranges.map(describeRange))).toEqual([
      ['10.0.0.1-10.0.0.254', '10.0.1.10-10.0.1.254'],
      ['fd00::1-fd00::ffff:ffff:ffff:ffff'],
      ['192.168.0.1-192.168.0.254'],
    ]);
    expect(config.rangeSets[0]!.ranges[1]!.subnet).toEqual({ family: 4, network: v('10.0.1.0'), prefix: 24 });
  });

  it('the defaults of everything but ranges', () => {
    const config = ok(ranges([{ subnet: '10.0.0.0/24' }]));
    expect(config.routes).toEqual([]);
    expect(config.dns).toBeUndefined();
    expect(config.reserved).toEqual([]);
    expect(config.socket).toBe(DEFAULT_SOCKET);
    expect(config.socket).toBe('/run/reservoir/reservoir.sock');
    expect(config.timeoutMs).toBe(DEFAULT_TIMEOUT_MS);
    expect(config.timeoutMs).toBe(5000);
    expect(config.defaultKind).toBe('stateless');
    expect(config.holdForMs).toBeUndefined();
  });

  it('ignores host-local keys it does not use (type, dataDir)', () => {
    expect(() => ok({ type: 'reservoir', dataDir: '/var/lib/cni', ...ranges([{ subnet: '10.0.0.0/24' }]) })).not.toThrow();
  });

  it('two ranges of one subnet with disjoint start..end are not an overlap', () => {
    const config = ok(
      ranges([
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20' },
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.30', rangeEnd: '10.0.0.40' },
      ]),
    );
    expect(config.rangeSets[0]!.ranges.map(describeRange)).toEqual(['10.0.0.10-10.0.0.20', '10.0.0.30-10.0.0.40']);
  });

  it('an IPv4 and an IPv6 set never overlap, even with equal numbers', () => {
    expect(() => ok(ranges([{ subnet: '0.0.0.0/1' }], [{ subnet: '::/97' }]))).not.toThrow();
  });
});

describe('parseIpamConfig: the legacy top-level "subnet" form', () => {
  it('reads subnet, rangeStart, rangeEnd and gateway from ipam', () => {
    const config = ok({ subnet: '10.1.0.0/16', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.99', gateway: '10.1.0.254' });
    expect(config.rangeSets).toHaveLength(1);
    expect(config.rangeSets[0]!.family).toBe(4);
    expect(rangeText(config.rangeSets[0]!.ranges[0]!)).toEqual(['10.1.0.10', '10.1.0.99', '10.1.0.254']);
  });

  it('applies the same defaults', () => {
    const config = ok({ subnet: 'fd00::/64', routes: [{ dst: '::/0' }] });
    expect(rangeText(config.rangeSets[0]!.ranges[0]!)).toEqual(['fd00::1', 'fd00::ffff:ffff:ffff:ffff', 'fd00::1']);
    expect(config.routes).toEqual([{ dst: '::/0' }]);
  });

  it.each<[string, Record<string, unknown>, string, string[]]>([
    ['both forms', { subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.0.0/24' }]] }, 'ipam.subnet', ['either "subnet" or "ranges"']],
    ['host bits', { subnet: '10.0.0.5/24' }, 'ipam.subnet', ['10.0.0.5/24', '10.0.0.0/24']],
    ['bad rangeStart', { subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }, 'ipam.rangeStart', ['10.0.1.5', 'outside']],
    ['bad rangeEnd', { subnet: '10.0.0.0/24', rangeEnd: '10.0.0.255' }, 'ipam.rangeEnd', ['10.0.0.255', 'broadcast']],
    ['reversed', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.8' }, 'ipam.rangeEnd', ['10.0.0.8', '10.0.0.9']],
    ['bad gateway', { subnet: '10.0.0.0/24', gateway: '10.0.9.1' }, 'ipam.gateway', ['10.0.9.1']],
    ['too small', { subnet: '10.0.0.0/31' }, 'ipam.subnet', ['10.0.0.0/31']],
  ])('%s: errors name the keys as written', (_name, ipam, field, values) => {
    bad(ipam, field, ...values);
  });
});

describe('parseIpamConfig: invalid ranges', () => {
  it.each<[string, unknown, string, string[]]>([
    ['ipam not an object', 'x', 'ipam', ['"x"']],
    ['ipam null', null, 'ipam', ['null']],
    ['ipam an array', [], 'ipam', ['[]']],
    ['missing ranges', {}, 'ipam.ranges', ['missing']],
    ['ranges not an array', { ranges: { subnet: '10.0.0.0/24' } }, 'ipam.ranges', ['non-empty array']],
    ['ranges a string', { ranges: '10.0.0.0/24' }, 'ipam.ranges', ['non-empty array']],
    ['empty ranges', { ranges: [] }, 'ipam.ranges', ['non-empty array']],
    ['empty range set', { ranges: [[]] }, 'ipam.ranges[0]', ['non-empty array']],
    ['second range set empty', { ranges: [[{ subnet: '10.0.0.0/24' }], []] }, 'ipam.ranges[1]', ['non-empty array']],
    ['range set not an array', { ranges: [{ subnet: '10.0.0.0/24' }] }, 'ipam.ranges[0]', ['non-empty array']],
    ['range not an object', { ranges: [['10.0.0.0/24']] }, 'ipam.ranges[0][0]', ['"10.0.0.0/24"']],
    ['range null', { ranges: [[null]] }, 'ipam.ranges[0][0]', ['null']],
    ['subnet missing', { ranges: [[{ rangeStart: '10.0.0.5' }]] }, 'ipam.ranges[0][0].subnet', ['missing']],
    ['subnet null', { ranges: [[{ subnet: null }]] }, 'ipam.ranges[0][0].subnet', ['null']],
    ['subnet a number', { ranges: [[{ subnet: 24 }]] }, 'ipam.ranges[0][0].subnet', ['24']],
    ['subnet garbage', { ranges: [[{ subnet: 'ten/8' }]] }, 'ipam.ranges[0][0].subnet', ['ten']],
    ['subnet without prefix', { ranges: [[{ subnet: '10.0.0.0' }]] }, 'ipam.ranges[0][0].subnet', ['10.0.0.0', 'no prefix']],
    ['subnet leading zeros', { ranges: [[{ subnet: '10.0.0.0/024' }]] }, 'ipam.ranges[0][0].subnet', ['024']],
    ['subnet /33', { ranges: [[{ subnet: '10.0.0.0/33' }]] }, 'ipam.ranges[0][0].subnet', ['/33']],
    ['subnet /129', { ranges: [[{ subnet: 'fd00::/129' }]] }, 'ipam.ranges[0][0].subnet', ['/129']],
    ['host bits set', { ranges: [[{ subnet: '10.0.0.5/24' }]] }, 'ipam.ranges[0][0].subnet', ['10.0.0.5/24', 'did you mean 10.0.0.0/24']],
    ['IPv6 host bits set', { ranges: [[{ subnet: 'fd00::1/64' }]] }, 'ipam.ranges[0][0].subnet', ['fd00::1/64', 'did you mean fd00::/64']],
    ['IPv4 /31', { ranges: [[{ subnet: '10.0.0.0/31' }]] }, 'ipam.ranges[0][0].subnet', ['10.0.0.0/31', 'too small', '/30']],
    ['IPv4 /32', { ranges: [[{ subnet: '10.0.0.1/32' }]] }, 'ipam.ranges[0][0].subnet', ['10.0.0.1/32', 'too small']],
    ['IPv6 /127', { ranges: [[{ subnet: 'fd00::/127' }]] }, 'ipam.ranges[0][0].subnet', ['fd00::/127', 'too small', '/126']],
    ['IPv6 /128', { ranges: [[{ subnet: 'fd00::1/128' }]] }, 'ipam.ranges[0][0].subnet', ['fd00::1/128', 'too small']],
    ['unknown key', { ranges: [[{ subnet: '10.0.0.0/24', rangestart: '10.0.0.5' }]] }, 'ipam.ranges[0][0].rangestart', ['unknown key']],
    ['unknown key in the second range', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24', gw: '10.0.1.1' }]] }, 'ipam.ranges[0][1].gw', ['unknown key']],
    ['rangeStart outside', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }]] }, 'ipam.ranges[0][0].rangeStart', ['10.0.1.1', 'outside the subnet 10.0.0.0/24']],
    ['rangeEnd outside', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.1' }]] }, 'ipam.ranges[0][0].rangeEnd', ['10.0.1.1', 'outside the subnet 10.0.0.0/24']],
    ['rangeStart the other family', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: 'fd00::1' }]] }, 'ipam.ranges[0][0].rangeStart', ['fd00::1', 'outside']],
    ['rangeStart == network', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0' }]] }, 'ipam.ranges[0][0].rangeStart', ['10.0.0.0', 'network address']],
    ['rangeEnd == network', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.0' }]] }, 'ipam.ranges[0][0].rangeEnd', ['10.0.0.0', 'network address']],
    ['rangeEnd == broadcast', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.255' }]] }, 'ipam.ranges[0][0].rangeEnd', ['10.0.0.255', 'broadcast address']],
    ['rangeStart == broadcast', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.255' }]] }, 'ipam.ranges[0][0].rangeStart', ['10.0.0.255', 'broadcast address']],
    ['IPv6 rangeStart == network', { ranges: [[{ subnet: 'fd00::/64', rangeStart: 'fd00::' }]] }, 'ipam.ranges[0][0].rangeStart', ['fd00::', 'network address']],
    ['rangeStart > rangeEnd', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.40' }]] }, 'ipam.ranges[0][0].rangeEnd', ['10.0.0.40', 'before rangeStart 10.0.0.50']],
    ['rangeEnd < default rangeStart', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.250', rangeEnd: '10.0.0.3' }]] }, 'ipam.ranges[0][0].rangeEnd', ['10.0.0.3', '10.0.0.250']],
    ['gateway outside', { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }]] }, 'ipam.ranges[0][0].gateway', ['10.0.1.1', 'outside the subnet']],
    ['gateway == network', { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.0' }]] }, 'ipam.ranges[0][0].gateway', ['10.0.0.0', 'network address']],
    ['gateway == broadcast', { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.255' }]] }, 'ipam.ranges[0][0].gateway', ['10.0.0.255', 'broadcast']],
    ['gateway of the other family', { ranges: [[{ subnet: 'fd00::/64', gateway: '10.0.0.1' }]] }, 'ipam.ranges[0][0].gateway', ['10.0.0.1', 'outside']],
    ['bad rangeStart', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.010' }]] }, 'ipam.ranges[0][0].rangeStart', ['10.0.0.010']],
    ['bad rangeEnd', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: 'banana' }]] }, 'ipam.ranges[0][0].rangeEnd', ['banana']],
    ['bad gateway', { ranges: [[{ subnet: 'fd00::/64', gateway: 'fd00::1%eth0' }]] }, 'ipam.ranges[0][0].gateway', ['fd00::1%eth0', 'zone']],
    ['numeric gateway', { ranges: [[{ subnet: '10.0.0.0/24', gateway: 167772161 }]] }, 'ipam.ranges[0][0].gateway', ['167772161']],
    ['mapped rangeStart', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '::ffff:10.0.0.5' }]] }, 'ipam.ranges[0][0].rangeStart', ['::ffff:10.0.0.5', 'IPv4-mapped']],
    ['mixed families in one set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, 'ipam.ranges[0][1].subnet', ['fd00::/64', 'IPv6', 'IPv4', 'one address family']],
    ['mixed families, v6 first', { ranges: [[{ subnet: 'fd00::/64' }, { subnet: '10.0.0.0/24' }, { subnet: 'fd01::/64' }]] }, 'ipam.ranges[0][1].subnet', ['10.0.0.0/24']],
    ['overlap within a set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }, 'ipam.ranges[0][1]', ['10.0.0.1-10.0.0.126', 'overlaps ipam.ranges[0][0]', '10.0.0.1-10.0.0.254']],
    ['overlap within a set, same subnet', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.20' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20' }]] }, 'ipam.ranges[0][1]', ['10.0.0.20-10.0.0.254', 'ipam.ranges[0][0]']],
    ['sharing exactly one address, the later range first', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.20' }, { subnet: '10.0.0.0/24', rangeEnd: '10.0.0.20' }]] }, 'ipam.ranges[0][1]', ['10.0.0.1-10.0.0.20', 'overlaps ipam.ranges[0][0]', '10.0.0.20-10.0.0.254']],
    ['sharing exactly one address across sets', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.20' }], [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.20' }]] }, 'ipam.ranges[1][0]', ['overlaps ipam.ranges[0][0]']],
    ['sharing exactly one address across sets, the later range first', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.20' }], [{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.20' }]] }, 'ipam.ranges[1][0]', ['overlaps ipam.ranges[0][0]']],
    ['overlap across sets', { ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.5.0/24' }]] }, 'ipam.ranges[1][0]', ['10.0.5.1-10.0.5.254', 'overlaps ipam.ranges[0][0]']],
    ['overlap across sets, later range', { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24' }, { subnet: '10.1.0.0/24', rangeStart: '10.1.0.200' }]] }, 'ipam.ranges[1][1]', ['overlaps ipam.ranges[0][0]']],
    ['IPv6 overlap across sets', { ranges: [[{ subnet: 'fd00::/48' }], [{ subnet: 'fd00:0:0:7::/64' }]] }, 'ipam.ranges[1][0]', ['overlaps ipam.ranges[0][0]']],
    ['17 range sets', { ranges: Array.from({ length: 17 }, (_, i) => [{ subnet: `10.${i}.0.0/24` }]) }, 'ipam.ranges', ['17', 'at most 16']],
    ['65 ranges in a set', { ranges: [Array.from({ length: 65 }, (_, i) => ({ subnet: `10.0.${i}.0/24` }))] }, 'ipam.ranges[0]', ['65', 'at most 64']],
  ])('%s', (_name, ipam, field, values) => {
    invalid(() => parseIpamConfig(ipam), field, ...values);
  });

  it('accepts the limits: 16 sets and 64 ranges in a set', () => {
    expect(ok({ ranges: Array.from({ length: 16 }, (_, i) => [{ subnet: `10.${i}.0.0/24` }]) }).rangeSets).toHaveLength(16);
    expect(ok({ ranges: [Array.from({ length: 64 }, (_, i) => ({ subnet: `10.0.${i}.0/24` }))] }).rangeSets[0]!.ranges).toHaveLength(64);
  });

  it('touching but not overlapping ranges are fine', () => {
    const config = ok(ranges([{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.19' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20' }]));
    expect(config.rangeSets[0]!.ranges.map(describeRange)).toEqual(['10.0.0.1-10.0.0.19', '10.0.0.20-10.0.0.254']);
  });
});

describe('parseIpamConfig: routes', () => {
  const base = ranges([{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]);

  it('keeps routes as written', () => {
    const routes = [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.0.0.254' }, { dst: '::/0', gw: 'fd00::1' }];
    expect(ok({ ...base, routes }).routes).toEqual(routes);
  });

  it.each<[string, unknown, string, string[]]>([
    ['not an array', { dst: '0.0.0.0/0' }, 'ipam.routes', ['must be an array']],
    ['item not an object', ['0.0.0.0/0'], 'ipam.routes[0]', ['"0.0.0.0/0"']],
    ['dst missing', [{ gw: '10.0.0.1' }], 'ipam.routes[0].dst', ['expected a CIDR string']],
    ['dst with host bits', [{ dst: '0.0.0.0/0' }, { dst: '192.168.1.1/16' }], 'ipam.routes[1].dst', ['192.168.1.1/16', 'did you mean 192.168.0.0/16']],
    ['dst without prefix', [{ dst: '192.168.0.0' }], 'ipam.routes[0].dst', ['192.168.0.0']],
    ['dst /33', [{ dst: '192.168.0.0/33' }], 'ipam.routes[0].dst', ['/33']],
    ['gw garbage', [{ dst: '0.0.0.0/0', gw: 'router' }], 'ipam.routes[0].gw', ['router']],
    ['gw leading zero', [{ dst: '0.0.0.0/0', gw: '10.0.0.01' }], 'ipam.routes[0].gw', ['10.0.0.01']],
    ['gw a CIDR', [{ dst: '0.0.0.0/0', gw: '10.0.0.1/24' }], 'ipam.routes[0].gw', ['10.0.0.1/24']],
    ['gw of the other family', [{ dst: '0.0.0.0/0', gw: 'fd00::1' }], 'ipam.routes[0].gw', ['fd00::1', '0.0.0.0/0']],
    ['IPv6 dst, IPv4 gw', [{ dst: '::/0', gw: '10.0.0.1' }], 'ipam.routes[0].gw', ['10.0.0.1', '::/0']],
  ])('%s', (_name, routes, field, values) => {
    bad({ ...base, routes }, field, ...values);
  });
});

describe('parseIpamConfig: dns', () => {
  const base = ranges([{ subnet: '10.0.0.0/24' }]);

  it('passes every field through', () => {
    const dns = { nameservers: ['10.0.0.53', 'fd00::53'], domain: 'cluster.local', search: ['a.svc', 'b.svc'], options: ['ndots:5'] };
    expect(ok({ ...base, dns }).dns).toEqual(dns);
  });

  it('keeps only the keys given', () => {
    expect(ok({ ...base, dns: {} }).dns).toEqual({});
    expect(ok({ ...base, dns: { domain: 'x' } }).dns).toEqual({ domain: 'x' });
    expect(ok({ ...base, dns: { nameservers: [] } }).dns).toEqual({ nameservers: [] });
  });

  it.each<[string, unknown, string, string[]]>([
    ['not an object', ['10.0.0.53'], 'ipam.dns', ['["10.0.0.53"]']],
    ['nameservers a string', { nameservers: '10.0.0.53' }, 'ipam.dns.nameservers', ['array of strings']],
    ['nameservers with a number', { nameservers: ['10.0.0.53', 53] }, 'ipam.dns.nameservers', ['array of strings']],
    ['bad nameserver', { nameservers: ['10.0.0.53', '10.0.0.530'] }, 'ipam.dns.nameservers[1]', ['10.0.0.530']],
    ['nameserver with a port', { nameservers: ['10.0.0.53:53'] }, 'ipam.dns.nameservers[0]', ['10.0.0.53:53']],
    ['search a string', { search: 'svc' }, 'ipam.dns.search', ['array of strings']],
    ['options with null', { options: [null] }, 'ipam.dns.options', ['array of strings']],
    ['domain a number', { domain: 5 }, 'ipam.dns.domain', ['must be a string']],
  ])('%s', (_name, dns, field, values) => {
    bad({ ...base, dns }, field, ...values);
  });
});

describe('parseIpamConfig: socket, timeout, holdFor, defaultKind', () => {
  const base = ranges([{ subnet: '10.0.0.0/24' }]);

  it.each(['/run/r.sock', '/x', `/${'a'.repeat(106)}`])('socket %s accepted', (socket) => {
    expect(ok({ ...base, socket }).socket).toBe(socket);
  });

  it.each<[string, unknown, string]>([
    ['relative', 'run/r.sock', '"run/r.sock"'],
    ['dot-relative', './r.sock', '"./r.sock"'],
    ['empty', '', '""'],
    ['108 bytes', `/${'a'.repeat(107)}`, 'aaaa'],
    ['107 characters but more bytes', `/${'é'.repeat(60)}`, 'é'],
    ['NUL', '/run/r\u0000.sock', '/run/r'],
    ['number', 5, '5'],
    ['null', null, 'null'],
  ])('socket %s rejected', (_name, socket, shown) => {
    bad({ ...base, socket }, 'ipam.socket', shown, 'absolute path of at most 107 bytes');
  });

  it.each<[string, number]>([
    ['100ms', 100],
    ['500ms', 500],
    ['5s', 5000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['120s', 120_000],
    ['0.25s', 250],
  ])('timeout %s = %i ms', (timeout, ms) => {
    expect(ok({ ...base, timeout }).timeoutMs).toBe(ms);
  });

  it.each<[unknown, string]>([
    ['99ms', 'out of bounds'],
    ['0s', 'out of bounds'],
    ['121s', 'out of bounds'],
    ['3m', 'out of bounds'],
    ['1h', 'out of bounds'],
    ['5', 'not a duration'],
    ['5 s', 'not a duration'],
    ['5S', 'not a duration'],
    ['-5s', 'not a duration'],
    ['5sec', 'not a duration'],
    ['1.s', 'not a duration'],
    ['.5s', 'not a duration'],
    ['5s5', 'not a duration'],
    ['1h30m', 'not a duration'],
    ['', 'not a duration'],
    [5000, 'not a duration'],
    [null, 'not a duration'],
  ])('timeout %j rejected: %s', (timeout, problem) => {
    bad({ ...base, timeout }, 'ipam.timeout', JSON.stringify(timeout), problem);
  });

  it.each<[string, number]>([
    ['1s', 1000],
    ['1000ms', 1000],
    ['30m', 1_800_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['3650d', 3650 * 86_400_000],
    ['1.5h', 5_400_000],
  ])('holdFor %s = %i ms', (holdFor, ms) => {
    expect(ok({ ...base, holdFor }).holdForMs).toBe(ms);
  });

  it.each<[unknown, string]>([
    ['999ms', 'out of bounds'],
    ['0.5s', 'out of bounds'],
    ['3651d', 'out of bounds'],
    ['100000h', 'out of bounds'],
    ['forever', 'not a duration'],
    ['24', 'not a duration'],
    ['1w', 'not a duration'],
    [86400, 'not a duration'],
    [false, 'not a duration'],
    [['5s'], 'not a duration'],
    [{ toString: '5s' }, 'not a duration'],
  ])('holdFor %j rejected: %s', (holdFor, problem) => {
    bad({ ...base, holdFor }, 'ipam.holdFor', JSON.stringify(holdFor), problem);
  });

  it('parseDuration bounds are inclusive and the result is rounded', () => {
    expect(parseDuration('10ms', 'f', 10, 20)).toBe(10);
    expect(parseDuration('20ms', 'f', 10, 20)).toBe(20);
    expect(parseDuration('10.4ms', 'f', 10, 20)).toBe(10);
    expect(parseDuration('10.6ms', 'f', 10, 20)).toBe(11);
    invalid(() => parseDuration('9.9ms', 'f', 10, 20), 'f', '"9.9ms"', '10 ms to 20 ms');
    invalid(() => parseDuration('20.1ms', 'f', 10, 20), 'f', '"20.1ms"');
  });

  it.each(['stateless', 'stateful'] as const)('defaultKind %s', (defaultKind) => {
    expect(ok({ ...base, defaultKind }).defaultKind).toBe(defaultKind);
  });

  it.each<[unknown, string]>([
    ['Stateful', '"Stateful"'],
    ['sticky', '"sticky"'],
    ['', '""'],
    [1, '1'],
  ])('defaultKind %j rejected', (defaultKind, shown) => {
    bad({ ...base, defaultKind }, 'ipam.defaultKind', shown, '"stateless" or "stateful"');
  });
});

describe('parseIpamConfig: reserved', () => {
  const base = ranges(
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.200' }, { subnet: '10.0.1.0/24' }],
    [{ subnet: 'fd00::/64' }],
  );
  const reserved = (list: unknown) => ok({ ...base, reserved: list }).reserved;

  it.each<[string, unknown, Array<[string, string]>]>([
    ['single IP', '10.0.0.50', [['10.0.0.50', '10.0.0.50']]],
    ['range', '10.0.0.60-10.0.0.69', [['10.0.0.60', '10.0.0.69']]],
    ['range with spaces', '10.0.0.60 - 10.0.0.69', [['10.0.0.60', '10.0.0.69']]],
    ['single-address range', '10.0.0.60-10.0.0.60', [['10.0.0.60', '10.0.0.60']]],
    ['CIDR', '10.0.1.16/28', [['10.0.1.16', '10.0.1.31']]],
    ['/32 CIDR', '10.0.1.16/32', [['10.0.1.16', '10.0.1.16']]],
    ['range at the edges of rangeStart..rangeEnd', '10.0.0.10-10.0.0.200', [['10.0.0.10', '10.0.0.200']]],
    ['IPv6 IP', 'fd00::50', [['fd00::50', 'fd00::50']]],
    ['IPv6 range', 'fd00::60-fd00::6f', [['fd00::60', 'fd00::6f']]],
    ['IPv6 CIDR', 'fd00::100/120', [['fd00::100', 'fd00::1ff']]],
    ['IPv6 at the very end', 'fd00::ffff:ffff:ffff:ffff', [['fd00::ffff:ffff:ffff:ffff', 'fd00::ffff:ffff:ffff:ffff']]],
  ])('%s', (_name, entry, expected) => {
    const list = reserved([entry]);
    expect(list.map((r) => [formatValue(r.family, r.start), formatValue(r.family, r.end)])).toEqual(expected);
    expect(list[0]!.entry).toBe(entry);
    expect(list[0]!.group).toBeUndefined();
    expect(list[0]!.note).toBeUndefined();
    expect(list[0]!.family).toBe((entry as string).includes(':') ? 6 : 4);
  });

  it('object form with group and note, in the order given', () => {
    const list = reserved([
      { entry: '10.0.0.100-10.0.0.109', group: 'db', note: 'postgres replicas' },
      '10.0.0.50',
      { entry: 'fd00::5', group: 'db-6.v_2' },
      { entry: '10.0.0.40' },
    ]);
    expect(list).toEqual([
      { family: 4, start: v('10.0.0.100'), end: v('10.0.0.109'), entry: '10.0.0.100-10.0.0.109', group: 'db', note: 'postgres replicas' },
      { family: 4, start: v('10.0.0.50'), end: v('10.0.0.50'), entry: '10.0.0.50', group: undefined, note: undefined },
      { family: 6, start: v('fd00::5'), end: v('fd00::5'), entry: 'fd00::5', group: 'db-6.v_2', note: undefined },
      { family: 4, start: v('10.0.0.40'), end: v('10.0.0.40'), entry: '10.0.0.40', group: undefined, note: undefined },
    ]);
  });

  it('adjacent entries do not overlap; an IPv4 and an IPv6 entry with equal numbers do not either', () => {
    expect(reserved(['10.0.0.20-10.0.0.29', '10.0.0.30-10.0.0.39', '10.0.0.19'])).toHaveLength(3);
    const mixed = ok({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '::/96' }]], reserved: ['10.0.0.20', '::a00:14'] });
    expect(mixed.reserved.map((r) => [r.family, r.start])).toEqual([
      [4, 0x0a000014n],
      [6, 0x0a000014n],
    ]);
  });

  it.each<[string, unknown, string, string[]]>([
    ['not an array', '10.0.0.50', 'ipam.reserved', ['must be an array']],
    ['number entry', [50], 'ipam.reserved[0]', ['50', 'must be a JSON object']],
    ['null entry', ['10.0.0.50', null], 'ipam.reserved[1]', ['null']],
    ['bad IP', ['10.0.0.050'], 'ipam.reserved[0]', ['10.0.0.050']],
    ['garbage', ['db-server'], 'ipam.reserved[0]', ['db']],
    ['zone', ['fd00::5%eth0'], 'ipam.reserved[0]', ['fd00::5%eth0']],
    ['bad range end', ['10.0.0.50-10.0.0.5x'], 'ipam.reserved[0]', ['10.0.0.5x']],
    ['range with empty end', ['10.0.0.50-'], 'ipam.reserved[0]', ['""']],
    ['range with three parts', ['10.0.0.50-10.0.0.60-10.0.0.70'], 'ipam.reserved[0]', ['10.0.0.60-10.0.0.70']],
    ['reversed range', ['10.0.0.60-10.0.0.50'], 'ipam.reserved[0]', ['10.0.0.60-10.0.0.50', 'ends before it starts']],
    ['mixed families', ['10.0.0.60-fd00::5'], 'ipam.reserved[0]', ['10.0.0.60-fd00::5', 'mixes IPv4 and IPv6']],
    ['CIDR with host bits', ['10.0.1.17/28'], 'ipam.reserved[0]', ['10.0.1.17/28', 'did you mean 10.0.1.16/28']],
    ['CIDR /33', ['10.0.1.16/33'], 'ipam.reserved[0]', ['/33']],
    ['outside every range', ['10.0.2.5'], 'ipam.reserved[0]', ['10.0.2.5', 'does not lie inside one allocatable range', '10.0.0.10-10.0.0.200']],
    ['inside the subnet but before rangeStart', ['10.0.0.5'], 'ipam.reserved[0]', ['10.0.0.5', 'does not lie inside']],
    ['inside the subnet but after rangeEnd', ['10.0.0.201'], 'ipam.reserved[0]', ['10.0.0.201', 'does not lie inside']],
    ['straddles rangeEnd', ['10.0.0.195-10.0.0.205'], 'ipam.reserved[0]', ['10.0.0.195-10.0.0.205', 'does not lie inside']],
    ['spans two ranges', ['10.0.0.150-10.0.1.50'], 'ipam.reserved[0]', ['10.0.0.150-10.0.1.50', 'does not lie inside one']],
    ['the network address', ['10.0.1.0'], 'ipam.reserved[0]', ['10.0.1.0', 'does not lie inside']],
    ['the broadcast address', ['10.0.1.255'], 'ipam.reserved[0]', ['10.0.1.255', 'does not lie inside']],
    ['a whole subnet', ['10.0.1.0/24'], 'ipam.reserved[0]', ['10.0.1.0-10.0.1.255']],
    ['IPv6 outside', ['fd01::5'], 'ipam.reserved[0]', ['fd01::5']],
    ['covers the gateway', ['10.0.1.1'], 'ipam.reserved[0]', ['10.0.1.1', 'covers the gateway 10.0.1.1']],
    ['range covers the gateway', ['10.0.1.0/28'], 'ipam.reserved[0]', ['does not lie inside']],
    ['range covers the gateway inside the range', ['10.0.1.1-10.0.1.9'], 'ipam.reserved[0]', ['10.0.1.1-10.0.1.9', 'covers the gateway 10.0.1.1']],
    ['IPv6 covers the gateway', ['fd00::1-fd00::ff'], 'ipam.reserved[0]', ['covers the gateway fd00::1']],
    ['overlaps an earlier entry', ['10.0.0.50-10.0.0.59', '10.0.0.55'], 'ipam.reserved[1]', ['"10.0.0.55" overlaps "10.0.0.50-10.0.0.59"']],
    ['overlaps a later entry (names the later index)', ['10.0.0.55', '10.0.0.50-10.0.0.59'], 'ipam.reserved[1]', ['10.0.0.55', '10.0.0.50-10.0.0.59']],
    ['same IP twice', ['10.0.0.55', '10.0.0.60', '10.0.0.55'], 'ipam.reserved[2]', ['"10.0.0.55" overlaps "10.0.0.55"']],
    ['CIDR overlaps range', ['10.0.1.16/28', { entry: '10.0.1.31-10.0.1.40', group: 'g' }], 'ipam.reserved[1]', ['10.0.1.31-10.0.1.40', '10.0.1.16/28']],
    ['nested in a wide entry, not adjacent in order', ['10.0.0.20-10.0.0.100', '10.0.0.30', '10.0.0.90'], 'ipam.reserved[1]', ['10.0.0.30']],
    ['IPv6 overlap', ['fd00::10-fd00::20', 'fd00::20-fd00::30'], 'ipam.reserved[1]', ['fd00::20-fd00::30', 'fd00::10-fd00::20']],
    ['object without entry', [{ group: 'db' }], 'ipam.reserved[0].entry', ['nothing']],
    ['object entry a number', [{ entry: 5 }], 'ipam.reserved[0].entry', ['5']],
    ['object with a bad entry', [{ entry: '10.0.0.5.5' }], 'ipam.reserved[0].entry', ['10.0.0.5.5']],
    ['array item', [['10.0.0.50']], 'ipam.reserved[0]', ['["10.0.0.50"]']],
    ['object outside', [{ entry: '10.9.0.5', group: 'db' }], 'ipam.reserved[0]', ['10.9.0.5']],
    ['group with a space', [{ entry: '10.0.0.50', group: 'my db' }], 'ipam.reserved[0].group', ['"my db"', 'not a valid group name']],
    ['group starting with a dash', [{ entry: '10.0.0.50', group: '-db' }], 'ipam.reserved[0].group', ['"-db"']],
    ['group with a slash', [{ entry: '10.0.0.50', group: 'a/b' }], 'ipam.reserved[0].group', ['"a/b"']],
    ['empty group', [{ entry: '10.0.0.50', group: '' }], 'ipam.reserved[0].group', ['""']],
    ['group of 64 characters', [{ entry: '10.0.0.50', group: 'g'.repeat(64) }], 'ipam.reserved[0].group', ['gggg']],
    ['group a number', [{ entry: '10.0.0.50', group: 7 }], 'ipam.reserved[0].group', ['7']],
    ['group null', [{ entry: '10.0.0.50', group: null }], 'ipam.reserved[0].group', ['null']],
    ['note a number', [{ entry: '10.0.0.50', note: 7 }], 'ipam.reserved[0].note', ['at most 256']],
    ['note too long', [{ entry: '10.0.0.50', note: 'n'.repeat(257) }], 'ipam.reserved[0].note', ['at most 256']],
    ['unknown key (typo of group)', [{ entry: '10.0.0.50', grup: 'db' }], 'ipam.reserved[0].grup', ['unknown key']],
  ])('%s', (_name, list, field, values) => {
    bad({ ...base, reserved: list }, field, ...values);
  });

  it('accepts the longest group and note', () => {
    const [entry] = reserved([{ entry: '10.0.0.50', group: `a${'b'.repeat(62)}`, note: 'n'.repeat(256) }]);
    expect(entry!.group).toHaveLength(63);
    expect(entry!.note).toHaveLength(256);
  });

  it('a gateway outside start..end does not block the reserved entries around it', () => {
    const config = ok({
      ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', gateway: '10.0.0.1' }]],
      reserved: ['10.0.0.10-10.0.0.254'],
    });
    expect(config.reserved).toHaveLength(1);
  });

  it('an explicit gateway inside the range is what reserved entries must avoid', () => {
    const ipam = { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.254' }]] };
    expect(ok({ ...ipam, reserved: ['10.0.0.1-10.0.0.253'] }).reserved).toHaveLength(1);
    bad({ ...ipam, reserved: ['10.0.0.250-10.0.0.254'] }, 'ipam.reserved[0]', 'covers the gateway 10.0.0.254');
  });
});

describe('exported helpers', () => {
  it.each(['a', 'net-1', 'my_net.v2', 'A'.repeat(128), '0net'])('network name %s accepted', (name) => {
    expect(parseNetworkName(name)).toBe(name);
  });

  it.each<[unknown, string]>([
    ['', '""'],
    ['-net', '"-net"'],
    ['.net', '".net"'],
    ['my net', '"my net"'],
    ['a/b', '"a/b"'],
    ['A'.repeat(129), 'AAAA'],
    [null, 'null'],
    [undefined, 'nothing'],
    [5, '5'],
  ])('network name %j rejected', (name, shown) => {
    invalid(() => parseNetworkName(name), 'name', shown, 'not a valid network name');
    invalid(() => parseNetworkName(name, 'x.name'), 'x.name', shown);
  });

  it('parseGroupName and parseKind name their field', () => {
    expect(parseGroupName('db', 'f')).toBe('db');
    invalid(() => parseGroupName('d b', 'the.field'), 'the.field', '"d b"');
    expect(parseKind('stateful', 'f')).toBe('stateful');
    invalid(() => parseKind('STATEFUL', 'the.kind'), 'the.kind', '"STATEFUL"');
  });

  it('parseReservedEntry', () => {
    expect(parseReservedEntry('10.0.0.5', 'f')).toEqual({ family: 4, start: v('10.0.0.5'), end: v('10.0.0.5') });
    expect(parseReservedEntry('10.0.0.0/30', 'f')).toEqual({ family: 4, start: v('10.0.0.0'), end: v('10.0.0.3') });
    expect(parseReservedEntry('fd00::1-fd00::9', 'f')).toEqual({ family: 6, start: v('fd00::1'), end: v('fd00::9') });
    invalid(() => parseReservedEntry(undefined, 'the.entry'), 'the.entry', 'nothing');
  });

  it('checkReservedPlacement', () => {
    const { rangeSets } = ok(ranges([{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10' }], [{ subnet: 'fd00::/120' }]));
    expect(checkReservedPlacement({ family: 4, start: v('10.0.0.10'), end: v('10.0.0.254') }, rangeSets)).toBeUndefined();
    expect(checkReservedPlacement({ family: 4, start: v('10.0.0.9'), end: v('10.0.0.9') }, rangeSets)).toMatch(/^10\.0\.0\.9 does not lie inside/);
    expect(checkReservedPlacement({ family: 6, start: v('fd00::1'), end: v('fd00::1') }, rangeSets)).toBe('fd00::1 covers the gateway fd00::1');
    expect(checkReservedPlacement({ family: 6, start: v('10.0.0.20'), end: v('10.0.0.20') }, rangeSets)).toMatch(/does not lie inside/);
  });

  it('describeRange and describeInterval', () => {
    const { rangeSets } = ok(ranges([{ subnet: '10.0.0.0/24' }]));
    expect(describeRange(rangeSets[0]!.ranges[0]!)).toBe('10.0.0.1-10.0.0.254');
    expect(describeInterval({ family: 4, start: 5n, end: 5n })).toBe('0.0.0.5');
    expect(describeInterval({ family: 6, start: 5n, end: 6n })).toBe('::5-::6');
  });

  it('show', () => {
    expect(show(undefined)).toBe('nothing');
    expect(show('x')).toBe('"x"');
    expect(show({ a: 1 })).toBe('{"a":1}');
    expect(show('y'.repeat(200))).toBe(`"${'y'.repeat(79)}…`);
  });
});

describe('parseIpamConfigCached', () => {
  const ipam = (n: number) => ({ type: 'reservoir', ranges: [[{ subnet: `10.${n >> 8}.${n & 255}.0/24` }]], note: `cache-test-${process.pid}` });

  it('answers a JSON-equal ipam with the very config it parsed, and a different one with its own', () => {
    const first = parseIpamConfigCached(ipam(1));
    expect(parseIpamConfigCached(JSON.parse(JSON.stringify(ipam(1))))).toBe(first);
    expect(parseIpamConfigCached(ipam(2))).not.toBe(first);
    expect(parseIpamConfigCached(ipam(2))).toEqual(parseIpamConfig(ipam(2)));
  });

  it('keeps the last 64 configs: the oldest goes when the 65th arrives', () => {
    const oldest = parseIpamConfigCached(ipam(1000));
    for (let n = 1001; n < 1064; n++) parseIpamConfigCached(ipam(n)); // 64 entries now, the oldest first
    expect(parseIpamConfigCached(ipam(1000))).toBe(oldest);
    parseIpamConfigCached(ipam(1064)); // the 65th: the oldest entry goes
    const again = parseIpamConfigCached(ipam(1000));
    expect(again).not.toBe(oldest);
    expect(again).toEqual(oldest);
  });

  it('never keeps a failure: the same bad ipam fails every time with the same error', () => {
    const broken = { type: 'reservoir', ranges: [[{ subnet: '10.0.0.1/24' }]] };
    const first = invalid(() => parseIpamConfigCached(broken), 'ipam.ranges[0][0].subnet');
    expect(invalid(() => parseIpamConfigCached(broken), 'ipam.ranges[0][0].subnet')).toBe(first);
  });
});
