// Reads a server-sent events stream (the WHATWG "event stream" format: `field: value` lines, a blank
// line ends a message, `:` lines are comments) from text chunks that split lines anywhere. What
// fleetts needs of it: each message's data and the id an EventSource would resume from.

export interface SseMessage {
  /** The last id seen so far in the stream (EventSource's "last event ID"), if any. */
  readonly lastEventId: string | undefined;
  readonly data: string;
}

export class SseReader {
  #buffer = '';
  #data: string[] = [];
  #lastEventId: string | undefined;

  /** Feeds one chunk; returns the messages it completed. */
  push(chunk: string): SseMessage[] {
    this.#buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.#buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      // A lone '\r' at the end may be the first half of '\r\n': wait for the next chunk.
      if (this.#buffer[nl] === '\r' && nl === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + (this.#buffer.startsWith('\r\n', nl) ? 2 : 1));
      const message = this.#line(line);
      if (message !== undefined) out.push(message);
    }
    return out;
  }

  #line(line: string): SseMessage | undefined {
    if (line === '') {
      if (this.#data.length === 0) return undefined;
      const message = { lastEventId: this.#lastEventId, data: this.#data.join('\n') };
      this.#data = [];
      return message;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.#lastEventId = value;
    return undefined;
  }
}
