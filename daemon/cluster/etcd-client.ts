// Loads the etcd client (etcd3 1.1.2, with grpc-js and protobufjs) only when a daemon is given
// --etcd-endpoints: a daemon without cluster networks never parses it (and the plugin must never
// load it). Packaged, it is etcd-client.cjs beside the executable (scripts/build.mjs bundles it
// apart from reservoird, with etcd3's .proto service definitions inlined; a single executable's
// own require() loads built-in modules only, so it is loaded through createRequire); from
// dist/ or build/test-bundles/ it is the etcd-client.cjs beside the bundle; from sources
// (vitest) it comes from node_modules. The same order as daemon/kube/load.ts.
//
// Facts about etcd 3.4.23 (Debian 12) and this client, each checked by
// test/daemon/cluster/etcd.test.ts against a real three-member cluster:
// - The low-level API is `client.kv.txn({ compare, success, failure }, callOptions)`; keys and
//   values are Buffers, revisions are decimal strings (`longs: String`), and the answer is
//   `{ header: { revision }, succeeded, responses }`. Enums are etcd3's numbers
//   (CompareTarget.Mod, CompareResult.Less) or its proto's names ('Mod', 'Less'); any other
//   string (etcd's Go names 'MOD', 'LESS') is silently sent as 0: Version, Equal.
// - A Compare with `range_end` applies to every key in [key, range_end): `Mod < rev+1` over a
//   prefix holds until a put lands in it (a put elsewhere does not matter); `Version == 0` fails
//   once any key exists in the range. An EMPTY range compares as one absent key: version,
//   create and mod revision 0, so `Version == 0`, `Mod < n` (n > 0) hold, `Create > 0` fails, and
//   a Value compare always fails.
// - --max-txn-ops (default 128) bounds each list on its own: at most 128 compares, 128 success
//   ops and 128 failure ops. One more is InvalidArgument: GRPCInvalidArgumentError
//   'etcdserver: too many operations in txn request', not retried.
// - etcd3 retries by itself: its default global policy runs a call up to 3 times on any
//   "recoverable" error (gRPC UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, CANCELLED,
//   ABORTED, RESOURCE_EXHAUSTED), each time on another member, and a per-member circuit breaker
//   opens for 5 s after 3 consecutive failures (calls then fail at once with a cockatiel
//   BrokenCircuitError, `isBrokenCircuitError: true`, 'Execution prevented because the circuit
//   breaker is open'). So a txn that was sent may be sent again: use noRetryFaultHandling()
//   below where the caller decides "outcome unknown".
// - The leader killed -9, a client of every member, default policy, no deadline: the next txn
//   committed after ~7.0 s (its first attempt waited out etcd's request timeout, the retry
//   went through), the following ones in ~16 ms.
// - Quorum lost (2 of 3 killed): a txn to the live member fails after etcd's request timeout,
//   7.0 s here (5 s + 2 x --election-timeout 1000), with GRPCUnavailableError
//   '14 UNAVAILABLE: etcdserver: request timed out'; a client of every member (default policy)
//   fails after 7-14 s (its retries), with the last attempt's error: GRPCUnavailableError
//   (ECONNREFUSED of a dead member) or GRPCUnknownError '2 UNKNOWN: context deadline exceeded'.
//   Nothing is committed. Quorum back: the next txn commits within ~15 ms of every
//   member answering /health.
// - A per-call deadline works: `client.kv.txn(req, { deadline: Date.now() + ms })` (and
//   `.options({ deadline })` on the builders) ends the call at the deadline (+ ~10-110 ms) with
//   GRPCDeadlineExceededError ('4 DEADLINE_EXCEEDED: Deadline exceeded ...'), or, when the member
//   the deadline travelled to notices first, GRPCUnknownError ('2 UNKNOWN: context deadline
//   exceeded'; seen with quorum lost in a fresh Debian container), quorum lost or the member
//   SIGSTOPped; with the default policy the retries find the deadline passed and fail at
//   once, but they count for the breaker. A txn cut off may still commit later: outcome unknown.
// - grpc-js shares one subchannel per address across clients: a new client of a member that went
//   away and came back may fail at once ('UNAVAILABLE: No connection established') until the
//   shared reconnect backoff ends; grpcOptions { 'grpc.use_local_subchannel_pool': 1 } keeps a
//   client's connections its own.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const ETCD_CLIENT_FILE = 'etcd-client.cjs';

export type Etcd3Module = typeof import('etcd3');

let loaded: { etcd3: Etcd3Module; from: string } | undefined;

/** The library, and where it came from (for the start-up log). Loaded once per process. */
export async function loadEtcdClient(): Promise<{ etcd3: Etcd3Module; from: string }> {
  if (loaded) return loaded;
  const script = typeof __filename === 'string' ? __filename : undefined;
  for (const dir of [dirname(process.execPath), ...(script ? [dirname(script)] : [])]) {
    const file = join(dir, ETCD_CLIENT_FILE);
    if (existsSync(file)) return (loaded = { etcd3: createRequire(file)(file) as Etcd3Module, from: file });
  }
  try {
    return (loaded = { etcd3: await import('etcd3'), from: 'node_modules' });
  } catch (err) {
    const beside = join(dirname(process.execPath), ETCD_CLIENT_FILE);
    throw new Error(`the etcd client is missing: install ${ETCD_CLIENT_FILE} (build/bin, from npm run package) as ${beside}, beside reservoird (${(err as Error).message})`);
  }
}

/**
 * Fault handling that sends each call once, to one member, and hands every error to the caller:
 * no retry on another member (the default policy retries up to 3 times, a txn included) and no
 * circuit breaker (the default opens one for 5 s after 3 failures). For `new Etcd3({ hosts,
 * faultHandling: noRetryFaultHandling() })`, where "outcome unknown" is the caller's to decide.
 * etcd3 calls nothing of a policy but execute() (connection-pool.js, 1.1.2).
 */
type FaultHandling = NonNullable<import('etcd3').IOptions['faultHandling']>;

export function noRetryFaultHandling(): FaultHandling {
  const once = {
    execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      return Promise.resolve().then(() => fn({ signal: new AbortController().signal }));
    },
  } as unknown as NonNullable<FaultHandling['global']>;
  return { global: once, host: () => once };
}

/** The etcd3 module (see loadEtcdClient). */
export async function loadEtcd(): Promise<Etcd3Module> {
  return (await loadEtcdClient()).etcd3;
}

/**
 * The packaged daemon's proof that it can load the client and reach etcd: a put, a read back
 * and a delete of one key under /reservoir-selftest/. cmd/reservoird.ts runs it instead of the
 * daemon when RESERVOIR_ETCD_SELFTEST names endpoints (comma-separated); not a user interface.
 */
export async function etcdSelfTest(endpoints: string): Promise<{ from: string; revision: string; value: string }> {
  const { etcd3, from } = await loadEtcdClient();
  const client = new etcd3.Etcd3({ hosts: endpoints.split(','), dialTimeout: 5000 });
  try {
    const key = `/reservoir-selftest/${process.pid}`;
    const deadline = () => ({ deadline: Date.now() + 10_000 });
    await client.put(key).value('ok').options(deadline());
    const value = (await client.get(key).options(deadline()).string()) ?? '';
    const { header } = await client.delete().key(key).options(deadline()).exec();
    return { from, revision: header.revision, value };
  } finally {
    client.close();
  }
}
