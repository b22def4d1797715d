// News for blocking commands: the cluster's event stream (GET /v1/events, follow), read only to
// learn that something changed, so that `fleetts start` asks for the units again soon after a
// status changes instead of at its next poll (every 500 ms). Polling stays the backstop: a stream
// that cannot be opened, breaks off or says nothing changes nothing but the latency.
import type { Clock } from '../lib/clock.js';
import type { ApiClient } from './client.js';
import { SseReader } from './sse-reader.js';

/** At most this often a burst of events wakes the waiter (a burst of 100 starts is ~200 events). */
export const NEWS_MIN_GAP_MS = 100;

export class UnitNews {
  readonly #clock: Clock;
  readonly #abort = new AbortController();
  /** Something changed since the last wait began. */
  #news = false;
  #wake: (() => void) | undefined;
  #body: { destroy(error?: Error): void } | undefined;

  private constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Starts reading the event stream in the background; never throws (no stream: polling only). */
  static open(client: Pick<ApiClient, 'events'>, clock: Clock): UnitNews {
    const news = new UnitNews(clock);
    void news.#read(client);
    return news;
  }

  async #read(client: Pick<ApiClient, 'events'>): Promise<void> {
    try {
      const body = (await client.events({ follow: true })) as AsyncIterable<Buffer | string> & {
        destroy(error?: Error): void;
      };
      if (this.#abort.signal.aborted) return body.destroy();
      this.#body = body;
      const reader = new SseReader();
      // Without `since` the stream opens with the current state as events, then `stream.synced`:
      // only what comes after that is news.
      let synced = false;
      for await (const chunk of body) {
        for (const m of reader.push(chunk.toString())) {
          if (!synced) synced = m.data.includes('"stream.synced"');
          else this.#signal();
        }
      }
    } catch {
      // an older fleetd, a broken stream, close(): polling goes on
    }
  }

  #signal(): void {
    this.#news = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * Resolves after `ms`, or earlier once something changed (never sooner than NEWS_MIN_GAP_MS);
   * says which. Rejects if `signal` aborts.
   */
  async wait(ms: number, signal?: AbortSignal): Promise<'news' | 'timeout'> {
    const start = this.#clock.monotonic();
    this.#news = false;
    const gap = Math.min(ms, NEWS_MIN_GAP_MS);
    await this.#clock.sleep(gap, signal);
    if (this.#news) return 'news';
    const left = ms - (this.#clock.monotonic() - start);
    if (left <= 0) return 'timeout';
    signal?.throwIfAborted();
    let timer: { cancel(): void } | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await new Promise<'news' | 'timeout'>((resolve, reject) => {
        this.#wake = () => resolve('news');
        timer = this.#clock.setTimer(left, () => resolve('timeout'));
        onAbort = () => reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      this.#wake = undefined;
      timer?.cancel();
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    this.#abort.abort();
    this.#body?.destroy();
    this.#signal();
  }
}
