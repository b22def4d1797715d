// `fleetts upstream` as a real process with real etcd, nginx and Apache: it renders exactly the
// live backends, validates, swaps and reloads; nginx proxies to them, answers 503 with a clear page
// when there is none, and a bad template never reaches nginx.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { DEFAULT_SERVER_PARAMS, renderUpstream } from '../../src/discovery/render-upstream.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { LeaseHandle } from '../../src/registry/registry.js';
import { systemClock } from '../../src/lib/clock.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import {
  httpGet,
  startApache,
  startNginx,
  waitFor,
  type RunningApache,
  type RunningNginx,
} from '../helpers/web.js';
import { type CliProcess, spawnCli } from './cli-process.js';

const etcd = useEtcd(test);
const cleanups: (() => Promise<unknown>)[] = [];
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});
const since = '2026-01-01T00:00:00.000Z';

interface Farm {
  readonly registry: EtcdRegistry;
  readonly lease: LeaseHandle;
  readonly nginx: RunningNginx;
  readonly out: string;
  readonly fallback: string;
  readonly upstream: CliProcess;
  announce(instance: string, address: string): Promise<number>;
  /** What the file must hold for the registry's current instances. */
  expected(): Promise<string>;
}

async function farm(options: { template?: string; emptyHold?: string } = {}): Promise<Farm> {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  cleanups.push(() => registry.close());
  // The test's announcements: long-lived, so that a starved test process (seen at a load of 22
  // on 2 cores) does not lose them mid-burst; nothing here tests their expiry.
  const lease = await registry.openLease({ ttlMs: 60_000 });
  cleanups.push(() => lease.close());
  let fallback = '';
  // nginx needs the upstream before it can start: seed the file `fleetts upstream` writes for no instance.
  const nginx = await startNginx({
    upstream: 'web',
    files: (dir) => {
      fallback = `unix:${dir}/fallback.sock`;
      return {
        'upstream-web.conf': renderUpstream([], { name: 'web', service: 'web', fallbackListen: fallback }),
      };
    },
  });
  cleanups.push(() => nginx.stop());
  const out = join(nginx.confDir, 'upstream-web.conf');
  const args = [
    'upstream',
    '--service',
    'web',
    '--out',
    out,
    '--check-cmd',
    nginx.checkCmd,
    '--reload-cmd',
    nginx.reloadCmd,
    '--machine',
    'lb1',
  ];
  args.push('--fallback-listen', fallback, '--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix);
  if (options.emptyHold !== undefined) args.push('--empty-hold', options.emptyHold);
  if (options.template !== undefined) {
    const file = join(nginx.dir, 'upstream.tpl');
    await writeFile(file, options.template);
    args.push('--template', file);
  }
  const upstream = spawnCli(args);
  cleanups.push(() => upstream.stop('SIGKILL'));
  return {
    registry,
    lease,
    nginx,
    out,
    fallback,
    upstream,
    announce: (instance, address) => registry.announce(lease, { service: 'web', instance, address, since }),
    expected: async () =>
      renderUpstream((await registry.listServiceInstances('web')).items, {
        name: 'web',
        service: 'web',
        fallbackListen: fallback,
      }),
  };
}

async function apache(page: string): Promise<RunningApache> {
  const a = await startApache({ page });
  cleanups.push(() => a.cleanup());
  return a;
}

/**
 * Waits until the file equals what the registry's instances render to, `fleetts upstream` has
 * reloaded nginx after writing it, and nginx has put that reload into effect.
 */
async function synced(f: Farm): Promise<string> {
  return waitFor('the upstream file to match the registry and nginx to reload', async () => {
    const want = await f.expected();
    const have = await readFile(f.out, 'utf8');
    if (have !== want) return undefined;
    const reloads = f.upstream.events('upstream.reloaded');
    const mtime = (await stat(f.out)).mtimeMs;
    if (reloads.length === 0 || (reloads.at(-1)?.time ?? 0) < Math.floor(mtime)) return undefined;
    return (await f.nginx.appliedReloads()) >= reloads.length ? have : undefined;
  });
}

/** The reloads recorded in etcd (`upstreams/`), as the event stream has them. */
async function recorded(f: Farm): Promise<{ host: string; service: string; servers: number }[]> {
  return (await f.registry.eventState()).events.flatMap((e) =>
    e.kind === 'upstream.reloaded' ? [{ host: e.host, service: e.service, servers: e.servers }] : [],
  );
}

async function pages(url: string, n: number): Promise<{ statuses: number[]; bodies: Set<string> }> {
  const statuses: number[] = [];
  const bodies = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await httpGet(url);
    statuses.push(res.status);
    bodies.add(res.body);
  }
  return { statuses, bodies };
}

test.serial(
  'renders exactly the live backends; nginx proxies to each; retries past a dead one; 503 page when none',
  async (t) => {
    const [a, b] = [await apache('<p>backend A</p>\n'), await apache('<p>backend B</p>\n')];
    // The last one withdrawn is rendered out at once (the next test holds it back, by default).
    const f = await farm({ emptyHold: '0' });
    await synced(f);
    t.true(f.upstream.running());

    // No instance: nginx loads and answers 503 with the clear page.
    let res = await httpGet(f.nginx.url);
    t.is(res.status, 503);
    t.regex(res.body, /No instance of the service <b>web<\/b> is up right now/);
    t.is(res.headers['retry-after'], '2');

    await f.announce('a', a.address);
    await f.announce('b', b.address);
    const text = await synced(f);
    t.regex(
      text,
      new RegExp(`server ${a.address} ${DEFAULT_SERVER_PARAMS};[^\\n]*\\n {4}server ${b.address} `),
    );
    // Each reload is recorded under the sidekick's lease, for the event stream (upstream.reloaded).
    await waitFor('the reload with two servers in etcd', async () =>
      (await recorded(f)).some((r) => r.servers === 2) ? true : undefined,
    );
    t.deepEqual(await recorded(f), [{ host: 'lb1', service: 'web', servers: 2 }]);
    let seen = await pages(f.nginx.url, 6);
    t.deepEqual(seen.statuses, [200, 200, 200, 200, 200, 200]);
    t.deepEqual(seen.bodies, new Set([a.page, b.page]), 'round robin reaches both backends');

    // A dead backend whose key is still there (its host not yet declared dead): no failed request.
    await a.stopServer();
    seen = await pages(f.nginx.url, 8);
    t.deepEqual(seen.statuses, [200, 200, 200, 200, 200, 200, 200, 200]);
    t.deepEqual(seen.bodies, new Set([b.page]));

    await f.registry.withdraw('web', 'a');
    t.notRegex(await synced(f), new RegExp(a.address));
    seen = await pages(f.nginx.url, 3);
    t.deepEqual(seen.bodies, new Set([b.page]));

    // Every backend failing while still announced: nginx tries each, then answers 502. Three
    // failures mark b down; it answers as soon as it is back all the same, as the never-failing
    // backup of itself: errors never leave nginx refusing every request for fail_timeout.
    await b.stopServer();
    for (let i = 0; i < 3; i++) t.is((await httpGet(f.nginx.url)).status, 502);
    await b.start();
    t.is((await httpGet(f.nginx.url)).status, 200);

    await f.registry.withdraw('web', 'b');
    await synced(f);
    res = await httpGet(f.nginx.url);
    t.is(res.status, 503);
    t.regex(res.body, /503 Service Unavailable/);
    t.is(f.upstream.events('upstream.invalid').length, 0);
    await waitFor('the reload with no server in etcd', async () =>
      (await recorded(f)).some((r) => r.servers === 0) ? true : undefined,
    );
    // Stopped, it revokes its lease: its record goes at once.
    t.is(await f.upstream.stop('SIGTERM'), 0);
    t.deepEqual(await recorded(f), []);
  },
);

test.serial('a burst of 20 changes makes few reloads; every key change → nginx reloaded', async (t) => {
  const f = await farm();
  await synced(f);
  const before = f.upstream.events('upstream.reloaded').length;
  const nginxBefore = await f.nginx.reloads();
  // The burst must be one for `fleetts upstream`, however slowly a loaded machine writes it: the
  // process is paused while the 20 changes go in, and sees them all in its first debounce window.
  f.upstream.child.kill('SIGSTOP');
  try {
    for (let i = 0; i < 20; i++)
      await f.announce(`i${String(i).padStart(2, '0')}`, `127.0.0.1:${20_000 + i}`);
  } finally {
    f.upstream.child.kill('SIGCONT');
  }
  const text = await synced(f);
  t.is(text.match(new RegExp(DEFAULT_SERVER_PARAMS, 'g'))?.length, 20);
  const reloads = f.upstream.events('upstream.reloaded').length - before;
  t.log(`burst of 20 changes → ${reloads} reload(s)`);
  t.true(reloads >= 1 && reloads <= 3, `${reloads} reloads for 20 changes`);
  await waitFor('nginx to log the reloads', async () =>
    (await f.nginx.reloads()) - nginxBefore === reloads ? true : undefined,
  );

  // One change at a time: each is followed by its own reload. (How fast: `npm run bench -- discovery`.)
  for (let i = 0; i < 6; i++) {
    const n = f.upstream.events('upstream.reloaded').length;
    if (i % 2 === 0) await f.announce('moving', '127.0.0.1:21000');
    else await f.registry.withdraw('web', 'moving');
    await f.upstream.waitForEvent('upstream.reloaded', { n: n + 1 });
    const text = await synced(f);
    t.is(text.includes('127.0.0.1:21000'), i % 2 === 0, `change ${i + 1} is in the file nginx loaded`);
  }
});

test.serial(
  'an invalid user template fails nginx -t: the old file stays, the error is logged, it keeps running',
  async (t) => {
    const f = await farm({ template: 'upstream {{name}} {\n    {{servers}}\n    bogus_directive on;\n}\n' });
    const seed = await readFile(f.out, 'utf8');
    const invalid = await f.upstream.waitForEvent('upstream.invalid');
    t.regex(String(invalid['output']), /unknown directive "bogus_directive"/);
    t.is(await readFile(f.out, 'utf8'), seed, 'the previous file is back');
    await f.announce('x', '127.0.0.1:21001');
    await f.upstream.waitForEvent('upstream.invalid', { n: 2 });
    t.is(await readFile(f.out, 'utf8'), seed);
    t.true(f.upstream.running(), 'still running, waiting for the next change');
    t.is(f.upstream.events('upstream.reloaded').length, 0);
    t.is(await f.nginx.reloads(), 0, 'nginx was never reloaded');
    t.deepEqual(await recorded(f), [], 'no reload recorded');
    t.is((await httpGet(f.nginx.url)).status, 503, 'nginx still serves the previous configuration');
    t.is(await f.upstream.stop('SIGTERM'), 0);
  },
);

test.serial(
  'every instance gone at once, their leases revoked by an etcd outage: nginx keeps them until they are back',
  async (t) => {
    const a = await apache('<p>backend A</p>\n');
    const f = await farm();
    // An announcer's lease (TTL 2 s), kept alive until etcd freezes for longer than that.
    const lease = await f.registry.openLease({ ttlMs: 2_000 });
    cleanups.push(() => lease.close());
    await f.registry.announce(lease, { service: 'web', instance: 'a', address: a.address, since });
    t.regex(await synced(f), new RegExp(a.address));
    etcd().freeze();
    try {
      await systemClock.sleep(4_000);
    } finally {
      etcd().thaw();
    }
    await waitFor('the key gone with its lease', async () =>
      (await f.registry.listServiceInstances('web')).items.length === 0 ? true : undefined,
    );
    const held = await f.upstream.waitForEvent('upstream.empty_held');
    t.is(held['backends'], 1);
    t.regex(await readFile(f.out, 'utf8'), new RegExp(a.address), 'the file still has the backend');
    t.is((await httpGet(f.nginx.url)).status, 200, 'nginx still proxies to it');
    // Its announcer announces again under a new lease, as fleetts announce does after a lost lease.
    await f.announce('a', a.address);
    await f.upstream.waitForEvent('upstream.empty_ended');
    t.is((await httpGet(f.nginx.url)).status, 200);
    const empty = f.upstream
      .events('upstream.synced')
      .filter((e) => Array.isArray(e['backends']) && e['backends'].length === 0);
    t.deepEqual(empty, [], 'nginx was never reloaded with no backend');
    t.is(f.upstream.events('upstream.empty_released').length, 0);
  },
);
