// Table tests of the agent's pure diff: every action kind and every reason.
import test from 'ava';
import { asUnitHash, asUnitName, type ActiveState, type UnitHash } from '../../src/cluster/types.js';
import {
  diffUnits,
  NO_CONTAINER_RUNTIME,
  type Action,
  type DesiredUnit,
  type DiffContext,
  type ObservedEntry,
  type RuntimeKind,
  type UnitRunInfo,
} from '../../src/agent/diff.js';
import { SUPERVISOR_FENCE_REASON } from '../../src/runtime/fence.js';

const H1 = asUnitHash('a'.repeat(64));
const H2 = asUnitHash('b'.repeat(64));
const u = asUnitName;

function want(
  unit: string,
  over: Partial<Omit<DesiredUnit, 'unit' | 'spec'>> & {
    info?: Partial<UnitRunInfo>;
    spec?: DesiredUnit['spec'];
  } = {},
): DesiredUnit {
  return {
    unit: u(unit),
    hash: over.hash ?? H1,
    target: over.target ?? 'launched',
    spec: over.spec ?? { kind: 'ok', info: { runtime: 'process', bindsTo: [], after: [], ...over.info } },
  };
}

function seen(
  unit: string,
  active: ActiveState,
  over: { sub?: string; hash?: UnitHash; runtime?: RuntimeKind; reason?: string } = {},
): ObservedEntry {
  const sub =
    over.sub ??
    {
      active: 'running',
      activating: 'start',
      deactivating: 'stop-sigterm',
      inactive: 'dead',
      failed: 'failed',
    }[active];
  return {
    unit: u(unit),
    hash: over.hash ?? H1,
    load: 'loaded',
    active,
    sub,
    since: '2026-01-01T00:00:00.000Z',
    runtime: over.runtime ?? 'process',
    ...(over.reason === undefined ? {} : { reason: over.reason }),
  };
}

function ctx(over: Partial<DiffContext> = {}): DiffContext {
  return { runtimes: new Set(['process']), busy: new Set(), attempted: new Map(), ...over };
}

/** Actions as `kind unit: reason` lines (report states in brackets), for readable assertions. */
function lines(actions: readonly Action[]): string[] {
  return actions.map((a) => {
    const state = a.kind === 'report' ? ` [${a.state.load} ${a.state.active}/${a.state.sub}]` : '';
    const where = 'runtime' in a && a.runtime !== 'process' ? ` (${a.runtime})` : '';
    return `${a.kind} ${a.unit}${where}${state}: ${a.reason}`;
  });
}

interface Row {
  readonly title: string;
  readonly desired: readonly DesiredUnit[];
  readonly observed: readonly ObservedEntry[];
  readonly ctx?: Partial<DiffContext>;
  readonly expect: readonly string[];
}

const attempted = (...pairs: [string, UnitHash][]): Map<ReturnType<typeof u>, UnitHash> =>
  new Map(pairs.map(([n, h]) => [u(n), h]));

const rows: Row[] = [
  {
    title: 'a new launched assignment is started',
    desired: [want('web.unit')],
    observed: [],
    expect: ['start web.unit: assigned with target launched'],
  },
  {
    title: 'a running unit with the assigned hash is left alone',
    desired: [want('web.unit')],
    observed: [seen('web.unit', 'active')],
    expect: ['hold web.unit: running (active/running)'],
  },
  {
    title: 'an activating unit is left alone',
    desired: [want('web.unit')],
    observed: [seen('web.unit', 'activating', { sub: 'auto-restart' })],
    expect: ['hold web.unit: running (activating/auto-restart)'],
  },
  {
    title: 'a changed hash replaces the running unit',
    desired: [want('web.unit', { hash: H2 })],
    observed: [seen('web.unit', 'active')],
    expect: ['replace web.unit: its unit file changed (aaaaaaaaaaaa → bbbbbbbbbbbb)'],
  },
  {
    title: 'a changed hash starts the new file when the old one had ended',
    desired: [want('web.unit', { hash: H2 })],
    observed: [seen('web.unit', 'failed')],
    ctx: { attempted: attempted(['web.unit', H1]) },
    expect: ['start web.unit: its unit file changed (aaaaaaaaaaaa → bbbbbbbbbbbb); the old one had ended'],
  },
  {
    title: 'a unit that is being stopped is waited for',
    desired: [want('web.unit', { hash: H2 })],
    observed: [seen('web.unit', 'deactivating')],
    expect: ['hold web.unit: waiting for it to stop (deactivating/stop-sigterm)'],
  },
  {
    title: 'an observed unit that is not assigned is removed',
    desired: [],
    observed: [seen('old.unit', 'active'), seen('gone.unit', 'inactive')],
    expect: [
      'remove gone.unit: no longer assigned to this machine',
      'remove old.unit: no longer assigned to this machine',
    ],
  },
  {
    title: 'an unassigned unit found when fleetd started is stopped, not removed, while it is kept',
    desired: [],
    observed: [seen('up.unit', 'active'), seen('lost.unit', 'failed', { runtime: 'container' })],
    ctx: { keep: new Set([u('up.unit'), u('lost.unit')]) },
    expect: [
      'stop up.unit: not assigned to this machine (found running when fleetd started; kept stopped for now)',
    ],
  },
  {
    title: 'a kept unit that is assigned again is started as any other',
    desired: [want('lost.unit', { info: { runtime: 'container' } })],
    observed: [seen('lost.unit', 'failed', { runtime: 'container' })],
    ctx: { runtimes: new Set(['process', 'container']), keep: new Set([u('lost.unit')]) },
    expect: ['start lost.unit (container): target launched, but it is failed/failed'],
  },
  {
    title: 'a busy unit is left alone, assigned or not',
    desired: [want('web.unit')],
    observed: [seen('old.unit', 'active')],
    ctx: { busy: new Set([u('web.unit'), u('old.unit')]) },
    expect: ['hold web.unit: an operation on it is in progress'],
  },
  {
    title: 'target loaded: a running unit is stopped',
    desired: [want('web.unit', { target: 'loaded' })],
    observed: [seen('web.unit', 'active')],
    expect: ['stop web.unit: its target state is loaded (placed, not running)'],
  },
  {
    title: 'target loaded: an unknown unit is reported loaded/inactive, not started',
    desired: [want('web.unit', { target: 'loaded' })],
    observed: [],
    expect: ['report web.unit [loaded inactive/dead]: target state loaded: known and prepared, not started'],
  },
  {
    title: 'target loaded: an old hash that ended is reported with the new hash',
    desired: [want('web.unit', { target: 'loaded', hash: H2 })],
    observed: [seen('web.unit', 'inactive')],
    expect: ['report web.unit [loaded inactive/dead]: target state loaded: known and prepared, not started'],
  },
  {
    title: 'target loaded: a stopped unit of that hash is held',
    desired: [want('web.unit', { target: 'loaded' })],
    observed: [seen('web.unit', 'inactive')],
    expect: ['hold web.unit: loaded, not running (inactive/dead)'],
  },
  {
    title: 'a failed unit (start-limit-hit) the agent started is not restarted',
    desired: [want('web.unit')],
    observed: [seen('web.unit', 'failed', { reason: 'start-limit-hit' })],
    ctx: { attempted: attempted(['web.unit', H1]) },
    expect: [
      "hold web.unit: it ended failed/failed (start-limit-hit); not restarted until its assignment changes (restarts are its Restart= policy's job)",
    ],
  },
  {
    title: 'a oneshot unit without RemainAfterExit that finished is not started again',
    desired: [want('job.unit')],
    observed: [seen('job.unit', 'inactive')],
    ctx: { attempted: attempted(['job.unit', H1]) },
    expect: [
      "hold job.unit: it ended inactive/dead; not restarted until its assignment changes (restarts are its Restart= policy's job)",
    ],
  },
  {
    title: 'an inactive unit the agent stopped itself (not attempted) is started',
    desired: [want('web.unit')],
    observed: [seen('web.unit', 'inactive')],
    expect: ['start web.unit: target launched, but it is inactive/dead'],
  },
  {
    title: 'a unit its supervisor stopped by self-fencing is started again',
    desired: [want('web.unit')],
    observed: [seen('web.unit', 'inactive', { reason: SUPERVISOR_FENCE_REASON })],
    ctx: { attempted: attempted(['web.unit', H1]) },
    expect: ['start web.unit: it was stopped by self-fencing and is assigned here again'],
  },
  {
    title: 'a unit whose start failed before the runtime knew it is not retried',
    desired: [want('web.unit')],
    observed: [],
    ctx: { attempted: attempted(['web.unit', H1]) },
    expect: ['hold web.unit: it could not be started; not retried until its assignment changes'],
  },
  {
    title: 'a unit file that is not in the registry is reported not-found',
    desired: [
      want('web.unit', { spec: { kind: 'error', load: 'not-found', reason: 'its unit file aaaa is gone' } }),
    ],
    observed: [],
    expect: ['report web.unit [not-found inactive/dead]: its unit file aaaa is gone'],
  },
  {
    title: 'a running old hash whose new file does not load is stopped',
    desired: [want('web.unit', { hash: H2, spec: { kind: 'error', load: 'error', reason: 'line 3: bad' } })],
    observed: [seen('web.unit', 'active')],
    expect: ['stop web.unit: its new unit file cannot be loaded: line 3: bad'],
  },
  {
    title: 'a container unit on a host without Docker is a load error',
    desired: [want('db.unit', { info: { runtime: 'container' } })],
    observed: [],
    expect: [`report db.unit [error inactive/dead]: ${NO_CONTAINER_RUNTIME}`],
  },
  {
    title: 'a container unit on a Docker host is started in the container runtime',
    desired: [want('db.unit', { info: { runtime: 'container' } })],
    observed: [],
    ctx: { runtimes: new Set(['process', 'container']) },
    expect: ['start db.unit (container): assigned with target launched'],
  },
  {
    title: 'a unit that changed from process to container leaves the process runtime first',
    desired: [want('db.unit', { hash: H2, info: { runtime: 'container' } })],
    observed: [seen('db.unit', 'active')],
    ctx: { runtimes: new Set(['process', 'container']) },
    expect: ['remove db.unit: its unit file now runs it as a container'],
  },
  {
    title: 'BindsTo: the sidekick waits while its main unit is not running',
    desired: [want('web.unit'), want('side.unit', { info: { bindsTo: ['web.unit'], after: ['web.unit'] } })],
    observed: [],
    expect: [
      'report side.unit [loaded inactive/dead]: waiting: BindsTo=web.unit is not running here',
      'start web.unit: assigned with target launched',
    ],
  },
  {
    title: 'BindsTo: the sidekick starts once its main unit is active',
    desired: [want('web.unit'), want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('web.unit', 'active')],
    expect: ['start side.unit: assigned with target launched', 'hold web.unit: running (active/running)'],
  },
  {
    title: 'BindsTo: the sidekick stops when its main unit fails',
    desired: [want('web.unit'), want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('web.unit', 'failed'), seen('side.unit', 'active')],
    ctx: { attempted: attempted(['web.unit', H1], ['side.unit', H1]) },
    expect: [
      'stop side.unit: BindsTo=web.unit is not active (failed/failed)',
      "hold web.unit: it ended failed/failed; not restarted until its assignment changes (restarts are its Restart= policy's job)",
    ],
  },
  {
    title: 'BindsTo: the sidekick stops when its main unit is stopped',
    desired: [want('web.unit', { target: 'loaded' }), want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('web.unit', 'deactivating'), seen('side.unit', 'active')],
    expect: [
      'stop side.unit: BindsTo=web.unit is not active (deactivating/stop-sigterm)',
      'hold web.unit: loaded, not running (deactivating/stop-sigterm)',
    ],
  },
  {
    title: 'BindsTo: a stopped sidekick waits while its main unit is inactive',
    desired: [want('web.unit'), want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('web.unit', 'inactive'), seen('side.unit', 'inactive')],
    expect: [
      'hold side.unit: waiting: BindsTo=web.unit is not active (inactive/dead)',
      'start web.unit: target launched, but it is inactive/dead',
    ],
  },
  {
    title: 'BindsTo: a main unit running an old hash does not count as active',
    desired: [want('web.unit', { hash: H2 }), want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('web.unit', 'active'), seen('side.unit', 'active')],
    expect: [
      'stop side.unit: BindsTo=web.unit is not running here',
      'replace web.unit: its unit file changed (aaaaaaaaaaaa → bbbbbbbbbbbb)',
    ],
  },
  {
    title: 'BindsTo: a main unit assigned elsewhere blocks the sidekick',
    desired: [want('side.unit', { info: { bindsTo: ['web.unit'] } })],
    observed: [seen('side.unit', 'active')],
    expect: ['stop side.unit: BindsTo=web.unit is not assigned to this machine'],
  },
  {
    title: 'After: waits for a unit launched here to start',
    desired: [want('db.unit'), want('app.unit', { info: { after: ['db.unit', 'elsewhere.unit'] } })],
    observed: [seen('db.unit', 'activating')],
    expect: [
      'hold app.unit: waiting: After=db.unit has not started yet',
      'hold db.unit: running (activating/start)',
    ],
  },
  {
    title: 'After: a finished oneshot counts as started',
    desired: [want('init.unit'), want('app.unit', { info: { after: ['init.unit'] } })],
    observed: [seen('init.unit', 'inactive')],
    ctx: { attempted: attempted(['init.unit', H1]) },
    expect: [
      'start app.unit: assigned with target launched',
      "hold init.unit: it ended inactive/dead; not restarted until its assignment changes (restarts are its Restart= policy's job)",
    ],
  },
  {
    title: 'After: units that are only loaded here, or not here, impose no order',
    desired: [
      want('db.unit', { target: 'loaded' }),
      want('app.unit', { info: { after: ['db.unit', 'x.unit'] } }),
    ],
    observed: [],
    expect: [
      'start app.unit: assigned with target launched',
      'report db.unit [loaded inactive/dead]: target state loaded: known and prepared, not started',
    ],
  },
  {
    title: 'fenced: every running unit is stopped, nothing else happens',
    desired: [want('web.unit'), want('new.unit')],
    observed: [seen('web.unit', 'active'), seen('job.unit', 'activating'), seen('old.unit', 'inactive')],
    ctx: { fenced: { reason: 'fenced: no keepalive' } },
    expect: ['stop job.unit: fenced: no keepalive', 'stop web.unit: fenced: no keepalive'],
  },
];

for (const row of rows) {
  test(`diffUnits: ${row.title}`, (t) => {
    t.deepEqual(lines(diffUnits(row.desired, row.observed, ctx(row.ctx))), row.expect);
  });
}

test('diffUnits is pure: the same input gives the same actions, inputs untouched', (t) => {
  const desired = [want('web.unit', { hash: H2 }), want('side.unit', { info: { bindsTo: ['web.unit'] } })];
  const observed = [seen('web.unit', 'active'), seen('zzz.unit', 'active')];
  const c = ctx({ attempted: attempted(['web.unit', H1]) });
  const before = JSON.stringify({ desired, observed });
  const a = diffUnits(desired, observed, c);
  t.deepEqual(diffUnits(desired, observed, c), a);
  t.is(JSON.stringify({ desired, observed }), before);
  t.is(c.attempted.size, 1);
});

test('diffUnits decides every assigned unit exactly once', (t) => {
  const desired = ['a', 'b', 'c', 'd', 'e'].map((n, i) =>
    want(`${n}.unit`, {
      target: i % 2 === 0 ? 'launched' : 'loaded',
      info: { bindsTo: i === 4 ? ['a.unit'] : [] },
    }),
  );
  const observed = [seen('a.unit', 'active'), seen('b.unit', 'active'), seen('x.unit', 'failed')];
  const actions = diffUnits(desired, observed, ctx());
  const decided = actions.filter((a) => a.kind !== 'remove').map((a) => a.unit);
  t.deepEqual(decided, ['a.unit', 'b.unit', 'c.unit', 'd.unit', 'e.unit'].map(u));
  t.deepEqual(
    actions.filter((a) => a.kind === 'remove').map((a) => a.unit),
    [u('x.unit')],
  );
});
