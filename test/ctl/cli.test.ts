// reservoirctl, in-process, against a real reservoird on a temp socket and a temp SQLite file.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../ctl/main.js';
import { callDaemon } from '../../src/client.js';
import { runPlugin } from '../../src/plugin.js';
import { LEASES_PAGE_DEFAULT, LEASES_PAGE_MAX, type LeaseView, type LeasesResponse } from '../../src/protocol.js';
import { type InProcessDaemon, startInProcessDaemon } from '../support/daemon.js';
import { netconf } from '../support/netconf.js';

/** The daemon's node (its default: the host name), shown in the NODE column. */
const NODE_NAME = hostname().replaceAll('.', '\\.');

let dir: string;
let socket: string;
let daemon: InProcessDaemon;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ctl(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main({
    argv,
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    env: { RESERVOIR_SOCKET: socket },
  });
  return { code, stdout, stderr };
}

const STATEFUL_ARGS = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;RESERVOIR_KIND=stateful';

function conf(reserved: unknown[] = [{ entry: '10.77.0.20-10.77.0.29', group: 'cfg', note: 'from config' }]) {
  return netconf('testnet', socket, { ranges: [[{ subnet: '10.77.0.0/24' }]], reserved });
}

/** One CNI call through the real plugin; returns the IP on ADD. */
async function cni(command: 'ADD' | 'DEL', containerId: string, cniArgs = 'IgnoreUnknown=1', config = conf()): Promise<string | undefined> {
  let out = '';
  const code = await runPlugin({
    env: { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: cniArgs },
    stdin: async () => Buffer.from(JSON.stringify(config)),
    stdout: (text) => void (out += text),
  });
  expect(code, out).toBe(0);
  if (command === 'DEL') return undefined;
  const result = JSON.parse(out) as { ips: Array<{ address: string }> };
  return result.ips[0]!.address.split('/')[0];
}

const C1 = 'c1'.padEnd(64, '0');
const C2 = 'c2'.padEnd(64, 'a');
const C3 = 'c3'.padEnd(64, 'b');

beforeAll(async () => {
  daemon = await startInProcessDaemon('ctl');
  ({ dir, socket } = daemon);
  await cni('ADD', C1);
});

afterAll(async () => {
  await daemon?.close();
});

describe('reservoirctl', () => {
  it('health: table and json', async () => {
    const table = await ctl('health');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^status\s+ok$/m);
    expect(table.stdout).toMatch(/^networks\s+1$/m);
    const json = await ctl('health', '-o', 'json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, networks: 1, leases: 1 });
    expect(json.stdout).toContain('\n  "ok": true');
  });

  it('usage: table with a bar, and json', async () => {
    const table = await ctl('usage');
    expect(table.code, table.stderr).toBe(0);
    const [header, row] = table.stdout.split('\n');
    expect(header).toMatch(/^NETWORK\s+SIZE\s+DYNAMIC\s+RESERVED\s+HELD\s+ATTACHED\s+USAGE$/);
    expect(row).toMatch(/^testnet\s+253\s+1\s+0\/10\s+0\s+1\s+\[\.{20}\]\s+0\.4%$/);
    const json = await ctl('usage', 'testnet', '-o', 'json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      networks: [
        {
          network: 'testnet',
          size: '253',
          dynamicSize: '243',
          dynamicInUse: 1,
          dynamicHeld: 0,
          reservedTotal: '10',
          reservedUsed: 0,
          reservedHeld: 0,
          reservedFree: '10',
          held: 0,
          attached: 1,
          misfits: 0,
          configFile: null,
          staleRequests: null,
          scope: 'node',
          disagreement: null,
          overlaps: [],
        },
      ],
    });
    const unknown = await ctl('usage', 'nosuchnet');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^reservoirctl: network "nosuchnet" is not registered.*\(code 107\)\n$/);
  });

  it('leases: table', async () => {
    const run = await ctl('leases', 'testnet');
    expect(run.code, run.stderr).toBe(0);
    const [header, row] = run.stdout.split('\n');
    expect(header).toMatch(/^IP\s+NETWORK\s+NODE\s+STATE\s+KIND\s+APP\s+CONTAINER\s+IFNAME\s+RESERVED\s+AGE$/);
    expect(row).toMatch(new RegExp(`^10\\.77\\.0\\.\\d+\\s+testnet\\s+${NODE_NAME}\\s+attached\\s+stateless\\s+-\\s+${C1.slice(0, 12)}\\s+eth0\\s+-\\s+\\d+s$`));
    expect(row).not.toContain(C1.slice(0, 13));
  });

  it('reserved add/list/set/rm, refused while an IP is in use', async () => {
    const add = await ctl('reserved', 'add', 'testnet', '10.77.0.50', '--group', 'g1', '--note', 'db primary');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('added reserved entry "10.77.0.50"');

    const ip = await cni('ADD', C2, 'IgnoreUnknown=1;RESERVOIR_GROUP=g1');
    expect(ip).toBe('10.77.0.50');

    const list = await ctl('reserved', 'list', 'testnet');
    expect(list.code, list.stderr).toBe(0);
    const [entries, ips] = list.stdout.split('\n\n');
    expect(entries).toMatch(/^ENTRY\s+GROUP\s+NAMESPACES\s+SIZE\s+USED\s+SOURCE\s+NOTE$/m);
    expect(entries).toMatch(/^10\.77\.0\.20-10\.77\.0\.29\s+cfg\s+any\s+10\s+0\s+config\s+from config$/m);
    expect(entries).toMatch(/^10\.77\.0\.50\s+g1\s+any\s+1\s+1\s+operator\s+db primary$/m);
    expect(ips).toMatch(/^IP\s+ENTRY\s+GROUP\s+STATE\s+NODE\s+HOLDER$/m);
    expect(ips).toMatch(new RegExp(`^10\\.77\\.0\\.50\\s+10\\.77\\.0\\.50\\s+g1\\s+leased\\s+${NODE_NAME}\\s+${C2}/eth0$`, 'm'));
    expect(ips).toMatch(/^10\.77\.0\.20\s+10\.77\.0\.20-10\.77\.0\.29\s+cfg\s+free\s+-\s+-$/m);

    const used = await ctl('reserved', 'list', 'testnet', '--used', '-o', 'json');
    expect(used.code).toBe(0);
    expect(JSON.parse(used.stdout).ips.map((x: { ip: string }) => x.ip)).toEqual(['10.77.0.50']);
    const free = await ctl('reserved', 'list', 'testnet', '--free', '-o', 'json');
    const freeIps = JSON.parse(free.stdout).ips.map((x: { ip: string; state: string }) => `${x.ip} ${x.state}`);
    expect(freeIps).toHaveLength(10);
    expect(freeIps.every((x: string) => x.endsWith(' free'))).toBe(true);
    expect(freeIps).not.toContain('10.77.0.50 free');

    const rm = await ctl('reserved', 'rm', 'testnet', '10.77.0.50');
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain(`in use by 10.77.0.50 (container ${C2.slice(0, 12)} ifname eth0)`);
    expect(rm.stderr).toMatch(/release them first \(code 105\)\n$/);

    const regroup = await ctl('reserved', 'set', 'testnet', '10.77.0.50', '--group', '');
    expect(regroup.code).toBe(1);
    expect(regroup.stderr).toContain('regroup');
    expect(regroup.stderr).toContain(C2.slice(0, 12));

    const grow = await ctl('reserved', 'set', 'testnet', '10.77.0.50', '--to', '10.77.0.50-10.77.0.53', '--note', '');
    expect(grow.code, grow.stderr).toBe(0);
    expect(grow.stdout).toContain('now "10.77.0.50-10.77.0.53" (4 addresses, 1 in use, group g1, note -)');

    const overlap = await ctl('reserved', 'add', 'testnet', '10.77.0.52');
    expect(overlap.code).toBe(1);
    expect(overlap.stderr).toContain('overlaps the reserved entry "10.77.0.50-10.77.0.53" (code 106)');

    await cni('DEL', C2, 'IgnoreUnknown=1;RESERVOIR_GROUP=g1');
    const ungroup = await ctl('reserved', 'set', 'testnet', '10.77.0.50-10.77.0.53', '--group', '', '-o', 'json');
    expect(ungroup.code, ungroup.stderr).toBe(0);
    expect(JSON.parse(ungroup.stdout)).toMatchObject({ entry: '10.77.0.50-10.77.0.53', group: null, note: null, used: 0, size: '4' });
    const removed = await ctl('reserved', 'rm', 'testnet', '10.77.0.50-10.77.0.53');
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('removed reserved entry "10.77.0.50-10.77.0.53"');
    const gone = await ctl('reserved', 'rm', 'testnet', '10.77.0.50-10.77.0.53');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('(code 108)');
  });

  it('reserved list warns on stderr about config entries that could not be applied', async () => {
    expect((await ctl('reserved', 'add', 'testnet', '10.77.0.60-10.77.0.69')).code).toBe(0);
    const clashing = conf([{ entry: '10.77.0.20-10.77.0.29', group: 'cfg', note: 'from config' }, '10.77.0.65']);
    await cni('ADD', C3, 'IgnoreUnknown=1', clashing);
    const list = await ctl('reserved', 'list', 'testnet');
    expect(list.code).toBe(0);
    expect(list.stderr).toMatch(/^reservoirctl: warning: reserved entry "10\.77\.0\.65" from the config not applied: 10\.77\.0\.65 overlaps the reserved entry "10\.77\.0\.60-10\.77\.0\.69"/);
    await cni('DEL', C3, 'IgnoreUnknown=1', clashing);
    await cni('ADD', C3, 'IgnoreUnknown=1'); // back to the original config
    await cni('DEL', C3, 'IgnoreUnknown=1');
    expect((await ctl('reserved', 'list', 'testnet')).stderr).toBe('');
    expect((await ctl('reserved', 'rm', 'testnet', '10.77.0.60-10.77.0.69')).code).toBe(0);
  });

  it('release: refused while attached, works after DEL', async () => {
    const ip = await cni('ADD', C3, STATEFUL_ARGS);
    const attached = await ctl('release', 'testnet', 'default/db-0');
    expect(attached.code).toBe(1);
    expect(attached.stderr).toContain('app "default/db-0" is still attached');
    expect(attached.stderr).toContain('(code 111)');

    await cni('DEL', C3, STATEFUL_ARGS);
    const leases = await ctl('leases');
    expect(leases.stdout).toMatch(new RegExp(`^${ip!.replaceAll('.', '\\.')}\\s+testnet\\s+${NODE_NAME}\\s+held\\s+stateful\\s+default/db-0\\s+-\\s+-\\s+-`, 'm'));
    const usage = await ctl('usage', '-o', 'json');
    expect(JSON.parse(usage.stdout).networks[0]).toMatchObject({ held: 1 });

    const released = await ctl('release', 'testnet', 'default/db-0');
    expect(released.code, released.stderr).toBe(0);
    expect(released.stdout).toBe(`released ${ip} held by default/db-0 in network testnet\n`);
    const again = await ctl('release', 'testnet', 'default/db-0');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('(code 112)');
  });

  it('usage errors exit 2 with a hint to run --help', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /Unknown argument: frobnicate/],
      [[], /give a command/],
      [['usage', '--bogus'], /Unknown argument: bogus/],
      [['reserved'], /give a subcommand/],
      [['reserved', 'add', 'testnet'], /Not enough non-option arguments/],
      [['reserved', 'list', 'testnet', '--free', '--used'], /mutually exclusive/],
      [['reserved', 'set', 'testnet', '10.77.0.50'], /nothing to change: give --to, --group, --note or --namespaces/],
      [['health', '-o', 'yaml'], /Invalid values/],
      [['health', '--timeout', 'soon'], /--timeout must be a whole number/],
      [['leases', '--limit', '0'], /--limit must be a whole number of at least 1, not 0/],
      [['leases', '--limit', 'all'], /--limit must be a whole number of at least 1, not NaN/],
    ];
    for (const [argv, message] of cases) {
      const run = await ctl(...argv);
      expect(run.code, argv.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toMatch(/Run 'reservoirctl.*--help' for usage\.\n$/);
    }
    expect((await ctl('reserved', 'add', 'testnet')).stderr).toContain("Run 'reservoirctl reserved add --help'");
  });

  it('daemon unreachable exits 3', async () => {
    const run = await ctl('health', '--socket', join(dir, 'nobody.sock'));
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^reservoirctl: cannot reach reservoird at .*nobody\.sock \(ENOENT\); is reservoird running\?.*\(code 11\)\n/);
    expect(run.stderr).toContain('--socket PATH or set RESERVOIR_SOCKET');
  });

  it('a change that got no answer in time exits 3 and says it may still apply; a read or an unreachable daemon does not', async () => {
    const muteSocket = join(dir, 'mute.sock');
    const held = new Set<Socket>();
    const mute = createServer((s) => void held.add(s)); // accepts, reads nothing, never answers
    await new Promise<void>((resolve) => mute.listen(muteSocket, resolve));
    try {
      for (const argv of [
        ['reserved', 'add', 'testnet', '10.9.0.5'],
        ['reserved', 'set', 'testnet', '10.9.0.5', '--note', 'x'],
        ['reserved', 'rm', 'testnet', '10.9.0.5'],
        ['release', 'testnet', 'default/db-0'],
      ]) {
        const run = await ctl(...argv, '--socket', muteSocket, '--timeout', '200');
        expect(run.code, argv.join(' ')).toBe(3);
        expect(run.stderr).toMatch(/did not answer within 200 ms.*\(code 11\)\n  the request was sent, so the change may still apply: check with "reservoirctl (reserved list|leases) testnet" before trying again\n/s);
      }
      const read = await ctl('usage', '--socket', muteSocket, '--timeout', '200');
      expect(read.code).toBe(3);
      expect(read.stderr).not.toMatch(/may still apply/);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }
    const down = await ctl('reserved', 'add', 'testnet', '10.9.0.5', '--socket', join(dir, 'nobody.sock'));
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/ENOENT/);
    expect(down.stderr).not.toMatch(/may still apply/);
  });

  it('backup writes an SQLite file atomically with mode 0600, and does not clobber without --force', async () => {
    const file = join(dir, 'backup.db');
    const run = await ctl('backup', file);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`to ${file}`);
    expect(readFileSync(file).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(existsSync(`${file}.tmp`)).toBe(false);

    writeFileSync(file, 'keep me');
    const refused = await ctl('backup', file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('already exists; pass --force');
    expect(readFileSync(file, 'utf8')).toBe('keep me');

    writeFileSync(`${file}.tmp`, 'stale');
    const forced = await ctl('backup', file, '--force', '-o', 'json');
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ file });
    expect(readFileSync(file).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    expect(existsSync(`${file}.tmp`)).toBe(false);

    const nodir = await ctl('backup', join(dir, 'no', 'such', 'dir.db'));
    expect(nodir.code).toBe(1);
    expect(nodir.stderr).toContain('ENOENT');
  });

  it('--help on every command exits 0 and prints usage on stdout', async () => {
    const commands = [[], ['health'], ['usage'], ['leases'], ['reserved'], ['reserved', 'list'], ['reserved', 'add'], ['reserved', 'set'], ['reserved', 'rm'], ['release'], ['backup']];
    for (const path of commands) {
      const run = await ctl(...path, '--help');
      expect(run.code, path.join(' ')).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain(['reservoirctl', ...path].join(' '));
      expect(run.stdout).toContain('--socket');
    }
    expect((await ctl('--help')).stdout).toContain('Exit codes: 0 success; 1 the request failed; 2 usage error; 3 reservoird is unreachable');
  });

  // Last: the other tests expect testnet to be the only network.
  it('leases: more leases than one page of the daemon, printed as one list', async () => {
    const bigConf = () => netconf('bignet', socket, { ranges: [[{ subnet: '10.78.0.0/21' }], [{ subnet: 'fd00:78::/64' }]], reserved: [] });
    const attachments = Math.ceil((LEASES_PAGE_DEFAULT + 40) / 2); // an IPv4 and an IPv6 lease each
    const added: string[] = [];
    for (let i = 0; i < attachments; i += 50) {
      const batch = Array.from({ length: Math.min(50, attachments - i) }, (_, j) => `big${i + j}`.padEnd(64, 'f'));
      await Promise.all(batch.map(async (id) => added.push(`${id} ${await cni('ADD', id, 'IgnoreUnknown=1', bigConf())}`)));
    }
    const withoutAge = (leases: readonly LeaseView[]) => leases.map(({ ageSeconds: _, ...rest }) => rest);
    const onePage = await callDaemon<LeasesResponse>('leases', { socket, timeoutMs: 5_000, query: { network: 'bignet', limit: String(LEASES_PAGE_MAX) } });
    expect(onePage.leases).toHaveLength(attachments * 2);
    expect(onePage.leases.length).toBeGreaterThan(LEASES_PAGE_DEFAULT);

    const json = await ctl('leases', 'bignet', '-o', 'json');
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    const printed = JSON.parse(json.stdout) as { leases: LeaseView[] };
    expect(Object.keys(printed)).toEqual(['leases']);
    expect(printed.leases).toHaveLength(attachments * 2);
    expect(withoutAge(printed.leases)).toEqual(withoutAge(onePage.leases));
    expect(new Set(printed.leases.map((l) => l.ip)).size).toBe(attachments * 2);
    const v4 = printed.leases.filter((l) => !l.ip.includes(':')).map((l) => `${l.containerId} ${l.ip}`);
    expect(v4.sort()).toEqual(added.sort());

    const text = await ctl('leases', 'bignet');
    expect(text.code, text.stderr).toBe(0);
    const rows = text.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(1 + attachments * 2);
    expect(rows.slice(1).map((row) => row.split(/\s+/)[0])).toEqual(onePage.leases.map((l) => l.ip));

    const first = await ctl('leases', 'bignet', '--limit', '5', '-o', 'json');
    expect(first.code, first.stderr).toBe(0);
    expect(withoutAge(JSON.parse(first.stdout).leases)).toEqual(withoutAge(onePage.leases.slice(0, 5)));
    expect(first.stderr).toBe('reservoirctl: showing the first 5 leases; more follow (leave out --limit to list them all)\n');
    const exactly = await ctl('leases', 'bignet', '--limit', String(attachments * 2), '-o', 'json');
    expect(JSON.parse(exactly.stdout).leases).toHaveLength(attachments * 2);
    expect(exactly.stderr).toBe('');
  });
});
