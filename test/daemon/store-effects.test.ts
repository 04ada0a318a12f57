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

  describe('the reserved-entry cache after a rollback', () => {
    const entry = (start: bigint, end: bigint, group: string | null = null) => ({
      network: 'n',
      family: 4 as const,
      start,
      end,
      group,
      note: null,
      source: 'operator' as const,
      entry: `${start}-${end}`,
      namespaces: null,
    });
    const covering = (x: bigint) => store.reservedCovering('n', 4, x);
    const refused = (fn: () => void) => expect(() => store.transaction(() => (fn(), undefined as never))).toThrow('rolled back');
    const undone = (fn: () => void) => () => {
      fn();
      throw new Error('rolled back');
    };

    beforeEach(() => {
      store.putNetwork('n', '{}', 1);
      store.insertReserved(entry(10n, 19n, 'db'), 1);
      expect(covering(15n)?.group).toBe('db'); // cached from here on
    });

    it('forgets an insert, an update and a delete read back inside a transaction that rolled back', () => {
      refused(undone(() => {
        store.insertReserved(entry(30n, 39n), 1);
        expect(covering(35n)).toBeDefined();
      }));
      expect(covering(35n)).toBeUndefined();
      const id = covering(15n)!.id;
      refused(undone(() => {
        store.updateReserved(id, { ...entry(12n, 14n, 'web') });
        expect(covering(10n)).toBeUndefined();
        expect(covering(13n)?.group).toBe('web');
      }));
      expect(covering(10n)?.group).toBe('db');
      expect(covering(19n)?.group).toBe('db');
      refused(undone(() => {
        store.deleteReserved(id);
        expect(covering(15n)).toBeUndefined();
      }));
      expect(covering(15n)?.group).toBe('db');
      expect(store.listReserved('n').map((r) => [r.start, r.end, r.group])).toEqual([[10n, 19n, 'db']]);
    });

    it('forgets what a unit of a batch read back when that unit alone rolled back (a savepoint)', () => {
      const seenByNext: Array<string | undefined> = [];
      store.batch([
        () => {
          try {
            store.transaction(undone(() => {
              store.insertReserved(entry(30n, 39n, 'gone'), 1);
              store.deleteReserved(covering(15n)!.id);
              expect(covering(35n)?.group).toBe('gone');
            }));
          } catch {
            // this unit rolls back; the batch goes on
          }
        },
        () => store.transaction(() => {
          seenByNext.push(covering(35n)?.group ?? undefined, covering(15n)?.group ?? undefined);
          store.insertReserved(entry(50n, 59n, 'kept'), 1);
          seenByNext.push(covering(55n)?.group ?? undefined);
        }),
      ]);
      expect(seenByNext).toEqual([undefined, 'db', 'kept']);
      expect([covering(35n), covering(15n)?.group, covering(55n)?.group]).toEqual([undefined, 'db', 'kept']);
    });

    it('keeps what it read through a rollback that wrote no reserved entry (no query per batch rehearsed and rolled back)', () => {
      refused(undone(() => store.appendHistory(line('undone'))));
      // a row behind the store's back: only a cache still held hides it
      store.database.prepare("INSERT INTO reserved (network, family, start_ip, end_ip, grp, note, source, entry, created_at, namespaces) SELECT network, family, '0000001e', '00000027', 'raw', NULL, 'operator', 'raw', 1, NULL FROM reserved WHERE grp = 'db'").run();
      expect(covering(35n)).toBeUndefined();
      expect(store.listReserved('n').map((r) => r.group)).toEqual(['db']);
      // a copy: what a caller does to the list is not the cache's
      store.listReserved('n').length = 0;
      expect(covering(15n)?.group).toBe('db');
      store.insertReserved(entry(50n, 59n, 'kept'), 1); // a write reads afresh
      expect(store.listReserved('n').map((r) => r.group)).toEqual(['db', 'raw', 'kept']);
    });

    it('forgets what a batch read back when its commit did not happen', () => {
      expect(() =>
        store.batch([
          () => store.transaction(() => {
            store.insertReserved(entry(30n, 39n), 1);
            expect(covering(35n)).toBeDefined();
          }),
          () => {
            throw new Error('rolled back');
          },
        ]),
      ).toThrow('rolled back');
      expect(covering(35n)).toBeUndefined();
    });
  });

  it('commits a transactionUnsynced without waiting for the disk, and every other transaction with it', () => {
    const synchronous = () => store.database.pragma('synchronous', { simple: true });
    expect(synchronous()).toBe(2); // FULL
    const during = store.transactionUnsynced(() => {
      store.appendHistory(line('journal'));
      return synchronous();
    });
    expect(during).toBe(1); // NORMAL, for that commit alone
    expect(synchronous()).toBe(2);
    expect(() => store.transactionUnsynced(() => {
      store.appendHistory(line('undone'));
      throw new Error('refused');
    })).toThrow('refused');
    expect(synchronous()).toBe(2);
    // inside another transaction it is part of that one, which commits as that one does
    expect(store.transaction(() => store.transactionUnsynced(() => synchronous()))).toBe(2);
    expect(reasons()).toEqual(['journal']);
  });
});
