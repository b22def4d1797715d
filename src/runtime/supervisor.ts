// The state machine of one unit, run inside its supervisor process (supervisor-main.ts, one per
// unit) or inside the host supervisor (host-supervisor-main.ts, every unit of the host): systemd's
// service states — start-pre → start → start-post → running/exited → stop → stop-sigterm →
// stop-sigkill → stop-post → dead/failed, with auto-restart and the start rate limit. A host
// supervisor started again resumes a unit where the status it wrote left it (`resume`).

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Clock, Timer } from '../lib/clock.js';
import { expandWords } from '../unit/exec.js';
import { LineSplitter, type JournalWriter } from './journal-writer.js';
import type { ProcessTree } from './process-tree.js';
import type { ExecStep, HealthConfig, HealthState, ProcessUnitConfig } from './runtime.js';
import type { ProcessIdentity, SupervisorStatus } from './supervisor-protocol.js';
import type { Credentials, CredentialsResult } from './users.js';

export interface UnitSupervisorDeps {
  readonly config: ProcessUnitConfig;
  readonly tree: ProcessTree;
  readonly journal: JournalWriter;
  readonly clock: Clock;
  /** The supervisor process itself, recorded in every status. */
  readonly self: ProcessIdentity;
  /** Put into every Exec step's environment (FLEETTS_INVOCATION_ID). */
  readonly invocationId: string;
  readonly writeStatus: (status: SupervisorStatus) => void;
  readonly lookupCredentials: (user: string | undefined, group: string | undefined) => CredentialsResult;
  /** How often to look whether the unit's processes are gone while stopping. */
  readonly pollMs?: number;
  /**
   * Runs the main process (ExecStart of a simple/exec unit) other than as a direct child with
   * pipes: the host supervisor runs it under a shim that outlives it (host-supervisor-main.ts).
   * Resolves once the process runs (or could not be run), as a direct spawn does.
   */
  readonly launchMain?: (spec: LaunchSpec) => Promise<Running | Exit>;
  /** Where a host supervisor that was started again takes the unit over (absent: a fresh start). */
  readonly resume?: Resume;
}

/** What `launchMain` runs: everything resolved, as it would be passed to spawn. */
export interface LaunchSpec {
  readonly path: string;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly credentials?: Credentials;
  /** The journal identifier of its output (`<unit>[<pid>]` once the pid is known). */
  readonly unit: string;
}

/**
 * The state a unit is taken over in, from the status.json the previous host supervisor wrote:
 * `running` (its main process, under its shim, still runs or has ended meanwhile), `exited`
 * (RemainAfterExit with nothing running), `auto-restart` (waiting to start again), or `interrupted`
 * (in the middle of a start or a stop: what was left runs through the stop, then a start follows
 * unless it was stopping).
 */
export type Resume = {
  readonly status: Pick<SupervisorStatus, 'since' | 'lastExit' | 'restarts' | 'reason' | 'health'>;
} & (
  | { readonly kind: 'running'; readonly main: Running }
  | { readonly kind: 'exited' }
  | { readonly kind: 'auto-restart' }
  /** `main`: its main process still runs (or ran) under its shim, for KillMode=process/mixed. */
  | { readonly kind: 'interrupted'; readonly stopping: boolean; readonly main?: Running }
);

type ExecKey = 'ExecStartPre' | 'ExecStart' | 'ExecStartPost' | 'ExecStop' | 'ExecStopPost' | 'ExecReload';

/** How a process ended, or why it never ran. */
export type Exit =
  | { readonly kind: 'exited'; readonly code: number }
  | {
      readonly kind: 'killed';
      readonly signal: string;
      /** The status is not known (the host supervisor's shim vanished): why, for the journal. */
      readonly lost?: string;
    }
  | { readonly kind: 'not-run'; readonly code: number; readonly reason: string };

/** systemd's service results, which Restart= decides on. */
type Outcome =
  | { readonly kind: 'success' }
  | { readonly kind: 'exit-code'; readonly reason: string }
  | { readonly kind: 'signal'; readonly reason: string }
  | { readonly kind: 'timeout'; readonly reason: string }
  /** [X-Health] failed Retries times in a row: systemd's closest result is a fired watchdog. */
  | { readonly kind: 'health'; readonly reason: string };

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** After SIGKILL, how long to wait for the processes to vanish before giving up on them. */
const SIGKILL_WAIT_MS = 5_000;

export interface Running {
  readonly pid: number;
  readonly exited: Promise<Exit>;
}

export class UnitSupervisor {
  readonly #d: UnitSupervisorDeps;
  readonly #c: ProcessUnitConfig;
  readonly #stop = new AbortController();
  #active: SupervisorStatus['active'] = 'activating';
  #sub = 'dead';
  #since: string;
  #mainPid: number | undefined;
  #lastExit: SupervisorStatus['lastExit'];
  #reason: string | undefined;
  #restarts = 0;
  #main: Running | undefined;
  #reloading = false;
  /** Why a stop was requested, kept as the status reason of the stopped unit (self-fencing). */
  #stopReason: string | undefined;
  /** The [X-Health] verdict of the current run; undefined without a check or while not running. */
  #health: HealthState | undefined;

  constructor(deps: UnitSupervisorDeps) {
    this.#d = deps;
    this.#c = deps.config;
    this.#since = new Date(deps.clock.now()).toISOString();
  }

  /**
   * Asks for a stop (SIGTERM to the supervisor): the unit stops and `run` resolves. `reason`, when
   * given, stays on the final status (inactive/dead), so that fleetd can tell why it stopped.
   */
  requestStop(reason?: string): void {
    if (!this.#stop.signal.aborted) {
      this.#stopReason = reason;
      this.#log(reason === undefined ? 'Stopping.' : `Stopping: ${reason}`);
    }
    this.#stop.abort(new Error('stop requested'));
  }

  /** ExecReload (SIGHUP to the supervisor), while running. */
  requestReload(): void {
    if (this.#sub !== 'running' || this.#reloading || this.#c.execReload.length === 0) return;
    this.#reloading = true;
    this.#set('active', 'reload');
    void this.#runSteps('ExecReload', this.#c.execReload, this.#c.timeoutStartMs).then((o) => {
      this.#reloading = false;
      if (o.kind !== 'success') this.#log(`Reload failed: ${o.reason}`);
      if (this.#sub === 'reload') this.#set('active', this.#main === undefined ? 'exited' : 'running');
    });
  }

  /** Runs the unit until it is stopped, or ends (dead or failed) and is not to be restarted. */
  async run(): Promise<SupervisorStatus> {
    const starts: number[] = [];
    let resume = this.#d.resume;
    if (resume !== undefined) this.#takeOver(resume);
    for (;;) {
      if (this.#stopped()) return this.#finish({ kind: 'success' });
      let outcome: Outcome;
      if (resume?.kind === 'auto-restart') {
        outcome = { kind: 'success' }; // straight to the wait before the next start
      } else if (resume !== undefined) {
        const r = resume;
        outcome = await this.#resumeOnce(r);
        if (r.kind === 'interrupted' && !r.stopping && !this.#stopped()) {
          resume = undefined;
          continue; // it never got to run: start it now
        }
      } else {
        const now = this.#d.clock.monotonic();
        const { startLimitBurst: burst, startLimitIntervalMs: interval } = this.#c;
        if (burst > 0 && interval > 0) {
          while (starts.length > 0 && now - (starts[0] ?? 0) > interval) starts.shift();
          if (starts.length >= burst) {
            this.#log('Start request repeated too quickly.');
            this.#mainPid = undefined;
            this.#reason = 'start-limit-hit';
            this.#set('failed', 'failed');
            return this.#status(true);
          }
        }
        starts.push(now);
        outcome = await this.#runOnce();
      }
      const wasStopping = resume?.kind === 'interrupted' && resume.stopping;
      const skipJudging = resume?.kind === 'auto-restart';
      resume = undefined;
      if (this.#stopped() || wasStopping) return this.#finish(outcome);
      if (!skipJudging && !this.#shouldRestart(outcome)) return this.#finish(outcome);
      if (!skipJudging) this.#reason = outcome.kind === 'success' ? undefined : outcome.reason;
      this.#mainPid = undefined;
      this.#set('activating', 'auto-restart');
      this.#log(`Scheduled restart in ${this.#c.restartSecMs} ms.`);
      try {
        await this.#d.clock.sleep(this.#c.restartSecMs, this.#stop.signal);
      } catch {
        return this.#finish({ kind: 'success' });
      }
      this.#restarts++;
      this.#reason = undefined;
    }
  }

  /** The state the previous host supervisor left, as this one's own (no status written yet). */
  #takeOver(r: Resume): void {
    this.#since = r.status.since;
    this.#lastExit = r.status.lastExit;
    this.#restarts = r.status.restarts;
    this.#reason = r.status.reason;
    if (r.kind === 'running') {
      this.#active = 'active';
      this.#main = r.main;
      this.#health = r.status.health;
      this.#noteMain(r.main);
    } else if (r.kind === 'exited') {
      this.#active = 'active';
    } else if (r.kind === 'interrupted') {
      if (r.stopping) this.#active = 'deactivating';
      if (r.main !== undefined) {
        this.#main = r.main;
        this.#noteMain(r.main);
      }
    }
    this.#log(
      `Taken over by the host supervisor (${r.kind === 'running' ? `main pid ${r.main.pid}` : r.kind}).`,
    );
  }

  /** The rest of a run the previous host supervisor began; the outcome decides the restart. */
  async #resumeOnce(r: Resume): Promise<Outcome> {
    if (r.kind === 'interrupted') {
      // Its control processes died with their supervisor, or were orphaned: stop what is left.
      return this.#stopSequence(false);
    }
    return this.#live({ kind: 'success' }, true, true);
  }

  /** One start, the service's life, and its stop; the outcome decides the restart. */
  async #runOnce(): Promise<Outcome> {
    this.#main = undefined;
    this.#set('activating', 'start-pre');
    this.#log('Starting.');
    let outcome = await this.#runSteps('ExecStartPre', this.#c.execStartPre, this.#c.timeoutStartMs);
    let started = false;
    if (outcome.kind === 'success' && !this.#stopped()) {
      this.#set('activating', 'start');
      if (this.#c.type === 'oneshot') {
        outcome = await this.#runSteps('ExecStart', this.#c.execStart, this.#c.timeoutStartMs);
      } else {
        const step = this.#c.execStart[0];
        if (step !== undefined) {
          const r = await this.#launch('ExecStart', step);
          if ('pid' in r) this.#main = r;
          else outcome = this.#judge('ExecStart', step, r, false);
        }
      }
      if (outcome.kind === 'success' && !this.#stopped()) {
        this.#set('activating', 'start-post');
        outcome = await this.#runSteps('ExecStartPost', this.#c.execStartPost, this.#c.timeoutStartMs);
        started = outcome.kind === 'success';
      }
    }
    return this.#live(outcome, started);
  }

  /** The service's life once started (running, or exited and remaining), then its stop. */
  async #live(startOutcome: Outcome, started: boolean, resumed = false): Promise<Outcome> {
    let outcome = startOutcome;
    if (outcome.kind === 'success' && !this.#stopped()) {
      const main = this.#main;
      if (main !== undefined) {
        this.#set('active', 'running');
        if (!resumed) this.#log(`Started (main pid ${main.pid}).`);
        const watching = new AbortController();
        const unhealthy =
          this.#c.health === undefined ? undefined : this.#watchHealth(this.#c.health, watching.signal);
        const exit = await Promise.race([
          main.exited,
          this.#stopRequested(),
          ...(unhealthy ? [unhealthy] : []),
        ]);
        watching.abort();
        if (exit !== undefined && 'kind' in exit && exit.kind === 'health') {
          outcome = exit;
        } else if (exit !== undefined) {
          outcome = this.#judge('ExecStart', this.#c.execStart[0], exit, true);
          this.#main = undefined;
        }
      } else if (this.#c.remainAfterExit) {
        this.#set('active', 'exited');
        this.#log('Finished start-up; remains active (RemainAfterExit=yes).');
        await this.#stopRequested();
      } else {
        this.#log('Finished.');
      }
    }
    const stopOutcome = await this.#stopSequence(started);
    return outcome.kind === 'success' ? stopOutcome : outcome;
  }

  /** ExecStop (if the start succeeded), the kill phases of KillMode=, then ExecStopPost. */
  async #stopSequence(started: boolean): Promise<Outcome> {
    let outcome: Outcome = { kind: 'success' };
    this.#set('deactivating', 'stop');
    if (started) outcome = await this.#runSteps('ExecStop', this.#c.execStop, this.#c.timeoutStopMs, true);
    await this.#killPhase();
    this.#set('deactivating', 'stop-post');
    const post = await this.#runSteps('ExecStopPost', this.#c.execStopPost, this.#c.timeoutStopMs, true);
    if (outcome.kind === 'success') outcome = post;
    // Whatever ExecStopPost left behind goes too (systemd's final-sigterm), unless KillMode=none/process.
    await this.#killPhase();
    this.#mainPid = undefined;
    this.#health = undefined; // a verdict on a process that is gone
    return outcome;
  }

  async #killPhase(): Promise<void> {
    const { killMode } = this.#c;
    const signal = this.#c.killSignal as NodeJS.Signals;
    const main = this.#main;
    if (killMode === 'none') return;
    if (killMode === 'process' || killMode === 'mixed') {
      if (main !== undefined) {
        this.#set('deactivating', 'stop-sigterm');
        trySignal(main.pid, signal);
        trySignal(main.pid, 'SIGCONT');
        const gone = await this.#waitFor(main.exited, this.#c.timeoutStopMs);
        if (!gone) {
          this.#set('deactivating', 'stop-sigkill');
          this.#log(`State 'stop-sigterm' timed out. Killing main process ${main.pid}.`);
          trySignal(main.pid, 'SIGKILL');
          await this.#waitFor(main.exited, SIGKILL_WAIT_MS);
        }
        this.#main = undefined;
      }
      if (killMode === 'mixed') await this.#killTree('SIGKILL', 0);
      return;
    }
    await this.#killTree(signal, this.#c.timeoutStopMs);
    this.#main = undefined;
  }

  /** Signals the whole tree; escalates to SIGKILL after `timeoutMs` (0: no timeout). */
  async #killTree(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const tree = this.#d.tree;
    if (tree.pids().length === 0) return;
    if (signal !== 'SIGKILL') {
      this.#set('deactivating', 'stop-sigterm');
      tree.signal(signal);
      tree.signal('SIGCONT');
      if (await this.#pollEmpty(timeoutMs)) return;
      this.#log(`State 'stop-sigterm' timed out. Killing.`);
    }
    this.#set('deactivating', 'stop-sigkill');
    for (let i = 0; i < 20 && tree.signal('SIGKILL') > 0; i++) {
      if (await this.#pollEmpty(SIGKILL_WAIT_MS / 20)) return;
    }
    if (tree.pids().length > 0) this.#log(`Processes ${tree.pids().join(' ')} survived SIGKILL.`);
  }

  /** Resolves true once the tree is empty, false after `timeoutMs` (0 = wait forever). */
  async #pollEmpty(timeoutMs: number): Promise<boolean> {
    const deadline = this.#d.clock.monotonic() + timeoutMs;
    for (;;) {
      if (this.#d.tree.pids().length === 0) return true;
      if (timeoutMs > 0 && this.#d.clock.monotonic() >= deadline) return false;
      await this.#d.clock.sleep(this.#d.pollMs ?? 50);
    }
  }

  /** Waits for `p` up to `timeoutMs` (0 = forever); true when it settled. */
  async #waitFor(p: Promise<unknown>, timeoutMs: number): Promise<boolean> {
    if (timeoutMs <= 0) {
      await p;
      return true;
    }
    let timer: Timer | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = this.#d.clock.setTimer(timeoutMs, () => resolve(false));
    });
    const r = await Promise.race([p.then(() => true as const), timeout]);
    timer?.cancel();
    return r;
  }

  /**
   * Runs control steps in order; the first failure not `-`-prefixed ends the list. A stop request
   * kills a running step unless `duringStop` (ExecStop/ExecStopPost run to their end).
   */
  async #runSteps(
    key: ExecKey,
    steps: readonly ExecStep[],
    timeoutMs: number,
    duringStop = false,
  ): Promise<Outcome> {
    for (const step of steps) {
      if (!duringStop && this.#stopped()) return { kind: 'success' };
      const r = await this.#launch(key, step);
      if (!('pid' in r)) {
        const o = this.#judge(key, step, r, false);
        if (o.kind !== 'success') return o;
        continue;
      }
      let timedOut = false;
      const abort = (): void => {
        trySignal(r.pid, this.#c.killSignal as NodeJS.Signals);
      };
      const stop = duringStop ? undefined : this.#stop.signal;
      stop?.addEventListener('abort', abort, { once: true });
      if (stop?.aborted === true) abort(); // the stop came while the step was being spawned
      let exit: Exit;
      try {
        if (await this.#waitFor(r.exited, timeoutMs)) {
          exit = await r.exited;
        } else {
          timedOut = true;
          this.#log(`${key} timed out after ${timeoutMs} ms; killing process ${r.pid}.`);
          trySignal(r.pid, this.#c.killSignal as NodeJS.Signals);
          if (!(await this.#waitFor(r.exited, this.#c.timeoutStopMs))) trySignal(r.pid, 'SIGKILL');
          exit = await r.exited;
        }
      } finally {
        stop?.removeEventListener('abort', abort);
      }
      if (timedOut && !step.ignoreFailure) {
        return { kind: 'timeout', reason: `${key}=${step.path} timed out after ${timeoutMs} ms` };
      }
      if (!duringStop && this.#stopped()) return { kind: 'success' };
      const o = this.#judge(key, step, exit, false);
      if (o.kind !== 'success') return o;
    }
    return { kind: 'success' };
  }

  /** Classifies an exit as systemd does and records it (lastExit, journal). */
  #judge(key: ExecKey, step: ExecStep | undefined, exit: Exit, isMain: boolean): Outcome {
    const path = step?.path ?? '?';
    const at = new Date(this.#d.clock.now()).toISOString();
    const { codes, signals } = this.#c.successExitStatus;
    let outcome: Outcome;
    if (exit.kind === 'not-run') {
      this.#lastExit = { code: exit.code, at };
      this.#log(`Failed to run: ${exit.reason}`);
      outcome = { kind: 'exit-code', reason: exit.reason };
    } else if (exit.kind === 'exited') {
      if (isMain || exit.code !== 0) this.#lastExit = { code: exit.code, at };
      const clean = exit.code === 0 || codes.includes(exit.code);
      if (isMain || !clean) {
        this.#log(`${isMain ? 'Main process' : key} exited, code=exited, status=${exit.code}`);
      }
      outcome = clean
        ? { kind: 'success' }
        : { kind: 'exit-code', reason: `${key}=${path} exited with status ${exit.code}` };
    } else {
      this.#lastExit = { signal: exit.signal, at };
      if (exit.lost !== undefined) this.#log(`Main process ${exit.lost}; counted as killed by SIGKILL.`);
      this.#log(`${isMain ? 'Main process' : key} exited, code=killed, status=${exit.signal}`);
      const clean =
        signals.includes(exit.signal) || (this.#c.type !== 'oneshot' && CLEAN_SIGNALS.has(exit.signal));
      outcome = clean
        ? { kind: 'success' }
        : { kind: 'signal', reason: `${key}=${path} killed by ${exit.signal}` };
    }
    if (outcome.kind !== 'success' && step?.ignoreFailure === true) {
      this.#log(`${key}=${path} failed, ignored (- prefix).`);
      return { kind: 'success' };
    }
    return outcome;
  }

  #shouldRestart(o: Outcome): boolean {
    switch (this.#c.restart) {
      case 'no':
        return false;
      case 'always':
        return true;
      case 'on-success':
        return o.kind === 'success';
      case 'on-failure':
        return o.kind !== 'success';
      case 'on-abnormal':
        return o.kind === 'signal' || o.kind === 'timeout' || o.kind === 'health';
      case 'on-abort':
        return o.kind === 'signal';
    }
  }

  #finish(outcome: Outcome): SupervisorStatus {
    this.#mainPid = undefined;
    if (outcome.kind === 'success') {
      this.#reason = this.#stopped() ? this.#stopReason : undefined;
      this.#set('inactive', 'dead');
      this.#log('Stopped.');
    } else {
      this.#reason = outcome.reason;
      this.#set('failed', 'failed');
      this.#log(`Failed: ${outcome.reason}`);
    }
    return this.#status(true);
  }

  /** Spawns one step inside the unit's tree; `not-run` when it cannot be executed. */
  async #launch(key: ExecKey, step: ExecStep): Promise<Running | Exit> {
    const c = this.#c;
    const env: Record<string, string> = { ...c.env, FLEETTS_INVOCATION_ID: this.#d.invocationId };
    env['PATH'] ??= DEFAULT_PATH;
    // systemd's run-time variable: the main process's pid, for the steps that run beside it.
    if (key !== 'ExecStartPre' && key !== 'ExecStart' && this.#mainPid !== undefined)
      env['MAINPID'] = String(this.#mainPid);
    const argv = step.expandAtLaunch
      ? expandWords(step.argv, {
          ...c.env,
          ...(env['MAINPID'] === undefined ? {} : { MAINPID: env['MAINPID'] }),
        })
      : step.argv;
    let creds: Credentials | undefined;
    if (!step.privileged && (c.user !== undefined || c.group !== undefined)) {
      const r = this.#d.lookupCredentials(c.user, c.group);
      if (r.kind === 'error')
        return { kind: 'not-run', code: c.user !== undefined ? 217 : 216, reason: r.reason };
      creds = r.credentials;
    }
    let cwd = '/';
    if (c.workingDirectory !== undefined) {
      const wd =
        c.workingDirectory.path === '~' ? (creds?.home ?? env['HOME'] ?? '/') : c.workingDirectory.path;
      if (isDirectory(wd)) cwd = wd;
      else if (!c.workingDirectory.optional) {
        return { kind: 'not-run', code: 200, reason: `WorkingDirectory=${wd}: no such directory` };
      }
    }
    const resolved = resolveProgram(step.path, env['PATH']);
    if (resolved.kind === 'error') {
      return { kind: 'not-run', code: 203, reason: `${key}=${step.path}: ${resolved.reason}` };
    }
    if (key === 'ExecStart' && c.type !== 'oneshot' && this.#d.launchMain !== undefined) {
      const launched = await this.#d.launchMain({
        path: resolved.path,
        argv: argv.length > 0 ? argv : [step.path],
        cwd,
        env,
        unit: c.unit,
        ...(creds === undefined ? {} : { credentials: creds }),
      });
      if ('pid' in launched) {
        this.#noteMain(launched);
        return launched;
      }
      // The launcher says why it could not run the program; the step is named here, as below.
      return launched.kind === 'not-run'
        ? { ...launched, reason: `${key}=${step.path}: ${launched.reason}` }
        : launched;
    }
    let child: ChildProcess;
    try {
      child = this.#d.tree.spawnInside(() =>
        spawn(resolved.path, argv.slice(1), {
          argv0: argv[0] ?? step.path,
          cwd,
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          ...(creds === undefined ? {} : { uid: creds.uid, gid: creds.gid }),
        }),
      );
    } catch (err) {
      return { kind: 'not-run', code: 203, reason: `${key}=${step.path}: ${describeError(err)}` };
    }
    const spawned = await new Promise<Running | Exit>((resolve) => {
      child.once('spawn', () => {
        const pid = child.pid ?? -1;
        this.#d.tree.register(pid);
        resolve({ pid, exited: this.#capture(child, pid) });
      });
      child.once('error', (err) =>
        resolve({ kind: 'not-run', code: 203, reason: `${key}=${step.path}: ${describeError(err)}` }),
      );
    });
    if ('pid' in spawned && key === 'ExecStart' && c.type !== 'oneshot') this.#noteMain(spawned);
    return spawned;
  }

  #noteMain(main: Running): void {
    this.#mainPid = main.pid;
    void main.exited.then(() => {
      if (this.#mainPid === main.pid) this.#mainPid = undefined;
    });
  }

  /** Journals the child's output; resolves with its exit (not with its pipes' close: daemons keep them). */
  #capture(child: ChildProcess, pid: number): Promise<Exit> {
    const ident = `${this.#c.unit}[${pid}]`;
    const splitters = [child.stdout, child.stderr].map((stream) => {
      const s = new LineSplitter((line) => this.#d.journal.write(ident, line));
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => s.push(chunk));
      stream?.on('end', () => s.end());
      return s;
    });
    return new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        // Output written just before exit may still be in the pipe: let it drain first.
        setImmediate(() => {
          for (const s of splitters) s.end();
          resolve(signal !== null ? { kind: 'killed', signal } : { kind: 'exited', code: code ?? 0 });
        });
      });
    });
  }

  /**
   * Runs the unit's health check every interval while the main process runs (until `signal`);
   * resolves once it failed `retries` times in a row, outside the start period. Never rejects.
   */
  async #watchHealth(h: HealthConfig, signal: AbortSignal): Promise<Outcome & { kind: 'health' }> {
    const never = new Promise<never>(() => undefined);
    // Loaded only by the supervisors of units with a check (node:http, node:net).
    const { checkHealth, parseCheckTarget } = await import('../discovery/health-check.js');
    let target: ReturnType<typeof parseCheckTarget>;
    try {
      target = parseCheckTarget(h.check, 'Check=');
    } catch (err) {
      this.#log(`Health check not run: ${err instanceof Error ? err.message : String(err)}`);
      return never;
    }
    const clock = this.#d.clock;
    const started = clock.monotonic();
    let failures = 0;
    // A unit taken over keeps its verdict until the next check.
    if (this.#health === undefined) this.#setHealth('starting');
    for (;;) {
      try {
        await clock.sleep(h.intervalMs, signal);
      } catch {
        break;
      }
      const outcome = await checkHealth(target, { clock, timeoutMs: h.timeoutMs });
      if (signal.aborted) break;
      if (outcome.kind === 'pass') {
        if (failures > 0) this.#log(`Health check passed again (${outcome.detail}).`);
        failures = 0;
        this.#setHealth('healthy');
        continue;
      }
      if (this.#health === 'starting' && clock.monotonic() - started < h.startPeriodMs) continue;
      failures++;
      this.#log(`Health check ${h.check} failed (${failures} of ${h.retries}): ${outcome.reason}`);
      if (failures >= h.retries) {
        this.#setHealth('unhealthy');
        const reason = `unhealthy: health check ${h.check} failed ${failures} times in a row (${outcome.reason})`;
        this.#log(`${reason}; stopping the unit.`);
        return { kind: 'health', reason };
      }
    }
    this.#health = undefined;
    return never;
  }

  #setHealth(state: HealthState): void {
    if (state === this.#health) return;
    this.#health = state;
    this.#d.writeStatus(this.#status(false));
  }

  #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  #stopRequested(): Promise<undefined> {
    return new Promise((resolve) => {
      if (this.#stopped()) resolve(undefined);
      else this.#stop.signal.addEventListener('abort', () => resolve(undefined), { once: true });
    });
  }

  #set(active: SupervisorStatus['active'], sub: string): void {
    if (active !== this.#active) this.#since = new Date(this.#d.clock.now()).toISOString();
    this.#active = active;
    this.#sub = sub;
    this.#d.writeStatus(this.#status(false));
  }

  #status(done: boolean): SupervisorStatus {
    const s: SupervisorStatus = {
      v: 1,
      unit: this.#c.unit,
      hash: this.#c.hash,
      supervisor: this.#d.self,
      active: this.#active,
      sub: this.#sub,
      since: this.#since,
      restarts: this.#restarts,
      done,
      ...(this.#mainPid === undefined ? {} : { mainPid: this.#mainPid }),
      ...(this.#lastExit === undefined ? {} : { lastExit: this.#lastExit }),
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
      ...(this.#health === undefined ? {} : { health: this.#health }),
    };
    if (done) this.#d.writeStatus(s);
    return s;
  }

  #log(text: string): void {
    this.#d.journal.write(`fleetts-supervisor[${this.#d.self.pid}]`, `${this.#c.unit}: ${text}`);
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

type Resolved =
  { readonly kind: 'ok'; readonly path: string } | { readonly kind: 'error'; readonly reason: string };

/** An absolute path must be executable; a bare name is looked up on PATH (as systemd ≥ 239). */
export function resolveProgram(path: string, searchPath: string | undefined): Resolved {
  if (path.includes('/')) {
    const problem = executableProblem(path);
    return problem === undefined ? { kind: 'ok', path } : { kind: 'error', reason: problem };
  }
  for (const dir of (searchPath ?? DEFAULT_PATH).split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, path);
    if (executableProblem(candidate) === undefined) return { kind: 'ok', path: candidate };
  }
  return { kind: 'error', reason: 'not found on PATH' };
}

function executableProblem(path: string): string | undefined {
  try {
    if (statSync(path).isDirectory()) return 'is a directory';
    accessSync(path, constants.X_OK);
    return undefined;
  } catch (err) {
    return describeError(err);
  }
}

export function describeError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'ENOEXEC') return 'exec format error';
  return err instanceof Error ? err.message : String(err);
}
