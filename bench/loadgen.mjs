// Load generator for the daemon-throughput benchmark, run as its own process (so its CPU shows
// apart from the daemon's): `node bench/loadgen.mjs '<json options>'`, prints one JSON line.
// Options: socket, conc, count, config (network config object), prefix (container id prefix),
// daemonPid (for the daemon's CPU time), warmup (ADD+DEL pairs per client before measuring).
// Phase ADD: `count` ADDs of distinct containers from `conc` concurrent clients; phase DEL: the
// same containers DELeted. One connection per request, as the plugin does.
import { cniBody, cpuMsOf, percentile, rawRequest } from './http.mjs';

const opts = JSON.parse(process.argv[2]);
const { socket, conc, count, config, prefix, daemonPid, warmup = 5 } = opts;

async function phase(path, ids) {
  const latencies = [];
  let next = 0;
  let errors = 0;
  let firstError;
  const cpu0 = process.cpuUsage();
  const daemonCpu0 = cpuMsOf(daemonPid);
  const t0 = performance.now();
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= ids.length) return;
      const r = await rawRequest(socket, 'POST', path, cniBody(config, ids[i]));
      latencies.push(r.ms);
      if (r.status !== 200) {
        errors++;
        firstError ??= `${r.status} ${r.body.slice(0, 300)}`;
      }
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const daemonCpuMs = cpuMsOf(daemonPid) - daemonCpu0;
  latencies.sort((a, b) => a - b);
  return {
    n: ids.length,
    seconds,
    perSecond: ids.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1],
    errors,
    firstError,
    clientCpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
    daemonCpuPct: (daemonCpuMs / (seconds * 1000)) * 100,
  };
}

const warm = Array.from({ length: conc * warmup }, (_, i) => `${prefix}-w${i}`);
await phase('/v1/cni/add', warm);
await phase('/v1/cni/del', warm);
const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
const add = await phase('/v1/cni/add', ids);
const del = await phase('/v1/cni/del', ids);
process.stdout.write(`${JSON.stringify({ conc, add, del })}\n`);
