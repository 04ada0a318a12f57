// Races on reserved IPs: many ADDs asking for the same free reserved IP at once. Exactly one wins;
// every other gets 101 naming the winner's container and offering up to 5 free reserved IPs of
// the same group. Once in-process (50 concurrent runPlugin calls), once with 50 real plugin
// processes (node reservoir.cjs).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type PluginOutcome, type TestDaemon, addOk, ipsOf, netConf, op, plugin, reservedStates, startTestDaemon } from './support.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RACERS = 50;

let td: TestDaemon;
beforeEach(async () => {
  td = await startTestDaemon();
});
afterEach(async () => {
  await td.close();
});

/** .20-.29 group "db", .30-.31 group "tiny", .32 ungrouped. */
const conf = () =>
  netConf('race', td.socket, {
    ranges: [[{ subnet: '10.99.0.0/24', rangeStart: '10.99.0.10', rangeEnd: '10.99.0.60' }]],
    reserved: [{ entry: '10.99.0.20-10.99.0.29', group: 'db' }, { entry: '10.99.0.30-10.99.0.31', group: 'tiny' }, '10.99.0.32'],
  });

const ids = Array.from({ length: RACERS }, (_, i) => `racer-${String(i).padStart(2, '0')}`);

/** One winner with the IP; every loser 101 naming the winner and offering `offered` exactly. */
function judge(outcomes: Array<{ id: string; exit: number; out: Record<string, unknown> }>, ip: string, offered: string[]): string {
  const winners = outcomes.filter((o) => o.exit === 0);
  expect(winners.map((w) => w.id)).toHaveLength(1);
  const winner = winners[0]!;
  expect(ipsOf(winner.out)).toEqual([ip]);
  const losers = outcomes.filter((o) => o.exit !== 0);
  expect(losers).toHaveLength(RACERS - 1);
  for (const loser of losers) {
    const { code, msg } = loser.out as { code: number; msg: string };
    expect(code).toBe(101);
    expect(msg).toContain(`requested IP ${ip} is in use by container ${winner.id}`);
    for (const other of outcomes) if (other !== winner) expect(msg).not.toContain(other.id);
    const listed = /: ([\d., ]+)$/.exec(msg)?.[1]?.split(', ') ?? [];
    expect(listed).toEqual(offered);
  }
  return winner.id;
}

describe('rule 7: concurrent requests for the same free reserved IP', () => {
  it('50 concurrent in-process plugin ADDs: exactly one wins, the rest get 101 with the holder and 5 free IPs of the group', async () => {
    await addOk(conf(), { containerId: 'warmup', args: { IP: '10.99.0.21' } }); // registers the network, takes one of the group
    const outcomes = await Promise.all(
      ids.map(async (id) => ({ id, ...(await plugin('ADD', conf(), { containerId: id, args: { IP: '10.99.0.24' } })) })),
    );
    const winner = judge(outcomes, '10.99.0.24', ['10.99.0.20', '10.99.0.22', '10.99.0.23', '10.99.0.25', '10.99.0.26']);
    const used = await reservedStates(td.socket, 'race', 'used');
    expect([...used.keys()]).toEqual(['10.99.0.21', '10.99.0.24']);
    expect(used.get('10.99.0.24').attachment).toBe(`${winner}/eth0`);
    expect((await op(td.socket, 'leases')).leases).toHaveLength(2);
  });

  it('the offer lists fewer when the group has fewer free, and none left is said so', async () => {
    await addOk(conf(), { containerId: 'warmup' });
    const outcomes = await Promise.all(
      ids.map(async (id) => ({ id, ...(await plugin('ADD', conf(), { containerId: id, annotations: { 'reservoir.io/ip': '10.99.0.30' } })) })),
    );
    judge(outcomes, '10.99.0.30', ['10.99.0.31']);
    await addOk(conf(), { containerId: 'last', args: { RESERVOIR_GROUP: 'tiny' } });
    const none = await plugin('ADD', conf(), { containerId: 'late', args: { IP: '10.99.0.31' } });
    expect(none.out).toMatchObject({ code: 101 });
    expect(none.out.msg).toContain('container last');
    expect(none.out.msg).toContain('no free IP left in reserved group "tiny"');
  });

  it('50 concurrent group requests for a group of 10: 10 distinct IPs of it, 40 get 103', async () => {
    await addOk(conf(), { containerId: 'warmup' });
    const outcomes = await Promise.all(ids.map((id) => plugin('ADD', conf(), { containerId: id, args: { RESERVOIR_GROUP: 'db' } })));
    const won = outcomes.filter((o) => o.exit === 0).flatMap((o) => ipsOf(o.out));
    expect(won.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `10.99.0.${20 + i}`));
    const lost = outcomes.filter((o) => o.exit !== 0);
    expect(lost).toHaveLength(40);
    for (const o of lost) expect(o.out.code).toBe(103);
  });
});

describe('rule 7 with real plugin processes', () => {
  let bundle: string;
  let buildDir: string | undefined;

  beforeAll(async () => {
    ({ bundle, buildDir } = await pluginBundle());
  }, 120_000);
  afterAll(() => {
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  });

  it('50 concurrent `node reservoir.cjs` ADDs: exactly one wins, the rest get 101 with the holder and 5 free IPs', async () => {
    await addOk(conf(), { containerId: 'warmup', args: { IP: '10.99.0.20' } });
    const config = JSON.stringify(conf());
    const outcomes = await Promise.all(ids.map(async (id) => ({ id, ...(await runProcess(bundle, id, config, 'IP=10.99.0.27')) })));
    const winner = judge(outcomes, '10.99.0.27', ['10.99.0.21', '10.99.0.22', '10.99.0.23', '10.99.0.24', '10.99.0.25']);
    const used = await reservedStates(td.socket, 'race', 'used');
    expect([...used.keys()]).toEqual(['10.99.0.20', '10.99.0.27']);
    expect(used.get('10.99.0.27').attachment).toBe(`${winner}/eth0`);
  }, 120_000);
});

function runProcess(bundle: string, containerId: string, config: string, args: string): Promise<PluginOutcome> {
  const node = existsSync(join(ROOT, 'node_modules', '.bin', 'node')) ? join(ROOT, 'node_modules', '.bin', 'node') : process.execPath;
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: containerId,
    CNI_IFNAME: 'eth0',
    CNI_NETNS: `/var/run/netns/${containerId}`,
    CNI_ARGS: args,
    CNI_PATH: '/opt/cni/bin',
  };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [bundle], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (exit) => {
      try {
        resolvePromise({ exit: exit ?? -1, out: JSON.parse(stdout) as Record<string, unknown> });
      } catch {
        reject(new Error(`plugin ${containerId} exited ${exit} with stdout ${JSON.stringify(stdout)} stderr ${stderr.slice(0, 2000)}`));
      }
    });
    child.stdin.end(config);
  });
}

/** dist/reservoir.cjs when it is newer than every source of the plugin, else a fresh build in a temp dir. */
async function pluginBundle(): Promise<{ bundle: string; buildDir: string | undefined }> {
  const dist = join(ROOT, 'dist', 'reservoir.cjs');
  const sources = [join(ROOT, 'cmd', 'reservoir.ts'), ...readdirSync(join(ROOT, 'src')).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, 'src', f))];
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (existsSync(dist) && statSync(dist).mtimeMs >= newest) return { bundle: dist, buildDir: undefined };
  const buildDir = mkdtempSync(join(tmpdir(), 'rsv-bundle-'));
  const node = join(ROOT, 'node_modules', '.bin', 'node');
  if (['reservoir', 'reservoird', 'reservoirctl'].every((n) => existsSync(join(ROOT, 'cmd', `${n}.ts`)))) {
    // The project's own build, into a temp dir: a concurrent `npm run build` keeps dist/ to itself.
    const built = spawnSync(existsSync(node) ? node : process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--outdir', buildDir], { cwd: ROOT, encoding: 'utf8' });
    if (built.status === 0 && existsSync(join(buildDir, 'reservoir.cjs'))) return { bundle: join(buildDir, 'reservoir.cjs'), buildDir };
  }
  // The CLI entry is missing or does not build: bundle the plugin alone, as build.mjs would.
  await esbuild.build({
    entryPoints: [join(ROOT, 'cmd', 'reservoir.ts')],
    outfile: join(buildDir, 'reservoir.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    banner: { js: 'var __reservoir_import_meta_url=require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': '__reservoir_import_meta_url', 'import.meta.filename': '__filename', 'import.meta.dirname': '__dirname' },
    nodePaths: [join(ROOT, 'node_modules')],
    absWorkingDir: ROOT,
    logLevel: 'silent',
  });
  return { bundle: join(buildDir, 'reservoir.cjs'), buildDir };
}
