// `fleetts drain` on a real dev cluster (3 hosts, the demo's web farm, etcd outside the hosts),
// under load through the balancer: the backend host's units move one group at a time (each web
// instance with its discovery sidekick, active and announced elsewhere before the next moves), no
// request fails, the host ends empty and `drained` in list-machines, keeps that state across a
// restart of its fleetd (a power cycle), and takes placements again after undrain.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { runAb, type AbResult } from '../helpers/ab.js';
import { ROOT } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { ensureWebPackages } from '../helpers/web.js';

let root = '';
let demo: WebFarmDemo | undefined;

function farm(): WebFarmDemo {
  if (demo === undefined) throw new Error('the farm did not come up (see the first failure)');
  return demo;
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the drain e2e test needs root (network namespaces, mounts); run it as root');
  await ensureWebPackages();
  await promisify(execFile)('bash', [join(ROOT, 'scripts/ensure-deps.sh'), 'web'], { timeout: 300_000 });
  root = await mkdtemp(join(tmpdir(), 'fleetts-drain-'));
  await chmod(root, 0o755);
  demo = new WebFarmDemo({
    clock: systemClock,
    progress: () => undefined,
    stateDir: join(root, 'state'),
    contextFile: join(root, 'context.json'),
  });
  await demo.up({ nodes: 3, sharedPath: join(root, 'shared'), etcd: 'external' });
  await demo.installFleetts();
  await demo.prepareSharedStorage();
  await demo.deploy([1, 2, 3]);
  await demo.waitForFarm(120_000);
});

test.after.always(async () => {
  await demo?.close({ down: true }).catch((err: unknown) => console.error('close failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

function describe(r: AbResult): string {
  return (
    `${r.complete} requests, ${r.failed} failed (${r.failedDetail}), ${r.non2xx} non-2xx, ` +
    `${Math.round(r.requestsPerSecond)} req/s, longest ${r.longestMs} ms${r.output === '' ? '' : `\n${r.output}`}`
  );
}

interface MachineRow {
  machine: string;
  metadata: Record<string, string>;
  units: number;
  state: string | null;
}

async function machineRow(d: WebFarmDemo, host: string): Promise<MachineRow | undefined> {
  const r = await d.fleetts([
    'list-machines',
    '-o',
    'json',
    '--fields',
    'machine,metadata,units,state',
    '-l',
  ]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as MachineRow[]).find((m) => m.metadata['hostname'] === host);
}

test.serial(
  'drain a backend host under load: one group at a time, no failed request, kept across a restart; undrain',
  async (t) => {
    const d = farm();
    const lb = d.lbAddress();
    const victim = d.backendOnlyHost();
    if (lb === undefined || victim === undefined) return t.fail('no balancer, or no backend-only host');
    const units = d.timeline.unitsOn(victim);
    t.true(
      units.some((u) => u.startsWith('web@')),
      `${victim} runs a web instance (${units.join(', ')})`,
    );

    const load = runAb({ url: `http://${lb}/`, concurrency: 50, seconds: 25 });
    await systemClock.sleep(3_000);
    const drain = await d.fleetts(['drain', victim, '--deadline', '3m'], { timeoutMs: 240_000 });
    const r = await load;
    t.log(`fleetts drain ${victim}:\n${drain.stdout}${drain.stderr}`);
    t.log(`load: ${describe(r)}`);
    t.is(drain.code, 0, drain.stderr);
    t.is(r.exitCode, 0, describe(r));
    t.is(r.failed, 0, describe(r));
    t.is(r.non2xx, 0, describe(r));

    // Each web instance moved with its sidekick, reported active (and announced) before the next moved.
    const lines = drain.stdout.trim().split('\n');
    for (const u of units.filter((x) => x.startsWith('web@'))) {
      const i = /^web@(\d+)\.unit$/.exec(u)?.[1];
      const moving = lines.findIndex((l) => l.startsWith('Moving ') && l.includes(u));
      const up = lines.findIndex(
        (l) => l.startsWith(`${u}: active (running) on `) && l.endsWith('announced under services/web'),
      );
      t.true(moving >= 0 && up > moving, `${u} moved and came up announced:\n${drain.stdout}`);
      t.true(
        lines.some((l) => l.startsWith(`web-discovery@${i}.unit: active (running) on `)),
        drain.stdout,
      );
      const next = lines.findIndex((l, j) => j > moving && l.startsWith('Moving '));
      t.true(next === -1 || next > up, `nothing else moved before ${u} was up:\n${drain.stdout}`);
    }
    t.regex(lines.at(-1) ?? '', new RegExp(`^Machine ${victim} \\(.+\\) drained: no units left`));
    t.like(await machineRow(d, victim), { units: 0, state: 'drained' });
    await d.waitForFarm(60_000);

    // A restart of its fleetd (the host power-cycled): still drained, still empty.
    await d.powerOff(victim);
    await d.powerOn(victim, { settleMs: 3_000 });
    const after = await waitFor('the host back in list-machines', () => machineRow(d, victim), 60_000);
    t.like(after, { units: 0, state: 'drained' });

    // Undrain: it takes placements again (the emptiest host gets the next unit); nothing moves back.
    const un = await d.fleetts(['undrain', victim]);
    t.is(un.code, 0, un.stderr);
    t.like(await machineRow(d, victim), { state: null });
    const more = await d.startGroups([['web@4.unit', 'web-discovery@4.unit']]);
    t.is(more[0]?.code, 0);
    t.is(d.hostOf('web@4.unit'), victim, 'the undrained (empty) host takes the new instance');
    for (const u of units) t.not(d.hostOf(u), victim, `${u} stays where it moved`);
  },
);
