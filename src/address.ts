// Address math for IPv4 and IPv6 alike: an address is a family plus a BigInt, so ranges of any
// size (an IPv6 /64 included) are just pairs of numbers. Parsing is strict on purpose: an IPAM
// that guesses what "010.0.0.1" or "fe80::1%eth0" meant hands out the wrong address.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

/** A subnet: `network` has no host bits set. */
export interface Cidr {
  readonly family: Family;
  readonly network: bigint;
  readonly prefix: number;
}

/** An interface address as CNI results carry it: "10.0.0.5/24". */
export interface IpWithPrefix {
  readonly ip: Ip;
  readonly prefix: number;
}

export class AddressSyntaxError extends Error {
  override name = 'AddressSyntaxError';
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

const IPV4_DOTTED = /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/;

export function parseIp(text: unknown): Ip {
  if (typeof text !== 'string' || text.length === 0) {
    throw new AddressSyntaxError(`expected an IP address string, got ${describe(text)}`);
  }
  if (text.length > 64) throw new AddressSyntaxError(`"${text.slice(0, 64)}…" is too long to be an IP address`);
  if (text.includes('%')) {
    throw new AddressSyntaxError(`"${text}" has a zone index; write the address without "%zone"`);
  }
  if (text.includes('.') && !text.includes(':')) {
    if (!IPV4_DOTTED.test(text) || !ipaddr.IPv4.isValidFourPartDecimal(text)) {
      throw new AddressSyntaxError(
        `"${text}" is not an IPv4 address in dotted decimal (four numbers 0-255, no leading zeros)`,
      );
    }
    const bytes = ipaddr.IPv4.parse(text).toByteArray();
    return { family: 4, value: bytesToBigInt(bytes) };
  }
  // An IPv6 address may end in dotted IPv4 ("64:ff9b::10.0.0.1"). ipaddr.js accepts leading zeros
  // there and reads "::10.0.0.1" as "::ffff:10.0.0.1", so the tail is checked and rewritten as two
  // hex groups here, with the same strictness as plain IPv4.
  let v6 = text;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.slice(lastColon + 1).includes('.')) {
    const tail = text.slice(lastColon + 1);
    if (!IPV4_DOTTED.test(tail) || !ipaddr.IPv4.isValidFourPartDecimal(tail)) {
      throw new AddressSyntaxError(`"${text}" ends in "${tail}", which is not an IPv4 address in dotted decimal (no leading zeros)`);
    }
    const [a, b, c, d] = ipaddr.IPv4.parse(tail).toByteArray() as [number, number, number, number];
    v6 = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (text.includes(':') && ipaddr.IPv6.isValid(v6)) {
    const parsed = ipaddr.IPv6.parse(v6);
    if (parsed.isIPv4MappedAddress()) {
      throw new AddressSyntaxError(
        `"${text}" is an IPv4-mapped IPv6 address; write the IPv4 address ${parsed.toIPv4Address().toString()} instead`,
      );
    }
    return { family: 6, value: bytesToBigInt(parsed.toByteArray()) };
  }
  throw new AddressSyntaxError(`"${text}" is not an IPv4 or IPv6 address`);
}

function parsePrefix(text: string, family: Family, whole: string): number {
  if (!/^(0|[1-9]\d{0,2})$/.test(text)) {
    throw new AddressSyntaxError(`"${whole}" has an invalid prefix length "${text}"`);
  }
  const prefix = Number(text);
  if (prefix > familyBits(family)) {
    throw new AddressSyntaxError(`"${whole}": prefix /${prefix} is longer than an IPv${family} address`);
  }
  return prefix;
}

function splitPrefix(text: unknown): [string, string] {
  if (typeof text !== 'string') throw new AddressSyntaxError(`expected a CIDR string, got ${describe(text)}`);
  const slash = text.indexOf('/');
  if (slash < 0) throw new AddressSyntaxError(`"${text}" has no prefix length; write it as address/prefix`);
  return [text.slice(0, slash), text.slice(slash + 1)];
}

/** "10.0.0.0/24" -> subnet. Host bits set ("10.0.0.5/24") is an error: it usually hides a typo. */
export function parseCidr(text: unknown): Cidr {
  const [addr, prefixText] = splitPrefix(text);
  const ip = parseIp(addr);
  const prefix = parsePrefix(prefixText, ip.family, text as string);
  const network = ip.value & prefixMask(ip.family, prefix);
  if (network !== ip.value) {
    const suggestion = formatCidr({ family: ip.family, network, prefix });
    throw new AddressSyntaxError(`"${text}" has host bits set; did you mean ${suggestion}?`);
  }
  return { family: ip.family, network, prefix };
}

/** "10.0.0.5/24" -> address plus prefix, as in CNI results (host bits expected). */
export function parseIpWithPrefix(text: unknown): IpWithPrefix {
  const [addr, prefixText] = splitPrefix(text);
  const ip = parseIp(addr);
  return { ip, prefix: parsePrefix(prefixText, ip.family, text as string) };
}

export function prefixMask(family: Family, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(prefix))) & all;
}

export function cidrFirst(cidr: Cidr): bigint {
  return cidr.network;
}

export function cidrLast(cidr: Cidr): bigint {
  return cidr.network | (~prefixMask(cidr.family, cidr.prefix) & ((1n << BigInt(familyBits(cidr.family))) - 1n));
}

export function cidrSize(cidr: Cidr): bigint {
  return 1n << BigInt(familyBits(cidr.family) - cidr.prefix);
}

export function cidrContains(cidr: Cidr, ip: Ip): boolean {
  return ip.family === cidr.family && (ip.value & prefixMask(cidr.family, cidr.prefix)) === cidr.network;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && cidrFirst(a) <= cidrLast(b) && cidrFirst(b) <= cidrLast(a);
}

export function formatIp(ip: Ip): string {
  return ipaddr.fromByteArray(bigIntToBytes(ip.value, ip.family === 4 ? 4 : 16)).toString();
}

export function formatValue(family: Family, value: bigint): string {
  return formatIp({ family, value });
}

export function formatCidr(cidr: Cidr): string {
  return `${formatValue(cidr.family, cidr.network)}/${cidr.prefix}`;
}

export function formatIpWithPrefix(ip: Ip, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

/** Fixed-width hex: sorts as text exactly as the numbers sort, so SQLite indexes answer range queries. */
export function toKey(family: Family, value: bigint): string {
  return value.toString(16).padStart(family === 4 ? 8 : 32, '0');
}

export function fromKey(key: string): bigint {
  return BigInt(`0x${key}`);
}

export function ipEquals(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

function bytesToBigInt(bytes: number[]): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function bigIntToBytes(value: bigint, length: number): number[] {
  const bytes = new Array<number>(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return `${typeof value} ${String(value)}`;
}
