// What a container's `docker inspect` means in systemd's terms (pure): the observed state the
// Docker runtime reports, how an exit is classified, and whether Restart= asks for a restart.

import { constants } from 'node:os';
import type { ContainerInspectInfo } from 'dockerode';
import type { UnitHash } from '../cluster/types.js';
import type { ContainerUnitConfig } from './docker-config.js';
import type { ObservedUnit, RestartPolicy } from './runtime.js';

export type ContainerHealthStatus = 'starting' | 'healthy' | 'unhealthy';

/**
 * ObservedUnit plus the container's health. Health never changes `active`/`sub` here (an unhealthy
 * container is still active/running until the runtime stops it, docker-runtime.ts); an unhealthy
 * one carries `reason: "unhealthy: …"` so that UnitStatus shows it too.
 */
export interface ObservedContainer extends ObservedUnit {
  readonly health?: ContainerHealthStatus;
}

/** What only the runtime knows, beside Docker's record. */
export interface RuntimeView {
  /** This runtime is stopping the container, or stopped it: its exit is not a failure. */
  readonly stopRequested: boolean;
  /** A restart is scheduled (Restart=, RestartSec=). */
  readonly restartPending: boolean;
  /** start() (or a restart) is creating or starting the container: an earlier exit is history. */
  readonly starting: boolean;
  /** Why the unit failed outside Docker's record (start limit, start error), with when. */
  readonly failure?: { readonly reason: string; readonly since: string };
}

export interface ContainerExit {
  readonly code?: number;
  readonly signal?: string;
  readonly at: string;
  /** systemd's "clean": status 0, or SIGHUP/SIGINT/SIGTERM/SIGPIPE. */
  readonly clean: boolean;
  readonly oomKilled: boolean;
}

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);
const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(constants.signals).map(([name, n]) => [n, name] as const),
);

/** A container's last exit, or undefined when it has not exited since it last started. */
export function containerExit(info: ContainerInspectInfo): ContainerExit | undefined {
  const s = info.State;
  if (s.Status !== 'exited' && s.Status !== 'dead') return undefined;
  const code = s.ExitCode;
  // A shell or init reports death by signal N as status 128+N, and so does Docker for PID 1.
  const signal = code > 128 && code < 128 + 65 ? SIGNAL_NAMES.get(code - 128) : undefined;
  const at = validTime(s.FinishedAt) ?? validTime(s.StartedAt) ?? info.Created;
  return {
    ...(signal === undefined ? { code } : { signal }),
    at,
    clean: code === 0 || (signal !== undefined && CLEAN_SIGNALS.has(signal)),
    oomKilled: s.OOMKilled,
  };
}

/**
 * Docker's mark for a container that was running when its daemon went down with it (a power cut,
 * a reboot, a killed dockerd): on restart the daemon finds no task and records exit status 255.
 * Such a container did not end by itself. (A program that exits with 255 of its own accord looks
 * the same; it is then started once more by the fleetd that adopts it, which Restart= would
 * mostly have done anyway.)
 */
export function diedWithDaemon(info: ContainerInspectInfo): boolean {
  const s = info.State;
  return s.Status === 'exited' && s.ExitCode === 255 && !s.OOMKilled;
}

/** systemd's table (systemd.service(5), Restart=) for one exit of the main process. */
export function shouldRestart(policy: RestartPolicy, exit: ContainerExit): boolean {
  const uncleanSignal = exit.signal !== undefined && !exit.clean;
  switch (policy) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'on-success':
      return exit.clean;
    case 'on-failure':
      return !exit.clean;
    case 'on-abnormal':
    case 'on-abort':
      return uncleanSignal || exit.oomKilled;
  }
}

/** The unit's observed state from its container (or its absence) and the runtime's own view. */
export function observeContainer(
  config: Pick<ContainerUnitConfig, 'unit' | 'hash'>,
  info: ContainerInspectInfo | undefined,
  view: RuntimeView,
  seen: string,
): ObservedContainer {
  const base = { unit: config.unit, load: 'loaded' as const };
  if (info === undefined) {
    if (view.failure !== undefined) {
      return {
        ...base,
        hash: config.hash,
        active: 'failed',
        sub: 'failed',
        since: view.failure.since,
        reason: view.failure.reason,
      };
    }
    if (view.starting && !view.stopRequested) {
      return { ...base, hash: config.hash, active: 'activating', sub: 'start', since: seen };
    }
    return { ...base, hash: config.hash, active: 'inactive', sub: 'dead', since: seen };
  }
  const s = info.State;
  const hash = (info.Config.Labels?.['fleetts.hash'] ?? config.hash) as UnitHash;
  const withId = { ...base, hash, containerId: info.Id };
  const started = validTime(s.StartedAt) ?? info.Created;
  const exit = containerExit(info);
  const lastExit =
    exit === undefined
      ? {}
      : {
          lastExit: {
            ...(exit.code === undefined ? {} : { code: exit.code }),
            ...(exit.signal === undefined ? {} : { signal: exit.signal }),
            at: exit.at,
          },
        };
  if (s.Status === 'running' || s.Status === 'paused' || s.Status === 'restarting') {
    const pid = s.Pid > 0 ? { pid: s.Pid } : {};
    if (view.stopRequested) {
      return { ...withId, ...pid, active: 'deactivating', sub: 'stop-sigterm', since: started };
    }
    const health = healthOf(info);
    const unhealthy = health === 'unhealthy' ? { reason: `unhealthy: ${lastProbe(info)}` } : {};
    return {
      ...withId,
      ...pid,
      active: 'active',
      sub: s.Status === 'paused' ? 'paused' : 'running',
      since: started,
      ...(health === undefined ? {} : { health }),
      ...unhealthy,
    };
  }
  if (s.Status === 'removing') {
    return { ...withId, active: 'deactivating', sub: 'stop', since: started };
  }
  if (view.failure !== undefined) {
    return {
      ...withId,
      ...lastExit,
      active: 'failed',
      sub: 'failed',
      since: view.failure.since,
      reason: view.failure.reason,
    };
  }
  if (view.starting && !view.stopRequested) {
    return { ...withId, ...lastExit, active: 'activating', sub: 'start', since: exit?.at ?? info.Created };
  }
  if (s.Status === 'created') {
    if (s.Error !== '') {
      return { ...withId, active: 'failed', sub: 'failed', since: info.Created, reason: s.Error };
    }
    return { ...withId, active: 'inactive', sub: 'dead', since: info.Created };
  }
  // exited or dead
  const at = exit?.at ?? info.Created;
  if (view.restartPending) {
    return { ...withId, ...lastExit, active: 'activating', sub: 'auto-restart', since: at };
  }
  if (s.Error !== '') {
    return { ...withId, ...lastExit, active: 'failed', sub: 'failed', since: at, reason: s.Error };
  }
  if (exit === undefined || exit.clean || view.stopRequested) {
    return { ...withId, ...lastExit, active: 'inactive', sub: 'dead', since: at };
  }
  return { ...withId, ...lastExit, active: 'failed', sub: 'failed', since: at, reason: describeExit(exit) };
}

/** "the container exited with status 3", "… was killed by SIGKILL (out of memory)". */
export function describeExit(exit: ContainerExit): string {
  const oom = exit.oomKilled ? ' (out of memory)' : '';
  return exit.signal !== undefined
    ? `the container was killed by ${exit.signal}${oom}`
    : `the container exited with status ${exit.code ?? '?'}${oom}`;
}

function healthOf(info: ContainerInspectInfo): ContainerHealthStatus | undefined {
  const status = info.State.Health?.Status;
  return status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : undefined;
}

/** The last health probe's verdict: "the health check exited with status 1: …". */
export function lastProbe(info: ContainerInspectInfo): string {
  const log = info.State.Health?.Log ?? [];
  const last = log[log.length - 1];
  if (last === undefined) return 'the health check fails';
  const out = last.Output.trim().replace(/\s+/g, ' ').slice(0, 200);
  return `the health check exited with status ${last.ExitCode}${out === '' ? '' : `: ${out}`}`;
}

/** Docker writes "0001-01-01T00:00:00Z" for times that never happened. */
function validTime(t: string | undefined): string | undefined {
  if (t === undefined || t.startsWith('0001-')) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}
