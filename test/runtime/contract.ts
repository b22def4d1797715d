// The runtime contract: what every runtime of `[Service]` units (ProcessUnitConfig) must do, run
// against real processes by each runtime's own test: the process runtime on this machine
// (process-runtime.test.ts), the systemd runtime inside a container with systemd as PID 1
// (systemd-runtime.test.ts, through fixtures/systemd-contract.ts). Exec ordering and prefixes,
// failures with their reasons, Restart= and the start limit, stop signals and timeouts, KillMode=,
// environment, credentials, oneshot units, idempotent start, journal, adoption by a new runtime.

import type { ExecutionContext, TestFn } from 'ava';
import { mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { asUnitHash, type UnitName } from '../../src/cluster/types.js';
import type { ObservedUnit, ProcessUnitConfig, RestartPolicy, Runtime } from '../../src/runtime/runtime.js';
import {
  config,
  ignored,
  journalLines,
  observed,
  pidAlive,
  readText,
  sh,
  step,
  unitName,
  waitFor,
  waitState,
} from './helpers.js';

export interface ContractHost {
  /** A scratch directory the units may write to (and a runtime's state). */
  readonly stateDir: string;
}

export type RuntimeLog = (event: string, fields: Record<string, unknown>) => void;

export interface RuntimeHarness {
  /** A runtime over a fresh host, or over `host` (a restarted fleetd: it adopts what the last one left). */
  newRuntime(options?: { host?: ContractHost; log?: RuntimeLog }): {
    runtime: Runtime<ProcessUnitConfig>;
    host: ContractHost;
  };
  /** The journal's words for the ignored failures of the `-` prefix test (a missing /nope among them). */
  readonly ignoredStepJournal: readonly RegExp[];
  /** A journal line saying that a oneshot unit ended well. */
  readonly finishedJournal: RegExp;
  /** More checks after a KillMode= test (the process runtime: how it tracked the processes). */
  afterKillTree?(t: ExecutionContext, host: ContractHost, unit: UnitName, row: KillTree): void;
}

export interface KillTree {
  readonly killMode: ProcessUnitConfig['killMode'];
  readonly mainDies: boolean;
  readonly daemonDies: boolean;
}

export const KILL_TREES: readonly KillTree[] = [
  { killMode: 'control-group', mainDies: true, daemonDies: true },
  { killMode: 'mixed', mainDies: true, daemonDies: true },
  { killMode: 'process', mainDies: true, daemonDies: false },
  { killMode: 'none', mainDies: false, daemonDies: false },
];

/** A double-forked daemon under `c.killMode`: which of the main process and the daemon a stop kills. */
export function killTreeTest(test: TestFn, h: RuntimeHarness, c: KillTree, label = ''): void {
  test(`KillMode=${c.killMode}${label}: main ${c.mainDies ? 'killed' : 'kept'}, setsid daemon ${c.daemonDies ? 'killed' : 'kept'}`, async (t) => {
    const { runtime, host } = h.newRuntime();
    const unit = unitName(`tree-${c.killMode}`);
    const pidFile = join(host.stateDir, 'daemon.pid');
    await runtime.start(
      config(unit, {
        killMode: c.killMode,
        timeoutStopMs: 3000,
        // The grandchild leaves the session and its parent dies: a classic double-fork daemon.
        execStart: [
          sh(`sh -c 'setsid sh -c "echo \\$\\$ > ${pidFile}; exec sleep 1000" &'; exec sleep 1000`),
        ],
      }),
    );
    const running = await waitState(runtime, unit, 'active', 'running');
    const daemon = Number(await waitFor('daemon pid', () => readText(pidFile).trim() || undefined));
    t.true(pidAlive(daemon));
    const mainPid = running.pid ?? 0;
    t.not(readText(`/proc/${daemon}/stat`).split(' ')[5], String(mainPid), 'daemon left the session');
    await runtime.stop(unit);
    await waitFor(
      'signals to land',
      () => pidAlive(mainPid) !== c.mainDies && pidAlive(daemon) !== c.daemonDies,
    ).catch(() => undefined);
    t.is(pidAlive(mainPid), !c.mainDies, 'main process');
    t.is(pidAlive(daemon), !c.daemonDies, 'daemon');
    for (const pid of [mainPid, daemon]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    h.afterKillTree?.(t, host, unit, c);
  });
}

/** Registers every contract test with `test`. */
export function runtimeContract(test: TestFn, h: RuntimeHarness): void {
  test('runs ExecStartPre → ExecStart → ExecStartPost, then ExecStop → ExecStopPost, in order', async (t) => {
    const { runtime, host } = h.newRuntime();
    const out = join(host.stateDir, 'order');
    const unit = unitName('order');
    const append = (word: string) => sh(`echo ${word} >> ${out}`);
    await runtime.start(
      config(unit, {
        execStartPre: [append('pre1'), append('pre2')],
        execStart: [sh(`echo start >> ${out}; exec sleep 100`)],
        execStartPost: [append('post')],
        execStop: [append('stop')],
        execStopPost: [append('stoppost')],
      }),
    );
    const running = await waitState(runtime, unit, 'active', 'running');
    t.true(typeof running.pid === 'number' && pidAlive(running.pid));
    // Type=simple: ExecStartPost runs once the main process is forked (systemd.service(5)), so the
    // main process's first line and ExecStartPost's may come in either order.
    // The main process may not have written its line yet when systemd says running.
    const lines = (): string[] => {
      const l = readText(out).split('\n');
      return [...l.slice(0, 2), ...l.slice(2, 4).sort(), ...l.slice(4)];
    };
    await waitFor('both lines after ExecStartPre', () => readText(out).split('\n').length >= 5, 10_000).catch(
      () => undefined,
    );
    t.deepEqual(lines(), ['pre1', 'pre2', 'post', 'start', '']);
    await runtime.stop(unit);
    t.deepEqual(lines(), ['pre1', 'pre2', 'post', 'start', 'stop', 'stoppost', '']);
    const o = await observed(runtime, unit);
    t.like(o, { active: 'inactive', sub: 'dead' });
    t.is(o?.pid, undefined);
    t.false(pidAlive(running.pid ?? 0));
  });

  const failures: {
    title: string;
    /** The unit's settings; `out` is the file its lines append to. */
    over: Partial<ProcessUnitConfig> | ((out: string) => Partial<ProcessUnitConfig>);
    reason: string;
    lastExit?: ObservedUnit['lastExit'] extends infer E ? Partial<NonNullable<E>> : never;
    /** ExecStopPost fails the same way when the unit's credentials or directory are the problem. */
    stopPostFails?: true;
    mainRuns?: true;
  }[] = [
    {
      title: 'ExecStartPre failing',
      over: { execStartPre: [step('/bin/false')] },
      reason: 'ExecStartPre=/bin/false exited with status 1',
      lastExit: { code: 1 },
    },
    {
      title: 'ExecStart not found',
      over: { execStart: [step('/nope')] },
      reason: 'ExecStart=/nope: no such file or directory',
      lastExit: { code: 203 },
    },
    {
      title: 'ExecStart not on PATH',
      over: { execStart: [step('no-such-program-here')] },
      reason: 'ExecStart=no-such-program-here: not found on PATH',
    },
    {
      title: 'ExecStart a directory',
      over: { execStart: [step('/tmp')] },
      reason: 'ExecStart=/tmp: is a directory',
    },
    {
      title: 'ExecStartPost failing',
      // Once the main process has written its line (ExecStartPost may run before it does).
      over: (out) => ({
        execStartPost: [sh(`while ! grep -q main ${out}; do sleep 0.02; done; exit 3`)],
      }),
      reason: 'ExecStartPost=/bin/sh exited with status 3',
      lastExit: { code: 3 },
      mainRuns: true,
    },
    {
      title: 'ExecStartPre timing out',
      over: { execStartPre: [step('/bin/sleep', '30')], timeoutStartMs: 300 },
      reason: 'ExecStartPre=/bin/sleep timed out after 300 ms',
    },
    {
      title: 'a missing WorkingDirectory',
      over: { workingDirectory: { path: '/no/such/dir', optional: false } },
      reason: 'WorkingDirectory=/no/such/dir: no such directory',
      lastExit: { code: 200 },
      stopPostFails: true,
    },
    {
      title: 'an unknown User',
      over: { user: 'no-such-user-fleetts' },
      reason: 'User=no-such-user-fleetts: no such user in /etc/passwd',
      lastExit: { code: 217 },
      stopPostFails: true,
    },
  ];

  for (const f of failures) {
    test(`a unit with ${f.title} ends failed with a reason`, async (t) => {
      const { runtime, host } = h.newRuntime();
      const unit = unitName('fail');
      const out = join(host.stateDir, 'out');
      await runtime.start(
        config(unit, {
          execStart: [sh(`echo main >> ${out}; exec sleep 100`)],
          execStopPost: [sh(`echo stoppost >> ${out}`)],
          ...(typeof f.over === 'function' ? f.over(out) : f.over),
        }),
      );
      const o = await waitState(runtime, unit, 'failed', 'failed');
      t.is(o.reason, f.reason);
      if (f.lastExit !== undefined) t.like(o.lastExit, f.lastExit);
      t.is(readText(out).endsWith('stoppost\n'), f.stopPostFails !== true);
      t.is(readText(out).includes('main'), f.mainRuns === true);
      t.is(o.pid, undefined);
    });
  }

  test('a `-` prefix ignores a failing, missing or timed-out step', async (t) => {
    const { runtime, host } = h.newRuntime();
    const unit = unitName('ignore');
    const out = join(host.stateDir, 'out');
    await runtime.start(
      config(unit, {
        execStartPre: [ignored('/bin/false'), ignored('/nope'), sh(`echo pre >> ${out}`)],
        execStart: [sh(`echo main >> ${out}; exec sleep 100`)],
        execStartPost: [ignored('/bin/sh', '-c', 'exit 7')],
      }),
    );
    await waitState(runtime, unit, 'active', 'running');
    t.is(readText(out), 'pre\nmain\n');
    const journal = (await journalLines(runtime, unit)).join('\n');
    for (const re of h.ignoredStepJournal) t.regex(journal, re);
    await runtime.stop(unit);
  });

  type Ending = 'exit0' | 'exit1' | 'sigkill';
  const endings: Record<Ending, string> = { exit0: 'exit 0', exit1: 'exit 1', sigkill: 'kill -9 $$' };
  const policies: { restart: RestartPolicy; ending: Ending; restarts: boolean }[] = [
    { restart: 'no', ending: 'exit0', restarts: false },
    { restart: 'no', ending: 'exit1', restarts: false },
    { restart: 'always', ending: 'exit0', restarts: true },
    { restart: 'always', ending: 'sigkill', restarts: true },
    { restart: 'on-success', ending: 'exit0', restarts: true },
    { restart: 'on-success', ending: 'exit1', restarts: false },
    { restart: 'on-failure', ending: 'exit0', restarts: false },
    { restart: 'on-failure', ending: 'exit1', restarts: true },
    { restart: 'on-failure', ending: 'sigkill', restarts: true },
    { restart: 'on-abnormal', ending: 'exit1', restarts: false },
    { restart: 'on-abnormal', ending: 'sigkill', restarts: true },
    { restart: 'on-abort', ending: 'exit1', restarts: false },
    { restart: 'on-abort', ending: 'sigkill', restarts: true },
  ];

  for (const p of policies) {
    test(`Restart=${p.restart} after ${p.ending}: ${p.restarts ? 'restarts until start-limit-hit' : 'stays down'}`, async (t) => {
      const { runtime, host } = h.newRuntime();
      const unit = unitName(`restart-${p.restart}`);
      const out = join(host.stateDir, 'runs');
      await runtime.start(
        config(unit, {
          restart: p.restart,
          restartSecMs: 150,
          startLimitBurst: 3,
          startLimitIntervalMs: 60_000,
          execStart: [sh(`echo run >> ${out}; ${endings[p.ending]}`)],
        }),
      );
      const failed = p.restarts || p.ending !== 'exit0';
      const o = await waitState(runtime, unit, failed ? 'failed' : 'inactive');
      const lastExit =
        p.ending === 'sigkill' ? { signal: 'SIGKILL' } : { code: p.ending === 'exit0' ? 0 : 1 };
      t.like(o.lastExit, lastExit);
      if (p.restarts) {
        t.is(readText(out), 'run\nrun\nrun\n');
        t.like(o, { sub: 'failed', reason: 'start-limit-hit' });
        t.regex((await journalLines(runtime, unit)).join('\n'), /Start request repeated too quickly/);
      } else {
        t.is(readText(out), 'run\n');
        if (failed) {
          t.is(
            o.reason,
            p.ending === 'sigkill'
              ? 'ExecStart=/bin/sh killed by SIGKILL'
              : 'ExecStart=/bin/sh exited with status 1',
          );
        } else t.like(o, { sub: 'dead' });
      }
    });
  }

  test('RestartSec spaces restarts and auto-restart is reported; stop during auto-restart ends dead', async (t) => {
    const { runtime, host } = h.newRuntime();
    const unit = unitName('restartsec');
    const out = join(host.stateDir, 'runs');
    const seen: string[] = [];
    runtime.onChange((o) => {
      if (o.unit === unit) seen.push(`${o.active}/${o.sub}`);
    });
    // Long enough for the stop below to land inside an auto-restart wait on a loaded machine, and
    // for a runtime that polls its state (systemd) to see one; the start limit leaves many waits.
    const restartSecMs = 1500;
    await runtime.start(
      config(unit, {
        restart: 'always',
        restartSecMs,
        startLimitBurst: 20,
        startLimitIntervalMs: 120_000,
        execStart: [sh(`date +%s%N >> ${out}; exit 1`)],
      }),
    );
    await waitFor('two runs', () => readText(out).trim().split('\n').length >= 2);
    const [a, b] = readText(out).trim().split('\n').map(Number);
    t.true((b ?? 0) - (a ?? 0) >= restartSecMs * 1e6, `runs ${a} and ${b} less than RestartSec apart`);
    // Stopped as soon as the next auto-restart wait is reported (polling for it could miss every
    // window until the start limit ends the restarts).
    await new Promise<void>((resolve) => {
      const off = runtime.onChange((o) => {
        if (o.unit === unit && o.sub === 'auto-restart') {
          off();
          resolve();
        }
      });
    });
    await runtime.stop(unit);
    t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
    t.true(seen.includes('activating/auto-restart'));
  });

  test('stop escalates to SIGKILL after TimeoutStopSec when the process ignores SIGTERM', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('trap');
    const subs: string[] = [];
    runtime.onChange((o) => {
      if (o.unit === unit) subs.push(o.sub);
    });
    await runtime.start(
      config(unit, {
        timeoutStopMs: 600,
        execStart: [sh(`trap '' TERM; echo ready; while :; do sleep 0.05; done`)],
      }),
    );
    const running = await waitState(runtime, unit, 'active', 'running');
    await waitFor('ready', async () =>
      (await journalLines(runtime, unit)).some((l) => l.endsWith(': ready')),
    );
    const began = Date.now();
    await runtime.stop(unit);
    t.true(Date.now() - began >= 600, 'stopped before the timeout');
    t.false(pidAlive(running.pid ?? 0));
    t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
    // The supervisor's journal is the record of the escalation (status events may coalesce under load).
    t.regex((await journalLines(runtime, unit)).join('\n'), /State 'stop-sigterm' timed out/);
    t.true(subs.length > 0);
  });

  test('KillSignal= is the signal sent on stop', async (t) => {
    const { runtime, host } = h.newRuntime();
    const unit = unitName('killsignal');
    const out = join(host.stateDir, 'sig');
    await runtime.start(
      config(unit, {
        killSignal: 'SIGUSR1',
        execStart: [sh(`trap 'echo usr1 > ${out}; exit 0' USR1; trap '' TERM; while :; do sleep 0.05; done`)],
      }),
    );
    await waitState(runtime, unit, 'active', 'running');
    await runtime.stop(unit);
    t.is(readText(out), 'usr1\n');
  });

  for (const c of KILL_TREES) killTreeTest(test, h, c);

  test('passes the environment and the working directory; adds FLEETTS_INVOCATION_ID and PATH', async (t) => {
    const { runtime, host } = h.newRuntime();
    const unit = unitName('env');
    const dir = join(host.stateDir, 'work dir');
    mkdirSync(dir);
    await runtime.start(
      config(unit, {
        type: 'oneshot',
        env: { A: 'one', B: 'two words' },
        workingDirectory: { path: dir, optional: false },
        execStart: [sh('echo "$A|$B|$(pwd)|${FLEETTS_INVOCATION_ID:+set}|$PATH" > out')],
      }),
    );
    await waitState(runtime, unit, 'inactive', 'dead');
    t.is(
      readText(join(dir, 'out')),
      `one|two words|${dir}|set|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n`,
    );
  });

  test('User=nobody runs the unit as nobody; a privileged (+) step stays root', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('user');
    await runtime.start(
      config(unit, {
        type: 'oneshot',
        user: 'nobody',
        execStartPre: [{ ...sh('echo "pre uid=$(id -u)"'), privileged: true }],
        execStart: [sh('echo "main uid=$(id -u) gid=$(id -g)"')],
      }),
    );
    await waitState(runtime, unit, 'inactive', 'dead');
    const lines = (await journalLines(runtime, unit)).map((l) => l.replace(/^\S+ \S+: /, ''));
    t.true(lines.includes('pre uid=0'), lines.join('\n'));
    t.true(lines.includes('main uid=65534 gid=65534'), lines.join('\n'));
  });

  test('Type=oneshot: ExecStart lines run in order; RemainAfterExit keeps it active (exited) until stop', async (t) => {
    const { runtime, host } = h.newRuntime();
    const out = join(host.stateDir, 'out');
    const remain = unitName('oneshot-remain');
    await runtime.start(
      config(remain, {
        type: 'oneshot',
        remainAfterExit: true,
        execStart: [sh(`echo one >> ${out}`), sh(`echo two >> ${out}`)],
        execStop: [sh(`echo stop >> ${out}`)],
      }),
    );
    const o = await waitState(runtime, remain, 'active', 'exited');
    t.is(o.pid, undefined);
    t.is(readText(out), 'one\ntwo\n');
    await runtime.stop(remain);
    t.is(readText(out), 'one\ntwo\nstop\n');
    t.like(await observed(runtime, remain), { active: 'inactive', sub: 'dead' });

    const gone = unitName('oneshot');
    await runtime.start(config(gone, { type: 'oneshot', execStart: [sh('exit 0')] }));
    t.like(await waitState(runtime, gone, 'inactive', 'dead'), { lastExit: undefined });

    const failing = unitName('oneshot-fail');
    await runtime.start(
      config(failing, {
        type: 'oneshot',
        execStart: [sh('exit 0'), sh('exit 4'), sh(`echo never >> ${out}`)],
      }),
    );
    t.like(await waitState(runtime, failing, 'failed'), { reason: 'ExecStart=/bin/sh exited with status 4' });
    t.false(readText(out).includes('never'));
  });

  test('start is idempotent for the same hash and replaces the unit for a new hash', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('idem');
    const c = config(unit, { execStart: [step('/bin/sleep', '100')] });
    await runtime.start(c);
    const first = await waitState(runtime, unit, 'active', 'running');
    await runtime.start(c);
    t.is((await observed(runtime, unit))?.pid, first.pid);
    await runtime.start({ ...c, hash: asUnitHash('h2') });
    const second = await waitState(runtime, unit, 'active', 'running');
    t.is(second.hash, asUnitHash('h2'));
    t.not(second.pid, first.pid);
    t.false(pidAlive(first.pid ?? 0));
    await runtime.remove(unit);
    t.is(await observed(runtime, unit), undefined);
    t.false(pidAlive(second.pid ?? 0));
    t.throws(() => runtime.journal(unit), { message: /not known/ });
  });

  test('journal follow yields new lines as they are written and ends on abort', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('follow');
    await runtime.start(
      config(unit, { execStart: [sh('i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done')] }),
    );
    await waitState(runtime, unit, 'active', 'running');
    const ac = new AbortController();
    const got: string[] = [];
    // Lines that arrived in the same chunk (a loaded machine reads late, many at once) may still be
    // yielded after the abort: stop reading at 5.
    for await (const line of runtime.journal(unit, { lines: 0, follow: true, signal: ac.signal })) {
      got.push(line);
      if (got.length === 5) {
        ac.abort();
        break;
      }
    }
    const ticks = got.map((l) => Number(/tick (\d+)$/.exec(l)?.[1]));
    t.is(ticks.length, 5);
    t.deepEqual(
      ticks,
      ticks.map((_, i) => (ticks[0] ?? 0) + i),
      'consecutive, none lost',
    );
    await runtime.stop(unit);
  });

  test('a non-executable ExecStart fails without disturbing another unit', async (t) => {
    const { runtime, host } = h.newRuntime();
    const script = join(host.stateDir, 'noexec.sh');
    writeFileSync(script, '#!/bin/sh\necho hi\n');
    chmodSync(script, 0o644);
    const good = unitName('good');
    const bad = unitName('bad');
    await runtime.start(config(good, { execStart: [step('/bin/sleep', '100')] }));
    const before = await waitState(runtime, good, 'active', 'running');
    await runtime.start(config(bad, { execStart: [step(script)] }));
    const o = await waitState(runtime, bad, 'failed', 'failed');
    t.is(o.reason, `ExecStart=${script}: permission denied`);
    t.like(await observed(runtime, good), { active: 'active', sub: 'running', pid: before.pid });
    await runtime.stop(good);
  });

  test('Restart= restarts and the final failure are reported as runtime events (fleetd logs and counts them)', async (t) => {
    const events: { event: string; fields: Record<string, unknown> }[] = [];
    const { runtime, host } = h.newRuntime({ log: (event, fields) => events.push({ event, fields }) });
    const unit = unitName('restart-events');
    const out = join(host.stateDir, 'runs');
    await runtime.start(
      config(unit, {
        restart: 'on-failure',
        restartSecMs: 150,
        startLimitBurst: 3,
        startLimitIntervalMs: 60_000,
        execStart: [sh(`echo run >> ${out}; exit 3`)],
      }),
    );
    await waitState(runtime, unit, 'failed');
    t.is(readText(out), 'run\nrun\nrun\n');
    const restarted = events.filter((e) => e.event === 'runtime.unit_restarted');
    t.is(
      restarted.reduce((n, e) => n + (e.fields['count'] as number), 0),
      3,
      "two restarts ran and a third was refused by the start limit (systemd's NRestarts counts it too), however the status changes were coalesced",
    );
    // waitState reads the status file; the event comes from the runtime noticing the change, which
    // can be later on a loaded machine (a fresh-clone run failed here).
    const failed = await waitFor('the failure reported as an event', () => {
      const f = events.filter((e) => e.event === 'runtime.unit_failed');
      return f.length > 0 ? f : undefined;
    });
    t.is(failed.length, 1);
    t.like(failed[0]?.fields, { unit, reason: 'start-limit-hit' });
  });

  test('ExecStop= gets the main process as ${MAINPID} in its words and $MAINPID in its environment', async (t) => {
    const { runtime, host } = h.newRuntime();
    const out = join(host.stateDir, 'mainpid');
    const unit = unitName('mainpid');
    await runtime.start(
      config(unit, {
        execStart: [step('/bin/sleep', '100')],
        execStop: [
          {
            ...step('/bin/sh', '-c', `echo "$0 $MAINPID" > ${out}; kill "$0"`, '${MAINPID}'),
            expandAtLaunch: true,
          },
        ],
      }),
    );
    const running = await waitState(runtime, unit, 'active', 'running');
    await runtime.stop(unit);
    t.is(readText(out), `${running.pid} ${running.pid}\n`);
    t.false(pidAlive(running.pid ?? 0));
  });

  test('journal: captures stdout and stderr and keeps the last lines', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('journal');
    await runtime.start(
      config(unit, {
        type: 'oneshot',
        execStart: [
          sh('i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo "line $i"; done; echo "to stderr" >&2'),
        ],
      }),
    );
    await waitState(runtime, unit, 'inactive', 'dead');
    // The unit's own output reaches systemd's journal after systemd's lines about its end.
    const last = await waitFor(
      'the last lines',
      async () => {
        const got = (await journalLines(runtime, unit, 5)).map((l) => l.replace(/^\S+ /, ''));
        return got.some((l) => l.endsWith('to stderr')) ? got : undefined;
      },
      10_000,
    );
    t.is(last.length, 5);
    t.regex(last.join('\n'), /journal-\d+\.service\[\d+\]: line 2000\n.*to stderr/);
    t.regex((await journalLines(runtime, unit, 3000)).join('\n'), h.finishedJournal);
  });

  test('a new runtime over the same host adopts a running unit without restarting it', async (t) => {
    const first = h.newRuntime();
    const unit = unitName('adopt');
    const c = config(unit, {
      execStart: [sh('i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done')],
    });
    await first.runtime.start(c);
    const before = await waitState(first.runtime, unit, 'active', 'running');
    await first.runtime.close();
    t.true(pidAlive(before.pid ?? 0), 'the unit outlives its runtime');

    const { runtime } = h.newRuntime({ host: first.host });
    const adopted = await runtime.adopt();
    t.is(adopted.length, 1);
    t.like(adopted[0], {
      unit,
      hash: c.hash,
      active: 'active',
      sub: 'running',
      pid: before.pid,
      since: before.since,
    });
    const tick = (lines: string[]): number =>
      Math.max(0, ...lines.map((l) => Number(/tick (\d+)$/.exec(l)?.[1] ?? 0)));
    const now = tick(await journalLines(runtime, unit, 20));
    await waitFor('output after adoption', async () => tick(await journalLines(runtime, unit, 20)) > now + 2);
    // Starting it again (same hash) must not restart it.
    await runtime.start(c);
    t.is((await observed(runtime, unit))?.pid, before.pid);
    const changes: string[] = [];
    runtime.onChange((o) => changes.push(o.sub));
    await runtime.stop(unit);
    t.false(pidAlive(before.pid ?? 0));
    t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
    await waitFor('dead reported', () => changes.includes('dead'));
  });

  test('a new runtime adopts a unit that ended while none watched it, and its exit', async (t) => {
    const first = h.newRuntime();
    const unit = unitName('adopt-ended');
    const flag = join(first.host.stateDir, 'go');
    await first.runtime.start(
      config(unit, { execStart: [sh(`while [ ! -e ${flag} ]; do sleep 0.05; done; exit 3`)] }),
    );
    const before = await waitState(first.runtime, unit, 'active', 'running');
    await first.runtime.close();
    writeFileSync(flag, '');
    await waitFor('the unit to end', () => !pidAlive(before.pid ?? 0));
    const { runtime } = h.newRuntime({ host: first.host });
    const adopted = await runtime.adopt();
    t.is(adopted.length, 1);
    await waitState(runtime, unit, 'failed');
    t.like(await observed(runtime, unit), {
      active: 'failed',
      lastExit: { code: 3 },
      reason: 'ExecStart=/bin/sh exited with status 3',
    });
    await runtime.remove(unit);
    t.is(await observed(runtime, unit), undefined);
  });
}
