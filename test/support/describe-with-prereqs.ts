// describe() for suites that need host capabilities (./prereqs.ts). All present: an ordinary
// describe. Something missing: outside CI the suite is skipped and a warning names what to install;
// under CI=true the suite becomes one failing test that says what is missing (never a skip).
import { describe, it } from 'vitest';
import { CI, type Prereq, missingPrereqs } from './prereqs.js';

export function describeWithPrereqs(name: string, needs: readonly Prereq[], fn: () => void, options: { timeout?: number } = {}): void {
  const missing = missingPrereqs(needs);
  if (missing.length === 0) return void describe(name, options, fn);
  const list = missing.join('\n  ');
  if (CI) {
    describe(name, () => {
      it('has its prerequisites', () => {
        throw new Error(`missing prerequisites (CI=true forbids skipping):\n  ${list}`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": missing prerequisites:\n  ${list}`);
  describe.skip(`${name} [skipped, missing: ${missing.join('; ')}]`, fn);
}
