// deploy/ is well-formed and agrees with the daemon, the CLI, the image and the conflist: the
// flags parse with reservoird's own parser, the socket the plugin is told is the one served,
// every host path the daemon uses is mounted from the same host path, and RBAC is least privilege.
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reservoirNetworksIn } from '../../daemon/config-dir.js';
import { parseDaemonFlags } from '../../daemon/flags.js';
import { IMAGE_CNI_DIR, IMAGE_LIB_DIR, DEFAULT_TAG } from '../../scripts/image.mjs';
import { INSTALLED_FILES } from '../../scripts/package.mjs';
import { parseIpamConfig } from '../../src/config.js';

import { ROOT } from '../support/build.js';
import { type ConfigMap, type DaemonSet, type K8sObject, daemonContainer, loadManifests, mountsOf, only, resolveEnv } from './manifests.js';

const manifests = loadManifests();
const ds = only<DaemonSet>(manifests, 'DaemonSet');
const configMap = only<ConfigMap>(manifests, 'ConfigMap');
const container = daemonContainer(ds);
const env = resolveEnv(container, configMap, 'node-1');
const flags = parseDaemonFlags([...container.args], env);
const { hostPaths, configMaps } = mountsOf(ds, container, configMap);
const pod = ds.spec.template.spec;

describe('deploy/ manifests', () => {
  it('hold one of each object, the Namespace applied first, everything else in it', () => {
    expect(manifests.map((m) => m.object.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
    const namespace = only<K8sObject>(manifests, 'Namespace').metadata.name;
    expect(manifests[0]!.object.kind).toBe('Namespace');
    for (const { object } of manifests) {
      if (['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(object.kind)) expect(object.metadata.namespace).toBeUndefined();
      else expect(object.metadata.namespace, `${object.kind} ${object.metadata.name}`).toBe(namespace);
    }
  });

  it('give reservoird read access to pods and statefulsets and get on nodes, nothing more', () => {
    const role = only<K8sObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }>(manifests, 'ClusterRole');
    const grants = role.rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g || 'core'}/${res}:${v}`)))).sort();
    expect(grants).toEqual(['apps/statefulsets:get', 'apps/statefulsets:list', 'apps/statefulsets:watch', 'core/nodes:get', 'core/pods:get', 'core/pods:list', 'core/pods:watch']);
    const binding = only<K8sObject & { roleRef: { kind: string; name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> }>(manifests, 'ClusterRoleBinding');
    const account = only<K8sObject>(manifests, 'ServiceAccount');
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
    expect(pod.serviceAccountName).toBe(account.metadata.name);
  });

  it('run the DaemonSet on the host network, node-critical, on every node whatever its taints', () => {
    expect(ds.spec.selector.matchLabels).toEqual(expect.objectContaining(ds.spec.template.metadata.labels));
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(container.image).toBe(DEFAULT_TAG);
  });

  it('start the image executables with flags and environment twins that reservoird knows', () => {
    expect(container.command).toEqual([posix.join(IMAGE_LIB_DIR, INSTALLED_FILES.daemon[0]!)]);
    expect(flags.installCni).toBe(IMAGE_CNI_DIR);
    // parseDaemonFlags is strict, so an unknown flag would have thrown above; every RESERVOIR_*
    // variable must be read by it too (an unread one would be a silent no-op)
    const flagsSource = readFileSync(join(ROOT, 'daemon', 'flags.ts'), 'utf8');
    for (const name of Object.keys(env)) expect(flagsSource, `env ${name}`).toContain(`env.${name}`);
    expect(env.RESERVOIR_NODE_NAME).toBe('node-1');
    expect(container.env.find((v) => v.name === 'RESERVOIR_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
  });

  it('mount every host directory the daemon uses from the same path on the host', () => {
    const sameOnHost = (path: string) => hostPaths.find((m) => m.mount.mountPath === path && m.hostPath === path && !m.mount.readOnly);
    expect(sameOnHost(dirname(flags.socket)), `socket dir ${dirname(flags.socket)}`).toBeDefined();
    expect(sameOnHost(flags.stateDir), `state dir ${flags.stateDir}`).toBeDefined();
    expect(dirname(flags.dbPath)).toBe(flags.stateDir);
    expect(sameOnHost(flags.cniConfDir!), `conf dir ${flags.cniConfDir}`).toBeDefined();
    expect(sameOnHost(flags.cniBinDir), `bin dir ${flags.cniBinDir}`).toBeDefined();
    // the runtime's netns paths are host paths: same path, read-only, host mounts propagated in
    const netns = hostPaths.find((m) => m.hostPath === '/var/run/netns');
    expect(netns?.mount).toMatchObject({ mountPath: '/var/run/netns', readOnly: true, mountPropagation: 'HostToContainer' });
    for (const v of pod.volumes) expect(container.volumeMounts.map((m) => m.name), `volume ${v.name} is mounted`).toContain(v.name);
  });

  it('hand reservoird a conflist that is valid, talks to the socket served, and is mounted where --install-conflist reads it', () => {
    const source = configMaps.find((c) => posix.join(c.mount.mountPath, posix.basename(flags.installConflist!)) === flags.installConflist);
    expect(source, `--install-conflist ${flags.installConflist} comes from the ConfigMap`).toBeDefined();
    const text = source!.files[posix.basename(flags.installConflist!)]!;
    expect(posix.basename(flags.installConflist!)).toMatch(/\.conflist$/);
    const networks = reservoirNetworksIn(text);
    expect(networks.length).toBeGreaterThan(0);
    for (const { ipam } of networks) {
      expect(parseIpamConfig(ipam).socket).toBe(flags.socket);
    }
    const plugin = (JSON.parse(text) as { plugins: Array<{ capabilities?: Record<string, boolean> }> }).plugins[0]!;
    expect(plugin.capabilities).toMatchObject({ 'io.kubernetes.cri.pod-annotations': true, ips: true });
  });

  it('probe the daemon with reservoirctl health on the socket it serves', () => {
    const ctl = posix.join(IMAGE_LIB_DIR, 'reservoirctl');
    expect(INSTALLED_FILES.aliases.reservoirctl).toBe(INSTALLED_FILES.daemon[0]);
    for (const probe of [container.startupProbe, container.livenessProbe]) {
      expect(probe?.exec.command).toEqual([ctl, 'health', '--socket', flags.socket]);
    }
  });

  it('run with a read-only root file system, no capabilities and no privilege escalation', () => {
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(container.securityContext?.capabilities?.add).toBeUndefined();
  });
});
