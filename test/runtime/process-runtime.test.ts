// The process runtime with real processes: Exec ordering and prefixes, restart policies and the
// start limit, stop timeouts, process-tree killing (cgroup and /proc scan), credentials, journal
// rotation, and adoption of units across a SIGKILL of the host process.

import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asUnitHash } from '../../src/cluster/types.js';
import type { ExecStep, ObservedUnit, ProcessUnitConfig, RestartPolicy } from '../../src/runtime/runtime.js';
import { freePort } from '../helpers/ports.js';
import { unitPaths } from '../../src/runtime/supervisor-protocol.js';
import {
  cleanupHosts,
  config,
  ignored,
  journalLines,
  newHost,
  newRuntime,
  observed,
  pidAlive,
  readStatusFile,
  readText,
  sh,
  step,
  unitName,
  waitFor,
  waitState,
} from './helpers.js';

test.after.always(cleanupHosts);

test('runs ExecStartPre → ExecStart → ExecStartPost, then ExecStop → ExecStopPost, in order', async (t) => {
  const { runtime, host } = newRuntime();
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
  t.is(readText(out), 'pre1\npre2\nstart\npost\n');
  await runtime.stop(unit);
  t.is(readText(out), 'pre1\npre2\nstart\npost\nstop\nstoppost\n');
  const o = await observed(runtime, unit);
  t.like(o, { active: 'inactive', sub: 'dead' });
  t.is(o?.pid, undefined);
  t.false(pidAlive(running.pid ?? 0));
});

const failures: {
  title: string;
  over: Partial<ProcessUnitConfig>;
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
    over: { execStartPost: [sh('exit 3')] },
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
    const { runtime, host } = newRuntime();
    const unit = unitName('fail');
    const out = join(host.stateDir, 'out');
    await runtime.start(
      config(unit, {
        execStart: [sh(`echo main >> ${out}; exec sleep 100`)],
        execStopPost: [sh(`echo stoppost >> ${out}`)],
        ...f.over,
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
  const { runtime, host } = newRuntime();
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
  t.regex(journal, /ExecStartPre=\/nope: no such file or directory/);
  t.regex(journal, /failed, ignored \(- prefix\)/);
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
    const { runtime, host } = newRuntime();
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
    const lastExit = p.ending === 'sigkill' ? { signal: 'SIGKILL' } : { code: p.ending === 'exit0' ? 0 : 1 };
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
  const { runtime, host } = newRuntime();
  const unit = unitName('restartsec');
  const out = join(host.stateDir, 'runs');
  const seen: string[] = [];
  runtime.onChange((o) => {
    if (o.unit === unit) seen.push(`${o.active}/${o.sub}`);
  });
  // Long enough for the stop below to land inside an auto-restart wait on a loaded machine.
  const restartSecMs = 1000;
  await runtime.start(
    config(unit, {
      restart: 'always',
      restartSecMs,
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
  const { runtime } = newRuntime();
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
  await waitFor('ready', async () => (await journalLines(runtime, unit)).some((l) => l.endsWith(': ready')));
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
  const { runtime, host } = newRuntime();
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

const trees: {
  tracking: 'auto' | 'proc-scan';
  killMode: ProcessUnitConfig['killMode'];
  mainDies: boolean;
  daemonDies: boolean;
}[] = [
  { tracking: 'auto', killMode: 'control-group', mainDies: true, daemonDies: true },
  { tracking: 'proc-scan', killMode: 'control-group', mainDies: true, daemonDies: true },
  { tracking: 'auto', killMode: 'mixed', mainDies: true, daemonDies: true },
  { tracking: 'proc-scan', killMode: 'mixed', mainDies: true, daemonDies: true },
  { tracking: 'auto', killMode: 'process', mainDies: true, daemonDies: false },
  { tracking: 'auto', killMode: 'none', mainDies: false, daemonDies: false },
];

for (const c of trees) {
  test(`KillMode=${c.killMode} (${c.tracking}): main ${c.mainDies ? 'killed' : 'kept'}, setsid daemon ${c.daemonDies ? 'killed' : 'kept'}`, async (t) => {
    const { runtime, host } = newRuntime(undefined, { tracking: c.tracking });
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
    const tracking = JSON.parse(readText(unitPaths(host.stateDir, unit).config)) as {
      tracking: { kind: string };
    };
    t.is(tracking.tracking.kind === 'proc-scan', c.tracking === 'proc-scan');
    t.log(`tracking: ${tracking.tracking.kind}`);
  });
}

test('passes the environment and the working directory; adds FLEETTS_INVOCATION_ID and PATH', async (t) => {
  const { runtime, host } = newRuntime();
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
  const { runtime } = newRuntime();
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
  const { runtime, host } = newRuntime();
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
    config(failing, { type: 'oneshot', execStart: [sh('exit 0'), sh('exit 4'), sh(`echo never >> ${out}`)] }),
  );
  t.like(await waitState(runtime, failing, 'failed'), { reason: 'ExecStart=/bin/sh exited with status 4' });
  t.false(readText(out).includes('never'));
});

test('start is idempotent for the same hash and replaces the unit for a new hash', async (t) => {
  const { runtime } = newRuntime();
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

test('journal: captures stdout and stderr, keeps the last lines, and stays within its rotation bound', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { journal: { maxBytes: 4096, files: 2 } });
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
  const dir = unitPaths(host.stateDir, unit).dir;
  const sizes = ['journal.log', 'journal.log.1', 'journal.log.2'].map((f) => {
    try {
      return statSync(join(dir, f)).size;
    } catch {
      return -1;
    }
  });
  t.true((sizes[0] ?? 0) > 0 && (sizes[0] ?? 0) <= 4096 && (sizes[1] ?? 0) <= 4096, sizes.join(','));
  t.is(sizes[2], -1, 'no third file');
  const last = (await journalLines(runtime, unit, 5)).map((l) => l.replace(/^\S+ /, ''));
  t.is(last.length, 5);
  t.regex(last.join('\n'), /journal-\d+\.service\[\d+\]: line 2000\n.*to stderr/);
  t.regex(last[4] ?? '', /Finished\.$|Stopped\.$/);
});

test('journal follow yields new lines as they are written and ends on abort', async (t) => {
  const { runtime } = newRuntime();
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

test('units outlive a SIGKILLed host process and a new runtime adopts them', async (t) => {
  const host = newHost();
  const unit = unitName('adopt');
  const fixture = new URL('./fixtures/adopt-host.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, host.stateDir, host.cgroupRoot, unit], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const before = await new Promise<ObservedUnit>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.includes('"running"'));
      if (line !== undefined) resolve(JSON.parse(line) as ObservedUnit);
    });
    child.once('exit', (code) => reject(new Error(`host exited early (${code})`)));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const pid = before.pid ?? 0;
  t.true(pidAlive(pid), 'unit survived its host');

  const { runtime } = newRuntime(host);
  const adopted = await runtime.adopt();
  t.is(adopted.length, 1);
  t.like(adopted[0], { unit, active: 'active', sub: 'running', pid, since: before.since });
  const tick = (lines: string[]): number =>
    Math.max(0, ...lines.map((l) => Number(/tick (\d+)$/.exec(l)?.[1] ?? 0)));
  const now = tick(await journalLines(runtime, unit, 20));
  await waitFor('output after adoption', async () => tick(await journalLines(runtime, unit, 20)) > now + 2);

  // Starting it again (same hash) must not restart it.
  await runtime.start(config(unit, { execStart: [sh('exit 0')] }));
  t.is((await observed(runtime, unit))?.pid, pid);

  const changes: string[] = [];
  runtime.onChange((o) => changes.push(o.sub));
  await runtime.stop(unit);
  t.false(pidAlive(pid));
  t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
  await waitFor('dead reported', () => changes.includes('dead'));
});

test('a supervisor that dies is reported failed, and stop cleans up after it', async (t) => {
  const { runtime, host } = newRuntime();
  const unit = unitName('supdeath');
  await runtime.start(config(unit, { execStart: [step('/bin/sleep', '100')] }));
  const running = await waitState(runtime, unit, 'active', 'running');
  const status = readStatusFile(unitPaths(host.stateDir, unit).status);
  process.kill(status?.supervisor.pid ?? 0, 'SIGKILL');
  const o = await waitState(runtime, unit, 'failed');
  t.regex(o.reason ?? '', /the supervisor \(pid \d+\) exited unexpectedly/);
  t.true(o.lost, 'a unit whose supervisor died did not end by itself (the agent may start it again)');
  await runtime.stop(unit);
  const tracking = (
    JSON.parse(readText(unitPaths(host.stateDir, unit).config)) as { tracking: { kind: string } }
  ).tracking.kind;
  // Without a cgroup, the orphaned main process cannot be found from outside its supervisor.
  // SIGKILL is delivered asynchronously: give the kernel a moment on a loaded machine.
  if (tracking !== 'proc-scan') {
    await waitFor('main process gone', () => !pidAlive(running.pid ?? 0), 5_000).catch(() => undefined);
    t.false(pidAlive(running.pid ?? 0), `main process left behind (${tracking})`);
  }
  t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
});

test('a non-executable ExecStart fails without disturbing another unit', async (t) => {
  const { runtime, host } = newRuntime();
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
  const { runtime, host } = newRuntime(undefined, { log: (event, fields) => events.push({ event, fields }) });
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
  const { runtime, host } = newRuntime();
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

/** A main process answering HTTP on `port`: 200, or 500 while `sick` exists. */
function healthServer(port: number, sick: string): ExecStep {
  const js =
    `const fs=require('fs');require('http').createServer((q,r)=>{r.statusCode=fs.existsSync(${JSON.stringify(sick)})?500:200;r.end()})` +
    `.listen(${port},'127.0.0.1')`;
  return step(process.execPath, '-e', js);
}

test('[X-Health]: a unit whose check fails Retries times in a row is restarted under Restart=on-failure', async (t) => {
  const { runtime, host } = newRuntime();
  const unit = unitName('health');
  const port = await freePort();
  const sick = join(host.stateDir, 'sick');
  await runtime.start(
    config(unit, {
      execStart: [healthServer(port, sick)],
      restart: 'on-failure',
      health: {
        check: `http://127.0.0.1:${port}/`,
        intervalMs: 200,
        timeoutMs: 1_000,
        retries: 2,
        startPeriodMs: 60_000, // a slow start (a loaded machine) is not a failure; the first pass ends it
      },
    }),
  );
  const first = await waitFor('the unit healthy', async () => {
    const o = await observed(runtime, unit);
    return o?.health === 'healthy' ? o : undefined;
  });
  writeFileSync(sick, '');
  const restarted = await waitFor('the unit restarted with a new main process', async () => {
    const o = await observed(runtime, unit);
    return o?.active === 'active' && o.pid !== undefined && o.pid !== first.pid ? o : undefined;
  });
  t.false(pidAlive(first.pid ?? 0), 'the unhealthy process was stopped');
  rmSync(sick);
  const healthy = await waitFor('the new process healthy', async () => {
    const o = await observed(runtime, unit);
    return o?.health === 'healthy' && o.pid === restarted.pid ? o : undefined;
  });
  t.is(healthy.active, 'active');
  const log = (await journalLines(runtime, unit)).join('\n');
  t.regex(log, new RegExp(`Health check http://127.0.0.1:${port}/ failed \\(2 of 2\\): HTTP 500`));
  t.regex(log, /unhealthy: health check .* failed 2 times in a row \(HTTP 500\); stopping the unit\./);
  await runtime.stop(unit);
});

test('[X-Health]: with Restart=no an unhealthy unit ends failed, saying why', async (t) => {
  const { runtime } = newRuntime();
  const unit = unitName('health-no');
  const port = await freePort();
  await runtime.start(
    config(unit, {
      // Nothing listens on the port: every check is refused.
      execStart: [step('/bin/sleep', '100')],
      health: {
        check: `tcp://127.0.0.1:${port}`,
        intervalMs: 100,
        timeoutMs: 500,
        retries: 3,
        startPeriodMs: 0,
      },
    }),
  );
  const failed = await waitState(runtime, unit, 'failed');
  t.regex(
    failed.reason ?? '',
    new RegExp(
      `^unhealthy: health check tcp://127.0.0.1:${port} failed 3 times in a row \\(ECONNREFUSED\\)$`,
    ),
  );
  t.is(failed.health, undefined, 'no verdict once the unit is not running');
});

test('[X-Health]: failures within StartPeriodSec do not count, as Docker start period', async (t) => {
  const { runtime, host } = newRuntime();
  const unit = unitName('health-start');
  const port = await freePort();
  const sick = join(host.stateDir, 'sick-start');
  writeFileSync(sick, '');
  await runtime.start(
    config(unit, {
      execStart: [healthServer(port, sick)],
      health: {
        check: `http://127.0.0.1:${port}/`,
        intervalMs: 100,
        timeoutMs: 1_000,
        retries: 1,
        startPeriodMs: 60_000,
      },
    }),
  );
  const running = await waitState(runtime, unit, 'active', 'running');
  // Many failed checks go by (the journal shows none counted), then the service recovers.
  await waitFor('checks run', async () =>
    (await journalLines(runtime, unit)).length > 0 && (await observed(runtime, unit))?.health === 'starting'
      ? true
      : undefined,
  );
  rmSync(sick);
  const healthy = await waitFor('healthy after its start period', async () => {
    const o = await observed(runtime, unit);
    return o?.health === 'healthy' ? o : undefined;
  });
  t.is(healthy.pid, running.pid, 'never restarted');
  t.notRegex((await journalLines(runtime, unit)).join('\n'), /Health check .* failed/);
  await runtime.stop(unit);
});
