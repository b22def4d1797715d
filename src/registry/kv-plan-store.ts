// Placement over the Kv: the engine leader's plans, written as fenced transactions (the leader
// key's create revision, the units' and machines' revisions the plan saw) of at most etcd's
// --max-txn-ops, and each agent's level-triggered watch of its own `assignments/<machine>/`.
import type { Assignment, MachineId, UnitName } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import { encodeValue, MAX_PLACEMENT_REASON } from './codec.js';
import type { RegistryKeys } from './keys.js';
import { chunks, firstKv, type KvCore } from './kv-core.js';
import { decodeAssignment } from './kv-decode.js';
import type { Compare, Kv, TxnOp } from './kv.js';
import { NO_LEASE } from './kv.js';
import type { Fence } from './leadership.js';
import type {
  AssignmentChange,
  PlanBasis,
  PlanStore,
  Subscription,
  WatchedSet,
  WriteResult,
} from './registry.js';
import { RegistryError } from './registry-error.js';
import { watchRangeSet } from './watch-range.js';

export class KvPlanStore implements PlanStore {
  readonly #core: KvCore;
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  readonly #random: Random;

  constructor(core: KvCore) {
    this.#core = core;
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
    this.#random = core.random;
  }

  async writeAssignments(
    fence: Fence,
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Promise<WriteResult> {
    if (fence.key !== this.#keys.leader()) {
      throw new RegistryError(
        'invalid',
        `fence for ${fence.key} does not belong to this registry (${this.#keys.leader()})`,
      );
    }
    const drains = changes.filter(
      (c): c is Extract<AssignmentChange, { kind: 'drain_moving' }> => c.kind === 'drain_moving',
    );
    let revision = drains.length === 0 ? 0 : await this.#writeDrains(fence, drains);
    const placementChanges = drains.length === 0 ? changes : changes.filter((c) => c.kind !== 'drain_moving');
    const written = await this.#writePlacements(fence, placementChanges, basis);
    revision = Math.max(revision, written.revision);
    return { revision, transactions: written.transactions + (drains.length === 0 ? 0 : 1) };
  }

  /**
   * A plan's drain steps, in one transaction before its other changes (see AssignmentChange): each
   * only while its record is the one the plan read.
   */
  async #writeDrains(
    fence: Fence,
    drains: readonly Extract<AssignmentChange, { kind: 'drain_moving' }>[],
  ): Promise<number> {
    const keys = drains.map((d) => this.#keys.drain(d.drain.machine));
    const res = await this.#kv.txn({
      compare: [
        { target: 'create', key: fence.key, op: '==', revision: fence.createRevision },
        ...drains.map((d, i): Compare => ({
          target: 'mod',
          key: keys[i] ?? '',
          op: '==',
          revision: d.drain.modRevision,
        })),
      ],
      success: drains.map((d, i): TxnOp => ({
        kind: 'put',
        key: keys[i] ?? '',
        value: encodeValue('drain', {
          v: 1,
          since: d.drain.since,
          moving: d.moving.map((m) => ({ unit: m.unit, services: [...m.services] })),
        }),
      })),
      failure: [{ kind: 'range', key: fence.key }],
    });
    if (res.succeeded) return res.revision;
    if (firstKv(res)?.createRevision !== fence.createRevision)
      throw new RegistryError(
        'fenced',
        `engine ${fence.candidate} is no longer leader (term ${fence.createRevision} ended); nothing of the plan was applied`,
      );
    throw new RegistryError(
      'conflict',
      `a drain changed since the plan's snapshot (${drains.map((d) => d.drain.machine).join(', ')}); re-plan`,
    );
  }

  async #writePlacements(
    fence: Fence,
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Promise<WriteResult> {
    // Transactions are planned over the changes and their ops built one transaction at a time, so
    // that a plan of thousands of units never holds all its requests at once (issue 3: memory).
    const groups = this.#groupByUnit(changes);
    const machineCompares = this.#machineCompares(changes, basis);
    const max = this.#kv.maxTxnOps;
    interface PlannedTxn {
      units: UnitName[];
      changes: AssignmentChange[];
      machines: Map<string, Compare>;
    }
    const txns: PlannedTxn[] = [];
    let current: PlannedTxn = { units: [], changes: [], machines: new Map() };
    const flush = (): void => {
      if (current.changes.length > 0) txns.push(current);
      current = { units: [], changes: [], machines: new Map() };
    };
    const comparesWith = (unit: UnitName): number => {
      let extra = 0;
      for (const key of machineCompares.get(unit)?.keys() ?? []) if (!current.machines.has(key)) extra++;
      // 1 compare for the fence + 1 per unit + 1 per machine.
      return 1 + current.units.length + 1 + current.machines.size + extra;
    };
    for (const [unit, list] of groups) {
      if (current.changes.length + list.length > max || comparesWith(unit) > max) flush();
      const own = machineCompares.get(unit) ?? new Map<string, Compare>();
      if (list.length <= max) {
        current.units.push(unit);
        current.changes.push(...list);
        for (const [key, c] of own) current.machines.set(key, c);
        continue;
      }
      // A unit with more changes than one txn holds (a global unit on many machines): each part
      // carries the compares of the machines it touches; 2 compares go to the fence and the unit.
      for (const part of chunks(list, own.size > 0 ? max - 2 : max)) {
        flush();
        const touched = new Set<string>();
        for (const change of part) {
          if (change.kind === 'assign') touched.add(this.#keys.machine(change.assignment.machine));
          else if (change.kind === 'unassign') touched.add(this.#keys.machine(change.machine));
        }
        current = {
          units: [unit],
          changes: [...part],
          machines: new Map([...own].filter(([key]) => touched.has(key))),
        };
      }
    }
    flush();
    // A plan assigns thousands of units that share a few (hash, target) values: encode each once.
    const encoded = new Map<string, string>();
    const at = new Date(this.#clock.now()).toISOString();

    let revision = 0;
    for (const [i, txn] of txns.entries()) {
      const compare: Compare[] = [
        { target: 'create', key: fence.key, op: '==', revision: fence.createRevision },
      ];
      for (const unit of txn.units) {
        const seen = basis.units.get(unit);
        const key = this.#keys.unit(unit);
        compare.push(
          seen === undefined
            ? { target: 'version', key, op: '==', version: 0 }
            : { target: 'mod', key, op: '==', revision: seen.modRevision },
        );
      }
      compare.push(...txn.machines.values());
      const res = await this.#kv.txn({
        compare,
        success: txn.changes.map((c) => this.#changeOp(c, encoded, at)),
        failure: [
          { kind: 'range', key: fence.key },
          ...txn.units.map((u) => ({ kind: 'range' as const, key: this.#keys.unit(u) })),
          ...[...txn.machines.keys()].map((key) => ({ kind: 'range' as const, key })),
        ],
      });
      if (res.succeeded) {
        revision = res.revision;
        continue;
      }
      const applied = `${i} of ${txns.length} transactions of the plan were applied`;
      const leader = firstKv(res);
      if (leader?.createRevision !== fence.createRevision) {
        throw new RegistryError(
          'fenced',
          `engine ${fence.candidate} is no longer leader (term ${fence.createRevision} ended); ${applied}`,
        );
      }
      const changed = txn.units.filter((u, j) => {
        const r = res.results[j + 1];
        const kv = r?.kind === 'range' ? r.kvs[0] : undefined;
        return (kv?.modRevision ?? 0) !== (basis.units.get(u)?.modRevision ?? 0);
      });
      const machinesChanged = [...txn.machines.values()].filter((c, j) => {
        const r = res.results[1 + txn.units.length + j];
        const kv = r?.kind === 'range' ? r.kvs[0] : undefined;
        if (c.target === 'create') return kv?.createRevision !== c.revision;
        return c.target === 'lease' ? (kv?.lease ?? NO_LEASE) !== NO_LEASE : kv !== undefined;
      });
      const what =
        changed.length > 0
          ? `unit${changed.length === 1 ? '' : 's'} ${changed.join(', ')} changed`
          : `machine membership changed (${machinesChanged.map((c) => c.key.slice(this.#keys.prefix.length)).join(', ')})`;
      throw new RegistryError('conflict', `${what} since the plan's snapshot; ${applied}; re-plan`);
    }
    return { revision, transactions: txns.length };
  }

  /** Per unit, the machine-membership compares its changes rely on (see PlanBasis.machines). */
  #machineCompares(
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Map<UnitName, Map<string, Compare>> {
    const out = new Map<UnitName, Map<string, Compare>>();
    const machines = basis.machines;
    if (machines === undefined) return out;
    const add = (unit: UnitName, c: Compare): void => {
      const m = out.get(unit) ?? new Map<string, Compare>();
      m.set(c.key, c);
      out.set(unit, m);
    };
    for (const change of changes) {
      if (change.kind === 'assign') {
        const seen = machines.get(change.assignment.machine);
        const key = this.#keys.machine(change.assignment.machine);
        add(
          change.assignment.unit,
          seen === undefined
            ? { target: 'version', key, op: '==', version: 0 }
            : { target: 'create', key, op: '==', revision: seen.createRevision },
        );
      } else if (change.kind === 'unassign' && !machines.has(change.machine)) {
        // Still gone: no record, or one bound to no lease (not live: see #machines).
        add(change.unit, {
          target: 'lease',
          key: this.#keys.machine(change.machine),
          op: '==',
          lease: NO_LEASE,
        });
      }
    }
    return out;
  }

  /** Changes per unit, units in name order; within a unit: unassign, clear, assign, mark. */
  #groupByUnit(changes: readonly AssignmentChange[]): [UnitName, AssignmentChange[]][] {
    const order: Record<AssignmentChange['kind'], number> = {
      drain_moving: -1,
      unassign: 0,
      clear_unschedulable: 1,
      assign: 2,
      mark_unschedulable: 3,
    };
    const byUnit = new Map<UnitName, AssignmentChange[]>();
    const seenKeys = new Set<string>();
    for (const change of changes) {
      if (change.kind === 'drain_moving') continue; // written apart, first (#writeDrains)
      const unit =
        change.kind === 'assign'
          ? change.assignment.unit
          : change.kind === 'mark_unschedulable'
            ? change.record.unit
            : change.unit;
      const key = this.#changeKey(change);
      if (seenKeys.has(key))
        throw new RegistryError('invalid', `plan changes ${key} twice (a plan writes each key once)`);
      seenKeys.add(key);
      const list = byUnit.get(unit) ?? [];
      list.push(change);
      byUnit.set(unit, list);
    }
    return [...byUnit.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([unit, list]) => [
        unit,
        list.length === 1 ? list : [...list].sort((a, b) => order[a.kind] - order[b.kind]),
      ]);
  }

  #changeKey(change: AssignmentChange): string {
    switch (change.kind) {
      case 'assign':
        return this.#keys.assignment(change.assignment.machine, change.assignment.unit);
      case 'unassign':
        return this.#keys.assignment(change.machine, change.unit);
      case 'mark_unschedulable':
        return this.#keys.unschedulable(change.record.unit);
      case 'clear_unschedulable':
        return this.#keys.unschedulable(change.unit);
      case 'drain_moving':
        return this.#keys.drain(change.drain.machine);
    }
  }

  /** `at`: when this plan is written (stored with new placements, for the event stream). */
  #changeOp(change: AssignmentChange, encoded: Map<string, string>, at: string): TxnOp {
    const key = this.#changeKey(change);
    switch (change.kind) {
      case 'assign': {
        const { hash, target } = change.assignment;
        const { reason, movedFrom } = change;
        const memo = `${hash}\u0000${target}\u0000${reason ?? ''}\u0000${movedFrom ?? ''}`;
        let value = encoded.get(memo);
        if (value === undefined) {
          value = encodeValue('assignment', {
            v: 1,
            hash,
            target,
            ...(reason === undefined ? {} : { reason: cut(reason, MAX_PLACEMENT_REASON) }),
            ...(movedFrom === undefined ? {} : { movedFrom }),
            ...(reason === undefined ? {} : { at }),
          });
          encoded.set(memo, value);
        }
        return { kind: 'put', key, value };
      }
      case 'mark_unschedulable':
        return {
          kind: 'put',
          key,
          value: encodeValue('unschedulable', {
            v: 1,
            hash: change.record.hash,
            reason: change.record.reason,
            machines: { ...change.record.machines },
          }),
        };
      case 'unassign':
      case 'clear_unschedulable':
        return { kind: 'delete', key };
      case 'drain_moving':
        throw new RegistryError('invalid', 'a drain step is written apart from placements (#writeDrains)');
    }
  }

  async watchAssignments(
    machine: MachineId,
    onChange: (set: WatchedSet<Assignment>) => void,
  ): Promise<Subscription> {
    return this.#core.track(
      await watchRangeSet<Assignment>({
        kv: this.#kv,
        clock: this.#clock,
        random: this.#random,
        range: this.#keys.assignmentsOf(machine),
        decode: (kv) => decodeAssignment(this.#keys, kv),
        onChange,
      }),
    );
  }
}

/** `text` cut to at most `max` characters, marked with an ellipsis when cut. */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
