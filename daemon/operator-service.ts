// The operator's use cases: usage, leases, reserved entries, releasing stateful holds and leases
// that no longer fit. Reserved entries change only through reserved-rules.ts, the rules the
// config reconciler follows too: an entry that covers an IP in use can neither shrink away from
// it, change its group, nor disappear (the refusal names every holder), and an entry the
// network's config declares changes only in the config.
import { formatValue, fromKey, toKey } from '../src/address.js';
import type { IpamConfig } from '../src/config.js';
import { isNetworkName, parseGroupName, parseNamespaceGlobs, parseReservedEntry } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import {
  type HistoryEntryView,
  type LeasesResponse,
  type LeaseView,
  MISFITS_LISTED,
  type MisfitsResponse,
  type ReleaseResponse,
  type ReservedChangeBody,
  type ReservedEntryView,
  type ReservedIpView,
  type ReservedListResponse,
  type ReservedPageResponse,
  type UsageView,
} from '../src/protocol.js';
import { describeLease, freeReservedIps } from './holders.js';
import type { Ledger } from './ledger.js';
import { type Logger, afterCommit } from './log.js';
import { countMisfits, findMisfits } from './misfits.js';
import { fitOf } from './network-change.js';
import type { Networks } from './networks.js';
import type { ReservedRules } from './reserved-rules.js';
import { type SubnetOverlap, describeOverlap, subnetOverlaps } from './overlaps.js';
import type { HistoryRecord, LeasePosition, LeaseRecord, ReservedRecord, Store } from './store.js';

export const MAX_FREE_LISTED = 1024;
/** A refused reserved change records at most this many of the IPs in use that stopped it. */
export const HOLDERS_RECORDED = 20;

export class OperatorService {
  /** Lines said inside a unit wait for its commit (log.ts, afterCommit). */
  private readonly log: Logger;

  constructor(
    private readonly store: Store,
    private readonly networks: Networks,
    private readonly ledger: Ledger,
    private readonly rules: ReservedRules,
    log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.log = afterCommit(store, log);
  }

  /** Subnets that differently named networks share (see overlaps.ts). */
  overlaps(): SubnetOverlap[] {
    return subnetOverlaps(this.networks.configs());
  }

  /**
   * How full each network is: the one computation behind `reservoirctl usage`, `reserved list`,
   * the metrics and the status page. Lease counts come from the ledger (kept per commit, no scan);
   * sizes from the config and the reserved entries.
   */
  usage(network: string | undefined): UsageView[] {
    const names = network === undefined ? this.networks.names() : [network];
    const overlaps = this.overlaps();
    return names.map((name) => {
      const record = this.networks.recordOf(name);
      const config = this.networks.get(name);
      const size = sizeOf(config);
      const stale = this.networks.staleRequests(name);
      let reservedTotal = 0n;
      for (const entry of this.store.listReserved(name)) reservedTotal += entry.end - entry.start + 1n;
      const { dynamic, reserved } = this.ledger.occupancy(name);
      const reservedUsed = reserved.leased + reserved.held;
      return {
        network: name,
        size: size.toString(),
        dynamicSize: (size - reservedTotal).toString(),
        dynamicInUse: dynamic.leased + dynamic.held,
        dynamicHeld: dynamic.held,
        reservedTotal: reservedTotal.toString(),
        reservedUsed,
        reservedHeld: reserved.held,
        reservedFree: (reservedTotal - BigInt(reservedUsed)).toString(),
        held: dynamic.held + reserved.held,
        attached: dynamic.leased + reserved.leased,
        misfits: countMisfits(this.store, name, config),
        configFile: record.file,
        staleRequests: stale ? { differences: stale.differences, requests: stale.requests, lastSeen: stale.lastSeen } : null,
        scope: config.scope,
        disagreement: this.networks.disagreement(name) ?? null,
        overlaps: overlaps.filter((o) => o.network === name || o.other === name).map(describeOverlap),
      };
    });
  }

  /** The last `limit` events of a network or of one of its IPs, oldest first. */
  history(network: string, ipText: string | undefined, limit: number): HistoryEntryView[] {
    this.networks.get(network);
    let ip: { family: 4 | 6; ip: bigint } | undefined;
    if (ipText !== undefined) {
      const parsed = parseReservedEntry(ipText, 'ip');
      if (parsed.start !== parsed.end) throw new ReservoirError('BAD_REQUEST', `ip=${ipText}: give one IP address, not a range`);
      ip = { family: parsed.family, ip: parsed.start };
    }
    return this.store.history(network, ip, limit).map(historyView);
  }

  /** The most recent events of every network, oldest first (the status page). */
  recentHistory(limit: number): HistoryEntryView[] {
    return this.store.history(undefined, undefined, limit).map(historyView);
  }

  /**
   * One page of a network's reserved IPs in address order, grouped by entry, each with its state
   * and holder: the status page draws a page, never every IP of a /16. `used` skips free IPs.
   * Costs a range count per entry plus the page itself.
   */
  reservedPage(network: string, state: 'all' | 'used', offset: number, limit: number): ReservedPageResponse {
    this.networks.get(network);
    const entries = this.store.listReserved(network);
    const ips: ReservedIpView[] = [];
    let total = 0n;
    let skip = BigInt(offset);
    for (const entry of entries) {
      const size = state === 'used' ? BigInt(this.store.countLeasesBetween(network, entry.family, entry.start, entry.end)) : entry.end - entry.start + 1n;
      total += size;
      if (ips.length >= limit) continue;
      if (skip >= size) {
        skip -= size;
        continue;
      }
      const want = limit - ips.length;
      if (state === 'used') {
        const leases = this.store.leasesBetween(network, entry.family, entry.start, entry.end, Number(skip) + want);
        for (const lease of leases.slice(Number(skip))) ips.push(this.ipView(entry, lease, lease.ip));
      } else {
        const from = entry.start + skip;
        const to = min(entry.end, from + BigInt(want) - 1n);
        const leases = new Map(this.store.leasesBetween(network, entry.family, from, to, want).map((l) => [l.ip, l]));
        for (let x = from; x <= to; x++) ips.push(this.ipView(entry, leases.get(x), x));
      }
      skip = 0n;
    }
    return {
      network,
      usage: this.usage(network)[0]!,
      entries: entries.map((entry) => this.entryView(entry)),
      state,
      offset,
      total: total.toString(),
      ips,
    };
  }

  /** The daemon-wide figures `health` shows about networks that changed. */
  networkWarnings(): { staleConfigs: number; misfits: number } {
    let staleConfigs = 0;
    let misfits = 0;
    for (const name of this.networks.names()) {
      if (this.networks.staleRequests(name)) staleConfigs++;
      misfits += countMisfits(this.store, name, this.networks.get(name));
    }
    return { staleConfigs, misfits };
  }

  /** The network's leases that no longer fit its config, at most MISFITS_LISTED, and how many there are. */
  misfits(network: string): MisfitsResponse {
    const config = this.networks.get(network);
    const found = findMisfits(this.store, network, config, MISFITS_LISTED);
    const now = this.now();
    return {
      network,
      total: countMisfits(this.store, network, config),
      leases: found.map(({ lease }) => this.leaseView(lease, config, now)),
    };
  }

  /**
   * Delete up to `limit` misfit leases of a network (attached or held, stateless or stateful: an
   * address outside the config cannot be kept). One call is one unit of the write queue; the
   * caller repeats until none are left. Returns what it released.
   */
  releaseMisfits(network: string, limit: number): LeaseRecord[] {
    return this.store.transaction(() => {
      const found = findMisfits(this.store, network, this.networks.get(network), limit);
      for (const { lease } of found) this.ledger.remove(lease, 'operator');
      return found.map((m) => m.lease);
    });
  }

  /**
   * One page of the lease listing: at most `limit` leases after the cursor `after`, and the
   * cursor of the next page when more may follow. A page is one read, so a listing of a million
   * leases never holds the daemon's thread for long.
   */
  leases(network: string | undefined, limit: number, after: string | undefined): LeasesResponse {
    if (network !== undefined) this.networks.get(network);
    const from = after === undefined ? undefined : decodeLeaseCursor(after);
    if (from !== undefined && network !== undefined && from.network !== network) {
      throw new ReservoirError(
        'BAD_REQUEST',
        `the cursor in after= continues a listing of network "${from.network}", not "${network}"; pass the "next" value of this listing's previous page, or leave after= out to start from the first lease`,
      );
    }
    // One lease more than asked says whether another page follows, so the last page has no `next`.
    const records = this.store.leasesAfter(network, from, limit + 1);
    const page = records.slice(0, limit);
    const now = this.now();
    const configs = new Map<string, IpamConfig>();
    const configOf = (name: string) => configs.get(name) ?? configs.set(name, this.networks.get(name)).get(name)!;
    const leases = page.map((lease) => this.leaseView(lease, configOf(lease.network), now));
    return records.length > limit ? { leases, next: encodeLeaseCursor(page[page.length - 1]!) } : { leases };
  }

  reservedList(network: string, filter: 'all' | 'free' | 'used'): ReservedListResponse {
    this.networks.get(network);
    const entries = this.store.listReserved(network);
    const ips: Array<{ order: bigint; family: number; view: ReservedIpView }> = [];
    if (filter !== 'free') {
      for (const entry of entries) {
        for (const lease of this.store.leasesBetween(network, entry.family, entry.start, entry.end, Number.MAX_SAFE_INTEGER)) {
          ips.push({ order: lease.ip, family: entry.family, view: this.ipView(entry, lease, lease.ip) });
        }
      }
    }
    let freeTruncated = false;
    if (filter !== 'used') {
      const free = freeReservedIps(this.store, network, entries, MAX_FREE_LISTED + 1);
      freeTruncated = free.length > MAX_FREE_LISTED;
      for (const f of free.slice(0, MAX_FREE_LISTED)) ips.push({ order: f.value, family: f.family, view: this.ipView(f.entry, undefined, f.value) });
    }
    ips.sort((a, b) => a.family - b.family || (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    return {
      network,
      entries: entries.map((entry) => this.entryView(entry)),
      ips: ips.map((item) => item.view),
      freeTruncated,
      conflicts: this.networks.recordOf(network).reservedConflicts,
      usage: this.usage(network)[0]!,
    };
  }

  reservedAdd(network: string, body: ReservedChangeBody): ReservedEntryView {
    return this.store.transaction(() => {
      const config = this.networks.get(network);
      const interval = parseReservedEntry(body.entry, 'entry');
      const content = {
        ...interval,
        group: body.group === undefined || body.group === null ? null : parseGroupName(body.group, 'group'),
        note: parseNote(body.note),
        entry: body.entry.trim(),
        namespaces: parseNamespaces(body.namespaces),
      };
      this.rules.add(network, config, content, 'operator', this.now(), this.refused(network));
      this.ledger.reservedChanged(network);
      this.log.info('reserved entry added', { network, entry: content.entry, group: content.group });
      return this.entryView(this.rules.find(network, interval, body.entry));
    });
  }

  reservedSet(network: string, body: ReservedChangeBody): ReservedEntryView {
    return this.store.transaction(() => {
      const config = this.networks.get(network);
      const current = this.rules.find(network, parseReservedEntry(body.entry, 'entry'), body.entry);
      this.rules.refuseOperatorChange(network, current, this.networks.recordOf(network).file, 'change');
      const target = body.to === undefined ? current : parseReservedEntry(body.to, 'to');
      const content = {
        family: target.family,
        start: target.start,
        end: target.end,
        group: body.group === undefined ? current.group : body.group === null ? null : parseGroupName(body.group, 'group'),
        note: body.note === undefined ? current.note : parseNote(body.note),
        entry: body.to === undefined ? current.entry : body.to.trim(),
        // Narrowing who may claim it never evicts a holder: IPs in use stay with their pods.
        namespaces: body.namespaces === undefined ? current.namespaces : parseNamespaces(body.namespaces),
      };
      this.rules.change(network, config, current, content, this.refused(network));
      this.ledger.reservedChanged(network);
      this.log.info('reserved entry changed', { network, from: current.entry, to: content.entry, group: content.group, namespaces: content.namespaces });
      return this.entryView(this.rules.find(network, target, content.entry));
    });
  }

  reservedRemove(network: string, entryText: string): ReservedEntryView {
    return this.store.transaction(() => {
      this.networks.get(network);
      const entry = this.rules.find(network, parseReservedEntry(entryText, 'entry'), entryText);
      this.rules.refuseOperatorChange(network, entry, this.networks.recordOf(network).file, 'delete');
      const view = this.entryView(entry);
      this.rules.remove(network, entry, this.refused(network));
      this.ledger.reservedChanged(network);
      this.log.info('reserved entry removed', { network, entry: entry.entry });
      return view;
    });
  }

  release(network: string, app: string): ReleaseResponse {
    return this.store.transaction(() => {
      this.networks.get(network);
      const holds = this.store.leasesOfApp(network, app);
      if (holds.length === 0) throw new ReservoirError('UNKNOWN_HOLD', `no stateful app "${app}" holds an IP in network "${network}" (see reservoirctl leases ${network})`);
      const attached = holds.find((h) => h.containerId !== null);
      if (attached) {
        throw new ReservoirError('HOLD_ATTACHED', `app "${app}" is still attached (${describeLease(attached)}); delete the pod first, then release`);
      }
      for (const hold of holds) this.ledger.remove(hold, 'operator');
      this.log.info('stateful hold released', { network, app, by: 'operator' });
      return { released: holds.map((h) => formatValue(h.family, h.ip)) };
    });
  }

  /** Free detached stateful holds older than their network's holdFor. Returns how many. */
  /** Holds past their network's holdFor end (of one network, or of every network). */
  expireHolds(only?: string): number {
    let expired = 0;
    for (const name of only === undefined ? this.networks.names() : [only]) {
      const config = this.networks.get(name);
      if (config.holdForMs === undefined) continue;
      for (const hold of this.store.detachedBefore(name, this.now() - config.holdForMs)) {
        this.ledger.remove(hold, 'hold_expired');
        this.log.info('stateful hold expired', { network: name, app: hold.app, ip: formatValue(hold.family, hold.ip) });
        expired++;
      }
    }
    return expired;
  }

  /** A refused change of a reserved entry goes into the history of the IPs in use that stopped it (up to HOLDERS_RECORDED). */
  private refuseChange(network: string, family: 4 | 6, spans: ReadonlyArray<readonly [bigint, bigint]>, message: string): void {
    const leases = spans.flatMap(([start, end]) => this.store.leasesBetween(network, family, start, end, HOLDERS_RECORDED)).slice(0, HOLDERS_RECORDED);
    const ips = leases.map((lease) => ({ family: lease.family, ip: lease.ip, holder: describeLease(lease) }));
    this.ledger.refuse(network, 'refused_change', ips, { app: 'operator', containerId: null, ifname: null, kind: null }, message);
  }

  private ipView(entry: ReservedRecord, lease: LeaseRecord | undefined, value: bigint): ReservedIpView {
    return {
      ip: formatValue(entry.family, value),
      entry: entry.entry,
      group: entry.group,
      state: lease === undefined ? 'free' : lease.containerId === null ? 'held' : 'leased',
      attachment: lease?.containerId ? `${lease.containerId}/${lease.ifname}` : null,
      app: lease?.app ?? null,
      kind: lease?.kind ?? null,
      since: lease?.createdAt ?? null,
      node: lease === undefined ? null : (lease.node ?? this.ledger.node),
    };
  }

  /** The operator's refusals go into the history of the IPs in use that stopped them. */
  private refused(network: string): (family: 4 | 6, spans: ReadonlyArray<readonly [bigint, bigint]>, message: string) => void {
    return (family, spans, message) => this.refuseChange(network, family, spans, message);
  }

  /** A lease as listings show it; `misfit` says why, when it no longer fits its network's config. */
  private leaseView(lease: LeaseRecord, config: IpamConfig, now: number): LeaseView {
    const view: LeaseView = {
      network: lease.network,
      ip: formatValue(lease.family, lease.ip),
      containerId: lease.containerId,
      ifname: lease.ifname,
      app: lease.app,
      kind: lease.kind,
      state: lease.containerId === null ? 'held' : 'attached',
      reserved: this.store.reservedCovering(lease.network, lease.family, lease.ip) !== undefined,
      createdAt: lease.createdAt,
      ageSeconds: Math.max(0, Math.round((now - lease.createdAt) / 1000)),
      node: lease.node ?? this.ledger.node,
    };
    const fit = fitOf(config, lease.family, lease.ip);
    return fit.fits ? view : { ...view, misfit: fit.reason };
  }

  private entryView(entry: ReservedRecord): ReservedEntryView {
    return {
      entry: entry.entry,
      group: entry.group,
      note: entry.note,
      source: entry.source,
      namespaces: entry.namespaces,
      size: (entry.end - entry.start + 1n).toString(),
      used: this.store.countLeasesBetween(entry.network, entry.family, entry.start, entry.end),
    };
  }
}

/**
 * The cursor of a lease listing: base64url of "network/family/hex key" (network names hold no
 * "/"). Opaque to clients, who pass it back unchanged; decoding is strict, so a mangled cursor is
 * refused rather than guessed at.
 */
export function encodeLeaseCursor(position: LeasePosition): string {
  return Buffer.from(`${position.network}/${position.family}/${toKey(position.family, position.ip)}`).toString('base64url');
}

const LEASE_CURSOR = /^([^/]+)\/(?:(4)\/([0-9a-f]{8})|(6)\/([0-9a-f]{32}))$/;

export function decodeLeaseCursor(cursor: string): LeasePosition {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = LEASE_CURSOR.exec(text);
  // The decoder skips characters outside the alphabet and invalid UTF-8 becomes U+FFFD: only a
  // cursor that encodes back to itself is one this daemon wrote.
  if (match === null || !isNetworkName(match[1]) || Buffer.from(text).toString('base64url') !== cursor) {
    const shown = cursor.length > 64 ? `${cursor.slice(0, 64)}...` : cursor;
    throw new ReservoirError(
      'BAD_REQUEST',
      `after=${JSON.stringify(shown)} is not a lease cursor; pass the "next" value of the previous page unchanged, or leave after= out to start from the first lease`,
    );
  }
  const family = match[2] === '4' ? 4 : 6;
  return { network: match[1]!, family, ip: fromKey((family === 4 ? match[3] : match[5])!) };
}

export function historyView(record: HistoryRecord): HistoryEntryView {
  return {
    id: record.id,
    at: record.at,
    network: record.network,
    ip: formatValue(record.family, record.ip),
    event: record.event,
    reason: record.reason,
    app: record.app,
    containerId: record.containerId,
    ifname: record.ifname,
    kind: record.kind,
    node: record.node,
    holder: record.holder,
    detail: record.detail,
  };
}

function sizeOf(config: IpamConfig): bigint {
  let size = 0n;
  for (const set of config.rangeSets) {
    for (const range of set.ranges) {
      size += range.end - range.start + 1n;
      if (range.gateway !== undefined && range.gateway >= range.start && range.gateway <= range.end) size -= 1n;
    }
  }
  return size;
}

function parseNote(note: string | null | undefined): string | null {
  if (note === undefined || note === null) return null;
  if (typeof note !== 'string' || note.length > 256) throw new ReservoirError('BAD_REQUEST', 'note must be a string of at most 256 characters');
  return note;
}

function parseNamespaces(namespaces: readonly string[] | null | undefined): readonly string[] | null {
  if (namespaces === undefined || namespaces === null) return null;
  try {
    return parseNamespaceGlobs(namespaces, 'namespaces');
  } catch (err) {
    throw new ReservoirError('BAD_REQUEST', (err as Error).message.replace(/^invalid config: /, ''));
  }
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
