// `npm run demo` (scripts/demo.sh builds, then runs this): the web farm on a 3-host dev cluster, two
// failovers measured and explained, then tear-down (or --keep). Thin: the steps live in
// web-farm-demo.ts, the formatting in demo-report.ts.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_DEV_STATE_DIR, DEFAULT_SHARED_PATH } from '../dev/defaults.js';
import { systemClock } from '../lib/clock.js';
import { DemoError } from './demo-error.js';
import { describeFailure, formatFailure, type Aftermath } from './demo-failure.js';
import {
  formatCounts,
  formatMilestones,
  formatTimeline,
  heading,
  indent,
  keepHints,
  seconds,
  table,
} from './demo-report.js';
import { HOSTING_SERVICES, HostingServices } from './hosting-services.js';
import { hostingTour } from './hosting-tour.js';
import { checkBeforeUp, stateDirFlag } from './preflight.js';
import { WebFarmDemo, WRAPPER_PATH, type FailoverResult } from './web-farm-demo.js';

const USAGE = `usage: npm run demo [-- --hosting] [--keep] [--lease-ttl-ms MS] [--rate N] [--state-dir DIR]
                     [--shared-path DIR]

Brings up 3 hosts (network namespaces with one fleetd each, etcd, shared storage), deploys the web
farm (3 Apache backends with their discovery sidekicks, an nginx load balancer with its upstream
watcher and announcer), powers off the host of a backend and then the balancer's host while a client
sends steady requests, prints what happened and when, and tears everything down.

  --hosting          the whole hosting cluster instead of the two web failovers: the web farm, a
                     3-member MySQL (Galera) cluster and FTP on the same 3 hosts, one host powered
                     off (every service heals) and on again (its MySQL member rejoins)
  --keep             leave the cluster and the farm running at the end
  --lease-ttl-ms MS  fleetd's membership lease (default 5000: a dead host is noticed within ~5 s)
  --rate N           the steady client's requests per second (default 20)
  --state-dir DIR    the dev cluster's state (default /var/lib/fleetts-dev)
  --shared-path DIR  where every host sees the shared storage (default /srv/fleetts/shared)
Needs root (namespaces, mounts); scripts/demo.sh installs what is missing. It starts its own
cluster: one already in the state dir (an earlier --keep) must be removed first (fleetts dev down).`;

interface DemoOptions {
  readonly help: boolean;
  readonly keep: boolean;
  readonly hosting: boolean;
  readonly rate: number;
  readonly leaseTtlMs: number | undefined;
  readonly stateDir: string | undefined;
  readonly sharedPath: string;
}

/** The command line, or a `demo_usage` DemoError naming what is wrong with it. */
function parseOptions(argv: readonly string[]): DemoOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        keep: { type: 'boolean', default: false },
        hosting: { type: 'boolean', default: false },
        'lease-ttl-ms': { type: 'string' },
        rate: { type: 'string', default: '20' },
        'state-dir': { type: 'string' },
        'shared-path': { type: 'string', default: DEFAULT_SHARED_PATH },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    // node:util's parse errors: ERR_PARSE_ARGS_UNKNOWN_OPTION and the like.
    const message = err instanceof Error ? err.message : String(err);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    throw new DemoError('demo_usage', unknown === null ? message : `unknown option ${unknown[1]}`, {
      cause: err,
    });
  }
  const rate = Number(values.rate);
  if (!Number.isFinite(rate) || rate <= 0)
    throw new DemoError('demo_usage', `--rate must be a number greater than 0, not "${values.rate}"`);
  const lease = values['lease-ttl-ms'];
  const leaseTtlMs = lease === undefined ? undefined : Number(lease);
  if (leaseTtlMs !== undefined && !(Number.isInteger(leaseTtlMs) && leaseTtlMs >= 2000))
    throw new DemoError(
      'demo_usage',
      `--lease-ttl-ms must be a whole number of at least 2000 (etcd grants leases in whole seconds), not "${lease}"`,
    );
  return {
    help: values.help,
    keep: values.keep,
    hosting: values.hosting,
    rate,
    leaseTtlMs,
    stateDir: values['state-dir'],
    sharedPath: resolve(values['shared-path']),
  };
}

/** Where the demo is: what a failure or an interrupt leaves behind depends on it. */
type Stage = 'setup' | 'up' | 'farm' | 'teardown';

async function main(argv: readonly string[]): Promise<number> {
  const say = (text = ''): void => void process.stdout.write(text + '\n');
  let stage: Stage = 'setup';
  let demo: WebFarmDemo | undefined;
  let flag = '';
  const interrupted = (signal: NodeJS.Signals): void => {
    const left =
      stage === 'setup'
        ? 'nothing was made'
        : `the dev cluster is left as it is: \`sudo fleetts dev down${flag}\` removes it`;
    process.stderr.write(`\nfleetts demo: interrupted (${signal}); ${left}\n`);
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const options = parseOptions(argv);
    if (options.help) {
      say(USAGE);
      return 0;
    }
    if (process.getuid?.() !== 0)
      throw new DemoError(
        'demo_needs_root',
        'needs root (network namespaces, a bridge, veth links, mounts): run sudo npm run demo',
      );
    const d = new WebFarmDemo({
      clock: systemClock,
      progress: (line) => say(`  · ${line.replace(/^fleetts dev: /, '')}`),
      ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }),
      ...(options.hosting ? { services: HOSTING_SERVICES } : {}),
    });
    demo = d;
    flag = stateDirFlag(d.dev.stateDir, DEFAULT_DEV_STATE_DIR);
    await checkBeforeUp({
      stateDir: d.dev.stateDir,
      sharedPath: options.sharedPath,
      hosting: options.hosting,
      flag,
    });
    return await runDemo(d, options, say, flag, (s) => (stage = s));
  } catch (err) {
    const failure = describeFailure(err, await aftermath(stage, demo, flag));
    process.stderr.write(`${stage === 'setup' ? '' : '\n'}${formatFailure(failure)}\n`);
    return failure.exitCode;
  }
}

/** After a failure: a cluster that did not come up is removed; one that did is left for a look. */
async function aftermath(stage: Stage, demo: WebFarmDemo | undefined, flag: string): Promise<Aftermath> {
  if (stage === 'setup' || demo === undefined) return { kind: 'nothing-made' };
  if (stage === 'teardown') return { kind: 'not-removed', flag };
  if (stage === 'farm') {
    await demo.close({ down: false }).catch(() => undefined);
    return { kind: 'left-up', flag };
  }
  try {
    await demo.close({ down: true });
    return { kind: 'removed' };
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    return { kind: 'not-removed', flag, why: `removing it failed: ${why}` };
  }
}

/** The demo's story, step by step; `enter` records the stage before the step that starts it. */
async function runDemo(
  demo: WebFarmDemo,
  options: DemoOptions,
  say: (text?: string) => void,
  flag: string,
  enter: (stage: Stage) => void,
): Promise<number> {
  const { rate, leaseTtlMs } = options;
  const show = async (args: string[]): Promise<void> => {
    const r = await demo.fleetts(args);
    say(`  $ ${r.command}`);
    say(indent(r.stdout + (r.code === 0 ? '' : r.stderr), '    '));
  };
  say(
    options.hosting
      ? 'fleetts demo: a hosting cluster (web farm, MySQL, FTP) that survives losing a host'
      : 'fleetts demo: a web farm that survives losing a host',
  );
  say('Every host runs fleetd; etcd holds the cluster state; units are systemd-style files placed by');
  say('the elected engine. Hosts are network namespaces on this machine, each with its own IP.');

  say(heading(1, 'Bring up 3 hosts'));
  enter('up');
  const plan = await demo.up({
    nodes: 3,
    sharedPath: options.sharedPath,
    ...(leaseTtlMs === undefined ? {} : { leaseTtlMs }),
  });
  enter('farm');
  say(
    `  ${plan.hosts.length} hosts on ${plan.subnet}, lease TTL ${plan.leaseTtlMs / 1000} s, shared storage at ${plan.shared.target}`,
  );
  await show(['list-machines']);

  say(heading(2, 'Prepare shared storage and the fleetts command for the units'));
  const wrapper = await demo.installFleetts();
  say(
    `  ${WRAPPER_PATH}: ${wrapper} (the sidekicks run \`fleetts announce\`, \`fleetts upstream\` and \`fleetts floating-address\`)`,
  );
  const files = await demo.prepareSharedStorage();
  say('  Apache and nginx configuration, the site and the unit files, seen by every host:');
  say(indent(files.join('\n'), '    '));

  say(heading(3, 'Start the farm'));
  say('  web@1..3 (Apache, one port per instance), web-discovery@1..3 (each announces its web instance');
  say('  while it answers), and on every host (Global=true): lb (nginx), lb-upstream (renders that');
  say("  host's upstream from services/web and reloads its nginx), lb-discovery (announces it under");
  say(`  services/lb) and lb-address (keeps the floating address ${demo.floatingAddress} up on exactly one`);
  say('  host whose nginx answers, docs/floating-address.md).');
  for (const r of await demo.deploy()) {
    say(`  $ ${r.command}`);
    say(indent(r.stdout, '    '));
  }
  say('  waiting until every backend is announced and in the upstream …');
  await demo.waitForFarm();
  await show(['list-units']);
  say(`  upstream: ${demo.timeline.servers.join(', ')}`);
  say(`  floating address ${demo.floatingAddress}: up on ${demo.addressHost() ?? '?'}`);

  say(heading(4, `Requests through the load balancer (${demo.lbAddress() ?? '?'})`));
  say(formatCounts(await demo.probe(12)));

  if (options.hosting) {
    const summary = await hostingTour(demo, systemClock, { say, show }, { n: 5, rate });
    say(heading(8, 'Summary'));
    for (const line of summary) say(line);
    return finish(8);
  }

  const failovers: FailoverResult[] = [];
  const victim = demo.backendOnlyHost();
  if (victim === undefined)
    throw new DemoError(
      'demo_step_failed',
      'every host with a backend also runs the balancer: no backend-only host to power off; see `fleetts list-units`',
    );
  say(
    heading(
      5,
      `Power off ${victim}, the host of ${demo.timeline
        .unitsOn(victim)
        .filter((u) => u.startsWith('web@'))
        .join(', ')}`,
    ),
  );
  say(
    `  A client sends ${rate} GETs/s through the balancer's floating address ${demo.floatingAddress}, without retries,`,
  );
  say('  giving each request 10 s.');
  await demo.startClient(rate);
  await systemClock.sleep(2_000);
  const first = await demo.failover(victim);
  failovers.push(first);
  reportFailover(say, demo, first);
  await show(['list-units']);

  say(heading(6, `Power ${victim} on again`));
  reportPowerOn(say, await demo.powerOn(victim));

  const lbHost = demo.addressHost();
  if (lbHost === undefined)
    throw new DemoError(
      'demo_step_failed',
      `the floating address ${demo.floatingAddress} is up on no host; see \`fleetts list-units\` and \`fleetts journal lb-address\``,
    );
  say(heading(7, `Power off ${lbHost}, the host holding the floating address ${demo.floatingAddress}`));
  say("  Every host runs a balancer; the others' lb-address sidekicks wait for the address. Once the");
  say("  holder's etcd lease expires, one of them adds the address and announces it by gratuitous ARP.");
  say("  Requests sent meanwhile wait in TCP's SYN retries; requests in flight at the power-off are lost");
  say('  with the host, and counted.');
  const second = await demo.failover(lbHost);
  failovers.push(second);
  reportFailover(say, demo, second);
  await show(['list-units']);

  say(heading(8, `Power ${lbHost} on again`));
  reportPowerOn(say, await demo.powerOn(lbHost));
  await demo.stopClient();

  say(heading(9, 'Summary'));
  say(
    table([
      [
        'POWERED OFF',
        'DECLARED DEAD',
        'DEAD BACKEND OUT',
        'REPLACEMENT IN',
        'NGINX RELOADED',
        'ANSWERED',
        'FAILED',
        'NO LB',
      ],
      ...failovers.map((f) => [
        `${f.host}${f.lbMoved ? ' (address)' : ''}`,
        seconds(f.deadMs),
        seconds(f.deadOutMs),
        seconds(f.upstreamMs),
        seconds(f.reloadedMs),
        String(f.client.answered),
        String(f.client.failed),
        String(f.client.noLb),
      ]),
    ]),
  );
  say("  (seconds after the power-off; the upstream is nginx's list of backends)");
  say(
    `  Backend host: ${first.client.failed} failed GETs (target 0); upstream updated with the replacement after` +
      ` ${seconds(first.upstreamMs)} (target: median ≤ 6 s, p95 ≤ 8 s over many runs: npm run bench).`,
  );
  say(
    `  Address host: the floating address was up on ${second.addressTo ?? 'another host'} after ${seconds(second.addressUpMs ?? NaN)};` +
      ` ${second.failedAfterOff} GETs sent after the power-off failed (target 0),` +
      ` ${second.inFlightFailed} in flight at the power-off (${seconds(second.offMs)} to kill the host) failed.`,
  );
  if (second.outage !== undefined)
    say(
      `  Failed requests were sent between +${seconds(second.outage.fromMs)} and +${seconds(second.outage.toMs)}.`,
    );
  return finish(9);

  async function finish(last: number): Promise<number> {
    if (options.keep) {
      // The balancer's floating address: it answers there wherever the balancer moves.
      const lb = demo.floatingAddress;
      const unitsDir = demo.paths.units;
      await demo.close({ down: false });
      say(heading(last + 1, 'The cluster stays up (--keep)'));
      const dashboard = { apis: plan.hosts.map((h) => h.apiListen), tokenFile: plan.apiTokenFile };
      say(keepHints({ lb, flag, wrapper, wrapperPath: WRAPPER_PATH, unitsDir, dashboard }));
      return 0;
    }
    say(heading(last + 1, 'Tear down'));
    enter('teardown');
    await demo.close({ down: true });
    if (options.hosting) await new HostingServices({ farm: demo, clock: systemClock }).removeData();
    say('  dev cluster removed (namespaces, bridge, etcd, mounts); run with --keep to leave it up');
    return 0;
  }
}

function reportFailover(say: (s?: string) => void, demo: WebFarmDemo, r: FailoverResult): void {
  const hostOf = (a: string): string => demo.timeline.hostOfAddress(a);
  say('  Timeline (seconds after the power-off):');
  say(formatTimeline(r.events, r.t0, hostOf));
  say('');
  say(formatMilestones(r));
  say('');
  say(`  The client, from the power-off to ${seconds(r.end - r.t0 + 2000)} after it:`);
  say(formatCounts(r.client));
  if (r.outage !== undefined)
    say(`  failed or unsent requests between +${seconds(r.outage.fromMs)} and +${seconds(r.outage.toMs)}`);
  say(
    `  requests in flight at the power-off (or sent in the ${seconds(r.offMs)} it took) that failed: ${r.inFlightFailed};` +
      ` sent after it that failed: ${r.failedAfterOff}`,
  );
}

function reportPowerOn(say: (s?: string) => void, r: Awaited<ReturnType<WebFarmDemo['powerOn']>>): void {
  say(`  ${r.host} registered again after ${seconds(r.bootMs)}.`);
  if (r.movedBack.length === 0)
    say(
      `  Nothing moved: ${r.host} runs ${r.unitsOnHost.length === 0 ? 'no units' : r.unitsOnHost.join(', ')} (no needless churn).`,
    );
  else for (const m of r.movedBack) say(`  ! ${m.unit} moved from ${m.from} to ${m.to}`);
  say(`  client meanwhile: ${r.client.answered} answered, ${r.client.failed} failed`);
}

process.exitCode = await main(process.argv.slice(2));
