// The error class of the Galera member (src/galera): what stops `fleetts galera member` before or
// while MariaDB runs. The CLI maps it to exit code 1 like every FleetError; bad flags are UsageErrors.
import { FleetError, type FleetErrorOptions } from '../lib/errors.js';

/**
 * - `mariadbd_missing`: the server binary (or docker) cannot be run (install mariadb-server galera-4).
 * - `data_dir`: the data or run directory cannot be created, read or given to the mysql user.
 * - `command_failed`: a helper (mariadb-install-db, the init SQL, docker) exited non-zero.
 * - `lock_lost`: this member's etcd lease ended while it held the bootstrap lock.
 * - `bootstrap_failed`: the bootstrapping server exited before it was Synced.
 */
export type GaleraErrorCode =
  'mariadbd_missing' | 'data_dir' | 'command_failed' | 'lock_lost' | 'bootstrap_failed';

export class GaleraError extends FleetError {
  declare readonly code: GaleraErrorCode;

  constructor(code: GaleraErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(code, message, options);
  }
}
