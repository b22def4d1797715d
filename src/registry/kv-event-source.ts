// The cluster's event stream over etcd (docs/events.md): the state at one revision as events, and
// every change after a revision, read from etcd's history by one watch of the whole layout with the
// previous value of each key (prev_kv). Derivation is pure (cluster-events.ts), so resuming from a
// cursor yields exactly the events after it.
import {
  eventsOfRevision,
  eventsOfState,
  withIds,
  type ClusterEvent,
  type EventCursor,
} from './cluster-events.js';
import type { KvCore } from './kv-core.js';
import type { Revision, WatchEvent } from './kv.js';
import { RegistryError } from './registry-error.js';
import type { ClusterEventSource, EventStreamHandlers, Subscription } from './registry.js';

export class KvEventSource implements ClusterEventSource {
  readonly #core: KvCore;

  constructor(core: KvCore) {
    this.#core = core;
  }

  async eventState(): Promise<{ revision: Revision; events: ClusterEvent[] }> {
    const { kv, keys, clock } = this.#core;
    const trees = [
      keys.tree('machines'),
      keys.tree('drains'),
      keys.tree('upstreams'),
      keys.tree('engine'),
      keys.tree('assignments'),
      keys.tree('statuses'),
    ];
    trees.push(keys.tree('services'));
    const res = await kv.txn({
      compare: [],
      success: trees.map((r) => ({ kind: 'range', key: r.start, end: r.end })),
    });
    const kvs = res.results.flatMap((r) => (r.kind === 'range' ? r.kvs : []));
    return { revision: res.revision, events: eventsOfState(keys, kvs, iso(clock.now())) };
  }

  async watchEvents(after: EventCursor, handlers: EventStreamHandlers): Promise<Subscription> {
    const { kv, keys, clock } = this.#core;
    const current = (await kv.range(keys.leader())).revision;
    if (after.revision > current)
      throw new RegistryError(
        'invalid',
        `revision ${after.revision} is ahead of the cluster's (${current}); resume from an event's id`,
      );
    // "R:k" needs revision R again (its first k events are skipped); "R" starts after it.
    const start = after.index === undefined ? after.revision + 1 : after.revision;
    // A watch from a compacted revision fails only once it is open; read at it first, so that the
    // caller can answer "start again" before it streams anything.
    if (start <= current) await kv.range(keys.leader(), undefined, { revision: start });
    let lastRevision = 0;
    let lastCount = 0;
    const deliver = (group: readonly WatchEvent[]): void => {
      const revision = group[0]?.kv.modRevision ?? 0;
      // etcd delivers a revision whole; should one ever arrive in two batches, ids still go on.
      const first = revision === lastRevision ? lastCount + 1 : 1;
      const derived = withIds(eventsOfRevision(keys, group, iso(clock.now())), revision, first);
      lastRevision = revision;
      lastCount = first - 1 + derived.length;
      const fresh =
        after.index !== undefined && revision === after.revision
          ? derived.filter((_, i) => first + i > (after.index ?? 0))
          : derived;
      if (fresh.length > 0) handlers.onEvents(fresh);
    };
    const range = keys.all();
    const watch = kv.watch(
      range.start,
      range.end,
      start,
      {
        onEvents: (events) => {
          let group: WatchEvent[] = [];
          for (const e of events) {
            if (group.length > 0 && group[0]?.kv.modRevision !== e.kv.modRevision) {
              deliver(group);
              group = [];
            }
            group.push(e);
          }
          if (group.length > 0) deliver(group);
        },
        onError: (error) => handlers.onEnd(error),
      },
      { prevKv: true },
    );
    return this.#core.track({ close: () => watch.cancel() });
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
