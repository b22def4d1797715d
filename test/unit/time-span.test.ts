import test from 'ava';
import { formatTimeSpan, parseTimeSpan, TimeSpanError } from '../../src/unit/time-span.js';

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const D = 24 * H;

const units: readonly (readonly [unit: string, ms: number])[] = [
  ['usec', 0.001],
  ['us', 0.001],
  ['µs', 0.001],
  ['μs', 0.001],
  ['msec', 1],
  ['ms', 1],
  ['seconds', S],
  ['second', S],
  ['sec', S],
  ['s', S],
  ['minutes', MIN],
  ['minute', MIN],
  ['min', MIN],
  ['m', MIN],
  ['hours', H],
  ['hour', H],
  ['hr', H],
  ['h', H],
  ['days', D],
  ['day', D],
  ['d', D],
  ['weeks', 7 * D],
  ['week', 7 * D],
  ['w', 7 * D],
  ['months', 2_629_800 * S], // systemd's month: 30.44 days, exactly 30.4375,
  ['month', 2_629_800 * S],
  ['M', 2_629_800 * S],
  ['years', 365.25 * D],
  ['year', 365.25 * D],
  ['y', 365.25 * D],
];

for (const [unit, ms] of units) {
  test(`parseTimeSpan: 3${unit} is 3 × ${ms} ms`, (t) => {
    t.is(parseTimeSpan(`3${unit}`), 3 * ms);
    t.is(parseTimeSpan(`3 ${unit}`), 3 * ms);
  });
}

const spans: readonly (readonly [input: string, defaultUnit: 's' | 'ms' | 'us', ms: number])[] = [
  ['5', 's', 5 * S],
  ['5', 'ms', 5],
  ['5', 'us', 0.005],
  ['0', 's', 0],
  ['2.5s', 's', 2500],
  ['.5s', 's', 500],
  ['1min 30s', 's', 90 * S],
  ['1min30s', 's', 90 * S],
  ['1h30m', 's', 90 * MIN],
  ['1h 30m 15s 250ms', 's', H + 30 * MIN + 15 * S + 250],
  ['1min 30', 's', 90 * S], // a bare number after a unit uses the default unit too
  ['  10s  ', 's', 10 * S],
  ['1m', 's', MIN], // m is minutes, M is months
  ['infinity', 's', Infinity],
  [' infinity ', 'ms', Infinity],
];

for (const [input, defaultUnit, ms] of spans) {
  test(`parseTimeSpan(${JSON.stringify(input)}, ${defaultUnit}) is ${ms}`, (t) => {
    t.is(parseTimeSpan(input, defaultUnit), ms);
  });
}

const hint = 'use e.g. 5s, 1min 30s, 500ms or infinity';
const errors: readonly (readonly [input: string, reason: string])[] = [
  ['', 'it is empty'],
  ['   ', 'it is empty'],
  ['5x', 'unknown unit "x"'],
  ['5secs', 'unknown unit "secs"'],
  ['1min 30x', 'unknown unit "x"'],
  ['-5s', 'it must not be negative'],
  ['s', 'expected a number at "s"'],
  ['5s,', 'expected a number at ","'],
  ['1min -5s', 'expected a number at "-5s"'],
  ['Infinity', 'expected a number at "Infinity"'],
];

for (const [input, reason] of errors) {
  test(`parseTimeSpan(${JSON.stringify(input)}) fails`, (t) => {
    const error = t.throws(() => parseTimeSpan(input), {
      instanceOf: TimeSpanError,
      message: `invalid time span "${input}": ${reason}; ${hint}`,
    });
    t.is(error?.code, 'unit_invalid');
  });
}

const formats: readonly (readonly [ms: number, text: string])[] = [
  [0, '0'],
  [Infinity, 'infinity'],
  [500, '500ms'],
  [90 * S, '1min 30s'],
  [2500, '2s 500ms'],
  [0.25, '250us'],
  [2 * D + 3 * H, '2d 3h'],
  [7 * D, '1w'],
  [365.25 * D, '1y'],
  [2_629_800 * S, '1month'],
];

for (const [ms, text] of formats) {
  test(`formatTimeSpan(${ms}) is ${text}`, (t) => {
    t.is(formatTimeSpan(ms), text);
    t.is(parseTimeSpan(text), ms, 'parseTimeSpan reads it back');
  });
}
