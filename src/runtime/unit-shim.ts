// The shim under which the host supervisor (host-supervisor-main.ts) runs a unit's main process: a
// few lines of Perl (perl-base is Essential on Debian and Raspberry Pi OS; about 0.4 MB PSS, where
// a Node supervisor is 7 MB) that fork the main process, wait for it, and write how it ended to a
// file. It outlives the host supervisor, so that a host supervisor started again adopts running
// units and still learns their exact exit status. Files (docs/runtime-files.md#the-host-supervisor):
//
// <unitDir>/main.fifo  the main process's stdout and stderr; the shim holds it open read-write so
//                      that the process never gets EPIPE while no host supervisor reads it (lines
//                      wait in the pipe, and the process blocks once 64 KiB wait)
// <unitDir>/main.exit  `<pid> exited <code>` or `<pid> killed <signal number>`, written atomically
//                      by the shim once the main process ended
// <unitDir>/main.exit.out  what was left unread in the FIFO when the main process ended (written
//                      before main.exit): the last words of a unit that ended while no host
//                      supervisor ran would die with the pipe
// <unitDir>/main.json  ShimRecord: which shim runs which main process, written by the host supervisor

import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, rmSync, watch } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { errnoName, type FifoMaker } from './fifo-maker.js';
import { LineSplitter, type JournalWriter } from './journal-writer.js';
import { identify, isAlive } from './proc.js';
import { openRecord, recordProblem, type Decoded, type RecordKind } from './record-envelope.js';
import type { Exit, LaunchSpec, Running } from './supervisor.js';
import { describeError } from './supervisor.js';
import type { ProcessIdentity } from './supervisor-protocol.js';

export const PERL = '/usr/bin/perl';

/**
 * fcntl 4 = F_SETFL, 2048 = O_NONBLOCK (x86, ARM and arm64 alike): the FIFO is drained without
 * waiting once the main process is gone.
 *
 * argv: exit-file fifo cgroup.procs-or-empty uid gid path argv0 args…; the environment comes as
 * `NAME=value\0` pairs on stdin (the shim itself runs with an empty one: a unit's PERL5OPT must not
 * reach it). Reports on fd 3: `pid <n>`, or `error <errno>` when exec failed. It ignores the
 * signals a stop sends to the unit's processes (only the main process is the service); the main
 * process gets the default dispositions back before exec.
 */
export const SHIM_SCRIPT = `
my ($exit, $fifo, $procs, $uid, $gid, $path, @argv) = @ARGV;
my @sigs = qw(HUP INT QUIT TERM PIPE USR1 USR2 ALRM CHLD CONT TSTP TTIN TTOU);
$SIG{$_} = 'IGNORE' for grep { $_ ne 'CHLD' && $_ ne 'CONT' } @sigs;
my %env; { local $/; my $in = <STDIN>; for (split /\\0/, $in // '') { my ($k, $v) = split /=/, $_, 2; $env{$k} = $v // '' } }
open(STDIN, '<', '/dev/null');
%ENV = %env;
if ($procs ne '') { open(my $c, '>>', $procs) or die "shim: cannot join $procs: $!\\n"; print $c "$$\\n"; close($c) or die "shim: cannot join $procs: $!\\n" }
open(my $keep, '+<', $fifo) or die "shim: cannot open $fifo: $!\\n";
open(my $rep, '>&=', 3) or die "shim: no report pipe: $!\\n";
fcntl($rep, 2, 1);
my $pid = fork();
die "shim: fork: $!\\n" unless defined $pid;
if ($pid == 0) {
  $SIG{$_} = 'DEFAULT' for @sigs;
  if ($uid ne '') {
    require POSIX;
    $) = "$gid $gid";
    POSIX::setgid($gid) or do { print $rep 'error ' . ($! + 0) . "\\n"; exit 127 };
    POSIX::setuid($uid) or do { print $rep 'error ' . ($! + 0) . "\\n"; exit 127 };
  }
  exec { $path } @argv;
  print $rep 'error ' . ($! + 0) . "\\n";
  close($rep);
  exit 127;
}
print $rep "pid $pid\\n";
close($rep);
waitpid($pid, 0);
my $st = $?;
fcntl($keep, 4, 2048);
my ($buf, $left) = ('', '');
while (sysread($keep, $buf, 65536)) { $left .= $buf }
if ($left ne '') { my $l; if (open($l, '>>', "$exit.out")) { print $l $left; close($l) } }
my $how = ($st & 127) ? 'killed ' . ($st & 127) : 'exited ' . ($st >> 8);
open(my $o, '>', "$exit.tmp") or die "shim: cannot write $exit.tmp: $!\\n";
print $o "$pid $how\\n";
close($o) or die "shim: cannot write $exit.tmp: $!\\n";
rename("$exit.tmp", $exit) or die "shim: cannot rename $exit.tmp: $!\\n";
`;

export const SHIM_RECORD: RecordKind = { record: 'unit shim (main.json)', current: 1 };

/** Which shim runs which main process, for a host supervisor that takes the unit over. */
export interface ShimRecord {
  readonly v: 1;
  readonly shim: ProcessIdentity;
  readonly mainPid: number;
  /** FLEETTS_INVOCATION_ID of this run: how the /proc scan finds the unit's processes. */
  readonly invocationId: string;
}

export function shimPaths(unitDir: string): { fifo: string; exit: string; record: string } {
  return {
    fifo: join(unitDir, 'main.fifo'),
    exit: join(unitDir, 'main.exit'),
    record: join(unitDir, 'main.json'),
  };
}

/** Checked by hand, as the fence (record-envelope.ts): the host supervisor does not load zod. */
export function parseShimRecord(text: string, where: string): Decoded<ShimRecord> {
  const opened = openRecord(SHIM_RECORD, text, where);
  if (!opened.ok) return opened;
  const { json } = opened.value;
  const shim = json['shim'] as { pid?: unknown; startTime?: unknown } | undefined;
  const positive = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (typeof shim !== 'object' || shim === null || !positive(shim.pid) || !positive(shim.startTime))
    return recordProblem(SHIM_RECORD, where, `shim: expected {pid, startTime}, got ${JSON.stringify(shim)}`);
  if (!positive(json['mainPid']))
    return recordProblem(
      SHIM_RECORD,
      where,
      `mainPid: expected a pid, got ${JSON.stringify(json['mainPid'])}`,
    );
  if (typeof json['invocationId'] !== 'string')
    return recordProblem(SHIM_RECORD, where, 'invocationId: expected a string');
  return {
    ok: true,
    value: {
      v: 1,
      shim: { pid: shim.pid, startTime: shim.startTime },
      mainPid: json['mainPid'],
      invocationId: json['invocationId'],
    },
  };
}

/** `main.exit`: how the main process ended, or undefined when the file is missing or not for `pid`. */
export function readShimExit(path: string, pid: number): Exit | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
  const m = /^(\d+) (exited|killed) (\d+)\n?$/.exec(text);
  if (m === null || Number(m[1]) !== pid) return undefined;
  const n = Number(m[3]);
  return m[2] === 'exited' ? { kind: 'exited', code: n } : { kind: 'killed', signal: signalName(n) };
}

function signalName(n: number): string {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === n) return name;
  return `SIG${n}`;
}

export interface ShimContext {
  readonly unitDir: string;
  /** Makes the unit's FIFO the first time (one helper per host supervisor). */
  readonly fifos: Pick<FifoMaker, 'make'>;
  readonly journal: JournalWriter;
  readonly clock: Clock;
  /** The unit's cgroup.procs the shim joins before it forks (empty: /proc-scan tracking). */
  readonly cgroupProcs: string;
  /** A shim spawned or adopted: its pid joins the unit's proc-scan sessions. */
  readonly onShim: (shim: ProcessIdentity) => void;
  /** How often an adopted shim (not this process's child) is looked at, besides inotify. */
  readonly pollMs?: number;
}

export interface ShimRun extends Running {
  readonly shim: ProcessIdentity;
}

/** Runs the main process under a new shim; resolves once it runs (or could not be run). */
export async function launchUnderShim(spec: LaunchSpec, ctx: ShimContext): Promise<ShimRun | Exit> {
  const paths = shimPaths(ctx.unitDir);
  if (!existsSync(paths.fifo)) {
    // Node cannot make a FIFO: the host supervisor's one Perl helper does (fifo-maker.ts). Once
    // per unit directory.
    const made = await ctx.fifos.make(paths.fifo).then(
      () => null,
      (err: unknown) => err,
    );
    if (made !== null)
      return { kind: 'not-run', code: 203, reason: `cannot make ${paths.fifo}: ${describeError(made)}` };
  }
  rmSync(paths.exit, { force: true });
  const output = openOutput(paths.fifo);
  output.pause(); // until the main pid is known, for the journal's identifier
  let writer: number;
  try {
    // Blocking (the process's writes must block when the pipe is full); opens at once: a reader is there.
    writer = openSync(paths.fifo, constants.O_WRONLY);
  } catch (err) {
    output.destroy();
    return { kind: 'not-run', code: 203, reason: `cannot open ${paths.fifo}: ${describeError(err)}` };
  }
  const creds = spec.credentials;
  const child = spawn(
    PERL,
    [
      '-e',
      SHIM_SCRIPT,
      paths.exit,
      paths.fifo,
      ctx.cgroupProcs,
      creds === undefined ? '' : String(creds.uid),
      creds === undefined ? '' : String(creds.gid),
      spec.path,
      ...spec.argv,
    ],
    { cwd: spec.cwd, env: {}, detached: true, stdio: ['pipe', writer, writer, 'pipe'] },
  );
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  closeSync(writer);
  if (spawned !== undefined) {
    output.destroy();
    return { kind: 'not-run', code: 203, reason: `cannot run the shim ${PERL}: ${describeError(spawned)}` };
  }
  const shim = identify(child.pid ?? -1);
  if (shim !== undefined) ctx.onShim(shim);
  child.stdin?.end(
    Object.entries(spec.env)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(''),
  );
  child.stdin?.on('error', () => undefined);
  const shimExited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const report = await readReport(child.stdio[3] as NodeJS.ReadableStream | null);
  const pidLine = /^pid (\d+)$/m.exec(report);
  const errorLine = /^error (\d+)$/m.exec(report);
  if (pidLine === null || errorLine !== null || shim === undefined) {
    await shimExited;
    drain(output, spec.unit, pidLine === null ? (child.pid ?? 0) : Number(pidLine[1]), ctx.journal);
    const reason =
      errorLine !== null
        ? describeError({ code: errnoName(Number(errorLine[1])) ?? `errno ${errorLine[1]}` })
        : `the shim (${PERL}) did not start it; see the journal`;
    return { kind: 'not-run', code: 203, reason };
  }
  const pid = Number(pidLine[1]);
  const ended = attachOutput(output, `${spec.unit}[${pid}]`, ctx.journal);
  const exited = shimExited.then(() =>
    finish(paths.exit, `${spec.unit}[${pid}]`, pid, child.exitCode, child.signalCode, ended, ctx),
  );
  return { pid, shim, exited };
}

/**
 * A main process that a previous host supervisor ran under `record.shim`: its output is read again
 * from the FIFO (what was written meanwhile waited there), and its end is learnt from main.exit,
 * whether it comes later or came while no host supervisor ran.
 */
export function adoptShim(record: ShimRecord, unit: string, ctx: ShimContext): ShimRun {
  const paths = shimPaths(ctx.unitDir);
  ctx.onShim(record.shim);
  let ended: Promise<void> = Promise.resolve();
  if (existsSync(paths.fifo)) {
    try {
      ended = attachOutput(openOutput(paths.fifo), `${unit}[${record.mainPid}]`, ctx.journal);
    } catch {
      // no output, but the exit status still counts
    }
  }
  const exited = new Promise<Exit>((resolve) => {
    let timer: ReturnType<Clock['setTimer']> | undefined;
    let watcher: ReturnType<typeof watch> | undefined;
    const look = (): void => {
      const exit = readShimExit(paths.exit, record.mainPid);
      if (exit === undefined && isAlive(record.shim)) return;
      watcher?.close();
      timer?.cancel();
      timer = undefined;
      const settle = (): void => {
        journalLeftover(paths.exit, `${unit}[${record.mainPid}]`, ctx.journal);
        resolve(
          exit ??
            readShimExit(paths.exit, record.mainPid) ?? {
              kind: 'killed',
              signal: 'SIGKILL',
              lost: `its shim (pid ${record.shim.pid}) ended without recording how it ended`,
            },
        );
      };
      void Promise.race([ended, ctx.clock.sleep(100)]).then(settle);
    };
    try {
      watcher = watch(ctx.unitDir, (_e, file) => {
        if (file === 'main.exit') look();
      });
      watcher.on('error', () => undefined);
    } catch {
      // the poll still sees it
    }
    const poll = (): void => {
      look();
      if (timer !== undefined) timer = ctx.clock.setTimer(ctx.pollMs ?? 2000, poll);
    };
    timer = ctx.clock.setTimer(ctx.pollMs ?? 2000, poll);
    look();
  });
  return { pid: record.mainPid, shim: record.shim, exited };
}

async function finish(
  exitPath: string,
  ident: string,
  pid: number,
  code: number | null,
  signal: NodeJS.Signals | null,
  ended: Promise<void>,
  ctx: ShimContext,
): Promise<Exit> {
  // Output written just before the end may still be in the pipe; daemons it left may hold it open.
  await Promise.race([ended, ctx.clock.sleep(100)]);
  journalLeftover(exitPath, ident, ctx.journal);
  const exit = readShimExit(exitPath, pid);
  if (exit !== undefined) return exit;
  const how = signal !== null ? `killed by ${signal}` : `exited with status ${code}`;
  return {
    kind: 'killed',
    signal: 'SIGKILL',
    lost: `its shim ${how} without recording how it ended`,
  };
}

/** Journals what the shim drained from the FIFO after the main process ended, once. */
function journalLeftover(exitPath: string, ident: string, journal: JournalWriter): void {
  const path = `${exitPath}.out`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  rmSync(path, { force: true });
  const splitter = new LineSplitter((line) => journal.write(ident, line));
  splitter.push(text);
  splitter.end();
}

/** The FIFO's read end, non-blocking (libuv reads it like a pipe; a blocking read would hold a thread). */
function openOutput(fifo: string): Socket {
  const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const s = new Socket({ fd, readable: true, writable: false });
  s.on('error', () => undefined);
  return s;
}

/** Journals the output line by line; resolves once every writer has closed it. */
function attachOutput(output: Socket, ident: string, journal: JournalWriter): Promise<void> {
  const splitter = new LineSplitter((line) => journal.write(ident, line));
  output.setEncoding('utf8');
  output.on('data', (chunk: string) => splitter.push(chunk));
  const ended = new Promise<void>((resolve) => {
    output.once('end', resolve);
    output.once('close', resolve);
  });
  output.resume();
  return ended.then(() => {
    splitter.end();
    output.destroy();
  });
}

/** What a shim that never ran its process said (perl's die goes to the FIFO). */
function drain(output: Socket, unit: string, pid: number, journal: JournalWriter): void {
  void attachOutput(output, `${unit}[${pid}]`, journal);
}

function readReport(stream: NodeJS.ReadableStream | null): Promise<string> {
  if (stream === null) return Promise.resolve('');
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (text += d));
    stream.once('end', () => resolve(text));
    stream.once('error', () => resolve(text));
  });
}
