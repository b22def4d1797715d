// Upgrading fleetd over running units: this release's process runtime adopts the units of fleetts
// 0.1.0 from the files that release's supervisors wrote (fixtures/release-0.1.0, copied from a real
// run), without restarting them; unreadable or newer records are reported and skipped.
//
// The 0.1.0 supervisor of the running unit is played by a shell that holds the unit's main process
// and, like that supervisor, writes its final status.json when told to stop (SIGTERM). Only the
// values that name a live process or a path are replaced in the fixtures; the format is as copied.

import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asUnitName } from '../../src/cluster/types.js';
import { identify } from '../../src/runtime/proc.js';
import { defaultSupervisorCommand } from '../../src/runtime/process-runtime.js';
import { parseSupervisorConfig, parseSupervisorStatus } from '../../src/runtime/records.js';
import { unitPaths } from '../../src/runtime/supervisor-protocol.js';
import {
  cleanupHosts,
  journalLines,
  newHost,
  newRuntime,
  pidAlive,
  waitState,
  type TestHost,
} from './helpers.js';

test.after.always(cleanupHosts);

const FIXTURES = new URL('./fixtures/release-0.1.0/', import.meta.url).pathname;
/** The state directory and cgroup root of the run the fixtures were copied from. */
const CAPTURED_STATE_DIR = '/tmp/fleetts-capture-kiL6Rf';
const CAPTURED_CGROUP_ROOT = 'fleetts-capture/x';
/** The running unit's supervisor and main process in that run. */
const CAPTURED_SUPERVISOR = '"supervisor":{"pid":18081,"startTime":4033457}';
const CAPTURED_MAIN = '"mainPid":18118';

const WEB = asUnitName('web@1.service');
const JOB = asUnitName('job.service');

const fixture = (path: string): string => readFileSync(join(FIXTURES, path), 'utf8');

/** A fixture file as it would be in `host`'s state directory. */
function relocated(host: TestHost, path: string): string {
  return fixture(path)
    .replaceAll(CAPTURED_STATE_DIR, host.stateDir)
    .replaceAll(CAPTURED_CGROUP_ROOT, host.cgroupRoot);
}

function install(host: TestHost, unit: string, files: Record<string, string>): void {
  const dir = unitPaths(host.stateDir, unit).dir;
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

const strays: number[] = [];
test.after.always(() => {
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/**
 * Starts the stand-in for web@1.service's 0.1.0 supervisor and writes its status.json (the fixture,
 * with this supervisor and main process). On SIGTERM it kills the main process and writes the
 * status 0.1.0's supervisor writes then (inactive/dead, done), as that supervisor did.
 */
async function startOldSupervisor(host: TestHost): Promise<{ supervisor: number; main: number }> {
  const paths = unitPaths(host.stateDir, WEB);
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'sleep 1000 & main=$!; trap \'kill $main; mv "$0.done" "$0"; exit 0\' TERM; echo $main; wait',
      paths.status,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const supervisor = child.pid ?? 0;
  strays.push(supervisor);
  const main = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`stand-in supervisor exited (${code})`)));
  });
  child.removeAllListeners('exit');
  strays.push(main);
  const self = identify(supervisor);
  if (self === undefined) throw new Error('stand-in supervisor gone');
  const running = relocated(host, `units/${WEB}/status.json`)
    .replace(CAPTURED_SUPERVISOR, `"supervisor":{"pid":${self.pid},"startTime":${self.startTime}}`)
    .replace(CAPTURED_MAIN, `"mainPid":${main}`);
  const stopped = running
    .replace('"active":"active","sub":"running"', '"active":"inactive","sub":"dead"')
    .replace('"done":false', '"done":true')
    .replace(`,"mainPid":${main}`, '');
  writeFileSync(`${paths.status}.done`, stopped);
  writeFileSync(paths.status, running);
  return { supervisor, main };
}

test("this release adopts fleetts 0.1.0's units from their files and does not restart them", async (t) => {
  const host = newHost();
  writeFileSync(join(host.stateDir, 'fence.json'), fixture('fence.json'));
  for (const unit of [WEB, JOB]) {
    install(host, unit, {
      'config.json': relocated(host, `units/${unit}/config.json`),
      'journal.log': fixture(`units/${unit}/journal.log`),
    });
  }
  install(host, JOB, { 'status.json': fixture(`units/${JOB}/status.json`) });
  const old = await startOldSupervisor(host);
  const web = unitPaths(host.stateDir, WEB);
  const configText = readFileSync(web.config, 'utf8');
  const statusText = readFileSync(web.status, 'utf8');

  const events: string[] = [];
  const { runtime } = newRuntime(host, { log: (event) => events.push(event) });
  const adopted = await runtime.adopt();
  t.deepEqual(
    adopted.map((o) => o.unit),
    [JOB, WEB],
  );
  t.deepEqual(adopted[1], {
    unit: WEB,
    hash: '655dae9f1782b4d38e3201678bf63aa7b872cd75a71f0fa5e72ac1c047d16192',
    load: 'loaded',
    active: 'active',
    sub: 'running',
    since: '2026-12-06T02:17:15.929Z',
    pid: old.main,
    atMostOnce: true,
  });
  t.like(adopted[0], {
    unit: JOB,
    active: 'failed',
    sub: 'failed',
    lastExit: { code: 7, at: '2026-12-06T02:17:17.359Z' },
    reason: 'ExecStart=/bin/sh exited with status 7',
  });
  t.false(events.includes('runtime.record_unreadable'));
  t.regex(
    (await journalLines(runtime, WEB)).join('\n'),
    /fleetts-supervisor\[18081\]: web@1\.service: Started \(main pid 18118\)/,
  );

  // The agent starts every unit assigned here; for the adopted one (same hash) that is a no-op.
  const decoded = parseSupervisorConfig(configText, web.config);
  if (!decoded.ok) throw new Error(decoded.problem.message);
  const webConfig = decoded.value.unitConfig;
  await runtime.start(webConfig);
  t.true(pidAlive(old.supervisor) && pidAlive(old.main), 'the 0.1.0 supervisor and its unit still run');
  t.is(readFileSync(web.config, 'utf8'), configText, 'config.json not rewritten');
  t.is(readFileSync(web.status, 'utf8'), statusText, 'status.json not rewritten');
  t.false(existsSync(web.supervisorLog), 'no supervisor of this release was spawned');
  t.like(
    (await runtime.list()).find((o) => o.unit === WEB),
    { active: 'active', pid: old.main },
  );

  // Stopping it goes through the old supervisor, which writes its final status.
  await runtime.stop(WEB);
  t.false(pidAlive(old.main));
  t.like(
    (await runtime.list()).find((o) => o.unit === WEB),
    { active: 'inactive', sub: 'dead' },
  );

  // Started again, it runs under this release's supervisor, from the same (0.1.0) unit config.
  runtime.setFenceDeadline(10 * 60_000);
  await runtime.start(webConfig);
  const restarted = await waitState(runtime, WEB, 'active', 'running');
  t.not(restarted.pid, old.main);
  const status = parseSupervisorStatus(readFileSync(web.status, 'utf8'), web.status);
  t.true(status.ok && status.value.v === 1 && status.value.supervisor.pid !== old.supervisor);
  await runtime.stop(WEB);
});

test('unreadable and newer records are reported with their path, and skipped; the rest is adopted', async (t) => {
  const host = newHost();
  const webConfig = relocated(host, `units/${WEB}/config.json`);
  const future = (text: string): string => JSON.stringify({ ...(JSON.parse(text) as object), v: 99 }) + '\n';
  install(host, JOB, {
    'config.json': relocated(host, `units/${JOB}/config.json`),
    'status.json': fixture(`units/${JOB}/status.json`),
  });
  install(host, 'cut.service', { 'config.json': webConfig.slice(0, 200) });
  install(host, 'garbage.service', { 'config.json': '\0\0\0garbage' });
  install(host, 'future.service', { 'config.json': future(webConfig) });
  // A readable config, and a status.json written by a newer release's supervisor.
  const newer = relocated(host, `units/${JOB}/config.json`).replaceAll(JOB, 'newer.service');
  install(host, 'newer.service', {
    'config.json': newer,
    'status.json': future(fixture(`units/${JOB}/status.json`)),
  });

  const problems: Record<string, unknown>[] = [];
  const { runtime } = newRuntime(host, {
    log: (event, fields) => {
      if (event === 'runtime.record_unreadable') problems.push(fields);
    },
  });
  const adopted = await runtime.adopt();
  t.deepEqual(
    adopted.map((o) => [o.unit, o.active]),
    [
      [JOB, 'failed'],
      ['newer.service', 'inactive'],
    ],
  );
  const problemOf = (unit: string, file: string): Record<string, unknown> | undefined =>
    problems.find((p) => p['path'] === join(host.stateDir, 'units', unit, file));
  t.regex(String(problemOf('cut.service', 'config.json')?.['reason']), /^not JSON, cut short or corrupt/);
  t.regex(String(problemOf('garbage.service', 'config.json')?.['reason']), /^not JSON/);
  t.like(problemOf('future.service', 'config.json'), {
    newer: true,
    record: 'supervisor config (config.json)',
  });
  t.regex(
    String(problemOf('future.service', 'config.json')?.['reason']),
    /format version 99, written by a newer fleetts/,
  );
  t.like(problemOf('newer.service', 'status.json'), { newer: true });
  t.is(problems.length, 4, 'each problem reported once');

  // Its supervisor may still run it: this release will not start a second one over it.
  const config = parseSupervisorConfig(newer, 'newer');
  if (!config.ok) throw new Error(config.problem.message);
  await t.throwsAsync(runtime.start(config.value.unitConfig), {
    message:
      /^cannot start newer\.service: .*status\.json: unreadable supervisor status \(status\.json\): it is format version 99/,
  });
  await runtime.list();
  t.is(problems.length, 4, 'a bad status.json is not reported again on every read');
});

test('a supervisor given an unreadable config.json exits with one line naming it', async (t) => {
  const host = newHost();
  const dir = unitPaths(host.stateDir, 'bad.service').dir;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"v":1,"unitConfig":{"kind":"proc');
  const { command, args } = defaultSupervisorCommand();
  const child = spawn(command, [...args, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise((resolve) => child.once('close', resolve));
  t.is(code, 1);
  t.is(stderr.trim().split('\n').length, 1, `one line, no stack trace: ${stderr}`);
  t.regex(
    stderr,
    new RegExp(
      `^supervisor: ${join(dir, 'config.json')}: unreadable supervisor config \\(config\\.json\\): not JSON`,
    ),
  );
});
