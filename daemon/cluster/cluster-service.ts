// The cluster's use cases beyond CNI calls: DEL while etcd is away (the journal), paying those
// releases back, reconciling this node's journal with etcd (orphans, lost claims, conflicts;
// `reservoirctl check`), and releasing the attachments of a node that is gone (by the operator,
// or once the Kubernetes integration confirms the node and the pods gone).
import { formatValue } from '../../src/address.js';
import type { CniInvocation } from '../../src/invocation.js';
import { ReservoirError } from '../../src/errors.js';
import type { ClusterCheckItem, ClusterCheckResponse, ClusterHealthView, ReleaseNodeResponse } from '../../src/protocol.js';
import type { CniService } from '../cni-service.js';
import { describeLease } from '../holders.js';
import type { Ledger } from '../ledger.js';
import type { Logger } from '../log.js';
import type { LeaseRecord, Store } from '../store.js';
import type { Cluster } from './cluster.js';
import type { NodeReports } from './node-reports.js';

/** Leases one unit of `release --node` releases. */
const RELEASE_PAGE = 50;

export class ClusterService {
  private reconciling = false;
  /** This node's report in etcd and the other nodes' (app.ts sets it): told of every check. */
  reports: NodeReports | undefined;

  constructor(
    readonly cluster: Cluster,
    private readonly store: Store,
    private readonly cni: CniService,
    private readonly ledger: Ledger,
    private readonly log: Logger,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private get node(): string {
    return this.cluster.node;
  }

  health(): ClusterHealthView {
    const h = this.cluster.health();
    const journal = { attached: 0, releasing: 0, conflict: 0 };
    for (const a of this.cluster.journal.attachments()) journal[a.state]++;
    return { node: this.node, endpoints: h.endpoints, prefix: h.prefix, connected: h.connected, revision: h.revision, lastError: h.lastError, owed: h.owed + journal.releasing, journal, stats: h.stats };
  }

  /** DEL of a cluster network with etcd away: the journal marks the attachment's leases to release; DEL succeeds. */
  delOffline(inv: CniInvocation): void {
    const { containerId, ifname } = inv.attachment;
    const rows = this.cluster.journal.ofAttachment(inv.network, containerId, ifname);
    if (rows.length === 0) return;
    this.cluster.journal.transaction(() => {
      for (const row of rows) this.cluster.journal.setState(row.lease, 'releasing', `DEL at ${new Date(this.now()).toISOString()} while etcd was unreachable`);
    });
    this.log.warn('DEL taken while etcd is unreachable; the release reaches etcd when it is back', { network: inv.network, container: containerId, ifname, ips: rows.map((r) => formatValue(r.lease.family, r.lease.ip)).join(',') });
  }

  /** Releases taken while etcd was away, now sent (each only if etcd still gives the IP to that container). */
  async flushReleases(): Promise<number> {
    let done = 0;
    for (const row of this.cluster.journal.attachments().filter((a) => a.state === 'releasing')) {
      const lease = row.lease;
      await this.cluster.units.run(lease.network, () => {
        const now = this.store.leaseAt(lease.network, lease.family, lease.ip);
        if (now && now.containerId === lease.containerId && now.ifname === lease.ifname) this.cni.release(now, 'del');
      });
      const after = this.store.leaseAt(lease.network, lease.family, lease.ip);
      if (!after || after.containerId !== lease.containerId || after.ifname !== lease.ifname) {
        this.cluster.journal.transaction(() => this.cluster.journal.forget(lease.network, lease.family, lease.ip));
      }
      done++;
    }
    if (done > 0) this.log.info('releases taken while etcd was away reached etcd', { released: done });
    return done;
  }

  /** After (re)connecting: releases owed, then the journal against etcd (orphans after the grace). */
  async afterLoad(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      await this.cluster.payOutbox();
      await this.flushReleases();
      await this.check(undefined, false, true);
    } catch (err) {
      this.log.warn('reconciling the journal with etcd failed; trying again later', { error: String((err as Error).message ?? err) });
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * Compare this node's journal with etcd. Orphans: etcd gives an IP to a container of this node
   * that the journal does not know (a crash between etcd's commit and the journal's); lost: the
   * journal knows an attachment etcd does not; conflicts: etcd gives the journal's IP to another
   * holder. `repair`: release orphans, claim lost ones again where the IP is still free, and mark
   * conflicts (never duplicated: the other holder keeps the IP). `automatic` (after a reload):
   * orphans only once older than the reclaim grace, and never with reclaim off (grace 0).
   */
  async check(network: string | undefined, repair: boolean, automatic = false): Promise<ClusterCheckResponse> {
    const mirror = this.cluster.mirror;
    if (!mirror.loaded || !this.cluster.health().connected) {
      throw new ReservoirError('TRY_AGAIN_LATER', `etcd cannot be reached (${this.cluster.health().lastError ?? 'not connected yet'}); check compares this node's journal with etcd, so it needs etcd`);
    }
    const orphans: ClusterCheckItem[] = [];
    const lost: ClusterCheckItem[] = [];
    const conflicts: ClusterCheckItem[] = [];
    const journal = this.cluster.journal.attachments(network);
    const known = new Set(journal.map((a) => leaseKey(a.lease)));
    const cutoff = this.now() - this.graceMs;
    const item = (lease: LeaseRecord, problem: string): ClusterCheckItem => ({ network: lease.network, ip: formatValue(lease.family, lease.ip), holder: describeLease(lease), node: lease.node ?? this.node, problem });

    for (const name of network === undefined ? [...mirror.networks] : [network]) {
      for (const lease of mirror.attachedLeases(name)) {
        if (lease.node !== this.node || known.has(leaseKey(lease)) || !this.unknownToJournal(lease)) continue;
        // A claim this daemon is committing right now shows in the copy (the watch) before its journal line.
        if (this.cluster.units.inFlight(this.cluster.layout.lease(lease.network, lease.family, lease.ip))) continue;
        if (automatic && (this.graceMs <= 0 || lease.createdAt > cutoff)) continue;
        orphans.push(item(lease, 'etcd gives it to a container of this node that the journal does not know (no attachment: reservoird stopped between etcd and its journal)'));
        if (repair || automatic) {
          await this.cluster.units.run(name, () => {
            const now = this.store.leaseAt(lease.network, lease.family, lease.ip);
            if (!now || now.node !== this.node || now.containerId !== lease.containerId || now.createdAt !== lease.createdAt) return;
            if (this.unknownToJournal(now) && !this.cluster.units.inFlight(this.cluster.layout.lease(now.network, now.family, now.ip))) this.cni.release(now, 'orphan');
          });
        }
      }
    }
    for (const row of journal) {
      if (row.state === 'releasing') continue;
      const lease = row.lease;
      const now = mirror.store.leaseAt(lease.network, lease.family, lease.ip);
      if (now && now.containerId === lease.containerId && now.ifname === lease.ifname) {
        if (row.state === 'conflict') this.cluster.journal.transaction(() => this.cluster.journal.setState(lease, 'attached', null));
        continue;
      }
      if (now) {
        const problem = `this node's container ${lease.containerId!.slice(0, 12)} ifname ${lease.ifname} has it by the journal, but etcd gives it to ${describeLease(now)}; DEL one of the two containers`;
        conflicts.push({ ...item(lease, problem), holder: describeLease(now), node: now.node ?? this.node });
        if (row.state !== 'conflict') {
          this.cluster.journal.transaction(() => this.cluster.journal.setState(lease, 'conflict', problem));
          this.log.error('an IP of this node\'s journal is held by another holder in etcd', { network: lease.network, ip: formatValue(lease.family, lease.ip), problem });
        }
        continue;
      }
      lost.push(item(lease, 'the journal has this attachment but etcd has no claim for it'));
      if (repair || automatic) {
        await this.cluster.units.run(lease.network, () => {
          if (!this.store.leaseAt(lease.network, lease.family, lease.ip)) this.ledger.claim({ ...lease, node: this.node }, 'reattached');
        });
        const after = mirror.store.leaseAt(lease.network, lease.family, lease.ip);
        if (after && after.containerId === lease.containerId) this.log.info('claimed again in etcd an attachment only the journal knew', { network: lease.network, ip: formatValue(lease.family, lease.ip) });
      }
    }
    const result: ClusterCheckResponse = { node: this.node, orphans, lost, conflicts, owed: this.health().owed, repaired: repair };
    this.reports?.checked(result, network, automatic);
    return result;
  }

  /** `reservoirctl check`: this node's check, and the other nodes through etcd (--repair asks them to repair too). */
  async checkCluster(network: string | undefined, repair: boolean, deadline?: number): Promise<ClusterCheckResponse> {
    const own = await this.check(network, repair);
    return this.reports ? this.reports.across(own, network, repair, deadline) : own;
  }

  /** Whether the journal has no attachment of this lease now (read at the moment, not from a list taken earlier). */
  private unknownToJournal(lease: LeaseRecord): boolean {
    return !this.cluster.journal.ofAttachment(lease.network, lease.containerId!, lease.ifname!).some((a) => a.lease.family === lease.family && a.lease.ip === lease.ip);
  }

  /** `reservoirctl release --node NAME`: the node is gone; its attachments end (stateful IPs stay held by their apps). */
  async releaseNode(node: string): Promise<ReleaseNodeResponse> {
    if (!this.cluster.mirror.loaded) throw new ReservoirError('TRY_AGAIN_LATER', 'etcd cannot be reached; releasing a node\'s attachments needs etcd');
    let released = 0;
    let held = 0;
    for (const network of [...this.cluster.mirror.networks]) {
      // pages of the network's attachments in address order: a unit releases the node's of one page
      for (let after: { family: 4 | 6; ip: bigint } | undefined, scanned: LeaseRecord[]; ; ) {
        scanned = this.cluster.mirror.store.attachedLeasesAfter(network, after, RELEASE_PAGE);
        if (scanned.length === 0) break;
        const last = scanned[scanned.length - 1]!;
        after = { family: last.family, ip: last.ip };
        const page = scanned.filter((l) => l.node === node);
        if (page.length === 0) continue;
        const counts = await this.endAttachments(network, page.map((lease) => ({ lease, why: null })), node, 'operator', (now) => now.containerId !== null);
        released += counts.released;
        held += counts.held;
      }
    }
    this.log.info('released the attachments of a node', { node, released, held, by: 'operator' });
    return { node, released, held };
  }

  /** The attachments of other nodes in the cluster networks, as this daemon's copy of etcd has them now; none before it is loaded. */
  attachmentsOfOtherNodes(): LeaseRecord[] {
    const mirror = this.cluster.mirror;
    if (!mirror.loaded) return [];
    const out: LeaseRecord[] = [];
    for (const network of [...mirror.networks]) {
      for (const lease of mirror.attachedLeases(network)) if (lease.node && lease.node !== this.node) out.push(lease);
    }
    return out;
  }

  /**
   * The Kubernetes API confirmed these attachments' node and pods gone: end each one that is still
   * exactly the attachment that was judged (same container, pod and creation; a unit per network,
   * so etcd's compare-and-swap makes several daemons doing it at once harmless).
   */
  async endConfirmedGone(node: string, ends: ReadonlyArray<{ lease: LeaseRecord; why: string }>): Promise<{ released: number; held: number }> {
    let released = 0;
    let held = 0;
    for (const network of new Set(ends.map((e) => e.lease.network))) {
      const counts = await this.endAttachments(network, ends.filter((e) => e.lease.network === network), node, 'node_gone', (now, judged) =>
        now.containerId === judged.containerId && now.ifname === judged.ifname && (now.podUid ?? null) === (judged.podUid ?? null) && now.createdAt === judged.createdAt,
      );
      released += counts.released;
      held += counts.held;
    }
    return { released, held };
  }

  /** One unit: release those of `ends` still of `node` and still `unchanged`, as `reason` (stateful IPs stay held by their apps). */
  private endAttachments(
    network: string,
    ends: ReadonlyArray<{ lease: LeaseRecord; why: string | null }>,
    node: string,
    reason: 'operator' | 'node_gone',
    unchanged: (now: LeaseRecord, judged: LeaseRecord) => boolean,
  ): Promise<{ released: number; held: number }> {
    return this.cluster.units.run(network, () => {
      let released = 0;
      let held = 0;
      for (const { lease, why } of ends) {
        const now = this.store.leaseAt(lease.network, lease.family, lease.ip);
        if (!now || now.node !== node || now.containerId === null || !unchanged(now, lease)) continue;
        this.cni.release(now, reason, why);
        if (now.kind === 'stateful') held++;
        else released++;
      }
      return { released, held };
    });
  }
}

function leaseKey(lease: LeaseRecord): string {
  return `${lease.network}\u0000${lease.family}\u0000${lease.ip}\u0000${lease.containerId}\u0000${lease.ifname}`;
}
