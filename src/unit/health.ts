// The [X-Health] section → HealthSpec: a check the unit's supervisor runs while the unit is up;
// after `Retries` failures in a row the unit is stopped and restarted under its Restart= policy,
// as systemd does for a unit whose watchdog fired (docs/health.md). systemd ignores X- sections,
// so a unit file with one still loads there.

import { parseCheckTarget } from '../discovery/health-check.js';
import { FleetError } from '../lib/errors.js';
import {
  checkValue,
  entryError,
  expandIn,
  integerValue,
  lineError,
  timeSpanValue,
  unknownKeyMessage,
  wordsOf,
  type SectionContext,
} from './section-values.js';
import type { UnitEntry } from './unit-file.js';

export const X_HEALTH_KEYS = ['Check', 'IntervalSec', 'TimeoutSec', 'Retries', 'StartPeriodSec'] as const;

export interface HealthSpec {
  /** `http://…`, `https://…` (2xx/3xx passes) or `tcp://HOST:PORT` (a connect passes); %i expanded. */
  readonly check: string;
  readonly intervalMs: number;
  /** One check's deadline. */
  readonly timeoutMs: number;
  /** Failures in a row that make the unit unhealthy (and restart it). */
  readonly retries: number;
  /** After each start: failures in this window do not count (a pass ends it), as Docker's start period. */
  readonly startPeriodMs: number;
}

/** Docker's HEALTHCHECK defaults, but for the interval (5 s, not 30 s: a web farm wants it sooner). */
export const HEALTH_DEFAULTS = { intervalMs: 5_000, timeoutMs: 2_000, retries: 3, startPeriodMs: 0 } as const;

const spanValue = timeSpanValue({ allowInfinity: false });

/** Parses [X-Health]; undefined when the section is absent or has no Check=. */
export function parseHealth(
  ctx: SectionContext,
  entries: readonly UnitEntry[],
  sectionLine: number | undefined,
): HealthSpec | undefined {
  let check: string | undefined;
  const spec: { intervalMs: number; timeoutMs: number; retries: number; startPeriodMs: number } = {
    ...HEALTH_DEFAULTS,
  };
  const span = (entry: UnitEntry, min: number): number => {
    const ms = checkValue(ctx, entry, spanValue);
    if (ms < min) throw entryError(ctx, entry, `too short; use at least ${min} ms (such as 1s)`);
    return ms;
  };
  for (const entry of entries) {
    switch (entry.key) {
      case 'Check': {
        if (entry.value === '') {
          check = undefined;
          break;
        }
        const words = wordsOf(ctx, entry);
        const [word] = words;
        if (word === undefined || words.length !== 1)
          throw entryError(
            ctx,
            entry,
            'Check= takes one URL: http://HOST:PORT/PATH, https://… or tcp://HOST:PORT',
          );
        const url = expandIn(ctx, entry, word);
        try {
          parseCheckTarget(url, 'Check=');
        } catch (error) {
          if (error instanceof FleetError)
            throw entryError(ctx, entry, error.message.replace(/^Check= '[^']*':? ?/, ''));
          throw error;
        }
        check = url;
        break;
      }
      case 'IntervalSec':
        spec.intervalMs = span(entry, 100);
        break;
      case 'TimeoutSec':
        spec.timeoutMs = span(entry, 10);
        break;
      case 'StartPeriodSec':
        spec.startPeriodMs = checkValue(ctx, entry, spanValue);
        break;
      case 'Retries':
        spec.retries = checkValue(ctx, entry, integerValue(1, 1000));
        break;
      default:
        throw lineError(ctx, entry.line, unknownKeyMessage('X-Health', entry.key, [...X_HEALTH_KEYS]));
    }
  }
  if (check === undefined) {
    if (entries.length > 0 && sectionLine !== undefined)
      throw lineError(
        ctx,
        sectionLine,
        '[X-Health] has no Check=; give one, as in Check=http://127.0.0.1:8080/health',
      );
    return undefined;
  }
  return { check, ...spec };
}
