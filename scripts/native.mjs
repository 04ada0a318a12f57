// Compiles native/unix-call.c into reservoir_call.node, the plugin's socket transport (see the
// header of that file for why it exists). Needs a C compiler (Debian: gcc, libc6-dev; install.sh
// installs them) and Node-API's headers, which the node@24 npm package ships with its binary.
// Used by scripts/build.mjs (into dist/, which scripts/package.mjs copies to build/bin/) and by
// test/support/build.ts (beside the test bundles).
import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE_CALL_FILE = 'reservoir_call.node';
const SOURCE = join(ROOT, 'native', 'unix-call.c');

/** Directory holding node_api.h: the include/node of node@24's platform package. */
function nodeApiHeaders() {
  const fromProject = createRequire(join(ROOT, 'package.json'));
  const fromNode = createRequire(fromProject.resolve('node/package.json'));
  const dir = join(dirname(fromNode.resolve(`node-${process.platform}-${process.arch}/package.json`)), 'include', 'node');
  if (!existsSync(join(dir, 'node_api.h'))) throw new Error(`Node-API headers not found in ${dir}; run npm ci`);
  return dir;
}

/** Compile to outFile (written under a temporary name, then renamed). Throws with the compiler's output. */
export function buildNativeCall(outFile) {
  const cc = process.env.CC || 'cc';
  const tmp = `${outFile}.${process.pid}.tmp`;
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-I', nodeApiHeaders(), '-o', tmp, SOURCE];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    const why = r.error?.code === 'ENOENT' ? `${cc} not found (apt-get install gcc libc6-dev)` : (r.stderr || r.error?.message || `exit ${r.status}`).trim();
    throw new Error(`compiling ${SOURCE} failed: ${why}`);
  }
  renameSync(tmp, outFile);
  return outFile;
}

/**
 * Whether LD_DEBUG=libs output shows reservoir_call.node initialised by the dynamic loader: the
 * running program (Node or bun) loaded it, and reaches the daemon through it.
 */
export function addonInitialised(ldDebug) {
  return ldDebug.split('\n').some((line) => /calling init: .*\/reservoir_call\.node$/.test(line.trim()));
}

