// A cluster batch's pure decisions (daemon/cluster/units.ts). afterBatch: the callers a batch
// answered are waited for, about one etcd round trip (2 to 10 ms), so that groups of callers
// share one transaction. movedSince: after a failed transaction, whether a key it compared moved
// (run again at once) or a range compare failed (wait for the watch to bring the new entry).
import { describe, expect, it } from 'vitest';
import type { KvCompare } from '../../../daemon/cluster/kv.js';
import { afterBatch, movedSince } from '../../../daemon/cluster/units.js';

describe('afterBatch', () => {
  it('waits for the callers just answered and those waiting, about one round trip', () => {
    // two groups of callers (3 answered, 2 arrived meanwhile) become one batch of 5
    expect(afterBatch(2, 3, 4.2)).toEqual({ kind: 'wait', callers: 5, ms: 4.2 });
    // a lone caller: its return makes the count, so it starts at once (run() sees pending >= callers)
    expect(afterBatch(0, 1, 3.5)).toEqual({ kind: 'wait', callers: 1, ms: 3.5 });
    // a slow etcd is no reason to hold callers long; on a fast one they get 2 ms to come back
    expect(afterBatch(1, 8, 250)).toEqual({ kind: 'wait', callers: 9, ms: 10 });
    expect(afterBatch(1, 8, 0.4)).toEqual({ kind: 'wait', callers: 9, ms: 2 });
  });

  it('waits for no one after a batch that sent no transaction, or answered nobody', () => {
    expect(afterBatch(3, 5, 0)).toEqual({ kind: 'start' });
    expect(afterBatch(0, 5, 0)).toEqual({ kind: 'idle' });
    expect(afterBatch(4, 0, 3)).toEqual({ kind: 'start' });
    expect(afterBatch(0, 0, 3)).toEqual({ kind: 'idle' });
  });

  it('starts at once when a whole batch is waiting already', () => {
    expect(afterBatch(64, 10, 3)).toEqual({ kind: 'start' });
    expect(afterBatch(200, 64, 3)).toEqual({ kind: 'start' });
    expect(afterBatch(60, 10, 3)).toEqual({ kind: 'wait', callers: 64, ms: 3 });
  });

  it('holds for every pending count, answered count and round trip', () => {
    for (let pending = 0; pending <= 70; pending++) {
      for (let answered = 0; answered <= 70; answered++) {
        for (const txnMs of [0, 0.3, 3, 10, 11, 400]) {
          const step = afterBatch(pending, answered, txnMs);
          const everyone = Math.min(pending + answered, 64);
          if (txnMs === 0 || answered === 0 || pending >= everyone) {
            expect(step).toEqual(pending > 0 ? { kind: 'start' } : { kind: 'idle' });
          } else {
            // never waits for more than a batch holds; about one round trip, 2 to 10 ms
            expect(step).toEqual({ kind: 'wait', callers: everyone, ms: Math.min(Math.max(txnMs, 2), 10) });
            expect(everyone).toBeGreaterThan(pending);
          }
        }
      }
    }
  });
});

describe('movedSince', () => {
  const mod = (key: string, value: number): KvCompare => ({ key, target: 'mod', result: 'equal', value });
  const absent = (key: string): KvCompare => ({ key, target: 'create', result: 'equal', value: 0 });
  const range = (key: string): KvCompare => ({ key, rangeEnd: `${key}~`, target: 'mod', result: 'less', value: 41 });
  const compares = [absent('/l/10'), mod('/n/net', 7), range('/r/')];

  it('says a key moved when one to be absent exists, or one seen changed or went away', () => {
    expect(movedSince({ compares }, [{ key: '/l/10', modRevision: 42 }, { key: '/n/net', modRevision: 7 }])).toBe(true);
    expect(movedSince({ compares }, [{ key: '/n/net', modRevision: 9 }])).toBe(true);
    expect(movedSince({ compares }, [])).toBe(true); // the network's key is gone
  });

  it('says nothing moved when every key is as the batch saw it: a range compare failed', () => {
    expect(movedSince({ compares }, [{ key: '/n/net', modRevision: 7 }])).toBe(false);
    // entries of a range compare's keys are not single keys
    expect(movedSince({ compares }, [{ key: '/n/net', modRevision: 7 }, { key: '/r/0a', modRevision: 50 }])).toBe(false);
    expect(movedSince({ compares: [range('/r/')] }, [])).toBe(false);
  });
});
