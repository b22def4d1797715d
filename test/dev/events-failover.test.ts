// `fleetts events -f` (the real CLI process) on a real dev cluster (3 hosts, network namespaces,
// external etcd, 2 s lease) while a host is powered off: it prints the host lost, then its unit
// moved elsewhere with the reason, then the unit started there, in that order, as it happens.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan } from '../../src/dev/plan.js';
import { ROOT, runBin } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

const LEASE_TTL_MS = 2_000;
let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the dev cluster tests need root (network namespaces); run them as root');
  root = await mkdtemp(join(tmpdir(), 'fleetts-events-'));
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile: join(root, 'context.json'),
  });
  plan = (
    await dev.up({
      nodes: 3,
      etcd: 'external',
      leaseTtlMs: LEASE_TTL_MS,
      sharedPath: join(root, 'srv-shared'),
      timeoutMs: 60_000,
    })
  ).plan;
});

test.after.always(async () => {
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

/** `fleetts events -f` running as its own process; its stdout lines as they come. */
function follow(endpoint: string): { lines: string[]; stderr: () => string; child: ChildProcess } {
  const child = spawn(process.execPath, [`${ROOT}bin/fleetts.js`, 'events', '-f'], {
    cwd: root,
    env: { ...process.env, FLEETTS_ENDPOINT: endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return { lines, stderr: () => stderr, child };
}

/** A line's columns: time, kind, unit or host, details. */
const columns = (line: string): string[] => line.split(/ {2,}/);

test.serial(
  'fleetts events -f prints a host lost, then its unit moved with the reason and started elsewhere',
  async (t) => {
    if (dev === undefined || plan === undefined) return t.fail('the dev cluster did not come up');
    const hosts = plan.hosts;
    await writeFile(join(root, 'tick.unit'), '[Service]\nExecStart=/bin/sleep 100000\n');
    const first = hosts[0];
    if (first === undefined) return t.fail('no hosts');
    const env = { FLEETTS_ENDPOINT: `unix://${first.apiSocket}` };
    const started = await runBin('fleetts', ['start', 'tick.unit'], { env, cwd: root, timeoutMs: 90_000 });
    t.is(started.code, 0, started.stderr);
    const listed = await runBin('fleetts', ['list-units', '-o', 'json'], { env, cwd: root });
    const rows = JSON.parse(listed.stdout) as { unit: string; machine: string }[];
    const victim = hosts.find((h) => h.machineId === rows.find((r) => r.unit === 'tick.unit')?.machine);
    const watcher = hosts.find((h) => h !== victim);
    if (victim === undefined || watcher === undefined)
      return t.fail(`tick.unit is not placed: ${listed.stdout}`);

    const events = follow(`unix://${watcher.apiSocket}`);
    t.teardown(() => events.child.kill('SIGKILL'));
    await waitFor(
      'the state as events',
      () => events.lines.some((l) => /unit\.started +tick\.unit .*\(state\)$/.test(l)),
      { timeoutMs: 60_000 },
    );
    const before = events.lines.length;
    const offAt = Date.now();
    await dev.powerOff(victim.name);
    const seen = new Map<string, number>();
    const find = (kind: string, subject: string, detail: RegExp): number => {
      const i = events.lines.findIndex(
        (l, at) =>
          at >= before &&
          columns(l)[1] === kind &&
          columns(l)[2] === subject &&
          detail.test(columns(l)[3] ?? ''),
      );
      if (i >= 0 && !seen.has(kind)) seen.set(kind, Date.now() - offAt);
      return i;
    };
    const lost = () => find('host.lost', victim.machineId, /tick\.unit/);
    const moved = () =>
      find(
        'unit.moved',
        'tick.unit',
        new RegExp(`^${victim.machineId} → \\S+: machine ${victim.machineId} is gone \\(lease expired\\)$`),
      );
    const restarted = () => find('unit.started', 'tick.unit', /^on (?!.*\(state\))/);
    await waitFor(
      'host lost, unit moved and started elsewhere',
      () => lost() >= 0 && moved() >= 0 && restarted() >= 0,
      { timeoutMs: 90_000, intervalMs: 50 },
    ).catch((err: unknown) => {
      t.log(events.lines.join('\n'), events.stderr());
      throw err;
    });
    t.true(lost() < moved() && moved() < restarted(), events.lines.slice(before).join('\n'));
    const to = /→ (\S+):/.exec(columns(events.lines[moved()] ?? '')[3] ?? '')?.[1];
    t.not(to, victim.machineId);
    t.regex(
      columns(events.lines[restarted()] ?? '')[3] ?? '',
      new RegExp(`^on ${to ?? '?'} \\(pid \\d+\\)$`),
    );
    t.is(events.child.exitCode, null, 'still following');
    t.log(events.lines.slice(before).join('\n'));
    t.log(
      `printed after the power-off (lease ${LEASE_TTL_MS} ms): ${[...seen].map(([k, ms]) => `${k} ${ms} ms`).join(', ')}`,
    );
  },
);
