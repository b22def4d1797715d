// Shared machinery of the typed sections of a unit (unit-section, service, container, x-fleet): how
// one entry's value is checked (a zod schema per value form), and how every error names
// `file:line`, the key, what is wrong and what would be right.

import { z } from 'zod';
import { FleetError, UnitFileError } from '../lib/errors.js';
import type { ParsedUnitName } from './names.js';
import { expandSpecifiers, type SpecifierContext } from './specifiers.js';
import { parseTimeSpan } from './time-span.js';
import type { UnitEntry } from './unit-file.js';
import { splitWords } from './words.js';

/** What every section parser needs besides its entries. */
export interface SectionContext {
  /** Prefixes every error message (`web@.unit:7: …`). */
  readonly file: string;
  readonly unit: ParsedUnitName;
  /** The submit-time specifiers (%n %N %p %i) of `unit`; %i is '' for a template. */
  readonly specifiers: SpecifierContext;
}

/** An error about one entry's value: `file:line: Key=value: problem`. */
export function entryError(ctx: SectionContext, entry: UnitEntry, problem: string): UnitFileError {
  return new UnitFileError(`${entry.key}=${entry.value}: ${problem}`, { file: ctx.file, line: entry.line });
}

/** An error about an entry as a whole (an unknown key, a key that clashes): `file:line: message`. */
export function lineError(ctx: SectionContext, line: number, message: string): UnitFileError {
  return new UnitFileError(message, { file: ctx.file, line });
}

/**
 * A value form as a zod schema over the raw string. `parse` throws ValueProblem (or any FleetError
 * from the lower parsers) to reject; the message becomes the zod issue, and then the UnitFileError.
 */
export function valueSchema<T>(parse: (value: string) => T): z.ZodType<T, string> {
  return z.string().transform((value, zctx) => {
    try {
      return parse(value);
    } catch (error) {
      const problem = problemOf(error);
      if (problem === undefined) throw error;
      zctx.addIssue({ code: 'custom', message: problem, input: value });
      return z.NEVER;
    }
  });
}

/** A rejected value inside a valueSchema parser; the message says what is wrong and what is right. */
export class ValueProblem extends Error {}

/** Checks one entry's value against its schema; throws `file:line: Key=value: problem`. */
export function checkValue<T>(ctx: SectionContext, entry: UnitEntry, schema: z.ZodType<T, string>): T {
  const result = schema.safeParse(entry.value);
  if (result.success) return result.data;
  throw entryError(ctx, entry, result.error.issues[0]?.message ?? 'invalid value');
}

/** An enumerated value: the error lists the accepted ones. */
export function enumSchema<const T extends string>(values: readonly T[]): z.ZodType<T, string> {
  return valueSchema((value) => {
    if ((values as readonly string[]).includes(value)) return value as T;
    throw new ValueProblem(`invalid value; expected one of ${values.join(', ')}`);
  });
}

const TRUE_WORDS = ['1', 'yes', 'y', 'true', 't', 'on'];
const FALSE_WORDS = ['0', 'no', 'n', 'false', 'f', 'off'];

/** systemd's booleans (parse_boolean), in any case: 1 yes y true t on / 0 no n false f off. */
export function parseBoolean(value: string): boolean | undefined {
  const lower = value.toLowerCase();
  if (TRUE_WORDS.includes(lower)) return true;
  if (FALSE_WORDS.includes(lower)) return false;
  return undefined;
}

export const booleanValue = valueSchema((value) => {
  const parsed = parseBoolean(value);
  if (parsed === undefined) {
    throw new ValueProblem('not a boolean; use true/yes/1/on or false/no/0/off');
  }
  return parsed;
});

/**
 * A systemd time span in milliseconds (`90`, `90s`, `1min 30s`, `500ms`, `infinity`). With
 * `zeroIsInfinity`, 0 means "no timeout", as systemd's Timeout*Sec= read it.
 */
export function timeSpanValue(options: { zeroIsInfinity?: boolean; allowInfinity?: boolean } = {}) {
  return valueSchema((value) => {
    const ms = parseTimeSpan(value);
    if (ms === Infinity && options.allowInfinity === false) {
      throw new ValueProblem('must be a finite time span such as 30s');
    }
    return ms === 0 && options.zeroIsInfinity === true ? Infinity : ms;
  });
}

/** A non-negative integer within [min, max]. */
export function integerValue(min: number, max: number) {
  return valueSchema((value) => {
    if (!/^[0-9]+$/.test(value)) throw new ValueProblem(`not a whole number; use ${min}…${max}`);
    const n = Number(value);
    if (n < min || n > max) throw new ValueProblem(`out of range; use ${min}…${max}`);
    return n;
  });
}

/** The value split into words with systemd's quoting; a quoting error names the entry. */
export function wordsOf(ctx: SectionContext, entry: UnitEntry): string[] {
  try {
    return splitWords(entry.value);
  } catch (error) {
    throw rethrowAsEntryError(ctx, entry, error);
  }
}

/** Submit-time specifier expansion (%n %N %p %i) of one word of an entry. */
export function expandIn(ctx: SectionContext, entry: UnitEntry, word: string): string {
  try {
    return expandSpecifiers(word, ctx.specifiers, { where: `${entry.key}=` });
  } catch (error) {
    throw rethrowAsEntryError(ctx, entry, error);
  }
}

/** A lower layer's FleetError about a value, re-thrown with this entry's file, line and key. */
export function rethrowAsEntryError(ctx: SectionContext, entry: UnitEntry, error: unknown): unknown {
  const problem = problemOf(error);
  return problem === undefined ? error : entryError(ctx, entry, problem);
}

function problemOf(error: unknown): string | undefined {
  if (error instanceof ValueProblem) return error.message;
  if (error instanceof UnitFileError) return error.reason;
  if (error instanceof FleetError) return error.message;
  return undefined;
}

/**
 * The message for a key a section does not know: what was written, the supported keys, and the
 * nearest known key when the written one looks like a typo.
 */
export function unknownKeyMessage(
  section: string,
  key: string,
  known: readonly string[],
  options: { unsupported?: string; knownList?: string } = {},
): string {
  const list = options.knownList ?? known.join(', ');
  const guess = nearest(key, known);
  const hint = guess === undefined ? '' : `; did you mean ${guess}?`;
  if (options.unsupported !== undefined) {
    return `${options.unsupported}; supported [${section}] keys: ${list}${hint}`;
  }
  return `unknown [${section}] key "${key}"; known keys: ${list}${hint}`;
}

/** The known key closest to `key` (same letters in another case, or at most 2 edits away). */
export function nearest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = name.toLowerCase() === lower ? 0 : editDistance(lower, name.toLowerCase());
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** An absolute path with an optional `-` prefix (systemd: "ignore if missing"). */
export interface OptionalPath {
  readonly path: string;
  /** `-` prefix: a missing file is not an error. */
  readonly optional: boolean;
}

export const optionalPathValue = valueSchema((value): OptionalPath => {
  const optional = value.startsWith('-');
  const path = optional ? value.slice(1) : value;
  if (!path.startsWith('/')) {
    throw new ValueProblem(
      'not an absolute path; write /path/to/file, or -/path/to/file if it may be missing',
    );
  }
  return { path, optional };
});

/** User or group: a name as useradd accepts it, or a numeric id; specifiers allowed. */
export const accountValue = valueSchema((value) => {
  if (/^[0-9]+$/.test(value) || /^[A-Za-z_%][A-Za-z0-9_.%-]*\$?$/.test(value)) return value;
  throw new ValueProblem('not a user or group name; use a name such as www-data or a numeric id');
});
