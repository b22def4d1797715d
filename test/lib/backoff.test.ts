// The one retry backoff (src/lib/backoff.ts): full jitter between a floor and a growing ceiling,
// capped; reset; the same seed gives the same delays; sleep waits on the injected clock.
import test from 'ava';
import { Backoff } from '../../src/lib/backoff.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createRandom, type Random } from '../../src/lib/random.js';

function backoff(random: Random, options = { minMs: 250, maxMs: 5_000 }, clock = new FakeClock()): Backoff {
  return new Backoff({ clock, random, ...options });
}

/** A Random whose next() returns the given values in turn (to pin the ends of the window). */
function fixed(...values: number[]): Random {
  const r = createRandom(0);
  let i = 0;
  return { ...r, next: () => values[i++ % values.length] as number };
}

test('each delay lies in [minMs, min(maxMs, minMs·2^n)] after the n-th consecutive failure', (t) => {
  const b = backoff(createRandom(1));
  for (let n = 1; n <= 40; n++) {
    const ceiling = Math.min(5_000, 250 * 2 ** n);
    t.is(b.ceilingMs(n), ceiling);
    const d = b.next();
    t.is(b.failures, n);
    t.true(Number.isInteger(d), `delay ${d} is whole ms`);
    t.true(d >= 250 && d <= ceiling, `delay ${d} after ${n} failures is within [250, ${ceiling}]`);
  }
});

test('the window grows by the factor and stops at maxMs', (t) => {
  const b = new Backoff({
    clock: new FakeClock(),
    random: createRandom(1),
    minMs: 100,
    maxMs: 1_000,
    factor: 3,
  });
  t.deepEqual(
    [1, 2, 3, 4, 100, 10_000].map((n) => b.ceilingMs(n)),
    [300, 900, 1_000, 1_000, 1_000, 1_000],
  );
  // The top of each window is reached (random ~1) and never passed; the bottom is the floor.
  const top = new Backoff({
    clock: new FakeClock(),
    random: fixed(0.999_999),
    minMs: 100,
    maxMs: 1_000,
    factor: 3,
  });
  t.deepEqual(
    Array.from({ length: 5 }, () => top.next()),
    [299, 899, 999, 999, 999],
  );
  const bottom = new Backoff({
    clock: new FakeClock(),
    random: fixed(0),
    minMs: 100,
    maxMs: 1_000,
    factor: 3,
  });
  t.deepEqual(
    Array.from({ length: 5 }, () => bottom.next()),
    [100, 100, 100, 100, 100],
  );
});

test('delays grow on average with consecutive failures until the cap', (t) => {
  // Mean over many independent runs of the delay after the n-th failure: about (min + ceiling) / 2.
  const runs = 2_000;
  const random = createRandom(7);
  const sums = Array.from({ length: 8 }, () => 0);
  for (let r = 0; r < runs; r++) {
    const b = backoff(random);
    for (let n = 0; n < sums.length; n++) sums[n] = (sums[n] as number) + b.next();
  }
  const means = sums.map((s) => s / runs);
  for (let n = 1; n <= means.length; n++) {
    const expected = (250 + Math.min(5_000, 250 * 2 ** n)) / 2;
    const mean = means[n - 1] as number;
    t.true(Math.abs(mean - expected) < expected * 0.05, `mean ${mean} after ${n} failures ≈ ${expected}`);
  }
  for (let n = 1; n < 5; n++)
    t.true((means[n] as number) > (means[n - 1] as number), `mean grows at ${n + 1}`);
});

test('reset starts the window from minMs again', (t) => {
  const b = backoff(fixed(0.999_999));
  for (let i = 0; i < 10; i++) b.next();
  t.is(b.next(), 4_999);
  b.reset();
  t.is(b.failures, 0);
  t.is(b.next(), 499);
  t.is(b.failures, 1);
});

test('jitter spreads hosts that fail at the same instant over the whole window, also at the cap', (t) => {
  // 100 fleetds, each with its own Random (as each process seeds its own), failing together.
  const hosts = Array.from({ length: 100 }, (_, i) => backoff(createRandom(1_000 + i)));
  const firsts = hosts.map((b) => b.next());
  t.true(firsts.every((d) => d >= 250 && d <= 500));
  t.true(new Set(firsts).size > 80, `${new Set(firsts).size} distinct first delays of 100`);
  // Deep in an outage every ceiling is maxMs: delays still cover [minMs, maxMs], not pile on maxMs.
  for (const b of hosts) for (let i = 0; i < 20; i++) b.next();
  const capped = hosts.map((b) => b.next());
  t.true(capped.every((d) => d >= 250 && d <= 5_000));
  t.true(new Set(capped).size > 80, `${new Set(capped).size} distinct capped delays of 100`);
  t.true(capped.filter((d) => d === 5_000).length <= 2, 'few land exactly on the cap');
  const quarter = (lo: number, hi: number): number => capped.filter((d) => d >= lo && d < hi).length;
  // Uniform over [250, 5000]: each quarter of the window gets some of the hosts.
  for (const [lo, hi] of [
    [250, 1_437],
    [1_437, 2_625],
    [2_625, 3_812],
    [3_812, 5_001],
  ] as const)
    t.true(quarter(lo, hi) >= 10, `${quarter(lo, hi)} of 100 delays in [${lo}, ${hi})`);
});

test('the same seed gives the same delays; another seed others', (t) => {
  const run = (seed: number): number[] => {
    const b = backoff(createRandom(seed));
    const out = Array.from({ length: 6 }, () => b.next());
    b.reset();
    return [...out, ...Array.from({ length: 3 }, () => b.next())];
  };
  t.deepEqual(run(42), run(42));
  t.notDeepEqual(run(42), run(43));
});

test('minMs equal to maxMs gives a constant delay', (t) => {
  const b = backoff(createRandom(3), { minMs: 1_000, maxMs: 1_000 });
  t.deepEqual(
    Array.from({ length: 5 }, () => b.next()),
    [1_000, 1_000, 1_000, 1_000, 1_000],
  );
});

test('options that would allow a delay of 0, a shrinking window or a cap below the floor are refused', (t) => {
  const clock = new FakeClock();
  const random = createRandom(1);
  t.throws(() => new Backoff({ clock, random, minMs: 0, maxMs: 1_000 }), {
    instanceOf: RangeError,
    message: /minMs 0/,
  });
  t.throws(() => new Backoff({ clock, random, minMs: -5, maxMs: 1_000 }), { instanceOf: RangeError });
  t.throws(() => new Backoff({ clock, random, minMs: Number.NaN, maxMs: 1_000 }), { instanceOf: RangeError });
  t.throws(() => new Backoff({ clock, random, minMs: 500, maxMs: 100 }), {
    instanceOf: RangeError,
    message: /maxMs 100 must be at least minMs 500/,
  });
  t.throws(() => new Backoff({ clock, random, minMs: 100, maxMs: 1_000, factor: 0.5 }), {
    instanceOf: RangeError,
    message: /factor 0.5/,
  });
});

test('sleep waits the drawn delay on the injected clock, and ends early without throwing on abort', async (t) => {
  const clock = new FakeClock();
  const b = backoff(fixed(0.5), { minMs: 200, maxMs: 5_000 }, clock);
  // First window [200, 400]: random 0.5 → 300 ms.
  let done = false;
  const slept = b.sleep().then(() => (done = true));
  await clock.advance(299);
  t.false(done);
  await clock.advance(1);
  await slept;
  t.true(done);
  t.is(b.failures, 1);

  const abort = new AbortController();
  let aborted = false;
  const cut = b.sleep(abort.signal).then(() => (aborted = true));
  await clock.advance(100);
  t.false(aborted);
  abort.abort(new Error('stopping'));
  await cut;
  t.true(aborted);
  t.is(clock.pending, 0, 'the timer was cancelled');
});
