#!/usr/bin/env node
// reservoir's benchmark suite: `npm run bench` (as root, for the namespace storm).
//
//   BENCH_QUICK=1   fewer repeats (a minute or two instead of several)
//   BENCH_ONLY=a,b  run only these sections: floor, throughput, scale, race, storm, observe, cluster,
//                   cluster-floor (the raw etcd floor of cluster alone: no daemon, nothing packaged)
//   BENCH_BIN=DIR   use already packaged executables (DIR/reservoir, DIR/reservoird and their
//                   addons, e.g. build/bin) instead of packaging the current
//                   sources privately into a temp dir with scripts/package.mjs's own recipe
//
// The floor section names the plugin's runtime (bun, scripts/bun.mjs) and measures the plugin
// against that runtime's bare start-up (`bun -e 0`) and against Debian's host-local.
//
// Everything is measured as a RATIO against a reference taken in the same run, interleaved, and
// summarised by medians: the machine is shared and noisy, absolute times are not comparable from
// one run to the next. Prints a table, writes bench/results.json, removes every temp dir, daemon,
// namespace and bridge it made, and exits 0 even when a target is missed (it prints MISSED).
// Benchmarks are not tests: nothing here runs under `npm test`.
//
// Needs Debian's golang-go: the throughput load generator (bench/loadgen.go, built into the temp
// dir) and the storm's libcni harness (test/harness) are Go programs.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { request as httpRequest } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleFile } from '../scripts/build.mjs';
import { cniBody, median, percentile, rawRequest } from './http.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const SECTIONS = ['floor', 'throughput', 'scale', 'race', 'storm', 'observe', 'cluster', 'cluster-floor'];
const N = {
  floorRepeats: QUICK ? 15 : 200,
  tputRepeats: QUICK ? 1 : 5,
  tputCount: QUICK ? { 1: 150, 16: 1500, 64: 3000 } : { 1: 600, 16: 6000, 64: 16000 },
  scaleAdds: QUICK ? 300 : 2000,
  scaleStartups: QUICK ? 1 : 3,
  raceRepeats: QUICK ? 1 : 5,
  raceProcs: 50,
  storm: QUICK ? 40 : 200,
  stormConc: 8,
  scrapes: QUICK ? 20 : 100,
  observeAdds: QUICK ? 300 : 1500,
  historyLines: QUICK ? 20_000 : 100_000,
  clusterCount: QUICK ? { 1: 150, 16: 900, 48: 1500 } : { 1: 500, 16: 3000, 48: 4800 },
  clusterRepeats: QUICK ? 1 : 3,
  clusterRaceProcs: 30,
};
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const rows = [];
const results = { startedAt: new Date().toISOString(), quick: QUICK, machine: {}, sections: {} };
const tmp = mkdtempSync(join(tmpdir(), 'reservoir-bench-'));
const daemons = new Set();
const seaNames = [];
let cleanupNetns; // a test/support/cleanup.ts Cleanup while the storm runs
let cleanupCluster; // and one while the cluster floor runs alone (its etcd members, their data)
let h; // bench/helpers.ts, bundled (loadHelpers)

function log(msg) {
  process.stderr.write(`[bench +${(process.uptime()).toFixed(1)}s] ${msg}\n`);
}
const wanted = (section) => !ONLY || ONLY.has(section);
const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** One line of the final table. target: { op: '<=' | '>=', value } or undefined. */
function row(section, metric, value, unit, target, note = '') {
  let status = '';
  if (target) {
    const ok = target.op === '<=' ? value <= target.value : value >= target.value;
    status = Number.isFinite(value) ? (ok ? 'met' : 'MISSED') : 'MISSED';
  }
  rows.push({ section, metric, value, unit, target: target ? `${target.op} ${target.value}` : '', status, note });
}

// ---------------------------------------------------------------------------------------------
// Set-up: the TypeScript helpers (bundled), the packaged executables

/** Bundle bench/helpers.ts (and what it imports: test support, store, services) to one CJS file. */
async function loadHelpers() {
  const out = await bundleFile({ entry: join(ROOT, 'bench', 'helpers.ts'), outfile: join(tmp, 'helpers.cjs'), external: ['esbuild', 'etcd3'] });
  return createRequire(out)(out);
}

/** The packaged plugin and daemon: BENCH_BIN, or the current sources packaged into tmp/bin. */
async function packaged() {
  const dir = join(tmp, 'bin');
  mkdirSync(dir, { recursive: true });
  if (process.env.BENCH_BIN) {
    const from = resolve(process.env.BENCH_BIN);
    for (const f of ['reservoir', 'reservoird', 'better_sqlite3.node', 'reservoir_call.node']) {
      if (!existsSync(join(from, f))) throw new Error(`BENCH_BIN=${from} has no ${f}; run npm run package`);
    }
    return { plugin: join(from, 'reservoir'), daemon: join(from, 'reservoird'), source: from };
  }
  const { buildBundles } = await import('../scripts/build.mjs');
  const { findNodeBinary, makeSea } = await import('../scripts/package.mjs');
  const { compilePlugin } = await import('../scripts/bun.mjs');
  const { outputs, nativeCall, kubeClient, etcdClient } = await buildBundles({ outdir: join(tmp, 'dist'), log: () => undefined });
  const node = findNodeBinary();
  log(`packaging reservoir (bun build --compile, as scripts/package.mjs does) into ${dir}`);
  compilePlugin(join(dir, 'reservoir'));
  for (const name of ['reservoird']) {
    const seaName = `bench-${process.pid}-${name}`;
    seaNames.push(seaName);
    log(`packaging ${name} (SEA, as scripts/package.mjs does) into ${dir}`);
    // build/sea is shared with scripts/package.mjs runs of other people: retry if our blob vanished.
    for (let attempt = 1; ; attempt++) {
      try {
        makeSea(node, { name: seaName, main: outputs[name], out: join(dir, name) });
        break;
      } catch (err) {
        if (attempt >= 4) throw err;
        log(`packaging ${name}: ${String(err?.message ?? err).split('\n')[0]}; retrying`);
      }
    }
  }
  const req = createRequire(join(ROOT, 'package.json'));
  const addon = join(dirname(req.resolve('better-sqlite3/package.json')), 'prebuilds', `${process.platform}-${process.arch}.node`);
  copyFileSync(addon, join(dir, 'better_sqlite3.node'));
  copyFileSync(nativeCall, join(dir, 'reservoir_call.node'));
  // the clients reservoird loads from beside itself (the cluster section needs etcd's)
  copyFileSync(kubeClient, join(dir, basename(kubeClient)));
  copyFileSync(etcdClient, join(dir, basename(etcdClient)));
  return { plugin: join(dir, 'reservoir'), daemon: join(dir, 'reservoird'), source: 'current sources, packaged into a temp dir' };
}

// ---------------------------------------------------------------------------------------------
// Daemons

function procStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } catch {
    return { rssMb: NaN, hwmMb: NaN };
  }
}

/** Start a packaged reservoird (test/support/daemon.ts) on its own socket and state dir; resolves once /v1/health answers. */
async function startDaemon(bin, name, { stateDir = join(tmp, name), extraArgs = [] } = {}) {
  const d = await h.DaemonProcess.spawn({ executable: bin.daemon, socket: join(tmp, `${name}.sock`), stateDir, path: PATH_ENV, cwd: tmp, extraArgs });
  daemons.add(d);
  d.name = name;
  d.startupMs = await d.ready(30_000);
  return d;
}

/** Stop the null server (a plain child process). */
function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}

/** The benchmark's network config: CNI 1.0.0, a 30 s timeout (test/support/netconf.ts builds it). */
function reservoirConf(name, socket, ranges, extraIpam = {}) {
  return h.netconf(name, socket, { timeout: '30s', ranges, ...extraIpam }, { cniVersion: '1.0.0' });
}

async function call(d, path, body) {
  const r = await rawRequest(d.socket, 'POST', path, body);
  if (r.status !== 200) throw new Error(`${d.name} ${path}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// 1 + 2. Plugin floor and peer

/**
 * A paired ratio's summary: `num[i] / den[i]` are measured in the same round (interleaved, in a
 * random order), so a busy moment of the shared machine weighs on both. The median of the
 * per-round ratios, their quartiles, a 95% bootstrap interval of that median (2,000 resamples of
 * the rounds, a fixed seed so one run's samples always give the same interval) and, beside it,
 * the ratio of the two medians. Every round counts: none is dropped.
 */
function pairedRatio(num, den) {
  const ratios = num.map((x, i) => x / den[i]).filter(Number.isFinite);
  const sorted = [...ratios].sort((a, b) => a - b);
  let seed = 0x9e3779b9;
  const random = () => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return seed / 2 ** 32;
  };
  const medians = [];
  for (let b = 0; b < 2000; b++) medians.push(median(ratios.map(() => ratios[Math.floor(random() * ratios.length)])));
  medians.sort((a, b) => a - b);
  return {
    rounds: ratios.length,
    median: median(ratios),
    q1: percentile(sorted, 25),
    q3: percentile(sorted, 75),
    ci95: [percentile(medians, 2.5), percentile(medians, 97.5)],
    ofMedians: median(num) / median(den),
  };
}

const spread = (r) => `median of ${r.rounds} per-round ratios; 95% CI ${fmt(r.ci95[0])}-${fmt(r.ci95[1])}, IQR ${fmt(r.q1)}-${fmt(r.q3)}; ratio of medians ${fmt(r.ofMedians)}`;

function shuffle(list) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

/**
 * The plugin's start-to-exit cost, against its runtime's bare start-up (`bun -e 0`, the bun that
 * compiled it) and against Debian's host-local, all interleaved in random order each round. The
 * programs are started and timed by bench/spawntimer.go, as a Go runtime starts CNI plugins
 * (timing spawnSync from this process would add a cost that grows with this process's memory).
 */
async function benchFloor(bin, bun, daemon) {
  const timer = buildGo('spawntimer');
  if (timer.error) {
    row('1 floor', 'floor', NaN, '', undefined, `SKIPPED: cannot build bench/spawntimer.go: ${timer.error} (apt-get install golang-go)`);
    results.sections.floor = { skipped: timer.error };
    return;
  }
  const resConf = join(tmp, 'floor-reservoir.json');
  const ranges = [[{ subnet: '10.96.0.0/24' }]];
  writeFileSync(resConf, JSON.stringify(reservoirConf('bench-floor', daemon.socket, ranges)));
  const refusedConf = join(tmp, 'floor-refused.json');
  writeFileSync(refusedConf, '[{"cniVersion": "1.0.0"}]');
  const hlConf = join(tmp, 'floor-host-local.json');
  writeFileSync(hlConf, JSON.stringify({ cniVersion: '1.0.0', name: 'bench-floor', type: 'bridge', ipam: { type: 'host-local', ranges, dataDir: join(tmp, 'host-local-floor') } }));
  const hostLocal = '/usr/lib/cni/host-local';
  const haveHostLocal = existsSync(hostLocal);
  const cniEnv = [`PATH=${PATH_ENV}`, 'CNI_NETNS=/var/run/netns/bench-floor', 'CNI_IFNAME=eth0', 'CNI_PATH=/usr/lib/cni'];
  const bare = (name) => ({ name, kind: 'run', argv: [bun.path, '-e', '0'], env: [`PATH=${PATH_ENV}`], stdin: resConf });
  const tasks = [
    bare('bareA'),
    bare('bareB'),
    { name: 'version', kind: 'run', argv: [bin.plugin], env: [...cniEnv, 'CNI_COMMAND=VERSION'], stdin: resConf, contains: '"cniVersion"' },
    // An error path: stdin that is not a JSON object is refused by the full validation, no daemon call.
    { name: 'refused', kind: 'run', argv: [bin.plugin], env: [...cniEnv, 'CNI_COMMAND=ADD', 'CNI_CONTAINERID=refused'], stdin: refusedConf, status: 1, contains: '"code":6' },
    { name: 'reservoir', kind: 'pair', argv: [bin.plugin], env: cniEnv, stdin: resConf, contains: '"ips"' },
  ];
  if (haveHostLocal) tasks.push({ name: 'hostLocal', kind: 'pair', argv: [hostLocal], env: cniEnv, stdin: hlConf, contains: '"ips"' });
  log(`floor: ${N.floorRepeats} interleaved rounds of bun -e 0 x2, reservoir ADD+DEL, VERSION, a refused ADD${haveHostLocal ? ', host-local ADD+DEL' : ''} (started by bench/spawntimer.go)`);
  const r = spawnSync(timer.path, [JSON.stringify({ rounds: N.floorRepeats, warmup: 5, tasks })], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`spawntimer failed: ${r.stderr}`);
  const { samples, add, del, cpu } = JSON.parse(r.stdout);
  const s = {
    ...samples,
    bareTwo: samples.bareA.map((a, i) => a + samples.bareB[i]),
    resAdd: add.reservoir,
    resDel: del.reservoir,
  };
  const bareOne = median([...s.bareA, ...s.bareB]);
  const out = {
    repeats: N.floorRepeats,
    runtime: `bun ${bun.version}`,
    timer: 'bench/spawntimer.go (Go os/exec)',
    pluginBytes: statSync(bin.plugin).size,
    medianMs: {
      bunE0: bareOne,
      twoBunE0: median(s.bareTwo),
      reservoirPair: median(s.reservoir),
      reservoirAdd: median(s.resAdd),
      reservoirDel: median(s.resDel),
      reservoirVersion: median(s.version),
      reservoirRefused: median(s.refused),
      hostLocalPair: haveHostLocal ? median(s.hostLocal) : null,
    },
    samples: s,
  };
  // Each ratio pairs the samples of one round (see pairedRatio); its headline is the median of the
  // per-round ratios, printed with its spread. CPU time (user + system of the starts, what a
  // program spent itself, which a wait for the busy machine's cores does not inflate) is shown beside it.
  const floor = pairedRatio(s.reservoir, s.bareTwo);
  const version = pairedRatio(s.version, s.bareA);
  const refused = pairedRatio(s.refused, s.bareB);
  const peer = haveHostLocal ? pairedRatio(s.reservoir, s.hostLocal) : null;
  out.cpuMs = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, median(v)]));
  out.paired = { floor, version, refused, peer };
  out.floorRatio = floor.median;
  out.versionRatio = version.median;
  out.peerRatio = peer ? peer.median : null;
  out.peerCpuRatio = haveHostLocal ? pairedRatio(cpu.reservoir, cpu.hostLocal).median : null;
  out.loadavg = loadavg();
  results.sections.floor = out;
  const m = out.medianMs;
  // The pair includes two daemon round trips, each an fsync'd SQLite commit, which a bare start-up has not.
  row('1 floor', `reservoir ADD+DEL / 2x bun -e 0 (plugin runtime: ${out.runtime})`, out.floorRatio, 'x', undefined, `${fmt(m.reservoirPair, 1)} ms vs ${fmt(m.twoBunE0, 1)} ms (ADD ${fmt(m.reservoirAdd, 1)}, DEL ${fmt(m.reservoirDel, 1)}); ${spread(floor)}`);
  row('1 floor', 'reservoir VERSION / bun -e 0', out.versionRatio, 'x', undefined, `${fmt(m.reservoirVersion, 1)} ms vs ${fmt(bareOne, 1)} ms; ${spread(version)}`);
  row('1 floor', 'reservoir refused ADD (stdin not an object) / bun -e 0', refused.median, 'x', undefined, `${fmt(m.reservoirRefused, 1)} ms: the full validation, no daemon call; ${spread(refused)}`);
  row('1 floor', 'reservoir executable size', out.pluginBytes / 1024 / 1024, 'MiB', undefined, 'bun-compiled; reservoir_call.node beside it');
  if (peer) {
    row('2 peer', 'reservoir ADD+DEL / host-local ADD+DEL', peer.median, 'x', { op: '<=', value: 2.5 }, `${fmt(m.reservoirPair, 1)} ms vs host-local pair ${fmt(m.hostLocalPair, 1)} ms; ${spread(peer)} (stretch <= 2.0)`);
    row('2 peer', 'the same, CPU time of the starts', out.peerCpuRatio, 'x', undefined, `${fmt(out.cpuMs.reservoir, 1)} vs ${fmt(out.cpuMs.hostLocal, 1)} ms of CPU (the daemon's own not counted); load average ${out.loadavg.map((x) => x.toFixed(2)).join(' ')}`);
  }
  else row('2 peer', 'host-local', NaN, '', undefined, 'SKIPPED: /usr/lib/cni/host-local missing (apt-get install containernetworking-plugins)');
}

// ---------------------------------------------------------------------------------------------
// 3. Daemon throughput

/** Build bench/NAME.go into tmp with Debian's golang-go; returns { path } or { error }. */
function buildGo(name) {
  const out = join(tmp, name);
  const r = spawnSync('go', ['build', '-o', out, join(ROOT, 'bench', `${name}.go`)], {
    encoding: 'utf8',
    // GOCACHE as test/harness/build.sh sets it: go refuses to build without one.
    env: { ...process.env, GO111MODULE: 'off', CGO_ENABLED: '0', GOFLAGS: '', GOCACHE: process.env.GOCACHE ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/tmp', '.cache'), 'go-build') },
  });
  if (r.error || r.status !== 0) return { error: (r.error?.message ?? r.stderr ?? 'go build failed').trim().split('\n')[0] };
  return { path: out };
}

/** Start bench/null-server.mjs (the no-work reference) with the Node the daemon embeds. */
async function startNullServer(node) {
  const socket = join(tmp, 'null.sock');
  const child = spawn(node, [join(ROOT, 'bench', 'null-server.mjs'), socket], { stdio: ['ignore', 'ignore', 'inherit'] });
  const d = { name: 'null', socket, child, pid: child.pid, stop: () => stopChild(child) };
  daemons.add(d);
  for (const t0 = performance.now(); ; ) {
    try {
      if ((await rawRequest(socket, 'POST', '/v1/cni/del', '{}', 5_000)).status === 200) return d;
    } catch {
      // not listening yet
    }
    if (performance.now() - t0 > 10_000) throw new Error('the null server did not answer within 10 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function benchThroughput(bin, node) {
  const loadgen = buildGo('loadgen');
  if (loadgen.error) {
    row('3 throughput', 'throughput', NaN, '', undefined, `SKIPPED: cannot build bench/loadgen.go: ${loadgen.error} (apt-get install golang-go)`);
    results.sections.throughput = { skipped: loadgen.error };
    return;
  }
  const daemon = await startDaemon(bin, 'tput');
  const reference = await startNullServer(node);
  const config = reservoirConf('bench-tput', daemon.socket, [[{ subnet: '10.200.0.0/16' }]]);
  const runs = { daemon: { 1: [], 16: [], 64: [] }, reference: { 1: [], 16: [], 64: [] } };
  const measure = (target, conc, rep) => {
    const opts = { socket: target.socket, conc, count: N.tputCount[conc], config, prefix: `t${rep}c${conc}`, daemonPid: target.pid };
    const r = spawnSync(loadgen.path, [JSON.stringify(opts)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`loadgen failed: ${r.stderr}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop());
    if (res.add.errors || res.del.errors) throw new Error(`throughput (${target.name}): errors: ${res.add.firstError ?? res.del.firstError}`);
    return res;
  };
  for (let rep = 0; rep < N.tputRepeats; rep++) {
    for (const conc of [1, 16, 64]) {
      log(`throughput: rep ${rep + 1}/${N.tputRepeats}, ${conc} clients, ${N.tputCount[conc]} ADDs then DELs (daemon, then the null server)`);
      runs.daemon[conc].push(measure(daemon, conc, rep));
      runs.reference[conc].push(measure(reference, conc, rep));
    }
  }
  const health = JSON.parse((await rawRequest(daemon.socket, 'GET', '/v1/health')).body);
  await daemon.stop();
  await reference.stop();
  const summary = {};
  for (const conc of [1, 16, 64]) {
    const pick = (of, phase, key) => median(runs[of][conc].map((r) => r[phase][key]));
    summary[conc] = {
      addPerSecond: pick('daemon', 'add', 'perSecond'),
      addP50: pick('daemon', 'add', 'p50'),
      addP99: pick('daemon', 'add', 'p99'),
      delPerSecond: pick('daemon', 'del', 'perSecond'),
      delP99: pick('daemon', 'del', 'p99'),
      daemonCpuPct: pick('daemon', 'add', 'daemonCpuPct'),
      clientCpuPct: pick('daemon', 'add', 'clientCpuPct'),
      reference: {
        addPerSecond: pick('reference', 'add', 'perSecond'),
        addP50: pick('reference', 'add', 'p50'),
        addP99: pick('reference', 'add', 'p99'),
        serverCpuPct: pick('reference', 'add', 'daemonCpuPct'),
      },
    };
    const sm = summary[conc];
    // Who limits: the daemon (one thread) near a full core, else the load generator, else
    // neither (waiting on fsync, or both starved by other processes on the 2 cores).
    sm.bound = sm.daemonCpuPct >= 85 ? 'daemon-bound' : sm.clientCpuPct >= 85 ? 'client-bound' : 'fsync/starved';
    const clients = `${conc} client${conc > 1 ? 's' : ''}`;
    const note = `p50 ${fmt(sm.addP50)} ms, DEL ${fmt(sm.delPerSecond, 0)}/s; CPU daemon ${fmt(sm.daemonCpuPct, 0)}% client ${fmt(sm.clientCpuPct, 0)}% (${sm.bound})`;
    row('3 throughput', `ADD/s, ${clients}`, sm.addPerSecond, '/s', conc === 64 ? { op: '>=', value: 10000 } : undefined, note);
    row('3 throughput', `ADD p99, ${clients}`, sm.addP99, 'ms', { op: '<=', value: 10 }, `${fmt(sm.addP99 / sm.reference.addP99)}x the null server's`);
    row('3 throughput', `null server p99, ${clients}`, sm.reference.addP99, 'ms', undefined,
      `answers at once: ${fmt(sm.reference.addPerSecond, 0)}/s, p50 ${fmt(sm.reference.addP50)} ms, server CPU ${fmt(sm.reference.serverCpuPct, 0)}%`);
  }
  results.sections.throughput = { repeats: N.tputRepeats, counts: N.tputCount, loadgen: 'bench/loadgen.go', summary, runs, batches: health.batches };
}

// ---------------------------------------------------------------------------------------------
// 4. Scale

const SCALE_STORES = [
  { key: 'empty24', label: 'empty /24', subnet: '10.98.0.0/24', leases: 0 },
  { key: 'full16', label: '/16, 99% full', subnet: '172.16.0.0/16', leases: 'full16' },
  { key: 'm8', label: '/8, 1,000,000 leases', subnet: '10.0.0.0/8', leases: 1_000_000 },
  { key: 'v6', label: 'IPv6 /64, 100,000 leases', subnet: 'fd00:bec::/64', leases: 100_000 },
];

/** Fill a store in one transaction through SqliteStore.insertLease (which keeps the runs table). */
function fillStore(h, store, spec) {
  const dbPath = join(tmp, `scale-${store.key}`, 'reservoir.db');
  mkdirSync(dirname(dbPath), { recursive: true });
  const s = h.SqliteStore.open({ path: dbPath });
  const subnet = spec.subnet.split('/')[0];
  const base = h.parseIp(subnet);
  const t0 = performance.now();
  let n = 0;
  // Free holes every 100th address in the /16 (99% full), every 64th elsewhere: each ADD must
  // jump a run of leases to reach the next free address. .0 and the gateway (.1) stay unleased.
  const wantedLeases = spec.leases === 'full16' ? Infinity : spec.leases;
  const last = spec.leases === 'full16' ? 65534 : Infinity;
  const hole = spec.leases === 'full16' ? 100 : 64;
  const createdAt = Date.now();
  s.transaction(() => {
    for (let i = 2; n < wantedLeases && i <= last; i++) {
      if (i % hole === 0) continue;
      s.insertLease({
        network: `bench-${spec.key}`,
        family: base.family,
        ip: base.value + BigInt(i),
        containerId: `fill-${i}`,
        ifname: 'eth0',
        netns: '/proc/1/ns/net',
        app: null,
        kind: 'stateless',
        createdAt,
        detachedAt: null,
      });
      n++;
    }
  });
  s.close();
  return { dbPath, leases: n, fillSeconds: (performance.now() - t0) / 1000 };
}

async function benchScale(bin) {
  const stores = [];
  for (const spec of SCALE_STORES) {
    const store = { ...spec };
    if (spec.leases) {
      log(`scale: filling ${spec.label}`);
      Object.assign(store, fillStore(h, store, spec));
      log(`scale: ${store.leases} leases in ${fmt(store.fillSeconds, 1)} s`);
    } else {
      store.leases = 0;
    }
    store.config = reservoirConf(`bench-${spec.key}`, join(tmp, `scale-${spec.key}.sock`), [[{ subnet: spec.subnet }]]);
    stores.push(store);
  }
  // All four daemons run side by side and are measured round-robin: their ratios share the noise.
  for (const store of stores) {
    store.daemon = await startDaemon(bin, `scale-${store.key}`, { stateDir: join(tmp, `scale-${store.key}`) });
    store.startups = [store.daemon.startupMs];
    store.add = [];
    store.del = [];
  }
  log(`scale: ${N.scaleAdds} ADD+DEL pairs per store, round-robin over the daemons`);
  for (const store of stores) for (let i = 0; i < 20; i++) {
    await call(store.daemon, '/v1/cni/add', cniBody(store.config, `warm-${i}`));
    await call(store.daemon, '/v1/cni/del', cniBody(store.config, `warm-${i}`));
  }
  for (let i = 0; i < N.scaleAdds; i++) {
    for (const store of shuffle([...stores])) {
      const add = await call(store.daemon, '/v1/cni/add', cniBody(store.config, `s-${i}`));
      const del = await call(store.daemon, '/v1/cni/del', cniBody(store.config, `s-${i}`));
      store.add.push(add.ms);
      store.del.push(del.ms);
    }
  }
  for (const store of stores) {
    Object.assign(store, procStatus(store.daemon.pid));
    await store.daemon.stop();
  }
  // Start-up again (page cache warm for both, daemons otherwise idle): empty vs 1,000,000.
  for (let k = 1; k < N.scaleStartups; k++) {
    for (const store of [stores[0], stores[2]]) {
      const d = await startDaemon(bin, `scale-${store.key}`, { stateDir: join(tmp, `scale-${store.key}`) });
      store.startups.push(d.startupMs);
      await d.stop();
    }
  }
  // The same ADDs, in process, without HTTP and without fsync: the allocator + SQL only. The four
  // stores are measured round-robin, each inside one outer transaction rolled back at the end.
  log('scale: in-process service time (no HTTP, no fsync)');
  const opened = stores.map((store) => {
    const s = h.SqliteStore.open({ path: join(tmp, `scale-${store.key}`, 'reservoir.db') });
    const networks = new h.Networks(s, h.silentLogger, new h.ReservedRules(s));
    const netns = new h.NetnsView(h.silentLogger);
    store.serviceAdd = [];
    return { store, s, networks, netns, cni: new h.CniService(s, networks, new h.Ledger(s, 'bench'), h.silentLogger, netns) };
  });
  const rollback = new Error('rollback');
  const measure = () => {
    for (let i = 0; i < N.scaleAdds; i++) {
      for (const o of shuffle([...opened])) {
        const env = { CNI_CONTAINERID: `p-${i}`, CNI_NETNS: '/var/run/netns/bench', CNI_IFNAME: 'eth0' };
        const add = h.parseInvocation('ADD', env, o.store.config);
        const del = h.parseInvocation('DEL', env, o.store.config);
        const t0 = performance.now();
        o.cni.add(add);
        o.store.serviceAdd.push((performance.now() - t0) * 1000);
        o.cni.del(del);
      }
    }
    throw rollback;
  };
  try {
    opened.reduceRight((inner, o) => () => o.s.transaction(inner), measure)();
  } catch (err) {
    if (err !== rollback) throw err;
  }
  const m8 = opened.find((o) => o.store.key === 'm8');
  {
    // What the netns reconciler's periodic pass costs on this store (it reads every attached lease).
    const reconciler = new h.NetnsReconciler(m8.s, m8.networks, m8.cni, h.silentLogger, m8.netns, 60_000);
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    await reconciler.sweep(async (fn) => fn());
    m8.store.reconcilerSweepMs = performance.now() - t0;
    m8.store.reconcilerRssGrowthMb = (process.memoryUsage().rss - rss0) / 1048576;
  }
  for (const o of opened) o.s.close();
  const base = stores[0];
  const baseAdd = median(base.add);
  const baseService = median(base.serviceAdd);
  const out = {};
  for (const store of stores) {
    const m = median(store.add);
    out[store.key] = {
      label: store.label,
      leases: store.leases,
      fillSeconds: store.fillSeconds ?? 0,
      addMedianMs: m,
      addP99Ms: percentile([...store.add].sort((a, b) => a - b), 99),
      delMedianMs: median(store.del),
      ratio: m / baseAdd,
      serviceAddMedianUs: median(store.serviceAdd),
      serviceRatio: median(store.serviceAdd) / baseService,
      startupMs: median(store.startups),
      startups: store.startups,
      rssMb: store.rssMb,
      hwmMb: store.hwmMb,
      reconcilerSweepMs: store.reconcilerSweepMs,
      reconcilerRssGrowthMb: store.reconcilerRssGrowthMb,
    };
    const o = out[store.key];
    const note = `ADD ${fmt(m, 2)} ms via socket; service ${fmt(o.serviceAddMedianUs, 0)} us (x${fmt(o.serviceRatio)})`;
    if (store !== base) row('4 scale', `ADD ${store.label} / empty /24`, o.ratio, 'x', { op: '<=', value: 1.5 }, note);
    else row('4 scale', 'ADD empty /24 (reference)', m, 'ms', undefined, note);
  }
  const big = out.m8;
  row('4 scale', 'daemon RSS, 1,000,000 leases', big.rssMb, 'MB', { op: '<=', value: 300 }, `after start + ${N.scaleAdds + 20} ADD/DEL; peak ${fmt(big.hwmMb, 0)} MB; empty: ${fmt(out.empty24.rssMb, 0)} MB`);
  row('4 scale', 'start-up, 1,000,000 leases', big.startupMs / 1000, 's', { op: '<=', value: 2 }, `start -> /v1/health; empty store: ${fmt(out.empty24.startupMs, 0)} ms`);
  row('4 scale', 'reconciler pass, 1,000,000 leases', big.reconcilerSweepMs / 1000, 's', undefined, `in process; RSS +${fmt(big.reconcilerRssGrowthMb, 0)} MB (daemons here run --reclaim-grace 0)`);
  results.sections.scale = { adds: N.scaleAdds, stores: out };
}

// ---------------------------------------------------------------------------------------------
// 5. Reserved-IP race

function runPlugin(bin, env, confFile) {
  return new Promise((resolveRun, reject) => {
    const fd = openSync(confFile, 'r');
    const child = spawn(bin.plugin, [], { env, stdio: [fd, 'pipe', 'pipe'] });
    closeSync(fd);
    let stdout = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout }));
  });
}

async function benchRace(bin, daemon) {
  const ip = '10.96.1.50';
  const conf = join(tmp, 'race.json');
  writeFileSync(conf, JSON.stringify(reservoirConf('bench-race', daemon.socket, [[{ subnet: '10.96.1.0/24' }]], { reserved: [ip] })));
  const envOf = (command, id) => ({ PATH: PATH_ENV, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/var/run/netns/bench-race', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: `IP=${ip}` });
  const reps = [];
  for (let rep = 0; rep < N.raceRepeats; rep++) {
    log(`race: ${N.raceProcs} plugin processes ADD ${ip} at once (${rep + 1}/${N.raceRepeats})`);
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: N.raceProcs }, (_, i) => runPlugin(bin, envOf('ADD', `race-${rep}-${i}`), conf)));
    const ms = performance.now() - t0;
    const winners = answers.map((a, i) => ({ ...a, i })).filter((a) => a.code === 0 && a.stdout.includes(ip));
    const losers = answers.filter((a) => {
      try {
        return a.code === 1 && JSON.parse(a.stdout).code === 101;
      } catch {
        return false;
      }
    });
    const other = answers.length - winners.length - losers.length;
    reps.push({ ms, winners: winners.length, code101: losers.length, other, otherSample: other ? answers.find((a) => !(a.code === 0) && !a.stdout.includes('"code":101'))?.stdout : undefined });
    for (const w of winners) await runPlugin(bin, envOf('DEL', `race-${rep}-${w.i}`), conf);
  }
  const ok = reps.every((r) => r.winners === 1 && r.code101 === N.raceProcs - 1);
  results.sections.race = { procs: N.raceProcs, reps, exactlyOneWinner: ok };
  row('5 race', `${N.raceProcs} plugins, one reserved IP: all answered`, median(reps.map((r) => r.ms)) / 1000, 's', undefined,
    `${ok ? 'exactly one won, the others code 101' : `WRONG: ${JSON.stringify(reps.map(({ winners, code101, other }) => ({ winners, code101, other })))}`}`);
  row('5 race', 'exactly one winner, rest code 101', ok ? 1 : 0, '', { op: '>=', value: 1 }, ok ? 'yes, every repeat' : 'NO');
}

// ---------------------------------------------------------------------------------------------
// 6. Storm through the real bridge plugin in network namespaces

async function pool(items, conc, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

async function benchStorm(bin, daemon) {
  const missing = h.missingPrereqs(['root', 'bridge', 'host-local', 'harness']);
  if (missing.length) {
    row('6 storm', 'storm', NaN, '', undefined, `SKIPPED: missing ${missing.join(', ')}`);
    results.sections.storm = { skipped: missing };
    return;
  }
  const cleanup = new h.Cleanup();
  cleanupNetns = cleanup;
  try {
    log(`storm: creating ${N.storm} network namespaces`);
    const namespaces = [];
    for (let i = 0; i < N.storm; i++) namespaces.push(h.createNetns(cleanup, 'rsvbench-'));
    const cniBin = join(tmp, 'cni-bin');
    mkdirSync(cniBin, { recursive: true });
    symlinkSync(bin.plugin, join(cniBin, 'reservoir'));
    const out = {};
    for (const kind of ['reservoir', 'host-local']) {
      const bridge = h.uniqueName('rsvbench', 4);
      h.deleteLinkAtCleanup(cleanup, bridge);
      const { subnet } = h.pickFreeSubnet24('10.97');
      const ranges = [[{ subnet }]];
      const name = `bench-storm-${kind}`;
      const plugin = { type: 'bridge', bridge, isGateway: true, ipMasq: false };
      const conf = kind === 'reservoir'
        ? h.conflist(name, daemon.socket, { timeout: '30s', ranges }, { cniVersion: '1.0.0', plugin })
        : { cniVersion: '1.0.0', name, plugins: [{ ...plugin, ipam: { type: 'host-local', ranges, dataDir: join(tmp, 'host-local-storm') } }] };
      const conflist = h.writeConflist(conf, cleanup);
      const cacheDir = join(tmp, `cni-cache-${kind}`);
      const opts = { cacheDir, cniPath: [cniBin, h.CNI_PLUGIN_DIR], timeoutMs: 120_000 };
      const phase = async (cmd) => {
        const t0 = performance.now();
        let failed;
        await pool(namespaces, N.stormConc, async (ns, i) => {
          const r = await h.runCni(cmd, conflist, `storm-${kind}-${i}`, ns.path, 'eth0', opts);
          if (!r.ok) failed ??= `${cmd} ${i}: ${r.error?.msg ?? r.stderr}`;
        });
        if (failed) throw new Error(`storm ${kind}: ${failed}`);
        return (performance.now() - t0) / 1000;
      };
      log(`storm: ${N.storm} ADDs through bridge + ${kind}, ${N.stormConc} at a time (${subnet} on ${bridge})`);
      const add = await phase('add');
      const del = await phase('del');
      out[kind] = { addSeconds: add, delSeconds: del, subnet, bridge };
      h.deleteLink(bridge);
    }
    results.sections.storm = { containers: N.storm, concurrency: N.stormConc, ...out };
    const r = out.reservoir;
    const hl = out['host-local'];
    row('6 storm', `${N.storm} ADDs, bridge+reservoir, conc ${N.stormConc}`, r.addSeconds, 's', undefined, `DEL ${fmt(r.delSeconds)} s`);
    row('6 storm', `${N.storm} ADDs, bridge+host-local, conc ${N.stormConc}`, hl.addSeconds, 's', undefined, `DEL ${fmt(hl.delSeconds)} s; reservoir/host-local ADD x${fmt(r.addSeconds / hl.addSeconds)}`);
  } finally {
    log('storm: removing namespaces and bridges');
    await cleanup.run();
    cleanupNetns = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// 7. Observability: /metrics and the status page's read on a store with 1,000,000 leases, what a
// scrape does to CNI calls, start-up with --http-listen, and the cost of a history line.

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

function httpGet(port, path) {
  const started = performance.now();
  return new Promise((resolveGet, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolveGet({ status: res.statusCode, bytes, ms: performance.now() - started }));
    })
      .on('error', reject)
      .end();
  });
}

async function benchObserve(bin) {
  const spec = { key: 'obs', label: '/8, 1,000,000 leases', subnet: '10.0.0.0/8', leases: 1_000_000 };
  const store = { key: spec.key };
  log('observe: filling a store with 1,000,000 leases');
  Object.assign(store, fillStore(h, store, spec));
  const config = reservoirConf('bench-obs', join(tmp, 'observe.sock'), [[{ subnet: spec.subnet }]], { reserved: ['10.255.0.0/22'] });
  const port = await freePort();
  const stateDir = join(tmp, `scale-${spec.key}`);
  const extraArgs = ['--http-listen', `127.0.0.1:${port}`];
  let d = await startDaemon(bin, 'observe', { stateDir, extraArgs });
  await call(d, '/v1/cni/add', cniBody(config, 'register')); // registers the network: the first count of its leases
  // Start-up on this store, with and without --http-listen (which loads prom-client at start).
  const startup = { http: [d.startupMs], plain: [] };
  await d.stop();
  for (let k = 0; k < N.scaleStartups; k++) {
    const plain = await startDaemon(bin, 'observe', { stateDir });
    startup.plain.push(plain.startupMs);
    await plain.stop();
    d = await startDaemon(bin, 'observe', { stateDir, extraArgs });
    startup.http.push(d.startupMs);
    if (k < N.scaleStartups - 1) await d.stop();
  }
  for (let i = 0; i < 5; i++) await httpGet(port, '/metrics');
  const scrapes = [];
  const statusReads = [];
  for (let i = 0; i < N.scrapes; i++) {
    const m = await httpGet(port, '/metrics');
    if (m.status !== 200) throw new Error(`/metrics answered ${m.status}`);
    scrapes.push(m.ms);
    statusReads.push((await httpGet(port, '/api/status')).ms);
  }
  // CNI calls with a scraper hammering /metrics (back to back, one at a time) and without,
  // in alternating blocks so both see the same machine.
  const during = [];
  const quiet = [];
  const block = 50;
  for (let i = 0; i < N.observeAdds; i += block) {
    for (const scraping of shuffle([true, false])) {
      let stop = false;
      const scraper = scraping
        ? (async () => {
            while (!stop) await httpGet(port, '/metrics');
          })()
        : Promise.resolve();
      for (let j = 0; j < block; j++) {
        const id = `o-${scraping ? 's' : 'q'}-${i + j}`;
        const add = await call(d, '/v1/cni/add', cniBody(config, id));
        await call(d, '/v1/cni/del', cniBody(config, id));
        (scraping ? during : quiet).push(add.ms);
      }
      stop = true;
      await scraper;
    }
  }
  await d.stop();
  // A history line against a lease insert: the same statements the daemon runs, group-committed
  // 64 at a time on a file of its own (synchronous=FULL), in process.
  const cost = {};
  for (const what of ['lease', 'lease+history']) {
    const dbPath = join(tmp, `history-${what}.db`);
    const s = h.SqliteStore.open({ path: dbPath });
    const t0 = performance.now();
    for (let i = 0; i < N.historyLines; i += 64) {
      s.transaction(() => {
        for (let j = i; j < i + 64; j++) {
          const lease = { network: 'h', family: 4, ip: 0x0a000000n + BigInt(j), containerId: `c${j}`, ifname: 'eth0', netns: null, app: `default/p-${j}`, kind: 'stateless', createdAt: j, detachedAt: null };
          s.insertLease(lease);
          if (what === 'lease+history') {
            s.appendHistory({ at: j, network: 'h', family: 4, ip: lease.ip, event: 'claim', reason: 'dynamic', app: lease.app, containerId: lease.containerId, ifname: 'eth0', kind: 'stateless', node: 'bench', holder: null, detail: null });
          }
        }
      });
    }
    cost[what] = ((performance.now() - t0) * 1000) / N.historyLines;
    s.close();
  }
  const sortedDuring = [...during].sort((a, b) => a - b);
  const sortedQuiet = [...quiet].sort((a, b) => a - b);
  const out = {
    leases: store.leases,
    scrapeMedianMs: median(scrapes),
    scrapeMaxMs: Math.max(...scrapes),
    statusMedianMs: median(statusReads),
    addQuiet: { p50: median(quiet), p99: percentile(sortedQuiet, 99), max: sortedQuiet.at(-1) },
    addDuringScrapes: { p50: median(during), p99: percentile(sortedDuring, 99), max: sortedDuring.at(-1) },
    startupPlainMs: median(startup.plain),
    startupHttpMs: median(startup.http),
    startups: startup,
    historyUsPerLine: cost['lease+history'] - cost.lease,
    leaseUsPerInsert: cost.lease,
  };
  // Like against like: the machine alone gives single ADDs of 80+ ms here (quiet blocks too).
  const delay = out.addDuringScrapes.p99 - out.addQuiet.p99;
  row('7 observe', 'GET /metrics, 1,000,000 leases', out.scrapeMedianMs, 'ms', { op: '<=', value: 50 }, `max ${fmt(out.scrapeMaxMs)} ms of ${N.scrapes}; /api/status ${fmt(out.statusMedianMs)} ms`);
  row('7 observe', 'ADD p99 while scraped back to back, minus quiet p99', delay, 'ms', { op: '<=', value: 50 },
    `p99 ${fmt(out.addDuringScrapes.p99)} vs ${fmt(out.addQuiet.p99)} ms; worst ${fmt(out.addDuringScrapes.max)} vs ${fmt(out.addQuiet.max)} ms; p50 ${fmt(out.addDuringScrapes.p50)} vs ${fmt(out.addQuiet.p50)} ms`);
  row('7 observe', 'start-up, 1,000,000 leases, --http-listen', out.startupHttpMs / 1000, 's', { op: '<=', value: 2 }, `without: ${fmt(out.startupPlainMs, 0)} ms (prom-client loads only with --http-listen or at the first /metrics)`);
  row('7 observe', 'history line, in the lease transaction', out.historyUsPerLine, 'us', undefined, `a lease insert alone: ${fmt(out.leaseUsPerInsert, 1)} us (64 per commit, fsync included)`);
  results.sections.observe = out;
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// 8. Cluster networks: 3 daemons on a 3-member etcd, next to node scope and a raw etcd floor

/**
 * Create-if-absent transactions on distinct keys straight from the etcd3 client (the floor),
 * `perTxn` claims each. `keyOf`/`value`: other keys and values (the watched floor's lease keys).
 */
async function etcdFloor(kv, conc, count, prefix, perTxn = 1, { keyOf = (n) => `${prefix}/${n}`, value = '{"bench":1}' } = {}) {
  const latencies = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < count) {
      const keys = Array.from({ length: Math.min(perTxn, count - next) }, () => keyOf(next++));
      const started = performance.now();
      const r = await kv.txn(keys.map((key) => ({ key, target: 'create', result: 'equal', value: 0 })), keys.map((key) => ({ put: key, value })), [], Date.now() + 10_000);
      if (!r.succeeded) throw new Error('etcd floor: a create-if-absent on a fresh key failed');
      latencies.push(performance.now() - started);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: count / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), txns: latencies.length };
}

/**
 * The floor's transactions on lease keys of a network under the daemons' prefix, with a lease's
 * value: what etcd and the client give when the three daemons' watches receive every claim (as
 * they receive every ADD), without anything of reservoir on the path. Removed afterwards.
 */
async function watchedEtcdFloor(kv, layout, conc, count, label) {
  const network = `bench-watched-${label}`;
  const keyOf = (n) => layout.lease(network, 4, 0x0a000000n + BigInt(n));
  const value = JSON.stringify({ containerId: 'f'.repeat(64), ifname: 'eth0', netns: '/var/run/netns/bench', app: null, kind: 'stateless', createdAt: Date.now(), detachedAt: null, podUid: null, ownerUid: null, ordinal: null, node: 'bench-floor', unit: 'bench-floor/0/0' });
  const r = await etcdFloor(kv, conc, count, network, 1, { keyOf, value });
  for (let n = 0; n < count; n += 64) {
    const keys = Array.from({ length: Math.min(64, count - n) }, (_, i) => keyOf(n + i));
    await kv.txn([], keys.map((key) => ({ delete: key })), [], Date.now() + 10_000);
  }
  return r;
}

/**
 * Section 8's raw etcd floor alone (BENCH_ONLY=cluster-floor): the same etcdFloor loads on a
 * 3-member etcd, 1 and 8 claims per transaction, without daemons or packaging: quick to rerun
 * when the question is what etcd and the client give on this machine now.
 */
async function benchClusterFloor() {
  const missing = h.missingPrereqs(['etcd']);
  if (missing.length) {
    row('8 cluster floor', 'cluster floor', NaN, '', undefined, `SKIPPED: ${missing.join('; ')}`);
    results.sections['cluster-floor'] = { skipped: missing.join('; ') };
    return;
  }
  const cleanup = new h.Cleanup();
  cleanupCluster = cleanup;
  try {
    log('cluster floor: a 3-member etcd on loopback (Debian etcd-server)');
    const etcd = await h.startEtcdCluster(cleanup);
    const kv = await h.connectEtcd({ endpoints: etcd.endpoints, prefix: '/floor' });
    cleanup.add('close etcd client', () => kv.close());
    await etcdFloor(kv, 4, 200, '/floor/warm'); // connections up, leader settled
    const runs = [];
    for (const perTxn of [1, 8]) {
      for (const conc of [1, 16, 48]) {
        const count = N.clusterCount[conc] * perTxn;
        log(`cluster floor: ${conc} caller${conc > 1 ? 's' : ''}, ${perTxn} claim${perTxn > 1 ? 's' : ''} per txn, ${count} claims`);
        const r = await etcdFloor(kv, conc, count, `/floor/p${perTxn}c${conc}`, perTxn);
        runs.push({ conc, perTxn, ...r });
        const what = `${conc} caller${conc > 1 ? 's' : ''}${perTxn > 1 ? `, ${perTxn} claims per txn` : ''}`;
        row('8 cluster floor', `raw etcd claims/s, ${what}`, r.perSecond, '/s', undefined, `${fmt(r.perSecond / perTxn, 0)} txn/s; txn p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms`);
      }
    }
    results.sections['cluster-floor'] = { members: etcd.members.length, counts: N.clusterCount, runs };
  } finally {
    await cleanup.run();
    cleanupCluster = undefined;
  }
}

async function benchCluster(bin) {
  const missing = h.missingPrereqs(['etcd']);
  const loadgen = buildGo('loadgen');
  if (missing.length || loadgen.error) {
    row('8 cluster', 'cluster', NaN, '', undefined, `SKIPPED: ${missing.join('; ') || loadgen.error}`);
    results.sections.cluster = { skipped: missing.join('; ') || loadgen.error };
    return;
  }
  const cleanup = new h.Cleanup();
  try {
    log('cluster: a 3-member etcd on loopback (Debian etcd-server)');
    const etcd = await h.startEtcdCluster(cleanup);
    const prefix = `/bench-${process.pid}`;
    const clusterDaemons = [];
    const nodeDaemons = [];
    for (let i = 0; i < 3; i++) {
      clusterDaemons.push(await startDaemon(bin, `cl${i}`, { extraArgs: ['--node-name', `bench-node-${i}`, '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', prefix] }));
      nodeDaemons.push(await startDaemon(bin, `nd${i}`, { extraArgs: ['--node-name', `bench-local-${i}`] }));
    }
    const kv = await h.connectEtcd({ endpoints: etcd.endpoints, prefix: '/floor' });
    const layout = new h.KeyLayout(prefix);
    const ranges = [[{ subnet: '10.210.0.0/16' }]];
    const configs = {
      cluster: (d) => reservoirConf('bench-cluster', d.socket, ranges, { scope: 'cluster' }),
      node: (d) => reservoirConf('bench-node', d.socket, ranges),
    };
    const split = (conc) => [0, 1, 2].map((i) => Math.floor(conc / 3) + (i < conc % 3 ? 1 : 0)).filter((c) => c > 0);
    const load = async (daemonsOf, configOf, conc, label) => {
      const parts = split(conc);
      const count = N.clusterCount[conc];
      const runs = await Promise.all(parts.map((c, i) => new Promise((resolveRun, reject) => {
        const d = daemonsOf[i];
        const opts = { socket: d.socket, conc: c, count: Math.round((count * c) / conc), config: configOf(d), prefix: `${label}${i}c${conc}`, daemonPid: d.pid };
        const child = spawn(loadgen.path, [JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (x) => (out += x));
        child.stderr.on('data', (x) => (err += x));
        child.on('close', (code) => {
          if (code !== 0) return reject(new Error(`loadgen failed: ${err}`));
          const res = JSON.parse(out.trim().split('\n').pop());
          if (res.add.errors || res.del.errors) return reject(new Error(`cluster load (${label}): errors: ${res.add.firstError ?? res.del.firstError}`));
          resolveRun(res);
        });
      })));
      return {
        addPerSecond: runs.reduce((sum, r) => sum + r.add.perSecond, 0),
        addP50: median(runs.map((r) => r.add.p50)),
        addP99: Math.max(...runs.map((r) => r.add.p99)),
        delPerSecond: runs.reduce((sum, r) => sum + r.del.perSecond, 0),
      };
    };
    const stats = async () => {
      let txns = 0;
      let units = 0;
      let conflicts = 0;
      for (const d of clusterDaemons) {
        const c = JSON.parse((await rawRequest(d.socket, 'GET', '/v1/health')).body).cluster;
        txns += c.stats.txns;
        units += c.stats.units;
        conflicts += c.stats.conflicts;
      }
      return { txns, units, conflicts };
    };
    const runs = { 1: [], 16: [], 48: [] };
    // Rep 0 warms up and is not counted: just after the daemons and etcd start, every column ran
    // slower (in one run, node scope at 1 client 1,062/s against 1,876 and 2,256 after, cluster
    // 236/s against 451 and 396), whatever the code measured.
    for (let rep = 0; rep <= N.clusterRepeats; rep++) {
      for (const conc of [1, 16, 48]) {
        log(`cluster: ${rep === 0 ? 'warm-up (not counted)' : `rep ${rep}/${N.clusterRepeats}`}, ${conc} clients over 3 daemons: cluster scope, node scope, raw etcd`);
        const before = await stats();
        const cluster = await load(clusterDaemons, configs.cluster, conc, `r${rep}cl`);
        const after = await stats();
        const node = await load(nodeDaemons, configs.node, conc, `r${rep}nd`);
        const floor = await etcdFloor(kv, conc, N.clusterCount[conc], `/floor/r${rep}c${conc}`);
        const batched = await etcdFloor(kv, conc, N.clusterCount[conc], `/floor/b${rep}c${conc}`, 8);
        const watched = await watchedEtcdFloor(kv, layout, conc, N.clusterCount[conc], `r${rep}c${conc}`);
        const calls = after.units - before.units;
        if (rep > 0) runs[conc].push({ cluster, node, floor, batched, watched, txnsPerCall: (after.txns - before.txns) / calls, conflicts: after.conflicts - before.conflicts, calls });
      }
    }
    const summary = {};
    for (const conc of [1, 16, 48]) {
      const pick = (f) => median(runs[conc].map(f));
      const sm = {
        addPerSecond: pick((r) => r.cluster.addPerSecond), addP50: pick((r) => r.cluster.addP50), addP99: pick((r) => r.cluster.addP99),
        nodeAddPerSecond: pick((r) => r.node.addPerSecond), nodeP99: pick((r) => r.node.addP99),
        floorPerSecond: pick((r) => r.floor.perSecond), floorP50: pick((r) => r.floor.p50), floorP99: pick((r) => r.floor.p99),
        batchedPerSecond: pick((r) => r.batched.perSecond),
        watchedPerSecond: pick((r) => r.watched.perSecond), watchedP50: pick((r) => r.watched.p50), watchedRatio: pick((r) => r.watched.perSecond / r.floor.perSecond),
        ratio: pick((r) => r.cluster.addPerSecond / r.floor.perSecond), p99Ratio: pick((r) => r.cluster.addP99 / r.floor.p99),
        txnsPerCall: pick((r) => r.txnsPerCall), conflicts: pick((r) => r.conflicts),
      };
      summary[conc] = sm;
      const clients = `${conc} client${conc > 1 ? 's' : ''}`;
      row('8 cluster', `ADD/s / raw etcd txn/s, ${clients}`, sm.ratio, 'x', { op: '>=', value: 0.5 },
        `${fmt(sm.addPerSecond, 0)} vs ${fmt(sm.floorPerSecond, 0)}/s (8 claims per txn: ${fmt(sm.batchedPerSecond, 0)} claims/s); node scope ${fmt(sm.nodeAddPerSecond, 0)}/s`);
      row('8 cluster', `watched floor / raw etcd txn/s, ${clients}`, sm.watchedRatio, 'x', undefined,
        `${fmt(sm.watchedPerSecond, 0)}/s, p50 ${fmt(sm.watchedP50)} ms: the floor's transactions on lease keys the 3 daemons watch (no reservoir on the path); reference`);
      row('8 cluster', `ADD p50 / p99, ${clients}`, sm.addP99, 'ms', conc === 16 ? { op: '<=', value: 3 * sm.floorP99 } : undefined,
        `p50 ${fmt(sm.addP50)} ms; raw etcd p50 ${fmt(sm.floorP50)} p99 ${fmt(sm.floorP99)} ms (${fmt(sm.p99Ratio)}x); node scope p99 ${fmt(sm.nodeP99)} ms`);
      row('8 cluster', `etcd transactions per CNI call, ${clients}`, sm.txnsPerCall, '', { op: '<=', value: 1 }, `${fmt(sm.conflicts, 0)} lost a race and ran again`);
    }
    // the cross-node race: 30 plugin processes over 3 nodes for one reserved IP
    const ip = '10.211.0.50';
    const confFiles = clusterDaemons.map((d, i) => {
      const file = join(tmp, `cluster-race-${i}.json`);
      writeFileSync(file, JSON.stringify(reservoirConf('bench-cluster-race', d.socket, [[{ subnet: '10.211.0.0/24' }]], { scope: 'cluster', reserved: [ip] })));
      return file;
    });
    const envOf = (id) => ({ PATH: PATH_ENV, CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: '/var/run/netns/bench-race', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: `IP=${ip}` });
    for (const [i, file] of confFiles.entries()) await runPlugin(bin, { ...envOf(`warm-${i}`), CNI_ARGS: '' }, file);
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: N.clusterRaceProcs }, (_, i) => runPlugin(bin, envOf(`crace-${i}`), confFiles[i % 3])));
    const raceMs = performance.now() - t0;
    const winners = answers.filter((a) => a.code === 0).length;
    const refused = answers.filter((a) => a.code === 1 && a.stdout.includes('"code":101')).length;
    row('8 cluster', `${N.clusterRaceProcs} plugins over 3 nodes, one reserved IP: all answered`, raceMs / 1000, 's', { op: '<=', value: 2 },
      winners === 1 && refused === N.clusterRaceProcs - 1 ? 'exactly one won, the others code 101' : `WRONG: ${winners} won, ${refused} refused`);
    results.sections.cluster = { counts: N.clusterCount, repeats: N.clusterRepeats, summary, runs, race: { ms: raceMs, winners, refused } };
    await kv.close();
    for (const d of [...clusterDaemons, ...nodeDaemons]) await d.stop();
  } finally {
    await cleanup.run();
  }
}

function machine() {
  const busy = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
  };
  return { loadavg: loadavg(), cpus: cpus().length, stat: busy() };
}

function printTable() {
  const head = ['section', 'metric', 'value', 'target', 'status', 'notes'];
  const lines = rows.map((r) => [r.section, r.metric, Number.isFinite(r.value) ? `${fmt(r.value, r.unit === '/s' ? 0 : 2)} ${r.unit}`.trim() : '-', r.target, r.status, r.note]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const fmtLine = (l) => l.map((c, i) => (i === l.length - 1 ? String(c) : String(c).padEnd(widths[i]))).join('  ');
  console.log(fmtLine(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmtLine(l));
}

async function cleanupAll() {
  for (const d of [...daemons]) await d.stop().catch(() => undefined);
  if (cleanupNetns) await cleanupNetns.run().catch((err) => log(`cleanup: ${err.message}`));
  if (cleanupCluster) await cleanupCluster.run().catch((err) => log(`cleanup: ${err.message}`));
  rmSync(tmp, { recursive: true, force: true });
  for (const n of seaNames) for (const ext of ['.blob', '.sea-config.json']) rmSync(join(ROOT, 'build', 'sea', n + ext), { force: true });
}

async function main() {
  const start = machine();
  log(`${QUICK ? 'quick' : 'full'} run; load average ${start.loadavg.map((x) => x.toFixed(2)).join(' ')} on ${start.cpus} CPUs; temp dir ${tmp}`);
  h = await loadHelpers();
  const { findNodeBinary } = await import('../scripts/package.mjs');
  const { findBun } = await import('../scripts/bun.mjs');
  const node = findNodeBinary().path;
  const bun = findBun();
  // the cluster floor alone needs no executables of ours
  const bin = SECTIONS.some((s) => wanted(s) && s !== 'cluster-floor') ? await packaged() : { source: 'nothing packaged' };
  results.binaries = { ...bin, node, bun: bun.path };
  const needMain = wanted('floor') || wanted('race') || wanted('storm');
  const mainDaemon = needMain ? await startDaemon(bin, 'main') : undefined;
  const sections = {
    floor: () => benchFloor(bin, bun, mainDaemon),
    throughput: () => benchThroughput(bin, node),
    scale: () => benchScale(bin),
    race: () => benchRace(bin, mainDaemon),
    storm: () => benchStorm(bin, mainDaemon),
    observe: () => benchObserve(bin),
    cluster: () => benchCluster(bin),
    'cluster-floor': () => benchClusterFloor(),
  };
  for (const name of SECTIONS) {
    if (!wanted(name)) continue;
    const t0 = performance.now();
    try {
      await sections[name]();
    } catch (err) {
      log(`${name}: FAILED: ${err?.stack ?? err}`);
      row(name, 'section failed', NaN, '', { op: '<=', value: 0 }, String(err?.message ?? err).split('\n')[0].slice(0, 200));
      results.sections[name] = { error: String(err?.stack ?? err) };
    }
    log(`${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  if (mainDaemon) await mainDaemon.stop();
  const end = machine();
  const busyPct = (1 - (end.stat.idle - start.stat.idle) / (end.stat.total - start.stat.total)) * 100;
  results.machine = { cpus: start.cpus, loadavgStart: start.loadavg, loadavgEnd: end.loadavg, cpuBusyPctDuringRun: busyPct };
  results.rows = rows;
  results.seconds = process.uptime();
  console.log(`\nreservoir bench (${QUICK ? 'quick' : 'full'}; ${bin.source}); ${results.seconds.toFixed(0)} s; ` +
    `load avg ${start.loadavg[0].toFixed(2)} -> ${end.loadavg[0].toFixed(2)} on ${start.cpus} CPUs, CPU busy ${busyPct.toFixed(0)}% (ours + others)\n`);
  printTable();
  writeFileSync(join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote bench/results.json`);
}

let exiting = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    log(`${sig}: cleaning up`);
    cleanupAll().finally(() => process.exit(130));
  });
}

main()
  .catch((err) => {
    log(`FAILED: ${err?.stack ?? err}`);
  })
  .finally(async () => {
    await cleanupAll();
    process.exit(0);
  });
