// `npm test`'s pretest step: are the Debian packages in scripts/test-packages.txt installed?
// As root it installs the missing ones with apt; otherwise it names them and how to install them,
// and the tests go on (each suite then skips, or under CI=true fails, on what it lacks).
// The parsing and the decision are pure functions, tested in test/scripts/test-prereqs.test.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_LIST = join(dirname(fileURLToPath(import.meta.url)), 'test-packages.txt');

/** Package names from the list's text: one a line, `#` starts a comment. */
export function parsePackageList(text) {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '');
}

/**
 * The packages of `wanted` that dpkg does not report installed. `status` is the output of
 * `dpkg-query -W -f='${Package} ${db:Status-Status}\n' PKG...`: one `name status` a line, and no
 * line for a package dpkg has never heard of.
 */
export function missingPackages(wanted, status) {
  const installed = new Set();
  for (const line of status.split('\n')) {
    const [name, state] = line.trim().split(/\s+/);
    // Multi-arch packages are listed as name:arch.
    if (state === 'installed') installed.add(name.replace(/:.*/, ''));
  }
  return wanted.filter((pkg) => !installed.has(pkg));
}

/** What to tell someone who is not root, given the missing packages. */
export function installAdvice(missing) {
  return (
    `npm test: missing Debian packages the tests need: ${missing.join(' ')}\n` +
    `  install them with: sudo ./install.sh   (or: sudo apt-get install ${missing.join(' ')})\n` +
    `  without them the suites that need them are skipped (under CI=true they fail)`
  );
}

/**
 * Test packages whose Debian package starts a system service on install that the tests do not
 * use: etcd-server starts a single-member etcd on localhost:2379/2380, while the tests start
 * their own members on random free ports (test/support/etcd.ts). Where install.sh or `npm test`
 * has just installed such a package (for the tests only), its service is stopped and disabled;
 * a package that was there before is left as it was.
 */
export const QUIET_SERVICES = { 'etcd-server': 'etcd' };

/** The services to stop and disable after `installed` (package names) were installed. */
export function servicesToQuiet(installed) {
  return installed.filter((pkg) => Object.hasOwn(QUIET_SERVICES, pkg)).map((pkg) => QUIET_SERVICES[pkg]);
}

/** Stop and disable each service: systemd where it is PID 1, else the SysV script. Best effort. */
export function quietServices(services) {
  const systemd = (() => {
    try {
      return readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
    } catch {
      return false;
    }
  })();
  for (const service of services) {
    const steps = systemd
      ? [['systemctl', ['disable', '--now', `${service}.service`]]]
      : [['invoke-rc.d', [service, 'stop']], ['update-rc.d', [service, 'disable']]];
    for (const [cmd, args] of steps) spawnSync(cmd, args, { stdio: 'ignore' });
    console.log(`npm test: stopped and disabled the ${service} service its package started (the tests run their own)`);
  }
}

const APT = ['-y', '-qq', '-o', 'DPkg::Lock::Timeout=600', '--no-install-recommends'];

function main() {
  const wanted = parsePackageList(readFileSync(PACKAGE_LIST, 'utf8'));
  const q = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...wanted], { encoding: 'utf8' });
  if (q.error) {
    console.warn(`npm test: cannot check for the test prerequisites (dpkg-query: ${q.error.message}); on Debian they are: ${wanted.join(' ')}`);
    return 0;
  }
  const missing = missingPackages(wanted, q.stdout);
  if (missing.length === 0) return 0;
  if (process.getuid?.() !== 0) {
    console.warn(installAdvice(missing));
    return 0;
  }
  console.log(`npm test: installing the missing test prerequisites with apt: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq', '-o', 'DPkg::Lock::Timeout=600'], ['install', ...APT, ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.error || r.status !== 0) {
      console.error(`npm test: apt-get ${args[0]} failed (${r.error?.message ?? `exit ${r.status}`}); install by hand: apt-get install ${missing.join(' ')}`);
      return 1;
    }
  }
  quietServices(servicesToQuiet(missing));
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // install.sh: `node scripts/test-prereqs.mjs --quiet-services PKG...` after it installed PKG...
  const argv = process.argv.slice(2);
  if (argv[0] === '--quiet-services') quietServices(servicesToQuiet(argv.slice(1)));
  else process.exitCode = main();
}
