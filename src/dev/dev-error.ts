// The error of `fleetts dev`: one class for every failure of the local cluster (missing root,
// unknown host, a step that failed), so the CLI maps it to a one-line message and exit code 1.
import { FleetError, type FleetErrorOptions } from '../lib/errors.js';

export type DevErrorCode =
  | 'dev_needs_root'
  | 'dev_not_up'
  | 'dev_already_up'
  | 'dev_unknown_host'
  | 'dev_ambiguous_host'
  | 'dev_step_failed'
  | 'dev_not_built'
  | 'dev_timeout'
  | 'dev_conflict';

export class DevError extends FleetError {
  declare readonly code: DevErrorCode;

  constructor(code: DevErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(code, message, options);
  }
}
