// Reads deploy/*.yaml (what `kubectl apply -f deploy/` applies) into typed pieces for the manifest
// test and for the podman test, which runs the DaemonSet's container as the manifest says.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../support/build.js';

export const DEPLOY_DIR = join(ROOT, 'deploy');

export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

export interface Manifest {
  readonly file: string;
  readonly object: K8sObject;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { fieldRef?: { fieldPath: string }; configMapKeyRef?: { name: string; key: string } };
}

export interface VolumeMount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly?: boolean;
  readonly mountPropagation?: string;
}

export interface Probe {
  readonly exec: { readonly command: readonly string[] };
}

export interface Container {
  readonly name: string;
  readonly image: string;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly env: readonly EnvVar[];
  readonly volumeMounts: readonly VolumeMount[];
  readonly securityContext?: { readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[]; add?: string[] }; allowPrivilegeEscalation?: boolean };
  readonly startupProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly readinessProbe?: Probe;
}

export interface Volume {
  readonly name: string;
  readonly hostPath?: { readonly path: string; readonly type?: string };
  readonly configMap?: { readonly name: string; readonly items?: ReadonlyArray<{ key: string; path: string }> };
}

export interface PodSpec {
  readonly serviceAccountName: string;
  readonly hostNetwork?: boolean;
  readonly priorityClassName?: string;
  readonly tolerations?: ReadonlyArray<Record<string, unknown>>;
  readonly containers: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly volumes: readonly Volume[];
}

export interface DaemonSet extends K8sObject {
  readonly spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

export interface ConfigMap extends K8sObject {
  readonly data: Record<string, string>;
}

/** Every object of deploy/*.yaml|yml|json in the order kubectl applies them (file name order). */
export function loadManifests(): Manifest[] {
  const files = readdirSync(DEPLOY_DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort();
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(DEPLOY_DIR, file), 'utf8')).flatMap((doc) => {
      if (doc.errors.length) throw new Error(`deploy/${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const object = doc.toJS() as K8sObject | null;
      return object === null ? [] : [{ file, object }];
    }),
  );
}

export function only<T extends K8sObject>(manifests: readonly Manifest[], kind: string): T {
  const found = manifests.filter((m) => m.object.kind === kind);
  if (found.length !== 1) throw new Error(`deploy/ has ${found.length} ${kind} objects, expected 1`);
  return found[0]!.object as T;
}

/** The DaemonSet's reservoird container. */
export function daemonContainer(ds: DaemonSet): Container {
  const c = ds.spec.template.spec.containers.find((x) => x.name === 'reservoird');
  if (!c) throw new Error('the DaemonSet has no container named reservoird');
  return c;
}

/** The container's environment as the kubelet would give it on node `nodeName`. */
export function resolveEnv(container: Container, configMap: ConfigMap, nodeName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[v.name] = nodeName;
    else if (v.valueFrom?.configMapKeyRef) {
      const { name, key } = v.valueFrom.configMapKeyRef;
      if (name !== configMap.metadata.name || configMap.data[key] === undefined) throw new Error(`env ${v.name}: no key ${key} in ConfigMap ${name}`);
      env[v.name] = configMap.data[key];
    } else throw new Error(`env ${v.name}: a source this test does not know: ${JSON.stringify(v.valueFrom)}`);
  }
  return env;
}

export interface HostPathMount {
  readonly hostPath: string;
  readonly mount: VolumeMount;
}

export interface ConfigMapMount {
  readonly mount: VolumeMount;
  /** file name in the mount -> content */
  readonly files: Record<string, string>;
}

/** The container's mounts split by source; throws on a mount of an unknown or other volume. */
export function mountsOf(ds: DaemonSet, container: Container, configMap: ConfigMap): { hostPaths: HostPathMount[]; configMaps: ConfigMapMount[] } {
  const volumes = new Map(ds.spec.template.spec.volumes.map((v) => [v.name, v]));
  const hostPaths: HostPathMount[] = [];
  const configMaps: ConfigMapMount[] = [];
  for (const mount of container.volumeMounts) {
    const volume = volumes.get(mount.name);
    if (!volume) throw new Error(`volumeMount ${mount.name} names no volume`);
    if (volume.hostPath) hostPaths.push({ hostPath: volume.hostPath.path, mount });
    else if (volume.configMap) {
      if (volume.configMap.name !== configMap.metadata.name) throw new Error(`volume ${volume.name} mounts ConfigMap ${volume.configMap.name}, not ${configMap.metadata.name}`);
      const items = volume.configMap.items ?? Object.keys(configMap.data).map((key) => ({ key, path: key }));
      const files: Record<string, string> = {};
      for (const { key, path } of items) {
        const content = configMap.data[key];
        if (content === undefined) throw new Error(`volume ${volume.name}: no key ${key} in ConfigMap ${configMap.metadata.name}`);
        files[path] = content;
      }
      configMaps.push({ mount, files });
    } else throw new Error(`volume ${volume.name}: a kind this test does not know`);
  }
  return { hostPaths, configMaps };
}
