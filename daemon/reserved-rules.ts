// One rule book for reserved entries, whichever way they come. The operator service (reservoirctl
// reserved add/set/rm) and the config reconciler (networks.ts) change entries only through these
// functions, so both hold to the same rules:
// - an entry lies inside one allocatable range, off the gateways, and overlaps no other entry (106);
// - an entry never takes in an IP that is leased: a pod that got an IP without asking would
//   become a reserved holder it never was (105);
// - IPs leave an entry (shrink, move, delete), or change group, only while free (105);
// - the operator may not change or delete an entry that the network's config declares: the
//   config is authoritative for its entries, so the operator edits the file (118).
// A refusal is a ReservoirError: the operator sees it as the answer, the reconciler records it as
// a conflict that `reservoirctl reserved list` shows, and tries again at the next CNI call.
import type { Family } from '../src/address.js';
import type { Interval, IpamConfig } from '../src/config.js';
import { checkReservedPlacement, describeInterval } from '../src/config.js';
import { ReservoirError } from '../src/errors.js';
import { holdersBetween } from './holders.js';
import type { ReservedRecord, Store } from './store.js';

/** What an entry is made of, wherever it came from. */
export interface EntryContent extends Interval {
  readonly group: string | null;
  readonly note: string | null;
  /** The entry as written: "10.0.0.50", "10.0.0.60-10.0.0.69" or "10.0.1.0/28". */
  readonly entry: string;
  /** Namespace globs of the pods that may claim it; null = any pod. Changing them never evicts a holder. */
  readonly namespaces: readonly string[] | null;
}

/** Told of a 105 refusal before it is thrown: which IPs in use stopped the change (the operator's go into the history). */
export type Refused = (family: Family, spans: ReadonlyArray<readonly [bigint, bigint]>, message: string) => void;

export class ReservedRules {
  constructor(private readonly store: Store) {}

  add(network: string, config: IpamConfig, wanted: EntryContent, source: ReservedRecord['source'], now: number, refused?: Refused): void {
    this.checkPlacement(network, config, wanted, undefined);
    this.refuseTakingInUse(network, wanted.family, [[wanted.start, wanted.end]], wanted.entry, refused);
    this.store.insertReserved({ network, ...wanted, source }, now);
  }

  change(network: string, config: IpamConfig, current: ReservedRecord, target: EntryContent, refused?: Refused): void {
    // IPs that leave the entry, or all of them when the group changes, must be free.
    const regroup = target.group !== current.group || target.family !== current.family;
    const leaving: Array<[bigint, bigint]> = [];
    if (regroup) leaving.push([current.start, current.end]);
    else {
      if (target.start > current.start) leaving.push([current.start, min(current.end, target.start - 1n)]);
      if (target.end < current.end) leaving.push([max(current.start, target.end + 1n), current.end]);
    }
    const holders = leaving.flatMap(([start, end]) => holdersBetween(this.store, network, current.family, start, end));
    if (holders.length > 0) {
      const message = `cannot change reserved entry "${current.entry}" in network "${network}": IPs it would ${regroup ? 'regroup' : 'drop'} are in use by ${holders.join(', ')}; release them first`;
      refused?.(current.family, leaving, message);
      throw new ReservoirError('RESERVED_IN_USE', message);
    }
    this.checkPlacement(network, config, target, current.id);
    const joining: Array<[bigint, bigint]> = [];
    if (target.family !== current.family) joining.push([target.start, target.end]);
    else {
      if (target.start < current.start) joining.push([target.start, min(target.end, current.start - 1n)]);
      if (target.end > current.end) joining.push([max(target.start, current.end + 1n), target.end]);
    }
    this.refuseTakingInUse(network, target.family, joining, target.entry, refused);
    this.store.updateReserved(current.id, target);
  }

  remove(network: string, current: ReservedRecord, refused?: Refused): void {
    const holders = holdersBetween(this.store, network, current.family, current.start, current.end);
    if (holders.length > 0) {
      const message = `cannot delete reserved entry "${current.entry}" in network "${network}": in use by ${holders.join(', ')}; release them first`;
      refused?.(current.family, [[current.start, current.end]], message);
      throw new ReservoirError('RESERVED_IN_USE', message);
    }
    this.store.deleteReserved(current.id);
  }

  /** The operator's side of the authority rule: an entry the config declares changes in the config. */
  refuseOperatorChange(network: string, entry: ReservedRecord, file: string | null, doing: 'change' | 'delete'): void {
    if (entry.source !== 'config') return;
    const where = file === null ? 'the network config that the pods\' CNI requests carry (no file in the CNI config directory declares it)' : `the CNI config file ${file}`;
    throw new ReservoirError(
      'RESERVED_FROM_CONFIG',
      `cannot ${doing} reserved entry "${entry.entry}" in network "${network}": it is declared by ${where}; edit the "reserved" list of its ipam there and reservoird applies the change (an entry stays while its IPs are in use)`,
    );
  }

  /** An entry found by its addresses as written ("10.0.0.60-10.0.0.69"), or 108. */
  find(network: string, interval: Interval, text: string): ReservedRecord {
    const entry = this.store.listReserved(network).find((r) => r.family === interval.family && r.start === interval.start && r.end === interval.end);
    if (!entry) throw new ReservoirError('UNKNOWN_RESERVED', `network "${network}" has no reserved entry "${text}" (see reservoirctl reserved list ${network})`);
    return entry;
  }

  private refuseTakingInUse(network: string, family: Family, spans: Array<[bigint, bigint]>, entry: string, refused: Refused | undefined): void {
    const holders = spans.flatMap(([start, end]) => holdersBetween(this.store, network, family, start, end));
    if (holders.length > 0) {
      const message = `cannot reserve "${entry}" in network "${network}": some of its IPs are in use by ${holders.join(', ')}; reserve around them, or wait until they are released`;
      refused?.(family, spans, message);
      throw new ReservoirError('RESERVED_IN_USE', message);
    }
  }

  private checkPlacement(network: string, config: IpamConfig, interval: Interval, ignoreId: number | undefined): void {
    const problem = checkReservedPlacement(interval, config.rangeSets);
    if (problem) throw new ReservoirError('RESERVED_CONFLICT', problem);
    const clash = this.store
      .listReserved(network)
      .find((r) => r.id !== ignoreId && r.family === interval.family && r.start <= interval.end && interval.start <= r.end);
    if (clash) throw new ReservoirError('RESERVED_CONFLICT', `${describeInterval(interval)} overlaps the reserved entry "${clash.entry}"${clash.source === 'config' ? ' (from the config)' : ''}`);
  }
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);
