// The one builder of network configurations with reservoir as the IPAM plugin: a network config
// as a runtime hands it to the plugin (netconf), or a conflist for libcni (conflist). Tests, e2e
// and the benchmark all build theirs here.
import { SUPPORTED_VERSIONS, type CniVersion } from '../../src/cni.js';

export const VERSIONS: readonly CniVersion[] = SUPPORTED_VERSIONS;
export const CHECK_VERSIONS: readonly CniVersion[] = VERSIONS.filter((v) => v >= '0.4.0');

export const DEFAULT_RANGES = [[{ subnet: '10.10.0.0/24' }]];

/** reservoir's ipam section: socket, a 10 s timeout, one IPv4 /24 unless `ipam` says otherwise (ranges, reserved, ...). */
export function reservoirIpam(socket: string, ipam: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'reservoir', socket, timeout: '10s', ranges: DEFAULT_RANGES, ...ipam };
}

/**
 * A network config for the plugin: CNI 1.1.0, a bridge, reservoir under "ipam". `top` overrides
 * or adds top-level keys (cniVersion, args, runtimeConfig, prevResult, ...).
 */
export function netconf(name: string, socket: string, ipam: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name, type: 'bridge', ...top, ipam: reservoirIpam(socket, ipam) };
}

/** A conflist for libcni: one main plugin (default a bridge) with reservoir under "ipam". */
export function conflist(
  name: string,
  socket: string,
  ipam: Record<string, unknown> = {},
  options: { cniVersion?: string; plugin?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const plugin = options.plugin ?? { type: 'bridge' };
  return { cniVersion: options.cniVersion ?? '1.1.0', name, plugins: [{ ...plugin, ipam: reservoirIpam(socket, ipam) }] };
}

/** A network name safe for every version: "prefix-110" for 1.1.0. */
export function netName(prefix: string, version: string): string {
  return `${prefix}-${version.replaceAll('.', '')}`;
}
