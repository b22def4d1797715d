// The shared vocabulary of fleetts (DESIGN.md): every layer above `unit/` speaks in these types.
// Ids are branded strings so that a MachineId can never be passed where a UnitName is expected.

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A machine id: 32 lowercase hex characters as in /etc/machine-id, or any [A-Za-z0-9_-]{1,64}. */
export type MachineId = Brand<string, 'MachineId'>;
/** A full unit name with its type suffix: `web@1.unit`, `lb.service`. Validated by `unit/names`. */
export type UnitName = Brand<string, 'UnitName'>;
/** The content hash of a unit file's exact text (hex sha256). */
export type UnitHash = Brand<string, 'UnitHash'>;

export const asMachineId = (s: string): MachineId => s as MachineId;
export const asUnitName = (s: string): UnitName => s as UnitName;
export const asUnitHash = (s: string): UnitHash => s as UnitHash;

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
}

export const NO_PLACEMENT: Placement = {
  machineOf: [],
  machineMetadata: {},
  conflicts: [],
  global: false,
  replaces: [],
};
