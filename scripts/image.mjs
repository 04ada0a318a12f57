#!/usr/bin/env node
// Builds reservoir's node image (the DaemonSet's, deploy/) with podman, from the packaged
// executables in build/bin (`npm run package`) on a minimal Debian root filesystem made by
// mmdebstrap from Debian's packages: no registry image is pulled.
//
//   node scripts/image.mjs [--tag NAME] [--package]     (as root; npm run image)
//
// --tag: image name (default localhost/reservoir:VERSION); --package: run `npm run package` first.
// The root filesystem is cached as a tarball (RESERVOIR_IMAGE_CACHE, default
// ~/.cache/reservoir-image) and imported once as localhost/reservoir-base:KEY, KEY a hash of
// everything that makes it (suite, packages, hooks, mmdebstrap version); a change makes a new one.
// Then deploy/image/Containerfile adds the executables as one layer. Files are listed once, in
// scripts/package.mjs (INSTALLED_FILES).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './build.mjs';
import { INSTALLED_FILES } from './package.mjs';

/** Where the executables live inside the image (the DaemonSet's command and probes use these). */
export const IMAGE_LIB_DIR = '/usr/local/lib/reservoir';
/** The plugin files inside the image, installed from here into the host's CNI bin dir. */
export const IMAGE_CNI_DIR = `${IMAGE_LIB_DIR}/cni`;
export const CONTAINERFILE = join(ROOT, 'deploy', 'image', 'Containerfile');
const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
export const DEFAULT_TAG = `localhost/reservoir:${VERSION}`;
const BIN = join(ROOT, 'build', 'bin');

// What the executables need (ldd: libc, libm, libstdc++, libgcc_s), and base-files for the
// usual directories. "extract" unpacks just these, without maintainer scripts or dpkg itself.
const ROOTFS = {
  variant: 'extract',
  packages: ['base-files', 'libc6', 'libgcc-s1', 'libstdc++6'],
  dpkgopts: ['path-exclude=/usr/share/doc/*', 'path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/info/*', 'path-exclude=/usr/share/locale/*', 'path-exclude=/usr/share/lintian/*'],
  hooks: [
    // /var/run -> /run as on the host, so a runtime's /var/run/netns/X and /run/netns/X paths both resolve
    'rm -rf "$1/var/run" && ln -s /run "$1/var/run"',
    // root and the nogroup group, for getgrnam (--socket-group) and tools that look up uid 0
    'printf "root:x:0:0:root:/root:/usr/sbin/nologin\\n" > "$1/etc/passwd" && printf "root:x:0:\\nnogroup:x:65534:\\n" > "$1/etc/group"',
    'rm -rf "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/* "$1/etc/apt/sources.list.d"/*',
  ],
};

class Fail extends Error {}

function run(cmd, args, what, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.error) throw new Fail(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Fail(`${what} failed (exit ${r.status ?? r.signal}): ${cmd} ${args.join(' ')}\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd()}`);
  return (r.stdout ?? '').trim();
}

/** The host's Debian suite (bookworm, trixie, ...): the packages come from the host's apt sources. */
function hostSuite() {
  const release = readFileSync('/etc/os-release', 'utf8');
  const suite = /^VERSION_CODENAME=(\S+)$/m.exec(release)?.[1];
  if (!suite) throw new Fail('cannot tell the Debian suite from /etc/os-release (VERSION_CODENAME)');
  return suite;
}

/** The base root filesystem as a podman image, made (and cached) when missing. Returns its name. */
export function baseImage(log = console.log) {
  const suite = hostSuite();
  const mmdebstrap = run('mmdebstrap', ['--version'], 'mmdebstrap --version (apt-get install mmdebstrap)');
  const key = createHash('sha256').update(JSON.stringify({ suite, mmdebstrap, ...ROOTFS })).digest('hex').slice(0, 16);
  const name = `localhost/reservoir-base:${key}`;
  if (spawnSync('podman', ['image', 'exists', name]).status === 0) {
    log(`base: ${name} (cached image)`);
    return name;
  }
  const cache = process.env.RESERVOIR_IMAGE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'reservoir-image');
  const tarball = join(cache, `rootfs-${key}.tar`);
  if (!existsSync(tarball)) {
    mkdirSync(cache, { recursive: true });
    const partial = `${tarball}.${process.pid}.partial`;
    log(`base: mmdebstrap ${suite} ${ROOTFS.packages.join(',')} -> ${tarball}`);
    try {
      run(
        'mmdebstrap',
        [
          '--quiet',
          `--variant=${ROOTFS.variant}`,
          `--include=${ROOTFS.packages.join(',')}`,
          ...ROOTFS.dpkgopts.map((o) => `--dpkgopt=${o}`),
          ...ROOTFS.hooks.map((h) => `--customize-hook=${h}`),
          '--format=tar',
          suite,
          partial,
        ],
        'mmdebstrap',
      );
      renameSync(partial, tarball);
    } finally {
      rmSync(partial, { force: true });
    }
  }
  log(`base: podman import ${tarball} ${name}`);
  run('podman', ['import', '--quiet', tarball, name], 'podman import');
  return name;
}

/**
 * The build context: lib/ (the daemon and its addon, reservoirctl a symlink to reservoird: the
 * executable acts on the name it is started as) and cni/ (the plugin files). Hardlinks where
 * the file system allows, so no 127 MiB copies.
 */
function buildContext() {
  const missing = [...INSTALLED_FILES.plugin, ...INSTALLED_FILES.daemon].filter((f) => !existsSync(join(BIN, f)));
  if (missing.length) throw new Fail(`build/bin lacks ${missing.join(', ')}: run npm run package (or pass --package)`);
  const context = join(ROOT, 'build', `image-context.${process.pid}`);
  rmSync(context, { recursive: true, force: true });
  const place = (file, dir) => {
    mkdirSync(join(context, dir), { recursive: true });
    try {
      linkSync(join(BIN, file), join(context, dir, file));
    } catch {
      copyFileSync(join(BIN, file), join(context, dir, file));
    }
  };
  for (const f of INSTALLED_FILES.daemon) place(f, 'lib');
  for (const f of INSTALLED_FILES.plugin) place(f, 'cni');
  for (const [alias, target] of Object.entries(INSTALLED_FILES.aliases)) symlinkSync(target, join(context, 'lib', alias));
  copyFileSync(CONTAINERFILE, join(context, 'Containerfile'));
  return context;
}

/** Builds the image; returns its name and size in bytes. */
export function buildImage({ tag = DEFAULT_TAG, log = console.log } = {}) {
  const base = baseImage(log);
  const context = buildContext();
  try {
    log(`podman build ${tag} from ${base}`);
    run('podman', ['build', '--quiet', '--build-arg', `BASE=${base}`, '--build-arg', `VERSION=${VERSION}`, '--tag', tag, context], 'podman build');
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  const size = Number(run('podman', ['image', 'inspect', '--format', '{{.Size}}', tag], 'podman image inspect'));
  return { tag, base, size };
}

function main(argv) {
  let tag = DEFAULT_TAG;
  let pkg = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tag') tag = argv[++i];
    else if (argv[i] === '--package') pkg = true;
    else throw new Fail(`unknown argument ${argv[i]}\nusage: node scripts/image.mjs [--tag NAME] [--package]`);
  }
  if (pkg) run('npm', ['run', '--silent', 'package'], 'npm run package', { cwd: ROOT, stdio: 'inherit' });
  const { size } = buildImage({ tag });
  console.log(`image ${tag}: ${(size / 1024 / 1024).toFixed(1)} MiB`);
  console.log(`load it on a node: podman save ${tag} | ctr -n k8s.io images import -   (or push it to your registry)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`[image] FAILED: ${err instanceof Fail ? err.message : (err?.stack ?? err)}`);
    process.exit(1);
  }
}
