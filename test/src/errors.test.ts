import { describe, expect, it } from 'vitest';
import { type ErrorCodeName, ErrorCodes, ReservoirError, asReservoirError, codeName, errorFromBody } from '../../src/errors.js';

const all = Object.entries(ErrorCodes);

describe('the error code table', () => {
  it('has unique codes', () => {
    const codes = all.map(([, info]) => info.code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('has unique names, each equal to its key', () => {
    const names = all.map(([, info]) => info.name);
    expect(new Set(names).size).toBe(names.length);
    for (const [key, info] of all) expect(info.name).toBe(key);
  });

  it.each<[ErrorCodeName, number]>([
    ['INCOMPATIBLE_VERSION', 1],
    ['UNSUPPORTED_FIELD', 2],
    ['UNKNOWN_CONTAINER', 3],
    ['INVALID_ENV', 4],
    ['IO_FAILURE', 5],
    ['DECODE_FAILURE', 6],
    ['INVALID_CONFIG', 7],
    ['TRY_AGAIN_LATER', 11],
    ['NOT_READY', 50],
    ['NOT_READY_LIMITED', 51],
    ['INTERNAL', 999],
  ])('CNI spec code %s = %i', (name, code) => {
    expect(ErrorCodes[name].code).toBe(code);
    expect(codeName(code)).toBe(name);
  });

  it('every code that is not one of the spec\'s is ours, from 100 up', () => {
    const spec = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999]);
    const ours = all.map(([, info]) => info.code).filter((code) => !spec.has(code));
    expect(ours.length).toBeGreaterThan(0);
    for (const code of ours) {
      expect(code).toBeGreaterThanOrEqual(100);
      expect(code).toBeLessThan(999);
    }
  });

  it('every entry has an integer code, an HTTP error status and a meaning', () => {
    for (const [name, info] of all) {
      expect(Number.isInteger(info.code), name).toBe(true);
      expect(info.http, name).toBeGreaterThanOrEqual(400);
      expect(info.http, name).toBeLessThan(600);
      expect(info.meaning.length, name).toBeGreaterThan(5);
    }
  });

  it('retryable conditions answer 503, bugs 500, missing things 404', () => {
    expect(ErrorCodes.TRY_AGAIN_LATER.http).toBe(503);
    expect(ErrorCodes.STORE_UNAVAILABLE.http).toBe(503);
    expect(ErrorCodes.INTERNAL.http).toBe(500);
    expect(ErrorCodes.UNKNOWN_NETWORK.http).toBe(404);
    expect(ErrorCodes.INVALID_CONFIG.http).toBe(400);
    expect(ErrorCodes.REQUEST_TOO_LARGE.http).toBe(413);
  });

  it('codeName: unknown codes map to undefined', () => {
    for (const code of [0, 8, 12, 99, 998, 1000, -1, 7.5, Number.NaN]) expect(codeName(code)).toBeUndefined();
  });
});

describe('ReservoirError', () => {
  it('carries code, codeName, http, details and cause', () => {
    const cause = new Error('disk');
    const err = new ReservoirError('STORE_UNAVAILABLE', 'cannot write', 'SQLITE_FULL', { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ReservoirError');
    expect(err.message).toBe('cannot write');
    expect(err.code).toBe(113);
    expect(err.codeName).toBe('STORE_UNAVAILABLE');
    expect(err.http).toBe(503);
    expect(err.details).toBe('SQLITE_FULL');
    expect(err.cause).toBe(cause);
  });

  it.each(all.map(([name]) => name as ErrorCodeName))('%s: code and http follow the table', (name) => {
    const err = new ReservoirError(name, 'm');
    expect(err.code).toBe(ErrorCodes[name].code);
    expect(err.http).toBe(ErrorCodes[name].http);
  });

  it('toJSON: the CNI error shape, optional keys only when set', () => {
    expect(new ReservoirError('INVALID_CONFIG', 'bad').toJSON()).toEqual({ code: 7, msg: 'bad' });
    expect(Object.keys(new ReservoirError('INVALID_CONFIG', 'bad').toJSON())).toEqual(['code', 'msg']);
    expect(new ReservoirError('INVALID_CONFIG', 'bad', 'more').toJSON('1.0.0')).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad', details: 'more' });
    expect(new ReservoirError('POOL_EXHAUSTED', 'full').toJSON('0.4.0')).toEqual({ cniVersion: '0.4.0', code: 100, msg: 'full' });
  });

  it('JSON.stringify uses toJSON (no stack, no name)', () => {
    const text = JSON.stringify(new ReservoirError('IP_IN_USE', 'taken', 'by x'));
    expect(JSON.parse(text)).toEqual({ code: 101, msg: 'taken', details: 'by x' });
    expect(text).not.toContain('stack');
    expect(text).not.toContain('at ');
    // nested, JSON.stringify passes the property key: it must not become a cniVersion
    expect(JSON.parse(JSON.stringify({ error: new ReservoirError('IP_IN_USE', 'taken') }))).toEqual({ error: { code: 101, msg: 'taken' } });
    expect(JSON.parse(JSON.stringify([new ReservoirError('IP_IN_USE', 'taken')]))).toEqual([{ code: 101, msg: 'taken' }]);
  });
});

describe('errorFromBody', () => {
  it.each(all.map(([name]) => name as ErrorCodeName))('%s round trips through JSON', (name) => {
    const original = new ReservoirError(name, `msg of ${name}`, 'the details');
    const back = errorFromBody(JSON.parse(JSON.stringify(original.toJSON('1.1.0'))));
    expect(back).toBeInstanceOf(ReservoirError);
    expect(back.codeName).toBe(name);
    expect(back.code).toBe(original.code);
    expect(back.message).toBe(original.message);
    expect(back.details).toBe('the details');
    expect(back.toJSON()).toEqual(original.toJSON());
  });

  it('drops details that are not a string', () => {
    expect(errorFromBody({ code: 7, msg: 'm', details: 5 }).details).toBeUndefined();
    expect(errorFromBody({ code: 7, msg: 'm' }).details).toBeUndefined();
  });

  it('an unknown code keeps its message under INTERNAL and says which code it was', () => {
    const err = errorFromBody({ code: 199, msg: 'from a newer daemon', details: 'd' });
    expect(err.code).toBe(999);
    expect(err.message).toBe('from a newer daemon');
    expect(err.details).toContain('199');
    expect(err.details).toContain('d');
    expect(errorFromBody({ code: 12, msg: 'x' }).details).toContain('unknown code 12');
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'oops'],
    ['a number', 7],
    ['an array', [7, 'msg']],
    ['an empty object', {}],
    ['code as a string', { code: '7', msg: 'm' }],
    ['msg missing', { code: 7 }],
    ['msg a number', { code: 7, msg: 5 }],
    ['msg null', { code: 7, msg: null }],
    ['code missing', { msg: 'm' }],
  ])('malformed body: %s -> INTERNAL with the body in details', (_name, body) => {
    const err = errorFromBody(body);
    expect(err).toBeInstanceOf(ReservoirError);
    expect(err.code).toBe(999);
    expect(err.message).toBe('the daemon answered with a malformed error');
    expect(err.details).toBe(JSON.stringify(body));
  });
});

describe('asReservoirError', () => {
  it('passes typed errors through unchanged', () => {
    const err = new ReservoirError('UNKNOWN_GROUP', 'no such group');
    expect(asReservoirError(err)).toBe(err);
  });

  it('turns a plain Error into 999 without the stack in msg', () => {
    const plain = new TypeError("Cannot read properties of undefined (reading 'x')");
    expect(plain.stack).toContain('at ');
    const err = asReservoirError(plain);
    expect(err).toBeInstanceOf(ReservoirError);
    expect(err.code).toBe(999);
    expect(err.codeName).toBe('INTERNAL');
    expect(err.message).toBe("internal error: Cannot read properties of undefined (reading 'x')");
    expect(err.message).not.toContain(plain.stack!.split('\n')[1]!.trim());
    expect(err.message).not.toMatch(/\n\s+at /);
    expect(err.details).toBeUndefined();
    expect(err.cause).toBe(plain);
    const json = JSON.stringify(err.toJSON('1.0.0'));
    expect(json).not.toContain('at ');
    expect(JSON.parse(json)).toEqual({ cniVersion: '1.0.0', code: 999, msg: "internal error: Cannot read properties of undefined (reading 'x')" });
  });

  it.each<[unknown, string]>([
    ['a thrown string', 'internal error: a thrown string'],
    [42, 'internal error: 42'],
    [null, 'internal error: null'],
    [undefined, 'internal error: undefined'],
    [{ toString: () => 'custom' }, 'internal error: custom'],
  ])('non-Error %j -> 999', (thrown, message) => {
    const err = asReservoirError(thrown);
    expect(err.code).toBe(999);
    expect(err.message).toBe(message);
  });
});
