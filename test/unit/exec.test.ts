import test from 'ava';
import {
  ExecLineError,
  expandExecArgs,
  parseEnvironmentAssignments,
  parseEnvironmentFile,
  parseExecLine,
  parseExecLines,
  type ExecCommand,
} from '../../src/unit/exec.js';
import { WordSplitError } from '../../src/unit/words.js';

const plain = { ignoreFailure: false, argv0Override: false, privileged: false, noExpand: false };

const lines: readonly (readonly [input: string, expected: Omit<ExecCommand, 'raw'>])[] = [
  ['/usr/bin/env', { ...plain, path: '/usr/bin/env', argv: ['/usr/bin/env'] }],
  ['/bin/echo a "b c"', { ...plain, path: '/bin/echo', argv: ['/bin/echo', 'a', 'b c'] }],
  ['docker run --rm nginx', { ...plain, path: 'docker', argv: ['docker', 'run', '--rm', 'nginx'] }],
  ['-/bin/false', { ...plain, path: '/bin/false', argv: ['/bin/false'], ignoreFailure: true }],
  ['@/bin/sleep sleeper 10', { ...plain, path: '/bin/sleep', argv: ['sleeper', '10'], argv0Override: true }],
  ['+/sbin/ip link', { ...plain, path: '/sbin/ip', argv: ['/sbin/ip', 'link'], privileged: true }],
  ['!/bin/id', { ...plain, path: '/bin/id', argv: ['/bin/id'], privileged: true }],
  ['!!/bin/id', { ...plain, path: '/bin/id', argv: ['/bin/id'], privileged: true }],
  [':/bin/echo $HOME', { ...plain, path: '/bin/echo', argv: ['/bin/echo', '$HOME'], noExpand: true }],
  [
    '-@:+/bin/sh shell -c x',
    {
      path: '/bin/sh',
      argv: ['shell', '-c', 'x'],
      ignoreFailure: true,
      argv0Override: true,
      privileged: true,
      noExpand: true,
    },
  ],
  ['@-/bin/sh sh', { ...plain, path: '/bin/sh', argv: ['sh'], ignoreFailure: true, argv0Override: true }],
  ['"-/bin/a b" c', { ...plain, path: '/bin/a b', argv: ['/bin/a b', 'c'], ignoreFailure: true }],
  ['/bin/echo \\; done', { ...plain, path: '/bin/echo', argv: ['/bin/echo', ';', 'done'] }],
  ['/bin/echo ";"', { ...plain, path: '/bin/echo', argv: ['/bin/echo', ';'] }],
  ['/usr/bin/%p-ctl start', { ...plain, path: '/usr/bin/%p-ctl', argv: ['/usr/bin/%p-ctl', 'start'] }],
];

for (const [input, expected] of lines) {
  test(`parseExecLine(${JSON.stringify(input)})`, (t) => {
    t.deepEqual(parseExecLine(input), { ...expected, raw: input });
  });
}

const badLines: readonly (readonly [input: string, message: string])[] = [
  ['', 'empty command; give an absolute path or a program name, as in /usr/bin/env'],
  ['   ', 'empty command; give an absolute path or a program name, as in /usr/bin/env'],
  ['""', 'empty program name in """"; give an absolute path or a program name'],
  ['-', '"-" has prefixes but no program; write the program right after them, as in -/usr/bin/true'],
  ['- /bin/true', 'the prefixes "-" must be written directly before the program, as in -/bin/true'],
  [
    '--/bin/true',
    'invalid program "-/bin/true" in "--/bin/true": use an absolute path (starting with /) or a bare program name found on PATH',
  ],
  [
    '+!/bin/id',
    'invalid program "!/bin/id" in "+!/bin/id": use an absolute path (starting with /) or a bare program name found on PATH',
  ],
  [
    '!!!/bin/id',
    'invalid program "!/bin/id" in "!!!/bin/id": use an absolute path (starting with /) or a bare program name found on PATH',
  ],
  [
    '@/bin/sleep',
    'the "@" prefix in "@/bin/sleep" needs a second word to use as argv[0], as in @/bin/sleep name-in-ps',
  ],
  [
    'bin/run',
    'invalid program "bin/run" in "bin/run": use an absolute path (starting with /) or a bare program name found on PATH',
  ],
  [
    './run.sh x',
    'invalid program "./run.sh" in "./run.sh x": use an absolute path (starting with /) or a bare program name found on PATH',
  ],
  ['/usr/bin/', 'invalid program "/usr/bin/" in "/usr/bin/": it names a directory'],
  ['/', 'invalid program "/" in "/": it names a directory'],
  [
    '/usr/../bin/x',
    'invalid program "/usr/../bin/x" in "/usr/../bin/x": the path is not normalized (no //, . or .. components); write the absolute path as is',
  ],
  [
    '/usr//bin/x',
    'invalid program "/usr//bin/x" in "/usr//bin/x": the path is not normalized (no //, . or .. components); write the absolute path as is',
  ],
  ['..', 'invalid program ".." in "..": use an absolute path or a program name'],
  [
    '/bin/a ; /bin/b',
    '2 commands separated by ";" but only one is allowed here; write \\; for a literal semicolon',
  ],
];

for (const [input, message] of badLines) {
  test(`parseExecLine(${JSON.stringify(input)}) fails`, (t) => {
    const error = t.throws(() => parseExecLine(input), { instanceOf: ExecLineError, message });
    t.is(error?.code, 'unit_invalid');
  });
}

test('parseExecLine passes on word-splitting errors', (t) => {
  t.throws(() => parseExecLine('/bin/echo "oops'), {
    instanceOf: WordSplitError,
    message: 'unbalanced quoting in "/bin/echo "oops": the " at position 11 is never closed',
  });
});

test('parseExecLines splits on bare ";" words only', (t) => {
  const commands = parseExecLines('/bin/a 1 ; -/bin/b "2;" \\; ;  @/bin/c c');
  t.deepEqual(
    commands.map((c) => [c.path, c.argv, c.ignoreFailure, c.argv0Override, c.raw]),
    [
      ['/bin/a', ['/bin/a', '1'], false, false, '/bin/a 1'],
      ['/bin/b', ['/bin/b', '2;', ';'], true, false, '-/bin/b "2;" \\;'],
      ['/bin/c', ['c'], false, true, '@/bin/c c'],
    ],
  );
  t.deepEqual(parseExecLines(''), []);
});

const badMulti: readonly (readonly [string, string])[] = [
  ['; /bin/a', 'empty command before ";" in "; /bin/a"'],
  ['/bin/a ; ; /bin/b', 'empty command before ";" in "/bin/a ; ; /bin/b"'],
  ['/bin/a ;', 'empty command after ";" in "/bin/a ;"'],
];

for (const [input, message] of badMulti) {
  test(`parseExecLines(${JSON.stringify(input)}) fails`, (t) => {
    t.throws(() => parseExecLines(input), { instanceOf: ExecLineError, message });
  });
}

const env = { WORDS: 'a  b\tc', ONE: 'x', EMPTY: '', BLANK: '  ', PATHY: '/srv/data dir' };

const expansions: readonly (readonly [line: string, argv: readonly string[]])[] = [
  ['/bin/echo $WORDS', ['/bin/echo', 'a', 'b', 'c']],
  ['/bin/echo ${WORDS}', ['/bin/echo', 'a  b\tc']],
  ['/bin/echo "$WORDS"', ['/bin/echo', 'a', 'b', 'c']], // quoting is gone after parsing, as in systemd
  ['/bin/echo $EMPTY end', ['/bin/echo', 'end']],
  ['/bin/echo $BLANK end', ['/bin/echo', 'end']],
  ['/bin/echo $UNSET end', ['/bin/echo', 'end']],
  ['/bin/echo ${UNSET} end', ['/bin/echo', '', 'end']],
  ['/bin/echo --dir=${PATHY}/x', ['/bin/echo', '--dir=/srv/data dir/x']],
  ['/bin/echo ${ONE}${ONE}-${EMPTY}-', ['/bin/echo', 'xx--']],
  ['/bin/echo $$ONE', ['/bin/echo', '$ONE']],
  ['/bin/echo $$', ['/bin/echo', '$']],
  ['/bin/echo cost:$$5', ['/bin/echo', 'cost:$5']],
  ['/bin/echo $ONE/x', ['/bin/echo', '$ONE/x']], // $VAR inside a word is not expanded
  ['/bin/echo $1 $', ['/bin/echo', '$1', '$']],
  ['/bin/echo ${ONE', ['/bin/echo', '${ONE']],
  ['/bin/echo $toString ${constructor}', ['/bin/echo', '']],
  [':/bin/echo $WORDS ${ONE} $$', ['/bin/echo', '$WORDS', '${ONE}', '$$']],
];

for (const [line, argv] of expansions) {
  test(`expandExecArgs(${JSON.stringify(line)})`, (t) => {
    t.deepEqual(expandExecArgs(parseExecLine(line), env), argv);
  });
}

test('expandExecArgs does not touch the path and leaves the command unchanged', (t) => {
  const cmd = parseExecLine('@/bin/${ONE} $ONE $WORDS');
  t.deepEqual(expandExecArgs(cmd, env), ['x', 'a', 'b', 'c']);
  t.is(cmd.path, '/bin/${ONE}');
  t.deepEqual(cmd.argv, ['$ONE', '$WORDS']);
});

const assignments: readonly (readonly [input: string, vars: Record<string, string>])[] = [
  ['A=1', { A: '1' }],
  ['"A=1 2" B=3', { A: '1 2', B: '3' }],
  ["A='x y' _b2=", { A: 'x y', _b2: '' }],
  ['A=1 A=2', { A: '2' }],
  ['URL=http://h/?a=b', { URL: 'http://h/?a=b' }],
  ['A="with \\"quotes\\""', { A: 'with "quotes"' }],
  ['', {}],
];

for (const [input, vars] of assignments) {
  test(`parseEnvironmentAssignments(${JSON.stringify(input)})`, (t) => {
    t.deepEqual(parseEnvironmentAssignments(input), vars);
  });
}

test('parseEnvironmentAssignments stores __proto__ as plain data', (t) => {
  const vars = parseEnvironmentAssignments('__proto__=x');
  t.true(Object.hasOwn(vars, '__proto__'));
  t.is(vars['__proto__'], 'x');
  t.is(Object.getPrototypeOf(vars), Object.prototype);
});

const badAssignments: readonly (readonly [input: string, message: string])[] = [
  ['FOO', 'invalid environment assignment "FOO": expected KEY=VALUE'],
  [
    '1A=x',
    'invalid environment assignment "1A=x": "1A" is not a valid variable name; use letters, digits and _, not starting with a digit',
  ],
  [
    '=x',
    'invalid environment assignment "=x": "" is not a valid variable name; use letters, digits and _, not starting with a digit',
  ],
  [
    'A-B=1',
    'invalid environment assignment "A-B=1": "A-B" is not a valid variable name; use letters, digits and _, not starting with a digit',
  ],
];

for (const [input, message] of badAssignments) {
  test(`parseEnvironmentAssignments(${JSON.stringify(input)}) fails`, (t) => {
    t.throws(() => parseEnvironmentAssignments(input), { instanceOf: ExecLineError, message });
  });
}

const envFiles: readonly (readonly [name: string, text: string, vars: Record<string, string>])[] = [
  ['simple lines', 'A=1\nB=two words\n', { A: '1', B: 'two words' }],
  ['no final newline', 'A=1', { A: '1' }],
  ['CRLF line ends', 'A=1\r\nB=2\r\n', { A: '1', B: '2' }],
  ['comments with # and ;', '# c\n; c\n  # indented\nA=1\n', { A: '1' }],
  ['a # after a value is part of it', 'A=1 # not a comment\n', { A: '1 # not a comment' }],
  ['blanks around key and value', '  A = 1  \n', { A: '1' }],
  ['empty value', 'A=\nB=  \n', { A: '', B: '' }],
  ['single quotes are literal', "A='x \\n $y'\n", { A: 'x \\n $y' }],
  ['double quote escapes', 'A="q\\"b\\\\d\\$e\\`f\\ng"\n', { A: 'q"b\\d$e`f\\ng' }],
  ['double quotes keep blanks', 'A="  x  "\n', { A: '  x  ' }],
  ['quoted value across lines', 'A="one\ntwo"\nB=3\n', { A: 'one\ntwo', B: '3' }],
  ['backslash-newline in double quotes joins', 'A="one\\\ntwo"\n', { A: 'onetwo' }],
  ['backslash-newline unquoted joins', 'A=one \\\ntwo\n', { A: 'one two' }],
  ['unquoted escape', 'A=a\\ \\#b\\\\\n', { A: 'a #b\\' }],
  ['escaped trailing blank is kept', 'A=a\\ \n', { A: 'a ' }],
  ['parts after a closing quote join the value', 'A="a" \'b\'c "d"\n', { A: 'abc "d"' }],
  ['a quote inside an unquoted value is literal', "A=x'y z'\n", { A: "x'y z'" }],
  ['later assignment wins', 'A=1\nA=2\n', { A: '2' }],
  ['empty file', '', {}],
  ['comment ending in backslash does not continue', '# c \\\nA=1\n', { A: '1' }],
];

for (const [name, text, vars] of envFiles) {
  test(`parseEnvironmentFile: ${name}`, (t) => {
    const warnings: string[] = [];
    t.deepEqual(
      parseEnvironmentFile(text, (line, message) => warnings.push(`${line}: ${message}`)),
      vars,
    );
    t.deepEqual(warnings, []);
  });
}

const envFileWarnings: readonly (readonly [
  name: string,
  text: string,
  vars: Record<string, string>,
  warnings: readonly string[],
])[] = [
  [
    'export prefix (not shell)',
    'export A=1\nB=2\n',
    { B: '2' },
    ['1: "export A" is not a valid variable name; the assignment is ignored'],
  ],
  ['line without =', 'A=1\nJUNK\nB=2\n', { A: '1', B: '2' }, ['2: "JUNK" has no "="; the line is ignored']],
  ['last line without =', 'A=1\nJUNK', { A: '1' }, ['2: "JUNK" has no "="; the line is ignored']],
  [
    'invalid name',
    '1X=1\nA-B=2\n',
    {},
    [
      '1: "1X" is not a valid variable name; the assignment is ignored',
      '2: "A-B" is not a valid variable name; the assignment is ignored',
    ],
  ],
  [
    'unterminated quote',
    'A=1\nB="open\nC=3\n',
    { A: '1', B: 'open\nC=3\n' },
    ['2: the quoted value of "B" is not closed; it runs to the end of the file'],
  ],
];

for (const [name, text, vars, expected] of envFileWarnings) {
  test(`parseEnvironmentFile warns: ${name}`, (t) => {
    const warnings: string[] = [];
    t.deepEqual(
      parseEnvironmentFile(text, (line, message) => warnings.push(`${line}: ${message}`)),
      vars,
    );
    t.deepEqual(warnings, expected);
  });
}

test('parseEnvironmentFile without a warning callback ignores bad lines quietly', (t) => {
  t.deepEqual(parseEnvironmentFile('export A=1\nB=2'), { B: '2' });
});
