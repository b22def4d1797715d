// `fleetts upstream`: keeps an nginx upstream file equal to the live instances of a service
// (discovery/upstream-sync.ts): render, validate with nginx -t, swap atomically, reload nginx; each
// reload recorded in etcd (discovery/reload-recorder.ts) for the event stream.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { createRandom, entropySeed } from '../lib/random.js';
import {
  DEFAULT_CHECK_CMD,
  DEFAULT_RELOAD_CMD,
  NginxSink,
  SRC_PLACEHOLDER,
} from '../discovery/nginx-sink.js';
import {
  DEFAULT_KEEPALIVE,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  DEFAULT_SERVER_PARAMS,
  defaultFallbackListen,
  parseUpstreamTemplate,
  renderUpstream,
  TEMPLATE_HELP,
  type UpstreamRenderOptions,
  upstreamName,
} from '../discovery/render-upstream.js';
import { ReloadRecorder } from '../discovery/reload-recorder.js';
import { DEFAULT_DEBOUNCE_MS, DEFAULT_EMPTY_HOLD_MS, UpstreamSync } from '../discovery/upstream-sync.js';
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

interface UpstreamFlags extends EtcdFlags {
  readonly service: string;
  readonly out: string;
  readonly template?: string;
  readonly name?: string;
  readonly checkCmd: string;
  readonly reloadCmd: string;
  readonly debounce: string;
  readonly emptyHold: string;
  readonly serverParams: string;
  readonly keepalive: string;
  readonly keepaliveTimeout: string;
  readonly fallbackListen?: string;
  readonly machine?: string;
}

/** What a host may be called in `upstreams/<host>/<service>` (as `fleetts floating-address --machine`). */
const HOST_RE = /^[A-Za-z0-9@._:-]+$/;

export function registerUpstream(program: Command, ctx: CliContext, deps: DiscoveryCommandDeps = {}): void {
  const cmd = program
    .command('upstream')
    .description(
      "render a service's live instances as an nginx upstream; validate, swap in and reload nginx on every change",
    )
    .requiredOption('--service <name>', 'the service to follow (services/<name>/)')
    .requiredOption(
      '--out <file>',
      'the file to write (e.g. /etc/nginx/conf.d/upstream-web.conf); replaced atomically',
    )
    .option('--template <file>', 'your own template instead of the default upstream block (see below)')
    .option('--name <upstream>', 'the nginx upstream name (default: the service name)')
    .option(
      '--check-cmd <cmd>',
      `validates the configuration with the new file in place ('' skips; ${SRC_PLACEHOLDER} = the staged file, checked before the swap)`,
      DEFAULT_CHECK_CMD,
    )
    .option('--reload-cmd <cmd>', "reloads nginx after a change ('' skips)", DEFAULT_RELOAD_CMD)
    .option(
      '--debounce <span>',
      'changes within this time of the first one go into one reload',
      `${DEFAULT_DEBOUNCE_MS}ms`,
    )
    .option(
      '--empty-hold <span>',
      'when every instance vanishes at once (an etcd outage revokes every announcer lease together), keep the last ones this long before rendering none (0: at once)',
      `${DEFAULT_EMPTY_HOLD_MS / 1000}s`,
    )
    .option(
      '--server-params <params>',
      'parameters of each server line (not of the backups)',
      DEFAULT_SERVER_PARAMS,
    )
    .option('--keepalive <n>', 'idle keepalive connections per worker (0: none)', String(DEFAULT_KEEPALIVE))
    .option(
      '--keepalive-timeout <span>',
      "how long nginx keeps an idle upstream connection: less than the backends' keep-alive timeout",
      `${DEFAULT_KEEPALIVE_TIMEOUT_MS / 1000}s`,
    )
    .option(
      '--fallback-listen <addr>',
      'where the local 503 server listens (default: unix:/run/fleetts-upstream-NAME.sock)',
    )
    .option(
      '--machine <id>',
      'the host its reloads are recorded under, upstreams/HOST/SERVICE (default: $FLEETTS_MACHINE_ID, else the hostname)',
    );
  addMetricsOption(addEtcdOptions(cmd))
    .addHelpText(
      'after',
      `
The default file holds "upstream NAME { server ADDR ${DEFAULT_SERVER_PARAMS}; … }", the same
servers again as backups that are never marked down (so that failures never leave nginx refusing
every request), "keepalive N; keepalive_timeout T;" (nginx 1.15.3 or later), and a local server
that answers 503 with a clear page when no instance is live. Proxy to it with e.g.:
  location / { proxy_pass http://web; proxy_next_upstream error timeout; proxy_next_upstream_tries 3;
               proxy_connect_timeout 1s; proxy_http_version 1.1; proxy_set_header Connection ""; }
Backends behind a keepalive upstream must keep idle connections open longer than
--keepalive-timeout, and must not close them between requests under load (Apache: mpm_worker, no
child ever stopped; see docs/web-farm-load.md).

${TEMPLATE_HELP}

${ETCD_OPTIONS_HELP}

Examples:
  fleetts upstream --service web --out /etc/nginx/conf.d/upstream-web.conf
  fleetts upstream --service web --out /srv/lb/conf.d/upstream-web.conf \\
      --check-cmd 'docker exec lb nginx -t -q' --reload-cmd 'docker exec lb nginx -s reload'`,
    )
    .action(async (flags: UpstreamFlags) => {
      const env = deps.env ?? process.env;
      const render = await renderOptions(flags);
      const debounceMs = durationFlag('--debounce', flags.debounce, 0);
      const emptyHoldMs = durationFlag('--empty-hold', flags.emptyHold, 0);
      const host = flags.machine ?? (env['FLEETTS_MACHINE_ID'] || undefined) ?? defaultHostname(deps);
      if (!HOST_RE.test(host)) {
        const from =
          flags.machine !== undefined
            ? '--machine'
            : env['FLEETTS_MACHINE_ID']
              ? '$FLEETTS_MACHINE_ID'
              : 'the hostname';
        throw new UsageError(
          `host '${host}' (from ${from}) may only hold letters, digits and @ . _ : -: give one with --machine`,
        );
      }
      const log = commandLogger(flags, deps, 'fleetts-upstream');
      // One Random per run, seeded from entropy: balancers restarted together retry apart.
      const random = deps.random ?? createRandom(entropySeed());
      const served = await sidekickMetrics(flags, log);
      const registry = await openRegistry(flags, env, random, served.metrics).catch(async (err: unknown) => {
        await served.close();
        throw err;
      });
      const stop = stopSignal(deps, ctx.signal);
      const recorder = new ReloadRecorder({ registry, clock: ctx.clock, log, host, service: flags.service });
      try {
        const sink = new NginxSink({
          out: flags.out,
          checkCmd: flags.checkCmd,
          reloadCmd: flags.reloadCmd,
          clock: ctx.clock,
          log,
        });
        const sync = new UpstreamSync({
          registry,
          clock: ctx.clock,
          random,
          log,
          service: flags.service,
          render: (instances) => renderUpstream(instances, render),
          sink,
          debounceMs,
          emptyHoldMs,
          onReloaded: (reload) => recorder.record(reload),
          ...(served.metrics === undefined ? {} : { metrics: served.metrics }),
        });
        await sync.run(stop.signal);
      } finally {
        stop.dispose();
        await recorder.close();
        await registry.close();
        await served.close();
      }
    });
}

async function renderOptions(flags: UpstreamFlags): Promise<UpstreamRenderOptions> {
  const name = flags.name ?? upstreamName(flags.service);
  let template;
  if (flags.template !== undefined) {
    let text: string;
    try {
      text = await readFile(flags.template, 'utf8');
    } catch (err) {
      throw new UsageError(`--template: cannot read ${flags.template}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    template = parseUpstreamTemplate(text, flags.template);
  }
  const options: UpstreamRenderOptions = {
    name,
    service: flags.service,
    serverParams: flags.serverParams,
    keepalive: countFlag('--keepalive', flags.keepalive, 0),
    keepaliveTimeoutMs: durationFlag('--keepalive-timeout', flags.keepaliveTimeout, 1),
    fallbackListen: flags.fallbackListen ?? defaultFallbackListen(name),
    ...(template === undefined ? {} : { template }),
  };
  // Options are checked once here, so that a bad flag is a usage error rather than a failed pass.
  try {
    renderUpstream([], options);
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
  return options;
}
