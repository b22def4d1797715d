// What the process and systemd runtimes share in telling their listeners of a unit's state: an
// observation is told once per change (compared as JSON with the last one told), a listener that
// throws does not stop the others, and entering `failed` is logged (`runtime.unit_failed`, counted
// by fleetd's metrics).
import type { ChangeListener, ObservedUnit } from './runtime.js';

/** What was last told of one unit. */
export interface ToldState {
  last?: string;
  lastActive?: string;
}

export class UnitChanges {
  readonly #listeners = new Set<ChangeListener>();
  readonly #log: (event: string, fields: Record<string, unknown>) => void;

  constructor(log: (event: string, fields: Record<string, unknown>) => void) {
    this.#log = log;
  }

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  clear(): void {
    this.#listeners.clear();
  }

  /** Records `o` as already known (a unit found at adoption), without telling anyone. */
  seen(told: ToldState, o: ObservedUnit): void {
    told.last = JSON.stringify(o);
    told.lastActive = o.active;
  }

  /** Tells the listeners of `o` unless it is what they were last told of this unit (`key`: its JSON). */
  tell(told: ToldState, o: ObservedUnit, key = JSON.stringify(o)): void {
    if (key === told.last) return;
    told.last = key;
    if (o.active === 'failed' && told.lastActive !== 'failed')
      this.#log('runtime.unit_failed', {
        unit: o.unit,
        ...(o.reason === undefined ? {} : { reason: o.reason }),
        ...(o.lastExit === undefined ? {} : { lastExit: o.lastExit }),
      });
    told.lastActive = o.active;
    for (const l of this.#listeners) {
      try {
        l(o);
      } catch (err) {
        this.#log('runtime.listener_failed', { unit: o.unit, err: String(err) });
      }
    }
  }
}
