// systemd-style `%` specifiers. Unit-derived ones (%n %N %p %i) are known at submit and expanded in
// [X-Fleet]; host-derived ones (%H %m %b) only on the host at run time, in [Service]/[Container].

import { FleetError } from '../lib/errors.js';
import type { ParsedUnitName } from './names.js';

/** The values specifiers expand to; a letter left out is unknown in that context. */
export interface SpecifierContext {
  /** Full unit name: `web@1.unit`. */
  readonly n?: string;
  /** Unit name without type suffix: `web@1`. */
  readonly N?: string;
  /** Prefix: the part before `@`, or the name without suffix for plain units. */
  readonly p?: string;
  /** Instance: the part after `@`; empty for plain units. */
  readonly i?: string;
  /** Host name. */
  readonly H?: string;
  /** Machine id. */
  readonly m?: string;
  /** Boot id. */
  readonly b?: string;
}

type Letter = keyof SpecifierContext;

const DESCRIPTIONS: Readonly<Record<Letter, string>> = {
  n: 'the full unit name',
  N: 'the unit name without its type suffix',
  p: 'the unit name prefix',
  i: 'the instance name',
  H: 'the host name',
  m: 'the machine id',
  b: 'the boot id',
};
const HOST_LETTERS: ReadonlySet<string> = new Set(['H', 'm', 'b']);

/** A `%` specifier that is unknown, or not known in this context; no file:line, which callers add. */
export class SpecifierError extends FleetError {
  readonly specifier: string;

  constructor(specifier: string, message: string) {
    super('unit_invalid', message);
    this.specifier = specifier;
  }
}

export interface ExpandOptions {
  /** Where the text comes from, for messages: `[X-Fleet]` (the default), `ExecStart=`… */
  readonly where?: string;
}

/**
 * Replaces `%n %N %p %i %H %m %b` with their values in `ctx` and `%%` with `%`. A lone `%` at the
 * end stays, as in systemd (`100%`). Throws SpecifierError for an unknown letter, or a known one
 * that `ctx` leaves out (`%H` at submit time).
 */
export function expandSpecifiers(s: string, ctx: SpecifierContext, options: ExpandOptions = {}): string {
  const where = options.where ?? '[X-Fleet]';
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const letter = s[i + 1];
    i++;
    if (letter === undefined) {
      out += '%';
    } else if (letter === '%') {
      out += '%';
    } else if (isLetter(letter)) {
      const value = ctx[letter];
      if (value === undefined) throw unknownHere(letter, where);
      out += value;
    } else {
      throw new SpecifierError(
        `%${letter}`,
        `unknown specifier "%${letter}" in ${where}; known specifiers are %n %N %p %i %H %m %b, and %% for a literal %`,
      );
    }
  }
  return out;
}

/** The unit-derived specifiers of a unit: n, N, p, i (i is empty unless the unit is an instance). */
export function specifierContextForUnit(name: ParsedUnitName): SpecifierContext {
  return {
    n: name.name,
    N: name.name.slice(0, name.name.length - name.type.length - 1),
    p: name.prefix,
    i: name.instance ?? '',
  };
}

function isLetter(s: string): s is Letter {
  return Object.hasOwn(DESCRIPTIONS, s);
}

function unknownHere(letter: Letter, where: string): SpecifierError {
  const what = `%${letter} (${DESCRIPTIONS[letter]})`;
  const message = HOST_LETTERS.has(letter)
    ? `${what} is only known on the host at run time; it cannot be used in ${where}`
    : `${what} is not known in ${where}`;
  return new SpecifierError(`%${letter}`, message);
}
