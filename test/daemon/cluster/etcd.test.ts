// The ground the cluster store stands on, checked against real etcd (Debian's 3.4, three members on
// loopback, test/support/etcd.ts) through the etcd3 client as the daemon loads it
// (daemon/cluster/etcd-client.ts): the harness itself, range compares, the txn size limit, and
// what the client does when a leader dies, when quorum is lost, and with a per-call deadline.
// The facts these tests pin are summarised at the top of daemon/cluster/etcd-client.ts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Etcd3, IOptions, ITxnRequest } from 'etcd3';
import type { Etcd3Module } from '../../../daemon/cluster/etcd-client.js';
import { loadEtcd, loadEtcdClient, noRetryFaultHandling } from '../../../daemon/cluster/etcd-client.js';
import { Cleanup } from '../../support/cleanup.js';
import { describeWithPrereqs } from '../../support/describe-with-prereqs.js';
import { type EtcdCluster, startEtcdCluster } from '../../support/etcd.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

const b = (s: string) => Buffer.from(s);
/** The end of the range of keys that start with `prefix` (etcd's prefix convention). */
const rangeEnd = (prefix: string) => {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  return end;
};
const elapsed = async <T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: Error }> => {
  const started = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error: error as Error };
  }
};

describeWithPrereqs('etcd harness and client facts', ['etcd'], () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let E: Etcd3Module;
  beforeAll(async () => {
    E = await loadEtcd();
    etcd = await startEtcdCluster(cleanup, { members: 3 });
    client = await etcd.client();
  });

  it('starts three members on free loopback ports (not 2379/2380) and the loader gives a working client', async () => {
    expect(etcd.endpoints).toHaveLength(3);
    for (const url of etcd.endpoints) {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(['2379', '2380']).not.toContain(new URL(url).port);
    }
    expect((await loadEtcdClient()).from).toBe('node_modules'); // unbundled, in vitest
    const key = `${etcd.prefix()}k`;
    await client.put(key).value('v');
    expect(await client.get(key).string()).toBe('v');
    expect(await etcd.leader()).toBeGreaterThanOrEqual(0);
    expect((await client.maintenance.status()).version).toBe('3.4.23');
  });

  it('a range compare MOD < rev+1 holds until a put lands in the range; VERSION == 0 fails on any key in it and holds on an empty range', async () => {
    const p = etcd.prefix('mod');
    await client.put(`${p}a`).value('1');
    await client.put(`${p}b`).value('1');
    const { header } = await client.kv.range({ key: b(p), range_end: rangeEnd(p), count_only: true });
    const rev = BigInt(header.revision);
    const unchanged: ITxnRequest = {
      compare: [{ key: b(p), range_end: rangeEnd(p), target: E.CompareTarget.Mod, result: E.CompareResult.Less, mod_revision: String(rev + 1n) }],
      success: [{ request_range: { key: b(p), range_end: rangeEnd(p), count_only: true } }],
    };
    expect((await client.kv.txn(unchanged)).succeeded).toBe(true);
    await client.put(`/outside-${p.slice(1)}x`).value('1'); // a put elsewhere changes nothing
    expect((await client.kv.txn(unchanged)).succeeded).toBe(true);
    await client.put(`${p}c`).value('1');
    const after = await client.kv.txn(unchanged);
    expect(after.succeeded).toBe(false);
    expect(BigInt(after.header.revision)).toBe(rev + 2n);

    // The raw API's enums: numbers (E.CompareTarget.Mod) or etcd3's own proto names ('Mod', as
    // typed); any other string ('MOD', etcd's Go name) is silently sent as 0, Version. `${p}a` has version 1.
    const versionIsOne = (target: unknown) => client.kv.txn({ compare: [{ key: b(`${p}a`), target: target as never, result: E.CompareResult.Equal, version: 1 }] });
    expect((await versionIsOne(E.CompareTarget.Version)).succeeded).toBe(true);
    expect((await versionIsOne('VERSION')).succeeded).toBe(true);
    expect((await versionIsOne(E.CompareTarget.Mod)).succeeded).toBe(false);
    expect((await versionIsOne('Mod')).succeeded).toBe(false);
    expect((await versionIsOne('MOD')).succeeded).toBe(true); // read as Version

    const absent = (prefix: string): ITxnRequest => ({ compare: [{ key: b(prefix), range_end: rangeEnd(prefix), target: E.CompareTarget.Version, result: E.CompareResult.Equal, version: 0 }] });
    expect((await client.kv.txn(absent(p))).succeeded).toBe(false);
    const empty = etcd.prefix('empty');
    // Over an empty range a range compare holds: etcd compares each key the range holds, none fails.
    expect((await client.kv.txn(absent(empty))).succeeded).toBe(true);
    expect((await client.kv.txn({ compare: [{ key: b(empty), range_end: rangeEnd(empty), target: E.CompareTarget.Mod, result: E.CompareResult.Less, mod_revision: 1 }] })).succeeded).toBe(true);
    // ... because etcd compares an empty range as one absent key (version, create and mod revision 0):
    expect((await client.kv.txn({ compare: [{ key: b(empty), range_end: rangeEnd(empty), target: E.CompareTarget.Create, result: E.CompareResult.Greater, create_revision: 0 }] })).succeeded).toBe(false);
    expect((await client.kv.txn({ compare: [{ key: b(empty), range_end: rangeEnd(empty), target: E.CompareTarget.Value, result: E.CompareResult.Equal, value: b('') }] })).succeeded).toBe(false);
  });

  it('a txn holds at most 128 compares and 128 ops per branch (--max-txn-ops); one more is InvalidArgument, not retried', async () => {
    const { GRPCInvalidArgumentError } = E;
    const p = etcd.prefix('ops');
    const txn = (compares: number, puts: number): ITxnRequest => ({
      compare: Array.from({ length: compares }, (_, i) => ({ key: b(`${p}${i}`), target: E.CompareTarget.Create, result: E.CompareResult.Equal, create_revision: 0 })),
      success: Array.from({ length: puts }, (_, i) => ({ request_put: { key: b(`${p}${i}`), value: b('x') } })),
      failure: Array.from({ length: puts }, (_, i) => ({ request_range: { key: b(`${p}${i}`) } })),
    });
    const full = await client.kv.txn(txn(128, 128));
    expect(full.succeeded).toBe(true);
    expect(full.responses).toHaveLength(128);
    for (const [compares, puts] of [
      [129, 1],
      [1, 129],
    ] as const) {
      const r = await elapsed(() => client.kv.txn(txn(compares, puts)));
      expect(r.error).toBeInstanceOf(GRPCInvalidArgumentError);
      expect(r.error!.message).toMatch(/etcdserver: too many operations in txn request/);
    }
  });

  /** A client of one member, with its own gRPC subchannels (grpc-js shares them per address across clients otherwise). */
  const clientOf = async (index: number, options: Partial<IOptions> = {}) => {
    const c = new E.Etcd3({ hosts: etcd.endpoints[index]!, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 }, ...options });
    cleanup.add('close client', () => c.close());
    return c;
  };
  const claim = (c: Etcd3, key: string, deadlineMs?: number) =>
    c.kv.txn(
      { compare: [{ key: b(key), target: E.CompareTarget.Create, result: E.CompareResult.Equal, create_revision: 0 }], success: [{ request_put: { key: b(key), value: b('1') } }] },
      deadlineMs === undefined ? undefined : { deadline: Date.now() + deadlineMs },
    );

  it('a per-call deadline cuts a txn off with GRPCDeadlineExceededError; with the default fault handling the member is then shunned for 5 s (BrokenCircuitError), without retries it is not', async () => {
    const leader = await etcd.leader();
    const retrying = await clientOf(leader);
    const direct = await clientOf(leader, { faultHandling: noRetryFaultHandling() });
    await retrying.put(`${etcd.prefix()}warm`).value('1');
    await direct.put(`${etcd.prefix()}warm`).value('1');
    etcd.pause(leader); // a paused leader: the call is stuck, not refused
    try {
      const p = etcd.prefix('deadline');
      const r = await elapsed(() => claim(retrying, `${p}a`, 800));
      console.info(`etcd facts: txn to a paused member, deadline 800 ms: failed after ${r.ms.toFixed(0)} ms: ${r.error?.constructor.name}: ${r.error?.message}`);
      expect(r.error).toBeInstanceOf(E.GRPCDeadlineExceededError);
      expect(r.ms).toBeGreaterThan(700);
      expect(r.ms).toBeLessThan(2000);
      // 3 attempts (the retries found the deadline passed) = 3 failures: the circuit breaker is open
      const r2 = await elapsed(() => retrying.put(`${p}b`).value('2').options({ deadline: Date.now() + 500 }).exec());
      expect((r2.error as { isBrokenCircuitError?: boolean }).isBrokenCircuitError).toBe(true);
      expect(r2.ms).toBeLessThan(100);
      // no retries, no breaker: each call runs to its own deadline; the builders take the same call options
      for (let i = 0; i < 4; i++) {
        const r3 = await elapsed(() => direct.put(`${p}c`).value('3').options({ deadline: Date.now() + 300 }).exec());
        expect(r3.error).toBeInstanceOf(E.GRPCDeadlineExceededError);
        expect(r3.ms).toBeGreaterThan(250);
      }
    } finally {
      etcd.resume(leader);
    }
    await etcd.waitHealthy();
  });

  it('the leader killed -9: a client of every member goes on (the first txn may wait for etcd\'s request timeout); the member restarts on its data and rejoins', async () => {
    const p = etcd.prefix('failover');
    const leader = await etcd.leader();
    await etcd.kill(leader, 'SIGKILL');
    const killed = performance.now();
    const first = await elapsed(() => claim(client, `${p}0`));
    console.info(`etcd facts: leader killed: the next txn (no deadline, default fault handling) ${first.error ? `failed: ${first.error.message}` : 'committed'} after ${first.ms.toFixed(0)} ms`);
    expect(first.error).toBeUndefined();
    expect(first.ms).toBeLessThan(etcd.electionMs * 2 + 5000 + 2000);
    const next = await elapsed(() => claim(client, `${p}1`));
    expect(next.error).toBeUndefined();
    console.info(`etcd facts: leader killed: a txn ${(performance.now() - killed).toFixed(0)} ms after the kill took ${next.ms.toFixed(0)} ms`);
    expect(await etcd.leader()).not.toBe(leader);
    await etcd.restart(leader);
    await etcd.waitHealthy();
    const rejoined = await clientOf(leader);
    await rejoined.put(`${p}after`).value('1');
    expect(await rejoined.get(`${p}0`).string()).toBe('1');
  });

  it('quorum lost: a txn fails with GRPCUnavailableError after etcd\'s request timeout (5 s + 2 election timeouts), at once with a deadline; txns succeed again once quorum is back', async () => {
    const p = etcd.prefix('quorum');
    const down = await etcd.stopQuorum();
    expect(down).toHaveLength(2);
    const up = [0, 1, 2].find((i) => !down.includes(i))!;
    const lone = await clientOf(up, { faultHandling: noRetryFaultHandling() });
    try {
      const noDeadline = await elapsed(() => claim(lone, `${p}a`));
      console.info(`etcd facts: quorum lost, one member's client, no retries, no deadline: failed after ${noDeadline.ms.toFixed(0)} ms: ${noDeadline.error?.constructor.name}: ${noDeadline.error?.message}`);
      expect(noDeadline.error).toBeInstanceOf(E.GRPCUnavailableError);
      expect(noDeadline.error!.message).toMatch(/etcdserver: request timed out/);
      expect(E.isRecoverableError(noDeadline.error!)).toBe(true);
      expect(noDeadline.ms).toBeGreaterThan(5000);
      const everyMember = await elapsed(() => claim(client, `${p}b`));
      console.info(`etcd facts: quorum lost, client of every member, default fault handling, no deadline: failed after ${everyMember.ms.toFixed(0)} ms: ${everyMember.error?.constructor.name}: ${everyMember.error?.message}`);
      expect(everyMember.error).toBeDefined();
      const withDeadline = await elapsed(() => claim(lone, `${p}c`, 1000));
      console.info(`etcd facts: quorum lost, deadline 1000 ms: failed after ${withDeadline.ms.toFixed(0)} ms: ${withDeadline.error?.constructor.name}: ${withDeadline.error?.message}`);
      // Which side notices the deadline first is a race: the client (DeadlineExceeded), or the
      // member the deadline travelled to (Unknown, "context deadline exceeded"); both were seen
      // here (a fresh Debian container gave the second). Either way the call ends at the deadline.
      const cutOff = withDeadline.error instanceof E.GRPCDeadlineExceededError || (withDeadline.error instanceof E.GRPCUnknownError && /context deadline exceeded/.test(withDeadline.error.message));
      expect(cutOff, `${withDeadline.error?.constructor.name}: ${withDeadline.error?.message}`).toBe(true);
      expect(withDeadline.ms).toBeLessThan(2500);
    } finally {
      await etcd.restoreQuorum();
    }
    const back = performance.now();
    const after = await clientOf(up, { faultHandling: noRetryFaultHandling() });
    for (let i = 0; ; i++) {
      const r = await elapsed(() => claim(after, `${p}d${i}`, 3000));
      if (!r.error) break;
      if (performance.now() - back > 20_000) throw r.error;
    }
    console.info(`etcd facts: quorum back: first txn committed ${(performance.now() - back).toFixed(0)} ms after all members were healthy`);
    // the txns cut off while quorum was lost were never applied (nothing had quorum to commit them)
    expect((await client.get(`${p}a`).string()) ?? null).toBeNull();
  });
}, { timeout: 90_000 });

describeWithPrereqs('etcd over TLS', ['etcd', 'openssl'], () => {
  it('serves https with client certificates only: the harness client gets in, one without a certificate does not', async () => {
    const etcd = await startEtcdCluster(cleanup, { members: 1, tls: true });
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(etcd.tls).toBeDefined();
    const client = await etcd.client();
    await client.put('/tls/k').value('v');
    expect(await client.get('/tls/k').string()).toBe('v');
    const { Etcd3 } = await loadEtcd();
    const { readFileSync } = await import('node:fs');
    const anonymous = new Etcd3({ hosts: etcd.endpoints, credentials: { rootCertificate: readFileSync(etcd.tls!.ca) }, dialTimeout: 2000 });
    cleanup.add('close client', () => anonymous.close());
    await expect(anonymous.get('/tls/k').options({ deadline: Date.now() + 3000 }).string()).rejects.toThrow();
  });
}, { timeout: 60_000 });
