// The event stream's writer and the CLI's reader of it, without a network: a reader that reads
// nothing is dropped with a final message once the bytes waiting for it pass the bound, and the
// event-stream format is read back whatever the chunks' boundaries.
import { Writable } from 'node:stream';
import test from 'ava';
import { SseWriter } from '../../src/api/event-stream.js';
import type { EventMessage } from '../../src/api/schemas.js';
import { SseReader } from '../../src/cli/sse-reader.js';

/** A sink that takes its first write and then never finishes it: a client that stopped reading. */
class StalledSink extends Writable {
  readonly chunks: string[] = [];
  #pending: (() => void) | undefined;
  constructor() {
    super({ highWaterMark: 1024 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk.toString());
    this.#pending = done;
  }
  /** The client reads again: everything queued is written. */
  drain(): string {
    for (let done = this.#pending; done !== undefined; done = this.#pending) {
      this.#pending = undefined;
      done();
    }
    return this.chunks.join('');
  }
}

const event = (i: number): EventMessage => ({
  kind: 'unit.started',
  id: `${i}:1`,
  revision: i,
  time: '2026-12-06T03:00:00.000Z',
  unit: `web@${i}.unit`,
  machine: 'host-a',
});

test('a reader that stops reading is dropped with a final message, and nothing more is queued', (t) => {
  const sink = new StalledSink();
  const drops: string[] = [];
  const writer = new SseWriter(sink, { maxBufferedBytes: 8 * 1024, onDrop: (reason) => drops.push(reason) });
  let sent = 0;
  while (!writer.ended && sent < 10_000) writer.send(event(++sent), `${sent}:1`);
  t.true(writer.ended, 'dropped');
  t.true(sent > (8 * 1024) / 200, `it took ${sent} events`);
  t.is(drops.length, 1);
  t.regex(drops[0] ?? '', /read too slowly: \d+ bytes were waiting \(limit 8192\); resume from the last id/);
  const waiting = sink.writableLength;
  writer.send(event(sent + 1));
  writer.comment('keepalive');
  t.is(sink.writableLength, waiting, 'nothing is queued after the drop');
  t.true(waiting < 8 * 1024 + 1024, `bounded: ${waiting} bytes waiting`);
  t.true(sink.writableEnded);

  // What the client gets if it ever reads: every event sent, then the drop.
  const reader = new SseReader();
  const got = reader.push(sink.drain());
  t.is(got.length, sent + 1);
  t.like(JSON.parse(got.at(-1)?.data ?? ''), { kind: 'stream.dropped' });
  t.is(got.at(-1)?.lastEventId, `${sent}:1`, 'it resumes after the last event it got');
});

test('the reader takes messages split anywhere, CRLF or LF, comments and multi-line data', (t) => {
  const text =
    ': hello\r\nid: 7:1\r\ndata: {"a":1}\r\n\r\n' +
    'data: one\ndata: two\n\n' +
    'id: 8:2\nevent: x\ndata\n\n' +
    'retry: 1000\n\n';
  const whole = new SseReader().push(text);
  t.deepEqual(whole, [
    { lastEventId: '7:1', data: '{"a":1}' },
    { lastEventId: '7:1', data: 'one\ntwo' },
    { lastEventId: '8:2', data: '' },
  ]);
  for (let size = 1; size < 8; size++) {
    const reader = new SseReader();
    const got = [];
    for (let i = 0; i < text.length; i += size) got.push(...reader.push(text.slice(i, i + size)));
    t.deepEqual(got, whole, `chunks of ${size}`);
  }
});
