// Branded identifiers shared by every layer (defined here, below unit/ and cluster/, so that both can
// use them without importing upwards). cluster/types.ts re-exports them with the rest of the vocabulary.

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A machine id: see MACHINE_ID_RULE. Every id from outside passes `machineIdProblem` first. */
export type MachineId = Brand<string, 'MachineId'>;
/** A full unit name with its type suffix: `web@1.unit`, `lb.service`. Validated by `unit/names`. */
export type UnitName = Brand<string, 'UnitName'>;
/** The content hash of a unit file's exact text (hex sha256). */
export type UnitHash = Brand<string, 'UnitHash'>;

export const asMachineId = (s: string): MachineId => s as MachineId;
export const asUnitName = (s: string): UnitName => s as UnitName;
export const asUnitHash = (s: string): UnitHash => s as UnitHash;

/** The longest machine id. */
export const MACHINE_ID_MAX = 64;

/**
 * The one machine-id rule (fleetd's --machine-id, /etc/machine-id, MachineID=, the API): 1–64
 * letters, digits, "_" or "-". /etc/machine-id's 32 lowercase hex characters are one such id; names
 * like `host-a` suit test and dev clusters. Ids become etcd key segments, file names (run
 * directories) and Docker label values, all of which take these characters at this length.
 */
export const MACHINE_ID_RULE = `1–${MACHINE_ID_MAX} letters, digits, "_" or "-" (such as the 32 hex characters of /etc/machine-id)`;

const MACHINE_ID = new RegExp(`^[A-Za-z0-9_-]{1,${MACHINE_ID_MAX}}$`);

/** Why `s` is no machine id (a phrase to follow "must be"/"is not"), or undefined when it is one. */
export function machineIdProblem(s: string): string | undefined {
  if (MACHINE_ID.test(s)) return undefined;
  if (s === '') return 'it is empty';
  if (s.length > MACHINE_ID_MAX) return `it is ${s.length} characters long; the limit is ${MACHINE_ID_MAX}`;
  const bad = Array.from(s).find((c) => !/^[A-Za-z0-9_-]$/.test(c)) ?? '';
  return `character ${JSON.stringify(bad)} is not allowed`;
}

export function isMachineId(s: string): s is MachineId {
  return machineIdProblem(s) === undefined;
}
