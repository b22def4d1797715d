// Unit names: systemd's naming rules restricted to fleetts' two types (`.unit`, and `.service` for
// fleet compatibility). Every UnitName in the system is produced by `parseUnitName` or `instantiate`.

import { UnitFileError } from '../lib/errors.js';
import { asUnitName, type UnitName } from '../lib/ids.js';

/** fleet's Conflicts=/Replaces= globs over unit names (Go path.Match semantics). */
export { globMatch } from '../lib/glob.js';

export type UnitType = 'unit' | 'service';
export const UNIT_TYPES: readonly UnitType[] = ['unit', 'service'];

/**
 * The longest accepted name, suffix included: the tightest limit a name meets on a host. A name is
 * one path component there (the process runtime's `<state-dir>/units/<name>/` and the unit's cgroup
 * directory), and file systems take at most 255 bytes (NAME_MAX); systemd's own limit is the same
 * (UNIT_NAME_MAX, 256 with the terminating NUL). Docker's container name, derived from the unit name
 * by `defaultContainerName`, is as long and has no lower limit. Names are ASCII, so bytes are
 * characters. fleetd's state dir is kept short enough for whole paths (config.ts, STATE_DIR_MAX).
 */
export const UNIT_NAME_MAX = 255;

export interface ParsedUnitName {
  readonly name: UnitName;
  /** The part before `@` (templates, instances), or the whole name without its suffix (plain). */
  readonly prefix: string;
  /** The part between `@` and the suffix, for instances only. */
  readonly instance: string | undefined;
  readonly type: UnitType;
  /** `lb.unit` is plain, `web@.unit` a template, `web@1.unit` an instance of it. */
  readonly kind: 'plain' | 'template' | 'instance';
}

const VALID_CHAR = /^[A-Za-z0-9:_.\-\\@]$/;
const ALLOWED_CHARS_HINT = 'use letters, digits and : _ . - \\ @';

// systemd's other unit types: an argument ending in one of these is a mistake, not a bare name.
const SYSTEMD_TYPES = new Set([
  'socket',
  'target',
  'device',
  'mount',
  'automount',
  'swap',
  'timer',
  'path',
  'slice',
  'scope',
]);

/** Parses and validates a full unit name; throws UnitFileError saying which rule it breaks. */
export function parseUnitName(s: string): ParsedUnitName {
  const fail = (reason: string): never => {
    throw new UnitFileError(`invalid unit name ${quote(s)}: ${reason}`);
  };
  if (s === '') fail('it is empty; use a name such as web.unit or web@1.unit');
  const length = Array.from(s).length;
  if (length > UNIT_NAME_MAX)
    fail(
      `it is ${length} characters long; the limit is ${UNIT_NAME_MAX} (the longest file name a host takes: the unit's directory on its host is named after it)`,
    );
  for (const ch of s) {
    if (!VALID_CHAR.test(ch)) fail(`character ${quote(ch)} is not allowed; ${ALLOWED_CHARS_HINT}`);
  }
  if (s.startsWith('@')) fail('it must not start with "@"; put the name before it, as in web@1.unit');
  if (s.startsWith('.')) fail('it must not start with "."');

  const dot = s.lastIndexOf('.');
  const suffix = s.slice(dot + 1);
  if (dot < 0) fail(`it has no type suffix; use ${s}.unit or ${s}.service`);
  if (suffix === '') fail('it ends with "."; use a type suffix, .unit or .service');
  if (!isUnitType(suffix)) fail(`type ".${suffix}" is not supported; use .unit or .service`);
  const type = suffix as UnitType;
  const stem = s.slice(0, dot);

  const at = stem.indexOf('@');
  if (s.indexOf('@') !== s.lastIndexOf('@')) fail('it contains more than one "@"');
  if (at < 0) {
    return { name: asUnitName(s), prefix: stem, instance: undefined, type, kind: 'plain' };
  }
  const prefix = stem.slice(0, at);
  const instance = stem.slice(at + 1);
  if (instance === '') return { name: asUnitName(s), prefix, instance: undefined, type, kind: 'template' };
  return { name: asUnitName(s), prefix, instance, type, kind: 'instance' };
}

export function isValidUnitName(s: string): boolean {
  try {
    parseUnitName(s);
    return true;
  } catch (error) {
    if (error instanceof UnitFileError) return false;
    throw error;
  }
}

/**
 * The template an instance was made from (`web@1.unit` → `web@.unit`); undefined for plain units
 * and for templates themselves, which are not instances of anything.
 */
export function templateOf(name: ParsedUnitName): UnitName | undefined {
  if (name.kind !== 'instance') return undefined;
  return asUnitName(`${name.prefix}@.${name.type}`);
}

/** The instance `instance` of a template (`web@.unit`, `1` → `web@1.unit`), validated in full. */
export function instantiate(template: ParsedUnitName, instance: string): ParsedUnitName {
  if (template.kind !== 'template') {
    throw new UnitFileError(
      `cannot instantiate ${quote(template.name)}: it is not a template; a template has an empty instance, as in ${template.prefix}@.${template.type}`,
    );
  }
  if (instance === '') {
    throw new UnitFileError(`cannot instantiate ${quote(template.name)} with an empty instance`);
  }
  if (instance.includes('@')) {
    throw new UnitFileError(
      `cannot instantiate ${quote(template.name)} with instance ${quote(instance)}: it must not contain "@"`,
    );
  }
  return parseUnitName(`${template.prefix}@${instance}.${template.type}`);
}

/**
 * What fleetctl did with a unit argument: a path becomes its basename (`./units/web@.unit` →
 * `web@.unit`) and a bare name gets `.unit` (`web@1` → `web@1.unit`). The result is validated, so
 * `db.timer` is an error naming the accepted types rather than a unit called `db.timer.unit`.
 */
export function mangleUnitName(arg: string): UnitName {
  const base = arg.slice(arg.lastIndexOf('/') + 1);
  if (base === '' && arg !== '') {
    throw new UnitFileError(`invalid unit name ${quote(arg)}: it names a directory, not a unit file`);
  }
  const dot = base.lastIndexOf('.');
  const suffix = dot < 0 ? undefined : base.slice(dot + 1);
  const typed = suffix !== undefined && (isUnitType(suffix) || SYSTEMD_TYPES.has(suffix));
  return parseUnitName(typed || base === '' ? base : `${base}.unit`).name;
}

function isUnitType(s: string): s is UnitType {
  return (UNIT_TYPES as readonly string[]).includes(s);
}

/** Quotes a name for a message, making control characters visible. */
function quote(s: string): string {
  const visible = Array.from(s, (c) => {
    const code = c.codePointAt(0) ?? 0;
    return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  }).join('');
  return `"${visible}"`;
}
