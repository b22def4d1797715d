// The deterministic cluster simulation (issue 3; DESIGN.md "Safety invariants"; docs/simulation.md).
//
// WHAT RUNS: one in-memory etcd (`MemoryEtcd`, observed by `ObservedEtcd` below) on a `FakeClock`;
// per simulated host its OWN registry client (`createMemoryRegistry`, so faults are per host), the
// REAL `Engine` (src/engine/engine.ts) campaigning for leadership, fleetd's REAL membership loop
// (src/daemon/membership-loop.ts: register, resume or re-register after a loss, the one backoff on
// the host's Random), and the REAL `Agent` (src/agent/agent.ts) with its fencing policy (per-unit
// by default: only AtMostOnce units fence) and its peer check, whose questions travel over a
// simulated network between the hosts (`askPeer`). The agent runs its units on a `SimRuntime`
// (sim-runtime.ts): in-memory entries that take a simulated time to start and to stop. A separate
// client plays the API (submit, start, stop, destroy); it fails only while etcd is down for everyone.
//
// FAULTS: `kill` (power off: the host's engine, agent, units and keepalives stop at once, no
// cleanup; its leases expire in the store), `restart` (a fresh process, empty runtime), `partition`
// (the host is cut off from etcd but not from its peers: every call of its client fails and its
// watch events are held back), `heal`, `cutPeers` (the host reaches etcd but not its peers, nor
// they it), `slow` (latency on every call of one client), `dropKeepalives` (a frozen host: its
// keepalives never arrive while its other calls do), `addHost`; and of etcd itself: `etcdDown` /
// `etcdUp` (down for everyone: no lease expires meanwhile, those past their TTL go when it is back)
// and `etcdLeaderChange` (unavailable for an election, then every lease extended by its TTL).
//
// TIME: only `clock.advance` moves it. `step()` advances by `stepMs` (100 ms), which fires every
// due timer in order with the microtasks of each flushed, then checks every invariant:
//  1. an AtMostOnce unit is never active on two hosts at once; a plain non-global one only while
//     one copy is an orphan (a plain file) on a host whose own link to etcd was cut since that copy
//     started, or up to a TTL before (the engine took the host for dead; it stops once healed). Ground truth is the runtimes'
//     entries, checked on every start (exact) and after every step; plus no non-global unit
//     assigned to two live machines in the store;
//  2. at most one engine (of a host that is up) believes it leads; every committed txn that writes
//     assignments or unschedulable records compares the leader key's create revision (a fence),
//     and fences of landed writes never go backwards (a deposed term's write never lands after a
//     newer term wrote); `store.staleFencesRefused` counts deposed writes that etcd refused;
//  3. every unit the script submitted (and did not destroy) is in the store with its hash and the
//     target state last set;
//  4. no needless churn: an assignment leaves a live machine (same membership) only when the user
//     touched the unit, the unit is gone/inactive/replaced, or its MachineOf leader left that machine;
//  6. every assignment on a live machine satisfies MachineID, MachineMetadata, MachineOf and
//     Conflicts (both ways) against the other assignments;
//  7. a control-plane fault stops, restarts or moves no unit (issue 12), except an AtMostOnce unit
//     fenced on a host that was cut off since its last renewal (its own link to etcd, or etcd down
//     for everyone while it cannot reach every peer): no plain unit is fenced (`7-fenced-plain`),
//     no AtMostOnce unit is fenced on a host that was not cut off (`7-fenced-not-cut-off`, or
//     `7-fenced-on-return` for known bug D), a unit stops otherwise only when no longer launched
//     there (`7-stopped-while-assigned`), and no unit leaves a live host whose membership went
//     away without its own link being cut (`7-moved-on-outage`, or `7-moved-by-new-engine` for
//     known bug E).
// At the end of a scenario, `checkSettled()` checks liveness: every launched unit is assigned and
// running exactly where assigned (globals on every fitting machine), unless no machine fits it by
// an independent check; nothing runs that is not assigned and launched.
//
// Failover is measured: `kill`/`partition` record the host's movable units; each step notes when
// each got a new machine (`failovers`), in simulated milliseconds from the fault.
//
// REPLAY: everything is deterministic (fake clock, seeded `Random`, no wall time, no I/O): the same
// seed and script give the same run. Each host's retry jitter (engine, leadership, watches,
// membership) comes from its own `Random`, seeded from the simulation's (`SimOptions.seed`) as the
// host is created, so hosts do not retry in lockstep and a seed still replays exactly. `trace` holds every action and notable event with its time.
import { asMachineId, asUnitHash, asUnitName } from '../../src/cluster/types.js';
import type {
  Assignment,
  MachineId,
  Placement,
  TargetState,
  UnitHash,
  UnitName,
} from '../../src/cluster/types.js';
import { Agent, type FencingPolicy } from '../../src/agent/agent.js';
import { MIN_ENGINE_GRACE_MS, selfLeaseReport, type SelfLeaseReport } from '../../src/agent/peer-check.js';
import { Engine } from '../../src/engine/engine.js';
import { MembershipLoop } from '../../src/daemon/membership-loop.js';
import { FakeClock } from '../../src/lib/clock.js';
import { globMatch } from '../../src/lib/glob.js';
import { silentLogger, type Logger } from '../../src/lib/logger.js';
import { pino } from 'pino';
import { createRandom, type Random } from '../../src/lib/random.js';
import { decodeValue } from '../../src/registry/codec.js';
import { DEFAULT_FENCE_AFTER_MS } from '../../src/registry/kept-lease.js';
import { RegistryKeys } from '../../src/registry/keys.js';
import type { TxnRequest, TxnResult } from '../../src/registry/kv.js';
import { createMemoryRegistry, MemoryEtcd, type MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import type { Timer } from '../../src/lib/clock.js';
import { isRegistryError } from '../../src/registry/registry-error.js';
import { unitHash } from '../../src/unit/hash.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import { SimRuntime, type ActivityHook } from './sim-runtime.js';

export interface HostSpec {
  readonly id: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface SimOptions {
  readonly hosts: readonly HostSpec[];
  readonly ttlMs?: number;
  readonly keepaliveMs?: number;
  readonly fenceAfterMs?: number;
  /** The agents' fencing policy (default `per-unit`, fleetd's default). */
  readonly fencePolicy?: FencingPolicy;
  /** The agents' watchdog period. */
  readonly fenceCheckMs?: number;
  /** How long a peer's GET /v1/self/lease takes when the network between the two hosts works. */
  readonly peerLatencyMs?: number;
  readonly startDelayMs?: number;
  readonly stopDelayMs?: number;
  readonly stepMs?: number;
  readonly resyncMs?: number;
  /** Seeds the hosts' retry jitter (default 1); randomized runs pass their script's seed. */
  readonly seed?: number;
}

export interface Violation {
  readonly at: number;
  readonly invariant: string;
  readonly message: string;
}

export interface ActivityRecord {
  readonly at: number;
  readonly kind: 'up' | 'down';
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly why: string;
}

export interface Failover {
  readonly host: MachineId;
  readonly unit: UnitName;
  readonly faultAt: number;
  /** Simulated ms from the fault to the step at which the unit had a live machine again. */
  readonly ms: number;
  readonly to: MachineId;
}

/** The store as the invariants read it, decoded synchronously (nothing interleaves). */
export interface StoreState {
  readonly machines: ReadonlyMap<MachineId, { createRevision: number; metadata: Record<string, string> }>;
  readonly units: ReadonlyMap<UnitName, { hash: UnitHash; target: TargetState }>;
  readonly assignments: readonly Assignment[];
  readonly unschedulable: ReadonlySet<UnitName>;
  readonly leader: { candidate: string; createRevision: number } | undefined;
}

interface HostFaults {
  partitioned: boolean;
  latencyMs: number;
  /** Keepalives never reach etcd while every other call does (a host frozen in a GC pause, say). */
  dropKeepalives: boolean;
  /** The host's fleetd API cannot reach its peers' nor be reached by them (etcd may still work). */
  peersCut: boolean;
}

const NO_FAULTS: HostFaults = { partitioned: false, latencyMs: 0, dropKeepalives: false, peersCut: false };

const KEYS = new RegistryKeys();

/** MemoryEtcd that checks invariant 2's fencing on every committed transaction. */
class ObservedEtcd extends MemoryEtcd {
  onFencedWrite: (fence: number | undefined, request: TxnRequest) => void = () => undefined;

  /** Leader-only transactions refused because their fence was stale (a deposed engine's writes). */
  staleFencesRefused = 0;

  override txn(request: TxnRequest): TxnResult {
    const result = super.txn(request);
    const fence = request.compare.find((c) => c.key === KEYS.leader() && c.target === 'create');
    if (!result.succeeded && fence?.target === 'create') {
      const current = this.range(KEYS.leader(), undefined).kvs[0]?.createRevision ?? 0;
      if (current !== fence.revision) this.staleFencesRefused++;
    }
    if (result.succeeded) {
      const leaderOnly = [KEYS.tree('assignments'), KEYS.tree('unschedulable')];
      const writes = request.success.some(
        (op) => op.kind !== 'range' && leaderOnly.some((r) => op.key >= r.start && op.key < r.end),
      );
      if (writes) {
        this.onFencedWrite(fence?.target === 'create' ? fence.revision : undefined, request);
      }
    }
    return result;
  }
}

class SimHost {
  readonly id: MachineId;
  readonly metadata: Readonly<Record<string, string>>;
  readonly registry: MemoryRegistry;
  readonly runtime: SimRuntime;
  /** The REAL agent (src/agent/agent.ts), with its fencing and peer check, on the simulated runtime. */
  readonly agent: Agent;
  /** This host process's retry jitter (as fleetd's one Random per process). */
  readonly random: Random;
  engine: Engine | undefined;
  #loop: MembershipLoop | undefined;
  /** The last lease registered by this process (fleetd's lease-id file; a restart starts without). */
  #leaseId: string | undefined;
  /** Simulated time of the last successful registration. */
  registeredAt: number | undefined;
  up = true;
  readonly faults: HostFaults = { ...NO_FAULTS };
  readonly #sim: Simulation;
  readonly #stop = new AbortController();

  /** The live membership, as fleetd's `membership` getter gives it to the agent. */
  get membership(): Membership | undefined {
    const m = this.#loop?.current;
    return m === undefined || m.signal.aborted ? undefined : m;
  }

  constructor(sim: Simulation, spec: HostSpec, faults: HostFaults) {
    this.#sim = sim;
    this.id = asMachineId(spec.id);
    this.metadata = spec.metadata ?? {};
    Object.assign(this.faults, faults);
    const o = sim.options;
    this.random = createRandom(sim.random.int(2 ** 32));
    this.bornAt = sim.now;
    this.registry = createMemoryRegistry({
      store: sim.store,
      lease: { ttlMs: o.ttlMs, keepaliveMs: o.keepaliveMs },
      random: this.random,
    });
    this.applyFaults();
    this.runtime = new SimRuntime({
      machine: this.id,
      clock: sim.clock,
      startDelayMs: o.startDelayMs,
      stopDelayMs: o.stopDelayMs,
      onActivity: sim.activityHook,
      stopReason: () => (this.agent.fenced ? 'fenced' : 'unassigned'),
    });
    this.agent = new Agent({
      registry: this.registry,
      runtimes: { process: this.runtime },
      machine: { id: this.id, ip: '10.0.0.1', metadata: this.metadata },
      getMembership: () => this.membership,
      clock: sim.clock,
      log: silentLogger,
      fencing: { policy: o.fencePolicy, deadlineMs: o.fenceAfterMs },
      // fleetd's AgentPeers: the list from etcd (through this host's connection, with its faults),
      // the question over the simulated network between the hosts.
      peers: {
        list: async () => (await this.registry.listMachines()).items,
        ask: (peer, signal) => sim.askPeer(this.id, peer.id, signal),
      },
      watchdogMs: o.fenceCheckMs,
      hostname: this.id,
      bootId: 'sim',
      readFile: () => undefined,
      environment: {},
    });
  }

  #lastRenewal = 0;
  /** Simulated time this process started. */
  readonly bornAt: number;
  /** The create revisions of the memberships this process registered. */
  readonly memberships = new Set<number>();

  /** The latest acknowledged renewal of any of this process's memberships (monotonic). */
  get lastRenewal(): number {
    const m = this.#loop?.current;
    if (m !== undefined) this.#lastRenewal = Math.max(this.#lastRenewal, m.renewedAt());
    return this.#lastRenewal;
  }

  /** What its fleetd answers on GET /v1/self/lease (Fleetd.selfLease), from local state. */
  selfLease(): SelfLeaseReport {
    const m = this.#loop?.current;
    return selfLeaseReport({
      machine: this.id,
      now: this.#sim.clock.monotonic(),
      keepaliveMs: this.#sim.options.keepaliveMs,
      lease:
        m === undefined
          ? undefined
          : {
              renewedAt: m.renewedAt(),
              since: Math.max(this.registeredAt ?? 0, m.resumedAt()),
              lost: m.signal.aborted,
            },
    });
  }

  applyFaults(): void {
    this.registry.setFaults({
      ...(this.faults.partitioned ? { unavailable: true } : {}),
      ...(this.faults.latencyMs > 0 ? { latencyMs: this.faults.latencyMs } : {}),
      ...(this.faults.dropKeepalives ? { dropKeepalives: true } : {}),
    });
  }

  boot(): void {
    void this.agent.start();
    void this.#keepMembership();
  }

  /** Power off: nothing is cleaned up; its leases expire in the store by themselves. */
  kill(): void {
    this.up = false;
    this.registry.setFaults({ unavailable: true });
    this.#stop.abort(new Error('host killed'));
    this.runtime.kill();
    void this.agent.stop();
    void this.engine?.stop();
    void this.registry.close();
  }

  /** fleetd's own membership loop (src/daemon/membership-loop.ts); the engine starts at the first registration. */
  async #keepMembership(): Promise<void> {
    const { clock, options } = this.#sim;
    const loop = new MembershipLoop({
      register: () =>
        this.registry.register(
          {
            id: this.id,
            ip: '10.0.0.1',
            metadata: this.metadata,
            apiAddress: `sim://${this.id}`,
            version: 'sim',
            startedAt: new Date(clock.now()).toISOString(),
          },
          {
            ttlMs: options.ttlMs,
            keepaliveMs: options.keepaliveMs,
            // As fleetd, which reads the last lease id from its state dir: a lease that etcd still
            // holds (extended by a new etcd leader after this host gave it up) is resumed.
            ...(this.#leaseId === undefined ? {} : { resumeLeaseId: this.#leaseId }),
          },
        ),
      clock,
      random: this.random,
      log: this.#sim.traceLogger(this.id),
      machine: this.id,
      onRegistered: (next) => {
        if (this.#stop.signal.aborted) return;
        this.registeredAt = clock.monotonic();
        this.#leaseId = next.leaseId;
        this.memberships.add(next.createRevision);
        this.#sim.note(`${this.id} registered (membership rev ${next.createRevision})`);
        if (this.engine !== undefined) return;
        this.engine = new Engine({
          registry: this.registry,
          clock,
          random: this.random,
          log: silentLogger,
          candidate: this.id,
          resyncMs: options.resyncMs,
          lease: { ttlMs: options.ttlMs, keepaliveMs: options.keepaliveMs },
        });
        this.engine.start();
      },
    });
    this.#loop = loop;
    await loop.run(this.#stop.signal);
  }
}

/** A unit's process on one host, for invariant 1: its file and when it started. */
interface Copy {
  readonly hash: UnitHash;
  readonly since: number;
}

/** An assignment on a live machine as a check saw it; `host`: that machine's process then, `seenAt`: first seen. */
interface Placed {
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly createRevision: number;
  readonly hash: UnitHash;
  readonly host: SimHost | undefined;
  readonly seenAt: number;
}

/** A catalog entry: every unit text the script ever submitted, by hash. */
interface CatalogEntry {
  readonly name: UnitName;
  readonly placement: Placement;
}

export class Simulation {
  readonly options: Required<Omit<SimOptions, 'hosts'>>;
  readonly clock = new FakeClock();
  /** Seeds each host's own Random, in the order hosts are created (boot, restart, addHost). */
  readonly random: Random;
  readonly store: ObservedEtcd;
  /** The API's connection: never faulted. */
  readonly admin: MemoryRegistry;
  readonly hosts = new Map<MachineId, SimHost>();
  readonly violations: Violation[] = [];
  readonly trace: string[] = [];
  readonly activity: ActivityRecord[] = [];
  readonly failovers: Failover[] = [];
  readonly writesPerFence = new Map<number, number>();
  readonly #catalog = new Map<UnitHash, CatalogEntry>();
  /** What the script last set: invariant 3. */
  readonly #expected = new Map<UnitName, { hash: UnitHash; target: TargetState }>();
  /** Ground truth: unit → host → hash of the process there. */
  readonly #active = new Map<UnitName, Map<MachineId, Copy>>();
  readonly #touched = new Set<UnitName>();
  /** Hosts the script drained: their units leave them because the user asked (invariant 4). */
  readonly #drained = new Set<MachineId>();
  /** When the script last touched each unit (submit, target, destroy). */
  readonly #touchedAt = new Map<UnitName, number>();
  /** Per host: the last time its own link to etcd was cut (partition, keepalives dropped). */
  readonly #linkCutAt = new Map<MachineId, number>();
  /**
   * Per host: the last time it was cut off in docs/fencing.md's sense: its own link to etcd, or etcd
   * down for everyone while it cannot vouch through its peers (its peer network is cut, a listed
   * peer's is, a listed peer is down, or it lists none: see #noteCuts).
   */
  readonly #cutAt = new Map<MachineId, number>();
  #election: Timer | undefined;
  /** Units moved by known issue E, and when (their copies on two hosts are its consequence). */
  readonly #movedByNewEngine = new Map<UnitName, number>();
  /** When etcd last came back for everyone (etcdUp, the end of a leader change). */
  #etcdBackAt: number | undefined;
  /** Placements seen at the last check: `unit\0machine` → membership revision and hash. */
  #placements = new Map<string, Placed>();
  /** `membership`: the host's membership revision at the fault (undefined: it had none). */
  #pendingFailovers: { host: MachineId; membership: number | undefined; unit: UnitName; at: number }[] = [];
  #seenBefore = new Set<string>();
  #seenNow = new Set<string>();
  #lastFence = 0;
  #maxLeaders = 0;

  constructor(options: SimOptions) {
    this.options = {
      ttlMs: options.ttlMs ?? 5000,
      keepaliveMs: options.keepaliveMs ?? 1000,
      fenceAfterMs: options.fenceAfterMs ?? DEFAULT_FENCE_AFTER_MS,
      fencePolicy: options.fencePolicy ?? 'per-unit',
      fenceCheckMs: options.fenceCheckMs ?? 250,
      peerLatencyMs: options.peerLatencyMs ?? 5,
      startDelayMs: options.startDelayMs ?? 300,
      stopDelayMs: options.stopDelayMs ?? 200,
      stepMs: options.stepMs ?? 100,
      resyncMs: options.resyncMs ?? 30_000,
      seed: options.seed ?? 1,
    };
    this.random = createRandom(this.options.seed);
    this.store = new ObservedEtcd({ clock: this.clock });
    this.store.onFencedWrite = (fence) => this.#onFencedWrite(fence);
    this.admin = createMemoryRegistry({ store: this.store });
    for (const spec of options.hosts) this.hosts.set(asMachineId(spec.id), this.#newHost(spec));
  }

  get now(): number {
    return this.clock.monotonic();
  }

  /** Boots every host and lets the cluster settle (`ms` of simulated time). */
  async start(ms = 3000): Promise<void> {
    for (const h of this.hosts.values()) h.boot();
    await this.run(ms);
  }

  /** A logger that notes the membership loop's warnings (`fleetd.membership_lost`) in the trace. */
  traceLogger(host: string): Logger {
    return pino(
      { level: 'warn', base: null, timestamp: false },
      {
        write: (line: string) => {
          const e = JSON.parse(line) as { event?: string; msg?: string; reason?: unknown };
          if (e.event === 'fleetd.membership_lost')
            this.note(`${host} membership lost (${describe(e.reason)})`);
        },
      },
    );
  }

  note(line: string): void {
    this.trace.push(`[${(this.now / 1000).toFixed(1)}s] ${line}`);
  }

  // ——— time ———

  async step(): Promise<void> {
    this.#noteCuts();
    await this.clock.advance(this.options.stepMs);
    this.#noteCuts();
    this.check();
  }

  async run(ms: number): Promise<void> {
    const end = this.now + ms;
    while (this.now < end) await this.step();
  }

  /** Steps until `cond` holds (checked after each step) or `ms` pass; returns the ms it took, or undefined. */
  async until(cond: () => boolean, ms: number): Promise<number | undefined> {
    const start = this.now;
    while (this.now - start < ms) {
      if (cond()) return this.now - start;
      await this.step();
    }
    return cond() ? this.now - start : undefined;
  }

  // ——— the user (through the API's fault-free client) ———

  /** The API's calls fail while etcd is down for everyone: the script's action is a no-op then. */
  #refused(what: string): boolean {
    if (!this.store.down) return false;
    this.note(`${what}: refused, etcd is down`);
    return true;
  }

  async submit(name: string, text: string, target: TargetState = 'launched'): Promise<boolean> {
    if (this.#refused(`submit ${name}`)) return false;
    const unit = asUnitName(name);
    const hash = unitHash(text);
    const spec = parseUnitSpec(text, name);
    this.#catalog.set(hash, { name: unit, placement: spec.placement });
    this.#touched.add(unit);
    this.#touchedAt.set(unit, this.now);
    try {
      const rec = await this.admin.createUnit({ name: unit, hash, target: 'inactive' }, text);
      if (rec.hash !== hash) return false;
      const set = await this.admin.setTargetState(unit, target);
      this.#expected.set(unit, { hash, target: set.target });
      this.note(`submit ${name} (${target}) ${oneLine(text)}`);
      return true;
    } catch (err) {
      if (!isRegistryError(err, 'exists')) throw err;
      this.note(`submit ${name}: exists with other content (no-op)`);
      return false;
    }
  }

  async setTarget(name: string, target: TargetState): Promise<boolean> {
    if (this.#refused(`target ${name} ${target}`)) return false;
    const unit = asUnitName(name);
    this.#touched.add(unit);
    this.#touchedAt.set(unit, this.now);
    try {
      const rec = await this.admin.setTargetState(unit, target);
      this.#expected.set(unit, { hash: rec.hash, target: rec.target });
      this.note(`target ${name} ${target}`);
      return true;
    } catch (err) {
      if (!isRegistryError(err, 'not_found')) throw err;
      return false;
    }
  }

  async destroy(name: string): Promise<boolean> {
    if (this.#refused(`destroy ${name}`)) return false;
    const unit = asUnitName(name);
    this.#touched.add(unit);
    this.#touchedAt.set(unit, this.now);
    const deleted = await this.admin.deleteUnit(unit);
    this.#expected.delete(unit);
    if (deleted) this.note(`destroy ${name}`);
    return deleted;
  }

  /** `fleetts drain HOST`: its units move off it, one at a time (engine/drain-step.ts). */
  async drain(id: string): Promise<boolean> {
    if (this.#refused(`drain ${id}`)) return false;
    this.#drained.add(asMachineId(id));
    await this.admin.drainMachine(asMachineId(id), new Date(this.clock.now()).toISOString());
    this.note(`drain ${id}`);
    return true;
  }

  /** `fleetts undrain HOST`. */
  async undrain(id: string): Promise<boolean> {
    if (this.#refused(`undrain ${id}`)) return false;
    await this.admin.undrainMachine(asMachineId(id));
    this.#drained.delete(asMachineId(id));
    this.note(`undrain ${id}`);
    return true;
  }

  // ——— faults ———

  host(id: string): SimHost {
    const h = this.hosts.get(asMachineId(id));
    if (h === undefined) throw new Error(`no simulated host ${id}`);
    return h;
  }

  kill(id: string): void {
    const h = this.host(id);
    if (!h.up) return;
    this.note(`kill ${id}${h.engine?.stats.isLeader === true ? ' (leader)' : ''}`);
    this.#trackFailover(h.id);
    h.kill();
  }

  /** A new process on a killed host: empty agent, new registry client, same faults as before. */
  restart(id: string): void {
    const old = this.host(id);
    if (old.up) return;
    this.note(`restart ${id}`);
    const h = this.#newHost({ id, metadata: old.metadata }, old.faults);
    this.hosts.set(h.id, h);
    h.boot();
  }

  addHost(spec: HostSpec): void {
    if (this.hosts.has(asMachineId(spec.id))) return;
    this.note(`add host ${spec.id}`);
    const h = this.#newHost(spec);
    this.hosts.set(h.id, h);
    h.boot();
  }

  partition(id: string): void {
    const h = this.host(id);
    if (!h.up || h.faults.partitioned) return;
    this.note(`partition ${id}${h.engine?.stats.isLeader === true ? ' (leader)' : ''}`);
    this.#trackFailover(h.id);
    h.faults.partitioned = true;
    h.applyFaults();
    this.#noteCuts();
  }

  heal(id: string): void {
    const h = this.host(id);
    if (!h.faults.partitioned) return;
    this.note(`heal ${id}`);
    h.faults.partitioned = false;
    if (h.up) h.applyFaults();
    this.#pendingFailovers = this.#pendingFailovers.filter((f) => f.host !== h.id);
  }

  slow(id: string, latencyMs: number): void {
    const h = this.host(id);
    if (h.faults.latencyMs === latencyMs) return;
    this.note(`latency ${id} ${latencyMs} ms`);
    h.faults.latencyMs = latencyMs;
    if (h.up) h.applyFaults();
  }

  /** Keepalives of this host stop reaching etcd (or resume) while its other calls still work. */
  dropKeepalives(id: string, drop = true): void {
    const h = this.host(id);
    if (h.faults.dropKeepalives === drop) return;
    this.note(`${drop ? 'drop' : 'resume'} keepalives of ${id}`);
    h.faults.dropKeepalives = drop;
    if (h.up) h.applyFaults();
    this.#noteCuts();
  }

  /** The host's fleetd API can no longer reach its peers nor be reached (`cut` false: healed); etcd unaffected. */
  cutPeers(id: string, cut = true): void {
    const h = this.host(id);
    if (h.faults.peersCut === cut) return;
    this.note(`${cut ? 'cut' : 'heal'} the peer network of ${id}`);
    h.faults.peersCut = cut;
    this.#noteCuts();
  }

  /** etcd down for everyone (frozen, without quorum), the API's client included; `etcdUp` ends it. */
  etcdDown(): void {
    this.#election?.cancel();
    this.#election = undefined;
    if (this.store.down) return;
    this.note('etcd down for everyone');
    this.store.setDown(true);
    this.#noteCuts();
  }

  etcdUp(): void {
    this.#election?.cancel();
    this.#election = undefined;
    if (!this.store.down) return;
    this.note('etcd back');
    this.store.setDown(false);
    this.#etcdBackAt = this.now;
  }

  /**
   * An etcd leader change: etcd answers nobody for `electionMs`, then the new leader extends every
   * lease by its TTL (etcd's lessor Promote) and answers again.
   */
  etcdLeaderChange(electionMs: number): void {
    if (this.store.down) return;
    this.note(`etcd leader change (election ${electionMs} ms)`);
    this.store.setDown(true);
    this.#noteCuts();
    this.#election = this.clock.setTimer(electionMs, () => {
      this.#election = undefined;
      this.note('etcd has a new leader: every lease extended by its TTL');
      this.store.extendLeases();
      this.store.setDown(false);
      this.#etcdBackAt = this.now;
    });
  }

  /**
   * One peer's GET /v1/self/lease from `from` (fleetd's peer client): answered from the peer's
   * local state after `peerLatencyMs`. A cut peer network never answers (the asker's timeout ends
   * it through `signal`); a host that is down refuses at once.
   */
  askPeer(from: MachineId, to: MachineId, signal: AbortSignal): Promise<SelfLeaseReport> {
    const lost = (): Promise<never> =>
      new Promise((_, reject) => {
        if (signal.aborted) return reject(new Error('timed out'));
        signal.addEventListener('abort', () => reject(new Error('timed out')), { once: true });
      });
    const reachable = (): SimHost | 'cut' | undefined => {
      const a = this.hosts.get(from);
      const b = this.hosts.get(to);
      if (a?.faults.peersCut === true || b?.faults.peersCut === true) return 'cut';
      return b?.up === true ? b : undefined;
    };
    const first = reachable();
    if (first === 'cut') return lost();
    if (first === undefined) return Promise.reject(new Error('connection refused'));
    return this.clock.sleep(this.options.peerLatencyMs).then(() => {
      const b = reachable();
      if (b === 'cut') return lost();
      if (b === undefined) throw new Error('connection refused');
      return b.selfLease();
    });
  }

  /** Records which hosts are cut off now (see #cutAt); called on every fault and every step. */
  #noteCuts(): void {
    const hosts = [...this.hosts.values()];
    const live = this.store.down ? this.readState().machines : undefined;
    for (const h of hosts) {
      if (!h.up) continue;
      const link = h.faults.partitioned || h.faults.dropKeepalives;
      if (link) this.#linkCutAt.set(h.id, this.now);
      if (link) this.#cutAt.set(h.id, this.now);
      if (live === undefined) continue;
      // The peers it asks: machines with a live lease when it last read the list (every
      // PEER_LIST_REFRESH_MS, 5 s, in src/agent/agent.ts): one registered since may be missing,
      // one gone since may still be asked. So any host down or cut counts, and a list may be empty.
      const others = hosts.filter((p) => p !== h);
      const listed = others.filter((p) => live.has(p.id) && (p.registeredAt ?? Infinity) <= this.now - 5_000);
      const cannotVouch =
        h.faults.peersCut || listed.length === 0 || others.some((p) => !p.up || p.faults.peersCut);
      if (cannotVouch) this.#cutAt.set(h.id, this.now);
    }
  }

  /** Heals every partition, clears latency, brings etcd back and restarts killed hosts. */
  healAll(): void {
    // Killed hosts restart before etcd is back (they see the outage), not at its very instant:
    // that is known issue E, which the random actions still reach.
    for (const h of [...this.hosts.values()]) if (!h.up) this.restart(h.id);
    this.etcdUp();
    for (const h of [...this.hosts.values()]) {
      this.heal(h.id);
      this.cutPeers(h.id, false);
      this.slow(h.id, 0);
      this.dropKeepalives(h.id, false);
      if (!h.up) this.restart(h.id);
    }
  }

  /** Stops every host (as kills: nothing is awaited in simulated time). */
  shutdown(): void {
    for (const h of this.hosts.values()) if (h.up) h.kill();
  }

  // ——— observation ———

  readState(): StoreState {
    const all = KEYS.all();
    const machines = new Map<MachineId, { createRevision: number; metadata: Record<string, string> }>();
    const units = new Map<UnitName, { hash: UnitHash; target: TargetState }>();
    const assignments: Assignment[] = [];
    const unschedulable = new Set<UnitName>();
    let leader: StoreState['leader'];
    for (const kv of this.store.range(all.start, all.end).kvs) {
      const k = KEYS.parse(kv.key);
      switch (k?.kind) {
        case 'machine': {
          const d = decodeValue('machine', kv.key, kv.value);
          if (d.ok)
            machines.set(k.machine, { createRevision: kv.createRevision, metadata: d.value.metadata });
          break;
        }
        case 'unit': {
          const d = decodeValue('unit', kv.key, kv.value);
          if (d.ok) units.set(k.unit, { hash: asUnitHash(d.value.hash), target: d.value.target });
          break;
        }
        case 'assignment': {
          const d = decodeValue('assignment', kv.key, kv.value);
          if (d.ok)
            assignments.push({
              unit: k.unit,
              machine: k.machine,
              hash: asUnitHash(d.value.hash),
              target: d.value.target,
            });
          break;
        }
        case 'unschedulable':
          unschedulable.add(k.unit);
          break;
        case 'leader': {
          const d = decodeValue('leader', kv.key, kv.value);
          if (d.ok) leader = { candidate: d.value.candidate, createRevision: kv.createRevision };
          break;
        }
        default:
          break;
      }
    }
    return { machines, units, assignments, unschedulable, leader };
  }

  /** Live machines a unit is assigned to in the store. */
  assignedTo(name: string, state = this.readState()): MachineId[] {
    return state.assignments
      .filter((a) => a.unit === name && state.machines.has(a.machine))
      .map((a) => a.machine)
      .sort();
  }

  /** Hosts whose agent has a process of the unit (any phase). */
  activeOn(name: string): MachineId[] {
    return [...(this.#active.get(asUnitName(name))?.keys() ?? [])].sort();
  }

  /** Hosts whose agent has the unit fully started. */
  runningOn(name: string): MachineId[] {
    return [...this.hosts.values()]
      .filter((h) => h.up && h.runtime.procs.get(asUnitName(name))?.phase === 'running')
      .map((h) => h.id)
      .sort();
  }

  leaders(): MachineId[] {
    return [...this.hosts.values()].filter((h) => h.up && h.engine?.stats.isLeader === true).map((h) => h.id);
  }

  /** The most engines that believed they led at once, at any check. */
  get maxLeaders(): number {
    return this.#maxLeaders;
  }

  // ——— invariants ———

  /** Whether a unit file (by hash) is global: the light agents take no run claim for those. */
  isGlobalHash(hash: UnitHash): boolean {
    return this.#catalog.get(hash)?.placement.global === true;
  }

  readonly activityHook: ActivityHook = (e) => {
    this.activity.push({ at: this.now, kind: e.kind, unit: e.unit, machine: e.machine, why: e.why });
    this.note(`${e.machine}: ${e.unit} ${e.kind === 'up' ? 'starts' : 'stopped'} (${e.why})`);
    let on = this.#active.get(e.unit);
    if (e.kind === 'down') {
      const since = on?.get(e.machine)?.since ?? this.now;
      on?.delete(e.machine);
      if (on?.size === 0) this.#active.delete(e.unit);
      this.#checkStop(e.unit, e.hash, e.machine, e.why, since);
      return;
    }
    if (on === undefined) this.#active.set(e.unit, (on = new Map<MachineId, Copy>()));
    on.set(e.machine, { hash: e.hash, since: this.now });
    this.#checkCopies(e.unit, on);
  };

  #placement(hash: UnitHash): Placement | undefined {
    return this.#catalog.get(hash)?.placement;
  }

  /**
   * Invariant 1 on the ground truth, for one unit active on the hosts `on`: an AtMostOnce unit is
   * never active on two hosts; a plain non-global one only while one copy is an orphan, left
   * running on a host whose own link to etcd was cut since that copy started (its lease expired
   * there, so the engine moved the unit; the agent stops the orphan once healed: docs/fencing.md).
   */
  #checkCopies(unit: UnitName, on: ReadonlyMap<MachineId, Copy>): void {
    const copies = [...on.entries()].filter(([, c]) => this.#placement(c.hash)?.global !== true);
    if (copies.length < 2) return;
    const hosts = copies.map(([m]) => m).join(' and ');
    const e = this.#movedByNewEngine.get(unit);
    if (e !== undefined && this.now - e <= 15_000) {
      this.#violate('7-moved-by-new-engine', `${unit} active on ${hosts} after known issue E moved it`);
      return;
    }
    // An orphan of a plain unit file is allowed (see above); a copy of an AtMostOnce file never is.
    const counted = copies.filter(
      ([m, c]) => this.#placement(c.hash)?.atMostOnce === true || !this.#cutSince(m, c.since),
    );
    if (counted.length < 2) return;
    const names = counted.map(([m]) => m).join(' and ');
    if (counted.some(([, c]) => this.#placement(c.hash)?.atMostOnce === true))
      this.#violate('1-at-most-once', `AtMostOnce ${unit} active on ${names}`);
    else this.#violate('1-single-active', `${unit} active on ${names}`);
  }

  /**
   * Invariant 7 (issue 12), on every stop of a unit on a live host: a control-plane fault stops no
   * unit, except an AtMostOnce unit fenced on a host that was cut off since its last renewal; and a
   * unit stops for any other reason only when its host is no longer assigned it (or the user just
   * changed it). Moves are checked on the assignments (#checkChurn).
   */
  #checkStop(unit: UnitName, hash: UnitHash, machine: MachineId, why: string, since: number): void {
    const h = this.hosts.get(machine);
    if (h === undefined || !h.up || why === 'host killed') return;
    if (why === 'fenced') {
      if (this.options.fencePolicy !== 'per-unit') return;
      if (this.#placement(hash)?.atMostOnce !== true) {
        this.#violate('7-fenced-plain', `${unit} (not AtMostOnce) was fenced on ${machine}`);
        return;
      }
      const cut = this.#cutAt.get(machine);
      if (cut !== undefined && cut >= h.lastRenewal) return;
      const back = this.#etcdBackAt;
      if (back !== undefined && this.now - back <= MIN_ENGINE_GRACE_MS)
        // Known issue D (docs/simulation.md, regressions.test.ts): a host that kept its AtMostOnce
        // units through an outage of etcd for everyone fences them when a peer renews before it does.
        this.#violate(
          '7-fenced-on-return',
          `AtMostOnce ${unit} was fenced on ${machine} ${this.now - back} ms after etcd came back for everyone: a peer renewed first`,
        );
      else
        this.#violate(
          '7-fenced-not-cut-off',
          `AtMostOnce ${unit} was fenced on ${machine}, which was not cut off since its last renewal ` +
            `(${(h.lastRenewal / 1000).toFixed(1)}s; cut off last ${cut === undefined ? 'never' : `${(cut / 1000).toFixed(1)}s`})`,
        );
      return;
    }
    const touched = this.#touchedAt.get(unit);
    if (touched !== undefined && this.now - touched < 10_000) return;
    // Its host's own link was cut since it started: the engine took the host for dead (moves, and
    // a global unit unassigned and assigned again), which is a host fault, not etcd's.
    if (this.#cutSince(machine, since)) return;
    const state = this.readState();
    const still = state.assignments.some(
      (a) => a.unit === unit && a.machine === machine && a.hash === hash && a.target === 'launched',
    );
    if (still && h.membership !== undefined)
      this.#violate(
        '7-stopped-while-assigned',
        `${unit} stopped on ${machine} although still launched there`,
      );
  }

  #violate(invariant: string, message: string): void {
    // A state that stays broken is reported once, not at every step.
    const key = `${invariant}: ${message}`;
    this.#seenNow.add(key);
    if (this.#seenBefore.has(key)) return;
    this.note(`VIOLATION ${invariant}: ${message}`);
    this.violations.push({ at: this.now, invariant, message });
  }

  #onFencedWrite(fence: number | undefined): void {
    if (fence === undefined) {
      this.#violate('2-fenced-writes', 'a transaction wrote assignments without comparing the leader key');
      return;
    }
    if (fence < this.#lastFence)
      this.#violate(
        '2-fenced-writes',
        `a write fenced on term ${fence} landed after term ${this.#lastFence} wrote`,
      );
    this.#lastFence = Math.max(this.#lastFence, fence);
    this.writesPerFence.set(fence, (this.writesPerFence.get(fence) ?? 0) + 1);
  }

  #trackFailover(host: MachineId): void {
    const state = this.readState();
    const membership = state.machines.get(host)?.createRevision;
    for (const a of state.assignments) {
      if (a.machine !== host) continue;
      const p = this.#catalog.get(a.hash)?.placement;
      if (p === undefined || p.global || p.machineId !== undefined) continue;
      this.#pendingFailovers.push({ host, membership, unit: a.unit, at: this.now });
    }
  }

  /** Every invariant against the agents and the store; violations are collected, not thrown. */
  check(): void {
    this.#seenBefore = this.#seenNow;
    this.#seenNow = new Set();
    const state = this.readState();
    this.#checkActive();
    this.#checkLeaders();
    this.#checkDesired(state);
    this.#checkChurn(state);
    this.#checkPlacements(state);
    this.#noteFailovers(state);
    this.#touched.clear();
  }

  #checkActive(): void {
    const seen = new Map<UnitName, Map<MachineId, Copy>>();
    for (const h of this.hosts.values()) {
      if (!h.up) continue;
      for (const [unit, p] of h.runtime.procs) {
        let on = seen.get(unit);
        if (on === undefined) seen.set(unit, (on = new Map<MachineId, Copy>()));
        on.set(h.id, { hash: p.hash, since: p.since });
      }
    }
    for (const [unit, on] of seen) this.#checkCopies(unit, on);
  }

  #checkLeaders(): void {
    const leaders = this.leaders();
    this.#maxLeaders = Math.max(this.#maxLeaders, leaders.length);
    if (leaders.length > 1)
      this.#violate('2-one-leader', `engines of ${leaders.join(', ')} all believe they lead`);
  }

  #checkDesired(state: StoreState): void {
    for (const [name, want] of this.#expected) {
      const got = state.units.get(name);
      if (got === undefined) this.#violate('3-desired-kept', `unit ${name} vanished from the store`);
      else if (got.hash !== want.hash || got.target !== want.target)
        this.#violate(
          '3-desired-kept',
          `unit ${name} is ${got.target}/${got.hash.slice(0, 8)}, want ${want.target}/${want.hash.slice(0, 8)}`,
        );
    }
  }

  #checkChurn(state: StoreState): void {
    const next = new Map<string, Placed>();
    const byMachine = new Map<MachineId, Assignment[]>();
    for (const a of state.assignments) byMachine.set(a.machine, [...(byMachine.get(a.machine) ?? []), a]);
    for (const a of state.assignments) {
      const key = `${a.unit}\0${a.machine}`;
      const prev = this.#placements.get(key);
      const m = state.machines.get(a.machine);
      if (m !== undefined) {
        const same = prev !== undefined && prev.hash === a.hash;
        next.set(key, {
          unit: a.unit,
          machine: a.machine,
          createRevision: m.createRevision,
          hash: a.hash,
          host: this.#processOf(a.machine, m.createRevision),
          seenAt: same ? prev.seenAt : this.now,
        });
      } else if (prev !== undefined && prev.hash === a.hash) {
        next.set(key, prev); // still assigned to a machine that is only re-registering (the grace)
      }
    }
    for (const [key, was] of this.#placements) {
      if (next.has(key)) continue;
      const unit = state.units.get(was.unit);
      if (
        this.#touched.has(was.unit) ||
        this.#drained.has(was.machine) ||
        unit === undefined ||
        unit.target === 'inactive' ||
        unit.hash !== was.hash
      )
        continue; // the user asked
      const placement = this.#catalog.get(was.hash)?.placement;
      const leaders = placement?.machineOf ?? [];
      const here = byMachine.get(was.machine) ?? [];
      if (leaders.some((l) => !here.some((a) => a.unit === l))) continue; // followed its leader
      const where = this.assignedTo(was.unit, state);
      const m = state.machines.get(was.machine);
      if (m === undefined || m.createRevision !== was.createRevision) {
        // Its membership went away. A move is right when the host died or its own link to etcd was
        // cut; not when only etcd failed for everyone (the engine waits for re-registrations).
        const h = this.hosts.get(was.machine);
        const sameProcess = h !== undefined && h === was.host && h.up;
        const leader = this.hosts.get(this.leaders()[0] ?? ('' as MachineId));
        const back = this.#etcdBackAt;
        if (!sameProcess || this.#cutSince(was.machine, was.seenAt)) continue;
        if (leader !== undefined && back !== undefined && leader.bornAt >= back) {
          // Known issue E (docs/simulation.md, regressions.test.ts): an engine whose process started
          // after etcd came back never saw the outage, so it gives re-registering hosts no grace.
          this.#movedByNewEngine.set(was.unit, this.now);
          this.#violate(
            '7-moved-by-new-engine',
            `${was.unit} left ${was.machine} (now on ${where.join(', ') || 'nothing'}): the leader ${leader.id} started after etcd came back and gave no grace`,
          );
        } else
          this.#violate(
            '7-moved-on-outage',
            `${was.unit} left ${was.machine} (now on ${where.join(', ') || 'nothing'}), whose host lives and was never cut off from etcd itself`,
          );
        continue;
      }
      this.#violate(
        '4-no-churn',
        `${was.unit} left live machine ${was.machine} (now on ${where.join(', ') || 'nothing'}) although nothing asked for it`,
      );
    }
    this.#placements = next;
  }

  /**
   * Whether the host's own link to etcd was cut recently enough to doom a lease it held at `since`:
   * a cut that ended up to a TTL before (the lease, last renewed before the cut, expires up to a
   * TTL after it) or later.
   */
  #cutSince(machine: MachineId, since: number): boolean {
    return (this.#linkCutAt.get(machine) ?? -Infinity) >= since - this.options.ttlMs;
  }

  /** The host process that registered this membership (undefined: a process that is gone). */
  #processOf(machine: MachineId, createRevision: number): SimHost | undefined {
    const h = this.hosts.get(machine);
    return h?.memberships.has(createRevision) === true ? h : undefined;
  }

  #checkPlacements(state: StoreState): void {
    const live = state.assignments.filter((a) => state.machines.has(a.machine));
    const perUnit = new Map<UnitName, MachineId[]>();
    for (const a of live) {
      const p = this.#catalog.get(a.hash)?.placement;
      if (p === undefined) continue;
      if (!p.global) perUnit.set(a.unit, [...(perUnit.get(a.unit) ?? []), a.machine]);
      const why = unfit(a.unit, p, a.machine, state, live, this.#placementOf);
      if (why !== undefined) this.#violate('6-placement', `${a.unit} on ${a.machine}: ${why}`);
    }
    for (const [unit, on] of perUnit) {
      if (on.length > 1) this.#violate('1-single-assignment', `${unit} is assigned to ${on.join(' and ')}`);
    }
  }

  #noteFailovers(state: StoreState): void {
    this.#pendingFailovers = this.#pendingFailovers.filter((f) => {
      const unit = state.units.get(f.unit);
      if (unit === undefined || unit.target === 'inactive') return false;
      // Another machine, or the same host restarted and registered again (a new membership) before
      // the engine moved the unit: either way the unit has a live machine again.
      const to = this.assignedTo(f.unit, state).find(
        (m) => m !== f.host || state.machines.get(m)?.createRevision !== f.membership,
      );
      if (to === undefined) return true;
      this.failovers.push({ host: f.host, unit: f.unit, faultAt: f.at, ms: this.now - f.at, to });
      this.note(`failover ${f.unit}: ${f.host} → ${to} after ${this.now - f.at} ms`);
      return false;
    });
  }

  /**
   * Liveness once faults are healed and time has passed: every launched unit runs exactly where it
   * is assigned (every fitting machine for a global unit), unless an independent check finds no
   * machine for it; nothing runs unassigned. Returns the problems (also recorded as violations).
   */
  checkSettled(): string[] {
    const problems: string[] = [];
    const state = this.readState();
    const live = state.assignments.filter((a) => state.machines.has(a.machine));
    const upHosts = [...this.hosts.values()].filter((h) => h.up);
    for (const [name, unit] of state.units) {
      const p = this.#catalog.get(unit.hash)?.placement;
      if (p === undefined) continue;
      const assigned = live.filter((a) => a.unit === name);
      const running = this.runningOn(name);
      const wantRunning = unit.target === 'launched' ? assigned.map((a) => a.machine).sort() : [];
      if (running.join() !== wantRunning.join())
        problems.push(
          `${name} (${unit.target}) runs on [${running.join(', ')}], assigned to [${wantRunning.join(', ')}]`,
        );
      if (unit.target === 'inactive') continue;
      if (assigned.some((a) => a.hash !== unit.hash || a.target !== unit.target))
        problems.push(`${name}: an assignment is stale (hash or target differs from the unit)`);
      const others = live.filter((a) => a.unit !== name);
      const fitting = [...state.machines.keys()].filter(
        (m) => unfit(name, p, m, state, others, this.#placementOf) === undefined,
      );
      if (p.global) {
        const missing = fitting.filter((m) => !assigned.some((a) => a.machine === m));
        if (missing.length > 0)
          problems.push(`global ${name} fits but is not assigned on ${missing.join(', ')}`);
      } else if (assigned.length === 0 && fitting.length > 0) {
        problems.push(
          `${name} is unassigned although ${fitting.join(', ')} fit${fitting.length === 1 ? 's' : ''}`,
        );
      }
    }
    for (const h of upHosts) {
      for (const [unit, proc] of h.runtime.procs) {
        const a = live.find((x) => x.unit === unit && x.machine === h.id);
        if (a === undefined || a.target !== 'launched' || a.hash !== proc.hash)
          problems.push(`${unit} runs on ${h.id} without a launched assignment there`);
      }
    }
    for (const p of problems) this.#violate('liveness', p);
    return problems;
  }

  readonly #placementOf = (hash: UnitHash): Placement | undefined => this.#catalog.get(hash)?.placement;

  #newHost(spec: HostSpec, faults: HostFaults = NO_FAULTS): SimHost {
    return new SimHost(this, spec, faults);
  }
}

/** Why `unit` (with `p`) may not be on `machine` given the other assignments (Conflicts both ways), or undefined. */
export function unfit(
  unit: UnitName,
  p: Placement,
  machine: MachineId,
  state: StoreState,
  assignments: readonly Assignment[],
  placementOf: (hash: UnitHash) => Placement | undefined,
): string | undefined {
  const m = state.machines.get(machine);
  if (m === undefined) return `machine ${machine} is not registered`;
  if (p.machineId !== undefined) {
    const ids = [...state.machines.keys()];
    const match = ids.includes(asMachineId(p.machineId))
      ? [p.machineId]
      : ids.filter((id) => id.startsWith(p.machineId ?? ''));
    if (match.length !== 1 || match[0] !== machine)
      return `MachineID=${p.machineId} does not name ${machine}`;
  }
  for (const [key, values] of Object.entries(p.machineMetadata)) {
    const v = m.metadata[key];
    if (v === undefined || !values.includes(v))
      return `MachineMetadata ${key}=${values.join('|')} but ${machine} has ${v ?? 'none'}`;
  }
  const here = assignments.filter((a) => a.machine === machine && a.unit !== unit);
  for (const leader of p.machineOf) {
    if (!here.some((a) => a.unit === leader)) return `MachineOf=${leader} but ${leader} is not on ${machine}`;
  }
  for (const pattern of p.conflicts) {
    const other = here.find((a) => globMatch(pattern, a.unit));
    if (other !== undefined) return `Conflicts=${pattern} but ${other.unit} is on ${machine}`;
  }
  for (const a of here) {
    const pattern = placementOf(a.hash)?.conflicts.find((c) => globMatch(c, unit));
    if (pattern !== undefined) return `${a.unit} on ${machine} has Conflicts=${pattern}`;
  }
  return undefined;
}

function describe(reason: unknown): string {
  if (typeof reason === 'object' && reason !== null && 'kind' in reason) return String(reason.kind);
  return String(reason);
}

function oneLine(text: string): string {
  const fleet = text.split('[X-Fleet]')[1] ?? '';
  return fleet.trim().split('\n').join(' ');
}
