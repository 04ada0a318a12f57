// Group commit: writes that arrive together share one transaction and one fsync. Each unit runs
// in its own savepoint, so one failing request undoes only itself; if the commit fails (disk
// full, I/O error) every unit of the batch fails and nothing of it is written. A unit's answer is
// released only after the commit: nothing acknowledged can be lost.
import type { Store } from './store.js';

interface Pending {
  readonly fn: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class WriteQueue {
  private pending: Pending[] = [];
  private scheduled = false;
  /** A unit arrived since the last look (see collect). */
  private arrived = false;
  /** When the oldest pending unit arrived (performance.now()). */
  private since = 0;
  /** Batches committed and units run, for the health endpoint and benchmarks. */
  readonly stats = { batches: 0, units: 0 };

  constructor(
    private readonly store: Store,
    private readonly maxBatch = 256,
    /** How long a batch may keep collecting units that keep arriving, at most (ms). */
    private readonly maxWaitMs = 4,
    /** Told how long each committed batch took (seconds), for the metrics. */
    private readonly observeCommit: (seconds: number) => void = () => undefined,
  ) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
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
    if (this.pending.length > 0) this.schedule();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const started = performance.now();
    try {
      this.store.batch(
        items.map((item, i) => () => {
          try {
            outcomes[i] = { ok: true, value: this.store.transaction(item.fn) };
          } catch (error) {
            outcomes[i] = { ok: false, error };
          }
        }),
      );
    } catch (commitError) {
      for (const item of items) item.reject(commitError);
      return;
    }
    this.observeCommit((performance.now() - started) / 1000);
    this.stats.batches++;
    this.stats.units += items.length;
    items.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
