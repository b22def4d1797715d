// `npm run demo -- --hosting`: after the web farm is up (main.ts steps 1–4), the rest of the
// hosting cluster — a 3-member MySQL (Galera) cluster and FTP — then one host's power-off healed
// and its MySQL member rejoining. The steps live in hosting-services.ts; this file tells the story.
import { formatCounts, formatTimeline, heading, indent, seconds } from './demo-report.js';
import { HostingServices } from './hosting-services.js';
import type { Clock } from '../lib/clock.js';
import type { WebFarmDemo } from './web-farm-demo.js';

export interface TourIo {
  readonly say: (text?: string) => void;
  readonly show: (args: string[]) => Promise<void>;
}

/** Runs the hosting steps from step `n` on; returns the summary lines. */
export async function hostingTour(
  farm: WebFarmDemo,
  clock: Clock,
  io: TourIo,
  options: { n: number; rate: number },
): Promise<string[]> {
  const { say, show } = io;
  let n = options.n;
  const services = new HostingServices({ farm, clock });

  say(heading(n++, 'The MySQL cluster and FTP'));
  say('  mysql@1..3: `fleetts galera member` decides under an etcd lock which one bootstraps the Galera');
  say('  cluster (exactly one) and the others join the announced members; each runs mariadbd with its');
  say('  own data dir on its host (Conflicts=: one per host). mysql-discovery@N announce the Synced');
  say('  members under services/mysql. ftp.unit: vsftpd with virtual users, its configuration and the');
  say("  users' files on the shared storage, announced under services/ftp.");
  const files = await services.prepare();
  say(indent(files.join('\n'), '    '));
  for (const r of await services.deploy()) {
    say(`  $ ${r.command}`);
    say(indent(r.stdout, '    '));
  }
  say('  waiting until the three members are Synced and announced …');
  await services.waitForServices();
  await show(['list-units']);
  await show(['galera', 'bootstraps', '--etcd-endpoints', farm.plan.etcd.endpoints.join(',')]);
  const members = [...services.members()].sort();
  const [first] = members;
  if (first === undefined) throw new Error('no MySQL member announced');
  await services.writeRow(first[1], 1, `written through ${first[0]}`);
  for (const [unit, address] of members)
    say(
      `  ${unit} at ${address} (${farm.timeline.hostOfAddress(address)}) serves: ${(await services.rows(address)).join('; ')}`,
    );
  const file = Buffer.from(`uploaded at ${new Date(clock.now()).toISOString()}\n`.repeat(2_000));
  const ftpAt = await services.ftpUpload('site-backup.txt', file);
  say(
    `  FTP: ${services.ftpUser} uploaded site-backup.txt (${file.length} bytes) to ${ftpAt} (${farm.timeline.hostOfAddress(ftpAt)})`,
  );

  const ftpHost = farm.timeline.hostOfAddress(ftpAt);
  const unitsThere = farm.timeline.unitsOn(ftpHost);
  say(heading(n++, `Power off ${ftpHost}: it runs ${unitsThere.join(', ')}`));
  say(`  A client sends ${options.rate} GETs/s through the balancer meanwhile.`);
  const client = await farm.startClient(options.rate);
  await clock.sleep(2_000);
  const outage = await services.powerOff(ftpHost);
  await clock.sleep(2_000);
  const counts = client.counts(outage.t0, clock.now());
  say('  Timeline (seconds after the power-off):');
  say(formatTimeline(outage.events, outage.t0, (a) => farm.timeline.hostOfAddress(a)));
  say('');
  say(
    `  MySQL: a row written through one surviving member and read through the other at +${seconds(outage.mysqlServedMs)}`,
  );
  say(`  web:   every moved unit active elsewhere and the upstream exact at +${seconds(outage.webWholeMs)}`);
  say(
    `  FTP:   back on ${outage.ftpHost}, site-backup.txt downloaded identical at +${seconds(outage.ftpBackMs)}`,
  );
  say(formatCounts(counts));
  if (outage.mysqlWaiting !== undefined) {
    say(
      `  ${outage.mysqlWaiting} waits for a host without a member (Conflicts=mysql@*.unit); the engine says why:`,
    );
    say(indent(outage.unitFiles, '    '));
  }

  say(heading(n++, `Power ${ftpHost} on again: its member rejoins`));
  const rejoin = await services.powerOn(ftpHost);
  say(
    `  the member on ${ftpHost} Synced and announced ${seconds(rejoin.syncedMs)} after the power-on; it serves:`,
  );
  say(indent(rejoin.rows.join('\n'), '    '));
  await show(['list-units']);
  await farm.stopClient();
  await show(['galera', 'bootstraps', '--etcd-endpoints', farm.plan.etcd.endpoints.join(',')]);

  return [
    `  ${ftpHost} powered off: MySQL served by the other two after ${seconds(outage.mysqlServedMs)}, the web farm whole after ${seconds(outage.webWholeMs)},`,
    `  FTP back on ${outage.ftpHost} after ${seconds(outage.ftpBackMs)}; the web client: ${counts.answered} answered, ${counts.failed} failed.`,
    `  ${ftpHost} powered on: its member rejoined (Synced) after ${seconds(rejoin.syncedMs)}, with ${rejoin.rows.length} rows.`,
  ];
}
