// The error of the web-farm demo and its steps (src/demo): a step that did not reach its state in
// time, or a precondition the machine does not meet. The message says what to look at.
import { FleetError, type FleetErrorOptions } from '../lib/errors.js';

export type DemoErrorCode = 'demo_timeout' | 'demo_step_failed' | 'demo_needs_root';

export class DemoError extends FleetError {
  constructor(code: DemoErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(code, message, options);
  }
}
