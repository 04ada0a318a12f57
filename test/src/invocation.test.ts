import { describe, expect, it } from 'vitest';
import { formatIp } from '../../src/address.js';
import { SUPPORTED_VERSIONS } from '../../src/cni.js';
import {
  ANNOTATION_GROUP,
  ANNOTATION_IP,
  ANNOTATION_KIND,
  type CniEnv,
  type LeaseCommand,
  POD_ANNOTATIONS_CAPABILITY,
  configVersion,
  decodeConfig,
  parseCniArgs,
  parseIfname,
  parseInvocation,
} from '../../src/invocation.js';
import { expectReservoirError } from '../support/expect-error.js';

const IPAM = { type: 'reservoir', ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] };

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name: 'net1', type: 'bridge', ipam: IPAM, ...extra };
}

const ENV: CniEnv = { CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0' };

function env(extra: Partial<CniEnv> = {}): CniEnv {
  return { ...ENV, ...extra };
}

const fails = expectReservoirError;

const annotations = (values: Record<string, unknown>) => ({ runtimeConfig: { [POD_ANNOTATIONS_CAPABILITY]: values } });
const addIps = (extra: Record<string, unknown>, cniArgs?: string) =>
  parseInvocation('ADD', env(cniArgs === undefined ? {} : { CNI_ARGS: cniArgs }), config(extra)).requestedIps.map(formatIp);

describe('decodeConfig', () => {
  it('returns the object', () => {
    expect(decodeConfig('{"cniVersion":"1.0.0","name":"n"}')).toEqual({ cniVersion: '1.0.0', name: 'n' });
    expect(decodeConfig(' \n{}\n')).toEqual({});
  });

  it.each(['', '{', '{"a":1,}', "{'a':1}", 'not json', '{"a":1}{"b":2}', '\u0000'])('invalid JSON %j -> code 6', (stdin) => {
    fails(() => decodeConfig(stdin), 6, 'cannot decode the network configuration on stdin');
  });

  it.each(['null', '[]', '[{}]', '5', '"{}"', 'true'])('non-object %s -> code 6', (stdin) => {
    fails(() => decodeConfig(stdin), 6, 'must be a JSON object');
  });
});

describe('configVersion', () => {
  it.each(SUPPORTED_VERSIONS)('%s is itself', (version) => {
    expect(configVersion({ cniVersion: version })).toBe(version);
  });

  it.each<[string, Record<string, unknown>]>([
    ['missing', {}],
    ['null', { cniVersion: null }],
    ['empty (libcni reads "" as 0.1.0)', { cniVersion: '' }],
  ])('%s -> 0.1.0', (_name, conf) => {
    expect(configVersion(conf)).toBe('0.1.0');
  });

  it.each<[unknown, string]>([
    ['0.5.0', '"0.5.0"'],
    ['1.2.0', '"1.2.0"'],
    ['1.0', '"1.0"'],
    ['v1.0.0', '"v1.0.0"'],
    [' 1.0.0', '" 1.0.0"'],
    [1, '1'],
    [['1.0.0'], '["1.0.0"]'],
  ])('%j -> code 1', (cniVersion, shown) => {
    const message = fails(() => configVersion({ cniVersion }), 1, shown, 'not supported');
    for (const version of SUPPORTED_VERSIONS) expect(message).toContain(version);
  });
});

describe('parseInvocation: cniVersion per command', () => {
  it.each<[LeaseCommand, string, boolean]>([
    ['ADD', '0.1.0', true],
    ['DEL', '0.1.0', true],
    ['CHECK', '0.1.0', false],
    ['CHECK', '0.3.1', false],
    ['CHECK', '0.4.0', true],
    ['CHECK', '1.0.0', true],
    ['GC', '0.4.0', false],
    ['GC', '1.0.0', false],
    ['GC', '1.1.0', true],
    ['STATUS', '1.0.0', false],
    ['STATUS', '1.1.0', true],
  ])('%s with cniVersion %s: allowed %s', (command, cniVersion, allowed) => {
    const conf = config({ cniVersion, 'cni.dev/valid-attachments': [] });
    if (allowed) {
      expect(parseInvocation(command, env(), conf).cniVersion).toBe(cniVersion);
    } else {
      fails(() => parseInvocation(command, env(), conf), 1, `${command} needs cniVersion`, cniVersion);
    }
  });

  it('a config without cniVersion is 0.1.0: ADD works, CHECK does not', () => {
    const conf = config();
    delete conf.cniVersion;
    expect(parseInvocation('ADD', env(), conf).cniVersion).toBe('0.1.0');
    fails(() => parseInvocation('CHECK', env(), conf), 1, 'CHECK needs cniVersion 0.4.0', '0.1.0');
  });

  it('the version is checked before anything else', () => {
    fails(() => parseInvocation('GC', {}, { cniVersion: '1.0.0' }), 1);
    fails(() => parseInvocation('ADD', {}, { cniVersion: '9.9.9' }), 1);
  });
});

describe('parseInvocation: the config', () => {
  it('a full ADD', () => {
    const inv = parseInvocation('ADD', env(), config());
    expect(inv.command).toBe('ADD');
    expect(inv.network).toBe('net1');
    expect(inv.rawIpam).toBe(IPAM);
    expect(inv.ipam.rangeSets).toHaveLength(2);
    expect(inv.attachment).toEqual({ containerId: 'c0ffee', ifname: 'eth0' });
    expect(inv.netns).toBe('/var/run/netns/x');
    expect(inv.app).toBeUndefined();
    expect(inv.kind).toBe('stateless');
    expect(inv.requestedIps).toEqual([]);
    expect(inv.group).toBeUndefined();
    expect(inv.prevAddresses).toBeUndefined();
    expect(inv.validAttachments).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    ['name missing', { name: undefined }, ['invalid config: name:', 'nothing']],
    ['name invalid', { name: 'my net' }, ['invalid config: name:', '"my net"']],
    ['ipam missing', { ipam: undefined }, ['invalid config: ipam:', 'nothing']],
    ['ipam a string', { ipam: 'reservoir' }, ['invalid config: ipam:', '"reservoir"']],
    ['ipam invalid', { ipam: { ranges: [] } }, ['invalid config: ipam.ranges:']],
    ['runtimeConfig not an object', { runtimeConfig: [] }, ['invalid config: runtimeConfig:']],
    ['annotations not an object', annotations('x' as never), ['io.kubernetes.cri.pod-annotations']],
    ['annotation not a string', annotations({ [ANNOTATION_IP]: ['10.0.0.5'] }), [`annotation ${ANNOTATION_IP}`, 'must be a string']],
    ['args not an object', { args: 'x' }, ['invalid config: args:']],
    ['args.cni not an object', { args: { cni: 5 } }, ['invalid config: args.cni:']],
  ])('%s -> code 7', (_name, extra, fragments) => {
    fails(() => parseInvocation('ADD', env(), config(extra)), 7, ...fragments);
  });

  it('null annotations are no annotations', () => {
    expect(parseInvocation('ADD', env(), config({ runtimeConfig: { [POD_ANNOTATIONS_CAPABILITY]: null } })).requestedIps).toEqual([]);
  });
});

describe('parseCniArgs', () => {
  it.each<[string | undefined, Record<string, string>]>([
    [undefined, {}],
    ['', {}],
    [';', {}],
    ['IP=10.0.0.5', { IP: '10.0.0.5' }],
    ['K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod', { K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'pod' }],
    ['K8S_POD_NAMESPACE=ns;;K8S_POD_NAME=pod;', { K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'pod' }],
    ['IP=', { IP: '' }],
    ['RESERVOIR_APP=a=b', { RESERVOIR_APP: 'a=b' }],
    ['IgnoreUnknown=1;FOO=bar', { IgnoreUnknown: '1', FOO: 'bar' }],
    ['IgnoreUnknown=true;FOO=bar', { IgnoreUnknown: 'true', FOO: 'bar' }],
    ['IgnoreUnknown=TRUE;FOO=bar', { IgnoreUnknown: 'TRUE', FOO: 'bar' }],
    ['FOO=bar;IgnoreUnknown=1', { FOO: 'bar', IgnoreUnknown: '1' }],
    ['IgnoreUnknown=0', { IgnoreUnknown: '0' }],
    ['IP=10.0.0.5;IP=10.0.0.5', { IP: '10.0.0.5' }],
    ['K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1', { K8S_POD_INFRA_CONTAINER_ID: 'abc', K8S_POD_UID: 'u-1' }],
  ])('%j', (text, expected) => {
    expect(Object.fromEntries(parseCniArgs(text))).toEqual(expected);
  });

  it.each<[string, string[]]>([
    ['FOO=bar', ['unknown keys FOO', 'IgnoreUnknown']],
    ['IP=10.0.0.5;FOO=bar;BAZ=1', ['unknown keys FOO, BAZ']],
    ['IgnoreUnknown=0;FOO=bar', ['unknown keys FOO']],
    ['IgnoreUnknown=false;FOO=bar', ['unknown keys FOO']],
    ['IgnoreUnknown=yes;FOO=bar', ['unknown keys FOO']],
    ['ip=10.0.0.5', ['unknown keys ip']],
    ['IP', ['"IP" is not KEY=VALUE']],
    ['=10.0.0.5', ['"=10.0.0.5" is not KEY=VALUE']],
    ['IP=10.0.0.5;garbage', ['"garbage" is not KEY=VALUE']],
    ['IgnoreUnknown=1;garbage', ['"garbage" is not KEY=VALUE']],
    ['IP=10.0.0.5;IP=10.0.0.6', ['gives IP twice', '"10.0.0.5" and "10.0.0.6"', 'give it once']],
    ['K8S_POD_NAME=a;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=b', ['gives K8S_POD_NAME twice']],
  ])('%j -> code 4', (text, fragments) => {
    fails(() => parseCniArgs(text), 4, 'CNI_ARGS', ...fragments);
  });

  it('truncates a huge malformed pair in the message', () => {
    const message = fails(() => parseCniArgs('x'.repeat(500)), 4);
    expect(message.length).toBeLessThan(200);
  });

  it('parseInvocation reports bad CNI_ARGS with code 4', () => {
    fails(() => parseInvocation('ADD', env({ CNI_ARGS: 'FOO=bar' }), config()), 4, 'FOO');
    fails(() => parseInvocation('DEL', env({ CNI_ARGS: 'oops' }), config()), 4, 'oops');
  });
});

describe('parseInvocation: CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS', () => {
  it.each<[string, Partial<CniEnv>, string]>([
    ['no container id', { CNI_CONTAINERID: undefined }, 'CNI_CONTAINERID is missing'],
    ['empty container id', { CNI_CONTAINERID: '' }, 'CNI_CONTAINERID is missing'],
    ['container id with a slash', { CNI_CONTAINERID: 'a/b' }, 'CNI_CONTAINERID "a/b" is invalid'],
    ['container id starting with a dot', { CNI_CONTAINERID: '.abc' }, 'CNI_CONTAINERID ".abc"'],
    ['container id starting with a dash', { CNI_CONTAINERID: '-abc' }, 'CNI_CONTAINERID "-abc"'],
    ['container id with a space', { CNI_CONTAINERID: 'a b' }, 'CNI_CONTAINERID "a b"'],
    ['container id of 257 characters', { CNI_CONTAINERID: 'a'.repeat(257) }, 'CNI_CONTAINERID "aaaa'],
    ['no ifname', { CNI_IFNAME: undefined }, 'CNI_IFNAME is missing'],
    ['empty ifname', { CNI_IFNAME: '' }, 'CNI_IFNAME is missing'],
    ['ifname of 16 bytes', { CNI_IFNAME: 'a'.repeat(16) }, `CNI_IFNAME "${'a'.repeat(16)}" is not a valid interface name`],
    ['ifname of 8 characters but 16 bytes', { CNI_IFNAME: 'éééééééé' }, 'CNI_IFNAME "éééééééé"'],
    ['ifname with a slash', { CNI_IFNAME: 'eth/0' }, 'CNI_IFNAME "eth/0"'],
    ['ifname with a colon', { CNI_IFNAME: 'eth0:1' }, 'CNI_IFNAME "eth0:1"'],
    ['ifname with a space', { CNI_IFNAME: 'eth 0' }, 'CNI_IFNAME "eth 0"'],
    ['ifname with a tab', { CNI_IFNAME: 'eth\t0' }, 'CNI_IFNAME'],
    ['ifname "."', { CNI_IFNAME: '.' }, 'CNI_IFNAME "."'],
    ['ifname ".."', { CNI_IFNAME: '..' }, 'CNI_IFNAME ".."'],
    ['no netns', { CNI_NETNS: undefined }, 'CNI_NETNS is missing'],
    ['empty netns', { CNI_NETNS: '' }, 'CNI_NETNS is missing'],
    ['relative netns', { CNI_NETNS: 'var/run/netns/x' }, 'CNI_NETNS "var/run/netns/x" must be an absolute path'],
    ['dot-relative netns', { CNI_NETNS: './x' }, 'CNI_NETNS "./x"'],
    ['netns with NUL', { CNI_NETNS: '/proc/1/ns/net\u0000' }, 'CNI_NETNS'],
    ['netns too long', { CNI_NETNS: `/${'a'.repeat(4096)}` }, 'CNI_NETNS'],
  ])('ADD: %s -> code 4', (_name, extra, fragment) => {
    fails(() => parseInvocation('ADD', env(extra), config()), 4, fragment);
  });

  it.each<[string, Partial<CniEnv>]>([
    ['no container id', { CNI_CONTAINERID: undefined }],
    ['bad ifname', { CNI_IFNAME: '..' }],
    ['no netns', { CNI_NETNS: undefined }],
    ['relative netns', { CNI_NETNS: 'x' }],
  ])('CHECK: %s -> code 4', (_name, extra) => {
    fails(() => parseInvocation('CHECK', env(extra), config()), 4);
  });

  it.each<[string, string]>([
    ['a', 'a'],
    ['15 bytes', 'a'.repeat(15)],
    ['dots inside', 'eth.100'],
    ['dashes', 'veth-ab_c'],
    ['"..."', '...'],
  ])('ifname %s accepted', (_name, ifname) => {
    expect(parseInvocation('ADD', env({ CNI_IFNAME: ifname }), config()).attachment.ifname).toBe(ifname);
    expect(parseIfname(ifname)).toBe(ifname);
  });

  it('container ids: 256 characters, dots, dashes and underscores are fine', () => {
    for (const id of ['a'.repeat(256), 'abc.def-ghi_jkl', '0']) {
      expect(parseInvocation('ADD', env({ CNI_CONTAINERID: id }), config()).attachment.containerId).toBe(id);
    }
  });

  it('DEL without CNI_NETNS is fine (the namespace may be gone)', () => {
    const inv = parseInvocation('DEL', env({ CNI_NETNS: undefined }), config());
    expect(inv.netns).toBe('');
    expect(inv.attachment).toEqual({ containerId: 'c0ffee', ifname: 'eth0' });
    expect(parseInvocation('DEL', env({ CNI_NETNS: '' }), config()).netns).toBe('');
  });

  it('DEL with a CNI_NETNS still validates it', () => {
    expect(parseInvocation('DEL', env(), config()).netns).toBe('/var/run/netns/x');
    fails(() => parseInvocation('DEL', env({ CNI_NETNS: 'relative' }), config()), 4, 'CNI_NETNS "relative"');
  });

  it('DEL still needs the container id and ifname', () => {
    fails(() => parseInvocation('DEL', env({ CNI_CONTAINERID: undefined }), config()), 4, 'CNI_CONTAINERID');
    fails(() => parseInvocation('DEL', env({ CNI_IFNAME: undefined }), config()), 4, 'CNI_IFNAME');
  });

  it.each(['GC', 'STATUS'] as const)('%s needs no attachment env at all', (command) => {
    const inv = parseInvocation(command, {}, config({ 'cni.dev/valid-attachments': [] }));
    expect(inv.attachment).toEqual({ containerId: '', ifname: '' });
    expect(inv.netns).toBe('');
  });
});

describe('parseInvocation: requested IPs', () => {
  const rc = (ips: unknown) => ({ runtimeConfig: { ips } });
  const argsCni = (ips: unknown) => ({ args: { cni: { ips } } });
  const ann = (ip: string) => annotations({ [ANNOTATION_IP]: ip });

  it.each<[string, Record<string, unknown>, string | undefined, string[]]>([
    ['none', {}, undefined, []],
    ['runtimeConfig.ips', rc(['10.0.0.5']), undefined, ['10.0.0.5']],
    ['runtimeConfig.ips with prefixes', rc(['10.0.0.5/24', 'fd00::5/64']), undefined, ['10.0.0.5', 'fd00::5']],
    ['args.cni.ips', argsCni(['10.0.0.6']), undefined, ['10.0.0.6']],
    ['annotation', ann('10.0.0.7'), undefined, ['10.0.0.7']],
    ['annotation list with spaces', ann(' 10.0.0.7 , fd00::7 '), undefined, ['10.0.0.7', 'fd00::7']],
    ['CNI_ARGS IP', {}, 'IP=10.0.0.8', ['10.0.0.8']],
    ['CNI_ARGS IP list with a prefix', {}, 'IP=10.0.0.8/24,fd00::8', ['10.0.0.8', 'fd00::8']],
    ['runtimeConfig beats everything', { runtimeConfig: { ips: ['10.0.0.5'], [POD_ANNOTATIONS_CAPABILITY]: { [ANNOTATION_IP]: '10.0.0.7' } }, ...argsCni(['10.0.0.6']) }, 'IP=10.0.0.8', ['10.0.0.5']],
    ['an empty runtimeConfig.ips falls through to the annotation', { runtimeConfig: { ips: [], [POD_ANNOTATIONS_CAPABILITY]: { [ANNOTATION_IP]: '10.0.0.7' } } }, 'IP=10.0.0.8', ['10.0.0.7']],
    ['args.cni beats the annotation and CNI_ARGS', { ...argsCni(['10.0.0.6']), ...ann('10.0.0.7') }, 'IP=10.0.0.8', ['10.0.0.6']],
    ['the annotation beats CNI_ARGS', ann('10.0.0.7'), 'IP=10.0.0.8', ['10.0.0.7']],
    ['an empty runtimeConfig.ips falls through', { ...rc([]), ...argsCni(['10.0.0.6']) }, undefined, ['10.0.0.6']],
    ['an empty args.cni.ips falls through to CNI_ARGS', argsCni([]), 'IP=10.0.0.8', ['10.0.0.8']],
    ['a lower source is not even parsed when a higher one wins', rc(['10.0.0.5']), 'IP=garbage', ['10.0.0.5']],
    ['16 IPs', rc(Array.from({ length: 16 }, (_, i) => `10.0.0.${i + 10}`)), undefined, Array.from({ length: 16 }, (_, i) => `10.0.0.${i + 10}`)],
    ['a prefix on an IP outside every subnet is left to the daemon (code 102)', rc(['10.9.0.5/16']), undefined, ['10.9.0.5']],
    ['the longest prefixes, /32 and /128, outside every subnet', rc(['10.9.0.5/32', 'fd09::5/128']), undefined, ['10.9.0.5', 'fd09::5']],
  ])('%s', (_name, extra, cniArgs, expected) => {
    expect(addIps(extra, cniArgs)).toEqual(expected);
  });

  it('the parsed IPs carry their family', () => {
    const inv = parseInvocation('ADD', env(), config(rc(['10.0.0.5', 'fd00::5'])));
    expect(inv.requestedIps.map((ip) => ip.family)).toEqual([4, 6]);
    expect(inv.requestedIps[0]!.value).toBe(0x0a000005n);
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    ['runtimeConfig.ips not an array', rc('10.0.0.5'), ['runtimeConfig.ips', 'must be an array']],
    ['args.cni.ips not an array', argsCni({ ip: '10.0.0.5' }), ['args.cni.ips', 'must be an array']],
    ['bad IP in runtimeConfig', rc(['10.0.0.5', '10.0.0.256']), ['runtimeConfig.ips[1]', '10.0.0.256']],
    ['leading zero', rc(['010.0.0.5']), ['runtimeConfig.ips[0]', '010.0.0.5']],
    ['a number', rc([167772165]), ['runtimeConfig.ips[0]', '167772165']],
    ['bad prefix', rc(['10.0.0.5/33']), ['runtimeConfig.ips[0]', '10.0.0.5/33', 'invalid prefix']],
    ['IPv6 prefix /129', rc(['fd00::5/129']), ['fd00::5/129']],
    ['non-numeric prefix', rc(['10.0.0.5/x']), ['10.0.0.5/x']],
    ['zone', rc(['fe80::5%eth0']), ['fe80::5%eth0']],
    ['duplicate', rc(['10.0.0.5', '10.0.0.5']), ['runtimeConfig.ips', 'lists the same IP twice', '10.0.0.5']],
    ['duplicate behind a prefix', rc(['10.0.0.5/24', '10.0.0.5']), ['lists the same IP twice']],
    ['duplicate IPv6 in two spellings', rc(['fd00::5', 'fd00:0::0:5']), ['lists the same IP twice']],
    ['17 IPs', rc(Array.from({ length: 17 }, (_, i) => `10.0.0.${i + 10}`)), ['runtimeConfig.ips', '17 IPs requested; at most 16']],
    ['bad args.cni IP', argsCni(['nope']), ['args.cni.ips[0]', 'nope']],
    ['bad annotation IP', ann('10.0.0.5,10.0.0.x'), [`annotation ${ANNOTATION_IP}[1]`, '10.0.0.x']],
    ['duplicate annotation IP', ann('10.0.0.5,10.0.0.5'), [`annotation ${ANNOTATION_IP}`, 'twice']],
    ['a prefix that is not its subnet\'s', rc(['10.0.0.7/8']), ['runtimeConfig.ips[0]', '"10.0.0.7/8" has prefix /8 but lies in subnet 10.0.0.0/24', 'bare IP or 10.0.0.7/24']],
    ['an IPv6 prefix that is not its subnet\'s', rc(['fd00::7/48']), ['subnet fd00::/64', 'fd00::7/64']],
  ])('%s -> code 7', (_name, extra, fragments) => {
    fails(() => parseInvocation('ADD', env(), config(extra)), 7, ...fragments);
  });

  it.each<[string, string, string[]]>([
    ['bad CNI_ARGS IP', 'IP=10.0.0.x', ['CNI_ARGS IP[0]', '10.0.0.x']],
    ['second bad', 'IP=10.0.0.5,bad', ['CNI_ARGS IP[1]', 'bad']],
    ['empty', 'IP=', ['CNI_ARGS IP[0]']],
    ['bad prefix', 'IP=10.0.0.5/40', ['10.0.0.5/40']],
    ['duplicate', 'IP=10.0.0.5,10.0.0.5/24', ['CNI_ARGS IP', 'lists the same IP twice']],
    ['17 IPs', `IP=${Array.from({ length: 17 }, (_, i) => `10.0.0.${i + 10}`).join(',')}`, ['CNI_ARGS IP', 'at most 16']],
    ['a prefix that is not its subnet\'s', 'IP=10.0.0.7/8', ['CNI_ARGS IP[0]', 'has prefix /8 but lies in subnet 10.0.0.0/24']],
    ['IP given twice', 'IP=10.0.0.7;IP=10.0.0.8', ['CNI_ARGS gives IP twice']],
  ])('%s from CNI_ARGS -> code 4', (_name, cniArgs, fragments) => {
    const message = fails(() => parseInvocation('ADD', env({ CNI_ARGS: cniArgs }), config()), 4, ...fragments);
    expect(message).not.toMatch(/^invalid config/);
  });

  it.each(['DEL', 'CHECK'] as const)('%s ignores requested IPs', (command) => {
    expect(parseInvocation(command, env({ CNI_ARGS: 'IP=10.0.0.5' }), config(rc(['10.0.0.6']))).requestedIps).toEqual([]);
  });
});

describe('parseInvocation: kind, app and group', () => {
  const args = (text: string) => env({ CNI_ARGS: text });
  const pod = 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0';
  const statefulIpam = { ...IPAM, defaultKind: 'stateful' };

  it.each<[string, Record<string, unknown>, string, 'stateless' | 'stateful']>([
    ['default', {}, '', 'stateless'],
    ['ipam.defaultKind', { ipam: statefulIpam }, pod, 'stateful'],
    ['CNI_ARGS beats defaultKind', { ipam: statefulIpam }, 'RESERVOIR_KIND=stateless', 'stateless'],
    ['CNI_ARGS', {}, `${pod};RESERVOIR_KIND=stateful`, 'stateful'],
    ['annotation beats CNI_ARGS', annotations({ [ANNOTATION_KIND]: 'stateful' }), `${pod};RESERVOIR_KIND=stateless`, 'stateful'],
    ['annotation beats defaultKind', { ipam: statefulIpam, ...annotations({ [ANNOTATION_KIND]: ' stateless ' }) }, '', 'stateless'],
  ])('kind: %s', (_name, extra, cniArgs, kind) => {
    expect(parseInvocation('ADD', args(cniArgs), config(extra)).kind).toBe(kind);
  });

  it('a bad kind annotation is code 7 naming the annotation', () => {
    fails(() => parseInvocation('ADD', env(), config(annotations({ [ANNOTATION_KIND]: 'sticky' }))), 7, `annotation ${ANNOTATION_KIND}`, '"sticky"');
  });

  it('a bad RESERVOIR_KIND is code 4 naming CNI_ARGS', () => {
    fails(() => parseInvocation('ADD', args('RESERVOIR_KIND=Stateful'), config()), 4, 'CNI_ARGS RESERVOIR_KIND', '"Stateful"');
  });

  it('the annotation is used even when CNI_ARGS has a bad kind', () => {
    expect(parseInvocation('ADD', args('RESERVOIR_KIND=bad'), config(annotations({ [ANNOTATION_KIND]: 'stateless' }))).kind).toBe('stateless');
  });

  it.each<[string, string, string | undefined]>([
    ['pod identity', pod, 'ns/web-0'],
    ['RESERVOIR_APP', 'RESERVOIR_APP=billing', 'billing'],
    ['RESERVOIR_APP beats the pod', `${pod};RESERVOIR_APP=billing`, 'billing'],
    ['namespace only', 'K8S_POD_NAMESPACE=ns', undefined],
    ['name only', 'K8S_POD_NAME=web-0', undefined],
    ['empty name', 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=', undefined],
    ['nothing', '', undefined],
    ['dots in names', 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns.abc-1', 'kube-system/coredns.abc-1'],
  ])('app: %s', (_name, cniArgs, app) => {
    expect(parseInvocation('ADD', args(cniArgs), config()).app).toBe(app);
  });

  it.each<[string, string, string]>([
    ['RESERVOIR_APP with a slash', 'RESERVOIR_APP=a/b', 'RESERVOIR_APP "a/b"'],
    ['RESERVOIR_APP empty', 'RESERVOIR_APP=', 'RESERVOIR_APP ""'],
    ['RESERVOIR_APP ending in a dash', 'RESERVOIR_APP=app-', 'RESERVOIR_APP "app-"'],
    ['pod name with a slash', 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=a/b', '"ns/a/b"'],
    ['namespace with a space', 'K8S_POD_NAMESPACE=n s;K8S_POD_NAME=p', '"n s/p"'],
  ])('app: %s -> code 4', (_name, cniArgs, fragment) => {
    fails(() => parseInvocation('ADD', args(cniArgs), config()), 4, fragment);
  });

  it('stateful ADD without an app identity -> code 4', () => {
    fails(() => parseInvocation('ADD', args('RESERVOIR_KIND=stateful'), config()), 4, 'stateful app needs an identity');
    fails(() => parseInvocation('ADD', env(), config({ ipam: statefulIpam })), 4, 'K8S_POD_NAMESPACE');
    fails(() => parseInvocation('ADD', args('K8S_POD_NAMESPACE=ns'), config({ ipam: statefulIpam })), 4, 'identity');
  });

  it('stateful without identity is fine for DEL and CHECK', () => {
    expect(parseInvocation('DEL', env(), config({ ipam: statefulIpam })).kind).toBe('stateful');
    expect(parseInvocation('CHECK', env(), config({ ipam: statefulIpam })).app).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, string, string | undefined]>([
    ['none', {}, '', undefined],
    ['CNI_ARGS', {}, 'RESERVOIR_GROUP=db', 'db'],
    ['annotation', annotations({ [ANNOTATION_GROUP]: 'db' }), '', 'db'],
    ['annotation beats CNI_ARGS', annotations({ [ANNOTATION_GROUP]: 'db' }), 'RESERVOIR_GROUP=cache', 'db'],
    ['annotation trimmed', annotations({ [ANNOTATION_GROUP]: '  db ' }), '', 'db'],
  ])('group: %s', (_name, extra, cniArgs, group) => {
    expect(parseInvocation('ADD', args(cniArgs), config(extra)).group).toBe(group);
  });

  it('a bad group annotation is code 7, a bad RESERVOIR_GROUP code 4', () => {
    fails(() => parseInvocation('ADD', env(), config(annotations({ [ANNOTATION_GROUP]: 'd b' }))), 7, `annotation ${ANNOTATION_GROUP}`, '"d b"');
    fails(() => parseInvocation('ADD', args('RESERVOIR_GROUP=-db'), config()), 4, 'CNI_ARGS RESERVOIR_GROUP', '"-db"');
  });
});

describe('parseInvocation: CHECK prevResult and GC attachments', () => {
  it('CHECK reads the addresses of prevResult, any shape', () => {
    const v1 = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.5/24' }] };
    expect(parseInvocation('CHECK', env(), config({ prevResult: v1 })).prevAddresses).toEqual(['10.0.0.5/24']);
    const v04 = { cniVersion: '0.4.0', ips: [{ version: '6', address: 'fd00::5/64' }] };
    expect(parseInvocation('CHECK', env(), config({ cniVersion: '0.4.0', prevResult: v04 })).prevAddresses).toEqual(['fd00::5/64']);
  });

  it('CHECK without prevResult has no prevAddresses; a malformed one is code 7', () => {
    expect(parseInvocation('CHECK', env(), config()).prevAddresses).toBeUndefined();
    fails(() => parseInvocation('CHECK', env(), config({ prevResult: 'x' })), 7, 'prevResult');
  });

  it('ADD and DEL ignore prevResult', () => {
    expect(parseInvocation('ADD', env(), config({ prevResult: 'x' })).prevAddresses).toBeUndefined();
    expect(parseInvocation('DEL', env(), config({ prevResult: 'x' })).prevAddresses).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, Array<{ containerId: string; ifname: string }>]>([
    ['cni.dev/valid-attachments', { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'net1' }] }, [{ containerId: 'a', ifname: 'eth0' }, { containerId: 'b', ifname: 'net1' }]],
    ['cni.dev/attachments (older name)', { 'cni.dev/attachments': [{ containerID: 'c', ifname: 'eth0' }] }, [{ containerId: 'c', ifname: 'eth0' }]],
    ['valid-attachments wins over attachments', { 'cni.dev/valid-attachments': [], 'cni.dev/attachments': [{ containerID: 'c', ifname: 'eth0' }] }, []],
    ['empty', { 'cni.dev/valid-attachments': [] }, []],
  ])('GC: %s', (_name, extra, expected) => {
    expect(parseInvocation('GC', {}, config(extra)).validAttachments).toEqual(expected);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['missing', {}, 'cni.dev/valid-attachments: GC needs the list'],
    ['not an array', { 'cni.dev/valid-attachments': {} }, 'cni.dev/valid-attachments: must be an array'],
    ['old name not an array', { 'cni.dev/attachments': 'x' }, 'cni.dev/attachments: must be an array'],
    ['item not an object', { 'cni.dev/valid-attachments': ['a'] }, 'cni.dev/valid-attachments[0]'],
    ['item without ifname', { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'a' }] }, 'cni.dev/valid-attachments[1]: needs string'],
    ['containerId spelled wrong', { 'cni.dev/valid-attachments': [{ containerId: 'a', ifname: 'eth0' }] }, 'needs string "containerID"'],
  ])('GC: %s -> code 7', (_name, extra, fragment) => {
    fails(() => parseInvocation('GC', {}, config(extra)), 7, fragment);
  });

  it('only GC reads attachments', () => {
    expect(parseInvocation('STATUS', {}, config()).validAttachments).toBeUndefined();
    expect(parseInvocation('DEL', env(), config({ 'cni.dev/valid-attachments': 'x' })).validAttachments).toBeUndefined();
  });
});
