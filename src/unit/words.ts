// systemd's word splitting (extract_first_word with EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE), used for
// Exec lines, Environment= and other list settings. Pure; callers add file:line to the errors.

import { FleetError } from '../lib/errors.js';

/** A value that cannot be split into words; the message has no file:line, which callers add. */
export class WordSplitError extends FleetError {
  constructor(message: string) {
    super('unit_invalid', message);
  }
}

/** One word and where it was in the value: `raw` tells `;` apart from `";"` or `\;`. */
export interface WordToken {
  readonly value: string;
  /** The word's text as written, quotes and backslashes included. */
  readonly raw: string;
  readonly start: number;
  readonly end: number;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

/**
 * Splits on unquoted whitespace. `"…"` and `'…'` quote (anywhere in a word, as current systemd
 * does, so `a"b c"d` is one word `ab cd`; `""` is an empty word); C escapes (`\n \t \" \' \\ \xNN
 * \uNNNN \NNN \s`…) are decoded in and out of quotes; a backslash before any other character keeps
 * that character (`\;` → `;`, `\ ` → a space inside the word).
 */
export function splitWords(value: string): string[] {
  return splitWordTokens(value).map((token) => token.value);
}

export function splitWordTokens(value: string): WordToken[] {
  const tokens: WordToken[] = [];
  let i = 0;
  while (i < value.length) {
    while (i < value.length && WHITESPACE.has(value[i] ?? '')) i++;
    if (i >= value.length) break;
    const start = i;
    let word = '';
    let quote: '"' | "'" | undefined;
    let quoteStart = 0;
    for (; i < value.length; i++) {
      const c = value[i] ?? '';
      if (c === '\\') {
        const [decoded, length] = unescapeAt(value, i);
        word += decoded;
        i += length - 1;
      } else if (quote !== undefined) {
        if (c === quote) quote = undefined;
        else word += c;
      } else if (c === '"' || c === "'") {
        quote = c;
        quoteStart = i;
      } else if (WHITESPACE.has(c)) {
        break;
      } else {
        word += c;
      }
    }
    if (quote !== undefined) {
      throw new WordSplitError(
        `unbalanced quoting in ${show(value)}: the ${quote} at position ${quoteStart + 1} is never closed`,
      );
    }
    tokens.push({ value: word, raw: value.slice(start, i), start, end: i });
  }
  return tokens;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  s: ' ',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

/** Decodes the escape starting with the backslash at `at`: [text, characters consumed]. */
function unescapeAt(value: string, at: number): [string, number] {
  const next = value[at + 1];
  const fail = (reason: string): never => {
    throw new WordSplitError(`invalid escape in ${show(value)} at position ${at + 1}: ${reason}`);
  };
  if (next === undefined) return fail('a lone "\\" at the end; write \\\\ for a backslash');
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return [simple, 2];
  const hex = (digits: number, name: string): [string, number] => {
    const text = value.slice(at + 2, at + 2 + digits);
    if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(text)) {
      return fail(`\\${next} needs ${digits} hex digits, as in ${name}`);
    }
    return [codePoint(parseInt(text, 16), fail), 2 + digits];
  };
  if (next === 'x') return hex(2, '\\x41');
  if (next === 'u') return hex(4, '\\u00e9');
  if (next === 'U') return hex(8, '\\U0001F600');
  if (/[0-7]/.test(next)) {
    const text = value.slice(at + 1, at + 4);
    if (!/^[0-3][0-7]{2}$/.test(text)) return fail('an octal escape needs 3 digits, 000 to 377, as in \\101');
    return [codePoint(parseInt(text, 8), fail), 4];
  }
  // systemd would reject an unknown escape; keeping the character is what users mean by `\;` or `\$`.
  return [next, 2];
}

function codePoint(n: number, fail: (reason: string) => never): string {
  if (n === 0) return fail('a NUL character cannot be passed in a word');
  if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff))
    return fail(`U+${n.toString(16)} is not a valid character`);
  return String.fromCodePoint(n);
}

function show(value: string): string {
  return `"${value}"`;
}
