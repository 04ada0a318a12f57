// Where a cluster network lives in etcd (README, "Cluster networks", documents this layout):
//
//   PREFIX/v1/networks/NET                      the network's agreed config (first registration fixes its ranges)
//   PREFIX/v1/leases/NET/FAMILY/HEXIP           one key per leased or held IP: the claim itself
//   PREFIX/v1/apps/NET/APP                      a stateful app's IPs: one hold per app in the cluster
//   PREFIX/v1/reserved/NET/FAMILY/HEXSTART      one key per reserved entry
//   PREFIX/v1/nodes/NODE                        a node's report (start, version, journal size, last check), for `check`
//   PREFIX/v1/nodes/NODE/repair                 a request that NODE run `check --repair` (any node's --repair writes it)
//
// Addresses are fixed-width hex (src/address.ts toKey), so keys sort like addresses and "every
// lease inside a reserved entry" is one key range. No key is written by every ADD of a network:
// an ADD writes its IP's key (and, for a stateful app, the app's key).
// Pure: no I/O.
import { type Family, fromKey, toKey } from '../../src/address.js';
import type { LeaseRecord, NetworkRecord, ReservedRecord } from '../store.js';

export const LAYOUT_VERSION = 'v1';

export type ClusterKey =
  | { readonly kind: 'network'; readonly network: string }
  | { readonly kind: 'lease'; readonly network: string; readonly family: Family; readonly ip: bigint }
  | { readonly kind: 'app'; readonly network: string; readonly app: string }
  | { readonly kind: 'reserved'; readonly network: string; readonly family: Family; readonly start: bigint }
  | { readonly kind: 'node'; readonly node: string }
  | { readonly kind: 'repair'; readonly node: string };

export class KeyLayout {
  readonly root: string;

  constructor(prefix: string) {
    this.root = `${prefix.replace(/\/+$/, '')}/${LAYOUT_VERSION}/`;
  }

  network(network: string): string {
    return `${this.root}networks/${seg(network)}`;
  }

  lease(network: string, family: Family, ip: bigint): string {
    return `${this.leases(network)}${family}/${toKey(family, ip)}`;
  }

  /** Every lease key of a network starts with this. */
  leases(network: string): string {
    return `${this.root}leases/${seg(network)}/`;
  }

  /** [from, to) covering the lease keys of addresses start..end of one family. */
  leaseRange(network: string, family: Family, start: bigint, end: bigint): { key: string; rangeEnd: string } {
    return { key: this.lease(network, family, start), rangeEnd: `${this.lease(network, family, end)}\u0000` };
  }

  app(network: string, app: string): string {
    return `${this.root}apps/${seg(network)}/${seg(app)}`;
  }

  reserved(network: string, family: Family, start: bigint): string {
    return `${this.reservedOf(network)}${family}/${toKey(family, start)}`;
  }

  /** Every reserved-entry key of a network starts with this. */
  reservedOf(network: string): string {
    return `${this.root}reserved/${seg(network)}/`;
  }

  node(node: string): string {
    return `${this.root}nodes/${seg(node)}`;
  }

  repair(node: string): string {
    return `${this.node(node)}/repair`;
  }

  /** Every node report and repair request starts with this. */
  nodes(): string {
    return `${this.root}nodes/`;
  }

  keyOf(key: ClusterKey): string {
    switch (key.kind) {
      case 'network':
        return this.network(key.network);
      case 'lease':
        return this.lease(key.network, key.family, key.ip);
      case 'app':
        return this.app(key.network, key.app);
      case 'reserved':
        return this.reserved(key.network, key.family, key.start);
      case 'node':
        return this.node(key.node);
      case 'repair':
        return this.repair(key.node);
    }
  }

  /** What an etcd key under the root names; undefined for a key this layout does not know. */
  parse(key: string): ClusterKey | undefined {
    if (!key.startsWith(this.root)) return undefined;
    const parts = key.slice(this.root.length).split('/');
    const [kind] = parts;
    try {
      if (kind === 'networks' && parts.length === 2) return { kind: 'network', network: unseg(parts[1]!) };
      if (kind === 'leases' && parts.length === 4) return { kind: 'lease', network: unseg(parts[1]!), family: familyOf(parts[2]!), ip: fromKey(parts[3]!) };
      if (kind === 'apps' && parts.length === 3) return { kind: 'app', network: unseg(parts[1]!), app: unseg(parts[2]!) };
      if (kind === 'reserved' && parts.length === 4) return { kind: 'reserved', network: unseg(parts[1]!), family: familyOf(parts[2]!), start: fromKey(parts[3]!) };
      if (kind === 'nodes' && parts.length === 2) return { kind: 'node', node: unseg(parts[1]!) };
      if (kind === 'nodes' && parts.length === 3 && parts[2] === 'repair') return { kind: 'repair', node: unseg(parts[1]!) };
    } catch {
      return undefined;
    }
    return undefined;
  }
}

/** One path segment: names may hold "/" (apps are namespace/name). */
function seg(text: string): string {
  return encodeURIComponent(text);
}

function unseg(text: string): string {
  return decodeURIComponent(text);
}

function familyOf(text: string): Family {
  if (text === '4') return 4;
  if (text === '6') return 6;
  throw new Error(`not a family: ${text}`);
}

/** A lease as stored in etcd: the record, its node, and the unit that wrote it (read back after an unknown outcome). */
export type LeaseValue = Required<Omit<LeaseRecord, 'network' | 'family' | 'ip'>> & { readonly unit: string };

export function encodeLease(lease: LeaseRecord, unit: string): string {
  const value: LeaseValue = {
    containerId: lease.containerId,
    ifname: lease.ifname,
    netns: lease.netns,
    app: lease.app,
    kind: lease.kind,
    createdAt: lease.createdAt,
    detachedAt: lease.detachedAt,
    podUid: lease.podUid ?? null,
    ownerUid: lease.ownerUid ?? null,
    ordinal: lease.ordinal ?? null,
    node: lease.node ?? null,
    unit,
  };
  return JSON.stringify(value);
}

export function decodeLease(network: string, family: Family, ip: bigint, text: string): LeaseRecord & { readonly unit: string } {
  const v = JSON.parse(text) as LeaseValue;
  return {
    network,
    family,
    ip,
    containerId: v.containerId,
    ifname: v.ifname,
    netns: v.netns,
    app: v.app,
    kind: v.kind,
    createdAt: v.createdAt,
    detachedAt: v.detachedAt,
    podUid: v.podUid,
    ownerUid: v.ownerUid,
    ordinal: v.ordinal,
    node: v.node,
    unit: v.unit,
  };
}

export interface NetworkValue {
  readonly ipam: string;
  readonly file: string | null;
  readonly reservedConflicts: readonly string[];
  readonly updatedAt: number;
  /** The node that wrote this version (the first registration names who fixed the ranges). */
  readonly node: string;
  readonly unit: string;
}

export function encodeNetwork(record: NetworkRecord, node: string, unit: string): string {
  const value: NetworkValue = { ipam: record.ipam, file: record.file, reservedConflicts: record.reservedConflicts, updatedAt: record.updatedAt, node, unit };
  return JSON.stringify(value);
}

export function decodeNetwork(name: string, text: string): NetworkRecord & { readonly node: string; readonly unit: string } {
  const v = JSON.parse(text) as NetworkValue;
  return { name, ipam: v.ipam, file: v.file, reservedConflicts: v.reservedConflicts, updatedAt: v.updatedAt, node: v.node, unit: v.unit };
}

export interface ReservedValue {
  readonly end: string;
  readonly group: string | null;
  readonly note: string | null;
  readonly source: 'config' | 'operator';
  readonly entry: string;
  readonly namespaces: readonly string[] | null;
  readonly unit: string;
}

export function encodeReserved(record: Omit<ReservedRecord, 'id'>, unit: string): string {
  const value: ReservedValue = { end: toKey(record.family, record.end), group: record.group, note: record.note, source: record.source, entry: record.entry, namespaces: record.namespaces, unit };
  return JSON.stringify(value);
}

export function decodeReserved(network: string, family: Family, start: bigint, text: string): Omit<ReservedRecord, 'id'> & { readonly unit: string } {
  const v = JSON.parse(text) as ReservedValue;
  return { network, family, start, end: fromKey(v.end), group: v.group, note: v.note, source: v.source, entry: v.entry, namespaces: v.namespaces, unit: v.unit };
}

/** A stateful app's IPs, by family and address: the app key's value. */
export function encodeApp(ips: ReadonlyArray<{ family: Family; ip: bigint }>, unit: string): string {
  return JSON.stringify({ ips: ips.map((x) => `${x.family}/${toKey(x.family, x.ip)}`).sort(), unit });
}

/** The IPs an app key's value names (none for a value this layout cannot read). */
export function decodeApp(text: string): Array<{ family: Family; ip: bigint }> {
  try {
    const { ips } = JSON.parse(text) as { ips?: unknown };
    if (!Array.isArray(ips)) return [];
    return ips.flatMap((x) => {
      const [family, key] = typeof x === 'string' ? x.split('/') : [];
      return family && key ? [{ family: familyOf(family), ip: fromKey(key) }] : [];
    });
  } catch {
    return [];
  }
}

/** The unit stamp of any value this layout writes. */
export function unitOf(text: string): string | undefined {
  try {
    const unit = (JSON.parse(text) as { unit?: unknown }).unit;
    return typeof unit === 'string' ? unit : undefined;
  } catch {
    return undefined;
  }
}
