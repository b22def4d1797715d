// Reads a new FTP password without it ever reaching argv, the screen or a log: from the terminal
// with echo off (asked twice), or the first line of stdin (`--password-stdin`, for scripts).
import { UsageError } from '../lib/errors.js';

/** The part of a TTY ReadStream used here (tests pass a fake). */
export interface TerminalInput {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface PromptOutput {
  write(text: string): unknown;
}

/** Asks twice on the terminal with echo off; throws UsageError when the two differ. */
export async function readPasswordFromTerminal(
  input: TerminalInput,
  prompt: PromptOutput,
  what = 'password',
): Promise<string> {
  if (input.isTTY !== true || input.setRawMode === undefined)
    throw new UsageError(
      'no terminal to ask the password on: pipe it in with --password-stdin (e.g. from a secrets file), never as an argument',
    );
  const first = await readHidden(input, prompt, `New ${what}: `);
  const second = await readHidden(input, prompt, `Repeat the ${what}: `);
  if (first !== second) throw new UsageError('the two passwords differ: nothing changed; try again');
  return first;
}

/** The first line of `stdin` (without its line end). */
export async function readPasswordFromStdin(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += chunk.toString();
    if (text.includes('\n')) break;
  }
  const line = text.split('\n')[0]?.replace(/\r$/, '') ?? '';
  if (line === '')
    throw new UsageError('--password-stdin: stdin is empty; give the password on the first line');
  return line;
}

function readHidden(input: TerminalInput, prompt: PromptOutput, label: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err?: Error): void => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      prompt.write('\n');
      if (err === undefined) resolve(value);
      else reject(err);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || ch === '\u0004')
          return finish(new UsageError('cancelled: no password given, nothing changed'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
      }
    };
    prompt.write(label);
    input.setRawMode?.(true);
    input.on('data', onData);
    input.resume();
  });
}
