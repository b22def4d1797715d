// The systemd runtime's own record, one file per unit under `<stateDir>/systemd/`: which transient
// unit runs a fleetts unit, for which hash, and what its failure reasons need to know. systemd
// forgets a transient unit that ended cleanly (it is garbage-collected once inactive), so this file
// is how a restarted fleetd still knows the unit ran here and ended (docs/systemd-runtime.md).

import { z } from 'zod';
import { asUnitHash, asUnitName } from '../lib/ids.js';
import type { UnitHash, UnitName } from '../cluster/types.js';
import { openRecord, recordProblem, type Decoded, type RecordKind } from './record-envelope.js';

export const SYSTEMD_UNIT_RECORD: RecordKind = { record: 'systemd unit record', current: 1 };

export interface SystemdUnitRecord {
  readonly v: 1;
  readonly unit: UnitName;
  readonly hash: UnitHash;
  /** The transient unit's name, e.g. `fleetts-web@1.unit.service`. */
  readonly systemdUnit: string;
  readonly type: 'simple' | 'exec' | 'oneshot';
  readonly atMostOnce?: true | undefined;
  /** What a failure reason names (`User=x: no such user`, `timed out after N ms`). */
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  readonly workingDirectory?: string | undefined;
  readonly timeoutStartMs: number;
  /** Restart=: a failed unit whose policy restarts its failure was stopped by the start limit. */
  readonly restart: 'no' | 'on-success' | 'on-failure' | 'on-abnormal' | 'on-abort' | 'always';
  /** Exit codes counted as clean besides 0 (a oneshot's clean exit leaves no lastExit). */
  readonly successCodes: readonly number[];
  /** ISO time of the start; of the last stop by fleetts, if any since. */
  readonly startedAt: string;
  readonly stoppedAt?: string | undefined;
  /** A unit fleetts refused to hand to systemd: it shows failed with this reason. */
  readonly refused?: string | undefined;
}

const schema: z.ZodType<SystemdUnitRecord> = z.object({
  v: z.literal(1),
  unit: z.string().min(1).transform(asUnitName),
  hash: z.string().min(1).transform(asUnitHash),
  systemdUnit: z.string().min(1),
  type: z.enum(['simple', 'exec', 'oneshot']),
  atMostOnce: z.literal(true).optional(),
  user: z.string().optional(),
  group: z.string().optional(),
  workingDirectory: z.string().optional(),
  timeoutStartMs: z.number().nonnegative(),
  restart: z.enum(['no', 'on-success', 'on-failure', 'on-abnormal', 'on-abort', 'always']),
  successCodes: z.array(z.number().int()),
  startedAt: z.string().min(1),
  stoppedAt: z.string().min(1).optional(),
  refused: z.string().optional(),
});

/** Never throws: a bad record is a problem naming the file and why. */
export function parseSystemdUnitRecord(text: string, where: string): Decoded<SystemdUnitRecord> {
  const opened = openRecord(SYSTEMD_UNIT_RECORD, text, where);
  if (!opened.ok) return opened;
  const parsed = schema.safeParse(opened.value.json);
  if (!parsed.success) {
    const why = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.length === 0 ? '(top level)' : i.path.join('.')}: ${i.message}`)
      .join('; ');
    return recordProblem(SYSTEMD_UNIT_RECORD, where, why);
  }
  return { ok: true, value: parsed.data };
}

export function encodeSystemdUnitRecord(record: SystemdUnitRecord): string {
  const back = schema.safeParse(JSON.parse(JSON.stringify(record)));
  if (!back.success) throw new Error(`bug: refusing to write an invalid ${SYSTEMD_UNIT_RECORD.record}`);
  return JSON.stringify(record);
}
