// The one error class of the registry boundary: etcd failures, CAS conflicts and fencing are
// translated here so that the engine, agents and API branch on `code`, never on etcd3's classes.
import { FleetError } from '../lib/errors.js';

/**
 * - `unavailable`: etcd could not be reached or did not answer in time (recoverable: retry later).
 * - `conflict`: a compare-and-swap lost against a concurrent write (recoverable: re-read, re-plan).
 * - `fenced`: a leader-only write from an engine that is no longer leader (stop leader work).
 * - `not_found`: the named unit/machine/record does not exist.
 * - `exists`: a create met an existing record that differs (e.g. a unit with other content).
 * - `machine_id_taken`: another live fleetd holds this machine id's membership key.
 * - `lease_lost`: the lease a write was bound to has expired or been revoked.
 * - `corrupt`: a stored value does not decode (the message names the key).
 * - `invalid`: a bad argument (a key segment with '/', a hash that does not match the text…).
 * - `denied`: etcd refused the credentials or the permission (fix the configuration).
 * - `closed`: the registry or handle was closed.
 * - `compacted`: a read or watch of a past revision whose history etcd has compacted away
 *   (recoverable only by starting again from the current state).
 */
export type RegistryErrorCode =
  | 'unavailable'
  | 'conflict'
  | 'fenced'
  | 'not_found'
  | 'exists'
  | 'machine_id_taken'
  | 'lease_lost'
  | 'corrupt'
  | 'invalid'
  | 'denied'
  | 'closed'
  | 'compacted';

const RECOVERABLE: ReadonlySet<RegistryErrorCode> = new Set(['unavailable', 'conflict']);

export class RegistryError extends FleetError {
  declare readonly code: RegistryErrorCode;

  constructor(code: RegistryErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, recoverable: RECOVERABLE.has(code) });
  }
}

export function isRegistryError(error: unknown, code?: RegistryErrorCode): error is RegistryError {
  return error instanceof RegistryError && (code === undefined || error.code === code);
}
