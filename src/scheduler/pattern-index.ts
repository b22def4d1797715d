// Glob matching for Conflicts=/Replaces=, done once per pass: which patterns each unit name matches.
// Matching every pattern against every unit on every machine is the costly part of scheduling, so
// the scheduler asks this index instead (literal patterns by lookup, globs only over their prefix).

import type { UnitName } from '../cluster/types.js';
import { globMatch, isGlobPattern } from '../lib/glob.js';

const NONE: readonly string[] = [];

export class PatternIndex {
  private readonly byName = new Map<string, string[]>();
  private readonly sets = new Map<string, ReadonlySet<string>>();
  private readonly extra = new Map<string, boolean>();

  /** `names`: every unit name that can be placed; `patterns`: every Conflicts/Replaces pattern. */
  constructor(names: Iterable<UnitName>, patterns: Iterable<string>) {
    const sorted = [...new Set(names)].sort();
    const known = new Set(sorted);
    for (const pattern of new Set(patterns)) {
      if (!isGlobPattern(pattern)) {
        if (known.has(pattern as UnitName)) this.add(pattern as UnitName, pattern);
        continue;
      }
      // Only names sharing the pattern's literal prefix can match: find that run by binary search.
      const prefix = literalPrefix(pattern);
      for (let i = lowerBound(sorted, prefix); i < sorted.length; i++) {
        const name = sorted[i];
        if (name === undefined || !name.startsWith(prefix)) break;
        if (safeMatch(pattern, name)) this.add(name, pattern);
      }
    }
  }

  /** The indexed patterns that `name` matches. */
  patternsMatching(name: string): readonly string[] {
    return this.byName.get(name) ?? NONE;
  }

  /** Whether `name` matches `pattern`; names or patterns not indexed are matched (and cached) here. */
  matches(pattern: string, name: string): boolean {
    let set = this.sets.get(name);
    if (set === undefined) {
      set = new Set(this.patternsMatching(name));
      this.sets.set(name, set);
    }
    if (set.has(pattern)) return true;
    const key = `${pattern}\u0000${name}`;
    let hit = this.extra.get(key);
    if (hit === undefined) {
      hit = safeMatch(pattern, name);
      this.extra.set(key, hit);
    }
    return hit;
  }

  private add(name: UnitName, pattern: string): void {
    const list = this.byName.get(name);
    if (list === undefined) this.byName.set(name, [pattern]);
    else list.push(pattern);
  }
}

function literalPrefix(pattern: string): string {
  const at = pattern.search(/[*?[\\]/);
  return at < 0 ? pattern : pattern.slice(0, at);
}

function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? '') < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Patterns are validated at submit; one that slipped through matches nothing rather than failing a pass. */
function safeMatch(pattern: string, name: string): boolean {
  try {
    return globMatch(pattern, name);
  } catch {
    return false;
  }
}
