// The registry: the interfaces, one per concern, through which the engine, agents, API and discovery
// read and write the cluster's only shared state (etcd). Implementations: `createEtcdRegistry` (real
// etcd) and `createMemoryRegistry` (etcd's semantics in memory, on a fake clock, for simulations).
import type {
  Assignment,
  Machine,
  MachineId,
  Metadata,
  TargetState,
  Unit,
  UnitHash,
  UnitName,
  UnitStatus,
} from '../cluster/types.js';
import type { ClusterEvent, EventCursor } from './cluster-events.js';
import type { DecodeProblem } from './codec.js';
import type { EtcdHealthView } from './etcd-health.js';
import type { LeaseId, Revision } from './kv.js';
import type { Leadership, LeadershipOptions, Fence } from './leadership.js';

export type { Revision, LeaseId } from './kv.js';
export type { DecodeProblem } from './codec.js';

/** A unit as stored, with the revision of its last change (for optimistic plan checks). */
export interface UnitRecord extends Unit {
  readonly modRevision: Revision;
}

/** A machine as registered, with the revision its current membership key was created at. */
export interface MachineRecord extends Machine {
  /** Changes when the machine re-registers (a new fleetd process, a new lease). */
  readonly createRevision: Revision;
  /** Metadata from fleetd's configuration only (`metadata` is this with dynamic metadata merged over). */
  readonly configuredMetadata: Metadata;
}

/** Why the last scheduling pass could not place a unit: a summary and each machine's reason. */
export interface Unschedulable {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly reason: string;
  readonly machines: Readonly<Record<string, string>>;
}

/** A unit a drain step released from its machine, and the services it was announced under then. */
export interface DrainMove {
  readonly unit: UnitName;
  readonly services: readonly string[];
}

/**
 * `drains/<machine>` (`fleetts drain`): the machine takes no new placements and its units move off
 * it one at a time. Persistent: it outlives the machine's lease, fleetd restarts and engine terms,
 * until `undrainMachine`.
 */
export interface DrainRecord {
  readonly machine: MachineId;
  /** ISO-8601 time the drain was asked for. */
  readonly since: string;
  /** The engine's last step: the units it released; it waits for them before the next step. */
  readonly moving: readonly DrainMove[];
  readonly modRevision: Revision;
}

/** One live backend of a service, announced under its announcer's lease. */
export interface ServiceInstance {
  readonly service: string;
  readonly instance: string;
  /** `host:port` clients connect to. */
  readonly address: string;
  readonly machine?: MachineId;
  readonly unit?: UnitName;
  /** ISO-8601 time the announcer last (re)wrote the key, i.e. since when it is healthy. */
  readonly since: string;
}

/** A live service instance with the etcd revision of its key's last write. */
export interface AnnouncedInstance extends ServiceInstance {
  /** Greater than the revision of a change made before the announcer (re)wrote the key. */
  readonly modRevision: Revision;
}

/** What `fleetts rollout` keeps of a template's previous file (`rollouts/<template>`). */
export interface RolloutRecord {
  readonly unit: UnitName;
  /** The file the rollout put in place. */
  readonly hash: UnitHash;
  readonly previousHash: UnitHash;
  readonly previousText: string;
  readonly startedAt: string;
}

/**
 * The whole cluster read at ONE etcd revision. Collections are sorted by key: machines and units
 * by id/name, assignments by machine then unit, statuses by unit then machine.
 */
export interface ClusterSnapshot {
  readonly revision: Revision;
  readonly machines: ReadonlyMap<MachineId, MachineRecord>;
  readonly units: ReadonlyMap<UnitName, UnitRecord>;
  readonly assignments: readonly Assignment[];
  readonly statuses: readonly UnitStatus[];
  readonly unschedulable: ReadonlyMap<UnitName, Unschedulable>;
  /** Drained machines (live or not), by machine id. */
  readonly drains: ReadonlyMap<MachineId, DrainRecord>;
  /** Every announced service instance when `SnapshotOptions.services` asked for them; else empty. */
  readonly services: readonly ServiceInstance[];
  /** Texts of the unit files the units reference (see SnapshotOptions), by hash. */
  readonly unitFiles: ReadonlyMap<UnitHash, string>;
  /** Keys whose values did not decode; they are left out of the collections above. */
  readonly problems: readonly DecodeProblem[];
}

/** How much the registry holds: every key under units/ (corrupt ones too) and unit-files/. */
export interface StorageUsage {
  readonly units: number;
  readonly unitFileBytes: number;
  /** Hashes of the stored unit files: a text with one of these hashes costs nothing more. */
  readonly unitFileHashes: ReadonlySet<UnitHash>;
}

export interface SnapshotOptions {
  /** `referenced` (default): the texts of every unit's file; `none`: no texts. */
  readonly unitFiles?: 'referenced' | 'none';
  /** Hashes the caller already holds (unit files are immutable): their texts are not read. */
  readonly knownUnitFiles?: ReadonlySet<UnitHash>;
  /** Also read `services/` (the engine, to see a unit a drain moved announced again). Default false. */
  readonly services?: boolean;
}

/** The state of a key range as a whole, handed to level-triggered watchers on every change. */
export interface WatchedSet<T> {
  readonly revision: Revision;
  readonly items: readonly T[];
  readonly problems: readonly DecodeProblem[];
}

export interface Subscription {
  close(): void;
}

/** What an engine can be woken by (each is a tree of the layout). */
export type WakeTopic =
  'machines' | 'units' | 'statuses' | 'assignments' | 'unschedulable' | 'drains' | 'services';

/**
 * Why a watch woke its owner. The engine must NOT decide from these (level-triggered: it re-reads
 * a snapshot); they exist for logs and for skipping needless passes.
 */
export type WakeReason =
  | { readonly kind: 'machine_joined'; readonly machine: MachineId }
  | { readonly kind: 'machine_left'; readonly machine: MachineId }
  | { readonly kind: 'machine_changed'; readonly machine: MachineId }
  | { readonly kind: 'unit_changed'; readonly unit: UnitName }
  | { readonly kind: 'status_changed'; readonly unit: UnitName; readonly machine: MachineId }
  | { readonly kind: 'assignment_changed'; readonly unit: UnitName; readonly machine: MachineId }
  | { readonly kind: 'unschedulable_changed'; readonly unit: UnitName }
  | { readonly kind: 'drain_changed'; readonly machine: MachineId }
  | { readonly kind: 'service_changed'; readonly service: string; readonly instance: string }
  /** A key that is not one of the layout changed (the pass reports it among its problems). */
  | { readonly kind: 'invalid_key'; readonly key: string }
  /** The watch was re-established after an error (anything may have changed). */
  | { readonly kind: 'resync' };

export interface Wake {
  readonly revision: Revision;
  readonly reasons: readonly WakeReason[];
}

export interface LeaseOptions {
  /** Lease TTL; rounded up to whole seconds (etcd's unit), at least 2 s (etcd's usual minimum). */
  readonly ttlMs?: number;
  /** How often a keepalive is sent. */
  readonly keepaliveMs?: number;
}

export interface RegisterOptions extends LeaseOptions {
  readonly resumeLeaseId?: LeaseId;
}

/** Why a lease ended. `unrenewed`: no keepalive was acknowledged for a whole TTL. */
export type LeaseLoss =
  | { readonly kind: 'revoked' }
  /** Keepalives stopped without revoking (registry closed, or `release()`): it expires by itself. */
  | { readonly kind: 'released' }
  | { readonly kind: 'expired' }
  | { readonly kind: 'unrenewed'; readonly sinceMs: number }
  | { readonly kind: 'key_deleted'; readonly key: string };

/** A lease kept alive in the background until closed or lost. */
export interface LeaseHandle {
  readonly leaseId: LeaseId;
  readonly ttlMs: number;
  /**
   * Monotonic time (the registry's Clock) at which the last acknowledged keepalive (or the grant)
   * was SENT. etcd cannot expire the lease before `renewedAt() + ttlMs`, so a holder that must
   * stop work before its keys vanish self-fences on a deadline shorter than that.
   */
  renewedAt(): number;
  /** When etcd last became reachable for it: registered, or renewed again after an outage (kept-lease.ts). */
  resumedAt(): number;
  /** Aborted (reason: LeaseLoss) when the lease is lost or closed. */
  readonly signal: AbortSignal;
  /** Calls `fn` once when the lease is lost (not on close); returns an unsubscribe function. */
  onLost(fn: (loss: LeaseLoss) => void): () => void;
  /** Calls `fn` after each acknowledged keepalive; returns an unsubscribe function. */
  onRenewed(fn: () => void): () => void;
  /** Stops keepalives and revokes the lease (its keys are deleted at once). Idempotent. */
  close(): Promise<void>;
  /** Stops keepalives without revoking: the keys stay until the lease expires (or is resumed). */
  release(): void;
}

/** What a fleetd registers about itself; `metadata` is its configured metadata. */
export type MachineRegistration = Omit<Machine, 'metadata'> & { readonly metadata: Metadata };

/** A machine's membership: `machines/<id>` bound to a kept lease. */
export interface Membership extends LeaseHandle {
  readonly machineId: MachineId;
  /** The revision the membership key was created at (changes on every registration). */
  readonly createRevision: Revision;
}

/** One change of a plan, applied by `writeAssignments`. */
export type AssignmentChange =
  | {
      readonly kind: 'assign';
      readonly assignment: Assignment;
      /** Why it is placed there (a move: why it left `movedFrom`); stored for the event stream. */
      readonly reason?: string;
      readonly movedFrom?: MachineId;
    }
  | { readonly kind: 'unassign'; readonly unit: UnitName; readonly machine: MachineId }
  | { readonly kind: 'mark_unschedulable'; readonly record: Unschedulable }
  | { readonly kind: 'clear_unschedulable'; readonly unit: UnitName }
  /**
   * Records a drain's step (`moving`) on its record, only while the record is still the one of
   * the plan's snapshot (`drain.modRevision`): an undrain meanwhile makes the plan a `conflict`.
   * Written before every other change of the plan, so a unit is never moved off a drained machine
   * without the record naming it.
   */
  | { readonly kind: 'drain_moving'; readonly drain: DrainRecord; readonly moving: readonly DrainMove[] };

/**
 * What the plan was computed from: each change to unit U is applied only if U's key still has the
 * snapshot's mod revision (or is still absent when U is not in `units`). A ClusterSnapshot is one.
 */
export interface PlanBasis {
  readonly units: ReadonlyMap<UnitName, { readonly modRevision: Revision }>;
  /**
   * The machines the plan saw alive. When given, an assignment to machine M lands only while M's
   * membership is the one seen (same create revision), and an unassignment from a machine the plan
   * saw gone only while it is still gone (no record, or one bound to no lease, which is not live):
   * a plan made before a machine came back (or went away)
   * fails with `conflict` instead of moving units off a live machine.
   */
  readonly machines?: ReadonlyMap<MachineId, { readonly createRevision: Revision }>;
}

export interface WriteResult {
  /** The store revision after the last transaction. */
  readonly revision: Revision;
  readonly transactions: number;
}

// ——— The registry by concern ———
// Each consumer takes the narrowest of these it uses (docs/registry.md lists who takes which);
// `Registry` is all of them, for the composition root (fleetd) and tests. The etcd-backed
// implementation has one file per concern (kv-*.ts), composed by KvRegistry.

/** This connection's view of etcd's availability, from its own calls and keepalives. */
export interface ConnectionHealth {
  readonly health: EtcdHealthView;
}

/** The whole cluster at one revision: what the engine plans from and the API summarizes. */
export interface SnapshotReader {
  /** Everything the engine needs, read at one revision. */
  snapshot(options?: SnapshotOptions): Promise<ClusterSnapshot>;
}

/** Unit files by hash (immutable, content-addressed): what an agent reads to run a unit. */
export interface UnitFileReader {
  /** The exact submitted text, or `undefined` when no such file (never submitted or collected). */
  getUnitFile(hash: UnitHash): Promise<string | undefined>;
}

/** Desired state: units and their files (`units/`, `unit-files/`), written by the API. */
export interface UnitStore extends UnitFileReader {
  /** `undefined` when no such unit. Throws `corrupt` when its value does not decode. */
  getUnit(name: UnitName): Promise<UnitRecord | undefined>;
  /**
   * Submits a unit: writes `unit-files/<hash>` and `units/<name>` in one transaction. Idempotent
   * for the same name and hash (the stored target is then left alone and returned). Throws
   * `exists` when the name holds another hash (units are immutable: destroy first), `invalid`
   * when `hash` is not the sha256 of `text`.
   */
  createUnit(unit: Unit, text: string): Promise<UnitRecord>;
  /**
   * Submits many units in as few transactions as etcd allows (`fleetts start web@{1..100}`): each
   * transaction creates a batch of absent units and their files at once. A batch where some unit
   * already exists falls back to `createUnit` per unit, so the result and errors are the same as
   * calling `createUnit` for each, in order (every unit is tried; the first error is thrown at the end).
   */
  createUnits(units: readonly { readonly unit: Unit; readonly text: string }[]): Promise<UnitRecord[]>;
  /**
   * Replaces a unit's file in one transaction: `unit-files/<new hash>` and `units/<name>` (new hash,
   * `unit.target`) are written only while the unit is still the record `expect` names (its
   * modRevision), so a crash or a kill at any point leaves either the old unit or the new one,
   * never none. Its placement is kept (the agents replace the running copy). Throws `not_found`
   * when the unit is gone, `conflict` when it changed meanwhile, `invalid` for a hash that is not
   * the text's. The old file is collected later, as after deleteUnit.
   */
  replaceUnit(expect: UnitRecord, unit: Unit, text: string): Promise<UnitRecord>;
  /** Sets a unit's target state. Throws `not_found`; `conflict` when `expectHash` no longer holds. */
  setTargetState(
    name: UnitName,
    target: TargetState,
    options?: { expectHash?: UnitHash },
  ): Promise<UnitRecord>;
  /**
   * Deletes a unit (its assignments are removed by the engine's next pass). Returns false when
   * there was no such unit. Its unit file, once no unit references it, is collected by one sweep
   * a moment after the first delete or replace of a burst (kv-unit-store's UNIT_FILE_COLLECT_DELAY_MS), not per delete: a
   * sweep reads every unit, so collecting per delete made destroying n units cost O(n²).
   */
  deleteUnit(name: UnitName): Promise<boolean>;
  /**
   * Deletes `units/<name>` where `name` is the key's rest as stored (as `problems` report it under
   * the `units` tree), only while it is no valid unit record: its name is no valid unit name (a
   * space, a nested path…) or its value does not decode. Returns false when there is no such key;
   * throws `invalid` when the record is valid (deleteUnit is for those).
   */
  deleteInvalidUnit(name: string): Promise<boolean>;
  /** Deletes every unit file no unit references (safe against concurrent submits). Returns how many. */
  collectUnitFiles(): Promise<number>;
  /** What the cluster stores: for the API's storage limits (fleetd --max-units, --max-unit-file-bytes). */
  usage(): Promise<StorageUsage>;
}

/** Rollouts of templates (`rollouts/`): the previous file, kept for `--rollback`. */
export interface RolloutStore {
  /** `undefined` when the unit never had a rollout. Throws `corrupt` when its value does not decode. */
  getRollout(unit: UnitName): Promise<RolloutRecord | undefined>;
  /**
   * Gives the unit `expect` names a new file and records its previous file, in one transaction, so
   * that the previous file survives a crash of whoever runs the rollout. A unit that already has
   * `text` is left alone, and so is its record (a rollout resumed). Throws `not_found` when the
   * unit is gone, `conflict` when it changed since `expect` was read.
   */
  beginRollout(
    expect: UnitRecord,
    previousText: string,
    text: string,
    startedAt: string,
  ): Promise<{ readonly unit: UnitRecord; readonly rollout: RolloutRecord | undefined }>;
}

/** Membership (`machines/`, under each fleetd's lease) and dynamic metadata (`machine-metadata/`). */
export interface MachineStore {
  /** Live machines with merged metadata (corrupt entries skipped, reported in `problems`). */
  listMachines(): Promise<WatchedSet<MachineRecord>>;
  /**
   * Registers this machine under a kept lease: a new one, or `resumeLeaseId` (the lease of this
   * host's previous fleetd process, kept in its state dir) when that lease is still alive, so that a
   * quick restart keeps the same membership and its units stay put. Throws `machine_id_taken`
   * when `machines/<id>` is held by any other live lease (another host with the same machine id,
   * or a previous process whose lease was not resumed: it expires within one TTL).
   */
  register(machine: MachineRegistration, options?: RegisterOptions): Promise<Membership>;
  /**
   * Merges `patch` into a machine's dynamic metadata (`null` deletes a key). Dynamic metadata is
   * persistent: it survives the machine's re-registration and overrides configured values.
   */
  patchMachineMetadata(machine: MachineId, patch: Readonly<Record<string, string | null>>): Promise<Metadata>;
  /**
   * Drains a machine (`drains/<id>`, persistent): it takes no new placements and the engine moves
   * its units off one at a time. Idempotent: an existing drain is returned as it is (its `since`
   * kept). The machine need not be live.
   */
  drainMachine(machine: MachineId, since: string): Promise<DrainRecord>;
  /** Ends a drain: the machine takes placements again (nothing moves back). False when it was not drained. */
  undrainMachine(machine: MachineId): Promise<boolean>;
}

/** The engine leader's side of placement: fenced plans over `assignments/` and `unschedulable/`. */
export interface PlanWriter {
  /**
   * Applies a plan as fenced transactions of at most `maxTxnOps` operations, each comparing the
   * leader key (`fenced` when `fence` is stale) and the basis revisions of the units it touches
   * (`conflict`, recoverable: re-plan). Changes to one unit go in one transaction (unless there
   * are more than fit); unassignments go before assignments, so a partly applied plan never holds
   * more assignments of a unit than the plan did. Transactions already committed stay committed.
   */
  writeAssignments(
    fence: Fence,
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Promise<WriteResult>;
}

/** An agent's side of placement: it watches only its own `assignments/<machine>/`. */
export interface AssignmentWatcher {
  /**
   * Calls `onChange` with the machine's full assignment set now and after every change (level-
   * triggered; re-lists by itself after a watch error). Resolves once the first call was made.
   */
  watchAssignments(
    machine: MachineId,
    onChange: (set: WatchedSet<Assignment>) => void,
  ): Promise<Subscription>;
}

/** Placement: written by the engine leader, each agent watching only its own. */
export interface PlanStore extends PlanWriter, AssignmentWatcher {}

/** Run claims (`claims/`, agents): mutual exclusion of a non-global unit across machines. */
export interface ClaimStore {
  /**
   * Claims the right to run `unit` on `machine`, bound to `lease` (the machine's membership): an
   * agent starts a non-global unit only while it holds its claim, and releases it once the unit
   * has stopped, so no unit ever runs on two machines, whatever the timing of plans, watches and
   * stops. A dead host's claims die with its lease; a cut-off host stops its units before its lease
   * can expire (self-fencing). Idempotent for the holder's lease. Returns the holder otherwise.
   */
  claimUnit(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
    options?: ClaimOptions,
  ): Promise<
    { readonly ok: true; readonly takenFrom?: MachineId } | { readonly ok: false; readonly holder: MachineId }
  >;
  /** Releases the claim if `lease` holds it (a no-op otherwise). */
  releaseUnit(lease: Pick<LeaseHandle, 'leaseId'>, unit: UnitName): Promise<void>;
  /**
   * Deletes the claim of `unit` if `holder` still holds it; true when it did. The engine calls it
   * for a unit it moved off a machine the peers found dead (daemon/peer-watch.ts), so that the new
   * host starts it at once instead of waiting for its own verdict or the dead host's lease; never
   * for an AtMostOnce unit (those stay on the dead machine until its lease expires).
   */
  releaseDeadHolder(unit: UnitName, holder: MachineId): Promise<boolean>;
}

export interface ClaimOptions {
  /**
   * Take the claim over from a holder this says is dead (its peers confirmed it, while its lease
   * lives on: daemon/peer-watch.ts); never for an AtMostOnce unit, whose claim waits for the lease.
   */
  readonly takeFrom?: (holder: MachineId) => boolean;
}

/** Observed state (`status/`): written by each agent under its membership lease. */
export interface StatusWriter {
  putStatus(lease: Pick<LeaseHandle, 'leaseId'>, status: UnitStatus): Promise<Revision>;
  deleteStatus(unit: UnitName, machine: MachineId): Promise<void>;
  /**
   * Puts and deletes many statuses in as few transactions as etcd allows (`maxTxnOps` each): an
   * agent reports every change of a pass at once. Rejects when any transaction failed; those that
   * went through stay (each write is idempotent, so the caller writes them all again).
   */
  writeStatuses(
    lease: Pick<LeaseHandle, 'leaseId'>,
    puts: readonly UnitStatus[],
    deletes: readonly { readonly unit: UnitName; readonly machine: MachineId }[],
  ): Promise<void>;
}

/** Observed state as the API reports it. */
export interface StatusReader {
  /** Statuses of one unit on every machine, or of all units. */
  listStatuses(unit?: UnitName): Promise<WatchedSet<UnitStatus>>;
}

export interface StatusStore extends StatusWriter, StatusReader {}

/** Kept leases for announcers and other sidekicks (each owns one; its keys die with it). */
export interface LeaseSource {
  openLease(options?: LeaseOptions): Promise<LeaseHandle>;
}

/** Writes of `services/` (discovery): each instance under its announcer's lease. */
export interface ServiceAnnouncer {
  announce(lease: Pick<LeaseHandle, 'leaseId'>, instance: ServiceInstance): Promise<Revision>;
  /**
   * Deletes an instance's key. With `lease`, only while that lease holds it: an announcer stopping
   * late (cut off, then healed) must not delete the key its successor wrote on another host.
   */
  withdraw(service: string, instance: string, lease?: Pick<LeaseHandle, 'leaseId'>): Promise<void>;
}

/** One reload of nginx by `fleetts upstream`: what it rendered (docs/upstream.md). */
export interface UpstreamReload {
  readonly host: string;
  readonly service: string;
  /** Live backends in the file. */
  readonly servers: number;
  /** sha256 (hex) of the file. */
  readonly checksum: string;
  /** The revision of `services/<service>/` it was rendered from. */
  readonly revision: Revision;
  readonly reloadedAt: string;
}

/** Writes of `upstreams/`: each `fleetts upstream` records its reloads under its own lease. */
export interface UpstreamReporter {
  /** Puts `upstreams/<host>/<service>` under `lease` (gone with it); the revision of the write. */
  recordUpstreamReload(lease: Pick<LeaseHandle, 'leaseId'>, reload: UpstreamReload): Promise<Revision>;
}

/** Reads of `services/`: upstream renderers, Galera members, demo clients. */
export interface ServiceReader {
  listServiceInstances(service: string): Promise<WatchedSet<ServiceInstance>>;
  /** Level-triggered like `watchAssignments`. */
  watchServiceInstances(
    service: string,
    onChange: (set: WatchedSet<ServiceInstance>) => void,
  ): Promise<Subscription>;
}

/** Every live instance of every service, with its key's revision (the API's `GET /v1/services`). */
export interface ServiceLister {
  listAllServiceInstances(): Promise<WatchedSet<AnnouncedInstance>>;
}

/** What wakes the engine: watches over the layout's trees. */
export interface ClusterWatcher {
  /**
   * Calls `onWake` after changes in the given trees since `fromRevision` (a snapshot's revision,
   * so that nothing between the snapshot and the watch is missed), once per batch of etcd events:
   * coalesce further in the caller. After a watch error it re-establishes itself and wakes with
   * a `resync` reason.
   */
  watchCluster(
    topics: readonly WakeTopic[],
    fromRevision: Revision,
    onWake: (wake: Wake) => void,
  ): Subscription;
}

export interface EventStreamHandlers {
  /** Events of one or more revisions, in order, each with its id (`"R:k"`). */
  onEvents(events: readonly ClusterEvent[]): void;
  /**
   * The stream ended and delivers nothing more: RegistryError `compacted` when etcd compacted the
   * history it still had to send (start again from `eventState`). Not called after `close`.
   */
  onEnd(error: Error): void;
}

/** What happened in the cluster, derived from etcd's history of the keys (docs/events.md). */
export interface ClusterEventSource {
  /** The state now as events (`snapshot: true`), and the revision it was read at. */
  eventState(): Promise<{ readonly revision: Revision; readonly events: readonly ClusterEvent[] }>;
  /**
   * Every event after `after`, from etcd's history, then live. Rejects with RegistryError
   * `compacted` when that history is gone, `invalid` when `after` is ahead of the store; resolves
   * once the watch is open. Close the subscription when the reader goes away.
   */
  watchEvents(after: EventCursor, handlers: EventStreamHandlers): Promise<Subscription>;
}

/** The engine's leader election (`engine/leader`) over the same store. */
export interface LeaderElection {
  /** Leader election for the engine over the same store (see leadership.ts). */
  leadership(options: LeadershipOptions): Leadership;
  /** The current engine leader's candidate id and since when, if any. */
  getLeader(): Promise<{ readonly candidate: string; readonly since: string } | undefined>;
  /**
   * Ends the term of `candidate` if it leads: revokes its leader lease, so that another candidate
   * campaigns at once. For a leader whose host its peers confirmed dead (daemon/peer-watch.ts):
   * its lease would otherwise live on, a full TTL more after an etcd leader change. True when a
   * term was ended.
   */
  deposeLeader(candidate: string): Promise<boolean>;
}

/** Every concern over one connection: what fleetd wires and tests drive. */
export interface Registry
  extends
    ConnectionHealth,
    SnapshotReader,
    UnitStore,
    RolloutStore,
    MachineStore,
    PlanStore,
    ClaimStore,
    StatusStore,
    LeaseSource,
    ServiceAnnouncer,
    UpstreamReporter,
    ServiceReader,
    ServiceLister,
    ClusterWatcher,
    ClusterEventSource,
    LeaderElection {
  /**
   * Closes watches and the connection. Leases still held are released, not revoked: their keys
   * expire after one TTL unless a successor resumes them (close the handles first to revoke).
   */
  close(): Promise<void>;
}
