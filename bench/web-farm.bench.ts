// Web-farm failover (issue 6): the demo's farm on a 3-host dev cluster (root: network namespaces),
// a steady client at 20 GETs/s through the balancer, and 10 power-offs of a backend's host (each
// powered on again before the next, so every trial starts from the placement the last one left).
// Run alone: `node --import=tsx bench/web-farm.bench.ts`.
import { systemClock } from '../src/lib/clock.js';
import { WebFarmDemo, type FailoverResult } from '../src/demo/web-farm-demo.js';
import { fmt, median, percentile, writeSection } from './lib.js';

const TRIALS = Number(process.env['BENCH_FAILOVERS'] ?? 10);

if (process.getuid?.() !== 0) throw new Error('bench/web-farm.bench.ts needs root (network namespaces)');
const demo = new WebFarmDemo({
  clock: systemClock,
  progress: (line) => process.stderr.write(`  · ${line}\n`),
  stateDir: '/var/lib/fleetts-bench-farm',
  contextFile: '/var/lib/fleetts-bench-farm.context.json',
});
const results: { r: FailoverResult; activeMs: number }[] = [];
try {
  await demo.up({ nodes: 3 });
  await demo.installFleetts();
  await demo.prepareSharedStorage();
  await demo.deploy();
  await demo.waitForFarm();
  await demo.startClient(20);
  for (let i = 0; i < TRIALS; i++) {
    const victim = demo.backendOnlyHost();
    if (victim === undefined) throw new Error('no host runs a backend without the balancer');
    const r = await demo.failover(victim);
    const web = r.moved.filter((m) => m.unit.startsWith('web@'));
    const activeMs = Math.max(...web.map((m) => m.activeMs));
    results.push({ r, activeMs });
    process.stderr.write(
      `trial ${i + 1}/${TRIALS}: ${victim} off → web active +${fmt(activeMs / 1000, 2)} s, upstream +${fmt(r.upstreamMs / 1000, 2)} s, ` +
        `client ${r.client.answered}/${r.client.sent} answered, ${r.client.failed} failed\n`,
    );
    await demo.powerOn(victim);
  }
} finally {
  await demo.close({ down: true });
}

const etcdWhere =
  demo.plan.etcd.topology === 'hosts'
    ? 'a member inside each host, so a power-off may take the etcd leader'
    : 'outside the hosts';
const active = results.map((x) => x.activeMs);
const upstream = results.map((x) => x.r.upstreamMs);
const dead = results.map((x) => x.r.deadMs);
const sent = results.reduce((n, x) => n + x.r.client.sent, 0);
const failed = results.reduce((n, x) => n + x.r.client.failed + x.r.client.noLb, 0);
const md = [
  '### Web-farm failover: a backend host powered off (issue 6)',
  '',
  `The demo's farm (examples/process: 3 Apache backends with discovery sidekicks, nginx with its`,
  `upstream watcher) on a 3-host dev cluster, default settings (lease TTL 5 s; etcd ${etcdWhere}). ${results.length} power-offs`,
  'of a backend-only host (every process of its namespace SIGKILLed at once), each powered on again',
  'before the next; a client sends 20 GETs/s through the balancer, fresh connection each, no retries.',
  '',
  '| from power-off to … | median | p95 | target |',
  '|---|---|---|---|',
  `| host declared dead (lease expired) | ${fmt(median(dead) / 1000, 2)} s | ${fmt(percentile(dead, 95) / 1000, 2)} s | |`,
  `| web unit active on another host | ${fmt(median(active) / 1000, 2)} s | ${fmt(percentile(active, 95) / 1000, 2)} s | |`,
  `| upstream updated (nginx reloaded with the replacement) | ${fmt(median(upstream) / 1000, 2)} s | ${fmt(percentile(upstream, 95) / 1000, 2)} s | median ≤ 6 s, p95 ≤ 8 s |`,
  '',
  `Client: **${failed} failed of ${sent}** GETs during the failovers (target: 0). fleet took 17–35 s to move a unit.`,
].join('\n');
writeSection('web-farm-failover', md);
process.stdout.write(md + '\n');
