// The lossless systemd-syntax parser (systemd.syntax(7)): text → UnitFile, the first layer of `unit/`.
// x-fleet and unit-spec read sections and entries from its model; serializeUnitFile gives back the
// exact text. Values are not unquoted here: quoting is per setting, handled by word splitting later.

import { UnitFileError } from '../lib/errors.js';
import { MAX_ASSIGNMENTS, MAX_LINE_BYTES, MAX_UNIT_FILE_BYTES } from './limits.js';
import type { UnitEntry, UnitFile, UnitSection } from './unit-file.js';

export { serializeUnitFile } from './serialize-unit-file.js';

const BOM = '\uFEFF';
/** systemd trims only these (WHITESPACE minus the line ends, which never reach a line's content). */
const TRIM = /^[ \t]+|[ \t]+$/g;
const KEY = /^[A-Za-z0-9_-]+$/;
/** Unpaired surrogates only: in a `u` regex a valid pair is one code point and does not match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

interface SectionDraft {
  readonly name: string;
  readonly line: number;
  readonly entries: UnitEntry[];
}

/** A logical line: one or more physical lines joined by backslash continuations. */
interface Logical {
  text: string;
  readonly line: number;
  lastLine: number;
}

/**
 * Parses a unit file. `file` (e.g. `web@.unit`) only prefixes error messages.
 *
 * Follows systemd: `#`/`;` comments (also inside continuations, where they are skipped), `[Name]`
 * headers, `Key=Value` with blanks around key and value trimmed, a trailing unescaped backslash
 * joining the next line (the backslash becomes a space), `Key=` kept as an entry with value ''
 * (systemd's list reset). Stricter than systemd where systemd would only warn and ignore the line:
 * malformed lines, keys or headers, assignments before any section and the limits in limits.ts
 * throw UnitFileError with the 1-based line. An empty file has zero sections.
 */
export function parseUnitFile(text: string, file?: string): UnitFile {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_UNIT_FILE_BYTES) {
    throw new UnitFileError(
      `unit file is ${size} bytes, over the limit of ${MAX_UNIT_FILE_BYTES} bytes (MAX_UNIT_FILE_BYTES: ` +
        `the file is stored whole as one etcd value); move large data into files the unit reads or downloads`,
      { file },
    );
  }

  const raw = splitLines(text);
  const sections: SectionDraft[] = [];
  let assignments = 0;
  let pending: Logical | undefined;

  const fail = (message: string, line: number): never => {
    throw new UnitFileError(message, { file, line });
  };

  const parseLogical = ({ text: joined, line, lastLine }: Logical): void => {
    if (lastLine > line)
      checkLineLength(joined, `logical line (lines ${line}–${lastLine} joined)`, line, fail);
    const l = joined.replace(TRIM, '');
    if (l === '') return;
    if (l.startsWith('[')) {
      sections.push({ name: parseHeader(l, line, fail), line, entries: [] });
      return;
    }
    const eq = l.indexOf('=');
    if (eq < 0) {
      return fail(
        `line is neither a [Section] header, a Key=Value assignment nor a comment: ${quote(l)}; write Key=Value`,
        line,
      );
    }
    const section = sections.at(-1);
    if (section === undefined) {
      return fail(
        `assignment ${quote(l)} comes before any [Section] header; put it under a section such as [Unit]`,
        line,
      );
    }
    const key = l.slice(0, eq).replace(TRIM, '');
    const keyProblem = describeKeyProblem(key);
    if (keyProblem !== undefined) return fail(`${keyProblem}: ${quote(l)}; write Key=Value`, line);
    assignments += 1;
    if (assignments > MAX_ASSIGNMENTS) {
      return fail(
        `more than ${MAX_ASSIGNMENTS} assignments (MAX_ASSIGNMENTS: a unit is validated, scheduled and ` +
          `started as one piece); split the unit or move settings into an EnvironmentFile`,
        line,
      );
    }
    section.entries.push({ key, value: l.slice(eq + 1).replace(TRIM, ''), line });
  };

  raw.forEach((rawLine, index) => {
    const line = index + 1;
    let content = rawLine.endsWith('\r\n')
      ? rawLine.slice(0, -2)
      : rawLine.endsWith('\n')
        ? rawLine.slice(0, -1)
        : rawLine;
    const bom = index === 0 && content.startsWith(BOM) ? BOM.length : 0;
    content = content.slice(bom);
    const charProblem = describeCharacterProblem(content);
    if (charProblem !== undefined) {
      fail(`${charProblem.what} at column ${charProblem.column + bom}; ${charProblem.fix}`, line);
    }
    checkLineLength(content, 'line', line, fail);

    // As systemd: a comment line is skipped before continuation is considered, so a comment inside
    // a continued value is dropped and a comment ending in a backslash continues nothing.
    if (isComment(content)) return;
    const continues = endsInUnescapedBackslash(content);
    const part = continues ? content.slice(0, -1) + ' ' : content;
    if (pending === undefined) pending = { text: part, line, lastLine: line };
    else {
      pending.text += part;
      pending.lastLine = line;
    }
    if (continues) return;
    parseLogical(pending);
    pending = undefined;
  });
  // A continuation running to the end of the file is accepted, as systemd does.
  if (pending !== undefined) parseLogical(pending);

  const result: UnitSection[] = sections;
  return { sections: result, raw };
}

/** Every entry of every `[section]` (systemd merges repeated sections), in file order. */
export function sectionEntries(file: UnitFile, section: string): UnitEntry[] {
  return file.sections.filter((s) => s.name === section).flatMap((s) => s.entries);
}

/** True when the file has at least one `[name]` header (even with no entries). */
export function hasSection(file: UnitFile, name: string): boolean {
  return file.sections.some((s) => s.name === name);
}

/** Input of buildUnitFile: sections with their assignments, values as systemd would see them. */
export interface UnitSectionInput {
  readonly name: string;
  readonly entries: readonly { readonly key: string; readonly value: string }[];
}

/**
 * A UnitFile made from scratch, with canonical text: `[Name]\nKey=Value\n` per section and a blank
 * line between sections. Throws UnitFileError when a name, key or value cannot be written so that
 * parsing gives it back unchanged (whitespace at the ends of a value, a line break, a final
 * backslash…) or when the result breaks a limit.
 */
export function buildUnitFile(sections: readonly UnitSectionInput[]): UnitFile {
  const texts = sections.map((section) => {
    const nameProblem = describeSectionNameProblem(section.name);
    if (nameProblem !== undefined)
      throw new UnitFileError(`cannot build section ${quote(`[${section.name}]`)}: ${nameProblem}`);
    const lines = section.entries.map(({ key, value }) => {
      const problem = describeKeyProblem(key) ?? describeValueProblem(value);
      if (problem !== undefined) {
        throw new UnitFileError(`cannot build ${quote(`${key}=${value}`)} in [${section.name}]: ${problem}`);
      }
      return `${key}=${value}\n`;
    });
    return `[${section.name}]\n${lines.join('')}`;
  });
  return parseUnitFile(texts.join('\n'));
}

function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl + 1;
    lines.push(text.slice(start, end));
    start = end;
  }
  return lines;
}

function isComment(content: string): boolean {
  const first = content.replace(TRIM, '')[0];
  return first === '#' || first === ';';
}

/** systemd's rule: a backslash that is not itself escaped by a preceding backslash continues the line. */
function endsInUnescapedBackslash(s: string): boolean {
  let count = 0;
  for (let i = s.length - 1; i >= 0 && s[i] === '\\'; i -= 1) count += 1;
  return count % 2 === 1;
}

function parseHeader(l: string, line: number, fail: (message: string, line: number) => never): string {
  const close = l.indexOf(']');
  if (close < 0) return fail(`section header ${quote(l)} has no closing "]"; write [Name]`, line);
  if (close < l.length - 1) {
    return fail(
      `text after the closing "]" of section header ${quote(l)}; put comments on a line of their own`,
      line,
    );
  }
  const name = l.slice(1, close);
  const problem = describeSectionNameProblem(name);
  if (problem !== undefined) fail(`${problem}: ${quote(l)}; write [Name], e.g. [Unit]`, line);
  return name;
}

function checkLineLength(
  s: string,
  what: string,
  line: number,
  fail: (message: string, line: number) => never,
): void {
  if (s.length <= MAX_LINE_BYTES / 3) return; // a UTF-16 unit is at most 3 UTF-8 bytes: skip the count
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > MAX_LINE_BYTES) {
    fail(
      `${what} is ${bytes} bytes, over the limit of ${MAX_LINE_BYTES} bytes (MAX_LINE_BYTES: a value must ` +
        `fit in one argument or environment variable); move large data into a file the unit reads`,
      line,
    );
  }
}

/** Why `name` cannot be a section name, or undefined when it can. */
function describeSectionNameProblem(name: string): string | undefined {
  if (name === '') return 'empty section name';
  for (const ch of name) {
    if (/[\s[\]\\"'\p{Cc}]/u.test(ch)) {
      return (
        `section name ${quote(name)} contains ${describeChar(ch)}; a name is printable characters ` +
        `without whitespace, quotes, backslashes or brackets`
      );
    }
  }
  const problem = describeCharacterProblem(name);
  return problem === undefined ? undefined : `section name contains ${problem.what}; ${problem.fix}`;
}

/** Why `key` cannot be a key, or undefined when it can. */
function describeKeyProblem(key: string): string | undefined {
  if (key === '') return 'no key before "="';
  if (KEY.test(key)) return undefined;
  const bad = [...key].find((ch) => !KEY.test(ch)) ?? '';
  return `key ${quote(key)} contains ${describeChar(bad)}; a key is made of letters, digits, "_" and "-"`;
}

/** Why `value` cannot be written as `Key=value` and read back unchanged, or undefined. */
function describeValueProblem(value: string): string | undefined {
  if (/[\r\n]/.test(value)) return 'the value contains a line break, which a unit file value cannot hold';
  if (value.replace(TRIM, '') !== value) return 'the value begins or ends with blanks, which systemd trims';
  if (endsInUnescapedBackslash(value)) return 'the value ends in a backslash, which would continue the line';
  const problem = describeCharacterProblem(value);
  return problem === undefined ? undefined : `the value contains ${problem.what}; ${problem.fix}`;
}

/** Characters no unit file may hold anywhere (a leading BOM is stripped before this check). */
function describeCharacterProblem(s: string): { what: string; fix: string; column: number } | undefined {
  const checks: [RegExp, string, string][] = [
    [/\0/, 'a NUL byte', 'unit files are text: remove it'],
    [LONE_SURROGATE, 'an unpaired UTF-16 surrogate (not valid Unicode)', 'save the file as UTF-8'],
    [
      /\uFEFF/,
      'a byte order mark (U+FEFF)',
      'a BOM is allowed only at the very start of the file: remove it',
    ],
    [/\r/, 'a carriage return not followed by a line feed', 'end lines with \\n or \\r\\n'],
  ];
  let found: { what: string; fix: string; column: number } | undefined;
  for (const [pattern, what, fix] of checks) {
    const index = s.search(pattern);
    if (index >= 0 && (found === undefined || index + 1 < found.column))
      found = { what, fix, column: index + 1 };
  }
  return found;
}

function describeChar(ch: string): string {
  if (ch === ' ') return 'a space';
  if (ch === '\t') return 'a tab';
  return JSON.stringify(ch);
}

/** A line quoted for a message: JSON escapes keep control characters visible; long lines are cut. */
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}
