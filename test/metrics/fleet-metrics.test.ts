// The metrics wiring on the REAL engine and agents over the in-memory etcd with a fake clock: a
// unit placed, started and failed over moves the placement, move, failover, action, machine and
// unit families; the runtimes' events get their log level and count restarts.
import { Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { Agent } from '../../src/agent/agent.js';
import { asMachineId, asUnitName, type MachineId, type UnitStatus } from '../../src/cluster/types.js';
import { runtimeEventSink } from '../../src/daemon/runtime-events.js';
import { Engine } from '../../src/engine/engine.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import { FleetMetrics } from '../../src/metrics/fleet-metrics.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import type { ProcessUnitConfig } from '../../src/runtime/runtime.js';
import { unitHash } from '../../src/unit/hash.js';
import { FakeRuntime } from '../agent/fake-runtime.js';
import { metricValue, parsePrometheusText, type Sample } from '../helpers/prometheus-text.js';

const LEASE = { ttlMs: 5_000, keepaliveMs: 1_000 };
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';
const STEP_MS = 10;
/** How long a start takes on a host (fake time): the failover histogram must include it. */
const START_MS = 2_000;

/** A runtime whose units take START_MS to become active. */
class SlowRuntime extends FakeRuntime {
  override async start(config: ProcessUnitConfig): Promise<void> {
    await this.clock.sleep(START_MS);
    await super.start(config);
  }
}

interface Host {
  readonly id: MachineId;
  readonly registry: MemoryRegistry;
  readonly metrics: FleetMetrics;
  readonly agent: Agent;
  membership: Membership | undefined;
}

async function scrape(metrics: FleetMetrics): Promise<Sample[]> {
  return parsePrometheusText(await metrics.text());
}

async function until(
  t: ExecutionContext,
  clock: FakeClock,
  what: string,
  check: () => Promise<boolean> | boolean,
  limitMs = 60_000,
): Promise<void> {
  for (let waited = 0; waited <= limitMs; waited += STEP_MS) {
    if (await check()) return;
    await clock.advance(STEP_MS);
  }
  t.fail(`${what}: not within ${limitMs} ms of fake time`);
  throw new Error(what);
}

test('placement, start, and failover of a unit move their metric families', async (t) => {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const observer = new MemoryRegistry({ store });
  const hosts: Host[] = [];
  for (const name of ['m1', 'm2']) {
    const id = asMachineId(name);
    const metrics = new FleetMetrics({ defaultMetrics: false });
    const registry = new MemoryRegistry({ store, lease: LEASE, metrics });
    const host: Host = {
      id,
      registry,
      metrics,
      membership: await registry.register(
        { id, ip: '10.0.0.1', metadata: {}, version: 'test', startedAt: '2026-01-01T00:00:00Z' },
        LEASE,
      ),
      agent: undefined as unknown as Agent,
    };
    (host as { agent: Agent }).agent = new Agent({
      registry,
      runtimes: { process: new SlowRuntime(clock) },
      machine: { id, ip: '10.0.0.1', metadata: {} },
      getMembership: () => host.membership,
      clock,
      log: silentLogger,
      fencing: { policy: 'stop', deadlineMs: 3_500 },
      resyncMs: 1_000,
      hostname: name,
      bootId: 'b00t',
      readFile: () => undefined,
      metrics,
    });
    await host.agent.start();
    hosts.push(host);
  }
  // The engine's fleetd: its own metrics, reading the cluster at scrape time.
  const metrics = new FleetMetrics({ defaultMetrics: false });
  const engineRegistry = new MemoryRegistry({ store, lease: LEASE, metrics });
  const engine = new Engine({
    registry: engineRegistry,
    clock,
    random: createRandom(1),
    log: silentLogger,
    candidate: 'e1',
    lease: LEASE,
    metrics,
  });
  metrics.observeCluster(engineRegistry, () => engine.stats.isLeader);
  engine.start();
  try {
    let s = await scrape(metrics);
    t.is(metricValue(s, 'fleetts_machines', { state: 'up' }), 2);
    t.is(metricValue(s, 'fleetts_machines', { state: 'down' }), 0);
    t.is(metricValue(s, 'fleetts_engine_placements_total'), undefined, 'nothing placed yet');

    const unit = asUnitName('app.unit');
    await observer.createUnit({ name: unit, hash: unitHash(TEXT), target: 'launched' }, TEXT);
    const activeOn = async (): Promise<UnitStatus | undefined> =>
      (await observer.listStatuses(unit)).items.find((x) => x.active === 'active');
    await until(t, clock, 'the unit active', async () => (await activeOn()) !== undefined);
    const first = (await activeOn())?.machine;
    const dying = hosts.find((h) => h.id === first);
    const other = hosts.find((h) => h.id !== first);
    if (dying === undefined || other === undefined) return t.fail('placed on a host');

    s = await scrape(metrics);
    t.is(metricValue(s, 'fleetts_engine_leader'), 1);
    t.is(metricValue(s, 'fleetts_engine_placements_total', { kind: 'new' }), 1);
    t.is(metricValue(s, 'fleetts_units', { target: 'launched', state: 'launched' }), 1);
    t.is(metricValue(s, 'fleetts_units'), 1, 'one unit in all');
    t.is(metricValue(s, 'fleetts_unit_statuses', { active: 'active' }), 1);
    t.true((metricValue(s, 'fleetts_engine_pass_seconds_count', { outcome: 'applied' }) ?? 0) >= 1);
    t.true((metricValue(s, 'fleetts_etcd_request_seconds_count', { op: 'txn' }) ?? 0) >= 1);
    t.true((metricValue(s, 'fleetts_lease_keepalive_seconds_count') ?? 0) >= 1, 'the leader lease is kept');
    const hostSamples = await scrape(dying.metrics);
    t.is(metricValue(hostSamples, 'fleetts_agent_actions_total', { action: 'start', result: 'ok' }), 1);
    t.true((metricValue(hostSamples, 'fleetts_lease_keepalive_seconds_count') ?? 0) >= 1);

    // The host dies: etcd stops hearing from it, so its lease expires and its key is deleted.
    dying.registry.setFaults({ unavailable: true });
    let goneAt = 0;
    await until(t, clock, 'the lease expired', async () => {
      const up = (await observer.listMachines()).items.some((m) => m.id === dying.id);
      goneAt = clock.now();
      return !up;
    });
    let activeAt = 0;
    await until(t, clock, 'the unit active on the other host', async () => {
      activeAt = clock.now();
      return (await activeOn())?.machine === other.id;
    });
    await until(
      t,
      clock,
      'the failover observed',
      async () => metricValue(await scrape(metrics), 'fleetts_failover_seconds_count') === 1,
    );
    s = await scrape(metrics);
    t.is(metricValue(s, 'fleetts_engine_moves_total', { reason: 'machine_gone' }), 1);
    t.is(metricValue(s, 'fleetts_engine_placements_total', { kind: 'move' }), 1);
    const seconds = metricValue(s, 'fleetts_failover_seconds_sum') ?? -1;
    // From the key's deletion (seen within a step) to the status (written within a step, seen by
    // the pass its change wakes): the new host's start time and the engine's reaction.
    t.true(seconds >= START_MS / 1000, `failover ${seconds} s includes the ${START_MS} ms start`);
    t.true(
      seconds <= (activeAt - goneAt + 10 * STEP_MS) / 1000,
      `failover ${seconds} s is at most the ${(activeAt - goneAt) / 1000} s from expiry to active`,
    );
    t.is(metricValue(s, 'fleetts_machines', { state: 'up' }), 1);
    t.is(metricValue(s, 'fleetts_machines', { state: 'down' }), 1);
    t.is(metricValue(s, 'fleetts_units', { target: 'launched', state: 'launched' }), 1);
    const otherSamples = await scrape(other.metrics);
    t.is(metricValue(otherSamples, 'fleetts_agent_actions_total', { action: 'start', result: 'ok' }), 1);
  } finally {
    for (const h of hosts) h.registry.setFaults({});
    const stopping = Promise.all([engine.stop(), ...hosts.map((h) => h.agent.stop())]);
    await clock.advance(10_000);
    await stopping;
  }
});

test('runtime events: a failure or crash restart is logged at warn (seen at the default level), restarts are counted', (t) => {
  const lines: { level: number; event: string; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  const log = createLogger({ level: 'info', destination });
  const metrics = new FleetMetrics({ defaultMetrics: false });
  const processSink = runtimeEventSink(log, 'process', metrics);
  const dockerSink = runtimeEventSink(log, 'docker', metrics);
  processSink('runtime.unit_failed', { unit: 'web.unit', reason: 'exit code 3' });
  processSink('runtime.unit_restarted', { unit: 'web.unit', restarts: 3, count: 2 });
  processSink('runtime.supervisor_spawned', { unit: 'web.unit', pid: 7 });
  dockerSink('runtime.container_restarting', { unit: 'db.unit', container: 'abc' });
  dockerSink('runtime.listener_failed', { unit: 'db.unit', err: 'boom' });
  dockerSink('runtime.something_new', { unit: 'db.unit' });
  t.deepEqual(
    lines.map((l) => [l.event, l.level]),
    [
      ['runtime.unit_failed', 40],
      ['runtime.unit_restarted', 40],
      // supervisor_spawned is debug: not shown at info
      ['runtime.container_restarting', 40],
      ['runtime.listener_failed', 50],
      ['runtime.something_new', 30],
    ],
  );
  t.is(lines[0]?.msg, 'unit failed web.unit: exit code 3');
  return metrics.text().then((text) => {
    const s = parsePrometheusText(text);
    t.is(metricValue(s, 'fleetts_supervisor_restarts_total', { runtime: 'process' }), 2);
    t.is(metricValue(s, 'fleetts_supervisor_restarts_total', { runtime: 'docker' }), 1);
  });
});

test('two FleetMetrics in one process keep their own registries (no clash of names)', async (t) => {
  const a = new FleetMetrics();
  const b = new FleetMetrics();
  a.agentActions.inc({ action: 'start', result: 'ok' });
  const sa = parsePrometheusText(await a.text());
  const sb = parsePrometheusText(await b.text());
  t.is(metricValue(sa, 'fleetts_agent_actions_total'), 1);
  t.is(metricValue(sb, 'fleetts_agent_actions_total'), undefined);
  t.true((metricValue(sa, 'process_cpu_user_seconds_total') ?? -1) >= 0, "Node's process metrics");
  t.true(a.contentType.startsWith('text/plain'));
});
