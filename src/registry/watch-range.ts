// Watches that never silently stop: list at revision R, watch from R+1, and when a watch ends with
// an error (its revision compacted, the stream cancelled) re-list and watch again from the new
// revision, retrying with backoff while etcd is unreachable. Both level-triggered set watchers and
// the engine's wake-up watch are built on it.
import { Backoff } from '../lib/backoff.js';
import type { Clock, Timer } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { KeyRange } from './keys.js';
import type { KeyValue, Kv, KvWatch, Revision, WatchEvent } from './kv.js';

/** Re-list retries while etcd is unreachable (jittered: every watcher of every fleetd fails at once). */
const RETRY = { minMs: 250, maxMs: 5000 };

export interface RangeWatchOptions {
  readonly kv: Kv;
  readonly clock: Clock;
  /** Draws the retry jitter. */
  readonly random: Random;
  readonly range: KeyRange;
  /** Watch from `after + 1`. */
  readonly after: Revision;
  readonly onEvents: (events: readonly WatchEvent[]) => void;
  /** Re-reads whatever the owner derives from the range; resolves with the revision read at. */
  readonly resync: () => Promise<Revision>;
}

export class RangeWatch {
  readonly #o: RangeWatchOptions;
  #watch: KvWatch | undefined;
  #timer: Timer | undefined;
  #closed = false;
  readonly #backoff: Backoff;

  constructor(options: RangeWatchOptions) {
    this.#o = options;
    this.#backoff = new Backoff({ clock: options.clock, random: options.random, ...RETRY });
    this.#start(options.after);
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#watch?.cancel();
    this.#watch = undefined;
  }

  #start(after: Revision): void {
    if (this.#closed) return;
    const { kv, range } = this.#o;
    this.#watch = kv.watch(range.start, range.end, after + 1, {
      onEvents: (events) => {
        if (this.#closed) return;
        this.#backoff.reset();
        this.#o.onEvents(events);
      },
      onError: () => {
        if (this.#closed) return;
        this.#watch?.cancel();
        this.#watch = undefined;
        this.#retry();
      },
    });
  }

  #retry(): void {
    if (this.#closed) return;
    this.#timer = this.#o.clock.setTimer(this.#backoff.next(), () => {
      this.#o.resync().then(
        (revision) => this.#start(revision),
        () => this.#retry(),
      );
    });
  }
}

/**
 * A level-triggered view of a key range: `onChange` gets the whole decoded set after the initial
 * list and after every batch of changes. Resolves once the first `onChange` was made.
 */
export async function watchRangeSet<T>(options: {
  readonly kv: Kv;
  readonly clock: Clock;
  readonly random: Random;
  readonly range: KeyRange;
  readonly decode: (
    kv: KeyValue,
  ) => { ok: true; value: T } | { ok: false; problem: { key: string; message: string } };
  readonly onChange: (set: {
    revision: Revision;
    items: T[];
    problems: { key: string; message: string }[];
  }) => void;
}): Promise<{ close(): void }> {
  const { kv, range } = options;
  const current = new Map<string, KeyValue>();
  let revision = 0;
  let closed = false;
  const emit = (): void => {
    if (closed) return;
    const items: T[] = [];
    const problems: { key: string; message: string }[] = [];
    for (const key of [...current.keys()].sort()) {
      const decoded = options.decode(current.get(key) as KeyValue);
      if (decoded.ok) items.push(decoded.value);
      else problems.push(decoded.problem);
    }
    options.onChange({ revision, items, problems });
  };
  const list = async (): Promise<Revision> => {
    const res = await kv.range(range.start, range.end);
    current.clear();
    for (const item of res.kvs) current.set(item.key, item);
    revision = res.revision;
    emit();
    return res.revision;
  };
  const after = await list();
  const watch = new RangeWatch({
    kv,
    clock: options.clock,
    random: options.random,
    range,
    after,
    resync: list,
    onEvents: (events) => {
      for (const event of events) {
        if (event.type === 'put') current.set(event.kv.key, event.kv);
        else current.delete(event.kv.key);
        revision = Math.max(revision, event.kv.modRevision);
      }
      emit();
    },
  });
  return {
    close() {
      closed = true;
      watch.close();
    },
  };
}
