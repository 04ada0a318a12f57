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

export interface HealthResponse {
  readonly ok: true;
  readonly version: string;
  readonly protocol: number;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly networks: number;
  readonly leases: number;
  /** Group-commit figures: batches committed and requests they carried. */
  readonly batches: { readonly batches: number; readonly units: number };
  /** Leases released because their network namespace vanished, since start. */
  readonly reclaimed: number;
  /** Per netns directory the leases name: whether reservoird sees it (it reclaims only where it does). */
  readonly netns: ReadonlyArray<{ readonly root: string; readonly visible: boolean; readonly why: string }>;
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
}

export interface ReservedListResponse {
  readonly network: string;
  readonly entries: readonly ReservedEntryView[];
  /** Per IP; for the free ones only up to a bound, see `freeTruncated`. */
  readonly ips: readonly ReservedIpView[];
  readonly freeTruncated: boolean;
  /** Entries of the config file's `reserved` list that could not be applied, and why. */
  readonly conflicts: readonly string[];
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
  readonly dynamicInUse: number;
  readonly reservedTotal: string;
  readonly reservedUsed: number;
  readonly reservedFree: string;
  readonly held: number;
  readonly attached: number;
}

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
  backup: { method: 'GET', path: '/v1/backup' },
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
