// Runs a user-given shell command (`--check-cmd`, `--reload-cmd`) with a deadline on the injected
// Clock and collects its output for the log: confd's and consul-template's model, through /bin/sh.
import type { Clock } from '../lib/clock.js';
import { runFile } from '../lib/run-file.js';

export interface CommandResult {
  readonly ok: boolean;
  /** Exit code, or undefined when killed or not started. */
  readonly code: number | undefined;
  /** stdout, then stderr (with the deadline's note), trimmed, at most the last 4000 characters. */
  readonly output: string;
}

export async function runCommand(
  command: string,
  options: { clock: Clock; timeoutMs: number },
): Promise<CommandResult> {
  const r = await runFile({ file: '/bin/sh', args: ['-c', command] }, options);
  const output = [r.stdout.trim(), r.stderr].filter((s) => s !== '').join('\n');
  return { ok: r.ok, code: r.code, output: output.slice(-4000) };
}

export { shellQuote } from '../lib/shell-quote.js';
