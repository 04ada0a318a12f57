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
  /** Batches committed and units run, for the health endpoint and benchmarks. */
  readonly stats = { batches: 0, units: 0 };

  constructor(
    private readonly store: Store,
    private readonly maxBatch = 256,
  ) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate lets every request already read from its socket join this batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const items = this.pending.splice(0, this.maxBatch);
    this.scheduled = false;
    if (this.pending.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
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
    this.stats.batches++;
    this.stats.units += items.length;
    items.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
