// Branded identifiers shared by every layer (defined here, below unit/ and cluster/, so that both can
// use them without importing upwards). cluster/types.ts re-exports them with the rest of the vocabulary.

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
