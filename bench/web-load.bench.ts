// Web farm under sustained load (issue 13): the demo's farm on a 3-host dev cluster (root: network
// namespaces), ab at 200 concurrent connections through the balancer and straight to one Apache,
// then the same load while a backend-only host is powered off at +10 s: once as `dev power-off`
// does it (the host's processes die, so its kernel resets their connections) and once cut off the
// network first (what a real power cut looks like from the balancer: no answer at all); then while
// `fleetts drain` empties a backend-only host from +10 s (issue 17).
// Run alone: `npm run bench -- web-load`. BENCH_LOAD_SECONDS shortens each load phase (default 60).
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/lib/clock.js';
import { WebFarmDemo, type FailoverResult } from '../src/demo/web-farm-demo.js';
import { webPort } from '../src/demo/farm-files.js';
import { readAbRequests, runAb, type AbRequest, type AbResult } from '../test/helpers/ab.js';
import { fmt, writeSection } from './lib.js';

const SECONDS = Number(process.env['BENCH_LOAD_SECONDS'] ?? 60);
const CONCURRENCY = 200;
const POWER_OFF_AT_MS = 10_000;

if (process.getuid?.() !== 0) throw new Error('bench/web-load.bench.ts needs root (network namespaces)');
const progress = (line: string): void => void process.stderr.write(`  · ${line}\n`);

interface PowerOffRun {
  readonly how: string;
  readonly ab: AbResult;
  readonly failover: FailoverResult;
  /** ab's requests that started within 1 s before the power-off until the upstream was updated. */
  readonly around: { readonly n: number; readonly longestMs: number; readonly over1s: number };
}

const root = await mkdtemp(join(tmpdir(), 'fleetts-bench-load-'));
// Apache's children (www-data) read the site on the shared path under here.
await chmod(root, 0o755);
const demo = new WebFarmDemo({
  clock: systemClock,
  progress,
  stateDir: join(root, 'state'),
  contextFile: join(root, 'context.json'),
});
const load = loadavg()[0] ?? NaN;
let through: AbResult | undefined;
let straight: AbResult | undefined;
let straightTo = '';
let memory = '';
const offs: PowerOffRun[] = [];
let drained: DrainRun | undefined;
try {
  await demo.up({ nodes: 3, sharedPath: join(root, 'shared') });
  await demo.installFleetts();
  await demo.prepareSharedStorage();
  await demo.deploy([1, 2, 3]);
  await demo.waitForFarm(180_000);
  const lb = demo.lbAddress();
  if (lb === undefined) throw new Error('no balancer announced');

  progress(`ab through the balancer ${lb} for ${SECONDS} s`);
  through = await runAb({ url: `http://${lb}/`, concurrency: CONCURRENCY, seconds: SECONDS });
  progress(summary(through));
  memory = await farmMemory(demo.paths.apacheConf, demo.paths.nginxConf);

  // An Apache on another host than the balancer's: ab crosses the same bridge either way.
  const lbHost = demo.hostOf('lb.unit');
  const instance = [1, 2, 3].find((i) => demo.hostOf(`web@${i}.unit`) !== lbHost) ?? 1;
  const host = demo.plan.hosts.find((h) => h.name === demo.hostOf(`web@${instance}.unit`));
  straightTo = `web@${instance} (${host?.ip ?? '?'}:${webPort(instance)})`;
  progress(`ab straight to ${straightTo} for ${SECONDS} s`);
  straight = await runAb({
    url: `http://${host?.ip ?? '?'}:${webPort(instance)}/`,
    concurrency: CONCURRENCY,
    seconds: SECONDS,
  });
  progress(summary(straight));

  offs.push(await powerOffUnderLoad('`dev power-off`', false));
  offs.push(await powerOffUnderLoad('cut off the network, then `dev power-off`', true));
  drained = await drainUnderLoad();
} finally {
  await demo.close({ down: true });
  await rm(root, { recursive: true, force: true });
}

/** ab through the balancer; at +10 s a backend-only host goes off. The host is on again afterwards. */
async function powerOffUnderLoad(how: string, cutFirst: boolean): Promise<PowerOffRun> {
  const lb = demo.lbAddress();
  const victim = demo.backendOnlyHost();
  if (lb === undefined || victim === undefined) throw new Error('no balancer, or no backend-only host');
  const perRequestFile = join(root, `ab-${offs.length}.tsv`);
  progress(`ab through ${lb} for ${SECONDS} s; ${victim} off at +${POWER_OFF_AT_MS / 1000} s (${how})`);
  const running = runAb({ url: `http://${lb}/`, concurrency: CONCURRENCY, seconds: SECONDS, perRequestFile });
  await systemClock.sleep(POWER_OFF_AT_MS);
  if (cutFirst) await demo.dev.partition(victim);
  const failover = await demo.failover(victim, { timeoutMs: 60_000 });
  const ab = await running;
  await demo.stopClient();
  progress(`${summary(ab)}; upstream updated +${fmt(failover.upstreamMs / 1000, 2)} s`);
  await demo.powerOn(victim, { settleMs: 1_000 });
  if (cutFirst) await demo.dev.heal(victim);
  const requests = await readAbRequests(perRequestFile).catch((): AbRequest[] => []);
  const until = failover.t0 + (Number.isFinite(failover.upstreamMs) ? failover.upstreamMs : 10_000);
  // ab's -g start times are whole seconds.
  const near = requests.filter((r) => r.startMs >= failover.t0 - 2_000 && r.startMs <= until);
  return {
    how,
    ab,
    failover,
    around: {
      n: near.length,
      longestMs: Math.max(0, ...near.map((r) => r.totalMs)),
      over1s: near.filter((r) => r.totalMs > 1_000).length,
    },
  };
}

interface DrainRun {
  readonly host: string;
  readonly ab: AbResult;
  /** How long `fleetts drain` took (ms), and its exit code. */
  readonly ms: number;
  readonly code: number;
}

/** ab through the balancer; at +10 s `fleetts drain` empties a backend-only host (undrained after). */
async function drainUnderLoad(): Promise<DrainRun> {
  const lb = demo.lbAddress();
  const host = demo.backendOnlyHost();
  if (lb === undefined || host === undefined) throw new Error('no balancer, or no backend-only host');
  progress(`ab through ${lb} for ${SECONDS} s; fleetts drain ${host} at +${POWER_OFF_AT_MS / 1000} s`);
  const running = runAb({ url: `http://${lb}/`, concurrency: CONCURRENCY, seconds: SECONDS });
  await systemClock.sleep(POWER_OFF_AT_MS);
  const t0 = systemClock.monotonic();
  const r = await demo.fleetts(['drain', host, '--deadline', '5m'], { timeoutMs: 360_000 });
  const ms = systemClock.monotonic() - t0;
  const ab = await running;
  progress(`${summary(ab)}; drain exit ${r.code} after ${fmt(ms / 1000, 1)} s\n${r.stdout}${r.stderr}`);
  await demo.fleetts(['undrain', host]);
  return { host, ab, ms, code: r.code };
}

function summary(r: AbResult): string {
  const bad =
    r.exitCode !== 0 ? ` (ab exit ${r.exitCode}: ${r.output.trim().split('\n').slice(-2).join(' ')})` : '';
  return `${fmt(r.complete)} requests, ${fmt(r.failed)} failed, ${fmt(r.non2xx)} non-2xx, ${fmt(r.requestsPerSecond)} req/s${bad}`;
}

/** Proportional set size (MB) of the farm's nginx (master and workers) and of its Apache processes. */
async function farmMemory(apacheConf: string, nginxConf: string): Promise<string> {
  const procs: { pid: number; ppid: number; cmd: string; pssMb: number }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').join(' ');
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const rollup = await readFile(`/proc/${name}/smaps_rollup`, 'utf8');
      const pssMb = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? NaN) / 1024;
      procs.push({ pid: Number(name), ppid, cmd, pssMb });
    } catch {
      /* gone meanwhile */
    }
  }
  const family = (root: (p: (typeof procs)[number]) => boolean): (typeof procs)[number][] => {
    const roots = procs.filter(root);
    const ids = new Set(roots.map((p) => p.pid));
    return [...roots, ...procs.filter((p) => ids.has(p.ppid) && !roots.includes(p))];
  };
  const nginx = family((p) => p.cmd.startsWith('nginx: master') && p.cmd.includes(nginxConf));
  const apacheRoots = procs.filter(
    (p) => p.cmd.startsWith('/usr/sbin/apache2') && p.cmd.includes(apacheConf),
  );
  const parents = apacheRoots.filter((p) => !apacheRoots.some((q) => q.pid === p.ppid));
  const apache = family((p) => parents.includes(p));
  const sum = (ps: readonly { pssMb: number }[]): number => ps.reduce((n, p) => n + p.pssMb, 0);
  return (
    `nginx ${fmt(sum(nginx), 1)} MB (${nginx.length} processes); ` +
    `Apache ${fmt(sum(apache) / Math.max(1, parents.length), 1)} MB per instance ` +
    `(${parents.length} instances, ${apache.length} processes)`
  );
}

if (through === undefined || straight === undefined) throw new Error('a load phase did not run');
const row = (what: string, r: AbResult, target: string): string =>
  `| ${what} | ${fmt(r.complete)} | **${fmt(r.failed)}** | **${fmt(r.non2xx)}** | ${fmt(r.requestsPerSecond)} | ${fmt(r.medianMs)} / ${fmt(r.p99Ms)} / ${fmt(r.longestMs)} ms | ${target} |`;
const md = [
  '### Web farm under sustained load (issue 13)',
  '',
  `The demo's farm (examples/process: 3 Apache backends, nginx with its upstream watcher, as`,
  '`fleetts farm-files` writes them) on a 3-host dev cluster. Load: ApacheBench 2.3 (`ab`, Debian',
  `apache2-utils) from the root namespace, ${CONCURRENCY} concurrent connections for ${SECONDS} s, a new`,
  'connection per request, no retries:',
  `\`${through.command.replace(/http:\/\/[^ ]+$/, 'http://BALANCER/')}\`. Everything (ab, nginx, three`,
  `Apaches, etcd, three fleetds) shares the machine's 2 cores with other engineers' runs (load`,
  `average ${fmt(load, 1)} at the start), so the rates are noisy and low; the counts of failures are what`,
  'this measures.',
  '',
  '| run | requests | failed | non-2xx | req/s | median / p99 / longest | target |',
  '|---|---|---|---|---|---|---|',
  row('through the balancer', through, '0 failed, 0 non-2xx'),
  row(`straight to one Apache, ${straightTo}`, straight, ''),
  ...offs.map((o) =>
    row(
      `through the balancer, backend host ${o.failover.host} powered off at +${POWER_OFF_AT_MS / 1000} s: ${o.how}`,
      o.ab,
      '0 failed, 0 non-2xx',
    ),
  ),
  ...(drained === undefined
    ? []
    : [
        row(
          `through the balancer, backend host ${drained.host} drained (\`fleetts drain\`, exit ${drained.code}, ${fmt(drained.ms / 1000, 1)} s) from +${POWER_OFF_AT_MS / 1000} s`,
          drained.ab,
          '0 failed, 0 non-2xx',
        ),
      ]),
  '',
  `Through the balancer / straight to one Apache: **${fmt(through.requestsPerSecond / straight.requestsPerSecond, 2)}**.`,
  `Memory after the first run (PSS): ${memory}.`,
  '',
  '| power-off | host declared dead | upstream updated | requests started from 2 s before to the update | longest of them | over 1 s | 20 GETs/s client: failed |',
  '|---|---|---|---|---|---|---|',
  ...offs.map(
    (o) =>
      `| ${o.how} | +${fmt(o.failover.deadMs / 1000, 2)} s | +${fmt(o.failover.upstreamMs / 1000, 2)} s | ${fmt(o.around.n)} | ${fmt(o.around.longestMs)} ms | ${fmt(o.around.over1s)} | ${o.failover.client.failed + o.failover.client.noLb} of ${o.failover.client.sent} |`,
  ),
  '',
  'A request in flight to the dead host goes to the next server after an error (`dev power-off`: the',
  "host's kernel resets the connections) or after `proxy_read_timeout` 3 s (cut off: no answer); new",
  'connections to it cost `proxy_connect_timeout` 1 s until it has failed 3 times. docs/web-farm-load.md.',
].join('\n');
writeSection('web-load', md);
process.stdout.write(md + '\n');
const failures =
  [through, ...offs.map((o) => o.ab), ...(drained === undefined ? [] : [drained.ab])].reduce(
    (n, r) => n + (r.exitCode !== 0 ? 1 : 0) + r.failed + r.non2xx,
    0,
  ) + (drained === undefined || drained.code !== 0 ? 1 : 0);
if (failures > 0 || !Number.isFinite(through.failed)) process.exitCode = 1;
