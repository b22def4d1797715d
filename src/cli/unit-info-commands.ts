// status, journal, cat and plan: reading one unit (from any endpoint: the API asks the unit's own
// host), and asking the scheduler where units would go without changing anything.
import { Option, type Command } from 'commander';
import { FleetError, UsageError } from '../lib/errors.js';
import type { StatusResponse, UnitPlan } from '../api/schemas.js';
import { machineCell } from './list-commands.js';
import type { CliContext } from './main.js';
import { formatTable } from './table.js';
import { readUnitArgs, unitNames } from './unit-args.js';

function count(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
  return n;
}

export function formatStatus(s: StatusResponse): string {
  const u = s.unit;
  const lines = [`● ${u.name}`, `   Target: ${u.target} (now ${u.state})  Hash: ${u.hash.slice(0, 12)}`];
  if (s.hosts.length === 0) {
    if (u.unschedulable !== undefined) {
      lines.push(`   Not placed: ${u.unschedulable.reason}`);
      for (const [m, why] of Object.entries(u.unschedulable.machines).sort()) lines.push(`     ${m}: ${why}`);
    } else
      lines.push(
        u.target === 'inactive'
          ? '   Not placed: target state is inactive (fleetts load or start it)'
          : '   Not placed yet',
      );
  }
  for (const h of s.hosts) {
    lines.push(`   Machine: ${machineCell(h.machine, h.ip, true)}`);
    const o = h.observed ?? u.statuses.find((x) => x.machine === h.machine);
    if (h.error !== undefined) lines.push(`   Problem: ${h.error}`);
    if (o === undefined || o === null) {
      lines.push('   Active: unknown (the host has not reported the unit yet)');
      continue;
    }
    lines.push(`   Loaded: ${o.load}`, `   Active: ${o.active} (${o.sub}) since ${o.since}`);
    if (o.pid !== undefined) lines.push(`   Main PID: ${o.pid}`);
    if (o.containerId !== undefined) lines.push(`   Container: ${o.containerId.slice(0, 12)}`);
    if (o.lastExit !== undefined) {
      const how =
        o.lastExit.code !== undefined ? `code ${o.lastExit.code}` : `signal ${o.lastExit.signal ?? '?'}`;
      lines.push(`   Last exit: ${how} at ${o.lastExit.at}`);
    }
    if (o.health !== undefined) lines.push(`   Health: ${o.health}`);
    if (o.reason !== undefined) lines.push(`   Reason: ${o.reason}`);
    if (h.log.length > 0) lines.push('', ...h.log);
  }
  return lines.join('\n') + '\n';
}

export function formatPlan(p: UnitPlan): string {
  const head =
    p.placedOn.length > 0
      ? `${p.unit}: would run on ${p.placedOn.join(', ')}`
      : `${p.unit}: cannot be placed: ${p.blocker ?? p.decisions.find((d) => d.kind === 'unschedulable')?.reason ?? 'no machine fits'}`;
  const decisions = p.decisions
    .filter((d) => d.kind !== 'unschedulable')
    .map((d) => `  ${d.kind} ${d.machine ?? ''}: ${d.reason}`);
  const rows = p.machines.map((m) => ({ ...m }));
  const table = formatTable(
    [
      { field: 'machine', cell: (m: (typeof rows)[number]) => m.machine },
      {
        field: 'fits',
        cell: (m: (typeof rows)[number]) =>
          m.fits ? `yes${m.rank === undefined ? '' : ` (#${m.rank})`}` : 'no',
      },
      { field: 'reason', cell: (m: (typeof rows)[number]) => m.reason },
    ],
    rows,
    { legend: true, full: true },
  )
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  return [head, ...decisions, ...(rows.length === 0 ? [] : [table.trimEnd()])].join('\n') + '\n';
}

export function registerUnitInfoCommands(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description("units' state, host, pid or container, last exit and last log lines (why not placed, if so)")
    .argument('<unit...>', 'unit names')
    .option('-n, --lines <n>', 'journal lines to show', '10')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      `
Examples:
  fleetts status web@1.unit
  fleetts status -n 50 web@1 web@2
  fleetts status -o json lb.unit`,
    )
    .action(async (args: string[], o: { lines: string; output: string }) => {
      const client = await ctx.client();
      const lines = count(o.lines, '--lines');
      const all: StatusResponse[] = [];
      for (const name of unitNames(args)) all.push(await client.status(name, lines));
      if (o.output === 'json') ctx.output.write(JSON.stringify(all, null, 2) + '\n');
      else ctx.output.write(all.map(formatStatus).join('\n'));
    });

  program
    .command('journal')
    .description("a unit's output, from the host it runs on (any endpoint works)")
    .argument('<unit>', 'unit name')
    .option('-n, --lines <n>', 'show the last N lines', '10')
    .option('-f, --follow', 'keep printing new lines until interrupted')
    .option('--machine <id>', 'for a unit on several machines (Global=true): whose journal')
    .addHelpText(
      'after',
      `
Examples:
  fleetts journal web@1.unit
  fleetts journal -n 100 -f web@1`,
    )
    .action(async (arg: string, o: { lines: string; follow?: boolean; machine?: string }) => {
      const [name] = unitNames([arg]);
      const client = await ctx.client();
      const stream = await client.journal(name ?? arg, {
        lines: count(o.lines, '--lines'),
        follow: o.follow === true,
        machine: o.machine,
      });
      try {
        for await (const chunk of stream) ctx.output.write((chunk as Buffer).toString('utf8'));
      } catch (err) {
        if (ctx.signal?.aborted === true) return;
        throw new FleetError(
          'journal_broken',
          `the journal stream from ${client.endpoint} broke off: ${(err as Error).message}`,
        );
      }
    });

  program
    .command('cat')
    .description('print the unit file exactly as it was submitted')
    .argument('<unit>', 'unit name')
    .addHelpText(
      'after',
      `
Examples:
  fleetts cat web@1.unit
  fleetts cat lb > lb.unit`,
    )
    .action(async (arg: string) => {
      const [name] = unitNames([arg]);
      const unit = await (await ctx.client()).getUnit(name ?? arg);
      ctx.output.write(unit.text);
    });

  program
    .command('plan')
    .description(
      'where units would run and why, machine by machine, without changing anything (exit 1 if one cannot be placed)',
    )
    .argument('<unit...>', 'unit files, or names of submitted units')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      `
Examples:
  fleetts plan units/web@1.unit units/web-discovery@1.unit
  fleetts plan web@3                      an instance of the submitted web@.unit`,
    )
    .action(async (args: string[], o: { output: string }) => {
      const units = await readUnitArgs(args, ctx.cwd);
      const client = await ctx.client();
      const plans = await client.plan(units.map((u) => ({ name: u.name, text: u.text ?? u.templateText })));
      if (o.output === 'json') ctx.output.write(JSON.stringify(plans, null, 2) + '\n');
      else ctx.output.write(plans.map(formatPlan).join('\n'));
      const stuck = plans.filter((p) => p.placedOn.length === 0).map((p) => p.unit);
      if (stuck.length > 0) throw new FleetError('unplaceable', `cannot be placed: ${stuck.join(', ')}`);
    });
}
