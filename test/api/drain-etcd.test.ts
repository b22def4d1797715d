// Drain through the API against a REAL etcd: the drain is a key in etcd (read back by another
// connection), machine listings show it, the real engine moves one unit at a time and goes on under
// a new leader, undrain ends it. The agents are played by the test (statuses put or held back).
import test from 'ava';
import { asMachineId, asUnitName, type MachineId } from '../../src/cluster/types.js';
import { buildApp, type ApiApp } from '../../src/api/build-app.js';
import type { DrainStatus, MachineEntry } from '../../src/api/schemas.js';
import { Engine } from '../../src/engine/engine.js';
import { systemClock } from '../../src/lib/clock.js';
import { FleetError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { Membership, Registry } from '../../src/registry/registry.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { FakeLocalUnits } from './fixture.js';

const etcd = useEtcd(test);
/** Machines must stay registered however loaded this machine is: nothing here re-registers. */
const STAY = { ttlMs: 30_000, keepaliveMs: 1_000 };
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';

test('drain: stored in etcd, listed, one unit at a time, kept across an engine change; undrain', async (t) => {
  const prefix = randomPrefix();
  const opened: Registry[] = [];
  const open = (): Registry => {
    const r = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix, lease: STAY });
    opened.push(r);
    return r;
  };
  const registry = open();
  const engines: Engine[] = [];
  const startEngine = (name: string): Engine => {
    const e = new Engine({
      registry: open(),
      clock: systemClock,
      random: createRandom(1),
      log: silentLogger,
      candidate: name,
    });
    e.start();
    engines.push(e);
    return e;
  };
  const members = new Map<MachineId, Membership>();
  const join = async (id: string): Promise<void> => {
    const m = await registry.register(
      {
        id: asMachineId(id),
        ip: '127.0.0.1',
        metadata: {},
        version: 'test',
        startedAt: new Date().toISOString(),
      },
      STAY,
    );
    members.set(m.machineId, m);
  };
  const app: ApiApp = buildApp({
    registry,
    machineId: 'm1',
    local: new FakeLocalUnits(),
    peers: { get: () => Promise.reject(new FleetError('unreachable', 'no peers here')) },
    registered: () => true,
    clock: systemClock,
    log: silentLogger,
  });
  /** The agents: report every assignment active where it is (only on `up` machines), forget the rest. */
  const agents = async (up: ReadonlySet<string>): Promise<void> => {
    const snap = await registry.snapshot({ unitFiles: 'none' });
    for (const a of snap.assignments) {
      const m = members.get(a.machine);
      if (m === undefined || !up.has(a.machine)) continue;
      if (snap.statuses.some((s) => s.unit === a.unit && s.machine === a.machine)) continue;
      await registry.putStatus(m, {
        unit: a.unit,
        machine: a.machine,
        hash: a.hash,
        load: 'loaded',
        active: 'active',
        sub: 'running',
        since: new Date().toISOString(),
      });
    }
    for (const s of snap.statuses)
      if (!snap.assignments.some((a) => a.unit === s.unit && a.machine === s.machine))
        await registry.deleteStatus(s.unit, s.machine);
  };
  const api = async <T>(method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>) => {
    const res = await (payload === undefined
      ? app.inject({ method, url })
      : app.inject({ method, url, payload }));
    return { status: res.statusCode, body: (res.body === '' ? undefined : res.json()) as T };
  };
  const machines = async () => (await api<{ machines: MachineEntry[] }>('GET', '/v1/machines')).body.machines;
  try {
    // Three units on m3 (the only machine at first), then m1 and m2 join: nothing moves by itself.
    await join('m3');
    startEngine('e1');
    const names = ['x.unit', 'y.unit', 'z.unit'];
    t.is(
      (
        await api('PUT', '/v1/units', {
          units: names.map((name) => ({ name, text: TEXT, target: 'launched' })),
        })
      ).status,
      200,
    );
    await waitFor('units placed on m3', async () => {
      await agents(new Set(['m3']));
      const snap = await registry.snapshot({ unitFiles: 'none' });
      return snap.statuses.length === 3;
    });
    await join('m1');
    await join('m2');

    const drained = await api<DrainStatus>('PUT', '/v1/machines/m3/drain');
    t.is(drained.status, 200);
    t.like(drained.body, { machine: 'm3', state: 'draining', units: names });
    // Another connection reads it back from etcd.
    const other = open();
    t.deepEqual([...(await other.snapshot({ unitFiles: 'none' })).drains.keys()], ['m3']);
    t.like(
      (await machines()).find((m) => m.id === 'm3'),
      { drain: { state: 'draining' } },
    );
    t.is((await api('PUT', '/v1/machines/m3/drain')).status, 200, 'draining again is idempotent');
    t.is((await api('PUT', '/v1/machines/m9/drain')).status, 404);

    // No agent reports on m1 or m2 yet: the first unit moves, and the drain waits for it.
    const first = await waitFor('the first step', async () => {
      const s = (await api<DrainStatus>('GET', '/v1/machines/m3/drain')).body;
      await agents(new Set(['m3']));
      return s.units.length === 2 && s.moving[0]?.waiting?.startsWith('starting on ') === true && s;
    });
    t.deepEqual(
      first.moving.map((m) => m.unit),
      ['x.unit'],
    );
    // A new engine leader goes on from the stored step: still one unit at a time.
    await engines[0]?.stop();
    const e2 = startEngine('e2');
    await waitFor('e2 leads', () => e2.stats.isLeader && e2.stats.passes > 0);
    const still = (await api<DrainStatus>('GET', '/v1/machines/m3/drain')).body;
    t.deepEqual(still.units, ['y.unit', 'z.unit'], 'nothing more moved while x.unit was not up elsewhere');

    // The agents report: the drain goes on to the end.
    const done = await waitFor('drained', async () => {
      await agents(new Set(['m1', 'm2', 'm3']));
      const s = (await api<DrainStatus>('GET', '/v1/machines/m3/drain')).body;
      return s.state === 'drained' && s;
    });
    t.deepEqual(done.units, []);
    t.like(
      (await machines()).find((m) => m.id === 'm3'),
      { units: 0, drain: { state: 'drained' } },
    );
    const snap = await registry.snapshot({ unitFiles: 'none' });
    t.deepEqual(
      snap.assignments.map((a) => a.machine).filter((m) => m === 'm3'),
      [],
    );
    t.is(snap.assignments.length, 3);

    // A new unit does not go to the (empty) drained machine; after undrain the next one does.
    await api('PUT', '/v1/units', { units: [{ name: 'v.unit', text: TEXT, target: 'launched' }] });
    const v = await waitFor('v placed', async () =>
      (await registry.snapshot({ unitFiles: 'none' })).assignments.find((a) => a.unit === 'v.unit'),
    );
    t.not(String(v.machine), 'm3');
    t.is((await api('DELETE', '/v1/machines/m3/drain')).status, 204);
    t.is((await api('DELETE', '/v1/machines/m3/drain')).status, 404);
    t.is((await api('GET', '/v1/machines/m3/drain')).status, 404);
    t.is((await machines()).find((m) => m.id === 'm3')?.drain, undefined);
    await api('PUT', '/v1/units', { units: [{ name: 'w.unit', text: TEXT, target: 'launched' }] });
    const w = await waitFor('w placed', async () =>
      (await registry.snapshot({ unitFiles: 'none' })).assignments.find(
        (a) => a.unit === asUnitName('w.unit'),
      ),
    );
    t.is(String(w.machine), 'm3', 'the empty machine takes placements again');
  } finally {
    await Promise.all(engines.map((e) => e.stop().catch(() => undefined)));
    await app.close();
    await Promise.all(opened.map((r) => r.close().catch(() => undefined)));
  }
});
