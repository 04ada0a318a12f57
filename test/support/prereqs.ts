// The one registry of what tests need from the host beyond Node (root, network namespaces, tmpfs,
// setpriv, ext4 on a loop device, the libcni harness, Debian's CNI plugins, ping): how to probe
// each one and what to install when it is missing. describeWithPrereqs (./describe-with-prereqs.ts)
// turns a missing one into a skip that names what to install, or, under CI=true, a failure.
// No vitest import here: the benchmark asks the same registry (bench/helpers.ts).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mountSource } from './mounts.js';
import { CNI_PLUGIN_DIR, HARNESS_BIN, buildHarness, pingAvailable, randomSuffix, run } from './netns.js';
import { tempDir } from './tmp.js';

export type Prereq = 'root' | 'netns' | 'tmpfs' | 'ext4-loop' | 'setpriv' | 'harness' | 'bridge' | 'host-local' | 'macvlan' | 'ping' | 'promtool' | 'chromium' | 'podman' | 'runc' | 'mmdebstrap' | 'etcd' | 'openssl';

/** Debian's promtool (package prometheus) and chromium, where the metrics and status page tests find them. */
export const PROMTOOL = '/usr/bin/promtool';
export const CHROMIUM = '/usr/bin/chromium';
/** Debian's etcd (package etcd-server), which the cluster tests and benchmark start on loopback. */
export const ETCD = '/usr/bin/etcd';

/** A CI machine that silently skips a test proves nothing: there, a missing prerequisite fails. */
export const CI = process.env.CI === 'true' || process.env.CI === '1';

const isRoot = () => process.getuid?.() === 0;

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function failure(what: string, r: { stderr: string; error?: Error }): string {
  return `${what} failed: ${(r.error?.message ?? r.stderr).trim()}`;
}

function onPath(command: string): string | undefined {
  return run('sh', ['-c', `command -v ${command}`]).status === 0 ? undefined : `${command} not found on PATH`;
}

function cniPlugin(name: string): string | undefined {
  const file = join(CNI_PLUGIN_DIR, name);
  return isExecutable(file) ? undefined : `${file} not found`;
}

/** Each prerequisite: a probe (undefined when present, else why not) and what to install. */
const REGISTRY: Record<Prereq, { readonly probe: () => string | undefined; readonly install: string }> = {
  root: {
    probe: () => (isRoot() ? undefined : 'not running as root (uid 0)'),
    install: 'run the tests as root (namespaces, mounts and CNI plugins need CAP_NET_ADMIN/CAP_SYS_ADMIN)',
  },
  netns: {
    probe: () => {
      if (!isRoot()) return 'ip netns needs root';
      const name = `rsv-probe-${randomSuffix(6)}`;
      const r = run('ip', ['netns', 'add', name]);
      if (r.error) return `ip not found: ${r.error.message}`;
      run('ip', ['netns', 'del', name]);
      return r.status === 0 ? undefined : failure('ip netns add', r);
    },
    install: 'apt-get install iproute2 (and a kernel/container allowing `ip netns add`)',
  },
  tmpfs: {
    probe: () => {
      if (!isRoot()) return 'mounting a tmpfs needs root';
      const dir = tempDir('probe');
      try {
        const r = run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
        if (r.status !== 0) return failure('mount -t tmpfs', r);
        run('umount', [dir]);
        return undefined;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    install: 'apt-get install mount (util-linux), and a container allowed to mount (podman --privileged)',
  },
  'ext4-loop': {
    probe: () => {
      if (!isRoot()) return 'a loop device needs root';
      const dir = tempDir('probe');
      const image = join(dir, 'probe.img');
      const mnt = join(dir, 'mnt');
      try {
        mkdirSync(mnt);
        const steps: Array<[string, string[]]> = [
          ['truncate', ['-s', '4M', image]],
          ['mkfs.ext4', ['-q', image]],
          ['mount', ['-o', 'loop,errors=remount-ro', image, mnt]],
        ];
        for (const [cmd, args] of steps) {
          const r = run(cmd, args);
          if (r.status !== 0) return failure(cmd, r);
        }
        const device = mountSource(mnt);
        const trigger = device ? join('/sys/fs/ext4', device.replace(/^\/dev\//, ''), 'trigger_fs_error') : '';
        const ok = trigger !== '' && existsSync(trigger);
        run('umount', [mnt]);
        return ok ? undefined : `no ${trigger || 'mount source'}`;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    install: 'apt-get install e2fsprogs util-linux, and loop devices in the container (podman --privileged)',
  },
  setpriv: {
    probe: () => {
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
      return r.status === 0 ? undefined : 'setpriv cannot drop to uid 65534';
    },
    install: 'apt-get install util-linux (setpriv), and run as root',
  },
  harness: {
    probe: () => {
      const err = buildHarness();
      if (err) return `cannot build ${HARNESS_BIN}: ${err}`;
      return isExecutable(HARNESS_BIN) ? undefined : `${HARNESS_BIN} missing after build`;
    },
    install: 'apt-get install golang-go golang-github-appc-cni-dev, then sh test/harness/build.sh',
  },
  bridge: { probe: () => cniPlugin('bridge'), install: 'apt-get install containernetworking-plugins (provides /usr/lib/cni/bridge)' },
  'host-local': { probe: () => cniPlugin('host-local'), install: 'apt-get install containernetworking-plugins (provides /usr/lib/cni/host-local)' },
  macvlan: { probe: () => cniPlugin('macvlan'), install: 'apt-get install containernetworking-plugins (provides /usr/lib/cni/macvlan)' },
  ping: { probe: () => (pingAvailable() ? undefined : 'ping not found'), install: 'apt-get install iputils-ping' },
  promtool: { probe: () => (isExecutable(PROMTOOL) ? undefined : `${PROMTOOL} not found`), install: "apt-get install prometheus (Debian's, for promtool check metrics)" },
  chromium: {
    probe: () => (isExecutable(CHROMIUM) ? undefined : `${CHROMIUM} not found`),
    install: "apt-get install chromium (Debian's; puppeteer-core drives it and downloads nothing)",
  },
  podman: { probe: () => onPath('podman'), install: 'apt-get install podman' },
  // podman runs the image test's container with runc: crun refuses a host whose cgroup v2
  // hierarchy has controllers beside the v1 ones (this machine's kind)
  runc: { probe: () => onPath('runc'), install: 'apt-get install runc' },
  mmdebstrap: { probe: () => onPath('mmdebstrap'), install: 'apt-get install mmdebstrap' },
  etcd: { probe: () => (isExecutable(ETCD) ? undefined : `${ETCD} not found`), install: "apt-get install etcd-server (Debian's etcd 3.4; the cluster tests start their own members)" },
  openssl: { probe: () => onPath('openssl'), install: 'apt-get install openssl (the TLS test makes its certificates)' },
};

const probed = new Map<Prereq, string | undefined>();

/** What is missing of `needs`, each as "name: why -> what to install" ([] when all are present). */
export function missingPrereqs(needs: readonly Prereq[]): string[] {
  const missing: string[] = [];
  for (const need of needs) {
    if (!probed.has(need)) probed.set(need, REGISTRY[need].probe());
    const why = probed.get(need);
    if (why !== undefined) missing.push(`${need}: ${why} -> ${REGISTRY[need].install}`);
  }
  return missing;
}
