// The dashboard (/ui, docs/dashboard.md) in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, on a real dev cluster (3 hosts, network namespaces, external etcd, 2 s lease).
// Two pages: one served by a host's fleetd on TCP, with the cluster's API token typed in; one
// through `fleetts dashboard` (a real CLI process) over the hosts' unix sockets, the victim's
// first, with the token it printed. A host is powered off: without a reload, each page shows it down, its unit running on
// another host, and the failover's timeline (host.lost → unit.moved → unit.started); then the
// unit's service instance announced again. Before that, each host card shows the host's memory,
// and a reload recorded by `fleetts upstream` (its upstreams/ key) shows in the event feed. The screenshot the README shows
// (docs/img/dashboard-failover.png) is the first page's, taken then.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan } from '../../src/dev/plan.js';
import { ReloadRecorder } from '../../src/discovery/reload-recorder.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
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
  hosts: { id: string; state: string; memory: number; units: { name: string; active: string }[] }[];
  services: { service: string; instances: string[] }[];
  timeline: { machine: string; rows: { kind: string; subject: string }[] }[];
  feed: { kind: string; text: string }[];
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
      memory: Number(h.dataset.memory),
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
    feed: all(document, '#events [data-kind]').map((e) => ({ kind: e.dataset.kind, text: e.textContent })),
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
    const listed = await runBin('fleetts', ['list-units', '-o', 'json'], { env, cwd: root });
    const rows = JSON.parse(listed.stdout) as { unit: string; machine: string }[];
    const victim = hosts.find((h) => h.machineId === rows.find((r) => r.unit === UNITS[0])?.machine);
    const watcher = hosts.find((h) => h !== victim);
    if (victim === undefined || watcher === undefined)
      return t.fail(`${UNITS[0]} is not placed: ${listed.stdout}`);
    const moving = rows.filter((r) => r.machine === victim.machineId).map((r) => r.unit);

    // Two pages: one served by a surviving host's fleetd on TCP, with the cluster's API token; one
    // through `fleetts dashboard` over every host's unix socket, the victim's first: its stream
    // breaks with the power-off, and the page goes on through the next host's.
    const direct = {
      url: `http://${watcher.apiListen}/ui`,
      token: (await readFile(plan.apiTokenFile, 'utf8')).trim(),
    };
    const proxied = await dashboard(
      [victim, ...hosts.filter((h) => h !== victim)].map((h) => `unix://${h.apiSocket}`),
    );
    t.teardown(() => proxied.child.kill('SIGKILL'));
    // Neither gives data without its token.
    t.is((await fetch(new URL('/v1/machines', direct.url))).status, 401);
    t.is((await fetch(new URL('/v1/machines', proxied.url))).status, 401);

    const browser: Browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container: chromium's sandbox needs user namespaces it does not get here.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
      defaultViewport: { width: 1280, height: 900 },
    });
    t.teardown(() => browser.close());
    const problems: string[] = [];
    const open = async (where: { url: string; token: string }): Promise<Page> => {
      const page = await browser.newPage();
      page.on('pageerror', (err) => problems.push(`${where.url}: ${String(err)}`));
      await page.goto(where.url);
      await page.waitForSelector('#token', { visible: true });
      await page.type('#token', where.token);
      await page.click('#token-form button');
      return page;
    };
    const pages = { direct: await open(direct), proxied: await open(proxied) };

    const everyUnitActive = (s: Shown): boolean =>
      UNITS.every((u) =>
        s.hosts.some((h) => h.state === 'up' && h.units.some((x) => x.name === u && x.active === 'active')),
      );
    const until = async (page: Page, what: string, done: (s: Shown) => boolean): Promise<Shown> =>
      waitFor(
        what,
        async () => {
          const s = await shown(page);
          return done(s) ? s : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      ).catch(async (err: unknown) => {
        t.log(JSON.stringify(await shown(page)), problems);
        throw err;
      });
    const before = {
      direct: await until(pages.direct, 'the direct page to show the cluster', (s) => ready(s)),
      proxied: await until(pages.proxied, 'the proxied page to show the cluster', (s) => ready(s)),
    };
    function ready(s: Shown): boolean {
      return (
        s.hosts.filter((h) => h.state === 'up').length === 3 &&
        everyUnitActive(s) &&
        s.services.find((x) => x.service === 'tick')?.instances.length === UNITS.length
      );
    }
    t.true(
      before.direct.hosts.find((h) => h.id === victim.machineId)?.units.some((u) => u.name === UNITS[0]),
      JSON.stringify(before.direct.hosts),
    );
    // Each host's memory, as its fleetd recorded it (the dev hosts share this machine's memory).
    t.deepEqual(
      before.direct.hosts.map((h) => h.memory),
      hosts.map(() => totalmem()),
    );

    // A reload recorded as `fleetts upstream` records it (upstreams/lb-test/web) is in the feed.
    const registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints] });
    t.teardown(() => registry.close());
    const recorder = new ReloadRecorder({
      registry,
      clock: systemClock,
      log: silentLogger,
      host: 'lb-test',
      service: 'web',
    });
    t.teardown(() => recorder.close());
    recorder.record({ text: 'upstream web {}\n', servers: 2, revision: 1 });
    await until(pages.direct, 'the reload in the event feed', (s) =>
      s.feed.some(
        (e) => e.kind === 'upstream.reloaded' && e.text.includes('web  nginx on lb-test: 2 server(s)'),
      ),
    );

    const offAt = Date.now();
    await dev.powerOff(victim.name);
    const failedOver = (s: Shown): boolean => {
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
      return down && moved && timeline && everyUnitActive(s);
    };
    const what = `${victim.machineId} down and ${moving.join(', ')} active elsewhere`;
    const after = { direct: await until(pages.direct, `the direct page to show ${what}`, failedOver) };
    const directMs = Date.now() - offAt;
    await mkdir(join(ROOT, 'docs', 'img'), { recursive: true });
    await pages.direct.screenshot({ path: SCREENSHOT, fullPage: true });
    const proxiedAfter = await until(pages.proxied, `the proxied page to show ${what}`, failedOver);
    const proxiedMs = Date.now() - offAt;

    for (const [name, s] of [
      ['direct', after.direct],
      ['proxied', proxiedAfter],
    ] as const) {
      t.is(s.loadedAt, before[name].loadedAt, `${name}: the page was not reloaded`);
      // A dead fleetd's stream ends at once (fleetts dashboard passes that on), and the page goes on
      // from another; it never had to wait for its silence timeout.
      t.false(
        s.reconnects.some((r) => r.includes('silent')),
        `${name}: ${JSON.stringify(s.reconnects)}`,
      );
      const rows = s.timeline.find((f) => f.machine === victim.machineId)?.rows ?? [];
      t.is(rows[0]?.kind, 'host.lost', `${name}: ${JSON.stringify(rows)}`);
      for (const u of moving) {
        const moved = rows.findIndex((r) => r.kind === 'unit.moved' && r.subject === u);
        const restarted = rows.findIndex((r) => r.kind === 'unit.started' && r.subject === u);
        t.true(moved > 0 && moved < restarted, `${name}: ${JSON.stringify(rows)}`);
      }
    }
    // The service's instances follow their units (the dead host's one is withdrawn, then announced
    // again from the new host): the page shows the announced ones after the listing is re-read.
    const announced = await until(pages.direct, 'every tick instance announced again', (s) => {
      const tick = s.services.find((x) => x.service === 'tick');
      return tick?.instances.length === UNITS.length;
    });
    t.is(announced.services.find((x) => x.service === 'tick')?.instances.length, UNITS.length);
    t.deepEqual(problems, [], 'no script errors in the pages');
    t.log(
      `lease ${LEASE_TTL_MS} ms; after the power-off began, the page served by ${watcher.name} showed the failover ` +
        `after ${directMs} ms, the one through fleetts dashboard after ${proxiedMs} ms (victim ${victim.name}); ` +
        `streams reopened: direct ${JSON.stringify(after.direct.reconnects)}, proxied ${JSON.stringify(proxiedAfter.reconnects)}`,
    );
  },
);
