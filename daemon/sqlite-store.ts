// The Store on SQLite (better-sqlite3): WAL, synchronous=FULL so a committed ADD survives a power
// cut, prepared statements only, versioned migrations. Addresses are fixed-width hex text, which
// sorts like the numbers, so "the run of leases containing x" is one index probe.
import Database from 'better-sqlite3';
import { type Family, fromKey, toKey } from '../src/address.js';
import type { AppKind } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import type { Span } from './allocator.js';
import { loadSqliteAddon } from './native-addon.js';
import type { HistoryEventKind, HistoryRecord, LeaseBinding, LeasePosition, LeaseRecord, NetworkRecord, ReservedRecord, StatefulSetRecord, Store } from './store.js';

/** Each entry upgrades the schema by one version; never edit a released one, append instead. */
export const MIGRATIONS: readonly string[] = [
  // 1: networks, leases (one row per leased IP: the primary key forbids two holders), runs of
  // leased addresses for next-free search, round-robin cursors, reserved entries.
  `
  CREATE TABLE networks (
    name TEXT PRIMARY KEY,
    ipam TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE leases (
    network TEXT NOT NULL,
    family INTEGER NOT NULL CHECK (family IN (4, 6)),
    ip TEXT NOT NULL,
    range_set INTEGER NOT NULL,
    container_id TEXT,
    ifname TEXT,
    netns TEXT,
    app TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('stateless', 'stateful')),
    created_at INTEGER NOT NULL,
    detached_at INTEGER,
    PRIMARY KEY (network, family, ip),
    CHECK ((container_id IS NULL) = (ifname IS NULL)),
    CHECK (container_id IS NOT NULL OR (kind = 'stateful' AND app IS NOT NULL))
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX leases_by_attachment ON leases (network, container_id, ifname, range_set) WHERE container_id IS NOT NULL;
  CREATE UNIQUE INDEX leases_by_stateful_app ON leases (network, app, range_set) WHERE kind = 'stateful';
  CREATE INDEX leases_detached ON leases (network, detached_at) WHERE detached_at IS NOT NULL;
  CREATE TABLE occupied (
    network TEXT NOT NULL,
    family INTEGER NOT NULL,
    start_ip TEXT NOT NULL,
    end_ip TEXT NOT NULL,
    PRIMARY KEY (network, family, start_ip)
  ) WITHOUT ROWID;
  CREATE TABLE cursors (
    network TEXT NOT NULL,
    range_set INTEGER NOT NULL,
    ip TEXT NOT NULL,
    PRIMARY KEY (network, range_set)
  ) WITHOUT ROWID;
  CREATE TABLE reserved (
    id INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    family INTEGER NOT NULL,
    start_ip TEXT NOT NULL,
    end_ip TEXT NOT NULL,
    grp TEXT,
    note TEXT,
    source TEXT NOT NULL CHECK (source IN ('config', 'operator')),
    entry TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (network, family, start_ip)
  );
  `,
  // 2: who may claim a reserved entry: a JSON list of namespace globs, NULL for any pod.
  `
  ALTER TABLE reserved ADD COLUMN namespaces TEXT;
  `,
  // 3: per-IP history (claims, holds, releases, refusals), written in the transaction of the
  // lease change; ids increase, and retention drops the oldest.
  `
  CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    network TEXT NOT NULL,
    family INTEGER NOT NULL,
    ip TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('claim', 'hold', 'release', 'refusal')),
    reason TEXT NOT NULL,
    app TEXT,
    container_id TEXT,
    ifname TEXT,
    kind TEXT,
    node TEXT,
    holder TEXT,
    detail TEXT
  );
  CREATE INDEX history_by_ip ON history (network, family, ip, id);
  CREATE INDEX history_by_network ON history (network, id);
  `,
  // 4: Kubernetes: which pod (UID) holds a lease, which StatefulSet (UID) and ordinal a hold
  // belongs to, and the last state seen of those StatefulSets (their policies outlive them).
  `
  ALTER TABLE leases ADD COLUMN pod_uid TEXT;
  ALTER TABLE leases ADD COLUMN owner_uid TEXT;
  ALTER TABLE leases ADD COLUMN ordinal INTEGER;
  CREATE INDEX leases_by_owner ON leases (owner_uid) WHERE owner_uid IS NOT NULL;
  CREATE TABLE statefulsets (
    uid TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    when_deleted TEXT NOT NULL CHECK (when_deleted IN ('Delete', 'Retain')),
    when_scaled TEXT NOT NULL CHECK (when_scaled IN ('Delete', 'Retain')),
    ordinals_start INTEGER NOT NULL,
    ips TEXT,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 5: a network changes under its leases, so a range set is known by its content, not by its
  // position in the config: a lease's range set is the one whose ranges hold its address (found
  // by the services), and a round-robin cursor is keyed by the set's ranges. A network remembers
  // the config file that declares it (NULL: learned from requests) and the config reserved
  // entries it could not apply, so both survive a restart.
  `
  DROP INDEX leases_by_attachment;
  DROP INDEX leases_by_stateful_app;
  ALTER TABLE leases DROP COLUMN range_set;
  CREATE INDEX leases_by_attachment ON leases (network, container_id, ifname) WHERE container_id IS NOT NULL;
  CREATE INDEX leases_by_stateful_app ON leases (network, app) WHERE kind = 'stateful';
  DROP TABLE cursors;
  CREATE TABLE set_cursors (
    network TEXT NOT NULL,
    set_key TEXT NOT NULL,
    ip TEXT NOT NULL,
    PRIMARY KEY (network, set_key)
  ) WITHOUT ROWID;
  ALTER TABLE networks ADD COLUMN file TEXT;
  ALTER TABLE networks ADD COLUMN reserved_conflicts TEXT NOT NULL DEFAULT '[]';
  `,
  // 6: the node of a lease's holder. NULL: this node (a node-scope network); set for the leases of
  // cluster networks, which the in-memory mirror of etcd (daemon/cluster/) keeps in this schema.
  // The cluster journal (daemon/cluster/journal.ts): this node's attachments in cluster networks,
  // as etcd holds them, so DEL and CHECK work while etcd is away; and the outbox of changes to
  // etcd still owed (a DEL taken while etcd was away, an ADD whose outcome is unknown to undo).
  `
  ALTER TABLE leases ADD COLUMN node TEXT;
  CREATE TABLE cluster_attachments (
    network TEXT NOT NULL,
    family INTEGER NOT NULL,
    ip TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ifname TEXT NOT NULL,
    lease TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('attached', 'releasing', 'conflict')),
    detail TEXT,
    PRIMARY KEY (network, family, ip)
  ) WITHOUT ROWID;
  CREATE INDEX cluster_attachments_by_attachment ON cluster_attachments (network, container_id, ifname);
  CREATE TABLE cluster_outbox (
    key TEXT NOT NULL,
    unit TEXT NOT NULL,
    network TEXT NOT NULL,
    revert_to TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (key, unit)
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

interface LeaseRow {
  network: string;
  family: number;
  ip: string;
  container_id: string | null;
  ifname: string | null;
  netns: string | null;
  app: string | null;
  kind: string;
  created_at: number;
  detached_at: number | null;
  pod_uid: string | null;
  owner_uid: string | null;
  ordinal: number | null;
  node: string | null;
}

interface ReservedRow {
  id: number;
  network: string;
  family: number;
  start_ip: string;
  end_ip: string;
  grp: string | null;
  note: string | null;
  source: string;
  entry: string;
  namespaces: string | null;
}

interface HistoryRow {
  id: number;
  at: number;
  network: string;
  family: number;
  ip: string;
  event: string;
  reason: string;
  app: string | null;
  container_id: string | null;
  ifname: string | null;
  kind: string | null;
  node: string | null;
  holder: string | null;
  detail: string | null;
}

function toHistory(row: HistoryRow): HistoryRecord {
  return {
    id: row.id,
    at: row.at,
    network: row.network,
    family: row.family as Family,
    ip: fromKey(row.ip),
    event: row.event as HistoryEventKind,
    reason: row.reason,
    app: row.app,
    containerId: row.container_id,
    ifname: row.ifname,
    kind: row.kind as AppKind | null,
    node: row.node,
    holder: row.holder,
    detail: row.detail,
  };
}

const NETWORK_COLUMNS = 'name, ipam, file, reserved_conflicts, updated_at';
const LEASE_COLUMNS = 'network, family, ip, container_id, ifname, netns, app, kind, created_at, detached_at, pod_uid, owner_uid, ordinal, node';

/** A lease's columns after its address (network, family, ip), in LEASE_COLUMNS' order: what insertLease and replaceLease write. */
function holderValues(lease: LeaseRecord): unknown[] {
  return [lease.containerId, lease.ifname, lease.netns, lease.app, lease.kind, lease.createdAt, lease.detachedAt, lease.podUid ?? null, lease.ownerUid ?? null, lease.ordinal ?? null, lease.node ?? null];
}

function toLease(row: LeaseRow): LeaseRecord {
  return {
    network: row.network,
    family: row.family as Family,
    ip: fromKey(row.ip),
    containerId: row.container_id,
    ifname: row.ifname,
    netns: row.netns,
    app: row.app,
    kind: row.kind as AppKind,
    createdAt: row.created_at,
    detachedAt: row.detached_at,
    podUid: row.pod_uid,
    ownerUid: row.owner_uid,
    ordinal: row.ordinal,
    node: row.node,
  };
}

interface StatefulSetRow {
  uid: string;
  namespace: string;
  name: string;
  when_deleted: string;
  when_scaled: string;
  ordinals_start: number;
  ips: string | null;
  updated_at: number;
}

function toStatefulSet(row: StatefulSetRow): StatefulSetRecord {
  return {
    uid: row.uid,
    namespace: row.namespace,
    name: row.name,
    whenDeleted: row.when_deleted as 'Delete' | 'Retain',
    whenScaled: row.when_scaled as 'Delete' | 'Retain',
    ordinalsStart: row.ordinals_start,
    ips: row.ips,
    updatedAt: row.updated_at,
  };
}

interface NetworkRow {
  name: string;
  ipam: string;
  file: string | null;
  reserved_conflicts: string;
  updated_at: number;
}

function toNetwork(row: NetworkRow): NetworkRecord {
  return { name: row.name, ipam: row.ipam, file: row.file, reservedConflicts: JSON.parse(row.reserved_conflicts) as string[], updatedAt: row.updated_at };
}

function toReserved(row: ReservedRow): ReservedRecord {
  return {
    id: row.id,
    network: row.network,
    family: row.family as Family,
    start: fromKey(row.start_ip),
    end: fromKey(row.end_ip),
    group: row.grp,
    note: row.note,
    source: row.source as 'config' | 'operator',
    entry: row.entry,
    namespaces: row.namespaces === null ? null : (JSON.parse(row.namespaces) as string[]),
  };
}

/** Turn SQLite's failures into errors an operator can act on; SQLite codes stay in here. */
export function storeError(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return err;
  const message = (err as Error).message;
  if (code.startsWith('SQLITE_FULL')) {
    return new ReservoirError('STORE_UNAVAILABLE', `the lease store ${path} cannot grow: the disk is full; nothing was written`, message, { cause: err });
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM')) {
    return new ReservoirError('STORE_UNAVAILABLE', `the lease store ${path} cannot be written (${code}); check the disk and the state directory's permissions; nothing was written`, message, { cause: err });
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new ReservoirError('STORE_UNAVAILABLE', `the lease store ${path} is held by another process (another reservoird still running?); stop it first: one reservoird owns a store`, message, { cause: err });
  }
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
    return new ReservoirError('STORE_UNAVAILABLE', `the lease store ${path} is corrupt (${code}); restore a backup (see README, "Backup and restore")`, message, { cause: err });
  }
  return new ReservoirError('INTERNAL', `the lease store failed: ${message}`, code, { cause: err });
}

export interface SqliteStoreOptions {
  readonly path: string;
  /** Overrides where better-sqlite3's native addon comes from (tests, packaging). */
  readonly nativeBinding?: string | object;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly path: string;
  private readonly sql: ReturnType<typeof prepareStatements>;
  /** One transaction function for every call: db.transaction(fn) per call cost microseconds each. */
  private readonly inTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  /**
   * Reserved entries per network, sorted by family and start, for reservedCovering: it is probed
   * for every candidate IP of every ADD, and the SQL probe was a fifth of an ADD's time. Cleared
   * by every reserved write and every rollback, of a transaction or of a savepoint (a unit read
   * inside may have cached what was undone); this process is the store's only writer.
   */
  private readonly reservedByNetwork = new Map<string, ReservedRecord[]>();
  /** Reserved rows written so far: a rolled-back transaction that wrote none leaves the cache valid. */
  private reservedWrites = 0;
  /** onCommit effects of the open transaction, in the order registered. */
  private effects: Array<() => void> = [];
  /** commitRegardless writes waiting for the end of the outermost transaction. */
  private regardless: Array<() => void> = [];

  private constructor(db: Database.Database, path: string) {
    this.db = db;
    this.path = path;
    this.sql = prepareStatements(db);
    this.inTransaction = db.transaction((fn: () => unknown) => fn());
  }

  /** Open (creating if needed) and migrate. Refuses a corrupt file or one from a newer reservoird. */
  static open(options: SqliteStoreOptions): SqliteStore {
    const path = options.path;
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { nativeBinding: options.nativeBinding ?? loadSqliteAddon() } as Database.Options);
      // One owner per store: EXCLUSIVE locking keeps every other process (a second reservoird
      // left running, a tool) out for as long as this daemon lives; a short busy timeout makes
      // the refusal quick.
      db.pragma('busy_timeout = 1000');
      db.pragma('locking_mode = EXCLUSIVE');
      // Read-only checks before anything writes: switching to WAL rewrites the header, so a
      // corrupt file or one from a newer reservoird must be refused before that.
      const current = checkStore(db, path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      migrate(db, current);
      return new SqliteStore(db, path);
    } catch (err) {
      db?.close();
      throw storeError(err, path);
    }
  }

  transaction<T>(fn: () => T): T {
    const outermost = !this.db.inTransaction;
    const mark = this.effects.length;
    const reservedWrites = this.reservedWrites;
    let result: T;
    try {
      result = (outermost ? this.inTransaction.immediate(() => this.withRegardless(fn)) : this.inTransaction(fn)) as T;
    } catch (err) {
      if (this.reservedWrites !== reservedWrites) this.reservedByNetwork.clear(); // what it read may have been rolled back
      this.effects.length = mark;
      if (outermost && this.regardless.length > 0) {
        // fn failed before the end: the writes it asked to keep get a transaction of their own
        try {
          this.inTransaction.immediate(() => this.drainRegardless());
        } catch {
          this.effects.length = 0; // the store cannot be written: nothing of it happened
        }
        this.runEffects();
      }
      throw storeError(err, this.path);
    }
    if (outermost) this.runEffects();
    return result;
  }

  /**
   * A transaction whose commit does not wait for the disk (synchronous=NORMAL for it alone, in
   * WAL): it survives the daemon being killed, not a power cut. Only for records whose truth is
   * durable elsewhere: a cluster network's journal follows etcd's quorum commit, and a power cut
   * ends the containers whose journal lines it could lose (etcd's claims of them are orphans
   * then, released after the reclaim grace).
   */
  transactionUnsynced<T>(fn: () => T): T {
    if (this.db.inTransaction) return this.transaction(fn);
    // exec, not pragma(): pragma() prepares a statement and collects its rows on every call, a
    // cost every cluster ADD paid twice (a pair: ~11 us against ~1.5 us here)
    this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      return this.transaction(fn);
    } finally {
      this.db.exec('PRAGMA synchronous = FULL');
    }
  }

  onCommit(effect: () => void): void {
    if (this.db.inTransaction) this.effects.push(effect);
    else effect();
  }

  commitRegardless(write: () => void): void {
    if (this.db.inTransaction) this.regardless.push(write);
    else this.transaction(write);
  }

  private withRegardless<T>(fn: () => T): T {
    const result = fn();
    this.drainRegardless();
    return result;
  }

  private drainRegardless(): void {
    while (this.regardless.length > 0) {
      const write = this.regardless.shift()!;
      try {
        this.transaction(write);
      } catch {
        // a record that cannot be written must not fail the commit of the others
      }
    }
  }

  private runEffects(): void {
    const effects = this.effects;
    this.effects = [];
    for (const effect of effects) {
      try {
        effect();
      } catch (err) {
        process.emitWarning(`reservoird: an after-commit effect failed: ${String((err as Error)?.stack ?? err)}`);
      }
    }
  }

  batch(units: ReadonlyArray<() => void>): void {
    this.transaction(() => {
      for (const unit of units) unit();
    });
  }

  getNetwork(name: string): NetworkRecord | undefined {
    const row = this.sql.getNetwork.get(name) as NetworkRow | undefined;
    return row && toNetwork(row);
  }

  putNetwork(name: string, ipam: string, now: number, file: string | null = null): void {
    this.sql.putNetwork.run(name, ipam, file, now, now);
  }

  setReservedConflicts(name: string, conflicts: readonly string[]): void {
    this.sql.setReservedConflicts.run(JSON.stringify(conflicts), name);
  }

  listNetworks(): NetworkRecord[] {
    return (this.sql.listNetworks.all() as NetworkRow[]).map(toNetwork);
  }

  leasesOfAttachment(network: string, containerId: string, ifname: string): LeaseRecord[] {
    return (this.sql.leasesOfAttachment.all(network, containerId, ifname) as LeaseRow[]).map(toLease);
  }

  leasesOfApp(network: string, app: string): LeaseRecord[] {
    return (this.sql.leasesOfApp.all(network, app) as LeaseRow[]).map(toLease);
  }

  leaseAt(network: string, family: Family, ip: bigint): LeaseRecord | undefined {
    const row = this.sql.leaseAt.get(network, family, toKey(family, ip)) as LeaseRow | undefined;
    return row && toLease(row);
  }

  leasesBetween(network: string, family: Family, start: bigint, end: bigint, limit: number): LeaseRecord[] {
    return (this.sql.leasesBetween.all(network, family, toKey(family, start), toKey(family, end), limit) as LeaseRow[]).map(toLease);
  }

  countLeasesBetween(network: string, family: Family, start: bigint, end: bigint): number {
    return (this.sql.countBetween.get(network, family, toKey(family, start), toKey(family, end)) as { n: number }).n;
  }

  leasesAfter(network: string | undefined, after: LeasePosition | undefined, limit: number): LeaseRecord[] {
    // ('', 0, '') comes before every lease: names and keys are non-empty, families are 4 and 6.
    if (network === undefined) {
      const rows = this.sql.leasesAfter.all(after?.network ?? '', after?.family ?? 0, after ? toKey(after.family, after.ip) : '', limit);
      return (rows as LeaseRow[]).map(toLease);
    }
    // A position in another network lies before all of this one or after it (names are ASCII,
    // so JS orders them as SQLite does).
    if (after !== undefined && after.network > network) return [];
    const from = after !== undefined && after.network === network ? after : undefined;
    const rows = this.sql.networkLeasesAfter.all(network, from?.family ?? 0, from ? toKey(from.family, from.ip) : '', limit);
    return (rows as LeaseRow[]).map(toLease);
  }

  leaseCountsBetween(network: string, family: Family, start: bigint, end: bigint): { total: number; held: number } {
    const row = this.sql.countsBetween.get(network, family, toKey(family, start), toKey(family, end)) as { total: number; held: number | null };
    return { total: row.total, held: row.held ?? 0 };
  }

  countLeases(network: string | undefined): { total: number; held: number } {
    if (network === undefined) {
      const row = this.sql.countAll.get() as { total: number; held: number | null };
      return { total: row.total, held: row.held ?? 0 };
    }
    // Not a walk over the leases (~250 ms for a million at start-up): the runs of leased
    // addresses add up to the leases, and held ones are in their own partial index.
    let total = 0n;
    for (const run of this.sql.runsOfNetwork.iterate(network) as Iterable<{ start_ip: string; end_ip: string }>) {
      total += fromKey(run.end_ip) - fromKey(run.start_ip) + 1n;
    }
    const held = (this.sql.heldOfNetwork.get(network) as { n: number }).n;
    return { total: Number(total), held };
  }

  attachedLeases(network: string): LeaseRecord[] {
    return (this.sql.attachedLeases.all(network) as LeaseRow[]).map(toLease);
  }

  attachedLeasesAfter(network: string, after: { family: Family; ip: bigint } | undefined, limit: number): LeaseRecord[] {
    const family = after?.family ?? 0;
    const key = after ? toKey(after.family, after.ip) : '';
    return (this.sql.attachedAfter.all(network, family, key, limit) as LeaseRow[]).map(toLease);
  }

  detachedBefore(network: string, cutoff: number): LeaseRecord[] {
    return (this.sql.detachedBefore.all(network, cutoff) as LeaseRow[]).map(toLease);
  }

  insertLease(lease: LeaseRecord): void {
    this.sql.insertLease.run(lease.network, lease.family, toKey(lease.family, lease.ip), ...holderValues(lease));
    this.markOccupied(lease.network, lease.family, lease.ip);
  }

  /** Overwrite the lease at its address, if there is one (its address stays occupied); false: none there. */
  replaceLease(lease: LeaseRecord): boolean {
    const { changes } = this.sql.replaceLease.run(...holderValues(lease), lease.network, lease.family, toKey(lease.family, lease.ip));
    return changes > 0;
  }

  deleteLease(network: string, family: Family, ip: bigint): void {
    const { changes } = this.sql.deleteLease.run(network, family, toKey(family, ip));
    if (changes > 0) this.markFree(network, family, ip);
  }

  detachLease(network: string, family: Family, ip: bigint, now: number): void {
    this.sql.detachLease.run(now, network, family, toKey(family, ip));
  }

  attachLease(network: string, family: Family, ip: bigint, containerId: string, ifname: string, netns: string | null): void {
    this.sql.attachLease.run(containerId, ifname, netns, network, family, toKey(family, ip));
  }

  bindLease(network: string, family: Family, ip: bigint, binding: LeaseBinding): void {
    this.sql.bindLease.run(binding.podUid, binding.ownerUid, binding.ordinal, network, family, toKey(family, ip));
  }

  leasesOfOwner(ownerUid: string): LeaseRecord[] {
    return (this.sql.leasesOfOwner.all(ownerUid) as LeaseRow[]).map(toLease);
  }

  putStatefulSet(r: StatefulSetRecord): void {
    this.sql.putStatefulSet.run(r.uid, r.namespace, r.name, r.whenDeleted, r.whenScaled, r.ordinalsStart, r.ips, r.updatedAt);
  }

  getStatefulSet(uid: string): StatefulSetRecord | undefined {
    const row = this.sql.getStatefulSet.get(uid) as StatefulSetRow | undefined;
    return row && toStatefulSet(row);
  }

  listStatefulSets(): StatefulSetRecord[] {
    return (this.sql.listStatefulSets.all() as StatefulSetRow[]).map(toStatefulSet);
  }

  deleteStatefulSet(uid: string): void {
    this.sql.deleteStatefulSet.run(uid);
  }

  occupiedCovering(network: string, family: Family, x: bigint): Span | undefined {
    const row = this.sql.runAtOrBefore.get(network, family, toKey(family, x)) as { start_ip: string; end_ip: string } | undefined;
    if (!row) return undefined;
    const end = fromKey(row.end_ip);
    return end >= x ? { start: fromKey(row.start_ip), end } : undefined;
  }

  getCursor(network: string, setKey: string): bigint | undefined {
    const row = this.sql.getCursor.get(network, setKey) as { ip: string } | undefined;
    return row && fromKey(row.ip);
  }

  setCursor(network: string, setKey: string, family: Family, ip: bigint): void {
    this.sql.setCursor.run(network, setKey, toKey(family, ip));
  }

  listReserved(network: string): ReservedRecord[] {
    return this.reservedOf(network).slice();
  }

  /** A network's reserved entries in (family, start) order, cached until one is written. */
  private reservedOf(network: string): readonly ReservedRecord[] {
    let entries = this.reservedByNetwork.get(network);
    if (!entries) {
      entries = (this.sql.listReserved.all(network) as ReservedRow[]).map(toReserved);
      this.reservedByNetwork.set(network, entries);
    }
    return entries;
  }

  reservedCovering(network: string, family: Family, x: bigint): ReservedRecord | undefined {
    const entries = this.reservedOf(network);
    // The last entry of this family starting at or before x (entries do not overlap).
    let lo = 0;
    let hi = entries.length - 1;
    let found: ReservedRecord | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const entry = entries[mid]!;
      if (entry.family < family || (entry.family === family && entry.start <= x)) {
        if (entry.family === family) found = entry;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found && found.end >= x ? found : undefined;
  }

  insertReserved(record: Omit<ReservedRecord, 'id'>, now: number): void {
    this.reservedByNetwork.clear();
    this.reservedWrites++;
    this.sql.insertReserved.run(
      record.network,
      record.family,
      toKey(record.family, record.start),
      toKey(record.family, record.end),
      record.group,
      record.note,
      record.source,
      record.entry,
      now,
      record.namespaces === null ? null : JSON.stringify(record.namespaces),
    );
  }

  updateReserved(id: number, record: Omit<ReservedRecord, 'id' | 'network' | 'source'>): void {
    this.reservedByNetwork.clear();
    this.reservedWrites++;
    this.sql.updateReserved.run(
      record.family,
      toKey(record.family, record.start),
      toKey(record.family, record.end),
      record.group,
      record.note,
      record.entry,
      record.namespaces === null ? null : JSON.stringify(record.namespaces),
      id,
    );
  }

  deleteReserved(id: number): void {
    this.reservedByNetwork.clear();
    this.reservedWrites++;
    this.sql.deleteReserved.run(id);
  }

  appendHistory(event: Omit<HistoryRecord, 'id'>): number {
    const info = this.sql.insertHistory.run(
      event.at,
      event.network,
      event.family,
      toKey(event.family, event.ip),
      event.event,
      event.reason,
      event.app,
      event.containerId,
      event.ifname,
      event.kind,
      event.node,
      event.holder,
      event.detail,
    );
    return Number(info.lastInsertRowid);
  }

  history(network: string | undefined, ip: { family: Family; ip: bigint } | undefined, limit: number, before = Number.MAX_SAFE_INTEGER): HistoryRecord[] {
    let rows: HistoryRow[];
    if (network === undefined) rows = this.sql.historyAll.all(before, limit) as HistoryRow[];
    else if (ip === undefined) rows = this.sql.historyOfNetwork.all(network, before, limit) as HistoryRow[];
    else rows = this.sql.historyOfIp.all(network, ip.family, toKey(ip.family, ip.ip), before, limit) as HistoryRow[];
    return rows.reverse().map(toHistory);
  }

  pruneHistory(before: number, keep: number, chunk: number): number {
    // Ids have no gaps but at the oldest end (only the oldest are ever deleted), so the newest
    // `keep` are those above max - keep.
    const bounds = this.sql.historyBounds.get() as { lo: number | null; hi: number | null };
    if (bounds.lo === null || bounds.hi === null) return 0;
    const byCount = Math.min(bounds.hi - keep + 1, bounds.lo + chunk);
    let removed = byCount > bounds.lo ? this.sql.deleteHistoryBelow.run(byCount).changes : 0;
    if (removed < chunk) removed += this.sql.deleteHistoryOlder.run(chunk - removed, before).changes;
    return removed;
  }

  async backupTo(path: string): Promise<void> {
    try {
      await this.db.backup(path);
    } catch (err) {
      throw storeError(err, this.path);
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The connection, for tables that commit with this file's transactions (daemon/cluster/journal.ts). */
  get database(): Database.Database {
    return this.db;
  }

  /** Keep `occupied` as maximal runs: merge x with the runs ending at x-1 and starting at x+1. */
  private markOccupied(network: string, family: Family, x: bigint): void {
    const left = this.occupiedCovering(network, family, x - 1n);
    const rightKey = toKey(family, x + 1n);
    const right = this.sql.runStartingAt.get(network, family, rightKey) as { end_ip: string } | undefined;
    if (right) this.sql.deleteRun.run(network, family, rightKey);
    const end = right ? right.end_ip : toKey(family, x);
    if (left) this.sql.setRunEnd.run(end, network, family, toKey(family, left.start));
    else this.sql.insertRun.run(network, family, toKey(family, x), end);
  }

  /** Split the run containing x around it. */
  private markFree(network: string, family: Family, x: bigint): void {
    const run = this.occupiedCovering(network, family, x);
    if (!run) return;
    const startKey = toKey(family, run.start);
    if (run.start === x) this.sql.deleteRun.run(network, family, startKey);
    else this.sql.setRunEnd.run(toKey(family, x - 1n), network, family, startKey);
    if (run.end > x) this.sql.insertRun.run(network, family, toKey(family, x + 1n), toKey(family, run.end));
  }
}

/** Schema version of a store we may open; refuses (reading only) a newer or a corrupt one. */
function checkStore(db: Database.Database, path: string): number {
  // Reading the header first makes a non-database file fail here, before anything is written.
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new ReservoirError(
      'STORE_UNAVAILABLE',
      `the lease store ${path} has schema version ${current}, newer than this reservoird understands (${SCHEMA_VERSION}); upgrade reservoird or restore a backup; the file was not touched`,
    );
  }
  // A garbage page inside a valid file is found only by walking the b-trees (~20 ms per 100k leases).
  const problems = (db.pragma('quick_check(3)') as Array<{ quick_check: string }>).map((row) => row.quick_check).filter((p) => p !== 'ok');
  if (problems.length > 0) {
    throw new ReservoirError(
      'STORE_UNAVAILABLE',
      `the lease store ${path} is corrupt (${problems.join('; ')}); restore a backup (see README, "Backup and restore"); the file was not touched`,
    );
  }
  return current;
}

function migrate(db: Database.Database, current: number): void {
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    getNetwork: db.prepare(`SELECT ${NETWORK_COLUMNS} FROM networks WHERE name = ?`),
    putNetwork: db.prepare(
      'INSERT INTO networks (name, ipam, file, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET ipam = excluded.ipam, file = excluded.file, updated_at = excluded.updated_at',
    ),
    setReservedConflicts: db.prepare('UPDATE networks SET reserved_conflicts = ? WHERE name = ?'),
    listNetworks: db.prepare(`SELECT ${NETWORK_COLUMNS} FROM networks ORDER BY name`),
    leasesOfAttachment: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases INDEXED BY leases_by_attachment WHERE network = ? AND container_id = ? AND ifname = ?`),
    // "= (SELECT ?)", not "= ?", in statements with ORDER BY: this SQLite (3.54, STAT4) re-prepares
    // such a statement at every call when an index-prefix equality is a bare parameter (~6 us
    // more per call; measured: runAtOrBefore 7.4 -> 1.4 us, leasesOfApp 14 -> 1.8 us). Same plan.
    leasesOfApp: db.prepare(
      `SELECT ${LEASE_COLUMNS} FROM leases WHERE network = (SELECT ?) AND app = (SELECT ?) AND kind = 'stateful' ORDER BY family, ip`,
    ),
    leaseAt: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND family = ? AND ip = ?`),
    leasesBetween: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND family = ? AND ip BETWEEN ? AND ? ORDER BY ip LIMIT ?`),
    countBetween: db.prepare('SELECT count(*) AS n FROM leases WHERE network = ? AND family = ? AND ip BETWEEN ? AND ?'),
    // Pages of a listing, each a seek into the primary key. One network gets its own statement:
    // "network = ? AND (network, family, ip) > (...)" seeks on the network alone and scans it.
    leasesAfter: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE (network, family, ip) > (?, ?, ?) ORDER BY network, family, ip LIMIT ?`),
    networkLeasesAfter: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND (family, ip) > (?, ?) ORDER BY family, ip LIMIT ?`),
    countsBetween: db.prepare(
      'SELECT count(*) AS total, sum(container_id IS NULL) AS held FROM leases WHERE network = ? AND family = ? AND ip BETWEEN ? AND ?',
    ),
    insertHistory: db.prepare(
      'INSERT INTO history (at, network, family, ip, event, reason, app, container_id, ifname, kind, node, holder, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    historyAll: db.prepare('SELECT * FROM history WHERE id < ? ORDER BY id DESC LIMIT ?'),
    historyOfNetwork: db.prepare('SELECT * FROM history WHERE network = (SELECT ?) AND id < ? ORDER BY id DESC LIMIT ?'),
    historyOfIp: db.prepare('SELECT * FROM history WHERE network = (SELECT ?) AND family = (SELECT ?) AND ip = (SELECT ?) AND id < ? ORDER BY id DESC LIMIT ?'),
    historyBounds: db.prepare('SELECT min(id) AS lo, max(id) AS hi FROM history'),
    deleteHistoryBelow: db.prepare('DELETE FROM history WHERE id < ?'),
    deleteHistoryOlder: db.prepare('DELETE FROM history WHERE id IN (SELECT id FROM history ORDER BY id LIMIT ?) AND at < ?'),
    countAll: db.prepare('SELECT count(*) AS total, sum(container_id IS NULL) AS held FROM leases'),
    runsOfNetwork: db.prepare('SELECT start_ip, end_ip FROM occupied WHERE network = ?'),
    heldOfNetwork: db.prepare('SELECT count(*) AS n FROM leases INDEXED BY leases_detached WHERE network = ? AND detached_at IS NOT NULL'),
    attachedLeases: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND container_id IS NOT NULL`),
    attachedAfter: db.prepare(
      `SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND container_id IS NOT NULL AND (family, ip) > (?, ?) ORDER BY family, ip LIMIT ?`,
    ),
    detachedBefore: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE network = ? AND detached_at IS NOT NULL AND detached_at < ?`),
    insertLease: db.prepare(`INSERT INTO leases (${LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    bindLease: db.prepare('UPDATE leases SET pod_uid = ?, owner_uid = ?, ordinal = ? WHERE network = ? AND family = ? AND ip = ?'),
    leasesOfOwner: db.prepare(`SELECT ${LEASE_COLUMNS} FROM leases WHERE owner_uid = ? ORDER BY network, family, ip`),
    putStatefulSet: db.prepare(
      'INSERT INTO statefulsets (uid, namespace, name, when_deleted, when_scaled, ordinals_start, ips, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET when_deleted = excluded.when_deleted, when_scaled = excluded.when_scaled, ordinals_start = excluded.ordinals_start, ips = excluded.ips, updated_at = excluded.updated_at',
    ),
    getStatefulSet: db.prepare('SELECT * FROM statefulsets WHERE uid = ?'),
    listStatefulSets: db.prepare('SELECT * FROM statefulsets ORDER BY namespace, name, uid'),
    deleteStatefulSet: db.prepare('DELETE FROM statefulsets WHERE uid = ?'),
    deleteLease: db.prepare('DELETE FROM leases WHERE network = ? AND family = ? AND ip = ?'),
    replaceLease: db.prepare(
      'UPDATE leases SET container_id = ?, ifname = ?, netns = ?, app = ?, kind = ?, created_at = ?, detached_at = ?, pod_uid = ?, owner_uid = ?, ordinal = ?, node = ? WHERE network = ? AND family = ? AND ip = ?',
    ),
    detachLease: db.prepare('UPDATE leases SET container_id = NULL, ifname = NULL, netns = NULL, detached_at = ? WHERE network = ? AND family = ? AND ip = ?'),
    attachLease: db.prepare('UPDATE leases SET container_id = ?, ifname = ?, netns = ?, detached_at = NULL WHERE network = ? AND family = ? AND ip = ?'),
    runAtOrBefore: db.prepare(
      'SELECT start_ip, end_ip FROM occupied WHERE network = (SELECT ?) AND family = (SELECT ?) AND start_ip <= ? ORDER BY start_ip DESC LIMIT 1',
    ),
    runStartingAt: db.prepare('SELECT end_ip FROM occupied WHERE network = ? AND family = ? AND start_ip = ?'),
    insertRun: db.prepare('INSERT INTO occupied (network, family, start_ip, end_ip) VALUES (?, ?, ?, ?)'),
    deleteRun: db.prepare('DELETE FROM occupied WHERE network = ? AND family = ? AND start_ip = ?'),
    setRunEnd: db.prepare('UPDATE occupied SET end_ip = ? WHERE network = ? AND family = ? AND start_ip = ?'),
    getCursor: db.prepare('SELECT ip FROM set_cursors WHERE network = ? AND set_key = ?'),
    setCursor: db.prepare('INSERT INTO set_cursors (network, set_key, ip) VALUES (?, ?, ?) ON CONFLICT (network, set_key) DO UPDATE SET ip = excluded.ip'),
    listReserved: db.prepare('SELECT * FROM reserved WHERE network = ? ORDER BY family, start_ip'),
    insertReserved: db.prepare(
      'INSERT INTO reserved (network, family, start_ip, end_ip, grp, note, source, entry, created_at, namespaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    updateReserved: db.prepare('UPDATE reserved SET family = ?, start_ip = ?, end_ip = ?, grp = ?, note = ?, entry = ?, namespaces = ? WHERE id = ?'),
    deleteReserved: db.prepare('DELETE FROM reserved WHERE id = ?'),
  };
}
