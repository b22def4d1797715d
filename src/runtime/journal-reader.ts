// The runtime's side of a unit's journal: the last N lines across the rotated files, then (follow)
// new lines as the supervisor appends them, across rotations. Woken by inotify (fs.watch), with a
// slow poll as a backstop.

import { watch, type FSWatcher } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock } from '../lib/clock.js';

export interface ReadJournalOptions {
  readonly lines: number;
  readonly follow: boolean;
  readonly signal?: AbortSignal | undefined;
  /** Rotated generations to look at (journal.log.1 … journal.log.<files-1>). */
  readonly files: number;
  readonly clock: Clock;
  readonly pollMs?: number;
}

export async function* readJournal(path: string, o: ReadJournalOptions): AsyncGenerator<string> {
  let fh: FileHandle | undefined = await openIfExists(path);
  try {
    const buf = fh === undefined ? Buffer.alloc(0) : await readFrom(fh, 0);
    // An unfinished last line is left for the follow loop, which reads on from here.
    let position = buf.lastIndexOf(10) + 1;
    const current = buf.subarray(0, position).toString('utf8');
    if (o.lines > 0) {
      const older: string[] = [];
      for (let i = o.files - 1; i >= 1; i--) older.push(await readIfExists(`${path}.${i}`));
      const all = splitComplete(older.join('') + current).lines;
      yield* all.slice(-o.lines);
    }
    if (!o.follow) return;
    let partial = '';
    const w = new Waker(dirname(path), o.clock, o.pollMs ?? 500);
    try {
      for (;;) {
        if (o.signal?.aborted) return;
        if (fh !== undefined) {
          const chunk = await readFrom(fh, position);
          position += chunk.length;
          const { lines, rest } = splitComplete(partial + chunk.toString('utf8'));
          partial = rest;
          yield* lines;
        }
        // Rotated (or created): finish the old file above, then continue with the new one.
        const now = await stat(path).catch(() => undefined);
        const was = fh === undefined ? undefined : await fh.stat();
        if (now !== undefined && (was === undefined || now.ino !== was.ino)) {
          if (fh !== undefined) {
            const chunk = await readFrom(fh, position);
            const { lines } = splitComplete(partial + chunk.toString('utf8') + (partial === '' ? '' : '\n'));
            yield* lines;
            partial = '';
            await fh.close();
          }
          fh = await openIfExists(path);
          position = 0;
          continue;
        }
        await w.wait(o.signal);
      }
    } finally {
      w.close();
    }
  } finally {
    await fh?.close();
  }
}

/** Resolves on the next change in a directory, after `pollMs`, or on abort. */
class Waker {
  #watcher: FSWatcher | undefined;
  #pending: (() => void) | undefined;
  #dirty = false;

  constructor(
    dir: string,
    private readonly clock: Clock,
    private readonly pollMs: number,
  ) {
    try {
      this.#watcher = watch(dir, () => this.#wake());
      this.#watcher.on('error', () => undefined);
    } catch {
      this.#watcher = undefined;
    }
  }

  async wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#dirty) {
      this.#dirty = false;
      return;
    }
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([
        this.clock.sleep(this.pollMs, ctl.signal).catch(() => undefined),
        new Promise<void>((resolve) => {
          this.#pending = resolve;
        }),
      ]);
    } finally {
      ctl.abort();
      signal?.removeEventListener('abort', onAbort);
      this.#pending = undefined;
      this.#dirty = false;
    }
  }

  close(): void {
    this.#watcher?.close();
  }

  #wake(): void {
    if (this.#pending === undefined) this.#dirty = true;
    else this.#pending();
  }
}

function splitComplete(text: string): { lines: string[]; rest: string } {
  const parts = text.split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts, rest };
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch {
    return undefined;
  }
}

async function readIfExists(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

async function readFrom(fh: FileHandle, position: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, position);
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    position += bytesRead;
  }
  return Buffer.concat(chunks);
}
