// The agent that runs in every fleetd: a level-triggered loop that watches only this machine's
// assignments, diffs them against what its runtimes report (diff.ts, pure), carries out the
// actions, reports each unit's observed state under the membership lease, and self-fences.
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { setGridTimer, type Clock, type Timer } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { Wakeup } from '../lib/wakeup.js';
import type { Assignment, Machine, MachineId, UnitHash, UnitName, UnitStatus } from '../cluster/types.js';
import type {
  AssignmentWatcher,
  ClaimStore,
  LeaseId,
  Membership,
  StatusReader,
  StatusWriter,
  Subscription,
  UnitFileReader,
} from '../registry/registry.js';
import { DEFAULT_FENCE_AFTER_MS } from '../registry/kept-lease.js';
import { containerConfigFromSpec } from '../runtime/docker-config.js';
import { isFenceStop } from '../runtime/fence.js';
import { processConfigFromServiceSpec } from '../runtime/from-service-spec.js';
import type { RuntimeConfigInput, RuntimeConfigResult } from '../runtime/unit-environment.js';
import type {
  JournalOptions,
  ObservedUnit,
  ProcessUnitConfig,
  Runtime,
  RuntimeUnitConfigBase,
} from '../runtime/runtime.js';
import type { ContainerSpec } from '../unit/container.js';
import { parseUnitSpec, type UnitSpec } from '../unit/unit-spec.js';
import {
  diffUnits,
  type Action,
  type DesiredSpec,
  type DesiredUnit,
  type ObservedEntry,
  type ReportedState,
  type RuntimeKind,
} from './diff.js';
import {
  KEEP_STEP_MS,
  PEER_RECHECK_MS,
  PEER_TIMEOUT_MS,
  peerVerdict,
  type PeerAnswer,
  type PeerVerdict,
  type SelfLeaseReport,
} from './peer-check.js';
import type { FleetMetrics } from '../metrics/fleet-metrics.js';
import { unitBaseEnvironment, unitSpecifiers, type HostFacts } from './unit-environment.js';

export { PEER_RECHECK_MS, FENCE_KEEP_BOUND_MS, MIN_ENGINE_GRACE_MS } from './peer-check.js';

/** Watches wake the agent; this only backs them up. */
export const DEFAULT_AGENT_RESYNC_MS = 30_000;
/**
 * Units started at once; the rest queue (they are busy, so passes leave them alone). A start is
 * mostly waiting (its run claim in etcd, the host supervisor's answer): with 8, a burst of 100 on 3
 * hosts took 3.4–4.0 s; with 32, 3.0–3.3 s and less CPU (bigger claim and status transactions).
 * A burst of 500 still does not flood etcd or the host.
 */
const MAX_CONCURRENT_STARTS = 32;
/** How soon a start that waits for another machine's run claim is tried again. */
const CLAIM_RETRY_MS = 250;
/**
 * How long units found on the host at start (adopted) and not assigned to it are kept (stopped, not
 * removed): long enough for the engine to place them again after a power-on (a lease TTL of the
 * dead machine plus the engine's grace), so that the same container starts again.
 */
export const ADOPTED_KEEP_MS = 30_000;
/** After a runtime operation failed (the runtime itself could not act), try again after this. */
const RETRY_MS = 2_000;
/**
 * A starting or stopping state (activating, deactivating) is reported once it has lasted this long,
 * and a new sub-state of one already reported once that sub-state has. A start passes through
 * start-pre, start and start-post to running: a burst of 100 starts on 3 hosts wrote 367 statuses
 * to etcd (as many events to every watcher), three quarters of them states that lasted a few
 * milliseconds or, with the machine busy, a second; with this it writes 177. The end state
 * (running, failed, dead) is written at once; a unit that stays activating (a slow ExecStartPre, an
 * auto-restart wait) shows so this much later.
 */
export const TRANSIENT_REPORT_MS = 1_000;
const TRANSIENT: ReadonlySet<string> = new Set(['activating', 'deactivating']);
/** How often the list of peers (machines with a live lease) is read while this host runs AtMostOnce units. */
const PEER_LIST_REFRESH_MS = 5_000;
/** Room for a loaded host's timers beyond PEER_TIMEOUT_MS before the first answers count as missing. */
const CHECK_SLACK_MS = 250;
/**
 * The longest the fencing watchdog waits between looks while the lease is renewed and far from its
 * deadline. It looked every 250 ms, a fifth of an idle fleetd's wakeups (docs/memory.md); now it
 * looks when a renewal comes in (the supervisors' deadline moves with it), when the lease is lost,
 * and on this timer (twice as long when the renewals call it), on the timer grid (lib/clock.ts
 * setGridTimer); every 250 ms from a little before the peer check would start.
 */
const IDLE_WATCHDOG_MS = 1_000;

/** What the agent needs of this fleetd's membership: the lease its statuses live under. */
export type AgentMembership = Pick<Membership, 'leaseId' | 'renewedAt' | 'signal'> &
  Partial<Pick<Membership, 'onRenewed'>>;

export type FencingPolicy = 'per-unit' | 'stop' | 'keep-running';

export interface FencingOptions {
  /**
   * `per-unit` (default): when the lease has not been renewed for `deadlineMs`, stop the
   * `AtMostOnce=true` units, unless every peer says it has lost etcd too (docs/fencing.md); other
   * units keep running. `stop`: every unit is treated as AtMostOnce, and stopped at the deadline
   * without asking the peers. `keep-running`: nothing is stopped (a unit may then run on two machines).
   */
  readonly policy: FencingPolicy;
  /** Must be shorter than the lease TTL; default DEFAULT_FENCE_AFTER_MS (3.5 s for a 5 s TTL). */
  readonly deadlineMs?: number;
}

/** Makes a Docker runtime's config from a `[Container]` unit (as containerConfigFromSpec does). */
export type ContainerConfigBuilder = (
  input: RuntimeConfigInput<ContainerSpec>,
) => RuntimeConfigResult<RuntimeUnitConfigBase>;

/** A machine with a live lease, as the agent last read it: a peer to ask when etcd is out of reach. */
export interface PeerMachine {
  readonly id: MachineId;
  /** Where its fleetd API listens (Machine.apiAddress); a peer without one cannot be asked. */
  readonly apiAddress?: string;
}

/** How the agent reaches its peers for the peer check (fleetd: the registry and the peer client). */
export interface AgentPeers {
  /** The machines that hold a live lease now (this one may be among them), read from etcd. */
  list(): Promise<readonly PeerMachine[]>;
  /** The peer's own GET /v1/self/lease; rejects when it cannot be had. Ends soon after `signal` aborts. */
  ask(peer: PeerMachine & { readonly apiAddress: string }, signal: AbortSignal): Promise<SelfLeaseReport>;
}

/** What an agent uses of the registry: its own assignments, unit files, its statuses and run claims. */
export type AgentRegistry = AssignmentWatcher &
  UnitFileReader &
  StatusWriter &
  Pick<StatusReader, 'listStatuses'> &
  Pick<ClaimStore, 'claimUnit' | 'releaseUnit'>;

export interface AgentDeps {
  readonly registry: AgentRegistry;
  readonly runtimes: { readonly process: Runtime<ProcessUnitConfig>; readonly container?: Runtime };
  readonly machine: Pick<Machine, 'id' | 'ip' | 'metadata'>;
  /** This fleetd's current membership; it changes when fleetd re-registers after losing its lease. */
  readonly getMembership: () => AgentMembership | undefined;
  readonly clock: Clock;
  readonly log: Logger;
  readonly fencing?: FencingOptions;
  /** For the peer check of policy `per-unit`; without it there is no peer to ask, so AtMostOnce units fence at the deadline. */
  readonly peers?: AgentPeers;
  /**
   * Machines confirmed dead by the peer watch and trusted now (peer-check.ts trustedDead): a run
   * claim one of them holds is taken over, except an AtMostOnce unit's.
   */
  readonly deadMachines?: () => ReadonlySet<MachineId>;
  readonly resyncMs?: number;
  /** How often the fencing watchdog looks at the lease; default a tenth of the deadline, at most 250 ms. */
  readonly watchdogMs?: number;
  /** %H; default the OS host name. */
  readonly hostname?: string;
  /** %b; default /proc/sys/kernel/random/boot_id. */
  readonly bootId?: string;
  /** Reads EnvironmentFile=s; default the file system. */
  readonly readFile?: (path: string) => string | undefined;
  /** Default containerConfigFromSpec (the Docker runtime's). */
  readonly containerConfig?: ContainerConfigBuilder;
  /** Cluster-wide variables every unit gets (e.g. FLEETTS_ETCD_ENDPOINTS for sidekicks). */
  readonly environment?: Readonly<Record<string, string>>;
  /** Counts actions by kind and result (docs/metrics.md). */
  readonly metrics?: Pick<FleetMetrics, 'agentActions'>;
}

/** The peer check of one outage: the renewal it follows, the latest round of questions and its verdict. */
interface PeerCheck {
  readonly renewal: number;
  startedAt: number;
  inFlight: boolean;
  verdict?: PeerVerdict & { readonly at: number };
}

type ParsedSpec = { readonly kind: 'ok'; readonly spec: UnitSpec } | Extract<DesiredSpec, { kind: 'error' }>;

export class Agent {
  readonly #d: AgentDeps;
  readonly #host: HostFacts;
  readonly #policy: FencingPolicy;
  readonly #deadlineMs: number;
  readonly #wake: Wakeup;
  readonly #stop = new AbortController();
  readonly #texts = new Map<UnitHash, string>();
  readonly #specs = new Map<string, ParsedSpec>();
  readonly #busy = new Map<UnitName, Promise<void>>();
  readonly #attempted = new Map<UnitName, UnitHash>();
  readonly #startFailures = new Map<UnitName, { hash: UnitHash; reason: string }>();
  /** What etcd holds for this machine (under #reportedLease). */
  #reported = new Map<UnitName, UnitStatus>();
  /** Reported statuses found in etcd rather than written under the current lease: written again. */
  #inherited = new Set<UnitName>();
  #reportedLease: LeaseId | undefined;
  /** What this host observes now: statuses of assigned units (reported or not). */
  #local = new Map<UnitName, UnitStatus>();
  #observed = new Map<UnitName, ObservedEntry>();
  /** Each runtime's observation as an entry of this agent, and as a status (#list, #report). */
  readonly #entries = new WeakMap<ObservedUnit, ObservedEntry>();
  readonly #statuses = new WeakMap<ObservedEntry, UnitStatus>();
  #assignments: readonly Assignment[] = [];
  #assignmentsFresh = false;
  #sub: Subscription | undefined;
  #unsubscribe: (() => void)[] = [];
  #membership: AgentMembership | undefined;
  #lastRenewal: number | undefined;
  #startedAt = 0;
  /** Adopted units not removed before ADOPTED_KEEP_MS (emptied when that time is up). */
  #keep = new Set<UnitName>();
  #fenced: { reason: string } | undefined;
  #detached = false;
  /** The renewal the supervisors' deadline was last written for. */
  #deadlineFor: number | undefined;
  /** Peers as last read while the lease was alive, and when (monotonic). */
  #peerList: readonly PeerMachine[] | undefined;
  #peerListAt: number | undefined;
  #peerListReading = false;
  /** The peer check of the current outage (keyed by the last renewal it follows). */
  #check: PeerCheck | undefined;
  #watchdog: Timer | undefined;
  /** Ends the watchdog's subscription to the membership's renewals. */
  #unfollow: (() => void) | undefined;
  /** Units whose run claim could not be released (etcd unreachable), with the lease that holds it. */
  readonly #unreleased = new Map<UnitName, LeaseId>();
  /** The pass #passSoon asked for (one at a time). */
  #retryPass: Timer | undefined;
  /** The pass for statuses held back to settle (TRANSIENT_REPORT_MS), and when it is due (monotonic). */
  #settleTimer: Timer | undefined;
  #settleAt: number | undefined;
  /** When this host first saw a reported transient unit in its current sub-state (#settlesAt). */
  readonly #subSeen = new Map<UnitName, { key: string; at: number }>();
  #running: Promise<void> | undefined;
  /** Counters for tests and metrics. */
  readonly stats = {
    passes: 0,
    statusWrites: 0,
    statusDeletes: 0,
    fences: 0,
    claimWaits: 0,
    peerChecks: 0,
    keeps: 0,
    /** Looks of the fencing watchdog at the lease (#tick). */
    watchdogLooks: 0,
  };

  constructor(deps: AgentDeps) {
    this.#d = deps;
    this.#policy = deps.fencing?.policy ?? 'per-unit';
    this.#deadlineMs = deps.fencing?.deadlineMs ?? DEFAULT_FENCE_AFTER_MS;
    this.#wake = new Wakeup(deps.clock);
    this.#host = {
      machine: deps.machine,
      hostname: deps.hostname ?? osHostname(),
      bootId: deps.bootId ?? readBootId(),
      environment: deps.environment ?? {},
    };
  }

  /** True while self-fenced (AtMostOnce units stopped, none started until the lease is alive again). */
  get fenced(): boolean {
    return this.#fenced !== undefined;
  }

  /**
   * Adopts what the runtimes still run from a previous fleetd (nothing is restarted), then starts
   * the loop and the fencing watchdog in the background.
   */
  async start(): Promise<void> {
    const { clock, log } = this.#d;
    this.#startedAt = clock.monotonic();
    for (const [kind, runtime] of this.#runtimeList()) {
      for (const o of await runtime.adopt()) {
        // A unit adopted in any state was started by a previous fleetd for that hash: an ended one
        // ended by itself and stays so; one stopped by its supervisor's self-fencing, or lost with
        // its supervisor (the host lost power, a reboot), may start again.
        if (!isFenceStop(o.reason) && o.lost !== true) this.#attempted.set(o.unit, o.hash);
        this.#keep.add(o.unit);
        log.info(
          {
            event: 'agent.unit_adopted',
            unit: o.unit,
            runtime: kind,
            active: o.active,
            sub: o.sub,
            mainPid: o.pid,
          },
          `adopted ${o.unit} (${o.active}/${o.sub})`,
        );
      }
      this.#unsubscribe.push(runtime.onChange(() => this.#wake.trigger()));
    }
    if (this.#policy === 'keep-running') {
      for (const [, runtime] of this.#runtimeList()) runtime.setFenceDeadline?.(undefined);
    }
    if (this.#keep.size > 0) {
      void clock
        .sleep(ADOPTED_KEEP_MS, this.#stop.signal)
        .then(() => {
          this.#keep.clear();
          this.#wake.trigger();
        })
        .catch(() => undefined);
    }
    this.#tick();
    this.#running = this.#run();
  }

  /**
   * Stops the loop. Units keep running (a restarted fleetd adopts them) unless `stopUnits`, for a
   * host that leaves the cluster for good. Runtimes are left open (their owner closes them).
   */
  async stop(options: { readonly stopUnits?: boolean } = {}): Promise<void> {
    this.#stop.abort(new Error('agent stopped'));
    this.#watchdog?.cancel();
    this.#unfollow?.();
    this.#retryPass?.cancel();
    this.#settleTimer?.cancel();
    await this.#running;
    this.#sub?.close();
    for (const u of this.#unsubscribe) u();
    await Promise.allSettled([...this.#busy.values()]);
    if (options.stopUnits === true) {
      for (const o of await this.#list()) {
        await this.#runtime(o.runtime)?.stop(o.unit);
      }
    }
  }

  /** This host's observed state of a unit (assigned or not), or undefined when it does not know it. */
  status(unit: UnitName): UnitStatus | undefined {
    // The runtime's view is the freshest (passes that report may wait on etcd; fenced ones do not
    // report); a status the agent made up (load error, other hash) wins over a stale run.
    const local = this.#local.get(unit);
    const o = this.#observed.get(unit);
    if (o !== undefined && (local === undefined || local.hash === o.hash)) return this.#statusOf(o);
    return local;
  }

  /** The unit's output kept on this host. Throws RuntimeError `not_found` for a unit it never ran. */
  journal(unit: UnitName, options?: JournalOptions): AsyncIterable<string> {
    const kind = this.#observed.get(unit)?.runtime ?? 'process';
    const runtime = this.#runtime(kind) ?? this.#d.runtimes.process;
    return runtime.journal(unit, options);
  }

  // ——— the loop ———

  async #run(): Promise<void> {
    const { log, clock } = this.#d;
    const stop = this.#stop.signal;
    const resyncMs = this.#d.resyncMs ?? DEFAULT_AGENT_RESYNC_MS;
    while (!stop.aborted) {
      try {
        await this.#pass();
      } catch (err) {
        log.warn({ event: 'agent.pass_failed', err: (err as Error).message }, 'agent pass failed; retrying');
        await clock.sleep(RETRY_MS, stop).catch(() => undefined);
        continue;
      }
      await this.#wake.wait(resyncMs, stop);
    }
  }

  async #pass(): Promise<void> {
    this.stats.passes++;
    if (this.#fenced !== undefined) {
      const observed = await this.#list();
      this.#execute(
        diffUnits(
          [],
          observed.filter((o) => this.#atMostOnce(o)),
          this.#context(),
        ),
      );
      return;
    }
    const m = this.#membership;
    if (m === undefined || m.signal.aborted) return; // what the engine wants is unknown
    if (!this.#assignmentsFresh) await this.#subscribe();
    if (this.#stop.signal.aborted || this.#fenced !== undefined) return;
    const unknown = new Set<UnitName>();
    const desired: DesiredUnit[] = [];
    for (const a of this.#assignments) {
      const spec = await this.#specFor(a);
      if (spec === undefined) unknown.add(a.unit);
      else desired.push({ unit: a.unit, hash: a.hash, target: a.target, spec: desiredSpec(spec) });
    }
    for (const d of desired) this.#keep.delete(d.unit); // assigned: no longer a leftover
    // A file that could not be read (etcd unreachable) is asked for again soon: no event may come.
    if (unknown.size > 0) this.#passSoon();
    const observed = await this.#list();
    if (this.#fenced !== undefined) return;
    const ctx = this.#context(unknown);
    const actions = diffUnits(desired, observed, ctx);
    this.#execute(actions);
    // "Not restarted until its assignment changes": a unit set to loaded, or unassigned, may start again later.
    const wanted = new Map(desired.map((d) => [d.unit, d]));
    for (const unit of [...this.#attempted.keys()]) {
      const d = wanted.get(unit);
      if (unknown.has(unit) || this.#busy.has(unit)) continue;
      if (d === undefined ? !this.#observed.has(unit) : d.target === 'loaded') {
        this.#attempted.delete(unit);
        this.#startFailures.delete(unit);
      }
    }
    this.#releaseLeftovers(m, desired);
    // The peers are read as soon as an AtMostOnce unit runs, not at the watchdog's next look: an
    // etcd outage right after its start must find them known (docs/fencing.md).
    if (this.#policy === 'per-unit') this.#refreshPeers(this.#d.clock.monotonic());
    await this.#report(m, desired, observed, actions);
  }

  /** (Re)subscribes to this machine's assignments: its first call is a fresh list from etcd. */
  async #subscribe(): Promise<void> {
    this.#sub?.close();
    this.#sub = undefined;
    this.#assignmentsFresh = false;
    let first = true;
    const sub = await this.#d.registry.watchAssignments(this.#d.machine.id, (set) => {
      this.#assignments = set.items;
      if (set.problems.length > 0) {
        this.#d.log.warn(
          { event: 'agent.assignment_problems', problems: set.problems },
          'some assignments of this machine do not decode; they are ignored',
        );
      }
      if (!first) this.#wake.trigger();
      first = false;
    });
    if (this.#stop.signal.aborted) {
      sub.close();
      return;
    }
    this.#sub = sub;
    this.#assignmentsFresh = true;
  }

  #context(unknown: ReadonlySet<UnitName> = new Set()): Parameters<typeof diffUnits>[2] {
    return {
      runtimes: new Set<RuntimeKind>(
        this.#d.runtimes.container === undefined ? ['process'] : ['process', 'container'],
      ),
      busy: new Set([...this.#busy.keys(), ...unknown]),
      attempted: this.#attempted,
      keep: this.#keep,
      ...(this.#fenced === undefined ? {} : { fenced: this.#fenced }),
    };
  }

  async #list(): Promise<ObservedEntry[]> {
    const all: ObservedEntry[] = [];
    for (const [kind, runtime] of this.#runtimeList()) {
      for (const o of await runtime.list()) {
        // A runtime hands out the same object while a unit does not change (the process runtime
        // for a second): its entry, and the status made of it (#report), are made once.
        let entry = this.#entries.get(o);
        if (entry === undefined) this.#entries.set(o, (entry = { ...o, runtime: kind }));
        all.push(entry);
      }
    }
    this.#observed = new Map(all.map((o) => [o.unit, o]));
    return all;
  }

  /** The unit's parsed file (cached by hash and name), or undefined when it cannot be read now. */
  async #specFor(a: Assignment): Promise<ParsedSpec | undefined> {
    const key = `${a.hash} ${a.unit}`;
    const cached = this.#specs.get(key);
    if (cached !== undefined) return cached;
    let text = this.#texts.get(a.hash);
    if (text === undefined) {
      try {
        text = await this.#d.registry.getUnitFile(a.hash);
      } catch (err) {
        this.#d.log.warn(
          { event: 'agent.unit_file_unreadable', unit: a.unit, hash: a.hash, err: (err as Error).message },
          `cannot read the unit file of ${a.unit} now; left alone until it can be`,
        );
        return undefined;
      }
      if (text === undefined) {
        // Not cached: it may be a submit in flight.
        return {
          kind: 'error',
          load: 'not-found',
          reason: `its unit file ${a.hash.slice(0, 12)} is not in the registry`,
        };
      }
      this.#texts.set(a.hash, text);
    }
    let parsed: ParsedSpec;
    try {
      parsed = { kind: 'ok', spec: parseUnitSpec(text, a.unit) };
    } catch (err) {
      parsed = { kind: 'error', load: 'error', reason: (err as Error).message };
    }
    this.#specs.set(key, parsed);
    return parsed;
  }

  // ——— the executor ———

  #execute(actions: readonly Action[]): void {
    for (const action of actions) {
      if (action.kind === 'hold' || action.kind === 'report') continue;
      this.#launch(action);
    }
  }

  /** Runs one action in the background; the unit is busy (left alone by passes) until it ends. */
  #launch(action: Exclude<Action, { kind: 'hold' | 'report' }>): void {
    const { log } = this.#d;
    const unit = action.unit;
    const op = (async (): Promise<void> => {
      let ok = true;
      let progressed = true;
      const count = (result: 'ok' | 'error' | 'waiting'): void =>
        this.#d.metrics?.agentActions.inc({ action: action.kind, result });
      // Starts take a slot (a burst of 500 must not flood etcd and the host); stops never wait.
      const limited = action.kind === 'start' || action.kind === 'replace';
      if (limited) await this.#acquireStartSlot();
      try {
        progressed = (await this.#act(action)) !== 'waiting';
        count(progressed ? 'ok' : 'waiting');
      } catch (err) {
        ok = false;
        count('error');
        if (action.kind === 'start' || action.kind === 'replace') this.#attempted.delete(unit);
        log.error(
          { event: 'agent.action_failed', unit, action: action.kind, err: (err as Error).message },
          `${action.kind} ${unit} failed: ${(err as Error).message}; retrying in ${RETRY_MS} ms`,
        );
      } finally {
        if (limited) this.#releaseStartSlot();
        this.#busy.delete(unit);
      }
      if (this.#fenced !== undefined) void this.#fenceNow();
      // A start that waits for a run claim is retried by its own timer, not by a busy loop.
      if (ok && progressed) this.#wake.trigger();
      else if (!ok) this.#d.clock.setTimer(RETRY_MS, () => this.#wake.trigger());
    })();
    this.#busy.set(unit, op);
  }

  #startsInFlight = 0;
  readonly #startQueue: (() => void)[] = [];

  async #acquireStartSlot(): Promise<void> {
    if (this.#startsInFlight >= MAX_CONCURRENT_STARTS) {
      await new Promise<void>((resolve) => this.#startQueue.push(resolve));
    }
    this.#startsInFlight++;
  }

  #releaseStartSlot(): void {
    this.#startsInFlight--;
    this.#startQueue.shift()?.();
  }

  async #act(action: Exclude<Action, { kind: 'hold' | 'report' }>): Promise<'done' | 'waiting'> {
    const { log } = this.#d;
    const runtime = this.#runtime(action.runtime);
    if (runtime === undefined) return 'done';
    const fields = { unit: action.unit, runtime: action.runtime, reason: action.reason };
    switch (action.kind) {
      case 'start':
      case 'replace': {
        if (this.#fenced !== undefined) return 'done';
        this.#attempted.set(action.unit, action.hash);
        this.#startFailures.delete(action.unit);
        const built = this.#buildConfig(action.unit, action.hash);
        if (built.kind === 'error') {
          this.#startFailures.set(action.unit, { hash: action.hash, reason: built.reason });
          log.warn({ event: 'agent.unit_not_startable', ...fields, err: built.reason }, built.reason);
          return 'done';
        }
        for (const w of built.warnings) log.warn({ event: 'agent.unit_warning', unit: action.unit }, w);
        if (!(await this.#claim(action.unit, action.hash))) return 'waiting';
        await runtime.start(built.config);
        log.info(
          {
            event: action.kind === 'start' ? 'agent.unit_started' : 'agent.unit_replaced',
            hash: action.hash,
            ...fields,
          },
          `${action.kind === 'start' ? 'started' : 'replaced'} ${action.unit}: ${action.reason}`,
        );
        return 'done';
      }
      case 'stop':
        this.#attempted.delete(action.unit);
        await runtime.stop(action.unit);
        await this.#release(action.unit);
        log.info({ event: 'agent.unit_stopped', ...fields }, `stopped ${action.unit}: ${action.reason}`);
        return 'done';
      case 'remove':
        this.#attempted.delete(action.unit);
        this.#startFailures.delete(action.unit);
        await runtime.remove(action.unit);
        await this.#release(action.unit);
        log.info({ event: 'agent.unit_removed', ...fields }, `removed ${action.unit}: ${action.reason}`);
        return 'done';
    }
  }

  /**
   * The run claim (registry.claimUnit): a non-global unit starts only while this machine holds it,
   * so it never runs on two machines, whatever the timing of plans and stops. When another machine
   * still holds it (the unit is stopping there), the start waits and is retried shortly.
   */
  async #claim(unit: UnitName, hash: UnitHash): Promise<boolean> {
    const parsed = this.#specs.get(`${hash} ${unit}`);
    if (parsed?.kind === 'ok' && parsed.spec.placement.global) return true;
    const m = this.#membership;
    if (m === undefined) {
      this.#attempted.delete(unit);
      return false;
    }
    // A claim held by a machine its peers found dead (after an etcd disturbance: deadMachines) is
    // taken over, but never an AtMostOnce unit's: that one waits for the holder's lease.
    const dead =
      parsed?.kind === 'ok' && parsed.spec.placement.atMostOnce === true
        ? undefined
        : this.#d.deadMachines?.();
    const res = await this.#d.registry.claimUnit(
      m,
      unit,
      this.#d.machine.id,
      dead === undefined || dead.size === 0 ? {} : { takeFrom: (holder) => dead.has(holder) },
    );
    this.stats.claimWaits += res.ok ? 0 : 1;
    if (res.ok) {
      this.#unreleased.delete(unit); // held again, for a unit that starts here
      if (res.takenFrom !== undefined)
        this.#d.log.warn(
          { event: 'agent.claim_taken', unit, from: res.takenFrom },
          `${unit}: took its run claim over from ${res.takenFrom}, which its peers found dead`,
        );
      return true;
    }
    this.#attempted.delete(unit);
    this.#d.log.info(
      { event: 'agent.start_waiting', unit, holder: res.holder },
      `${unit} waits to start until it has stopped on ${res.holder}`,
    );
    this.#d.clock.setTimer(CLAIM_RETRY_MS, () => this.#wake.trigger());
    return false;
  }

  async #release(unit: UnitName): Promise<void> {
    const m = this.#membership;
    if (m === undefined) return; // its lease, and the claim with it, is gone
    await this.#d.registry.releaseUnit(m, unit).then(
      () => this.#unreleased.delete(unit),
      (err: unknown) => {
        // Released by a later pass while the lease lives (the claim dies with it otherwise): a
        // claim left behind would keep the unit from starting on any other machine.
        this.#unreleased.set(unit, m.leaseId);
        this.#passSoon();
        this.#d.log.warn(
          { event: 'agent.release_failed', unit, err: (err as Error).message },
          'could not release run claim; retrying',
        );
      },
    );
  }

  /** Another pass in RETRY_MS, for what failed because etcd could not be reached (no event may come). */
  #passSoon(): void {
    if (this.#retryPass !== undefined || this.#stop.signal.aborted) return;
    this.#retryPass = this.#d.clock.setTimer(RETRY_MS, () => {
      this.#retryPass = undefined;
      this.#wake.trigger();
    });
  }

  /** Releases again the claims whose release failed, of units that no longer run or start here. */
  #releaseLeftovers(m: AgentMembership, desired: readonly DesiredUnit[]): void {
    for (const [unit, lease] of [...this.#unreleased]) {
      if (lease !== m.leaseId) {
        this.#unreleased.delete(unit); // that lease, and the claim with it, is gone
        continue;
      }
      const o = this.#observed.get(unit);
      const running = o !== undefined && o.active !== 'inactive' && o.active !== 'failed';
      const wanted = desired.some((d) => d.unit === unit && d.target === 'launched');
      if (running || wanted || this.#busy.has(unit)) continue;
      void this.#release(unit);
    }
  }

  #buildConfig(
    unit: UnitName,
    hash: UnitHash,
  ):
    | { kind: 'ok'; config: RuntimeUnitConfigBase; warnings: readonly string[] }
    | { kind: 'error'; reason: string } {
    const parsed = this.#specs.get(`${hash} ${unit}`);
    if (parsed === undefined || parsed.kind === 'error') {
      return { kind: 'error', reason: parsed?.reason ?? `the unit file ${hash.slice(0, 12)} is not loaded` };
    }
    const spec = parsed.spec;
    const atMostOnce =
      this.#policy === 'stop' || (this.#policy === 'per-unit' && spec.placement.atMostOnce === true);
    const built = this.#buildRuntimeConfig(unit, hash, spec);
    if (built.kind === 'error' || !atMostOnce) return built;
    return { ...built, config: { ...built.config, atMostOnce: true } };
  }

  #buildRuntimeConfig(
    unit: UnitName,
    hash: UnitHash,
    spec: UnitSpec,
  ):
    | { kind: 'ok'; config: RuntimeUnitConfigBase; warnings: readonly string[] }
    | { kind: 'error'; reason: string } {
    const input = {
      unit,
      hash,
      specifiers: unitSpecifiers(spec.parsedName, this.#host),
      baseEnv: unitBaseEnvironment(unit, this.#host),
      readFile: this.#d.readFile ?? readFileOrUndefined,
    };
    if (spec.run.kind === 'service') {
      const built = processConfigFromServiceSpec({ ...input, spec: spec.run.service });
      if (built.kind === 'error' || spec.health === undefined) return built;
      const config: ProcessUnitConfig = { ...built.config, health: spec.health };
      return { ...built, config };
    }
    const build = this.#d.containerConfig ?? containerConfigFromSpec;
    return build({ ...input, spec: spec.run.container });
  }

  // ——— statuses ———

  async #report(
    m: AgentMembership,
    desired: readonly DesiredUnit[],
    observed: readonly ObservedEntry[],
    actions: readonly Action[],
  ): Promise<void> {
    const { registry, clock, log } = this.#d;
    if (m.leaseId !== this.#reportedLease) {
      // What etcd holds for this machine is what this agent answers for now: statuses left by an
      // earlier fleetd on this host, under the lease it resumed (a host rebooted within the life
      // of its lease) or under one that has not expired yet. Those of units no longer here are
      // deleted below like any other; a unit that moved away while the host was off would
      // otherwise show as running here until that lease dies.
      let mine: UnitStatus[];
      try {
        mine = (await registry.listStatuses()).items.filter((s) => s.machine === this.#d.machine.id);
      } catch (err) {
        log.warn(
          { event: 'agent.report_failed', failures: 1, err: (err as Error).message },
          'could not read the statuses this host left in etcd; retrying',
        );
        clock.setTimer(RETRY_MS, () => this.#wake.trigger());
        return;
      }
      this.#reported = new Map(mine.map((s) => [s.unit, s]));
      // They may live under another lease (one about to expire): each is written again, under this one.
      this.#inherited = new Set(this.#reported.keys());
      this.#reportedLease = m.leaseId;
    }
    const byUnit = new Map(observed.map((o) => [o.unit, o]));
    const decided = new Map(actions.map((a) => [a.unit, a]));
    const now = new Date(clock.now()).toISOString();
    const local = new Map<UnitName, UnitStatus>();
    const keep = new Set<UnitName>();
    for (const d of desired) {
      const action = decided.get(d.unit);
      const failure = this.#startFailures.get(d.unit);
      const o = byUnit.get(d.unit);
      let state: ReportedState | undefined;
      if (action?.kind === 'report') state = action.state;
      else if (failure !== undefined && failure.hash === d.hash) {
        state = { hash: d.hash, load: 'loaded', active: 'failed', sub: 'failed', reason: failure.reason };
      } else if (o !== undefined) {
        let status = this.#statuses.get(o);
        if (status === undefined) this.#statuses.set(o, (status = this.#statusOf(o)));
        local.set(d.unit, status);
        continue;
      } else if (this.#busy.has(d.unit)) {
        keep.add(d.unit); // starting: its first observed state follows at once
        continue;
      } else {
        const reason = action?.kind === 'hold' ? action.reason : undefined;
        state = {
          hash: d.hash,
          load: 'loaded',
          active: 'inactive',
          sub: 'dead',
          ...(reason === undefined ? {} : { reason }),
        };
      }
      const prev = this.#local.get(d.unit) ?? this.#reported.get(d.unit);
      const same =
        prev !== undefined &&
        prev.hash === state.hash &&
        prev.load === state.load &&
        prev.active === state.active &&
        prev.sub === state.sub &&
        prev.reason === state.reason;
      local.set(d.unit, {
        unit: d.unit,
        machine: this.#d.machine.id,
        ...state,
        since: same ? prev.since : now,
      });
    }
    this.#local = local;

    // Every change of the pass in one transaction (a burst of starts is a few writes, not one per unit).
    const puts: UnitStatus[] = [];
    const nowMs = clock.now();
    let settleAt: number | undefined;
    for (const [unit, status] of local) {
      const prev = this.#reported.get(unit);
      if (prev !== undefined && !this.#inherited.has(unit) && (prev === status || sameStatus(prev, status)))
        continue;
      const at = this.#settlesAt(status, prev, nowMs);
      if (at > nowMs) {
        settleAt = Math.min(settleAt ?? at, at);
        continue;
      }
      puts.push(status);
    }
    for (const unit of this.#subSeen.keys()) if (!local.has(unit)) this.#subSeen.delete(unit);
    if (settleAt !== undefined) this.#settleLater(settleAt - nowMs);
    const gone = [...this.#reported.keys()].filter((unit) => !local.has(unit) && !keep.has(unit));
    if (puts.length === 0 && gone.length === 0) return;
    const machine = this.#d.machine.id;
    try {
      await registry.writeStatuses(
        m,
        puts,
        gone.map((unit) => ({ unit, machine })),
      );
    } catch (err) {
      log.warn(
        { event: 'agent.report_failed', failures: puts.length + gone.length, err: String(err) },
        'could not report unit statuses; retrying',
      );
      clock.setTimer(RETRY_MS, () => this.#wake.trigger());
      return;
    }
    for (const status of puts) {
      this.#inherited.delete(status.unit);
      this.#reported.set(status.unit, status);
    }
    for (const unit of gone) {
      this.#inherited.delete(unit);
      this.#reported.delete(unit);
    }
    this.stats.statusWrites += puts.length;
    this.stats.statusDeletes += gone.length;
  }

  /**
   * When `status` may be reported (TRANSIENT_REPORT_MS): a starting or stopping state once it has
   * lasted that long (its `since`), and a new sub-state of one already reported (start-pre, then
   * start, then start-post) once that sub-state has; any other state at once.
   */
  #settlesAt(status: UnitStatus, prev: UnitStatus | undefined, now: number): number {
    if (!TRANSIENT.has(status.active) || this.#inherited.has(status.unit)) {
      this.#subSeen.delete(status.unit);
      return now;
    }
    const reported = prev !== undefined && prev.active === status.active && prev.since === status.since;
    if (!reported) return Date.parse(status.since) + TRANSIENT_REPORT_MS;
    const key = `${status.hash} ${status.sub}`;
    let seen = this.#subSeen.get(status.unit);
    if (seen?.key !== key) this.#subSeen.set(status.unit, (seen = { key, at: now }));
    return seen.at + TRANSIENT_REPORT_MS;
  }

  /** A pass in `ms` (or sooner, when one is due sooner already), for statuses held back to settle. */
  #settleLater(ms: number): void {
    if (this.#stop.signal.aborted) return;
    const at = this.#d.clock.monotonic() + ms;
    if (this.#settleAt !== undefined && this.#settleAt <= at) return;
    this.#settleTimer?.cancel();
    this.#settleAt = at;
    this.#settleTimer = this.#d.clock.setTimer(ms, () => {
      this.#settleAt = undefined;
      this.#settleTimer = undefined;
      this.#wake.trigger();
    });
  }

  #statusOf(o: ObservedUnit): UnitStatus {
    return {
      unit: o.unit,
      machine: this.#d.machine.id,
      hash: o.hash,
      load: o.load,
      active: o.active,
      sub: o.sub,
      since: o.since,
      ...(o.pid === undefined ? {} : { pid: o.pid }),
      ...(o.containerId === undefined ? {} : { containerId: o.containerId }),
      ...(o.lastExit === undefined ? {} : { lastExit: o.lastExit }),
      ...(o.reason === undefined ? {} : { reason: o.reason }),
      ...(o.health === undefined ? {} : { health: o.health }),
    };
  }

  // ——— self-fencing (docs/fencing.md) ———

  /** The watchdog: follows the membership, moves the supervisors' deadline, trips the fence. */
  #tick(): void {
    if (this.#stop.signal.aborted) return;
    this.stats.watchdogLooks++;
    const { clock, log } = this.#d;
    const now = clock.monotonic();
    const m = this.#d.getMembership();
    if (m !== this.#membership) {
      this.#membership = m;
      // The watchdog looks at once when the lease is renewed (the supervisors' deadline moves
      // with it) or lost, and otherwise only on its timer (#tick's end).
      this.#unfollow?.();
      this.#unfollow = m?.onRenewed?.(() => this.#tick0());
      m?.signal.addEventListener('abort', () => queueMicrotask(() => this.#tick0()), { once: true });
      this.#assignmentsFresh = false; // a new membership acts on a fresh read of its assignments
      if (m !== undefined) {
        log.info({ event: 'agent.membership', lease: m.leaseId }, 'agent follows a new membership');
      }
      this.#wake.trigger();
    }
    if (m !== undefined) this.#lastRenewal = Math.max(this.#lastRenewal ?? 0, m.renewedAt());
    const since = this.#lastRenewal ?? this.#startedAt;
    const age = now - since;
    const live = m !== undefined && !m.signal.aborted && now - m.renewedAt() <= this.#deadlineMs;
    if (live) {
      if (this.#fenced !== undefined) {
        log.info(
          { event: 'agent.unfenced', lease: m.leaseId },
          'the lease is alive again; the agent resumes',
        );
        this.#fenced = undefined;
        this.#assignmentsFresh = false;
        this.#wake.trigger();
      }
      if (this.#detached) {
        log.info({ event: 'agent.reattached', lease: m.leaseId }, 'the lease is alive again');
        this.#detached = false;
      }
      if (this.#check !== undefined && this.#check.renewal !== since) {
        if (this.#check.verdict?.kind === 'keep')
          log.info(
            { event: 'agent.keep_ended', lease: m.leaseId },
            'the lease is renewed again; AtMostOnce units ran on throughout',
          );
        this.#check = undefined;
      }
      // The deadline is absolute (last renewal + deadline): it moves only when the lease is renewed.
      if (this.#policy !== 'keep-running' && m.renewedAt() !== this.#deadlineFor) {
        this.#deadlineFor = m.renewedAt();
        this.#setSupervisorDeadline(m.renewedAt() + this.#deadlineMs - now);
      }
      if (this.#policy === 'per-unit') {
        this.#refreshPeers(now);
        // Ask the peers a little before the deadline, so that the verdict is there when it passes.
        if (age > this.#deadlineMs - PEER_TIMEOUT_MS) this.#outage(now, age, '');
      }
    } else if (this.#fenced === undefined && !this.#detached) {
      const reason =
        m === undefined
          ? `fenced: this fleetd has had no membership for ${Math.round(age)} ms (deadline ${this.#deadlineMs} ms)`
          : m.signal.aborted
            ? `fenced: the membership lease was lost (${describeLoss(m.signal.reason)})`
            : `fenced: no lease keepalive acknowledged for ${Math.round(age)} ms (deadline ${this.#deadlineMs} ms, before the lease can expire)`;
      if (this.#policy === 'per-unit') this.#outage(now, age, reason);
      else if (age > this.#deadlineMs) this.#trip(reason);
    }
    const every = this.#d.watchdogMs ?? Math.min(250, this.#deadlineMs / 10);
    // Renewed lately, nothing fenced, no peer check: nothing can be due before the lease nears its
    // deadline, so the next look may wait up to IDLE_WATCHDOG_MS, and comes every `every` from a
    // little before the peer check would start. A renewal or a loss ends the wait at once.
    const calm = live && this.#check === undefined && !this.#detached;
    const wait = calm
      ? Math.max(
          every,
          Math.min(
            this.#unfollow === undefined ? IDLE_WATCHDOG_MS : 2 * IDLE_WATCHDOG_MS,
            since + this.#deadlineMs - PEER_TIMEOUT_MS - every - now,
          ),
        )
      : every;
    const look = (): void => this.#tick();
    this.#watchdog = calm ? setGridTimer(clock, wait, look) : clock.setTimer(wait, look);
  }

  /**
   * Policy per-unit, no renewal for (nearly) the deadline: the peer check. Keeps the AtMostOnce
   * units only while the latest answers say every peer has lost etcd too, asking again every
   * PEER_RECHECK_MS; fences on any other answer, or when the answers are late.
   */
  #outage(now: number, age: number, reason: string): void {
    const renewal = this.#lastRenewal ?? this.#startedAt;
    if (this.#check?.renewal !== renewal) this.#check = { renewal, startedAt: now, inFlight: false };
    const check = this.#check;
    if (!this.#runsAtMostOnce()) {
      // Nothing to stop; fencing only keeps AtMostOnce units from starting (they could not claim anyway).
      if (age > this.#deadlineMs) this.#trip(reason);
      return;
    }
    if (!check.inFlight && (check.verdict === undefined || now - check.startedAt >= PEER_RECHECK_MS)) {
      void this.#askPeers(check, now);
    }
    if (age <= this.#deadlineMs) return;
    const v = check.verdict;
    if (v === undefined) {
      if (now - check.startedAt <= PEER_TIMEOUT_MS + CHECK_SLACK_MS) return;
      this.#trip(`${reason}; the peers' answers did not come in time`);
    } else if (v.kind === 'fence') this.#trip(`${reason}; ${v.reason}`);
    else if (now - v.at > KEEP_STEP_MS)
      this.#trip(`${reason}; the peers were last asked ${Math.round(now - v.at)} ms ago`);
  }

  async #askPeers(check: PeerCheck, now: number): Promise<void> {
    const { clock, log } = this.#d;
    check.inFlight = true;
    check.startedAt = now;
    this.stats.peerChecks++;
    const self = this.#d.machine.id;
    const peers = (this.#peerList ?? []).filter((p) => p.id !== self);
    const answers = await Promise.all(peers.map((p) => this.#ask(p)));
    check.inFlight = false;
    if (this.#check !== check || this.#fenced !== undefined || this.#stop.signal.aborted) return;
    const verdict = peerVerdict(answers, { wasKeeping: check.verdict?.kind === 'keep' });
    const at = clock.monotonic();
    log.debug(
      { event: 'agent.peer_check', verdict: verdict.kind, peers: peers.length, reason: verdict.reason },
      `peer check: ${verdict.kind}`,
    );
    const first = check.verdict === undefined;
    const wasKeeping = check.verdict?.kind === 'keep';
    check.verdict = { ...verdict, at };
    if (verdict.kind === 'keep') {
      this.stats.keeps++;
      // Supervisors stop their AtMostOnce unit if this fleetd dies meanwhile: KEEP_STEP_MS from now.
      // (#deadlineFor stays: the next renewal, not the watchdog, writes the lease's deadline again.)
      this.#setSupervisorDeadline(KEEP_STEP_MS);
      if (!wasKeeping)
        log.warn(
          { event: 'agent.fence_kept', reason: verdict.reason },
          `no lease renewal, but ${verdict.reason}: AtMostOnce units keep running; asking again every ${PEER_RECHECK_MS} ms`,
        );
    } else if (!first || clock.monotonic() - check.renewal > this.#deadlineMs) {
      this.#tick0();
    }
  }

  /** Re-evaluates at once (a verdict came in) instead of at the next watchdog tick. */
  #tick0(): void {
    this.#watchdog?.cancel();
    this.#tick();
  }

  async #ask(peer: PeerMachine): Promise<PeerAnswer> {
    const peers = this.#d.peers;
    const apiAddress = peer.apiAddress;
    if (peers === undefined || apiAddress === undefined)
      return { kind: 'unanswered', machine: peer.id, error: 'it registered no API address' };
    const abort = new AbortController();
    let timer: Timer | undefined;
    const late = new Promise<PeerAnswer>((resolve) => {
      timer = this.#d.clock.setTimer(PEER_TIMEOUT_MS, () => {
        abort.abort(new Error('timed out'));
        resolve({ kind: 'unanswered', machine: peer.id, error: `no answer within ${PEER_TIMEOUT_MS} ms` });
      });
    });
    const asked = peers.ask({ ...peer, apiAddress }, abort.signal).then(
      (report): PeerAnswer => ({ kind: 'answered', machine: peer.id, report }),
      (err: unknown): PeerAnswer => ({
        kind: 'unanswered',
        machine: peer.id,
        error: err instanceof Error ? err.message : String(err),
      }),
    );
    const answer = await Promise.race([asked, late]);
    timer?.cancel();
    return answer;
  }

  /** Reads the peers (machines with a live lease) while the lease is alive and AtMostOnce units run here. */
  #refreshPeers(now: number): void {
    const peers = this.#d.peers;
    if (peers === undefined || this.#peerListReading || !this.#runsAtMostOnce()) return;
    if (this.#peerListAt !== undefined && now - this.#peerListAt < PEER_LIST_REFRESH_MS) return;
    this.#peerListReading = true;
    peers
      .list()
      .then((list) => {
        this.#peerList = list;
        this.#peerListAt = this.#d.clock.monotonic();
        this.#d.log.debug({ event: 'agent.peers_read', machines: list.length }, 'read the list of peers');
      })
      .catch((err: unknown) => {
        this.#d.log.warn(
          { event: 'agent.peers_unreadable', err: (err as Error).message },
          'cannot read the list of peers now; keeping the last one',
        );
      })
      .finally(() => {
        this.#peerListReading = false;
      });
  }

  /** Whether `o` must stop when this host fences: AtMostOnce=true (or policy stop). */
  #atMostOnce(o: ObservedEntry): boolean {
    if (this.#policy !== 'per-unit') return this.#policy === 'stop';
    const parsed = this.#specs.get(`${o.hash} ${o.unit}`);
    if (parsed?.kind === 'ok') return parsed.spec.placement.atMostOnce === true;
    if (o.atMostOnce === true) return true;
    // The process runtime says which units are AtMostOnce; of a container whose file this agent has
    // not read (adopted, etcd out of reach since), it cannot be known: treat it as one.
    return o.runtime !== 'process';
  }

  #runsAtMostOnce(): boolean {
    for (const o of this.#observed.values()) {
      if (o.active !== 'inactive' && o.active !== 'failed' && this.#atMostOnce(o)) return true;
    }
    return false;
  }

  #setSupervisorDeadline(remainingMs: number): void {
    for (const [kind, runtime] of this.#runtimeList()) {
      try {
        runtime.setFenceDeadline?.(remainingMs);
      } catch (err) {
        this.#d.log.error(
          { event: 'agent.fence_deadline_unwritable', runtime: kind, err: (err as Error).message },
          'cannot move the units’ self-fencing deadline forward; they will stop by themselves',
        );
      }
    }
  }

  #trip(reason: string): void {
    const { log } = this.#d;
    if (this.#policy === 'keep-running') {
      this.#detached = true;
      log.warn(
        { event: 'agent.fence_skipped', reason },
        `${reason}; fencing policy keep-running: units are left running and may now run on two machines`,
      );
      return;
    }
    this.#fenced = { reason };
    this.stats.fences++;
    log.warn(
      { event: 'agent.fenced', reason },
      this.#policy === 'stop'
        ? `${reason}: stopping every unit of this host`
        : `${reason}: stopping the AtMostOnce units of this host (the others keep running)`,
    );
    void this.#fenceNow();
  }

  /** Stops every running AtMostOnce unit at once (not from the loop, which may be waiting on etcd). */
  async #fenceNow(): Promise<void> {
    const fenced = this.#fenced;
    if (fenced === undefined) return;
    try {
      const fenceable = (await this.#list()).filter((o) => this.#atMostOnce(o));
      this.#execute(diffUnits([], fenceable, this.#context()));
    } catch (err) {
      this.#d.log.error(
        { event: 'agent.fence_failed', err: (err as Error).message },
        'cannot list units to fence',
      );
    }
  }

  #runtimeList(): [RuntimeKind, Runtime][] {
    const list: [RuntimeKind, Runtime][] = [['process', this.#d.runtimes.process]];
    if (this.#d.runtimes.container !== undefined) list.push(['container', this.#d.runtimes.container]);
    return list;
  }

  #runtime(kind: RuntimeKind): Runtime | undefined {
    return kind === 'process' ? this.#d.runtimes.process : this.#d.runtimes.container;
  }
}

function desiredSpec(parsed: ParsedSpec): DesiredSpec {
  if (parsed.kind === 'error') return parsed;
  const { spec } = parsed;
  return {
    kind: 'ok',
    info: {
      runtime: spec.run.kind === 'service' ? 'process' : 'container',
      bindsTo: spec.info.bindsTo,
      after: spec.info.after,
    },
  };
}

function describeLoss(reason: unknown): string {
  if (typeof reason === 'object' && reason !== null && 'kind' in reason) return String(reason.kind);
  return reason instanceof Error ? reason.message : String(reason);
}

function readFileOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** systemd's %b: the boot id without dashes; empty when /proc does not say. */
function readBootId(): string {
  return (readFileOrUndefined('/proc/sys/kernel/random/boot_id') ?? '').trim().replace(/-/g, '');
}

/** Every field of a status, so that a field added to UnitStatus cannot be left out of sameStatus. */
const STATUS_FIELDS: Record<keyof UnitStatus, 'plain' | 'exit'> = {
  unit: 'plain',
  machine: 'plain',
  hash: 'plain',
  load: 'plain',
  active: 'plain',
  sub: 'plain',
  pid: 'plain',
  containerId: 'plain',
  since: 'plain',
  lastExit: 'exit',
  reason: 'plain',
  health: 'plain',
};
const STATUS_KEYS = Object.entries(STATUS_FIELDS) as [keyof UnitStatus, 'plain' | 'exit'][];

/**
 * Pure: whether two statuses say the same. Each pass compares every unit's status with the one
 * reported; it did so by JSON.stringify of both, and #report's own time (where the builtin counts)
 * was the largest of a fleetd's JavaScript functions in a profile of a burst of starts.
 */
export function sameStatus(a: UnitStatus, b: UnitStatus): boolean {
  for (const [key, kind] of STATUS_KEYS) {
    if (kind === 'plain') {
      if (a[key] !== b[key]) return false;
      continue;
    }
    const x = a.lastExit;
    const y = b.lastExit;
    if (x === y) continue;
    if (x === undefined || y === undefined || x.code !== y.code || x.signal !== y.signal || x.at !== y.at)
      return false;
  }
  return true;
}
