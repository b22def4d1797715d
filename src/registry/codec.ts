// Every byte fleetts stores in etcd is defined here: one versioned zod schema per kind of value
// (`{v: 1, …}`). Decoding never throws at callers that list many keys: a corrupt value becomes a
// `DecodeProblem` naming its key, which the caller reports and skips (one bad key must not stop
// the engine).
import { z } from 'zod';
import { ACTIVE_STATES, HEALTH_STATES, LOAD_STATES } from '../cluster/types.js';
import { MAX_UNIT_FILE_BYTES } from '../unit/limits.js';
import type { TreeName } from './keys.js';
import { RegistryError } from './registry-error.js';

const metadata = z.record(z.string(), z.string());
const iso = z.string().min(1);
const hash = z.string().regex(/^[0-9a-f]{8,128}$/, 'a lowercase hex hash');

export const machineValue = z.object({
  v: z.literal(1),
  ip: z.string(),
  /** Configured metadata (from fleetd's config); dynamic metadata lives in machine-metadata/<id>. */
  metadata,
  apiAddress: z.string().optional(),
  version: z.string(),
  startedAt: iso,
  /** The host's total memory in bytes (os.totalmem() when fleetd started); optional: older fleetds write none. */
  memoryBytes: z.number().int().positive().optional(),
});

export const machineMetadataValue = z.object({ v: z.literal(1), metadata });

/**
 * `drains/<machine>` (`fleetts drain`): the machine takes no new placements and its units move off
 * one at a time. `moving` is the engine's last step: the units it released from the machine and the
 * services each was announced under then; it waits for them to run (and be announced) elsewhere
 * before it releases the next (docs/drain.md).
 */
export const drainValue = z.object({
  v: z.literal(1),
  since: iso,
  moving: z.array(z.object({ unit: z.string().min(1), services: z.array(z.string()) })).optional(),
});

export const unitValue = z.object({
  v: z.literal(1),
  hash,
  target: z.enum(['inactive', 'loaded', 'launched']),
});

export const unitFileValue = z.object({ v: z.literal(1), text: z.string() });

/** The longest placement reason stored with an assignment (longer ones are cut). */
export const MAX_PLACEMENT_REASON = 500;

export const assignmentValue = z.object({
  v: z.literal(1),
  hash,
  target: z.enum(['loaded', 'launched']),
  /**
   * Why the engine placed the unit here (for a move: why it left `movedFrom`); for the event stream
   * (docs/events.md). Optional: older engines wrote none, and older readers ignore it.
   */
  reason: z.string().max(MAX_PLACEMENT_REASON).optional(),
  /** The machine the unit was moved from, when this placement is a move. */
  movedFrom: z.string().optional(),
  /** When the engine wrote this placement (with `reason`). */
  at: iso.optional(),
});

export const statusValue = z.object({
  v: z.literal(1),
  hash,
  load: z.enum(LOAD_STATES),
  active: z.enum(ACTIVE_STATES),
  sub: z.string(),
  pid: z.number().int().optional(),
  containerId: z.string().optional(),
  since: iso,
  lastExit: z
    .object({ code: z.number().int().optional(), signal: z.string().optional(), at: iso })
    .optional(),
  reason: z.string().optional(),
  health: z.enum(HEALTH_STATES).optional(),
});

export const unschedulableValue = z.object({
  v: z.literal(1),
  hash,
  /** One line for `list-units`. */
  reason: z.string(),
  /** machine id → why that machine was rejected. */
  machines: z.record(z.string(), z.string()),
});

export const leaderValue = z.object({ v: z.literal(1), candidate: z.string(), since: iso });

export const serviceValue = z.object({
  v: z.literal(1),
  address: z.string(),
  machine: z.string().optional(),
  unit: z.string().optional(),
  since: iso,
});

/** `claims/<unit>`: which machine may run the unit (bound to that machine's membership lease). */
export const claimValue = z.object({ v: z.literal(1), machine: z.string().min(1), since: iso });

/**
 * `rollouts/<template>`: the file a template had before its last `fleetts rollout` (kept in etcd so
 * that `--rollback` works after the CLI died), and the file the rollout put in its place.
 */
export const rolloutValue = z.object({
  v: z.literal(1),
  hash,
  previousHash: hash,
  previousText: z.string(),
  startedAt: iso,
});

/**
 * `upstreams/<host>/<service>` (under the lease of the `fleetts upstream` that writes it): its last
 * successful render and reload of nginx. Rewritten on each reload; the event stream's
 * `upstream.reloaded`.
 */
export const upstreamValue = z.object({
  v: z.literal(1),
  /** Live backends in the rendered file. */
  servers: z.number().int().nonnegative(),
  /** sha256 (hex) of the file nginx was reloaded with. */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
  /** The etcd revision of `services/<service>/` the file was rendered from. */
  revision: z.number().int().nonnegative(),
  reloadedAt: iso,
});

export const codecs = {
  machine: machineValue,
  machineMetadata: machineMetadataValue,
  drain: drainValue,
  unit: unitValue,
  unitFile: unitFileValue,
  assignment: assignmentValue,
  status: statusValue,
  unschedulable: unschedulableValue,
  leader: leaderValue,
  service: serviceValue,
  claim: claimValue,
  rollout: rolloutValue,
  upstream: upstreamValue,
} as const;

export type ValueKind = keyof typeof codecs;
export type StoredValue<K extends ValueKind> = z.infer<(typeof codecs)[K]>;

/** A stored key or value that did not decode or validate; callers report it and skip the key. */
export interface DecodeProblem {
  readonly key: string;
  readonly message: string;
  /** The tree of the layout the key is under (`units`, `machines`…), when it is under one. */
  readonly tree?: TreeName;
  /** The key after its tree (under `units/`: the unit name as stored, valid or not). */
  readonly name?: string;
}

/**
 * The largest value of each kind that is decoded at all, in UTF-8 bytes: far above anything fleetts
 * writes, so that a bigger one is corrupt (or hostile) and is reported without being parsed on
 * every pass. Unit files are bounded by their text (MAX_UNIT_FILE_BYTES) after JSON escaping;
 * unschedulable records grow with the cluster (a reason per machine) and only etcd bounds them.
 */
const MAX_VALUE_BYTES: Readonly<Record<ValueKind, number | undefined>> = {
  machine: 64 * 1024,
  machineMetadata: 64 * 1024,
  drain: 64 * 1024,
  unit: 4 * 1024,
  unitFile: 6 * MAX_UNIT_FILE_BYTES + 1024,
  assignment: 4 * 1024,
  status: 64 * 1024,
  unschedulable: undefined,
  leader: 4 * 1024,
  service: 16 * 1024,
  claim: 4 * 1024,
  rollout: 6 * MAX_UNIT_FILE_BYTES + 1024,
  upstream: 4 * 1024,
};

export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: DecodeProblem };

/** Serializes a value after validating it (a bug that builds a bad value fails here, not in a reader). */
export function encodeValue<K extends ValueKind>(kind: K, value: StoredValue<K>): string {
  const parsed = codecs[kind].safeParse(value);
  if (!parsed.success) {
    throw new RegistryError(
      'invalid',
      `refusing to store an invalid ${kind} value: ${z.prettifyError(parsed.error)}`,
    );
  }
  return JSON.stringify(parsed.data);
}

export function decodeValue<K extends ValueKind>(kind: K, key: string, raw: string): Decoded<StoredValue<K>> {
  const max = MAX_VALUE_BYTES[kind];
  // raw.length ≤ bytes ≤ 3 × raw.length: count bytes only when it can matter.
  if (max !== undefined && raw.length * 3 > max) {
    const bytes = Buffer.byteLength(raw, 'utf8');
    if (bytes > max)
      return problem(key, `${kind} value of ${bytes} bytes is larger than any fleetts writes (${max})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return problem(key, `not JSON: ${JSON.stringify(raw.slice(0, 80))}`);
  }
  if (typeof json === 'object' && json !== null && 'v' in json && json.v !== 1) {
    return problem(
      key,
      `unsupported ${kind} value version ${JSON.stringify(json.v)} (this fleetts reads v1)`,
    );
  }
  const parsed = codecs[kind].safeParse(json);
  if (!parsed.success)
    return problem(key, `bad ${kind} value: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`);
  if (kind === 'unitFile') {
    const bytes = Buffer.byteLength((parsed.data as StoredValue<'unitFile'>).text, 'utf8');
    if (bytes > MAX_UNIT_FILE_BYTES)
      return problem(key, `unit file of ${bytes} bytes is over the ${MAX_UNIT_FILE_BYTES}-byte limit`);
  }
  return { ok: true, value: parsed.data as StoredValue<K> };
}

/** Whether `raw` is a value of a later version than this fleetts reads (`{"v": 2, …}`). */
export function isNewerVersion(raw: string): boolean {
  try {
    const json: unknown = JSON.parse(raw);
    return (
      typeof json === 'object' && json !== null && 'v' in json && typeof json.v === 'number' && json.v > 1
    );
  } catch {
    return false;
  }
}

/** For single-key reads, where a corrupt value is the answer's error. */
export function decodeOrThrow<K extends ValueKind>(kind: K, key: string, raw: string): StoredValue<K> {
  const decoded = decodeValue(kind, key, raw);
  if (!decoded.ok) throw corruptError(decoded.problem);
  return decoded.value;
}

export function corruptError(p: DecodeProblem): RegistryError {
  return new RegistryError('corrupt', `corrupt value at etcd key ${p.key}: ${p.message}`);
}

function problem(key: string, message: string): { ok: false; problem: DecodeProblem } {
  return { ok: false, problem: { key, message } };
}
