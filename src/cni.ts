// CNI versions and the IPAM result in every shape the spec has had. The daemon always answers in
// the current (1.x) shape; the plugin converts to the caller's cniVersion just before printing.
import { ReservoirError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

/** The lowest cniVersion that knows each command. */
export const COMMAND_SINCE: Record<CniCommand, CniVersion> = {
  ADD: '0.1.0',
  DEL: '0.1.0',
  VERSION: '0.1.0',
  CHECK: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
};

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

export function versionInfo(cniVersion: CniVersion = LATEST_VERSION) {
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

export interface ResultIp {
  /** Address with the subnet's prefix, e.g. "10.22.0.5/16". */
  readonly address: string;
  readonly gateway?: string;
}

/** A route and DNS settings, as host-local copies them from the config into the result. */
export interface Route {
  readonly dst: string;
  readonly gw?: string;
}

export interface Dns {
  readonly nameservers?: string[];
  readonly domain?: string;
  readonly search?: string[];
  readonly options?: string[];
}

/** An IPAM result in the current shape (cniVersion 1.x, without interfaces). */
export interface IpamResult {
  readonly ips: readonly ResultIp[];
  readonly routes: readonly Route[];
  readonly dns?: Dns;
}

function familyOf(address: string): '4' | '6' {
  return address.includes(':') ? '6' : '4';
}

/** Convert to the shape a caller of `cniVersion` expects. */
export function convertResult(result: IpamResult, cniVersion: CniVersion): Record<string, unknown> {
  const dns = result.dns ?? {};
  if (compareVersions(cniVersion, '1.0.0') >= 0) {
    return { cniVersion, ips: result.ips.map((ip) => ({ ...ip })), routes: [...result.routes], dns };
  }
  if (compareVersions(cniVersion, '0.3.0') >= 0) {
    return {
      cniVersion,
      ips: result.ips.map((ip) => ({ version: familyOf(ip.address), ...ip })),
      routes: [...result.routes],
      dns,
    };
  }
  // 0.1.0 / 0.2.0: one address per family, routes sorted under the family they belong to.
  const out: Record<string, unknown> = { cniVersion, dns };
  for (const family of ['4', '6'] as const) {
    const ip = result.ips.find((candidate) => familyOf(candidate.address) === family);
    if (!ip) continue;
    const routes = result.routes.filter((route) => familyOf(route.dst) === family);
    const legacy: Record<string, unknown> = { ip: ip.address };
    if (ip.gateway) legacy.gateway = ip.gateway;
    if (routes.length > 0) legacy.routes = routes;
    out[`ip${family}`] = legacy;
  }
  return out;
}

/** The addresses a prevResult (any shape from 0.1.0 on) claims, as "ip/prefix" strings. */
export function addressesOfResult(prevResult: unknown): string[] {
  if (prevResult === null || typeof prevResult !== 'object' || Array.isArray(prevResult)) {
    throw new ReservoirError('INVALID_CONFIG', 'invalid config: prevResult: must be a JSON object (the result of ADD)');
  }
  const obj = prevResult as Record<string, unknown>;
  const found: string[] = [];
  if (obj.ips !== undefined && obj.ips !== null && !Array.isArray(obj.ips)) {
    throw new ReservoirError('INVALID_CONFIG', 'invalid config: prevResult.ips: must be an array of {"address": "ip/prefix"}');
  }
  if (Array.isArray(obj.ips)) {
    obj.ips.forEach((ip, i) => {
      const address = ip && typeof ip === 'object' ? (ip as Record<string, unknown>).address : undefined;
      if (typeof address !== 'string') {
        throw new ReservoirError('INVALID_CONFIG', `invalid config: prevResult.ips[${i}].address: missing or not a string`);
      }
      found.push(address);
    });
  }
  for (const key of ['ip4', 'ip6']) {
    const legacy = obj[key];
    if (legacy === undefined || legacy === null) continue;
    if (legacy && typeof legacy === 'object' && typeof (legacy as Record<string, unknown>).ip === 'string') {
      found.push((legacy as Record<string, string>).ip!);
    } else {
      throw new ReservoirError('INVALID_CONFIG', `invalid config: prevResult.${key}.ip: missing or not a string`);
    }
  }
  return found;
}
