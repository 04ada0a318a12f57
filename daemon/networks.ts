// Networks the daemon knows, and which config governs each (README, "Which config is
// authoritative"):
// - a network declared by a file in the CNI config directory follows that file; what a request
//   carries never changes it. An ADD whose config differs is served by the file's rules, and the
//   difference is logged and shown (`usage`, `health`);
// - a network no file declares is learned from requests: the config of the latest ADD that
//   differs becomes the network's config;
// - DEL, CHECK, GC and STATUS never change a stored config (libcni sends the ADD-time config
//   again on DEL, a node may run with a stale conflist).
// A config's `reserved` entries are reconciled through the same rules as the operator's edits
// (reserved-rules.ts); what cannot be applied is kept with the network, so it survives restarts.
import type { IpamConfig, ReservedSpec } from '../src/config.js';
import { parseIpamConfigCached } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type { CniInvocation } from '../src/invocation.js';
import { type Logger, afterCommit } from './log.js';
import { countMisfits } from './misfits.js';
import { configDifferences, rangeSetKey } from './network-change.js';
import { describeOverlap, subnetOverlaps } from './overlaps.js';
import type { EntryContent, ReservedRules } from './reserved-rules.js';
import type { NetworkRecord, ReservedRecord, Store } from './store.js';

/** ADDs of a file-declared network that carried another config than the file's. */
export interface StaleRequests {
  readonly file: string;
  readonly differences: readonly string[];
  readonly requests: number;
  readonly lastSeen: number;
}

export class Networks {
  /** Per file-declared network: the last ADD config that differed from the file (in memory: it is about requests, which come again). */
  private readonly stale = new Map<string, StaleRequests & { readonly json: string; readonly against: string }>();
  /** Lines said inside a unit wait for its commit (log.ts, afterCommit). */
  private readonly log: Logger;

  /**
   * Per cluster network: how this node's config (file or ADD) disagrees with the pools fixed in
   * etcd, last seen; changed (and logged) once per answered unit (observed).
   */
  private readonly disagreements = new Map<string, string>();

  constructor(
    private readonly store: Store,
    log: Logger,
    private readonly rules: ReservedRules,
    /**
     * Told (inside the unit) when a network is new or reconciling changed its reserved entries;
     * it may run again with the unit, so it changes nothing but through store.onCommit (Ledger.reservedChanged).
     */
    private readonly reservedChanged: (network: string) => void = () => undefined,
  ) {
    this.log = afterCommit(store, log);
  }

  /** The config that governs a CNI request; registers or updates the network where the rules allow (call inside a transaction). */
  forRequest(inv: Pick<CniInvocation, 'command' | 'network' | 'rawIpam' | 'ipam'>, now: number): IpamConfig {
    const stored = this.store.getNetwork(inv.network);
    if (!stored) {
      // Only an ADD brings a network into being; anything else has no lease here to act on.
      if (inv.command === 'ADD') this.record(inv.network, inv.rawIpam, inv.ipam, null, undefined, now);
      return inv.ipam;
    }
    const json = JSON.stringify(inv.rawIpam);
    const differs = stored.ipam !== json && !sameShared(stored.ipam, inv.rawIpam);
    if (inv.command === 'ADD' && differs) {
      const disagreement = this.disagree(stored, inv.ipam, 'this ADD\'s config');
      if (disagreement) throw new ReservoirError('INVALID_CONFIG', `invalid config: ${disagreement}`);
    }
    if (stored.file !== null) {
      if (inv.command === 'ADD') this.compareWithFile(stored, inv.rawIpam, json, now);
    } else if (inv.command === 'ADD' && differs) {
      this.record(inv.network, inv.rawIpam, inv.ipam, null, stored, now);
      return inv.ipam;
    }
    // Most requests carry the stored config itself: its parse is the one the request already has.
    const config = stored.ipam === json ? inv.ipam : parseIpamConfigCached(JSON.parse(stored.ipam));
    this.retryConflicts(stored, config, now);
    return config;
  }

  /** A network as a file in the CNI config directory declares it: the file wins (call inside a transaction). */
  fromFile(name: string, rawIpam: Record<string, unknown>, file: string, now: number): IpamConfig {
    const config = parseIpamConfigCached(rawIpam);
    const stored = this.store.getNetwork(name);
    const differs = stored !== undefined && stored.ipam !== JSON.stringify(rawIpam) && !sameShared(stored.ipam, rawIpam);
    if (stored && differs && this.disagree(stored, config, `the config file ${file}`)) return parseIpamConfigCached(JSON.parse(stored.ipam));
    // A cluster network's file may sit under another name on another node: that is no change of it.
    if (!stored || differs || (stored.file !== file && config.scope !== 'cluster')) {
      this.store.onCommit(() => this.stale.delete(name));
      this.record(name, rawIpam, config, file, stored, now);
    } else this.retryConflicts(stored, config, now);
    return config;
  }

  /** Networks whose file left the CNI config directory are learned from requests from now on; their leases and entries stay. */
  forgetFilesExcept(declared: ReadonlySet<string>, unreadable: ReadonlySet<string>, now: number): void {
    for (const network of this.store.listNetworks()) {
      if (network.file === null || declared.has(network.name) || unreadable.has(network.file)) continue;
      if (this.isCluster(network)) continue; // shared: another node's file may declare it
      this.store.putNetwork(network.name, network.ipam, now, null);
      this.store.onCommit(() => this.stale.delete(network.name));
      this.log.info('network no longer declared by a config file; learned from requests from now on', { network: network.name, file: network.file });
    }
  }

  private isCluster(record: NetworkRecord): boolean {
    try {
      return parseIpamConfigCached(JSON.parse(record.ipam)).scope === 'cluster';
    } catch {
      return false;
    }
  }

  get(name: string): IpamConfig {
    return parseIpamConfigCached(JSON.parse(this.recordOf(name).ipam));
  }

  /** The stored record (file, conflicts) of a registered network, or 107. */
  recordOf(name: string): NetworkRecord {
    const stored = this.store.getNetwork(name);
    if (!stored) {
      throw new ReservoirError(
        'UNKNOWN_NETWORK',
        `network "${name}" is not registered; reservoird learns networks from the CNI config directory and from the first ADD`,
      );
    }
    return stored;
  }

  /** How this node's config of a cluster network disagrees with etcd's, or undefined. */
  disagreement(name: string): string | undefined {
    return this.disagreements.get(name);
  }

  /**
   * A cluster network's pools are those of its first registration in etcd: a node whose config
   * has other ranges (or another scope) is told, and never allocates from a pool of its own.
   * Anything else in the config follows the usual rules (the file wins; else the latest ADD).
   */
  private disagree(stored: NetworkRecord, incoming: IpamConfig, source: string): string | undefined {
    let current: IpamConfig;
    try {
      current = parseIpamConfigCached(JSON.parse(stored.ipam));
    } catch {
      return undefined;
    }
    if (current.scope !== 'cluster' && incoming.scope !== 'cluster') return undefined;
    const pools = (config: IpamConfig) => `${config.scope} scope, ranges ${config.rangeSets.map(rangeSetKey).join(' | ')}`;
    const fixed = pools(current);
    const offered = pools(incoming);
    const name = stored.name;
    if (fixed === offered) {
      this.observed(() => this.disagreements.delete(name));
      return undefined;
    }
    const message = `network "${name}" is a cluster network whose pools were fixed when it was first registered (${fixed}); ${source} has ${offered}; make this node's config agree with the other nodes' (reservoirctl usage ${name} shows what is shared)`;
    this.observed(() => {
      if (this.disagreements.get(name) === message) return;
      this.disagreements.set(name, message);
      this.log.warn('a cluster network\'s config on this node disagrees with etcd; not allocating from it', { network: name, problem: message });
    });
    return message;
  }

  /**
   * What a unit found about this node's config that holds whether or not the unit commits (the ADD
   * it refuses rolls back): recorded once, after the commit of the attempt that is answered, as a
   * refusal's history is (commitRegardless, then onCommit).
   */
  private observed(effect: () => void): void {
    this.store.commitRegardless(() => this.store.onCommit(effect));
  }

  staleRequests(name: string): StaleRequests | undefined {
    const found = this.stale.get(name);
    return found && { file: found.file, differences: found.differences, requests: found.requests, lastSeen: found.lastSeen };
  }

  /** Shared subnets are allowed (isolated networks) but worth a warning: both may hand out one IP. */
  private warnOverlaps(name: string, config: IpamConfig): void {
    const others = this.configs().filter((other) => other.name !== name);
    for (const overlap of subnetOverlaps([{ name, config }, ...others])) {
      if (overlap.network === name) this.log.warn('subnets overlap', { network: name, other: overlap.other, problem: describeOverlap(overlap) });
    }
  }

  /** Every network with its config; one whose stored config no longer parses is left out. */
  configs(): Array<{ name: string; config: IpamConfig }> {
    return this.store.listNetworks().flatMap((stored) => {
      try {
        return [{ name: stored.name, config: parseIpamConfigCached(JSON.parse(stored.ipam)) }];
      } catch {
        return [];
      }
    });
  }

  names(): string[] {
    return this.store.listNetworks().map((n) => n.name);
  }

  private record(name: string, rawIpam: Record<string, unknown>, config: IpamConfig, file: string | null, stored: NetworkRecord | undefined, now: number): void {
    this.store.putNetwork(name, JSON.stringify(rawIpam), now, file);
    if (this.reconcileReserved(name, config, stored?.reservedConflicts ?? [], now) || !stored) this.reservedChanged(name);
    this.log.info('network registered', { network: name, change: stored ? 'updated' : 'new', source: file ?? 'request' });
    this.warnOverlaps(name, config);
    const misfits = stored ? countMisfits(this.store, name, config) : 0;
    if (misfits > 0) {
      this.log.warn('leases no longer fit the changed network config; ADD and CHECK refuse them', { network: name, misfits, see: `reservoirctl misfits ${name}` });
    }
  }

  /**
   * The ADD's config against the file's: the in-memory record (and its log line) changes once the
   * ADD has committed, from what the map holds then, so an ADD run twice or rolled back counts once or not at all.
   */
  private compareWithFile(stored: NetworkRecord, rawIpam: Record<string, unknown>, json: string, now: number): void {
    const name = stored.name;
    const file = stored.file!;
    const against = stored.ipam;
    if (against === json) {
      this.store.onCommit(() => this.stale.delete(name));
      return;
    }
    // A config seen before against this very file config: its differences are known.
    const seen = this.stale.get(name);
    const differences = seen?.json === json && seen.against === against ? seen.differences : configDifferences(JSON.parse(against) as Record<string, unknown>, rawIpam);
    this.store.onCommit(() => {
      const last = this.stale.get(name);
      if (differences.length === 0) this.stale.delete(name);
      else if (last?.json === json && last.against === against) this.stale.set(name, { ...last, requests: last.requests + 1, lastSeen: now });
      else {
        this.stale.set(name, { file, differences, requests: 1, lastSeen: now, json, against });
        this.log.warn('an ADD carried another config than the network\'s config file; served by the file', { network: name, file, differences });
      }
    });
  }

  /** Conflicts wait for their holders: try again while there are some (an entry kept only because it was in use goes once they have). */
  private retryConflicts(stored: NetworkRecord, config: IpamConfig, now: number): void {
    if (stored.reservedConflicts.length > 0 && this.reconcileReserved(stored.name, config, stored.reservedConflicts, now)) this.reservedChanged(stored.name);
  }

  /** Make config-sourced reserved entries match the config, through the operator's rules; what they refuse becomes a conflict. Returns whether any entry changed. */
  private reconcileReserved(name: string, config: IpamConfig, known: readonly string[], now: number): boolean {
    const problems: string[] = [];
    let changed = false;
    const attempt = (what: string, change: () => void): boolean => {
      try {
        change();
        changed = true;
        return true;
      } catch (err) {
        if (!(err instanceof ReservoirError) || (err.codeName !== 'RESERVED_IN_USE' && err.codeName !== 'RESERVED_CONFLICT')) throw err;
        problems.push(`${what}: ${err.message}`);
        return false;
      }
    };
    const notApplied = (spec: ReservedSpec) => `reserved entry "${spec.entry}" from the config not applied`;
    let stale = this.store.listReserved(name).filter((r) => r.source === 'config');
    let pending: ReservedSpec[] = [];
    // 1. Same addresses: the entry stays; group, note and text follow the config.
    for (const spec of config.reserved) {
      const same = stale.find((r) => r.family === spec.family && r.start === spec.start && r.end === spec.end);
      if (!same) {
        pending.push(spec);
        continue;
      }
      stale = stale.filter((r) => r !== same);
      const target = contentOf(spec);
      if (target.group !== same.group || target.note !== same.note || target.entry !== same.entry || JSON.stringify(target.namespaces) !== JSON.stringify(same.namespaces)) {
        attempt(notApplied(spec), () => this.rules.change(name, config, same, target));
      }
    }
    // 2. An entry moved or resized: the one old entry it overlaps (and only it) changes into it.
    for (const spec of [...pending]) {
      const overlaps = (r: ReservedRecord, s: ReservedSpec) => r.family === s.family && r.start <= s.end && s.start <= r.end;
      const olds = stale.filter((r) => overlaps(r, spec));
      if (olds.length !== 1 || pending.filter((s) => overlaps(olds[0]!, s)).length !== 1) continue;
      const old = olds[0]!;
      attempt(notApplied(spec), () => this.rules.change(name, config, old, contentOf(spec)));
      stale = stale.filter((r) => r !== old);
      pending = pending.filter((s) => s !== spec);
    }
    // 3. Entries that left the config go, unless in use.
    for (const record of stale) attempt(`reserved entry "${record.entry}" left the config but stays reserved`, () => this.rules.remove(name, record));
    // 4. New entries.
    for (const spec of pending) attempt(notApplied(spec), () => this.rules.add(name, config, contentOf(spec), 'config', now));

    if (problems.length !== known.length || problems.some((p, i) => p !== known[i])) this.store.setReservedConflicts(name, problems);
    for (const problem of problems) if (!known.includes(problem)) this.log.warn('reserved config conflict', { network: name, problem });
    return changed;
  }
}

/**
 * Whether a cluster network's stored config and a node's say the same once each node's own keys
 * are left out (the plugin's socket and timeout): otherwise every node's ADD would rewrite the
 * shared config, one key that every ADD of the network rewrites.
 */
function sameShared(storedIpam: string, raw: Record<string, unknown>): boolean {
  if (raw.scope !== 'cluster') return false;
  const shared = ({ socket: _socket, timeout: _timeout, ...rest }: Record<string, unknown>) => JSON.stringify(rest);
  try {
    return shared(JSON.parse(storedIpam) as Record<string, unknown>) === shared(raw);
  } catch {
    return false;
  }
}

function contentOf(spec: ReservedSpec): EntryContent {
  return { family: spec.family, start: spec.start, end: spec.end, group: spec.group ?? null, note: spec.note ?? null, entry: spec.entry, namespaces: spec.namespaces ?? null };
}
