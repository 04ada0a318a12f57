import { describe, expect, it } from 'vitest';
import {
  type Allocation,
  type ExclusionSet,
  type Span,
  SpanList,
  allocateNext,
  firstFree,
  placeRequested,
} from '../../daemon/allocator.js';
import { type Family, formatValue, parseIp } from '../../src/address.js';
import { type RangeSet, parseIpamConfig } from '../../src/config.js';
import { rng } from '../support/random.js';

const v = (text: string): bigint => parseIp(text).value;

function rangeSet(...ranges: Array<Record<string, unknown>>): RangeSet {
  return parseIpamConfig({ ranges: [ranges] }).rangeSets[0]!;
}

/** Exclusions from addresses and "a-b" ranges, as a SpanList. */
function excl(family: Family, ...items: string[]): SpanList {
  return new SpanList(
    family,
    items.map((item) => {
      const [a, b] = item.split('-') as [string, string | undefined];
      return { start: v(a), end: v(b ?? a) };
    }),
  );
}

class Counting implements ExclusionSet {
  calls = 0;
  constructor(private readonly inner: ExclusionSet) {}
  covering(family: Family, x: bigint): Span | undefined {
    this.calls++;
    return this.inner.covering(family, x);
  }
}

function show(set: RangeSet, found: Allocation | undefined): string | undefined {
  return found === undefined ? undefined : `${formatValue(set.family, found.value)}#${found.rangeIndex}`;
}


/** Merge single addresses into a sorted span list. */
function spansOf(values: Iterable<bigint>): Span[] {
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const spans: Span[] = [];
  for (const x of sorted) {
    const last = spans.at(-1);
    if (last && last.end + 1n === x) spans[spans.length - 1] = { start: last.start, end: x };
    else spans.push({ start: x, end: x });
  }
  return spans;
}

describe('allocateNext: one range', () => {
  // 10.0.0.0/29: network .0, gateway .1 (default), usable .2-.6, broadcast .7
  const set29 = rangeSet({ subnet: '10.0.0.0/29' });
  const none: ExclusionSet[] = [];

  it.each<[string, string | undefined, string[], string | undefined]>([
    ['first allocation starts at rangeStart, skipping the gateway', undefined, [], '10.0.0.2#0'],
    ['continues after the last allocated', '10.0.0.3', [], '10.0.0.4#0'],
    ['the last allocated is not reused even when free', '10.0.0.4', [], '10.0.0.5#0'],
    ['a freed lower IP waits for the wrap', '10.0.0.4', ['10.0.0.5'], '10.0.0.6#0'],
    ['wraps to the range start after rangeEnd', '10.0.0.6', [], '10.0.0.2#0'],
    ['wraps when the rest is taken', '10.0.0.4', ['10.0.0.5-10.0.0.6'], '10.0.0.2#0'],
    ['wrap skips the gateway and taken ones', '10.0.0.5', ['10.0.0.6', '10.0.0.2-10.0.0.3'], '10.0.0.4#0'],
    ['the last allocated itself is the last resort', '10.0.0.4', ['10.0.0.2-10.0.0.3', '10.0.0.5-10.0.0.6'], '10.0.0.4#0'],
    ['exhausted', '10.0.0.4', ['10.0.0.2-10.0.0.6'], undefined],
    ['exhausted from scratch', undefined, ['10.0.0.2-10.0.0.6'], undefined],
    ['a cursor outside every range starts over', '10.9.9.9', ['10.0.0.2'], '10.0.0.3#0'],
    ['a cursor on the network address starts over', '10.0.0.0', [], '10.0.0.2#0'],
    ['a cursor on the broadcast address starts over', '10.0.0.7', [], '10.0.0.2#0'],
  ])('%s', (_name, last, taken, expected) => {
    const exclusions = taken.length ? [excl(4, ...taken)] : none;
    expect(show(set29, allocateNext(set29, last === undefined ? undefined : v(last), exclusions))).toBe(expected);
  });

  it('a full walk of a /29 returns every usable address exactly once, never .0, .1 (gateway) or .7', () => {
    const leased = new Set<bigint>();
    let cursor: bigint | undefined;
    const got: string[] = [];
    for (let i = 0; i < 10; i++) {
      const found = allocateNext(set29, cursor, [new SpanList(4, spansOf(leased))]);
      if (!found) break;
      expect(leased.has(found.value)).toBe(false);
      leased.add(found.value);
      cursor = found.value;
      got.push(formatValue(4, found.value));
    }
    expect(got).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('a /30 with an explicit gateway elsewhere hands out both hosts', () => {
    const set = rangeSet({ subnet: '10.0.0.4/30', gateway: '10.0.0.6', rangeEnd: '10.0.0.5' });
    expect(show(set, allocateNext(set, undefined, []))).toBe('10.0.0.5#0');
    expect(show(set, allocateNext(set, v('10.0.0.5'), []))).toBe('10.0.0.5#0');
    const wide = rangeSet({ subnet: '10.0.0.4/30', gateway: '10.0.0.6' });
    expect(show(wide, allocateNext(wide, undefined, []))).toBe('10.0.0.5#0');
    expect(show(wide, allocateNext(wide, v('10.0.0.5'), []))).toBe('10.0.0.5#0');
  });

  it('never hands out the gateway, wherever it sits', () => {
    const set = rangeSet({ subnet: '10.0.0.0/28', rangeStart: '10.0.0.4', rangeEnd: '10.0.0.8', gateway: '10.0.0.6' });
    const leased = new Set<bigint>();
    let cursor: bigint | undefined;
    for (;;) {
      const found = allocateNext(set, cursor, [new SpanList(4, spansOf(leased))]);
      if (!found) break;
      leased.add(found.value);
      cursor = found.value;
    }
    expect([...leased].map((x) => formatValue(4, x))).toEqual(['10.0.0.4', '10.0.0.5', '10.0.0.7', '10.0.0.8']);
  });

  it('only the gateway left is exhaustion', () => {
    const set = rangeSet({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.1', rangeEnd: '10.0.0.3' });
    expect(allocateNext(set, v('10.0.0.2'), [excl(4, '10.0.0.2-10.0.0.3')])).toBeUndefined();
  });

  it('exclusions of the other family are ignored', () => {
    expect(show(set29, allocateNext(set29, undefined, [new SpanList(6, [{ start: 0n, end: 0xffffffffn }])]))).toBe('10.0.0.2#0');
  });

  it('several exclusion sets together (leases and reserved)', () => {
    const leased = excl(4, '10.0.0.2', '10.0.0.4');
    const reserved = excl(4, '10.0.0.3', '10.0.0.5');
    expect(show(set29, allocateNext(set29, undefined, [leased, reserved]))).toBe('10.0.0.6#0');
    expect(show(set29, allocateNext(set29, v('10.0.0.6'), [leased, reserved]))).toBe('10.0.0.6#0');
    expect(allocateNext(set29, v('10.0.0.6'), [leased, reserved, excl(4, '10.0.0.6')])).toBeUndefined();
  });
});

describe('allocateNext: several ranges in a set', () => {
  const set = rangeSet(
    { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.12' },
    { subnet: '10.0.1.0/24', rangeStart: '10.0.1.10', rangeEnd: '10.0.1.12' },
    { subnet: '10.0.2.0/24', rangeStart: '10.0.2.10', rangeEnd: '10.0.2.12' },
  );

  it.each<[string, string | undefined, string[], string | undefined]>([
    ['first allocation: first range', undefined, [], '10.0.0.10#0'],
    ['first allocation skips a full first range', undefined, ['10.0.0.10-10.0.0.12'], '10.0.1.10#1'],
    ['inside a range', '10.0.1.10', [], '10.0.1.11#1'],
    ['continues into the next range', '10.0.0.12', [], '10.0.1.10#1'],
    ['continues past a full range', '10.0.0.11', ['10.0.0.12', '10.0.1.10-10.0.1.12'], '10.0.2.10#2'],
    ['wraps to the first range', '10.0.2.12', [], '10.0.0.10#0'],
    ['wraps past full ranges back to the home range', '10.0.1.11', ['10.0.1.12', '10.0.2.10-10.0.2.12', '10.0.0.10-10.0.0.12'], '10.0.1.10#1'],
    ['from the middle, the whole set is walked before the home range start', '10.0.2.11', ['10.0.2.12', '10.0.0.10-10.0.0.12'], '10.0.1.10#1'],
    ['exhausted', '10.0.1.11', ['10.0.0.10-10.0.0.12', '10.0.1.10-10.0.1.12', '10.0.2.10-10.0.2.12'], undefined],
    ['a cursor between ranges starts at the first range', '10.0.1.200', [], '10.0.0.10#0'],
  ])('%s', (_name, last, taken, expected) => {
    expect(show(set, allocateNext(set, last === undefined ? undefined : v(last), taken.length ? [excl(4, ...taken)] : []))).toBe(expected);
  });

  it('ranges sharing one subnet are walked in set order', () => {
    const shared = rangeSet(
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.30', rangeEnd: '10.0.0.31' },
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.11' },
    );
    const order: string[] = [];
    let cursor: bigint | undefined;
    for (let i = 0; i < 6; i++) {
      const found = allocateNext(shared, cursor, [])!;
      order.push(show(shared, found)!);
      cursor = found.value;
    }
    expect(order).toEqual(['10.0.0.30#0', '10.0.0.31#0', '10.0.0.10#1', '10.0.0.11#1', '10.0.0.30#0', '10.0.0.31#0']);
  });
});

describe('allocateNext: exclusions are jumped, not enumerated', () => {
  const set8 = rangeSet({ subnet: '10.0.0.0/8' });
  const base = v('10.0.0.2');

  it('one million excluded addresses in three spans cost a handful of lookups', () => {
    const spans = new SpanList(4, [
      { start: base, end: base + 399_999n },
      { start: base + 400_000n, end: base + 699_999n },
      { start: base + 700_000n, end: base + 999_999n },
    ]);
    const counting = new Counting(spans);
    const found = allocateNext(set8, undefined, [counting]);
    expect(found).toEqual({ value: base + 1_000_000n, rangeIndex: 0 });
    expect(formatValue(4, found!.value)).toBe('10.15.66.66');
    expect(counting.calls).toBeLessThanOrEqual(5);
  });

  it('alternating spans of two exclusion sets over a million addresses', () => {
    const leasedSpans: Span[] = [];
    const reservedSpans: Span[] = [];
    let x = base;
    for (let i = 0; i < 10; i++) {
      (i % 2 ? reservedSpans : leasedSpans).push({ start: x, end: x + 99_999n });
      x += 100_000n;
    }
    const leased = new Counting(new SpanList(4, leasedSpans));
    const reserved = new Counting(new SpanList(4, reservedSpans));
    const found = allocateNext(set8, v('10.0.0.1'), [leased, reserved]);
    expect(found?.value).toBe(base + 1_000_000n);
    expect(leased.calls + reserved.calls).toBeLessThanOrEqual(40);
  });

  it('a gap between spans is found', () => {
    const spans = new Counting(
      new SpanList(4, [
        { start: base, end: base + 499_999n },
        { start: base + 500_001n, end: base + 999_999n },
      ]),
    );
    expect(allocateNext(set8, undefined, [spans])?.value).toBe(base + 500_000n);
    expect(spans.calls).toBeLessThanOrEqual(3);
  });

  it('a whole /8 excluded except the last address, reached after the wrap', () => {
    const last = v('10.255.255.254');
    const spans = new Counting(new SpanList(4, [{ start: base, end: last - 1n }]));
    expect(allocateNext(set8, v('10.128.0.0'), [spans])?.value).toBe(last);
    expect(spans.calls).toBeLessThanOrEqual(6);
    const full = new Counting(new SpanList(4, [{ start: base, end: last }]));
    expect(allocateNext(set8, v('10.128.0.0'), [full])).toBeUndefined();
    expect(full.calls).toBeLessThanOrEqual(6);
  });
});

describe('allocateNext: IPv6 /64', () => {
  const set = rangeSet({ subnet: 'fd00::/64' });
  const net = v('fd00::');
  const top = net + (1n << 64n) - 1n; // fd00::ffff:ffff:ffff:ffff, usable in IPv6

  it('the last address of the /64 is handed out, and the walk wraps after it', () => {
    expect(formatValue(6, top)).toBe('fd00::ffff:ffff:ffff:ffff');
    expect(allocateNext(set, top - 1n, [])).toEqual({ value: top, rangeIndex: 0 });
    expect(allocateNext(set, top, [])).toEqual({ value: net + 2n, rangeIndex: 0 });
  });

  it('jumps a span of 2^63 addresses in one lookup', () => {
    const spans = new Counting(new SpanList(6, [{ start: net + 2n, end: net + (1n << 63n) }]));
    expect(allocateNext(set, undefined, [spans])?.value).toBe(net + (1n << 63n) + 1n);
    expect(spans.calls).toBeLessThanOrEqual(2);
  });

  it('values near 2^64 above the network: exhaustion ends, no overflow into the next /64', () => {
    const spans = new Counting(new SpanList(6, [{ start: net + 2n, end: top }]));
    expect(allocateNext(set, top - 5n, [spans])).toBeUndefined();
    expect(spans.calls).toBeLessThanOrEqual(4);
    const almost = new SpanList(6, [
      { start: net + 2n, end: top - 3n },
      { start: top - 1n, end: top },
    ]);
    expect(allocateNext(set, top, [almost])).toEqual({ value: top - 2n, rangeIndex: 0 });
  });

  it('a /64 whose offsets cross 2^64 in absolute value (the ::/64 network sits at 0)', () => {
    const low = rangeSet({ subnet: '::/64' });
    const end = (1n << 64n) - 1n;
    expect(low.ranges[0]!.end).toBe(end);
    expect(allocateNext(low, end - 1n, [])).toEqual({ value: end, rangeIndex: 0 });
    expect(allocateNext(low, end, [])).toEqual({ value: 2n, rangeIndex: 0 });
  });
});

describe('firstFree', () => {
  const range = rangeSet({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.15' }).ranges[0]!;

  it.each<[string, string, string, string[], string | undefined]>([
    ['clamps from to rangeStart', '10.0.0.0', '10.0.0.255', [], '10.0.0.10'],
    ['starts at from', '10.0.0.12', '10.0.0.255', [], '10.0.0.12'],
    ['skips the gateway', '10.0.0.15', '10.0.0.20', [], '10.0.0.16'],
    ['to is inclusive', '10.0.0.16', '10.0.0.16', [], '10.0.0.16'],
    ['clamps to to rangeEnd', '10.0.0.16', '10.0.0.255', ['10.0.0.16-10.0.0.20'], undefined],
    ['from after to', '10.0.0.18', '10.0.0.17', [], undefined],
    ['from after rangeEnd', '10.0.0.21', '10.0.0.255', [], undefined],
    ['jumps an exclusion then the gateway', '10.0.0.10', '10.0.0.20', ['10.0.0.10-10.0.0.14'], '10.0.0.16'],
    ['an exclusion that ends past to', '10.0.0.10', '10.0.0.12', ['10.0.0.11-10.0.0.100'], '10.0.0.10'],
    ['an exclusion reaching past to hides the rest', '10.0.0.11', '10.0.0.12', ['10.0.0.11-10.0.0.100'], undefined],
  ])('%s', (_name, from, to, taken, expected) => {
    const found = firstFree(range, v(from), v(to), taken.length ? [excl(4, ...taken)] : []);
    expect(found === undefined ? undefined : formatValue(4, found)).toBe(expected);
  });
});

describe('placeRequested', () => {
  const set = rangeSet(
    { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.200' },
    { subnet: '10.0.1.0/24' },
    { subnet: '10.0.2.0/24', rangeStart: '10.0.2.10', rangeEnd: '10.0.2.20', gateway: '10.0.2.254' },
  );

  it.each<[string, number]>([
    ['10.0.0.10', 0],
    ['10.0.0.100', 0],
    ['10.0.0.200', 0],
    ['10.0.1.2', 1],
    ['10.0.1.254', 1],
    ['10.0.2.15', 2],
  ])('%s lies in range %i', (ip, rangeIndex) => {
    expect(placeRequested(set, parseIp(ip))).toEqual({ rangeIndex });
  });

  it.each<[string, string]>([
    ['10.0.0.9', '10.0.0.9 comes before rangeStart of 10.0.0.10-10.0.0.200'],
    ['10.0.0.2', '10.0.0.2 comes before rangeStart of 10.0.0.10-10.0.0.200'],
    ['10.0.0.201', '10.0.0.201 comes after rangeEnd of 10.0.0.10-10.0.0.200'],
    ['10.0.0.254', '10.0.0.254 comes after rangeEnd of 10.0.0.10-10.0.0.200'],
    ['10.0.0.1', '10.0.0.1 is the gateway of 10.0.0.10-10.0.0.200'],
    ['10.0.1.1', '10.0.1.1 is the gateway of 10.0.1.1-10.0.1.254'],
    ['10.0.2.254', '10.0.2.254 is the gateway of 10.0.2.10-10.0.2.20'],
    ['10.0.0.0', '10.0.0.0 is the network address of its subnet'],
    ['10.0.1.0', '10.0.1.0 is the network address of its subnet'],
    ['10.0.0.255', '10.0.0.255 is the broadcast address of its subnet'],
    ['10.0.1.255', '10.0.1.255 is the broadcast address of its subnet'],
    ['10.0.3.5', '10.0.3.5 is in none of the ranges 10.0.0.10-10.0.0.200, 10.0.1.1-10.0.1.254, 10.0.2.10-10.0.2.20'],
    ['192.168.0.1', '192.168.0.1 is in none of the ranges'],
    ['9.255.255.255', '9.255.255.255 is in none of the ranges 10.0.0.10-10.0.0.200'],
    ['0.0.0.1', '0.0.0.1 is in none of the ranges'],
    ['fd00::5', 'fd00::5 is IPv6; this range set is IPv4'],
    ['::a00:5', '::a00:5 is IPv6; this range set is IPv4'],
  ])('%s: %s', (ip, problem) => {
    const placement = placeRequested(set, parseIp(ip));
    expect(placement).not.toHaveProperty('rangeIndex');
    expect((placement as { problem: string }).problem).toContain(problem);
  });

  it('ranges sharing a subnet: an IP outside the first may lie in the second', () => {
    const shared = rangeSet(
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20' },
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.30', rangeEnd: '10.0.0.40' },
    );
    expect(placeRequested(shared, parseIp('10.0.0.15'))).toEqual({ rangeIndex: 0 });
    expect(placeRequested(shared, parseIp('10.0.0.35'))).toEqual({ rangeIndex: 1 });
    expect(placeRequested(shared, parseIp('10.0.0.25'))).toEqual({ problem: '10.0.0.25 comes after rangeEnd of 10.0.0.10-10.0.0.20' });
    expect(placeRequested(shared, parseIp('10.0.0.5'))).toEqual({ problem: '10.0.0.5 comes before rangeStart of 10.0.0.10-10.0.0.20' });
    expect(placeRequested(shared, parseIp('10.0.0.1'))).toEqual({ problem: '10.0.0.1 is the gateway of 10.0.0.10-10.0.0.20' });
    expect(placeRequested(shared, parseIp('10.0.0.255'))).toEqual({ problem: '10.0.0.255 is the broadcast address of its subnet' });
  });

  it('IPv6: the last address is fine (no broadcast), the network and gateway are not', () => {
    const v6 = rangeSet({ subnet: 'fd00::/64' }, { subnet: 'fd01::/120', rangeStart: 'fd01::10' });
    expect(placeRequested(v6, parseIp('fd00::ffff:ffff:ffff:ffff'))).toEqual({ rangeIndex: 0 });
    expect(placeRequested(v6, parseIp('fd01::ff'))).toEqual({ rangeIndex: 1 });
    expect(placeRequested(v6, parseIp('fd00::'))).toEqual({ problem: 'fd00:: is the network address of its subnet' });
    expect(placeRequested(v6, parseIp('fd00::1'))).toEqual({ problem: 'fd00::1 is the gateway of fd00::1-fd00::ffff:ffff:ffff:ffff' });
    expect(placeRequested(v6, parseIp('fd01::5'))).toEqual({ problem: 'fd01::5 comes before rangeStart of fd01::10-fd01::ff' });
    expect(placeRequested(v6, parseIp('fd01::100'))).toMatchObject({ problem: expect.stringContaining('is in none of the ranges') });
    expect(placeRequested(v6, parseIp('10.0.0.5'))).toEqual({ problem: '10.0.0.5 is IPv4; this range set is IPv6' });
  });

  it('agrees with allocateNext: every address allocateNext can give is placeable in its range', () => {
    const shared = rangeSet(
      { subnet: '10.0.0.0/27', rangeStart: '10.0.0.3', rangeEnd: '10.0.0.9' },
      { subnet: '10.0.0.0/27', rangeStart: '10.0.0.20' },
      { subnet: '10.0.1.0/29' },
    );
    let cursor: bigint | undefined;
    const leased = new Set<bigint>();
    for (;;) {
      const found = allocateNext(shared, cursor, [new SpanList(4, spansOf(leased))]);
      if (!found) break;
      expect(placeRequested(shared, { family: 4, value: found.value })).toEqual({ rangeIndex: found.rangeIndex });
      leased.add(found.value);
      cursor = found.value;
    }
    expect(leased.size).toBe(7 + 11 + 5); // .3-.9, .20-.30, 10.0.1.2-.6
  });
});

describe('SpanList', () => {
  it('finds the covering span, sorting its input', () => {
    const list = new SpanList(4, [
      { start: 50n, end: 59n },
      { start: 10n, end: 10n },
      { start: 20n, end: 29n },
    ]);
    expect(list.covering(4, 10n)).toEqual({ start: 10n, end: 10n });
    expect(list.covering(4, 25n)).toEqual({ start: 20n, end: 29n });
    expect(list.covering(4, 20n)).toEqual({ start: 20n, end: 29n });
    expect(list.covering(4, 59n)).toEqual({ start: 50n, end: 59n });
    for (const x of [0n, 9n, 11n, 19n, 30n, 49n, 60n, 1000n]) expect(list.covering(4, x)).toBeUndefined();
    expect(list.covering(6, 25n)).toBeUndefined();
    expect(new SpanList(6, []).covering(6, 0n)).toBeUndefined();
  });

  it('agrees with a linear scan on random spans (seed 7)', () => {
    const next = rng(7);
    for (let round = 0; round < 50; round++) {
      const spans: Span[] = [];
      let x = BigInt(Math.floor(next() * 5));
      const count = Math.floor(next() * 20);
      for (let i = 0; i < count; i++) {
        const start = x + BigInt(Math.floor(next() * 4));
        const end = start + BigInt(Math.floor(next() * 4));
        spans.push({ start, end });
        x = end + 1n + BigInt(Math.floor(next() * 3));
      }
      const shuffled = [...spans].sort(() => next() - 0.5);
      const list = new SpanList(6, shuffled);
      for (let q = -1n; q <= x + 2n; q++) {
        const expected = spans.find((s) => s.start <= q && q <= s.end);
        expect(list.covering(6, q)).toEqual(expected);
      }
    }
  });
});

describe('property: seeded random allocate/free against an oracle', () => {
  /** The next free address after the cursor, walking the set's ranges cyclically, by brute force. */
  function oracle(set: RangeSet, cursor: bigint | undefined, taken: (x: bigint) => boolean): Allocation | undefined {
    const flat: Allocation[] = [];
    set.ranges.forEach((range, rangeIndex) => {
      for (let x = range.start; x <= range.end; x++) flat.push({ value: x, rangeIndex });
    });
    const free = (a: Allocation) => a.value !== set.ranges[a.rangeIndex]!.gateway && !taken(a.value);
    const at = cursor === undefined ? -1 : flat.findIndex((a) => a.value === cursor);
    const order = at < 0 ? flat : [...flat.slice(at + 1), ...flat.slice(0, at + 1)];
    return order.find(free);
  }

  const cases: Array<[string, RangeSet, number]> = [
    ['IPv4, three ranges, two sharing a subnet', rangeSet(
      { subnet: '10.0.0.0/26', rangeStart: '10.0.0.5', rangeEnd: '10.0.0.20' },
      { subnet: '10.0.0.0/26', rangeStart: '10.0.0.40' },
      { subnet: '10.0.1.0/28', gateway: '10.0.1.9' },
    ), 11],
    ['IPv4 /27', rangeSet({ subnet: '192.168.5.0/27' }), 12],
    ['IPv6 near 2^64 offsets', rangeSet(
      { subnet: 'fd00::/64', rangeStart: 'fd00::ffff:ffff:ffff:ffd0' },
      { subnet: 'fd01::/120', rangeStart: 'fd01::f0', gateway: 'fd01::f8' },
    ), 13],
  ];

  it.each(cases)('%s', (_name, set, seed) => {
    const next = rng(seed);
    const family = set.family;
    // reserved: a few fixed random spans inside the ranges
    const reservedSpans: Span[] = [];
    for (const range of set.ranges) {
      const size = range.end - range.start + 1n;
      const a = range.start + BigInt(Math.floor(next() * Number(size)));
      const b = a + BigInt(Math.floor(next() * 3));
      if (b <= range.end) reservedSpans.push({ start: a, end: b });
    }
    const reserved = new SpanList(family, reservedSpans);
    const isReserved = (x: bigint) => reservedSpans.some((s) => s.start <= x && x <= s.end);
    const gateways = new Set(set.ranges.map((r) => r.gateway));
    const leased = new Set<bigint>();
    let cursor: bigint | undefined;
    let allocations = 0;
    let exhaustions = 0;
    for (let step = 0; step < 1500; step++) {
      if (leased.size > 0 && next() < 0.35) {
        const all = [...leased];
        leased.delete(all[Math.floor(next() * all.length)]!);
        continue;
      }
      const found = allocateNext(set, cursor, [new SpanList(family, spansOf(leased)), reserved]);
      const expected = oracle(set, cursor, (x) => leased.has(x) || isReserved(x));
      expect(found, `step ${step}`).toEqual(expected);
      if (!found) {
        exhaustions++;
        // free a few so the walk goes on
        for (const x of [...leased].slice(0, 3)) leased.delete(x);
        continue;
      }
      expect(leased.has(found.value)).toBe(false);
      expect(isReserved(found.value)).toBe(false);
      expect(gateways.has(found.value)).toBe(false);
      const range = set.ranges[found.rangeIndex]!;
      expect(range.start <= found.value && found.value <= range.end).toBe(true);
      leased.add(found.value);
      cursor = found.value;
      allocations++;
    }
    expect(allocations).toBeGreaterThan(300);
    expect(exhaustions).toBeGreaterThan(0);
  });
});
