// The daemon's link to etcd: loads the mirror, follows etcd with a watch, reloads after a gap,
// and pays what the journal's outbox owes once etcd answers. Starting never waits for etcd: a
// daemon whose etcd is away serves node networks as usual, and DEL and CHECK of cluster networks
// from its journal (the mirror is seeded from it until the first load).
import type { ClusterHealthView } from '../../src/protocol.js';
import type { Logger } from '../log.js';
import type { SqliteStore } from '../sqlite-store.js';
import { KeyLayout, unitOf } from './keys.js';
import type { EtcdOptions, Kv, KvEvent, KvWatch } from './kv.js';
import { Journal } from './journal.js';
import { Mirror } from './mirror.js';
import { RoutingStore } from './routing-store.js';
import { ClusterUnits } from './units.js';

const RELOAD_BACKOFF_MS = [200, 500, 1_000, 2_000, 5_000];
const LOAD_TIMEOUT_MS = 5_000;
/** How long a unit that lost a race waits for the watch to bring what beat it. */
const CATCH_UP_MS = 300;
/** How long a network's changes wait to be recounted: a busy network brings a commit every few ms, and counts are for people. */
const RECOUNT_MS = 100;

/** What this link knows of its health (cluster-service.ts adds the node and the journal). */
export type ClusterHealth = Omit<ClusterHealthView, 'node' | 'journal'>;

export class Cluster {
  readonly layout: KeyLayout;
  readonly mirror: Mirror;
  readonly journal: Journal;
  readonly units: ClusterUnits;
  private watch: KvWatch | undefined;
  private connected = false;
  private lastError: string | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly waiters = new Set<{ revision: number; resolve: () => void }>();
  private paying = false;
  /** The first load from etcd while it runs: a unit that arrives meanwhile waits for it (within its caller's deadline). */
  private firstLoad: Promise<void> | undefined;
  /** Networks changed since their last count, recounted together after RECOUNT_MS. */
  private readonly recountDue = new Set<string>();
  /** Told after each (re)load: reconcile the journal with etcd. */
  onLoaded: () => void = () => undefined;
  /** Told of every batch of events the watch applied (node reports follow repair requests through it). */
  onWatched: (events: readonly KvEvent[]) => void = () => undefined;

  constructor(
    private readonly kv: Kv,
    readonly options: EtcdOptions,
    local: SqliteStore,
    readonly routingFor: (mirror: Mirror) => RoutingStore,
    private readonly log: Logger,
    readonly node: string,
    changed: (network: string) => void,
    nativeBinding: string | object | undefined,
    /** Real time, for deadlines. */
    private readonly clock: () => number = Date.now,
  ) {
    this.layout = new KeyLayout(options.prefix);
    this.mirror = new Mirror(this.layout, nativeBinding, (network) => this.changedSoon(network, changed));
    this.journal = new Journal(local.database);
    this.mirror.seed(this.journal.attachments().map((a) => a.lease));
    const routing = routingFor(this.mirror);
    this.units = new ClusterUnits(
      kv,
      this.mirror,
      routing,
      local,
      this.journal,
      this.layout,
      node,
      log,
      (revision) => this.caughtUp(revision),
      // the batch's own effects moved the counts already; the recount makes them exact again
      (network) => this.changedSoon(network, changed),
      () => this.lastError ?? 'not connected yet',
      () => this.firstLoad,
    );
  }

  private changedSoon(network: string, changed: (network: string) => void): void {
    if (this.recountDue.size === 0) {
      setTimeout(() => {
        const due = [...this.recountDue];
        this.recountDue.clear();
        if (!this.closed) for (const name of due) changed(name);
      }, RECOUNT_MS).unref();
    }
    this.recountDue.add(network);
  }

  /** Load in the background; resolves after the first attempt (loaded or not). */
  async start(): Promise<void> {
    this.firstLoad = this.load();
    await this.firstLoad;
    this.firstLoad = undefined;
  }

  health(): ClusterHealth {
    return {
      endpoints: this.options.endpoints,
      prefix: this.options.prefix,
      connected: this.connected,
      revision: this.mirror.watched,
      lastError: this.lastError,
      owed: this.journal.outbox().length,
      stats: this.units.stats,
    };
  }

  private async load(): Promise<void> {
    if (this.closed) return;
    try {
      const { entries, revision } = await this.kv.rangePrefix(this.layout.root, this.clock() + LOAD_TIMEOUT_MS);
      if (this.closed) return;
      const wasLoaded = this.mirror.loaded;
      this.mirror.reload(entries, revision);
      // the journal's attachments not in etcd stay visible until reconciling re-claims or reports them
      this.follow(revision);
      this.connected = true;
      this.failures = 0;
      this.lastError = null;
      this.log.info(wasLoaded ? 'cluster mirror reloaded from etcd' : 'cluster networks loaded from etcd', { keys: entries.length, revision, endpoints: this.options.endpoints.join(',') });
      this.onLoaded();
      void this.payOutbox();
    } catch (err) {
      this.connected = false;
      this.lastError = (err as Error).message;
      if (this.failures === 0) this.log.warn('etcd unreachable; cluster networks wait for it (node networks are not affected)', { error: this.lastError, endpoints: this.options.endpoints.join(',') });
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.closed || this.retry) return;
    const delay = RELOAD_BACKOFF_MS[Math.min(this.failures++, RELOAD_BACKOFF_MS.length - 1)]!;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.load();
    }, delay);
    this.retry.unref();
  }

  private follow(revision: number): void {
    this.watch?.close();
    this.watch = this.kv.watch(
      this.layout.root,
      revision,
      (events) => this.onEvents(events),
      (error) => {
        if (this.closed) return;
        this.connected = false;
        this.lastError = error.message;
        this.log.warn('etcd watch ended; reloading the cluster mirror', { error: error.message });
        this.watch = undefined;
        this.schedule();
      },
    );
  }

  private onEvents(events: readonly KvEvent[]): void {
    if (events.length === 0) return;
    this.mirror.apply(events);
    const revision = events[events.length - 1]!.modRevision;
    this.mirror.watchedTo(revision);
    this.onWatched(events);
    if (!this.connected) {
      this.connected = true;
      this.lastError = null;
    }
    for (const waiter of this.waiters) {
      if (waiter.revision <= revision) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Note: the watch reports progress through events only; a caller waits at most CATCH_UP_MS. False: it ran out. */
  private caughtUp(revision: number): Promise<boolean> {
    if (this.mirror.watched >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { revision, resolve: () => resolve(true) };
      this.waiters.add(waiter);
      setTimeout(() => {
        if (this.waiters.delete(waiter)) resolve(false);
      }, CATCH_UP_MS).unref();
    });
  }

  /** Put back what transactions of unknown outcome may have written, unless changed since. */
  async payOutbox(): Promise<number> {
    if (this.paying) return 0;
    this.paying = true;
    let paid = 0;
    try {
      for (const owed of this.journal.outbox()) {
        const { entries } = await this.kv.getMany([owed.key], this.clock() + LOAD_TIMEOUT_MS);
        const current = entries[0];
        if (current && unitOf(current.value) === owed.unit) {
          const write = owed.revertTo === null ? { delete: owed.key } : { put: owed.key, value: owed.revertTo };
          const result = await this.kv.txn([{ key: owed.key, target: 'mod', result: 'equal', value: current.modRevision }], [write], [], this.clock() + LOAD_TIMEOUT_MS);
          if (!result.succeeded) continue; // changed meanwhile: look again next time
          this.log.info('undid a write of an unconfirmed transaction', { key: owed.key, unit: owed.unit });
        }
        this.journal.transaction(() => this.journal.paid(owed.key, owed.unit));
        paid++;
      }
    } catch (err) {
      this.log.warn('could not settle what etcd is owed yet; trying again later', { error: String((err as Error).message ?? err) });
    } finally {
      this.paying = false;
    }
    return paid;
  }

  /**
   * Put one small key outside the units' batches (a node report, a repair request): a
   * compare-and-swap on the revision this copy knows, once more on the current one if that
   * moved. Throws what the Kv port throws; the caller skips and tries later.
   */
  async put(key: string, value: string): Promise<void> {
    let known = this.mirror.entry(key)?.modRevision ?? 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await this.kv.txn([{ key, target: 'mod', result: 'equal', value: known }], [{ put: key, value }], [key], this.clock() + LOAD_TIMEOUT_MS);
      if (result.succeeded) return;
      known = result.current.find((e) => e.key === key)?.modRevision ?? 0;
    }
    throw new Error(`${key} changed twice while this node wrote it; trying again later`);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.watch?.close();
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
    await this.kv.close();
  }
}
