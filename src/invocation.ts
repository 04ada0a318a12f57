// One CNI invocation (env + stdin config), parsed and validated once into a typed request. The
// daemon runs it on everything the plugin forwards, so it never trusts a client's validation; the
// plugin runs the very same function only when its call fails (or the config is unusual), so a
// caller sees the same error either way without paying for validation on every pod.
import { AddressSyntaxError, type Ip, cidrContains, formatCidr, formatIpWithPrefix, parseIp } from './address.js';
import {
  COMMAND_SINCE,
  type CniCommand,
  type CniVersion,
  SUPPORTED_VERSIONS,
  addressesOfResult,
  compareVersions,
  isSupportedVersion,
} from './cni.js';
import {
  type AppKind,
  type IpamConfig,
  asObject,
  configError,
  parseGroupName,
  parseIpamConfigCached,
  parseKind,
  parseNetworkName,
  show,
} from './config.js';
import { ReservoirError } from './errors.js';
import { jsonSyntaxError } from './json-syntax.js';

/** The CNI_* variables the plugin forwards to the daemon. */
export interface CniEnv {
  CNI_CONTAINERID?: string | undefined;
  CNI_NETNS?: string | undefined;
  CNI_IFNAME?: string | undefined;
  CNI_ARGS?: string | undefined;
}

export interface Attachment {
  readonly containerId: string;
  readonly ifname: string;
}

export type LeaseCommand = Exclude<CniCommand, 'VERSION'>;

export interface CniInvocation {
  readonly command: LeaseCommand;
  readonly cniVersion: CniVersion;
  readonly network: string;
  readonly ipam: IpamConfig;
  /** The ipam object as written: the daemon keeps it to register the network. */
  readonly rawIpam: Record<string, unknown>;
  /** Empty for GC and STATUS. */
  readonly attachment: Attachment;
  readonly netns: string;
  /** "namespace/name" of the pod, or RESERVOIR_APP; undefined when the runtime gave neither. */
  readonly app: string | undefined;
  /** K8S_POD_NAMESPACE: who may claim a reserved entry limited to namespaces. */
  readonly podNamespace: string | undefined;
  /** K8S_POD_NAME. */
  readonly podName: string | undefined;
  /** K8S_POD_UID (or the pod's UID from the Kubernetes API). */
  readonly podUid: string | undefined;
  /** The kind came from an annotation or CNI_ARGS, not from defaultKind: it wins over the API. */
  readonly kindExplicit: boolean;
  /** The runtime passed the pod annotations (otherwise the daemon may read them from the pod). */
  readonly annotationsFromRuntime: boolean;
  readonly kind: AppKind;
  readonly requestedIps: readonly Ip[];
  readonly group: string | undefined;
  /** CHECK: the addresses prevResult claims. */
  readonly prevAddresses: readonly string[] | undefined;
  /** GC: the attachments the runtime still knows. */
  readonly validAttachments: readonly Attachment[] | undefined;
}

export const ANNOTATION_IP = 'reservoir.io/ip';
export const ANNOTATION_GROUP = 'reservoir.io/group';
export const ANNOTATION_KIND = 'reservoir.io/kind';
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';

const KNOWN_CNI_ARGS = new Set([
  'IgnoreUnknown',
  'IP',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
  'RESERVOIR_GROUP',
  'RESERVOIR_KIND',
  'RESERVOIR_APP',
]);

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,255}$/;
const APP_PART = /^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,252}[a-zA-Z0-9])?$/;

function envError(message: string): ReservoirError {
  return new ReservoirError('INVALID_ENV', message);
}

/** Decode the plugin's stdin: code 6 for anything that is not a JSON object. */
export function decodeConfig(stdin: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (err) {
    // V8's wording from any runtime (the plugin runs on bun): see src/json-syntax.ts.
    throw new ReservoirError('DECODE_FAILURE', `cannot decode the network configuration on stdin: ${jsonSyntaxError(stdin) ?? (err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ReservoirError('DECODE_FAILURE', 'the network configuration on stdin must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** The config's cniVersion; a missing one means 0.1.0, as libcni's decoder reads it. */
export function configVersion(config: Record<string, unknown>): CniVersion {
  const version = config.cniVersion === undefined || config.cniVersion === null || config.cniVersion === '' ? '0.1.0' : config.cniVersion;
  if (!isSupportedVersion(version)) {
    throw new ReservoirError(
      'INCOMPATIBLE_VERSION',
      `cniVersion ${show(version)} is not supported; supported: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return version;
}

/** "K=V;K2=V2" as the spec defines CNI_ARGS. Unknown keys fail unless IgnoreUnknown is set. */
export function parseCniArgs(text: string | undefined): Map<string, string> {
  const args = new Map<string, string>();
  if (!text) return args;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw envError(`CNI_ARGS: "${pair.slice(0, 80)}" is not KEY=VALUE`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const earlier = args.get(key);
    if (earlier !== undefined && earlier !== value) {
      // "last wins" would pick one silently: a runtime and a user each adding IP= get either
      throw envError(`CNI_ARGS gives ${key} twice (${show(earlier.slice(0, 80))} and ${show(value.slice(0, 80))}); give it once`);
    }
    args.set(key, value);
  }
  const ignoreUnknown = ['1', 'true'].includes((args.get('IgnoreUnknown') ?? '').toLowerCase());
  if (!ignoreUnknown) {
    const unknown = [...args.keys()].filter((key) => !KNOWN_CNI_ARGS.has(key));
    if (unknown.length > 0) {
      throw envError(`CNI_ARGS: unknown keys ${unknown.join(', ')}; set IgnoreUnknown=1 or use ${[...KNOWN_CNI_ARGS].join(', ')}`);
    }
  }
  return args;
}

/**
 * `podAnnotations`: the pod's annotations from the Kubernetes API, used only when the runtime
 * passed none (CRI-O before 1.29, a conflist without the capability).
 */
export function parseInvocation(command: LeaseCommand, env: CniEnv, config: Record<string, unknown>, podAnnotations?: Readonly<Record<string, string>>): CniInvocation {
  const cniVersion = configVersion(config);
  if (compareVersions(cniVersion, COMMAND_SINCE[command]) < 0) {
    throw new ReservoirError(
      'INCOMPATIBLE_VERSION',
      `${command} needs cniVersion ${COMMAND_SINCE[command]} or later; the config says ${cniVersion}`,
    );
  }
  const network = parseNetworkName(config.name);
  const rawIpam = asObject(config.ipam, 'ipam');
  const ipam = parseIpamConfigCached(rawIpam);
  const cniArgs = parseCniArgs(env.CNI_ARGS);
  const runtimeConfig = config.runtimeConfig === undefined ? {} : asObject(config.runtimeConfig, 'runtimeConfig');
  const fromRuntime = runtimeConfig[POD_ANNOTATIONS_CAPABILITY] !== undefined && runtimeConfig[POD_ANNOTATIONS_CAPABILITY] !== null;
  const annotations = parseAnnotations(fromRuntime ? runtimeConfig[POD_ANNOTATIONS_CAPABILITY] : podAnnotations);

  const needsAttachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const attachment: Attachment = needsAttachment
    ? { containerId: parseContainerId(env.CNI_CONTAINERID), ifname: parseIfname(env.CNI_IFNAME) }
    : { containerId: '', ifname: '' };
  let netns = '';
  if (command === 'ADD' || command === 'CHECK' || (command === 'DEL' && env.CNI_NETNS)) {
    netns = parseNetns(env.CNI_NETNS);
  }

  const kindSource = annotations.get(ANNOTATION_KIND) ?? cniArgs.get('RESERVOIR_KIND');
  const kind =
    kindSource === undefined
      ? ipam.defaultKind
      : annotations.has(ANNOTATION_KIND)
        ? parseKind(kindSource, `annotation ${ANNOTATION_KIND}`)
        : fromCniArgs(() => parseKind(kindSource, 'CNI_ARGS RESERVOIR_KIND'));
  const app = parseApp(cniArgs);
  if (command === 'ADD' && kind === 'stateful' && app === undefined) {
    throw envError('a stateful app needs an identity: CNI_ARGS K8S_POD_NAMESPACE and K8S_POD_NAME (or RESERVOIR_APP)');
  }
  const groupSource = annotations.get(ANNOTATION_GROUP) ?? cniArgs.get('RESERVOIR_GROUP');
  const group =
    groupSource === undefined
      ? undefined
      : annotations.has(ANNOTATION_GROUP)
        ? parseGroupName(groupSource, `annotation ${ANNOTATION_GROUP}`)
        : fromCniArgs(() => parseGroupName(groupSource, 'CNI_ARGS RESERVOIR_GROUP'));

  return {
    command,
    cniVersion,
    network,
    ipam,
    rawIpam,
    attachment,
    netns,
    app,
    podNamespace: podNamespaceOf(cniArgs),
    podName: cniArgs.get('K8S_POD_NAME') || undefined,
    podUid: cniArgs.get('K8S_POD_UID') || undefined,
    kindExplicit: kindSource !== undefined,
    annotationsFromRuntime: fromRuntime,
    kind,
    requestedIps: command === 'ADD' ? requestedIps(config, runtimeConfig, annotations, cniArgs, ipam) : [],
    group,
    prevAddresses: command === 'CHECK' && config.prevResult !== undefined ? addressesOfResult(config.prevResult) : undefined,
    validAttachments: command === 'GC' ? parseValidAttachments(config) : undefined,
  };
}

/** A bad value from CNI_ARGS is a bad environment variable (code 4), not a bad config (code 7). */
function fromCniArgs<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ReservoirError && err.codeName === 'INVALID_CONFIG') throw envError(err.message.replace(/^invalid config: /, ''));
    throw err;
  }
}

function parseContainerId(value: string | undefined): string {
  if (!value) throw envError('CNI_CONTAINERID is missing');
  if (!CONTAINER_ID.test(value)) {
    throw envError(`CNI_CONTAINERID ${show(value)} is invalid: use letters, digits, "_", ".", "-" (at most 256)`);
  }
  return value;
}

export function parseIfname(value: string | undefined): string {
  if (!value) throw envError('CNI_IFNAME is missing');
  if (Buffer.byteLength(value) > 15 || value === '.' || value === '..' || /[/:\s]/.test(value)) {
    throw envError(`CNI_IFNAME ${show(value)} is not a valid interface name (1-15 bytes, no "/", ":" or spaces)`);
  }
  return value;
}

function parseNetns(value: string | undefined): string {
  if (!value) throw envError('CNI_NETNS is missing');
  if (!value.startsWith('/') || value.length > 4096 || value.includes('\0')) {
    throw envError(`CNI_NETNS ${show(value)} must be an absolute path to a network namespace`);
  }
  return value;
}

function parseApp(cniArgs: Map<string, string>): string | undefined {
  const explicit = cniArgs.get('RESERVOIR_APP');
  if (explicit !== undefined) {
    if (!APP_PART.test(explicit)) throw envError(`CNI_ARGS RESERVOIR_APP ${show(explicit)} is not a valid app name`);
    return explicit;
  }
  const namespace = cniArgs.get('K8S_POD_NAMESPACE');
  const name = cniArgs.get('K8S_POD_NAME');
  if (namespace === undefined || name === undefined || namespace === '' || name === '') return undefined;
  if (!APP_PART.test(namespace) || !APP_PART.test(name)) {
    throw envError(`CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME ${show(`${namespace}/${name}`)} is not a valid pod identity`);
  }
  return `${namespace}/${name}`;
}

function podNamespaceOf(cniArgs: Map<string, string>): string | undefined {
  const namespace = cniArgs.get('K8S_POD_NAMESPACE');
  return namespace === undefined || namespace === '' ? undefined : namespace;
}

function parseAnnotations(raw: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined || raw === null) return out;
  const obj = asObject(raw, `runtimeConfig["${POD_ANNOTATIONS_CAPABILITY}"]`);
  for (const key of [ANNOTATION_IP, ANNOTATION_GROUP, ANNOTATION_KIND]) {
    const value = obj[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw configError(`annotation ${key}`, `must be a string, got ${show(value)}`);
    out.set(key, value.trim());
  }
  return out;
}

/** The first source that names IPs wins: runtimeConfig.ips, args.cni.ips, the pod annotation, CNI_ARGS IP. */
function requestedIps(
  config: Record<string, unknown>,
  runtimeConfig: Record<string, unknown>,
  annotations: Map<string, string>,
  cniArgs: Map<string, string>,
  ipam: IpamConfig,
): Ip[] {
  const argsCni = config.args === undefined ? undefined : asObject(config.args, 'args').cni;
  const argsIps = argsCni === undefined ? undefined : asObject(argsCni, 'args.cni').ips;
  const sources: Array<[string, unknown]> = [
    ['runtimeConfig.ips', runtimeConfig.ips],
    ['args.cni.ips', argsIps],
    [`annotation ${ANNOTATION_IP}`, annotations.get(ANNOTATION_IP)?.split(',')],
    ['CNI_ARGS IP', cniArgs.get('IP')?.split(',')],
  ];
  for (const [field, value] of sources) {
    if (value === undefined) continue;
    if (!Array.isArray(value)) throw configError(field, 'must be an array of IP addresses');
    if (value.length === 0) continue;
    const fromEnv = field.startsWith('CNI_ARGS');
    const fail = (problem: string) => (fromEnv ? envError(`${field}: ${problem}`) : configError(field, problem));
    if (value.length > 16) throw fail(`${value.length} IPs requested; at most 16`);
    const ips = value.map((text, i) => parseRequestedIp(text, `${field}[${i}]`, fromEnv, ipam));
    const seen = new Set<string>();
    for (const [i, ip] of ips.entries()) {
      const key = `${ip.family}:${ip.value}`;
      if (seen.has(key)) throw fail(`lists the same IP twice (${show(value[i])})`);
      seen.add(key);
    }
    return ips;
  }
  return [];
}

/**
 * "10.0.0.5", or "10.0.0.5/24" with the prefix of the subnet it lies in (host-local takes only a
 * bare IP): a prefix that does not match would be silently replaced by the subnet's in the result.
 * An IP in no subnet is left to the daemon, which says which ranges it misses (code 102).
 */
function parseRequestedIp(text: unknown, field: string, fromEnv: boolean, ipam: IpamConfig): Ip {
  try {
    if (typeof text !== 'string') throw new AddressSyntaxError(`expected an IP address string, got ${show(text)}`);
    const trimmed = text.trim();
    const slash = trimmed.indexOf('/');
    const ip = parseIp(slash >= 0 ? trimmed.slice(0, slash) : trimmed);
    if (slash >= 0) {
      const prefix = trimmed.slice(slash + 1);
      const max = ip.family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) throw new AddressSyntaxError(`"${trimmed}" has an invalid prefix`);
      const subnet = ipam.rangeSets.flatMap((set) => set.ranges).find((r) => cidrContains(r.subnet, ip))?.subnet;
      if (subnet && subnet.prefix !== Number(prefix)) {
        throw new AddressSyntaxError(
          `"${trimmed}" has prefix /${Number(prefix)} but lies in subnet ${formatCidr(subnet)}; give the bare IP or ${formatIpWithPrefix(ip, subnet.prefix)}`,
        );
      }
    }
    return ip;
  } catch (err) {
    if (err instanceof AddressSyntaxError) {
      throw fromEnv ? envError(`${field}: ${err.message}`) : configError(field, err.message);
    }
    throw err;
  }
}

function parseValidAttachments(config: Record<string, unknown>): Attachment[] {
  const key = config['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const raw = config[key];
  if (raw === undefined) {
    throw configError('cni.dev/valid-attachments', 'GC needs the list of valid attachments (may be empty)');
  }
  if (!Array.isArray(raw)) throw configError(key, 'must be an array of {"containerID", "ifname"}');
  return raw.map((item, i) => {
    const obj = asObject(item, `${key}[${i}]`);
    if (typeof obj.containerID !== 'string' || typeof obj.ifname !== 'string') {
      throw configError(`${key}[${i}]`, 'needs string "containerID" and "ifname"');
    }
    return { containerId: obj.containerID, ifname: obj.ifname };
  });
}
