// The supervisor's side of a unit's journal: appends lines to journal.log and rotates it to
// journal.log.1 … journal.log.<files-1> so that a unit never holds more than maxBytes × files.
// Writes are synchronous: lines from stdout, stderr and the supervisor itself stay in order.

import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { JournalLimits } from './supervisor-protocol.js';

/** Longer lines are split (journald's LineMax does the same, at 48 KiB). */
export const LINE_MAX = 16 * 1024;

export class JournalWriter {
  readonly #path: string;
  readonly #limits: JournalLimits;
  #fd: number;
  #size: number;

  constructor(path: string, limits: JournalLimits) {
    this.#path = path;
    this.#limits = { maxBytes: Math.max(256, limits.maxBytes), files: Math.max(1, limits.files) };
    this.#fd = openSync(path, 'a', 0o640);
    this.#size = fstatSync(this.#fd).size;
  }

  /** Appends one record, `<ISO time> <ident>: <text>` (text without its newline). */
  write(ident: string, text: string, at: Date = new Date()): void {
    for (let i = 0; i === 0 || i < text.length; i += LINE_MAX) {
      this.#append(`${at.toISOString()} ${ident}: ${text.slice(i, i + LINE_MAX)}\n`);
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  #append(line: string): void {
    const buf = Buffer.from(line, 'utf8');
    if (this.#size > 0 && this.#size + buf.length > this.#limits.maxBytes) this.#rotate();
    writeSync(this.#fd, buf);
    this.#size += buf.length;
  }

  #rotate(): void {
    closeSync(this.#fd);
    const name = (i: number): string => (i === 0 ? this.#path : `${this.#path}.${i}`);
    if (this.#limits.files === 1) rmSync(this.#path, { force: true });
    for (let i = this.#limits.files - 1; i >= 1; i--) {
      try {
        renameSync(name(i - 1), name(i));
      } catch {
        // that generation does not exist yet
      }
    }
    this.#fd = openSync(this.#path, 'a', 0o640);
    this.#size = 0;
  }
}

/** Splits a byte stream into lines, keeping the unfinished tail for the next chunk. */
export class LineSplitter {
  #tail = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    const parts = (this.#tail + chunk).split('\n');
    this.#tail = parts.pop() ?? '';
    for (const p of parts) this.onLine(p.endsWith('\r') ? p.slice(0, -1) : p);
    if (this.#tail.length > LINE_MAX) {
      this.onLine(this.#tail);
      this.#tail = '';
    }
  }

  /** Emits the unfinished last line, if any (the stream ended). */
  end(): void {
    if (this.#tail !== '') this.onLine(this.#tail);
    this.#tail = '';
  }
}
