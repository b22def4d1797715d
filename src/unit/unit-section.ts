// The typed [Unit] section: description and dependencies between units. parseUnitSpec
// (unit-spec.ts) calls parseUnitInfo once at submit; the agent reads BindsTo=/After= from UnitInfo.

import { expandIn, wordsOf, type SectionContext } from './section-values.js';
import type { UnitEntry } from './unit-file.js';

/** What [Unit] says about a unit, with %n %N %p %i expanded in the dependency lists. */
export interface UnitInfo {
  /** Description=, as written (specifiers in it are left for display on the host). */
  readonly description?: string;
  /** Documentation= URIs. */
  readonly documentation: readonly string[];
  /** Stop (and do not start) this unit when any of these is not active. */
  readonly bindsTo: readonly string[];
  /** Start after these (on the same machine) are started. */
  readonly after: readonly string[];
  readonly before: readonly string[];
  readonly requires: readonly string[];
  readonly wants: readonly string[];
  /**
   * Every other [Unit] entry (systemd has many: Conflicts=, ConditionPathExists=…): kept so that
   * nothing is lost, but fleetts gives them no meaning and raises no error.
   */
  readonly ignored: readonly UnitEntry[];
}

const DEPENDENCY_KEYS = ['BindsTo', 'After', 'Before', 'Requires', 'Wants'] as const;
type DependencyKey = (typeof DEPENDENCY_KEYS)[number];

/** Read into Supervision (supervision.ts) instead: not "ignored". */
const SUPERVISION_IN_UNIT = new Set(['StartLimitBurst', 'StartLimitIntervalSec', 'StartLimitInterval']);

/**
 * The [Unit] entries (all `[Unit]` sections merged) as UnitInfo. Dependency lists take several
 * space-separated (quotable) names per line and accumulate over lines; an empty value resets.
 */
export function parseUnitInfo(ctx: SectionContext, entries: readonly UnitEntry[]): UnitInfo {
  let description: string | undefined;
  let documentation: string[] = [];
  const deps: Record<DependencyKey, string[]> = {
    BindsTo: [],
    After: [],
    Before: [],
    Requires: [],
    Wants: [],
  };
  const ignored: UnitEntry[] = [];

  for (const entry of entries) {
    const { key, value } = entry;
    if (key === 'Description') {
      description = value === '' ? undefined : value;
    } else if (key === 'Documentation') {
      documentation = value === '' ? [] : [...documentation, ...wordsOf(ctx, entry)];
    } else if (isDependencyKey(key)) {
      if (value === '') deps[key] = [];
      for (const word of value === '' ? [] : wordsOf(ctx, entry)) {
        const name = expandIn(ctx, entry, word);
        if (!deps[key].includes(name)) deps[key].push(name);
      }
    } else if (!SUPERVISION_IN_UNIT.has(key)) {
      ignored.push(entry);
    }
  }

  return {
    ...(description === undefined ? {} : { description }),
    documentation,
    bindsTo: deps.BindsTo,
    after: deps.After,
    before: deps.Before,
    requires: deps.Requires,
    wants: deps.Wants,
    ignored,
  };
}

function isDependencyKey(key: string): key is DependencyKey {
  return (DEPENDENCY_KEYS as readonly string[]).includes(key);
}
