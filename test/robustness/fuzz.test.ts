// Fuzz: 10,000+ generated invocations of the plugin against one real daemon. ~300 run the real
// executable (a process each); the rest go through the same entry in-process (runPlugin with
// injected io). Every case must end with exit 1 and a well-formed CNI error (documented code,
// non-empty msg, no stack trace; 999 "internal error" counts as a bug) or exit 0 with a correct
// success; a failed ADD leaves no lease; the daemon never crashes.
//
// Each case is generated from (seed, index) alone, so a failure reproduces with
//   RESERVOIR_FUZZ_SEED=<seed> RESERVOIR_FUZZ_ONLY=<index> npx vitest run test/robustness/fuzz.test.ts
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { runPlugin } from '../../src/plugin.js';
import { Cleanup } from '../support/cleanup.js';
import { type DaemonProcess, health, leasesOf, startDaemonIn } from '../support/daemon.js';
import { Rng } from '../support/random.js';
import { SOAK, cniErrorProblems, runPluginProcess, seedFrom } from './support.js';

const TOTAL = Number(process.env.RESERVOIR_FUZZ_CASES ?? (SOAK ? 30_000 : 10_200));
/** Cases run in groups of 10 (fresh, origins and their follow-ups); every 34th group as processes. */
const PROCESS_GROUP_EVERY = 34;
const IN_PROCESS_WORKERS = 16;
const PROCESS_WORKERS = 6;
const KNOWN_CODES = new Set<number>(Object.values(ErrorCodes).map((c) => c.code));
const SUPPORTED = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

// ---------------------------------------------------------------------------------------------
// Generation

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface FuzzCase {
  readonly index: number;
  readonly mode: 'process' | 'in-process';
  readonly slot: 'fresh' | 'origin' | 'follow-up';
  readonly command: string | undefined;
  readonly env: Record<string, string | undefined>;
  readonly stdin: Buffer;
  /** The config object when stdin is one (for checking a success), else undefined. */
  readonly config: Record<string, any> | undefined;
  /** follow-up: the origin's index and what to do with its attachment. */
  readonly origin?: number;
  readonly action?: 'DEL' | 'CHECK' | 'ADD-again';
}

const HOSTILE_IPS: Json[] = [
  '::ffff:10.1.0.5',
  '::ffff:a01:5',
  '0:0:0:0:0:ffff:10.1.0.5',
  'fe80::1%eth0',
  'fe80::1%25eth0',
  'fd00::5%1',
  '010.1.0.5',
  '10.1.0.05',
  '10.01.0.5',
  '0x0a.1.0.5',
  '10.1.5',
  '10.1.0.5.6',
  '256.1.0.5',
  '10.1.0.-5',
  '1e1.0.0.1',
  ' 10.1.0.5',
  '10.1.0.5\n',
  '10.1.0.5\u0000',
  '１０.1.0.5',
  '١٠.1.0.5',
  '[fd00::5]',
  'fd00:::5',
  'fd00::5::6',
  'fd00::/64',
  '10.1.0.5/33',
  '10.1.0.5/-1',
  '10.1.0.5/08',
  '0.0.0.0',
  '255.255.255.255',
  '::',
  '',
  'x'.repeat(70),
  5,
  null,
  true,
  [],
  {},
  1.5,
];

const HOSTILE_CIDRS: Json[] = [
  '0.0.0.0/0',
  '::/0',
  '10.1.0.0/32',
  '10.1.0.0/31',
  '10.1.0.0/30',
  'fd00::/128',
  'fd00::/127',
  'fd00::/126',
  '10.1.0.5/24',
  '10.1.0.0/33',
  '10.1.0.0/',
  '10.1.0.0',
  '/24',
  '010.1.0.0/16',
  '10.1.0.0/016',
  '::ffff:10.1.0.0/112',
  'fe80::%eth0/64',
  'fd00::/64%eth0',
  '10.1.0.0/16/16',
  '10.1.0.0 /16',
  '10.1.0.0/1e1',
  '',
  16,
  null,
  ['10.1.0.0/16'],
];

/**
 * A hostile value to put into a case, as a copy: the lists hold arrays and objects, and a case's
 * later mutation of a shared one changed the list for every later case, or (a list's array put
 * inside itself) made a config circular.
 */
function hostile(rng: Rng, values: readonly Json[]): Json {
  return structuredClone(rng.pick(values));
}

function randomString(rng: Rng, max = 20): string {
  const alphabets = ['abcdefghijklmnopqrstuvwxyz0123456789', 'ABC-_.:/%; =\\"\'', 'äöüß€😀\u202e\u0000\t\n', '\ud800\udfff'];
  let out = '';
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) {
    const a = rng.pick(alphabets);
    out += a[rng.int(0, a.length - 1)];
  }
  return out;
}

function randomJson(rng: Rng, depth = 0): Json {
  const r = rng.int(0, depth > 3 ? 5 : 8);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 42]);
    case 3:
      return randomString(rng);
    case 4:
      return hostile(rng, HOSTILE_IPS);
    case 5:
      return hostile(rng, HOSTILE_CIDRS);
    case 6:
      return Array.from({ length: rng.int(0, 3) }, () => randomJson(rng, depth + 1));
    default: {
      const obj: Record<string, Json> = {};
      for (let i = rng.int(0, 3); i > 0; i--) setOwn(obj, rng.pick(['a', 'ips', 'subnet', '__proto__', 'constructor', randomString(rng, 8)]), randomJson(rng, depth + 1));
      return obj;
    }
  }
}

function v4(rng: Rng): { subnet: string; prefix: number; base: number } {
  const prefix = rng.pick([8, 12, 16, 16, 20, 24, 24, 26, 28, 29, 30]);
  const size = 2 ** (32 - prefix);
  const base = (((10 << 24) >>> 0) + Math.floor(rng.next() * (2 ** 24 / size)) * size) >>> 0;
  return { subnet: `${ipv4Text(base)}/${prefix}`, prefix, base };
}

function ipv4Text(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function randomRange(rng: Rng, family: 4 | 6): Record<string, Json> {
  if (family === 6) {
    const prefix = rng.pick([64, 64, 96, 112, 120, 126]);
    const block = rng.int(0, 0xffff).toString(16);
    const range: Record<string, Json> = { subnet: `fd00:${block}::/${prefix}` };
    if (rng.chance(0.2)) range.rangeStart = `fd00:${block}::10`;
    if (rng.chance(0.2)) range.rangeEnd = `fd00:${block}::${rng.pick(['20', '3', 'ffff'])}`;
    if (rng.chance(0.2)) range.gateway = rng.pick([`fd00:${block}::1`, `fd00:${block}::5`, 'fd00:ffff::1']);
    return range;
  }
  const { subnet, base, prefix } = v4(rng);
  const range: Record<string, Json> = { subnet };
  const size = 2 ** (32 - prefix);
  const inside = () => ipv4Text(base + rng.int(0, size - 1));
  if (rng.chance(0.25)) range.rangeStart = rng.chance(0.8) ? inside() : ipv4Text(base + size + 5);
  if (rng.chance(0.25)) range.rangeEnd = rng.chance(0.8) ? inside() : ipv4Text(base - 5);
  if (rng.chance(0.2)) range.gateway = rng.chance(0.8) ? inside() : '192.168.1.1';
  return range;
}

function randomIpam(rng: Rng, socket: string): Record<string, Json> {
  const sets = rng.int(1, 3);
  const ranges: Json[] = [];
  for (let i = 0; i < sets; i++) {
    const family = rng.chance(0.7) ? 4 : 6;
    ranges.push(Array.from({ length: rng.int(1, 2) }, () => randomRange(rng, family)));
  }
  const ipam: Record<string, Json> = { type: 'reservoir', socket, timeout: rng.pick(['5s', '10s', '30s']), ranges };
  if (rng.chance(0.1)) ipam.timeout = rng.pick(['0s', '50ms', '121s', '-1s', '5', 5, '1e3s', '', '5 s']);
  if (rng.chance(0.2)) ipam.routes = rng.chance(0.7) ? [{ dst: '0.0.0.0/0' }, { dst: '10.9.0.0/16', gw: '10.1.0.1' }] : [{ dst: hostile(rng, HOSTILE_CIDRS) }];
  if (rng.chance(0.2)) ipam.dns = rng.chance(0.7) ? { nameservers: ['10.1.0.53'], search: ['svc.local'], domain: 'local' } : { nameservers: [hostile(rng, HOSTILE_IPS)] };
  if (rng.chance(0.15)) ipam.defaultKind = rng.pick(['stateless', 'stateful', 'x', 1]);
  if (rng.chance(0.1)) ipam.holdFor = rng.pick(['1h', '2s', '0s', 'forever']);
  if (rng.chance(0.2)) {
    const first = (ranges[0] as Array<Record<string, string>>)[0]!;
    const p = typeof first.subnet === 'string' ? first.subnet.split('/')[0]! : '10.1.0.0';
    const near = p.includes(':') ? p.replace(/::$/, '::40') : p.replace(/\.0$/, '.40');
    ipam.reserved = rng.pick<Json>([[near], [{ entry: near, group: 'db' }], [hostile(rng, HOSTILE_IPS)], [`${near}-${near}`], 'x', [{ entry: near, group: 'bad group!' }]]);
  }
  return ipam;
}

function cniArgs(rng: Rng, index: number, stateful: boolean): string | undefined {
  const parts: string[] = [];
  if (stateful || rng.chance(0.3)) parts.push('K8S_POD_NAMESPACE=fuzz', `K8S_POD_NAME=p${index}`);
  if (stateful) parts.push('RESERVOIR_KIND=stateful');
  if (rng.chance(0.1)) parts.push(`IP=${String(hostile(rng, HOSTILE_IPS))}`);
  if (rng.chance(0.05)) parts.push('RESERVOIR_GROUP=db');
  if (rng.chance(0.05)) parts.push(rng.pick(['RESERVOIR_KIND=bogus', 'RESERVOIR_APP=bad app', 'K8S_POD_NAME=', '=x', 'noequals', ';;', 'UNKNOWN=1']));
  if (rng.chance(0.3)) parts.push('IgnoreUnknown=1');
  if (rng.chance(0.05)) parts.push(randomString(rng, 40));
  return parts.length ? parts.join(';') : rng.chance(0.5) ? undefined : '';
}

function containerIdOf(rng: Rng, tag: string): string {
  if (rng.chance(0.9)) return tag;
  return rng.pick(['', '-x', 'a'.repeat(300), 'a b', 'ü', '../x', 'x/y', `${tag};rm -rf /`, randomString(rng, 30)]);
}

function ifnameOf(rng: Rng): string | undefined {
  if (rng.chance(0.85)) return rng.pick(['eth0', 'net1', 'eth1']);
  return rng.pick([undefined, '', 'a'.repeat(16), 'a/b', 'a:b', '.', '..', 'äääääääääääääää', 'e th0']);
}

function netnsOf(rng: Rng, tag: string): string | undefined {
  if (rng.chance(0.9)) return `/var/run/netns/${tag}`;
  return rng.pick([undefined, '', 'relative/ns', `/${'a'.repeat(5000)}`, '/proc/self/ns/net', '/dev/null']);
}

/** obj[key] = value as JSON.parse would do it: "__proto__" becomes an own key, not the prototype. */
function setOwn(obj: object, key: string | number, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Replace a random node of a JSON tree (never the socket: cases must not reach another daemon). */
function mutate(rng: Rng, value: Record<string, any>): void {
  const paths: Array<[Record<string, any> | any[], string | number]> = [];
  const walk = (node: any, depth: number) => {
    if (depth > 6 || node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      if (key === 'socket') continue;
      paths.push([node, Array.isArray(node) ? Number(key) : key]);
      walk(node[key], depth + 1);
    }
  };
  walk(value, 0);
  if (paths.length === 0) return;
  const [parent, key] = rng.pick(paths);
  const current = (parent as any)[key];
  const op = rng.int(0, 5);
  if (op === 0 && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
  else if (op === 1) setOwn(parent, key, hostile(rng, HOSTILE_IPS));
  else if (op === 2) setOwn(parent, key, hostile(rng, HOSTILE_CIDRS));
  else if (op === 3) setOwn(parent, key, randomJson(rng));
  else if (op === 4) setOwn(parent, key, [current, current]);
  else setOwn(parent, key, typeof current === 'string' ? `${current}${randomString(rng, 4)}` : String(JSON.stringify(current)));
}

/**
 * Whatever the mutations did, a usable ipam talks to this test's daemon and never to the
 * default socket (on a CI machine install.sh runs a real reservoird there).
 */
function pinSocket(config: unknown, socket: string): void {
  const ipam = config !== null && typeof config === 'object' ? (config as Record<string, any>).ipam : undefined;
  if (ipam !== null && typeof ipam === 'object' && !Array.isArray(ipam)) setOwn(ipam, 'socket', socket);
}

function caseRng(seed: number, index: number): Rng {
  // splitmix-like hash of (seed, index): independent streams per case
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return new Rng((h ^ (h >>> 16)) >>> 0);
}

const ORIGIN_NETWORKS = 6;

/** The fixed ipam of origin network k: valid, so origin ADDs mostly succeed. */
function originIpam(k: number, socket: string): Record<string, Json> {
  const sets: Json[] = [[{ subnet: `10.${100 + k}.0.0/16` }]];
  if (k % 2 === 1) sets.push([{ subnet: `fd10:${k}::/64` }]);
  if (k % 3 === 2) sets.push([{ subnet: `10.${120 + k}.0.0/24`, rangeStart: `10.${120 + k}.0.10`, rangeEnd: `10.${120 + k}.0.250`, gateway: `10.${120 + k}.0.254` }]);
  return { type: 'reservoir', socket, timeout: '10s', ranges: sets, routes: [{ dst: '0.0.0.0/0' }] };
}

function makeCase(seed: number, index: number, socket: string, tag: string): FuzzCase {
  const rng = caseRng(seed, index);
  const group = Math.floor(index / 10);
  const mode = group % PROCESS_GROUP_EVERY === 0 ? 'process' : 'in-process';
  const pos = index % 10;
  const id = `${tag}-${index}`;
  if (pos >= 8) {
    const origin = index - 2;
    const o = makeCase(seed, origin, socket, tag);
    const action = rng.pick(['DEL', 'CHECK', 'ADD-again'] as const);
    const env = { ...o.env, CNI_COMMAND: action === 'ADD-again' ? 'ADD' : action };
    let config = o.config ? (JSON.parse(JSON.stringify(o.config)) as Record<string, any>) : undefined;
    if (config && action === 'CHECK') {
      config.cniVersion = rng.pick(['0.4.0', '1.0.0', '1.1.0']);
      if (rng.chance(0.5)) config.prevResult = rng.chance(0.6) ? { ips: [{ address: rng.pick(['10.100.0.2/16', '10.101.0.3/16', '::ffff:10.100.0.2/112', '10.100.0.2']) }] } : randomJson(rng);
    }
    if (config && action === 'DEL' && rng.chance(0.2)) mutate(rng, config);
    pinSocket(config, socket);
    const stdin = config ? Buffer.from(JSON.stringify(config)) : o.stdin;
    return { index, mode, slot: 'follow-up', command: env.CNI_COMMAND, env, stdin, config, origin, action };
  }

  const slot = pos >= 6 ? 'origin' : 'fresh';
  let command: string | undefined;
  let config: Record<string, any>;
  let network: Json;
  if (slot === 'origin') {
    command = 'ADD';
    const k = rng.int(0, ORIGIN_NETWORKS - 1);
    network = `${tag}-o${k}`;
    config = { cniVersion: rng.pick(SUPPORTED.slice(2)), name: network, type: 'bridge', ipam: originIpam(k, socket) };
    if (rng.chance(0.2)) config.args = { cni: { labels: [{ key: 'a', value: 'b' }] } };
    if (rng.chance(0.1)) config.cniVersion = rng.pick(['0.1.0', '0.2.0']);
  } else {
    const roll = rng.next();
    command =
      roll < 0.5 ? 'ADD' : roll < 0.62 ? 'DEL' : roll < 0.72 ? 'CHECK' : roll < 0.77 ? 'GC' : roll < 0.82 ? 'STATUS' : roll < 0.87 ? 'VERSION' : rng.pick([undefined, '', 'add', 'ADD ', 'DELETE', randomString(rng, 10)]);
    // GC releases every lease of its network that it is not told about: it gets networks of its own
    network = command === 'GC' ? `${tag}-g${rng.int(0, 7)}` : `${tag}-f${rng.int(0, 31)}`;
    config = { cniVersion: rng.pick([...SUPPORTED, ...SUPPORTED, '1.1.0', '1.1.0']), name: network, type: 'bridge', ipam: randomIpam(rng, socket) };
    if (rng.chance(0.05)) config.cniVersion = rng.pick(['0.0.1', '2.0.0', '', 1, null, '1.0', '1.1.0 ']);
    if (rng.chance(0.05)) delete config.cniVersion;
    if (rng.chance(0.05)) config.name = rng.pick(['', 'bad name', 'x'.repeat(200), 5, null, '../etc', '-x']);
    if (command === 'GC' || rng.chance(0.05)) {
      config['cni.dev/valid-attachments'] = rng.chance(0.8) ? [{ containerID: 'nope', ifname: 'eth0' }] : randomJson(rng);
    }
    if (rng.chance(0.15)) {
      const ips = Array.from({ length: rng.int(0, 3) }, () => (rng.chance(0.5) ? hostile(rng, HOSTILE_IPS) : `10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`));
      config.runtimeConfig = { ips: rng.chance(0.9) ? ips : hostile(rng, HOSTILE_IPS) };
    }
    if (rng.chance(0.1)) {
      config.runtimeConfig = {
        ...config.runtimeConfig,
        'io.kubernetes.cri.pod-annotations': {
          'reservoir.io/ip': rng.chance(0.5) ? String(hostile(rng, HOSTILE_IPS)) : hostile(rng, HOSTILE_IPS),
          ...(rng.chance(0.3) ? { 'reservoir.io/kind': rng.pick(['stateful', 'x', 5]) } : {}),
          ...(rng.chance(0.3) ? { 'reservoir.io/group': rng.pick(['db', '', 'bad group']) } : {}),
        },
      };
    }
    if (rng.chance(0.08)) config.args = { cni: { ips: rng.chance(0.7) ? [hostile(rng, HOSTILE_IPS)] : randomJson(rng) } };
    if (rng.chance(0.08)) config.prevResult = rng.chance(0.5) ? { cniVersion: '1.0.0', ips: [{ address: hostile(rng, HOSTILE_IPS) }] } : randomJson(rng);
    if (rng.chance(0.05)) config.runtimeConfig = randomJson(rng);
    for (let m = rng.chance(0.45) ? rng.int(1, 3) : 0; m > 0; m--) mutate(rng, config);
    if (rng.chance(0.03)) config = randomJson(rng) as Record<string, any>;
  }
  pinSocket(config, socket);
  const stateful = rng.chance(slot === 'origin' ? 0.3 : 0.1);
  const env: Record<string, string | undefined> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: slot === 'origin' ? id : containerIdOf(rng, id),
    CNI_IFNAME: slot === 'origin' ? 'eth0' : ifnameOf(rng),
    CNI_NETNS: slot === 'origin' ? `/var/run/netns/${id}` : netnsOf(rng, id),
    CNI_ARGS: cniArgs(rng, index, stateful),
    CNI_PATH: rng.chance(0.5) ? '/opt/cni/bin' : undefined,
  };
  if (slot === 'fresh' && rng.chance(0.03)) env[rng.pick(['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_NETNS', 'CNI_ARGS'])] = randomString(rng, 60);
  // A process's environment is bytes that Node decodes as UTF-8: it never holds lone surrogates.
  for (const [k, v] of Object.entries(env)) if (v !== undefined) env[k] = v.toWellFormed();

  // stdin: mostly the config, sometimes something hostile
  let stdin: Buffer = Buffer.from(JSON.stringify(config));
  let configOut: Record<string, any> | undefined = config;
  if (slot === 'fresh') {
    const s = rng.next();
    if (s < 0.02) {
      stdin = Buffer.concat([stdin, Buffer.alloc(1024 * 1024 + rng.int(1, 4096), 0x20)]); // over 1 MiB
      configOut = undefined;
    } else if (s < 0.04) {
      stdin = Buffer.from(JSON.stringify({ ...config, pad: 'p'.repeat(1024 * 1024 - stdin.length - 64) })); // just under 1 MiB
    } else if (s < 0.07) {
      const at = rng.int(0, stdin.length);
      stdin = Buffer.concat([stdin.subarray(0, at), rng.pick([Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])]), stdin.subarray(at)]);
      configOut = undefined;
    } else if (s < 0.09) {
      stdin = rng.bytes(rng.int(0, 2048));
      configOut = undefined;
    } else if (s < 0.11) {
      stdin = Buffer.from(rng.pick(['', ' ', 'null', '[]', '"x"', '1', '{', '{"a":', '\ufeff{}', '{}{}', JSON.stringify(config).slice(0, -1)]));
      configOut = undefined;
    } else if (s < 0.12) {
      const depth = rng.pick([1000, 100_000, 400_000]);
      // an extra deeply nested key: whether it is accepted or not, the rest of the config holds
      stdin = Buffer.from(`${JSON.stringify(config).slice(0, -1)},"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    } else if (s < 0.13) {
      stdin = Buffer.from(`\ufeff${JSON.stringify(config)}`); // a UTF-8 BOM: may be accepted
    }
  }
  return { index, mode, slot, command, env, stdin, config: configOut };
}

// ---------------------------------------------------------------------------------------------
// Independent checks of a success (deliberately not using src/address.ts or src/config.ts)

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function strictIp(text: unknown): { family: 4 | 6; value: bigint } | undefined {
  if (typeof text !== 'string') return undefined;
  if (V4.test(text) && isIPv4(text)) return { family: 4, value: bytesToBig(ipaddr.IPv4.parse(text).toByteArray()) };
  if (isIPv6(text) && !text.includes('%') && !text.includes('.')) {
    const p = ipaddr.IPv6.parse(text);
    if (p.isIPv4MappedAddress()) return undefined;
    return { family: 6, value: bytesToBig(p.toByteArray()) };
  }
  return undefined;
}

function strictCidr(text: unknown): { family: 4 | 6; first: bigint; last: bigint; prefix: number } | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^([^/]+)\/(0|[1-9]\d{0,2})$/.exec(text);
  if (!m) return undefined;
  const ip = strictIp(m[1]);
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) return undefined;
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) return undefined;
  return { family: ip.family, first: ip.value, last: ip.value | hostMask, prefix };
}

function bytesToBig(bytes: number[]): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function keyOf(family: 4 | 6, value: bigint): string {
  return value.toString(16).padStart(family === 4 ? 8 : 32, '0');
}

/** libcni reads a missing, null or empty cniVersion as 0.1.0. */
function versionOf(config: Record<string, any>): string {
  const v = config.cniVersion;
  return v === undefined || v === null || v === '' ? '0.1.0' : v;
}

/** Why `ip` may not come from this range (undefined: it may). */
function rangeProblem(range: any, ip: { family: 4 | 6; value: bigint }, prefix: number): string | undefined {
  const subnet = strictCidr(range?.subnet);
  if (!subnet || subnet.family !== ip.family || ip.value < subnet.first || ip.value > subnet.last) return 'not in the subnet';
  const bits = subnet.family === 4 ? 32 : 128;
  if (subnet.prefix > bits - 2) return `${range.subnet} is too small to allocate from`;
  if (prefix !== subnet.prefix) return `prefix /${prefix} is not the subnet's`;
  for (const field of ['rangeStart', 'rangeEnd', 'gateway']) {
    if (range[field] !== undefined && !strictIp(range[field])) return `hostile ${field} ${JSON.stringify(range[field])} was accepted`;
  }
  const start = range.rangeStart === undefined ? subnet.first + 1n : strictIp(range.rangeStart)!.value;
  const end = range.rangeEnd === undefined ? (subnet.family === 4 ? subnet.last - 1n : subnet.last) : strictIp(range.rangeEnd)!.value;
  const gateway = range.gateway === undefined ? subnet.first + 1n : strictIp(range.gateway)!.value;
  if (ip.value < start || ip.value > end) return `outside ${range.rangeStart ?? 'start'}-${range.rangeEnd ?? 'end'}`;
  if (ip.value === gateway) return 'the gateway';
  if (ip.value === subnet.first || (subnet.family === 4 && ip.value === subnet.last)) return 'the network or broadcast address';
  return undefined;
}

/** The index of the range set an address was allocated from (Infinity if none). */
function setIndexOf(config: Record<string, any>, ip: { family: 4 | 6; value: bigint }): number {
  const sets: any[][] = config.ipam?.ranges ?? [[{ subnet: config.ipam?.subnet, rangeStart: config.ipam?.rangeStart, rangeEnd: config.ipam?.rangeEnd, gateway: config.ipam?.gateway }]];
  const k = sets.findIndex((set) => Array.isArray(set) && set.some((range) => rangeProblem(range, ip, strictCidr(range?.subnet)?.prefix ?? -1) === undefined));
  return k < 0 ? Number.POSITIVE_INFINITY : k;
}

/** Problems with an ADD result for this config, or [] if it is a correct one. */
function addResultProblems(config: Record<string, any>, result: any): { problems: string[]; keys: string[] } {
  const problems: string[] = [];
  const keys: string[] = [];
  const version = versionOf(config);
  const legacy = version === '0.1.0' || version === '0.2.0';
  if (result?.cniVersion !== version) problems.push(`result cniVersion ${result?.cniVersion} for config ${JSON.stringify(config.cniVersion)}`);
  const sets: any[][] = config.ipam?.ranges ?? [[{ subnet: config.ipam?.subnet, rangeStart: config.ipam?.rangeStart, rangeEnd: config.ipam?.rangeEnd, gateway: config.ipam?.gateway }]];
  for (const range of sets.flat()) {
    if (!strictCidr(range?.subnet)) problems.push(`accepted hostile subnet ${JSON.stringify(range?.subnet)}`);
  }
  const addresses: unknown[] = legacy
    ? [result?.ip4?.ip, result?.ip6?.ip].filter((a) => a !== undefined)
    : Array.isArray(result?.ips)
      ? result.ips.map((ip: any) => ip?.address)
      : [];
  if (!legacy && addresses.length !== sets.length) problems.push(`${addresses.length} addresses for ${sets.length} range sets`);
  addresses.forEach((address, k) => {
    const m = typeof address === 'string' ? /^(.*)\/(\d+)$/.exec(address) : null;
    const ip = m ? strictIp(m[1]) : undefined;
    if (!ip) {
      problems.push(`address ${JSON.stringify(address)} is not ip/prefix`);
      return;
    }
    keys.push(`${ip.family}:${keyOf(ip.family, ip.value)}`);
    // ips[k] comes from range set k (a legacy result: from any set)
    const candidates = legacy ? sets.flat() : (sets[k] ?? []);
    const why = candidates.map((range) => rangeProblem(range, ip, Number(m![2])));
    if (!why.includes(undefined)) problems.push(`${address} cannot come from ${legacy ? 'any range set' : `range set ${k}`}: ${why.join('; ')}`);
  });
  const requested = config.runtimeConfig?.ips;
  if (Array.isArray(requested) && requested.length > 0) {
    for (const r of requested) {
      const text = typeof r === 'string' ? r.trim().split('/')[0] : r;
      const ip = strictIp(text);
      if (!ip) problems.push(`accepted hostile requested IP ${JSON.stringify(r)}`);
      else if (!legacy && !keys.includes(`${ip.family}:${keyOf(ip.family, ip.value)}`)) problems.push(`requested ${r} but got ${addresses.join(', ')}`);
    }
  }
  return { problems, keys };
}

// ---------------------------------------------------------------------------------------------

describe('fuzzing the plugin against a real daemon', () => {
  const seed = seedFrom('RESERVOIR_FUZZ_SEED');
  const only = process.env.RESERVOIR_FUZZ_ONLY === undefined ? undefined : Number(process.env.RESERVOIR_FUZZ_ONLY);
  const tag = `fz${seed.toString(36)}`;
  let socket: string;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    ({ socket, daemon } = await startDaemonIn(cleanup, 'fuzz'));
  }, 60_000);

  it(`${TOTAL} generated cases end in a well-formed error or a correct success`, async () => {
    console.log(`fuzz: seed ${seed}; reproduce a case with RESERVOIR_FUZZ_SEED=${seed} RESERVOIR_FUZZ_ONLY=<index>`);
    // reservoird holds its store exclusively: leases are read through its API. A lease can only be
    // in the network its config names, so that is where to look.
    const leasesOfCase = async (network: unknown, container: string | undefined) =>
      typeof network !== 'string' || !network.isWellFormed() || container === undefined
        ? []
        : (await leasesOf(socket, network)).filter((l) => l.containerId === container);
    const keyOfText = (ip: string) => {
      const parsed = strictIp(ip)!;
      return `${parsed.family}:${keyOf(parsed.family, parsed.value)}`;
    };

    const problems: string[] = [];
    const outcomes = new Map<string, number>();
    const done = new Map<number, Promise<{ ok: boolean; rows: string[] }>>();
    const resolvers = new Map<number, (v: { ok: boolean; rows: string[] }) => void>();
    const indices = only === undefined ? Array.from({ length: TOTAL }, (_, i) => i) : only % 10 >= 8 ? [only - 2, only] : [only];
    for (const i of indices) done.set(i, new Promise((resolve) => resolvers.set(i, resolve)));
    let processCases = 0;
    let inProcessCases = 0;

    const describeCase = (c: FuzzCase) =>
      `case ${seed}:${c.index} (${c.mode}, ${c.slot}${c.action ? ` ${c.action} of ${c.origin}` : ''}) env=${JSON.stringify(c.env).slice(0, 400)} stdin[${c.stdin.length}]=${c.stdin.subarray(0, 300).toString('utf8')}`;

    const runOne = async (c: FuzzCase): Promise<{ code: number | null; out: string; stderr: string }> => {
      if (c.mode === 'process') {
        processCases++;
        const env: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(c.env)) env[k] = v?.replace(/\0/g, '');
        const r = await runPluginProcess({ env, stdin: c.stdin, killAfterMs: 30_000 });
        if (r.timedOut) return { code: null, out: r.stdout, stderr: `HUNG: ${r.stderr}` };
        return { code: r.signal ? null : r.code, out: r.stdout, stderr: r.stderr };
      }
      inProcessCases++;
      const out: string[] = [];
      const code = await runPlugin({ env: c.env, stdin: async () => c.stdin, stdout: (text) => out.push(text) });
      if (out.length > 1) return { code, out: out.join('\n'), stderr: `stdout written ${out.length} times` };
      return { code, out: out.length ? `${out[0]}\n` : '', stderr: '' };
    };

    const check = async (c: FuzzCase): Promise<void> => {
      const fail = (why: string): void => {
        problems.push(`${why}\n    ${describeCase(c)}`);
      };
      const originOutcome = c.origin !== undefined ? await done.get(c.origin) : undefined;
      const container = c.env.CNI_CONTAINERID;
      const snapshot = async () => (await leasesOfCase(c.config?.name, container)).map((l) => `${l.ifname}/${l.ip}`).sort();
      // fresh and origin cases use container IDs of their own: only a follow-up finds leases before
      const before = c.command === 'ADD' && c.slot === 'follow-up' ? await snapshot() : [];
      const r = await runOne(c);
      let ok = false;
      let held: string[] = [];
      try {
        if (r.stderr) fail(`stderr: ${r.stderr.slice(0, 500)}`);
        if (r.code !== 0 && r.code !== 1) return fail(`exit ${r.code}`);
        const text = r.out.trim();
        let json: any;
        if (text) {
          if (!r.out.endsWith('\n') || text.includes('\n')) fail('stdout is not one line');
          try {
            json = JSON.parse(text);
          } catch {
            return fail(`stdout is not JSON: ${text.slice(0, 200)}`);
          }
        }
        if (r.code === 1) {
          const p = cniErrorProblems(json, KNOWN_CODES);
          if (p.length) return fail(`malformed error ${p.join('; ')}: ${text.slice(0, 300)}`);
          if (json.code === ErrorCodes.INTERNAL.code) return fail(`internal error (a bug): ${json.msg} ${json.details ?? ''}`);
          if (json.code === ErrorCodes.TRY_AGAIN_LATER.code) fail(`daemon unreachable or too slow: ${json.msg}`);
          outcomes.set(`error ${json.code}`, (outcomes.get(`error ${json.code}`) ?? 0) + 1);
          if (c.command === 'ADD') {
            const after = await snapshot();
            if (JSON.stringify(after) !== JSON.stringify(before)) fail(`failed ADD changed the leases of ${container}: ${before} -> ${after}`);
            if (c.slot !== 'follow-up' && after.length > 0) fail(`failed ADD left leases ${after}`);
          }
          return;
        }
        ok = true;
        outcomes.set(`ok ${c.command}`, (outcomes.get(`ok ${c.command}`) ?? 0) + 1);
        const config = c.config;
        const ifname = c.env.CNI_IFNAME;
        const mine = async () => (await leasesOfCase(config?.name, container)).filter((l) => l.ifname === ifname);
        switch (c.command) {
          case 'ADD': {
            if (!config) return fail('ADD succeeded on a stdin that is not a config');
            const { problems: p, keys } = addResultProblems(config, json);
            for (const why of p) fail(why);
            const leases = await mine();
            held = leases.map((l) => keyOfText(l.ip)).sort();
            // cniVersion < 0.3.0 results carry one address per family: the first range set's of each,
            // as libcni's own conversion does; the others stay leased to the attachment
            const legacy = ['0.1.0', '0.2.0'].includes(versionOf(config));
            const shown = legacy
              ? [4, 6]
                  .flatMap((f) =>
                    leases
                      .map((l) => ({ key: keyOfText(l.ip), ip: strictIp(l.ip)! }))
                      .filter((l) => l.ip.family === f)
                      .sort((a, b) => setIndexOf(config, a.ip) - setIndexOf(config, b.ip))
                      .slice(0, 1),
                  )
                  .map((l) => l.key)
                  .sort()
              : held;
            if (JSON.stringify(shown) !== JSON.stringify([...keys].sort())) fail(`ADD answered ${keys} but the store holds ${held}`);
            if (c.action === 'ADD-again' && originOutcome?.ok && JSON.stringify(originOutcome.rows) !== JSON.stringify(held)) {
              fail(`repeated ADD returned ${held}, the first returned ${originOutcome.rows}`);
            }
            return;
          }
          case 'DEL':
            if (text) fail(`DEL printed ${text.slice(0, 200)}`);
            if (config && (await mine()).length > 0) fail(`DEL succeeded but ${container}/${ifname} still holds ${(await mine()).map((x) => x.ip)}`);
            return;
          case 'CHECK':
            if (text) fail(`CHECK printed ${text.slice(0, 200)}`);
            if (config && (await mine()).length === 0) fail('CHECK succeeded without a lease');
            return;
          case 'GC':
          case 'STATUS':
            if (text) fail(`${c.command} printed ${text.slice(0, 200)}`);
            return;
          case 'VERSION':
            if (!Array.isArray(json?.supportedVersions) || !SUPPORTED.includes(json?.cniVersion)) fail(`bad VERSION answer ${text.slice(0, 200)}`);
            return;
          default:
            return fail(`command ${JSON.stringify(c.command)} succeeded`);
        }
      } finally {
        resolvers.get(c.index)?.({ ok: ok && c.command === 'ADD', rows: held });
      }
    };

    const cases = indices.map((i) => makeCase(seed, i, socket, tag));
    const pool = async (list: FuzzCase[], workers: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: workers }, async () => {
          while (next < list.length) {
            const c = list[next++]!;
            try {
              await check(c);
            } catch (err) {
              problems.push(`test harness error ${(err as Error).stack}\n    ${describeCase(c)}`);
              resolvers.get(c.index)?.({ ok: false, rows: [] });
            }
            if (!daemon.alive) throw new Error(`reservoird died during ${describeCase(c)}: ${JSON.stringify(daemon.exit)} ${daemon.stderr}`);
          }
        }),
      );
    };
    const started = performance.now();
    await Promise.all([
      pool(
        cases.filter((c) => c.mode === 'process'),
        PROCESS_WORKERS,
      ),
      pool(
        cases.filter((c) => c.mode === 'in-process'),
        IN_PROCESS_WORKERS,
      ),
    ]);
    const seconds = (performance.now() - started) / 1000;

    const h = await health(socket);
    expect(daemon.alive).toBe(true);
    expect(h.pid).toBe(daemon.pid);
    const summary = [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ');
    console.log(
      `fuzz: ${processCases + inProcessCases} cases (${processCases} plugin processes, ${inProcessCases} in-process) in ${seconds.toFixed(1)} s; ` +
        `daemon pid ${daemon.pid} alive, ${h.leases} leases; ${problems.length} problems\nfuzz: outcomes ${summary}`,
    );
    expect(problems.slice(0, 25)).toEqual([]);
    if (only === undefined) {
      expect(processCases).toBeGreaterThanOrEqual(300);
      expect(processCases + inProcessCases).toBeGreaterThanOrEqual(10_000);
    }
  }, SOAK ? 1_800_000 : 600_000);
});
