// systemd time spans (systemd.time(7)) for RestartSec=, TimeoutStartSec= and the like. Values are
// milliseconds in fleetts, because that is what the Clock and timers speak.

import { FleetError } from '../lib/errors.js';

/** A malformed time span; the message has no file:line, which callers add. */
export class TimeSpanError extends FleetError {
  constructor(message: string) {
    super('unit_invalid', message);
  }
}

const MS_PER_SECOND = 1000;
const MS_PER_MINUTE = 60 * MS_PER_SECOND;
const MS_PER_HOUR = 60 * MS_PER_MINUTE;
const MS_PER_DAY = 24 * MS_PER_HOUR;
const MS_PER_WEEK = 7 * MS_PER_DAY;
// systemd's month and year are averages: 30.44 days and 365.25 days.
const MS_PER_MONTH = 2_629_800 * MS_PER_SECOND;
const MS_PER_YEAR = 31_557_600 * MS_PER_SECOND;

const UNITS: ReadonlyMap<string, number> = new Map([
  ['usec', 0.001],
  ['us', 0.001],
  ['µs', 0.001], // U+00B5 MICRO SIGN
  ['μs', 0.001], // U+03BC GREEK SMALL LETTER MU, which systemd also accepts
  ['msec', 1],
  ['ms', 1],
  ['seconds', MS_PER_SECOND],
  ['second', MS_PER_SECOND],
  ['sec', MS_PER_SECOND],
  ['s', MS_PER_SECOND],
  ['minutes', MS_PER_MINUTE],
  ['minute', MS_PER_MINUTE],
  ['min', MS_PER_MINUTE],
  ['m', MS_PER_MINUTE],
  ['hours', MS_PER_HOUR],
  ['hour', MS_PER_HOUR],
  ['hr', MS_PER_HOUR],
  ['h', MS_PER_HOUR],
  ['days', MS_PER_DAY],
  ['day', MS_PER_DAY],
  ['d', MS_PER_DAY],
  ['weeks', MS_PER_WEEK],
  ['week', MS_PER_WEEK],
  ['w', MS_PER_WEEK],
  ['months', MS_PER_MONTH],
  ['month', MS_PER_MONTH],
  ['M', MS_PER_MONTH],
  ['years', MS_PER_YEAR],
  ['year', MS_PER_YEAR],
  ['y', MS_PER_YEAR],
]);

const EXAMPLES = 'use e.g. 5s, 1min 30s, 500ms or infinity';
// One component: a number, optional blanks, then an optional unit (letters, or the micro signs).
const COMPONENT = /^(\d+(?:\.\d*)?|\.\d+)[ \t]*([A-Za-zµμ]*)/;

/**
 * Parses `1min 30s`, `1h30m`, `2.5s`, `infinity`… into milliseconds (fractional below 1 ms,
 * Infinity for `infinity`). A bare number is in `defaultUnit`, as systemd reads `RestartSec=5` as
 * seconds but some settings as milliseconds or microseconds.
 */
export function parseTimeSpan(s: string, defaultUnit: 's' | 'ms' | 'us' = 's'): number {
  const fail = (reason: string): never => {
    throw new TimeSpanError(`invalid time span "${s}": ${reason}; ${EXAMPLES}`);
  };
  let rest = s.trim();
  if (rest === '') fail('it is empty');
  if (rest === 'infinity') return Infinity;
  if (rest.startsWith('-')) fail('it must not be negative');
  let total = 0;
  while (rest !== '') {
    const match = COMPONENT.exec(rest);
    if (match === null) {
      fail(`expected a number at "${rest}"`);
      break;
    }
    const [text, number = '', unit = ''] = match;
    const factor = unit === '' ? (UNITS.get(defaultUnit) ?? MS_PER_SECOND) : UNITS.get(unit);
    if (factor === undefined) fail(`unknown unit "${unit}"`);
    total += Number(number) * (factor ?? 0);
    rest = rest.slice(text.length).trimStart();
  }
  return total;
}

// Largest first; formatTimeSpan writes each non-zero part, as systemd's format_timespan does.
const FORMAT_PARTS: readonly (readonly [string, number])[] = [
  ['y', MS_PER_YEAR],
  ['month', MS_PER_MONTH],
  ['w', MS_PER_WEEK],
  ['d', MS_PER_DAY],
  ['h', MS_PER_HOUR],
  ['min', MS_PER_MINUTE],
  ['s', MS_PER_SECOND],
  ['ms', 1],
  ['us', 0.001],
];

/** A span for messages: `1min 30s`, `500ms`, `2d 3h`, `infinity`, `0` (parseTimeSpan reads it back). */
export function formatTimeSpan(ms: number): string {
  if (ms === Infinity) return 'infinity';
  if (!Number.isFinite(ms) || ms < 0) return String(ms);
  // Work in whole microseconds so that fractions of a millisecond do not accumulate float noise.
  let us = Math.round(ms * 1000);
  if (us === 0) return '0';
  const parts: string[] = [];
  for (const [unit, unitMs] of FORMAT_PARTS) {
    const unitUs = Math.round(unitMs * 1000);
    const count = Math.floor(us / unitUs);
    if (count > 0) {
      parts.push(`${count}${unit}`);
      us -= count * unitUs;
    }
  }
  return parts.join(' ');
}
