// Networks the daemon knows: registered from CNI requests and from the CNI config directory.
// A network's ipam config is kept as written and parsed with the plugin's own validator.
// Config-sourced reserved entries are reconciled on every change of the config.
import type { IpamConfig } from '../src/config.js';
import { parseIpamConfig } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type { Logger } from './log.js';
import type { Store } from './store.js';

export class Networks {
  /** Parsed configs by their JSON text: parsing is pure, so this cache can never go stale. */
  private readonly parsed = new Map<string, IpamConfig>();
  /** Config-file reserved entries that could not be applied, per network: shown by `reserved list`. */
  readonly conflicts = new Map<string, string[]>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly describeHolders: (network: string, family: 4 | 6, start: bigint, end: bigint) => string[],
  ) {}

  /** Record the network's config if it changed (call inside a transaction). */
  register(name: string, rawIpam: Record<string, unknown>, now: number): IpamConfig {
    const json = JSON.stringify(rawIpam);
    const config = this.parse(json);
    const stored = this.store.getNetwork(name);
    if (stored?.ipam !== json) {
      this.store.putNetwork(name, json, now);
      this.reconcileReserved(name, config, now);
      this.log.info('network registered', { network: name, change: stored ? 'updated' : 'new' });
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
    return this.parse(stored.ipam);
  }

  private parse(json: string): IpamConfig {
    let config = this.parsed.get(json);
    if (!config) {
      config = parseIpamConfig(JSON.parse(json));
      if (this.parsed.size > 256) this.parsed.clear();
      this.parsed.set(json, config);
    }
    return config;
  }

  names(): string[] {
    return this.store.listNetworks().map((n) => n.name);
  }

  /** Make config-sourced reserved entries match the config, never dropping one that is in use. */
  private reconcileReserved(name: string, config: IpamConfig, now: number): void {
    const problems: string[] = [];
    const existing = this.store.listReserved(name);
    const key = (family: number, start: bigint, end: bigint, group: string | null | undefined) => `${family}:${start}:${end}:${group ?? ''}`;
    const wanted = new Map(config.reserved.map((spec) => [key(spec.family, spec.start, spec.end, spec.group), spec]));
    for (const record of existing) {
      if (record.source !== 'config') continue;
      const k = key(record.family, record.start, record.end, record.group);
      if (wanted.has(k)) {
        wanted.delete(k);
        continue;
      }
      const holders = this.describeHolders(name, record.family, record.start, record.end);
      if (holders.length > 0) {
        problems.push(`reserved entry "${record.entry}" left the config but stays reserved while in use by ${holders.join(', ')}`);
        continue;
      }
      this.store.deleteReserved(record.id);
    }
    const current = this.store.listReserved(name);
    for (const spec of wanted.values()) {
      const clash = current.find((r) => r.family === spec.family && r.start <= spec.end && spec.start <= r.end);
      if (clash) {
        problems.push(`reserved entry "${spec.entry}" from the config overlaps "${clash.entry}" (${clash.source}); not applied`);
        continue;
      }
      this.store.insertReserved(
        { network: name, family: spec.family, start: spec.start, end: spec.end, group: spec.group ?? null, note: spec.note ?? null, source: 'config', entry: spec.entry },
        now,
      );
    }
    if (problems.length > 0) {
      this.conflicts.set(name, problems);
      for (const problem of problems) this.log.warn('reserved config conflict', { network: name, problem });
    } else {
      this.conflicts.delete(name);
    }
  }
}
