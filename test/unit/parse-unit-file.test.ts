// Table-driven tests of the systemd-syntax parser: each syntax rule, each error with its message,
// the limits, the helpers and the content hash.

import test from 'ava';
import { createHash } from 'node:crypto';
import { UnitFileError } from '../../src/lib/errors.js';
import { unitHash } from '../../src/unit/hash.js';
import { MAX_ASSIGNMENTS, MAX_LINE_BYTES, MAX_UNIT_FILE_BYTES } from '../../src/unit/limits.js';
import {
  buildUnitFile,
  hasSection,
  parseUnitFile,
  sectionEntries,
  serializeUnitFile,
} from '../../src/unit/parse-unit-file.js';
import type { UnitFile } from '../../src/unit/unit-file.js';

/** Sections as `[name@line, key=value@line…]` tuples: compact to write in tables. */
type Shape = [string, number, [string, string, number][]][];

function shape(file: UnitFile): Shape {
  return file.sections.map((s) => [s.name, s.line, s.entries.map((e) => [e.key, e.value, e.line])]);
}

const parses: { name: string; text: string; expect: Shape }[] = [
  { name: 'empty file has zero sections', text: '', expect: [] },
  { name: 'only comments and blanks', text: '# a\n; b\n\n  \t\n   # c\n', expect: [] },
  { name: 'section with no entries', text: '[Unit]\n', expect: [['Unit', 1, []]] },
  {
    name: 'basic assignments',
    text: '[Unit]\nDescription=Web\n\n[Service]\nExecStart=/bin/web --port 80\n',
    expect: [
      ['Unit', 1, [['Description', 'Web', 2]]],
      ['Service', 4, [['ExecStart', '/bin/web --port 80', 5]]],
    ],
  },
  {
    name: 'whitespace around key and value is trimmed, inner kept',
    text: '[A]\n  Key \t=  a   b \t\n',
    expect: [['A', 1, [['Key', 'a   b', 2]]]],
  },
  {
    name: 'whitespace around a header is trimmed',
    text: '  [X-Fleet]\t\nGlobal=true\n',
    expect: [['X-Fleet', 1, [['Global', 'true', 2]]]],
  },
  {
    name: 'empty value is kept (list reset)',
    text: '[S]\nEnv=\nEnv = \n',
    expect: [
      [
        'S',
        1,
        [
          ['Env', '', 2],
          ['Env', '', 3],
        ],
      ],
    ],
  },
  {
    name: 'only the first = splits',
    text: '[S]\nEnvironment=A=1 B=2\n',
    expect: [['S', 1, [['Environment', 'A=1 B=2', 2]]]],
  },
  {
    name: 'values are not unquoted',
    text: '[S]\nExecStart=/bin/sh -c "echo \'hi\'"\n',
    expect: [['S', 1, [['ExecStart', '/bin/sh -c "echo \'hi\'"', 2]]]],
  },
  {
    name: '# and ; inside a value are not comments',
    text: '[S]\nA=x # y\nB=;z\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', 'x # y', 2],
          ['B', ';z', 3],
        ],
      ],
    ],
  },
  {
    name: 'repeated keys kept in order',
    text: '[S]\nA=1\nA=2\nB=3\nA=4\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', '1', 2],
          ['A', '2', 3],
          ['B', '3', 4],
          ['A', '4', 5],
        ],
      ],
    ],
  },
  {
    name: 'repeated sections kept apart',
    text: '[A]\nX=1\n[B]\n[A]\nX=2\n',
    expect: [
      ['A', 1, [['X', '1', 2]]],
      ['B', 3, []],
      ['A', 4, [['X', '2', 5]]],
    ],
  },
  { name: 'keys: letters, digits, _ and -', text: '[S]\nA_b-9=v\n', expect: [['S', 1, [['A_b-9', 'v', 2]]]] },
  {
    name: 'CRLF line ends',
    text: '[S]\r\nA=1\r\nB=2\r\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', '1', 2],
          ['B', '2', 3],
        ],
      ],
    ],
  },
  {
    name: 'mixed LF and CRLF',
    text: '[S]\nA=1\r\nB=2\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', '1', 2],
          ['B', '2', 3],
        ],
      ],
    ],
  },
  { name: 'no final newline', text: '[S]\nA=1', expect: [['S', 1, [['A', '1', 2]]]] },
  { name: 'leading BOM tolerated', text: '\uFEFF[S]\nA=1\n', expect: [['S', 1, [['A', '1', 2]]]] },
  { name: 'leading BOM before a comment', text: '\uFEFF# c\n[S]\n', expect: [['S', 2, []]] },
  {
    name: 'continuation: backslash becomes a space, next line appended as is',
    text: '[S]\nExecStart=/bin/a \\\n  --b \\\n--c\nX=1\n',
    expect: [
      [
        'S',
        1,
        [
          ['ExecStart', '/bin/a    --b  --c', 2],
          ['X', '1', 5],
        ],
      ],
    ],
  },
  {
    name: 'continuation without a blank before the backslash',
    text: '[S]\nA=x\\\ny\n',
    expect: [['S', 1, [['A', 'x y', 2]]]],
  },
  {
    name: 'comment lines inside a continuation are skipped',
    text: '[S]\nA=one \\\n# note \\\n  ; other\ntwo\n',
    expect: [['S', 1, [['A', 'one  two', 2]]]],
  },
  {
    name: 'a blank line ends a continuation',
    text: '[S]\nA=one \\\n\nB=2\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', 'one', 2],
          ['B', '2', 4],
        ],
      ],
    ],
  },
  {
    name: 'continuation with CRLF',
    text: '[S]\r\nA=one\\\r\ntwo\r\n',
    expect: [['S', 1, [['A', 'one two', 2]]]],
  },
  { name: 'continuation running to EOF', text: '[S]\nA=one \\', expect: [['S', 1, [['A', 'one', 2]]]] },
  {
    name: 'continuation at EOF after a newline',
    text: '[S]\nA=one \\\n',
    expect: [['S', 1, [['A', 'one', 2]]]],
  },
  {
    name: 'escaped backslash does not continue',
    text: '[S]\nA=x\\\\\nB=y\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', 'x\\\\', 2],
          ['B', 'y', 3],
        ],
      ],
    ],
  },
  {
    name: 'three backslashes continue',
    text: '[S]\nA=x\\\\\\\ny\n',
    expect: [['S', 1, [['A', 'x\\\\ y', 2]]]],
  },
  {
    name: 'backslash then blank does not continue',
    text: '[S]\nA=x\\ \nB=y\n',
    expect: [
      [
        'S',
        1,
        [
          ['A', 'x\\', 2],
          ['B', 'y', 3],
        ],
      ],
    ],
  },
  {
    name: 'a comment ending in a backslash continues nothing',
    text: '[S]\n# c \\\nA=1\n',
    expect: [['S', 1, [['A', '1', 3]]]],
  },
];

for (const { name, text, expect } of parses) {
  test(`parses: ${name}`, (t) => {
    const file = parseUnitFile(text);
    t.deepEqual(shape(file), expect);
    t.is(serializeUnitFile(file), text);
  });
}

const errors: { name: string; text: string; line: number | undefined; message: string }[] = [
  {
    name: 'a line without =',
    text: '[Unit]\nDescription=x\nfoo bar\n',
    line: 3,
    message:
      'web@.unit:3: line is neither a [Section] header, a Key=Value assignment nor a comment: "foo bar"; write Key=Value',
  },
  {
    name: 'assignment before any section',
    text: '# c\nA=1\n[S]\n',
    line: 2,
    message:
      'web@.unit:2: assignment "A=1" comes before any [Section] header; put it under a section such as [Unit]',
  },
  {
    name: 'empty key',
    text: '[S]\n = x\n',
    line: 2,
    message: 'web@.unit:2: no key before "=": "= x"; write Key=Value',
  },
  {
    name: 'key with a space',
    text: '[S]\nExec Start=x\n',
    line: 2,
    message:
      'web@.unit:2: key "Exec Start" contains a space; a key is made of letters, digits, "_" and "-": "Exec Start=x"; write Key=Value',
  },
  {
    name: 'a continuation joining a key with a space',
    text: '[S]\nExec\\\nStart=x\n',
    line: 2,
    message:
      'web@.unit:2: key "Exec Start" contains a space; a key is made of letters, digits, "_" and "-": "Exec Start=x"; write Key=Value',
  },
  {
    name: 'key with a dot',
    text: '[S]\nA.b=x\n',
    line: 2,
    message:
      'web@.unit:2: key "A.b" contains "."; a key is made of letters, digits, "_" and "-": "A.b=x"; write Key=Value',
  },
  {
    name: 'header without ]',
    text: '[Unit\nA=1\n',
    line: 1,
    message: 'web@.unit:1: section header "[Unit" has no closing "]"; write [Name]',
  },
  {
    name: 'text after ]',
    text: '[Unit] # comment\n',
    line: 1,
    message:
      'web@.unit:1: text after the closing "]" of section header "[Unit] # comment"; put comments on a line of their own',
  },
  {
    name: 'empty section name',
    text: '[]\n',
    line: 1,
    message: 'web@.unit:1: empty section name: "[]"; write [Name], e.g. [Unit]',
  },
  {
    name: 'section name with a space',
    text: '[S]\n[X Fleet]\n',
    line: 2,
    message:
      'web@.unit:2: section name "X Fleet" contains a space; a name is printable characters without whitespace, quotes, backslashes or brackets: "[X Fleet]"; write [Name], e.g. [Unit]',
  },
  {
    name: 'section name with a [',
    text: '[[Unit]\n',
    line: 1,
    message:
      'web@.unit:1: section name "[Unit" contains "["; a name is printable characters without whitespace, quotes, backslashes or brackets: "[[Unit]"; write [Name], e.g. [Unit]',
  },
  {
    name: 'NUL byte',
    text: '[S]\nA=x\0y\n',
    line: 2,
    message: 'web@.unit:2: a NUL byte at column 4; unit files are text: remove it',
  },
  {
    name: 'NUL byte in a comment',
    text: '[S]\n# \0\n',
    line: 2,
    message: 'web@.unit:2: a NUL byte at column 3; unit files are text: remove it',
  },
  {
    name: 'unpaired surrogate',
    text: '[S]\nA=\uD800x\n',
    line: 2,
    message:
      'web@.unit:2: an unpaired UTF-16 surrogate (not valid Unicode) at column 3; save the file as UTF-8',
  },
  {
    name: 'BOM in the middle',
    text: '[S]\nA=\uFEFF\n',
    line: 2,
    message:
      'web@.unit:2: a byte order mark (U+FEFF) at column 3; a BOM is allowed only at the very start of the file: remove it',
  },
  {
    name: 'second BOM at the start',
    text: '\uFEFF\uFEFF[S]\n',
    line: 1,
    message:
      'web@.unit:1: a byte order mark (U+FEFF) at column 2; a BOM is allowed only at the very start of the file: remove it',
  },
  {
    name: 'lone carriage return',
    text: '[S]\nA=1\rB=2\n',
    line: 2,
    message:
      'web@.unit:2: a carriage return not followed by a line feed at column 4; end lines with \\n or \\r\\n',
  },
  {
    name: 'the first of several bad characters is reported',
    text: '[S]\nA=\r\0\n',
    line: 2,
    message:
      'web@.unit:2: a carriage return not followed by a line feed at column 3; end lines with \\n or \\r\\n',
  },
  {
    name: 'a long line is cut in the message',
    text: `[S]\n${'x'.repeat(100)}\n`,
    line: 2,
    message: `web@.unit:2: line is neither a [Section] header, a Key=Value assignment nor a comment: "${'x'.repeat(77)}..."; write Key=Value`,
  },
];

for (const { name, text, line, message } of errors) {
  test(`rejects: ${name}`, (t) => {
    const error = t.throws(() => parseUnitFile(text, 'web@.unit'), { instanceOf: UnitFileError });
    t.is(error.message, message);
    t.is(error.line, line);
    t.is(error.file, 'web@.unit');
    t.is(error.code, 'unit_invalid');
  });
}

test('without a file name the message starts with the line', (t) => {
  const error = t.throws(() => parseUnitFile('foo'), { instanceOf: UnitFileError });
  t.true(error.message.startsWith('line 1: line is neither'));
});

const limits: { name: string; text: string; message: RegExp }[] = [
  {
    name: 'file size',
    text: `[S]\n${`A=${'x'.repeat(1000)}\n`.repeat(300)}`,
    message: new RegExp(
      `^web@\\.unit: unit file is ${4 + 1003 * 300} bytes, over the limit of ${MAX_UNIT_FILE_BYTES} bytes \\(MAX_UNIT_FILE_BYTES`,
    ),
  },
  {
    name: 'file size counts UTF-8 bytes',
    text: `[S]\nA=${'é'.repeat(MAX_UNIT_FILE_BYTES / 2)}\n`,
    message: new RegExp(`^web@\\.unit: unit file is ${7 + MAX_UNIT_FILE_BYTES} bytes`),
  },
  {
    name: 'physical line length',
    text: `[S]\n# ${'x'.repeat(MAX_LINE_BYTES)}\n`,
    message: new RegExp(
      `^web@\\.unit:2: line is ${MAX_LINE_BYTES + 2} bytes, over the limit of ${MAX_LINE_BYTES} bytes \\(MAX_LINE_BYTES`,
    ),
  },
  {
    name: 'logical line length',
    text: `[S]\n\nA=${'x'.repeat(MAX_LINE_BYTES / 2)}\\\n${'y'.repeat(MAX_LINE_BYTES / 2)}\n`,
    message: new RegExp(
      `^web@\\.unit:3: logical line \\(lines 3–4 joined\\) is ${MAX_LINE_BYTES + 3} bytes, over the limit of ${MAX_LINE_BYTES} bytes`,
    ),
  },
  {
    name: 'number of assignments',
    text: `[S]\n${'A=1\n'.repeat(MAX_ASSIGNMENTS + 1)}`,
    message: new RegExp(
      `^web@\\.unit:${MAX_ASSIGNMENTS + 2}: more than ${MAX_ASSIGNMENTS} assignments \\(MAX_ASSIGNMENTS`,
    ),
  },
];

for (const { name, text, message } of limits) {
  test(`limit: ${name}`, (t) => {
    const error = t.throws(() => parseUnitFile(text, 'web@.unit'), { instanceOf: UnitFileError });
    t.regex(error.message, message);
  });
}

test('limits: exactly at each limit parses', (t) => {
  const atAssignments = `[S]\n${'A=1\n'.repeat(MAX_ASSIGNMENTS)}`;
  t.is(parseUnitFile(atAssignments).sections[0]?.entries.length, MAX_ASSIGNMENTS);
  const atLine = `[S]\nA=${'x'.repeat(MAX_LINE_BYTES - 2)}\n`;
  t.is(parseUnitFile(atLine).sections[0]?.entries[0]?.value.length, MAX_LINE_BYTES - 2);
  const head = '[S]\n# ';
  const atFile =
    `${head}${'x'.repeat(MAX_LINE_BYTES - 2)}\n`.repeat(3) +
    `#${'y'.repeat(MAX_UNIT_FILE_BYTES - 3 * (head.length + MAX_LINE_BYTES - 1) - 1)}`;
  t.is(Buffer.byteLength(atFile), MAX_UNIT_FILE_BYTES);
  t.is(parseUnitFile(atFile).sections.length, 3);
});

test('sectionEntries merges repeated sections in order; hasSection', (t) => {
  const file = parseUnitFile('[A]\nX=1\n[B]\nX=9\n[A]\nX=2\nY=3\n[C]\n');
  t.deepEqual(
    sectionEntries(file, 'A').map((e) => [e.key, e.value, e.line]),
    [
      ['X', '1', 2],
      ['X', '2', 6],
      ['Y', '3', 7],
    ],
  );
  t.deepEqual(sectionEntries(file, 'C'), []);
  t.deepEqual(sectionEntries(file, 'D'), []);
  t.true(hasSection(file, 'C'));
  t.false(hasSection(file, 'D'));
  t.false(hasSection(file, 'a'), 'section names are case-sensitive');
});

test('buildUnitFile writes canonical text', (t) => {
  const file = buildUnitFile([
    { name: 'Unit', entries: [{ key: 'Description', value: 'Web server' }] },
    { name: 'X-Fleet', entries: [] },
    {
      name: 'Service',
      entries: [
        { key: 'Environment', value: '' },
        { key: 'ExecStart', value: '/bin/web "a b"' },
      ],
    },
  ]);
  t.is(
    serializeUnitFile(file),
    '[Unit]\nDescription=Web server\n\n[X-Fleet]\n\n[Service]\nEnvironment=\nExecStart=/bin/web "a b"\n',
  );
  t.deepEqual(shape(file), [
    ['Unit', 1, [['Description', 'Web server', 2]]],
    ['X-Fleet', 4, []],
    [
      'Service',
      6,
      [
        ['Environment', '', 7],
        ['ExecStart', '/bin/web "a b"', 8],
      ],
    ],
  ]);
  t.is(serializeUnitFile(buildUnitFile([])), '');
});

const buildErrors: { name: string; sections: Parameters<typeof buildUnitFile>[0]; message: string }[] = [
  {
    name: 'bad section name',
    sections: [{ name: 'A B', entries: [] }],
    message:
      'cannot build section "[A B]": section name "A B" contains a space; a name is printable characters without whitespace, quotes, backslashes or brackets',
  },
  {
    name: 'bad key',
    sections: [{ name: 'S', entries: [{ key: 'A=B', value: 'x' }] }],
    message:
      'cannot build "A=B=x" in [S]: key "A=B" contains "="; a key is made of letters, digits, "_" and "-"',
  },
  {
    name: 'value with a newline',
    sections: [{ name: 'S', entries: [{ key: 'A', value: 'x\ny' }] }],
    message:
      'cannot build "A=x\\ny" in [S]: the value contains a line break, which a unit file value cannot hold',
  },
  {
    name: 'value with blanks at the end',
    sections: [{ name: 'S', entries: [{ key: 'A', value: 'x ' }] }],
    message: 'cannot build "A=x " in [S]: the value begins or ends with blanks, which systemd trims',
  },
  {
    name: 'value ending in a backslash',
    sections: [{ name: 'S', entries: [{ key: 'A', value: 'x\\' }] }],
    message: 'cannot build "A=x\\\\" in [S]: the value ends in a backslash, which would continue the line',
  },
  {
    name: 'value with a NUL',
    sections: [{ name: 'S', entries: [{ key: 'A', value: 'x\0' }] }],
    message:
      'cannot build "A=x\\u0000" in [S]: the value contains a NUL byte; unit files are text: remove it',
  },
];

for (const { name, sections, message } of buildErrors) {
  test(`buildUnitFile rejects: ${name}`, (t) => {
    const error = t.throws(() => buildUnitFile(sections), { instanceOf: UnitFileError });
    t.is(error.message, message);
  });
}

test('unitHash is the hex sha256 of the exact UTF-8 text', (t) => {
  t.is<string, string>(unitHash(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.is<string, string>(
    unitHash('[S]\nA=é\n'),
    createHash('sha256').update(Buffer.from('[S]\nA=é\n', 'utf8')).digest('hex'),
  );
  t.not(unitHash('[S]\nA=1\n'), unitHash('[S]\r\nA=1\r\n'), 'line ends are part of the identity');
  t.not(unitHash('[S]\nA=1\n'), unitHash('[S]\nA=1'), 'the final newline is part of the identity');
  t.regex(unitHash('x'), /^[0-9a-f]{64}$/);
});
