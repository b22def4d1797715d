// Runs one helper program (no shell) with a deadline on the injected Clock, optional stdin, and
// its output collected: the Galera member's mariadb client, mariadb-install-db and docker, and the
// upstream watcher's check and reload commands (through /bin/sh).
import { spawn } from 'node:child_process';
import type { Clock } from './clock.js';

/** A program and its arguments, run without a shell. */
export interface CommandLine {
  readonly file: string;
  readonly args: readonly string[];
}

export interface FileResult {
  readonly ok: boolean;
  readonly code: number | undefined;
  readonly stdout: string;
  /** stderr (or the spawn error), trimmed, at most 4000 characters. */
  readonly stderr: string;
}

export function runFile(
  cmd: CommandLine,
  options: {
    clock: Clock;
    timeoutMs: number;
    input?: string;
    /** Kills the program (SIGKILL) when aborted; the result is then not ok. */
    signal?: AbortSignal;
  },
): Promise<FileResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    const child = spawn(cmd.file, [...cmd.args], {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (c: Buffer) => {
      stdout = (stdout + c.toString()).slice(-64_000);
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-4000);
    });
    if (options.input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
    let timedOut = false;
    let aborted = false;
    const timer = options.clock.setTimer(options.timeoutMs, () => {
      timedOut = true;
      child.kill('SIGKILL');
    });
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGKILL');
    };
    if (options.signal?.aborted === true) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => {
      timer.cancel();
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (err) => {
      settle();
      resolve({ ok: false, code: undefined, stdout, stderr: err.message });
    });
    child.once('close', (code) => {
      settle();
      const err =
        stderr.trim() +
        (timedOut ? ` (killed after ${options.timeoutMs} ms)` : aborted ? ' (killed: cancelled)' : '');
      resolve({
        ok: code === 0 && !timedOut && !aborted,
        code: code ?? undefined,
        stdout,
        stderr: err.trim(),
      });
    });
  });
}
