// Seeded randomness (STYLE.md rule 1: randomness only when seeded and passed in). Simulations and
// property-style tests draw every choice from one `Random`, so that a seed replays a run exactly.
// The generator is mulberry32: 32 bits of state, fast, and plenty for choosing actions (not crypto).
// Composition roots (daemon/, CLI binaries) seed theirs once per process with `entropySeed()`.
import { randomInt } from 'node:crypto';

export interface Random {
  /** The seed this generator started from (print it to replay a run). */
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n); `n` must be a positive integer. */
  int(n: number): number;
  /** An integer in [min, max], both included. */
  between(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[];
}

export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Random.int: ${n} is not a positive integer`);
    return Math.floor(next() * n);
  };
  return {
    seed,
    next,
    int,
    between: (min, max) => min + int(max - min + 1),
    chance: (p) => next() < p,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError('Random.pick: no items to pick from');
      return items[int(items.length)] as T;
    },
    shuffle<T>(items: readonly T[]): T[] {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [out[i], out[j]] = [out[j] as T, out[i] as T];
      }
      return out;
    },
  };
}

/**
 * A seed from the OS's entropy, for a composition root's one `Random` per process (so that the
 * fleetds of one cluster draw different retry jitter). Tests and simulations pass a fixed seed.
 */
export function entropySeed(): number {
  return randomInt(0, 2 ** 32 - 1);
}
