// The part of the records (records.ts) that needs no schema library: the envelope every record
// shares (JSON object, format version "v", refused when newer), and the few records the unit
// supervisor itself reads and writes. The supervisor is a process per unit, started in bursts (a
// failover starts a host's share of the dead host's units at once): importing zod cost it about
// 0.1 s of CPU on top of Node's own 0.15 s, half its start (docs/runtime-files.md#the-supervisors-side).
// So the supervisor imports this module only:
//  - config.json: written by the fleetd that spawns it, moments before, through the zod schema
//    (records.ts encodeSupervisorConfig). The supervisor checks the envelope and the version and
//    trusts the rest (readOwnRecord); every other reader uses the schema.
//  - status.json: written as plain JSON; fleetd, its reader, checks it against the schema.
//  - fence.json: two fields, checked here by hand (the supervisor reads it five times a second,
//    and a supervisor of an older release reads what a newer fleetd writes).

/** Why a record could not be used; `newer`: written by a newer fleetts than this one. */
export interface RecordProblem {
  /** The record's kind, as people know it: `supervisor status (status.json)`. */
  readonly record: string;
  /** Where it was read: a file path, or a container and label. */
  readonly where: string;
  readonly reason: string;
  readonly newer: boolean;
  /** One line: where, what, why. */
  readonly message: string;
}

export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: RecordProblem };

/** A record's name and versions, without its schemas. */
export interface RecordKind {
  readonly record: string;
  /** The version this release writes (and the newest it reads). */
  readonly current: number;
  /** The version of a record written before it had a `v` field (absent: such a record is refused). */
  readonly unversioned?: number;
}

export const SUPERVISOR_CONFIG_RECORD: RecordKind = { record: 'supervisor config (config.json)', current: 1 };
export const SUPERVISOR_STATUS_RECORD: RecordKind = { record: 'supervisor status (status.json)', current: 1 };
export const FENCE_RECORD: RecordKind = { record: 'fence deadline (fence.json)', current: 1 };

/** The problem `reason` with a record of `kind` read at `where`. */
export function recordProblem(
  kind: RecordKind,
  where: string,
  reason: string,
  newer = false,
): Decoded<never> {
  return {
    ok: false,
    problem: {
      record: kind.record,
      where,
      reason,
      newer,
      message: `${where}: unreadable ${kind.record}: ${reason}`,
    },
  };
}

/** The envelope of one record: its JSON object and format version, or why it has none. Never throws. */
export function openRecord(
  kind: RecordKind,
  text: string,
  where: string,
): Decoded<{ readonly json: Readonly<Record<string, unknown>>; readonly version: number }> {
  if (text.trim() === '') return recordProblem(kind, where, 'it is empty');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // A truncated record ends the JSON early; say so, with the start of what is there.
    const detail = err instanceof Error ? err.message : String(err);
    return recordProblem(
      kind,
      where,
      `not JSON, cut short or corrupt (${detail}): ${JSON.stringify(text.slice(0, 60))}${text.length > 60 ? '…' : ''}`,
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return recordProblem(kind, where, 'not a JSON object');
  const v: unknown = (json as { v?: unknown }).v;
  const version = v === undefined ? kind.unversioned : v;
  if (version === undefined) return recordProblem(kind, where, 'it has no format version ("v")');
  if (typeof version !== 'number' || !Number.isInteger(version))
    return recordProblem(kind, where, `its format version ${JSON.stringify(version)} is not a whole number`);
  if (version > kind.current) {
    return recordProblem(
      kind,
      where,
      `it is format version ${version}, written by a newer fleetts; this fleetts reads versions up to ` +
        `${kind.current}. Run the newer fleetts on this host (or stop the unit with it before downgrading)`,
      true,
    );
  }
  return { ok: true, value: { json: json as Record<string, unknown>, version } };
}

/**
 * A record this very release wrote for the reader moments ago, through its schema (the config.json
 * a fleetd writes for the supervisor it then spawns): the envelope and the version are checked,
 * the fields trusted. Any other record goes through its schema (records.ts).
 */
export function readOwnRecord<T>(kind: RecordKind, text: string, where: string): Decoded<T> {
  const opened = openRecord(kind, text, where);
  if (!opened.ok) return opened;
  if (opened.value.version !== kind.current)
    return recordProblem(
      kind,
      where,
      `format version ${opened.value.version} is not this release's (${kind.current})`,
    );
  return { ok: true, value: opened.value.json as T };
}

// --- fence.json: the self-fencing deadline (fence.ts) -----------------------------------------

export interface FenceRecord {
  readonly v: 1;
  /** Host monotonic ms after which units must stop; null: no deadline (policy keep-running). */
  readonly until: number | null;
}

export function parseFence(text: string, where: string): Decoded<FenceRecord> {
  const opened = openRecord(FENCE_RECORD, text, where);
  if (!opened.ok) return opened;
  const { json, version } = opened.value;
  if (version !== 1)
    return recordProblem(FENCE_RECORD, where, `format version ${version} is unknown (this fleetts reads 1)`);
  // Fields it does not know are dropped, as the schemas do (docs/runtime-files.md#upgrade-rule).
  const until = json['until'];
  if (until !== null && (typeof until !== 'number' || !Number.isFinite(until) || until < 0))
    return recordProblem(
      FENCE_RECORD,
      where,
      `until: expected a number ≥ 0 or null, got ${JSON.stringify(until)}`,
    );
  return { ok: true, value: { v: 1, until } };
}

export function encodeFence(fence: FenceRecord): string {
  if (fence.until !== null && !(Number.isFinite(fence.until) && fence.until >= 0))
    throw new Error(`bug: refusing to write an invalid ${FENCE_RECORD.record}: until ${fence.until}`);
  return JSON.stringify({ v: fence.v, until: fence.until });
}
