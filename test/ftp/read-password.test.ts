// The terminal prompt with a fake TTY: asked twice with echo off (raw mode, nothing echoed but the
// prompts), backspace edits, a mismatch or Ctrl-C changes nothing; no terminal → --password-stdin.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import test from 'ava';
import { UsageError } from '../../src/lib/errors.js';
import { readPasswordFromStdin, readPasswordFromTerminal } from '../../src/ftp/read-password.js';

class FakeTty extends EventEmitter {
  readonly isTTY = true;
  raw: boolean[] = [];
  constructor(private readonly keys: string[]) {
    super();
  }
  setRawMode(mode: boolean): this {
    this.raw.push(mode);
    return this;
  }
  resume(): this {
    // Types the next answer once a prompt listens.
    const k = this.keys.shift();
    if (k !== undefined) setImmediate(() => this.emit('data', Buffer.from(k)));
    return this;
  }
  pause(): this {
    return this;
  }
}

function prompt(): { text: string; write(s: string): void } {
  return {
    text: '',
    write(s: string) {
      this.text += s;
    },
  };
}

test('asks twice with echo off; backspace edits; only the prompts are written', async (t) => {
  const tty = new FakeTty(['correct horsx\u007fe\r', 'correct horse\r']);
  const out = prompt();
  t.is(await readPasswordFromTerminal(tty, out), 'correct horse');
  t.is(out.text, 'New password: \nRepeat the password: \n');
  t.deepEqual(tty.raw, [true, false, true, false], 'raw mode on while typing, off after');
});

test('two different answers: refused, nothing returned', async (t) => {
  const tty = new FakeTty(['first-password\r', 'second-password\r']);
  const err = await t.throwsAsync(readPasswordFromTerminal(tty, prompt()), { instanceOf: UsageError });
  t.is(err.message, 'the two passwords differ: nothing changed; try again');
});

test('Ctrl-C cancels', async (t) => {
  const tty = new FakeTty(['abc\u0003']);
  const err = await t.throwsAsync(readPasswordFromTerminal(tty, prompt()), { instanceOf: UsageError });
  t.is(err.message, 'cancelled: no password given, nothing changed');
  t.deepEqual(tty.raw, [true, false]);
});

test('no terminal: the message points to --password-stdin', async (t) => {
  const err = await t.throwsAsync(readPasswordFromTerminal(Readable.from([]), prompt()), {
    instanceOf: UsageError,
  });
  t.regex(err.message, /^no terminal to ask the password on: pipe it in with --password-stdin/);
});

test('--password-stdin takes the first line (CRLF too); empty input is refused', async (t) => {
  t.is(await readPasswordFromStdin(Readable.from(['pass', 'word 1\r\nsecond\n'])), 'password 1');
  t.is(await readPasswordFromStdin(Readable.from(['no newline at all'])), 'no newline at all');
  await t.throwsAsync(readPasswordFromStdin(Readable.from([])), {
    message: '--password-stdin: stdin is empty; give the password on the first line',
  });
});
