// The process runtime: runs `[Service]` units without systemd, under supervisors that outlive
// fleetd: one host supervisor for every unit of the state dir (host-supervisor-main.ts, with a
// small shim per unit: unit-shim.ts), or one Node supervisor per unit (supervisor-main.ts, fleetts
// 0.1's way, `supervisor: 'per-unit'`). This side commands them, watches their status files, and
// adopts what a previous fleetd left running, of either kind (docs/runtime-files.md).

import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  watch,
} from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { UnitName } from '../cluster/types.js';
import { fenceUntil, writeFenceUntil } from './fence.js';
import { readJournal } from './journal-reader.js';
import { identify, isAlive } from './proc.js';
import { chooseTracking, defaultCgroupRoot, removeUnitCgroup, unitCgroupPids } from './process-tree.js';
import {
  RuntimeError,
  type ChangeListener,
  type JournalOptions,
  type ObservedUnit,
  type ProcessUnitConfig,
  type Runtime,
} from './runtime.js';
import { UnitChanges } from './unit-changes.js';
import { HostSupervisorClient } from './host-supervisor-client.js';
import { PERL } from './unit-shim.js';
import {
  encodeSupervisorConfig,
  encodeSupervisorStatus,
  parseSupervisorConfig,
  parseSupervisorStatus,
  type Decoded,
  type RecordProblem,
} from './records.js';
import {
  unitPaths,
  writeFileAtomic,
  type JournalLimits,
  type ProcessIdentity,
  type SupervisorConfig,
  type SupervisorStatus,
  type TrackingConfig,
  type UnitPaths,
} from './supervisor-protocol.js';

export interface ProcessRuntimeDeps {
  /** Where unit state, status and journals live (e.g. /var/lib/fleetts); must survive fleetd restarts. */
  readonly stateDir: string;
  readonly clock?: Clock;
  /** Per-unit journal bound; default 1 MiB × 2 files. */
  readonly journal?: JournalLimits;
  /** `auto`: a cgroup when one can be created, else the /proc scan (see process-tree.ts). */
  readonly tracking?: 'auto' | 'proc-scan';
  /**
   * The units' cgroups go under `<hierarchy>/<cgroupRoot>/<unit>`; default
   * `fleetts/<12 hex digits of the state dir's hash>`, so that several fleetd on one host (fleetts
   * dev) never share one.
   */
  readonly cgroupRoot?: string;
  /**
   * How new units are supervised: `host` (the default), one host supervisor for every unit of this
   * state dir, each unit's main process under a Perl shim; `per-unit`, one Node supervisor per unit
   * (about 7 MB PSS each). Units of either kind found running are adopted whatever this says.
   * `host` needs /usr/bin/perl and a state dir short enough for a unix socket path; without them
   * the runtime logs `runtime.host_supervisor_unavailable` and runs per-unit supervisors.
   */
  readonly supervisor?: 'per-unit' | 'host';
  /** How to run the supervisor; default this Node with dist/runtime/supervisor-main.js (tsx for .ts). */
  readonly supervisorCommand?: { readonly command: string; readonly args: readonly string[] };
  /** How to run the host supervisor; default this Node with dist/runtime/host-supervisor-main.js. */
  readonly hostSupervisorCommand?: { readonly command: string; readonly args: readonly string[] };
  /** Backstop re-read of every unit's status, besides inotify (also how soon a dead supervisor is noticed); default 30 s. */
  readonly resyncMs?: number;
  /** How long a new supervisor may take to write its first status; default 15 s. */
  readonly supervisorStartTimeoutMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

interface Tracked {
  readonly paths: UnitPaths;
  config: SupervisorConfig;
  /** A supervisor spawned by this instance that has not written a status yet. */
  pending?: ProcessIdentity;
  last?: string;
  watcher?: FSWatcher;
  /** When this instance began tracking it: the `since` of states no status file records. */
  readonly seen: string;
  /** The Restart= restarts last seen in the status of the supervisor `of` (pid:start time). */
  restarts?: { readonly of: string; readonly count: number };
  /** A start sent to the host supervisor is being answered: its restarts count from 0. */
  freshRun?: boolean;
  /**
   * A start is with the host supervisor and no status.json is written yet: observed as activating
   * (not inactive, which the agent would report for a unit that is starting).
   */
  handing?: boolean;
  /** The active state last told to listeners (`runtime.unit_failed` is logged on entering failed). */
  lastActive?: string;
  /** The status.json problem last reported, so that a bad file is logged once, not on every read. */
  problem?: string;
  /** status.json as last read and decoded (#readStatus). */
  statusRead?: { readonly text: string; readonly value: SupervisorStatus } | undefined;
  /**
   * The latest observation, when (monotonic) it was made, and its JSON: list() reuses it while
   * fresh, and an unchanged one is the same object (#observe).
   */
  observed?: { readonly o: ObservedUnit; readonly at: number; readonly key: string } | undefined;
}

/**
 * How long list() reuses a unit's observation. Every change of its status file is seen at once
 * (inotify marks it stale), and every operation of this runtime on it too; what no file tells (a
 * supervisor that died) is seen within this. Before, list() read every unit's status file and its
 * supervisor's /proc entry on every call: the agent lists after each action, so a burst of 33
 * starts on a host with 33 units read about 4,000 files, 40 % of that fleetd's CPU in the burst.
 */
const OBSERVED_FRESH_MS = 1_000;

/** How long a supervisor's liveness read from /proc is reused (#supervisorAlive). */
const SUPERVISOR_ALIVE_MS = 250;

const DEFAULT_JOURNAL: JournalLimits = { maxBytes: 1024 * 1024, files: 2 };

export class ProcessRuntime implements Runtime<ProcessUnitConfig> {
  readonly #stateDir: string;
  readonly #clock: Clock;
  readonly #journal: JournalLimits;
  readonly #tracking: 'auto' | 'proc-scan';
  readonly #cgroupRoot: string;
  readonly #command: { readonly command: string; readonly args: readonly string[] };
  readonly #resyncMs: number;
  readonly #startTimeoutMs: number;
  readonly #log: (event: string, fields: Record<string, unknown>) => void;
  readonly #units = new Map<string, Tracked>();
  /** #supervisorAlive's last readings, by `pid:startTime`. */
  readonly #alive = new Map<string, { readonly alive: boolean; readonly at: number }>();
  /** The deadline the agent last set (fenceUntil); undefined until it sets one. */
  #fenceUntil: number | null | undefined;
  readonly #changes: UnitChanges;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #mode: 'per-unit' | 'host';
  readonly #host: HostSupervisorClient;
  /** Why the host supervisor could not be started the last time it was tried (cleared when it answers). */
  #hostFailure: string | undefined;
  #timer: Timer | undefined;
  #closed = false;

  constructor(deps: ProcessRuntimeDeps) {
    this.#stateDir = resolve(deps.stateDir);
    this.#clock = deps.clock ?? systemClock;
    this.#journal = deps.journal ?? DEFAULT_JOURNAL;
    this.#tracking = deps.tracking ?? 'auto';
    this.#cgroupRoot = deps.cgroupRoot ?? defaultCgroupRoot(this.#stateDir);
    this.#command = deps.supervisorCommand ?? defaultSupervisorCommand();
    this.#resyncMs = deps.resyncMs ?? 30_000;
    this.#startTimeoutMs = deps.supervisorStartTimeoutMs ?? 15_000;
    this.#log = deps.log ?? (() => undefined);
    this.#changes = new UnitChanges(this.#log);
    mkdirSync(join(this.#stateDir, 'units'), { recursive: true });
    this.#host = new HostSupervisorClient({
      stateDir: this.#stateDir,
      cgroupRoot: this.#cgroupRoot,
      tracking: this.#tracking,
      clock: this.#clock,
      log: this.#log,
      ...(deps.hostSupervisorCommand === undefined ? {} : { command: deps.hostSupervisorCommand }),
      ...(deps.supervisorStartTimeoutMs === undefined
        ? {}
        : { startTimeoutMs: deps.supervisorStartTimeoutMs }),
    });
    this.#mode = deps.supervisor ?? 'host';
    if (this.#mode === 'host') {
      const why = existsSync(PERL)
        ? HostSupervisorClient.unusable(this.#stateDir)
        : `${PERL} is missing (the units' shim is a Perl script; install perl-base)`;
      if (why !== undefined) {
        this.#log('runtime.host_supervisor_unavailable', { reason: why });
        this.#mode = 'per-unit';
      }
    }
    this.#arm();
  }

  /** How new units are supervised (`host` unless it was unavailable). */
  get supervisorMode(): 'per-unit' | 'host' {
    return this.#mode;
  }

  async adopt(): Promise<ObservedUnit[]> {
    const found: ObservedUnit[] = [];
    const tracked: [string, Tracked][] = [];
    let orphaned = false;
    for (const name of readdirSync(join(this.#stateDir, 'units')).sort()) {
      const paths = unitPaths(this.#stateDir, name);
      const config = this.#readConfig(paths);
      if (config === undefined) continue;
      const t = this.#track(name, paths, config);
      tracked.push([name, t]);
      const status = this.#readStatus(t);
      if (status?.host === true && !status.done && !isAlive(status.supervisor)) orphaned = true;
    }
    // Units whose host supervisor died (with fleetd, or killed): a new one takes them over first.
    if (orphaned) await this.#ensureHost();
    for (const [name, t] of tracked) {
      const o = this.#observe(t);
      this.#changes.seen(t, o);
      found.push(o);
      this.#log('runtime.unit_adopted', { unit: name, active: o.active, sub: o.sub, pid: o.pid });
    }
    return Promise.resolve(found);
  }

  start(config: ProcessUnitConfig): Promise<void> {
    return this.#serial(config.unit, () => this.#start(config));
  }

  stop(unit: UnitName): Promise<void> {
    return this.#serial(unit, () => this.#stop(unit));
  }

  remove(unit: UnitName): Promise<void> {
    return this.#serial(unit, async () => {
      const t = this.#units.get(unit);
      await this.#stop(unit);
      t?.watcher?.close();
      this.#units.delete(unit);
      const config = t?.config ?? this.#readConfig(unitPaths(this.#stateDir, unit));
      if (config !== undefined) {
        // The supervisor may still be leaving its cgroup for a moment after it is seen dead.
        const deadline = this.#clock.monotonic() + 2000;
        while (!removeUnitCgroup(config.tracking) && this.#clock.monotonic() < deadline) {
          await this.#clock.sleep(25);
        }
      }
      rmSync(unitPaths(this.#stateDir, unit).dir, { recursive: true, force: true });
      this.#log('runtime.unit_removed', { unit });
    });
  }

  /**
   * Moves the deadline in `<stateDir>/fence.json`, which the supervisor of every AtMostOnce unit
   * watches. Only AtMostOnce units read it, so it is written only while one is tracked, and before
   * one starts: the agent moves it about once a second, and on a host without such units each
   * write was a tenth of fleetd's idle CPU (docs/memory.md).
   */
  setFenceDeadline(remainingMs: number | undefined): void {
    this.#fenceUntil = fenceUntil(remainingMs);
    if (this.#tracksAtMostOnce()) this.#writeFence();
  }

  #tracksAtMostOnce(): boolean {
    for (const t of this.#units.values()) if (t.config.unitConfig.atMostOnce === true) return true;
    return false;
  }

  #writeFence(): void {
    if (this.#fenceUntil !== undefined) writeFenceUntil(this.#fencePath(), this.#fenceUntil);
  }

  #fencePath(): string {
    return join(this.#stateDir, 'fence.json');
  }

  list(): Promise<ObservedUnit[]> {
    const now = this.#clock.monotonic();
    const all = [...this.#units.values()].map((t) =>
      t.observed !== undefined && now - t.observed.at < OBSERVED_FRESH_MS ? t.observed.o : this.#observe(t),
    );
    return Promise.resolve(all.sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0)));
  }

  onChange(listener: ChangeListener): () => void {
    return this.#changes.subscribe(listener);
  }

  journal(unit: UnitName, options: JournalOptions = {}): AsyncIterable<string> {
    const paths = unitPaths(this.#stateDir, unit);
    if (!existsSync(paths.dir)) {
      throw new RuntimeError(`unit ${unit} is not known to this host's runtime`, { unit, code: 'not_found' });
    }
    const files = this.#units.get(unit)?.config.journal.files ?? this.#journal.files;
    return readJournal(paths.journal, {
      lines: options.lines ?? 10,
      follow: options.follow ?? false,
      signal: options.signal,
      files,
      clock: this.#clock,
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#timer?.cancel();
    for (const t of this.#units.values()) t.watcher?.close();
    this.#changes.clear();
    return Promise.resolve();
  }

  async #start(config: ProcessUnitConfig): Promise<void> {
    const unit = config.unit;
    const existing = this.#units.get(unit);
    if (existing !== undefined) {
      let status = this.#readStatus(existing);
      if (status?.host === true && !status.done && !isAlive(status.supervisor)) {
        // Its host supervisor died: the next one takes it over (it may still run).
        await this.#host.ensure();
        status = this.#readStatus(existing);
      }
      const running =
        existing.pending !== undefined ||
        (status !== undefined && !status.done && isAlive(status.supervisor));
      if (running && status?.hash === config.hash && status.active !== 'deactivating') return;
      if (running || (status?.host === true && !status.done)) await this.#stop(unit);
    }
    const paths = unitPaths(this.#stateDir, unit);
    refuseNewer(unit, readRecord(paths.status, parseSupervisorStatus));
    mkdirSync(paths.dir, { recursive: true });
    const tracking: TrackingConfig = chooseTracking(this.#cgroupRoot, unit, this.#tracking);
    const supConfig: SupervisorConfig = {
      v: 1,
      unitConfig: config,
      tracking,
      journal: this.#journal,
      // Only AtMostOnce units stop at the deadline; the others outlive any control-plane outage.
      ...(config.atMostOnce === true ? { fence: { path: this.#fencePath() } } : {}),
    };
    // The deadline this unit's supervisor will read is the latest one (setFenceDeadline).
    if (config.atMostOnce === true) this.#writeFence();
    // Not fsynced (an fsync per start was 4 % of fleetd's CPU in a burst): after a crash of the
    // host nothing it configures runs, and a torn file is reported and the unit started afresh.
    writeFileAtomic(paths.config, encodeSupervisorConfig(supConfig) + '\n', false);
    rmSync(paths.status, { force: true });
    const t = this.#track(unit, paths, supConfig);
    t.config = supConfig;
    if (this.#mode === 'host') {
      try {
        // A fresh run counts its restarts from 0: a status read while the request waits (the
        // watcher) is of this run (status.json was removed above) and counts from 0 too.
        delete t.restarts;
        t.freshRun = true;
        t.handing = true;
        // Answered once the unit's first status is written.
        const sup = await this.#host.request({ op: 'start', unit }).finally(() => (t.handing = false));
        this.#hostFailure = undefined;
        t.restarts ??= { of: `${sup.pid}:${sup.startTime}`, count: 0 };
        t.freshRun = false;
      } catch (err) {
        throw new RuntimeError(`cannot start ${unit}: ${errorMessage(err)}`, { unit, cause: err });
      }
      this.#log('runtime.unit_handed', { unit, tracking: tracking.kind });
      this.#refresh(t);
      return;
    }

    const logFd = openSync(paths.supervisorLog, 'a', 0o640);
    let pid: number;
    try {
      const child = spawn(this.#command.command, [...this.#command.args, paths.dir], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        cwd: '/',
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      });
      pid = await new Promise<number>((ok, fail) => {
        child.once('spawn', () => ok(child.pid ?? -1));
        child.once('error', fail);
      });
      child.unref();
    } catch (err) {
      throw new RuntimeError(`cannot start the supervisor of ${unit}: ${String(err)}`, { unit, cause: err });
    } finally {
      closeSync(logFd);
    }
    const id = identify(pid);
    if (id !== undefined) t.pending = id;
    this.#log('runtime.supervisor_spawned', { unit, pid, tracking: tracking.kind });
    // Taken in charge once the supervisor has written its first status (or has died trying).
    const deadline = this.#clock.monotonic() + this.#startTimeoutMs;
    while (readRecord(paths.status, parseSupervisorStatus)?.ok !== true && id !== undefined && isAlive(id)) {
      if (this.#clock.monotonic() > deadline) break;
      await this.#clock.sleep(20);
    }
    this.#refresh(t);
  }

  async #stop(unit: string): Promise<void> {
    const t = this.#units.get(unit);
    if (t === undefined) return;
    const status = this.#readStatus(t);
    if (status?.host === true && !status.done) return this.#stopHosted(t, status);
    const sup = status?.supervisor ?? t.pending;
    if (sup !== undefined && isAlive(sup) && status?.done !== true) {
      process.kill(sup.pid, 'SIGTERM');
      const c = t.config.unitConfig;
      const steps = c.execStop.length + c.execStopPost.length + 3;
      const budget = c.timeoutStopMs > 0 ? steps * c.timeoutStopMs + 10_000 : Infinity;
      const deadline = this.#clock.monotonic() + budget;
      while (isAlive(sup)) {
        if (this.#clock.monotonic() > deadline) {
          this.#log('runtime.supervisor_stuck', { unit, pid: sup.pid });
          process.kill(sup.pid, 'SIGKILL');
          break;
        }
        await this.#clock.sleep(25);
      }
    }
    delete t.pending;
    const after = this.#readStatus(t);
    if (after !== undefined && !after.done && (sup === undefined || !isAlive(sup))) {
      // The supervisor died without finishing: finish for it (kill what is left, record it).
      this.#finishFor(t, after);
    }
    this.#refresh(t);
  }

  /**
   * Stops a unit of the host supervisor: asks it, then waits for the final status. A host
   * supervisor that dies meanwhile is started again (it takes the unit over) and asked again.
   */
  async #stopHosted(t: Tracked, status: SupervisorStatus): Promise<void> {
    const unit = status.unit;
    const c = t.config.unitConfig;
    const steps = c.execStop.length + c.execStopPost.length + 3;
    const budget = c.timeoutStopMs > 0 ? steps * c.timeoutStopMs + 10_000 : Infinity;
    const deadline = this.#clock.monotonic() + budget;
    let asked: ProcessIdentity | undefined;
    for (;;) {
      const now = this.#readStatus(t);
      if (now === undefined || now.done) break;
      if (asked === undefined || !isAlive(asked)) {
        try {
          asked = await this.#host.request({ op: 'stop', unit });
        } catch (err) {
          this.#log('runtime.host_supervisor_failed', { unit, err: errorMessage(err) });
          asked = undefined;
        }
      }
      if (this.#clock.monotonic() > deadline || asked === undefined) {
        // Finish for it: kill what is left, record it (as for a per-unit supervisor that died).
        this.#log('runtime.supervisor_stuck', { unit, pid: asked?.pid ?? status.supervisor.pid });
        this.#finishFor(t, now);
        break;
      }
      await this.#clock.sleep(25);
    }
    this.#refresh(t);
  }

  /** Kills what is left of a unit whose supervisor is gone or stuck and writes its final status. */
  #finishFor(t: Tracked, after: SupervisorStatus): void {
    for (const pid of unitCgroupPids(t.config.tracking)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const done: SupervisorStatus = {
      ...after,
      active: 'inactive',
      sub: 'dead',
      done: true,
      since: new Date(this.#clock.now()).toISOString(),
    };
    delete (done as { mainPid?: number }).mainPid;
    writeFileAtomic(t.paths.status, encodeSupervisorStatus(done) + '\n');
  }

  /** Starts the host supervisor if it is not running; a failure is kept to report, not thrown. */
  async #ensureHost(): Promise<void> {
    try {
      await this.#host.ensure();
      this.#hostFailure = undefined;
    } catch (err) {
      this.#hostFailure = errorMessage(err);
      this.#log('runtime.host_supervisor_failed', { err: this.#hostFailure });
    }
  }

  /** config.json, or undefined when it is missing or unreadable (reported: the unit is not adopted). */
  #readConfig(paths: UnitPaths): SupervisorConfig | undefined {
    const read = readRecord(paths.config, parseSupervisorConfig);
    if (read === undefined) return undefined;
    if (read.ok) return read.value;
    this.#reportProblem(read.problem);
    return undefined;
  }

  /** status.json, or undefined when it is missing or unreadable (reported once per problem). */
  #readStatus(t: Tracked): SupervisorStatus | undefined {
    let text: string | undefined;
    try {
      text = readFileSync(t.paths.status, 'utf8');
    } catch {
      text = undefined;
    }
    // The same text as last time (a rename seen twice, a resync) is not decoded again.
    if (text !== undefined && t.statusRead !== undefined && t.statusRead.text === text)
      return t.statusRead.value;
    const read = text === undefined ? undefined : parseSupervisorStatus(text, t.paths.status);
    t.statusRead = text !== undefined && read?.ok === true ? { text, value: read.value } : undefined;
    if (read === undefined || read.ok) {
      delete t.problem;
      return read?.value;
    }
    if (t.problem !== read.problem.message) {
      t.problem = read.problem.message;
      this.#reportProblem(read.problem);
    }
    return undefined;
  }

  #reportProblem(p: RecordProblem): void {
    this.#log('runtime.record_unreadable', {
      path: p.where,
      record: p.record,
      reason: p.reason,
      ...(p.newer ? { newer: true } : {}),
    });
  }

  #track(unit: string, paths: UnitPaths, config: SupervisorConfig): Tracked {
    let t = this.#units.get(unit);
    if (t === undefined) {
      t = { paths, config, seen: iso(this.#clock) };
      this.#units.set(unit, t);
    }
    if (t.watcher === undefined) {
      const tracked = t;
      try {
        t.watcher = watch(paths.dir, (_event, file) => {
          if (file === 'status.json') this.#refresh(tracked);
        });
        t.watcher.on('error', () => undefined);
      } catch {
        // the resync timer still sees changes
      }
    }
    return t;
  }

  #forget(unit: string): void {
    const t = this.#units.get(unit);
    if (t !== undefined) t.observed = undefined;
  }

  /** Re-reads a unit and tells the listeners if anything changed. */
  #refresh(t: Tracked): void {
    if (this.#closed || !this.#units.has(t.config.unitConfig.unit)) return;
    const o = this.#observe(t);
    this.#changes.tell(t, o, t.observed?.key);
  }

  #observe(t: Tracked): ObservedUnit {
    const state = this.#observeState(t);
    const o: ObservedUnit =
      t.config.unitConfig.atMostOnce === true ? { ...state, atMostOnce: true as const } : state;
    // The same observation as last time is the same object: the agent's pass reuses what it made
    // of it (its entry and status) instead of making and comparing them again for every unit.
    const key = JSON.stringify(o);
    const at = this.#clock.monotonic();
    const same = t.observed?.key === key ? t.observed.o : o;
    t.observed = { o: same, at, key };
    return same;
  }

  #observeState(t: Tracked): ObservedUnit {
    const c = t.config.unitConfig;
    const status = this.#readStatus(t);
    if (status === undefined) {
      if (t.handing === true || (t.pending !== undefined && isAlive(t.pending))) {
        return {
          unit: c.unit,
          hash: c.hash,
          load: 'loaded',
          active: 'activating',
          sub: 'start-pre',
          since: t.seen,
        };
      }
      if (t.pending !== undefined) {
        return {
          unit: c.unit,
          hash: c.hash,
          load: 'loaded',
          active: 'failed',
          sub: 'failed',
          since: t.seen,
          reason: `the supervisor exited before starting the unit: ${tail(t.paths.supervisorLog)}`,
        };
      }
      return { unit: c.unit, hash: c.hash, load: 'loaded', active: 'inactive', sub: 'dead', since: t.seen };
    }
    this.#noteRestarts(t, status);
    delete t.pending;
    const base: ObservedUnit = {
      unit: c.unit,
      hash: status.hash as ObservedUnit['hash'],
      load: 'loaded',
      active: status.active,
      sub: status.sub,
      since: status.since,
      ...(status.mainPid === undefined ? {} : { pid: status.mainPid }),
      ...(status.lastExit === undefined ? {} : { lastExit: status.lastExit }),
      ...(status.reason === undefined ? {} : { reason: status.reason }),
      ...(status.health === undefined ? {} : { health: status.health }),
    };
    if (status.done || this.#supervisorAlive(status.supervisor)) return base;
    if (status.host === true && this.#hostFailure === undefined) {
      // Its host supervisor died; the next one (started now) takes the unit over and rewrites this.
      void this.#ensureHost().then(() => this.#refresh(t));
      return base;
    }
    const { pid: _pid, health: _health, ...rest } = base;
    return {
      ...rest,
      active: 'failed',
      sub: 'failed',
      reason:
        status.host === true
          ? `the host supervisor (pid ${status.supervisor.pid}) exited and cannot be started again: ${this.#hostFailure ?? ''}`
          : `the supervisor (pid ${status.supervisor.pid}) exited unexpectedly: ${tail(t.paths.supervisorLog)}`,
      lost: true,
    };
  }

  /**
   * Logs `runtime.unit_restarted` (counted by fleetd's metrics) when the supervisor's count of
   * Restart= restarts grew since it was last read. A supervisor this instance started counts from
   * 0; one found running (adopted) from what it reports when first seen.
   */
  #noteRestarts(t: Tracked, status: SupervisorStatus): void {
    const of = `${status.supervisor.pid}:${status.supervisor.startTime}`;
    const spawned = t.pending?.pid === status.supervisor.pid;
    const before =
      t.restarts?.of === of ? t.restarts.count : spawned || t.freshRun === true ? 0 : status.restarts;
    t.freshRun = false;
    if (status.restarts > before)
      this.#log('runtime.unit_restarted', {
        unit: status.unit,
        restarts: status.restarts,
        count: status.restarts - before,
      });
    t.restarts = { of, count: status.restarts };
  }

  /**
   * isAlive of a unit's supervisor, read from /proc at most every SUPERVISOR_ALIVE_MS per supervisor:
   * with the host supervisor, every unit names the same one, and a burst of starts read its /proc
   * entry at each of the hundreds of status changes (7 % of a fleetd's CPU in the burst). A dead one
   * is remembered as dead.
   */
  #supervisorAlive(id: ProcessIdentity): boolean {
    const key = `${id.pid}:${id.startTime}`;
    const now = this.#clock.monotonic();
    const seen = this.#alive.get(key);
    if (seen !== undefined && (!seen.alive || now - seen.at < SUPERVISOR_ALIVE_MS)) return seen.alive;
    const alive = isAlive(id);
    if (this.#alive.size > 1000) this.#alive.clear();
    this.#alive.set(key, { alive, at: now });
    return alive;
  }

  #arm(): void {
    this.#timer = this.#clock.setTimer(this.#resyncMs, () => {
      if (this.#closed) return;
      for (const t of this.#units.values()) this.#refresh(t);
      this.#arm();
    });
  }

  /**
   * Runs operations on one unit one after another (start during stop waits for the stop). What
   * was observed of the unit is read again after each.
   */
  #serial<T>(unit: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(unit) ?? Promise.resolve();
    const run = (): Promise<T> => {
      this.#forget(unit);
      return fn().finally(() => this.#forget(unit));
    };
    const next = prev.then(run, run);
    const settled = next.catch(() => undefined);
    this.#locks.set(unit, settled);
    void settled.then(() => {
      if (this.#locks.get(unit) === settled) this.#locks.delete(unit);
    });
    return next;
  }
}

/** A record file: undefined when it does not exist (or cannot be read at all). */
function readRecord<T>(
  path: string,
  parse: (text: string, where: string) => Decoded<T>,
): Decoded<T> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return parse(text, path);
}

/**
 * A unit whose status.json a newer fleetts wrote may still be run by that release's supervisor:
 * starting another one over it could run the unit twice, so start refuses (the agent reports it).
 */
function refuseNewer(unit: string, status: Decoded<unknown> | undefined): void {
  if (status === undefined || status.ok || !status.problem.newer) return;
  throw new RuntimeError(`cannot start ${unit}: ${status.problem.message}`, { unit, code: 'newer_format' });
}

/** The last line of a supervisor's own log, for a reason that says what went wrong. */
function tail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    return lines[lines.length - 1] || 'no output (see ' + path + ')';
  } catch {
    return `no output (see ${path})`;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function iso(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

/** This Node running supervisor-main beside this file: compiled .js, or .ts through tsx (tests). */
export function defaultSupervisorCommand(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const flags = ['--max-semi-space-size=1', '--max-old-space-size=64'];
  if (here.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx');
    return {
      command: process.execPath,
      args: [...flags, '--import', tsx, join(dirname(here), 'supervisor-main.ts')],
    };
  }
  return { command: process.execPath, args: [...flags, join(dirname(here), 'supervisor-main.js')] };
}
