// The host supervisor's one long-lived Perl helper: it makes the units' FIFOs and forks their shims
// (unit-shim.ts). Node cannot make a FIFO, and a spawn from Node forks the whole host supervisor and
// blocks its event loop until the child has exec'd: about 40 ms each on a busy 2-core machine
// (docs/memory.md), so every start on a host queued behind the others. A fork of this small Perl
// process costs about a millisecond and blocks nothing in Node. perl-base is Essential on Debian and
// Raspberry Pi OS.
//
// Requests (Node to helper): `<bytes>\n<payload>`, the payload's fields separated by NUL (no path,
// argument or environment entry can hold one): `fifo\0<id>\0<path>`, or
// `run\0<id>\0<name>\0<exit>\0<fifo>\0<procs>\0<uid>\0<gid>\0<cwd>\0<path>\0<argc>\0<argv…>\0<env…>`.
// Answers (helper and shims to Node), one line each, written whole (shorter than PIPE_BUF):
//   `<id> ok` | `<id> error <errno>`   the FIFO, or why not
//   `<id> shim <pid>`                  the shim is forked (written by the helper)
//   `<id> pid <pid> <shim pid>`        the main process has exec'd (written by the shim, which runs
//                                      as soon as it is forked: this may come before `shim`)
//   `<id> error <errno> <shim pid>`    it could not (chdir, setgid, setuid or exec failed)
//   `end <pid> <wait status>`          a shim ended and was reaped by the helper
// A shim that ends before it answers (its `die` went to the unit's FIFO) shows as `end` alone.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { constants as osConstants } from 'node:os';

/**
 * The shim (after the helper's fork): joins the unit's cgroup, holds the FIFO open read-write so that
 * the main process never gets EPIPE while no host supervisor reads it, forks the main process, waits
 * for it, and writes how it ended to `<exit>` (atomically; what was left unread in the FIFO first to
 * `<exit>.out`). It ignores the signals a stop sends to the unit's processes (only the main process is
 * the service); the main process gets the default dispositions back before exec. fcntl 4 = F_SETFL,
 * 2048 = O_NONBLOCK (x86, ARM and arm64 alike).
 *
 * Perl runs a signal handler between two of its ops, never inside a system call: a SIGCHLD that comes
 * after its last check and before the helper blocks waits until that call returns. A read of stdin
 * may block until the next request, so a shim's end went unheard (a CI run hung on a zombie shim).
 * The loop therefore also reaps on every turn and waits in `select` for at most a second: an end is
 * heard at once through the handler, or within a second when its signal fell in that gap.
 */
const HELPER_SCRIPT = `
use POSIX ();
my @sigs = qw(HUP INT QUIT TERM PIPE USR1 USR2 ALRM CHLD CONT TSTP TTIN TTOU);
sub answer { my $l = shift; syswrite(STDOUT, $l) }
my $chld = POSIX::SigSet->new(POSIX::SIGCHLD());
sub reap { while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) { answer("end $p $?\\n") } }
$SIG{CHLD} = \\&reap;
sub shim {
  my ($id, $name, $exit, $fifo, $procs, $uid, $gid, $cwd, $path, $argc, @rest) = @_;
  my @argv = splice(@rest, 0, $argc);
  POSIX::sigprocmask(POSIX::SIG_BLOCK(), $chld);
  my $pid = fork();
  if (!defined $pid) { answer("$id error " . ($! + 0) . "\\n") } elsif ($pid) { answer("$id shim $pid\\n") }
  if (!defined $pid || $pid) { POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), $chld); return }
  $SIG{CHLD} = 'DEFAULT';
  POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), $chld);
  $0 = "fleetts-shim $name";
  POSIX::setsid();
  open(my $rep, '>&', \\*STDOUT) or POSIX::_exit(127);
  open(STDIN, '<', '/dev/null');
  my $fail = sub { syswrite($rep, "$id error " . (shift) . " $$\\n"); POSIX::_exit(127) };
  open(my $keep, '+<', $fifo) or $fail->($! + 0);
  open(STDOUT, '>', $fifo) or $fail->($! + 0);
  open(STDERR, '>&', \\*STDOUT) or $fail->($! + 0);
  $SIG{$_} = 'IGNORE' for grep { $_ ne 'CHLD' && $_ ne 'CONT' } @sigs;
  chdir($cwd) or $fail->($! + 0);
  if ($procs ne '') { open(my $c, '>>', $procs) or die "shim: cannot join $procs: $!\\n"; print $c "$$\\n"; close($c) or die "shim: cannot join $procs: $!\\n" }
  pipe(my $er, my $ew) or die "shim: pipe: $!\\n";
  my $main = fork();
  die "shim: fork: $!\\n" unless defined $main;
  if ($main == 0) {
    close($er);
    $SIG{$_} = 'DEFAULT' for @sigs;
    %ENV = ();
    for (@rest) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v // '' }
    if ($uid ne '') {
      $) = "$gid $gid";
      POSIX::setgid($gid) or do { syswrite($ew, $! + 0); POSIX::_exit(127) };
      POSIX::setuid($uid) or do { syswrite($ew, $! + 0); POSIX::_exit(127) };
    }
    exec { $path } @argv;
    syswrite($ew, $! + 0);
    POSIX::_exit(127);
  }
  close($ew);
  my $err = '';
  while (1) { my $n = sysread($er, $err, 16, length $err); last if defined $n && $n == 0; next if !defined $n && $!{EINTR}; last unless defined $n }
  close($er);
  syswrite($rep, $err eq '' ? "$id pid $main $$\\n" : "$id error $err $$\\n");
  close($rep);
  waitpid($main, 0);
  my $st = $?;
  fcntl($keep, 4, 2048);
  my ($buf, $left) = ('', '');
  while (sysread($keep, $buf, 65536)) { $left .= $buf }
  if ($left ne '') { my $l; if (open($l, '>>', "$exit.out")) { print $l $left; close($l) } }
  my $how = ($st & 127) ? 'killed ' . ($st & 127) : 'exited ' . ($st >> 8);
  open(my $o, '>', "$exit.tmp") or die "shim: cannot write $exit.tmp: $!\\n";
  print $o "$main $how\\n";
  close($o) or die "shim: cannot write $exit.tmp: $!\\n";
  rename("$exit.tmp", $exit) or die "shim: cannot rename $exit.tmp: $!\\n";
  POSIX::_exit(0);
}
my $buf = '';
my $in = '';
vec($in, fileno(STDIN), 1) = 1;
while (1) {
  reap();
  my $ready = select(my $r = $in, undef, undef, 1);
  if ($ready < 0) { next if $!{EINTR}; last }
  next if $ready == 0;
  my $n = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $n) { next if $!{EINTR}; last }
  last if $n == 0;
  while ($buf =~ /^(\\d+)\\n/) {
    my ($len, $head) = ($1, length($1) + 1);
    last if length($buf) < $head + $len;
    my @f = split /\\0/, substr($buf, $head, $len), -1;
    substr($buf, 0, $head + $len) = '';
    my ($op, $id) = splice(@f, 0, 2);
    if ($op eq 'fifo') { answer(POSIX::mkfifo($f[0], 0600) ? "$id ok\\n" : "$id error " . ($! + 0) . "\\n") }
    elsif ($op eq 'run') { shim($id, @f) }
    else { answer("$id error 22\\n") }
  }
}
`;

/** What the shim runs, and where its files are (unit-shim.ts shimPaths). */
export interface ShimLaunch {
  /** Shown by ps as `fleetts-shim <name>`. */
  readonly name: string;
  readonly exit: string;
  readonly fifo: string;
  /** The unit's cgroup.procs the shim joins before it forks (empty: /proc-scan tracking). */
  readonly cgroupProcs: string;
  readonly credentials?: { readonly uid: number; readonly gid: number };
  readonly cwd: string;
  readonly path: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** How a launch went, as far as the helper knows. */
export type LaunchReport =
  | { readonly kind: 'running'; readonly shim: number; readonly main: number }
  /** chdir, setgid, setuid, exec or the FIFO failed with this errno (the shim ends by itself). */
  | { readonly kind: 'error'; readonly shim?: number; readonly errno: number }
  /** The shim ended without a word (wait status): its reason went to the unit's FIFO. */
  | { readonly kind: 'ended'; readonly shim: number; readonly status: number }
  /** The helper could not be run, or ended before it answered. */
  | { readonly kind: 'failed'; readonly shim?: number; readonly why: string };

/** A shim's end as the helper reaped it (a wait status), or undefined once the helper is gone. */
export type EndListener = (status: number | undefined) => void;

interface Pending {
  /** One answer; `more` when others are to come for the same request. */
  readonly answer: (words: readonly string[]) => 'more' | void;
  readonly gone: (why: string) => void;
}

interface Helper {
  readonly child: ChildProcessByStdio<Writable, Readable, null>;
  readonly pending: Map<number, Pending>;
  /** Shims forked by this helper and not reaped yet, by pid. */
  readonly shims: Map<number, { request?: number; listener?: EndListener }>;
}

export class ShimLauncher {
  readonly #perl: string;
  #helper: Helper | undefined;
  #seq = 0;

  constructor(perl = '/usr/bin/perl') {
    this.#perl = perl;
  }

  /**
   * Makes a FIFO at `path` with mode 0600 (less the umask). Rejects with an Error naming the errno
   * (`EEXIST`, `ENOENT`, …) when it cannot, or when the helper cannot be run.
   */
  make(path: string): Promise<void> {
    if (path.includes('\0')) return Promise.reject(new Error(`a FIFO path cannot hold a NUL: ${path}`));
    return new Promise<void>((resolve, reject) => {
      this.#request(['fifo', path], {
        answer: (words) => {
          if (words[0] === 'ok') return resolve();
          const code = words[0] === 'error' ? errnoName(Number(words[1])) : undefined;
          reject(
            Object.assign(
              new Error(`mkfifo ${path}: ${code ?? words.join(' ')}`),
              code === undefined ? {} : { code },
            ),
          );
        },
        gone: (why) => reject(new Error(`mkfifo ${path}: ${why}`)),
      });
    });
  }

  /**
   * Forks a shim for `spec`; `onShim` hears its pid as soon as it is forked. Resolves once the main
   * process has exec'd, or could not be run. A shim that is running ends later: `onEnd`.
   */
  launch(spec: ShimLaunch, onShim: (pid: number) => void): Promise<LaunchReport> {
    const fields = [spec.name, spec.exit, spec.fifo, spec.cgroupProcs];
    fields.push(
      spec.credentials === undefined ? '' : String(spec.credentials.uid),
      spec.credentials === undefined ? '' : String(spec.credentials.gid),
      spec.cwd,
      spec.path,
      String(spec.argv.length),
      ...spec.argv,
      ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    );
    const bad = fields.find((f) => f.includes('\0'));
    if (bad !== undefined)
      return Promise.resolve({
        kind: 'failed',
        why: `a NUL in ${JSON.stringify(bad)} cannot be passed to exec`,
      });
    return new Promise<LaunchReport>((resolve) => {
      let shim: number | undefined;
      // The shim's pid comes from the helper (`shim`) and with the shim's own answer, in either order.
      const forked = (word: string | undefined): number | undefined => {
        const pid = Number(word);
        if (shim === undefined && Number.isInteger(pid) && pid > 0) {
          shim = pid;
          onShim(pid);
        }
        return shim;
      };
      this.#request(['run', ...fields], {
        answer: (words) => {
          if (words[0] === 'shim') {
            forked(words[1]);
            return 'more';
          }
          if (words[0] === 'pid')
            return resolve({ kind: 'running', shim: forked(words[2]) ?? 0, main: Number(words[1]) });
          if (words[0] === 'error') {
            const pid = forked(words[2]);
            return resolve({
              kind: 'error',
              errno: Number(words[1]),
              ...(pid === undefined ? {} : { shim: pid }),
            });
          }
          // `end` of the shim before its answer
          return resolve({ kind: 'ended', shim: shim ?? 0, status: Number(words[1]) });
        },
        gone: (why) => resolve({ kind: 'failed', why, ...(shim === undefined ? {} : { shim }) }),
      });
    });
  }

  /**
   * Calls `listener` once with the wait status when the helper reaps shim `pid`, or with undefined
   * at once when this helper did not fork it or is gone (then its end must be watched otherwise).
   */
  onEnd(pid: number, listener: EndListener): void {
    const entry = this.#helper?.shims.get(pid);
    if (entry === undefined) return listener(undefined);
    entry.listener = listener;
  }

  /** The helper's pid while one runs. */
  get helperPid(): number | undefined {
    return this.#helper?.child.pid;
  }

  /** Ends the helper (it also ends by itself when this process does: its stdin closes). Shims keep running. */
  close(): void {
    this.#helper?.child.stdin.end();
    if (this.#helper !== undefined) this.#gone(this.#helper, 'the helper was closed');
  }

  #request(fields: readonly string[], pending: Pending): number {
    const helper = this.#start();
    const id = ++this.#seq;
    const payload = Buffer.from([fields[0], String(id), ...fields.slice(1)].join('\0'));
    helper.pending.set(id, {
      answer: (words) => {
        if (pending.answer(words) !== 'more') helper.pending.delete(id);
        hold(helper);
      },
      gone: pending.gone,
    });
    helper.child.stdin.write(Buffer.concat([Buffer.from(`${payload.length}\n`), payload]));
    hold(helper);
    return id;
  }

  #start(): Helper {
    if (this.#helper !== undefined) return this.#helper;
    const child = spawn(this.#perl, ['-e', HELPER_SCRIPT], { env: {}, stdio: ['pipe', 'pipe', 'inherit'] });
    const helper: Helper = { child, pending: new Map(), shims: new Map() };
    this.#helper = helper;
    let buffered = '';
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const words = buffered.slice(0, nl).split(' ');
        buffered = buffered.slice(nl + 1);
        this.#heard(helper, words);
      }
    });
    child.once('error', (err) =>
      this.#gone(helper, `the helper ${this.#perl} could not run: ${err.message}`),
    );
    child.once('exit', (code, signal) =>
      this.#gone(helper, `the helper ${this.#perl} ended (${signal ?? `code ${code}`})`),
    );
    child.stdin.on('error', () => undefined);
    // Idle, it must not keep the host supervisor alive (its idle exit).
    child.unref();
    for (const s of [child.stdin, child.stdout]) (s as Partial<Socket>).unref?.();
    return helper;
  }

  #heard(helper: Helper, words: readonly string[]): void {
    if (words[0] === 'end') {
      const pid = Number(words[1]);
      const entry = helper.shims.get(pid);
      helper.shims.delete(pid);
      if (entry?.request !== undefined) helper.pending.get(entry.request)?.answer(['end', words[2] ?? '']);
      entry?.listener?.(Number(words[2]));
      return;
    }
    const id = Number(words[0]);
    // The shim is known from its first mention: the helper's `shim`, or the shim's own answer, which
    // may come first (both come before its `end`).
    const shim = Number(
      words[1] === 'shim' ? words[2] : words[1] === 'pid' || words[1] === 'error' ? words[3] : NaN,
    );
    if (Number.isInteger(shim) && shim > 0 && !helper.shims.has(shim))
      helper.shims.set(shim, { request: id });
    helper.pending.get(id)?.answer(words.slice(1));
  }

  #gone(helper: Helper, why: string): void {
    if (this.#helper === helper) this.#helper = undefined;
    // Its requests not answered fail; the next request starts a new helper.
    const pending = [...helper.pending.values()];
    helper.pending.clear();
    for (const p of pending) p.gone(why);
    const shims = [...helper.shims.values()];
    helper.shims.clear();
    for (const s of shims) s.listener?.(undefined);
  }
}

/** Keeps this process up while an answer of the helper is awaited, not while it idles. */
function hold(helper: Helper): void {
  const out = helper.child.stdout as Partial<Socket>;
  if (helper.pending.size > 0) out.ref?.();
  else out.unref?.();
}

/** The errno's name (`ENOENT`) for its number, as Perl's `$! + 0` gives it. */
export function errnoName(n: number): string | undefined {
  for (const [name, num] of Object.entries(osConstants.errno)) if (num === n) return name;
  return undefined;
}
