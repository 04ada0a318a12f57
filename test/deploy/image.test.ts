// The DaemonSet's container, for real: the image built by scripts/image.mjs (mmdebstrap root
// filesystem + packaged executables) runs under podman exactly as deploy/30-daemonset.yaml says
// (command, args, environment from the ConfigMap and the downward API, host network, read-only
// root, no capabilities), with each hostPath mapped to a directory of a temporary "host". It must
// install the plugin, its addon and the conflist there, serve the socket there, see network
// namespaces the "runtime" makes there after it started, and give a plugin run on the host leases.
// Needs root, podman, runc and mmdebstrap (.ci/run installs them); run it under the heavy lock.
import { readFileSync, readdirSync, statSync, openSync, closeSync, readSync, mkdirSync, writeFileSync, existsSync, accessSync, constants } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildImage } from '../../scripts/image.mjs';
import { INSTALLED_FILES } from '../../scripts/package.mjs';
import { BUILD_BIN, ensurePackaged } from '../e2e/support.js';
import { Cleanup } from '../support/cleanup.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { run, uniqueName } from '../support/netns.js';
import { must } from '../support/mounts.js';
import { removeDir } from '../support/tmp.js';
import { type ConfigMap, type DaemonSet, daemonContainer, loadManifests, mountsOf, only, resolveEnv } from './manifests.js';

/**
 * The hard limit of `name` ("Max open files") for this process, at most `cap`. podman asks the
 * runtime for more (1048576 files) than a process here may raise itself to, and the container
 * then fails to start; podman lowers its own process limit to 32768 when it starts.
 */
function hardLimit(name: string, cap = Infinity): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  if (!hard) throw new Error(`no ${name} in /proc/self/limits`);
  return Math.min(hard === 'unlimited' ? Infinity : Number(hard), cap);
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = probe();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describeWithPrereqs('the DaemonSet container under podman', ['root', 'podman', 'runc', 'mmdebstrap'], () => {
  const cleanup = new Cleanup();
  const manifests = loadManifests();
  const ds = only<DaemonSet>(manifests, 'DaemonSet');
  const configMap = only<ConfigMap>(manifests, 'ConfigMap');
  // an operator's edit of the ConfigMap: reclaim after 1 s instead of 60, so the test need not wait
  const edited: ConfigMap = { ...configMap, data: { ...configMap.data, 'reclaim-grace': '1' } };
  const container = daemonContainer(ds);
  const { hostPaths, configMaps } = mountsOf(ds, container, edited);
  const env = resolveEnv(container, edited, 'test-node');
  const name = uniqueName('rsv-ds-');
  const tag = `localhost/reservoir-test:${name}`;
  let host = '';
  /** A path of the node as seen from the host (our temp root). */
  const onHost = (path: string) => join(host, path);
  const conflistName = Object.keys(configMaps[0]?.files ?? {})[0] ?? '';
  const flag = (n: string) => container.args.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3) ?? '';
  const socket = flag('socket');
  const netnsDir = hostPaths.find((m) => m.mount.mountPropagation === 'HostToContainer')?.hostPath ?? '';

  const startContainer = () => {
    const args = ['--runtime', 'runc', 'run', '--detach', '--name', name, '--network', 'host', '--entrypoint', container.command[0]!];
    if (container.securityContext?.readOnlyRootFilesystem) args.push('--read-only');
    for (const cap of container.securityContext?.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    if (container.securityContext?.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    // podman would raise these past what this machine allows a process; keep them as they are
    const files = hardLimit('Max open files', 1 << 20);
    const processes = hardLimit('Max processes', 32768);
    args.push('--ulimit', `nofile=${files}:${files}`, '--ulimit', `nproc=${processes}:${processes}`);
    for (const { hostPath, mount } of hostPaths) {
      const opts = [mount.readOnly ? 'ro' : 'rw', ...(mount.mountPropagation === 'HostToContainer' ? ['rslave'] : [])];
      args.push('--volume', `${onHost(hostPath)}:${mount.mountPath}:${opts.join(',')}`);
    }
    configMaps.forEach(({ mount, files }, i) => {
      const dir = join(host, `.configmap-${i}`);
      mkdirSync(dir, { recursive: true });
      for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
      args.push('--volume', `${dir}:${mount.mountPath}:ro`);
    });
    for (const [k, v] of Object.entries(env)) args.push('--env', `${k}=${v}`);
    args.push(tag, ...container.args);
    must('podman', args);
  };
  const stopContainer = () => {
    run('podman', ['stop', '--time', '10', name], { timeoutMs: 30_000 });
    run('podman', ['rm', '--force', name], { timeoutMs: 30_000 });
  };
  const exec = (argv: readonly string[]) => run('podman', ['exec', name, ...argv], { timeoutMs: 30_000 });
  const probe = () => exec(container.livenessProbe!.exec.command);
  /** The leases, as an operator reads them: reservoirctl in the pod (kubectl exec). */
  const leases = (): Array<{ ip: string }> =>
    JSON.parse(must('podman', ['exec', name, posix.join(posix.dirname(container.command[0]!), 'reservoirctl'), 'leases', '--socket', socket, '-o', 'json'])).leases;

  /** The installed plugin, run on the host as a main plugin would run its IPAM. */
  const plugin = (command: 'ADD' | 'DEL', containerId: string, netns: string, pod: string) => {
    const conflist = JSON.parse(readFileSync(onHost(join(flag('cni-conf-dir'), conflistName)), 'utf8'));
    const entry = conflist.plugins[0];
    // The one path that differs from a real node: the host's root is our temp directory.
    const config = { cniVersion: conflist.cniVersion, name: conflist.name, ...entry, ipam: { ...entry.ipam, socket: onHost(entry.ipam.socket) } };
    const binDir = onHost(flag('cni-bin-dir'));
    const r = spawnSync(join(binDir, 'reservoir'), [], {
      input: JSON.stringify(config),
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: binDir,
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod}`,
      },
    });
    if (r.status !== 0) throw new Error(`plugin ${command} exit ${r.status}: ${r.stdout}${r.stderr}`);
    return r.stdout ? JSON.parse(r.stdout) : undefined;
  };

  /** A network namespace made the way a runtime makes one: bind-mounted at NETNS_DIR/NAME on the host. */
  const makeNetns = (ns: string) => {
    const file = onHost(join(netnsDir, ns));
    writeFileSync(file, '');
    must('unshare', [`--net=${file}`, 'true']);
    cleanup.addSync(`netns ${ns}`, () => removeNetns(ns));
    return join(netnsDir, ns);
  };
  const removeNetns = (ns: string) => {
    const file = onHost(join(netnsDir, ns));
    run('umount', [file]);
    removeDir(file);
  };
  const containerMounts = () => readFileSync(`/proc/${must('podman', ['inspect', '--format', '{{.State.Pid}}', name]).trim()}/mountinfo`, 'utf8');

  beforeAll(async () => {
    const started = Date.now();
    console.info(`deploy image test: ${ensurePackaged()}`);
    const image = buildImage({ tag, log: (line) => console.info(`deploy image test: ${line}`) });
    cleanup.addSync(`image ${tag}`, () => void run('podman', ['rmi', '--force', tag], { timeoutMs: 60_000 }));
    console.info(`deploy image test: image ${tag} ${(image.size / 1024 / 1024).toFixed(1)} MiB, ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // under os.tmpdir(): the installed plugin is executed from here (/dev/shm may be noexec)
    host = cleanup.tempDir('ds', tmpdir());
    for (const { hostPath } of hostPaths) mkdirSync(onHost(hostPath), { recursive: true }); // DirectoryOrCreate
    // The runtime's netns directory is a shared mount on a node (ip netns and containerd make it
    // so): namespaces mounted there later propagate into the pod's HostToContainer mount.
    const netnsOnHost = onHost(netnsDir);
    must('mount', ['--bind', netnsOnHost, netnsOnHost]);
    must('mount', ['--make-shared', netnsOnHost]);
    cleanup.addSync('netns dir mount', () => void run('umount', ['--lazy', netnsOnHost]));
    cleanup.addSync(`container ${name}`, stopContainer);
    startContainer();
    await until('the liveness probe to pass', () => probe().status === 0);
  });

  afterAll(async () => {
    if (host) console.info(`deploy image test: container log:\n${run('podman', ['logs', name]).stderr.split('\n').slice(-15).join('\n')}`);
    await cleanup.run();
  });

  it('installs the plugin, its addon and the conflist into the host directories', () => {
    const binDir = onHost(flag('cni-bin-dir'));
    expect(readdirSync(binDir).sort()).toEqual([...INSTALLED_FILES.plugin].sort());
    for (const file of INSTALLED_FILES.plugin) expect(readFileSync(join(binDir, file)).equals(readFileSync(join(BUILD_BIN, file))), file).toBe(true);
    accessSync(join(binDir, 'reservoir'), constants.X_OK);
    const confDir = onHost(flag('cni-conf-dir'));
    expect(readdirSync(confDir)).toEqual([conflistName]);
    expect(readFileSync(join(confDir, conflistName), 'utf8')).toBe(configMap.data[conflistName]);
  });

  it('serves the socket on the host and answers its probes', () => {
    expect(statSync(onHost(socket)).isSocket()).toBe(true);
    for (const p of [container.startupProbe!, container.livenessProbe!]) {
      const r = exec(p.exec.command);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/status\s+ok/);
    }
  });

  it('sees the network namespaces the runtime mounts on the host after it started', () => {
    const path = makeNetns(uniqueName('ns-'));
    // the namespace's own mount, propagated into the pod's mount namespace (nsfs), not an empty file
    const line = containerMounts()
      .split('\n')
      .find((l) => l.split(' ')[4] === path || l.split(' ')[4] === path.replace(/^\/var\/run\//, '/run/'));
    expect(line, `${path} in the container's mountinfo`).toMatch(/ - nsfs /);
  });

  it('gives a plugin on the host leases through it, and reclaims one whose namespace the runtime removed', async () => {
    const alive = makeNetns(uniqueName('ns-'));
    const doomedName = uniqueName('ns-');
    const doomed = makeNetns(doomedName);
    const a = plugin('ADD', `${name}-a`, alive, 'web-0');
    const b = plugin('ADD', `${name}-b`, doomed, 'web-1');
    const ipA = a.ips[0].address.split('/')[0];
    const ipB = b.ips[0].address.split('/')[0];
    expect(ipA).toMatch(/^10\.22\./);
    expect(ipB).not.toBe(ipA);
    expect(leases().map((l) => l.ip).sort()).toEqual([ipA, ipB].sort());
    const health = JSON.parse(must('podman', ['exec', name, ...container.livenessProbe!.exec.command, '-o', 'json'])) as { netns: Array<{ root: string; visible: boolean }> };
    expect(health.netns).toEqual([expect.objectContaining({ root: netnsDir, visible: true })]);

    removeNetns(doomedName);
    await until(`the lease of ${ipB} to be reclaimed`, () => !leases().some((l) => l.ip === ipB), 30_000);
    // the namespace that is still there keeps its lease (the daemon sees it through the mount)
    expect(leases().map((l) => l.ip)).toEqual([ipA]);
    plugin('DEL', `${name}-a`, alive, 'web-0');
    expect(leases()).toEqual([]);
  });

  it('replaces the plugin in place when the pod starts again, and keeps the leases on the host', async () => {
    const ns = makeNetns(uniqueName('ns-'));
    const lease = plugin('ADD', `${name}-c`, ns, 'web-2');
    const pluginPath = join(onHost(flag('cni-bin-dir')), 'reservoir');
    const before = statSync(pluginPath).ino;
    // a plugin run that is under way keeps reading the file it opened
    const fd = openSync(pluginPath, 'r');
    try {
      stopContainer();
      startContainer();
      await until('the restarted pod to pass its liveness probe', () => probe().status === 0);
      expect(statSync(pluginPath).ino).not.toBe(before);
      const size = statSync(pluginPath).size;
      const old = Buffer.alloc(size);
      expect(readSync(fd, old, 0, size, 0)).toBe(size);
      expect(old.equals(readFileSync(pluginPath))).toBe(true);
    } finally {
      closeSync(fd);
    }
    for (const dir of [flag('cni-bin-dir'), flag('cni-conf-dir')]) expect(readdirSync(onHost(dir)).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(existsSync(onHost(join(flag('state-dir'), 'reservoir.db')))).toBe(true);
    // the repeated ADD of the same attachment gets the same lease from the store on the host
    expect(plugin('ADD', `${name}-c`, ns, 'web-2').ips).toEqual(lease.ips);
    plugin('DEL', `${name}-c`, ns, 'web-2');
  });
}, { timeout: 600_000 });
