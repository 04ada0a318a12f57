// Tests and benchmark share one support (test/support): one way to run a daemon, one Cleanup, one
// prerequisite registry, one bundling recipe, and no skip that CI=true could not turn into a
// failure. A file that brings its own copy of one of them fails here, naming the helper to use.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs)$/.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .filter((file) => file !== 'test/one-support.test.ts');
}

const FILES = [...sources('test'), ...sources('bench')].map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));

/** Files (other than `owners`) whose text matches `pattern`. */
function offenders(pattern: RegExp, owners: readonly string[]): string[] {
  return FILES.filter(({ file, text }) => !owners.includes(file) && pattern.test(text)).map(({ file }) => file);
}

describe('one test support', () => {
  it('sees the test tree and the benchmark', () => {
    expect(FILES.map((f) => f.file)).toEqual(expect.arrayContaining(['test/support/daemon.ts', 'bench/run.mjs']));
  });

  it('starts reservoird only through test/support/daemon.ts', () => {
    // daemon/app.ts's startDaemon (in process) and the daemon bundle (child process)
    expect(offenders(/\bstartDaemon\b[^;]*from '[./]*daemon\/app\.js'/s, ['test/support/daemon.ts'])).toEqual([]);
    expect(offenders(/\bDAEMON_BUNDLE\b/, ['test/support/build.ts', 'test/support/daemon.ts'])).toEqual([]);
  });

  it('has one Cleanup class (test/support/cleanup.ts)', () => {
    expect(offenders(/\bclass\s+Cleanup\b/, ['test/support/cleanup.ts'])).toEqual([]);
  });

  it('has one prerequisite registry (test/support/prereqs.ts) and no skip outside describeWithPrereqs', () => {
    expect(offenders(/\b(?:describe|it|test)\.(?:skip|skipIf|runIf|todo)\b|\.skip\(\)/, ['test/support/describe-with-prereqs.ts'])).toEqual([]);
    expect(offenders(/process\.getuid\?\.\(\)\s*===\s*0/, ['test/support/prereqs.ts'])).toEqual([]);
  });

  it('bundles only through scripts/build.mjs', () => {
    expect(offenders(/from 'esbuild'/, [])).toEqual([]);
  });
});
