// Compiles the CNI plugin (cmd/reservoir.ts) into a standalone executable with bun's
// `bun build --compile`: the plugin is started for every pod ADD, DEL, CHECK and GC, and its
// runtime's start-up is nearly all of its cost. A bun executable starts in ~7 ms where Node 24
// needs ~40-55 ms; the daemon and the CLI stay on Node 24 (scripts/package.mjs), and the plugin
// is the same TypeScript, bundled by bun from the same sources.
//
// bun is the exact-pinned devDependency `bun`; its Linux binary arrives as the npm optional
// dependency @oven/bun-linux-x64 (bun's install script moves it to node_modules/bun/bin/bun.exe),
// and `bun build --compile` embeds that same binary: no download, nothing but node_modules.
//
// Flags, and why (figures: medians of one interleaved run each, started by bench/spawntimer.go):
//  --target=bun --bytecode   JavaScriptCore bytecode compiled at build time, as an ES module:
//  --format=esm              VERSION 14.6 ms without bytecode, 11.9 with CommonJS bytecode (bun's
//                            default for --bytecode), 9.0 with ESM bytecode (a bare bun start 6.7);
//                            ADD+DEL 34.4 ms with CommonJS bytecode, 26.5 with ESM.
//  --no-compile-autoload-*   a compiled bun executable otherwise reads .env and bunfig.toml (and
//                            can read tsconfig.json, package.json) from its working directory: the
//                            plugin must behave the same in whatever directory a runtime starts it.
// Measured and not used: --minify, --bytecode-order (from recorded runs), --compile-jit-policy,
// --smol, process.reallyExit or libc _exit instead of process.exit: within the noise. Again, with
// stdin/stdout through the addon (one interleaved run, 40 rounds, host-local pair 10.7 ms): ADD+DEL
// 23.1 ms as built, --minify 23.6, --bytecode-depth=1 25.4, the lazy validation stubbed out of the
// bundle (what splitting it off could gain at most) 22.6; --splitting changes nothing under --compile.
// What a start costs (same run): a compiled empty script 7.6 ms, one that imports node:fs 10.0.
//
// The transport. A minimal ADD (read stdin, one HTTP exchange, print) compiled by bun gave these
// ADD+DEL pairs in one interleaved run (host-local 12.6 ms, a bun hello 7.3 ms): Bun.connect
// 30.1 ms, the N-API addon native/unix-call.c 29.6 ms, bun:ffi to libc socket/connect/send/read
// 31.1 ms, node:net 59.5 ms. In phases (a busier run; per call: boot / load / connect / exchange):
// Bun.connect 4.4 / 0 / 0.5 / 2.2 ms, addon 4.9 / 0.3 / (in the exchange) / 2.7, bun:ffi 4.8 / 0.6 /
// 0.1 / 2.3, node:net 4.5 / 2.9 / 2.3 / 2.6. The plugin keeps the addon: as fast as any, it is the
// same C the plugin used under Node (so every error and errno name is what it was, synchronous as
// the plugin's client expects), and bun loads it as Node does. node:net stays the fallback for a
// plugin copied without it (under bun: ADD+DEL 50 ms, with the addon 28 ms).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const BUN_FLAGS = [
  'build',
  '--compile',
  '--target=bun',
  '--bytecode',
  '--format=esm',
  '--no-compile-autoload-dotenv',
  '--no-compile-autoload-bunfig',
  '--no-compile-autoload-tsconfig',
  '--no-compile-autoload-package-json',
];

function isElf(file) {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
}

/** The bun binary of the pinned npm package: { path, version } (throws saying what to run). */
export function findBun() {
  const require = createRequire(join(ROOT, 'package.json'));
  let pkgDir;
  try {
    pkgDir = dirname(require.resolve('bun/package.json'));
  } catch {
    throw new Error('the npm package bun is not installed; run npm ci');
  }
  const { version } = require('bun/package.json');
  const platformPkg = `@oven/bun-${process.platform}-${process.arch}`;
  const candidates = [join(pkgDir, 'bin', 'bun.exe'), join(pkgDir, 'node_modules', platformPkg, 'bin', 'bun'), join(ROOT, 'node_modules', platformPkg, 'bin', 'bun')];
  const found = candidates.find((c) => existsSync(c) && statSync(c).size > 1 << 20 && isElf(c));
  if (!found) throw new Error(`no bun ${version} binary in node_modules (looked at ${candidates.join(', ')}); run npm ci`);
  const path = realpathSync(found);
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  if (r.status !== 0 || r.stdout.trim() !== version) throw new Error(`${path} --version printed ${JSON.stringify(r.stdout ?? r.error?.message)}, expected ${version}`);
  return { path, version };
}

/**
 * Compile `entry` (default cmd/reservoir.ts) into the executable `outFile`. Returns { out, size,
 * bun }; throws with bun's output on failure. bun is compiled into a temporary directory under
 * the final file name (the name is embedded: the same sources and name give the same bytes), then
 * renamed into place, so a failed run never leaves a half-written executable.
 */
export function compilePlugin(outFile, { entry = join(ROOT, 'cmd', 'reservoir.ts'), bun = findBun() } = {}) {
  const work = mkdtempSync(join(dirname(outFile), `.${basename(outFile)}-`));
  const tmp = join(work, basename(outFile));
  try {
    // cwd = ROOT: bun reads this project's tsconfig.json and node_modules while bundling, nothing else.
    const r = spawnSync(bun.path, [...BUN_FLAGS, `--outfile=${tmp}`, entry], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 16 << 20,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NO_COLOR: '1' },
    });
    if (r.error || r.status !== 0 || !existsSync(tmp)) {
      throw new Error(`bun build --compile ${entry} failed (exit ${r.status ?? r.error?.message}):\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd()}`);
    }
    renameSync(tmp, outFile);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { out: outFile, size: statSync(outFile).size, bun };
}
