// Where `fleetts upstream` puts a rendered file: validated with nginx -t (or a given command),
// swapped in atomically by rename, nginx reloaded; on a failed validation the previous file stays.
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { DiscoveryError } from './discovery-error.js';
import { runCommand, shellQuote } from './run-command.js';

/** Validates the whole configuration nginx would load, with the new file in place. */
export const DEFAULT_CHECK_CMD = 'nginx -t -q';
export const DEFAULT_RELOAD_CMD = 'nginx -s reload';
export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
/** In a check command, replaced by the staged file's path (confd's `{{.src}}`). */
export const SRC_PLACEHOLDER = '{{src}}';

export type ApplyResult =
  /** nginx already runs this text. */
  | { readonly kind: 'unchanged' }
  /** `changed`: the file was rewritten (false: only the reload was due, e.g. at start). */
  | { readonly kind: 'reloaded'; readonly changed: boolean }
  /** The check rejected the text; the previous file is back in place and nginx untouched. */
  | { readonly kind: 'invalid'; readonly output: string }
  /** The file is in place but the reload failed (nginx not running?): retry the reload later. */
  | { readonly kind: 'reload_failed'; readonly output: string };

export interface NginxSinkDeps {
  readonly out: string;
  /** '' skips validation. With `{{src}}` the staged file is checked before the swap. */
  readonly checkCmd?: string;
  /** '' skips the reload. */
  readonly reloadCmd?: string;
  readonly commandTimeoutMs?: number;
  readonly clock: Clock;
  readonly log: Logger;
}

export class NginxSink {
  readonly #d: NginxSinkDeps;
  readonly #staged: string;
  /** The text nginx was last reloaded with (by this process). */
  #loaded: string | undefined;

  constructor(deps: NginxSinkDeps) {
    this.#d = deps;
    // A dot file without the .conf suffix: never picked up by an `include conf.d/*.conf`.
    this.#staged = join(dirname(deps.out), `.${basename(deps.out)}.fleetts-tmp`);
  }

  /** Throws DiscoveryError `io` when the file cannot be read, written or renamed. */
  async apply(text: string): Promise<ApplyResult> {
    if (text === this.#loaded) return { kind: 'unchanged' };
    const { out, log } = this.#d;
    const previous = await this.#read();
    const changed = previous !== text;
    if (changed) {
      const invalid = await this.#swap(text, previous);
      if (invalid !== undefined) {
        log.error(
          { event: 'upstream.invalid', file: out, output: invalid },
          `the rendered ${out} failed validation; kept the previous file and did not reload nginx:\n${invalid}`,
        );
        return { kind: 'invalid', output: invalid };
      }
      log.info({ event: 'upstream.written', file: out }, `wrote ${out}`);
    }
    const reload = this.#d.reloadCmd ?? DEFAULT_RELOAD_CMD;
    if (reload !== '') {
      const res = await this.#run(reload);
      if (!res.ok) {
        log.error(
          { event: 'upstream.reload_failed', command: reload, code: res.code, output: res.output },
          `reloading nginx failed (${reload}): ${res.output}`,
        );
        return { kind: 'reload_failed', output: res.output };
      }
    }
    this.#loaded = text;
    log.info({ event: 'upstream.reloaded', file: out, changed }, `nginx reloaded with ${out}`);
    return { kind: 'reloaded', changed };
  }

  /** Puts `text` in place if it validates; returns the check's output when it does not. */
  async #swap(text: string, previous: string | undefined): Promise<string | undefined> {
    const check = this.#d.checkCmd ?? DEFAULT_CHECK_CMD;
    await this.#io('write', () => writeFile(this.#staged, text, { mode: 0o644 }));
    if (check.includes(SRC_PLACEHOLDER)) {
      const res = await this.#run(check.split(SRC_PLACEHOLDER).join(shellQuote(this.#staged)));
      if (!res.ok) {
        await unlink(this.#staged).catch(() => undefined);
        return res.output || `${check} exited with ${String(res.code)}`;
      }
      await this.#io('rename', () => rename(this.#staged, this.#d.out));
      return undefined;
    }
    // nginx -t checks the configuration nginx would load: the new file must be in place for it.
    // nginx reads files only on reload, so the old file is back before anything reads the new one.
    await this.#io('rename', () => rename(this.#staged, this.#d.out));
    if (check === '') return undefined;
    const res = await this.#run(check);
    if (res.ok) return undefined;
    if (previous === undefined) await this.#io('remove', () => unlink(this.#d.out));
    else {
      await this.#io('write', () => writeFile(this.#staged, previous, { mode: 0o644 }));
      await this.#io('rename', () => rename(this.#staged, this.#d.out));
    }
    return res.output || `${check} exited with ${String(res.code)}`;
  }

  async #read(): Promise<string | undefined> {
    try {
      return await readFile(this.#d.out, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DiscoveryError('io', `cannot read ${this.#d.out}: ${(err as Error).message}`, { cause: err });
    }
  }

  #run(command: string): ReturnType<typeof runCommand> {
    return runCommand(command, {
      clock: this.#d.clock,
      timeoutMs: this.#d.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    });
  }

  async #io(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      throw new DiscoveryError(
        'io',
        `cannot ${what} ${this.#d.out} (via ${this.#staged}): ${(err as Error).message}`,
        {
          cause: err,
          recoverable: true,
        },
      );
    }
  }
}
