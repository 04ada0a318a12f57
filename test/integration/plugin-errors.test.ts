// What the plugin process prints and returns for bad input, before (or without) any daemon:
// always one JSON object on stdout, exit 1, the CNI code, no stack trace.
import { describe, expect, it } from 'vitest';
import { leasesOf } from '../support/daemon.js';
import { useInProcessDaemon } from '../support/hooks.js';
import { VERSIONS, netName, netconf } from '../support/netconf.js';
import { expectError, expectOk, runPlugin } from '../support/plugin.js';
import { containerId } from '../support/tmp.js';

const d = useInProcessDaemon('perr');

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

describe.concurrent('VERSION', () => {
  it('prints {cniVersion, supportedVersions} with all 7 versions, in the config version when it names one', async () => {
    const runs = await Promise.all([
      ...VERSIONS.map((version) => runPlugin({ command: 'VERSION', config: { cniVersion: version } })),
      runPlugin({ command: 'VERSION', config: '' }),
      runPlugin({ command: 'VERSION', config: '{"cniVersion": "9.9.9"}' }),
      runPlugin({ command: 'VERSION', config: 'not json' }),
    ]);
    runs.forEach((run, i) => {
      const info = expectOk(run, 'object');
      expect(Object.keys(info).sort()).toEqual(['cniVersion', 'supportedVersions']);
      expect(info.supportedVersions).toEqual(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
      expect(info.cniVersion).toBe(VERSIONS[i] ?? '1.1.0');
    });
  });
});

// Every version gets every kind of error; the long lists of cases run once, under 1.1.0.
describe.concurrent.each(VERSIONS)('cniVersion %s', (version) => {
  const conf = (extra?: Record<string, unknown>) => netconf(netName('perr', version), d.socket, {}, { cniVersion: version, ...extra });
  const all = version === '1.1.0';

  it('invalid JSON on stdin: code 6', async () => {
    const cases: unknown[] = [`{"cniVersion": "${version}", "name": `, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])];
    if (all) cases.push('', '[1, 2]', 'null', Buffer.alloc(1024 * 1024 + 10, 0x20));
    const runs = await Promise.all(cases.map((config, i) => runPlugin({ command: i === 2 ? 'DEL' : 'ADD', containerId: containerId('json'), config })));
    for (const run of runs) expectError(run, 6);
    expect(runs[1]!.json.msg).toMatch(/UTF-8/);
    if (all) expect(runs[5]!.json.msg).toMatch(/at most 1048576/);
  });

  it('invalid config: code 7 naming the field', async () => {
    const base = conf();
    const ipam = base.ipam as Record<string, unknown>;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...base, ipam: { ...ipam, ranges: undefined } }, /ipam\.ranges/],
      [{ ...base, ipam: { ...ipam, ranges: [[{ subnet: '10.0.0.5/24' }]] } }, /ipam\.ranges\[0\]\[0\]\.subnet.*did you mean 10\.0\.0\.0\/24/],
    ];
    if (all) {
      cases.push(
        [{ ...base, ipam: { ...ipam, ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] } }, /ipam\.ranges\[0\]\[0\]\.rangeStart/],
        [{ ...base, ipam: { ...ipam, timeout: 'soon' } }, /ipam\.timeout/],
        [{ ...base, ipam: { ...ipam, socket: 'relative.sock' } }, /ipam\.socket/],
        [{ ...base, name: 'bad name!' }, /invalid config: name/],
        [{ ...base, ipam: 'reservoir' }, /ipam/],
        [{ ...base, runtimeConfig: { ips: ['not-an-ip'] } }, /runtimeConfig\.ips\[0\]/],
      );
    }
    const runs = await Promise.all(cases.map(([config]) => runPlugin({ command: 'ADD', containerId: containerId('conf'), config })));
    runs.forEach((run, i) => {
      const error = expectError(run, 7, cases[i]![1]);
      expect(error.cniVersion).toBe(version);
    });
  });

  it('missing or invalid CNI_CONTAINERID (and other CNI_* variables): code 4', async () => {
    const calls = [
      runPlugin({ command: 'ADD', config: conf(), env: { CNI_IFNAME: 'eth0', CNI_NETNS: '/var/run/netns/x' } }),
      runPlugin({ command: 'DEL', config: conf(), env: { CNI_IFNAME: 'eth0' } }),
    ];
    if (all) {
      calls.push(
        runPlugin({ command: 'ADD', containerId: 'bad id!', config: conf() }),
        runPlugin({ command: 'ADD', containerId: containerId('noif'), config: conf(), env: { CNI_IFNAME: undefined } }),
        runPlugin({ command: 'ADD', containerId: containerId('nons'), netns: null, config: conf() }),
        runPlugin({ command: 'ADD', containerId: containerId('args'), args: 'IP', config: conf() }),
      );
    }
    const runs = await Promise.all(calls);
    expectError(runs[0]!, 4, /CNI_CONTAINERID is missing/);
    expectError(runs[1]!, 4, /CNI_CONTAINERID is missing/);
    if (!all) return;
    expectError(runs[2]!, 4, /CNI_CONTAINERID/);
    expectError(runs[3]!, 4, /CNI_IFNAME is missing/);
    expectError(runs[4]!, 4, /CNI_NETNS is missing/);
    expectError(runs[5]!, 4, /CNI_ARGS/);
  });

  it('unknown or missing CNI_COMMAND: code 4 listing the commands', async () => {
    const calls = [runPlugin({ command: 'ATTACH', containerId: containerId('cmd'), config: conf() })];
    if (all) {
      calls.push(
        runPlugin({ containerId: containerId('cmd'), config: conf() }),
        runPlugin({ command: 'add', containerId: containerId('cmd'), config: conf() }),
      );
    }
    const runs = await Promise.all(calls);
    for (const run of runs) {
      const error = expectError(run, 4);
      for (const command of COMMANDS) expect(error.msg).toContain(command);
    }
    expect(runs[0]!.json.msg).toContain('ATTACH');
    if (all) expect(runs[1]!.json.msg).toMatch(/CNI_COMMAND is missing/);
  });
});

describe.concurrent('cniVersion', () => {
  it.each(['0.5.0', '2.0.0', '1.1', 'latest'])('unsupported cniVersion %s: code 1 listing the supported ones', async (version) => {
    const run = await runPlugin({ command: 'ADD', containerId: containerId('ver'), config: netconf('perr-ver', d.socket, {}, { cniVersion: version }) });
    const error = expectError(run, 1, /not supported/);
    for (const supported of VERSIONS) expect(error.msg).toContain(supported);
  });

  it('a config without cniVersion is read as 0.1.0', async () => {
    const config = netconf('perr-noversion', d.socket, {}, { cniVersion: '0.1.0' });
    delete config.cniVersion;
    const result = expectOk(await runPlugin({ command: 'ADD', containerId: containerId('nov'), config }), 'object');
    expect(result.cniVersion).toBe('0.1.0');
    expect(result.ip4.ip).toMatch(/^10\.10\.0\.\d+\/24$/);
  });

  it('no input error leaves a lease behind', async () => {
    for (const version of VERSIONS) expect(await leasesOf(d.socket, netName('perr', version))).toEqual([]);
  });
});
