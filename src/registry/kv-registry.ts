// The registry over the Kv primitives, as one object: each concern lives in its own kv-*.ts module
// over a shared KvCore (connection, health, keys, lifecycle); this facade composes them behind
// `Registry`. `createEtcdRegistry` and `createMemoryRegistry` only pick the Kv.
import type {
  Assignment,
  MachineId,
  Metadata,
  TargetState,
  Unit,
  UnitHash,
  UnitName,
  UnitStatus,
} from '../cluster/types.js';
import type { EtcdHealth } from './etcd-health.js';
import type { RegistryKeys } from './keys.js';
import { KvClaimStore } from './kv-claim-store.js';
import type { ClusterEvent, EventCursor } from './cluster-events.js';
import { KvClusterWatcher } from './kv-cluster-watcher.js';
import { KvEventSource } from './kv-event-source.js';
import { KvCore, type KvCoreDeps } from './kv-core.js';
import { KvLeaderElection } from './kv-leader-election.js';
import { KvMachineStore } from './kv-machine-store.js';
import { KvPlanStore } from './kv-plan-store.js';
import { KvServiceStore } from './kv-service-store.js';
import { KvSnapshotReader } from './kv-snapshot-reader.js';
import { KvStatusStore } from './kv-status-store.js';
import { KvUnitStore } from './kv-unit-store.js';
import type { Revision } from './kv.js';
import type { Fence, Leadership, LeadershipOptions } from './leadership.js';
import type {
  AnnouncedInstance,
  AssignmentChange,
  ClaimOptions,
  ClusterSnapshot,
  DrainRecord,
  EventStreamHandlers,
  LeaseHandle,
  LeaseOptions,
  MachineRecord,
  MachineRegistration,
  Membership,
  PlanBasis,
  RegisterOptions,
  Registry,
  RolloutRecord,
  ServiceInstance,
  UpstreamReload,
  SnapshotOptions,
  StorageUsage,
  Subscription,
  UnitRecord,
  Wake,
  WakeTopic,
  WatchedSet,
  WriteResult,
} from './registry.js';

export { UNIT_FILE_COLLECT_DELAY_MS } from './kv-unit-store.js';

export type KvRegistryDeps = KvCoreDeps;

type ClaimResult =
  { readonly ok: true; readonly takenFrom?: MachineId } | { readonly ok: false; readonly holder: MachineId };

export class KvRegistry implements Registry {
  readonly keys: RegistryKeys;
  readonly health: EtcdHealth;
  readonly #core: KvCore;
  readonly #snapshots: KvSnapshotReader;
  readonly #units: KvUnitStore;
  readonly #machines: KvMachineStore;
  readonly #plans: KvPlanStore;
  readonly #claims: KvClaimStore;
  readonly #statuses: KvStatusStore;
  readonly #services: KvServiceStore;
  readonly #watcher: KvClusterWatcher;
  readonly #events: KvEventSource;
  readonly #election: KvLeaderElection;

  constructor(deps: KvRegistryDeps) {
    const core = new KvCore(deps);
    this.#core = core;
    this.keys = core.keys;
    this.health = core.health;
    this.#snapshots = new KvSnapshotReader(core);
    this.#units = new KvUnitStore(core);
    this.#machines = new KvMachineStore(core);
    this.#plans = new KvPlanStore(core);
    this.#claims = new KvClaimStore(core);
    this.#statuses = new KvStatusStore(core);
    this.#services = new KvServiceStore(core);
    this.#watcher = new KvClusterWatcher(core);
    this.#events = new KvEventSource(core);
    this.#election = new KvLeaderElection(core);
  }

  // ——— SnapshotReader ———
  snapshot(options?: SnapshotOptions): Promise<ClusterSnapshot> {
    return this.#snapshots.snapshot(options);
  }

  // ——— UnitStore ———
  getUnit(name: UnitName): Promise<UnitRecord | undefined> {
    return this.#units.getUnit(name);
  }
  getUnitFile(hash: UnitHash): Promise<string | undefined> {
    return this.#units.getUnitFile(hash);
  }
  createUnit(unit: Unit, text: string): Promise<UnitRecord> {
    return this.#units.createUnit(unit, text);
  }
  createUnits(units: readonly { readonly unit: Unit; readonly text: string }[]): Promise<UnitRecord[]> {
    return this.#units.createUnits(units);
  }
  replaceUnit(expect: UnitRecord, unit: Unit, text: string): Promise<UnitRecord> {
    return this.#units.replaceUnit(expect, unit, text);
  }
  setTargetState(
    name: UnitName,
    target: TargetState,
    options?: { expectHash?: UnitHash },
  ): Promise<UnitRecord> {
    return this.#units.setTargetState(name, target, options);
  }
  deleteUnit(name: UnitName): Promise<boolean> {
    return this.#units.deleteUnit(name);
  }
  deleteInvalidUnit(name: string): Promise<boolean> {
    return this.#units.deleteInvalidUnit(name);
  }
  collectUnitFiles(): Promise<number> {
    return this.#units.collectUnitFiles();
  }
  usage(): Promise<StorageUsage> {
    return this.#units.usage();
  }

  // ——— RolloutStore ———
  getRollout(unit: UnitName): Promise<RolloutRecord | undefined> {
    return this.#units.getRollout(unit);
  }
  beginRollout(
    expect: UnitRecord,
    previousText: string,
    text: string,
    startedAt: string,
  ): Promise<{ readonly unit: UnitRecord; readonly rollout: RolloutRecord | undefined }> {
    return this.#units.beginRollout(expect, previousText, text, startedAt);
  }

  // ——— MachineStore ———
  listMachines(): Promise<WatchedSet<MachineRecord>> {
    return this.#machines.listMachines();
  }
  register(machine: MachineRegistration, options?: RegisterOptions): Promise<Membership> {
    return this.#machines.register(machine, options);
  }
  patchMachineMetadata(
    machine: MachineId,
    patch: Readonly<Record<string, string | null>>,
  ): Promise<Metadata> {
    return this.#machines.patchMachineMetadata(machine, patch);
  }

  drainMachine(machine: MachineId, since: string): Promise<DrainRecord> {
    return this.#machines.drainMachine(machine, since);
  }
  undrainMachine(machine: MachineId): Promise<boolean> {
    return this.#machines.undrainMachine(machine);
  }

  // ——— PlanStore ———
  writeAssignments(
    fence: Fence,
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Promise<WriteResult> {
    return this.#plans.writeAssignments(fence, changes, basis);
  }
  watchAssignments(
    machine: MachineId,
    onChange: (set: WatchedSet<Assignment>) => void,
  ): Promise<Subscription> {
    return this.#plans.watchAssignments(machine, onChange);
  }

  // ——— ClaimStore ———
  claimUnit(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
    options?: ClaimOptions,
  ): Promise<ClaimResult> {
    return this.#claims.claimUnit(lease, unit, machine, options);
  }
  releaseUnit(lease: Pick<LeaseHandle, 'leaseId'>, unit: UnitName): Promise<void> {
    return this.#claims.releaseUnit(lease, unit);
  }
  releaseDeadHolder(unit: UnitName, holder: MachineId): Promise<boolean> {
    return this.#claims.releaseDeadHolder(unit, holder);
  }

  // ——— StatusStore ———
  listStatuses(unit?: UnitName): Promise<WatchedSet<UnitStatus>> {
    return this.#statuses.listStatuses(unit);
  }
  putStatus(lease: Pick<LeaseHandle, 'leaseId'>, status: UnitStatus): Promise<Revision> {
    return this.#statuses.putStatus(lease, status);
  }
  deleteStatus(unit: UnitName, machine: MachineId): Promise<void> {
    return this.#statuses.deleteStatus(unit, machine);
  }
  writeStatuses(
    lease: Pick<LeaseHandle, 'leaseId'>,
    puts: readonly UnitStatus[],
    deletes: readonly { readonly unit: UnitName; readonly machine: MachineId }[],
  ): Promise<void> {
    return this.#statuses.writeStatuses(lease, puts, deletes);
  }

  // ——— LeaseSource, ServiceAnnouncer, ServiceReader ———
  openLease(options?: LeaseOptions): Promise<LeaseHandle> {
    return this.#services.openLease(options);
  }
  announce(lease: Pick<LeaseHandle, 'leaseId'>, instance: ServiceInstance): Promise<Revision> {
    return this.#services.announce(lease, instance);
  }
  withdraw(service: string, instance: string, lease?: Pick<LeaseHandle, 'leaseId'>): Promise<void> {
    return this.#services.withdraw(service, instance, lease);
  }
  recordUpstreamReload(lease: Pick<LeaseHandle, 'leaseId'>, reload: UpstreamReload): Promise<Revision> {
    return this.#services.recordUpstreamReload(lease, reload);
  }
  listServiceInstances(service: string): Promise<WatchedSet<ServiceInstance>> {
    return this.#services.listServiceInstances(service);
  }
  watchServiceInstances(
    service: string,
    onChange: (set: WatchedSet<ServiceInstance>) => void,
  ): Promise<Subscription> {
    return this.#services.watchServiceInstances(service, onChange);
  }

  listAllServiceInstances(): Promise<WatchedSet<AnnouncedInstance>> {
    return this.#services.listAllServiceInstances();
  }

  // ——— ClusterWatcher, LeaderElection ———
  eventState(): Promise<{ revision: Revision; events: ClusterEvent[] }> {
    return this.#events.eventState();
  }

  watchEvents(after: EventCursor, handlers: EventStreamHandlers): Promise<Subscription> {
    return this.#events.watchEvents(after, handlers);
  }

  watchCluster(
    topics: readonly WakeTopic[],
    fromRevision: Revision,
    onWake: (wake: Wake) => void,
  ): Subscription {
    return this.#watcher.watchCluster(topics, fromRevision, onWake);
  }
  leadership(options: LeadershipOptions): Leadership {
    return this.#election.leadership(options);
  }
  deposeLeader(candidate: string): Promise<boolean> {
    return this.#election.deposeLeader(candidate);
  }

  getLeader(): Promise<{ readonly candidate: string; readonly since: string } | undefined> {
    return this.#election.getLeader();
  }

  close(): Promise<void> {
    this.#core.close();
    return Promise.resolve();
  }
}
