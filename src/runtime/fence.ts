// The self-fencing deadline shared by fleetd's agent and the unit supervisors that outlive it: a
// file `<stateDir>/fence.json` saying until when (on the host's monotonic clock) units may run.
// The agent moves it forward while its lease is renewed; a supervisor stops its unit when it passes,
// so that the units of a fleetd that died (kill -9) stop before its lease can expire (docs/agent.md).

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { encodeFence, parseFence, type FenceRecord, type RecordProblem } from './record-envelope.js';

/** How a fence stop shows in the unit's status reason; the agent starts such a unit again. */
export const FENCE_REASON_PREFIX = 'fenced:';

export const SUPERVISOR_FENCE_REASON =
  `${FENCE_REASON_PREFIX} fleetd did not renew its lease in time (it is gone, or cut off from etcd); ` +
  'stopped so that the unit cannot run on two machines';

export function isFenceStop(reason: string | undefined): boolean {
  return reason?.startsWith(FENCE_REASON_PREFIX) === true;
}

/**
 * Milliseconds on CLOCK_MONOTONIC, which (unlike performance.now()) every process on the host
 * shares: the deadline must mean the same instant to fleetd and to the supervisors. Wall time
 * would not do: it jumps.
 */
export function hostMonotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/**
 * Sets the deadline to `remainingMs` from now (undefined: none). Atomic (tmp + rename) but not
 * fsynced: it is rewritten every fraction of a second, and after a host crash nothing runs anyway.
 */
export function writeFenceDeadline(path: string, remainingMs: number | undefined): void {
  writeFenceUntil(path, fenceUntil(remainingMs));
}

/** The deadline `remainingMs` from now on the host's monotonic clock (null: none). */
export function fenceUntil(remainingMs: number | undefined): number | null {
  return remainingMs === undefined ? null : hostMonotonicMs() + Math.max(0, remainingMs);
}

/** Writes a deadline already set on the host's monotonic clock (fenceUntil). */
export function writeFenceUntil(path: string, until: number | null): void {
  const body: FenceRecord = { v: 1, until };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, encodeFence(body) + '\n');
  renameSync(tmp, path);
}

/**
 * How long ago the deadline passed (> 0), or undefined when it has not, or there is none. A missing
 * file is no deadline: it only exists once an agent fences through it. An unreadable one (corrupt,
 * or from a newer fleetts) counts as missing too, as it always has, and goes to `report`.
 */
export function fenceOverdueMs(
  path: string,
  report: (problem: RecordProblem) => void = () => undefined,
): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const fence = parseFence(text, path);
  if (!fence.ok) {
    report(fence.problem);
    return undefined;
  }
  if (fence.value.until === null) return undefined;
  const overdue = hostMonotonicMs() - fence.value.until;
  return overdue > 0 ? overdue : undefined;
}
