// Every byte the HTTP API reads or writes, as zod schemas (STYLE.md rule 6): the server parses
// requests and checks responses with them, the CLI parses responses with them, and the OpenAPI
// document is generated from them. Names follow fleet's v1 API where it had one.
import { z } from 'zod';
import { clusterEvent } from '../registry/cluster-events.js';
import {
  ACTIVE_STATES,
  HEALTH_STATES,
  LOAD_STATES,
  MACHINE_ID_RULE,
  machineIdProblem,
} from '../cluster/types.js';
import { MAX_UNIT_FILE_BYTES } from '../unit/limits.js';
import { metadataKeyProblem } from '../lib/metadata-key.js';

export const errorBody = z
  .object({
    error: z.object({
      /** Machine-readable: not_found, exists, conflict, invalid, unit_invalid, unavailable, … */
      code: z.string(),
      /** One line for people: what happened, to what, and what to do. */
      message: z.string(),
    }),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof errorBody>;

export const targetState = z.enum(['inactive', 'loaded', 'launched']);
const placedTarget = z.enum(['loaded', 'launched']);
const unitName = z.string().min(1).max(256);
/** The one machine-id rule (lib/ids.ts), as in fleetd's --machine-id and MachineID=. */
const machineId = z.string().superRefine((id, ctx) => {
  const problem = machineIdProblem(id);
  if (problem !== undefined)
    ctx.addIssue({ code: 'custom', message: `must be ${MACHINE_ID_RULE}: ${problem}` });
});
const iso = z.string();

export const unitStatus = z
  .object({
    unit: z.string(),
    machine: z.string(),
    hash: z.string(),
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
  })
  .meta({ id: 'UnitStatus' });

/** What a host's runtime observes of a unit (a UnitStatus without the machine). */
export const observedUnit = unitStatus.omit({ machine: true }).meta({ id: 'ObservedUnit' });

export const unschedulable = z
  .object({
    /** One line: why no machine fits, or what the unit waits for. */
    reason: z.string(),
    /** machine id → why that machine was rejected. */
    machines: z.record(z.string(), z.string()),
  })
  .meta({ id: 'Unschedulable' });

/** A unit as `list-units`/`list-unit-files` show it: desired state, placement and observed state. */
export const unitSummary = z
  .object({
    name: z.string(),
    hash: z.string(),
    /** The desired (target) state the user set. */
    target: targetState,
    /** Where the cluster is: inactive (not placed), loaded (placed, not active), launched (active). */
    state: targetState,
    /** The engine's assignments of the unit, by machine id. */
    placements: z.array(z.object({ machine: z.string(), ip: z.string().optional(), target: placedTarget })),
    /** What agents report, on any machine (a unit may still be stopping on its previous host). */
    statuses: z.array(unitStatus),
    /** Set when the last scheduling pass could not place the unit. */
    unschedulable: unschedulable.optional(),
  })
  .meta({ id: 'UnitSummary' });
export type UnitSummary = z.infer<typeof unitSummary>;

export const unitDetail = unitSummary
  .extend({
    /** The submitted unit file, byte for byte. */
    text: z.string(),
  })
  .meta({ id: 'UnitDetail' });
export type UnitDetail = z.infer<typeof unitDetail>;

export const unitParams = z.object({ name: unitName });
export const machineParams = z.object({ id: machineId });

export const listUnitsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /** The `nextPageToken` of the previous page. */
  pageToken: z.string().optional(),
  /** Comma-separated unit names: only these. */
  names: z.string().optional(),
});
/**
 * An etcd key that fleetd skipped because its key or value did not decode or validate (reported,
 * never fatal: the other keys are served as usual).
 */
export const storedProblem = z
  .object({
    key: z.string(),
    /** For a key under `units/`: the name as stored, valid or not (what `fleetts destroy` takes). */
    unit: z.string().optional(),
    /** What is wrong with it. */
    reason: z.string(),
  })
  .meta({ id: 'StoredProblem' });
export type StoredProblem = z.infer<typeof storedProblem>;

export const listUnitsResponse = z.object({
  units: z.array(unitSummary),
  /** Present when more units follow: pass it as `pageToken`. */
  nextPageToken: z.string().optional(),
  /** Keys of units (and of their files, assignments and states) that were skipped, and why. */
  problems: z.array(storedProblem).optional(),
});
export type ListUnitsResponse = z.infer<typeof listUnitsResponse>;

const unitText = z
  .string()
  .max(MAX_UNIT_FILE_BYTES, `a unit file may be at most ${MAX_UNIT_FILE_BYTES} bytes`);

/**
 * One unit to submit or change. Without `text` the unit must exist, or be an instance of a
 * submitted template (it is then created with the template's text). Without `target` a new unit
 * is `inactive` and an existing one keeps its target.
 */
export const putUnitBody = z
  .object({
    text: unitText.optional(),
    target: targetState.optional(),
    /** When the unit exists with other text: destroy it and submit `text`, keeping its target. */
    replace: z.boolean().optional(),
  })
  .strict();
export type PutUnitBody = z.infer<typeof putUnitBody>;

export const putUnitsBody = z
  .object({
    units: z
      .array(z.object({ name: unitName, text: unitText.optional(), target: targetState.optional() }).strict())
      .min(1)
      .max(10_000),
    replace: z.boolean().optional(),
    /** false: every unit must exist already (stop, unload: never create a unit). Default true. */
    create: z.boolean().optional(),
  })
  .strict();
export type PutUnitsBody = z.infer<typeof putUnitsBody>;

export const putUnitResult = z
  .object({
    name: z.string(),
    hash: z.string(),
    target: targetState,
    /**
     * created: new unit; unchanged: it existed with the same text (or none was given);
     * differs: it exists with other text, which was kept (use replace); replaced: destroyed and
     * submitted again with the new text.
     */
    outcome: z.enum(['created', 'unchanged', 'differs', 'replaced']),
    /** Set when the unit was made from this template's text. */
    template: z.string().optional(),
    /**
     * The etcd revision of the unit's record after this request (its last change): whatever is
     * written later, an announcer's key for instance, has a greater revision.
     */
    revision: z.number().int().optional(),
  })
  .meta({ id: 'PutUnitResult' });
export type PutUnitResult = z.infer<typeof putUnitResult>;
export const putUnitsResponse = z.object({ units: z.array(putUnitResult) });

export const statesQuery = z.object({ unit: unitName.optional(), machine: machineId.optional() });
export const statesResponse = z.object({
  states: z.array(unitStatus),
  /** State keys that were skipped because they did not decode, and why. */
  problems: z.array(storedProblem).optional(),
});

/** A drain (`fleetts drain`) as machine listings show it. */
export const machineDrain = z
  .object({
    /** When the drain was asked for. */
    since: iso,
    /** draining: units are still on the machine or moving off it; drained: none is left. */
    state: z.enum(['draining', 'drained']),
  })
  .meta({ id: 'MachineDrain' });

export const machineEntry = z
  .object({
    id: z.string(),
    ip: z.string(),
    /** Configured metadata with dynamic metadata (set through the API) merged over it. */
    metadata: z.record(z.string(), z.string()),
    configuredMetadata: z.record(z.string(), z.string()),
    apiAddress: z.string().optional(),
    version: z.string(),
    startedAt: iso,
    /** The host's total memory in bytes, as its fleetd read it at start (absent from older fleetds). */
    memoryBytes: z.number().int().optional(),
    /** Units assigned to the machine. */
    units: z.number().int(),
    /** Set while the machine is drained (`fleetts drain`): it takes no new placements. */
    drain: machineDrain.optional(),
  })
  .meta({ id: 'Machine' });
export type MachineEntry = z.infer<typeof machineEntry>;
export const machinesResponse = z.object({
  machines: z.array(machineEntry),
  /** Machine keys that were skipped (corrupt, or bound to no lease: not live), and why. */
  problems: z.array(storedProblem).optional(),
});

/** GET/PUT /v1/machines/{id}/drain: a drain and how far it is. */
export const drainStatus = z
  .object({
    machine: z.string(),
    since: iso,
    state: z.enum(['draining', 'drained']),
    /** Units still assigned to the machine, sorted. */
    units: z.array(z.string()),
    /** The engine's current step: the units it moved off last, and what each still waits for. */
    moving: z.array(
      z.object({
        unit: z.string(),
        /** Services the unit was announced under on the machine: it must be announced again elsewhere. */
        services: z.array(z.string()),
        /** What the next step waits for (absent: this unit is done). */
        waiting: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'DrainStatus' });
export type DrainStatus = z.infer<typeof drainStatus>;

/** fleet's metadata patch: JSON Patch operations on `/<machine id>/metadata/<key>`. */
export const metadataPatch = z
  .array(
    z
      .object({
        op: z.enum(['add', 'replace', 'remove']),
        path: z
          .string()
          .regex(/^\/[^/]+\/metadata\/[^/]+$/, 'must be /<machine id>/metadata/<key>')
          .superRefine((path, ctx) => {
            const problem = metadataKeyProblem(path.slice(path.lastIndexOf('/') + 1));
            if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
          }),
        value: z.string().min(1).max(1024).optional(),
      })
      .strict(),
  )
  .min(1)
  .max(100);
export type MetadataPatch = z.infer<typeof metadataPatch>;

export const planBody = z
  .object({
    units: z
      .array(
        z
          .object({
            name: unitName,
            /** A unit file not submitted yet (or replacing the submitted one, for the plan only). */
            text: unitText.optional(),
            /** As if the unit had this target (default launched). */
            target: placedTarget.optional(),
          })
          .strict(),
      )
      .min(1)
      .max(1_000),
  })
  .strict();
export type PlanBody = z.infer<typeof planBody>;

export const planDecision = z.object({
  kind: z.enum(['assign', 'unassign', 'update', 'unschedulable']),
  machine: z.string().optional(),
  reason: z.string(),
});

export const unitPlan = z
  .object({
    unit: z.string(),
    /** Where the unit would be once the scheduler's plan is applied (empty: nowhere). */
    placedOn: z.array(z.string()),
    /** A reason that holds whatever the machine (MachineOf cycle, unknown MachineID…). */
    blocker: z.string().optional(),
    /** What the scheduler would change for this unit, with why. */
    decisions: z.array(planDecision),
    /** Every registered machine: does it fit, and why (not). */
    machines: z.array(
      z.object({
        machine: z.string(),
        fits: z.boolean(),
        reason: z.string(),
        rank: z.number().int().optional(),
      }),
    ),
  })
  .meta({ id: 'UnitPlan' });
export type UnitPlan = z.infer<typeof unitPlan>;
export const planResponse = z.object({ units: z.array(unitPlan) });

export const statusQuery = z.object({
  /** Journal lines to include (default 10). */
  lines: z.coerce.number().int().min(0).max(1_000).default(10),
});

/** A unit as seen by one host that runs it. */
export const hostStatus = z
  .object({
    machine: z.string(),
    ip: z.string().optional(),
    /** null: the host's runtime does not know the unit (not started there yet, or removed). */
    observed: observedUnit.nullable(),
    /** The last journal lines. */
    log: z.array(z.string()),
    /** Set when the host could not be asked (unreachable, no API address). */
    error: z.string().optional(),
  })
  .meta({ id: 'HostStatus' });
export type HostStatus = z.infer<typeof hostStatus>;

export const statusResponse = z.object({
  unit: unitSummary,
  /** One entry per machine the unit is placed on (or, when unplaced, still reports a status). */
  hosts: z.array(hostStatus),
});
export type StatusResponse = z.infer<typeof statusResponse>;

export const journalQuery = z.object({
  lines: z.coerce.number().int().min(0).max(100_000).default(10),
  follow: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  /** For a unit on several machines (Global=true): whose journal. Default: the first. */
  machine: machineId.optional(),
});

export const eventsQuery = z.object({
  /**
   * Resume after this event id (`R:k`) or revision (`R`): the events after it, from etcd's history.
   * Without it the stream starts with the current state (`snapshot: true` events). An EventSource's
   * `Last-Event-ID` header takes precedence.
   */
  since: z.string().max(40).optional(),
  /** `false`: send the current state as events (those after `since`, when given), then end. */
  follow: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** Only events of units matching this glob (`web@*`); a lost host matches by the units it had. */
  unit: z.string().min(1).max(512).optional(),
  /** Only events of this machine (a move: from or to it). */
  machine: z.string().min(1).max(64).optional(),
});

/** Messages of the stream that are about the stream itself, not the cluster. */
export const streamEvent = z.discriminatedUnion('kind', [
  /** The snapshot is complete; everything after it is a change. Its id resumes after the snapshot. */
  z.object({ kind: z.literal('stream.synced'), id: z.string(), revision: z.number().int() }),
  /** The client read too slowly and fleetd stopped sending (resume from the last id). */
  z.object({ kind: z.literal('stream.dropped'), reason: z.string() }),
  /** The stream ended on fleetd's side (`code: compacted`: start again without since). */
  z.object({ kind: z.literal('stream.ended'), code: z.string(), reason: z.string() }),
]);

/** One `data:` line of GET /v1/events. */
export const eventMessage = z.union([clusterEvent, streamEvent]);
export type EventMessage = z.infer<typeof eventMessage>;

export const healthResponse = z.object({
  machine: z.string(),
  registered: z.boolean(),
  version: z.string(),
});
export type HealthResponse = z.infer<typeof healthResponse>;

/** GET /v1/self/lease: this fleetd's own lease, from its local state (docs/fencing.md, the peer check). */
export const selfLeaseResponse = z.object({
  machine: z.string(),
  leaseAlive: z.boolean(),
  renewedAgoMs: z.number().int().nonnegative().nullable(),
  liveSinceMs: z.number().int().nonnegative().nullable(),
});

/** GET /v1/self/peers: how this fleetd's peer watch finds each peer (daemon/peer-watch.ts). */
export const peerViewsResponse = z.object({
  machine: z.string(),
  peers: z.array(z.object({ machine: z.string(), silentForMs: z.number().int().nonnegative() })),
});

/** A live instance of a service, as its announcer wrote it (`services/<service>/<instance>`). */
export const serviceInstance = z
  .object({
    service: z.string(),
    instance: z.string(),
    address: z.string(),
    machine: z.string().optional(),
    /** The unit the instance serves (`fleetts announce --unit`). */
    unit: z.string().optional(),
    /** Since when its check passes (the announcer's clock). */
    since: iso,
    /** The etcd revision of the key's last write. */
    revision: z.number().int(),
  })
  .meta({ id: 'ServiceInstance' });
export type ServiceInstanceEntry = z.infer<typeof serviceInstance>;
export const servicesQuery = z.object({
  /** Only this service. */
  service: z.string().optional(),
});
export const servicesResponse = z.object({
  instances: z.array(serviceInstance),
  /** The etcd revision the list was read at. */
  revision: z.number().int(),
  /** Service keys that were skipped because they did not decode, and why. */
  problems: z.array(storedProblem).optional(),
});
export type ServicesResponse = z.infer<typeof servicesResponse>;

/** What `fleetts rollout` keeps of a template: the file before its last rollout (`--rollback`). */
export const rolloutEntry = z
  .object({
    name: z.string(),
    /** The file the last rollout put in place. */
    hash: z.string(),
    previousHash: z.string(),
    previousText: z.string(),
    startedAt: iso,
  })
  .meta({ id: 'Rollout' });
export type RolloutEntry = z.infer<typeof rolloutEntry>;

export const putRolloutBody = z.object({ text: unitText }).strict();
export const putRolloutResponse = z
  .object({
    name: z.string(),
    /** The unit's file now (the given text's hash). */
    hash: z.string(),
    /** false: the unit had this text already (a rollout resumed); its record was left alone. */
    started: z.boolean(),
    rollout: rolloutEntry.optional(),
  })
  .meta({ id: 'PutRolloutResult' });
export type PutRolloutResponse = z.infer<typeof putRolloutResponse>;
