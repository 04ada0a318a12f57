// Units of work on cluster networks: optimistic, batched, one etcd transaction per batch.
//
// Units of one network that arrive together run one after the other against the mirror (each in
// a savepoint, so a failing one undoes only itself), inside one mirror transaction that is then
// rolled back: what they changed becomes the keys of ONE etcd transaction, conditioned on the
// revisions the batch saw (a key it creates must still be absent). If etcd has moved on, the
// transaction fails, the mirror takes etcd's current values (read in the same transaction), and
// the batch runs again; nothing of a failed run was seen by anyone (effects, logs and history are
// captured and happen only after the commit). One round trip per batch in steady state, however
// full the network: the allocator's probes are local.
//
// Outcome unknown: a transaction cut off after it was sent (deadline, lost connection) may have
// committed. Every value carries the batch's unit id, so a read tells: ours, done; not ours, run
// again. When etcd cannot even be read, the callers get code 11, and what the batch wrote is owed
// back to etcd (the journal's outbox: put back unless someone changed it since).
import { randomBytes } from 'node:crypto';
import { ReservoirError } from '../../src/errors.js';
import type { Logger } from '../log.js';
import type { SqliteStore } from '../sqlite-store.js';
import { type KeyLayout, decodeApp, encodeApp, encodeLease, encodeNetwork, encodeReserved, unitOf } from './keys.js';
import { type Kv, type KvCompare, type KvEntry, KvOutcomeUnknown, type KvWrite, prefixEnd } from './kv.js';
import { type Journal, attachedTo } from './journal.js';
import type { Mirror } from './mirror.js';
import { Capture, type RoutingStore } from './routing-store.js';

export interface ClusterUnitOptions<T> {
  /** Epoch ms after which the caller no longer waits (the plugin's deadline). */
  readonly deadline?: number | undefined;
  /** The answer from this node's journal when etcd cannot be reached (DEL, CHECK); without it: code 11. */
  readonly offline?: (() => T) | undefined;
}

interface Pending {
  readonly fn: () => unknown;
  readonly deadline: number | undefined;
  readonly offline: (() => unknown) | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Plan {
  readonly unit: string;
  readonly capture: Capture;
  readonly outcomes: Outcome[];
  /** Keys first dirtied by each unit (for the undo owed when the outcome stays unknown). */
  readonly keysOf: string[][];
  readonly writes: KvWrite[];
  readonly compares: KvCompare[];
  /** Single keys compared: read when the transaction fails, to refresh the mirror. */
  readonly reads: string[];
  /** Pre-batch values of the written keys (null: absent). */
  readonly before: Map<string, string | null>;
}

/** etcd refuses transactions of more than 128 operations (--max-txn-ops); a batch stays well below. */
const MAX_KEYS_PER_BATCH = 96;
const MAX_UNITS_PER_BATCH = 64;
/** Transactions of units without a caller's deadline (operator calls, sweeps) give up after this. */
const DEFAULT_TXN_MS = 4_000;
/** What the daemon keeps of the caller's deadline for the journal write and the answer. */
const ANSWER_MARGIN_MS = 250;
const MAX_ATTEMPTS = 12;
/** A unit whose caller gives up sooner than this is not started (answered 11). */
const MIN_TXN_MS = 30;
/** How long a batch may wait for the callers the last one answered (afterBatch): about one round trip, within these bounds. */
const REJOIN_MIN_MS = 2;
const REJOIN_MAX_MS = 10;

export const FAULT_ENV = 'RESERVOIR_FAULT';

/** Thrown to roll a rehearsal back: not an Error, whose stack every batch would pay for. */
const ROLLBACK = Object.freeze({ rollback: true });

interface Queue {
  pending: Pending[];
  busy: boolean;
  /** How long the network's last etcd transaction took (ms). */
  lastTxnMs: number;
  /** Waiting for this many callers to come back before the next batch starts. */
  rejoin: { readonly callers: number; readonly timer: NodeJS.Timeout } | undefined;
}

export class ClusterUnits {
  private readonly queues = new Map<string, Queue>();
  private sequence = 0;
  /** Keys written by transactions sent and not yet settled: the watch may show them before the answer does. */
  private readonly sending = new Map<string, number>();
  private readonly session = randomBytes(4).toString('hex');
  /** The revision of this node's last committed batch: its journal holds every change of its own up to there, whatever the watch has brought yet. */
  committedTo = 0;
  /** For health and the benchmark: batches, units, etcd transactions and their outcomes. */
  readonly stats = { batches: 0, units: 0, txns: 0, conflicts: 0, unknown: 0, unavailable: 0, watchLagged: 0 };

  constructor(
    private readonly kv: Kv,
    private readonly mirror: Mirror,
    private readonly routing: RoutingStore,
    private readonly local: SqliteStore,
    private readonly journal: Journal,
    private readonly layout: KeyLayout,
    private readonly node: string,
    private readonly log: Logger,
    /** Resolves once the mirror has seen etcd up to `revision` (true), or after a while (false). */
    private readonly caughtUp: (revision: number) => Promise<boolean>,
    /** After each committed batch of a network (the ledger recounts it). */
    private readonly committed: (network: string) => void,
    /** Why etcd is unreachable, for messages. */
    private readonly describe: () => string,
    /** The daemon's first load from etcd, while it runs (undefined once it has ended, loaded or not). */
    private readonly firstLoad: () => Promise<void> | undefined,
    /** Real time (deadlines are epoch ms of the caller's clock), whatever clock the records use. */
    private readonly clock: () => number = Date.now,
  ) {}

  run<T>(network: string, fn: () => T, options: ClusterUnitOptions<T> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(network);
      if (!queue) {
        queue = { pending: [], busy: false, lastTxnMs: 0, rejoin: undefined };
        this.queues.set(network, queue);
      }
      queue.pending.push({ fn, deadline: options.deadline, offline: options.offline, resolve: resolve as (v: unknown) => void, reject });
      if (!queue.busy) this.kick(queue, network);
      else if (queue.rejoin && queue.pending.length >= queue.rejoin.callers) this.kick(queue, network);
    });
  }

  private kick(queue: Queue, network: string): void {
    if (queue.rejoin) clearTimeout(queue.rejoin.timer);
    queue.rejoin = undefined;
    queue.busy = true;
    // One event-loop turn lets concurrent requests join the batch.
    setImmediate(() => {
      const items = queue.pending.splice(0, MAX_UNITS_PER_BATCH);
      queue.lastTxnMs = 0;
      this.execute(network, items, queue)
        .catch((err: unknown) => {
          for (const item of items) item.reject(err);
        })
        .finally(() => this.next(queue, network, items.length));
    });
  }

  private next(queue: Queue, network: string, answered: number): void {
    const step = afterBatch(queue.pending.length, answered, queue.lastTxnMs);
    if (step.kind === 'start') return this.kick(queue, network);
    if (step.kind === 'idle') return this.idle(queue, network);
    const timer = setTimeout(() => (queue.pending.length > 0 ? this.kick(queue, network) : this.idle(queue, network)), step.ms);
    queue.rejoin = { callers: step.callers, timer };
  }

  private idle(queue: Queue, network: string): void {
    queue.rejoin = undefined;
    queue.busy = false;
    if (this.queues.get(network) === queue) this.queues.delete(network);
  }

  private async execute(network: string, all: Pending[], queue: Queue): Promise<void> {
    let items = all;
    let verified = false;
    for (let attempt = 1; ; attempt++) {
      if (!this.mirror.loaded) {
        // Just started: the copy of etcd is being loaded. Waiting for it (within the callers'
        // deadline) spares a restart's first ADDs a needless 11; once a load has failed, etcd
        // is away and they get 11 at once.
        const loading = this.firstLoad();
        const started = this.clock();
        const wait = etcdDeadline(items, started) - MIN_TXN_MS - started;
        if (loading && wait > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([loading, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait)))]);
          clearTimeout(timer);
          if (this.mirror.loaded) continue;
        }
        return this.settleUnavailable(items);
      }
      const now = this.clock();
      items = items.filter((item) => {
        if (item.deadline === undefined || item.deadline - ANSWER_MARGIN_MS - now >= MIN_TXN_MS) return true;
        item.reject(new ReservoirError('TRY_AGAIN_LATER', 'the client gave up before reservoird could start its request (reservoird busy or etcd slow); nothing was leased or changed'));
        return false;
      });
      if (items.length === 0) return;
      const plan = this.plan(network, items);
      if (plan.outcomes.length < items.length) {
        // the batch grew past what one transaction may hold: the rest goes in the next one
        const rest = items.slice(plan.outcomes.length);
        items = items.slice(0, plan.outcomes.length);
        this.requeue(queue, rest);
      }
      if (!verified && plan.outcomes.some(refusedByState)) {
        // A refusal decided on this copy (in use, exhausted) may be a few milliseconds stale:
        // read what it rests on afresh (the IPs it names; else catch up with etcd's revision)
        // and decide again, once. One read, only for refusals.
        verified = true;
        try {
          const keys = [...plan.capture.consulted];
          const read = await this.kv.getMany(keys, this.readDeadline(items));
          if (keys.length > 0) this.refresh(keys, read.entries, read.revision);
          else await this.waitForWatch(read.revision);
          continue;
        } catch {
          // etcd unreachable: the copy's answer stands (a refusal records nothing)
        }
      }
      this.stats.batches++;
      if (plan.writes.length === 0) return this.settle(network, items, plan, undefined);
      const deadline = etcdDeadline(items, now);
      let revision: number;
      const keys = plan.writes.map((w) => ('put' in w ? w.put : w.delete));
      for (const key of keys) this.sending.set(key, (this.sending.get(key) ?? 0) + 1);
      try {
        this.stats.txns++;
        const sent = performance.now();
        const result = await this.kv.txn(plan.compares, plan.writes, plan.reads, deadline);
        queue.lastTxnMs = performance.now() - sent;
        if (!result.succeeded) {
          this.stats.conflicts++;
          if (lostLeaseRace(plan, result.current, this.layout)) this.routing.scatterCursors(network);
          const moved = movedSince(plan, result.current);
          const named = this.leasesNamedByApps(plan.reads, result.current);
          this.refresh(plan.reads, result.current, result.revision);
          if (attempt >= MAX_ATTEMPTS) return this.settleContended(items);
          // A stateful app's key says which IPs are the app's, and the copy decides from their
          // leases: those must be etcd's too before running again, or a node that had not yet
          // seen the app attached elsewhere would give it another IP.
          if (named.length > 0 && !(await this.rereadKeys(named, items))) {
            await this.waitForWatch(result.revision);
            continue;
          }
          // A key it compared moved: the copy has etcd's value now, so run again at once. Else
          // a range compare failed (a reserved entry appeared or changed): the network's reserved
          // entries are read afresh when that is the only range compared, else the watch must
          // bring it (on an etcd others write to, it never reports etcd's latest revision: the
          // wait runs out).
          if (!moved && !(await this.rereadReserved(network, plan, items))) await this.waitForWatch(result.revision);
          continue;
        }
        revision = result.revision;
      } catch (err) {
        if (!(err instanceof KvOutcomeUnknown)) return this.settleUnavailable(items, err);
        this.stats.unknown++;
        const found = await this.readBack(plan);
        if (found === undefined) return this.settleUnknown(items, plan, err);
        if (found.ours) {
          revision = found.revision;
        } else {
          if (attempt >= MAX_ATTEMPTS) return this.settleContended(items);
          continue;
        }
      } finally {
        // the journal follows in commit() below, in the same turn: from then on it knows these keys
        setImmediate(() => {
          for (const key of keys) {
            const n = (this.sending.get(key) ?? 1) - 1;
            if (n > 0) this.sending.set(key, n);
            else this.sending.delete(key);
          }
        });
      }
      this.commit(plan, revision);
      return this.settle(network, items, plan, revision);
    }
  }

  /** Whether a transaction writing this key was sent and is not settled yet (its outcome may be known to the watch first). */
  inFlight(key: string): boolean {
    return this.sending.has(key);
  }

  private requeue(queue: Queue, items: Pending[]): void {
    queue.pending.unshift(...items);
  }

  /** Run the units on the mirror, capture what they change, roll the mirror back (synchronous). */
  private plan(network: string, items: readonly Pending[]): Plan {
    const unit = `${this.node}/${this.session}/${++this.sequence}`;
    let count = items.length;
    for (;;) {
      const capture = new Capture(network);
      const outcomes: Outcome[] = [];
      const keysOf: string[][] = [];
      const finals = new Map<string, string | undefined>();
      let overflow = false;
      this.routing.capture = capture;
      try {
        this.mirror.store.transaction(() => {
          for (let i = 0; i < count; i++) {
            const before = capture.dirty.size;
            try {
              outcomes.push({ ok: true, value: this.routing.transaction(items[i]!.fn) });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
            keysOf.push([...capture.dirty].slice(before));
            if (capture.dirty.size > MAX_KEYS_PER_BATCH && i > 0) {
              overflow = true;
              count = i;
              break;
            }
          }
          if (!overflow) for (const key of capture.dirty) finals.set(key, this.finalValue(key, unit));
          throw ROLLBACK;
        });
      } catch (err) {
        if (err !== ROLLBACK) throw err;
      } finally {
        this.routing.capture = undefined;
      }
      if (overflow) continue;
      return { unit, capture, outcomes, keysOf, ...this.transactionOf(network, finals) };
    }
  }

  /** A dirty key's value after the batch, read in the batch's mirror transaction (undefined: absent). */
  private finalValue(key: string, unit: string): string | undefined {
    const parsed = this.layout.parse(key);
    const store = this.mirror.store;
    if (!parsed) return undefined;
    switch (parsed.kind) {
      case 'lease': {
        const lease = store.leaseAt(parsed.network, parsed.family, parsed.ip);
        return lease && encodeLease(lease, unit);
      }
      case 'app': {
        const ips = store.leasesOfApp(parsed.network, parsed.app);
        return ips.length ? encodeApp(ips, unit) : undefined;
      }
      case 'reserved': {
        const record = this.mirror.reservedAt(parsed.network, parsed.family, parsed.start);
        return record && encodeReserved(record, unit);
      }
      case 'network': {
        const record = store.getNetwork(parsed.network);
        return record && encodeNetwork(record, this.node, unit);
      }
      case 'node':
        return undefined;
    }
  }

  /** The writes of a batch, and the compares that make it all-or-nothing against what it saw. */
  private transactionOf(network: string, finals: ReadonlyMap<string, string | undefined>): Pick<Plan, 'writes' | 'compares' | 'reads' | 'before'> {
    const writes: KvWrite[] = [];
    const compares: KvCompare[] = [];
    const reads: string[] = [];
    const before = new Map<string, string | null>();
    let claims = false;
    const reservedChanged: string[] = [];
    for (const [key, value] of finals) {
      const seen = this.mirror.entry(key);
      if (sameContent(seen?.value, value)) continue;
      before.set(key, seen?.value ?? null);
      if (value === undefined) writes.push({ delete: key });
      else writes.push({ put: key, value });
      compares.push(seen ? { key, target: 'mod', result: 'equal', value: seen.modRevision } : { key, target: 'create', result: 'equal', value: 0 });
      reads.push(key);
      const parsed = this.layout.parse(key);
      if (parsed?.kind === 'lease' && value !== undefined) claims = true;
      if (parsed?.kind === 'reserved') reservedChanged.push(key);
    }
    if (writes.length === 0) return { writes, compares, reads, before };
    const networkKey = this.layout.network(network);
    const config = this.mirror.entry(networkKey);
    if (config && !finals.has(networkKey)) {
      // the config the batch decided with is still the network's
      compares.push({ key: networkKey, target: 'mod', result: 'equal', value: config.modRevision });
      reads.push(networkKey);
    }
    if (claims) {
      // no reserved entry appeared or changed since the batch looked (a dynamic claim must not land in a new one)
      // Only what the copy has seen whole bounds it (the watch's revision, or a complete read of
      // the prefix): an entry it knows at a later revision (its own commit, a refresh) may have
      // neighbours it has not seen yet; then the compare fails and the batch reads them afresh.
      const prefix = this.layout.reservedOf(network);
      compares.push({ key: prefix, rangeEnd: prefixEnd(prefix), target: 'mod', result: 'less', value: this.mirror.seenWhole(prefix) + 1 });
    }
    for (const key of reservedChanged) {
      // an entry changed or removed: no lease appeared in its addresses since the batch looked
      const parsed = this.layout.parse(key);
      if (parsed?.kind !== 'reserved') continue;
      for (const text of [before.get(key), finals.get(key)]) {
        if (!text) continue;
        const end = BigInt(`0x${(JSON.parse(text) as { end: string }).end}`);
        const range = this.layout.leaseRange(network, parsed.family, parsed.start, end);
        compares.push({ key: range.key, rangeEnd: range.rangeEnd, target: 'mod', result: 'less', value: this.mirror.watched + 1 });
      }
    }
    return { writes, compares, reads, before };
  }

  /**
   * The lease keys that the app keys among `keys` name, before (this copy) and after (etcd's
   * `current`) a failed transaction, less `keys` themselves (refreshed already).
   */
  private leasesNamedByApps(keys: readonly string[], current: readonly KvEntry[]): string[] {
    const now = new Map(current.map((e) => [e.key, e.value]));
    const named = new Set<string>();
    for (const key of keys) {
      const parsed = this.layout.parse(key);
      if (parsed?.kind !== 'app') continue;
      for (const text of [this.mirror.entry(key)?.value, now.get(key)]) {
        if (text !== undefined) for (const { family, ip } of decodeApp(text)) named.add(this.layout.lease(parsed.network, family, ip));
      }
    }
    for (const key of keys) named.delete(key);
    return [...named];
  }

  /** A read's deadline: a second at most, and within every caller's own. */
  private readDeadline(items: readonly Pending[]): number {
    return Math.min(this.clock() + 1_000, ...items.map((i) => i.deadline ?? Infinity));
  }

  /** Read these keys afresh into the copy (one read); false when etcd cannot be read. */
  private async rereadKeys(keys: readonly string[], items: readonly Pending[]): Promise<boolean> {
    try {
      const read = await this.kv.getMany(keys, this.readDeadline(items));
      this.refresh(keys, read.entries, read.revision);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * After a failed range compare: when the only range the batch compared is the network's
   * reserved entries, read them whole (one read) into the copy, and tell whether it did.
   */
  private async rereadReserved(network: string, plan: Plan, items: readonly Pending[]): Promise<boolean> {
    const prefix = this.layout.reservedOf(network);
    if (!plan.compares.every((c) => c.rangeEnd === undefined || c.key === prefix)) return false;
    try {
      const read = await this.kv.rangePrefix(prefix, this.readDeadline(items));
      this.mirror.refreshPrefix(prefix, read.entries, read.revision);
      return true;
    } catch {
      return false; // etcd unreachable: the next attempt finds out
    }
  }

  /** Until the copy has etcd up to `revision`, at most a while; counts the waits that ran out (a lagging watch, or an etcd shared with other writers). */
  private async waitForWatch(revision: number): Promise<void> {
    if (!(await this.caughtUp(revision))) this.stats.watchLagged++;
  }

  /** etcd's current values of the keys a failed transaction compared. */
  private refresh(keys: readonly string[], current: ReadonlyArray<{ key: string; value: string; modRevision: number; createRevision: number }>, revision: number): void {
    const found = new Map(current.map((e) => [e.key, e]));
    this.mirror.apply(
      keys.map((key) => {
        const entry = found.get(key);
        return entry ? { type: 'put' as const, ...entry } : { type: 'delete' as const, key, value: '', modRevision: revision, createRevision: 0 };
      }),
    );
  }

  /** After an unknown outcome: did our writes land? undefined when etcd cannot be read either. */
  private async readBack(plan: Plan): Promise<{ ours: boolean; revision: number } | undefined> {
    const keys = plan.writes.map((w) => ('put' in w ? w.put : w.delete));
    let read;
    try {
      read = await this.kv.getMany(keys, this.clock() + 1_000);
    } catch {
      return undefined;
    }
    const found = new Map(read.entries.map((e) => [e.key, e]));
    const puts = plan.writes.filter((w): w is { put: string; value: string } => 'put' in w);
    let ours: boolean;
    let revision = read.revision;
    if (puts.length > 0) {
      ours = puts.every((p) => unitOf(found.get(p.put)?.value ?? '') === plan.unit);
      if (ours) revision = Math.max(...puts.map((p) => found.get(p.put)!.modRevision));
    } else {
      // deletes only: done when none of them still holds what the batch saw
      ours = keys.every((key) => {
        const now = found.get(key);
        return now === undefined || now.value !== plan.before.get(key);
      });
    }
    if (!ours) {
      // as after a failed transaction: an app key's IPs are read too before the batch runs again
      const named = this.leasesNamedByApps(keys, read.entries);
      this.refresh(keys, read.entries, read.revision);
      if (named.length > 0 && !(await this.rereadKeys(named, []))) await this.waitForWatch(read.revision);
    }
    return { ours, revision };
  }

  /** A committed batch: the mirror takes its writes, the journal and history follow (one SQLite commit). */
  private commit(plan: Plan, revision: number): void {
    this.committedTo = Math.max(this.committedTo, revision);
    this.mirror.apply(
      plan.writes.map((w) =>
        'put' in w
          ? { type: 'put' as const, key: w.put, value: w.value, modRevision: revision, createRevision: this.mirror.entry(w.put)?.createRevision ?? revision }
          : { type: 'delete' as const, key: w.delete, value: '', modRevision: revision, createRevision: 0 },
      ),
      false, // settle() recounts the network once, after the batch's effects
    );
    if (process.env[FAULT_ENV] === 'after-etcd-commit') process.kill(process.pid, 'SIGKILL');
    const follows = plan.writes.flatMap((w) => {
      const parsed = this.layout.parse('put' in w ? w.put : w.delete);
      return parsed?.kind === 'lease' ? [{ ...parsed, lease: this.mirror.store.leaseAt(parsed.network, parsed.family, parsed.ip) }] : [];
    });
    // A batch that only adds attachments need not wait for this disk: etcd's quorum holds the
    // claims, and a power cut that loses the lines ends their containers too (orphans then,
    // released after the grace). A line removed stays synced: lost, it would be claimed again.
    const record = () => {
      for (const f of follows) this.journal.follow(f.network, f.family, f.ip, f.lease, this.node);
      this.routing.writeHistory(plan.capture.history);
      for (const write of plan.capture.regardless) {
        try {
          this.local.transaction(write);
        } catch {
          // a refusal's record that cannot be written must not fail the commit
        }
      }
    };
    if (follows.every((f) => attachedTo(f.lease, this.node))) this.local.transactionUnsynced(record);
    else this.local.transaction(record);
    this.routing.keepCursors(plan.capture.cursors);
  }

  private settle(network: string, items: readonly Pending[], plan: Plan, revision: number | undefined): void {
    if (revision === undefined) this.writeRegardless(plan);
    else this.stats.units += items.length;
    for (const effect of plan.capture.effects) {
      try {
        effect();
      } catch (err) {
        this.log.warn('an after-commit effect failed', { error: String((err as Error)?.stack ?? err) });
      }
    }
    if (revision !== undefined) this.committed(network);
    items.forEach((item, i) => {
      const outcome = plan.outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }

  /** A read-only batch or one that wrote nothing: refusals' records still go to the history. */
  private writeRegardless(plan: Plan): void {
    if (plan.capture.regardless.length === 0) return;
    this.local.transaction(() => {
      for (const write of plan.capture.regardless) {
        try {
          this.local.transaction(write);
        } catch {
          // as in commit
        }
      }
    });
  }

  private settleUnavailable(items: readonly Pending[], cause?: unknown): void {
    this.stats.unavailable++;
    const why = cause instanceof Error ? cause.message : this.describe();
    for (const item of items) this.answerOffline(item, why);
  }

  private answerOffline(item: Pending, why: string): void {
    if (item.offline) {
      try {
        item.resolve(item.offline());
      } catch (err) {
        item.reject(err);
      }
      return;
    }
    item.reject(new ReservoirError('TRY_AGAIN_LATER', `etcd cannot be reached (${why}); this cluster network's IPs cannot be claimed or changed until it is back; nothing was leased or changed`));
  }

  /** Sent, and etcd could not say whether it committed: owe the undo of every unit's writes but those answered from the journal. */
  private settleUnknown(items: readonly Pending[], plan: Plan, cause: unknown): void {
    const owed = new Set<string>();
    items.forEach((item, i) => {
      if (!item.offline) for (const key of plan.keysOf[i] ?? []) owed.add(key);
    });
    const now = this.clock();
    try {
      this.local.transaction(() => {
        for (const key of owed) {
          if (!plan.before.has(key)) continue;
          this.journal.owe({ key, unit: plan.unit, network: this.networkOf(key) ?? '', revertTo: plan.before.get(key) ?? null, createdAt: now });
        }
      });
    } catch (err) {
      this.log.error('could not record an undo owed to etcd', { error: String(err) });
    }
    this.log.warn('etcd did not confirm a transaction; what it may have recorded is undone when etcd is back', { unit: plan.unit, keys: owed.size, error: String((cause as Error)?.message ?? cause) });
    const why = `no answer in time: ${(cause as Error)?.message ?? String(cause)}`;
    for (const item of items) {
      if (item.offline) this.answerOffline(item, why);
      else
        item.reject(
          new ReservoirError('TRY_AGAIN_LATER', `etcd did not confirm in time (${why}); whatever it may have recorded of this request is undone once etcd answers again; try again`),
        );
    }
  }

  private networkOf(key: string): string | undefined {
    const parsed = this.layout.parse(key);
    return parsed && 'network' in parsed ? parsed.network : undefined;
  }

  private settleContended(items: readonly Pending[]): void {
    for (const item of items) {
      item.reject(new ReservoirError('TRY_AGAIN_LATER', `the cluster network changed under this request ${MAX_ATTEMPTS} times in a row (other nodes claiming the same IPs); nothing was leased or changed; try again`));
    }
  }
}

/** When a batch's etcd call must be done: its callers' deadlines less what the answer needs, or DEFAULT_TXN_MS. */
function etcdDeadline(items: readonly Pending[], now: number): number {
  return Math.min(now + DEFAULT_TXN_MS, ...items.map((i) => (i.deadline === undefined ? Infinity : i.deadline - ANSWER_MARGIN_MS)));
}

export type NextBatch = { readonly kind: 'start' } | { readonly kind: 'idle' } | { readonly kind: 'wait'; readonly callers: number; readonly ms: number };

/**
 * What follows a batch that answered `answered` callers while `pending` arrived, its etcd
 * transaction having taken `txnMs` (0: it sent none). The callers just answered usually come
 * straight back (a runtime's next pod, a client's next request). Starting at once with those
 * that arrived meanwhile would send one transaction per group of callers for ever; after a
 * transaction, the next batch waits for all of them, at most about one round trip (2 to 10
 * ms), which merges the groups. A lone caller coming back starts at once; a batch that went nowhere
 * near etcd waits for no one.
 */
export function afterBatch(pending: number, answered: number, txnMs: number): NextBatch {
  if (txnMs <= 0 || answered <= 0) return pending > 0 ? { kind: 'start' } : { kind: 'idle' };
  const callers = Math.min(pending + answered, MAX_UNITS_PER_BATCH);
  if (pending >= callers) return { kind: 'start' };
  return { kind: 'wait', callers, ms: Math.min(Math.max(txnMs, REJOIN_MIN_MS), REJOIN_MAX_MS) };
}

/**
 * Whether one of the keys a failed transaction compared one by one is not as the batch saw it
 * (its current entries, read in the same transaction). If none moved, a range compare failed.
 */
export function movedSince(plan: Pick<Plan, 'compares'>, current: ReadonlyArray<{ key: string; modRevision: number }>): boolean {
  const found = new Map(current.map((e) => [e.key, e.modRevision]));
  return plan.compares.some((c) => {
    if (c.rangeEnd !== undefined) return false;
    if (c.target === 'create') return found.has(c.key); // it was to be absent
    return (found.get(c.key) ?? 0) !== c.value;
  });
}

/** Whether a failed transaction found one of the IPs it would claim taken meanwhile (another node allocates there). */
function lostLeaseRace(plan: Plan, current: ReadonlyArray<{ key: string }>, layout: KeyLayout): boolean {
  const claimed = new Set(plan.writes.flatMap((w) => ('put' in w && plan.before.get(w.put) === null && layout.parse(w.put)?.kind === 'lease' ? [w.put] : [])));
  return current.some((entry) => claimed.has(entry.key));
}

/** A refusal that the state decided (reservoir's own codes: in use, exhausted, ...), not the request's form. */
function refusedByState(outcome: Outcome): boolean {
  return !outcome.ok && outcome.error instanceof ReservoirError && outcome.error.code >= 100;
}

/** Whether two values of a key say the same, leaving out who wrote them. */
function sameContent(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const strip = (text: string) => {
    const value = JSON.parse(text) as Record<string, unknown>;
    delete value.unit;
    if ('ipam' in value) {
      // a network's config: who wrote it and when are not a change
      delete value.node;
      delete value.updatedAt;
    }
    return JSON.stringify(value);
  };
  try {
    return strip(a) === strip(b);
  } catch {
    return false;
  }
}
