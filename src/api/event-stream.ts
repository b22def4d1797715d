// GET /v1/events: the cluster's events as server-sent events (docs/events.md). Each message is one
// `data:` line of JSON (a ClusterEvent, or a `stream.*` message about the stream itself) with an
// `id:` to resume from, so that a browser's EventSource resumes by itself (Last-Event-ID). A slow
// reader is dropped with a final message once its unsent bytes pass a bound; a reader that goes
// away closes its etcd watch at once.
import type { Writable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock, Timer } from '../lib/clock.js';
import { globMatch, globPatternProblem } from '../lib/glob.js';
import type { Logger } from '../lib/logger.js';
import {
  eventMatches,
  parseCursor,
  type ClusterEvent,
  type EventCursor,
} from '../registry/cluster-events.js';
import { isRegistryError } from '../registry/registry-error.js';
import type { ClusterEventSource, Subscription } from '../registry/registry.js';
import { ApiError } from './api-error.js';
import { formatIssues, type RouteSpec } from './route.js';
import { eventMessage, eventsQuery, type EventMessage } from './schemas.js';

export interface EventStreamOptions {
  /** Unsent bytes a reader may fall behind by before it is dropped (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** A comment line this often keeps proxies and idle connections open (default 15 s). */
  readonly heartbeatMs?: number;
  /** After a drop, how long a reader that does not read keeps its connection (default 10 s). */
  readonly dropGraceMs?: number;
}

/** Streams open now (tests; metrics). */
export class EventStreamStats {
  open = 0;
  dropped = 0;
}

const DEFAULTS = { maxBufferedBytes: 1024 * 1024, heartbeatMs: 15_000, dropGraceMs: 10_000 };

/**
 * Writes server-sent events to `sink` and never lets more than `maxBufferedBytes` wait in it: past
 * that the reader is sent `stream.dropped` and the stream ends (`onDrop`).
 */
export class SseWriter {
  readonly #sink: Writable;
  readonly #max: number;
  readonly #onDrop: (reason: string) => void;
  #ended = false;

  constructor(sink: Writable, o: { maxBufferedBytes: number; onDrop: (reason: string) => void }) {
    this.#sink = sink;
    this.#max = o.maxBufferedBytes;
    this.#onDrop = o.onDrop;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** One message; `id` is what an EventSource sends back as Last-Event-ID. */
  send(message: EventMessage, id?: string): void {
    if (this.#ended) return;
    this.#sink.write(`${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(message)}\n\n`);
    const waiting = this.#sink.writableLength;
    if (waiting > this.#max) {
      const reason = `the client read too slowly: ${waiting} bytes were waiting (limit ${this.#max}); resume from the last id`;
      this.end({ kind: 'stream.dropped', reason });
      this.#onDrop(reason);
    }
  }

  comment(text: string): void {
    if (!this.#ended) this.#sink.write(`: ${text}\n\n`);
  }

  /** Ends the stream, after a last message. */
  end(last?: EventMessage): void {
    if (this.#ended) return;
    this.#ended = true;
    if (last !== undefined) this.#sink.write(`data: ${JSON.stringify(last)}\n\n`);
    this.#sink.end();
  }
}

export function eventsRoute(deps: {
  readonly source: ClusterEventSource;
  readonly clock: Clock;
  readonly log: Logger;
  readonly options?: EventStreamOptions;
  readonly stats?: EventStreamStats;
}): RouteSpec {
  const o = { ...DEFAULTS, ...deps.options };
  return {
    method: 'GET',
    url: '/v1/events',
    operationId: 'streamEvents',
    summary:
      'Cluster events as server-sent events: the current state (or the history after `since`), then changes as they happen',
    query: eventsQuery,
    response: eventMessage,
    status: 200,
    produces: 'text/event-stream',
    errors: [400, 410],
    whileUnregistered: false,
    async handle(request: FastifyRequest, reply: FastifyReply) {
      const parsed = eventsQuery.safeParse(request.query ?? {});
      if (!parsed.success)
        throw new ApiError(400, 'invalid', `bad request query: ${formatIssues(parsed.error)}`);
      const query = parsed.data;
      const lastEventId = request.headers['last-event-id'];
      const sinceText = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : query.since;
      let since: EventCursor | undefined;
      if (sinceText !== undefined) {
        since = parseCursor(sinceText);
        if (since === undefined)
          throw new ApiError(
            400,
            'invalid',
            `since ${JSON.stringify(sinceText)} is not an event id: give a revision (1234) or an event's id (1234:2)`,
          );
      }
      const problem = query.unit === undefined ? undefined : globPatternProblem(query.unit);
      if (problem !== undefined) throw new ApiError(400, 'invalid', `unit filter: ${problem}`);
      const unitPattern = query.unit;
      const filter = {
        ...(unitPattern === undefined ? {} : { unit: (name: string) => globMatch(unitPattern, name) }),
        ...(query.machine === undefined ? {} : { machine: query.machine }),
      };
      const wanted = (e: ClusterEvent): boolean => eventMatches(e, filter);

      const res = reply.raw;
      let sub: Subscription | undefined;
      let heartbeat: Timer | undefined;
      let grace: Timer | undefined;
      let closed = false;
      let counted = false;
      const stop = (): void => {
        heartbeat?.cancel();
        sub?.close();
        sub = undefined;
      };
      // Registered first: a reader that goes away while the stream is being set up leaves no watch.
      res.once('close', () => {
        closed = true;
        grace?.cancel();
        stop();
        if (counted && deps.stats !== undefined) deps.stats.open--;
      });
      const writer = new SseWriter(res, {
        maxBufferedBytes: o.maxBufferedBytes,
        onDrop: (reason) => {
          if (deps.stats !== undefined) deps.stats.dropped++;
          deps.log.warn({ event: 'api.events_dropped', reason }, 'event stream reader dropped');
          stop();
          // A reader that reads nothing at all would keep its socket and the bytes in it.
          grace = deps.clock.setTimer(o.dropGraceMs, () => res.destroy());
        },
      });
      // Until the snapshot is written, what the watch delivers waits here (and so does its end).
      let pending: ClusterEvent[] | undefined = [];
      let endedEarly: EventMessage | undefined;
      const emit = (events: readonly ClusterEvent[]): void => {
        for (const e of events) if (wanted(e)) writer.send(e, e.id);
      };

      // Everything that can fail with a status is done before the first byte is sent.
      let snapshot: { revision: number; events: readonly ClusterEvent[] } | undefined;
      if (since === undefined || !query.follow) snapshot = await deps.source.eventState();
      if (query.follow) {
        const after = since ?? { revision: snapshot?.revision ?? 0 };
        try {
          sub = await deps.source.watchEvents(after, {
            onEvents: (events) => {
              if (pending !== undefined) pending.push(...events);
              else emit(events);
            },
            onEnd: (error) => {
              const code = isRegistryError(error) ? error.code : 'failed';
              deps.log.info({ event: 'api.events_ended', code, err: error.message }, 'event stream ended');
              const last: EventMessage = { kind: 'stream.ended', code, reason: error.message };
              if (pending !== undefined) endedEarly = last;
              else writer.end(last);
              stop();
            },
          });
        } catch (err) {
          if (isRegistryError(err, 'compacted'))
            throw new ApiError(
              410,
              'compacted',
              `the events after ${sinceText ?? ''} are gone: etcd compacted its history past that revision; start again without since (the current state, then changes)`,
              { cause: err },
            );
          throw err;
        }
        if (closed) {
          stop();
          return;
        }
      }
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // nginx and other proxies would otherwise hold events back in their buffers.
        'x-accel-buffering': 'no',
      });
      if (deps.stats !== undefined) {
        deps.stats.open++;
        counted = true;
      }
      writer.comment('fleetd cluster events; each data line is one JSON message (docs/events.md)');
      if (snapshot !== undefined) {
        const floor = since?.revision ?? -1;
        for (const e of snapshot.events) if (e.revision > floor && wanted(e)) writer.send(e);
      }
      if (!query.follow) {
        writer.end();
        return;
      }
      if (since === undefined && snapshot !== undefined)
        writer.send(
          { kind: 'stream.synced', id: String(snapshot.revision), revision: snapshot.revision },
          String(snapshot.revision),
        );
      const queued = pending;
      pending = undefined;
      emit(queued);
      if (endedEarly !== undefined) return writer.end(endedEarly);
      const beat = (): void => {
        if (closed || writer.ended) return;
        writer.comment('keepalive');
        heartbeat = deps.clock.setTimer(o.heartbeatMs, beat);
      };
      heartbeat = deps.clock.setTimer(o.heartbeatMs, beat);
    },
  };
}
