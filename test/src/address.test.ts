import { describe, expect, it } from 'vitest';
import {
  AddressSyntaxError,
  type Cidr,
  type Family,
  cidrContains,
  cidrFirst,
  cidrLast,
  cidrSize,
  cidrsOverlap,
  familyBits,
  formatCidr,
  formatIp,
  formatIpWithPrefix,
  formatValue,
  fromKey,
  ipEquals,
  parseCidr,
  parseIp,
  parseIpWithPrefix,
  prefixMask,
  toKey,
} from '../../src/address.js';
import { rng } from '../support/random.js';


function randomBig(next: () => number, bits: number): bigint {
  let v = 0n;
  for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(Math.floor(next() * 65536));
  return v & ((1n << BigInt(bits)) - 1n);
}

function syntaxError(fn: () => unknown): AddressSyntaxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AddressSyntaxError);
    return err as AddressSyntaxError;
  }
  throw new Error('expected an AddressSyntaxError, nothing was thrown');
}

describe('parseIp: valid', () => {
  it.each<[string, Family, bigint]>([
    ['0.0.0.0', 4, 0n],
    ['10.0.0.1', 4, 0x0a000001n],
    ['10.0.0.10', 4, 0x0a00000an],
    ['192.168.1.255', 4, 0xc0a801ffn],
    ['255.255.255.255', 4, 0xffffffffn],
    ['1.2.3.4', 4, 0x01020304n],
    ['100.64.0.0', 4, 0x64400000n],
    ['::', 6, 0n],
    ['::1', 6, 1n],
    ['fe80::1', 6, 0xfe800000000000000000000000000001n],
    ['FE80::1', 6, 0xfe800000000000000000000000000001n],
    ['2001:db8::', 6, 0x20010db8000000000000000000000000n],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6, 0x20010db8000000000000000000000001n],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6, (1n << 128n) - 1n],
    ['1:2:3:4:5:6:7:8', 6, 0x00010002000300040005000600070008n],
    ['1::', 6, 1n << 112n],
    ['64:ff9b::10.0.0.1', 6, 0x0064ff9b00000000000000000a000001n],
    ['1:2:3:4:5:6:1.2.3.4', 6, 0x00010002000300040005000601020304n],
    // IPv4-compatible (deprecated) is not IPv4-mapped: it is ::a00:1, same as the hex form.
    ['::10.0.0.1', 6, 0x0a000001n],
    ['::a00:1', 6, 0x0a000001n],
    // SIIT's IPv4-translated prefix ::ffff:0:0/96 is not ::ffff:0:0/96-mapped either.
    ['::ffff:0:10.0.0.1', 6, 0xffff00000a000001n],
  ])('%s -> IPv%i %s', (text, family, value) => {
    expect(parseIp(text)).toEqual({ family, value });
  });
});

describe('parseIp: rejected', () => {
  it.each<[string, RegExp]>([
    // leading zeros: octal in inet_aton, decimal elsewhere; ambiguous, so refused
    ['010.0.0.1', /no leading zeros/],
    ['10.0.0.01', /no leading zeros/],
    ['10.00.0.1', /no leading zeros/],
    ['00.0.0.0', /no leading zeros/],
    ['64:ff9b::010.0.0.1', /010\.0\.0\.1.*no leading zeros/],
    ['::1.2.3.04', /1\.2\.3\.04/],
    // zones
    ['fe80::1%eth0', /zone index/],
    ['fe80::1%', /zone index/],
    ['fe80::1%25eth0', /zone index/],
    // IPv4-mapped: suggest the IPv4 form
    ['::ffff:10.0.0.1', /IPv4-mapped.*10\.0\.0\.1 instead/],
    ['::ffff:a00:1', /IPv4-mapped.*10\.0\.0\.1 instead/],
    ['::FFFF:192.168.0.1', /IPv4-mapped.*192\.168\.0\.1 instead/],
    // out of range / wrong shape IPv4
    ['256.0.0.0', /dotted decimal/],
    ['1.2.3.256', /dotted decimal/],
    ['1.2.3', /dotted decimal/],
    ['1.2.3.4.5', /dotted decimal/],
    ['1..2.3', /dotted decimal/],
    ['1.2.3.4.', /dotted decimal/],
    ['.1.2.3.4', /dotted decimal/],
    ['0x1.0.0.1', /dotted decimal/],
    ['1000.0.0.1', /dotted decimal/],
    ['-1.0.0.0', /dotted decimal/],
    ['+1.0.0.0', /dotted decimal/],
    ['1.2.3.4 ', /dotted decimal/],
    [' 1.2.3.4', /dotted decimal/],
    ['1.2.3.4\n', /dotted decimal/],
    ['1.2.3.4/24', /dotted decimal/],
    ['١.2.3.4', /dotted decimal/],
    // IPv6 garbage
    ['1::2::3', /not an IPv4 or IPv6 address/],
    ['00001::1', /not an IPv4 or IPv6 address/],
    ['1:2:3:4:5:6:7:8:9', /not an IPv4 or IPv6 address/],
    ['1:2:3:4:5:6:7::8', /not an IPv4 or IPv6 address/],
    ['g::1', /not an IPv4 or IPv6 address/],
    ['1:::2', /not an IPv4 or IPv6 address/],
    [':1::', /not an IPv4 or IPv6 address/],
    ['fe80::1:', /not an IPv4 or IPv6 address/],
    ['[::1]', /not an IPv4 or IPv6 address/],
    [' ::1', /not an IPv4 or IPv6 address/],
    ['::1 ', /not an IPv4 or IPv6 address/],
    ['1:2:3:4:5:6:7:1.2.3.4', /not an IPv4 or IPv6 address/],
    ['1.2.3.4::', /not an IPv4 or IPv6 address/],
    // plain garbage
    ['localhost', /not an IPv4 or IPv6 address/],
    ['1', /not an IPv4 or IPv6 address/],
    ['167772161', /not an IPv4 or IPv6 address/],
    ['abc', /not an IPv4 or IPv6 address/],
  ])('%j: %s', (text, message) => {
    const err = syntaxError(() => parseIp(text));
    expect(err.message).toMatch(message);
    expect(err.name).toBe('AddressSyntaxError');
  });

  it('names the offending text in the message', () => {
    expect(syntaxError(() => parseIp('010.0.0.1')).message).toContain('"010.0.0.1"');
    expect(syntaxError(() => parseIp('fe80::1%eth0')).message).toContain('"fe80::1%eth0"');
  });

  it('rejects text longer than 64 characters and truncates it in the message', () => {
    const long = `${'1'.repeat(100)}::1`;
    const err = syntaxError(() => parseIp(long));
    expect(err.message).toMatch(/too long/);
    expect(err.message).not.toContain(long);
    expect(err.message).toContain('1'.repeat(64));
    // 64 characters is still parsed (and rejected for its syntax, not its length)
    expect(syntaxError(() => parseIp('a'.repeat(64))).message).not.toMatch(/too long/);
  });

  it.each<[unknown, string]>([
    [undefined, 'undefined'],
    [null, 'null'],
    ['', '""'],
    [42, 'number 42'],
    [0x0a000001n, 'bigint'],
    [true, 'boolean true'],
    [{}, 'an object'],
    [['10.0.0.1'], 'an array'],
    [{ family: 4, value: 1n }, 'an object'],
  ])('non-string or empty %s -> "%s"', (value, shown) => {
    const err = syntaxError(() => parseIp(value));
    expect(err.message).toMatch(/expected an IP address string/);
    expect(err.message).toContain(shown);
  });
});

describe('parseCidr', () => {
  it.each<[string, Cidr]>([
    ['10.0.0.0/8', { family: 4, network: 0x0a000000n, prefix: 8 }],
    ['10.22.0.0/16', { family: 4, network: 0x0a160000n, prefix: 16 }],
    ['192.168.1.0/24', { family: 4, network: 0xc0a80100n, prefix: 24 }],
    ['0.0.0.0/0', { family: 4, network: 0n, prefix: 0 }],
    ['10.0.0.5/32', { family: 4, network: 0x0a000005n, prefix: 32 }],
    ['10.0.0.4/31', { family: 4, network: 0x0a000004n, prefix: 31 }],
    ['::/0', { family: 6, network: 0n, prefix: 0 }],
    ['fd00::/64', { family: 6, network: 0xfd000000000000000000000000000000n, prefix: 64 }],
    ['2001:db8:1::/48', { family: 6, network: 0x20010db8000100000000000000000000n, prefix: 48 }],
    ['::1/128', { family: 6, network: 1n, prefix: 128 }],
  ])('%s', (text, cidr) => {
    expect(parseCidr(text)).toEqual(cidr);
  });

  it.each<[string, string]>([
    ['10.0.0.5/24', '10.0.0.0/24'],
    ['10.0.0.1/8', '10.0.0.0/8'],
    ['192.168.1.129/25', '192.168.1.128/25'],
    ['10.0.0.5/31', '10.0.0.4/31'],
    ['0.0.0.1/0', '0.0.0.0/0'],
    ['fd00::1/64', 'fd00::/64'],
    ['2001:db8::ffff/112', '2001:db8::/112'],
  ])('%s has host bits set: suggests %s', (text, suggestion) => {
    const err = syntaxError(() => parseCidr(text));
    expect(err.message).toContain('host bits set');
    expect(err.message).toContain(`"${text}"`);
    expect(err.message).toContain(`did you mean ${suggestion}?`);
  });

  it.each<[string, RegExp]>([
    ['10.0.0.0/33', /prefix \/33 is longer than an IPv4 address/],
    ['10.0.0.0/128', /prefix \/128 is longer than an IPv4 address/],
    ['fd00::/129', /prefix \/129 is longer than an IPv6 address/],
    ['fd00::/999', /prefix \/999 is longer than an IPv6 address/],
    ['10.0.0.0/ 24', /invalid prefix length " 24"/],
    ['10.0.0.0/24 ', /invalid prefix length "24 "/],
    ['10.0.0.0/024', /invalid prefix length "024"/],
    ['10.0.0.0/00', /invalid prefix length "00"/],
    ['10.0.0.0/-1', /invalid prefix length "-1"/],
    ['10.0.0.0/+8', /invalid prefix length "\+8"/],
    ['10.0.0.0/1000', /invalid prefix length "1000"/],
    ['10.0.0.0/', /invalid prefix length ""/],
    ['10.0.0.0/24/8', /invalid prefix length "24\/8"/],
    ['10.0.0.0/2a', /invalid prefix length "2a"/],
    ['10.0.0.0/255.255.255.0', /invalid prefix length/],
    ['10.0.0.0', /no prefix length/],
    ['fd00::', /no prefix length/],
    ['010.0.0.0/8', /no leading zeros/],
    ['fe80::%eth0/64', /zone index/],
    ['::ffff:10.0.0.0/120', /IPv4-mapped/],
    ['/24', /expected an IP address string/],
    ['x/24', /not an IPv4 or IPv6 address/],
  ])('%j: %s', (text, message) => {
    expect(syntaxError(() => parseCidr(text)).message).toMatch(message);
  });

  it.each([undefined, null, 24, {}, ['10.0.0.0/24']])('non-string %j', (value) => {
    expect(syntaxError(() => parseCidr(value)).message).toMatch(/expected a CIDR string/);
  });
});

describe('parseIpWithPrefix', () => {
  it.each<[string, Family, bigint, number]>([
    ['10.0.0.5/24', 4, 0x0a000005n, 24],
    ['10.0.0.0/24', 4, 0x0a000000n, 24],
    ['10.0.0.5/32', 4, 0x0a000005n, 32],
    ['fd00::5/64', 6, 0xfd000000000000000000000000000005n, 64],
  ])('%s keeps the host bits', (text, family, value, prefix) => {
    expect(parseIpWithPrefix(text)).toEqual({ ip: { family, value }, prefix });
  });

  it.each<[unknown, RegExp]>([
    ['10.0.0.5', /no prefix length/],
    ['10.0.0.5/33', /longer than an IPv4/],
    ['fd00::5/129', /longer than an IPv6/],
    ['10.0.0.5/024', /invalid prefix length/],
    ['010.0.0.5/24', /no leading zeros/],
    [5, /expected a CIDR string/],
  ])('%j rejected', (text, message) => {
    expect(syntaxError(() => parseIpWithPrefix(text)).message).toMatch(message);
  });
});

describe('format round trips', () => {
  it.each([
    '0.0.0.0',
    '10.0.0.1',
    '10.0.0.10',
    '127.0.0.1',
    '172.16.254.3',
    '255.255.255.255',
    '::',
    '::1',
    '1::',
    'fe80::1',
    '2001:db8::1',
    '2001:db8:0:1:1:1:1:1',
    '2001:db8::1:0:0:1',
    '1:2:3:4:5:6:7:8',
    'fd00::a:b:c:d',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  ])('canonical %s survives parse -> format', (text) => {
    expect(formatIp(parseIp(text))).toBe(text);
  });

  it.each<[string, string]>([
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['FD00::ABCD', 'fd00::abcd'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::10.0.0.1', '::a00:1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('%s formats canonically as %s (RFC 5952)', (text, canonical) => {
    expect(formatIp(parseIp(text))).toBe(canonical);
  });

  it('formatValue, formatCidr and formatIpWithPrefix', () => {
    expect(formatValue(4, 0x0a000001n)).toBe('10.0.0.1');
    expect(formatValue(6, 1n << 64n)).toBe('0:0:0:1::');
    expect(formatValue(4, 0n)).toBe('0.0.0.0');
    expect(formatCidr({ family: 4, network: 0x0a160000n, prefix: 16 })).toBe('10.22.0.0/16');
    expect(formatCidr({ family: 6, network: 0xfd000000000000000000000000000000n, prefix: 64 })).toBe('fd00::/64');
    expect(formatIpWithPrefix({ family: 4, value: 0x0a000005n }, 24)).toBe('10.0.0.5/24');
    expect(formatIpWithPrefix({ family: 6, value: 5n }, 64)).toBe('::5/64');
  });

  it('random IPv4 values round trip through format and parse (seed 1)', () => {
    const next = rng(1);
    for (let i = 0; i < 2000; i++) {
      const value = randomBig(next, 32);
      const text = formatValue(4, value);
      expect(text).toMatch(/^(0|[1-9]\d*)(\.(0|[1-9]\d*)){3}$/);
      expect(parseIp(text)).toEqual({ family: 4, value });
    }
  });

  it('random IPv6 values round trip through format and parse (seed 2)', () => {
    const next = rng(2);
    for (let i = 0; i < 2000; i++) {
      let value = randomBig(next, 128);
      // sprinkle runs of zero groups so "::" compression is exercised
      if (i % 3 === 0) value &= ~(0xffffffffn << BigInt(16 * Math.floor(next() * 6)));
      if (value >> 32n === 0xffffn) continue; // IPv4-mapped: refused by design
      const text = formatValue(6, value);
      expect(parseIp(text)).toEqual({ family: 6, value });
    }
  });

  it('CIDR round trips for every prefix length', () => {
    for (const [family, base] of [
      [4, 0xc0a80000n],
      [6, 0x20010db8000000000000000000000000n],
    ] as const) {
      for (let prefix = 0; prefix <= familyBits(family); prefix++) {
        const network = base & prefixMask(family, prefix);
        const text = formatCidr({ family, network, prefix });
        expect(parseCidr(text)).toEqual({ family, network, prefix });
      }
    }
  });
});

describe('toKey / fromKey', () => {
  it.each<[Family, bigint, string]>([
    [4, 0n, '00000000'],
    [4, 0x0a000001n, '0a000001'],
    [4, 0xffffffffn, 'ffffffff'],
    [6, 0n, '00000000000000000000000000000000'],
    [6, 1n, '00000000000000000000000000000001'],
    [6, (1n << 128n) - 1n, 'ffffffffffffffffffffffffffffffff'],
    [6, 1n << 64n, '00000000000000010000000000000000'],
  ])('IPv%i %s -> %s', (family, value, key) => {
    expect(toKey(family, value)).toBe(key);
    expect(fromKey(key)).toBe(value);
  });

  it('keys have a fixed width per family', () => {
    const next = rng(3);
    for (let i = 0; i < 500; i++) {
      expect(toKey(4, randomBig(next, Math.ceil(next() * 32)))).toHaveLength(8);
      expect(toKey(6, randomBig(next, Math.ceil(next() * 128)))).toHaveLength(32);
    }
  });

  it.each<[Family, number]>([
    [4, 32],
    [6, 128],
  ])('IPv%i: sorting keys as text equals sorting values as numbers (seed 4)', (family, bits) => {
    const next = rng(4 + bits);
    const values: bigint[] = [0n, 1n, (1n << BigInt(bits)) - 1n, 0xfn, 0x10n, 0xffn, 0x100n];
    for (let i = 0; i < 3000; i++) {
      // mix widths so that short and long hex strings meet: plain toString(16) would sort wrongly
      values.push(randomBig(next, 1 + Math.floor(next() * bits)));
    }
    const byText = [...values].sort((a, b) => {
      const ka = toKey(family, a);
      const kb = toKey(family, b);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    const byNumber = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(byText).toEqual(byNumber);
    for (const value of values) expect(fromKey(toKey(family, value))).toBe(value);
  });
});

describe('prefixMask / cidrFirst / cidrLast / cidrSize', () => {
  it.each<[Family, number, bigint]>([
    [4, 0, 0n],
    [4, 1, 0x80000000n],
    [4, 8, 0xff000000n],
    [4, 24, 0xffffff00n],
    [4, 31, 0xfffffffen],
    [4, 32, 0xffffffffn],
    [6, 0, 0n],
    [6, 64, 0xffffffffffffffff0000000000000000n],
    [6, 127, (1n << 128n) - 2n],
    [6, 128, (1n << 128n) - 1n],
  ])('IPv%i /%i mask', (family, prefix, mask) => {
    expect(prefixMask(family, prefix)).toBe(mask);
  });

  it.each<[string, string, string, bigint]>([
    ['10.0.0.0/24', '10.0.0.0', '10.0.0.255', 256n],
    ['10.0.0.0/8', '10.0.0.0', '10.255.255.255', 1n << 24n],
    ['192.168.1.128/25', '192.168.1.128', '192.168.1.255', 128n],
    ['10.0.0.4/30', '10.0.0.4', '10.0.0.7', 4n],
    ['10.0.0.5/32', '10.0.0.5', '10.0.0.5', 1n],
    ['0.0.0.0/0', '0.0.0.0', '255.255.255.255', 1n << 32n],
    ['fd00::/64', 'fd00::', 'fd00::ffff:ffff:ffff:ffff', 1n << 64n],
    ['2001:db8::/126', '2001:db8::', '2001:db8::3', 4n],
    ['::/0', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 1n << 128n],
  ])('%s spans %s - %s (%s addresses)', (text, first, last, size) => {
    const cidr = parseCidr(text);
    expect(formatValue(cidr.family, cidrFirst(cidr))).toBe(first);
    expect(formatValue(cidr.family, cidrLast(cidr))).toBe(last);
    expect(cidrSize(cidr)).toBe(size);
    expect(cidrLast(cidr) - cidrFirst(cidr) + 1n).toBe(size);
  });
});

describe('cidrContains', () => {
  it.each<[string, string, boolean]>([
    ['10.0.0.0/24', '10.0.0.0', true],
    ['10.0.0.0/24', '10.0.0.255', true],
    ['10.0.0.0/24', '10.0.0.128', true],
    ['10.0.0.0/24', '10.0.1.0', false],
    ['10.0.0.0/24', '9.255.255.255', false],
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['0.0.0.0/0', '255.255.255.255', true],
    ['10.0.0.5/32', '10.0.0.5', true],
    ['10.0.0.5/32', '10.0.0.6', false],
    ['fd00::/64', 'fd00::ffff:ffff:ffff:ffff', true],
    ['fd00::/64', 'fd00:0:0:1::', false],
    ['::/0', '::1', true],
    // other family never matches, even where the numbers would
    ['0.0.0.0/0', '::1', false],
    ['::/0', '10.0.0.1', false],
    ['::/96', '0.0.0.1', false],
  ])('%s contains %s: %s', (cidr, ip, expected) => {
    expect(cidrContains(parseCidr(cidr), parseIp(ip))).toBe(expected);
  });
});

describe('cidrsOverlap', () => {
  it.each<[string, string, boolean]>([
    ['10.0.0.0/24', '10.0.0.0/24', true],
    ['10.0.0.0/24', '10.0.0.128/25', true],
    ['10.0.0.0/8', '10.200.0.0/16', true],
    ['10.0.0.0/24', '10.0.1.0/24', false],
    ['10.0.0.0/25', '10.0.0.128/25', false],
    ['10.0.0.0/23', '10.0.1.0/24', true],
    ['10.0.0.255/32', '10.0.0.0/24', true],
    ['10.0.1.0/32', '10.0.0.0/24', false],
    ['0.0.0.0/0', '192.168.0.0/16', true],
    ['fd00::/64', 'fd00::/48', true],
    ['fd00::/64', 'fd00:0:0:1::/64', false],
    ['0.0.0.0/0', '::/0', false],
    ['::/96', '0.0.0.0/0', false],
  ])('%s vs %s: %s', (a, b, expected) => {
    expect(cidrsOverlap(parseCidr(a), parseCidr(b))).toBe(expected);
    expect(cidrsOverlap(parseCidr(b), parseCidr(a))).toBe(expected);
  });
});

describe('ipEquals / familyBits', () => {
  it('compares family and value', () => {
    expect(ipEquals(parseIp('10.0.0.1'), parseIp('10.0.0.1'))).toBe(true);
    expect(ipEquals(parseIp('10.0.0.1'), parseIp('10.0.0.2'))).toBe(false);
    expect(ipEquals({ family: 4, value: 1n }, { family: 6, value: 1n })).toBe(false);
    expect(ipEquals(parseIp('2001:db8::1'), parseIp('2001:DB8:0::1'))).toBe(true);
  });
  it('bits per family', () => {
    expect(familyBits(4)).toBe(32);
    expect(familyBits(6)).toBe(128);
  });
});
