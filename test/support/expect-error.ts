// Run a function that must throw a ReservoirError with the given code; returns its message.
import { expect } from 'vitest';
import { ReservoirError } from '../../src/errors.js';

export function expectReservoirError(run: () => unknown, code: number, ...fragments: string[]): string {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a ReservoirError').toBeInstanceOf(ReservoirError);
  const err = caught as ReservoirError;
  expect(err.code, err.message).toBe(code);
  for (const fragment of fragments) expect(err.message).toContain(fragment);
  return err.message;
}
