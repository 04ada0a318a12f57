// The pure rules for a network whose config changed under its leases: which range set a lease
// belongs to (by content), which leases no longer fit and why, where misfits can be, and how a
// request's config differs from the file's.
import { describe, expect, it } from 'vitest';
import { configDifferences, fitOf, misfitSpans, rangeSetKey } from '../../daemon/network-change.js';
import { formatValue, parseIp } from '../../src/address.js';
import { parseIpamConfig } from '../../src/config.js';

const ip = (text: string) => parseIp(text);
const fit = (ipam: Record<string, unknown>, text: string) => {
  const { family, value } = ip(text);
  return fitOf(parseIpamConfig(ipam), family, value);
};

describe('fitOf: the range set of a lease follows its address, not a position', () => {
  const v4 = [{ subnet: '10.78.0.0/24' }];
  const v6 = [{ subnet: 'fd78::/64' }];

  it('finds the set that holds the address wherever the set moved', () => {
    expect(fit({ ranges: [v4, v6] }, '10.78.0.3')).toMatchObject({ fits: true, setIndex: 0 });
    expect(fit({ ranges: [v6, v4] }, '10.78.0.3')).toMatchObject({ fits: true, setIndex: 1 });
    expect(fit({ ranges: [v6, v4] }, 'fd78::3')).toMatchObject({ fits: true, setIndex: 0 });
    const inserted = fit({ ranges: [[{ subnet: 'fd79::/64' }], v6, v4] }, '10.78.0.3');
    expect(inserted.fits && inserted.setIndex).toBe(2);
    expect(inserted.fits && inserted.range.subnet.prefix).toBe(24);
    expect(inserted.fits && formatValue(4, inserted.range.gateway!)).toBe('10.78.0.1');
  });

  it('picks the range of a set with several ranges', () => {
    const two = { ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/16', gateway: '10.2.0.254' }]] };
    const found = fit(two, '10.2.3.4');
    expect(found.fits && found.range.subnet.prefix).toBe(16);
    expect(found.fits && formatValue(4, found.range.gateway!)).toBe('10.2.0.254');
  });

  it('a renumbered subnet: no subnet of the config holds the address', () => {
    const moved = fit({ ranges: [[{ subnet: '10.81.0.0/24' }]] }, '10.80.0.2');
    expect(moved).toEqual({ fits: false, reason: 'it lies in no subnet of the config (10.81.0.0/24)' });
  });

  it('a shrunk range: the address is in the subnet but outside the allocatable range', () => {
    const shrunk = fit({ ranges: [[{ subnet: '10.80.0.0/24', rangeStart: '10.80.0.10', rangeEnd: '10.80.0.20' }]] }, '10.80.0.30');
    expect(shrunk).toEqual({ fits: false, reason: 'it lies in 10.80.0.0/24 but outside its allocatable range 10.80.0.10-10.80.0.20' });
    expect(fit({ ranges: [[{ subnet: '10.80.0.0/24', rangeStart: '10.80.0.10', rangeEnd: '10.80.0.20' }]] }, '10.80.0.20').fits).toBe(true);
  });

  it('a gateway moved onto the address', () => {
    expect(fit({ ranges: [[{ subnet: '10.82.0.0/24', gateway: '10.82.0.3' }]] }, '10.82.0.3')).toEqual({
      fits: false,
      reason: 'it is now the gateway of 10.82.0.0/24',
    });
    expect(fit({ ranges: [[{ subnet: '10.82.0.0/24', gateway: '10.82.0.3' }]] }, '10.82.0.2').fits).toBe(true);
  });

  it('an address of a family the config no longer has', () => {
    expect(fit({ ranges: [[{ subnet: '10.78.0.0/24' }]] }, 'fd78::2')).toEqual({ fits: false, reason: 'it lies in no subnet of the config (10.78.0.0/24)' });
  });
});

describe('rangeSetKey: a set is named by its ranges', () => {
  const config = (ranges: unknown) => parseIpamConfig({ ranges });
  it('is the same wherever the set stands, and for its ranges in any order', () => {
    const a = config([[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd01::/64' }]]);
    const b = config([[{ subnet: 'fd01::/64' }], [{ subnet: '10.1.0.0/24' }]]);
    expect(rangeSetKey(a.rangeSets[0]!)).toBe(rangeSetKey(b.rangeSets[1]!));
    expect(rangeSetKey(a.rangeSets[1]!)).toBe(rangeSetKey(b.rangeSets[0]!));
    const c = config([[{ subnet: '10.2.0.0/24' }, { subnet: '10.1.0.0/24' }]]);
    const d = config([[{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24' }]]);
    expect(rangeSetKey(c.rangeSets[0]!)).toBe(rangeSetKey(d.rangeSets[0]!));
  });

  it('differs for different ranges', () => {
    const a = config([[{ subnet: '10.1.0.0/24' }]]);
    const b = config([[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.0.100' }]]);
    expect(rangeSetKey(a.rangeSets[0]!)).not.toBe(rangeSetKey(b.rangeSets[0]!));
  });
});

describe('misfitSpans: every address a misfit can have', () => {
  const spans = (ranges: unknown) =>
    misfitSpans(parseIpamConfig({ ranges })).map((s) => `${formatValue(s.family, s.start)}-${formatValue(s.family, s.end)}`);

  it('the gaps around and between the ranges of each family, and gateways inside a range', () => {
    expect(spans([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.15' }, { subnet: '10.0.1.0/24' }]])).toEqual([
      '0.0.0.0-10.0.0.9',
      '10.0.0.21-10.0.1.0',
      '10.0.1.255-255.255.255.255',
      '10.0.0.15-10.0.0.15',
      '10.0.1.1-10.0.1.1',
      '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    ]);
  });

  it('agrees with fitOf: the edges of every span misfit, the addresses of a range fit but its gateway', () => {
    const ipam = { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.15' }], [{ subnet: 'fd00::/120', gateway: 'fd00::5' }]] };
    const config = parseIpamConfig(ipam);
    for (const span of misfitSpans(config)) {
      for (const x of [span.start, span.end]) expect(fitOf(config, span.family, x).fits).toBe(false);
    }
    for (let last = 10; last <= 20; last++) expect(fitOf(config, 4, ip(`10.0.0.${last}`).value).fits).toBe(last !== 15);
  });
});

describe('configDifferences: how a request differs from the file', () => {
  it('names each differing key with both values; the order of keys does not count', () => {
    const file = { type: 'reservoir', ranges: [[{ subnet: '10.77.0.0/24', gateway: '10.77.0.1' }]], reserved: ['10.77.0.2-10.77.0.4'] };
    expect(configDifferences(file, { ranges: [[{ gateway: '10.77.0.1', subnet: '10.77.0.0/24' }]], reserved: ['10.77.0.2-10.77.0.4'], type: 'reservoir' })).toEqual([]);
    expect(configDifferences(file, { type: 'reservoir', ranges: file.ranges })).toEqual([
      'ipam.reserved: the file has ["10.77.0.2-10.77.0.4"], the request nothing',
    ]);
    expect(configDifferences(file, { ...file, timeout: '9s', ranges: [[{ subnet: '10.78.0.0/24' }]] })).toEqual([
      'ipam.ranges: the file has [[{"subnet":"10.77.0.0/24","gateway":"10.77.0.1"}]], the request [[{"subnet":"10.78.0.0/24"}]]',
      'ipam.timeout: the file has nothing, the request "9s"',
    ]);
  });
});
