// Every record fleetd leaves for what outlives it, and reads back after an upgrade: the files
// between the process runtime and its supervisors (config.json, status.json, fence.json) and the
// Docker runtime's `fleetts.config` label. One versioned zod schema per record; decoding never
// throws nor casts: a bad record becomes a RecordProblem naming where it was read and why.
// docs/runtime-files.md lists the records and the upgrade rule.

import { z } from 'zod';
import { ACTIVE_STATES } from '../cluster/types.js';
import { asUnitHash, asUnitName } from '../lib/ids.js';
import type { ContainerUnitConfig } from './docker-config.js';
import type { ExecStep, ProcessUnitConfig } from './runtime.js';
import {
  openRecord,
  recordProblem,
  SUPERVISOR_CONFIG_RECORD,
  SUPERVISOR_STATUS_RECORD,
  type Decoded,
  type RecordKind,
} from './record-envelope.js';
import type {
  JournalLimits,
  ProcessIdentity,
  SupervisorConfig,
  SupervisorStatus,
  TrackingConfig,
} from './supervisor-protocol.js';

/**
 * One record's formats. `readers[v]` decodes version v into today's type (an older version's schema
 * upgrades as it parses); `current` is the version this release writes. A record written before it
 * had a `v` field is read as `unversioned` (absent: such a record is refused).
 */
interface RecordFormat<T> extends RecordKind {
  readonly readers: Readonly<Record<number, z.ZodType<T>>>;
  /** The stored form of a value (default: the value itself, which carries its `v`). */
  readonly stored?: (value: T) => unknown;
}

/** Decodes one record; never throws. */
function decodeRecord<T>(format: RecordFormat<T>, text: string, where: string): Decoded<T> {
  const opened = openRecord(format, text, where);
  if (!opened.ok) return opened;
  const { json, version } = opened.value;
  const reader = format.readers[version];
  if (reader === undefined)
    return recordProblem(
      format,
      where,
      `format version ${version} is unknown (this fleetts reads 1–${format.current})`,
    );
  const parsed = reader.safeParse(json);
  if (!parsed.success) return recordProblem(format, where, describeIssues(parsed.error));
  return { ok: true, value: parsed.data };
}

/**
 * Serializes a value in the current version. A value the schema rejects, or one with a field the
 * schema would drop (the type grew a field the schema lacks), is a bug: it throws here, at the
 * writer, instead of losing the field for every reader.
 */
function encodeRecord<T>(format: RecordFormat<T>, value: T): string {
  const text = JSON.stringify(format.stored === undefined ? value : format.stored(value));
  const back = decodeRecord(format, text, 'the value to write');
  if (!back.ok) throw new Error(`bug: refusing to write an invalid ${format.record}: ${back.problem.reason}`);
  const again = JSON.stringify(format.stored === undefined ? back.value : format.stored(back.value));
  if (canonical(JSON.parse(again)) !== canonical(JSON.parse(text))) {
    throw new Error(`bug: the ${format.record} schema does not keep every field of ${text}`);
  }
  return text;
}

/** JSON with sorted keys, to compare two values regardless of key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** `unitConfig.execStart.0.argv: expected array, received string; v: …` */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length === 0 ? '(top level)' : i.path.join('.')}: ${i.message}`)
    .join('; ');
}

// Key order in each shape is the order the writers build their values in, so that a record read and
// written again keeps its bytes.

// --- shared pieces ----------------------------------------------------------------------------

const unitName = z.string().min(1).transform(asUnitName);
const unitHash = z.string().min(1).transform(asUnitHash);
const int = z.number().int();
const count = z.number().int().nonnegative();
const iso = z.string().min(1);
const restartPolicy = z.enum(['no', 'on-success', 'on-failure', 'on-abnormal', 'on-abort', 'always']);

const execStep: z.ZodType<ExecStep> = z.object({
  path: z.string(),
  argv: z.array(z.string()),
  ignoreFailure: z.boolean(),
  privileged: z.boolean(),
  expandAtLaunch: z.boolean().optional(),
});

// --- config.json: what the runtime tells a supervisor to run -------------------------------------

const processUnitConfig: z.ZodType<ProcessUnitConfig> = z.object({
  kind: z.literal('process'),
  unit: unitName,
  hash: unitHash,
  type: z.enum(['simple', 'exec', 'oneshot']),
  execStartPre: z.array(execStep),
  execStart: z.array(execStep),
  execStartPost: z.array(execStep),
  execStop: z.array(execStep),
  execStopPost: z.array(execStep),
  execReload: z.array(execStep),
  restart: restartPolicy,
  restartSecMs: count,
  startLimitBurst: count,
  startLimitIntervalMs: count,
  timeoutStartMs: count,
  timeoutStopMs: count,
  killSignal: z.string().min(1),
  killMode: z.enum(['control-group', 'process', 'mixed', 'none']),
  env: z.record(z.string(), z.string()),
  remainAfterExit: z.boolean(),
  successExitStatus: z.object({ codes: z.array(int), signals: z.array(z.string()) }),
  workingDirectory: z.object({ path: z.string().min(1), optional: z.boolean() }).exactOptional(),
  user: z.string().min(1).exactOptional(),
  group: z.string().min(1).exactOptional(),
  atMostOnce: z.boolean().exactOptional(),
  health: z
    .object({
      check: z.string().min(1),
      intervalMs: z.number().int().positive(),
      timeoutMs: z.number().int().positive(),
      retries: z.number().int().positive(),
      startPeriodMs: count,
    })
    .exactOptional(),
});

const trackingConfig: z.ZodType<TrackingConfig> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('cgroup2'), path: z.string().min(1) }),
  z.object({ kind: z.literal('cgroup1'), path: z.string().min(1) }),
  z.object({ kind: z.literal('proc-scan') }),
]);

const journalLimits: z.ZodType<JournalLimits> = z.object({
  maxBytes: z.number().int().positive(),
  files: z.number().int().positive(),
});

const supervisorConfigV1: z.ZodType<SupervisorConfig> = z.object({
  v: z.literal(1),
  unitConfig: processUnitConfig,
  tracking: trackingConfig,
  journal: journalLimits,
  fence: z.object({ path: z.string().min(1) }).exactOptional(),
});

const supervisorConfigFormat: RecordFormat<SupervisorConfig> = {
  ...SUPERVISOR_CONFIG_RECORD,
  readers: { 1: supervisorConfigV1 },
};

export function parseSupervisorConfig(text: string, where: string): Decoded<SupervisorConfig> {
  return decodeRecord(supervisorConfigFormat, text, where);
}

export function encodeSupervisorConfig(config: SupervisorConfig): string {
  return encodeRecord(supervisorConfigFormat, config);
}

// --- status.json: what a supervisor reports ---------------------------------------------------

const processIdentity: z.ZodType<ProcessIdentity> = z.object({
  pid: z.number().int().positive(),
  startTime: z.number().int().nonnegative(),
});

const supervisorStatusV1: z.ZodType<SupervisorStatus> = z.object({
  v: z.literal(1),
  unit: z.string().min(1),
  hash: z.string().min(1),
  supervisor: processIdentity,
  active: z.enum(ACTIVE_STATES),
  sub: z.string(),
  since: iso,
  restarts: count,
  done: z.boolean(),
  mainPid: z.number().int().positive().exactOptional(),
  lastExit: z
    .object({ code: int.exactOptional(), signal: z.string().exactOptional(), at: iso })
    .exactOptional(),
  reason: z.string().exactOptional(),
  health: z.enum(['starting', 'healthy', 'unhealthy']).exactOptional(),
  host: z.literal(true).exactOptional(),
  invocation: z.string().min(1).exactOptional(),
});

const supervisorStatusFormat: RecordFormat<SupervisorStatus> = {
  ...SUPERVISOR_STATUS_RECORD,
  readers: { 1: supervisorStatusV1 },
};

export function parseSupervisorStatus(text: string, where: string): Decoded<SupervisorStatus> {
  return decodeRecord(supervisorStatusFormat, text, where);
}

export function encodeSupervisorStatus(status: SupervisorStatus): string {
  return encodeRecord(supervisorStatusFormat, status);
}

// --- fence.json: the self-fencing deadline (fence.ts) -----------------------------------------

// Two fields, read five times a second by every supervisor: checked by hand in record-envelope.ts,
// which the supervisors import instead of zod.
export { encodeFence, parseFence, type FenceRecord } from './record-envelope.js';
export type { Decoded, RecordProblem } from './record-envelope.js';

// --- the fleetts.config label: the config a container was created from -------------------------

const publishPort = z.object({
  hostIp: z.string().min(1).exactOptional(),
  hostPort: z.number().int().positive().exactOptional(),
  containerPort: z.number().int().positive(),
  protocol: z.enum(['tcp', 'udp', 'sctp']),
});

const volumeMount = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('bind'),
    source: z.string().min(1),
    target: z.string().min(1),
    options: z.array(z.string()),
  }),
  z.object({
    kind: z.literal('named'),
    name: z.string().min(1),
    target: z.string().min(1),
    options: z.array(z.string()),
  }),
  z.object({ kind: z.literal('anonymous'), target: z.string().min(1) }),
]);

const containerNetwork = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('host') }),
  z.object({ kind: z.literal('none') }),
  z.object({ kind: z.literal('bridge') }),
  z.object({ kind: z.literal('named'), name: z.string().min(1) }),
]);

const containerHealth = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('disabled') }),
  z.object({
    kind: z.literal('command'),
    command: z.string(),
    intervalMs: count,
    timeoutMs: count,
    startPeriodMs: count,
    retries: count,
  }),
]);

const containerUnitConfigShape = z.object({
  kind: z.literal('container'),
  unit: unitName,
  hash: unitHash,
  image: z.string().min(1),
  pull: z.enum(['always', 'missing', 'never', 'newer']),
  name: z.string().min(1),
  cmd: z.array(z.string()).exactOptional(),
  entrypoint: z.array(z.string()).exactOptional(),
  env: z.record(z.string(), z.string()),
  network: containerNetwork,
  publishPorts: z.array(publishPort),
  volumes: z.array(volumeMount),
  user: z.string().min(1).exactOptional(),
  workingDir: z.string().min(1).exactOptional(),
  hostName: z.string().min(1).exactOptional(),
  health: containerHealth.exactOptional(),
  stopTimeoutMs: count,
  stopSignal: z.string().min(1),
  restart: restartPolicy,
  restartSecMs: count,
  startLimitBurst: count,
  startLimitIntervalMs: count,
  labels: z.record(z.string(), z.string()),
  atMostOnce: z.boolean().exactOptional(),
});

/**
 * Version 1 is the config itself plus `v: 1`. The label of a container created before the label
 * had a version (fleetts 0.1.0) is the same object without `v`, and reads as version 1.
 */
const containerConfigV1: z.ZodType<ContainerUnitConfig> = containerUnitConfigShape
  .extend({ v: z.literal(1).optional() })
  .transform(({ v: _v, ...config }): ContainerUnitConfig => config);

const containerConfigFormat: RecordFormat<ContainerUnitConfig> = {
  record: 'container config (label fleetts.config)',
  current: 1,
  readers: { 1: containerConfigV1 },
  unversioned: 1,
  stored: (config) => ({ v: 1, ...config }),
};

export function parseContainerConfigLabel(text: string, where: string): Decoded<ContainerUnitConfig> {
  return decodeRecord(containerConfigFormat, text, where);
}

export function encodeContainerConfigLabel(config: ContainerUnitConfig): string {
  return encodeRecord(containerConfigFormat, config);
}
