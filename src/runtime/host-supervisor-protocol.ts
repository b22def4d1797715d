// How fleetd's process runtime and the host supervisor (host-supervisor-main.ts, one per state dir)
// find and command each other. Both sides import this; neither loads zod here.
//
// <stateDir>/host-supervisor.pid  the running host supervisor: {"pid","startTime"} (the lock)
// <stateDir>/supervisor.sock      its commands, one JSON line each way per connection:
//                                 {"op":"hello"} | {"op":"start"|"stop"|"reload","unit":"<name>"}
//                                 → {"ok":true,"supervisor":{pid,startTime}} | {"ok":false,"error"}
// <stateDir>/host-supervisor.log  its stderr (crashes and warnings)
// Units are described by the per-unit files of supervisor-protocol.ts, as for per-unit supervisors.

import { readFileSync, renameSync, rmSync, linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from './proc.js';
import type { ProcessIdentity } from './supervisor-protocol.js';

export type HostRequest =
  { readonly op: 'hello' } | { readonly op: 'start' | 'stop' | 'reload'; readonly unit: string };

export type HostReply =
  | { readonly ok: true; readonly supervisor: ProcessIdentity }
  | { readonly ok: false; readonly error: string };

/** What a unix socket path may hold (sun_path is 108 bytes with its NUL). */
export const SOCKET_PATH_MAX = 107;

export interface HostPaths {
  readonly lock: string;
  readonly socket: string;
  readonly log: string;
}

export function hostPaths(stateDir: string): HostPaths {
  return {
    lock: join(stateDir, 'host-supervisor.pid'),
    socket: join(stateDir, 'supervisor.sock'),
    log: join(stateDir, 'host-supervisor.log'),
  };
}

/** The identity in a lock file, or undefined when it is missing or unreadable. */
export function readHostLock(path: string): ProcessIdentity | undefined {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const { pid, startTime } = (json ?? {}) as { pid?: unknown; startTime?: unknown };
  if (typeof pid !== 'number' || typeof startTime !== 'number') return undefined;
  return { pid, startTime };
}

/** True when `id` is alive and a host supervisor (not a reused pid of some other program). */
export function isHostSupervisor(id: ProcessIdentity): boolean {
  if (!isAlive(id)) return false;
  try {
    return readFileSync(`/proc/${id.pid}/cmdline`, 'latin1').includes('host-supervisor-main');
  } catch {
    return false;
  }
}

/**
 * Takes the lock for `self`: created with O_EXCL; a lock left by a dead holder is moved aside
 * (rename is atomic: of two takers of one stale lock, one moves it) and checked to be the one
 * read, else put back. Returns the live holder when another host supervisor has it.
 */
export function acquireHostLock(
  path: string,
  self: ProcessIdentity,
): { readonly kind: 'acquired' } | { readonly kind: 'held'; readonly by: ProcessIdentity } {
  const body = JSON.stringify({ pid: self.pid, startTime: self.startTime }) + '\n';
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const tmp = `${path}.${self.pid}.tmp`;
      writeFileSync(tmp, body);
      try {
        linkSync(tmp, path); // atomic, and the file is whole from its first instant
      } finally {
        rmSync(tmp, { force: true });
      }
      return { kind: 'acquired' };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue; // gone meanwhile: try again
    }
    const holder = readHostLock(path);
    if (holder !== undefined && holder.pid !== self.pid && isHostSupervisor(holder))
      return { kind: 'held', by: holder };
    const aside = `${path}.stale.${self.pid}`;
    try {
      renameSync(path, aside);
    } catch {
      continue;
    }
    let moved = '';
    try {
      moved = readFileSync(aside, 'utf8');
    } catch {
      // nothing to put back
    }
    if (moved !== text) {
      // Another taker's fresh lock: put it back (unless a third one took the place meanwhile).
      try {
        linkSync(aside, path);
      } catch {
        // taken again: that one holds it
      }
    }
    rmSync(aside, { force: true });
  }
  throw new Error(`cannot take ${path}: it keeps changing`);
}

/** Removes the lock if it is still `self`'s. */
export function releaseHostLock(path: string, self: ProcessIdentity): void {
  const holder = readHostLock(path);
  if (holder?.pid === self.pid && holder.startTime === self.startTime) rmSync(path, { force: true });
}
