// The dashboard (/ui, docs/dashboard.md) in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, on a real dev cluster (3 hosts, network namespaces, external etcd, 2 s lease).
// The browser reaches the hosts' unix sockets through `fleetts dashboard` (a real CLI process),
// enters the token it printed, and shows the cluster. A host is powered off: without a reload, the
// page shows it down, its unit running on another host, its service instance announced from there,
// and the failover's timeline (host.lost → unit.moved → unit.started). The screenshot the README
// shows (docs/img/dashboard-failover.png) is taken then.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan } from '../../src/dev/plan.js';
import { ROOT, runBin } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

const LEASE_TTL_MS = 2_000;
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, 'docs', 'img', 'dashboard-failover.png');
const UNITS = ['tick1.unit', 'tick2.unit', 'tick3.unit'];
let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the dev cluster tests need root (network namespaces); run them as root');
  root = await mkdtemp(join(tmpdir(), 'fleetts-dashboard-'));
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

/** `fleetts dashboard` as its own process: the address and token it prints. */
async function dashboard(
  endpoints: readonly string[],
): Promise<{ url: string; token: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [`${ROOT}bin/fleetts.js`, 'dashboard', '--listen', '127.0.0.1:0'], {
    cwd: root,
    env: { ...process.env, FLEETTS_ENDPOINT: endpoints.join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const [, url, token] = await waitFor(
    'fleetts dashboard to print its address and token',
    () => {
      if (child.exitCode !== null) throw new Error(`fleetts dashboard exited: ${out}`);
      return /^dashboard: (\S+)\ntoken: +(\S+)/m.exec(out) ?? undefined;
    },
    { timeoutMs: 30_000 },
  );
  return { url: url ?? '', token: token ?? '', child };
}

/** What the page shows, read from its DOM. */
interface Shown {
  hosts: { id: string; state: string; units: { name: string; active: string }[] }[];
  services: { service: string; instances: string[] }[];
  timeline: { machine: string; rows: { kind: string; subject: string }[] }[];
  loadedAt: number;
  reconnects: string[];
}

/**
 * Reads the page's DOM, in the page (as source text: this program is typed for Node, not the DOM).
 * Hosts are `[data-host]` cards with `[data-unit]` items, services `[data-service]` cards with
 * `[data-instance]` items, failover timelines `[data-failover]` tables with `[data-kind]` rows.
 */
const READ_PAGE = `(() => {
  const all = (root, sel) => Array.from(root.querySelectorAll(sel));
  return {
    hosts: all(document, '#hosts [data-host]').map((h) => ({
      id: h.dataset.host,
      state: h.dataset.state,
      units: all(h, '[data-unit]').map((u) => ({ name: u.dataset.unit, active: u.dataset.active ?? '' })),
    })),
    services: all(document, '[data-service]').map((s) => ({
      service: s.dataset.service,
      instances: all(s, '[data-instance]').map((i) => i.dataset.instance),
    })),
    timeline: all(document, '[data-failover]').map((f) => ({
      machine: f.dataset.failover,
      rows: all(f, 'tr').map((r) => ({ kind: r.dataset.kind, subject: r.children[2]?.textContent ?? '' })),
    })),
    loadedAt: window.fleettsDashboard.loadedAt,
    reconnects: window.fleettsDashboard.state.reconnects,
  };
})()`;

async function shown(page: Page): Promise<Shown> {
  return (await page.evaluate(READ_PAGE)) as Shown;
}

test.serial(
  'the dashboard shows a powered-off host down and its unit moved, live, without a reload',
  async (t) => {
    if (dev === undefined || plan === undefined) return t.fail('the dev cluster did not come up');
    const hosts = plan.hosts;
    const first = hosts[0];
    if (first === undefined) return t.fail('no hosts');
    // Each unit is a backend announcing itself as service `tick` (its check: etcd's client port,
    // which stays up; the instance goes with the unit's host).
    const etcd = new URL(plan.etcd.clientUrls[0] ?? '');
    for (const unit of UNITS)
      await writeFile(
        join(root, unit),
        `[Service]\nExecStart=${process.execPath} ${ROOT}bin/fleetts.js announce --service tick ` +
          `--addr \${FLEETTS_MACHINE_IP}:8000 --check tcp://${etcd.host} --ttl 5s\n`,
      );
    const env = { FLEETTS_ENDPOINT: `unix://${first.apiSocket}` };
    const started = await runBin('fleetts', ['start', ...UNITS], { env, cwd: root, timeoutMs: 90_000 });
    t.is(started.code, 0, started.stderr);

    const ui = await dashboard(plan.endpoints);
    t.teardown(() => ui.child.kill('SIGKILL'));
    // The port gives nothing without the token it printed.
    const refused = await fetch(new URL('/v1/machines', ui.url));
    t.is(refused.status, 401);

    const browser: Browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container: chromium's sandbox needs user namespaces it does not get here.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
      defaultViewport: { width: 1280, height: 900 },
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(String(err)));
    await page.goto(ui.url);
    await page.waitForSelector('#token', { visible: true });
    await page.type('#token', ui.token);
    await page.click('#token-form button');

    const everyUnitActive = (s: Shown): boolean =>
      UNITS.every((u) =>
        s.hosts.some((h) => h.state === 'up' && h.units.some((x) => x.name === u && x.active === 'active')),
      );
    const before = await waitFor(
      'the page to show 3 hosts up, the units active and announced',
      async () => {
        const s = await shown(page);
        return s.hosts.filter((h) => h.state === 'up').length === 3 &&
          everyUnitActive(s) &&
          s.services.find((x) => x.service === 'tick')?.instances.length === UNITS.length
          ? s
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    ).catch(async (err: unknown) => {
      t.log(JSON.stringify(await shown(page)), problems);
      throw err;
    });
    const victim = hosts.find((h) =>
      before.hosts.find((x) => x.id === h.machineId)?.units.some((u) => u.name === UNITS[0]),
    );
    if (victim === undefined) return t.fail(`${UNITS[0]} is on no host: ${JSON.stringify(before)}`);
    const moving = before.hosts.find((h) => h.id === victim.machineId)?.units.map((u) => u.name) ?? [];

    const offAt = Date.now();
    await dev.powerOff(victim.name);
    const after = await waitFor(
      `the page to show ${victim.machineId} down and ${moving.join(', ')} active elsewhere`,
      async () => {
        const s = await shown(page);
        const down = s.hosts.find((h) => h.id === victim.machineId)?.state === 'down';
        const moved = moving.every((u) =>
          s.hosts.some(
            (h) =>
              h.id !== victim.machineId &&
              h.state === 'up' &&
              h.units.some((x) => x.name === u && x.active === 'active'),
          ),
        );
        const rows = s.timeline.find((f) => f.machine === victim.machineId)?.rows ?? [];
        const timeline = moving.every(
          (u) =>
            rows.some((r) => r.kind === 'unit.moved' && r.subject === u) &&
            rows.some((r) => r.kind === 'unit.started' && r.subject === u),
        );
        return down && moved && timeline && everyUnitActive(s) ? s : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    ).catch(async (err: unknown) => {
      t.log(JSON.stringify(await shown(page)), problems);
      throw err;
    });
    await mkdir(join(ROOT, 'docs', 'img'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    const shownMs = Date.now() - offAt;
    t.is(after.loadedAt, before.loadedAt, 'the page was not reloaded');
    // The stream from a dead fleetd ends at once (through fleetts dashboard), and the page goes on
    // from another; it never had to wait for its silence timeout.
    t.false(
      after.reconnects.some((r) => r.includes('silent')),
      JSON.stringify(after.reconnects),
    );
    const rows = after.timeline.find((f) => f.machine === victim.machineId)?.rows ?? [];
    t.is(rows[0]?.kind, 'host.lost', JSON.stringify(rows));
    for (const u of moving) {
      const moved = rows.findIndex((r) => r.kind === 'unit.moved' && r.subject === u);
      const restarted = rows.findIndex((r) => r.kind === 'unit.started' && r.subject === u);
      t.true(moved > 0 && moved < restarted, JSON.stringify(rows));
    }
    // The service's instances follow their units (the dead host's one is withdrawn, then announced
    // again from the new host): the page shows the announced ones after the listing is re-read.
    const announced = await waitFor(
      'every tick instance announced again',
      async () =>
        (await shown(page)).services.find((x) => x.service === 'tick')?.instances.length === UNITS.length,
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch(() => false);
    t.true(announced, JSON.stringify((await shown(page)).services));
    t.deepEqual(problems, [], 'no script errors in the page');
    t.log(
      `lease ${LEASE_TTL_MS} ms; the page showed the failover ${shownMs} ms after the power-off began; ` +
        `stream reopened: ${JSON.stringify(after.reconnects)}`,
    );
  },
);
