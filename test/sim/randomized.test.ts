// Randomized runs of the cluster simulation (random-run.ts): for each seed, random user actions and
// faults with every invariant checked after every step, then liveness once everything is healed.
// A failure prints the seed and the script; replay one seed with
// `SIM_SEED=<seed> npx ava test/sim/randomized.test.ts` (SIM_TRACE=1 prints the trace of a passing
// run too); SIM_SEEDS=<n> runs n seeds (from SIM_FIRST_SEED, default 1) instead of the default 30.
import test from 'ava';
import { runSeed } from './random-run.js';

/**
 * Violations of known bugs (docs/simulation.md): counted and logged, not failed, so that the runs
 * check everything else. Bug E is fixed. Bug D is fixed for what its script in regressions.test.ts
 * reproduces (peers registered or renewed again first after an outage); one residual case remains
 * (seed 24 of 1–100: a host whose own renewal lags a second behind its peers' after a short outage
 * fences at its deadline), so its invariant stays known here.
 */
const KNOWN = new Map([['7-fenced-on-return', 'D (residual)']]);

const SEEDS = Number(process.env.SIM_SEEDS ?? 30);
/** SIM_FIRST_SEED=<k> starts the range at k (to sweep many seeds in slices). */
const FIRST_SEED = Number(process.env.SIM_FIRST_SEED ?? 1);

const only = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);
const seeds = only !== undefined ? [only] : Array.from({ length: SEEDS }, (_, i) => FIRST_SEED + i);

for (const seed of seeds) {
  test(`seed ${seed}: invariants hold after every step, and every feasible unit runs once healed`, async (t) => {
    const sim = await runSeed(seed);
    const broken = sim.violations
      .filter((v) => !KNOWN.has(v.invariant))
      .map((v) => `${(v.at / 1000).toFixed(1)}s ${v.invariant}: ${v.message}`);
    for (const [invariant, bug] of KNOWN) {
      const n = sim.violations.filter((v) => v.invariant === invariant).length;
      if (n > 0) t.log(`known bug ${bug}: ${n} × ${invariant} (SIM_SEED=${seed})`);
    }
    if (process.env.SIM_TRACE !== undefined) t.log(sim.trace.join('\n'));
    t.deepEqual(
      broken,
      [],
      `seed ${seed} broke invariants; replay with SIM_SEED=${seed}. Script and trace:\n${sim.trace.join('\n')}`,
    );
    t.true(sim.maxLeaders <= 1);
    const worst = Math.max(0, ...sim.failovers.map((f) => f.ms));
    t.log(`${sim.failovers.length} failovers (slowest ${worst} ms), ${sim.writesPerFence.size} terms wrote`);
  });
}

// Replay is what makes a failing seed debuggable: the script, the faults and every host's retry
// jitter (lib/backoff on each host's seeded Random) must come out the same, to the step.
test('a seed replays exactly: the same seed gives the same trace, activity and failovers', async (t) => {
  const seed = only ?? FIRST_SEED;
  const [a, b] = [await runSeed(seed), await runSeed(seed)];
  t.true(a.trace.some((line) => line.includes('registered')));
  t.deepEqual(b.trace, a.trace);
  t.deepEqual(b.activity, a.activity);
  t.deepEqual(b.failovers, a.failovers);
});
