// `fleetts events`: the cluster's events from GET /v1/events (docs/events.md), one line each (or one
// JSON object per line). Without -f: the current state as events, then exit; with -f: then every
// change as it happens, resuming from the last event id whenever the stream breaks off.
import { Option, type Command } from 'commander';
import { TransportError } from '../api/http-transport.js';
import { eventMessage, type EventMessage } from '../api/schemas.js';
import { FleetError, UsageError } from '../lib/errors.js';
import { parseCursor, type ClusterEvent } from '../registry/cluster-events.js';
import type { CliContext } from './main.js';
import { SseReader } from './sse-reader.js';

/** fleetd sends a comment every 15 s: a stream silent three times as long is dead (a host powered off). */
const SILENT_MS = 45_000;
/** Between attempts to reach a fleetd again while following. */
const RETRY_MS = 1_000;

interface EventsOptions {
  follow?: boolean;
  unit?: string;
  machine?: string;
  since?: string;
  output: 'text' | 'json';
}

export function registerEvents(program: Command, ctx: CliContext): void {
  program
    .command('events')
    .description(
      'what happens in the cluster: units placed, moved, started, failed; hosts joining and lost; …',
    )
    .option('-f, --follow', 'keep printing events as they happen (resumes by itself if the stream breaks)')
    .option('--unit <glob>', "only this unit's events (a glob: 'web@*')")
    .option('--machine <id>', "only this machine's events (a move: from or to it)")
    .option(
      '--since <id>',
      "with -f: the events after this event id or etcd revision (from etcd's history); without: the state written after it",
    )
    .addOption(
      new Option('-o, --output <format>', 'text, or json: one JSON object per line')
        .choices(['text', 'json'])
        .default('text'),
    )
    .addHelpText(
      'after',
      `
Without -f it prints the cluster's current state as events (hosts, drains, leader, placements,
running and failed units, service instances, the last reload of each upstream, each at the revision it
was written) and exits; with -f it goes on with each change as it happens.

Examples:
  fleetts events                       the state now, as events
  fleetts events -f                    … then follow
  fleetts events -f --unit 'web@*'     follow the web units
  fleetts events -f --since 81234:2    resume after an event (its id is in -o json)
  fleetts events -f -o json | jq .`,
    )
    .action(async (o: EventsOptions) => {
      if (o.since !== undefined && parseCursor(o.since) === undefined)
        throw new UsageError(
          `--since ${JSON.stringify(o.since)} is not an event id: give a revision (1234) or an id (1234:2)`,
        );
      await printEvents(ctx, o);
    });
}

async function printEvents(ctx: CliContext, o: EventsOptions): Promise<void> {
  const aborted = (): boolean => ctx.signal?.aborted === true;
  const client = await ctx.client();
  const follow = o.follow === true;
  let cursor = o.since;
  let connected = false;
  let lastProblem: string | undefined;
  while (!aborted()) {
    let body: NodeJS.ReadableStream & { destroy(error?: Error): void };
    try {
      body = await client.events({ since: cursor, follow, unit: o.unit, machine: o.machine });
    } catch (err) {
      // The first connection's failure is the answer; a stream that broke off is resumed.
      if (!follow || !connected || !(err instanceof TransportError) || aborted()) throw err;
      if (err.message !== lastProblem) ctx.output.err(`fleetts: ${err.message}; trying again`);
      lastProblem = err.message;
      await ctx.clock.sleep(RETRY_MS, ctx.signal).catch(() => undefined);
      continue;
    }
    connected = true;
    lastProblem = undefined;
    const reader = new SseReader();
    let silence = follow ? ctx.clock.setTimer(SILENT_MS, () => body.destroy(new Error('silent'))) : undefined;
    let ended: EventMessage | undefined;
    try {
      for await (const chunk of body) {
        silence?.cancel();
        if (follow) silence = ctx.clock.setTimer(SILENT_MS, () => body.destroy(new Error('silent')));
        for (const m of reader.push(chunk.toString())) {
          const message = parse(m.data, client.endpoint);
          if (m.lastEventId !== undefined && m.lastEventId !== '') cursor = m.lastEventId;
          if (message.kind.startsWith('stream.'))
            ended = message.kind === 'stream.synced' ? undefined : message;
          print(ctx, o.output, message);
        }
      }
    } catch (err) {
      if (aborted()) return;
      if (!follow)
        throw new FleetError(
          'events_broken',
          `the event stream from ${client.endpoint} broke off: ${(err as Error).message}`,
        );
      ctx.output.err(
        `fleetts: the event stream from ${client.endpoint} broke off; resuming after ${cursor ?? 'the start'}`,
      );
      continue;
    } finally {
      silence?.cancel();
    }
    if (!follow) return;
    if (ended?.kind === 'stream.ended' && ended.code === 'compacted')
      throw new FleetError(
        'compacted',
        `etcd no longer has the events after ${cursor ?? 'the start'}: run fleetts events -f again without --since`,
      );
    const why =
      ended?.kind === 'stream.dropped' || ended?.kind === 'stream.ended' ? ended.reason : 'fleetd ended it';
    ctx.output.err(`fleetts: the event stream ended (${why}); resuming after ${cursor ?? 'the start'}`);
  }
}

function parse(data: string, endpoint: string): EventMessage {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    json = undefined;
  }
  const parsed = eventMessage.safeParse(json);
  if (!parsed.success)
    throw new FleetError(
      'bad_response',
      `${endpoint} sent an event this fleetts does not know (${data.slice(0, 120)}); is it a fleetd of this version?`,
    );
  return parsed.data;
}

function print(ctx: CliContext, format: 'text' | 'json', message: EventMessage): void {
  if (format === 'json') return ctx.output.out(JSON.stringify(message));
  if (message.kind.startsWith('stream.')) return;
  ctx.output.out(formatEvent(message as ClusterEvent));
}

/** One line: time, kind, unit or host, details. */
export function formatEvent(e: ClusterEvent): string {
  const [subject, details] = describe(e);
  const state = e.snapshot === true ? ' (state)' : '';
  return `${e.time}  ${e.kind.padEnd(17)}  ${subject.padEnd(24)}  ${details}${state}`.trimEnd();
}

function describe(e: ClusterEvent): [string, string] {
  switch (e.kind) {
    case 'unit.placed':
      return [e.unit, `on ${e.machine}${e.reason === undefined ? '' : `: ${e.reason}`}`];
    case 'unit.moved':
      return [e.unit, `${e.from} → ${e.machine}: ${e.reason}`];
    case 'unit.unplaced':
      return [e.unit, `off ${e.machine}`];
    case 'unit.started':
      return [
        e.unit,
        `on ${e.machine}${e.pid === undefined ? '' : ` (pid ${e.pid})`}${e.containerId === undefined ? '' : ` (container ${e.containerId.slice(0, 12)})`}`,
      ];
    case 'unit.failed': {
      const exit =
        e.exitCode !== undefined
          ? `exit code ${e.exitCode}`
          : e.signal !== undefined
            ? `signal ${e.signal}`
            : undefined;
      return [
        e.unit,
        `on ${e.machine}${e.reason === undefined ? '' : `: ${e.reason}`}${exit === undefined ? '' : ` (${exit})`}`,
      ];
    }
    case 'unit.stopped':
      return [e.unit, `on ${e.machine}`];
    case 'host.joined':
      return [e.machine, e.ip];
    case 'host.lost':
      return [
        e.machine,
        e.units.length === 0 ? 'lease expired' : `lease expired; it ran ${e.units.join(', ')}`,
      ];
    case 'host.drained':
      return [e.machine, 'drained: takes no new units; its units move off'];
    case 'host.undrained':
      return [e.machine, 'undrained: takes units again'];
    case 'leader.changed':
      return [e.machine, 'engine leader'];
    case 'service.announced':
    case 'service.withdrawn':
      return [
        `${e.service}/${e.instance}`,
        `${e.address}${e.unit === undefined ? '' : ` (${e.unit}${e.machine === undefined ? '' : ` on ${e.machine}`})`}`,
      ];
    case 'upstream.reloaded':
      return [e.service, `nginx on ${e.host} reloaded with ${e.servers} server(s)`];
  }
}
