// Exec command lines and environment settings of [Service] (systemd.service(5), systemd.exec(5)):
// parsed once at submit; `expandExecArgs` is applied by the process runtime when it starts the unit.

import { FleetError } from '../lib/errors.js';
import { splitWordTokens, type WordToken } from './words.js';

/** A bad Exec line or environment assignment; no file:line, which callers add. */
export class ExecLineError extends FleetError {
  constructor(message: string) {
    super('unit_invalid', message);
  }
}

export interface ExecCommand {
  /** Absolute path, or a bare program name that the runtime looks up on PATH (as systemd ≥ 239). */
  readonly path: string;
  /** argv[0] onward: argv[0] is the path unless the `@` prefix gave its own. Not yet $-expanded. */
  readonly argv: readonly string[];
  /** `-`: a non-zero exit (or a missing program) is recorded but not treated as a failure. */
  readonly ignoreFailure: boolean;
  /** `@`: the second word of the line is argv[0], the first is the path. */
  readonly argv0Override: boolean;
  /**
   * `+`, `!` or `!!`: run without dropping to User=/Group=. fleetts applies no sandboxing, so what
   * distinguishes `!` (keep sandboxing, skip only the credential change) from `+` vanishes here.
   */
  readonly privileged: boolean;
  /** `:`: no `$VAR`/`${VAR}` expansion; the words are passed as written. */
  readonly noExpand: boolean;
  /** The command's text as written (one command of a `;`-separated line). */
  readonly raw: string;
}

/** Parses one command line; a `;` word (several commands) is an error here, see parseExecLines. */
export function parseExecLine(value: string): ExecCommand {
  const commands = parseExecLines(value);
  if (commands.length !== 1) {
    throw new ExecLineError(
      commands.length === 0
        ? 'empty command; give an absolute path or a program name, as in /usr/bin/env'
        : `${commands.length} commands separated by ";" but only one is allowed here; write \\; for a literal semicolon`,
    );
  }
  return commands[0] as ExecCommand;
}

/**
 * Parses a line of one or more commands separated by `;` words (as ExecStartPre= and ExecStop=
 * allow); `\;` and `";"` are literal semicolons. An empty line gives no commands.
 */
export function parseExecLines(value: string): ExecCommand[] {
  const tokens = splitWordTokens(value);
  const commands: ExecCommand[] = [];
  let current: WordToken[] = [];
  for (const token of tokens) {
    if (token.raw === ';') {
      if (current.length === 0) throw new ExecLineError(`empty command before ";" in "${value}"`);
      commands.push(commandFromTokens(value, current));
      current = [];
    } else {
      current.push(token);
    }
  }
  if (current.length > 0) commands.push(commandFromTokens(value, current));
  else if (commands.length > 0) throw new ExecLineError(`empty command after ";" in "${value}"`);
  return commands;
}

function commandFromTokens(line: string, tokens: readonly WordToken[]): ExecCommand {
  const first = tokens[0];
  const last = tokens.at(-1);
  if (first === undefined || last === undefined) throw new ExecLineError('empty command');
  const raw = line.slice(first.start, last.end);
  // Prefixes sit at the start of the first word after unquoting; each may appear once, `+` and `!`
  // exclude each other, and `!!` is `!` twice. A repeated one ends the prefixes (as in systemd).
  let ignoreFailure = false;
  let argv0Override = false;
  let noExpand = false;
  let privilege: '' | '+' | '!' | '!!' = '';
  let k = 0;
  const word = first.value;
  for (; k < word.length; k++) {
    const c = word[k];
    if (c === '-' && !ignoreFailure) ignoreFailure = true;
    else if (c === '@' && !argv0Override) argv0Override = true;
    else if (c === ':' && !noExpand) noExpand = true;
    else if (c === '+' && privilege === '') privilege = '+';
    else if (c === '!' && privilege === '') privilege = '!';
    else if (c === '!' && privilege === '!') privilege = '!!';
    else break;
  }
  const prefixes = word.slice(0, k);
  const path = word.slice(k);
  const rest = tokens.slice(1).map((t) => t.value);
  if (path === '') {
    if (prefixes === '') {
      throw new ExecLineError(`empty program name in "${raw}"; give an absolute path or a program name`);
    }
    if (rest.length === 0) {
      throw new ExecLineError(
        `"${raw}" has prefixes but no program; write the program right after them, as in ${prefixes}/usr/bin/true`,
      );
    }
    throw new ExecLineError(
      `the prefixes "${prefixes}" must be written directly before the program, as in ${prefixes}${rest[0] ?? ''}`,
    );
  }
  checkPath(path, raw);
  let argv: string[];
  if (argv0Override) {
    const [argv0, ...args] = rest;
    if (argv0 === undefined) {
      throw new ExecLineError(
        `the "@" prefix in "${raw}" needs a second word to use as argv[0], as in @${path} name-in-ps`,
      );
    }
    argv = [argv0, ...args];
  } else {
    argv = [path, ...rest];
  }
  return { path, argv, ignoreFailure, argv0Override, privileged: privilege !== '', noExpand, raw };
}

function checkPath(path: string, raw: string): void {
  const fail = (reason: string): never => {
    throw new ExecLineError(`invalid program "${path}" in "${raw}": ${reason}`);
  };
  if (path.startsWith('/')) {
    if (path.endsWith('/')) fail('it names a directory');
    const parts = path.split('/').slice(1);
    if (parts.some((p) => p === '' || p === '.' || p === '..')) {
      fail('the path is not normalized (no //, . or .. components); write the absolute path as is');
    }
    return;
  }
  if (path.includes('/')) {
    fail('use an absolute path (starting with /) or a bare program name found on PATH');
  }
  if (path === '.' || path === '..') fail('use an absolute path or a program name');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BLANKS = /[ \t\n\r]+/;

/** True for a name a `$VAR` may refer to: letters, digits and `_`, not starting with a digit. */
export function isValidEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

/**
 * The argv to exec, with systemd's substitution: a word that is exactly `$VAR` becomes the
 * variable's value split on whitespace (no word if empty or unset); `${VAR}` anywhere in a word is
 * replaced by the value as is (empty if unset); `$$` is a literal `$`; any other `$` stays as written.
 * With the `:` prefix the argv is returned unchanged.
 */
export function expandExecArgs(cmd: ExecCommand, env: Readonly<Record<string, string>>): string[] {
  if (cmd.noExpand) return [...cmd.argv];
  return expandWords(cmd.argv, env);
}

/** Pure: systemd's `$VAR` (split on blanks) and `${VAR}` (in place) expansion of argv words. */
export function expandWords(argv: readonly string[], env: Readonly<Record<string, string>>): string[] {
  const lookup = (name: string): string | undefined => (Object.hasOwn(env, name) ? env[name] : undefined);
  const out: string[] = [];
  for (const word of argv) {
    if (word.startsWith('$') && isValidEnvName(word.slice(1))) {
      const value = lookup(word.slice(1)) ?? '';
      out.push(...value.split(BLANKS).filter((w) => w !== ''));
      continue;
    }
    out.push(expandInWord(word, lookup));
  }
  return out;
}

function expandInWord(word: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let i = 0;
  while (i < word.length) {
    const c = word[i];
    if (c === '$' && word[i + 1] === '$') {
      out += '$';
      i += 2;
    } else if (c === '$' && word[i + 1] === '{') {
      const close = word.indexOf('}', i + 2);
      if (close < 0) {
        out += word.slice(i); // an unterminated ${ is kept as written
        break;
      }
      out += lookup(word.slice(i + 2, close)) ?? '';
      i = close + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * `Environment=` values: words (quoted as in systemd) of the form KEY=VALUE, later ones winning.
 * `Environment="A=1 2" B=3` → { A: '1 2', B: '3' }.
 */
export function parseEnvironmentAssignments(value: string): Record<string, string> {
  const vars = new Map<string, string>();
  for (const { value: word } of splitWordTokens(value)) {
    const eq = word.indexOf('=');
    if (eq < 0) throw new ExecLineError(`invalid environment assignment "${word}": expected KEY=VALUE`);
    const key = word.slice(0, eq);
    if (!isValidEnvName(key)) {
      throw new ExecLineError(
        `invalid environment assignment "${word}": "${key}" is not a valid variable name; use letters, digits and _, not starting with a digit`,
      );
    }
    vars.delete(key); // so that the later assignment also comes later in key order
    vars.set(key, word.slice(eq + 1));
  }
  // fromEntries defines own properties, so even a key like __proto__ is stored as data.
  return Object.fromEntries(vars);
}

type EnvFileState =
  | 'pre-key'
  | 'key'
  | 'pre-value'
  | 'value'
  | 'value-escape'
  | 'single-quote'
  | 'double-quote'
  | 'double-quote-escape'
  | 'comment'
  | 'comment-escape';

const NEWLINES = new Set(['\n', '\r']);
const SPACES = new Set([' ', '\t', '\n', '\r']);
const DOUBLE_QUOTE_ESCAPABLE = new Set(['"', '\\', '`', '$']);

/**
 * systemd's EnvironmentFile= format (parse_env_file_internal): `KEY=VALUE` lines; `#` or `;` start
 * a comment line (not a trailing comment: `A=1 # x` is `1 # x`); values may be `'…'` (literal) or
 * `"…"` (where `\" \\ \` \$` are escapes and `\` + newline continues), unquoted values are trimmed
 * and `\` escapes the next character, `\` + newline continuing the value. As in systemd, a line
 * with an invalid name (`export A=1` has the name `export A`) or no `=` is skipped: `onWarning`
 * hears about it with its 1-based line number.
 */
export function parseEnvironmentFile(
  text: string,
  onWarning: (line: number, message: string) => void = () => {},
): Record<string, string> {
  const vars = new Map<string, string>();
  let state: EnvFileState = 'pre-key';
  let key = '';
  let value = '';
  let line = 1;
  let keyLine = 1;
  // Length of `value` before a run of trailing unescaped blanks, or undefined: trims unquoted values.
  let trimAt: number | undefined;

  const push = (): void => {
    if (trimAt !== undefined) value = value.slice(0, trimAt);
    const name = key.trimEnd();
    if (isValidEnvName(name)) {
      vars.delete(name);
      vars.set(name, value);
    } else {
      onWarning(keyLine, `"${name}" is not a valid variable name; the assignment is ignored`);
    }
    key = '';
    value = '';
    trimAt = undefined;
  };

  for (const c of text) {
    const newline = NEWLINES.has(c);
    switch (state) {
      case 'pre-key':
        if (c === '#' || c === ';') state = 'comment';
        else if (!SPACES.has(c)) {
          state = 'key';
          key = c;
          keyLine = line;
        }
        break;
      case 'key':
        if (newline) {
          onWarning(keyLine, `"${key.trim()}" has no "="; the line is ignored`);
          key = '';
          state = 'pre-key';
        } else if (c === '=') {
          state = 'pre-value';
          trimAt = undefined;
        } else key += c;
        break;
      case 'pre-value':
        if (newline) {
          push();
          state = 'pre-key';
        } else if (c === "'") state = 'single-quote';
        else if (c === '"') state = 'double-quote';
        else if (c === '\\') state = 'value-escape';
        else if (!SPACES.has(c)) {
          state = 'value';
          value += c;
        }
        break;
      case 'value':
        if (newline) {
          push();
          state = 'pre-key';
        } else if (c === '\\') {
          state = 'value-escape';
          trimAt = undefined;
        } else {
          if (!SPACES.has(c)) trimAt = undefined;
          else trimAt ??= value.length;
          value += c;
        }
        break;
      case 'value-escape':
        state = 'value';
        if (!newline) value += c; // an escaped newline joins the next line
        break;
      case 'single-quote':
        if (c === "'") state = 'pre-value';
        else value += c;
        break;
      case 'double-quote':
        if (c === '"') state = 'pre-value';
        else if (c === '\\') state = 'double-quote-escape';
        else value += c;
        break;
      case 'double-quote-escape':
        state = 'double-quote';
        if (DOUBLE_QUOTE_ESCAPABLE.has(c)) value += c;
        else if (c !== '\n') value += '\\' + c;
        break;
      case 'comment':
        if (c === '\\') state = 'comment-escape';
        else if (newline) state = 'pre-key';
        break;
      case 'comment-escape':
        state = newline ? 'pre-key' : 'comment';
        break;
    }
    if (c === '\n') line++;
  }
  if (state === 'single-quote' || state === 'double-quote' || state === 'double-quote-escape') {
    onWarning(
      keyLine,
      `the quoted value of "${key.trimEnd()}" is not closed; it runs to the end of the file`,
    );
  }
  if (state === 'key') onWarning(keyLine, `"${key.trim()}" has no "="; the line is ignored`);
  else if (state !== 'pre-key' && state !== 'comment' && state !== 'comment-escape') push();
  return Object.fromEntries(vars);
}
