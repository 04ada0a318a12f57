// This node's report in etcd, and `check` across nodes. Nodes reach each other only through
// etcd: each publishes its report (PREFIX/v1/nodes/NODE: start, version, journal counts, last
// check) after a check and on a slow heartbeat, never per CNI call; `check` reads the others'
// reports from the mirror and compares them with etcd's claims. `--repair` writes a request
// under each other node's key (PREFIX/v1/nodes/NODE/repair); each node sees its own through
// the watch, runs check --repair and publishes a report naming the request. Nothing here
// locks anything: allocation goes on. etcd away: a write is skipped and tried later.
import { randomBytes } from 'node:crypto';
import type { ClusterCheckResponse, ClusterNodeReport, ClusterRepairRequestView } from '../../src/protocol.js';
import type { Logger } from '../log.js';
import type { Cluster } from './cluster.js';
import type { KvEvent } from './kv.js';
import { type RepairRequest, buildReport, compareNodes, decodeRepairRequest, decodeReport, encodeReport, sameContent } from './node-report.js';

export interface NodeReportOptions {
  /** How often the heartbeat looks whether the report is worth writing (default 60 s). */
  readonly heartbeatMs?: number | undefined;
  /** An unchanged report is written again after this long (default 5 min). */
  readonly refreshMs?: number | undefined;
  /** Another node's report older than this means the node is silent (default 3 × refreshMs). */
  readonly staleMs?: number | undefined;
  /** How long --repair waits for the other nodes' fresh reports, within the caller's deadline (default 5 s). */
  readonly repairWaitMs?: number | undefined;
}

const DEFAULT_HEARTBEAT_MS = 60_000;
const DEFAULT_REFRESH_MS = 300_000;
const DEFAULT_REPAIR_WAIT_MS = 5_000;
/** What --repair leaves of the caller's deadline for the answer itself. */
const ANSWER_MARGIN_MS = 300;
const POLL_MS = 50;

/** The part of ClusterService this needs (a check of this node's journal). */
export interface OwnCheck {
  check(network: string | undefined, repair: boolean): Promise<ClusterCheckResponse>;
}

export class NodeReports {
  private readonly startedAt: number;
  private readonly refreshMs: number;
  private readonly staleMs: number;
  private readonly repairWaitMs: number;
  private readonly heartbeat: NodeJS.Timeout;
  private lastCheck: { at: number; network: string | null; result: ClusterCheckResponse } | undefined;
  private repairedAt: number | null = null;
  /** The last repair request this node ran (from its own report after a restart). */
  private repairId: string | null = null;
  private written: ClusterNodeReport | undefined;
  private publishing = false;
  private publishAgain = false;
  /** The request being answered (null: none); the report names it (repairId) once its repair has run. */
  private answeringId: string | null = null;
  /** A request that came while this node was repairing: run after. */
  private pendingRequest: RepairRequest | undefined;
  private failedOnce = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly own: OwnCheck,
    private readonly version: string,
    private readonly log: Logger,
    options: NodeReportOptions = {},
    /** The daemon's clock: report times, ages. */
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
    this.refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
    this.staleMs = options.staleMs ?? 3 * this.refreshMs;
    this.repairWaitMs = options.repairWaitMs ?? DEFAULT_REPAIR_WAIT_MS;
    this.heartbeat = setInterval(() => {
      if (this.cluster.health().connected) void this.publish(false);
    }, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private get node(): string {
    return this.cluster.node;
  }

  stop(): void {
    clearInterval(this.heartbeat);
  }

  /** A check of this node ran: remember it and publish (an automatic one only when the report changed). */
  checked(result: ClusterCheckResponse, network: string | undefined, automatic: boolean): void {
    this.lastCheck = { at: this.now(), network: network ?? null, result };
    if (result.repaired) {
      this.repairedAt = this.lastCheck.at;
      // the report names the request only once its repair has run
      if (this.answeringId !== null) this.repairId = this.answeringId;
    }
    void this.publish(!automatic);
  }

  /** After a (re)load: a repair request written while this node was away is answered now. */
  loaded(): void {
    const mine = this.cluster.mirror.entry(this.cluster.layout.node(this.node));
    if (this.repairId === null && mine) this.repairId = decodeReport(mine.value)?.repairId ?? null;
    const request = this.cluster.mirror.entry(this.cluster.layout.repair(this.node));
    if (request) this.answer(decodeRepairRequest(request.value));
  }

  /** The watch's events: a repair request for this node. */
  watched(events: readonly KvEvent[]): void {
    const key = this.cluster.layout.repair(this.node);
    for (const event of events) if (event.type === 'put' && event.key === key) this.answer(decodeRepairRequest(event.value));
  }

  private answer(request: RepairRequest | undefined): void {
    if (!request || request.id === this.repairId || request.id === this.answeringId) return;
    if (this.answeringId !== null) {
      this.pendingRequest = request;
      return;
    }
    this.answeringId = request.id;
    this.log.info('another node asked for check --repair', { by: request.by, request: request.id, network: request.network ?? 'all' });
    this.own
      .check(request.network ?? undefined, true)
      .catch((err: unknown) => {
        // not named in the report: asked again at the next load
        this.log.warn('check --repair asked by another node failed; trying again after the next load', { by: request.by, error: String((err as Error).message ?? err) });
      })
      .finally(() => {
        this.answeringId = null;
        const next = this.pendingRequest;
        this.pendingRequest = undefined;
        if (next) this.answer(next);
      });
  }

  /** This node's report now. */
  report(): ClusterNodeReport {
    const journal = this.cluster.journal.attachments().map((a) => ({ network: a.lease.network, family: a.lease.family, ip: a.lease.ip, containerId: a.lease.containerId, ifname: a.lease.ifname, state: a.state }));
    return buildReport({
      node: this.node,
      version: this.version,
      startedAt: this.startedAt,
      now: this.now(),
      // what the journal reflects: this node's own commits count before their watch events arrive
      revision: Math.max(this.cluster.mirror.watched, this.cluster.units.committedTo),
      journal,
      lastCheck: this.lastCheck,
      repairedAt: this.repairedAt,
      repairId: this.repairId,
    });
  }

  /**
   * Write the report unless nothing changed since the last write and it is recent (`force`:
   * write anyway). One write at a time; a request during one writes again after it. Never
   * throws: etcd away is logged once and tried later.
   */
  async publish(force: boolean): Promise<boolean> {
    if (this.publishing) {
      this.publishAgain = true;
      return false;
    }
    this.publishing = true;
    let wrote = false;
    try {
      const report = this.report();
      const w = this.written;
      if (!force && w && sameContent(w, report) && report.writtenAt - w.writtenAt < this.refreshMs) return false;
      await this.cluster.put(this.cluster.layout.node(this.node), encodeReport(report));
      this.written = report;
      this.failedOnce = false;
      wrote = true;
    } catch (err) {
      if (!this.failedOnce) this.log.warn('could not publish this node\'s report to etcd; trying again later', { error: String((err as Error).message ?? err) });
      this.failedOnce = true;
    } finally {
      this.publishing = false;
    }
    if (this.publishAgain) {
      this.publishAgain = false;
      await this.publish(true);
    }
    return wrote;
  }

  /** The other nodes' reports, as this copy of etcd has them. */
  private reports(): Map<string, ClusterNodeReport> {
    const out = new Map<string, ClusterNodeReport>();
    for (const [key, entry] of this.cluster.mirror.under(this.cluster.layout.nodes())) {
      const parsed = this.cluster.layout.parse(key);
      if (parsed?.kind !== 'node') continue;
      const report = decodeReport(entry.value);
      if (report) out.set(parsed.node, report);
    }
    return out;
  }

  /** Attachments etcd gives to each node, per network. */
  private attachments(): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>();
    for (const network of this.cluster.mirror.networks) {
      for (const lease of this.cluster.mirror.attachedLeases(network)) {
        if (!lease.node || lease.containerId === null) continue;
        const counts = out.get(lease.node) ?? new Map<string, number>();
        counts.set(network, (counts.get(network) ?? 0) + 1);
        out.set(lease.node, counts);
      }
    }
    return out;
  }

  /** This node's check, with the other nodes through etcd; `repair`: they are asked to repair and awaited (bounded). */
  async across(own: ClusterCheckResponse, network: string | undefined, repair: boolean, deadline: number | undefined): Promise<ClusterCheckResponse> {
    let repairRequest: ClusterRepairRequestView | undefined;
    if (repair) {
      const known = new Set([...this.reports().keys(), ...this.attachments().keys()]);
      known.delete(this.node);
      const request: RepairRequest = { id: `${this.node}-${this.now()}-${randomBytes(4).toString('hex')}`, by: this.node, at: this.now(), network: network ?? null };
      const asked: string[] = [];
      for (const node of [...known].sort()) {
        try {
          await this.cluster.put(this.cluster.layout.repair(node), JSON.stringify(request));
          asked.push(node);
        } catch (err) {
          this.log.warn('could not ask a node to repair', { node, error: String((err as Error).message ?? err) });
        }
      }
      // real time: the caller waits in real time whatever the daemon's clock says
      const until = Math.min(Date.now() + this.repairWaitMs, (deadline ?? Number.POSITIVE_INFINITY) - ANSWER_MARGIN_MS);
      const answered = () => {
        const reports = this.reports();
        return asked.filter((node) => reports.get(node)?.repairId === request.id);
      };
      while (answered().length < asked.length && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const done = answered();
      repairRequest = { id: request.id, asked, answered: done, silent: [...known].sort().filter((node) => !done.includes(node)) };
    }
    const nodes = compareNodes({
      self: this.node,
      now: this.now(),
      staleMs: this.staleMs,
      network,
      reports: this.reports(),
      attachments: this.attachments(),
      changedAt: (net, node) => this.cluster.mirror.nodeChangedAt(net, node),
    });
    return { ...own, nodes, ...(repairRequest ? { repairRequest } : {}) };
  }
}
