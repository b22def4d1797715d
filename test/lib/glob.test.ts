import test from 'ava';
import { GlobPatternError, globMatch, globPatternProblem, isGlobPattern } from '../../src/lib/glob.js';

const matches: readonly (readonly [pattern: string, name: string, expected: boolean])[] = [
  ['web.unit', 'web.unit', true],
  ['web.unit', 'web.service', false],
  ['web@*.unit', 'web@1.unit', true],
  ['web@*.unit', 'web@.unit', true],
  ['web@*.unit', 'db@1.unit', false],
  ['*', 'anything.unit', true],
  ['*', '', true],
  ['*.unit', 'a/b.unit', false], // * does not cross /
  ['*/*.unit', 'a/b.unit', true],
  ['a*b*c', 'abc', true],
  ['a*b*c', 'axxbyyc', true],
  ['a*b*c', 'axxbyy', false],
  ['**', 'ab', true],
  ['web?.unit', 'web1.unit', true],
  ['web?.unit', 'web.unit', false],
  ['web?.unit', 'web12.unit', false],
  ['?', '/', false],
  ['?', 'é', true], // one character, not one UTF-16 unit
  ['web@[0-9].unit', 'web@7.unit', true],
  ['web@[0-9].unit', 'web@x.unit', false],
  ['web@[^0-9].unit', 'web@x.unit', true],
  ['web@[^0-9].unit', 'web@7.unit', false],
  ['[abc]', 'b', true],
  ['[abc]', 'd', false],
  ['[a-cx-z]', 'y', true],
  ['[a-cx-z]', 'm', false],
  ['[\\]]', ']', true],
  ['[\\-]', '-', true],
  ['[z-a]', 'm', false], // reversed range: matches nothing, as in Go
  ['[^a]', '/', true], // as in Go, only * and ? stop at /
  ['\\*', '*', true],
  ['\\*', 'x', false],
  ['a\\?b', 'a?b', true],
  ['a\\?b', 'axb', false],
  ['\\a', 'a', true],
];

for (const [pattern, name, expected] of matches) {
  test(`globMatch(${JSON.stringify(pattern)}, ${JSON.stringify(name)}) is ${expected}`, (t) => {
    t.is(globMatch(pattern, name), expected);
  });
}

const malformed: readonly (readonly [pattern: string, reason: string])[] = [
  ['web@[0-9', 'a "[" class is not closed with "]"'],
  ['[', 'a "[" class is not closed with "]"'],
  ['[]', '"]" must be escaped as \\] at this place in a "[" class'],
  ['[^]', '"]" must be escaped as \\] at this place in a "[" class'],
  ['[-a]', '"-" must be escaped as \\- at this place in a "[" class'],
  ['[a-]', '"]" must be escaped as \\] at this place in a "[" class'],
  ['[a\\', 'a "[" class is not closed with "]"'],
  ['web\\', 'it ends with a lone "\\"; write \\\\ for a literal backslash'],
];

for (const [pattern, reason] of malformed) {
  test(`globMatch rejects malformed ${JSON.stringify(pattern)}`, (t) => {
    const message = `invalid glob pattern "${pattern}": ${reason}`;
    // Rejected even when the name could never match, so bad patterns surface at submit.
    const error = t.throws(() => globMatch(pattern, 'zzz'), { instanceOf: GlobPatternError, message });
    t.is(error?.code, 'glob_invalid');
    t.is(globPatternProblem(pattern), message);
  });
}

test('globPatternProblem is undefined for a valid pattern', (t) => {
  t.is(globPatternProblem('web@[0-9]*.unit'), undefined);
});

test('isGlobPattern tells plain names from patterns', (t) => {
  t.deepEqual(['web.unit', 'web@*.unit', 'web?.unit', 'web[12].unit', 'a\\b'].map(isGlobPattern), [
    false,
    true,
    true,
    true,
    true,
  ]);
});

test('a long star-heavy pattern does not backtrack exponentially', (t) => {
  const name = 'a'.repeat(200);
  t.false(globMatch('a*'.repeat(50) + 'b', name));
});
