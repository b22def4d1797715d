// `fleetts announce`: the health-checked sidekick of a unit. Writes services/<service>/<instance>
// under its own lease while the check passes (discovery/announcer.ts); exits on SIGTERM/SIGINT
// after removing the key.
import type { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { asMachineId, asUnitName } from '../lib/ids.js';
import {
  Announcer,
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_DOWN_INTERVAL_MS,
  type AnnounceTarget,
} from '../discovery/announcer.js';
import { checkHealth, describeCheckTarget, parseCheckTarget } from '../discovery/health-check.js';
import { checkBackendAddress } from '../discovery/render-upstream.js';
import type { CliContext } from './main.js';
import {
  addEtcdOptions,
  addMetricsOption,
  commandLogger,
  countFlag,
  defaultHostname,
  type DiscoveryCommandDeps,
  durationFlag,
  ETCD_OPTIONS_HELP,
  type EtcdFlags,
  openRegistry,
  sidekickMetrics,
  stopSignal,
} from './discovery-options.js';

interface AnnounceFlags extends EtcdFlags {
  readonly service: string;
  readonly addr: string;
  readonly check?: string;
  readonly interval: string;
  readonly downInterval: string;
  readonly timeout: string;
  readonly ttl: string;
  readonly rise: string;
  readonly fall: string;
  readonly instance?: string;
  readonly machine?: string;
  readonly unit?: string;
}

const NAME_RE = /^[A-Za-z0-9@._:-]+$/;

export function registerAnnounce(program: Command, ctx: CliContext, deps: DiscoveryCommandDeps = {}): void {
  const cmd = program
    .command('announce')
    .description('announce a backend under services/<service>/ while its health check passes (a sidekick)')
    .requiredOption('--service <name>', 'the service to announce (e.g. web)')
    .requiredOption('--addr <host:port>', 'the address clients connect to')
    .option(
      '--check <url>',
      'health check: http://HOST:PORT/PATH (2xx/3xx passes) or tcp://HOST:PORT (default: tcp://ADDR)',
    )
    .option(
      '--interval <span>',
      'time between checks while announced',
      `${DEFAULT_CHECK_INTERVAL_MS / 1000}s`,
    )
    .option(
      '--down-interval <span>',
      'time between checks while not announced',
      `${DEFAULT_DOWN_INTERVAL_MS}ms`,
    )
    .option(
      '--timeout <span>',
      'a check that takes longer fails (time this process spent descheduled does not count)',
      '1s',
    )
    .option('--ttl <span>', 'lease TTL: how long the key outlives a killed announcer or a dead host', '5s')
    .option('--rise <n>', 'consecutive passes before announcing', '1')
    .option('--fall <n>', 'consecutive failures before withdrawing', '1')
    .option(
      '--instance <name>',
      'instance name, the key under services/<service>/ (default: the unit, else MACHINE-PORT)',
    )
    .option('--machine <id>', 'machine id stored with the address (default: $FLEETTS_MACHINE_ID)')
    .option('--unit <name>', 'unit name stored with the address (default: $FLEETTS_UNIT)');
  addMetricsOption(addEtcdOptions(cmd))
    .addHelpText(
      'after',
      `
${ETCD_OPTIONS_HELP}

Examples:
  fleetts announce --service web --addr 10.0.0.5:8080 --check http://10.0.0.5:8080/
  ExecStart=/usr/bin/env fleetts announce --service web --unit web@%i.unit --addr \${FLEETTS_MACHINE_IP}:8080 --check http://\${FLEETTS_MACHINE_IP}:8080/`,
    )
    .action(async (flags: AnnounceFlags) => {
      const env = deps.env ?? process.env;
      const settings = announceSettings(flags, env, defaultHostname(deps));
      const log = commandLogger(flags, deps, 'fleetts-announce');
      const served = await sidekickMetrics(flags, log);
      const registry = await openRegistry(flags, env, undefined, served.metrics).catch(
        async (err: unknown) => {
          await served.close();
          throw err;
        },
      );
      const stop = stopSignal(deps, ctx.signal);
      try {
        const announcer = new Announcer({
          registry,
          clock: ctx.clock,
          log,
          target: settings.target,
          check: () => checkHealth(settings.check, { clock: ctx.clock, timeoutMs: settings.timeoutMs }),
          intervalMs: settings.intervalMs,
          downIntervalMs: settings.downIntervalMs,
          thresholds: settings.thresholds,
          lease: { ttlMs: settings.ttlMs },
          ...(served.metrics === undefined ? {} : { metrics: served.metrics }),
        });
        log.info(
          { event: 'announce.check', check: describeCheckTarget(settings.check) },
          'health check configured',
        );
        await announcer.run(stop.signal);
      } finally {
        stop.dispose();
        await registry.close();
        await served.close();
      }
    });
}

/** Flags and environment → validated settings (UsageError naming the flag). */
export function announceSettings(flags: AnnounceFlags, env: NodeJS.ProcessEnv, host: string) {
  const bad = checkBackendAddress(flags.addr);
  if (bad !== undefined) throw new UsageError(`--addr: ${bad}`);
  const port = flags.addr.slice(flags.addr.lastIndexOf(':') + 1);
  const fromEnv = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const machine = flags.machine ?? fromEnv('FLEETTS_MACHINE_ID');
  const unit = flags.unit ?? fromEnv('FLEETTS_UNIT');
  const instance = flags.instance ?? unit ?? `${machine ?? host}-${port}`;
  for (const [flag, value] of [
    ['--service', flags.service],
    ['--instance', instance],
    ['--machine', machine],
    ['--unit', unit],
  ] as const) {
    if (value !== undefined && !NAME_RE.test(value))
      throw new UsageError(`${flag} '${value}' may only hold letters, digits and @ . _ : -`);
  }
  const intervalMs = durationFlag('--interval', flags.interval, 10);
  const ttlMs = durationFlag('--ttl', flags.ttl, 2000);
  const target: AnnounceTarget = {
    service: flags.service,
    instance,
    address: flags.addr,
    ...(machine === undefined ? {} : { machine: asMachineId(machine) }),
    ...(unit === undefined ? {} : { unit: asUnitName(unit) }),
  };
  return {
    target,
    check: parseCheckTarget(flags.check ?? `tcp://${flags.addr}`),
    intervalMs,
    downIntervalMs: durationFlag('--down-interval', flags.downInterval, 10),
    timeoutMs: durationFlag('--timeout', flags.timeout, 10),
    ttlMs,
    thresholds: { rise: countFlag('--rise', flags.rise, 1), fall: countFlag('--fall', flags.fall, 1) },
  };
}
