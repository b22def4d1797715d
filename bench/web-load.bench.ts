// Web farm under sustained load (issue 13): the demo's farm on a 3-host dev cluster (root: network
// namespaces), ab at 200 concurrent connections through the balancer and straight to one Apache,
// then the same load while a backend-only host is powered off at +10 s: once as `dev power-off`
// does it (the host's processes die, so its kernel resets their connections) and once cut off the
// network first (what a real power cut looks like from the balancer: no answer at all); then while
// `fleetts drain` empties a backend-only host from +10 s (issue 17); then the balancer's own host
// (the floating address's holder) cut off and powered off under load through the floating address,
// with bench/load-client.ts (ab gives up at the first request that times out).
// Run alone: `npm run bench -- web-load`. BENCH_LOAD_SECONDS shortens each load phase (default 60);
// BENCH_WEB_LOAD_RUNS=balancer runs only the balancer power-off (its own section);
// BENCH_ETCD=external puts etcd outside the hosts (default: members in the hosts, as cloud-config).
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/lib/clock.js';
import { WebFarmDemo, type FailoverResult } from '../src/demo/web-farm-demo.js';
import { lbNginxConf, webPort } from '../src/demo/farm-files.js';
import { readAbRequests, runAb, type AbRequest, type AbResult } from '../test/helpers/ab.js';
import { fmt, percentile, ROOT, writeSection } from './lib.js';

const SECONDS = Number(process.env['BENCH_LOAD_SECONDS'] ?? 60);
const CONCURRENCY = 200;
const POWER_OFF_AT_MS = 10_000;
/** The load client's per-request timeout through the floating address (the demo client's too). */
const BALANCER_TIMEOUT_S = 10;
const RUNS = new Set((process.env['BENCH_WEB_LOAD_RUNS'] ?? 'all,balancer').split(','));
const MAIN_RUNS = RUNS.has('all');
const ETCD = process.env['BENCH_ETCD'];
if (ETCD !== undefined && ETCD !== 'hosts' && ETCD !== 'external')
  throw new Error(`BENCH_ETCD=${ETCD}: use hosts (etcd members in the hosts, the default) or external`);

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
let balancer: BalancerRun | undefined;
try {
  await demo.up({
    nodes: 3,
    sharedPath: join(root, 'shared'),
    ...(ETCD === undefined ? {} : { etcd: ETCD }),
  });
  await demo.installFleetts();
  await demo.prepareSharedStorage();
  await demo.deploy([1, 2, 3]);
  await demo.waitForFarm(180_000);
  const lb = demo.lbAddress();
  if (lb === undefined) throw new Error('no balancer announced');
  if (MAIN_RUNS) await mainRuns(lb);
  if (RUNS.has('balancer')) balancer = await balancerOffUnderLoad();
} finally {
  await demo.close({ down: true });
  await rm(root, { recursive: true, force: true });
}

/** Through the balancer, straight to one Apache, a backend host off twice, a drain. */
async function mainRuns(lb: string): Promise<void> {
  progress(`ab through the balancer ${lb} for ${SECONDS} s`);
  through = await runAb({ url: `http://${lb}/`, concurrency: CONCURRENCY, seconds: SECONDS });
  progress(summary(through));
  const holder = demo.plan.hosts.find((h) => h.name === demo.addressHost());
  memory = await farmMemory(demo.paths.apacheConf, lbNginxConf(holder?.machineId ?? '?'));

  // An Apache on another host than the address holder's: ab crosses the same bridge either way.
  const lbHost = demo.addressHost();
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

interface LoadRecord {
  /** Wall ms when the request ended (answered or failed). */
  readonly endMs: number;
  /** The HTTP status, or the error (a timeout, ECONNREFUSED, …). */
  readonly outcome: string;
  /** How long it took, answered or not. */
  readonly ms: number;
}

interface LoadSummary {
  readonly requests: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly rps: number;
  readonly latency: { readonly p50: number; readonly p99: number; readonly max: number };
}

interface BalancerRun {
  readonly host: string;
  /** Wall ms of the cut (the power cut as the network sees it). */
  readonly cutAt: number;
  readonly failover: FailoverResult;
  readonly load: LoadSummary;
  readonly records: readonly LoadRecord[];
}

/** bench/load-client.ts in its own process; resolves with its summary. */
function runLoadClient(url: string, seconds: number, out: string): Promise<LoadSummary> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import=tsx',
        join(ROOT, 'bench/load-client.ts'),
        url,
        String(CONCURRENCY),
        String(seconds),
        String(BALANCER_TIMEOUT_S),
        out,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`load-client exited ${code}`);
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as LoadSummary);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

/**
 * Load through the floating address; at +10 s its holder (a balancer host) is cut off the network
 * and powered off: in-flight requests get no answer at all, as in a real power cut.
 */
async function balancerOffUnderLoad(): Promise<BalancerRun> {
  const host = demo.addressHost();
  if (host === undefined) throw new Error('the floating address is up on no host');
  const url = `http://${demo.floatingAddress}/`;
  const out = join(root, 'balancer-load.tsv');
  progress(
    `load-client through ${url} for ${SECONDS} s; ${host} (the address holder) cut off and powered off at +${POWER_OFF_AT_MS / 1000} s`,
  );
  const running = runLoadClient(url, SECONDS, out);
  await systemClock.sleep(POWER_OFF_AT_MS);
  const cutAt = systemClock.now();
  await demo.dev.partition(host);
  const failover = await demo.failover(host, { timeoutMs: 60_000 });
  const load = await running;
  await demo.stopClient();
  progress(
    `${fmt(load.requests)} answered, ${fmt(load.errors)} errors (${fmt(load.timeouts)} timeouts), ${fmt(load.non2xx)} non-2xx; address up on ${failover.addressTo ?? '?'} +${fmt((failover.addressUpMs ?? NaN) / 1000, 2)} s`,
  );
  await demo.powerOn(host, { settleMs: 1_000 });
  await demo.dev.heal(host);
  const text = await readFile(out, 'utf8');
  const records = text
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => {
      const [end = '', outcome = '', ms = ''] = l.split('\t');
      return { endMs: Number(end), outcome, ms: Number(ms) };
    });
  return { host, cutAt, failover, load, records };
}

const maxOf = (xs: readonly number[], empty = NaN): number =>
  xs.length === 0 ? empty : xs.reduce((m, x) => Math.max(m, x), -Infinity);
const minOf = (xs: readonly number[]): number =>
  xs.length === 0 ? NaN : xs.reduce((m, x) => Math.min(m, x), Infinity);

/** The balancer run's report: failures by kind and time, the latency spike, the address's move. */
function balancerReport(b: BalancerRun): string {
  const rel = (ms: number): string => `${ms >= 0 ? '+' : ''}${fmt(ms / 1000, 1)} s`;
  const failed = b.records.filter((r) => r.outcome !== '200');
  const startOf = (r: LoadRecord): number => r.endMs - r.ms;
  const startedBefore = failed.filter((r) => startOf(r) <= b.cutAt + 500);
  const startedAfter = failed.filter((r) => startOf(r) > b.cutAt + 500);
  const kinds = new Map<string, number>();
  for (const r of failed) kinds.set(r.outcome, (kinds.get(r.outcome) ?? 0) + 1);
  const answered = b.records.filter((r) => r.outcome === '200');
  const window = answered.filter((r) => r.endMs >= b.cutAt && r.endMs <= b.cutAt + 20_000);
  const before = answered.filter((r) => r.endMs < b.cutAt && r.endMs >= b.cutAt - 10_000);
  const perSecond = (from: number, to: number): number =>
    answered.filter((r) => r.endMs >= b.cutAt + from && r.endMs < b.cutAt + to).length / ((to - from) / 1000);
  const addressUp = b.failover.addressUpMs ?? NaN;
  return [
    `**The balancer's own host powered off, through the floating address** (${b.host}, the address's holder, cut off the network and powered off at +${POWER_OFF_AT_MS / 1000} s; etcd ${ETCD === 'external' ? 'outside the hosts' : 'members in the hosts'}). Load: bench/load-client.ts, ${CONCURRENCY} loops of one GET at a time on a new connection for ${SECONDS} s, ${BALANCER_TIMEOUT_S} s timeout per request, no retries (ab gives up at the first request that times out, and autocannon 9 misreports new-connection-per-request load, so neither can measure this).`,
    '',
    '| requests answered | failed | of which in flight at the cut (started before it, or in the 0.5 s it takes to apply) | started later | non-2xx | address up on | latency p50 / p99 / max (run) |',
    '|---|---|---|---|---|---|---|',
    `| ${fmt(answered.length)} | **${fmt(failed.length)}** | ${fmt(startedBefore.length)} | **${fmt(startedAfter.length)}** | ${fmt(b.load.non2xx)} | ${b.failover.addressTo ?? '?'} at ${rel(addressUp + (b.failover.t0 - b.cutAt))} | ${fmt(b.load.latency.p50)} / ${fmt(b.load.latency.p99)} / ${fmt(b.load.latency.max)} ms |`,
    '',
    `Failures by kind: ${[...kinds].map(([k, n]) => `${k} ${fmt(n)}`).join(', ') || 'none'}; they ended between ${failed.length === 0 ? '–' : `${rel(minOf(failed.map((r) => r.endMs)) - b.cutAt)} and ${rel(maxOf(failed.map((r) => r.endMs)) - b.cutAt)}`} after the cut.`,
    `Latency spike: answers that ended in the 20 s after the cut took up to ${fmt(
      maxOf(
        window.map((r) => r.ms),
        0,
      ),
    )} ms (p99 ${fmt(
      percentile(
        window.map((r) => r.ms),
        99,
      ),
    )} ms; the 10 s before: p99 ${fmt(
      percentile(
        before.map((r) => r.ms),
        99,
      ),
    )} ms). Answers per second: ${fmt(perSecond(-10_000, 0))} before the cut, ${fmt(perSecond(0, 5_000))} in the 5 s after it, ${fmt(perSecond(5_000, 15_000))} from +5 to +15 s.`,
    `Target: only requests in flight at the power-off may fail; every connection opened after it succeeds once the address has moved.`,
  ].join('\n');
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

if (balancer !== undefined) {
  const bmd = [
    "### Web farm under load: the balancer's own host powered off (issue 13)",
    '',
    balancerReport(balancer),
  ].join('\n');
  writeSection('web-load-balancer', bmd);
  process.stdout.write(bmd + '\n');
}
if (!MAIN_RUNS) process.exit(0);
if (through === undefined || straight === undefined) throw new Error('a load phase did not run');
const row = (what: string, r: AbResult, target: string): string =>
  `| ${what} | ${fmt(r.complete)} | **${fmt(r.failed)}** | **${fmt(r.non2xx)}** | ${fmt(r.requestsPerSecond)} | ${fmt(r.medianMs)} / ${fmt(r.p99Ms)} / ${fmt(r.longestMs)} ms | ${target} |`;
const md = [
  '### Web farm under sustained load (issue 13)',
  '',
  `The demo's farm (examples/process: 3 Apache backends, a balancer on every host, as`,
  `\`fleetts farm-files\` writes them) on a 3-host dev cluster, etcd ${ETCD === 'external' ? 'outside the hosts (BENCH_ETCD=external)' : 'members in the hosts'}. Load: ApacheBench 2.3 (\`ab\`, Debian`,
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
