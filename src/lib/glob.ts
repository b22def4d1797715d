// Shell-style globs with Go's path.Match semantics, as fleet used them for Conflicts= and Replaces=.
// Pure and dependency-free so both unit validation (at submit) and the scheduler can use it.

import { FleetError } from './errors.js';

/** A malformed glob (unterminated `[`, empty class, trailing `\`): the message says which and why. */
export class GlobPatternError extends FleetError {
  readonly pattern: string;

  constructor(pattern: string, reason: string) {
    super('glob_invalid', `invalid glob pattern "${pattern}": ${reason}`);
    this.pattern = pattern;
  }
}

type Token =
  | { readonly kind: 'star' }
  | { readonly kind: 'any' }
  | { readonly kind: 'literal'; readonly char: string }
  | {
      readonly kind: 'class';
      readonly negated: boolean;
      readonly ranges: readonly (readonly [string, string])[];
    };

/**
 * True when `name` matches `pattern`: `*` is any run of characters but `/`, `?` one character but
 * `/`, `[a-z0-9]` and `[^a-z]` a class, `\c` the character c. Throws GlobPatternError on a malformed
 * pattern even when the name would not match, so that a bad pattern is caught at submit, not later.
 */
export function globMatch(pattern: string, name: string): boolean {
  const tokens = compileGlob(pattern);
  const chars = Array.from(name);
  // row[j]: the tokens so far match chars[0..j). One row per token, so no exponential backtracking.
  let row: boolean[] = chars.map(() => false);
  row.unshift(true);
  for (const token of tokens) {
    const next: boolean[] = new Array<boolean>(chars.length + 1).fill(false);
    if (token.kind === 'star') {
      // A star covers any run chars[k..j) without '/' after a position k the earlier tokens reached.
      let reachable = false;
      for (let j = 0; j <= chars.length; j++) {
        if (j > 0 && chars[j - 1] === '/') reachable = false;
        if (row[j] === true) reachable = true;
        next[j] = reachable;
      }
    } else {
      for (let j = 1; j <= chars.length; j++) {
        next[j] = row[j - 1] === true && matchesOne(token, chars[j - 1] ?? '');
      }
    }
    row = next;
  }
  return row[chars.length] === true;
}

/** The reason a pattern is malformed, or undefined when it is a valid glob. For validation at submit. */
export function globPatternProblem(pattern: string): string | undefined {
  try {
    compileGlob(pattern);
    return undefined;
  } catch (error) {
    if (error instanceof GlobPatternError) return error.message;
    throw error;
  }
}

/** True when the pattern has glob syntax, i.e. may match more than the one name it spells. */
export function isGlobPattern(pattern: string): boolean {
  return /[*?[\\]/.test(pattern);
}

function matchesOne(token: Exclude<Token, { kind: 'star' }>, char: string): boolean {
  switch (token.kind) {
    case 'any':
      return char !== '/';
    case 'literal':
      return char === token.char;
    case 'class': {
      // As in Go, a class may match '/' (only * and ? stop at it).
      const inside = token.ranges.some(([lo, hi]) => lo <= char && char <= hi);
      return inside !== token.negated;
    }
  }
}

function compileGlob(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  let i = 0;
  const fail = (reason: string): never => {
    throw new GlobPatternError(pattern, reason);
  };
  while (i < chars.length) {
    const c = chars[i] ?? '';
    if (c === '*') {
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
      i++;
    } else if (c === '?') {
      tokens.push({ kind: 'any' });
      i++;
    } else if (c === '\\') {
      const escaped = chars[i + 1];
      if (escaped === undefined) fail('it ends with a lone "\\"; write \\\\ for a literal backslash');
      tokens.push({ kind: 'literal', char: escaped ?? '' });
      i += 2;
    } else if (c === '[') {
      i++;
      let negated = false;
      if (chars[i] === '^') {
        negated = true;
        i++;
      }
      const ranges: (readonly [string, string])[] = [];
      // Go's path.Match: a class needs at least one range; `]` and `-` must be escaped inside it.
      const classChar = (): string => {
        const ch = chars[i];
        if (ch === undefined) return fail('a "[" class is not closed with "]"');
        if (ch === '-' || ch === ']') {
          return fail(`"${ch}" must be escaped as \\${ch} at this place in a "[" class`);
        }
        if (ch === '\\') {
          const escaped = chars[i + 1];
          if (escaped === undefined) return fail('a "[" class is not closed with "]"');
          i += 2;
          return escaped;
        }
        i++;
        return ch;
      };
      for (;;) {
        if (chars[i] === ']' && ranges.length > 0) {
          i++;
          break;
        }
        const lo = classChar();
        let hi = lo;
        if (chars[i] === '-') {
          i++;
          hi = classChar(); // a reversed range is not an error in Go; it matches nothing
        }
        ranges.push([lo, hi]);
      }
      tokens.push({ kind: 'class', negated, ranges });
    } else {
      tokens.push({ kind: 'literal', char: c });
      i++;
    }
  }
  return tokens;
}
