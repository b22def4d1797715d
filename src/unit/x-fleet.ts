// The [X-Fleet] section → Placement (cluster/types.ts), with fleet's semantics: the one place that
// holds every placement rule, called by parseUnitSpec at submit (API and CLI alike). The scheduler
// reads only the Placement, with specifiers already expanded.

import type { z } from 'zod';
import type { Placement } from '../cluster/types.js';
import { globMatch, globPatternProblem } from '../lib/glob.js';
import { MACHINE_ID_RULE, machineIdProblem } from '../lib/ids.js';
import { parseUnitName } from './names.js';
import {
  booleanValue,
  checkValue,
  entryError,
  expandIn,
  lineError,
  unknownKeyMessage,
  valueSchema,
  ValueProblem,
  wordsOf,
  type SectionContext,
} from './section-values.js';
import type { UnitEntry } from './unit-file.js';

export const X_FLEET_KEYS = [
  'MachineID',
  'MachineOf',
  'MachineMetadata',
  'Conflicts',
  'Global',
  'Replaces',
  'AtMostOnce',
] as const;
export type XFleetKey = (typeof X_FLEET_KEYS)[number];

/** fleet's deprecated spellings, still accepted (fleet's `X-` prefixed Condition* keys). */
export const X_FLEET_LEGACY_ALIASES: Readonly<Record<string, XFleetKey>> = {
  'X-ConditionMachineID': 'MachineID',
  'X-ConditionMachineOf': 'MachineOf',
  'X-ConditionMachineMetadata': 'MachineMetadata',
  'X-Conflicts': 'Conflicts',
};

/** Most values one list key (MachineOf, Conflicts, Replaces, MachineMetadata) may hold. */
export const MAX_PLACEMENT_VALUES = 256;

const KNOWN_KEYS_TEXT = `${X_FLEET_KEYS.join(', ')} (and legacy aliases ${Object.keys(X_FLEET_LEGACY_ALIASES).join(', ')})`;

// A machine id or a unique prefix of one (fleet matched prefixes): the machine-id rule holds for both.
const machineIdValue = valueSchema((value) => {
  const problem = machineIdProblem(value);
  if (problem === undefined) return value;
  throw new ValueProblem(
    `not a machine id (${problem}); a machine id is ${MACHINE_ID_RULE}, or a unique prefix of one, as \`fleetts list-machines\` shows`,
  );
});

const metadataValue = valueSchema((value) => {
  const eq = value.indexOf('=');
  const key = value.slice(0, eq);
  const v = value.slice(eq + 1);
  if (eq <= 0 || v === '') {
    throw new ValueProblem(`"${value}" is not key=value; use e.g. MachineMetadata=region=us-east "disk=ssd"`);
  }
  return { key, value: v };
});

const unitNameValue = valueSchema((value) => {
  parseUnitName(value); // throws UnitFileError saying which naming rule `value` breaks
  return value;
});

const globValue = valueSchema((value) => {
  const problem = globPatternProblem(value);
  if (problem !== undefined) throw new ValueProblem(problem);
  return value;
});

/** Where a constraint came from: the entry that last set it, for the line of an error. */
interface Sourced<T> {
  value: T;
  entry: UnitEntry | undefined;
}

/**
 * The [X-Fleet] entries of `ctx.unit` (all `[X-Fleet]` sections merged) as a Placement. Repeated
 * lines accumulate; an empty value resets that key; list keys take several (quoted) words per line;
 * %n %N %p %i are expanded per word. Throws UnitFileError (`file:line: …`) for an unknown key, a bad
 * value or a combination fleet refused.
 */
export function parsePlacement(ctx: SectionContext, entries: readonly UnitEntry[]): Placement {
  const machineId: Sourced<string | undefined> = { value: undefined, entry: undefined };
  const global: Sourced<boolean> = { value: false, entry: undefined };
  const atMostOnce: Sourced<boolean> = { value: false, entry: undefined };
  const machineOf = list<{ name: string; entry: UnitEntry }>();
  const conflicts = list<{ pattern: string; entry: UnitEntry }>();
  const replaces = list<{ pattern: string; entry: UnitEntry }>();
  const metadata = list<{ key: string; value: string; entry: UnitEntry }>();

  for (const entry of entries) {
    const key = canonicalKey(entry.key);
    if (key === undefined) {
      throw lineError(
        ctx,
        entry.line,
        unknownKeyMessage('X-Fleet', entry.key, [...X_FLEET_KEYS], { knownList: KNOWN_KEYS_TEXT }),
      );
    }
    const reset = entry.value === '';
    switch (key) {
      case 'MachineID': {
        if (reset) {
          machineId.value = undefined;
          machineId.entry = undefined;
          break;
        }
        const words = wordsOf(ctx, entry);
        const [word] = words;
        if (word === undefined || words.length !== 1) {
          throw entryError(ctx, entry, 'MachineID= takes exactly one machine id');
        }
        machineId.value = checkWord(ctx, entry, expandIn(ctx, entry, word), machineIdValue);
        machineId.entry = entry;
        break;
      }
      case 'Global':
        global.value = reset ? false : checkValue(ctx, entry, booleanValue);
        global.entry = global.value ? entry : undefined;
        break;
      case 'AtMostOnce':
        atMostOnce.value = reset ? false : checkValue(ctx, entry, booleanValue);
        atMostOnce.entry = atMostOnce.value ? entry : undefined;
        break;
      case 'MachineOf':
        if (reset) machineOf.reset();
        for (const word of reset ? [] : wordsOf(ctx, entry)) {
          const name = checkWord(ctx, entry, expandIn(ctx, entry, word), unitNameValue);
          machineOf.add(ctx, entry, { name, entry }, (a) => a.name === name);
        }
        break;
      case 'Conflicts':
      case 'Replaces': {
        const target = key === 'Conflicts' ? conflicts : replaces;
        if (reset) target.reset();
        for (const word of reset ? [] : wordsOf(ctx, entry)) {
          const pattern = checkWord(ctx, entry, expandIn(ctx, entry, word), globValue);
          target.add(ctx, entry, { pattern, entry }, (a) => a.pattern === pattern);
        }
        break;
      }
      case 'MachineMetadata':
        if (reset) metadata.reset();
        for (const word of reset ? [] : wordsOf(ctx, entry)) {
          const pair = checkWord(ctx, entry, expandIn(ctx, entry, word), metadataValue);
          metadata.add(ctx, entry, { ...pair, entry }, (a) => a.key === pair.key && a.value === pair.value);
        }
        break;
    }
  }

  // fleet's refused combinations (api.ValidateOptions), plus MachineID with Replaces: a pinned unit
  // cannot displace another one anywhere but on its own machine, which Replaces would not respect.
  const lastOf = (items: readonly { entry: UnitEntry }[]): UnitEntry | undefined => items.at(-1)?.entry;
  const sources: Record<
    'MachineID' | 'MachineOf' | 'Conflicts' | 'Global' | 'Replaces',
    UnitEntry | undefined
  > = {
    MachineID: machineId.entry,
    MachineOf: lastOf(machineOf.items),
    Conflicts: lastOf(conflicts.items),
    Global: global.entry,
    Replaces: lastOf(replaces.items),
  };
  const pairs = [
    ['MachineID', 'MachineOf'],
    ['MachineID', 'Conflicts'],
    ['MachineID', 'Global'],
    ['MachineID', 'Replaces'],
    ['Global', 'MachineOf'],
    ['Global', 'Replaces'],
    ['Conflicts', 'Replaces'],
  ] as const;
  for (const [a, b] of pairs) {
    const first = sources[a];
    const second = sources[b];
    if (first === undefined || second === undefined) continue;
    const [earlier, later] = first.line <= second.line ? [first, second] : [second, first];
    throw lineError(ctx, later.line, `${later.key}=${later.value} cannot be combined with ${earlier.key}=`);
  }

  // Not fleet's: "at most once on the whole cluster" cannot hold for a unit that runs on every host.
  if (atMostOnce.entry !== undefined && global.entry !== undefined) {
    const later = atMostOnce.entry.line >= global.entry.line ? atMostOnce.entry : global.entry;
    throw lineError(
      ctx,
      later.line,
      `${later.key}=${later.value} cannot be combined with ${later === global.entry ? 'AtMostOnce' : 'Global'}=true: ` +
        'a Global unit runs on every machine, while AtMostOnce=true means it must never run on two machines at once; remove one of them',
    );
  }

  const self = ctx.unit.name;
  for (const { name, entry } of machineOf.items) {
    if (name === self) {
      throw entryError(
        ctx,
        entry,
        `names the unit itself (${self}); MachineOf= lists other units that this one must run beside`,
      );
    }
  }
  for (const { pattern, entry } of replaces.items) {
    if (globMatch(pattern, self)) {
      throw entryError(
        ctx,
        entry,
        `"${pattern}" matches the unit itself (${self}); a unit cannot replace itself, so narrow the pattern`,
      );
    }
  }
  // fleet: "unresolvable requirements: peer matches conflict/replace". A Conflicts pattern that
  // matches the unit itself is fine (`Conflicts=web@*.unit` on web@1.unit): the scheduler ignores it.
  for (const peer of machineOf.items) {
    for (const [kind, items] of [
      ['Conflicts', conflicts.items],
      ['Replaces', replaces.items],
    ] as const) {
      for (const { pattern, entry } of items) {
        if (!globMatch(pattern, peer.name)) continue;
        const later = peer.entry.line >= entry.line ? peer.entry : entry;
        throw lineError(
          ctx,
          later.line,
          `MachineOf=${peer.name} is matched by ${kind}=${pattern}: the unit cannot both run beside ${peer.name} and ${kind === 'Conflicts' ? 'conflict with' : 'replace'} it; remove one of them`,
        );
      }
    }
  }

  // Same key ORed, different keys ANDed: key → accepted values. fromEntries keeps `__proto__` as data.
  const byKey = new Map<string, string[]>();
  for (const { key, value } of metadata.items) byKey.set(key, [...(byKey.get(key) ?? []), value]);
  const machineMetadata = Object.fromEntries(byKey);

  return {
    ...(machineId.value === undefined ? {} : { machineId: machineId.value }),
    machineOf: machineOf.items.map((i) => i.name),
    machineMetadata,
    conflicts: conflicts.items.map((i) => i.pattern),
    global: global.value,
    replaces: replaces.items.map((i) => i.pattern),
    ...(atMostOnce.value ? { atMostOnce: true } : {}),
  };
}

function canonicalKey(key: string): XFleetKey | undefined {
  if ((X_FLEET_KEYS as readonly string[]).includes(key)) return key as XFleetKey;
  return Object.hasOwn(X_FLEET_LEGACY_ALIASES, key) ? X_FLEET_LEGACY_ALIASES[key] : undefined;
}

/** Checks one (expanded) word of an entry; the error names the entry and the word. */
function checkWord<T>(ctx: SectionContext, entry: UnitEntry, word: string, schema: z.ZodType<T, string>): T {
  const result = schema.safeParse(word);
  if (result.success) return result.data;
  throw entryError(ctx, entry, result.error.issues[0]?.message ?? `invalid value "${word}"`);
}

/** An accumulating list key: duplicates are dropped, the size is bounded. */
function list<T>() {
  const items: T[] = [];
  return {
    items,
    reset(): void {
      items.length = 0;
    },
    add(ctx: SectionContext, entry: UnitEntry, item: T, same: (a: T) => boolean): void {
      if (items.some(same)) return;
      if (items.length >= MAX_PLACEMENT_VALUES) {
        throw entryError(
          ctx,
          entry,
          `more than ${MAX_PLACEMENT_VALUES} values for ${entry.key}= (MAX_PLACEMENT_VALUES); use glob patterns to say the same in fewer`,
        );
      }
      items.push(item);
    },
  };
}
