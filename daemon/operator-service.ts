// The operator's use cases: usage, leases, reserved entries, releasing stateful holds.
// The rule that matters most: a reserved entry that covers an IP in use can neither shrink away
// from it, change its group, nor disappear; the refusal names every holder.
import { formatValue, fromKey, toKey } from '../src/address.js';
import type { IpamConfig } from '../src/config.js';
import { checkReservedPlacement, describeInterval, isNetworkName, parseGroupName, parseNamespaceGlobs, parseReservedEntry } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type {
  HistoryEntryView,
  LeasesResponse,
  LeaseView,
  ReleaseResponse,
  ReservedChangeBody,
  ReservedEntryView,
  ReservedIpView,
  ReservedListResponse,
  ReservedPageResponse,
  UsageView,
} from '../src/protocol.js';
import { describeLease, freeReservedIps, holdersBetween } from './holders.js';
import type { Ledger } from './ledger.js';
import type { Logger } from './log.js';
import type { Networks } from './networks.js';
import { type SubnetOverlap, describeOverlap, subnetOverlaps } from './overlaps.js';
import type { HistoryRecord, LeasePosition, LeaseRecord, ReservedRecord, Store } from './store.js';

export const MAX_FREE_LISTED = 1024;
/** A refused reserved change records at most this many of the IPs in use that stopped it. */
export const HOLDERS_RECORDED = 20;

export class OperatorService {
  constructor(
    private readonly store: Store,
    private readonly networks: Networks,
    private readonly ledger: Ledger,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

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
      const size = sizeOf(this.networks.get(name));
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
    const leases = page.map((lease): LeaseView => ({
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
    }));
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
      conflicts: this.networks.conflicts.get(network) ?? [],
      usage: this.usage(network)[0]!,
    };
  }

  reservedAdd(network: string, body: ReservedChangeBody): ReservedEntryView {
    return this.store.transaction(() => {
      const config = this.networks.get(network);
      const interval = parseReservedEntry(body.entry, 'entry');
      this.checkPlacement(network, config, interval, undefined);
      this.refuseTakingInUse(network, interval.family, [[interval.start, interval.end]], body.entry);
      const record = {
        network,
        ...interval,
        group: body.group === undefined || body.group === null ? null : parseGroupName(body.group, 'group'),
        note: parseNote(body.note),
        source: 'operator' as const,
        entry: body.entry.trim(),
        namespaces: parseNamespaces(body.namespaces),
      };
      this.store.insertReserved(record, this.now());
      this.ledger.reservedChanged(network);
      this.log.info('reserved entry added', { network, entry: record.entry, group: record.group });
      return this.entryView(this.findEntry(network, body.entry));
    });
  }

  reservedSet(network: string, body: ReservedChangeBody): ReservedEntryView {
    return this.store.transaction(() => {
      const config = this.networks.get(network);
      const current = this.findEntry(network, body.entry);
      const target = body.to === undefined ? current : { ...parseReservedEntry(body.to, 'to') };
      const group = body.group === undefined ? current.group : body.group === null ? null : parseGroupName(body.group, 'group');
      const note = body.note === undefined ? current.note : parseNote(body.note);
      // Narrowing who may claim it never evicts a holder: IPs in use stay with their pods.
      const namespaces = body.namespaces === undefined ? current.namespaces : parseNamespaces(body.namespaces);
      // IPs that leave the entry, or all of them when the group changes, must be free.
      const leaving: Array<[bigint, bigint]> = [];
      if (group !== current.group || target.family !== current.family) leaving.push([current.start, current.end]);
      else {
        if (target.start > current.start) leaving.push([current.start, min(current.end, target.start - 1n)]);
        if (target.end < current.end) leaving.push([max(current.start, target.end + 1n), current.end]);
      }
      const holders = leaving.flatMap(([start, end]) => holdersBetween(this.store, network, current.family, start, end));
      if (holders.length > 0) {
        const message = `cannot change reserved entry "${current.entry}" in network "${network}": IPs it would ${group !== current.group ? 'regroup' : 'drop'} are in use by ${holders.join(', ')}; release them first`;
        this.refuseChange(network, current.family, leaving, message);
        throw new ReservoirError('RESERVED_IN_USE', message);
      }
      this.checkPlacement(network, config, target, current.id);
      const joining: Array<[bigint, bigint]> = [];
      if (target.start < current.start) joining.push([target.start, min(target.end, current.start - 1n)]);
      if (target.end > current.end) joining.push([max(target.start, current.end + 1n), target.end]);
      this.refuseTakingInUse(network, target.family, joining, body.to ?? body.entry);
      const entry = body.to === undefined ? current.entry : body.to.trim();
      this.store.updateReserved(current.id, { family: target.family, start: target.start, end: target.end, group, note, entry, namespaces });
      this.ledger.reservedChanged(network);
      this.log.info('reserved entry changed', { network, from: current.entry, to: entry, group, namespaces });
      return this.entryView(this.findEntry(network, entry));
    });
  }

  reservedRemove(network: string, entryText: string): ReservedEntryView {
    return this.store.transaction(() => {
      this.networks.get(network);
      const entry = this.findEntry(network, entryText);
      const holders = holdersBetween(this.store, network, entry.family, entry.start, entry.end);
      if (holders.length > 0) {
        const message = `cannot delete reserved entry "${entry.entry}" in network "${network}": in use by ${holders.join(', ')}; release them first`;
        this.refuseChange(network, entry.family, [[entry.start, entry.end]], message);
        throw new ReservoirError('RESERVED_IN_USE', message);
      }
      const view = this.entryView(entry);
      this.store.deleteReserved(entry.id);
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
  expireHolds(): number {
    let expired = 0;
    for (const name of this.networks.names()) {
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

  /** Reserving an IP that a pod got without asking would make that pod a reserved holder it never was. */
  private refuseTakingInUse(network: string, family: 4 | 6, spans: Array<[bigint, bigint]>, entry: string): void {
    const holders = spans.flatMap(([start, end]) => holdersBetween(this.store, network, family, start, end));
    if (holders.length > 0) {
      const message = `cannot reserve "${entry}" in network "${network}": some of its IPs are in use by ${holders.join(', ')}; reserve around them, or wait until they are released`;
      this.refuseChange(network, family, spans, message);
      throw new ReservoirError('RESERVED_IN_USE', message);
    }
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
      node: lease === undefined ? null : this.ledger.node,
    };
  }

  private findEntry(network: string, text: string): ReservedRecord {
    const interval = parseReservedEntry(text, 'entry');
    const entry = this.store.listReserved(network).find((r) => r.family === interval.family && r.start === interval.start && r.end === interval.end);
    if (!entry) throw new ReservoirError('UNKNOWN_RESERVED', `network "${network}" has no reserved entry "${text}" (see reservoirctl reserved list ${network})`);
    return entry;
  }

  private checkPlacement(network: string, config: IpamConfig, interval: { family: 4 | 6; start: bigint; end: bigint }, ignoreId: number | undefined): void {
    const problem = checkReservedPlacement(interval, config.rangeSets);
    if (problem) throw new ReservoirError('RESERVED_CONFLICT', `${problem}`);
    const clash = this.store
      .listReserved(network)
      .find((r) => r.id !== ignoreId && r.family === interval.family && r.start <= interval.end && interval.start <= r.end);
    if (clash) throw new ReservoirError('RESERVED_CONFLICT', `${describeInterval(interval)} overlaps the reserved entry "${clash.entry}"`);
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
const max = (a: bigint, b: bigint) => (a > b ? a : b);
