// Rolling restarts and rollouts of the real web farm (examples/process: Apache backends with their
// `fleetts announce` sidekicks, nginx following them) on a 3-host dev cluster, with a steady client
// through the balancer and a sampler asking each instance's own Apache: `restart web@1 web@2 web@3`
// keeps at least 2 of 3 serving at every sample; a rollout of a new page ends with every instance serving
// it; a broken file stops after the first instance with exit 1 while the others serve; rollback.
// The tests run in order on one cluster (docs/rollout.md).
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { webPort } from '../../src/demo/farm-files.js';
import { WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { ensureWebPackages } from '../helpers/web.js';

let root = '';
let demo: WebFarmDemo | undefined;
const WEBS = ['web@1.unit', 'web@2.unit', 'web@3.unit'];

function farm(): WebFarmDemo {
  if (demo === undefined) throw new Error('the farm did not come up (see the first failure)');
  return demo;
}

test.before(async (t) => {
  // A 3-host cluster and the farm: minutes on the loaded shared machine (ava's default is 2 min).
  t.timeout(600_000);
  if (process.getuid?.() !== 0)
    throw new Error('the rolling e2e test needs root (network namespaces, mounts); run it as root');
  await ensureWebPackages();
  root = await mkdtemp(join(tmpdir(), 'fleetts-rolling-'));
  // Apache's children (www-data) read the site on the shared path under here.
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
  // nginx may have marked a backend failed while Apache was starting (fail_timeout 5 s).
  for (let i = 0; i < 12 && (await demo.probe(12)).failed > 0; i++) await systemClock.sleep(1_000);
});

test.after.always(async () => {
  await demo?.close({ down: true }).catch((err: unknown) => console.error('close failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

/**
 * Samples how many of web@1..3 serve their page (a GET to each instance's own Apache, at once)
 * every 100 ms while `during` runs, and the steady client's answers over the same time. (Not the
 * agents' statuses in etcd: they go with a host's lease, which lapses for a moment now and then
 * on this loaded machine while the processes go on serving.)
 */
async function sampled<T>(during: () => Promise<T>): Promise<{
  result: T;
  minServing: number;
  samples: number;
  failed: number;
  sent: number;
  reasons: string;
}> {
  const d = farm();
  const client = await d.startClient(20);
  const from = Date.now();
  let stop = false;
  let minServing = 3;
  let samples = 0;
  const sampler = (async () => {
    while (!stop) {
      const serving = await Promise.all(
        WEBS.map((u, i) =>
          page(u, i, 5_000).then(
            (p) => p.status === 200,
            () => false,
          ),
        ),
      );
      minServing = Math.min(minServing, serving.filter(Boolean).length);
      samples++;
      await systemClock.sleep(100);
    }
  })();
  try {
    const result = await during();
    // Requests sent until now have had their answer (or their 10 s) by the time stopClient ends.
    await systemClock.sleep(1_000);
    return { result, minServing, samples, ...summary(client.counts(from)) };
  } finally {
    stop = true;
    await sampler;
    await d.stopClient();
  }
}

function summary(c: { failed: number; noLb: number; sent: number; reasons: ReadonlyMap<string, number> }) {
  return {
    failed: c.failed + c.noLb,
    sent: c.sent,
    reasons: [...c.reasons].map(([r, n]) => `${r} ×${n}`).join('; '),
  };
}

/** web@(i+1)'s page from its own Apache, on the host it runs on. */
async function page(unit: string, i: number, timeoutMs: number): Promise<{ status: number; body: string }> {
  const d = farm();
  const host = d.plan.hosts.find((h) => h.name === d.hostOf(unit));
  const res = await fetch(`http://${host?.ip ?? '?'}:${webPort(i + 1)}/`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, body: await res.text() };
}

/** What each instance's own Apache serves now (its page names its release). */
async function releases(): Promise<string[]> {
  const out: string[] = [];
  for (const [i, unit] of WEBS.entries()) {
    const p = await page(unit, i, 10_000);
    out.push(/release (\S+)/.exec(p.body)?.[1] ?? `(no release in ${p.status})`);
  }
  return out;
}

/** web@.unit from shared storage with its WEB_RELEASE set, or its ExecStart broken. */
async function webTemplate(change: { release?: string; broken?: boolean }): Promise<string> {
  const d = farm();
  let text = await readFile(join(d.paths.units, 'web@.unit'), 'utf8');
  if (change.release !== undefined) text = text.replace(/WEB_RELEASE=\S+/, `WEB_RELEASE=${change.release}`);
  if (change.broken === true) text = text.replace(/-f \S+apache\.conf/, '-f /nonexistent/apache.conf');
  const dir = await mkdtemp(join(root, 'units-'));
  await writeFile(join(dir, 'web@.unit'), text);
  return dir;
}

/**
 * Why a restart or rollout stopped at a unit (it names the unit): the unit's and its sidekick's
 * status and journal, the units' placements, and what each host's fleetd did about them meanwhile
 * (actions, moves, lost leases, fencing): a move or a lost lease explains a late announcement.
 */
async function explain(t: ExecutionContext, stderr: string): Promise<void> {
  const d = farm();
  const unit = /stopped (?:at|in batch \d+\/\d+:) (web@\d)\.unit/.exec(stderr)?.[1] ?? 'web@1';
  const i = unit.slice(4);
  for (const args of [
    ['status', `${unit}.unit`],
    ['status', `web-discovery@${i}.unit`],
    ['journal', '-n', '40', `web-discovery@${i}.unit`],
    ['list-units'],
  ])
    t.log((await d.fleetts(args)).stdout);
  const about = new RegExp(`${unit}\\.unit|web-discovery@${i}\\.unit|membership|fenced|engine\\.|peer_`);
  for (const h of d.plan.hosts) {
    const log = await readFile(join(h.stateDir, 'fleetd.log'), 'utf8').catch(() => '');
    const lines = log.split('\n').filter((l) => about.test(l) && !l.includes('"api.request'));
    t.log(
      `${h.name} fleetd.log (${lines.length} lines about it, the last 40):\n${lines.slice(-40).join('\n')}`,
    );
  }
}

test.serial(
  'restart web@1 web@2 web@3 is rolling: at least 2 of 3 serving at every sample, no failed GET',
  async (t) => {
    t.timeout(600_000);
    const d = farm();
    const { result: r, ...s } = await sampled(() => d.fleetts(['restart', ...WEBS], { timeoutMs: 300_000 }));
    if (r.code !== 0 || s.failed > 0) await explain(t, r.stderr);
    t.is(r.code, 0, r.stderr + r.stdout);
    t.log(
      `${s.samples} samples, at least ${s.minServing} serving; client: ${s.failed} of ${s.sent} failed ${s.reasons}`,
    );
    t.true(s.samples > 10);
    t.true(s.minServing >= 2, `only ${s.minServing} of 3 serving at some sample`);
    t.is(s.failed, 0, s.reasons);
    for (const u of WEBS)
      t.regex(
        r.stdout,
        new RegExp(
          `Unit ${u.replace('.', '\\.')} active on .*announced as services/web/${u.replace('.', '\\.')}`,
        ),
      );
  },
);

test.serial(
  'a rollout of a new page replaces one instance at a time; every instance ends up serving it',
  async (t) => {
    t.timeout(600_000);
    const d = farm();
    t.deepEqual(await releases(), ['1', '1', '1']);
    const dir = await webTemplate({ release: '2' });
    const dry = await d.fleetts(['rollout', '--dry-run', 'web@.unit'], { cwd: dir });
    t.is(dry.code, 0, dry.stderr);
    t.regex(dry.stdout, /batch 3: web@3\.unit on /);
    const { result: r, ...s } = await sampled(() =>
      d.fleetts(['rollout', 'web@.unit'], { cwd: dir, timeoutMs: 300_000 }),
    );
    if (r.code !== 0 || s.failed > 0) await explain(t, r.stderr);
    t.is(r.code, 0, r.stderr + r.stdout);
    t.log(
      `${s.samples} samples, at least ${s.minServing} serving; client: ${s.failed} of ${s.sent} failed ${s.reasons}`,
    );
    t.true(s.minServing >= 2, `only ${s.minServing} of 3 serving at some sample`);
    t.is(s.failed, 0, s.reasons);
    t.deepEqual(await releases(), ['2', '2', '2']);
  },
);

test.serial(
  'a rollout of a broken file stops after the first instance with exit 1; the others serve; rollback restores',
  async (t) => {
    t.timeout(600_000);
    const d = farm();
    const dir = await webTemplate({ release: '3', broken: true });
    const { result: r, ...s } = await sampled(() =>
      d.fleetts(['rollout', '--health-timeout', '90s', 'web@.unit'], { cwd: dir, timeoutMs: 300_000 }),
    );
    t.is(r.code, 1, r.stdout);
    t.regex(r.stderr, /rollout of web@\.unit stopped in batch 1\/3: web@1\.unit: /);
    t.regex(r.stderr, /still on the previous file, and serving: web@2\.unit, web@3\.unit/);
    t.log(r.stderr.trim());
    t.true(s.minServing >= 2, `only ${s.minServing} of 3 serving at some sample`);
    t.is(s.failed, 0, s.reasons);
    const listed = await d.fleetts(['list-units', '-o', 'json', '--fields', 'unit,active']);
    const rows = JSON.parse(listed.stdout) as { unit: string; active: string }[];
    t.is(rows.find((x) => x.unit === 'web@2.unit')?.active, 'active');
    t.is(rows.find((x) => x.unit === 'web@3.unit')?.active, 'active');

    const back = await d.fleetts(['rollout', '--rollback', 'web@.unit'], { timeoutMs: 300_000 });
    t.is(back.code, 0, back.stderr + back.stdout);
    t.regex(
      back.stdout,
      /Rolled back web@\.unit \([0-9a-f]{12}\): 1 running instance replaced, 2 had it already/,
    );
    t.deepEqual(await releases(), ['2', '2', '2']);
  },
);
