// fleetts exit codes (fleetctl's, made precise): one place, used by the top-level catch.

export const EXIT_OK = 0;
/** The command ran but its goal was not reached: a unit file is invalid, the cluster did not reach the state. */
export const EXIT_FAILED = 1;
/** The command line itself is wrong: unknown command or flag, missing argument. */
export const EXIT_USAGE = 2;
