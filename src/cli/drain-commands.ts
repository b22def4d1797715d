// `fleetts drain HOST` / `fleetts undrain HOST` (docs/drain.md): a drained host takes no new
// placements and the engine moves its units elsewhere one at a time. `drain` blocks, printing a line
// per step (what moves, where each unit ended up), until no unit is left on the host or --deadline.
import type { Command } from 'commander';
import type { DrainStatus, MachineEntry, UnitSummary } from '../api/schemas.js';
import { matchHost } from '../dev/host-match.js';
import { UsageError } from '../lib/errors.js';
import { isMachineId } from '../lib/ids.js';
import { formatTimeSpan, parseTimeSpan } from '../unit/time-span.js';
import { askAgainWhileTransient, type ApiClient } from './client.js';
import { EXIT_FAILED } from './exit-codes.js';
import { machineCell } from './list-commands.js';
import type { CliContext } from './main.js';

interface DrainFlags {
  readonly deadline: string;
  readonly wait: boolean;
}

/** A machine as `drain` names it: `host3 (1a2b3c4d...)`, or its id alone. */
interface Target {
  readonly id: string;
  readonly label: string;
}

export const DEFAULT_DRAIN_DEADLINE = '1h';

export function registerDrainCommands(program: Command, ctx: CliContext): void {
  program
    .command('drain')
    .description(
      'move every unit off a host, one at a time (each waits until the previous one runs elsewhere), and place nothing new there until undrain',
    )
    .argument('<host>', 'host name (its hostname= metadata), machine id, or a unique prefix of the id')
    .option(
      '--deadline <span>',
      'stop waiting after this long (exit 1, naming the units left); the drain itself goes on',
      DEFAULT_DRAIN_DEADLINE,
    )
    .option('--no-wait', 'return once the drain is recorded')
    .addHelpText(
      'after',
      `
Units move under their [X-Fleet] rules, each with its MachineOf sidekicks; the next one moves once
the previous one is active elsewhere (and announced again, when it was announced). A global unit
stops on the host; a unit pinned there with MachineID= waits, unplaced, until undrain. The drain
is kept in etcd: it survives fleetd restarts and engine leader changes.

Examples:
  fleetts drain host3
  fleetts drain 1a2b3c --deadline 10m
  fleetts undrain host3`,
    )
    .action(async (host: string, o: DrainFlags) => {
      const deadlineMs = spanFlag('--deadline', o.deadline);
      const client = await ctx.client();
      const target = await findMachine(client, host, false);
      const first = await client.drainMachine(target.id);
      const count = (n: number) => `${n} unit${n === 1 ? '' : 's'}`;
      ctx.output.out(
        first.state === 'drained'
          ? `Machine ${target.label} is drained: no units on it`
          : `Draining ${target.label}: ${count(first.units.length)} on it`,
      );
      if (!o.wait || first.state === 'drained') return;
      await followDrain(ctx, client, target, first, deadlineMs);
    });

  program
    .command('undrain')
    .description('end a drain: the host takes new placements again (nothing moves back by itself)')
    .argument('<host>', 'host name (its hostname= metadata), machine id, or a unique prefix of the id')
    .addHelpText('after', '\nExample:\n  fleetts undrain host3')
    .action(async (host: string) => {
      const client = await ctx.client();
      const target = await findMachine(client, host, true);
      await client.undrainMachine(target.id);
      ctx.output.out(`Machine ${target.label} undrained: it takes new placements again`);
    });
}

function spanFlag(flag: string, value: string): number {
  try {
    return parseTimeSpan(value);
  } catch (err) {
    throw new UsageError(`${flag} ${value}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The machine `query` names among the registered ones (as `fleetts dev` matches hosts). `undrain`
 * also takes the exact id of a machine that is gone, whose drain stays in etcd.
 */
async function findMachine(client: ApiClient, query: string, orExactId: boolean): Promise<Target> {
  const machines = await client.listMachines();
  const hosts = machines.map((m) => ({ name: m.metadata.hostname ?? m.id, machineId: m.id, machine: m }));
  try {
    const h = matchHost(hosts, query, 'machine');
    return { id: h.machineId, label: labelOf(h.machine) };
  } catch (err) {
    if (orExactId && isMachineId(query.trim())) return { id: query.trim(), label: query.trim() };
    throw err;
  }
}

function labelOf(m: MachineEntry): string {
  const id = machineCell(m.id, undefined, false);
  const name = m.metadata.hostname;
  return name === undefined || name === m.id ? id : `${name} (${id})`;
}

/** Polls the drain, printing each step and where each unit ended up, until drained or the deadline. */
async function followDrain(
  ctx: CliContext,
  client: ApiClient,
  target: Target,
  first: DrainStatus,
  deadlineMs: number,
): Promise<void> {
  const { output, clock } = ctx;
  const started = clock.monotonic();
  const machines = new Map((await client.listMachines()).map((m) => [m.id, m]));
  const where = (id: string): string => {
    const m = machines.get(id);
    return m === undefined ? id : `${labelOf(m)}/${m.ip}`;
  };
  const services = new Map<string, readonly string[]>();
  const done = new Set<string>();
  const onHost = new Set(first.units);
  let step = '';
  let status = first;
  /** Asked again while fleetd is registering again or restarting: the drain goes on in the engine. */
  const poll = askAgainWhileTransient({
    clock,
    output,
    pollMs: ctx.pollMs,
    signal: ctx.signal,
    expired: () => clock.monotonic() - started >= deadlineMs,
    note: 'the drain goes on; asking again',
  });
  /** Prints where each of `units` ended up (once per unit). */
  const report = async (units: readonly string[]): Promise<void> => {
    const left = units.filter((u) => !done.has(u));
    if (left.length === 0) return;
    const byName = new Map((await poll(() => client.listUnits(left))).map((u) => [u.name, u]));
    for (const u of left) {
      done.add(u);
      output.out(describe(u, byName.get(u), target, where, services.get(u) ?? []));
    }
  };
  for (;;) {
    for (const m of status.moving) services.set(m.unit, m.services);
    const moving = status.moving.map((m) => m.unit);
    const key = moving.join(',');
    // The previous step's units are done once the engine took the next step.
    const previous = step === '' ? [] : step.split(',').filter((u) => !moving.includes(u));
    await report(previous);
    if (key !== step && moving.length > 0 && status.moving.some((m) => m.waiting !== undefined)) {
      output.progress('');
      output.out(`Moving ${moving.join(', ')}`);
    }
    step = key;
    await report(status.moving.filter((m) => m.waiting === undefined).map((m) => m.unit));
    if (status.state === 'drained') {
      // Units that left the host otherwise (destroyed, the host died) are reported too.
      await report([...onHost]);
      output.progress('');
      output.out(
        `Machine ${target.label} drained: no units left (${formatTimeSpan(Math.round(clock.monotonic() - started))})`,
      );
      return;
    }
    for (const u of status.units) onHost.add(u);
    const waiting = status.moving.find((m) => m.waiting !== undefined);
    if (clock.monotonic() - started >= deadlineMs) {
      output.progress('');
      const left = status.units.length === 0 ? 'none' : status.units.join(', ');
      output.err(
        `fleetts: ${target.label} is not drained after ${formatTimeSpan(deadlineMs)}: units left on it: ${left}` +
          (waiting === undefined ? '' : `; waiting for ${waiting.unit}: ${waiting.waiting ?? ''}`) +
          `; the drain goes on (fleetts list-machines; fleetts undrain ${target.id} ends it)`,
      );
      ctx.exitCode = EXIT_FAILED;
      return;
    }
    output.progress(
      waiting === undefined
        ? `${status.units.length} unit(s) left on ${target.label}`
        : `waiting for ${waiting.unit}: ${waiting.waiting ?? ''} (${status.units.length} left on ${target.label})`,
    );
    await clock.sleep(ctx.pollMs, ctx.signal);
    status = await poll(() => client.drainStatus(target.id));
  }
}

/** One line: where a unit that left the drained host is now. */
function describe(
  name: string,
  u: UnitSummary | undefined,
  target: Target,
  where: (id: string) => string,
  services: readonly string[],
): string {
  if (u === undefined) return `${name}: destroyed`;
  if (u.target === 'inactive') return `${name}: stopped (its target state is inactive)`;
  const elsewhere = u.placements.filter((p) => p.machine !== target.id);
  if (elsewhere.length === 0) {
    if (u.unschedulable !== undefined) return `${name}: stopped, not placed: ${u.unschedulable.reason}`;
    return `${name}: stopped, not placed yet`;
  }
  if (elsewhere.length > 1)
    return `${name}: stopped on ${target.label} (a global unit: it runs on ${elsewhere.length} other machines)`;
  const p = elsewhere[0];
  if (p === undefined) return `${name}: stopped`;
  const s = u.statuses.find((x) => x.machine === p.machine);
  const state = s === undefined ? 'placed' : `${s.active} (${s.sub})`;
  const announced =
    services.length === 0 ? '' : `, announced under ${services.map((x) => `services/${x}`).join(', ')}`;
  return `${name}: ${state} on ${where(p.machine)}${announced}`;
}
