// The plugin's behaviour as a corpus: invocations (command, environment, stdin, which daemon)
// whose outputs (exit code, stdout, stderr) are kept in test/golden/plugin-outputs.json.
// test/integration/plugin-golden.test.ts runs them in order against a fresh daemon, so the IPs a
// case gets depend on the cases before it: append new cases at the end.
//
// In stdin, @SOCK@ stands for the daemon's socket and @DIR@ for its directory; outputs name that
// directory <DIR>.
import { SUPPORTED_VERSIONS } from '../../src/cni.js';
import { MAX_STDIN_BYTES } from '../../src/defaults.js';

export interface CorpusCase {
  readonly name: string;
  /** CNI_COMMAND; undefined leaves it unset. */
  readonly command: string | undefined;
  readonly containerId?: string;
  readonly ifname?: string;
  readonly args?: string;
  /** Extra or overriding environment; undefined unsets. */
  readonly env?: Record<string, string | undefined>;
  /** An object is JSON-encoded; a string is sent as is; a Buffer as its bytes. */
  readonly stdin: unknown;
  /** Put the stdout of this earlier case (a result) into the config as prevResult. */
  readonly prevResultOf?: string;
}

const ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';

function conf(cniVersion: unknown, { ipam = {}, top = {}, name = 'golden' }: { ipam?: Record<string, unknown>; top?: Record<string, unknown>; name?: string } = {}): Record<string, unknown> {
  return { cniVersion, name, type: 'bridge', ...top, ipam: { type: 'reservoir', socket: '@SOCK@', timeout: '10s', ranges: [[{ subnet: '10.30.0.0/24', gateway: '10.30.0.1' }], [{ subnet: 'fd00:30::/64' }]], routes: [{ dst: '0.0.0.0/0' }], ...ipam } };
}

const ok = conf('1.0.0');
const add = (name: string, containerId: string, stdin: unknown, extra: Partial<CorpusCase> = {}): CorpusCase => ({ name, command: 'ADD', containerId, stdin, ...extra });

export const CORPUS: readonly CorpusCase[] = [
  // VERSION: answered without the daemon, in the config's cniVersion when it names a supported one
  { name: 'VERSION, empty stdin', command: 'VERSION', stdin: '' },
  ...SUPPORTED_VERSIONS.map((v) => ({ name: `VERSION, config ${v}`, command: 'VERSION', stdin: conf(v) })),
  { name: 'VERSION, stdin not JSON', command: 'VERSION', stdin: 'x' },
  { name: 'VERSION, unsupported cniVersion', command: 'VERSION', stdin: conf('9.9.9') },

  // the environment
  { name: 'no CNI_COMMAND', command: undefined, stdin: ok },
  { name: 'unknown CNI_COMMAND', command: 'FOO', stdin: ok },
  { name: 'ADD without CNI_CONTAINERID', command: 'ADD', stdin: ok },
  { name: 'ADD without CNI_IFNAME', command: 'ADD', containerId: 'golden-noif', env: { CNI_IFNAME: undefined }, stdin: ok },
  add('ADD with an unknown CNI_ARGS key', 'golden-args', ok, { args: 'FOO=bar' }),
  add('ADD with a bad CNI_ARGS IP', 'golden-args', ok, { args: 'IgnoreUnknown=1;IP=10.30.0.x' }),

  // stdin: size, encoding, JSON syntax (V8's wording), shape, depth
  add('ADD, empty stdin', 'golden-stdin', ''),
  add('ADD, stdin not UTF-8', 'golden-stdin', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])),
  add('ADD, unterminated object', 'golden-stdin', '{a'),
  add('ADD, trailing comma in an array', 'golden-stdin', '[1,]'),
  add('ADD, missing comma in a long config', 'golden-stdin', '{"cniVersion":"1.0.0","name":"golden" "type":"bridge","ipam":{"type":"reservoir"}}'),
  add('ADD, bad escape on line 3', 'golden-stdin', '{\n  "cniVersion": "1.0.0",\r\n  "name": "gol\\den"\n}'),
  add('ADD, junk after the config', 'golden-stdin', `${JSON.stringify(ok)} x`),
  add('ADD, stdin a JSON array', 'golden-stdin', '[]'),
  add('ADD, stdin over the size limit', 'golden-stdin', `{"x":"${'a'.repeat(MAX_STDIN_BYTES)}"}`),
  add('ADD, config nested too deep', 'golden-stdin', `{"cniVersion":"1.0.0","x":${'['.repeat(200)}${']'.repeat(200)}}`),
  add('ADD, config nested 100000 deep', 'golden-stdin', `{"cniVersion":"1.0.0","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`),

  // invalid configurations (validated in full by the plugin when the daemon refuses, or first)
  add('ADD, unsupported cniVersion', 'golden-cfg', conf('9.9.9')),
  add('ADD, cniVersion not a string', 'golden-cfg', conf(1)),
  add('ADD, no ipam', 'golden-cfg', { cniVersion: '1.0.0', name: 'golden', type: 'bridge' }),
  add('ADD, bad subnet', 'golden-cfg', conf('1.0.0', { ipam: { ranges: [[{ subnet: '10.30.0.0/33' }]] } })),
  add('ADD, host bits in the subnet', 'golden-cfg', conf('1.0.0', { ipam: { ranges: [[{ subnet: '10.30.0.1/24' }]] } })),
  add('ADD, no ranges', 'golden-cfg', conf('1.0.0', { ipam: { ranges: [] } })),
  add('ADD, relative socket', 'golden-cfg', conf('1.0.0', { ipam: { socket: 'run/reservoir.sock' } })),
  add('ADD, socket path too long', 'golden-cfg', conf('1.0.0', { ipam: { socket: `/${'s'.repeat(120)}.sock` } })),
  add('ADD, timeout not a duration', 'golden-cfg', conf('1.0.0', { ipam: { timeout: 'abc' } })),
  add('ADD, timeout under the minimum', 'golden-cfg', conf('1.0.0', { ipam: { timeout: '50ms' } })),
  add('ADD, timeout over the maximum', 'golden-cfg', conf('1.0.0', { ipam: { timeout: '10m' } })),
  add('ADD, number out of range (1e999)', 'golden-cfg', JSON.stringify(conf('1.0.0', { ipam: { timeout: 'XX' } })).replace('"XX"', '1e999')),
  add('ADD, -0 in the config', 'golden-cfg', JSON.stringify(conf('1.0.0', { top: { extra: 'YY' } })).replace('"YY"', '-0')),
  add('ADD, unknown defaultKind', 'golden-cfg', conf('1.0.0', { ipam: { defaultKind: 'sometimes' } })),
  add('ADD, bad holdFor', 'golden-cfg', conf('1.0.0', { ipam: { holdFor: 'forever' } })),
  add('ADD, bad reserved entry', 'golden-cfg', conf('1.0.0', { ipam: { reserved: ['10.30.0.300'] } })),

  // results in every cniVersion (converted by the plugin)
  ...SUPPORTED_VERSIONS.map((v) => add(`ADD ${v}`, `golden-add-${v}`, conf(v))),
  add('ADD without cniVersion (0.1.0)', 'golden-add-none', { name: 'golden', type: 'bridge', ipam: (conf('1.0.0') as { ipam: unknown }).ipam }),
  add('ADD 1.0.0 again: the same lease', 'golden-add-1.0.0', conf('1.0.0')),
  add('ADD 1.0.0, second interface', 'golden-add-1.0.0', conf('1.0.0'), { ifname: 'net1' }),

  // requested IPs and reserved groups
  add('ADD, CNI_ARGS IP=', 'golden-ip-a', conf('1.1.0', { name: 'golden-req' }), { args: 'IgnoreUnknown=1;IP=10.30.0.50' }),
  add('ADD, the same IP for another container', 'golden-ip-b', conf('1.1.0', { name: 'golden-req' }), { args: 'IgnoreUnknown=1;IP=10.30.0.50' }),
  add('ADD, an IP outside the ranges', 'golden-ip-c', conf('1.1.0', { name: 'golden-req' }), { args: 'IgnoreUnknown=1;IP=10.99.0.1' }),
  add('ADD, runtimeConfig.ips', 'golden-ip-d', conf('1.1.0', { name: 'golden-req', top: { runtimeConfig: { ips: ['10.30.0.60/24', 'fd00:30::60/64'] } } })),
  add('ADD, annotation reservoir.io/ip', 'golden-ip-e', conf('1.1.0', { name: 'golden-req', top: { runtimeConfig: { [ANNOTATIONS]: { 'reservoir.io/ip': '10.30.0.61', 'reservoir.io/kind': 'stateful' } } } }), { env: { CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;IgnoreUnknown=1' } }),
  ...['a', 'b', 'c'].map((x) => add(`ADD, reserved group db (${x})`, `golden-group-${x}`, conf('1.1.0', { name: 'golden-db', ipam: { reserved: [{ entry: '10.30.0.200-10.30.0.201', group: 'db' }] } }), { args: 'IgnoreUnknown=1;RESERVOIR_GROUP=db' })),
  add('ADD, unknown reserved group', 'golden-group-d', conf('1.1.0', { name: 'golden-db', ipam: { reserved: [{ entry: '10.30.0.200-10.30.0.201', group: 'db' }] } }), { args: 'IgnoreUnknown=1;RESERVOIR_GROUP=web' }),
  add('ADD, a reserved IP without asking for it', 'golden-group-e', conf('1.1.0', { name: 'golden-db', ipam: { reserved: [{ entry: '10.30.0.200-10.30.0.201', group: 'db' }] } }), { args: 'IgnoreUnknown=1;IP=10.30.0.201' }),

  // CHECK
  { name: 'CHECK 1.0.0, the lease', command: 'CHECK', containerId: 'golden-add-1.0.0', stdin: ok, prevResultOf: 'ADD 1.0.0' },
  { name: 'CHECK 1.1.0, the lease', command: 'CHECK', containerId: 'golden-add-1.1.0', stdin: conf('1.1.0'), prevResultOf: 'ADD 1.1.0' },
  { name: 'CHECK, another lease as prevResult', command: 'CHECK', containerId: 'golden-add-1.1.0', stdin: conf('1.1.0'), prevResultOf: 'ADD 1.0.0' },
  { name: 'CHECK, no lease', command: 'CHECK', containerId: 'golden-nolease', stdin: conf('1.0.0', { top: { prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.30.0.99/24' }] } } }) },
  { name: 'CHECK 0.3.1 (before CHECK existed)', command: 'CHECK', containerId: 'golden-add-0.3.1', stdin: conf('0.3.1'), prevResultOf: 'ADD 0.3.1' },

  // DEL
  { name: 'DEL 1.0.0', command: 'DEL', containerId: 'golden-add-1.0.0', stdin: ok },
  { name: 'DEL 1.0.0 again', command: 'DEL', containerId: 'golden-add-1.0.0', stdin: ok },
  { name: 'DEL 0.1.0 of an unknown container', command: 'DEL', containerId: 'golden-unknown', stdin: conf('0.1.0') },
  { name: 'DEL, the stateful pod', command: 'DEL', containerId: 'golden-ip-e', stdin: conf('1.1.0', { name: 'golden-req' }), env: { CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;IgnoreUnknown=1' } },
  { name: 'DEL, invalid config', command: 'DEL', containerId: 'golden-add-1.1.0', stdin: conf('1.1.0', { ipam: { ranges: [[{ subnet: 'nope' }]] } }) },
  add('ADD after DEL: the next IP, round robin', 'golden-after-del', ok),

  // GC and STATUS
  { name: 'GC 1.1.0, keeping one attachment', command: 'GC', stdin: conf('1.1.0', { top: { 'cni.dev/valid-attachments': [{ containerID: 'golden-add-1.1.0', ifname: 'eth0' }] } }) },
  { name: 'GC 1.0.0 (before GC existed)', command: 'GC', stdin: ok },
  { name: 'STATUS 1.1.0', command: 'STATUS', stdin: conf('1.1.0') },
  { name: 'STATUS 1.0.0 (before STATUS existed)', command: 'STATUS', stdin: ok },
  { name: 'CHECK 1.1.0 after GC', command: 'CHECK', containerId: 'golden-add-1.1.0', stdin: conf('1.1.0'), prevResultOf: 'ADD 1.1.0' },

  // the daemon unreachable, or not answering before the deadline
  add('ADD, no daemon', 'golden-absent', conf('1.0.0', { ipam: { socket: '@DIR@/absent.sock' } })),
  add('ADD, no daemon and a bad subnet', 'golden-absent', conf('1.0.0', { ipam: { socket: '@DIR@/absent.sock', ranges: [[{ subnet: '10.30.0.0/33' }]] } })),
  { name: 'DEL, no daemon', command: 'DEL', containerId: 'golden-absent', stdin: conf('1.0.0', { ipam: { socket: '@DIR@/absent.sock' } }) },
  { name: 'STATUS, no daemon', command: 'STATUS', stdin: conf('1.1.0', { ipam: { socket: '@DIR@/absent.sock' } }) },
  add('ADD, socket is a regular file', 'golden-absent', conf('1.0.0', { ipam: { socket: '@DIR@/plain-file' } })),
  add('ADD, daemon does not answer within the timeout', 'golden-hung', conf('1.0.0', { ipam: { socket: '@DIR@/hung.sock', timeout: '300ms' } })),
  add('ADD, daemon does not answer, config also invalid', 'golden-hung', conf('0.4.0', { ipam: { socket: '@DIR@/hung.sock', timeout: '300ms', holdFor: 'forever' } })),
];
