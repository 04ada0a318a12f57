// What the cluster store needs of etcd, and nothing of how it is reached: ranges at a revision,
// compare-and-swap transactions, a watch. etcd-kv.ts implements it over the etcd3 client.
//
// Errors: a call that fails before anything was sent, or a read, throws KvUnavailable. A
// transaction cut off after it was sent (deadline, connection lost) throws KvOutcomeUnknown:
// it may or may not have committed, and only a read can tell (every value carries the unit
// that wrote it; keys.ts unitOf).

/** Where the cluster networks live (reservoird --etcd-*). */
export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

export const DEFAULT_ETCD_PREFIX = '/reservoir';

export interface KvEntry {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
}

/** A condition on one key, or on every key of [key, rangeEnd) (a range with no key passes). */
export interface KvCompare {
  readonly key: string;
  readonly rangeEnd?: string;
  readonly target: 'mod' | 'create' | 'version';
  readonly result: 'equal' | 'less' | 'greater' | 'not_equal';
  readonly value: number;
}

export type KvWrite = { readonly put: string; readonly value: string } | { readonly delete: string };

export interface KvTxnResult {
  readonly succeeded: boolean;
  /** The store's revision after the transaction (its own, when it succeeded). */
  readonly revision: number;
  /** When it failed: the current entries of the keys asked for (absent keys left out). */
  readonly current: readonly KvEntry[];
}

export interface KvEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
}

export interface KvWatch {
  close(): void;
}

export interface Kv {
  /** Every entry under the prefix at one revision (paged underneath), and that revision. */
  rangePrefix(prefix: string, deadline: number): Promise<{ entries: KvEntry[]; revision: number }>;
  /** The entries of these keys now (absent keys left out), and the revision read. */
  getMany(keys: readonly string[], deadline: number): Promise<{ entries: KvEntry[]; revision: number }>;
  /** If every compare holds, apply the writes; otherwise read `readOnFailure`. */
  txn(compares: readonly KvCompare[], writes: readonly KvWrite[], readOnFailure: readonly string[], deadline: number): Promise<KvTxnResult>;
  /**
   * Events under the prefix after `fromRevision`, in revision order, batched by revision;
   * `onError` when the watch ends (compacted history, closed): the caller reloads.
   */
  watch(prefix: string, fromRevision: number, onEvents: (events: readonly KvEvent[]) => void, onError: (error: Error) => void): KvWatch;
  close(): Promise<void>;
}

export class KvUnavailable extends Error {}

export class KvOutcomeUnknown extends Error {}

/** Compacted history: the watch cannot resume, reload from a fresh range. */
export class KvCompacted extends Error {}

/** The smallest key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
