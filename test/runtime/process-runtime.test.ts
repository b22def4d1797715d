// The process runtime with real processes: the runtime contract (contract.ts: Exec ordering and
// prefixes, restart policies and the start limit, stop timeouts, KillMode=, credentials, journal,
// adoption), and what only this runtime has: process-tree tracking without a cgroup (/proc scan),
// journal rotation, adoption across a SIGKILL of the host process, supervisors that die, [X-Health].
// Run against the host supervisor (helpers' default); process-runtime-per-unit.test.ts runs it
// against per-unit supervisors.

import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostMonotonicMs } from '../../src/runtime/fence.js';
import { join } from 'node:path';
import type { ExecStep, ObservedUnit } from '../../src/runtime/runtime.js';
import { freePort } from '../helpers/ports.js';
import { unitPaths } from '../../src/runtime/supervisor-protocol.js';
import { KILL_TREES, killTreeTest, runtimeContract, type RuntimeHarness } from './contract.js';
import {
  cleanupHosts,
  config,
  journalLines,
  newHost,
  newRuntime,
  observed,
  pidAlive,
  readStatusFile,
  readText,
  sh,
  step,
  supervisorMode,
  unitName,
  waitFor,
  waitState,
  type TestHost,
} from './helpers.js';

test.after.always(cleanupHosts);

/** How each runtime was told to track a unit's processes, checked after the KillMode= tests. */
function trackingCheck(expect: 'cgroup-or-auto' | 'proc-scan'): NonNullable<RuntimeHarness['afterKillTree']> {
  return (t, host, unit) => {
    const tracking = JSON.parse(readText(unitPaths(host.stateDir, unit).config)) as {
      tracking: { kind: string };
    };
    t.is(tracking.tracking.kind === 'proc-scan', expect === 'proc-scan');
    t.log(`tracking: ${tracking.tracking.kind}`);
  };
}

const harness: RuntimeHarness = {
  newRuntime: (options = {}) =>
    newRuntime(options.host as TestHost | undefined, options.log === undefined ? {} : { log: options.log }),
  ignoredStepJournal: [/ExecStartPre=\/nope: no such file or directory/, /failed, ignored \(- prefix\)/],
  finishedJournal: /Finished\.$|Stopped\.$/,
  afterKillTree: trackingCheck('cgroup-or-auto'),
};

runtimeContract(test, harness);

// Without a cgroup (a host without cgroup v2 delegation), the /proc scan must find the same trees.
const procScan: RuntimeHarness = {
  ...harness,
  newRuntime: (options = {}) => newRuntime(options.host as TestHost | undefined, { tracking: 'proc-scan' }),
  afterKillTree: trackingCheck('proc-scan'),
};
for (const c of KILL_TREES.filter((k) => k.killMode === 'control-group' || k.killMode === 'mixed'))
  killTreeTest(test, procScan, c, ' (proc-scan)');

test('journal: stays within its rotation bound', async (t) => {
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

test('units outlive a SIGKILLed host process and a new runtime adopts them', async (t) => {
  const host = newHost();
  const unit = unitName('adopt');
  const fixture = new URL('./fixtures/adopt-host.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fixture, host.stateDir, host.cgroupRoot, unit, supervisorMode()],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
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

// The host supervisor's counterpart (started again, it takes the unit over): host-supervisor.test.ts.
if (supervisorMode() === 'per-unit') {
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
}

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

test('fence.json is written only while an AtMostOnce unit may read it, and holds the latest deadline when one starts', async (t) => {
  const { runtime, host } = newRuntime();
  const fence = join(host.stateDir, 'fence.json');
  const plain = unitName('plain');
  await runtime.start(config(plain, { execStart: [step('/bin/sleep', '100')] }));
  await waitState(runtime, plain, 'active', 'running');
  runtime.setFenceDeadline(60_000);
  runtime.setFenceDeadline(120_000);
  t.false(existsSync(fence), 'no AtMostOnce unit: nothing reads the deadline');
  const before = hostMonotonicMs();
  const amo = unitName('amo');
  await runtime.start({ ...config(amo, { execStart: [step('/bin/sleep', '100')] }), atMostOnce: true });
  const written = (JSON.parse(readText(fence)) as { until: number }).until;
  t.true(
    written >= before + 119_000 && written <= hostMonotonicMs() + 120_000,
    `until ${written - before} ms ahead`,
  );
  await waitState(runtime, amo, 'active', 'running');
  // While it runs, every move of the deadline is written (its supervisor stops it at the deadline).
  runtime.setFenceDeadline(30_000);
  const moved = (JSON.parse(readText(fence)) as { until: number }).until;
  t.true(moved < written - 60_000);
  await runtime.remove(amo);
  await runtime.remove(plain);
});
