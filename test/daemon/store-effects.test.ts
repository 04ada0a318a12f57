// The store's after-commit effects and commitRegardless writes, on a real SQLite file: what the
// ledger relies on so that counts follow committed state exactly, and refusals are kept.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../daemon/sqlite-store.js';
import type { HistoryRecord } from '../../daemon/store.js';

const line = (reason: string): Omit<HistoryRecord, 'id'> => ({
  at: 1,
  network: 'n',
  family: 4,
  ip: 0x0a000001n,
  event: 'refusal',
  reason,
  app: null,
  containerId: null,
  ifname: null,
  kind: null,
  node: 'node-a',
  holder: null,
  detail: null,
});

describe('store effects', () => {
  let dir: string;
  let store: SqliteStore;
  const reasons = () => store.history('n', undefined, 100).map((r) => r.reason);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rsv-effects-'));
    store = SqliteStore.open({ path: join(dir, 'store.db') });
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs effects after the outermost commit, and drops those of a unit that rolled back', () => {
    const seen: string[] = [];
    store.batch([
      () =>
        store.transaction(() => {
          store.appendHistory(line('kept'));
          store.onCommit(() => seen.push('kept'));
        }),
      () => {
        try {
          store.transaction(() => {
            store.appendHistory(line('undone'));
            store.onCommit(() => seen.push('undone'));
            throw new Error('refused');
          });
        } catch {
          // a unit of the batch fails; the others commit
        }
      },
      () => {
        store.onCommit(() => seen.push(`in batch: ${seen.length}`));
      },
    ]);
    expect(seen).toEqual(['kept', 'in batch: 1']);
    expect(reasons()).toEqual(['kept']);
  });

  it('commits a commitRegardless write in the same batch while its unit rolls back', () => {
    const seen: string[] = [];
    store.batch([
      () => {
        try {
          store.transaction(() => {
            store.appendHistory(line('undone'));
            store.commitRegardless(() => {
              store.appendHistory(line('refusal'));
              store.onCommit(() => seen.push('refusal'));
            });
            throw new Error('refused');
          });
        } catch {
          // the refused unit
        }
      },
    ]);
    expect(reasons()).toEqual(['refusal']);
    expect(seen).toEqual(['refusal']);
  });

  it('gives a commitRegardless write a transaction of its own when the outermost one rolls back', () => {
    expect(() =>
      store.transaction(() => {
        store.appendHistory(line('undone'));
        store.commitRegardless(() => store.appendHistory(line('refusal')));
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(reasons()).toEqual(['refusal']);
  });
});
