import { describe, expect, it } from 'vitest';
import { age, count, percent, table, usageBar } from '../../ctl/format.js';
import { usageWarnings } from '../../ctl/usage.js';

describe('format', () => {
  it('aligns columns without trailing blanks', () => {
    const text = table([{ header: 'A' }, { header: 'NUM', align: 'right' }, { header: 'Z' }], [
      ['long-value', '7', ''],
      ['x', '12345', 'note\nline'],
    ]);
    expect(text.split('\n')).toEqual([
      `A${' '.repeat(13)}NUM  Z`,
      `long-value${' '.repeat(6)}7`,
      `x${' '.repeat(11)}12345  note\\x0aline`,
      '',
    ]);
  });

  it('usage bars and percents use exact BigInt math', () => {
    expect(usageBar(0n, 253n)).toBe('[....................]   0.0%');
    expect(usageBar(1n, 253n)).toBe('[....................]   0.4%');
    expect(usageBar(253n, 253n)).toBe('[####################] 100.0%');
    expect(usageBar(5n, 20n)).toBe('[#####...............]  25.0%');
    const v6 = 2n ** 64n - 2n;
    expect(usageBar(3n, v6)).toBe('[....................]  <0.1%');
    expect(usageBar(v6 - 1n, v6)).toBe('[###################.]  99.9%');
    expect(percent(1n, 3n)).toBe('33.3%');
    expect(percent(0n, 0n)).toBe('-');
  });

  it('counts and ages', () => {
    expect(count('253')).toBe('253');
    expect(count((2n ** 64n).toString())).toBe('1.84e19');
    expect([age(5), age(59), age(180), age(7200), age(4 * 86_400 + 5)]).toEqual(['5s', '59s', '3m', '2h', '4d']);
  });
});

describe('usage warnings', () => {
  it('prints each overlap once, even when both of its networks are listed', () => {
    const view = (network: string, overlaps: string[]) =>
      ({ network, size: '254', dynamicSize: '254', dynamicInUse: 0, dynamicHeld: 0, reservedTotal: '0', reservedUsed: 0, reservedHeld: 0, reservedFree: '0', held: 0, attached: 0, misfits: 0, configFile: null, staleRequests: null, scope: 'node', disagreement: null, overlaps }) as const;
    const line = 'subnet 10.83.0.0/24 of network "a" overlaps 10.83.0.0/24 of network "b": both may hand out the same IPs';
    expect(usageWarnings([view('a', [line]), view('b', [line]), view('c', [])])).toBe(`warning: ${line}\n`);
    expect(usageWarnings([view('c', [])])).toBe('');
  });
});
