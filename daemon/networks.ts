// Networks the daemon knows: registered from CNI requests and from the CNI config directory.
// A network's ipam config is kept as written and parsed with the plugin's own validator.
// Config-sourced reserved entries are reconciled on every change of the config.
import type { IpamConfig, ReservedSpec } from '../src/config.js';
import { parseIpamConfigCached } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type { Logger } from './log.js';
import { describeOverlap, subnetOverlaps } from './overlaps.js';
import type { ReservedRecord, Store } from './store.js';

export class Networks {
  /** Config-file reserved entries that could not be applied, per network: shown by `reserved list`.
   *  No key: not reconciled since this daemon started. */
  readonly conflicts = new Map<string, string[]>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly describeHolders: (network: string, family: 4 | 6, start: bigint, end: bigint) => string[],
    /** Told (inside the transaction) when a network is new or reconciling changed its reserved entries. */
    private readonly reservedChanged: (network: string) => void = () => undefined,
  ) {}

  /** Record the network's config if it changed (call inside a transaction). */
  register(name: string, rawIpam: Record<string, unknown>, now: number): IpamConfig {
    const json = JSON.stringify(rawIpam);
    const config = parseIpamConfigCached(rawIpam);
    const stored = this.store.getNetwork(name);
    if (stored?.ipam !== json) {
      this.store.putNetwork(name, json, now);
      if (this.reconcileReserved(name, config, now) || !stored) this.reservedChanged(name);
      this.log.info('network registered', { network: name, change: stored ? 'updated' : 'new' });
      this.warnOverlaps(name, config);
    } else if (this.conflicts.get(name)?.length !== 0) {
      // Conflicts live in memory: rebuild them after a restart, and retry while there are some
      // (an entry kept only because it was in use goes once its holders have).
      if (this.reconcileReserved(name, config, now)) this.reservedChanged(name);
    }
    return config;
  }

  get(name: string): IpamConfig {
    const stored = this.store.getNetwork(name);
    if (!stored) {
      throw new ReservoirError(
        'UNKNOWN_NETWORK',
        `network "${name}" is not registered; reservoird learns networks from the CNI config directory and from the first ADD`,
      );
    }
    return parseIpamConfigCached(JSON.parse(stored.ipam));
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

  /** Make config-sourced reserved entries match the config, never dropping one that is in use. */
  /** Returns whether any entry was added or removed. */
  private reconcileReserved(name: string, config: IpamConfig, now: number): boolean {
    let changed = false;
    const problems: string[] = [];
    const existing = this.store.listReserved(name);
    // Namespaces are part of the key: a changed list replaces the entry (IPs in use stay with their pods).
    const key = (family: number, start: bigint, end: bigint, group: string | null | undefined, namespaces: readonly string[] | null | undefined) =>
      `${family}:${start}:${end}:${group ?? ''}:${namespaces?.join(',') ?? ''}`;
    const wanted = new Map(config.reserved.map((spec) => [key(spec.family, spec.start, spec.end, spec.group, spec.namespaces), spec]));
    const stale: ReservedRecord[] = [];
    for (const record of existing) {
      if (record.source !== 'config') continue;
      const k = key(record.family, record.start, record.end, record.group, record.namespaces);
      if (wanted.has(k)) wanted.delete(k);
      else stale.push(record);
    }
    // A stale entry in use may go only if a new entry of the same group that is applied covers
    // every IP in use (an entry shrunk away from free IPs); otherwise it stays. Keeping one can
    // stop a new entry that overlaps it, so repeat until nothing changes.
    const kept = new Set<number>();
    const inUse = new Map(stale.map((r) => [r.id, this.store.leasesBetween(name, r.family, r.start, r.end, Number.MAX_SAFE_INTEGER)]));
    const clashOf = (spec: ReservedSpec) =>
      existing.find((r) => (!stale.includes(r) || kept.has(r.id)) && r.family === spec.family && r.start <= spec.end && spec.start <= r.end);
    for (let changed = true; changed; ) {
      changed = false;
      const applied = [...wanted.values()].filter((spec) => !clashOf(spec));
      for (const record of stale) {
        if (kept.has(record.id)) continue;
        const covered = inUse
          .get(record.id)!
          .every((lease) => applied.some((s) => s.family === lease.family && (s.group ?? null) === record.group && s.start <= lease.ip && lease.ip <= s.end));
        if (!covered) {
          kept.add(record.id);
          changed = true;
        }
      }
    }
    for (const record of stale) {
      if (!kept.has(record.id)) {
        this.store.deleteReserved(record.id);
        changed = true;
        continue;
      }
      const holders = this.describeHolders(name, record.family, record.start, record.end);
      problems.push(`reserved entry "${record.entry}" left the config but stays reserved while in use by ${holders.join(', ')}`);
    }
    for (const spec of wanted.values()) {
      const clash = clashOf(spec);
      if (clash) {
        problems.push(`reserved entry "${spec.entry}" from the config overlaps "${clash.entry}" (${clash.source}); not applied`);
        continue;
      }
      this.store.insertReserved(
        { network: name, family: spec.family, start: spec.start, end: spec.end, group: spec.group ?? null, note: spec.note ?? null, source: 'config', entry: spec.entry, namespaces: spec.namespaces ?? null },
        now,
      );
      changed = true;
    }
    if (problems.length > 0) {
      const known = new Set(this.conflicts.get(name));
      this.conflicts.set(name, problems);
      for (const problem of problems) if (!known.has(problem)) this.log.warn('reserved config conflict', { network: name, problem });
    } else {
      this.conflicts.set(name, []);
    }
    return changed;
  }
}
