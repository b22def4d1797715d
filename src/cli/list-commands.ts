// list-units, list-unit-files and list-machines: fleetctl's default columns, --fields, --no-legend,
// -l/--full, sorted rows, and -o json. An unplaceable unit says why in list-unit-files (REASON).
import { Option, type Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import type { MachineEntry, UnitSummary } from '../api/schemas.js';
import { destroyCommand } from '../api/stored-problems.js';
import type { CliContext } from './main.js';
import { formatJson, formatTable, selectColumns, type Column } from './table.js';

interface ListOptions {
  readonly fields?: string;
  readonly legend: boolean;
  readonly full?: boolean;
  readonly output: 'table' | 'json';
}

export function machineCell(id: string, ip: string | undefined, full: boolean): string {
  const shown = full || id.length <= 8 ? id : `${id.slice(0, 8)}...`;
  return ip === undefined ? shown : `${shown}/${ip}`;
}

const hashCell = (hash: string, full: boolean): string => (full ? hash : hash.slice(0, 7));

interface UnitRow {
  readonly unit: string;
  readonly machine?: string;
  readonly ip?: string;
  readonly load: string;
  readonly active: string;
  readonly sub: string;
  readonly hash: string;
  readonly pid?: number;
  readonly since?: string;
}

const UNIT_COLUMNS: readonly Column<UnitRow>[] = [
  { field: 'unit', cell: (r) => r.unit },
  {
    field: 'machine',
    cell: (r, full) => (r.machine === undefined ? '-' : machineCell(r.machine, r.ip, full)),
    json: (r) => r.machine ?? null,
  },
  { field: 'ip', cell: (r) => r.ip ?? '-', json: (r) => r.ip ?? null },
  { field: 'load', cell: (r) => r.load },
  { field: 'active', cell: (r) => r.active },
  { field: 'sub', cell: (r) => r.sub },
  { field: 'hash', cell: (r, full) => hashCell(r.hash, full) },
  { field: 'pid', cell: (r) => (r.pid === undefined ? '-' : String(r.pid)), json: (r) => r.pid ?? null },
  { field: 'since', cell: (r) => r.since ?? '-', json: (r) => r.since ?? null },
];

/** One row per unit and machine that reports it or holds it (fleetctl showed units with a state). */
export function unitRows(units: readonly UnitSummary[]): UnitRow[] {
  const rows: UnitRow[] = [];
  for (const u of units) {
    const machines = new Set([...u.placements.map((p) => p.machine), ...u.statuses.map((s) => s.machine)]);
    for (const m of [...machines].sort()) {
      const s = u.statuses.find((x) => x.machine === m);
      const ip = u.placements.find((p) => p.machine === m)?.ip;
      rows.push({
        unit: u.name,
        machine: m,
        ...(ip === undefined ? {} : { ip }),
        load: s?.load ?? '-',
        active: s?.active ?? '-',
        sub: s?.sub ?? '-',
        hash: u.hash,
        ...(s?.pid === undefined ? {} : { pid: s.pid }),
        ...(s === undefined ? {} : { since: s.since }),
      });
    }
  }
  return rows;
}

const FILE_COLUMNS: readonly Column<UnitSummary>[] = [
  { field: 'unit', cell: (u) => u.name },
  { field: 'hash', cell: (u, full) => hashCell(u.hash, full) },
  { field: 'dstate', cell: (u) => u.target },
  { field: 'state', cell: (u) => u.state },
  {
    field: 'target',
    cell: (u, full) =>
      u.placements.length === 0 ? '-' : u.placements.map((p) => machineCell(p.machine, p.ip, full)).join(','),
    json: (u) => u.placements.map((p) => p.machine),
  },
  {
    field: 'reason',
    cell: (u) =>
      u.unschedulable === undefined ? (waitingFor(u) ?? '-') : `unplaceable: ${u.unschedulable.reason}`,
    json: (u) => u.unschedulable?.reason ?? waitingFor(u) ?? null,
  },
];

/**
 * Why a placed unit is not running where it is placed: its machine is not registered (a placement
 * has an IP only while its machine is). The engine keeps it there while that machine may be
 * re-registering after an etcd outage (docs/control-plane-faults.md), and moves it otherwise.
 */
export function waitingFor(u: Pick<UnitSummary, 'placements'>): string | undefined {
  const absent = u.placements.filter((p) => p.ip === undefined).map((p) => p.machine);
  if (absent.length === 0) return undefined;
  return `waiting for ${absent.join(', ')} to re-register (its lease is gone); moved if it does not`;
}

const MACHINE_COLUMNS: readonly Column<MachineEntry>[] = [
  { field: 'machine', cell: (m, full) => machineCell(m.id, undefined, full) },
  { field: 'ip', cell: (m) => m.ip },
  {
    field: 'metadata',
    cell: (m) => {
      const keys = Object.keys(m.metadata).sort();
      return keys.length === 0 ? '-' : keys.map((k) => `${k}=${m.metadata[k] ?? ''}`).join(',');
    },
    json: (m) => m.metadata,
  },
  { field: 'units', cell: (m) => String(m.units), json: (m) => m.units },
  // `fleetts drain`: draining while units are on it or moving off it, then drained.
  { field: 'state', cell: (m) => m.drain?.state ?? '-', json: (m) => m.drain?.state ?? null },
  { field: 'version', cell: (m) => m.version },
  { field: 'api', cell: (m) => m.apiAddress ?? '-', json: (m) => m.apiAddress ?? null },
];

function listCommand(
  program: Command,
  name: string,
  description: string,
  fields: readonly Column<never>[],
  examples: string,
): Command {
  return program
    .command(name)
    .description(description)
    .option('--fields <list>', `comma-separated columns: ${fields.map((f) => f.field).join(', ')}`)
    .option('--no-legend', 'do not print the header row')
    .option('-l, --full', 'do not shorten machine ids and hashes')
    .addOption(
      new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'),
    )
    .addHelpText('after', examples);
}

async function render<R>(
  ctx: CliContext,
  all: readonly Column<R>[],
  defaults: (rows: readonly R[]) => readonly string[],
  load: () => Promise<readonly R[]>,
  o: ListOptions,
): Promise<void> {
  // Bad --fields fail before any request.
  const checked = selectColumns(all, o.fields, []);
  if (o.fields !== undefined && typeof checked === 'string') throw new UsageError(checked);
  const rows = await load();
  const columns = selectColumns(all, o.fields, defaults(rows));
  if (typeof columns === 'string') throw new UsageError(columns);
  ctx.output.write(
    o.output === 'json'
      ? formatJson(columns, rows)
      : formatTable(columns, rows, { legend: o.legend, full: o.full === true }),
  );
}

export function registerListCommands(program: Command, ctx: CliContext): void {
  listCommand(
    program,
    'list-units',
    "units' observed states, one row per unit and machine (sorted)",
    UNIT_COLUMNS,
    `
Examples:
  fleetts list-units
  fleetts list-units --fields unit,machine,pid --no-legend
  fleetts list-units -o json`,
  ).action(async (o: ListOptions) => {
    const load = async () => unitRows(await (await ctx.client()).listUnits());
    await render(ctx, UNIT_COLUMNS, () => ['unit', 'machine', 'active', 'sub'], load, o);
  });

  listCommand(
    program,
    'list-unit-files',
    'submitted units: desired state (DSTATE), current state, where placed, why not placed (sorted)',
    FILE_COLUMNS,
    `
Examples:
  fleetts list-unit-files
  fleetts list-unit-files --fields unit,dstate,reason -l`,
  ).action(async (o: ListOptions) => {
    // The REASON column appears by default only when some unit could not be placed.
    const defaults = (units: readonly UnitSummary[]) => [
      ...['unit', 'hash', 'dstate', 'state', 'target'],
      ...(units.some((u) => u.unschedulable !== undefined) ? ['reason'] : []),
    ];
    const load = async () => {
      const { units, problems } = await (await ctx.client()).listUnitFiles();
      // Corrupt keys are no rows (they have no valid record); say which were skipped, and the way out.
      for (const p of problems) {
        const fix = p.unit === undefined ? '' : `; remove it with ${destroyCommand(p.unit)}`;
        ctx.output.err(`WARNING: skipped etcd key ${p.key}: ${p.reason}${fix}`);
      }
      return units;
    };
    await render(ctx, FILE_COLUMNS, defaults, load, o);
  });

  listCommand(
    program,
    'list-machines',
    'machines in the cluster with their IP and metadata (sorted)',
    MACHINE_COLUMNS,
    `
Examples:
  fleetts list-machines
  fleetts list-machines -l --fields machine,ip,units,version`,
  ).action(async (o: ListOptions) => {
    const load = async () => (await ctx.client()).listMachines();
    // The STATE column appears by default only when some machine is drained.
    const defaults = (machines: readonly MachineEntry[]) => [
      ...['machine', 'ip', 'metadata'],
      ...(machines.some((m) => m.drain !== undefined) ? ['state'] : []),
    ];
    await render(ctx, MACHINE_COLUMNS, defaults, load, o);
  });
}
