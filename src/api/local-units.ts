// What the API needs from this host's agent: the observed state and the journal of units placed
// here. fleetd passes the agent (or an adapter over it); the API serves these for local units and
// proxies to the unit's own host otherwise, so `fleetts status/journal` work from any endpoint.
import type { UnitName } from '../cluster/types.js';
import { FleetError } from '../lib/errors.js';
import type { ObservedUnit } from '../runtime/runtime.js';

export type { ObservedUnit } from '../runtime/runtime.js';

export interface LocalJournalOptions {
  /** The last `lines` lines first (0: none, only followed output). */
  readonly lines: number;
  /** Keep yielding new lines until `signal` aborts. */
  readonly follow: boolean;
  /** Aborted when the client goes away: the iterable must end soon after. */
  readonly signal: AbortSignal;
}

export interface LocalUnits {
  /** What this host's runtime observes of `unit` now; `undefined` when this host does not know it. */
  status(unit: UnitName): ObservedUnit | undefined | Promise<ObservedUnit | undefined>;
  /**
   * The unit's output, one line per item without the newline. Throws (or the iterable throws on
   * first use) a FleetError with code `not_found` when this host has no journal for the unit.
   */
  journal(unit: UnitName, options: LocalJournalOptions): AsyncIterable<string>;
}

/** For a host without an agent (and for tests of cluster-wide routes): knows no unit. */
export const NO_LOCAL_UNITS: LocalUnits = {
  status: () => undefined,
  journal: (unit) => ({
    [Symbol.asyncIterator]: () => ({
      next: () =>
        Promise.reject(
          new FleetError('not_found', `unit ${unit} has no journal on this host (no agent runs here)`),
        ),
    }),
  }),
};
