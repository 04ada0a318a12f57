// The CNI use cases: ADD, DEL, CHECK, GC, STATUS. Each runs inside one store transaction: the
// allocator decides, the store records, the transaction commits all range sets or none.
import { type Family, type Ip, formatIpWithPrefix, formatValue, parseIpWithPrefix } from '../src/address.js';
import type { IpamResult, ResultIp } from '../src/cni.js';
import type { IpamConfig, RangeSet } from '../src/config.js';
import { describeRange, namespaceAllowed } from '../src/config.js';
import { ErrorCodes, ReservoirError } from '../src/errors.js';
import type { CniInvocation } from '../src/invocation.js';
import type { GcResponse, StatusResponse } from '../src/protocol.js';
import { allocateNext, placeRequested } from './allocator.js';
import { describeLease, exclusionsOf, freeReservedIps, holdersBetween, sameGroup } from './holders.js';
import type { Ledger, RefusedIp, ReleaseReason, Requester } from './ledger.js';
import { type Logger, afterCommit } from './log.js';
import type { NetnsView } from './netns-view.js';
import { fitOf, rangeSetKey } from './network-change.js';
import type { Networks } from './networks.js';
import { entriesInRangeSet, reservedUsage } from './reserved-usage.js';
import type { AddRequest } from './kube/policy.js';
import type { LeaseBinding, LeaseRecord, ReservedRecord, Store } from './store.js';
import type { RunUnit } from './write-queue.js';

export const OFFERED_ALTERNATIVES = 5;
/** Leases one GC unit releases: a few ms of work, so ADDs get their turn between chunks. */
export const GC_CHUNK = 500;

export class CniService {
  /** Per network, the sets of attachments ADDed since each running GC began (see gc). */
  private readonly gcWatchers = new Map<string, Set<Set<string>>>();
  /** Lines said inside a unit wait for its commit (log.ts, afterCommit). */
  private readonly log: Logger;

  constructor(
    private readonly store: Store,
    private readonly networks: Networks,
    private readonly ledger: Ledger,
    log: Logger,
    private readonly netns: NetnsView,
    private readonly now: () => number = Date.now,
  ) {
    this.log = afterCommit(store, log);
  }

  add(inv: AddRequest): IpamResult {
    return this.addUndoable(inv).result;
  }

  /**
   * ADD, and a way to take it back: `undo` (in a later transaction) removes the leases this ADD
   * created and gives stateful holds back as they were, each only if it is still as this ADD left
   * it. For an ADD whose caller gave up before the answer (write-queue.ts).
   */
  addUndoable(inv: AddRequest): { result: IpamResult; undo: () => void } {
    this.netns.observeAdd(inv.netns);
    return this.store.transaction(() => {
      const created: LeaseRecord[] = [];
      const heldBefore: LeaseRecord[] = [];
      const yielded = new Set<string>();
      const now = this.now();
      const config = this.networks.forRequest(inv, now);
      // The governing config's defaultKind, not the one a stale request carries.
      const kind = inv.kindExplicit ? inv.kind : config.defaultKind;
      if (kind === 'stateful' && inv.app === undefined) {
        throw new ReservoirError(
          'INVALID_ENV',
          `network "${inv.network}" makes apps stateful by default (defaultKind); a stateful app needs an identity: CNI_ARGS K8S_POD_NAMESPACE and K8S_POD_NAME (or RESERVOIR_APP)`,
        );
      }
      const { containerId, ifname } = inv.attachment;
      const claim = inv.statefulSet;
      const binding: LeaseBinding = { podUid: inv.podUid ?? null, ownerUid: claim?.record.uid ?? null, ordinal: claim?.ordinal ?? null };
      if (claim) this.store.putStatefulSet(claim.record);
      // Leases by the range set that holds their address now, not by where the set once stood.
      // A rolled-back ADD stays in the set: the GC then spares an attachment it could have released, never the reverse.
      // It is told now, not after the commit: a GC unit later in the same batch must already spare it. Adding twice (a rerun) is adding once.
      this.gcWatchers.get(inv.network)?.forEach((set) => set.add(attachmentKey(containerId, ifname)));
      const leases = new Map<number, LeaseRecord>();
      for (const lease of this.store.leasesOfAttachment(inv.network, containerId, ifname)) {
        leases.set(setOf(config, lease, leases, `container ${containerId.slice(0, 12)} ifname ${ifname}`), lease);
      }
      const reattached = new Set<number>();
      if (kind === 'stateful' && inv.app !== undefined) {
        for (const hold of this.store.leasesOfApp(inv.network, inv.app)) {
          if (hold.containerId === containerId && hold.ifname === ifname) continue;
          const index = setOf(config, hold, new Map(), `stateful app ${inv.app}`);
          if (leases.has(index)) continue;
          if (claim && hold.ownerUid && hold.ownerUid !== claim.record.uid && hold.containerId === null) {
            // A StatefulSet recreated under the same name: the old one's holds go unless it said Retain.
            const previous = this.store.getStatefulSet(hold.ownerUid);
            if ((previous?.whenDeleted ?? 'Delete') === 'Delete') {
              this.ledger.remove(hold, 'statefulset');
              this.log.info('stateful hold released: its StatefulSet was recreated', { network: inv.network, app: inv.app, ip: formatValue(hold.family, hold.ip), oldUid: hold.ownerUid, newUid: claim.record.uid });
              continue;
            }
          }
          if (hold.containerId !== null && hold.node && hold.node !== this.ledger.node) {
            // A cluster network: the app is still attached on another node; only that node (or the operator) can let go.
            const message = `stateful app ${inv.app} still holds ${formatValue(hold.family, hold.ip)} in ${describeLease(hold)}; DEL that container on node ${hold.node} first (if that node is gone: reservoirctl release --node ${hold.node})`;
            this.ledger.refuse(inv.network, 'in_use', [{ family: hold.family, ip: hold.ip, holder: describeLease(hold) }], requesterOf(inv), message);
            throw new ReservoirError('IP_IN_USE', message);
          }
          if (hold.containerId !== null) {
            // Two live containers must never share the IP: take it over only from a container
            // whose network namespace is gone (it died without DEL), never on a guess.
            const state = hold.netns === null ? 'gone' : this.netns.state(hold.netns);
            if (state !== 'gone') {
              const why =
                state === 'present'
                  ? `whose network namespace ${hold.netns} exists`
                  : `whose network namespace ${hold.netns} reservoird cannot see (mount the runtime's netns directory into its container)`;
              const message = `stateful app ${inv.app} still holds ${formatValue(hold.family, hold.ip)} in ${describeLease(hold)} ${why}; DEL that container first`;
              this.ledger.refuse(inv.network, 'in_use', [{ family: hold.family, ip: hold.ip, holder: describeLease(hold) }], requesterOf(inv), message);
              throw new ReservoirError('IP_IN_USE', message);
            }
            this.log.warn('stateful app moved to a new container', { network: inv.network, app: inv.app, from: hold.containerId, to: containerId });
          }
          this.ledger.reattach(hold, containerId, ifname, inv.netns);
          if (binding.podUid !== (hold.podUid ?? null) || binding.ownerUid !== (hold.ownerUid ?? null) || binding.ordinal !== (hold.ordinal ?? null)) {
            this.store.bindLease(inv.network, hold.family, hold.ip, binding);
          }
          heldBefore.push(hold);
          leases.set(index, { ...hold, ...binding, containerId, ifname, netns: inv.netns, detachedAt: null });
          reattached.add(index);
        }
      }
      const requested = this.requestedBySet(config, inv.requestedIps);
      config.rangeSets.forEach((set, index) => {
        const current = leases.get(index);
        const wanted = requested.get(index);
        if (current) {
          // A held IP yields to a new explicit request (the operator changed the pod's IP);
          // a repeated ADD of the same attachment always gets what it already has.
          if (!(wanted && reattached.has(index) && wanted.value !== current.ip)) return;
          this.ledger.remove(current, 'replaced');
          yielded.add(`${current.family}:${current.ip}`);
        }
        const value = wanted ? this.takeRequested(inv, wanted) : this.takeFree(inv, set, index);
        const lease: LeaseRecord = {
          network: inv.network,
          family: set.family,
          ip: value,
          containerId,
          ifname,
          netns: inv.netns,
          app: inv.app ?? null,
          kind,
          createdAt: now,
          detachedAt: null,
          ...binding,
        };
        const reserved = this.store.reservedCovering(inv.network, set.family, value) !== undefined;
        this.ledger.claim(lease, wanted ? 'requested' : reserved ? 'group' : 'dynamic');
        created.push(lease);
        leases.set(index, lease);
      });
      return { result: resultOf(config, [...leases.values()]), undo: () => this.undoAdd(inv, config, created, heldBefore, yielded) };
    });
  }

  /**
   * Through the ledger, as every lease change: the leases this ADD created go, a hold it
   * reattached is held again (by its app, no container), and a hold that yielded to a requested
   * IP comes back, held. Each only while still as this ADD left it.
   */
  private undoAdd(inv: AddRequest, config: IpamConfig, created: readonly LeaseRecord[], heldBefore: readonly LeaseRecord[], yielded: ReadonlySet<string>): void {
    const { containerId, ifname } = inv.attachment;
    const ours = (lease: LeaseRecord | undefined): lease is LeaseRecord =>
      lease?.containerId === containerId && lease.ifname === ifname && lease.netns === inv.netns;
    for (const lease of created) {
      const now = this.store.leaseAt(lease.network, lease.family, lease.ip);
      if (ours(now) && now.createdAt === lease.createdAt) this.ledger.remove(now, 'abandoned');
    }
    for (const hold of heldBefore) {
      const now = this.store.leaseAt(hold.network, hold.family, hold.ip);
      if (now === undefined) {
        // it yielded to a requested IP: held again, unless its app holds another IP of that range set now
        const setIndex = (lease: LeaseRecord) => {
          const fit = fitOf(config, lease.family, lease.ip);
          return fit.fits ? fit.setIndex : undefined;
        };
        if (!yielded.has(`${hold.family}:${hold.ip}`) || this.store.leasesOfApp(hold.network, hold.app!).some((l) => setIndex(l) === setIndex(hold))) continue;
        const back: LeaseRecord = { ...hold, containerId, ifname, netns: inv.netns, detachedAt: null };
        this.ledger.claim(back, 'reattached');
        this.ledger.detach(back, 'abandoned');
      } else if (ours(now)) {
        this.ledger.detach(now, 'abandoned');
      }
    }
  }

  del(inv: CniInvocation): void {
    this.store.transaction(() => {
      this.networks.forRequest(inv, this.now());
      for (const lease of this.store.leasesOfAttachment(inv.network, inv.attachment.containerId, inv.attachment.ifname)) {
        this.release(lease, 'del');
      }
    });
  }

  check(inv: CniInvocation): void {
    const config = this.store.transaction(() => this.networks.forRequest(inv, this.now()));
    const leases = this.store.leasesOfAttachment(inv.network, inv.attachment.containerId, inv.attachment.ifname);
    if (leases.length === 0) {
      throw new ReservoirError(
        'NO_LEASE',
        `container ${inv.attachment.containerId} ifname ${inv.attachment.ifname} holds no lease in network "${inv.network}"`,
      );
    }
    // A lease that no longer fits fails CHECK whatever prevResult says: that is what CHECK is for.
    const placed = new Map<number, LeaseRecord>();
    for (const lease of leases) placed.set(setOf(config, lease, placed, `container ${inv.attachment.containerId.slice(0, 12)} ifname ${inv.attachment.ifname}`), lease);
    if (inv.prevAddresses === undefined) return;
    const held = resultOf(config, leases).ips.map((ip) => ip.address).sort();
    const claimed = inv.prevAddresses
      .map((text) => {
        try {
          const parsed = parseIpWithPrefix(text);
          return formatIpWithPrefix(parsed.ip, parsed.prefix);
        } catch {
          throw new ReservoirError('INVALID_CONFIG', `invalid config: prevResult: "${text}" is not an address with a prefix`);
        }
      })
      .sort();
    if (held.join(',') !== claimed.join(',')) {
      throw new ReservoirError('LEASE_MISMATCH', `prevResult claims ${claimed.join(', ') || 'no IPs'} but the lease holds ${held.join(', ')}`);
    }
  }

  /**
   * GC in units of GC_CHUNK attached leases, read page by page in address order and released in
   * the same unit, so a GC that frees 40,000 leases does not hold the queue (and every ADD behind
   * it) for a second. An attachment ADDed after the GC began (a container the runtime did not know
   * of when it sent the GC) is never released by it, whichever page its lease falls in.
   */
  async gc(inv: CniInvocation, run: RunUnit): Promise<GcResponse> {
    const valid = new Set((inv.validAttachments ?? []).map((a) => attachmentKey(a.containerId, a.ifname)));
    const addedSince = new Set<string>();
    const errors: string[] = [];
    let released = 0;
    let after: { family: Family; ip: bigint } | undefined;
    try {
      for (let first = true; ; first = false) {
        // What a unit counts is its own, added up once it has committed: a unit may run twice.
        const { page, done, failed } = await run(() => {
          if (first) {
            this.networks.forRequest(inv, this.now());
            this.watchAdds(inv.network, addedSince, true); // idempotent: a second run adds the same set
          }
          const leases = this.store.attachedLeasesAfter(inv.network, after, GC_CHUNK);
          let done = 0;
          const failed: string[] = [];
          for (const lease of leases) {
            const key = attachmentKey(lease.containerId!, lease.ifname!);
            if (valid.has(key) || addedSince.has(key)) continue;
            try {
              this.store.transaction(() => this.release(lease, 'gc'));
              done++;
            } catch (err) {
              failed.push(`${formatValue(lease.family, lease.ip)}: ${(err as Error).message}`);
            }
          }
          return { page: leases, done, failed };
        });
        released += done;
        errors.push(...failed);
        if (page.length < GC_CHUNK) break;
        const last = page[page.length - 1]!;
        after = { family: last.family, ip: last.ip };
      }
    } finally {
      this.watchAdds(inv.network, addedSince, false);
    }
    if (released > 0) this.log.info('gc released leases', { network: inv.network, released });
    return { released, errors };
  }

  /** Attachments ADDed while a GC of the network runs go into each running GC's set. */
  private watchAdds(network: string, set: Set<string>, on: boolean): void {
    const sets = this.gcWatchers.get(network) ?? new Set<Set<string>>();
    if (on) sets.add(set);
    else sets.delete(set);
    if (sets.size > 0) this.gcWatchers.set(network, sets);
    else this.gcWatchers.delete(network);
  }

  status(inv: CniInvocation): StatusResponse {
    const config = this.store.transaction(() => this.networks.forRequest(inv, this.now()));
    const { leased, reserved } = exclusionsOf(this.store, inv.network);
    for (const [index, set] of config.rangeSets.entries()) {
      if (!allocateNext(set, undefined, [leased, reserved])) {
        return { ready: false, code: ErrorCodes.NOT_READY.code, msg: `range set ${index} (${set.ranges.map(describeRange).join(', ')}) has no free IP` };
      }
    }
    return { ready: true };
  }

  /** Stateless leases end; stateful ones stay held by their app. `detail`: why, for the history. */
  release(lease: LeaseRecord, reason: ReleaseReason, detail: string | null = null): void {
    if (lease.kind === 'stateful') this.ledger.detach(lease, reason, detail);
    else this.ledger.remove(lease, reason, detail);
  }

  private requestedBySet(config: IpamConfig, ips: readonly Ip[]): Map<number, Ip> {
    const bySet = new Map<number, Ip>();
    for (const ip of ips) {
      const problems: string[] = [];
      const index = config.rangeSets.findIndex((set) => {
        const placement = placeRequested(set, ip);
        if ('problem' in placement) problems.push(placement.problem);
        return 'rangeIndex' in placement;
      });
      if (index < 0) {
        const sameFamily = problems.filter((p) => !p.includes('this range set is IPv'));
        throw new ReservoirError('IP_NOT_IN_RANGE', `requested IP ${formatValue(ip.family, ip.value)} cannot be allocated: ${(sameFamily.length ? sameFamily : problems).join('; ')}`);
      }
      if (bySet.has(index)) {
        throw new ReservoirError('INVALID_CONFIG', `invalid config: requested IPs ${formatValue(ip.family, bySet.get(index)!.value)} and ${formatValue(ip.family, ip.value)} fall in the same range set ${index}; one IP per range set`);
      }
      bySet.set(index, ip);
    }
    return bySet;
  }

  private takeRequested(inv: CniInvocation, ip: Ip): bigint {
    const text = formatValue(ip.family, ip.value);
    const entry = this.store.reservedCovering(inv.network, ip.family, ip.value);
    const holder = this.store.leaseAt(inv.network, ip.family, ip.value);
    if (entry && !mayClaim(entry, inv)) {
      const refused = [{ family: ip.family, ip: ip.value, holder: holder ? describeLease(holder) : null }];
      throw this.refused(inv, forbidden(inv, `reserved IP ${text} (entry "${entry.entry}")`, entry.namespaces!), refused);
    }
    if (!holder) return ip.value;
    let offer = '';
    if (entry) {
      const group = entry.group;
      const candidates = sameGroup(this.store.listReserved(inv.network), group).filter((e) => mayClaim(e, inv));
      const free = freeReservedIps(this.store, inv.network, candidates, OFFERED_ALTERNATIVES);
      const label = group === null ? 'ungrouped reserved IPs' : `reserved group "${group}"`;
      offer = free.length
        ? `; free in ${label}: ${free.map((f) => formatValue(f.family, f.value)).join(', ')}`
        : `; no free IP left in ${label}`;
    }
    const message = `requested IP ${text} is in use by ${describeLease(holder)}${offer}`;
    // Held by a container: another claim got there first. Held by an app with no container: a hold, not a race.
    const reason = holder.containerId === null ? 'in_use' : 'lost_race';
    this.ledger.refuse(inv.network, reason, [{ family: ip.family, ip: ip.value, holder: describeLease(holder) }], requesterOf(inv), message);
    throw new ReservoirError('IP_IN_USE', message);
  }

  /** Record a refusal of RESERVED_FORBIDDEN (it commits though the ADD rolls back); returns the error to throw. */
  private refused(inv: CniInvocation, error: ReservoirError, ips: readonly RefusedIp[]): ReservoirError {
    this.ledger.refuse(inv.network, 'forbidden', ips, requesterOf(inv), error.message);
    return error;
  }

  private takeFree(inv: CniInvocation, set: RangeSet, index: number): bigint {
    const { leased, reserved } = exclusionsOf(this.store, inv.network);
    if (inv.group !== undefined) {
      const entries = this.store.listReserved(inv.network);
      const named = sameGroup(entries, inv.group);
      const group = named.filter((entry) => mayClaim(entry, inv));
      if (named.length > 0 && group.length === 0) {
        throw this.refused(inv, forbidden(inv, `reserved group "${inv.group}"`, [...new Set(named.flatMap((e) => e.namespaces ?? []))]), []);
      }
      if (group.length === 0) {
        const known = [...new Set(entries.map((e) => e.group).filter((g): g is string => g !== null))];
        throw new ReservoirError(
          'UNKNOWN_GROUP',
          `network "${inv.network}" has no reserved group "${inv.group}"${known.length ? `; groups: ${known.join(', ')}` : '; it has no groups'}`,
        );
      }
      const inSet = group.filter((entry) => entry.family === set.family && set.ranges.some((r) => r.start <= entry.start && entry.end <= r.end));
      if (inSet.length > 0) {
        const [free] = freeReservedIps(this.store, inv.network, inSet, 1);
        if (free) return free.value;
        const holders = inSet.flatMap((entry) => holdersBetween(this.store, inv.network, entry.family, entry.start, entry.end, 10)).slice(0, 10);
        throw new ReservoirError(
          'GROUP_EXHAUSTED',
          `reserved group "${inv.group}" has no free IPv${set.family} address (${inSet.map((e) => e.entry).join(', ')}); in use by ${holders.join(', ')}`,
        );
      }
    }
    const key = rangeSetKey(set);
    const cursor = this.store.getCursor(inv.network, key);
    const found = allocateNext(set, cursor, [leased, reserved]);
    if (!found) throw this.exhausted(inv.network, set, index);
    this.store.setCursor(inv.network, key, set.family, found.value);
    return found.value;
  }

  private exhausted(network: string, set: RangeSet, index: number): ReservoirError {
    let leasedCount = 0;
    for (const range of set.ranges) leasedCount += this.store.countLeasesBetween(network, set.family, range.start, range.end);
    const reservedFree = reservedUsage(this.store, network, entriesInRangeSet(this.store.listReserved(network), set)).free;
    return new ReservoirError(
      'POOL_EXHAUSTED',
      `no free IP in range set ${index} of network "${network}" (${set.ranges.map(describeRange).join(', ')}): ${leasedCount} leased, ${reservedFree} reserved IPs free but given only on request; widen the range or release leases (reservoirctl leases ${network})`,
    );
  }
}

/** Whether the pod may claim IPs of this reserved entry (an entry without namespaces is for any pod). */
function mayClaim(entry: ReservedRecord, inv: CniInvocation): boolean {
  return entry.namespaces === null || namespaceAllowed(entry.namespaces, inv.podNamespace);
}

function forbidden(inv: CniInvocation, what: string, namespaces: readonly string[]): ReservoirError {
  const who = inv.podNamespace === undefined ? 'this pod names no namespace (CNI_ARGS K8S_POD_NAMESPACE)' : `this pod is in namespace "${inv.podNamespace}"`;
  return new ReservoirError(
    'RESERVED_FORBIDDEN',
    `${what} in network "${inv.network}" is only for namespaces ${namespaces.join(', ')}; ${who}; ask for another IP or group, or widen the entry's namespaces (reservoirctl reserved set ${inv.network} ENTRY --namespaces ...)`,
  );
}

function requesterOf(inv: CniInvocation): Requester {
  return { app: inv.app ?? null, containerId: inv.attachment.containerId, ifname: inv.attachment.ifname, kind: inv.kind };
}

function attachmentKey(containerId: string, ifname: string): string {
  return `${containerId}\u0000${ifname}`;
}

/**
 * The CNI result of an attachment's leases under the network's config: each address with its
 * range's prefix and gateway, in the config's range-set order. A lease that no longer fits is
 * never answered with a made-up prefix or gateway: LEASE_MISFIT (callers place leases with
 * setOf first, so this only guards).
 */
export function resultOf(config: IpamConfig, leases: readonly LeaseRecord[]): IpamResult {
  const placed = leases.map((lease) => {
    const fit = fitOf(config, lease.family, lease.ip);
    if (!fit.fits) throw misfitError(lease, lease.containerId ? `container ${lease.containerId.slice(0, 12)} ifname ${lease.ifname}` : `stateful app ${lease.app}`, fit.reason);
    return { lease, fit };
  });
  const ips: ResultIp[] = placed
    .sort((a, b) => a.fit.setIndex - b.fit.setIndex)
    .map(({ lease, fit }) => {
      const ip: { address: string; gateway?: string } = { address: formatIpWithPrefix({ family: lease.family, value: lease.ip }, fit.range.subnet.prefix) };
      if (fit.range.gateway !== undefined) ip.gateway = formatValue(lease.family, fit.range.gateway);
      return ip;
    });
  const result: { ips: ResultIp[]; routes: IpamConfig['routes']; dns?: IpamConfig['dns'] } = { ips, routes: config.routes };
  if (config.dns) result.dns = config.dns;
  return result;
}

/** The index of the range set that holds a lease's address now; LEASE_MISFIT when none does, or when another lease of the holder is already there. */
function setOf(config: IpamConfig, lease: LeaseRecord, placed: ReadonlyMap<number, LeaseRecord>, holder: string): number {
  const fit = fitOf(config, lease.family, lease.ip);
  if (!fit.fits) throw misfitError(lease, holder, fit.reason);
  const other = placed.get(fit.setIndex);
  if (other) {
    throw misfitError(lease, holder, `${holder} also holds ${formatValue(other.family, other.ip)} in the same range set ${fit.setIndex} (${config.rangeSets[fit.setIndex]!.ranges.map(describeRange).join(', ')}): two range sets became one`);
  }
  return fit.setIndex;
}

function misfitError(lease: LeaseRecord, holder: string, reason: string): ReservoirError {
  const ip = formatValue(lease.family, lease.ip);
  return new ReservoirError(
    'LEASE_MISFIT',
    `${holder} holds ${ip} in network "${lease.network}", which no longer fits the network's config: ${reason}; release it with "reservoirctl misfits ${lease.network} --release" (or DEL the container), then ADD again for an address that fits`,
  );
}
