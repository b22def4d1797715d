// FTP failover (issue 7): examples/process/ftp.unit and its announcer on a 3-host dev cluster; the
// FTP server's host powered off a few times (each powered on again before the next). A client that
// every 200 ms resolves services/ftp and does connect + login + LIST measures the downtime: from
// the power-off to the first success on the new host. Run alone: `node --import=tsx bench/ftp.bench.ts`.
import { systemClock } from '../src/lib/clock.js';
import { FtpCluster } from '../test/ftp/ftp-cluster.js';
import { fmt, median, writeSection } from './lib.js';

const TRIALS = Number(process.env['BENCH_FTP_FAILOVERS'] ?? 4);
const POLL_MS = 200;

interface Trial {
  readonly from: string;
  readonly to: string;
  readonly downMs: number;
  /** services/ftp names the new host (before the client's first success). */
  readonly announcedMs: number;
  readonly attempts: number;
  readonly failed: number;
}

const cluster = await FtpCluster.create((line) => process.stderr.write(`  · ${line}\n`));
const trials: Trial[] = [];
try {
  await cluster.up();
  const listing = (): Promise<{ address: string; machine: string | undefined }> =>
    cluster.session(async (client, at) => {
      await client.list();
      return { address: at.address, machine: at.machine };
    }, 2_000);
  await cluster.until('a first login', listing, 90_000);
  for (let i = 0; i < TRIALS; i++) {
    const before = await cluster.until('a login before the power-off', listing, 60_000);
    const host = cluster.hostOfMachine(before.machine);
    if (host === undefined)
      throw new Error(`services/ftp names an unknown machine: ${before.machine ?? '?'}`);
    const t0 = Date.now();
    await cluster.powerOff(host.name);
    let attempts = 0;
    let failed = 0;
    let ok: { address: string; machine: string | undefined } | undefined;
    let announcedMs = NaN;
    while (ok === undefined) {
      if (Number.isNaN(announcedMs)) {
        const at = await cluster.announced().catch(() => undefined);
        if (at !== undefined && at.address !== before.address) announcedMs = Date.now() - t0;
      }
      if (Date.now() - t0 > 120_000) throw new Error(`no login within 120 s after powering off ${host.name}`);
      const started = Date.now();
      attempts++;
      const r = await listing().catch(() => undefined);
      if (r !== undefined && r.address !== before.address) ok = r;
      else {
        failed++;
        await systemClock.sleep(Math.max(0, POLL_MS - (Date.now() - started)));
      }
    }
    const downMs = Date.now() - t0;
    const to = cluster.hostOfMachine(ok.machine)?.name ?? '?';
    trials.push({
      from: host.name,
      to,
      downMs,
      announcedMs: Number.isNaN(announcedMs) ? downMs : announcedMs,
      attempts,
      failed,
    });
    process.stderr.write(
      `trial ${i + 1}/${TRIALS}: ${host.name} off → FTP answered on ${to} after ${fmt(downMs / 1000, 2)} s (${failed} failed attempts)\n`,
    );
    await cluster.powerOn(host.name);
  }
} finally {
  await cluster.close();
}

const down = trials.map((t) => t.downMs);
const announced = trials.map((t) => t.announcedMs);
writeSection(
  'ftp-failover',
  [
    '### FTP failover: the FTP server’s host powered off (issue 7)',
    '',
    'examples/process/ftp.unit (vsftpd, virtual users on the shared path) and ftp-discovery.unit on a',
    `3-host dev cluster (lease TTL 4 s, announcer TTL 5 s). ${trials.length} power-offs of the FTP host (every`,
    'process of its namespace SIGKILLed), each powered on again before the next. A client resolves',
    `services/ftp every ${POLL_MS} ms and does connect + login + LIST (passive mode); downtime is from the`,
    'power-off to the first success at the new address.',
    '',
    '| from power-off to … | median | max |',
    '|---|---|---|',
    `| services/ftp names the new host | ${fmt(median(announced) / 1000, 2)} s | ${fmt(Math.max(...announced) / 1000, 2)} s |`,
    `| power-off → first login + LIST on the new host | ${fmt(median(down) / 1000, 2)} s | ${fmt(Math.max(...down) / 1000, 2)} s |`,
    '',
    `Trials: ${trials.map((t) => `${t.from}→${t.to} ${fmt(t.downMs / 1000, 2)} s`).join(', ')}.`,
    'The dead host’s lease (4 s) must run out before the engine re-places ftp.unit; the rest is',
    '`fleetts ftp prepare-host` (a Node start), vsftpd’s start and the announcer’s start and first check.',
  ].join('\n'),
);
