// Losslessness of the unit-file model: serialize∘parse is the identity on every text that parses
// (tricky fixed texts, generated texts, the shipped units/ and examples/), and parse∘build gives
// back the generated model.

import test from 'ava';
import fc from 'fast-check';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnitFileError } from '../../src/lib/errors.js';
import { buildUnitFile, parseUnitFile, serializeUnitFile } from '../../src/unit/parse-unit-file.js';
import type { UnitFile } from '../../src/unit/unit-file.js';

const tricky: [string, string][] = [
  ['empty', ''],
  ['only a newline', '\n'],
  ['only a BOM', '\uFEFF'],
  ['CRLF throughout', '[Unit]\r\nDescription=x\r\n\r\n[Service]\r\nExecStart=/bin/true\r\n'],
  ['no final newline', '[Unit]\nDescription=x'],
  ['no final newline after CRLF lines', '[Unit]\r\nDescription=x'],
  ['trailing spaces and tabs', '[Unit]  \nDescription=x \t \n  \n\t\n'],
  [
    'continuation with comments',
    '[Service]\nExecStart=/bin/sh -c \\\n  # why\n  ; and why not\n  "echo hi"\r\n',
  ],
  ['continuation to EOF', '[Service]\nExecStart=/bin/a \\'],
  ['continuation to EOF with a newline', '[Service]\nExecStart=/bin/a \\\r\n'],
  ['blank lines around', '\n\n# head\n\n[A]\n\n\nX=1\n\n\n'],
  ['leading BOM with CRLF', '\uFEFF[Unit]\r\nDescription=é 中 😀\r\n'],
  ['mixed line ends', '[A]\r\nX=1\nY=2\r\n\n\r\n'],
];

for (const [name, text] of tricky) {
  test(`serialize∘parse is the identity: ${name}`, (t) => {
    t.is(serializeUnitFile(parseUnitFile(text)), text);
  });
}

// --- generators -------------------------------------------------------------------------------------

/** Characters for free text: blanks, backslashes, syntax characters, non-ASCII and a surrogate pair. */
const textChar = fc.constantFrom(
  'a',
  'Z',
  '0',
  ' ',
  ' ',
  '\t',
  '\\',
  '=',
  '#',
  ';',
  '[',
  ']',
  '"',
  "'",
  '%',
  'é',
  '中',
  '😀',
  '\f',
);
const freeText = (maxLength: number) => fc.array(textChar, { maxLength }).map((cs) => cs.join(''));
const blanks = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 3 }).map((cs) => cs.join(''));

const sectionName = fc
  .array(fc.constantFrom('A', 'z', '9', '-', '_', '.', ':', '@', '%', '=', '#', ';', 'é', '中', '😀'), {
    minLength: 1,
    maxLength: 10,
  })
  .map((cs) => cs.join(''));
const key = fc.stringMatching(/^[A-Za-z0-9_-]{1,10}$/);
/** A value that buildUnitFile can write: no blanks at its ends and no final unescaped backslash. */
const value = freeText(20).map((s) => {
  const trimmed = s.replace(/^[ \t]+|[ \t]+$/g, '');
  return /(^|[^\\])(\\\\)*\\$/.test(trimmed) ? `${trimmed}x` : trimmed;
});

const model = fc.array(
  fc.record({ name: sectionName, entries: fc.array(fc.record({ key, value }), { maxLength: 6 }) }),
  { maxLength: 5 },
);

test('parse(serialize(build(model))) gives back the model', (t) => {
  fc.assert(
    fc.property(model, (sections) => {
      const text = serializeUnitFile(buildUnitFile(sections));
      const parsed = parseUnitFile(text);
      const back = parsed.sections.map((s) => ({
        name: s.name,
        entries: s.entries.map((e) => ({ key: e.key, value: e.value })),
      }));
      t.deepEqual(back, sections);
      t.is(serializeUnitFile(parsed), text);
    }),
    { numRuns: 300 },
  );
});

/** One physical line without its terminator. */
const line = fc.oneof(
  { weight: 2, arbitrary: blanks },
  { weight: 2, arbitrary: fc.tuple(blanks, fc.constantFrom('#', ';'), freeText(12)).map((p) => p.join('')) },
  { weight: 2, arbitrary: fc.tuple(blanks, sectionName, blanks).map(([a, n, b]) => `${a}[${n}]${b}`) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(blanks, key, blanks, blanks, freeText(16), fc.constantFrom('', '', ' \\', '\\'))
      .map(([a, k, b, c, v, cont]) => `${a}${k}${b}=${c}${v}${cont}`),
  },
  // Free text: only valid inside a continuation (or when it happens to hold a `=`); the rest is skipped.
  { weight: 1, arbitrary: freeText(12) },
);
const eol = fc.constantFrom('\n', '\r\n');

const text = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.tuple(fc.oneof(blanks, fc.constant('# prelude')), eol), { maxLength: 2 }),
    sectionName,
    eol,
    fc.array(fc.tuple(line, eol), { maxLength: 25 }),
    // A last line without a terminator, or none (the text then ends in a line end).
    fc.option(line, { nil: undefined }),
  )
  .map(
    ([bom, prelude, name, headEol, body, last]) =>
      (bom ? '\uFEFF' : '') +
      prelude.map(([l, e]) => l + e).join('') +
      `[${name}]${headEol}` +
      body.map(([l, e]) => l + e).join('') +
      (last ?? ''),
  );

function parseOrUndefined(s: string): UnitFile | undefined {
  try {
    return parseUnitFile(s);
  } catch (error) {
    if (error instanceof UnitFileError) return undefined;
    throw error;
  }
}

/**
 * True when physical line `line` starts with `prefix` after blanks (and a BOM), or is itself the
 * start of a continuation (ends in a backslash), where what follows may hold the prefix.
 */
function startsHere(file: UnitFile, line: number, prefix: string): boolean {
  const content = (file.raw[line - 1] ?? '').replace(/\r?\n$/, '').replace(/^\uFEFF?[ \t]*/, '');
  return content.startsWith(prefix) || content.endsWith('\\');
}

test('serialize(parse(text)) === text for generated texts that parse', (t) => {
  let parsedCount = 0;
  fc.assert(
    fc.property(text, (s) => {
      const file = parseOrUndefined(s);
      fc.pre(file !== undefined);
      parsedCount += 1;
      t.is(serializeUnitFile(file), s);
      for (const section of file.sections) {
        t.true(startsHere(file, section.line, `[${section.name}]`), `header line of [${section.name}]`);
        for (const entry of section.entries) {
          t.regex(entry.key, /^[A-Za-z0-9_-]+$/);
          t.is(entry.value, entry.value.replace(/^[ \t]+|[ \t]+$/g, ''), 'value is trimmed');
          t.true(startsHere(file, entry.line, entry.key), `line ${entry.line} starts ${entry.key}=`);
        }
      }
    }),
    { numRuns: 500 },
  );
  t.true(parsedCount >= 250, `only ${parsedCount} of 500 generated texts parsed`);
});

test('continuation ended by a blank CRLF line, then a last line without a newline', (t) => {
  const s = '[S]\r\nA=x \\\r\n\r\n ';
  const file = parseUnitFile(s);
  t.is(serializeUnitFile(file), s);
  t.deepEqual(file.sections[0]?.entries, [{ key: 'A', value: 'x', line: 2 }]);
});

// --- shipped unit files ---------------------------------------------------------------------------------

const root = fileURLToPath(new URL('../../', import.meta.url));

function unitFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && (d.name.endsWith('.unit') || d.name.endsWith('.service')))
    .map((d) => join(d.parentPath, d.name))
    .sort();
}

for (const dir of ['units', 'examples']) {
  const files = unitFilesUnder(join(root, dir));
  test(`${dir}/ holds unit files to round-trip`, (t) => {
    t.true(files.length > 0, `no .unit or .service files found under ${dir}/`);
  });
  for (const path of files) {
    const name = relative(root, path);
    test(`shipped unit file round-trips byte for byte: ${name}`, (t) => {
      const bytes = readFileSync(path);
      const serialized = serializeUnitFile(parseUnitFile(bytes.toString('utf8'), name));
      t.true(Buffer.from(serialized, 'utf8').equals(bytes), `${name} changed in the round trip`);
    });
  }
}
