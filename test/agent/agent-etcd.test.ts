// The agent with its real parts: a real etcd, the real ProcessRuntime (detached supervisors, real
// processes), the system clock. Fencing is tested by killing etcd and by "killing" fleetd.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Agent, TRANSIENT_REPORT_MS, type AgentDeps, type AgentMembership } from '../../src/agent/agent.js';
import {
  asMachineId,
  asUnitName,
  type Assignment,
  type UnitHash,
  type UnitStatus,
} from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { LeaderTerm } from '../../src/registry/leadership.js';
import type { Membership } from '../../src/registry/registry.js';
import { hostMonotonicMs, isFenceStop } from '../../src/runtime/fence.js';
import type { ProcessRuntime } from '../../src/runtime/process-runtime.js';
import { unitHash } from '../../src/unit/hash.js';
import { randomPrefix, startEtcd, useEtcd, type RunningEtcd } from '../helpers/etcd.js';
import { cleanupHosts, newHost, newRuntime, pidAlive, waitFor, type TestHost } from '../runtime/helpers.js';

const etcd = useEtcd(test);
const LEASE = { ttlMs: 5000, keepaliveMs: 1000 };
const FENCE_MS = 3500;
const M1 = asMachineId('m1');
const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];

test.after.always(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await cleanupHosts();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Cluster {
  readonly registry: EtcdRegistry;
  readonly engine: EtcdRegistry;
  readonly term: LeaderTerm;
  membership: Membership;
  assign(unit: string, text: string, target?: Assignment['target']): Promise<UnitHash>;
  unassign(unit: string): Promise<void>;
  status(unit: string): Promise<UnitStatus | undefined>;
}

async function cluster(endpoint: string): Promise<Cluster> {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({
    endpoints: [endpoint],
    prefix,
    lease: LEASE,
    requestTimeoutMs: 1000,
  });
  const engine = createEtcdRegistry({ endpoints: [endpoint], prefix, lease: LEASE, requestTimeoutMs: 1000 });
  closers.push(
    () => registry.close(),
    () => engine.close(),
  );
  const term = await engine.leadership({ candidate: 'engine', ...LEASE }).campaign();
  const membership = await registry.register(
    {
      id: M1,
      ip: '10.1.2.3',
      metadata: { region: 'eu-west' },
      version: '0',
      startedAt: new Date().toISOString(),
    },
    LEASE,
  );
  const c: Cluster = {
    registry,
    engine,
    term,
    membership,
    async assign(unit, text, target = 'launched') {
      const name = asUnitName(unit);
      const hash = unitHash(text);
      if ((await engine.getUnit(name))?.hash !== hash) {
        await engine.deleteUnit(name);
        await engine.createUnit({ name, hash, target }, text);
      }
      const basis = await engine.snapshot({ unitFiles: 'none' });
      await engine.writeAssignments(
        term.fence,
        [{ kind: 'assign', assignment: { unit: name, machine: M1, hash, target } }],
        basis,
      );
      return hash;
    },
    async unassign(unit) {
      const basis = await engine.snapshot({ unitFiles: 'none' });
      await engine.writeAssignments(
        term.fence,
        [{ kind: 'unassign', unit: asUnitName(unit), machine: M1 }],
        basis,
      );
    },
    async status(unit) {
      return (await engine.listStatuses(asUnitName(unit))).items[0];
    },
  };
  return c;
}

function agentFor(c: Cluster, runtime: ProcessRuntime, over: Partial<AgentDeps> = {}): Agent {
  const agent = new Agent({
    registry: c.registry,
    runtimes: { process: runtime },
    machine: { id: M1, ip: '10.1.2.3', metadata: { region: 'eu-west' } },
    getMembership: (): AgentMembership => c.membership,
    clock: systemClock,
    log: silentLogger,
    fencing: { policy: 'stop', deadlineMs: FENCE_MS },
    hostname: 'host-a',
    bootId: 'b00t',
    ...over,
  });
  closers.push(() => agent.stop());
  return agent;
}

/**
 * The cluster's registry for an agent, noting each unit it claims. A claim is the first effect of
 * every start the agent decides (of a non-global unit): it is asked for right after the pass
 * that decided the start hands it to the executor, before the next pass begins.
 */
function recordingClaims(c: Cluster): { registry: AgentDeps['registry']; claims: string[] } {
  const r = c.registry;
  const claims: string[] = [];
  return {
    claims,
    registry: {
      watchAssignments: (...a) => r.watchAssignments(...a),
      getUnitFile: (...a) => r.getUnitFile(...a),
      putStatus: (...a) => r.putStatus(...a),
      deleteStatus: (...a) => r.deleteStatus(...a),
      writeStatuses: (...a) => r.writeStatuses(...a),
      listStatuses: (...a) => r.listStatuses(...a),
      releaseUnit: (...a) => r.releaseUnit(...a),
      claimUnit: (...a) => {
        claims.push(a[1]);
        return r.claimUnit(...a);
      },
    },
  };
}

/**
 * Resolves once the agent has run `n` whole passes after now: a pass counts itself when it
 * starts, and passes run one after another, so the count n + 1 past now means n have ended.
 */
async function wholePasses(agent: Agent, n: number): Promise<void> {
  const from = agent.stats.passes;
  await waitFor(`${n} agent passes`, () => agent.stats.passes >= from + n + 1, { intervalMs: 5 });
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fleetts-agent-'));
  dirs.push(d);
  return d;
}

const sleeper = (out: string, extra = ''): string =>
  `[Service]\nExecStart=/bin/sh -c "env > ${out}/%i.env; echo %n %N %p %i %H %m %b > ${out}/%i.spec; exec sleep 1000"\n${extra}`;

const running = (s: UnitStatus | undefined): number | false =>
  s !== undefined && s.active === 'active' && s.sub === 'running' && s.pid !== undefined ? s.pid : false;

test('a unit runs with its environment and specifiers; is reported, replaced, and removed', async (t) => {
  const c = await cluster(etcd().endpoint);
  const { runtime } = newRuntime();
  const agent = agentFor(c, runtime);
  await agent.start();
  const out = tempDir();
  const h1 = await c.assign('web@7.unit', sleeper(out));

  const pid = await waitFor('web@7 reported running in etcd', async () =>
    running(await c.status('web@7.unit')),
  );
  t.true(pidAlive(pid));
  t.like(await c.status('web@7.unit'), { machine: 'm1', hash: h1, load: 'loaded' });
  // Running is reported when the process started, which may be before its shell wrote the files.
  const spec = await waitFor('web@7 to write its specifiers', () => {
    const text = existsSync(join(out, '7.spec')) ? readFileSync(join(out, '7.spec'), 'utf8') : '';
    return text.endsWith('\n') ? text : undefined;
  });
  t.is(spec, 'web@7.unit web@7 web 7 host-a m1 b00t\n');
  const env = readFileSync(join(out, '7.env'), 'utf8');
  for (const line of [
    'FLEETTS_MACHINE_ID=m1',
    'FLEETTS_MACHINE_IP=10.1.2.3',
    'FLEETTS_METADATA_REGION=eu-west',
  ]) {
    t.true(env.split('\n').includes(line), `${line} in the unit's environment`);
  }

  // A new unit file replaces the running unit.
  const h2 = await c.assign('web@7.unit', sleeper(out, 'Environment=V=2\n'));
  const pid2 = await waitFor('web@7 replaced', async () => {
    const s = await c.status('web@7.unit');
    return s?.hash === h2 && running(s);
  });
  t.not(pid2, pid);
  t.false(pidAlive(pid), 'the old process is gone');
  // (The new process writes its environment just after it starts: fails by timing out if never.)
  t.true(
    await waitFor('the new process to write its environment, with V=2', () =>
      readFileSync(join(out, '7.env'), 'utf8').split('\n').includes('V=2') ? true : undefined,
    ),
  );

  // Unassigned: stopped, forgotten, its status deleted.
  await c.unassign('web@7.unit');
  await waitFor('web@7 status deleted', async () => (await c.status('web@7.unit')) === undefined);
  await waitFor('web@7 process gone', () => !pidAlive(pid2));
  await waitFor('web@7 forgotten by the runtime', async () => (await runtime.list()).length === 0);
  // The agent's own view follows on its next pass.
  await waitFor('web@7 forgotten by the agent', () => agent.status(asUnitName('web@7.unit')) === undefined);
  t.is(agent.status(asUnitName('web@7.unit')), undefined);
});

test('statuses in etcd: a starting state is written only once it has lasted TRANSIENT_REPORT_MS (a slow start shows it, a quick one writes running alone)', async (t) => {
  const c = await cluster(etcd().endpoint);
  const { runtime } = newRuntime();
  const agent = agentFor(c, runtime);
  await agent.start();
  const seen = async (unit: string, until: (s: UnitStatus) => boolean): Promise<[UnitStatus, number][]> => {
    const states: [UnitStatus, number][] = [];
    await waitFor(
      `${unit} to settle`,
      async () => {
        const s = await c.status(unit);
        if (s !== undefined && states.at(-1)?.[0].sub !== s.sub) states.push([s, Date.now()]);
        return s !== undefined && until(s) ? true : undefined;
      },
      { intervalMs: 10, timeoutMs: 20_000 },
    );
    return states;
  };
  const at = ([s, when]: [UnitStatus, number]): number => when - Date.parse(s.since);
  const transient = (states: [UnitStatus, number][]): [UnitStatus, number][] =>
    states.filter(([s]) => s.active === 'activating' || s.active === 'deactivating');
  // Quick: on a quiet machine only `active/running` is ever written. A busy one may take longer
  // than the time to start it: then a starting state may show, but never sooner than the time.
  await c.assign('quick.unit', '[Service]\nExecStart=/bin/sleep 1000\n');
  const quick = await seen('quick.unit', (s) => running(s) !== false);
  t.log(quick.map(([s, when]) => `${s.active}/${s.sub} ${at([s, when])} ms after since`).join(', '));
  t.like(quick.at(-1)?.[0], { active: 'active', sub: 'running' });
  for (const s of transient(quick)) t.true(at(s) >= TRANSIENT_REPORT_MS - 50, `${s[0].sub} written too soon`);
  // Slow (2 s in ExecStartPre): activating shows, once it has lasted the time.
  await c.assign('slow.unit', '[Service]\nExecStartPre=/bin/sleep 2\nExecStart=/bin/sleep 1000\n');
  const slow = await seen('slow.unit', (s) => running(s) !== false);
  t.log(slow.map(([s, when]) => `${s.active}/${s.sub} ${at([s, when])} ms after since`).join(', '));
  t.like(slow[0]?.[0], { active: 'activating' });
  for (const s of transient(slow)) t.true(at(s) >= TRANSIENT_REPORT_MS - 50, `${s[0].sub} written too soon`);
  t.like(slow.at(-1)?.[0], { active: 'active', sub: 'running' });
});

test('BindsTo: the sidekick starts after its unit and stops when it fails', async (t) => {
  const c = await cluster(etcd().endpoint);
  const { runtime } = newRuntime();
  const { registry, claims } = recordingClaims(c);
  // Frequent resync passes: each is one more chance to restart what must stay down.
  const agent = agentFor(c, runtime, { registry, resyncMs: 100 });
  await agent.start();
  const out = tempDir();
  await c.assign('side.unit', `${sleeper(out)}[Unit]\nBindsTo=main.unit\nAfter=main.unit\n`);
  await c.assign('main.unit', sleeper(out));
  const main = await waitFor('main running', async () => running(await c.status('main.unit')));
  const side = await waitFor('side running', async () => running(await c.status('side.unit')));
  const [mainSince, sideSince] = [
    (await c.status('main.unit'))?.since ?? '',
    (await c.status('side.unit'))?.since ?? '',
  ];
  t.true(sideSince >= mainSince, 'the sidekick became active after its unit');

  const claimsBefore = claims.length;
  process.kill(main, 'SIGKILL');
  await waitFor('main failed', async () => (await c.status('main.unit'))?.active === 'failed');
  const s = await waitFor('side stopped', async () => {
    const st = await c.status('side.unit');
    return st?.active === 'inactive' ? st : undefined;
  });
  t.is(s.sub, 'dead');
  t.false(pidAlive(side));
  // The failed unit is not restarted by the agent (its Restart= is `no`), so the sidekick waits:
  // passes that began after both were seen have ended, and none decided a start (none claimed).
  await wholePasses(agent, 3);
  t.deepEqual(claims.slice(claimsBefore), [], 'no start decided after main failed');
  t.is((await c.status('main.unit'))?.active, 'failed');
  t.is((await c.status('side.unit'))?.active, 'inactive');
});

test('adoption: a new agent on the same state dir keeps the unit running (same pid)', async (t) => {
  const c = await cluster(etcd().endpoint);
  const host: TestHost = newHost();
  const first = newRuntime(host).runtime;
  const a1 = agentFor(c, first);
  await a1.start();
  const out = tempDir();
  await c.assign('db.unit', sleeper(out));
  const pid = await waitFor('db running', async () => running(await c.status('db.unit')));
  await a1.stop(); // fleetd exits; the unit keeps running under its supervisor
  await first.close();

  const second = newRuntime(host).runtime;
  const { registry, claims } = recordingClaims(c);
  const a2 = agentFor(c, second, { registry, resyncMs: 100 });
  await a2.start();
  // Its first passes have ended: a restart or a replacement would have claimed db.unit in one.
  await wholePasses(a2, 3);
  t.deepEqual(claims, [], 'nothing started by the new agent');
  t.true(pidAlive(pid));
  t.is(running(await c.status('db.unit')), pid);
  t.like(a2.status(asUnitName('db.unit')), { active: 'active', pid });
  const journal: string[] = [];
  for await (const line of a2.journal(asUnitName('db.unit'), { lines: 100 })) journal.push(line);
  t.is(journal.filter((l) => l.includes('Started (main pid')).length, 1, 'started once');
});

test('a new agent deletes the statuses an earlier fleetd left for units no longer here, and writes again those still here', async (t) => {
  // A host rebooted within the life of its lease resumes it: what its previous fleetd reported
  // lives on under it. web.unit moved away while the host was off; db.unit is still assigned here.
  const c = await cluster(etcd().endpoint);
  const host: TestHost = newHost();
  const first = newRuntime(host).runtime;
  const a1 = agentFor(c, first);
  await a1.start();
  const out = tempDir();
  await c.assign('db.unit', sleeper(out));
  await c.assign('web.unit', sleeper(tempDir()));
  await waitFor('db running', async () => running(await c.status('db.unit')));
  await waitFor('web running', async () => running(await c.status('web.unit')));
  await a1.stop(); // fleetd exits; its statuses stay in etcd under its lease
  await first.close();
  await c.unassign('web.unit');
  t.truthy(await c.status('web.unit'), 'the old status of web.unit is still there');

  const a2 = agentFor(c, newRuntime(host).runtime, { resyncMs: 100 });
  await a2.start();
  await waitFor('the stale status of web.unit deleted', async () =>
    (await c.status('web.unit')) === undefined ? true : undefined,
  );
  t.truthy(running(await c.status('db.unit')), 'db.unit is still reported running');
});

/** Time from the last acknowledged keepalive to the moment the unit's process is gone. */
async function fencedAfter(membership: Membership, pid: number): Promise<number> {
  const renewed = membership.renewedAt();
  await waitFor('the unit to be fenced', () => !pidAlive(pid), 15_000);
  return systemClock.monotonic() - Math.max(renewed, membership.renewedAt());
}

test('fencing: cut off from etcd, the agent stops its units before its lease can expire', async (t) => {
  let own: RunningEtcd | undefined = await startEtcd();
  closers.push(() => own?.kill() ?? Promise.resolve());
  const c = await cluster(own.endpoint);
  const { runtime } = newRuntime();
  const agent = agentFor(c, runtime);
  await agent.start();
  await c.assign('web.unit', sleeper(tempDir()));
  const pid = await waitFor('web running', async () => running(await c.status('web.unit')));

  await own.kill();
  own = undefined;
  const after = await fencedAfter(c.membership, pid);
  t.log(`unit stopped ${Math.round(after)} ms after the last acknowledged keepalive`);
  t.true(after >= FENCE_MS - 50, `not before the deadline (${after} ms)`);
  t.true(after < LEASE.ttlMs, `before the lease could expire (${after} ms)`);
  // Its supervisor and the agent race to stop it (both watch the same deadline); the agent is fenced.
  await waitFor('the agent to be fenced', () => agent.fenced);
  await waitFor(
    'the agent to see it inactive',
    () => agent.status(asUnitName('web.unit'))?.active === 'inactive',
  );
  t.pass();
});

test('fencing without fleetd: a killed fleetd’s units stop by themselves before its lease can expire', async (t) => {
  const c = await cluster(etcd().endpoint);
  const { runtime, host } = newRuntime();
  const agent = agentFor(c, runtime);
  await agent.start();
  await c.assign('web.unit', sleeper(tempDir()));
  const pid = await waitFor('web running', async () => running(await c.status('web.unit')));

  // "kill -9 fleetd": the agent stops moving the deadline and keepalives stop; nobody stops units.
  await agent.stop();
  c.membership.release();
  await runtime.close();
  const offset = hostMonotonicMs() - systemClock.monotonic();
  const renewedAt = c.membership.renewedAt() + offset; // frozen now, on the host's clock
  const until = (JSON.parse(readFileSync(join(host.stateDir, 'fence.json'), 'utf8')) as { until: number })
    .until;
  await waitFor('the unit to be fenced', () => !pidAlive(pid), 15_000);
  const goneAt = hostMonotonicMs();
  t.log(
    `deadline ${Math.round(until - renewedAt)} ms after the last renewal; unit gone ${Math.round(goneAt - renewedAt)} ms after it`,
  );
  // The file lags the lease by at most a keepalive period plus a watchdog tick: never later.
  t.true(until <= renewedAt + FENCE_MS + 1, 'the deadline is never later than the lease allows');
  t.true(until >= renewedAt + FENCE_MS - 2000, 'the deadline followed the renewals');
  t.true(goneAt >= until, 'not before the deadline');
  // Stopped because of the deadline (the supervisor's reason, below), and within the lease: how
  // soon after the deadline is the supervisor's polling period, not something a loaded machine keeps.
  t.true(goneAt < renewedAt + LEASE.ttlMs, 'before the lease could expire');

  // The next fleetd sees why it stopped (and would start it again if it is still assigned here).
  const next = newRuntime(host).runtime;
  await next.adopt();
  const o = await waitFor('the supervisor to finish', async () =>
    (await next.list()).find((u) => u.active === 'inactive'),
  );
  t.like(o, { unit: 'web.unit', active: 'inactive', sub: 'dead' });
  t.true(isFenceStop(o.reason), o.reason);
});
