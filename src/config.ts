// The IPAM configuration: raw JSON in, a normalized typed config out, in one pass. Nothing after
// this module looks at raw JSON. Keys and defaults follow host-local, so an operator switches by
// changing "type"; our own keys are `socket`, `timeout`, `reserved` (with per-entry `namespaces`), `defaultKind`, `holdFor`, `scope`.
import {
  AddressSyntaxError,
  type Cidr,
  type Family,
  type Ip,
  cidrContains,
  cidrFirst,
  cidrLast,
  familyBits,
  formatCidr,
  formatValue,
  parseCidr,
  parseIp,
} from './address.js';
import type { Dns, Route } from './cni.js';
import { DEFAULT_SOCKET, DEFAULT_TIMEOUT_MS, MAX_SOCKET_PATH_BYTES, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, durationMs, isSocketPath } from './defaults.js';
import { ReservoirError } from './errors.js';


export type AppKind = 'stateless' | 'stateful';
export const APP_KINDS: readonly AppKind[] = ['stateless', 'stateful'];

export interface IpRange {
  readonly subnet: Cidr;
  /** First and last allocatable address (inclusive). */
  readonly start: bigint;
  readonly end: bigint;
  readonly gateway: bigint | undefined;
}

export interface RangeSet {
  readonly family: Family;
  readonly ranges: readonly IpRange[];
}

/** An inclusive interval of addresses of one family. */
export interface Interval {
  readonly family: Family;
  readonly start: bigint;
  readonly end: bigint;
}

export interface ReservedSpec extends Interval {
  /** The entry as the operator wrote it: "10.0.0.50", "10.0.0.60-10.0.0.69" or "10.0.1.0/28". */
  readonly entry: string;
  readonly group: string | undefined;
  readonly note: string | undefined;
  /** Namespace globs of the pods that may claim it; undefined = any pod. */
  readonly namespaces: readonly string[] | undefined;
}

export interface IpamConfig {
  readonly rangeSets: readonly RangeSet[];
  readonly routes: readonly Route[];
  readonly dns: Dns | undefined;
  readonly reserved: readonly ReservedSpec[];
  readonly socket: string;
  readonly timeoutMs: number;
  readonly defaultKind: AppKind;
  /** How long a detached stateful hold survives; undefined = until released. */
  readonly holdForMs: number | undefined;
  /** "node": this node's daemon alone (SQLite); "cluster": shared by every daemon on the same etcd. */
  readonly scope: NetworkScope;
}

export type NetworkScope = 'node' | 'cluster';

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const GROUP_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export function configError(field: string, problem: string): ReservoirError {
  return new ReservoirError('INVALID_CONFIG', `invalid config: ${field}: ${problem}`);
}

export function isNetworkName(value: unknown): value is string {
  return typeof value === 'string' && NETWORK_NAME.test(value);
}

export function parseNetworkName(value: unknown, field = 'name'): string {
  if (!isNetworkName(value)) {
    throw configError(
      field,
      `${show(value)} is not a valid network name (letters, digits, "_", ".", "-"; starting with a letter or digit; at most 128 characters)`,
    );
  }
  return value;
}

export function parseGroupName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !GROUP_NAME.test(value)) {
    throw configError(field, `${show(value)} is not a valid group name (letters, digits, "_", ".", "-"; at most 63 characters)`);
  }
  return value;
}

/**
 * parseIpamConfig by the ipam's JSON text: the daemon sees the same few ipam objects in every
 * request, and parsing one (CIDRs, ranges, overlaps) was ~5% of an ADD. Parsing is pure and its
 * result readonly, so a hit is the very config a parse would build; failures are not kept (they
 * throw afresh, same error). Keys are JSON texts, so only JSON-equal objects share an entry.
 */
const IPAM_CACHE_SIZE = 64;
const ipamCache = new Map<string, IpamConfig>();

export function parseIpamConfigCached(raw: Record<string, unknown>): IpamConfig {
  let key: string | undefined;
  try {
    key = JSON.stringify(raw);
  } catch {
    // not JSON-serialisable (BigInt, cycle): no key, parse it every time
  }
  if (key === undefined) return parseIpamConfig(raw);
  const hit = ipamCache.get(key);
  if (hit) return hit;
  const parsed = parseIpamConfig(raw);
  if (ipamCache.size >= IPAM_CACHE_SIZE) ipamCache.delete(ipamCache.keys().next().value!);
  ipamCache.set(key, parsed);
  return parsed;
}

/** Parse the `ipam` object of a network configuration. */
export function parseIpamConfig(raw: unknown): IpamConfig {
  const ipam = asObject(raw, 'ipam');
  const rangeSets = parseRangeSets(ipam);
  const reserved = parseReservedList(ipam.reserved, rangeSets, 'ipam.reserved');
  return {
    rangeSets,
    routes: parseRoutes(ipam.routes),
    dns: parseDns(ipam.dns),
    reserved,
    socket: parseSocket(ipam.socket),
    timeoutMs: ipam.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(ipam.timeout, 'ipam.timeout', MIN_TIMEOUT_MS, MAX_TIMEOUT_MS),
    defaultKind: parseKind(ipam.defaultKind ?? 'stateless', 'ipam.defaultKind'),
    holdForMs: ipam.holdFor === undefined ? undefined : parseDuration(ipam.holdFor, 'ipam.holdFor', 1_000, 10 * 365 * 86_400_000),
    scope: parseScope(ipam.scope),
  };
}

function parseScope(value: unknown): NetworkScope {
  if (value === undefined || value === 'node' || value === 'cluster') return value ?? 'node';
  throw configError('ipam.scope', `${show(value)} is not a scope; use "node" (this node's daemon, the default) or "cluster" (shared through etcd by every node)`);
}

export function parseKind(value: unknown, field: string): AppKind {
  if (value === 'stateless' || value === 'stateful') return value;
  throw configError(field, `${show(value)} is not an app kind; use "stateless" or "stateful"`);
}

function parseSocket(value: unknown): string {
  if (value === undefined) return DEFAULT_SOCKET;
  if (!isSocketPath(value)) throw configError('ipam.socket', `${show(value)} must be an absolute path of at most ${MAX_SOCKET_PATH_BYTES} bytes`);
  return value;
}

/** "500ms", "5s", "30m", "24h", "7d" -> milliseconds, within [min, max]. */
export function parseDuration(value: unknown, field: string, minMs: number, maxMs: number): number {
  const ms = durationMs(value);
  if (ms === undefined) throw configError(field, `${show(value)} is not a duration; write e.g. "500ms", "5s", "30m", "24h" or "7d"`);
  if (ms < minMs || ms > maxMs) {
    throw configError(field, `${show(value)} is out of bounds (${minMs} ms to ${maxMs} ms)`);
  }
  return Math.round(ms);
}

function parseRangeSets(ipam: Record<string, unknown>): RangeSet[] {
  let rawSets: unknown;
  if (ipam.ranges !== undefined) {
    if (ipam.subnet !== undefined) throw configError('ipam.subnet', 'use either "subnet" or "ranges", not both');
    rawSets = ipam.ranges;
  } else if (ipam.subnet !== undefined) {
    // host-local's older single-range form; errors name the keys as written ("ipam.rangeStart").
    const legacy = { subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway };
    const range = parseRange(legacy, 'ipam');
    return [{ family: range.subnet.family, ranges: [range] }];
  } else {
    throw configError('ipam.ranges', 'missing; give at least one range set, e.g. [[{"subnet": "10.22.0.0/16"}]]');
  }
  if (!Array.isArray(rawSets) || rawSets.length === 0) {
    throw configError('ipam.ranges', 'must be a non-empty array of range sets (arrays of ranges)');
  }
  if (rawSets.length > 16) throw configError('ipam.ranges', `${rawSets.length} range sets; at most 16 are supported`);
  const sets = rawSets.map((rawSet, i) => parseRangeSet(rawSet, `ipam.ranges[${i}]`));
  const all = sets.flatMap((set, i) => set.ranges.map((range, j) => ({ range, where: `ipam.ranges[${i}][${j}]` })));
  for (let a = 0; a < all.length; a++) {
    for (let b = a + 1; b < all.length; b++) {
      const x = all[a]!;
      const y = all[b]!;
      if (x.range.subnet.family === y.range.subnet.family && x.range.start <= y.range.end && y.range.start <= x.range.end) {
        throw configError(y.where, `range ${describeRange(y.range)} overlaps ${x.where} (${describeRange(x.range)})`);
      }
    }
  }
  return sets;
}

function parseRangeSet(rawSet: unknown, where: string): RangeSet {
  if (!Array.isArray(rawSet) || rawSet.length === 0) {
    throw configError(where, 'must be a non-empty array of ranges, e.g. [{"subnet": "10.22.0.0/16"}]');
  }
  if (rawSet.length > 64) throw configError(where, `${rawSet.length} ranges; at most 64 per range set`);
  const ranges = rawSet.map((raw, j) => parseRange(raw, `${where}[${j}]`));
  const family = ranges[0]!.subnet.family;
  ranges.forEach((range, j) => {
    if (range.subnet.family !== family) {
      throw configError(`${where}[${j}].subnet`, `a range set holds one address family; ${formatCidr(range.subnet)} is IPv${range.subnet.family} but the set is IPv${family}`);
    }
  });
  return { family, ranges };
}

function parseRange(raw: unknown, where: string): IpRange {
  const obj = asObject(raw, where);
  for (const key of Object.keys(obj)) {
    if (!['subnet', 'rangeStart', 'rangeEnd', 'gateway'].includes(key)) {
      throw configError(`${where}.${key}`, 'unknown key; a range has "subnet", "rangeStart", "rangeEnd" and "gateway"');
    }
  }
  if (obj.subnet === undefined) throw configError(`${where}.subnet`, 'missing');
  const subnet = address(() => parseCidr(obj.subnet), `${where}.subnet`);
  const bits = familyBits(subnet.family);
  if (subnet.prefix > bits - 2) {
    throw configError(`${where}.subnet`, `${formatCidr(subnet)} is too small to allocate from (at most /${bits - 2} for IPv${subnet.family})`);
  }
  const first = cidrFirst(subnet);
  const last = cidrLast(subnet);
  // IPv4 never hands out the network or broadcast address; IPv6 has no broadcast.
  const lowest = first + 1n;
  const highest = subnet.family === 4 ? last - 1n : last;
  const inSubnet = (field: string, value: unknown): bigint | undefined => {
    if (value === undefined) return undefined;
    const ip = address(() => parseIp(value), `${where}.${field}`);
    if (!cidrContains(subnet, ip)) {
      throw configError(`${where}.${field}`, `${String(value)} is outside the subnet ${formatCidr(subnet)}`);
    }
    if (ip.value < lowest || ip.value > highest) {
      throw configError(`${where}.${field}`, `${String(value)} is the ${ip.value === first ? 'network' : 'broadcast'} address of ${formatCidr(subnet)}`);
    }
    return ip.value;
  };
  const start = inSubnet('rangeStart', obj.rangeStart) ?? lowest;
  const end = inSubnet('rangeEnd', obj.rangeEnd) ?? highest;
  if (start > end) {
    throw configError(`${where}.rangeEnd`, `${formatValue(subnet.family, end)} comes before rangeStart ${formatValue(subnet.family, start)}`);
  }
  const gateway = inSubnet('gateway', obj.gateway) ?? first + 1n;
  return { subnet, start, end, gateway };
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw configError('ipam.routes', 'must be an array of {"dst": CIDR, "gw"?: IP}');
  return raw.map((item, i) => {
    const where = `ipam.routes[${i}]`;
    const obj = asObject(item, where);
    const dst = address(() => parseCidr(obj.dst), `${where}.dst`);
    const route: { dst: string; gw?: string } = { dst: obj.dst as string };
    if (obj.gw !== undefined) {
      const gw = address(() => parseIp(obj.gw), `${where}.gw`);
      if (gw.family !== dst.family) {
        throw configError(`${where}.gw`, `${show(obj.gw)} is IPv${gw.family} but dst ${show(obj.dst)} is IPv${dst.family}`);
      }
      route.gw = obj.gw as string;
    }
    return route;
  });
}

function parseDns(raw: unknown): Dns | undefined {
  if (raw === undefined) return undefined;
  const obj = asObject(raw, 'ipam.dns');
  const dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] } = {};
  const list = (key: string): string[] | undefined => {
    const value = obj[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw configError(`ipam.dns.${key}`, 'must be an array of strings');
    }
    return value as string[];
  };
  const nameservers = list('nameservers');
  nameservers?.forEach((ns, i) => address(() => parseIp(ns), `ipam.dns.nameservers[${i}]`));
  if (nameservers) dns.nameservers = nameservers;
  const search = list('search');
  if (search) dns.search = search;
  const options = list('options');
  if (options) dns.options = options;
  if (obj.domain !== undefined) {
    if (typeof obj.domain !== 'string') throw configError('ipam.dns.domain', 'must be a string');
    dns.domain = obj.domain;
  }
  return dns;
}

const NAMESPACE_GLOB = /^[a-z0-9*?]([a-z0-9*?-]{0,61}[a-z0-9*?])?$/;

/** A reserved entry's `namespaces`: a non-empty list of Kubernetes namespace names with * and ? wildcards. */
export function parseNamespaceGlobs(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 64) {
    throw configError(field, `must be a list of 1 to 64 namespace names or globs, e.g. ["db", "team-*"], got ${show(value)}`);
  }
  return value.map((glob, i) => {
    if (typeof glob !== 'string' || !NAMESPACE_GLOB.test(glob)) {
      throw configError(`${field}[${i}]`, `${show(glob)} is not a namespace name or glob (lower-case letters, digits, "-", and the wildcards "*" and "?"; at most 63 characters)`);
    }
    return glob;
  });
}

/** Whether a pod's namespace matches one of the globs ("*": any run of characters, "?": one). */
export function namespaceAllowed(globs: readonly string[], namespace: string | undefined): boolean {
  if (namespace === undefined) return false;
  return globs.some((glob) => new RegExp(`^${glob.replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(namespace));
}

/** Parse one reserved entry's address part: "IP", "IP-IP" or "CIDR". */
export function parseReservedEntry(entry: unknown, field: string): Interval {
  if (typeof entry !== 'string') throw configError(field, `${show(entry)} is not a reserved entry; write "IP", "IP-IP" or "CIDR"`);
  const dash = entry.indexOf('-');
  if (dash >= 0) {
    const start = address(() => parseIp(entry.slice(0, dash).trim()), field);
    const end = address(() => parseIp(entry.slice(dash + 1).trim()), field);
    if (start.family !== end.family) throw configError(field, `"${entry}" mixes IPv4 and IPv6`);
    if (start.value > end.value) throw configError(field, `"${entry}": the range ends before it starts`);
    return { family: start.family, start: start.value, end: end.value };
  }
  if (entry.includes('/')) {
    const cidr = address(() => parseCidr(entry), field);
    return { family: cidr.family, start: cidrFirst(cidr), end: cidrLast(cidr) };
  }
  const ip = address(() => parseIp(entry), field);
  return { family: ip.family, start: ip.value, end: ip.value };
}

/** Check that a reserved interval sits inside one range of the network and avoids its gateways. */
export function checkReservedPlacement(interval: Interval, rangeSets: readonly RangeSet[]): string | undefined {
  const ranges = rangeSets.flatMap((set) => set.ranges);
  const home = ranges.find((r) => r.subnet.family === interval.family && r.start <= interval.start && interval.end <= r.end);
  if (!home) {
    return `${describeInterval(interval)} does not lie inside one allocatable range (${ranges.map(describeRange).join(', ')})`;
  }
  const gateway = ranges.find(
    (r) => r.gateway !== undefined && r.subnet.family === interval.family && interval.start <= r.gateway && r.gateway <= interval.end,
  );
  if (gateway) return `${describeInterval(interval)} covers the gateway ${formatValue(interval.family, gateway.gateway!)}`;
  return undefined;
}

function parseReservedList(raw: unknown, rangeSets: readonly RangeSet[], where: string): ReservedSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw configError(where, 'must be an array of entries: "IP", "IP-IP", "CIDR" or {"entry", "group", "note", "namespaces"}');
  const specs = raw.map((item, i): ReservedSpec => {
    const field = `${where}[${i}]`;
    const obj: Record<string, unknown> = typeof item === 'string' ? { entry: item } : asObject(item, field);
    for (const key of Object.keys(obj)) {
      if (!['entry', 'group', 'note', 'namespaces'].includes(key)) {
        throw configError(`${field}.${key}`, 'unknown key; a reserved entry has "entry", "group", "note" and "namespaces"');
      }
    }
    const interval = parseReservedEntry(obj.entry, `${field}${typeof item === 'string' ? '' : '.entry'}`);
    const placement = checkReservedPlacement(interval, rangeSets);
    if (placement) throw configError(field, placement);
    const group = obj.group === undefined ? undefined : parseGroupName(obj.group, `${field}.group`);
    if (obj.note !== undefined && (typeof obj.note !== 'string' || obj.note.length > 256)) {
      throw configError(`${field}.note`, 'must be a string of at most 256 characters');
    }
    const namespaces = obj.namespaces === undefined ? undefined : parseNamespaceGlobs(obj.namespaces, `${field}.namespaces`);
    return { ...interval, entry: obj.entry as string, group, note: obj.note as string | undefined, namespaces };
  });
  const sorted = specs.map((s, i) => ({ s, i })).sort((a, b) => a.s.family - b.s.family || cmp(a.s.start, b.s.start));
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const cur = sorted[k]!;
    if (prev.s.family === cur.s.family && cur.s.start <= prev.s.end) {
      throw configError(`${where}[${Math.max(prev.i, cur.i)}]`, `"${sorted[k]!.s.entry}" overlaps "${prev.s.entry}"`);
    }
  }
  return specs;
}

export function describeRange(range: IpRange): string {
  const family = range.subnet.family;
  return `${formatValue(family, range.start)}-${formatValue(family, range.end)}`;
}

export function describeInterval(interval: Interval): string {
  return interval.start === interval.end
    ? formatValue(interval.family, interval.start)
    : `${formatValue(interval.family, interval.start)}-${formatValue(interval.family, interval.end)}`;
}

export function asObject(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw configError(field, `must be a JSON object, got ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

function address<T>(parse: () => T, field: string): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof AddressSyntaxError) throw configError(field, err.message);
    throw err;
  }
}

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export type { Ip };
