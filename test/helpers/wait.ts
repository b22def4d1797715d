// Polls until a probe yields a value (not undefined or false) or the deadline passes: the one wait
// of the real-process and Docker tests (a fixed sleep would be either flaky or slow).

/**
 * How long a test waits for real processes to converge unless it says otherwise: sized for a
 * loaded 2-core machine (a CPU hog on both cores beside the suite), where a convergence that takes
 * 1 s when idle may take several. A wait only ends early, so a long limit costs nothing when green.
 */
export const CONVERGE_MS = 30_000;

/** Thrown inside a probe: stops waiting at once (the awaited thing cannot happen any more). */
export class WaitAborted extends Error {}

export interface WaitOptions {
  /** Default CONVERGE_MS. */
  readonly timeoutMs?: number | undefined;
  /** Pause between two probes; default 25 ms (raise it for probes that spawn processes). */
  readonly intervalMs?: number | undefined;
}

/**
 * Resolves with the first value `probe` yields other than undefined or false. A probe that throws
 * is tried again (a converging system refuses connections, answers 503…), and its last error is
 * named if the deadline passes; a probe that throws WaitAborted fails the wait at once.
 * `options` may be the timeout in ms alone.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: number | WaitOptions = {},
): Promise<T> {
  const o: WaitOptions = typeof options === 'number' ? { timeoutMs: options } : options;
  const timeoutMs = o.timeoutMs ?? CONVERGE_MS;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (err instanceof WaitAborted) throw err;
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (last instanceof Error ? ` (last error: ${last.message})` : ''),
      );
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 25));
  }
}
