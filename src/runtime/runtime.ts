// The runtime boundary: how an agent runs units on its own host. Two implementations share this
// interface: the process runtime (a systemd-style supervisor per unit) and the Docker runtime.
// The agent maps a UnitSpec to a runtime config; runtimes never parse unit files.

import { FleetError, type FleetErrorOptions } from '../lib/errors.js';
import type {
  ActiveState,
  HealthState,
  LoadState,
  UnitHash,
  UnitName,
  UnitStatus,
} from '../cluster/types.js';

export type { HealthState };

/** What every runtime config carries: the unit and the exact file it was made from. */
export interface RuntimeUnitConfigBase {
  readonly kind: string;
  readonly unit: UnitName;
  readonly hash: UnitHash;
  /**
   * `AtMostOnce=true` (or fencing policy `stop`): the unit must stop when this host can no longer
   * be sure it owns it, even after fleetd died. The process runtime makes its supervisor watch the
   * self-fencing deadline only for such units; others run on through any control-plane outage.
   */
  readonly atMostOnce?: boolean;
}

/** A unit's health check, as its [X-Health] section gave it (docs/health.md). */
export interface HealthConfig {
  /** `http://…`, `https://…` or `tcp://HOST:PORT`. */
  readonly check: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly startPeriodMs: number;
}

/** One Exec*= command, fully resolved: specifiers and `$VAR` already expanded. */
export interface ExecStep {
  /** The program to execute: absolute, or a bare name looked up in the unit's PATH. */
  readonly path: string;
  /** argv including argv[0] (which may differ from `path`, as with systemd's `@` prefix). */
  readonly argv: readonly string[];
  /** systemd's `-` prefix: a failure (non-zero exit, signal, not found) is ignored. */
  readonly ignoreFailure: boolean;
  /** systemd's `+`/`!` prefixes: run as fleetd's user, ignoring User=/Group=. */
  readonly privileged: boolean;
  /**
   * The line refers to `$MAINPID`, known only when the step runs: `argv` still holds its `$VAR`
   * references, and the supervisor expands them with the unit's environment and MAINPID.
   */
  readonly expandAtLaunch?: boolean | undefined;
}

export type ServiceType = 'simple' | 'exec' | 'oneshot';
export type RestartPolicy = 'no' | 'on-success' | 'on-failure' | 'on-abnormal' | 'on-abort' | 'always';
export type KillMode = 'control-group' | 'process' | 'mixed' | 'none';

/** A `[Service]` unit as the process runtime runs it. Every field is final (defaults applied). */
export interface ProcessUnitConfig extends RuntimeUnitConfigBase {
  readonly kind: 'process';
  readonly type: ServiceType;
  /** [X-Health]: the check that restarts the unit after Retries failures in a row. */
  readonly health?: HealthConfig;
  readonly execStartPre: readonly ExecStep[];
  /** Exactly one for simple/exec; zero or more for oneshot. */
  readonly execStart: readonly ExecStep[];
  readonly execStartPost: readonly ExecStep[];
  readonly execStop: readonly ExecStep[];
  readonly execStopPost: readonly ExecStep[];
  readonly execReload: readonly ExecStep[];
  readonly restart: RestartPolicy;
  readonly restartSecMs: number;
  /** More than `startLimitBurst` starts within `startLimitIntervalMs` → failed (start-limit-hit). 0 disables. */
  readonly startLimitBurst: number;
  readonly startLimitIntervalMs: number;
  /** 0 means no timeout. */
  readonly timeoutStartMs: number;
  /** 0 means no timeout (never escalate to SIGKILL). */
  readonly timeoutStopMs: number;
  /** Signal name, e.g. `SIGTERM`. */
  readonly killSignal: string;
  readonly killMode: KillMode;
  /**
   * The final environment of every Exec step (the agent adds FLEETTS_* variables). The runtime
   * adds only FLEETTS_INVOCATION_ID (to find the unit's processes), and PATH when absent.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute, or `~` for the user's home; default `/`. `optional` (systemd's `-`): missing is fine. */
  readonly workingDirectory?: { readonly path: string; readonly optional: boolean };
  /** User name or numeric uid; needs fleetd to run as root. */
  readonly user?: string;
  /** Group name or numeric gid; default the user's primary group. */
  readonly group?: string;
  readonly remainAfterExit: boolean;
  /** Exit codes and signal names counted as clean besides 0 and SIGHUP/SIGINT/SIGTERM/SIGPIPE. */
  readonly successExitStatus: { readonly codes: readonly number[]; readonly signals: readonly string[] };
}

/** What a runtime observes of one unit: UnitStatus without the machine (the agent adds it). */
export interface ObservedUnit {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly load: LoadState;
  readonly active: ActiveState;
  /** start-pre, start, start-post, running, exited, stop, stop-sigterm, stop-sigkill, stop-post, dead, failed, auto-restart. */
  readonly sub: string;
  readonly pid?: number;
  readonly containerId?: string;
  /** ISO-8601 time of the last change of active state. */
  readonly since: string;
  readonly lastExit?: UnitStatus['lastExit'];
  readonly reason?: string;
  /**
   * The unit did not end by itself: what ran it died with it (its supervisor was killed, the host
   * lost power). Found when a fleetd adopts it, such a unit is started again if it is still
   * assigned here, as systemd starts its units after a reboot.
   */
  readonly lost?: true;
  /** The unit's health check's verdict (a process unit's [X-Health], a container's HEALTHCHECK). */
  readonly health?: HealthState;
  /** The runtime was told the unit is AtMostOnce (RuntimeUnitConfigBase.atMostOnce); absent: it was not, or it does not know. */
  readonly atMostOnce?: true;
}

export interface JournalOptions {
  /** The last `lines` lines first (default 10; 0 = none, only followed output). */
  readonly lines?: number;
  /** Keep yielding new lines until `signal` aborts. */
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
}

export type ChangeListener = (unit: ObservedUnit) => void;

/**
 * Runs units on this host. Methods never throw for the state of a unit (a unit that cannot start
 * is reported `failed` with a reason); they throw RuntimeError only when the runtime itself
 * cannot act (state directory unwritable, Docker unreachable).
 */
export interface Runtime<C extends RuntimeUnitConfigBase = RuntimeUnitConfigBase> {
  /**
   * Finds units still running from a previous fleetd (same state directory / daemon) and
   * resumes watching them, without restarting anything. Call once before anything else.
   */
  adopt(): Promise<ObservedUnit[]>;
  /**
   * Starts the unit. Resolves once the runtime has taken charge (the process runtime: its
   * supervisor runs); the states that follow arrive through `onChange`. Already active with the
   * same hash: no-op. Active with another hash: stops the old one first, then starts this one.
   */
  start(config: C): Promise<void>;
  /** Stops the unit (ExecStop, signals, ExecStopPost) and resolves when it is inactive. Unknown unit: no-op. */
  stop(unit: UnitName): Promise<void>;
  /** Stops the unit if needed and forgets it (state and journal). Unknown unit: no-op. */
  remove(unit: UnitName): Promise<void>;
  /**
   * Self-fencing that outlives fleetd (optional: runtimes whose units cannot watch a deadline omit
   * it): every unit started with `atMostOnce` stops by itself once `remainingMs` from now has passed
   * without another call. `undefined` lifts the deadline (policy keep-running). See docs/fencing.md.
   */
  setFenceDeadline?(remainingMs: number | undefined): void;
  /** Every unit this runtime knows, running or not, sorted by name. */
  list(): Promise<ObservedUnit[]>;
  /** Calls `listener` after every observed change of a unit's state. Returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void;
  /**
   * The unit's output, one line per item (`<ISO time> <unit>[<pid>]: <text>`). Ends after the
   * last stored line unless `follow`; ends when `signal` aborts. Unknown unit: RuntimeError.
   */
  journal(unit: UnitName, options?: JournalOptions): AsyncIterable<string>;
  /** Stops watching. Units keep running (they outlive fleetd); a later `adopt()` finds them. */
  close(): Promise<void>;
}

/** The runtime itself could not act on a unit; the message names the unit. */
export class RuntimeError extends FleetError {
  readonly unit: string | undefined;

  constructor(message: string, options: FleetErrorOptions & { unit?: string; code?: string } = {}) {
    super(options.code ?? 'runtime', message, options);
    this.unit = options.unit;
  }
}
