// Group commit: writes that arrive together share one transaction and one fsync. Each unit runs
// in its own savepoint, so one failing request undoes only itself; if the commit fails (disk
// full, I/O error) every unit of the batch fails and nothing of it is written. A unit's answer is
// released only after the commit: nothing acknowledged can be lost.
//
// Deadlines: a unit may carry the moment its caller gives up (an ADD: the plugin then reports
// code 11 and the runtime treats the attachment as failed). Such a unit must not stay committed
// unanswered, so three rules hold:
// - it does not start when its deadline is closer than a commit takes (answered 11, nothing run);
// - a batch stops taking units once a unit it already ran would be late: the rest wait for the
//   next batch, so a long unit after an ADD does not make the ADD late;
// - when the commit itself ends past a unit's deadline (a slow fsync, a long unit), the unit's
//   undo runs at once, in a transaction of its own, before any other unit can run or see its
//   writes, and the unit is answered 11. The plugin waits a margin past the deadline it sends
//   (src/client.ts), which covers the step from this check to the answer on the socket.
import { ReservoirError } from '../src/errors.js';
import type { Store } from './store.js';

/**
 * Runs a unit of store work in turn with everything else: the daemon's write queue, or, for a
 * unit about one cluster network (`network`), that network's etcd batches (daemon/units.ts).
 */
export type RunUnit = <T>(fn: () => T, network?: string) => Promise<T>;

export interface UnitOptions<T> {
  /** Epoch ms (Date.now) after which the caller no longer waits for the answer. */
  readonly deadline?: number | undefined;
  /** Undo the unit's writes, given its value: run when its commit ended past the deadline. */
  readonly undo?: ((value: T) => void) | undefined;
}

interface Pending {
  readonly fn: () => unknown;
  readonly deadline: number | undefined;
  readonly undo: ((value: unknown) => void) | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** How fast the estimates forget a slow commit or unit: per batch, per unit. */
const ESTIMATE_DECAY = 0.95;

export class WriteQueue {
  private pending: Pending[] = [];
  private scheduled = false;
  /** A unit arrived since the last look (see collect). */
  private arrived = false;
  /** When the oldest pending unit arrived (performance.now()). */
  private since = 0;
  /** Decaying maxima of recent commit and unit times (ms): how long the next one may take. */
  private commitEstimateMs = 0;
  private unitEstimateMs = 0;
  /**
   * Batches committed and units run, for the health endpoint and benchmarks; `late`: units with
   * a deadline answered 11 (refused at start, or undone after a commit that ended too late).
   */
  readonly stats = { batches: 0, units: 0, late: 0 };

  constructor(
    private readonly store: Store,
    private readonly maxBatch = 256,
    /** How long a batch may keep collecting units that keep arriving, at most (ms). */
    private readonly maxWaitMs = 4,
    /** Told how long each committed batch took (seconds), for the metrics. */
    private readonly observeCommit: (seconds: number) => void = () => undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  run<T>(fn: () => T, options: UnitOptions<T> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        fn,
        deadline: options.deadline,
        undo: options.undo as ((value: unknown) => void) | undefined,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.arrived = true;
      if (!this.scheduled) this.schedule();
    });
  }

  private schedule(): void {
    this.scheduled = true;
    this.since = performance.now();
    setImmediate(() => this.collect());
  }

  /**
   * Node accepts one connection per event-loop iteration on a unix socket, so concurrent
   * requests reach the queue one iteration apart: flushing at the first setImmediate made
   * batches of one unit and one fsync per request. Keep collecting while every iteration brings
   * a unit (an idle iteration costs microseconds), up to maxBatch units or maxWaitMs.
   */
  private collect(): void {
    if (this.arrived && this.pending.length < this.maxBatch && performance.now() - this.since < this.maxWaitMs) {
      this.arrived = false;
      setImmediate(() => this.collect());
      return;
    }
    this.flush();
  }

  private flush(): void {
    const items = this.pending.splice(0, this.maxBatch);
    this.scheduled = false;
    this.arrived = false;
    const outcomes: Array<Outcome | undefined> = [];
    /** The earliest deadline of the units run so far. */
    let earliest = Infinity;
    let deferFrom = items.length;
    let unitsEnd = 0;
    const started = performance.now();
    try {
      this.store.batch([
        ...items.map((item, i) => () => {
          if (i > deferFrom) return;
          const start = this.clock();
          if (start + this.unitEstimateMs + this.commitEstimateMs >= earliest) {
            deferFrom = i; // one more unit could make an earlier one late: it waits for the next batch
            return;
          }
          if (item.deadline !== undefined && start + this.commitEstimateMs >= item.deadline) {
            outcomes[i] = { ok: false, error: tooLate('before reservoird could start it') };
            return;
          }
          try {
            outcomes[i] = { ok: true, value: this.store.transaction(item.fn) };
            if (item.deadline !== undefined) earliest = Math.min(earliest, item.deadline);
          } catch (error) {
            outcomes[i] = { ok: false, error };
          }
          this.unitEstimateMs = Math.max(this.clock() - start, this.unitEstimateMs * ESTIMATE_DECAY);
        }),
        () => {
          unitsEnd = this.clock();
        },
      ]);
    } catch (commitError) {
      for (const item of items) item.reject(commitError);
      this.requeue([]);
      return;
    }
    this.observeCommit((performance.now() - started) / 1000);
    const committed = this.clock();
    this.commitEstimateMs = Math.max(committed - unitsEnd, this.commitEstimateMs * ESTIMATE_DECAY);
    this.stats.batches++;
    this.stats.units += deferFrom;
    this.undoLate(items, outcomes, committed);
    this.requeue(items.slice(deferFrom));
    items.slice(0, deferFrom).forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else {
        if (outcome.error instanceof LateError) this.stats.late++;
        item.reject(outcome.error);
      }
    });
  }

  /** Units committed past their deadline: undo them now, before any other unit runs. */
  private undoLate(items: readonly Pending[], outcomes: Array<Outcome | undefined>, committed: number): void {
    const late = items.flatMap((item, i) => {
      const outcome = outcomes[i];
      return outcome?.ok && item.undo && item.deadline !== undefined && committed >= item.deadline ? [{ item, i, value: outcome.value }] : [];
    });
    if (late.length === 0) return;
    const undone: number[] = [];
    try {
      this.store.batch(
        late.map(({ item, i, value }) => () => {
          try {
            this.store.transaction(() => item.undo!(value));
            undone.push(i);
          } catch {
            // this undo failed and rolled back alone: the unit stands as committed, and so does its answer
          }
        }),
      );
    } catch {
      return; // the undo did not commit (disk full): every unit stands as committed, and so do the answers
    }
    for (const i of undone) outcomes[i] = { ok: false, error: tooLate('before reservoird could answer; what it had done was undone') };
  }

  private requeue(deferred: readonly Pending[]): void {
    this.pending.unshift(...deferred);
    if (this.pending.length > 0 && !this.scheduled) this.schedule();
  }
}

class LateError extends ReservoirError {}

function tooLate(when: string): ReservoirError {
  return new LateError('TRY_AGAIN_LATER', `the client gave up ${when} (reservoird busy or paused); nothing was leased or changed`);
}
