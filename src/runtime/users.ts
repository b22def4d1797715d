// User= and Group= resolution for the supervisor: names or numbers, from /etc/passwd and /etc/group
// (no NSS: LDAP users must be given by number). Pure parsing plus one read of each file.

import { readFileSync } from 'node:fs';

export interface Credentials {
  readonly uid: number;
  readonly gid: number;
  readonly home?: string;
}

export type CredentialsResult =
  | { readonly kind: 'ok'; readonly credentials: Credentials }
  | { readonly kind: 'error'; readonly reason: string };

/** Resolves User=/Group= against the given passwd/group texts. */
export function resolveCredentials(
  user: string | undefined,
  group: string | undefined,
  passwd: string,
  groups: string,
): CredentialsResult {
  const pw = parseColonFile(passwd);
  const gr = parseColonFile(groups);
  let uid = process.getuid?.() ?? 0;
  let gid = process.getgid?.() ?? 0;
  let home: string | undefined;
  if (user !== undefined) {
    const entry = /^[0-9]+$/.test(user) ? pw.find((f) => f[2] === user) : pw.find((f) => f[0] === user);
    if (entry === undefined && !/^[0-9]+$/.test(user)) {
      return { kind: 'error', reason: `User=${user}: no such user in /etc/passwd` };
    }
    uid = Number(entry?.[2] ?? user);
    gid = Number(entry?.[3] ?? uid);
    home = entry?.[5];
  }
  if (group !== undefined) {
    if (/^[0-9]+$/.test(group)) gid = Number(group);
    else {
      const entry = gr.find((f) => f[0] === group);
      if (entry === undefined)
        return { kind: 'error', reason: `Group=${group}: no such group in /etc/group` };
      gid = Number(entry[2]);
    }
  }
  return { kind: 'ok', credentials: home === undefined ? { uid, gid } : { uid, gid, home } };
}

/** Reads /etc/passwd and /etc/group and resolves. */
export function lookupCredentials(user: string | undefined, group: string | undefined): CredentialsResult {
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  return resolveCredentials(user, group, read('/etc/passwd'), read('/etc/group'));
}

function parseColonFile(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}
