// The wire protocol between reservoird and its two clients (plugin and CLI): HTTP/1.1 + JSON over
// a unix socket, so `curl --unix-socket` works. Client and server both import this module and
// neither imports the other. Every error body is a CNI error object ({code, msg, details}).
import type { IpamResult } from './cni.js';
import type { AppKind } from './config.js';
import type { CniEnv } from './invocation.js';

export const PROTOCOL_VERSION = 1;

/** Body of every plugin call: the plugin forwards what it was given; the daemon re-validates it. */
export interface CniCallBody {
  readonly env: CniEnv;
  readonly config: Record<string, unknown>;
}

export interface AddResponse {
  readonly result: IpamResult;
}

export interface GcResponse {
  readonly released: number;
  readonly errors: readonly string[];
}

export interface StatusResponse {
  readonly ready: boolean;
  readonly code?: number;
  readonly msg?: string;
}

/** The Kubernetes integration's state, as health reports it. */
export interface KubernetesHealth {
  readonly server: string;
  readonly node: string;
  /** Why releases are paused (API unreachable, watch behind), or null. */
  readonly fenced: string | null;
  readonly watches: ReadonlyArray<{ readonly what: string; readonly synced: boolean; readonly resumes: number; readonly relists: number; readonly error: string | null }>;
  /** StatefulSet holds released since start. */
  readonly released: number;
  /** Attachments of nodes gone from the API (their pods confirmed gone) ended since start: stateless freed, stateful left held. */
  readonly releasedOfGoneNodes: number;
  /** Re-pinned StatefulSet IPs that wait for a running pod. */
  readonly refused: readonly string[];
}

export interface HealthResponse {
  readonly ok: true;
  readonly version: string;
  readonly protocol: number;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly networks: number;
  readonly leases: number;
  /**
   * Group-commit figures: batches committed, requests they carried, and ADDs answered 11 because
   * their caller's deadline passed (refused before they started, or undone after a late commit).
   */
  readonly batches: { readonly batches: number; readonly units: number; readonly late: number };
  /** Leases released because their network namespace vanished, since start. */
  readonly reclaimed: number;
  /** Per netns directory the leases name: whether reservoird sees it (it reclaims only where it does). */
  readonly netns: ReadonlyArray<{ readonly root: string; readonly visible: boolean; readonly why: string }>;
  /** The Kubernetes integration, or null when it is off. */
  readonly kubernetes: KubernetesHealth | null;
  /** etcd for cluster networks, or null when the daemon runs without it. */
  readonly cluster: ClusterHealthView | null;
  /** Networks whose latest differing ADD carried another config than their config file (see `usage`). */
  readonly staleConfigs: number;
  /** Leases that no longer fit their network's config (see `reservoirctl misfits`). */
  readonly misfits: number;
  /** Things an operator should know about (subnets shared by differently named networks). */
  readonly warnings: readonly string[];
}

export interface ClusterHealthView {
  readonly node: string;
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** Whether this daemon follows etcd now (its copy is current). */
  readonly connected: boolean;
  /** The etcd revision its copy has reached. */
  readonly revision: number;
  /** Why it is not connected, if it is not. */
  readonly lastError: string | null;
  /** Changes etcd is still owed (releases taken while it was away, undos of unconfirmed transactions). */
  readonly owed: number;
  /** This node's attachments in cluster networks, by the journal: attached, releasing (owed), in conflict. */
  readonly journal: { readonly attached: number; readonly releasing: number; readonly conflict: number };
  /** Batches run, units they carried, etcd transactions, those that lost a race, had an unknown outcome, or found etcd unreachable. */
  readonly stats: { readonly batches: number; readonly units: number; readonly txns: number; readonly conflicts: number; readonly unknown: number; readonly unavailable: number; readonly watchLagged: number };
}

/** One finding of `reservoirctl check`: an IP, who holds it (by etcd, or by the journal), where, and what is wrong. */
export interface ClusterCheckItem {
  readonly network: string;
  readonly ip: string;
  readonly holder: string;
  readonly node: string;
  readonly problem: string;
}

/** GET (compare) or POST (compare and repair) /v1/cluster/check: this node's journal against etcd, and the other nodes' reports. */
export interface ClusterCheckResponse {
  readonly node: string;
  /** etcd gives an IP to a container of this node that the journal does not know. */
  readonly orphans: readonly ClusterCheckItem[];
  /** The journal knows an attachment that etcd has no claim for. */
  readonly lost: readonly ClusterCheckItem[];
  /** etcd gives the journal's IP to another holder. */
  readonly conflicts: readonly ClusterCheckItem[];
  /** Changes etcd is still owed. */
  readonly owed: number;
  readonly repaired: boolean;
  /** The other nodes, through etcd: their last reports and what etcd alone shows (absent from daemons before reports). */
  readonly nodes?: readonly ClusterNodeView[];
  /** --repair: the nodes asked to repair, and which published a fresh report in time. */
  readonly repairRequest?: ClusterRepairRequestView;
}

/** A list of a node report, capped: `total` found, the first of them in `items`. */
export interface ClusterReportList {
  readonly total: number;
  readonly items: readonly ClusterCheckItem[];
}

/** A node's journal in one cluster network: its attachments by state, and a digest of them. */
export interface ClusterJournalCounts {
  readonly attached: number;
  readonly releasing: number;
  readonly conflict: number;
  readonly digest: string;
}

/** What a node last said of itself in etcd (PREFIX/v1/nodes/NODE): written after checks and on a slow heartbeat. */
export interface ClusterNodeReport {
  readonly node: string;
  readonly version: string;
  /** Epoch ms (the node's clock). */
  readonly startedAt: number;
  readonly writtenAt: number;
  /** The etcd revision the node's journal reflects when it counted it: what its copy had followed, or its own last commit if later. */
  readonly revision: number;
  readonly networks: Readonly<Record<string, ClusterJournalCounts>>;
  readonly lastCheck: {
    readonly at: number;
    readonly network: string | null;
    readonly repaired: boolean;
    readonly orphans: ClusterReportList;
    readonly lost: ClusterReportList;
    readonly conflicts: ClusterReportList;
  } | null;
  /** When it last ran check --repair (asked by an operator on any node), and the request it answered. */
  readonly repairedAt: number | null;
  readonly repairId: string | null;
}

/** Another node as `check` sees it through etcd. */
export interface ClusterNodeView {
  readonly node: string;
  readonly report: ClusterNodeReport | null;
  /** Age of the report by this node's clock; null without one. */
  readonly reportAgeMs: number | null;
  /** No report, or one older than the daemon's staleness threshold: the node may be gone. */
  readonly silent: boolean;
  /** Attachments etcd gives to the node, per cluster network. */
  readonly attachments: Readonly<Record<string, number>>;
  /** etcd's count against the node's journal, where they differ (only counts no change since the report can explain). */
  readonly disagreements: ReadonlyArray<{ readonly network: string; readonly etcd: number; readonly journal: number }>;
  /** What is wrong, in sentences that say what to do; empty when nothing is. */
  readonly problems: readonly string[];
}

export interface ClusterRepairRequestView {
  readonly id: string;
  readonly asked: readonly string[];
  readonly answered: readonly string[];
  readonly silent: readonly string[];
}

/** POST /v1/cluster/nodes/{node}/release: a node that is gone; its attachments end. */
export interface ReleaseNodeResponse {
  readonly node: string;
  /** Stateless leases released. */
  readonly released: number;
  /** Stateful IPs detached: held by their apps for the next pod, on any node. */
  readonly held: number;
}

export type ReservedState = 'free' | 'leased' | 'held';

export interface ReservedEntryView {
  readonly entry: string;
  readonly group: string | null;
  readonly note: string | null;
  readonly source: 'config' | 'operator';
  /** Namespace globs of the pods that may claim it; null = any pod. */
  readonly namespaces: readonly string[] | null;
  readonly size: string;
  readonly used: number;
}

export interface ReservedIpView {
  readonly ip: string;
  readonly entry: string;
  readonly group: string | null;
  readonly state: ReservedState;
  /** The attachment "containerID/ifname", when leased. */
  readonly attachment: string | null;
  readonly app: string | null;
  readonly kind: AppKind | null;
  /** When the holder got the IP (epoch ms), when leased or held. */
  readonly since: number | null;
  /** The node of the holder, when leased or held. */
  readonly node: string | null;
}

/** GET /api/networks/:network/reserved (status page): one page of a network's reserved IPs, grouped by entry, in address order. */
export interface ReservedPageResponse {
  readonly network: string;
  readonly usage: UsageView;
  readonly entries: readonly ReservedEntryView[];
  /** Which IPs: all, or only those in use (leased or held). */
  readonly state: 'all' | 'used';
  readonly offset: number;
  /** How many IPs match in all (decimal string: entries may be huge). */
  readonly total: string;
  readonly ips: readonly ReservedIpView[];
}

export interface ReservedListResponse {
  readonly network: string;
  readonly entries: readonly ReservedEntryView[];
  /** Per IP; for the free ones only up to a bound, see `freeTruncated`. */
  readonly ips: readonly ReservedIpView[];
  readonly freeTruncated: boolean;
  /** Entries of the config file's `reserved` list that could not be applied, and why. */
  readonly conflicts: readonly string[];
  /** The network's counts: the same numbers as `usage`, the metrics and the status page. */
  readonly usage: UsageView;
}

export interface ReservedChangeBody {
  readonly entry: string;
  readonly to?: string;
  readonly group?: string | null;
  readonly note?: string | null;
  /** Namespace globs; null = any pod again. */
  readonly namespaces?: readonly string[] | null;
}

export interface UsageView {
  readonly network: string;
  /** Allocatable addresses (decimal string: an IPv6 /64 does not fit a JSON number). */
  readonly size: string;
  /** Allocatable addresses outside reserved entries. */
  readonly dynamicSize: string;
  /** Dynamic IPs leased or held. */
  readonly dynamicInUse: number;
  /** Of those, held by a stateful app with no container. */
  readonly dynamicHeld: number;
  readonly reservedTotal: string;
  /** Reserved IPs leased or held. */
  readonly reservedUsed: number;
  /** Of those, held by a stateful app with no container. */
  readonly reservedHeld: number;
  readonly reservedFree: string;
  /** All held IPs (dynamic and reserved). */
  readonly held: number;
  /** All IPs with a container attached. */
  readonly attached: number;
  /** Leases that no longer fit the network's config (subnet, range or gateway changed). */
  readonly misfits: number;
  /** The CNI config file that governs the network; null: learned from requests (the latest ADD's config). */
  readonly configFile: string | null;
  /** ADDs that carried another config than the file's (served by the file), or null. */
  readonly staleRequests: StaleRequestsView | null;
  /** "node" (this daemon's SQLite) or "cluster" (shared through etcd). */
  readonly scope: 'node' | 'cluster';
  /** A cluster network: how this node's config disagrees with the pools fixed in etcd (its ADDs are refused), or null. */
  readonly disagreement: string | null;
  /** Subnets this network shares with differently named ones: both may hand out the same IPs. */
  readonly overlaps: readonly string[];
}

export interface StaleRequestsView {
  /** How the last differing request differed from the file, key by key. */
  readonly differences: readonly string[];
  /** How many ADDs carried that config. */
  readonly requests: number;
  /** Epoch ms of the latest. */
  readonly lastSeen: number;
}

/** GET /v1/networks/{net}/misfits: at most this many listed; `total` counts them all. */
export const MISFITS_LISTED = 1000;

export interface MisfitsResponse {
  readonly network: string;
  readonly total: number;
  /** In address order; each with `misfit` set. */
  readonly leases: readonly LeaseView[];
}

export interface MisfitsReleaseResponse {
  readonly network: string;
  readonly released: number;
  /** The released addresses, at most MISFITS_LISTED of them. */
  readonly ips: readonly string[];
}

/** One event of an IP's history, as the CLI and the status page show it. */
export interface HistoryEntryView {
  readonly id: number;
  /** Epoch ms. */
  readonly at: number;
  readonly network: string;
  readonly ip: string;
  /** claim, hold (stateful IP kept with no container), release, refusal. */
  readonly event: 'claim' | 'hold' | 'release' | 'refusal';
  /** claim: requested, group, dynamic, reattached, takeover; hold/release: del, gc, netns_gone, hold_expired, operator, replaced, statefulset, abandoned, orphan, node_gone (detail: the node and why its pod counts as gone); refusal: lost_race, in_use, forbidden, refused_change. */
  readonly reason: string;
  readonly app: string | null;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly kind: AppKind | null;
  readonly node: string | null;
  /** A refusal: who held the IP. */
  readonly holder: string | null;
  readonly detail: string | null;
}

export interface HistoryResponse {
  /** Oldest first. */
  readonly events: readonly HistoryEntryView[];
}

/** GET /api/status (status page): the node, every network's counts and the recent events. */
export interface StatusView {
  readonly node: string;
  readonly version: string;
  readonly networks: readonly UsageView[];
  readonly events: readonly HistoryEntryView[];
}

/** How many events `reservoirctl history` and the API return unless asked, and at most. */
export const HISTORY_DEFAULT = 100;
export const HISTORY_MAX = 10_000;

export interface LeaseView {
  readonly network: string;
  readonly ip: string;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly app: string | null;
  readonly kind: AppKind;
  /** "attached" or "held" (stateful, no container). */
  readonly state: 'attached' | 'held';
  readonly reserved: boolean;
  readonly createdAt: number;
  readonly ageSeconds: number;
  /** The node of the holder: this daemon's for a node-scope network; in a cluster network, the node it is attached on (or last was). */
  readonly node: string;
  /** Present when the lease no longer fits its network's config: why. */
  readonly misfit?: string;
}

/** GET /v1/leases answers a page at a time: this many leases unless `limit` asks otherwise, never more than the maximum. */
export const LEASES_PAGE_DEFAULT = 1000;
export const LEASES_PAGE_MAX = 10_000;

export interface LeasesResponse {
  /** In order of network, family, address. */
  readonly leases: readonly LeaseView[];
  /** Present when more leases may follow: pass it back unchanged as `after` for the next page. Opaque. */
  readonly next?: string;
}

/**
 * Up to `wanted` leases, page after page (the daemon serves CNI calls between pages); `more` says
 * whether the listing went on. `page` fetches GET /v1/leases with this `after` and `limit`.
 */
export async function collectLeases(
  page: (after: string | undefined, limit: number) => Promise<LeasesResponse>,
  wanted = Number.POSITIVE_INFINITY,
): Promise<{ leases: LeaseView[]; more: boolean }> {
  const leases: LeaseView[] = [];
  let after: string | undefined;
  do {
    const answer = await page(after, Math.min(wanted - leases.length, LEASES_PAGE_DEFAULT));
    for (const lease of answer.leases) leases.push(lease);
    after = answer.next;
  } while (after !== undefined && leases.length < wanted);
  return { leases, more: after !== undefined };
}

export interface ReleaseBody {
  readonly network: string;
  readonly app: string;
}

export interface ReleaseResponse {
  readonly released: readonly string[];
}

/** Every route the daemon serves. The server routes through this table; clients build URLs from it. */
export const ROUTES = {
  cniAdd: { method: 'POST', path: '/v1/cni/add' },
  cniDel: { method: 'POST', path: '/v1/cni/del' },
  cniCheck: { method: 'POST', path: '/v1/cni/check' },
  cniGc: { method: 'POST', path: '/v1/cni/gc' },
  cniStatus: { method: 'POST', path: '/v1/cni/status' },
  health: { method: 'GET', path: '/v1/health' },
  usage: { method: 'GET', path: '/v1/usage' },
  leases: { method: 'GET', path: '/v1/leases' },
  reservedList: { method: 'GET', path: '/v1/networks/:network/reserved' },
  reservedAdd: { method: 'POST', path: '/v1/networks/:network/reserved' },
  reservedSet: { method: 'PUT', path: '/v1/networks/:network/reserved' },
  reservedRemove: { method: 'DELETE', path: '/v1/networks/:network/reserved' },
  release: { method: 'POST', path: '/v1/release' },
  misfits: { method: 'GET', path: '/v1/networks/:network/misfits' },
  misfitsRelease: { method: 'DELETE', path: '/v1/networks/:network/misfits' },
  backup: { method: 'GET', path: '/v1/backup' },
  history: { method: 'GET', path: '/v1/networks/:network/history' },
  metrics: { method: 'GET', path: '/metrics' },
  clusterCheck: { method: 'GET', path: '/v1/cluster/check' },
  clusterRepair: { method: 'POST', path: '/v1/cluster/check' },
  releaseNode: { method: 'POST', path: '/v1/cluster/nodes/:node/release' },
} as const;

/**
 * The read-only routes of --http-listen (TCP): the status page, the metrics and what the page
 * reads. Nothing else is served there: every other method answers 405, every other path 404.
 */
export const STATUS_ROUTES = {
  page: '/',
  metrics: '/metrics',
  status: '/api/status',
  reserved: '/api/networks/:network/reserved',
  history: '/api/networks/:network/history',
  events: '/api/events',
} as const;

export type RouteName = keyof typeof ROUTES;

export function routePath(name: RouteName, params: Record<string, string> = {}, query: Record<string, string | undefined> = {}): string {
  let path: string = ROUTES[name].path;
  for (const [key, value] of Object.entries(params)) path = path.replace(`:${key}`, encodeURIComponent(value));
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) search.set(key, value);
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}
