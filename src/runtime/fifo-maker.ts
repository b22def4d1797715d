// Makes FIFOs (mkfifo) through one long-lived Perl process, for the host supervisor: Node has no
// mkfifo, and spawning coreutils' mkfifo for every new unit was half of the host supervisor's
// spawns in a start burst. A spawn blocks its event loop until the child has exec'd (about 40 ms
// each on a busy 2-core machine, docs/memory.md), so every start on the host waited for them.
// Perl is there already: the unit shim is Perl (unit-shim.ts).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';

/** Reads a path per line; answers `ok` or `error <errno>` per line, in order. */
const MKFIFO_SCRIPT = `
use POSIX ();
$| = 1;
while (my $path = <STDIN>) {
  chomp $path;
  print POSIX::mkfifo($path, 0600) ? "ok\\n" : 'error ' . ($! + 0) . "\\n";
}
`;

export class FifoMaker {
  readonly #perl: string;
  #child: ChildProcessWithoutNullStreams | undefined;
  /** The current helper's requests sent and not answered yet, in order (each helper has its own). */
  #waiting: ((answer: string) => void)[] = [];

  constructor(perl = '/usr/bin/perl') {
    this.#perl = perl;
  }

  /**
   * Makes a FIFO at `path` with mode 0600 (less the umask). Rejects with an Error naming the errno
   * (`EEXIST`, `ENOENT`, …) when it cannot, or when the helper cannot be run.
   */
  make(path: string): Promise<void> {
    if (path.includes('\n')) return Promise.reject(new Error(`a FIFO path cannot hold a newline: ${path}`));
    return new Promise<void>((resolve, reject) => {
      const child = this.#helper();
      this.#waiting.push((answer) => {
        if (answer === 'ok') return resolve();
        const errno = /^error (\d+)$/.exec(answer);
        const code = errno === null ? undefined : errnoName(Number(errno[1]));
        reject(
          Object.assign(new Error(`mkfifo ${path}: ${code ?? answer}`), code === undefined ? {} : { code }),
        );
      });
      child.stdin.write(`${path}\n`);
      hold(child, true); // an answer is awaited: this process stays up for it
    });
  }

  /** The helper's pid while one runs. */
  get helperPid(): number | undefined {
    return this.#child?.pid;
  }

  /** Ends the helper (it also ends by itself when this process does: its stdin closes). */
  close(): void {
    this.#child?.stdin.end();
    this.#child = undefined;
  }

  #helper(): ChildProcessWithoutNullStreams {
    if (this.#child !== undefined) return this.#child;
    const child = spawn(this.#perl, ['-e', MKFIFO_SCRIPT], { env: {}, stdio: 'pipe' });
    const waiting: ((answer: string) => void)[] = [];
    this.#child = child;
    this.#waiting = waiting;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        waiting.shift()?.(line);
      }
      if (waiting.length === 0) hold(child, false);
    });
    const gone = (why: string): void => {
      if (this.#child === child) this.#child = undefined;
      // Its requests not answered fail; the next request starts a new helper.
      for (const answer of waiting.splice(0)) answer(why);
    };
    child.once('error', (err) => gone(`the helper ${this.#perl} could not run: ${err.message}`));
    child.once('exit', (code, signal) =>
      gone(`the helper ${this.#perl} ended (${signal ?? `code ${code}`})`),
    );
    child.stdin.on('error', () => undefined);
    // Idle, it must not keep the host supervisor alive (its idle exit).
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as Partial<Socket>).unref?.();
    return child;
  }
}

/** Keeps this process up while an answer of the helper is awaited, not while it idles. */
function hold(child: ChildProcessWithoutNullStreams, awaited: boolean): void {
  const out = child.stdout as Partial<Socket>;
  if (awaited) out.ref?.();
  else out.unref?.();
}

/** The errno's name (`ENOENT`) for its number, as Perl's `$! + 0` gives it. */
export function errnoName(n: number): string | undefined {
  for (const [name, num] of Object.entries(osConstants.errno)) if (num === n) return name;
  return undefined;
}
