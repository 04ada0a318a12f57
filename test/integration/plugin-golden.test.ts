// The plugin's behaviour, pinned: every case of test/golden/plugin-corpus.ts (results in every
// cniVersion, errors of every kind, the fast and the full-validation path, stdin limits, the
// deadline, exit codes) runs through the shipped plugin against a fresh daemon, and its outputs
// must equal test/golden/plugin-outputs.json byte for byte. While the Node build of the plugin
// can still be packaged (a Node SEA, as the plugin shipped before it moved to bun), the same
// corpus runs through it too and both must agree.
//
// A deliberate change of behaviour: RESERVOIR_UPDATE_GOLDEN=1 npx vitest run test/integration/plugin-golden.test.ts
// rewrites the expected outputs; review the diff and say why in the commit.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNodeBinary, makeSea } from '../../scripts/package.mjs';
import { CORPUS, type CorpusCase } from '../golden/plugin-corpus.js';
import { NATIVE_CALL, PLUGIN_BUNDLE, PLUGIN_EXE, ROOT, bundlesReady } from '../support/build.js';
import { type InProcessDaemon, startInProcessDaemon } from '../support/daemon.js';
import { runPlugin } from '../support/plugin.js';
import { removeDir, tempDir } from '../support/tmp.js';

const GOLDEN = join(ROOT, 'test', 'golden', 'plugin-outputs.json');
const UPDATE = process.env.RESERVOIR_UPDATE_GOLDEN === '1';

interface Output {
  readonly name: string;
  readonly exit: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the whole corpus, in order, through `program` against a fresh daemon. */
async function runCorpus(program: string, label: string): Promise<Output[]> {
  const d: InProcessDaemon = await startInProcessDaemon(`golden-${label}`);
  const hung: Server = createServer(() => undefined); // accepts, never answers
  await new Promise<void>((resolve) => hung.listen(join(d.dir, 'hung.sock'), resolve));
  writeFileSync(join(d.dir, 'plain-file'), '');
  try {
    const outputs: Output[] = [];
    const byName = new Map<string, Output>();
    for (const c of CORPUS) {
      const run = await runPlugin({
        command: c.command,
        containerId: c.containerId,
        ifname: c.ifname,
        args: c.args,
        env: c.env,
        config: stdinOf(c, d, byName),
        program,
      });
      const normal = (text: string) => text.replaceAll(d.dir, '<DIR>');
      const output = { name: c.name, exit: run.exitCode, stdout: normal(run.stdout), stderr: normal(run.stderr) };
      outputs.push(output);
      byName.set(c.name, output);
    }
    return outputs;
  } finally {
    hung.close();
    await d.close();
  }
}

function stdinOf(c: CorpusCase, d: InProcessDaemon, earlier: Map<string, Output>): string | Buffer {
  if (Buffer.isBuffer(c.stdin)) return c.stdin;
  let stdin: unknown = c.stdin;
  if (c.prevResultOf !== undefined) {
    const prev = earlier.get(c.prevResultOf);
    if (!prev) throw new Error(`corpus case ${JSON.stringify(c.name)}: no earlier case ${JSON.stringify(c.prevResultOf)}`);
    stdin = { ...(stdin as Record<string, unknown>), prevResult: JSON.parse(prev.stdout) };
  }
  const text = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  return text.replaceAll('@SOCK@', d.socket).replaceAll('@DIR@', d.dir);
}

let dir: string;
let shipped: Output[];

beforeAll(async () => {
  await bundlesReady();
  dir = tempDir('golden');
  shipped = await runCorpus(PLUGIN_EXE, 'bun');
}, 120_000);
afterAll(() => removeDir(dir));

describe('the shipped plugin on the corpus', () => {
  it('gives the recorded outputs', () => {
    if (UPDATE) writeFileSync(GOLDEN, `${JSON.stringify(shipped, null, 2)}\n`);
    expect(existsSync(GOLDEN), `${GOLDEN} is missing: RESERVOIR_UPDATE_GOLDEN=1 writes it`).toBe(true);
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Output[];
    expect(shipped.map((o) => o.name)).toEqual(golden.map((o) => o.name));
    for (const [i, output] of shipped.entries()) expect(output, output.name).toEqual(golden[i]);
  });

  it('covers every exit code and every kind of answer', () => {
    expect(new Set(shipped.map((o) => o.exit))).toEqual(new Set([0, 1]));
    const codes = new Set(shipped.filter((o) => o.exit === 1).map((o) => (JSON.parse(o.stdout) as { code: number }).code));
    for (const code of [1, 4, 6, 7, 11, 50, 101, 102, 103, 104, 109, 110]) expect(codes, `code ${code}`).toContain(code);
    expect(shipped.every((o) => o.stderr === ''), 'nothing on stderr').toBe(true);
  });
});

describe('the Node SEA build of the plugin on the corpus', () => {
  it('gives the same outputs as the shipped plugin', async () => {
    const bin = join(dir, 'sea');
    mkdirSync(bin);
    makeSea(findNodeBinary(), { name: `golden-${process.pid}`, main: PLUGIN_BUNDLE, out: join(bin, 'reservoir') });
    copyFileSync(NATIVE_CALL, join(bin, 'reservoir_call.node'));
    const sea = await runCorpus(join(bin, 'reservoir'), 'sea');
    for (const [i, output] of sea.entries()) expect(shipped[i], output.name).toEqual(output);
  }, 180_000);
});
