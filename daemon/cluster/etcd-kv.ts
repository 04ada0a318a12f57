// Kv (kv.ts) over etcd's gRPC API, through the etcd3 client, loaded only when a daemon is given
// --etcd-endpoints. The client's own retries are off: a compare-and-swap sent twice is decided
// by reading back (units.ts), not by a library that cannot know whether the first one landed.
import { readFileSync } from 'node:fs';
import type { Etcd3, IKeyValue } from 'etcd3';
import { loadEtcd, noRetryFaultHandling } from './etcd-client.js';
import { type EtcdOptions, type Kv, type KvCompare, KvCompacted, type KvEntry, type KvEvent, KvOutcomeUnknown, KvUnavailable, type KvWatch, type KvWrite, prefixEnd } from './kv.js';

/** Pages of a full read: grpc's default message limit is 4 MiB, a lease value is ~250 bytes. */
const RANGE_PAGE = 5_000;

const COMPARE_RESULT = { equal: 'Equal', greater: 'Greater', less: 'Less', not_equal: 'NotEqual' } as const;
const COMPARE_TARGET = { mod: 'Mod', create: 'Create', version: 'Version' } as const;

/** Errors that say the request was refused as such, so it did not run (anything else after sending: unknown). */
const NOT_RUN = /InvalidArgument|FailedPrecondition|ResourceExhast|ResourceExhaust|Unauthenticated|PermissionDenied|too many operations/i;

export async function connectEtcd(options: EtcdOptions): Promise<Kv> {
  const { Etcd3 } = await loadEtcd();
  const tls = options.cacert
    ? {
        credentials: {
          rootCertificate: readFileSync(options.cacert),
          ...(options.key ? { privateKey: readFileSync(options.key) } : {}),
          ...(options.cert ? { certChain: readFileSync(options.cert) } : {}),
        },
      }
    : {};
  const client = new Etcd3({
    hosts: [...options.endpoints],
    dialTimeout: 2_000,
    ...tls,
    // one attempt per call, and no per-member circuit breaker: a member refused for 5 s after
    // three failures would turn a paused member into seconds of refusals
    faultHandling: noRetryFaultHandling(),
  });
  return new EtcdKv(client);
}

class EtcdKv implements Kv {
  constructor(private readonly client: Etcd3) {}

  async rangePrefix(prefix: string, deadline: number): Promise<{ entries: KvEntry[]; revision: number }> {
    const entries: KvEntry[] = [];
    let from = prefix;
    let revision: number | undefined;
    const end = Buffer.from(prefixEnd(prefix));
    try {
      for (;;) {
        const res = await this.client.kv.range(
          { key: Buffer.from(from), range_end: end, limit: RANGE_PAGE, ...(revision !== undefined ? { revision } : {}) },
          { deadline: new Date(deadline) },
        );
        revision ??= Number(res.header.revision);
        for (const kv of res.kvs) entries.push(entryOf(kv));
        if (!res.more || res.kvs.length === 0) break;
        from = `${res.kvs[res.kvs.length - 1]!.key.toString()}\u0000`;
      }
    } catch (err) {
      throw unavailable(err);
    }
    return { entries, revision: revision! };
  }

  async getMany(keys: readonly string[], deadline: number): Promise<{ entries: KvEntry[]; revision: number }> {
    try {
      const res = await this.client.kv.txn(
        { compare: [], success: keys.map((key) => ({ request_range: { key: Buffer.from(key) } })), failure: [] },
        { deadline: new Date(deadline) },
      );
      const entries = res.responses.flatMap((r) => r.response_range.kvs.map(entryOf));
      return { entries, revision: Number(res.header.revision) };
    } catch (err) {
      throw unavailable(err);
    }
  }

  async txn(compares: readonly KvCompare[], writes: readonly KvWrite[], readOnFailure: readonly string[], deadline: number) {
    const compare = compares.map((c) => ({
      key: Buffer.from(c.key),
      ...(c.rangeEnd !== undefined ? { range_end: Buffer.from(c.rangeEnd) } : {}),
      target: COMPARE_TARGET[c.target],
      result: COMPARE_RESULT[c.result],
      ...(c.target === 'mod' ? { mod_revision: c.value } : c.target === 'create' ? { create_revision: c.value } : { version: c.value }),
    }));
    const success = writes.map((w) => ('put' in w ? { request_put: { key: Buffer.from(w.put), value: Buffer.from(w.value) } } : { request_delete_range: { key: Buffer.from(w.delete) } }));
    const failure = readOnFailure.map((key) => ({ request_range: { key: Buffer.from(key) } }));
    let res;
    try {
      res = await this.client.kv.txn({ compare, success, failure }, { deadline: new Date(deadline) });
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (NOT_RUN.test(`${(err as Error).name} ${message}`)) throw new KvUnavailable(`etcd refused the transaction: ${message}`);
      throw new KvOutcomeUnknown(message);
    }
    const current = res.succeeded ? [] : res.responses.flatMap((r) => r.response_range?.kvs.map(entryOf) ?? []);
    return { succeeded: res.succeeded, revision: Number(res.header.revision), current };
  }

  watch(prefix: string, fromRevision: number, onEvents: (events: readonly KvEvent[]) => void, onError: (error: Error) => void): KvWatch {
    let closed = false;
    const builder = this.client.watch().prefix(prefix).startRevision(String(fromRevision + 1));
    const watcher = builder.watcher();
    watcher.on('data', (res) => {
      if (closed) return;
      if (res.compact_revision && Number(res.compact_revision) > 0) {
        onError(new KvCompacted(`etcd compacted its history past revision ${fromRevision}`));
        return;
      }
      const events: KvEvent[] = (res.events ?? []).map((e) => ({
        type: e.type === 'Delete' || (e.type as unknown) === 1 ? 'delete' : 'put',
        key: e.kv.key.toString(),
        value: e.kv.value.toString(),
        modRevision: Number(e.kv.mod_revision),
        createRevision: Number(e.kv.create_revision),
      }));
      onEvents(events);
    });
    watcher.on('error', (err: Error) => {
      if (!closed) onError(err);
    });
    // The client would resume on its own, after a backoff of its own choosing, and say nothing
    // meanwhile: a copy must not go stale silently. The caller reloads and watches anew.
    watcher.on('disconnected', (err: Error) => {
      if (closed) return;
      closed = true;
      void watcher.cancel().catch(() => undefined);
      onError(err instanceof Error ? err : new Error(String(err)));
    });
    return {
      close: () => {
        closed = true;
        void watcher.cancel().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function entryOf(kv: IKeyValue): KvEntry {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision), createRevision: Number(kv.create_revision) };
}

function unavailable(err: unknown): KvUnavailable {
  return new KvUnavailable((err as Error).message ?? String(err));
}
