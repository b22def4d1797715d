// The Docker log plumbing: frame demultiplexing and which lines of a log window are new.

import test from 'ava';
import { LogCursor, LogDemuxer, sinceOfDockerTime } from '../../src/runtime/docker-logs.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(Buffer.byteLength(text), 4);
  return Buffer.concat([head, Buffer.from(text)]);
}

test('the demuxer splits frames into lines per stream and keeps a partial line until flush', (t) => {
  const d = new LogDemuxer();
  const all = Buffer.concat([
    frame(1, '2026-01-01T00:00:00.1Z out 1\n2026-01-01T00:00:00.2Z out'),
    frame(2, '2026-01-01T00:00:00.3Z err 1\n'),
  ]);
  // Delivered in two pieces cut inside a frame header.
  t.deepEqual(d.push(all.subarray(0, 5)), []);
  const lines = d.push(all.subarray(5));
  t.deepEqual(lines, [
    { time: '2026-01-01T00:00:00.1Z', stream: 'stdout', text: 'out 1' },
    { time: '2026-01-01T00:00:00.3Z', stream: 'stderr', text: 'err 1' },
  ]);
  t.deepEqual(d.push(frame(1, ' 2\n')), [
    { time: '2026-01-01T00:00:00.2Z', stream: 'stdout', text: 'out 2' },
  ]);
  t.deepEqual(d.push(frame(2, '2026-01-01T00:00:00.4Z tail')), []);
  t.deepEqual(d.flush(), [{ time: '2026-01-01T00:00:00.4Z', stream: 'stderr', text: 'tail' }]);
});

test('within one window every line is kept, even one stamped earlier than the line before it', (t) => {
  // stdout and stderr are copied by separate pipes: Docker may store err (t=5) before out (t=1..3).
  const c = new LogCursor();
  c.nextWindow();
  const times = [
    '2026-01-01T00:00:05Z',
    '2026-01-01T00:00:01Z',
    '2026-01-01T00:00:02Z',
    '2026-01-01T00:00:03Z',
  ];
  t.deepEqual(
    times.map((x) => c.accept(x)),
    [true, true, true, true],
  );
  t.is(c.since, sinceOfDockerTime('2026-01-01T00:00:05Z'), 'the next window starts at the newest line');
});

test('a later window drops what the windows before already gave, and keeps what is newer', (t) => {
  const c = new LogCursor();
  t.is(c.since, undefined, 'the first window is read by tail');
  c.nextWindow();
  c.accept('2026-01-01T00:00:01.000000001Z');
  c.accept('2026-01-01T00:00:02.5Z');
  c.nextWindow();
  // Docker's since is inclusive: the newest line comes again.
  t.false(c.accept('2026-01-01T00:00:02.5Z'));
  t.false(c.accept('2026-01-01T00:00:01.000000001Z'));
  t.true(c.accept('2026-01-01T00:00:02.500000001Z'));
  t.true(c.accept('2026-01-01T00:00:03Z'));
  c.nextWindow();
  t.false(c.accept('2026-01-01T00:00:03Z'));
  t.true(c.accept('2026-01-01T00:00:04Z'));
});
