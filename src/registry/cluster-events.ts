// Pure: what happened in the cluster, derived from the changes of etcd keys (docs/events.md). One
// revision's changes (each with the value it replaced: etcd's prev_kv) become events; nothing else
// is consulted, so the events of a revision are the same whoever derives them and whenever, which
// is what lets a client resume from any revision without a gap or a duplicate.
import { z } from 'zod';
import { decodeValue, type StoredValue, type ValueKind } from './codec.js';
import type { ParsedKey, RegistryKeys } from './keys.js';
import type { KeyValue, Revision, WatchEvent } from './kv.js';

const common = {
  /**
   * Where to resume after this event (`since`): `"R:k"`, the k-th event of etcd revision R. Absent
   * on snapshot events (they describe the current state; resume from the `stream.synced` event).
   */
  id: z.string().optional(),
  /** The etcd revision of the change (for a snapshot event: when its key was last written). */
  revision: z.number().int(),
  /** ISO time: the one the key records when it has one (status, service, leader, placement), else when fleetd saw the change. */
  time: z.string(),
  /** Set on events that describe the state when the stream started rather than a change. */
  snapshot: z.literal(true).optional(),
};
const unitOn = { ...common, unit: z.string(), machine: z.string() };

export const clusterEvent = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('unit.placed'), ...unitOn, reason: z.string().optional() }),
  z.object({
    kind: z.literal('unit.moved'),
    ...unitOn,
    /** The machine it left. */
    from: z.string(),
    reason: z.string(),
  }),
  z.object({ kind: z.literal('unit.unplaced'), ...unitOn }),
  z.object({
    kind: z.literal('unit.started'),
    ...unitOn,
    pid: z.number().int().optional(),
    containerId: z.string().optional(),
  }),
  z.object({
    kind: z.literal('unit.failed'),
    ...unitOn,
    reason: z.string().optional(),
    exitCode: z.number().int().optional(),
    signal: z.string().optional(),
  }),
  z.object({ kind: z.literal('unit.stopped'), ...unitOn }),
  z.object({ kind: z.literal('host.joined'), ...common, machine: z.string(), ip: z.string() }),
  z.object({
    kind: z.literal('host.lost'),
    ...common,
    machine: z.string(),
    /** Units it reported (their statuses went with its lease). */
    units: z.array(z.string()),
  }),
  /** `fleetts drain`: the host takes no new placements; its units move off (each a unit.moved). */
  z.object({ kind: z.literal('host.drained'), ...common, machine: z.string() }),
  /** `fleetts undrain`: the host takes placements again. */
  z.object({ kind: z.literal('host.undrained'), ...common, machine: z.string() }),
  z.object({ kind: z.literal('leader.changed'), ...common, machine: z.string() }),
  z.object({
    kind: z.literal('service.announced'),
    ...common,
    service: z.string(),
    instance: z.string(),
    address: z.string(),
    machine: z.string().optional(),
    unit: z.string().optional(),
  }),
  z.object({
    kind: z.literal('service.withdrawn'),
    ...common,
    service: z.string(),
    instance: z.string(),
    address: z.string(),
    machine: z.string().optional(),
    unit: z.string().optional(),
  }),
  /** A `fleetts upstream` on `host` rendered the service's backends and reloaded nginx with them. */
  z.object({
    kind: z.literal('upstream.reloaded'),
    ...common,
    service: z.string(),
    host: z.string(),
    /** Live backends in the file nginx now runs. */
    servers: z.number().int(),
  }),
]);

export type ClusterEvent = z.infer<typeof clusterEvent>;
export type ClusterEventKind = ClusterEvent['kind'];

/** Order of kinds within one revision: hosts first (a lost host explains what follows), then units, services. */
const RANK: Readonly<Record<ClusterEventKind, number>> = {
  'host.lost': 0,
  'host.joined': 1,
  'host.drained': 2,
  'host.undrained': 3,
  'leader.changed': 4,
  'unit.unplaced': 5,
  'unit.moved': 6,
  'unit.placed': 7,
  'unit.stopped': 8,
  'unit.failed': 9,
  'unit.started': 10,
  'service.withdrawn': 11,
  'service.announced': 12,
  'upstream.reloaded': 13,
};

/** A key change decoded: what the key names, and its value before and after (undefined: absent or corrupt). */
interface Change<K extends ParsedKey['kind'] = ParsedKey['kind']> {
  readonly key: Extract<ParsedKey, { kind: K }>;
  readonly kv: KeyValue;
  readonly deleted: boolean;
  readonly prevKv: KeyValue | undefined;
}

/**
 * The events of ONE revision's changes (in etcd's order), without ids (`withIds` numbers them).
 * `observedAt` (ISO) stamps events whose keys record no time of their own.
 */
export function eventsOfRevision(
  keys: RegistryKeys,
  changes: readonly WatchEvent[],
  observedAt: string,
): ClusterEvent[] {
  const parsed: Change<ParsedKey['kind']>[] = [];
  for (const c of changes) {
    const key = keys.parse(c.kv.key);
    if (key !== undefined) parsed.push({ key, kv: c.kv, deleted: c.type === 'delete', prevKv: c.prevKv });
  }
  const of = <K extends ParsedKey['kind']>(kind: K): Change<K>[] =>
    parsed.filter((c) => c.key.kind === kind) as unknown as Change<K>[];
  const revision = changes[0]?.kv.modRevision ?? 0;
  const at = { revision, time: observedAt };
  const out: ClusterEvent[] = [];

  const lostMachines = new Set(
    of('machine')
      .filter((c) => c.deleted)
      .map((c) => c.key.machine as string),
  );
  for (const c of of('machine')) {
    if (c.deleted) {
      const units = of('status')
        .filter((s) => s.deleted && s.key.machine === c.key.machine)
        .map((s) => s.key.unit as string)
        .sort();
      out.push({ kind: 'host.lost', ...at, machine: c.key.machine, units });
    } else if (c.prevKv === undefined) {
      const v = value('machine', c.kv);
      out.push({ kind: 'host.joined', ...at, machine: c.key.machine, ip: v?.ip ?? '' });
    }
  }

  for (const c of of('drain')) {
    // An update (the engine's next step of the drain) is no new drain.
    if (c.deleted) out.push({ kind: 'host.undrained', ...at, machine: c.key.machine });
    else if (c.prevKv === undefined)
      out.push({
        kind: 'host.drained',
        ...at,
        time: value('drain', c.kv)?.since ?? observedAt,
        machine: c.key.machine,
      });
  }

  for (const c of of('leader')) {
    if (c.deleted) continue;
    const v = value('leader', c.kv);
    const was = c.prevKv === undefined ? undefined : value('leader', c.prevKv);
    if (v === undefined) continue;
    if (
      was === undefined ||
      was.candidate !== v.candidate ||
      c.prevKv?.createRevision !== c.kv.createRevision
    )
      out.push({ kind: 'leader.changed', ...at, time: v.since, machine: v.candidate });
  }

  const assignments = of('assignment');
  const movedAway = new Set<string>();
  for (const c of assignments) {
    if (c.deleted || c.prevKv !== undefined) continue; // an update in place is no placement
    const v = value('assignment', c.kv);
    const time = v?.at ?? observedAt;
    const from =
      v?.movedFrom ??
      assignments.find((d) => d.deleted && d.key.unit === c.key.unit && d.key.machine !== c.key.machine)?.key
        .machine;
    if (from !== undefined) {
      movedAway.add(`${c.key.unit}\u0000${from}`);
      out.push({
        kind: 'unit.moved',
        ...at,
        time,
        unit: c.key.unit,
        machine: c.key.machine,
        from,
        reason:
          v?.reason ?? (lostMachines.has(from) ? `machine ${from} is gone (lease expired)` : 'rescheduled'),
      });
    } else {
      out.push({
        kind: 'unit.placed',
        ...at,
        time,
        unit: c.key.unit,
        machine: c.key.machine,
        ...(v?.reason === undefined ? {} : { reason: v.reason }),
      });
    }
  }
  for (const c of assignments)
    if (c.deleted && !movedAway.has(`${c.key.unit}\u0000${c.key.machine}`))
      out.push({ kind: 'unit.unplaced', ...at, unit: c.key.unit, machine: c.key.machine });

  for (const c of of('status')) {
    const was = c.prevKv === undefined ? undefined : value('status', c.prevKv);
    const target = { unit: c.key.unit, machine: c.key.machine };
    if (c.deleted) {
      // Statuses that went with their host's lease are part of host.lost.
      if (!lostMachines.has(c.key.machine) && was !== undefined && RUNNING.has(was.active))
        out.push({ kind: 'unit.stopped', ...at, ...target });
      continue;
    }
    const v = value('status', c.kv);
    if (v === undefined) continue;
    const time = v.since;
    if (v.active === 'active') {
      const restarted = was?.active === 'active' && (was.pid !== v.pid || was.containerId !== v.containerId);
      if (was?.active !== 'active' || restarted)
        out.push({
          kind: 'unit.started',
          ...at,
          time,
          ...target,
          ...(v.pid === undefined ? {} : { pid: v.pid }),
          ...(v.containerId === undefined ? {} : { containerId: v.containerId }),
        });
    } else if (v.active === 'failed') {
      if (was?.active !== 'failed')
        out.push({
          kind: 'unit.failed',
          ...at,
          time,
          ...target,
          ...(v.reason === undefined ? {} : { reason: v.reason }),
          ...(v.lastExit?.code === undefined ? {} : { exitCode: v.lastExit.code }),
          ...(v.lastExit?.signal === undefined ? {} : { signal: v.lastExit.signal }),
        });
    } else if (v.active === 'inactive' && was !== undefined && RUNNING.has(was.active)) {
      out.push({ kind: 'unit.stopped', ...at, time, ...target });
    }
  }

  for (const c of of('service')) {
    const ids = { service: c.key.service, instance: c.key.instance };
    const was = c.prevKv === undefined ? undefined : value('service', c.prevKv);
    if (c.deleted) {
      if (was !== undefined) out.push({ kind: 'service.withdrawn', ...at, ...ids, ...serviceFields(was) });
      continue;
    }
    const v = value('service', c.kv);
    if (v !== undefined && (was === undefined || was.address !== v.address))
      out.push({ kind: 'service.announced', ...at, time: v.since, ...ids, ...serviceFields(v) });
  }

  for (const c of of('upstream')) {
    // Each reload rewrites the key; its deletion is only the sidekick's lease ending.
    if (c.deleted) continue;
    const v = value('upstream', c.kv);
    if (v !== undefined)
      out.push({ kind: 'upstream.reloaded', ...at, time: v.reloadedAt, ...upstreamFields(c.key, v) });
  }

  return stableSort(out);
}

/** The state at one revision as events (`snapshot: true`), oldest key first: what a client starts from. */
export function eventsOfState(
  keys: RegistryKeys,
  kvs: readonly KeyValue[],
  /** Stamps events whose keys record no time (placements written by an older engine). */
  observedAt: string,
): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  for (const kv of kvs) {
    const key = keys.parse(kv.key);
    if (key === undefined) continue;
    const base = { revision: kv.createRevision, snapshot: true as const };
    switch (key.kind) {
      case 'machine': {
        const v = value('machine', kv);
        if (v !== undefined)
          out.push({ kind: 'host.joined', ...base, time: v.startedAt, machine: key.machine, ip: v.ip });
        break;
      }
      case 'leader': {
        const v = value('leader', kv);
        if (v !== undefined)
          out.push({ kind: 'leader.changed', ...base, time: v.since, machine: v.candidate });
        break;
      }
      case 'drain': {
        const v = value('drain', kv);
        out.push({ kind: 'host.drained', ...base, time: v?.since ?? observedAt, machine: key.machine });
        break;
      }
      case 'assignment': {
        const v = value('assignment', kv);
        if (v === undefined) break;
        const placed = { ...base, time: v.at ?? observedAt, unit: key.unit, machine: key.machine };
        if (v.movedFrom !== undefined)
          out.push({ kind: 'unit.moved', ...placed, from: v.movedFrom, reason: v.reason ?? 'rescheduled' });
        else
          out.push({
            kind: 'unit.placed',
            ...placed,
            ...(v.reason === undefined ? {} : { reason: v.reason }),
          });
        break;
      }
      case 'status': {
        const v = value('status', kv);
        const on = {
          ...base,
          revision: kv.modRevision,
          time: v?.since ?? observedAt,
          unit: key.unit,
          machine: key.machine,
        };
        if (v?.active === 'active')
          out.push({
            kind: 'unit.started',
            ...on,
            ...(v.pid === undefined ? {} : { pid: v.pid }),
            ...(v.containerId === undefined ? {} : { containerId: v.containerId }),
          });
        else if (v?.active === 'failed')
          out.push({
            kind: 'unit.failed',
            ...on,
            ...(v.reason === undefined ? {} : { reason: v.reason }),
            ...(v.lastExit?.code === undefined ? {} : { exitCode: v.lastExit.code }),
            ...(v.lastExit?.signal === undefined ? {} : { signal: v.lastExit.signal }),
          });
        break;
      }
      case 'service': {
        const v = value('service', kv);
        if (v !== undefined)
          out.push({
            kind: 'service.announced',
            ...base,
            revision: kv.modRevision,
            time: v.since,
            service: key.service,
            instance: key.instance,
            ...serviceFields(v),
          });
        break;
      }
      case 'upstream': {
        const v = value('upstream', kv);
        if (v !== undefined)
          out.push({
            kind: 'upstream.reloaded',
            ...base,
            revision: kv.modRevision,
            time: v.reloadedAt,
            ...upstreamFields(key, v),
          });
        break;
      }
      default:
        break;
    }
  }
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.revision - b.e.revision || RANK[a.e.kind] - RANK[b.e.kind] || a.i - b.i)
    .map(({ e }) => e);
}

/** `events` of revision `revision` with their ids (`"R:k"`, k from 1 in order). */
export function withIds(events: readonly ClusterEvent[], revision: Revision, first = 1): ClusterEvent[] {
  return events.map((e, i) => ({ ...e, id: formatCursor({ revision, index: first + i }) }));
}

/** A resume point: after the first `index` events of `revision`, or after all of it. */
export interface EventCursor {
  readonly revision: Revision;
  /** Events of `revision` already seen; undefined: the whole revision was seen. */
  readonly index?: number;
}

export function formatCursor(c: EventCursor): string {
  return c.index === undefined ? String(c.revision) : `${c.revision}:${c.index}`;
}

/** `"R"` (everything up to revision R seen) or `"R:k"` (the first k events of revision R seen); undefined if malformed. */
export function parseCursor(text: string): EventCursor | undefined {
  const m = /^(\d{1,15})(?::(\d{1,9}))?$/.exec(text.trim());
  if (m === null) return undefined;
  const revision = Number(m[1]);
  if (m[2] === undefined) return { revision };
  const index = Number(m[2]);
  return index === 0 ? { revision: revision - 1 } : { revision, index };
}

/** Whether `event` concerns unit `unit` / machine `machine` (the CLI's and API's filters). */
export function eventMatches(
  event: ClusterEvent,
  filter: { readonly unit?: (name: string) => boolean; readonly machine?: string },
): boolean {
  if (filter.unit !== undefined) {
    const units =
      event.kind === 'host.lost'
        ? event.units
        : 'unit' in event && event.unit !== undefined
          ? [event.unit]
          : [];
    if (!units.some(filter.unit)) return false;
  }
  if (filter.machine !== undefined) {
    const machines = [
      'machine' in event ? event.machine : undefined,
      event.kind === 'unit.moved' ? event.from : undefined,
      // `fleetts upstream` records under its machine id (FLEETTS_MACHINE_ID) unless told otherwise.
      event.kind === 'upstream.reloaded' ? event.host : undefined,
    ];
    if (!machines.includes(filter.machine)) return false;
  }
  return true;
}

/** Active states in which a unit counts as running (its end is a stop). */
const RUNNING: ReadonlySet<string> = new Set(['active', 'activating', 'deactivating', 'reloading']);

function value<K extends ValueKind>(kind: K, kv: KeyValue): StoredValue<K> | undefined {
  const decoded = decodeValue(kind, kv.key, kv.value);
  return decoded.ok ? decoded.value : undefined;
}

function upstreamFields(
  key: Extract<ParsedKey, { kind: 'upstream' }>,
  v: StoredValue<'upstream'>,
): { service: string; host: string; servers: number } {
  return { service: key.service, host: key.host, servers: v.servers };
}

function serviceFields(v: StoredValue<'service'>): { address: string; machine?: string; unit?: string } {
  return {
    address: v.address,
    ...(v.machine === undefined ? {} : { machine: v.machine }),
    ...(v.unit === undefined ? {} : { unit: v.unit }),
  };
}

function stableSort(events: ClusterEvent[]): ClusterEvent[] {
  return events
    .map((e, i) => ({ e, i }))
    .sort((a, b) => RANK[a.e.kind] - RANK[b.e.kind] || a.i - b.i)
    .map(({ e }) => e);
}
