// `fleetts plan UNIT`: why the scheduler places a unit where it does. Runs the same pure pass as the
// engine, then evaluates the predicate → scorer pipeline for that unit against every machine, with
// everything else as the pass left it.

import type { MachineId, UnitName } from '../cluster/types.js';
import type { ClusterView } from '../cluster/view.js';
import { UsageError } from '../lib/errors.js';
import type { Decision } from './plan.js';
import { displacedBy, firstRejection, type Candidate, type PredicateName } from './predicates.js';
import { runSchedule } from './schedule.js';
import { compareCandidates, scoresOf, type Scores } from './scorers.js';

export interface MachineFit {
  readonly machine: MachineId;
  readonly fits: boolean;
  /** Why the machine is rejected, or, when it fits, what placing the unit there means. */
  readonly reason: string;
  /** The predicate that rejected the machine. */
  readonly rejectedBy?: PredicateName;
  /** Scores as the scorers see them (lower is better); `units` does not count the unit itself. */
  readonly scores: Scores;
  /** 1 for the machine the scheduler would pick now among those that fit, 2 for the next… */
  readonly rank?: number;
}

export interface Explanation {
  readonly unit: UnitName;
  /** This unit's decisions in the plan of the pass. */
  readonly decisions: readonly Decision[];
  /** Where the unit is once the plan is applied. */
  readonly placedOn: readonly MachineId[];
  /** A reason that holds whatever the machine (MachineOf cycle, unregistered MachineID…). */
  readonly blocker?: string;
  /** One row per registered machine, sorted by machine id. */
  readonly machines: readonly MachineFit[];
}

/** Explains one unit; throws UsageError when the view has no unit of that name. */
export function explainUnit(view: ClusterView, unit: UnitName): Explanation {
  const submitted = view.units.find((u) => u.name === unit);
  if (submitted === undefined) throw new UsageError(`unit ${unit} is not submitted`);
  const { plan, state, blockers } = runSchedule(view);
  const decisions = plan.decisions.filter((d) => d.unit === unit);
  const info = state.units.get(unit);
  if (info === undefined) {
    return {
      unit,
      decisions,
      placedOn: [],
      blocker: 'target state is inactive: the unit is not placed',
      machines: [],
    };
  }
  const placedOn = [...state.machinesOf(unit)].sort();
  // Judge every machine as if the unit were not placed yet, everything else staying as it is.
  for (const id of placedOn) {
    const slot = state.slot(id);
    if (slot !== undefined) state.remove(info, slot);
  }
  const rows = state.slots.map((slot) => {
    const candidate: Candidate = { slot, displaces: displacedBy(state, info, slot) };
    return { candidate, rejection: firstRejection(state, info, candidate) };
  });
  const ranked = rows
    .filter((r) => r.rejection === undefined)
    .map((r) => r.candidate)
    .sort(compareCandidates);
  const machines = rows.map(({ candidate, rejection }): MachineFit => {
    const scores = scoresOf(candidate);
    if (rejection !== undefined) {
      return {
        machine: candidate.slot.id,
        fits: false,
        reason: rejection.reason,
        rejectedBy: rejection.predicate,
        scores,
      };
    }
    const displaces =
      candidate.displaces.length > 0 ? `; would displace ${candidate.displaces.join(', ')}` : '';
    return {
      machine: candidate.slot.id,
      fits: true,
      reason: `fits (${scores.units} unit${scores.units === 1 ? '' : 's'}${displaces})`,
      scores,
      rank: ranked.indexOf(candidate) + 1,
    };
  });
  const blocker = blockers.get(unit);
  return { unit, decisions, placedOn, ...(blocker === undefined ? {} : { blocker }), machines };
}
