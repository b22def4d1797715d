// The host supervisor (one Node process per state dir, each unit's main process under a Perl shim):
// killed -9 and started again, it takes its units over without restarting the running ones, learns
// the exact exit status of those that ended meanwhile, and loses no output written while it was
// gone; one per state dir however many runtimes ask; AtMostOnce units still stop at the fence.

import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readlinkSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostPaths, readHostLock } from '../../src/runtime/host-supervisor-protocol.js';
import { isAlive, listPids, readProcStat } from '../../src/runtime/proc.js';
import { parseSupervisorStatus } from '../../src/runtime/records.js';
import { unitPaths } from '../../src/runtime/supervisor-protocol.js';
import {
  cleanupHosts,
  config,
  journalLines,
  newHost,
  newRuntime,
  observed,
  pidAlive,
  sh,
  step,
  unitName,
  waitFor,
  waitState,
  type TestHost,
} from './helpers.js';

test.after.always(cleanupHosts);

function hostSupervisor(host: TestHost): { pid: number; startTime: number } {
  const id = readHostLock(hostPaths(host.stateDir).lock);
  if (id === undefined || !isAlive(id)) throw new Error('no host supervisor runs');
  return id;
}

async function killHostSupervisor(host: TestHost): Promise<number> {
  const id = hostSupervisor(host);
  process.kill(id.pid, 'SIGKILL');
  await waitFor('the host supervisor gone', () => !isAlive(id));
  return id.pid;
}

const ticks = (lines: string[]): number[] =>
  lines.flatMap((l) => {
    const m = / tick (\d+)$/.exec(l);
    return m === null ? [] : [Number(m[1])];
  });

test('killed -9 and started again, the host supervisor takes its units over: none restarted, exits meanwhile reported exactly, no output lost', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const go = join(host.stateDir, 'go');
  const ticking = unitName('ticking');
  const exiting = unitName('exiting');
  const signalled = unitName('signalled');
  await runtime.start(
    config(ticking, {
      execStart: [sh('i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.02; done')],
    }),
  );
  await runtime.start(
    config(exiting, { execStart: [sh(`while [ ! -e ${go} ]; do sleep 0.05; done; echo bye; exit 7`)] }),
  );
  await runtime.start(config(signalled, { execStart: [step('/bin/sleep', '1000')] }));
  const before = await waitState(runtime, ticking, 'active', 'running');
  const exitingPid = (await waitState(runtime, exiting, 'active', 'running')).pid ?? 0;
  const signalledPid = (await waitState(runtime, signalled, 'active', 'running')).pid ?? 0;
  await waitFor('ticks in the journal', async () => ticks(await journalLines(runtime, ticking)).length > 5);
  await runtime.close(); // fleetd gone too: nothing watches while the host supervisor is away

  const dead = await killHostSupervisor(host);
  // While no host supervisor runs: one unit exits 7, one is killed by a signal, one keeps writing.
  writeFileSync(go, '');
  process.kill(signalledPid, 'SIGUSR2');
  await waitFor('both ended', () => !pidAlive(exitingPid) && !pidAlive(signalledPid));
  const journal = unitPaths(host.stateDir, ticking).journal;
  const journaledWhileAway = ticks(readFileSync(journal, 'utf8').split('\n')).length;
  await new Promise((r) => setTimeout(r, 500)); // ~25 more ticks wait in the unit's pipe
  t.true(pidAlive(before.pid ?? 0), 'the unit runs on without its host supervisor');
  t.is(
    ticks(readFileSync(journal, 'utf8').split('\n')).length,
    journaledWhileAway,
    'nothing journals while no host supervisor runs (the lines wait in the pipe)',
  );

  const events: string[] = [];
  const { runtime: again } = newRuntime(host, { supervisor: 'host', log: (e) => events.push(e) });
  await again.adopt();
  t.not(hostSupervisor(host).pid, dead, 'a new host supervisor was started');
  t.true(events.includes('runtime.host_supervisor_spawned'));
  const running = await waitState(again, ticking, 'active', 'running');
  t.is(running.pid, before.pid, 'not restarted');
  t.is(running.since, before.since);
  const exited = await waitState(again, exiting, 'failed');
  t.like(exited, { lastExit: { code: 7 }, reason: 'ExecStart=/bin/sh exited with status 7' });
  const killed = await waitState(again, signalled, 'failed');
  t.like(killed, { lastExit: { signal: 'SIGUSR2' }, reason: 'ExecStart=/bin/sleep killed by SIGUSR2' });
  t.regex((await journalLines(again, exiting)).join('\n'), /\]: bye$/m, 'its last words, written meanwhile');

  // Every tick, those written while no host supervisor ran included, in order and once.
  const last = ticks(await journalLines(again, ticking, 100_000)).at(-1) ?? 0;
  await waitFor('new ticks journaled', async () => {
    const all = ticks(await journalLines(again, ticking, 100_000));
    return (all.at(-1) ?? 0) > last + 5;
  });
  const all = ticks(await journalLines(again, ticking, 100_000));
  t.deepEqual(
    all,
    all.map((_, i) => i + 1),
    'ticks 1…n, none lost or doubled',
  );

  await again.stop(ticking);
  t.false(pidAlive(before.pid ?? 0));
  t.like(await observed(again, ticking), { active: 'inactive', sub: 'dead' });
});

test('a unit stopped while its host supervisor is dead: a new one is started, takes it over and stops it', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const unit = unitName('stop-orphan');
  const out = join(host.stateDir, 'stopped');
  await runtime.start(
    config(unit, { execStart: [step('/bin/sleep', '1000')], execStop: [sh(`echo stop > ${out}`)] }),
  );
  const running = await waitState(runtime, unit, 'active', 'running');
  await killHostSupervisor(host);
  t.like(await observed(runtime, unit), { active: 'active', pid: running.pid }, 'not reported lost');
  await runtime.stop(unit);
  t.false(pidAlive(running.pid ?? 0));
  t.is(readFileSync(out, 'utf8'), 'stop\n', 'its ExecStop ran');
  t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
});

test('one host supervisor per state dir, however many runtimes start units at once; its shims are small', async (t) => {
  const host = newHost();
  const runtimes = [0, 1, 2].map(() => newRuntime(host, { supervisor: 'host' }).runtime);
  const units = runtimes.map((_, i) => unitName(`shared-${i}`));
  await Promise.all(
    runtimes.map((r, i) =>
      r.start(config(units[i] ?? unitName('x'), { execStart: [step('/bin/sleep', '1000')] })),
    ),
  );
  const supervisors = new Set(
    units.map((u) => {
      const p = unitPaths(host.stateDir, u).status;
      const s = parseSupervisorStatus(readFileSync(p, 'utf8'), p);
      return s.ok ? s.value.supervisor.pid : 0;
    }),
  );
  t.deepEqual([...supervisors], [hostSupervisor(host).pid]);
  // Node processes with the state dir on their command line: the host supervisor, and for a moment
  // for a moment a second supervisor that lost the lock and is exiting.
  const nodes = (): number[] =>
    listPids().filter((pid) => {
      try {
        return (
          readlinkSync(`/proc/${pid}/exe`) === process.execPath &&
          readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(host.stateDir)
        );
      } catch {
        return false;
      }
    });
  const settled = await waitFor(
    'one Node process for the state dir',
    () => (nodes().length === 1 ? true : undefined),
    {
      timeoutMs: 10_000,
      intervalMs: 50,
    },
  ).catch(() => false);
  t.true(settled, `one Node process serves the state dir: the host supervisor (found ${nodes().join(', ')})`);
  // Each main process runs under a shim: its parent, which is not Node but a fork of the Perl helper,
  // named for its unit.
  for (const [i, u] of units.entries()) {
    const r = runtimes[i];
    if (r === undefined) throw new Error('no runtime');
    const o = await waitState(r, u, 'active', 'running');
    const shim = readProcStat(o.pid ?? 0)?.ppid ?? 0;
    t.regex(
      readFileSync(`/proc/${shim}/cmdline`, 'latin1'),
      new RegExp(`^fleetts-shim ${u.replace(/\./g, '\\.')}[ \\0]*$`),
    );
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${shim}/smaps_rollup`, 'utf8'))?.[1]);
    t.true(pss > 0 && pss < 2048, `shim PSS ${pss} kB`);
  }
  await Promise.all(runtimes.map((r, i) => r.stop(units[i] ?? unitName('x'))));
});

test('AtMostOnce units stop once the fence deadline passes, the others run on', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const fenced = unitName('fenced');
  const free = unitName('free');
  runtime.setFenceDeadline(60_000);
  await runtime.start(config(fenced, { atMostOnce: true, execStart: [step('/bin/sleep', '1000')] }));
  await runtime.start(config(free, { execStart: [step('/bin/sleep', '1000')] }));
  const a = await waitState(runtime, fenced, 'active', 'running');
  const b = await waitState(runtime, free, 'active', 'running');
  runtime.setFenceDeadline(0);
  const stopped = await waitState(runtime, fenced, 'inactive', 'dead');
  t.regex(stopped.reason ?? '', /^fenced:/);
  t.false(pidAlive(a.pid ?? 0));
  t.like(await observed(runtime, free), { active: 'active', pid: b.pid });
  await runtime.stop(free);
});

test('SIGTERM to the host supervisor stops every unit, then it ends', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const units = [unitName('term-a'), unitName('term-b')];
  const out = join(host.stateDir, 'stops');
  for (const u of units)
    await runtime.start(
      config(u, { execStart: [step('/bin/sleep', '1000')], execStop: [sh(`echo ${u} >> ${out}`)] }),
    );
  const pids = await Promise.all(
    units.map(async (u) => (await waitState(runtime, u, 'active', 'running')).pid ?? 0),
  );
  const sup = hostSupervisor(host);
  process.kill(sup.pid, 'SIGTERM');
  await waitFor('the host supervisor gone', () => !isAlive(sup));
  for (const u of units) t.like(await observed(runtime, u), { active: 'inactive', sub: 'dead' });
  for (const pid of pids) t.false(pidAlive(pid));
  t.deepEqual(readFileSync(out, 'utf8').trim().split('\n').sort(), [...units].sort(), 'each ExecStop ran');
});

test('with no unit left it ends by itself; the next start brings one up again', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const unit = unitName('idle');
  await runtime.start(config(unit, { execStart: [step('/bin/sleep', '1000')] }));
  await waitState(runtime, unit, 'active', 'running');
  const first = hostSupervisor(host);
  await runtime.remove(unit);
  await waitFor('the idle host supervisor gone', () => !isAlive(first), 60_000);
  t.false(existsSync(hostPaths(host.stateDir).socket), 'its socket removed');
  const again = unitName('idle-again');
  await runtime.start(config(again, { execStart: [step('/bin/sleep', '1000')] }));
  await waitState(runtime, again, 'active', 'running');
  t.not(hostSupervisor(host).pid, first.pid);
  await runtime.stop(again);
});

test('a start writes its status file three times, not once per state: start-pre at once, then start, then running', async (t) => {
  const host = newHost();
  const { runtime } = newRuntime(host, { supervisor: 'host' });
  const unit = unitName('counted');
  // The host supervisor up before the count (its first start is not the one counted).
  const warm = unitName('warm');
  await runtime.start(config(warm, { execStart: [step('/bin/sleep', '1000')] }));
  await waitState(runtime, warm, 'active', 'running');
  const dir = unitPaths(host.stateDir, unit).dir;
  mkdirSync(dir, { recursive: true });
  const events: string[] = [];
  const watcher = watch(dir, (kind, file) => {
    if (file === 'status.json') events.push(kind);
  });
  try {
    await runtime.start(config(unit, { execStart: [step('/bin/sleep', '1000')] }));
    await waitState(runtime, unit, 'active', 'running');
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    watcher.close();
  }
  t.log(`status.json events: ${events.join(', ')}`);
  // Three renames onto it (the runtime's removal of a file that is not there is none).
  t.true(events.length <= 3, `${events.length} events`);
  t.like(parseSupervisorStatus(readFileSync(unitPaths(host.stateDir, unit).status, 'utf8'), 'status'), {
    ok: true,
    value: { active: 'active', sub: 'running' },
  });
  await runtime.stop(unit);
  await runtime.stop(warm);
});
