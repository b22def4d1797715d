// The files through which fleetd's process runtime and a unit's supervisor talk (both sides import
// this). Their schemas and decoders are in records.ts (versioned zod, docs/runtime-files.md).
//
// <stateDir>/units/<unit>/
//   config.json      SupervisorConfig, written by the runtime before it spawns the supervisor
//   status.json      SupervisorStatus, rewritten atomically (tmp + rename) on every change
//   journal.log[.N]  the unit's output, rotated
//   supervisor.log   the supervisor's own stderr (crashes only)
// <stateDir>/fence.json  the self-fencing deadline, moved forward by fleetd's agent (fence.ts)
// Commands are signals to the supervisor: SIGTERM = stop the unit and exit, SIGHUP = ExecReload.

import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessUnitConfig } from './runtime.js';

/** Where the unit's processes are confined, decided by the runtime (see process-tree.ts). */
export type TrackingConfig =
  | { readonly kind: 'cgroup2'; readonly path: string }
  | { readonly kind: 'cgroup1'; readonly path: string }
  | { readonly kind: 'proc-scan' };

export interface JournalLimits {
  /** Bytes per file before rotation. */
  readonly maxBytes: number;
  /** Files kept, the current one included (so at most maxBytes × files bytes per unit). */
  readonly files: number;
}

export interface SupervisorConfig {
  readonly v: 1;
  readonly unitConfig: ProcessUnitConfig;
  readonly tracking: TrackingConfig;
  readonly journal: JournalLimits;
  /**
   * The self-fencing deadline file (fence.ts): the supervisor stops its unit once it passes. Set
   * only for an AtMostOnce unit (`unitConfig.atMostOnce`); other units ignore the deadline.
   */
  readonly fence?: { readonly path: string };
}

export interface ProcessIdentity {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): tells a live pid from a reused one. */
  readonly startTime: number;
}

export interface SupervisorStatus {
  readonly v: 1;
  readonly unit: string;
  readonly hash: string;
  readonly supervisor: ProcessIdentity;
  readonly active: 'active' | 'activating' | 'deactivating' | 'inactive' | 'failed';
  readonly sub: string;
  readonly mainPid?: number;
  readonly since: string;
  readonly lastExit?: { readonly code?: number; readonly signal?: string; readonly at: string };
  readonly reason?: string;
  /** The [X-Health] check's verdict while the main process runs (absent: no check, or not running). */
  readonly health?: 'starting' | 'healthy' | 'unhealthy';
  /** How many times the unit was restarted by its Restart= policy in this supervisor's life. */
  readonly restarts: number;
  /** True once the supervisor has nothing left to do and is exiting (inactive or failed). */
  readonly done: boolean;
  /**
   * Written by the host supervisor (`supervisor` is then that one, shared by every unit of the
   * host): a status left not done by one that died is taken over by the next, not lost.
   */
  readonly host?: true;
  /** FLEETTS_INVOCATION_ID of the current run (host supervisor): how the /proc scan finds it again. */
  readonly invocation?: string;
}

export interface UnitPaths {
  readonly dir: string;
  readonly config: string;
  readonly status: string;
  readonly journal: string;
  readonly supervisorLog: string;
}

/** Unit names hold only [A-Za-z0-9:_.\-\\@] and never start with '.', so they are safe file names. */
export function unitPaths(stateDir: string, unit: string): UnitPaths {
  const dir = join(stateDir, 'units', unit);
  return {
    dir,
    config: join(dir, 'config.json'),
    status: join(dir, 'status.json'),
    journal: join(dir, 'journal.log'),
    supervisorLog: join(dir, 'supervisor.log'),
  };
}

/**
 * Writes a file so that readers see the old or the new content, never a torn one. `durable`:
 * fsynced before the rename, so that it survives a crash of the host too. The host supervisor's
 * statuses are not: it writes several per start, for a burst of starts, and after a crash of the
 * host nothing they describe runs any more (a torn status reads as none, as a missing one does).
 */
export function writeFileAtomic(path: string, data: string, durable = true): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, data);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
