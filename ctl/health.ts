// reservoirctl health: is the daemon up, which version, how much it holds.
import type { Argv } from 'yargs';
import type { HealthResponse } from '../src/protocol.js';
import { type Args, type GlobalOptions, call, show } from './common.js';
import { age, keyValues } from './format.js';

export const command = 'health';
export const describe = 'Check that reservoird answers; show its version, uptime and counts';

export function builder(yargs: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return yargs.example('$0 health', 'exit 0 when reservoird is up, 3 when it is unreachable');
}

/** The cluster networks' link: where, whether it follows etcd now, this node's journal and what etcd is owed. */
function clusterLine(h: HealthResponse): string {
  const c = h.cluster;
  if (!c) return 'off (node networks only)';
  const state = c.connected ? `following at revision ${c.revision}` : `UNREACHABLE: ${c.lastError ?? 'not connected yet'} (ADD of cluster networks fails with 11; DEL is journaled)`;
  return `${c.endpoints.join(',')} prefix ${c.prefix}, node ${c.node}; ${state}; journal ${c.journal.attached} attached, ${c.journal.releasing} releasing, ${c.journal.conflict} in conflict; ${c.owed} change(s) owed`;
}

export async function handler(argv: Args): Promise<void> {
  const answer = await call<HealthResponse>('health', argv);
  show(argv, answer, (h) =>
    keyValues([
      ['status', h.ok ? 'ok' : 'not ok'],
      ['socket', argv.socket],
      ['version', h.version],
      ['protocol', String(h.protocol)],
      ['pid', String(h.pid)],
      ['uptime', age(h.uptimeSeconds)],
      ['networks', String(h.networks)],
      ['leases', String(h.leases)],
      ...h.netns.map((n): [string, string] => [`netns ${n.root}`, `${n.visible ? 'visible' : 'NOT VISIBLE'}: ${n.why}`]),
      ['kubernetes', h.kubernetes === null ? 'off' : `${h.kubernetes.server}, node ${h.kubernetes.node}; ${h.kubernetes.fenced === null ? 'in step' : `releases paused: ${h.kubernetes.fenced}`}`],
      ...(h.kubernetes?.refused ?? []).map((r): [string, string] => ['refused', r]),
      ...(h.kubernetes?.releasedOfGoneNodes ? ([['gone nodes', `${h.kubernetes.releasedOfGoneNodes} attachment(s) ended: their node and pod confirmed gone by the API`]] as const) : []),
      ['etcd', clusterLine(h)],
      // Shown when there is something to act on (reservoirctl usage names the networks).
      ...(h.misfits > 0 ? ([['misfits', `${h.misfits} lease(s) no longer fit their network's config`]] as const) : []),
      ...(h.staleConfigs > 0 ? ([['stale configs', `${h.staleConfigs} network(s) got ADDs with another config than their file`]] as const) : []),
    ]) + (h.warnings ?? []).map((line) => `warning: ${line}\n`).join(''),
  );
}
