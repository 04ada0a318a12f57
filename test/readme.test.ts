// The README's error-code table is the operator's reference: it must list every code, as defined.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/errors.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('lists every error code with its name and HTTP status', () => {
    for (const info of Object.values(ErrorCodes)) {
      expect(readme).toContain(`| ${info.code} | \`${info.name}\` | ${info.http} | ${info.meaning} |`);
    }
  });

  it('lists no code that does not exist', () => {
    const rows = [...readme.matchAll(/^\| (\d+) \| `([A-Z_]+)` \|/gm)];
    const known = new Set(Object.values(ErrorCodes).map((info) => `${info.code}:${info.name}`));
    expect(rows.length).toBe(known.size);
    for (const [, code, name] of rows) expect(known.has(`${code}:${name}`)).toBe(true);
  });

  it('keeps the two set-up commands', () => {
    expect(readme).toContain('sudo ./install.sh');
    expect(readme).toContain('npm test');
  });
});
