// This node's own account of its cluster attachments, in the daemon's SQLite file (same fsync as
// its history): what etcd holds for this node's containers, written after each etcd commit. It
// lets DEL and CHECK answer while etcd is away, and lets a restarted daemon tell its claims in
// etcd from orphans. The outbox holds what etcd is still owed: releases taken while it was away
// and the undo of transactions whose outcome was unknown.
import type Database from 'better-sqlite3';
import { type Family, fromKey, toKey } from '../../src/address.js';
import type { LeaseRecord } from '../store.js';
import { decodeLease, encodeLease } from './keys.js';

export type AttachmentState = 'attached' | 'releasing' | 'conflict';

export interface JournalAttachment {
  readonly lease: LeaseRecord;
  readonly state: AttachmentState;
  readonly detail: string | null;
}

export interface OutboxEntry {
  readonly key: string;
  readonly unit: string;
  readonly network: string;
  /** The value to put back if the key still carries `unit`; null: delete it. */
  readonly revertTo: string | null;
  readonly createdAt: number;
}

interface AttachmentRow {
  network: string;
  family: number;
  ip: string;
  lease: string;
  state: string;
  detail: string | null;
}

export class Journal {
  private readonly sql;

  constructor(private readonly db: Database.Database) {
    this.sql = {
      upsert: db.prepare(
        `INSERT INTO cluster_attachments (network, family, ip, container_id, ifname, lease, state, detail) VALUES (?, ?, ?, ?, ?, ?, 'attached', NULL)
         ON CONFLICT (network, family, ip) DO UPDATE SET container_id = excluded.container_id, ifname = excluded.ifname, lease = excluded.lease, state = 'attached', detail = NULL`,
      ),
      remove: db.prepare('DELETE FROM cluster_attachments WHERE network = ? AND family = ? AND ip = ?'),
      setState: db.prepare('UPDATE cluster_attachments SET state = ?, detail = ? WHERE network = ? AND family = ? AND ip = ?'),
      ofAttachment: db.prepare('SELECT * FROM cluster_attachments WHERE network = ? AND container_id = ? AND ifname = ?'),
      all: db.prepare('SELECT * FROM cluster_attachments ORDER BY network, family, ip'),
      ofNetwork: db.prepare('SELECT * FROM cluster_attachments WHERE network = ? ORDER BY family, ip'),
      owe: db.prepare('INSERT OR REPLACE INTO cluster_outbox (key, unit, network, revert_to, created_at) VALUES (?, ?, ?, ?, ?)'),
      paid: db.prepare('DELETE FROM cluster_outbox WHERE key = ? AND unit = ?'),
      outbox: db.prepare('SELECT * FROM cluster_outbox ORDER BY created_at'),
    };
  }

  /** Run fn in one transaction of the daemon's file (nested: a savepoint). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** A committed lease of a cluster network: kept when it is this node's attachment, dropped otherwise. */
  follow(network: string, family: Family, ip: bigint, lease: LeaseRecord | undefined, node: string): void {
    if (attachedTo(lease, node)) {
      this.sql.upsert.run(network, family, toKey(family, ip), lease.containerId, lease.ifname, encodeLease(lease, ''));
    } else this.sql.remove.run(network, family, toKey(family, ip));
  }

  forget(network: string, family: Family, ip: bigint): void {
    this.sql.remove.run(network, family, toKey(family, ip));
  }

  setState(lease: LeaseRecord, state: AttachmentState, detail: string | null): void {
    this.sql.setState.run(state, detail, lease.network, lease.family, toKey(lease.family, lease.ip));
  }

  ofAttachment(network: string, containerId: string, ifname: string): JournalAttachment[] {
    return (this.sql.ofAttachment.all(network, containerId, ifname) as AttachmentRow[]).map(toAttachment);
  }

  attachments(network?: string): JournalAttachment[] {
    const rows = network === undefined ? this.sql.all.all() : this.sql.ofNetwork.all(network);
    return (rows as AttachmentRow[]).map(toAttachment);
  }

  owe(entry: OutboxEntry): void {
    this.sql.owe.run(entry.key, entry.unit, entry.network, entry.revertTo, entry.createdAt);
  }

  paid(key: string, unit: string): void {
    this.sql.paid.run(key, unit);
  }

  outbox(): OutboxEntry[] {
    return (this.sql.outbox.all() as Array<{ key: string; unit: string; network: string; revert_to: string | null; created_at: number }>).map((r) => ({
      key: r.key,
      unit: r.unit,
      network: r.network,
      revertTo: r.revert_to,
      createdAt: r.created_at,
    }));
  }
}

function toAttachment(row: AttachmentRow): JournalAttachment {
  const { unit: _unit, ...lease } = decodeLease(row.network, row.family as Family, fromKey(row.ip), row.lease);
  return { lease, state: row.state as AttachmentState, detail: row.detail };
}

/** Whether a lease is an attachment of this node (the journal keeps a line for it). */
export function attachedTo(lease: LeaseRecord | undefined, node: string): lease is LeaseRecord {
  return lease !== undefined && lease.containerId !== null && lease.ifname !== null && lease.node === node;
}
