// The virtual users' database as text (users.pwd: one `name:$6$…` line per user, pam_pwdfile's
// format) and the rules for names and passwords. Pure: `fleetts ftp` reads, edits and rewrites it
// through users-store.ts.
import { UsageError } from '../lib/errors.js';

export interface FtpUser {
  readonly name: string;
  /** crypt(3) SHA-512 hash: `$6$salt$…`. */
  readonly hash: string;
}

/** Lower case, a letter first, up to 32 characters: safe as a directory name and in PAM. */
export const USER_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 128;
/** Names that mean something else to FTP clients or to the system. */
export const RESERVED_USER_NAMES: ReadonlySet<string> = new Set([
  'root',
  'ftp',
  'anonymous',
  'nobody',
  'admin',
  'administrator',
  'daemon',
  'www-data',
  'fleetts',
  'fleetts-ftp',
]);

const HASH_PATTERN = /^\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$/;

/** Throws UsageError (exit 2) naming what is wrong with `name` and what a good one looks like. */
export function checkUserName(name: string, guestUser?: string): string {
  if (name === '') throw new UsageError('FTP user name is empty: give a name like alice or site-42');
  if (name.length > 32)
    throw new UsageError(`FTP user name "${printable(name)}" is ${name.length} characters long: at most 32`);
  if (!USER_NAME_PATTERN.test(name))
    throw new UsageError(
      `FTP user name "${printable(name)}" is not allowed: use lower-case letters, digits, "-" and "_", starting with a letter (like alice or site-42)`,
    );
  if (RESERVED_USER_NAMES.has(name) || name === guestUser)
    throw new UsageError(`FTP user name "${name}" is reserved: choose another name`);
  return name;
}

/** Throws UsageError without ever quoting the password. */
export function checkPassword(password: string): string {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH)
    throw new UsageError(
      `the password is too short (${length} characters): use at least ${MIN_PASSWORD_LENGTH}`,
    );
  if (length > MAX_PASSWORD_LENGTH)
    throw new UsageError(`the password is too long (${length} characters): at most ${MAX_PASSWORD_LENGTH}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(password))
    throw new UsageError(
      'the password contains a control character (a newline, a tab…): use printable characters',
    );
  return password;
}

export function isSha512CryptHash(hash: string): boolean {
  return HASH_PATTERN.test(hash);
}

/**
 * Parses users.pwd; `file` names it in errors. Blank lines and `#` comments are allowed (and
 * dropped on rewrite); anything else malformed is refused rather than silently rewritten away.
 */
export function parseUsersFile(text: string, file: string): FtpUser[] {
  const users: FtpUser[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const hash = colon < 0 ? '' : line.slice(colon + 1);
    const where = `${file} line ${i + 1}`;
    if (!USER_NAME_PATTERN.test(name))
      throw new UsageError(
        `${where}: "${printable(name)}" is not a valid FTP user name; fix or delete the line`,
      );
    if (!isSha512CryptHash(hash))
      throw new UsageError(
        `${where}: the password of "${name}" is not a SHA-512 crypt hash ($6$…); set it again with \`fleetts ftp passwd ${name}\` after deleting the line`,
      );
    if (seen.has(name)) throw new UsageError(`${where}: "${name}" is listed twice; delete one of the lines`);
    seen.add(name);
    users.push({ name, hash });
  });
  return users;
}

export function serializeUsersFile(users: readonly FtpUser[]): string {
  return users.map((u) => `${u.name}:${u.hash}\n`).join('');
}

/** The users with `user` added (sorted by name); throws if it exists. */
export function addUser(users: readonly FtpUser[], user: FtpUser): FtpUser[] {
  if (users.some((u) => u.name === user.name))
    throw new UsageError(
      `FTP user "${user.name}" already exists; to change the password: fleetts ftp passwd ${user.name}`,
    );
  return [...users, user].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function setUserHash(users: readonly FtpUser[], name: string, hash: string): FtpUser[] {
  if (!users.some((u) => u.name === name)) throw unknownUser(name);
  return users.map((u) => (u.name === name ? { name, hash } : u));
}

export function removeUser(users: readonly FtpUser[], name: string): FtpUser[] {
  if (!users.some((u) => u.name === name)) throw unknownUser(name);
  return users.filter((u) => u.name !== name);
}

function unknownUser(name: string): UsageError {
  return new UsageError(`no FTP user "${name}"; see \`fleetts ftp list-users\``);
}

/** A user's input shown back safely: control characters escaped, long input cut. */
function printable(s: string): string {
  const shown = JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
  return shown.slice(1, -1);
}
