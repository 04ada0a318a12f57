// Prometheus metrics through prom-client. Counters are kept here in plain maps from the start
// (an add to a map per request); prom-client itself (40-80 ms to load on this machine) is loaded
// when metrics are first wanted: at start-up with --http-listen, else at the first GET /metrics.
// It reads the counts and the ledger's gauges through collect() callbacks, so a scrape costs a
// walk over the networks, never a scan of the leases. Histograms observe from when it is loaded.
// Labels are bounded: network, pool, state, command, code, reason; never an IP or a pod.
import type { Ledger, RefusalReason } from './ledger.js';
import { RECLAIM_REASONS } from './ledger.js';
import type { UsageView } from '../src/protocol.js';

type PromClient = typeof import('prom-client');

const CNI_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const COMMIT_SECONDS_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Counts by a fixed set of label values. */
class Tally<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; value: number }>();
  add(labels: Record<L, string>): void {
    const key = Object.values(labels).join('\u0000');
    const found = this.counts.get(key);
    if (found) found.value++;
    else this.counts.set(key, { labels, value: 1 });
  }
  entries(): Iterable<{ labels: Record<L, string>; value: number }> {
    return this.counts.values();
  }
}

interface Exporter {
  readonly registry: import('prom-client').Registry;
  readonly cniSeconds: import('prom-client').Histogram<'command'>;
  readonly commitSeconds: import('prom-client').Histogram;
}

/** The gauge values of one network: IPs per pool and state, from the one usage computation. */
export function ipGauges(usage: UsageView): Array<{ pool: 'dynamic' | 'reserved'; state: 'free' | 'leased' | 'held'; value: number }> {
  const dynamicFree = BigInt(usage.dynamicSize) - BigInt(usage.dynamicInUse);
  return [
    { pool: 'dynamic', state: 'free', value: Number(dynamicFree) },
    { pool: 'dynamic', state: 'leased', value: usage.dynamicInUse - usage.dynamicHeld },
    { pool: 'dynamic', state: 'held', value: usage.dynamicHeld },
    { pool: 'reserved', state: 'free', value: Number(BigInt(usage.reservedFree)) },
    { pool: 'reserved', state: 'leased', value: usage.reservedUsed - usage.reservedHeld },
    { pool: 'reserved', state: 'held', value: usage.reservedHeld },
  ];
}

export class Metrics {
  private readonly cniRequests = new Tally<'command' | 'code'>();
  private readonly refusals = new Tally<'network' | 'reason'>();
  private readonly reclaimed = new Tally<'network' | 'reason'>();
  private exporter: Exporter | undefined;
  private loading: Promise<Exporter> | undefined;

  constructor(
    ledger: Ledger,
    /** Every network's counts (OperatorService.usage). */
    private readonly usage: () => readonly UsageView[],
  ) {
    ledger.watch({
      refused: (network: string, reason: RefusalReason) => this.refusals.add({ network, reason }),
      event: (record) => {
        if (record.event !== 'refusal' && (RECLAIM_REASONS as readonly string[]).includes(record.reason)) {
          this.reclaimed.add({ network: record.network, reason: record.reason });
        }
      },
    });
  }

  /** A CNI call answered; code 0 is success. */
  cniRequest(command: string, code: number, seconds: number): void {
    this.cniRequests.add({ command, code: String(code) });
    this.exporter?.cniSeconds.observe({ command }, seconds);
  }

  /** A group commit (one transaction, one fsync) took this long. */
  commit(seconds: number): void {
    this.exporter?.commitSeconds.observe(seconds);
  }

  /** Load prom-client and register the metrics (once). */
  load(): Promise<void> {
    this.loading ??= import('prom-client').then((module) => {
      const exporter = this.register((module as { default?: PromClient }).default ?? (module as unknown as PromClient));
      this.exporter = exporter;
      return exporter;
    });
    return this.loading.then(() => undefined);
  }

  /** The Prometheus text exposition. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    await this.load();
    const registry = this.exporter!.registry;
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  private register(client: PromClient): Exporter {
    const registry = new client.Registry();
    const registers = [registry];
    const usage = this.usage;
    const { cniRequests, refusals, reclaimed } = this;
    new client.Gauge({
      name: 'reservoir_ips',
      help: 'IP addresses per network, pool (dynamic or reserved) and state (free, leased: a container attached, held: a stateful app with no container)',
      labelNames: ['network', 'pool', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const network of usage()) {
          for (const gauge of ipGauges(network)) this.set({ network: network.network, pool: gauge.pool, state: gauge.state }, gauge.value);
        }
      },
    });
    const counter = (name: string, help: string, labelNames: readonly string[], tally: Tally<string>) =>
      new client.Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const { labels, value } of tally.entries()) this.inc(labels, value);
        },
      });
    counter('reservoir_cni_requests_total', 'CNI calls answered, by command and CNI error code (0: success)', ['command', 'code'], cniRequests);
    counter(
      'reservoir_reserved_refusals_total',
      'Refused claims of reserved IPs and refused changes of reserved entries, by reason (lost_race, in_use, forbidden, refused_change)',
      ['network', 'reason'],
      refusals,
    );
    counter(
      'reservoir_reclaimed_total',
      'Leases the daemon released without a DEL or an operator, by reason (netns_gone, hold_expired, gc, statefulset)',
      ['network', 'reason'],
      reclaimed,
    );
    const cniSeconds = new client.Histogram({
      name: 'reservoir_cni_request_duration_seconds',
      help: 'Time from a CNI call reaching the daemon to its answer, including the group commit',
      labelNames: ['command'] as const,
      buckets: CNI_SECONDS_BUCKETS,
      registers,
    });
    const commitSeconds = new client.Histogram({
      name: 'reservoir_store_commit_duration_seconds',
      help: 'Time of one group commit of the lease store (all units of a batch and the fsync)',
      buckets: COMMIT_SECONDS_BUCKETS,
      registers,
    });
    client.collectDefaultMetrics({ register: registry });
    // Gauges named *_total break the naming rules (promtool check metrics says so); the same
    // counts remain per type in nodejs_active_handles, nodejs_active_requests, nodejs_active_resources.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
    return { registry, cniSeconds, commitSeconds };
  }
}
