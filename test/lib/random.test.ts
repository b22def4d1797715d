// The seeded generator behind simulations: same seed, same sequence; ranges respected.
import test from 'ava';
import { createRandom } from '../../src/lib/random.js';

test('the same seed gives the same sequence; another seed another', (t) => {
  const a = createRandom(42);
  const b = createRandom(42);
  const c = createRandom(43);
  const seqA = Array.from({ length: 8 }, () => a.next());
  t.deepEqual(
    seqA,
    Array.from({ length: 8 }, () => b.next()),
  );
  t.notDeepEqual(
    seqA,
    Array.from({ length: 8 }, () => c.next()),
  );
});

test('int, between, pick and shuffle stay in range and cover it', (t) => {
  const r = createRandom(7);
  const ints = new Set(Array.from({ length: 500 }, () => r.int(5)));
  t.deepEqual([...ints].sort(), [0, 1, 2, 3, 4]);
  const between = Array.from({ length: 500 }, () => r.between(3, 5));
  t.true(between.every((n) => n >= 3 && n <= 5));
  t.deepEqual([...new Set(between)].sort(), [3, 4, 5]);
  t.true(['x', 'y'].includes(r.pick(['x', 'y'])));
  const items = [1, 2, 3, 4, 5, 6];
  const shuffled = r.shuffle(items);
  t.deepEqual([...shuffled].sort(), items);
  t.deepEqual(items, [1, 2, 3, 4, 5, 6], 'shuffle copies');
});

test('bad arguments are refused with a reason', (t) => {
  const r = createRandom(1);
  for (const [call, message] of [
    [() => r.int(0), /not a positive integer/],
    [() => r.int(2.5), /not a positive integer/],
    [() => r.pick([]), /no items/],
  ] as const) {
    t.throws(call, { message });
  }
});
