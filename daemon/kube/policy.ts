// The Kubernetes rules, pure: what an ADD becomes once the API has told us about its pod, and
// what happens to a StatefulSet's holds when it is deleted, recreated, scaled down or re-pinned.
import { type Ip, formatValue, parseIp } from '../../src/address.js';
import { parseGroupName } from '../../src/config.js';
import { ReservoirError } from '../../src/errors.js';
import type { CniInvocation } from '../../src/invocation.js';
import type { LeaseRecord, StatefulSetRecord } from '../store.js';
import {
  ANNOTATION_IPS,
  ANNOTATION_IP_GROUP,
  ANNOTATION_WHEN_DELETED,
  ANNOTATION_WHEN_SCALED,
  type PodFacts,
  type StatefulSetFacts,
  ordinalOf,
  retentionOf,
  statefulSetOwner,
} from './facts.js';

/** A StatefulSet pod's claim: the identity namespace/StatefulSet/ordinal, bound to the StatefulSet's UID. */
export interface StatefulSetClaim {
  readonly record: StatefulSetRecord;
  readonly ordinal: number;
}

/** An ADD as the daemon runs it: the plugin's invocation, plus what the API said. */
export interface AddRequest extends CniInvocation {
  readonly statefulSet?: StatefulSetClaim | undefined;
}

export function statefulSetRecord(sts: StatefulSetFacts, now: number): StatefulSetRecord {
  return {
    uid: sts.uid,
    namespace: sts.namespace,
    name: sts.name,
    whenDeleted: retentionOf(sts.annotations, ANNOTATION_WHEN_DELETED, 'Delete'),
    whenScaled: retentionOf(sts.annotations, ANNOTATION_WHEN_SCALED, 'Retain'),
    ordinalsStart: sts.ordinalsStart,
    ips: sts.annotations[ANNOTATION_IPS]?.trim() || null,
    updatedAt: now,
  };
}

/** reservoir.io/ips: "a,b,c" -> the IPs in order; a bad entry is the StatefulSet's error. */
export function pinnedIps(record: Pick<StatefulSetRecord, 'namespace' | 'name' | 'ips'>): Ip[] {
  if (record.ips === null) return [];
  return record.ips.split(',').map((text, i) => {
    try {
      return parseIp(text.trim());
    } catch {
      throw new ReservoirError(
        'INVALID_CONFIG',
        `invalid config: StatefulSet ${record.namespace}/${record.name}: annotation ${ANNOTATION_IPS} entry ${i} "${text.trim()}" is not an IP address`,
      );
    }
  });
}

/** The IP pinned to an ordinal: ordinal start+i gets the i-th IP. */
export function pinnedIpOf(record: StatefulSetRecord, ordinal: number): Ip | undefined {
  const ips = pinnedIps(record);
  if (ips.length === 0) return undefined;
  const index = ordinal - record.ordinalsStart;
  if (index < 0 || index >= ips.length) {
    throw new ReservoirError(
      'INVALID_CONFIG',
      `invalid config: StatefulSet ${record.namespace}/${record.name}: annotation ${ANNOTATION_IPS} pins ${ips.length} IPs to ordinals ${record.ordinalsStart}-${record.ordinalsStart + ips.length - 1}, but pod ${record.name}-${ordinal} has ordinal ${ordinal}; add an IP for it`,
    );
  }
  return ips[index];
}

/**
 * Re-read an ADD with what the API says about its pod. `reparse` parses the invocation again
 * with the pod's annotations (used when the runtime passed none). Rules: a pod whose controller
 * is an apps/v1 StatefulSet is stateful; an explicit kind (annotation, CNI_ARGS) still wins;
 * other pods are stateless. A StatefulSet's reservoir.io/ips pins its ordinals' IPs, and its
 * reservoir.io/ip-group names their group, unless the pod asks for IPs or a group itself.
 */
export function admit(
  inv: CniInvocation,
  reparse: (podAnnotations: Readonly<Record<string, string>>) => CniInvocation,
  pod: PodFacts,
  sts: StatefulSetFacts | undefined,
  now: number,
): AddRequest {
  const base = inv.annotationsFromRuntime ? inv : reparse(pod.annotations);
  const owner = statefulSetOwner(pod);
  const ordinal = owner && ordinalOf(pod, owner.name);
  // The API decides the kind (kindExplicit: the governing config's defaultKind does not override it).
  if (!owner || ordinal === undefined) return { ...base, kind: base.kindExplicit ? base.kind : 'stateless', kindExplicit: true, podUid: pod.uid };
  const kind = base.kindExplicit ? base.kind : 'stateful';
  if (kind === 'stateless') return { ...base, kind, kindExplicit: true, podUid: pod.uid };
  // The StatefulSet read may be of a newer incarnation than the pod's owner: only the owner's own counts.
  const own = sts && sts.uid === owner.uid ? sts : undefined;
  const record: StatefulSetRecord = own
    ? statefulSetRecord(own, now)
    : { uid: owner.uid, namespace: pod.namespace, name: owner.name, whenDeleted: 'Delete', whenScaled: 'Retain', ordinalsStart: 0, ips: null, updatedAt: now };
  let requestedIps = base.requestedIps;
  if (requestedIps.length === 0 && own) {
    const pinned = pinnedIpOf(record, ordinal);
    if (pinned) requestedIps = [pinned];
  }
  const groupAnnotation = own?.annotations[ANNOTATION_IP_GROUP]?.trim();
  const group = base.group ?? (groupAnnotation ? parseGroupName(groupAnnotation, `StatefulSet ${record.namespace}/${record.name} annotation ${ANNOTATION_IP_GROUP}`) : undefined);
  return { ...base, kind, kindExplicit: true, podUid: pod.uid, requestedIps, group, statefulSet: { record, ordinal } };
}

export interface HoldDecision {
  /** Detached holds to release now. */
  readonly release: readonly LeaseRecord[];
  /** Why, for the log. */
  readonly reason: string;
  /** The record as it should be kept; undefined = forget it (nothing of it is held any more). */
  readonly record: StatefulSetRecord | undefined;
  /** Re-pinned ordinals whose pods are running: the change waits for them, said loudly. */
  readonly refused: readonly string[];
}

/**
 * What happens to the holds of one StatefulSet (by UID) given what the API says now: `current`
 * is the StatefulSet of that namespace/name, or undefined when there is none. Holds still
 * attached to a container are never released here (their pod is still being torn down).
 */
export function decideHolds(record: StatefulSetRecord, current: StatefulSetFacts | undefined, holds: readonly LeaseRecord[], now: number): HoldDecision {
  if (holds.length === 0) return { release: [], reason: '', record: undefined, refused: [] };
  const detached = holds.filter((h) => h.containerId === null);
  if (!current || current.uid !== record.uid) {
    const why = current ? `recreated with UID ${current.uid}` : 'deleted';
    if (record.whenDeleted === 'Retain') return { release: [], reason: `StatefulSet ${why}; ${ANNOTATION_WHEN_DELETED}: Retain`, record, refused: [] };
    const left = holds.length - detached.length;
    return { release: detached, reason: `StatefulSet ${why}`, record: left > 0 ? record : undefined, refused: [] };
  }
  const next = statefulSetRecord(current, now);
  const release: LeaseRecord[] = [];
  const refused: string[] = [];
  const end = current.ordinalsStart + current.replicas;
  const outside = (h: LeaseRecord) => h.ordinal !== null && h.ordinal !== undefined && (h.ordinal < current.ordinalsStart || h.ordinal >= end);
  if (next.whenScaled === 'Delete') for (const hold of detached) if (outside(hold)) release.push(hold);
  // Checked on every pass, not only when the list changes: a refusal stands until its pod is recreated.
  if (next.ips !== null) {
    for (const hold of holds) {
      if (release.includes(hold) || hold.ordinal === null || hold.ordinal === undefined || outside(hold)) continue;
      let pinned: Ip | undefined;
      try {
        pinned = pinnedIpOf(next, hold.ordinal);
      } catch {
        pinned = undefined; // an ordinal the new list leaves out: its next ADD fails and says why
      }
      if (pinned?.family !== undefined && pinned.family !== hold.family) continue;
      if (pinned !== undefined && pinned.value === hold.ip) continue;
      const ip = formatValue(hold.family, hold.ip);
      if (hold.containerId !== null) {
        refused.push(
          `${ANNOTATION_IPS} of StatefulSet ${record.namespace}/${record.name} now pins ${pinned ? formatValue(pinned.family, pinned.value) : 'no IP'} to ordinal ${hold.ordinal}, but its running pod holds ${ip}: the change applies when that pod is recreated`,
        );
      } else release.push(hold);
    }
  }
  return { release, reason: release.length > 0 ? 'StatefulSet scaled down or re-pinned' : '', record: next, refused };
}
