// `fleetts floating-address`: the sidekick that keeps one IPv4 address on one host, elected through
// etcd so that it is never up on two hosts: beside a single balancer (MachineOf=), or on every host
// of a global balancer with --track, where only hosts whose balancer passes its check campaign
// (discovery/floating-address.ts; docs/floating-address.md). A composition root: it builds the etcd
// client, the election, the --track check and the real `ip`/`arping` control.
import type { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { createRandom, entropySeed } from '../lib/random.js';
import { DEFAULT_FLOATING_CHECK_MS, FloatingAddress } from '../discovery/floating-address.js';
import {
  DEFAULT_FLOATING_KEEPALIVE_MS,
  DEFAULT_FLOATING_TTL_MS,
  fenceAfterMs,
} from '../discovery/floating-state.js';
import { checkHealth, describeCheckTarget, parseCheckTarget } from '../discovery/health-check.js';
import { type FloatingTarget, IpAddressControl } from '../discovery/ip-address.js';
import type { Clock } from '../lib/clock.js';
import type { FloatingTrack } from '../discovery/floating-address.js';
import { MIN_LEASE_TTL_MS } from '../registry/kept-lease.js';
import { RegistryKeys } from '../registry/keys.js';
import { KvLeadership } from '../registry/leadership.js';
import type { CliContext } from './main.js';
import {
  addEtcdOptions,
  commandLogger,
  countFlag,
  defaultHostname,
  type DiscoveryCommandDeps,
  durationFlag,
  ETCD_OPTIONS_HELP,
  etcdConnection,
  type EtcdFlags,
  stopSignal,
} from './discovery-options.js';

interface FloatingFlags extends EtcdFlags {
  readonly address: string;
  readonly interface: string;
  readonly ttl: string;
  readonly checkInterval: string;
  readonly machine?: string;
  readonly track?: string;
  readonly trackInterval?: string;
  readonly trackTimeout?: string;
  readonly trackRise?: string;
  readonly trackFall?: string;
}

/** Linux interface names: at most 15 bytes (IFNAMSIZ), no '/' or whitespace. */
const DEVICE_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const NAME_RE = /^[A-Za-z0-9@._:-]+$/;

export function registerFloatingAddress(
  program: Command,
  ctx: CliContext,
  deps: DiscoveryCommandDeps = {},
): void {
  const cmd = program
    .command('floating-address')
    .description(
      'keep an IPv4 address up on this host while it holds it in etcd, never on two hosts (a sidekick, needs CAP_NET_ADMIN)',
    )
    .requiredOption('--address <ip/len>', 'the floating address and its prefix length (e.g. 10.0.0.100/24)')
    .requiredOption('--interface <dev>', 'the interface to add it to (e.g. eth0)')
    .option(
      '--ttl <span>',
      "the election lease's TTL: how long the address stays claimed after its host dies (whole seconds)",
      `${DEFAULT_FLOATING_TTL_MS / 1000}s`,
    )
    .option(
      '--check-interval <span>',
      'how often `ip` is asked whether the address is still there',
      `${DEFAULT_FLOATING_CHECK_MS / 1000}s`,
    )
    .option(
      '--machine <id>',
      'who holds it, as stored in etcd (default: $FLEETTS_MACHINE_ID, else the hostname)',
    )
    .option(
      '--track <check>',
      "campaign only while this host's own service passes this check (tcp://HOST:PORT or http://…): a sidekick on every host of a global balancer",
    )
    .option('--track-interval <span>', 'how often --track is checked', '1s')
    .option('--track-timeout <span>', 'a --track check that takes longer fails', '1s')
    .option('--track-rise <n>', 'consecutive passes before this host campaigns again', '2')
    .option('--track-fall <n>', 'consecutive failures before this host gives the address up', '2');
  addEtcdOptions(cmd)
    .addHelpText(
      'after',
      `
The address goes up (ip addr add, then arping -U) once this process holds floating/<address> in
etcd under its own lease, and goes down (ip addr del) when the lease is lost, when no keepalive has
been acknowledged for 70 % of the TTL (before etcd can give the key to another host), and on
SIGTERM/SIGINT, before the lease is revoked. Every host that may hold it must be on the same L2
segment (docs/floating-address.md).

With --track, run it on every host beside a balancer that runs on every host (Global=true): only
hosts whose balancer passes the check campaign, and a holder whose balancer fails takes the address
down and gives the key up, so that a healthy host takes over at once (keepalived's track_script).
When the holder's host dies, a standby takes the address as soon as the holder's lease expires
(--ttl), without waiting for anything to be rescheduled.

${ETCD_OPTIONS_HELP}

Examples:
  fleetts floating-address --address 10.0.0.100/24 --interface eth0
  ExecStart=/usr/bin/env fleetts floating-address --address 10.0.0.100/24 --interface eth0 --track tcp://127.0.0.1:80   (Global=true, beside a global lb.unit)
  ExecStart=/usr/bin/env fleetts floating-address --address 10.0.0.100/24 --interface eth0   (with MachineOf=lb.unit, AtMostOnce=true)`,
    )
    .action(async (flags: FloatingFlags) => {
      const env = deps.env ?? process.env;
      const settings = floatingSettings(flags, env, defaultHostname(deps));
      const connection = etcdConnection(flags, env);
      const log = commandLogger(flags, deps, 'fleetts-floating-address');
      const random = deps.random ?? createRandom(entropySeed());
      const stop = stopSignal(deps, ctx.signal);
      const { EtcdKv } = await import('../registry/etcd-kv.js');
      const kv = new EtcdKv(connection, ctx.clock);
      const keys = new RegistryKeys(connection.prefix);
      try {
        const leadership = new KvLeadership({
          kv,
          clock: ctx.clock,
          random,
          keys,
          key: keys.floatingAddress(settings.target.address),
          options: {
            candidate: settings.candidate,
            ttlMs: settings.ttlMs,
            keepaliveMs: Math.min(DEFAULT_FLOATING_KEEPALIVE_MS, settings.ttlMs / 4),
            log,
          },
        });
        const floating = new FloatingAddress({
          leadership,
          control: new IpAddressControl({ target: settings.target, clock: ctx.clock }),
          clock: ctx.clock,
          log,
          target: settings.target,
          fenceAfterMs: fenceAfterMs(settings.ttlMs),
          checkIntervalMs: settings.checkIntervalMs,
          ...(settings.track === undefined ? {} : { track: trackOf(settings.track, ctx.clock) }),
        });
        await floating.run(stop.signal);
      } finally {
        stop.dispose();
        kv.close();
      }
    });
}

export interface TrackSettings {
  readonly check: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
}

function trackOf(t: TrackSettings, clock: Clock): FloatingTrack {
  const target = parseCheckTarget(t.check, '--track');
  return {
    describe: describeCheckTarget(target),
    intervalMs: t.intervalMs,
    thresholds: { rise: t.rise, fall: t.fall },
    check: () => checkHealth(target, { clock, timeoutMs: t.timeoutMs }),
  };
}

/** Flags and environment → validated settings (UsageError naming the flag). */
export function floatingSettings(
  flags: FloatingFlags,
  env: NodeJS.ProcessEnv,
  host: string,
): {
  target: FloatingTarget;
  ttlMs: number;
  checkIntervalMs: number;
  candidate: string;
  track?: TrackSettings;
} {
  const target = parseFloatingAddress(flags.address, flags.interface);
  const ttl = durationFlag('--ttl', flags.ttl, MIN_LEASE_TTL_MS);
  if (ttl % 1000 !== 0) throw new UsageError(`--ttl must be whole seconds (etcd's unit), not "${flags.ttl}"`);
  const candidate = flags.machine ?? (env['FLEETTS_MACHINE_ID'] || undefined) ?? host;
  if (!NAME_RE.test(candidate))
    throw new UsageError(`--machine '${candidate}' may only hold letters, digits and @ . _ : -`);
  let track: TrackSettings | undefined;
  if (flags.track !== undefined) {
    parseCheckTarget(flags.track, '--track');
    track = {
      check: flags.track,
      intervalMs: durationFlag('--track-interval', flags.trackInterval ?? '1s', 50),
      timeoutMs: durationFlag('--track-timeout', flags.trackTimeout ?? '1s', 10),
      rise: countFlag('--track-rise', flags.trackRise ?? '2', 1),
      fall: countFlag('--track-fall', flags.trackFall ?? '2', 1),
    };
  }
  return {
    target,
    ttlMs: ttl,
    checkIntervalMs: durationFlag('--check-interval', flags.checkInterval, 50),
    candidate,
    ...(track === undefined ? {} : { track }),
  };
}

/** `10.0.0.100/24` (or a bare address, /32) on `device`; UsageError naming the flag. */
export function parseFloatingAddress(
  text: string,
  device: string,
  names: { readonly address: string; readonly device: string } = {
    address: '--address',
    device: '--interface',
  },
): FloatingTarget {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  const octets = m?.slice(1, 5).map(Number) ?? [];
  const prefixLength = m?.[5] === undefined ? 32 : Number(m[5]);
  if (m === null || octets.some((o) => o > 255) || prefixLength < 1 || prefixLength > 32)
    throw new UsageError(
      `${names.address} must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "${text}"`,
    );
  if (octets[0] === 0 || octets[0] === 127 || (octets[0] ?? 0) >= 224)
    throw new UsageError(`${names.address} ${text} is not a unicast address another host can reach`);
  if (!DEVICE_RE.test(device))
    throw new UsageError(
      `${names.device} must be an interface name like eth0 (at most 15 characters), not "${device}"`,
    );
  return { address: octets.join('.'), prefixLength, device };
}
