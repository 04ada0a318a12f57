#!/usr/bin/env node
// Bundles cmd/reservoir.ts, cmd/reservoird.ts and cmd/reservoirctl.ts into single CommonJS files
// dist/reservoir.cjs, dist/reservoird.cjs, dist/reservoirctl.cjs (platform node, target node24,
// every npm dependency inlined), and compiles the plugin's socket transport native/unix-call.c
// into dist/reservoir_call.node (scripts/native.mjs). Run with `npm run build`.
//
//   node scripts/build.mjs [--entry-dir DIR] [--outdir DIR]
//
// --entry-dir (or $RESERVOIR_ENTRY_DIR) replaces cmd/ with another directory holding the three
// entry files, e.g. stand-ins under /tmp while cmd/ is still being written. Packages are still
// resolved from this project's node_modules.
//
// The plugin (dist/reservoir.cjs) is started for every pod, so after bundling we read esbuild's
// metafile and warn about any node_modules package in it other than ipaddr.js.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { NATIVE_CALL_FILE, buildNativeCall } from './native.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ENTRIES = ['reservoir', 'reservoird', 'reservoirctl'];
/** An expected failure (missing entry, esbuild error): callers print its message, no stack. */
export class BuildError extends Error {}

/** node_modules packages the plugin bundle may contain. */
export const PLUGIN_ALLOWED_PACKAGES = ['ipaddr.js'];

// esbuild empties import.meta in CommonJS output. Sources (and yargs 18, which calls
// fileURLToPath(import.meta.url) at load time) get the bundle's own location instead.
const IMPORT_META_URL = '__reservoir_import_meta_url';
const BANNER = `var ${IMPORT_META_URL}=require("node:url").pathToFileURL(__filename).href;`;

/** esbuild options shared by build.mjs and package.mjs (which bundles its dispatcher with them). */
export function esbuildOptions(overrides = {}) {
  return {
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    // Syntax-only minification: identifiers and line breaks stay, so stack traces and the source
    // line Node prints for an uncaught error stay readable (whitespace minification puts a whole
    // bundle on one line, and Node then prints tens of KiB of it). Size barely matters next to
    // the ~121 MiB executable; parse time of the plugin bundle is measured in the notes.
    minifySyntax: true,
    keepNames: true, // Function.prototype.name survives esbuild's renaming of colliding names
    sourcemap: 'external', // dist/*.cjs.map for symbolicating traces; not loaded at run time
    legalComments: 'eof',
    charset: 'utf8',
    banner: { js: BANNER },
    define: {
      'import.meta.url': IMPORT_META_URL,
      'import.meta.filename': '__filename',
      'import.meta.dirname': '__dirname',
    },
    // lets entry files outside the project (stand-ins) resolve this project's dependencies
    nodePaths: [join(ROOT, 'node_modules')],
    metafile: true,
    logLevel: 'silent', // we print errors and warnings ourselves
    absWorkingDir: ROOT,
    ...overrides,
  };
}

/** Package names ("ipaddr.js", "@scope/x") of the node_modules inputs of one output, with bytes. */
export function packagesIn(metafile, outfile) {
  const key = relative(ROOT, outfile).split('\\').join('/');
  const output = metafile.outputs[key];
  if (!output) throw new BuildError(`esbuild metafile has no output ${key}`);
  const bytes = new Map();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (!m) continue;
    bytes.set(m[1], (bytes.get(m[1]) ?? 0) + bytesInOutput);
  }
  return [...bytes].sort((a, b) => b[1] - a[1]);
}

function kib(n) {
  return `${(n / 1024).toFixed(1)} KiB`;
}

function formatMessages(kind, messages) {
  return esbuild
    .formatMessagesSync(messages, { kind, color: false })
    .join('')
    .trimEnd();
}

export function entryDirFrom(argv = process.argv.slice(2), env = process.env) {
  const i = argv.indexOf('--entry-dir');
  if (i >= 0) {
    if (!argv[i + 1]) throw new BuildError('--entry-dir needs a directory');
    return resolve(argv[i + 1]);
  }
  return env.RESERVOIR_ENTRY_DIR ? resolve(env.RESERVOIR_ENTRY_DIR) : join(ROOT, 'cmd');
}

/**
 * Bundles the three entries. Returns { outputs: {name: path}, metafile }.
 * Throws with a readable message on missing entries or esbuild errors.
 */
export async function buildBundles({ entryDir = join(ROOT, 'cmd'), outdir = join(ROOT, 'dist'), log = console.log } = {}) {
  const entries = Object.fromEntries(ENTRIES.map((n) => [n, join(entryDir, `${n}.ts`)]));
  const missing = Object.values(entries).filter((f) => !existsSync(f));
  if (missing.length) {
    throw new BuildError(
      `missing entry point(s):\n${missing.map((f) => `  - ${f}`).join('\n')}\n` +
        `Write them, or build stand-ins with --entry-dir DIR (or RESERVOIR_ENTRY_DIR=DIR).`,
    );
  }
  mkdirSync(outdir, { recursive: true });
  for (const n of ENTRIES) {
    for (const ext of ['.cjs', '.cjs.map']) rmSync(join(outdir, n + ext), { force: true });
  }
  log(`build: esbuild ${esbuild.version}: ${relative(ROOT, entryDir) || '.'}/{${ENTRIES.join(',')}}.ts -> ${relative(ROOT, outdir)}/*.cjs`);
  let result;
  try {
    result = await esbuild.build(
      esbuildOptions({
        entryPoints: Object.entries(entries).map(([out, input]) => ({ in: input, out })),
        outdir,
        outExtension: { '.js': '.cjs' },
      }),
    );
  } catch (err) {
    if (err?.errors?.length) throw new BuildError(`esbuild failed:\n${formatMessages('error', err.errors)}`);
    throw err;
  }
  if (result.warnings.length) log(formatMessages('warning', result.warnings));
  const outputs = Object.fromEntries(ENTRIES.map((n) => [n, join(outdir, `${n}.cjs`)]));
  for (const [name, file] of Object.entries(outputs)) {
    const pkgs = packagesIn(result.metafile, file);
    const list = pkgs.map(([p, b]) => `${p} ${kib(b)}`).join(', ') || 'none';
    log(`  ${relative(ROOT, file).padEnd(22)} ${kib(statSync(file).size).padStart(10)}   packages: ${list}`);
  }
  const extra = packagesIn(result.metafile, outputs.reservoir)
    .map(([p]) => p)
    .filter((p) => !PLUGIN_ALLOWED_PACKAGES.includes(p));
  if (extra.length) {
    log(
      `WARNING: the CNI plugin bundle ${relative(ROOT, outputs.reservoir)} contains node_modules packages ` +
        `other than ${PLUGIN_ALLOWED_PACKAGES.join(', ')}: ${extra.join(', ')}.\n` +
        `  It runs once per pod ADD/DEL/CHECK: keep yargs, better-sqlite3 and the daemon's code out of ` +
        `cmd/reservoir.ts's import graph (see the inputs in esbuild's metafile).`,
    );
  }
  // The plugin's socket transport sits beside the bundle (src/native-call.ts looks for it there).
  const nativeCall = join(outdir, NATIVE_CALL_FILE);
  try {
    buildNativeCall(nativeCall);
  } catch (err) {
    throw new BuildError(err.message);
  }
  log(`  ${relative(ROOT, nativeCall).padEnd(22)} ${kib(statSync(nativeCall).size).padStart(10)}   native/unix-call.c`);
  return { outputs, nativeCall, metafile: result.metafile };
}

async function main() {
  const argv = process.argv.slice(2);
  const o = argv.indexOf('--outdir');
  const outdir = o >= 0 ? resolve(argv[o + 1]) : join(ROOT, 'dist');
  const started = performance.now();
  await buildBundles({ entryDir: entryDirFrom(argv), outdir });
  console.log(`build: done in ${Math.round(performance.now() - started)} ms`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err) => {
    console.error(`build: FAILED: ${err instanceof BuildError ? err.message : (err?.stack ?? err)}`);
    process.exit(1);
  });
}
