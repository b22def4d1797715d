// Calls every listener even when one throws, and returns the first error for the caller to throw
// once all have run: one listener's bug must not keep the others from running (a grid timer's slot
// holds a lease's keepalive beside the heartbeat), nor be swallowed.

export function callAll(fns: Iterable<() => void>): { readonly error: unknown } | undefined {
  let failed: { error: unknown } | undefined;
  for (const fn of fns) {
    try {
      fn();
    } catch (error) {
      failed ??= { error };
    }
  }
  return failed;
}
