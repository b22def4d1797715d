// Docker's container log stream (pure parsing): the multiplexed frames of a non-TTY container
// (8-byte header: stream, 0, 0, 0, big-endian length) with `timestamps=true`, cut into lines.

export interface LogLine {
  /** Docker's RFC 3339 time with nanoseconds, as written (sortable, and usable as `since`). */
  readonly time: string;
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
}

const HEADER = 8;

/** Feeds raw chunks, returns complete lines; a partial frame or line waits for the next chunk. */
export class LogDemuxer {
  #buf: Buffer = Buffer.alloc(0);
  readonly #partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };

  push(chunk: Buffer): LogLine[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: LogLine[] = [];
    while (this.#buf.length >= HEADER) {
      const size = this.#buf.readUInt32BE(4);
      if (this.#buf.length < HEADER + size) break;
      const kind = this.#buf[0] === 2 ? 'stderr' : 'stdout';
      const payload = this.#buf.subarray(HEADER, HEADER + size).toString('utf8');
      this.#buf = this.#buf.subarray(HEADER + size);
      const text = this.#partial[kind] + payload;
      const lines = text.split('\n');
      this.#partial[kind] = lines.pop() ?? '';
      for (const l of lines) out.push(parseLine(kind, l));
    }
    return out;
  }

  /** Whatever is left without a final newline (the stream ended). */
  flush(): LogLine[] {
    const out: LogLine[] = [];
    for (const kind of ['stdout', 'stderr'] as const) {
      if (this.#partial[kind] !== '') out.push(parseLine(kind, this.#partial[kind]));
      this.#partial[kind] = '';
    }
    return out;
  }
}

function parseLine(stream: 'stdout' | 'stderr', line: string): LogLine {
  const space = line.indexOf(' ');
  const time = space > 0 ? line.slice(0, space) : line;
  return { time, stream, text: space > 0 ? line.slice(space + 1).replace(/\r$/, '') : '' };
}

/** `2026-01-01T10:00:00.123456789Z` → `2026-01-01T10:00:00.123Z` (the journal's ISO form). */
export function isoOfDockerTime(time: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (m === null) return time;
  const ms = Date.parse(`${m[1] ?? ''}${(m[2] ?? '.000').slice(0, 4).padEnd(4, '0')}${m[3] ?? 'Z'}`);
  return Number.isNaN(ms) ? time : new Date(ms).toISOString();
}

/** Docker's `since` parameter for "after this line": Unix seconds with the nanoseconds. */
export function sinceOfDockerTime(time: string): string | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (m === null) return undefined;
  const seconds = Date.parse(`${m[1] ?? ''}${m[3] ?? 'Z'}`) / 1000;
  if (Number.isNaN(seconds)) return undefined;
  return `${seconds}.${(m[2] ?? '.').slice(1).padEnd(9, '0')}`;
}

/** Compares two Docker times (RFC 3339 UTC with nanoseconds). */
export function compareDockerTimes(a: string, b: string): number {
  const na = sinceOfDockerTime(a);
  const nb = sinceOfDockerTime(b);
  if (na === undefined || nb === undefined) return a < b ? -1 : a > b ? 1 : 0;
  const [sa = '0', fa = ''] = na.split('.');
  const [sb = '0', fb = ''] = nb.split('.');
  if (sa !== sb) return Number(sa) - Number(sb);
  return fa < fb ? -1 : fa > fb ? 1 : 0;
}

/**
 * Which lines of a log window are new. A followed journal reads Docker's log in windows: the first
 * by `tail`, each later one (after the stream ended: the container stopped or was replaced) by
 * `since` the newest line seen, which Docker answers inclusively. A line of a later window is new
 * when it is newer than every line of the windows before. Within one window every line is kept:
 * stdout and stderr are copied by separate pipes, so a window may hold a line stamped earlier
 * than the one before it, and dropping it would lose it for good.
 */
export class LogCursor {
  #floor: string | undefined;
  #newest: string | undefined;

  /** The `since` of the next window (undefined: the first window, read by `tail`). */
  get since(): string | undefined {
    return this.#newest === undefined ? undefined : sinceOfDockerTime(this.#newest);
  }

  /** A new window starts: lines up to the newest seen so far are repeats. */
  nextWindow(): void {
    this.#floor = this.#newest;
  }

  /** Whether a line of the current window is new; remembers its time. */
  accept(time: string): boolean {
    if (this.#floor !== undefined && compareDockerTimes(time, this.#floor) <= 0) return false;
    if (this.#newest === undefined || compareDockerTimes(time, this.#newest) > 0) this.#newest = time;
    return true;
  }
}
