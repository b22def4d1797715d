// Runs a user-given shell command (`--check-cmd`, `--reload-cmd`) with a deadline on the injected
// Clock and collects its output for the log: confd's and consul-template's model, through /bin/sh.
import { spawn } from 'node:child_process';
import type { Clock } from '../lib/clock.js';

export interface CommandResult {
  readonly ok: boolean;
  /** Exit code, or undefined when killed or not started. */
  readonly code: number | undefined;
  /** stdout and stderr interleaved, trimmed, at most the last 4000 characters. */
  readonly output: string;
}

export function runCommand(
  command: string,
  options: { clock: Clock; timeoutMs: number },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    let timedOut = false;
    const timer = options.clock.setTimer(options.timeoutMs, () => {
      timedOut = true;
      child.kill('SIGKILL');
    });
    child.once('error', (err) => {
      timer.cancel();
      resolve({ ok: false, code: undefined, output: err.message });
    });
    child.once('close', (code) => {
      timer.cancel();
      const text = output.trim() + (timedOut ? `\n(killed after ${options.timeoutMs} ms)` : '');
      resolve({ ok: code === 0 && !timedOut, code: code ?? undefined, output: text.trim() });
    });
  });
}

/** Quotes one word for /bin/sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
