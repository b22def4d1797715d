// Rolling changes under the web-load benchmark's load (issue 17): the demo's farm on a 3-host dev
// cluster, ab at 200 concurrent connections through the balancer, and 5 s in, `fleetts restart
// web@1 web@2 web@3` (rolling), then in a second run `fleetts rollout web@.unit` of a file whose page
// text changes (WEB_RELEASE), then in a third a rollout of a broken file (Apache's config missing),
// which must stop after the first instance with exit 1 while the others serve. Target: 0 failed
// and 0 non-2xx in each. docs/rollout.md.
// Run alone: `npm run bench -- web-rolling`. BENCH_LOAD_SECONDS sets each load phase (default 150:
// each command takes over a minute on the loaded shared machine, and the load must outlast it);
// BENCH_ETCD=external puts etcd outside the hosts (default: members in the hosts, as cloud-config).
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/lib/clock.js';
import { WebFarmDemo, type CommandOutput } from '../src/demo/web-farm-demo.js';
import { lbPrefix, webPort } from '../src/demo/farm-files.js';
import { runAb, type AbResult } from '../test/helpers/ab.js';
import { fmt, writeSection } from './lib.js';

const SECONDS = Number(process.env['BENCH_LOAD_SECONDS'] ?? 150);
const CONCURRENCY = 200;
const CHANGE_AT_MS = 5_000;
const WEBS = ['web@1.unit', 'web@2.unit', 'web@3.unit'];
const ETCD = process.env['BENCH_ETCD'];
if (ETCD !== undefined && ETCD !== 'hosts' && ETCD !== 'external')
  throw new Error(`BENCH_ETCD=${ETCD}: use hosts (etcd members in the hosts, the default) or external`);

if (process.getuid?.() !== 0) throw new Error('bench/web-rolling.bench.ts needs root (network namespaces)');
const progress = (line: string): void => void process.stderr.write(`  · ${line}\n`);

interface Run {
  readonly what: string;
  readonly ab: AbResult;
  readonly command: CommandOutput;
  /** The exit the command should have: 1 for the broken file. */
  readonly expectCode: number;
  readonly tookMs: number;
  /** Whether the command ended before ab did (else the load did not cover it whole). */
  readonly coveredByLoad: boolean;
  readonly releases: readonly string[];
  /** What the balancers' nginx logged during the run (error.log on every host), by kind. */
  readonly nginx: string;
}

const root = await mkdtemp(join(tmpdir(), 'fleetts-bench-rolling-'));
await chmod(root, 0o755);
const demo = new WebFarmDemo({
  clock: systemClock,
  progress,
  stateDir: join(root, 'state'),
  contextFile: join(root, 'context.json'),
});
const load = loadavg()[0] ?? NaN;
const runs: Run[] = [];
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
  // nginx may have marked a backend failed while Apache was starting (fail_timeout 5 s).
  for (let i = 0; i < 12 && (await demo.probe(12)).failed > 0; i++) await systemClock.sleep(1_000);

  runs.push(
    await underLoad('`fleetts restart web@1 web@2 web@3`', 0, () =>
      demo.fleetts(['restart', ...WEBS], { timeoutMs: 600_000 }),
    ),
  );
  const dir = await webTemplate({ release: '2' });
  runs.push(
    await underLoad('`fleetts rollout web@.unit` (WEB_RELEASE 1 → 2: the page changes)', 0, () =>
      demo.fleetts(['rollout', 'web@.unit'], { cwd: dir, timeoutMs: 600_000 }),
    ),
  );
  const broken = await webTemplate({ release: '3', broken: true });
  runs.push(
    await underLoad(
      '`fleetts rollout web@.unit` of a broken file (WEB_RELEASE 3, Apache config missing)',
      1,
      () => demo.fleetts(['rollout', 'web@.unit'], { cwd: broken, timeoutMs: 600_000 }),
    ),
  );
} finally {
  await demo.close({ down: true });
  await rm(root, { recursive: true, force: true });
}

/** web@.unit from shared storage with its WEB_RELEASE set, or its ExecStart broken, in a new directory. */
async function webTemplate(change: { release: string; broken?: boolean }): Promise<string> {
  let text = (await readFile(join(demo.paths.units, 'web@.unit'), 'utf8')).replace(
    /WEB_RELEASE=\S+/,
    `WEB_RELEASE=${change.release}`,
  );
  if (change.broken === true) text = text.replace(/-f \S+apache\.conf/, '-f /nonexistent/apache.conf');
  const dir = await mkdtemp(join(root, 'units-'));
  await writeFile(join(dir, 'web@.unit'), text);
  return dir;
}

async function underLoad(
  what: string,
  expectCode: number,
  command: () => Promise<CommandOutput>,
): Promise<Run> {
  const lb = demo.lbAddress();
  if (lb === undefined) throw new Error('no balancer announced');
  progress(`ab through ${lb} for ${SECONDS} s; ${what} at +${CHANGE_AT_MS / 1000} s`);
  const logsFrom = await nginxLogSizes();
  let abDone = false;
  const running = runAb({ url: `http://${lb}/`, concurrency: CONCURRENCY, seconds: SECONDS }).finally(() => {
    abDone = true;
  });
  await systemClock.sleep(CHANGE_AT_MS);
  const started = systemClock.monotonic();
  const out = await command();
  const tookMs = systemClock.monotonic() - started;
  const coveredByLoad = !abDone;
  const ab = await running;
  progress(`${summary(ab)}; the command took ${fmt(tookMs / 1000, 1)} s (exit ${out.code})`);
  if (out.code !== 0) progress(out.stderr.trim());
  const nginx = await nginxLogSince(logsFrom);
  progress(`nginx: ${nginx}`);
  return { what, ab, command: out, expectCode, tookMs, coveredByLoad, releases: await releases(), nginx };
}

function nginxLog(machineId: string): string {
  return `${lbPrefix(machineId)}error.log`;
}

async function nginxLogSizes(): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const h of demo.plan.hosts)
    sizes.set(
      h.machineId,
      await readFile(nginxLog(h.machineId)).then(
        (b) => b.length,
        () => 0,
      ),
    );
  return sizes;
}

/** The balancers' error.log lines written since `from`, counted by kind ("upstream timed out ×3; …"). */
async function nginxLogSince(from: ReadonlyMap<string, number>): Promise<string> {
  const kinds = new Map<string, number>();
  for (const h of demo.plan.hosts) {
    const text = await readFile(nginxLog(h.machineId)).then(
      (b) => b.subarray(from.get(h.machineId) ?? 0).toString(),
      () => '',
    );
    for (const line of text.split('\n')) {
      if (!/\[(error|warn|crit|alert|emerg)\]/.test(line)) continue;
      const kind =
        /\*\d+ (.+?)(?: \(\d+: [^)]*\))?(?: while |,)/.exec(line)?.[1]?.replace(/\d+/g, 'N') ??
        line.slice(20, 80);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  }
  return kinds.size === 0
    ? 'no errors or warnings'
    : [...kinds].map(([k, n]) => `${k} ×${fmt(n)}`).join('; ');
}

/** The release each instance's own Apache serves (its page says it). */
async function releases(): Promise<string[]> {
  const out: string[] = [];
  for (const [i, unit] of WEBS.entries()) {
    const host = demo.plan.hosts.find((h) => h.name === demo.hostOf(unit));
    try {
      const res = await fetch(`http://${host?.ip ?? '?'}:${webPort(i + 1)}/`, {
        signal: AbortSignal.timeout(10_000),
      });
      out.push(/release (\S+)/.exec(await res.text())?.[1] ?? `HTTP ${res.status}`);
    } catch (err) {
      out.push(`(${(err as Error).message})`);
    }
  }
  return out;
}

function summary(r: AbResult): string {
  const bad =
    r.exitCode !== 0 ? ` (ab exit ${r.exitCode}: ${r.output.trim().split('\n').slice(-2).join(' ')})` : '';
  return `${fmt(r.complete)} requests, ${fmt(r.failed)} failed, ${fmt(r.non2xx)} non-2xx, ${fmt(r.requestsPerSecond)} req/s${bad}`;
}

if (runs.length !== 3) throw new Error('a load phase did not run');
const row = (r: Run): string =>
  `| ${r.what} | exit ${r.command.code}${r.command.code === r.expectCode ? '' : ` (expected ${r.expectCode})`}, ${fmt(r.tookMs / 1000, 1)} s${r.coveredByLoad ? '' : ' (outlasted the load)'} | ${fmt(r.ab.complete)} | **${fmt(r.ab.failed)}** | **${fmt(r.ab.non2xx)}** | ${fmt(r.ab.requestsPerSecond)} | ${fmt(r.ab.medianMs)} / ${fmt(r.ab.p99Ms)} / ${fmt(r.ab.longestMs)} ms | ${r.releases.join(', ')} |`;
const md = [
  '### Rolling restart and rollout under load (issue 17)',
  '',
  "The demo's farm (examples/process) on a 3-host dev cluster, the web-load benchmark's load:",
  `ApacheBench through the balancer, ${CONCURRENCY} concurrent connections for ${SECONDS} s, a new connection per`,
  `request, no retries; ${CHANGE_AT_MS / 1000} s in, the command runs (its own time in the table); etcd`,
  `${ETCD === 'external' ? 'outside the hosts (BENCH_ETCD=external)' : 'members in the hosts'}. Target: 0 failed, 0 non-2xx; the broken file`,
  `stops after the first instance with exit 1. Shared 2-core machine (load average ${fmt(load, 1)} at the start). docs/rollout.md.`,
  '',
  '| during the load | command | requests | failed | non-2xx | req/s | median / p99 / longest | release served by web@1, 2, 3 after |',
  '|---|---|---|---|---|---|---|---|',
  ...runs.map(row),
  '',
  "What the balancers' nginx logged (error.log on every host, warnings and errors by kind):",
  '',
  ...runs.map((r) => `- ${r.what}: ${r.nginx}`),
  ...runs
    .filter((r) => r.command.code !== 0)
    .flatMap((r) => ['', `${r.what}, what the command said:`, '', '```', r.command.stderr.trim(), '```']),
].join('\n');
writeSection('web-rolling', md);
process.stdout.write(md + '\n');
const failures = runs.reduce(
  (n, r) =>
    n + (r.ab.exitCode !== 0 ? 1 : 0) + r.ab.failed + r.ab.non2xx + (r.command.code !== r.expectCode ? 1 : 0),
  0,
);
if (failures > 0 || runs.some((r) => !Number.isFinite(r.ab.failed))) process.exitCode = 1;
