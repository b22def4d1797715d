// The shared vocabulary of fleetts (DESIGN.md): every layer above `unit/` speaks in these types.
// Ids are branded strings so that a MachineId can never be passed where a UnitName is expected.

import type { MachineId, UnitHash, UnitName } from '../lib/ids.js';

export type { Brand, MachineId, UnitHash, UnitName } from '../lib/ids.js';
export {
  asMachineId,
  asUnitHash,
  asUnitName,
  isMachineId,
  MACHINE_ID_MAX,
  MACHINE_ID_RULE,
  machineIdProblem,
} from '../lib/ids.js';

/** fleet's target states: known but not placed → placed but not running → placed and started. */
export type TargetState = 'inactive' | 'loaded' | 'launched';
export const TARGET_STATES: readonly TargetState[] = ['inactive', 'loaded', 'launched'];

/** Machine metadata: one value per key (as fleet). */
export type Metadata = Readonly<Record<string, string>>;

/**
 * The placement constraints of one unit, from its `[X-Fleet]` section, with specifiers already
 * expanded. Absent/empty means "no constraint".
 */
export interface Placement {
  /** Run only on this machine (exact id, or a unique prefix as fleet allowed). */
  readonly machineId?: string;
  /** Run on the same machine as each of these units (full names). */
  readonly machineOf: readonly string[];
  /** key → accepted values: values of one key are ORed, different keys ANDed. */
  readonly machineMetadata: Readonly<Record<string, readonly string[]>>;
  /** Glob patterns of unit names this unit must not share a machine with. */
  readonly conflicts: readonly string[];
  /** Run on every machine that matches the other constraints. */
  readonly global: boolean;
  /** Glob patterns of units this unit displaces from the machine it is placed on. */
  readonly replaces: readonly string[];
  /**
   * `AtMostOnce=true` (not fleet's): the unit must never run on two machines at once, so its host
   * stops it when cut off from etcd (docs/fencing.md). Absent means false: the unit keeps running.
   */
  readonly atMostOnce?: boolean;
}

export const NO_PLACEMENT: Placement = {
  machineOf: [],
  machineMetadata: {},
  conflicts: [],
  global: false,
  replaces: [],
};

/** A host running fleetd, as registered in etcd under its membership lease. */
export interface Machine {
  readonly id: MachineId;
  /** The host's public IP (what units and peers use to reach it). */
  readonly ip: string;
  /** Configured metadata merged with dynamic metadata set through the registry. */
  readonly metadata: Metadata;
  /** Where this host's fleetd API listens for other hosts (e.g. `http://10.0.0.2:4003`), if it does. */
  readonly apiAddress?: string;
  readonly version: string;
  /** ISO-8601 time the fleetd process started. */
  readonly startedAt: string;
  /** The host's total memory in bytes, as its fleetd read it at start (unset from older fleetds). */
  readonly memoryBytes?: number;
}

/** The desired state of one unit: its file (by hash) and target state, as the user set them. */
export interface Unit {
  readonly name: UnitName;
  readonly hash: UnitHash;
  readonly target: TargetState;
}

/** A unit placed on a machine, written only by the engine leader. */
export interface Assignment {
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly hash: UnitHash;
  /** What the agent should do with it: keep it loaded (not running) or launched (running). */
  readonly target: Exclude<TargetState, 'inactive'>;
}

/** systemd's load states (the registry's codec and the API's schema validate against these). */
export const LOAD_STATES = ['loaded', 'not-found', 'error'] as const;
export type LoadState = (typeof LOAD_STATES)[number];
/** systemd's active states. */
export const ACTIVE_STATES = ['active', 'activating', 'deactivating', 'inactive', 'failed'] as const;
export type ActiveState = (typeof ACTIVE_STATES)[number];

/** What an agent observes of one unit on its machine; bound to the agent's lease in etcd. */
export interface UnitStatus {
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly hash: UnitHash;
  readonly load: LoadState;
  readonly active: ActiveState;
  /** systemd's sub-state: running, exited, dead, auto-restart, start-pre, stop-sigterm, … */
  readonly sub: string;
  readonly pid?: number;
  readonly containerId?: string;
  /** ISO-8601 time of the last change of active state. */
  readonly since: string;
  readonly lastExit?: { readonly code?: number; readonly signal?: string; readonly at: string };
  /** Why the unit is failed or not loaded, in words. */
  readonly reason?: string;
  /** Its health check's verdict ([X-Health] of a process unit, a container's HEALTHCHECK). */
  readonly health?: HealthState;
}

/** Docker's words: `starting` until the first pass, `unhealthy` after Retries failures in a row. */
export const HEALTH_STATES = ['starting', 'healthy', 'unhealthy'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];
