// The engine: every fleetd runs one; the one elected through etcd schedules. Each pass is level-
// triggered (snapshot at one revision → pure schedule → plan → fenced transactions); watches on
// machines and units only wake it, and a resync timer backs them up (DESIGN.md, STYLE.md rule 3).
import { Backoff } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
// Timing constants only (a pure module): the grace is sized on the agent's fencing bounds.
import { MIN_ENGINE_GRACE_MS, PEER_RECHECK_MS, trustedDead } from '../agent/peer-check.js';
import { DEFAULT_KEEPALIVE_MS, MEMBERSHIP_RETRY } from '../registry/kept-lease.js';
import type { Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import { Wakeup } from '../lib/wakeup.js';
import type { EngineMetrics, Placed } from '../metrics/engine-metrics.js';
import type { FleetMetrics } from '../metrics/fleet-metrics.js';
import type { LeaderTerm, TermEnd } from '../registry/leadership.js';
import type {
  AssignmentChange,
  ClaimStore,
  ClusterSnapshot,
  ClusterWatcher,
  ConnectionHealth,
  LeaderElection,
  LeaseOptions,
  PlanWriter,
  SnapshotReader,
  Subscription,
} from '../registry/registry.js';
import { isRegistryError } from '../registry/registry-error.js';
import type { MachineId, UnitName } from '../cluster/types.js';
import type { ClusterView } from '../cluster/view.js';
import type { AssignDecision, Decision, Plan } from '../scheduler/plan.js';
import { schedule } from '../scheduler/schedule.js';
import { buildClusterView, PlacementCache } from './cluster-view.js';
import { planDrainSteps, type DrainNote } from './drain-step.js';
import { holdMovesOffAbsentMachines } from './hold-moves.js';
import { holdUnsafeStarts } from './hold-starts.js';
import { planToChanges } from './plan-changes.js';

/** Default resync period: watches wake the engine; this only backs them up. */
export const DEFAULT_RESYNC_MS = 60_000;
/** Retries of a failed campaign, term or pass (lib/backoff: jittered, every fleetd fails at once). */
const RETRY = { minMs: 200, maxMs: 5_000 };

/** For a loaded machine: an event-loop stall, an etcd leader still settling after a restart. */
const RECONNECT_MARGIN_MS = 2_000;
/**
 * How long this engine's etcd connection must have been healthy before a machine whose membership
 * is gone counts as gone (docs/control-plane-faults.md): after an outage every lease whose TTL
 * passed is revoked at once, while the hosts are alive and re-register within fleetd's rejoin
 * retry (MEMBERSHIP_RETRY, at most 1 s), one keepalive (1 s) and an agent's peer recheck
 * (PEER_RECHECK_MS, 1 s), plus a margin: 5 s. Never below what fencing needs to stop the
 * AtMostOnce units a host kept through the outage (MIN_ENGINE_GRACE_MS, docs/fencing.md). It
 * delays no failover while etcd stays healthy.
 */
export const DEFAULT_RECONNECT_GRACE_MS = Math.max(
  MEMBERSHIP_RETRY.maxMs + DEFAULT_KEEPALIVE_MS + PEER_RECHECK_MS + RECONNECT_MARGIN_MS,
  MIN_ENGINE_GRACE_MS,
);

/** What the engine uses of the registry: it reads snapshots, is woken by watches, and writes fenced plans as leader. */
export type EngineRegistry = ConnectionHealth &
  SnapshotReader &
  ClusterWatcher &
  LeaderElection &
  PlanWriter &
  Pick<ClaimStore, 'releaseDeadHolder'>;

export interface EngineDeps {
  readonly registry: EngineRegistry;
  readonly clock: Clock;
  /** Draws the jitter of retries. */
  readonly random: Random;
  readonly log: Logger;
  /** This fleetd's machine id: the name it campaigns under. */
  readonly candidate: string;
  readonly resyncMs?: number;
  /** The leader lease (default: the registry's). */
  readonly lease?: LeaseOptions;
  /** See DEFAULT_RECONNECT_GRACE_MS. */
  readonly reconnectGraceMs?: number;
  /** Passes, placements, moves and failovers are recorded here (docs/metrics.md). */
  readonly metrics?: FleetMetrics;
  /**
   * Machines the hosts' peer watch confirmed dead (daemon/peer-watch.ts): gone for the engine
   * whatever their lease says when etcd failed it lately (DEAD_TRUST_MS), except for their
   * AtMostOnce units, which wait for the lease (their host fences them before it can expire).
   * Call `peersChanged()` when the set changes.
   */
  readonly deadMachines?: () => ReadonlyMap<MachineId, number | undefined>;
}

/** Counters for logs, metrics and benchmarks. */
export interface EngineStats {
  terms: number;
  passes: number;
  /** Passes that wrote something. */
  plansApplied: number;
  changesWritten: number;
  conflicts: number;
  /** Launches deferred until the unit stopped on its previous machine (stop-before-start). */
  heldStarts: number;
  lastPassMs: number;
  isLeader: boolean;
  /** Keys the last pass skipped because they did not decode or validate. */
  problems: number;
  /** Units written to a machine other than the one they were on (cumulative). */
  moves: number;
  /** Units the last pass kept on absent machines during the reconnect grace (hold-moves.ts). */
  movesHeld: number;
}

export type PassOutcome = 'settled' | 'applied' | 'conflict';

export class Engine {
  readonly #deps: EngineDeps;
  readonly #stop = new AbortController();
  readonly #cache = new PlacementCache();
  readonly #metrics: EngineMetrics | undefined;
  /** Units whose launch waits for their old copy to stop: their status changes wake the loop. */
  #held = new Set<string>();
  /** Units a drain waits for (drain-step.ts): their status changes wake the loop. */
  #drainWaiting = new Set<string>();
  /** Whether a drain waits for an announcement: service changes wake the loop. */
  #drainWaitsForServices = false;
  /** The last drain notes logged, so that each is logged once. */
  #drainNotes = new Set<string>();
  /**
   * Monotonic time from which the reconnect grace of this term counts besides the connection's own
   * health: the term's start when the previous term ended with etcd unavailable, else -Infinity.
   */
  #termGraceFrom = Number.NEGATIVE_INFINITY;
  /** When the current hold of moves ends (monotonic), so that the loop wakes then; undefined: none. */
  #holdUntil: number | undefined;
  /** The hold already logged (its end), so that `engine.hold_moves` is logged once per hold. */
  #holdLogged: number | undefined;
  /** Keys the last pass skipped (key → why), so that each is logged once, not every pass. */
  #problems = new Map<string, string>();
  #running: Promise<void> | undefined;
  /** The current term's wakeup, so that the peer watch can wake a leading engine. */
  #wake: Wakeup | undefined;
  /** The dead machines last logged, and the AtMostOnce units last held on them (each logged once). */
  #deadLogged = '';
  #deadHoldLogged = '';
  readonly stats: EngineStats = {
    terms: 0,
    passes: 0,
    plansApplied: 0,
    changesWritten: 0,
    conflicts: 0,
    heldStarts: 0,
    lastPassMs: 0,
    isLeader: false,
    problems: 0,
    moves: 0,
    movesHeld: 0,
  };

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#metrics = deps.metrics?.forEngine(deps.clock);
  }

  /** Starts campaigning in the background; `stop()` ends it. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops leading (vacating the leader key at once) and campaigning. */
  /** The peer watch's dead set changed: a leading engine plans again at once. */
  peersChanged(): void {
    this.#wake?.trigger();
  }

  async stop(): Promise<void> {
    this.#stop.abort(new Error('engine stopped'));
    await this.#running;
  }

  async #run(): Promise<void> {
    const { registry, log, clock, random, candidate } = this.#deps;
    const leadership = registry.leadership({ candidate, ...this.#deps.lease, log });
    const stop = this.#stop.signal;
    const campaignRetry = new Backoff({ clock, random, ...RETRY });
    const termRetry = new Backoff({ clock, random, ...RETRY });
    let lastEndedByOutage = false;
    const startedAt = clock.monotonic();
    try {
      while (!stop.aborted) {
        let term: LeaderTerm;
        try {
          term = await leadership.campaign(stop);
        } catch (err) {
          if (stop.aborted) break;
          log.warn(
            { event: 'engine.campaign_failed', err },
            'campaign for engine leadership failed; retrying',
          );
          await campaignRetry.sleep(stop);
          continue;
        }
        campaignRetry.reset();
        const termStart = clock.monotonic();
        this.#termGraceFrom = Math.max(
          this.#termGraceStart(lastEndedByOutage, termStart),
          this.#startGraceFrom(startedAt, termStart),
        );
        this.stats.terms++;
        this.stats.isLeader = true;
        log.info(
          { event: 'engine.elected', candidate, fence: term.fence.createRevision },
          'this fleetd now leads the engine',
        );
        let failed = false;
        try {
          await this.#lead(term);
        } catch (err) {
          log.error({ event: 'engine.term_failed', err }, 'engine term ended by an error');
          // Not at once again: an error that recurs every pass must not become a hot loop.
          failed = true;
        } finally {
          this.stats.isLeader = false;
          this.#metrics?.termEnded();
          lastEndedByOutage = this.#endedByOutage(term, termStart);
          if (stop.aborted) await term.resign().catch(() => undefined);
          log.info(
            { event: 'engine.term_ended', reason: term.signal.reason as unknown },
            'engine leadership ended',
          );
        }
        if (failed) await termRetry.sleep(stop);
        else termRetry.reset();
      }
    } finally {
      await leadership.close().catch(() => undefined);
    }
  }

  async #lead(term: LeaderTerm): Promise<void> {
    const { registry, clock, random, log } = this.#deps;
    const signal = AbortSignal.any([term.signal, this.#stop.signal]);
    // Stop claiming leadership the moment the term ends, not when the call in flight returns.
    signal.addEventListener('abort', () => (this.stats.isLeader = false), { once: true });
    const wake = new Wakeup(clock);
    this.#wake = wake;
    const resyncMs = this.#deps.resyncMs ?? DEFAULT_RESYNC_MS;
    let sub: Subscription | undefined;
    const passRetry = new Backoff({ clock, random, ...RETRY });
    try {
      while (!signal.aborted) {
        let outcome: PassOutcome;
        try {
          const snapshot = await registry.snapshot({
            knownUnitFiles: this.#cache.knownHashes(),
            services: true,
          });
          if (signal.aborted) break;
          // Watch from the first snapshot's revision, so no change after it is missed.
          // Statuses wake it only for held launches: agents' reports are otherwise not its business.
          // Drains wake it when their units change state or get announced again (drain-step.ts).
          sub ??= registry.watchCluster(
            ['machines', 'units', 'statuses', 'drains', 'services'],
            snapshot.revision,
            (w) => {
              for (const r of w.reasons) {
                if (r.kind === 'machine_left') this.#metrics?.machineLeft(r.machine);
                else if (r.kind === 'machine_joined') this.#metrics?.machineJoined(r.machine);
              }
              // A status also wakes it when it may end a failover being timed (metrics only).
              const relevant = w.reasons.some((r) =>
                r.kind === 'status_changed'
                  ? this.#held.has(r.unit) ||
                    this.#drainWaiting.has(r.unit) ||
                    this.#metrics?.waitsFor(r.unit) === true
                  : r.kind === 'service_changed'
                    ? this.#drainWaitsForServices
                    : true,
              );
              if (relevant) wake.trigger();
            },
          );
          outcome = await this.runPass(snapshot, term);
          passRetry.reset();
        } catch (err) {
          if (signal.aborted || isRegistryError(err, 'fenced')) break;
          if (!isRegistryError(err) || !err.recoverable) throw err;
          log.warn({ event: 'engine.pass_failed', err: err.message }, 'scheduling pass failed; retrying');
          await passRetry.sleep(signal);
          continue;
        }
        if (outcome === 'conflict') continue; // a unit changed under the plan: re-plan at once
        // A hold of moves ends by time alone: no watch event would wake the loop for it.
        const holdLeft = this.#holdUntil === undefined ? Infinity : this.#holdUntil - clock.monotonic();
        await wake.wait(Math.max(0, Math.min(resyncMs, holdLeft)), signal);
      }
    } finally {
      sub?.close();
      if (this.#wake === wake) this.#wake = undefined;
    }
  }

  /**
   * Whether a term ended because etcd was unavailable to this fleetd: its lease went unrenewed or
   * expired, or a call failed for unavailability during the term. A resignation (clean handover)
   * never is.
   */
  #endedByOutage(term: LeaderTerm, termStart: number): boolean {
    const end = term.signal.reason as TermEnd | undefined;
    if (end === undefined || end.kind === 'resigned') return false;
    if (end.kind === 'lease_lost' && (end.loss.kind === 'unrenewed' || end.loss.kind === 'expired'))
      return true;
    const failedAt = this.#deps.registry.health.lastFailureAt();
    return failedAt !== undefined && failedAt >= termStart;
  }

  /**
   * A term that follows one ended by an outage, and starts while the grace after that outage still
   * runs, restarts the grace: the machines' re-registration may not be visible to it yet. A term
   * that starts later, or after a clean handover, waits for nothing (a power-off must fail over
   * at once whatever happened to etcd a week ago).
   */
  #termGraceStart(afterOutage: boolean, termStart: number): number {
    if (!afterOutage) return Number.NEGATIVE_INFINITY;
    const since = this.#deps.registry.health.healthySince();
    const graceMs = this.#deps.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    return since === undefined || termStart < since + graceMs ? termStart : Number.NEGATIVE_INFINITY;
  }

  /**
   * A term won within the grace after this engine started counts the grace from that start: a
   * fleetd that has just started cannot know that etcd was not just out, and hosts re-registering
   * after an outage it never saw still run their units (bug E, docs/simulation.md). The cost: up to
   * the grace more failover when the engine's own fleetd has just started.
   */
  #startGraceFrom(startedAt: number, termStart: number): number {
    const graceMs = this.#deps.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    return termStart < startedAt + graceMs ? startedAt : Number.NEGATIVE_INFINITY;
  }

  /**
   * Until when moves off absent machines wait: the end of the reconnect grace, counted from when
   * this engine's etcd connection last became healthy (and from the term's start if the previous
   * term ended in an outage). -Infinity when etcd has stayed healthy: nothing waits.
   */
  #graceEnd(): number {
    const since = this.#deps.registry.health.healthySince();
    const graceMs = this.#deps.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    // Failing now: the outage has not ended, so the grace has not started.
    if (since === undefined) return this.#deps.clock.monotonic() + graceMs;
    return Math.max(since, this.#termGraceFrom) + graceMs;
  }

  /**
   * The changes a snapshot calls for. A method of its own so that the view and the plan are
   * garbage before the write starts: only what is logged after it stays reachable (issue 3: a
   * 10,000-unit plan's working set must not outlive the scheduling).
   */
  #plan(registeredSnapshot: ClusterSnapshot): {
    changes: AssignmentChange[];
    summary: Plan['summary'];
    decisions: readonly Decision[];
    moves: number;
    /** Kept whatever the log level: a move is logged at info (an operator's "where did it go?"). */
    moved: readonly AssignDecision[];
    /** The moves off machines this pass treats as dead: their run claims are released after the write. */
    movedOffDead: readonly AssignDecision[];
    placed: readonly Placed[];
  } {
    const { log } = this.#deps;
    this.#cache.prune(registeredSnapshot.units);
    const registered = new Set(registeredSnapshot.machines.keys());
    const { snapshot, gone } = this.#withoutDeadMachines(registeredSnapshot);
    const built = buildClusterView(snapshot, this.#cache);
    const { invalid } = built;
    const view = this.#holdMoves(built.view, registered);
    const steps = planDrainSteps(snapshot, view.view);
    this.#drainWaiting = new Set(steps.waiting);
    this.#drainWaitsForServices = steps.waitsForServices;
    this.#logDrains(steps.notes);
    const scheduled = schedule(steps.drains.size === 0 ? view.view : { ...view.view, drains: steps.drains });
    const { plan, held } = holdUnsafeStarts(scheduled, snapshot, view.view);
    const moved = plan.decisions.filter(
      (d): d is AssignDecision => d.kind === 'assign' && d.movedFrom !== undefined,
    );
    this.#held = new Set(held.map((h) => h.unit));
    this.stats.heldStarts += held.length;
    for (const h of held) {
      log.debug(
        { event: 'engine.start_held', unit: h.unit, machine: h.machine, runningOn: h.runningOn },
        `${h.unit} waits to start on ${h.machine} until it has stopped on ${h.runningOn.join(', ')}`,
      );
    }
    return {
      changes: [...steps.changes, ...planToChanges(plan, snapshot, invalid, view.held)],
      summary: plan.summary,
      decisions: log.isLevelEnabled('debug') ? plan.decisions : [],
      moves: moved.length,
      moved,
      movedOffDead: moved.filter((d) => d.movedFrom !== undefined && gone.has(d.movedFrom)),
      placed:
        this.#metrics === undefined
          ? []
          : plan.decisions.flatMap((d) =>
              d.kind !== 'assign'
                ? []
                : [
                    {
                      unit: d.unit,
                      machine: d.machine,
                      ...(d.movedFrom === undefined
                        ? {}
                        : { movedFrom: d.movedFrom, fromGone: !snapshot.machines.has(d.movedFrom) }),
                    },
                  ],
            ),
    };
  }

  /**
   * The view to schedule: while the reconnect grace runs, without the assignments on absent
   * machines (hold-moves.ts), so that units of hosts about to re-register stay where they are.
   */
  #holdMoves(
    view: ClusterView,
    registered: ReadonlySet<MachineId>,
  ): { view: ClusterView; held: ReadonlySet<UnitName> } {
    const { clock, log } = this.#deps;
    const graceEnd = this.#graceEnd();
    const now = clock.monotonic();
    const inGrace = now < graceEnd;
    const dead = new Set<MachineId>(
      trustedDead(this.#deps.deadMachines?.(), this.#deps.registry.health.lastFailureAt(), now).keys(),
    );
    // A machine confirmed dead by its peers, while still registered: its AtMostOnce units wait for
    // its lease (its host stops them before it can expire, if it is alive at all); the rest move.
    // A machine whose lease is gone: everything waits while the reconnect grace runs, unless its
    // peers found it dead (it is not re-registering: it answers nobody).
    const hold = holdMovesOffAbsentMachines(view, (move, unit) =>
      registered.has(move.machine) ? unit.placement.atMostOnce === true : inGrace && !dead.has(move.machine),
    );
    this.stats.movesHeld = hold.held.length;
    if (hold.held.length === 0) {
      this.#holdUntil = undefined;
      return { view, held: new Set() };
    }
    const graceHeld = hold.held.filter((h) => !registered.has(h.machine));
    const deadHeld = hold.held.filter((h) => registered.has(h.machine));
    this.#logDeadHolds(deadHeld);
    // Holds on dead machines end with their lease: the machine's key going wakes the loop.
    this.#holdUntil = graceHeld.length === 0 ? undefined : graceEnd;
    if (graceHeld.length === 0) return { view: hold.view, held: new Set(hold.held.map((h) => h.unit)) };
    if (this.#holdLogged !== graceEnd) {
      this.#holdLogged = graceEnd;
      const machines = [...new Set(graceHeld.map((h) => h.machine))].sort();
      const leftMs = Math.round(graceEnd - now);
      log.warn(
        { event: 'engine.hold_moves', units: graceHeld.length, machines, leftMs },
        `keeping ${graceHeld.length} unit(s) on ${machines.join(', ')} for ${(leftMs / 1000).toFixed(1)} s: ` +
          'etcd was unavailable, so their hosts may only be re-registering',
      );
    }
    return { view: hold.view, held: new Set(hold.held.map((h) => h.unit)) };
  }

  /**
   * The snapshot without the machines the peer watch confirmed dead: to the scheduler they are
   * gone, as if their lease had expired (their statuses no longer hold a launch elsewhere).
   */
  #withoutDeadMachines(snapshot: ClusterSnapshot): {
    snapshot: ClusterSnapshot;
    /** The machines this pass treats as dead (peer-confirmed, lease not expired yet). */
    gone: ReadonlySet<MachineId>;
  } {
    const dead = trustedDead(
      this.#deps.deadMachines?.(),
      this.#deps.registry.health.lastFailureAt(),
      this.#deps.clock.monotonic(),
    );
    if (dead.size === 0) return { snapshot, gone: new Set() };
    // Only the registration found dead (its create revision): one registered since is a new boot.
    const gone = [...dead].flatMap(([m, rev]) => {
      const record = snapshot.machines.get(m);
      return record !== undefined && (rev === undefined || record.createRevision === rev) ? [m] : [];
    });
    if (gone.length === 0) return { snapshot, gone: new Set() };
    const machines = new Map(snapshot.machines);
    for (const m of gone) machines.delete(m);
    gone.sort();
    if (this.#deadLogged !== gone.join(',')) {
      this.#deadLogged = gone.join(',');
      this.#deps.log.warn(
        { event: 'engine.machines_dead', machines: gone },
        `treating ${gone.join(', ')} as gone: confirmed dead by its peers, its lease not expired yet`,
      );
    }
    return { snapshot: { ...snapshot, machines }, gone: new Set(gone) };
  }

  /**
   * The run claims of units just moved off machines found dead: their claim lives on the dead
   * machine's lease, which outlives it; released here, the new host starts the unit at once
   * instead of when its own peer watch reaches the same verdict (up to a probe round later) or the
   * lease expires. AtMostOnce units are never among them: they are held on the dead machine.
   * Best effort: the new host's agent takes the claim over on its own verdict otherwise.
   */
  async #releaseDeadClaims(off: readonly AssignDecision[]): Promise<void> {
    if (off.length === 0) return;
    const released = await Promise.all(
      off.map((d) =>
        this.#deps.registry.releaseDeadHolder(d.unit, d.movedFrom as MachineId).catch(() => false),
      ),
    );
    const units = off.filter((_, i) => released[i]).map((d) => d.unit);
    if (units.length > 0)
      this.#deps.log.info(
        { event: 'engine.claims_released', units, machines: [...new Set(off.map((d) => d.movedFrom))] },
        `released the run claims of ${units.join(', ')} held by dead machines, for their new hosts`,
      );
  }

  /** Logs the AtMostOnce units kept on dead machines until their lease expires, once per set. */
  #logDeadHolds(held: readonly { unit: UnitName; machine: MachineId }[]): void {
    if (held.length === 0) return;
    const key = held.map((h) => `${h.unit}@${h.machine}`).join(',');
    if (this.#deadHoldLogged === key) return;
    this.#deadHoldLogged = key;
    this.#deps.log.warn(
      {
        event: 'engine.hold_at_most_once',
        units: held.map((h) => h.unit),
        machines: held.map((h) => h.machine),
      },
      `keeping ${held.map((h) => h.unit).join(', ')} where they are until the lease of their dead host expires (AtMostOnce=true: its host stops them first)`,
    );
  }

  /** Logs what each drain does (drain-step.ts), each note once while it holds. */
  #logDrains(notes: readonly DrainNote[]): void {
    const { log } = this.#deps;
    const seen = new Set<string>();
    for (const n of notes) {
      const key = JSON.stringify(n);
      seen.add(key);
      if (this.#drainNotes.has(key)) continue;
      if (n.kind === 'released')
        log.info(
          { event: 'engine.drain_released', machine: n.machine, units: n.units },
          `drain of ${n.machine}: moving ${n.units.join(', ')}`,
        );
      else if (n.kind === 'waiting')
        log.info(
          { event: 'engine.drain_waiting', machine: n.machine, unit: n.unit, why: n.why },
          `drain of ${n.machine}: waiting for ${n.unit} (${n.why})`,
        );
      else
        log.info({ event: 'engine.drain_done', machine: n.machine }, `drain of ${n.machine}: no units left`);
    }
    this.#drainNotes = seen;
  }

  /**
   * Logs (at warn) each key of the snapshot that did not decode, once while it stays the same:
   * the key is left out of the pass, which goes on with the others.
   */
  #reportProblems(snapshot: ClusterSnapshot): void {
    const seen = new Map<string, string>();
    for (const p of snapshot.problems) {
      seen.set(p.key, p.message);
      if (this.#problems.get(p.key) === p.message) continue;
      this.#deps.log.warn(
        { event: 'engine.key_skipped', key: p.key, reason: p.message },
        `skipping etcd key ${p.key}: ${p.message}`,
      );
    }
    this.#problems = seen;
    this.stats.problems = seen.size;
  }

  /**
   * One scheduling pass on a snapshot: schedule, then write the plan fenced on `term`. Exposed for
   * simulations and benchmarks; the loop above is the only caller in a daemon.
   */
  async runPass(snapshot: ClusterSnapshot, term: LeaderTerm): Promise<PassOutcome> {
    const started = this.#deps.clock.monotonic();
    let outcome: PassOutcome | 'failed' = 'failed';
    try {
      outcome = await this.#pass(snapshot, term);
      return outcome;
    } finally {
      this.#metrics?.pass(outcome, this.#deps.clock.monotonic() - started);
    }
  }

  async #pass(snapshot: ClusterSnapshot, term: LeaderTerm): Promise<PassOutcome> {
    const { registry, clock, log } = this.#deps;
    const started = clock.monotonic();
    this.stats.passes++;
    this.#reportProblems(snapshot);
    this.#metrics?.statuses(snapshot.statuses, snapshot.units);
    const { changes, summary, decisions, moves, moved, movedOffDead, placed } = this.#plan(snapshot);
    if (changes.length === 0) {
      this.stats.lastPassMs = clock.monotonic() - started;
      return 'settled';
    }
    try {
      const result = await registry.writeAssignments(term.fence, changes, snapshot);
      this.stats.plansApplied++;
      this.stats.changesWritten += changes.length;
      this.stats.moves += moves;
      this.stats.lastPassMs = clock.monotonic() - started;
      this.#metrics?.placed(placed);
      log.info(
        {
          event: 'engine.plan_applied',
          revision: result.revision,
          transactions: result.transactions,
          ...summary,
          ms: Math.round(this.stats.lastPassMs),
        },
        `plan applied: ${summary.assign} assigned, ${summary.unassign} unassigned, ${summary.update} updated, ${summary.unschedulable} unschedulable`,
      );
      for (const d of moved)
        log.info(
          { event: 'engine.unit_moved', unit: d.unit, from: d.movedFrom, to: d.machine, reason: d.reason },
          `moved ${d.unit} from ${d.movedFrom ?? '?'} to ${d.machine}: ${d.reason}`,
        );
      await this.#releaseDeadClaims(movedOffDead);
      for (const d of decisions) {
        if (d.kind === 'unschedulable' || (d.kind === 'assign' && d.movedFrom !== undefined)) continue;
        log.debug(
          { event: `engine.${d.kind}`, unit: d.unit, machine: d.machine, reason: d.reason },
          d.reason,
        );
      }
      return 'applied';
    } catch (err) {
      if (isRegistryError(err, 'conflict')) {
        this.stats.conflicts++;
        log.debug(
          { event: 'engine.plan_conflict', err: err.message },
          'a unit changed during the pass; re-planning',
        );
        return 'conflict';
      }
      throw err;
    }
  }
}
