// What reservoird needs to know about Kubernetes objects, taken from the API's JSON and nothing
// more: the rest of the daemon never sees a client-node type. Pure: no I/O.

export const ANNOTATION_WHEN_DELETED = 'reservoir.io/when-deleted';
export const ANNOTATION_WHEN_SCALED = 'reservoir.io/when-scaled';
export const ANNOTATION_IPS = 'reservoir.io/ips';
export const ANNOTATION_IP_GROUP = 'reservoir.io/ip-group';
/** Set by the StatefulSet controller since Kubernetes 1.28; older pods carry the ordinal in their name only. */
export const LABEL_POD_INDEX = 'apps.kubernetes.io/pod-index';

export type RetentionPolicy = 'Delete' | 'Retain';

export interface OwnerFacts {
  readonly kind: string;
  readonly apiVersion: string;
  readonly name: string;
  readonly uid: string;
}

export interface PodFacts {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly nodeName: string | undefined;
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  /** The controller ownerReference, if any. */
  readonly controller: OwnerFacts | undefined;
}

export interface StatefulSetFacts {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly replicas: number;
  /** spec.ordinals.start (default 0): ordinals run start .. start+replicas-1. */
  readonly ordinalsStart: number;
  readonly annotations: Readonly<Record<string, string>>;
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}

function metadataOf(obj: any): { namespace: string; name: string; uid: string } | undefined {
  const m = obj?.metadata;
  if (!m || typeof m.name !== 'string' || typeof m.uid !== 'string') return undefined;
  return { namespace: typeof m.namespace === 'string' ? m.namespace : 'default', name: m.name, uid: m.uid };
}

export function podFacts(obj: any): PodFacts | undefined {
  const meta = metadataOf(obj);
  if (!meta) return undefined;
  const refs: any[] = Array.isArray(obj.metadata.ownerReferences) ? obj.metadata.ownerReferences : [];
  const ref = refs.find((r) => r && r.controller === true);
  return {
    ...meta,
    nodeName: typeof obj.spec?.nodeName === 'string' ? obj.spec.nodeName : undefined,
    annotations: stringMap(obj.metadata.annotations),
    labels: stringMap(obj.metadata.labels),
    controller:
      ref && typeof ref.name === 'string' && typeof ref.uid === 'string'
        ? { kind: String(ref.kind), apiVersion: String(ref.apiVersion), name: ref.name, uid: ref.uid }
        : undefined,
  };
}

export function statefulSetFacts(obj: any): StatefulSetFacts | undefined {
  const meta = metadataOf(obj);
  if (!meta) return undefined;
  const replicas = obj.spec?.replicas;
  const start = obj.spec?.ordinals?.start;
  return {
    ...meta,
    // The API defaults replicas to 1; a missing value in a watch event means the same.
    replicas: Number.isInteger(replicas) && replicas >= 0 ? replicas : 1,
    ordinalsStart: Number.isInteger(start) && start >= 0 ? start : 0,
    annotations: stringMap(obj.metadata.annotations),
  };
}

/** The StatefulSet that controls the pod, when it is an apps/v1 StatefulSet. */
export function statefulSetOwner(pod: PodFacts): OwnerFacts | undefined {
  const owner = pod.controller;
  return owner && owner.kind === 'StatefulSet' && owner.apiVersion === 'apps/v1' ? owner : undefined;
}

/**
 * The pod's ordinal: the pod-index label, else the number after "<statefulset>-" in its name
 * (never just "the digits at the end": a StatefulSet may itself be called "db-1").
 */
export function ordinalOf(pod: PodFacts, statefulSetName: string): number | undefined {
  const label = pod.labels[LABEL_POD_INDEX];
  if (label !== undefined && /^\d{1,9}$/.test(label)) return Number(label);
  const prefix = `${statefulSetName}-`;
  if (!pod.name.startsWith(prefix)) return undefined;
  const rest = pod.name.slice(prefix.length);
  return /^(0|[1-9]\d{0,8})$/.test(rest) ? Number(rest) : undefined;
}

export function retentionOf(annotations: Readonly<Record<string, string>>, key: string, fallback: RetentionPolicy): RetentionPolicy {
  // As in persistentVolumeClaimRetentionPolicy; "retain" is read as Retain rather than ignored.
  const value = annotations[key]?.trim().toLowerCase();
  return value === 'delete' ? 'Delete' : value === 'retain' ? 'Retain' : fallback;
}
