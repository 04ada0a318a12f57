// Subnets that two differently named networks share. Allowed, as in host-local (the networks may
// be isolated from each other: two bridges, two VRFs), but both may then hand out the same IP,
// so usage, health and the log say so. Pure: the caller reads the configs.
import { type Cidr, cidrsOverlap, formatCidr } from '../src/address.js';
import type { IpamConfig } from '../src/config.js';

export interface SubnetOverlap {
  readonly network: string;
  readonly subnet: string;
  readonly other: string;
  readonly otherSubnet: string;
}

/** Every pair of overlapping subnets of two different networks, each pair once (in input order). */
export function subnetOverlaps(networks: ReadonlyArray<{ readonly name: string; readonly config: IpamConfig }>): SubnetOverlap[] {
  const subnets = networks.map(({ name, config }) => ({ name, subnets: distinct(config.rangeSets.flatMap((set) => set.ranges.map((r) => r.subnet))) }));
  const found: SubnetOverlap[] = [];
  subnets.forEach((a, i) => {
    for (const b of subnets.slice(i + 1)) {
      if (a.name === b.name) continue;
      for (const x of a.subnets) {
        for (const y of b.subnets) {
          if (cidrsOverlap(x, y)) found.push({ network: a.name, subnet: formatCidr(x), other: b.name, otherSubnet: formatCidr(y) });
        }
      }
    }
  });
  return found;
}

export function describeOverlap(o: SubnetOverlap): string {
  return `subnet ${o.subnet} of network "${o.network}" overlaps ${o.otherSubnet} of network "${o.other}": both may hand out the same IPs (fine only if the two networks are isolated from each other)`;
}

function distinct(cidrs: readonly Cidr[]): Cidr[] {
  const seen = new Set<string>();
  return cidrs.filter((c) => {
    const key = formatCidr(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
