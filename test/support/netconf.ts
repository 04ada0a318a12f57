// Network configurations as a runtime hands them to an IPAM plugin: the whole network config,
// with our plugin under "ipam".
import { SUPPORTED_VERSIONS, type CniVersion } from '../../src/cni.js';

export const VERSIONS: readonly CniVersion[] = SUPPORTED_VERSIONS;
export const CHECK_VERSIONS: readonly CniVersion[] = VERSIONS.filter((v) => v >= '0.4.0');

export interface NetconfOptions {
  readonly cniVersion: CniVersion | string;
  readonly name: string;
  readonly socket: string;
  /** ipam.ranges; defaults to one IPv4 /24. */
  readonly ranges?: unknown;
  /** Extra ipam keys (timeout, routes, reserved, ...). */
  readonly ipam?: Record<string, unknown>;
  /** Extra top-level keys (args, runtimeConfig, prevResult, cni.dev/valid-attachments, ...). */
  readonly extra?: Record<string, unknown>;
}

export function netconf(options: NetconfOptions): Record<string, unknown> {
  return {
    cniVersion: options.cniVersion,
    name: options.name,
    type: 'bridge',
    ...options.extra,
    ipam: {
      type: 'reservoir',
      socket: options.socket,
      timeout: '10s',
      ranges: options.ranges ?? [[{ subnet: '10.10.0.0/24' }]],
      ...options.ipam,
    },
  };
}

/** A network name safe for every version: "prefix-110" for 1.1.0. */
export function netName(prefix: string, version: string): string {
  return `${prefix}-${version.replaceAll('.', '')}`;
}
