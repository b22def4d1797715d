// MySQL member rejoin (issue 7): the 3-member Galera cluster of examples/process/mysql@.unit on a
// 4-host dev cluster (root: network namespaces); each trial powers off one member's host and times
// until that instance is placed on another host, and until it is Synced (rsync SST from a donor)
// and announced there again. The host is powered on before the next trial (it becomes the spare).
// Run alone: `node --import=tsx bench/galera.bench.ts`.
import { systemClock } from '../src/lib/clock.js';
import { GaleraCluster } from '../test/galera/galera-cluster.js';
import { fmt, median, writeSection } from './lib.js';

const TRIALS = Number(process.env['BENCH_GALERA_TRIALS'] ?? 3);

interface Trial {
  readonly unit: string;
  readonly from: string;
  readonly to: string;
  readonly placedMs: number;
  readonly syncedMs: number;
}

const cluster = await GaleraCluster.up(4, (line) => process.stderr.write(`  · ${line}\n`));
const trials: Trial[] = [];
try {
  await cluster.writeUnits();
  await cluster.start([1, 2, 3]);
  await cluster.until(
    'three members announced',
    async () => ((await cluster.announced()).size === 3 ? true : undefined),
    240_000,
  );
  for (let i = 0; i < TRIALS; i++) {
    const unit = `mysql@${(i % 3) + 1}.unit`;
    const address = (await cluster.announced()).get(unit);
    const from = address === undefined ? undefined : cluster.hostOfAddress(address);
    if (from === undefined) throw new Error(`${unit} is not announced`);
    const t0 = systemClock.monotonic();
    await cluster.demo.dev.powerOff(from);
    let placedMs = NaN;
    const to = await cluster.until(
      `${unit} Synced and announced off ${from}`,
      async () => {
        const host = cluster.demo.timeline.placement().get(unit);
        if (Number.isNaN(placedMs) && host !== undefined && host !== from)
          placedMs = systemClock.monotonic() - t0;
        const a = (await cluster.announced()).get(unit);
        const h = a === undefined ? undefined : cluster.hostOfAddress(a);
        return h !== undefined && h !== from ? h : undefined;
      },
      240_000,
    );
    const syncedMs = systemClock.monotonic() - t0;
    trials.push({ unit, from, to, placedMs, syncedMs });
    process.stderr.write(
      `trial ${i + 1}/${TRIALS}: ${from} off → ${unit} placed on ${to} +${fmt(placedMs / 1000, 1)} s, Synced and announced +${fmt(syncedMs / 1000, 1)} s\n`,
    );
    await cluster.demo.dev.powerOn(from);
  }
} finally {
  await cluster.close();
}

const placed = trials.map((t) => t.placedMs);
const synced = trials.map((t) => t.syncedMs);
const s = (ms: number): string => `${fmt(ms / 1000, 1)} s`;
writeSection(
  'galera-rejoin',
  `### MySQL (Galera) member rejoin after a host's power-off

A 3-member MariaDB Galera cluster (\`examples/process/mysql@.unit\` and its announcer sidekick) on a
4-host \`fleetts dev\` cluster (lease TTL 4 s), nearly empty database; ${TRIALS} trials, each
powering off the host of one member (\`dev power-off\`, SIGKILL of the whole host) and powering it on
again before the next. *Placed*: the engine assigned the instance to another host (after the dead
host's lease expired). *Synced and announced*: the new member joined through etcd, received the
data by rsync SST from a donor, reached Synced, and its sidekick announced it under services/mysql.

| | median | max |
| --- | ---: | ---: |
| placed on another host | ${s(median(placed))} | ${s(Math.max(...placed))} |
| Synced and announced there | ${s(median(synced))} | ${s(Math.max(...synced))} |

| trial | unit | from → to | placed | Synced and announced |
| ---: | --- | --- | ---: | ---: |
${trials.map((t, i) => `| ${i + 1} | ${t.unit} | ${t.from} → ${t.to} | ${s(t.placedMs)} | ${s(t.syncedMs)} |`).join('\n')}

The two surviving members keep serving meanwhile (quorum 2 of 3; asserted by test/e2e/galera.test.ts); a full SST moves the whole data
dir, so the second figure grows with the database size.`,
);
