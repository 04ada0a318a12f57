// The write queue's deadlines on a real SQLite store: a unit whose caller will have given up is
// not started, a unit committed past its deadline is undone before anything else runs, and a
// batch stops taking units once one more could make an earlier unit late.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../daemon/sqlite-store.js';
import type { LeaseRecord } from '../../daemon/store.js';
import { WriteQueue } from '../../daemon/write-queue.js';
import { removeDir, tempDir } from '../support/tmp.js';

let dir: string;
let store: SqliteStore;
let queue: WriteQueue;

beforeEach(() => {
  dir = tempDir('wq');
  store = SqliteStore.open({ path: join(dir, 'leases.db') });
  queue = new WriteQueue(store);
});
afterEach(() => {
  store.close();
  removeDir(dir);
});

function lease(ip: bigint): LeaseRecord {
  return { network: 'wq', family: 4, ip, containerId: `c${ip}`, ifname: 'eth0', netns: '/n', app: null, kind: 'stateless', createdAt: 1, detachedAt: null };
}

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const insert = (ip: bigint) => () => {
  store.insertLease(lease(ip));
  return ip;
};
const undoInsert = (ip: bigint) => store.deleteLease('wq', 4, ip);

async function failure(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { code: number; message: string };
  }
  throw new Error('expected the unit to fail');
}

describe('write queue deadlines', () => {
  it('does not start a unit whose deadline has passed: code 11, nothing run', async () => {
    let ran = false;
    const error = await failure(queue.run(() => (ran = true), { deadline: Date.now() - 1 }));
    expect(error.code).toBe(11);
    expect(error.message).toMatch(/gave up before reservoird could start it/);
    expect(ran).toBe(false);
    expect(queue.stats.late).toBe(1);
  });

  it('undoes a unit whose commit ended past its deadline and answers 11; units without a deadline stand', async () => {
    const deadline = Date.now() + 30;
    const late = queue.run(
      () => {
        const ip = insert(1n)();
        busy(60); // the unit (or the fsync after it) outlasts the caller's patience
        return ip;
      },
      { deadline, undo: undoInsert },
    );
    const plain = queue.run(insert(2n));
    const error = await failure(late);
    expect(error.code).toBe(11);
    expect(error.message).toMatch(/was undone/);
    expect(await plain).toBe(2n);
    expect(store.leaseAt('wq', 4, 1n)).toBeUndefined();
    expect(store.leaseAt('wq', 4, 2n)?.containerId).toBe('c2');
    expect(store.occupiedCovering('wq', 4, 1n)).toBeUndefined();
    expect(queue.stats.late).toBe(1);
  });

  it('answers a unit committed in time with its value, and keeps its writes', async () => {
    expect(await queue.run(insert(3n), { deadline: Date.now() + 10_000, undo: undoInsert })).toBe(3n);
    expect(store.leaseAt('wq', 4, 3n)?.containerId).toBe('c3');
    expect(queue.stats.late).toBe(0);
  });

  it('defers the rest of a batch when one more unit could make an earlier one late', async () => {
    await queue.run(() => busy(300)); // units have been taking 300 ms lately
    let firstAnswered = false;
    const first = queue.run(insert(4n), { deadline: Date.now() + 200, undo: undoInsert }).then((v) => {
      firstAnswered = true;
      return v;
    });
    let answeredBeforeSecond: boolean | undefined;
    const second = queue.run(() => {
      answeredBeforeSecond = firstAnswered;
      return insert(5n)();
    });
    expect(await first).toBe(4n);
    expect(await second).toBe(5n);
    expect(answeredBeforeSecond, 'the second unit ran only after the first was committed and answered').toBe(true);
    expect(store.leaseAt('wq', 4, 4n)).toBeDefined();
  });
});
