// This daemon's copy of the cluster networks in etcd: every key under the layout's root, with
// its revisions, and the same records in an in-memory SQLite store of the daemon's own schema,
// so the services read a cluster network exactly as they read a node network (the allocator's
// probes stay local: no round trip per candidate address). The copy follows etcd by a watch and
// by the transactions this daemon commits; a unit's compares carry the revisions it saw, so a
// stale copy can only make a transaction fail and run again, never grant what etcd has not.
import type { Family } from '../../src/address.js';
import { SqliteStore } from '../sqlite-store.js';
import type { LeaseRecord, ReservedRecord } from '../store.js';
import { type ClusterKey, type KeyLayout, decodeLease, decodeNetwork, decodeReserved } from './keys.js';
import type { KvEntry } from './kv.js';

/** Leases read at once by attachedLeases. */
const ATTACHED_PAGE = 1000;

export interface MirrorEntry {
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
}

export class Mirror {
  /** The records of the cluster networks (in memory; rebuilt by reload). */
  store: SqliteStore;
  /** Every key under the root, as last seen. */
  private readonly entries = new Map<string, MirrorEntry>();
  /** Deleted keys and the revision of their deletion, until the watch has passed it. */
  private readonly tombstones = new Map<string, number>();
  /** The revision up to which the watch has delivered everything. */
  watched = 0;
  /** Whether the copy was ever loaded from etcd (a daemon started with etcd away has only its journal). */
  loaded = false;
  /** Cluster networks seen in etcd, and those only the journal knows of yet. */
  readonly networks = new Set<string>();
  /** The last revision that put or deleted a lease of a node in a network (`check` compares a node's report only with what came before it). */
  private readonly nodeChanges = new Map<string, number>();
  /** The node of each lease key's holder (what nodeChanges needs of the value a change replaces, without reading it back). */
  private readonly leaseNodes = new Map<string, string | null>();
  /** Prefixes read whole at a revision the watch has not reached yet (refreshPrefix). */
  private readonly wholeAt = new Map<string, number>();

  constructor(
    readonly layout: KeyLayout,
    private readonly nativeBinding: string | object | undefined,
    /** Told of every network whose records changed (the ledger recounts it). */
    private readonly changed: (network: string) => void = () => undefined,
  ) {
    this.store = this.fresh();
  }

  private fresh(): SqliteStore {
    return SqliteStore.open({ path: ':memory:', ...(this.nativeBinding ? { nativeBinding: this.nativeBinding } : {}) });
  }

  entry(key: string): MirrorEntry | undefined {
    return this.entries.get(key);
  }

  /** Keys under a prefix, with their entries (a scan of the whole copy: for rare reads, not per batch). */
  *under(prefix: string): Iterable<[string, MirrorEntry]> {
    for (const [key, entry] of this.entries) if (key.startsWith(prefix)) yield [key, entry];
  }

  /** A network's attached leases in this copy, in address order, read a page at a time (the consumer may await between). */
  *attachedLeases(network: string): Iterable<LeaseRecord> {
    for (let after: { family: Family; ip: bigint } | undefined, page: LeaseRecord[]; ; ) {
      page = this.store.attachedLeasesAfter(network, after, ATTACHED_PAGE);
      yield* page;
      if (page.length < ATTACHED_PAGE) return;
      const last = page[page.length - 1]!;
      after = { family: last.family, ip: last.ip };
    }
  }

  /** Replace everything with a full read of etcd at `revision`. */
  reload(entries: readonly KvEntry[], revision: number): void {
    const old = this.store;
    this.store = this.fresh();
    old.close();
    const touched = new Set(this.networks);
    this.entries.clear();
    this.tombstones.clear();
    this.networks.clear();
    this.nodeChanges.clear();
    this.leaseNodes.clear();
    this.wholeAt.clear();
    this.store.transaction(() => {
      for (const e of entries) this.put(e.key, e.value, e.modRevision, e.createRevision, touched);
    });
    this.watched = revision;
    this.loaded = true;
    for (const network of touched) this.changed(network);
  }

  /**
   * A committed change (ours, or from the watch): applied unless something newer of that key is
   * known. `tell`: whether the networks it touched are told of (a unit's own commit tells once,
   * after its effects ran: units.ts settle).
   */
  apply(changes: ReadonlyArray<{ type: 'put' | 'delete'; key: string; value: string; modRevision: number; createRevision: number }>, tell = true): void {
    const newer = (c: (typeof changes)[number]) => c.modRevision > (this.entries.get(c.key)?.modRevision ?? this.tombstones.get(c.key) ?? 0);
    // the watch brings this daemon's own commits back too: those are known already, no transaction for them
    if (!changes.some(newer)) return;
    const touched = new Set<string>();
    this.store.transaction(() => {
      for (const c of changes) {
        if (!newer(c)) continue; // asked again for each: a list may change one key twice
        if (c.type === 'put') this.put(c.key, c.value, c.modRevision, c.createRevision, touched);
        else this.remove(c.key, c.modRevision, touched);
      }
    });
    if (tell) for (const network of touched) this.changed(network);
  }

  /** The revision up to which this copy holds every key under `prefix` as etcd had it. */
  seenWhole(prefix: string): number {
    return Math.max(this.watched, this.wholeAt.get(prefix) ?? 0);
  }

  /**
   * Every key under `prefix` as etcd had it at `revision` (one complete read), ahead of the
   * watch: applied as the watch would apply it (nothing newer of a key is undone; a key the read
   * lacks is deleted at `revision`), and remembered for seenWhole.
   */
  refreshPrefix(prefix: string, entries: readonly KvEntry[], revision: number): void {
    const found = new Set(entries.map((e) => e.key));
    const gone = [...this.under(prefix)].filter(([key]) => !found.has(key));
    this.apply([
      ...entries.map((e) => ({ type: 'put' as const, ...e })),
      ...gone.map(([key]) => ({ type: 'delete' as const, key, value: '', modRevision: revision, createRevision: 0 })),
    ]);
    if (revision > (this.wholeAt.get(prefix) ?? 0)) this.wholeAt.set(prefix, revision);
  }

  /** The last revision known to have changed a lease of `node` in `network` (0: none seen). */
  nodeChangedAt(network: string, node: string): number {
    return this.nodeChanges.get(`${network}\u0000${node}`) ?? 0;
  }

  private nodeChanged(network: string, node: string | null | undefined, revision: number): void {
    if (!node) return;
    const key = `${network}\u0000${node}`;
    if ((this.nodeChanges.get(key) ?? 0) < revision) this.nodeChanges.set(key, revision);
  }

  /** The watch delivered everything up to `revision`: tombstones at or before it are no longer needed. */
  watchedTo(revision: number): void {
    if (revision <= this.watched) return;
    this.watched = revision;
    for (const [key, at] of this.tombstones) if (at <= revision) this.tombstones.delete(key);
    for (const [prefix, at] of this.wholeAt) if (at <= revision) this.wholeAt.delete(prefix);
  }

  /** The journal's leases of this node, for a daemon that starts while etcd is away (DEL and CHECK work from them). */
  seed(leases: readonly LeaseRecord[]): void {
    this.store.transaction(() => {
      for (const lease of leases) {
        this.networks.add(lease.network);
        if (!this.store.leaseAt(lease.network, lease.family, lease.ip)) this.store.insertLease(lease);
      }
    });
  }

  private put(key: string, value: string, modRevision: number, createRevision: number, touched: Set<string>): void {
    const parsed = this.layout.parse(key);
    this.entries.set(key, { value, modRevision, createRevision });
    this.tombstones.delete(key);
    if (!parsed) return;
    try {
      this.putRecord(key, parsed, value, modRevision);
    } catch {
      // a value this daemon cannot read (a newer layout?): kept as an entry, so compares still see it
    }
    if ('network' in parsed) touched.add(parsed.network);
  }

  private remove(key: string, revision: number, touched: Set<string>): void {
    const parsed = this.layout.parse(key);
    this.entries.delete(key);
    this.tombstones.set(key, revision);
    if (!parsed) return;
    if (parsed.kind === 'lease') {
      this.nodeChanged(parsed.network, this.leaseNodes.get(key), revision);
      this.leaseNodes.delete(key);
      this.store.deleteLease(parsed.network, parsed.family, parsed.ip);
    }
    if (parsed.kind === 'reserved') {
      const existing = this.reservedAt(parsed.network, parsed.family, parsed.start);
      if (existing) this.store.deleteReserved(existing.id);
    }
    if ('network' in parsed) touched.add(parsed.network);
  }

  private putRecord(text: string, key: ClusterKey, value: string, modRevision: number): void {
    switch (key.kind) {
      case 'network': {
        const record = decodeNetwork(key.network, value);
        this.networks.add(key.network);
        this.store.putNetwork(key.network, record.ipam, record.updatedAt, record.file);
        this.store.setReservedConflicts(key.network, record.reservedConflicts);
        return;
      }
      case 'lease': {
        const { unit: _unit, ...lease } = decodeLease(key.network, key.family, key.ip, value);
        this.networks.add(key.network);
        this.nodeChanged(key.network, this.leaseNodes.get(text), modRevision);
        this.nodeChanged(key.network, lease.node, modRevision);
        this.leaseNodes.set(text, lease.node ?? null);
        // a new holder of a taken address overwrites it in place: the address stays occupied
        if (!this.store.replaceLease(lease)) this.store.insertLease(lease);
        return;
      }
      case 'reserved': {
        const { unit: _unit, ...record } = decodeReserved(key.network, key.family, key.start, value);
        const existing = this.reservedAt(key.network, key.family, key.start);
        if (existing) this.store.updateReserved(existing.id, record);
        else this.store.insertReserved(record, modRevision);
        return;
      }
      case 'app':
      case 'node':
      case 'repair':
        return; // kept as entries only
    }
  }

  reservedAt(network: string, family: 4 | 6, start: bigint): ReservedRecord | undefined {
    return this.store.listReserved(network).find((r) => r.family === family && r.start === start);
  }

  close(): void {
    this.store.close();
  }
}
