// The shim under which the host supervisor (host-supervisor-main.ts) runs a unit's main process: a
// fork of the host supervisor's Perl helper (shim-launcher.ts has its script; perl-base is Essential
// on Debian and Raspberry Pi OS; about 0.4 MB PSS, where a Node supervisor is 7 MB) that forks the
// main process, waits for it, and writes how it ended to a file. It outlives the host supervisor,
// so that a host supervisor started again adopts running units and still learns their exact exit
// status. Files (docs/runtime-files.md#the-host-supervisor):
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

import { constants, existsSync, openSync, readFileSync, rmSync, watch } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { errnoName, type ShimLauncher } from './shim-launcher.js';
import { LineSplitter, type JournalWriter } from './journal-writer.js';
import { identify, isAlive } from './proc.js';
import { openRecord, recordProblem, type Decoded, type RecordKind } from './record-envelope.js';
import type { Exit, LaunchSpec, Running } from './supervisor.js';
import { describeError } from './supervisor.js';
import type { ProcessIdentity } from './supervisor-protocol.js';

export const PERL = '/usr/bin/perl';

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
  /** Makes the unit's FIFO the first time and forks its shims (one Perl helper per host supervisor). */
  readonly launcher: Pick<ShimLauncher, 'make' | 'launch' | 'onEnd'>;
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
    // Node cannot make a FIFO: the host supervisor's Perl helper does (shim-launcher.ts). Once per
    // unit directory.
    const made = await ctx.launcher.make(paths.fifo).then(
      () => null,
      (err: unknown) => err,
    );
    if (made !== null)
      return { kind: 'not-run', code: 203, reason: `cannot make ${paths.fifo}: ${describeError(made)}` };
  }
  rmSync(paths.exit, { force: true });
  let output: Socket;
  try {
    output = openOutput(paths.fifo);
  } catch (err) {
    return { kind: 'not-run', code: 203, reason: `cannot open ${paths.fifo}: ${describeError(err)}` };
  }
  output.pause(); // until the main pid is known, for the journal's identifier
  let shim: ProcessIdentity | undefined;
  const report = await ctx.launcher.launch(
    {
      name: spec.unit,
      exit: paths.exit,
      fifo: paths.fifo,
      cgroupProcs: ctx.cgroupProcs,
      ...(spec.credentials === undefined ? {} : { credentials: spec.credentials }),
      cwd: spec.cwd,
      path: spec.path,
      argv: spec.argv,
      env: spec.env,
    },
    (pid) => {
      shim = identify(pid);
      if (shim !== undefined) ctx.onShim(shim);
    },
  );
  if (report.kind !== 'running' || shim === undefined) {
    // What the shim said before it ended (its die, in the FIFO) goes to the journal.
    if (report.kind === 'error' && report.shim !== undefined) await shimEnd(report.shim, ctx);
    drain(output, spec.unit, report.kind === 'running' ? report.main : (report.shim ?? 0), ctx.journal);
    const reason =
      report.kind === 'error'
        ? describeError({ code: errnoName(report.errno) ?? `errno ${report.errno}` })
        : report.kind === 'failed'
          ? `cannot run the shim: ${report.why}`
          : 'the shim did not start it; see the journal';
    return { kind: 'not-run', code: 203, reason };
  }
  const pid = report.main;
  const ident = `${spec.unit}[${pid}]`;
  const ended = attachOutput(output, ident, ctx.journal);
  const running = shim;
  const exited = new Promise<Exit>((resolve) => {
    ctx.launcher.onEnd(running.pid, (status) => {
      if (status === undefined) {
        // The helper is gone (the shim runs on, now a child of init): watched as an adopted one.
        resolve(watchShimEnd(paths.exit, running, pid, ident, ended, ctx));
        return;
      }
      const signal = status & 127;
      resolve(
        finish(
          paths.exit,
          ident,
          pid,
          signal === 0 ? status >> 8 : null,
          signal === 0 ? null : (signalName(signal) as NodeJS.Signals),
          ended,
          ctx,
        ),
      );
    });
  });
  return { pid, shim: running, exited };
}

/** Resolves once the helper reaped the shim (or is gone), at most 1 s later. */
function shimEnd(pid: number, ctx: ShimContext): Promise<void> {
  return Promise.race([
    new Promise<void>((resolve) => ctx.launcher.onEnd(pid, () => resolve())),
    ctx.clock.sleep(1000),
  ]);
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
  const exited = watchShimEnd(
    paths.exit,
    record.shim,
    record.mainPid,
    `${unit}[${record.mainPid}]`,
    ended,
    ctx,
  );
  return { pid: record.mainPid, shim: record.shim, exited };
}

/**
 * The end of a main process whose shim is not this helper's child (adopted, or its helper gone):
 * learnt from main.exit through inotify, and from a poll that also finds a shim that died without
 * writing it.
 */
function watchShimEnd(
  exitPath: string,
  shim: ProcessIdentity,
  mainPid: number,
  ident: string,
  ended: Promise<void>,
  ctx: ShimContext,
): Promise<Exit> {
  return new Promise<Exit>((resolve) => {
    let timer: ReturnType<Clock['setTimer']> | undefined;
    let watcher: ReturnType<typeof watch> | undefined;
    const look = (): void => {
      const exit = readShimExit(exitPath, mainPid);
      if (exit === undefined && isAlive(shim)) return;
      watcher?.close();
      timer?.cancel();
      timer = undefined;
      const settle = (): void => {
        journalLeftover(exitPath, ident, ctx.journal);
        resolve(
          exit ??
            readShimExit(exitPath, mainPid) ?? {
              kind: 'killed',
              signal: 'SIGKILL',
              lost: `its shim (pid ${shim.pid}) ended without recording how it ended`,
            },
        );
      };
      void Promise.race([ended, ctx.clock.sleep(100)]).then(settle);
    };
    try {
      watcher = watch(dirname(exitPath), (_e, file) => {
        if (file === basename(exitPath)) look();
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
