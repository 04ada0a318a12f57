// The test prerequisites: one list (scripts/test-packages.txt) that install.sh installs and that
// `npm test` checks, and every "apt-get install X" a test prints names a package that one of the
// project's own files installs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PACKAGE_LIST, QUIET_SERVICES, installAdvice, missingPackages, parsePackageList, servicesToQuiet } from '../../scripts/test-prereqs.mjs';

const ROOT = new URL('../..', import.meta.url).pathname;

describe('parsePackageList', () => {
  it('takes one package a line and drops comments and blank lines', () => {
    expect(parsePackageList('# header\n\ngolang-go   # why\n  iputils-ping\n#x y\n')).toEqual(['golang-go', 'iputils-ping']);
  });

  it('reads the real list: the packages the end-to-end and robustness suites need', () => {
    const list = parsePackageList(readFileSync(PACKAGE_LIST, 'utf8'));
    for (const pkg of ['golang-go', 'golang-github-appc-cni-dev', 'iputils-ping', 'e2fsprogs', 'util-linux']) expect(list).toContain(pkg);
    expect(new Set(list).size).toBe(list.length);
  });
});

describe('servicesToQuiet', () => {
  it("names the service of a just-installed test package the tests do not use (Debian's etcd on 2379), nothing else", () => {
    expect(servicesToQuiet(['golang-go', 'etcd-server', 'openssl'])).toEqual(['etcd']);
    expect(servicesToQuiet(['golang-go'])).toEqual([]);
  });

  it('only for packages of the list', () => {
    const list = parsePackageList(readFileSync(PACKAGE_LIST, 'utf8'));
    for (const pkg of Object.keys(QUIET_SERVICES)) expect(list).toContain(pkg);
  });
});

describe('missingPackages', () => {
  const wanted = ['golang-go', 'iputils-ping', 'e2fsprogs', 'libc6'];

  it('is empty when dpkg reports every package installed (multi-arch names included)', () => {
    const status = 'golang-go installed\niputils-ping installed\ne2fsprogs installed\nlibc6:amd64 installed\n';
    expect(missingPackages(wanted, status)).toEqual([]);
  });

  it('names packages dpkg does not know and those not fully installed, in the list order', () => {
    const status = 'golang-go installed\ne2fsprogs config-files\nlibc6 half-configured\n';
    expect(missingPackages(wanted, status)).toEqual(['iputils-ping', 'e2fsprogs', 'libc6']);
  });

  it('advice names every missing package and the command that installs them', () => {
    const advice = installAdvice(['golang-go', 'iputils-ping']);
    expect(advice).toContain('golang-go iputils-ping');
    expect(advice).toContain('sudo ./install.sh');
    expect(advice).toContain('sudo apt-get install golang-go iputils-ping');
  });
});

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && !e.parentPath.includes('node_modules') && !e.parentPath.includes('/bin'))
    .map((e) => join(e.parentPath, e.name));
}

describe('the project installs every package its tests ask for', () => {
  it('each "apt-get install X" hint in test/ names a package of install.sh or scripts/test-packages.txt', () => {
    const installSh = readFileSync(join(ROOT, 'install.sh'), 'utf8');
    const own = installSh.match(/^INSTALL_PACKAGES=\(([^)]*)\)/m);
    expect(own, 'install.sh keeps its packages in INSTALL_PACKAGES=(...)').not.toBeNull();
    const installed = new Set([...own![1]!.split(/\s+/).filter(Boolean), ...parsePackageList(readFileSync(PACKAGE_LIST, 'utf8'))]);
    const asked = new Map<string, string>();
    // This file's own examples are not hints.
    for (const file of filesUnder('test').filter((f) => f !== fileURLToPath(import.meta.url))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/apt-get install((?: +[a-z0-9][a-z0-9+.-]*[a-z0-9+])+)/g)) {
        for (const pkg of m[1]!.trim().split(/ +/)) asked.set(pkg, file.slice(ROOT.length));
      }
    }
    expect(asked.size).toBeGreaterThan(3);
    const notInstalled = [...asked].filter(([pkg]) => !installed.has(pkg)).map(([pkg, file]) => `${pkg} (${file})`);
    expect(notInstalled).toEqual([]);
  });
});
