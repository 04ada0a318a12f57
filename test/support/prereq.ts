// A tool a test needs from Debian. Present: undefined. Missing: with CI=true the test fails
// loudly (throws); otherwise it is skipped with a message saying what to install.
import { existsSync } from 'node:fs';

export function requireExecutable(path: string, install: string): string | undefined {
  if (existsSync(path)) return undefined;
  const msg = `${path} is missing: ${install}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: refusing to skip)`);
  console.warn(`${msg}; skipping`);
  return msg;
}
