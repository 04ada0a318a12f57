// reservoirctl check's text: this node's findings, then each other node's report and what etcd
// shows of it, then the repair request's answers; and when the exit code says "fix something".
import { describe, expect, it } from 'vitest';
import { checkReport, hasProblems } from '../../ctl/check.js';
import type { ClusterCheckResponse, ClusterNodeView } from '../../src/protocol.js';

const own: ClusterCheckResponse = { node: 'a', orphans: [], lost: [], conflicts: [], owed: 0, repaired: false };
const orphan = { network: 'n', ip: '10.0.0.9', holder: 'container c9 ifname eth0', node: 'b', problem: 'unknown to the journal' };
const nodeB: ClusterNodeView = {
  node: 'b',
  report: {
    node: 'b',
    version: '0.1.0',
    startedAt: Date.UTC(2026, 0, 1),
    writtenAt: 0,
    revision: 9,
    networks: { n: { attached: 1, releasing: 0, conflict: 0, digest: 'd' } },
    lastCheck: { at: 0, network: null, repaired: false, orphans: { total: 1, items: [orphan] }, lost: { total: 0, items: [] }, conflicts: { total: 0, items: [] } },
    repairedAt: null,
    repairId: null,
  },
  reportAgeMs: 65_000,
  silent: false,
  attachments: { n: 2 },
  disagreements: [{ network: 'n', etcd: 2, journal: 1 }],
  problems: ['etcd says node b holds 2 attachment(s) of n, its journal says 1: run `reservoirctl check --repair`'],
};

describe('reservoirctl check output', () => {
  it('groups the other nodes under this node\'s summary, each with its findings and problems', () => {
    expect(checkReport({ ...own, nodes: [nodeB], repairRequest: { id: 'r', asked: ['b', 'c'], answered: ['b'], silent: ['c'] } })).toBe(
      'node a: 0 orphan(s), 0 lost, 0 conflict(s); 0 change(s) owed to etcd\n' +
        'node b: report 1m old (version 0.1.0, up since 2026-01-01T00:00:00.000Z); last check: 1 orphan(s), 0 lost, 0 conflict(s); attachments in etcd: 2 in n\n' +
        '  PROBLEM  NETWORK  IP        NODE  HOLDER                    WHY\n' +
        '  orphan   n        10.0.0.9  b     container c9 ifname eth0  unknown to the journal\n' +
        '  ! etcd says node b holds 2 attachment(s) of n, its journal says 1: run `reservoirctl check --repair`\n' +
        'repair asked of 2 other node(s)' +
        ': 1 answered (b); no answer from c: gone? `reservoirctl release --node NAME`\n',
    );
    // a daemon from before node reports: this node only
    expect(checkReport(own)).toBe('node a: 0 orphan(s), 0 lost, 0 conflict(s); 0 change(s) owed to etcd\n');
    expect(checkReport({ ...own, nodes: [{ ...nodeB, report: null, reportAgeMs: null, problems: [] }] })).toContain('node b: no report; attachments in etcd: 2 in n\n');
  });

  it('exits non-zero for anything left to fix: own findings (conflicts even after a repair), another node\'s problems, an unanswered repair', () => {
    expect(hasProblems(own)).toBe(false);
    expect(hasProblems({ ...own, nodes: [{ ...nodeB, problems: [] }] })).toBe(false);
    expect(hasProblems({ ...own, orphans: [orphan] })).toBe(true);
    expect(hasProblems({ ...own, orphans: [orphan], lost: [orphan], repaired: true })).toBe(false);
    expect(hasProblems({ ...own, conflicts: [orphan], repaired: true })).toBe(true);
    expect(hasProblems({ ...own, nodes: [nodeB] })).toBe(true);
    expect(hasProblems({ ...own, repaired: true, repairRequest: { id: 'r', asked: ['b'], answered: [], silent: ['b'] } })).toBe(true);
    expect(hasProblems({ ...own, repaired: true, repairRequest: { id: 'r', asked: ['b'], answered: ['b'], silent: [] } })).toBe(false);
  });
});
