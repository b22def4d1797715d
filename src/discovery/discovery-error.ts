// The error class of the discovery boundary (announce, upstream): health checks, templates and the
// nginx sink. The CLI maps it to an exit code like every FleetError.
import { FleetError, type FleetErrorOptions } from '../lib/errors.js';

/**
 * - `template_invalid`: a user template uses an unknown placeholder (fix the template).
 * - `command_failed`: a check or reload command exited non-zero or could not run.
 * - `io`: the rendered file could not be written or renamed (permissions, missing directory).
 */
export type DiscoveryErrorCode = 'template_invalid' | 'command_failed' | 'io';

export class DiscoveryError extends FleetError {
  declare readonly code: DiscoveryErrorCode;

  constructor(code: DiscoveryErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(code, message, options);
  }
}
