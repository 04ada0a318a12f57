import { describe, expect, it } from 'vitest';
import { parseIpamConfig } from '../../src/config.js';
import { MAX_SOCKET_PATH_BYTES, durationMs, isSocketPath } from '../../src/defaults.js';

const base = { ranges: [[{ subnet: '10.9.0.0/24' }]] };
const accepts = (ipam: Record<string, unknown>) => {
  try {
    parseIpamConfig({ ...base, ...ipam });
    return true;
  } catch {
    return false;
  }
};

describe('defaults shared by the plugin fast path and the validator', () => {
  const longest = `/${'s'.repeat(MAX_SOCKET_PATH_BYTES - 1)}`;
  it.each([
    ['/run/reservoir/reservoir.sock', true],
    [longest, true],
    [`${longest}x`, false],
    [`/${'é'.repeat(53)}`, true], // 107 bytes
    [`/${'é'.repeat(54)}`, false], // 109 bytes: the limit counts bytes, not characters
    ['relative.sock', false],
    ['/nul\0in/path', false],
    ['', false],
    [7, false],
  ])('socket %j: %s, and the validator agrees', (socket, ok) => {
    expect(isSocketPath(socket)).toBe(ok);
    expect(accepts({ socket })).toBe(ok);
  });

  it.each([
    ['500ms', 500],
    ['5s', 5_000],
    ['1.5s', 1_500],
    ['30m', 1_800_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['5', undefined],
    ['5 s', undefined],
    ['-5s', undefined],
    ['.5s', undefined],
    [5000, undefined],
  ])('duration %j is %s ms', (text, ms) => {
    expect(durationMs(text)).toBe(ms);
  });
});
