// How long the CLI waits for fleetd to answer a batch (submit, start, plan of many units): the
// request timeout covers a small request; a batch gets time in proportion to its size on top, so a
// submit that the server completes is not reported as failed because it was large.

/**
 * Per unit: fleetd parses, checks and stores each. Measured: 2.5 ms a unit at 5,000 on an idle host
 * (issue 14), 10 ms on a loaded 2-core one; five times that leaves room, and a fleetd that hangs is
 * still given up on (after 4 minutes for 5,000 units).
 */
export const BATCH_MS_PER_UNIT = 50;
/** Per MiB of unit-file text: sent, hashed and written to etcd. */
export const BATCH_MS_PER_MIB = 2_000;

/** The answer time limit for a batch of `units` units with `bytes` bytes of unit files. */
export function batchTimeoutMs(requestTimeoutMs: number, units: number, bytes: number): number {
  return Math.ceil(requestTimeoutMs + units * BATCH_MS_PER_UNIT + (bytes / 2 ** 20) * BATCH_MS_PER_MIB);
}
