import test from 'ava';
import { splitWordTokens, splitWords, WordSplitError } from '../../src/unit/words.js';

const cases: readonly (readonly [input: string, words: readonly string[]])[] = [
  ['', []],
  ['   \t ', []],
  ['a b  c', ['a', 'b', 'c']],
  ['  lead and trail  ', ['lead', 'and', 'trail']],
  ['a\tb\nc\rd', ['a', 'b', 'c', 'd']],
  ['"a b" c', ['a b', 'c']],
  ["'a b' c", ['a b', 'c']],
  ['"it\'s" \'say "hi"\'', ["it's", 'say "hi"']],
  ['"" x', ['', 'x']],
  ["''", ['']],
  ['"a"b', ['ab']], // text glued after a closing quote continues the word
  ['a"b c"d', ['ab cd']], // a quote inside a word opens quoting there (current systemd)
  ['"a""b"', ['ab']],
  ['a\\ b', ['a b']],
  ['\\"a b\\"', ['"a', 'b"']],
  ["\\'", ["'"]],
  ['\\\\', ['\\']],
  ['a\\nb', ['a\nb']],
  ['a\\tb', ['a\tb']],
  ['\\a\\b\\f\\r\\v\\s', ['\x07\b\f\r\v ']],
  ['\\x41\\x7a', ['Az']],
  ['\\u00e9\\U0001F600', ['é😀']],
  ['\\101\\060', ['A0']],
  ['"a\\"b"', ['a"b']],
  ["'a\\'b'", ["a'b"]], // escapes work inside single quotes too, as in systemd
  ['"a\\nb"', ['a\nb']],
  ['\\;', [';']], // unknown escapes keep the character
  ['\\$HOME', ['$HOME']],
  ['\\q', ['q']],
  ["--flag='x y'", ['--flag=x y']],
];

for (const [input, words] of cases) {
  test(`splitWords(${JSON.stringify(input)})`, (t) => {
    t.deepEqual(splitWords(input), words);
  });
}

const errors: readonly (readonly [input: string, message: string])[] = [
  ['"abc', 'unbalanced quoting in ""abc": the " at position 1 is never closed'],
  ["a 'b c", 'unbalanced quoting in "a \'b c": the \' at position 3 is never closed'],
  ['a"b', 'unbalanced quoting in "a"b": the " at position 2 is never closed'],
  ['abc\\', 'invalid escape in "abc\\" at position 4: a lone "\\" at the end; write \\\\ for a backslash'],
  ['\\xZZ', 'invalid escape in "\\xZZ" at position 1: \\x needs 2 hex digits, as in \\x41'],
  ['\\x4', 'invalid escape in "\\x4" at position 1: \\x needs 2 hex digits, as in \\x41'],
  ['\\u12', 'invalid escape in "\\u12" at position 1: \\u needs 4 hex digits, as in \\u00e9'],
  ['\\U1234', 'invalid escape in "\\U1234" at position 1: \\U needs 8 hex digits, as in \\U0001F600'],
  ['\\x00', 'invalid escape in "\\x00" at position 1: a NUL character cannot be passed in a word'],
  ['\\000', 'invalid escape in "\\000" at position 1: a NUL character cannot be passed in a word'],
  ['\\12', 'invalid escape in "\\12" at position 1: an octal escape needs 3 digits, 000 to 377, as in \\101'],
  [
    '\\477',
    'invalid escape in "\\477" at position 1: an octal escape needs 3 digits, 000 to 377, as in \\101',
  ],
  ['\\uD800', 'invalid escape in "\\uD800" at position 1: U+d800 is not a valid character'],
  ['\\U00110000', 'invalid escape in "\\U00110000" at position 1: U+110000 is not a valid character'],
];

for (const [input, message] of errors) {
  test(`splitWords(${JSON.stringify(input)}) fails`, (t) => {
    const error = t.throws(() => splitWords(input), { instanceOf: WordSplitError, message });
    t.is(error?.code, 'unit_invalid');
  });
}

test('splitWordTokens keeps the raw text and offsets of each word', (t) => {
  t.deepEqual(splitWordTokens(' a "b c"  \\; ;'), [
    { value: 'a', raw: 'a', start: 1, end: 2 },
    { value: 'b c', raw: '"b c"', start: 3, end: 8 },
    { value: ';', raw: '\\;', start: 10, end: 12 },
    { value: ';', raw: ';', start: 13, end: 14 },
  ]);
});
