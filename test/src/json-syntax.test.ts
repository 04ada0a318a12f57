// jsonSyntaxError must word every syntax error as V8's JSON.parse does (the Node running this
// test is V8): hand-picked cases for each message and position rule, then seeded random edits of
// real network configurations.
import { describe, expect, it } from 'vitest';
import { jsonSyntaxError } from '../../src/json-syntax.js';
import { Rng } from '../support/random.js';

function v8Message(text: string): string | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const CASES = [
  '', ' ', '\n\n', 'x', 'nul', 'tru', 'fals', 'nulx', 'trux', 'true x', 'null1', 'nul"', 'nu l', 'undefined', 'NaN', 'Infinity', '[object Object]',
  '{a', '{', '{"a"', '{"a":', '{"a" 1}', '{"a":1,}', '{"a":1,"b"}', '{"a":1,"b" 2}', '{"a":1,"b":', '{"a":1 "b":2}', '{"a":1}}', '{"a":tru}', '{1:2}', "{'a':1}",
  '[', '[1,]', '[1 2]', '[01]', '[1,', '[,1]', '[]]', '[1]x', ']', '}', ':', ',',
  '"abc', '"a\u0001"', '"\\x"', '"\\u12g4"', '"\\u12', '"\\', '"\\\u0100"', '"a\nb"', '"\u00e9\u{1F600}', '"ok"x',
  '-', '-x', '--1', '1e', '1e+', '1e-x', '1.', '1.e5', '01', '-01', '0-', '0+1', '-0.', '-0e', '1.5.2', '.5', '+1', '1ex', '00', '0x10',
  '\ufeff{}', '\u00e9', '\u{1F600}', '{"a":"b"', '{"a":"b\\', '{}x', '[1] 2', '1 2',
  '{"cniVersion":"1.0.0","name":"x",}', '{"cniVersion":"1.0.0","name":"x","ipam":{"type":"reservoir" "socket":"/x"}}',
  '{\r\n"a":1,\r\n"b" 2}', '{\r"a":\n1\r\n\r,}', '\n\n\n   x', '[1,\n2,\n3\n4]',
  '{"cniVersion":"1.0.0","name":"a-long-enough-name","type":"bridge","ipam":{"type":"reservoir","ranges":[[{"subnet":"10.0.0.0/24"}]]}}}',
  '{"cniVersion":"1.0.0",  "name":"abcdefghijklmnop"  x  }', '[1,2,3,4,5,6,7,8,9,10,11,12,?]', '[1,2,3,4,5,6,7,8,9,10,11?]', '?234567890123456789012345',
  '{"deep":' + '['.repeat(5000) + '1' + ']'.repeat(4999) + '}',
];

describe('jsonSyntaxError', () => {
  it.each(CASES.map((text) => [JSON.stringify(text).slice(0, 60), text]))('words %s as V8 does', (_label, text) => {
    expect(jsonSyntaxError(text)).toBe(v8Message(text));
  });

  it('is undefined for valid JSON', () => {
    for (const text of ['{}', '[]', '0', '-0', '1.5e-3', '"\\u00e9\\n"', ' {"a": [true, false, null, {"b": ""}]} ', '{"a":' + '['.repeat(3000) + ']'.repeat(3000) + '}']) {
      expect(jsonSyntaxError(text), text.slice(0, 40)).toBeUndefined();
    }
  });

  it('words random edits of network configurations as V8 does', () => {
    const seed = Number(process.env.JSON_SYNTAX_SEED ?? Date.now() % 1_000_000);
    const rng = new Rng(seed);
    const base = [
      JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'bridge', ipam: { type: 'reservoir', socket: '/run/reservoir/reservoir.sock', timeout: '5s', ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.1' }]], reserved: ['10.0.0.5', { entry: '10.0.0.60-10.0.0.69', group: 'db' }] } }),
      JSON.stringify({ cniVersion: '0.4.0', name: 'n', ipam: { ranges: [[{ subnet: 'fd00::/64' }]], routes: [{ dst: '0.0.0.0/0' }] }, args: { cni: { ips: ['10.0.0.9'] } }, x: [1.5, -2e-7, true, false, null, 'é\u{1F600}\\"'] }, null, 2).replaceAll('\n', '\r\n'),
    ];
    const pieces = ['{', '}', '[', ']', ':', ',', '"', '\\', '\\u', '\\x', '-', '0', '1', '.', 'e', '+', 't', 'n', 'f', ' ', '\n', '\r', '\t', '\u0001', 'é', '\u{1F600}', 'x', "'", '/'];
    let mismatches: string[] = [];
    for (let i = 0; i < 4000 && mismatches.length < 5; i++) {
      let text = rng.pick(base);
      for (let edits = rng.int(1, 3); edits > 0; edits--) {
        const at = rng.int(0, text.length);
        const kind = rng.int(0, 2);
        if (kind === 0) text = text.slice(0, at) + text.slice(at + rng.int(1, 4));
        else if (kind === 1) text = text.slice(0, at) + rng.pick(pieces) + text.slice(at);
        else text = text.slice(0, at) + rng.pick(pieces) + text.slice(at + 1);
      }
      if (rng.chance(0.1)) text = text.slice(0, rng.int(0, text.length));
      const want = v8Message(text);
      const got = jsonSyntaxError(text);
      if (got !== want) mismatches.push(`${JSON.stringify(text)}: got ${got}, V8 ${want}`);
    }
    expect(mismatches, `seed ${seed}`).toEqual([]);
  });
});
