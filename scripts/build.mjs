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
// @kubernetes/client-node (17 MB bundled as the others are, 6 MB minified) stays out of the three bundles: reservoird loads it
// only when the Kubernetes integration is on (daemon/kube/load.ts), from dist/kube-client.cjs,
// bundled here on its own, so a daemon without Kubernetes never parses it at start-up. The etcd
// client (etcd3 with grpc-js and protobufjs) likewise goes into dist/etcd-client.cjs, loaded only
// by a daemon given --etcd-endpoints (daemon/cluster/etcd-client.ts); its .proto service
// definitions, which etcd3 reads from disk beside its sources, are inlined (etcdProtoInline).
//
// The plugin (dist/reservoir.cjs) is started for every pod, so after bundling we read esbuild's
// metafile and warn about any node_modules package in it other than ipaddr.js.
//
// The one recipe for every bundle the project makes: `npm run build`, scripts/package.mjs, the
// test bundles (test/support/build.ts) and the benchmark (bench/run.mjs, which also bundles its
// TypeScript helpers with bundleFile).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
/** Loaded at run time by daemon/kube/load.ts, from its own bundle beside the daemon. */
export const KUBE_CLIENT_PACKAGE = '@kubernetes/client-node';
export const KUBE_CLIENT_FILE = 'kube-client.cjs';
/** Loaded at run time by daemon/cluster/etcd-client.ts, from its own bundle beside the daemon. */
export const ETCD_CLIENT_PACKAGE = 'etcd3';
export const ETCD_CLIENT_FILE = 'etcd-client.cjs';

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
    external: [KUBE_CLIENT_PACKAGE, ETCD_CLIENT_PACKAGE],
    logLevel: 'silent', // we print errors and warnings ourselves
    absWorkingDir: ROOT,
    ...overrides,
  };
}

/**
 * etcd3 (1.1.2) builds its gRPC services at load time from proto/rpc.proto beside its own
 * lib/: `loadSync(\`${__dirname}/../proto/rpc.proto\`, options)`. A bundle (and the single
 * executable that embeds the daemon) has no such file, so the definitions are parsed here, at
 * build time, with the protobufjs that etcd3's proto-loader uses (keepCase, as loadSync would),
 * and handed to proto-loader's fromJSON with the same options. Another etcd3 version that loads
 * them differently fails the build here rather than the daemon at run time.
 */
const etcdProtoInline = {
  name: 'etcd-proto-inline',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const call = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`,';
      if (!source.includes(call)) {
        throw new BuildError(`${args.path} does not load proto/rpc.proto as etcdProtoInline (scripts/build.mjs) expects: update it for this etcd3`);
      }
      const fromEtcd = createRequire(args.path);
      const fromLoader = createRequire(fromEtcd.resolve('@grpc/proto-loader'));
      const protobuf = fromLoader('protobufjs');
      const root = new protobuf.Root().loadSync(join(dirname(args.path), '..', 'proto', 'rpc.proto'), { keepCase: true });
      const json = JSON.stringify(root.toJSON({ keepComments: false }));
      return { contents: source.replace(call, `(0, proto_loader_1.fromJSON)(${json},`), loader: 'js' };
    });
  },
};

/** Write esbuild's in-memory outputs under a temporary name, then rename: a reader never sees half a file. */
function writeOutputs(outputFiles) {
  for (const file of outputFiles) {
    mkdirSync(dirname(file.path), { recursive: true });
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
}

// For code that finds files from its own source location (this file finds the project root,
// test/support/netns.ts the libcni harness, daemon/native-addon.ts better-sqlite3's addon): each
// of our .ts and .mjs files keeps its own import.meta instead of the bundle's.
const importMetaPerSource = {
  name: 'import-meta-per-source',
  setup(build) {
    build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const contents = readFileSync(args.path, 'utf8')
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll('import.meta.dirname', JSON.stringify(dirname(args.path)))
        .replaceAll('import.meta.filename', JSON.stringify(args.path));
      return { contents, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

/** Leave these packages out of the bundle, required at run time from this project's node_modules (wherever the bundle is). */
function externalFromProject(names) {
  const fromProject = createRequire(join(ROOT, 'package.json'));
  return {
    name: 'external-from-project',
    setup(build) {
      for (const name of names) {
        const filter = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
        build.onResolve({ filter }, () => ({ path: fromProject.resolve(name), external: true }));
      }
    },
  };
}

/**
 * Bundle one TypeScript module (bench/helpers.ts) into outfile, to require() from plain Node.
 * Each source keeps its own import.meta; `external` packages (esbuild) are required at run time.
 */
export async function bundleFile({ entry, outfile, external = [] }) {
  try {
    const plugins = [importMetaPerSource, externalFromProject(external)];
    const result = await esbuild.build(esbuildOptions({ entryPoints: [entry], outfile, plugins, banner: {}, define: {}, sourcemap: false, write: false }));
    writeOutputs(result.outputFiles);
  } catch (err) {
    if (err?.errors?.length) throw new BuildError(`esbuild failed:\n${formatMessages('error', err.errors)}`);
    throw err;
  }
  return outfile;
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
 * Bundles the entries (default all three) and compiles the native exchange beside them. Returns
 * { outputs: {name: path}, nativeCall, metafile }. Every file is written under a temporary name
 * and renamed, so a process running an older bundle from outdir (a test worker) is unaffected.
 * Throws with a readable message on missing entries or esbuild errors.
 */
export async function buildBundles({ entryDir = join(ROOT, 'cmd'), outdir = join(ROOT, 'dist'), names = ENTRIES, log = console.log } = {}) {
  const entries = Object.fromEntries(names.map((n) => [n, join(entryDir, `${n}.ts`)]));
  const missing = Object.values(entries).filter((f) => !existsSync(f));
  if (missing.length) {
    throw new BuildError(
      `missing entry point(s):\n${missing.map((f) => `  - ${f}`).join('\n')}\n` +
        `Write them, or build stand-ins with --entry-dir DIR (or RESERVOIR_ENTRY_DIR=DIR).`,
    );
  }
  mkdirSync(outdir, { recursive: true });
  log(`build: esbuild ${esbuild.version}: ${relative(ROOT, entryDir) || '.'}/{${names.join(',')}}.ts -> ${relative(ROOT, outdir)}/*.cjs`);
  let result;
  try {
    result = await esbuild.build(
      esbuildOptions({
        entryPoints: Object.entries(entries).map(([out, input]) => ({ in: input, out })),
        outdir,
        outExtension: { '.js': '.cjs' },
        write: false,
      }),
    );
  } catch (err) {
    // no stale bundle from an earlier build stays behind to be mistaken for this one
    for (const n of names) for (const ext of ['.cjs', '.cjs.map']) rmSync(join(outdir, n + ext), { force: true });
    if (err?.errors?.length) throw new BuildError(`esbuild failed:\n${formatMessages('error', err.errors)}`);
    throw err;
  }
  writeOutputs(result.outputFiles);
  if (result.warnings.length) log(formatMessages('warning', result.warnings));
  const outputs = Object.fromEntries(names.map((n) => [n, join(outdir, `${n}.cjs`)]));
  for (const [name, file] of Object.entries(outputs)) {
    const pkgs = packagesIn(result.metafile, file);
    const list = pkgs.map(([p, b]) => `${p} ${kib(b)}`).join(', ') || 'none';
    log(`  ${relative(ROOT, file).padEnd(22)} ${kib(statSync(file).size).padStart(10)}   packages: ${list}`);
  }
  const extra = (outputs.reservoir ? packagesIn(result.metafile, outputs.reservoir) : [])
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
  const kubeClient = names.includes('reservoird') ? await buildKubeClient(outdir) : undefined;
  if (kubeClient) log(`  ${relative(ROOT, kubeClient).padEnd(22)} ${kib(statSync(kubeClient).size).padStart(10)}   ${KUBE_CLIENT_PACKAGE}, loaded by reservoird only with Kubernetes`);
  const etcdClient = names.includes('reservoird') ? await buildEtcdClient(outdir) : undefined;
  if (etcdClient) log(`  ${relative(ROOT, etcdClient).padEnd(22)} ${kib(statSync(etcdClient).size).padStart(10)}   ${ETCD_CLIENT_PACKAGE}, loaded by reservoird only with --etcd-endpoints`);
  // The plugin's socket transport sits beside the bundle (src/native-call.ts looks for it there).
  const nativeCall = join(outdir, NATIVE_CALL_FILE);
  try {
    buildNativeCall(nativeCall);
  } catch (err) {
    throw new BuildError(err.message);
  }
  log(`  ${relative(ROOT, nativeCall).padEnd(22)} ${kib(statSync(nativeCall).size).padStart(10)}   native/unix-call.c`);
  return { outputs, nativeCall, kubeClient, etcdClient, metafile: result.metafile };
}

/** One npm package as a CommonJS file of its own (outdir/file), for the daemon to load lazily. */
async function buildClientBundle(outdir, pkg, file, plugins = []) {
  const outfile = join(outdir, file);
  try {
    const result = await esbuild.build(
      esbuildOptions({
        stdin: { contents: `export * from '${pkg}';`, resolveDir: ROOT, loader: 'js', sourcefile: file.replace(/\.cjs$/, '.js') },
        outfile,
        external: [],
        plugins,
        sourcemap: false,
        metafile: false,
        minifyWhitespace: true, // never read by people; fewer bytes to parse when loaded
        write: false,
      }),
    );
    writeOutputs(result.outputFiles);
  } catch (err) {
    if (err?.errors?.length) throw new BuildError(`esbuild failed (${file}):\n${formatMessages('error', err.errors)}`);
    throw err;
  }
  return outfile;
}

/** @kubernetes/client-node as one CommonJS file of its own (outdir/kube-client.cjs). */
export function buildKubeClient(outdir) {
  return buildClientBundle(outdir, KUBE_CLIENT_PACKAGE, KUBE_CLIENT_FILE);
}

/** etcd3, with grpc-js and its service definitions inlined, as one CommonJS file (outdir/etcd-client.cjs). */
export function buildEtcdClient(outdir) {
  return buildClientBundle(outdir, ETCD_CLIENT_PACKAGE, ETCD_CLIENT_FILE, [etcdProtoInline]);
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
