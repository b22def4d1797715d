// The error of the web-farm demo and its steps (src/demo): a step that did not reach its state in
// time, or a precondition the machine does not meet. The message says what to look at.
import { FleetError, type FleetErrorOptions } from '../lib/errors.js';

/**
 * - `demo_usage`: a bad command line (exit 2).
 * - `demo_needs_root`: not run as root.
 * - `demo_missing_program`: a program the units or the dev cluster run is not installed.
 * - `demo_cluster_exists`: the state dir holds a dev cluster (up, or left over by an earlier run).
 * - `demo_shared_path_busy`: the shared path is another cluster's mount.
 * - `demo_timeout`, `demo_step_failed`: a step of the running demo.
 */
export type DemoErrorCode =
  | 'demo_usage'
  | 'demo_needs_root'
  | 'demo_missing_program'
  | 'demo_cluster_exists'
  | 'demo_shared_path_busy'
  | 'demo_timeout'
  | 'demo_step_failed';

export class DemoError extends FleetError {
  declare readonly code: DemoErrorCode;

  constructor(code: DemoErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(code, message, options);
  }
}
