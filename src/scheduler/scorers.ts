// Ranking (Nomad's "rankers"): the second stage of the placement pipeline, over the machines that
// passed every predicate. Scores compare lexicographically in pipeline order, lower is better, and
// the machine id breaks the last tie, so the same input always picks the same machine.

import type { Candidate } from './predicates.js';

export type ScorerName = 'displaces' | 'units';

export interface Scorer {
  readonly name: ScorerName;
  /** Lower is better. */
  score(candidate: Candidate): number;
}

/** The ranking pipeline: avoid displacing through Replaces= when a machine fits without, then least loaded. */
export const SCORERS: readonly Scorer[] = [
  { name: 'displaces', score: (c) => c.displaces.length },
  // Counts every unit on the machine, including those placed earlier in this same pass.
  { name: 'units', score: (c) => c.slot.residents.size },
];

export type Scores = Readonly<Record<ScorerName, number>>;

export function scoresOf(candidate: Candidate): Scores {
  return { displaces: candidate.displaces.length, units: candidate.slot.residents.size };
}

/** Negative when `a` ranks before `b`. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  for (const scorer of SCORERS) {
    const d = scorer.score(a) - scorer.score(b);
    if (d !== 0) return d;
  }
  return a.slot.id < b.slot.id ? -1 : a.slot.id > b.slot.id ? 1 : 0;
}
