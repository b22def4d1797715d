// Discovery latencies: `node --import=tsx bench/discovery.bench.ts`. A real etcd, `fleetts announce`
// and `fleetts upstream` as real processes (from source), a real nginx: how soon a backend that comes
// or goes reaches the registry, and how soon a registry change has nginx reloaded. The targets were
// the discovery tests' bounds; tests assert what happens, this measures how fast.
import { createServer, type Server } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { renderUpstream } from '../src/discovery/render-upstream.js';
import { createEtcdRegistry } from '../src/registry/etcd-registry.js';
import { type CliProcess, spawnCli } from '../test/discovery/cli-process.js';
import { randomPrefix, startEtcd } from '../test/helpers/etcd.js';
import { freePort, startNginx, type RunningNginx } from '../test/helpers/web.js';
import { fmt, median, percentile, until, writeSection } from './lib.js';

const CYCLES = 20;
const since = '2026-01-01T00:00:00.000Z';

const load = loadavg()[0] ?? NaN;
const etcd = await startEtcd();
const prefix = randomPrefix();
const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix });
const processes: CliProcess[] = [];
let nginx: RunningNginx | undefined;
try {
  // 1. `fleetts announce`: backend up → key written, backend down → key removed.
  const port = await freePort();
  const announce = spawnCli([
    'announce',
    ...['--service', 'timing', '--addr', `127.0.0.1:${port}`, '--check', `http://127.0.0.1:${port}/health`],
    ...['--interval', '200ms', '--etcd-endpoints', etcd.endpoint, '--etcd-key-prefix', prefix],
  ]);
  processes.push(announce);
  await announce.waitForEvent('announce.started');
  let count = 0;
  const sub = await registry.watchServiceInstances('timing', (set) => (count = set.items.length));
  const up: number[] = [];
  const down: number[] = [];
  // Random pauses so that backends change at random points of the announcer's check cycle.
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * 300));
  for (let i = 0; i < CYCLES; i++) {
    await pause();
    const server: Server = createServer((_req, res) => res.end('ok\n'));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    let t0 = performance.now();
    await until('the key', () => (count === 1 ? true : undefined), 30_000, 1);
    up.push(performance.now() - t0);
    await pause();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    t0 = performance.now();
    await until('no key', () => (count === 0 ? true : undefined), 30_000, 1);
    down.push(performance.now() - t0);
  }
  sub.close();
  process.stderr.write(`announce: up median ${fmt(median(up))} ms, down median ${fmt(median(down))} ms\n`);

  // 2. `fleetts upstream`: a key change → nginx reloaded, one change at a time.
  let fallback = '';
  nginx = await startNginx({
    upstream: 'web',
    files: (dir) => {
      fallback = `unix:${dir}/fallback.sock`;
      return {
        'upstream-web.conf': renderUpstream([], { name: 'web', service: 'web', fallbackListen: fallback }),
      };
    },
  });
  const upstream = spawnCli([
    'upstream',
    ...['--service', 'web', '--out', join(nginx.confDir, 'upstream-web.conf')],
    ...['--check-cmd', nginx.checkCmd, '--reload-cmd', nginx.reloadCmd, '--fallback-listen', fallback],
    ...['--etcd-endpoints', etcd.endpoint, '--etcd-key-prefix', prefix],
  ]);
  processes.push(upstream);
  // Its first pass renders and reloads even with nothing to change: wait until nginx applied it.
  await upstream.waitForEvent('upstream.reloaded');
  await until(
    'nginx to apply the first reload',
    async () => ((await nginx?.appliedReloads()) ?? 0) >= 1,
    30_000,
  );
  const lease = await registry.openLease({ ttlMs: 10_000 });
  const reload: number[] = [];
  for (let i = 0; i < CYCLES; i++) {
    const n = upstream.events('upstream.reloaded').length;
    const t0 = Date.now();
    if (i % 2 === 0)
      await registry.announce(lease, {
        service: 'web',
        instance: 'moving',
        address: '127.0.0.1:21000',
        since,
      });
    else await registry.withdraw('web', 'moving');
    const event = await upstream.waitForEvent('upstream.reloaded', { n: n + 1 });
    reload.push(event.time - t0);
    // The next change only once nginx has put every reload so far into effect.
    await until('nginx to apply the reload', async () => ((await nginx?.appliedReloads()) ?? 0) > n, 30_000);
  }
  await lease.close();
  process.stderr.write(`upstream: key change → reloaded median ${fmt(median(reload))} ms\n`);

  const row = (what: string, v: number[], target: string): string =>
    `| ${what} | ${CYCLES} | ${fmt(median(v))} ms | ${fmt(percentile(v, 95))} ms | ${fmt(Math.max(...v))} ms | ${target} |`;
  writeSection(
    'discovery',
    [
      '### Discovery: backend → registry → nginx',
      '',
      'A real etcd, nginx, and `fleetts announce` / `fleetts upstream` as real processes. Announce:',
      `a backend on loopback comes up and goes down ${CYCLES} times at random points of the check cycle`,
      '(`--interval 200ms`, down-interval 250 ms), timed to the change seen by a watch. Upstream: one',
      `announce or withdraw at a time (${CYCLES}), timed to \`fleetts upstream\`'s \`upstream.reloaded\` (debounce 100 ms).`,
      '',
      `Load average (1 min) at the start: ${fmt(load, 2)} (the machine is shared).`,
      '',
      '| measure | runs | median | p95 | max | target |',
      '|---|---|---|---|---|---|',
      row('backend up → key written', up, 'median < 400 ms'),
      row('backend down → key removed', down, 'median < 500 ms'),
      row('key change → nginx reloaded', reload, 'median < 500 ms'),
    ].join('\n'),
  );
} finally {
  for (const p of processes) await p.stop('SIGTERM');
  await nginx?.stop();
  await registry.close();
  await etcd.stop();
}
