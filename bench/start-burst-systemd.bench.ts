// Start bursts with the systemd runtime (issue 15): 3 hosts, each a container of images/systemd with
// systemd 252 as PID 1 (this machine's own PID 1 is not systemd), fleetd running in each as a
// systemd service with --service-runtime left at auto (so: systemd), one etcd on this machine's
// loopback (the containers use the host network; each fleetd its own API port). From inside host 1,
// `fleetts start s@{1..100}.service` blocking until all are active, BENCH_BURST_RUNS times
// (default 3), each followed by `fleetts destroy`; and the transient units' count per host.
// Run alone: `node --import=tsx bench/start-burst-systemd.bench.ts`.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../src/lib/clock.js';
import { startEtcd } from '../test/helpers/etcd.js';
import {
  REPO_ROOT,
  startSystemdContainer,
  type SystemdContainer,
} from '../test/helpers/systemd-container.js';
import { fmt, median, until, writeSection } from './lib.js';

const UNITS = 100;
const HOSTS = 3;
const RUNS = Number(process.env['BENCH_BURST_RUNS'] ?? 3);
const SOCKET = '/run/fleetts/fleetd.sock';
const TOKEN = '/run/fleetts/api-token';
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const now = (): number => systemClock.monotonic();

const etcd = await startEtcd();
const hosts: SystemdContainer[] = [];
const tag = randomBytes(3).toString('hex');
const names = Array.from({ length: UNITS }, (_, i) => `s@${i + 1}.service`);
const runs: { cliMs: number; destroyMs: number }[] = [];
let perHost: number[] = [];
let loadBefore = NaN;
let loadMax = NaN;

const cli = (c: SystemdContainer, args: readonly string[]): Promise<string> =>
  c.exec(['node', join(REPO_ROOT, 'bin/fleetts.js'), '--endpoint', `unix://${SOCKET}`, ...args], {
    cwd: '/root',
    timeoutMs: 180_000,
  });

async function timed(c: SystemdContainer, args: readonly string[]): Promise<number> {
  const start = now();
  await cli(c, args);
  return now() - start;
}

const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

try {
  for (let i = 1; i <= HOSTS; i++) {
    const c = await startSystemdContainer(`fleetts-burst-sd${i}-${tag}`, ['--network', 'host']);
    hosts.push(c);
    await c.exec(['sh', '-c', `mkdir -p /run/fleetts && echo burst-token-${tag}-${tag} > ${TOKEN}`]);
    await c.exec([
      'systemd-run',
      '--unit=fleetd.service',
      '--property=KillMode=mixed',
      '/usr/bin/node',
      join(REPO_ROOT, 'bin/fleetd.js'),
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-key-prefix',
      `/burst-${tag}/`,
      '--machine-id',
      `sd${i}${tag}`,
      '--public-ip',
      '127.0.0.1',
      '--metadata',
      `hostname=sd${i}`,
      '--state-dir',
      '/var/lib/fleetts',
      '--api-socket',
      SOCKET,
      '--api-listen',
      `127.0.0.1:${4300 + i}`,
      '--api-token-file',
      TOKEN,
      '--runtime',
      'process',
    ]);
  }
  const first = hosts[0]!;
  await until(
    `${HOSTS} hosts registered`,
    async () => {
      const out = await cli(first, ['list-machines', '-o', 'json']).catch(
        (e: unknown) => (log(String(e)), '[]'),
      );
      return (JSON.parse(out) as unknown[]).length === HOSTS ? true : undefined;
    },
    120_000,
    500,
  ).catch(async (err: unknown) => {
    for (const h of hosts)
      log(await h.exec(['sh', '-c', 'journalctl -u fleetd.service -n 15 --no-pager -o cat']).catch(String));
    throw err;
  });
  await first.exec(['sh', '-c', "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /root/s@.service"]);
  await cli(first, ['submit', 's@.service']);
  loadBefore = load1();
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(load1()), 1000);
  try {
    for (let run = 1; run <= RUNS; run++) {
      await systemClock.sleep(5_000);
      const cliMs = await timed(first, ['start', ...names]);
      if (run === RUNS)
        perHost = await Promise.all(
          hosts.map(async (h) =>
            Number(
              (
                await h.exec([
                  'sh',
                  '-c',
                  "systemctl list-units --no-legend --state=active 'fleetts-s@*' | wc -l",
                ])
              ).trim(),
            ),
          ),
        );
      const destroyMs = await timed(first, ['destroy', ...names]);
      runs.push({ cliMs, destroyMs });
      log(`burst ${run}: start ${fmt(cliMs)} ms, destroy ${fmt(destroyMs)} ms`);
    }
    await systemClock.sleep(30_000);
  } finally {
    clearInterval(sampler);
  }
  loadMax = Math.max(...samples);
} finally {
  for (const h of hosts) h.remove();
  await etcd.stop();
}

const s = (ms: number): string => `${fmt(ms / 1000, 2)} s`;
const lines = [
  '### Start bursts with the systemd runtime (issue 15)',
  '',
  `${HOSTS} hosts, each a container of images/systemd (systemd 252 as PID 1) running fleetd as a systemd`,
  'service with the runtime chosen by `--service-runtime auto` (systemd); one etcd outside them.',
  'Units are transient systemd services. `fleetts start` runs inside host 1 and blocks until all are active.',
  '',
  '| measure | fleetts (systemd runtime) | fleet v1.0 | target |',
  '|---|---|---|---|',
  `| \`fleetts start s@{1..100}.service\` blocking, median of ${runs.length} | ${s(median(runs.map((r) => r.cliMs)))} (${runs.map((r) => s(r.cliMs)).join(', ')}) | 3.3–7.4 s | ≤ 1 s |`,
  `| \`fleetts destroy\` of the 100 | ${runs.map((r) => s(r.destroyMs)).join(', ')} | 160–250 s | |`,
  `| transient units active per host after the last burst | ${perHost.join(' / ')} | | |`,
  `| highest 1-minute load average, bursts and 30 s after (before: ${fmt(loadBefore, 2)}) | ${fmt(loadMax, 2)} | 0.2–0.3 | ≤ 0.6 |`,
];
writeSection('start-burst-systemd', lines.join('\n'));
process.stdout.write(`${lines.join('\n')}\n`);
