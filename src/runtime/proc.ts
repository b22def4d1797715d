// Reading Linux /proc for the process runtime: who a pid is (start time, to survive pid reuse),
// its parent, group and session, and its environment. Small on purpose: the supervisor imports it.

import { readFileSync, readdirSync } from 'node:fs';
import type { ProcessIdentity } from './supervisor-protocol.js';

export interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z (zombie), T, … */
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  readonly session: number;
  readonly startTime: number;
}

/** /proc/<pid>/stat, or undefined when the process does not exist (any more). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: the fields that follow start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const num = (i: number): number => Number(rest[i] ?? NaN);
  return {
    pid,
    state: rest[0] ?? '?',
    ppid: num(1),
    pgrp: num(2),
    session: num(3),
    startTime: num(19),
  };
}

/** This pid as an identity that a later check can tell from a reuse of the same pid. */
export function identify(pid: number): ProcessIdentity | undefined {
  const st = readProcStat(pid);
  return st === undefined ? undefined : { pid, startTime: st.startTime };
}

/** True when the process is the same one (same start time) and not a zombie. */
export function isAlive(id: ProcessIdentity): boolean {
  const st = readProcStat(id.pid);
  return st !== undefined && st.startTime === id.startTime && st.state !== 'Z' && st.state !== 'X';
}

export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (/^[0-9]+$/.test(name)) pids.push(Number(name));
  }
  return pids;
}

/** Whether the process's environment holds `entry` exactly (`NAME=value`). */
export function environHas(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(entry);
  } catch {
    return false;
  }
}
