// The systemd runtime's readings of systemd's state, with systemd's answers scripted: readings
// overlap, and systemctl processes end in any order on a busy host. The real systemd runs the same
// race in systemd-only.ts ('units just started are never reported inactive…'), where it showed up
// once in a CI run; here it is played out step by step.

import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import type { ObservedUnit } from '../../src/runtime/runtime.js';
import { SystemdRuntime, type CommandRunner, type RunResult } from '../../src/runtime/systemd-runtime.js';
import { config, step, unitName } from './helpers.js';

interface Held {
  readonly release: () => void;
}

/** A systemd whose `systemctl show` answers are held until released; each is read when it is asked. */
function scriptedSystemd(): {
  run: CommandRunner;
  held: Held[];
  openStart: () => void;
} {
  const loaded = new Set<string>();
  const held: Held[] = [];
  let openStart!: () => void;
  const startGate = new Promise<void>((resolve) => (openStart = resolve));
  const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
  const run: CommandRunner = async (command, args) => {
    if (command === 'busctl' && args.includes('StartTransientUnit')) {
      await startGate;
      const name = args[args.indexOf('StartTransientUnit') + 2] ?? '';
      loaded.add(name);
      return ok();
    }
    if (command === 'systemctl' && args[0] === 'show') {
      const names = args.slice(args.indexOf('--') + 1);
      // systemd answers as things are when asked; the answer reaches the runtime when released.
      const stdout = names
        .map((n) =>
          loaded.has(n)
            ? `Id=${n}\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=0\n`
            : `Id=${n}\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=0\n`,
        )
        .join('\n');
      await new Promise<void>((resolve) => held.push({ release: resolve }));
      return ok(stdout);
    }
    if (command === 'systemctl' && args[0] === 'is-system-running') return ok('running\n');
    return ok();
  };
  return { run, held, openStart };
}

test('a reading begun before a start, ending after a later reading that shows the unit, does not report it inactive', async (t) => {
  const sd = scriptedSystemd();
  const clock = new FakeClock();
  const runtime = new SystemdRuntime({
    stateDir: mkdtempSync(join(tmpdir(), 'fleetts-sd-readings-')),
    clock,
    pollMs: 3_600_000,
    run: sd.run,
  });
  t.teardown(() => runtime.close());
  const unit = unitName('burst');
  const seen: ObservedUnit[] = [];
  runtime.onChange((o) => seen.push(o));

  const started = runtime.start(config(unit, { execStart: [step('/bin/sleep', '100')] }));
  await flushMicrotasks();
  // A reader that asks again as soon as it has an answer (fleetd's agent and `list` callers).
  const first = runtime.list();
  await flushMicrotasks();
  const queued = runtime.list();
  await flushMicrotasks();
  sd.held.shift()?.release();
  await first;
  const again = runtime.list();
  await flushMicrotasks();
  // Every reading now running began before systemd had the unit.
  const stale = sd.held.splice(0);
  t.true(stale.length >= 1);

  sd.openStart();
  await started;
  const after = runtime.list();
  await flushMicrotasks();
  // Newest first: the oldest reading ends last, after readings begun once systemd had the unit.
  const order = [...stale].reverse();
  for (let i = 0; i < 50 && (order.length > 0 || sd.held.length > 0); i++) {
    const next = sd.held.length > 0 ? sd.held.shift() : order.shift();
    next?.release();
    await flushMicrotasks();
  }
  await Promise.all([queued, again, after]);

  const states = seen.filter((o) => o.unit === unit).map((o) => o.active);
  t.true(states.includes('active'), `seen: ${states.join(', ')}`);
  t.false(
    states.includes('inactive') || states.includes('failed'),
    `a unit just started was reported ${states.join(' → ')}`,
  );
  t.is((await listSettled(runtime, sd)).find((o) => o.unit === unit)?.active, 'active');
});

async function listSettled(runtime: SystemdRuntime, sd: { held: Held[] }): Promise<ObservedUnit[]> {
  const p = runtime.list();
  for (let i = 0; i < 20; i++) {
    await flushMicrotasks();
    sd.held.splice(0).forEach((h) => h.release());
  }
  return p;
}

test('a unit systemd has loaded with its start job still queued is activating, not inactive', async (t) => {
  // systemd 252 right after StartTransientUnit: loaded, inactive (dead), the start job waiting.
  let jobDone = false;
  const calls: string[] = [];
  const run: CommandRunner = (command, args) => {
    if (args[0] !== 'show')
      calls.push(
        `${command} ${args.find((a) => /^(StartTransientUnit|stop|reset-failed)$/.test(a)) ?? args[0]}`,
      );
    if (command === 'systemctl' && args[0] === 'show') {
      const n = args[args.length - 1] ?? '';
      const state = jobDone
        ? 'ActiveState=active\nSubState=running\nMainPID=4242\nJob=\n'
        : 'ActiveState=inactive\nSubState=dead\nMainPID=0\nJob=104\n';
      return Promise.resolve({
        code: 0,
        stdout: `Id=${n}\nLoadState=loaded\n${state}NRestarts=0\n`,
        stderr: '',
      });
    }
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  };
  const runtime = new SystemdRuntime({
    stateDir: mkdtempSync(join(tmpdir(), 'fleetts-sd-readings-')),
    clock: new FakeClock(),
    pollMs: 3_600_000,
    run,
  });
  t.teardown(() => runtime.close());
  const unit = unitName('queued');
  const c = config(unit, { execStart: [step('/bin/sleep', '100')] });
  await runtime.start(c);
  t.like(
    (await runtime.list()).find((o) => o.unit === unit),
    { active: 'activating', sub: 'waiting' },
  );
  // Started again while its job waits: nothing is stopped or handed to systemd a second time.
  calls.length = 0;
  await runtime.start(c);
  t.deepEqual(calls, []);
  jobDone = true;
  t.like(
    (await runtime.list()).find((o) => o.unit === unit),
    { active: 'active', sub: 'running', pid: 4242 },
  );
});
