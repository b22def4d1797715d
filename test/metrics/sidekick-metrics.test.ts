// `--metrics-listen` of the sidekicks, run as real processes against a real etcd: `fleetts upstream`
// counts renders and reloads by result, `fleetts announce` counts checks by result, both time their
// etcd requests, and a bad address is a usage error. The reload command is a shell test here (the
// real nginx is in test/discovery/upstream.test.ts and the dev-cluster test).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { spawnCli } from '../discovery/cli-process.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { metricValue, parsePrometheusText, type Sample } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const since = '2026-01-01T00:00:00.000Z';

async function scrape(port: number): Promise<Sample[] | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  if (res.headers.get('content-type') !== 'text/plain; version=0.0.4; charset=utf-8')
    throw new Error(`content type ${String(res.headers.get('content-type'))}`);
  return parsePrometheusText(await res.text());
}

/** Waits until the scraped value of `name` with `labels` reaches `atLeast`. */
async function reaches(port: number, name: string, labels: Record<string, string>, atLeast: number) {
  return waitFor(`${name}${JSON.stringify(labels)} ≥ ${atLeast}`, async () => {
    const s = await scrape(port);
    const v = s === undefined ? undefined : metricValue(s, name, labels);
    return v !== undefined && v >= atLeast ? s : undefined;
  });
}

test('fleetts upstream --metrics-listen counts renders and reloads by result', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upstream-metrics-'));
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const lease = await registry.openLease({ ttlMs: 30_000 });
  const port = await freePort();
  const failFlag = join(dir, 'fail-reloads');
  const upstream = spawnCli([
    'upstream',
    ...['--service', 'web', '--out', join(dir, 'upstream-web.conf')],
    ...['--check-cmd', 'true', '--reload-cmd', `test ! -e ${failFlag}`],
    ...['--fallback-listen', `unix:${dir}/fallback.sock`],
    ...['--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix],
    ...['--metrics-listen', `127.0.0.1:${port}`],
  ]);
  try {
    const announce = (instance: string, address: string) =>
      registry.announce(lease, { service: 'web', instance, address, since });
    // The first pass renders the empty service and reloads.
    let s = await reaches(port, 'fleetts_upstream_reloads_total', { service: 'web', result: 'ok' }, 1);
    const applied = metricValue(s, 'fleetts_upstream_renders_total', { result: 'applied' }) ?? 0;
    t.true(applied >= 1);
    await announce('web@1.unit', '127.0.0.1:8081');
    s = await reaches(port, 'fleetts_upstream_renders_total', { result: 'applied' }, applied + 1);
    t.is(
      metricValue(s, 'fleetts_upstream_reloads_total', { result: 'ok' }),
      metricValue(s, 'fleetts_upstream_renders_total', { result: 'applied' }),
      'one reload per applied render',
    );
    t.is(metricValue(s, 'fleetts_upstream_reloads_total', { result: 'failed' }), undefined);
    t.true((metricValue(s, 'fleetts_etcd_request_seconds_count') ?? 0) >= 1, 'its etcd requests are timed');
    t.true((metricValue(s, 'process_resident_memory_bytes') ?? 0) > 0);
    // nginx refuses the reload: counted as a failed reload, and the render as reload_failed.
    await writeFile(failFlag, '');
    await announce('web@2.unit', '127.0.0.1:8082');
    s = await reaches(port, 'fleetts_upstream_reloads_total', { result: 'failed' }, 1);
    t.true((metricValue(s, 'fleetts_upstream_renders_total', { result: 'reload_failed' }) ?? 0) >= 1);
    const notFound = await fetch(`http://127.0.0.1:${port}/other`);
    t.is(notFound.status, 404);
  } finally {
    await upstream.stop();
    await lease.close().catch(() => undefined);
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('fleetts announce --metrics-listen counts checks by result and times its lease keepalives', async (t) => {
  const backendPort = await freePort();
  let backend: Server | undefined = createServer((s) => s.end());
  await new Promise<void>((resolve) => backend?.listen(backendPort, '127.0.0.1', resolve));
  const port = await freePort();
  const addr = `127.0.0.1:${backendPort}`;
  const announce = spawnCli([
    'announce',
    ...['--service', 'web', '--addr', addr, '--check', `tcp://${addr}`, '--interval', '100ms'],
    ...['--down-interval', '100ms', '--instance', 'web@1.unit'],
    ...['--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', randomPrefix()],
    ...['--metrics-listen', `127.0.0.1:${port}`],
  ]);
  try {
    let s = await reaches(port, 'fleetts_announce_checks_total', { service: 'web', result: 'pass' }, 3);
    t.is(metricValue(s, 'fleetts_announce_checks_total', { result: 'fail' }), undefined);
    s = await reaches(port, 'fleetts_lease_keepalive_seconds_count', {}, 1);
    t.true((metricValue(s, 'fleetts_lease_keepalive_seconds_sum') ?? -1) >= 0);
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
    backend = undefined;
    await reaches(port, 'fleetts_announce_checks_total', { service: 'web', result: 'fail' }, 1);
  } finally {
    await announce.stop();
    backend?.close();
  }
});

test('a bad --metrics-listen is an error naming the flag, without a stack trace', async (t) => {
  const announce = spawnCli([
    'announce',
    ...['--service', 'web', '--addr', '127.0.0.1:1', '--metrics-listen', 'localhost'],
    ...['--etcd-endpoints', etcd().endpoint],
  ]);
  // stop() waits for the exit; SIGCONT does nothing to a process that is still starting. Exit 1,
  // as for any bad flag value of the sidekicks (--interval x).
  t.is(await announce.stop('SIGCONT'), 1);
  t.regex(announce.text(), /--metrics-listen localhost: no port; use host:port/);
  t.notRegex(announce.text(), /at .*\.ts:\d+/, 'no stack trace');
});
