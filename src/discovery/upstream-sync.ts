// The loop behind `fleetts upstream`: level-triggered on the service's instances (the registry
// lists, then watches from that revision, so no change between the two is missed), coalescing
// bursts into one render → validate → swap → reload.
import { Backoff } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import { Wakeup } from '../lib/wakeup.js';
import type { SidekickMetrics } from '../metrics/sidekick-metrics.js';
import type { Revision, ServiceInstance, ServiceReader, WatchedSet } from '../registry/registry.js';
import type { ApplyResult } from './nginx-sink.js';
import { selectBackends } from './render-upstream.js';

/**
 * How long after the first change of a burst the file is rendered: every change in that window
 * goes into one reload. Short, because it adds directly to failover time.
 */
export const DEFAULT_DEBOUNCE_MS = 100;
/**
 * When every instance vanishes at once, the last ones stay in the file this long before none do
 * (docs/web-farm-load.md#when-every-backend-vanishes-at-once). An etcd outage longer than the
 * announcers' TTL (etcd frozen, no quorum) revokes every lease at the same moment, and the
 * announcers announce again within a second or two: rendering the empty set meanwhile turned a
 * control-plane hiccup into 503s for every request. Backends that really are gone cost nginx a
 * refused connection each until then (it tries the next, as for any dead server).
 */
export const DEFAULT_EMPTY_HOLD_MS = 10_000;
/** A level-triggered loop re-applies now and then even without events (a no-op when in sync). */
const RESYNC_MS = 60_000;
/** Retries of a failed render, write or reload (lib/backoff, jittered); a change wakes it sooner. */
const RETRY = { minMs: 500, maxMs: 15_000 };

export interface UpstreamSyncDeps {
  readonly registry: ServiceReader;
  readonly clock: Clock;
  /** Draws the jitter of retries. */
  readonly random: Random;
  readonly log: Logger;
  readonly service: string;
  /** Pure: the file's text for these instances (renderUpstream with the command's options). */
  readonly render: (instances: readonly ServiceInstance[]) => string;
  readonly sink: { apply(text: string): Promise<ApplyResult> };
  readonly debounceMs?: number;
  /**
   * Told of each successful reload (ReloadRecorder: the `upstreams/` key); must return at once and
   * not throw: the next reload never waits for it.
   */
  readonly onReloaded?: (reload: { text: string; servers: number; revision: Revision }) => void;
  /** DEFAULT_EMPTY_HOLD_MS unless given; 0 renders an empty set at once. */
  readonly emptyHoldMs?: number;
  /** Counts renders and reloads by result (`--metrics-listen`, docs/metrics.md). */
  readonly metrics?: Pick<SidekickMetrics, 'upstreamRenders' | 'upstreamReloads'>;
}

export class UpstreamSync {
  readonly #d: UpstreamSyncDeps;
  readonly #wake: Wakeup;
  #latest: WatchedSet<ServiceInstance> | undefined;
  #skipped = '';
  /** How many backends nginx runs with (the last applied render); undefined before the first. */
  #shown: number | undefined;
  /** Since when (monotonic) the set has been empty while the file still holds backends. */
  #emptySince: number | undefined;

  constructor(deps: UpstreamSyncDeps) {
    this.#d = deps;
    this.#wake = new Wakeup(deps.clock);
  }

  /** Keeps the file and nginx in step with the service until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { registry, clock, random, log, service } = this.#d;
    const sub = await registry.watchServiceInstances(service, (set) => {
      this.#latest = set;
      this.#wake.trigger();
    });
    log.info({ event: 'upstream.started', service }, `watching service ${service}`);
    const retry = new Backoff({ clock, random, ...RETRY });
    let retryMs: number | undefined;
    let first = true;
    try {
      while (!signal.aborted) {
        const cause = await this.#wake.wait(retryMs ?? RESYNC_MS, signal);
        if (cause === 'aborted') break;
        if (cause === 'triggered' && !first) {
          await clock.sleep(this.#d.debounceMs ?? DEFAULT_DEBOUNCE_MS, signal).catch(() => undefined);
          if (signal.aborted) break;
          // Changes during the debounce are in #latest already: they need no pass of their own.
          if (this.#wake.pending) await this.#wake.wait(0);
        }
        first = false;
        const { ok, wakeInMs } = await this.#pass();
        if (ok) retry.reset();
        retryMs = ok ? wakeInMs : retry.next();
      }
    } finally {
      sub.close();
      log.info({ event: 'upstream.stopped', service }, `stopped watching service ${service}`);
    }
  }

  #count(result: ApplyResult): void {
    const m = this.#d.metrics;
    if (m === undefined) return;
    const service = this.#d.service;
    m.upstreamRenders.inc({ service, result: result.kind === 'reloaded' ? 'applied' : result.kind });
    if (result.kind === 'reloaded') m.upstreamReloads.inc({ service, result: 'ok' });
    else if (result.kind === 'reload_failed') m.upstreamReloads.inc({ service, result: 'failed' });
  }

  /**
   * One render and apply. `ok` false: try again (the reload or a write failed); `wakeInMs`: pass
   * again then even without a change (an empty set held back).
   */
  async #pass(): Promise<{ ok: boolean; wakeInMs?: number }> {
    const { log, service, clock } = this.#d;
    const set = this.#latest;
    if (set === undefined) return { ok: true };
    for (const p of set.problems)
      log.warn(
        { event: 'upstream.bad_instance', key: p.key, problem: p.message },
        `ignoring ${p.key}: ${p.message}`,
      );
    const { backends, skipped } = selectBackends(set.items);
    const skippedText = JSON.stringify(skipped);
    if (skippedText !== this.#skipped && skipped.length > 0)
      log.warn(
        { event: 'upstream.skipped_instances', skipped },
        `left out ${skipped.length} instance(s) of ${service}`,
      );
    this.#skipped = skippedText;
    const holdMs = this.#d.emptyHoldMs ?? DEFAULT_EMPTY_HOLD_MS;
    if (backends.length === 0 && (this.#shown ?? 0) > 0 && holdMs > 0) {
      const now = clock.monotonic();
      if (this.#emptySince === undefined) {
        this.#emptySince = now;
        log.warn(
          { event: 'upstream.empty_held', service, revision: set.revision, backends: this.#shown, holdMs },
          `every instance of ${service} vanished at once (revision ${set.revision}): nginx keeps its ${this.#shown} backend(s) for up to ${holdMs} ms, as after an etcd outage every announcer announces again`,
        );
      }
      const left = this.#emptySince + holdMs - now;
      if (left > 0) return { ok: true, wakeInMs: left };
      log.warn(
        {
          event: 'upstream.empty_released',
          service,
          revision: set.revision,
          heldMs: Math.round(now - this.#emptySince),
        },
        `no instance of ${service} came back within ${holdMs} ms: rendering none`,
      );
    } else if (this.#emptySince !== undefined && backends.length > 0) {
      log.info(
        {
          event: 'upstream.empty_ended',
          service,
          revision: set.revision,
          heldMs: Math.round(clock.monotonic() - this.#emptySince),
          backends: backends.length,
        },
        `${service}: ${backends.length} instance(s) back; the empty set was never rendered`,
      );
    }
    this.#emptySince = undefined;
    try {
      const text = this.#d.render(set.items);
      const result = await this.#d.sink.apply(text);
      this.#count(result);
      if (result.kind === 'reloaded' || result.kind === 'unchanged') this.#shown = backends.length;
      if (result.kind === 'reloaded') {
        log.info(
          {
            event: 'upstream.synced',
            service,
            revision: set.revision,
            backends: backends.map((b) => b.address),
          },
          `${service}: ${backends.length} backend(s) live at revision ${set.revision}`,
        );
        this.#d.onReloaded?.({ text, servers: backends.length, revision: set.revision });
      }
      return { ok: result.kind !== 'reload_failed' };
    } catch (err) {
      this.#d.metrics?.upstreamRenders.inc({ service, result: 'error' });
      const message = err instanceof Error ? err.message : String(err);
      log.error(
        { event: 'upstream.apply_failed', err: message },
        `could not apply the upstream of ${service}: ${message}`,
      );
      return { ok: false };
    }
  }
}
