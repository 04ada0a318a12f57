// The PACKAGED reservoird and the etcd client: a Node SEA's own require() loads built-in modules
// only, so the daemon loads etcd3 (grpc-js, its .proto definitions inlined at build time) from
// etcd-client.cjs beside itself (daemon/cluster/etcd-client.ts), and only when it needs it. The
// hidden self-test (RESERVOIR_ETCD_SELFTEST, cmd/reservoird.ts) proves the packaged client talks
// gRPC to a real etcd; the executable itself holds none of grpc-js.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { describeWithPrereqs } from '../support/describe-with-prereqs.js';
import { startEtcdCluster } from '../support/etcd.js';
import { ETCD_CLIENT, ensurePackaged, snapshotBinaries } from './support.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run(), 60_000);

describeWithPrereqs('the packaged daemon and the etcd client', ['etcd'], () => {
  it('loads etcd-client.cjs from beside itself and reaches a real etcd; the executable embeds no grpc-js', async () => {
    ensurePackaged();
    const bin = snapshotBinaries(cleanup.tempDir('e2e-etcd', tmpdir()));
    const etcd = await startEtcdCluster(cleanup, { members: 3 });
    // a bare environment from /, as a unit would start it
    const r = spawnSync(join(bin, 'reservoird'), [], { cwd: '/', env: { RESERVOIR_ETCD_SELFTEST: etcd.endpoints.join(',') }, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const answer = JSON.parse(r.stdout) as { from: string; revision: string; value: string };
    expect(answer.from).toBe(join(bin, ETCD_CLIENT));
    expect(answer.value).toBe('ok');
    expect(Number(answer.revision)).toBeGreaterThan(1);
    // esbuild marks each bundled module with its path: yargs is in, grpc-js and etcd3 are not
    const exe = readFileSync(join(bin, 'reservoird'));
    expect(exe.includes('node_modules/yargs/')).toBe(true);
    for (const pkg of ['node_modules/@grpc/grpc-js/', 'node_modules/etcd3/', 'node_modules/protobufjs/']) expect(exe.includes(pkg), pkg).toBe(false);
  });
}, { timeout: 300_000 });
