// submit, load, start, stop, unload, destroy and restart: fleet's target states (inactive → loaded →
// launched) set in one batch request, then (by default) waiting until the cluster reached them.
import { Option, type Command } from 'commander';
import type { TargetState, UnitName } from '../cluster/types.js';
import { FleetError, UnitFileError, UsageError } from '../lib/errors.js';
import { mangleUnitName } from '../unit/names.js';
import type { ApiClient } from './client.js';
import { ApiClientError, askAgainWhileTransient } from './client.js';
import type { CliContext } from './main.js';
import { explainNotFound, readUnitArgs, unitNames, type UnitArg } from './unit-args.js';
import { UnitNews } from './unit-news.js';
import { DEFAULT_BLOCK_ATTEMPTS, waitForUnits } from './wait-for-units.js';
import { durationFlag } from './discovery-options.js';
import { DEFAULT_HEALTH_TIMEOUT_MS, rollBatch, RollError } from './roll-units.js';
import { rollTarget } from './rolling-plan.js';

interface BlockOptions {
  readonly block: boolean;
  readonly blockAttempts: string;
}

const EXAMPLES: Readonly<Record<string, string>> = {
  submit: `
Examples:
  fleetts submit units/web@.unit          submit a template (its instances are made from it)
  fleetts submit web@1 web@2              instances of web@.unit (from the registry, or ./web@.unit)
  fleetts submit --replace lb.unit        replace lb.unit's file with the local one`,
  load: `
Examples:
  fleetts load web@1.unit                 place the unit on a machine without starting it
  fleetts load --no-block web@{1..3}`,
  start: `
Examples:
  fleetts start units/web@1.unit          submit (if needed), place and start; wait until it runs
  fleetts start --replace web@1           re-deploy a running unit with the local unit file
  fleetts start --block-attempts 0 db     wait as long as it takes`,
  stop: `
Examples:
  fleetts stop web@1.unit                 stop the unit; it stays placed (loaded)`,
  unload: `
Examples:
  fleetts unload web@1.unit               stop the unit and take it off its machine`,
  destroy: `
Examples:
  fleetts destroy web@1.unit web@.unit    stop and forget units (and templates)
  fleetts destroy 'bad name.service'      remove a corrupt key that list-unit-files reports
  fleetts destroy --raw nested/x.service  the same, for a name taken as it is stored`,
  restart: `
Examples:
  fleetts restart web@1.unit              stop, wait until stopped, then start again
  fleetts restart web@1 web@2 web@3       one at a time: the next stops once the previous is
                                          active and announced again by its sidekick
  fleetts restart --all-at-once web@{1..3}  stop all, then start all (the farm goes down)`,
};

export function registerTargetCommands(program: Command, ctx: CliContext): void {
  const blocking = (c: Command): Command =>
    c
      .option('--no-block', 'do not wait until the cluster reached the state')
      .addOption(
        new Option(
          '--block-attempts <n>',
          `give up waiting after this many checks, 0 for no limit (a check every ${ctx.pollMs} ms)`,
        ).default(String(DEFAULT_BLOCK_ATTEMPTS)),
      );

  program
    .command('submit')
    .description('submit unit files to the cluster (target state inactive: known, not placed)')
    .argument('<unit...>', 'unit files or names (web@1 is made from web@.unit)')
    .option('--replace', 'replace units whose submitted file differs from the local one')
    .addHelpText('after', EXAMPLES['submit'] ?? '')
    .action(async (args: string[], o: { replace?: boolean }) => {
      await submit(ctx, args, undefined, o.replace === true);
    });

  for (const [verb, target, text] of [
    ['load', 'loaded', 'submit if needed and place units on machines, without starting them'],
    ['start', 'launched', 'submit and load if needed, and start units'],
  ] as const) {
    blocking(
      program
        .command(verb)
        .description(text)
        .argument('<unit...>', 'unit files or names')
        .option('--replace', 'replace units whose submitted file differs (keeping their target state)'),
    )
      .addHelpText('after', EXAMPLES[verb] ?? '')
      .action(async (args: string[], o: BlockOptions & { replace?: boolean }) => {
        blockAttempts(o);
        const names = await submit(ctx, args, target, o.replace === true);
        await block(ctx, new Map(names.map((n) => [n, target])), o);
      });
  }

  blocking(
    program
      .command('stop')
      .description('stop units; they stay placed (target state loaded)')
      .argument('<unit...>', 'unit names'),
  )
    .addHelpText('after', EXAMPLES['stop'] ?? '')
    .action(async (args: string[], o: BlockOptions) => {
      blockAttempts(o);
      const client = await ctx.client();
      const units = await existing(client, unitNames(args));
      const launched = units.filter((u) => u.target === 'launched').map((u) => u.name);
      for (const u of units)
        if (u.target !== 'launched')
          ctx.output.err(`Unit ${u.name} is not started (target ${u.target}); nothing to stop`);
      if (launched.length === 0) return;
      await client.putUnits(
        launched.map((name) => ({ name, target: 'loaded' })),
        { create: false },
      );
      await block(ctx, new Map(launched.map((n) => [n, 'loaded'])), o);
    });

  blocking(
    program
      .command('unload')
      .description('stop units and take them off their machines (target state inactive)')
      .argument('<unit...>', 'unit names'),
  )
    .addHelpText('after', EXAMPLES['unload'] ?? '')
    .action(async (args: string[], o: BlockOptions) => {
      blockAttempts(o);
      const client = await ctx.client();
      const names = unitNames(args);
      await client.putUnits(
        names.map((name) => ({ name, target: 'inactive' })),
        { create: false },
      );
      await block(ctx, new Map(names.map((n) => [n, 'inactive'])), o);
    });

  program
    .command('destroy')
    .description('stop units and remove them from the cluster')
    .argument('<unit...>', 'unit names')
    .option('--raw', 'take each name exactly as stored under units/ (a corrupt key list-unit-files reports)')
    .addHelpText('after', EXAMPLES['destroy'] ?? '')
    .action(async (args: string[], o: { raw?: boolean }) => {
      const client = await ctx.client();
      const missing: string[] = [];
      // fleetd registering again (its lease lapsed under load) or restarting: asked again, for
      // about as long as a blocking command waits.
      const deadline = ctx.clock.monotonic() + DEFAULT_BLOCK_ATTEMPTS * ctx.pollMs;
      const ask = askAgainWhileTransient({
        clock: ctx.clock,
        output: ctx.output,
        pollMs: ctx.pollMs,
        signal: ctx.signal,
        expired: () => ctx.clock.monotonic() > deadline,
        note: 'asking again',
      });
      for (const name of destroyNames(args, o.raw === true)) {
        let attempts = 0;
        try {
          await ask(() => {
            attempts++;
            return client.deleteUnit(name);
          });
          ctx.output.out(`Destroyed ${name}`);
        } catch (err) {
          if (!(err instanceof ApiClientError && err.code === 'not_found')) throw err;
          // Gone on a second asking: the first one, which seemed to fail, removed it.
          if (attempts > 1) {
            ctx.output.out(`Destroyed ${name}`);
            continue;
          }
          missing.push(name);
        }
      }
      if (missing.length > 0)
        throw new FleetError('not_found', `${missing.join(', ')}: not submitted, nothing to destroy`);
    });

  blocking(
    program
      .command('restart')
      .description(
        'restart units one at a time: stop one, start it, wait until it is active (and announced again), then the next',
      )
      .argument('<unit...>', 'unit names')
      .option('--all-at-once', 'stop every unit, wait until all stopped, then start them all (no rolling)')
      .addOption(
        new Option(
          '--health-timeout <span>',
          'how long each unit may take to stop, start and be announced again (rolling only)',
        ).default(`${DEFAULT_HEALTH_TIMEOUT_MS / 1000}s`),
      ),
  )
    .addHelpText('after', EXAMPLES['restart'] ?? '')
    .action(async (args: string[], o: BlockOptions & { allAtOnce?: boolean; healthTimeout: string }) => {
      if (!o.block)
        throw new UsageError('restart must wait for the units to stop before starting them; drop --no-block');
      blockAttempts(o);
      const healthTimeoutMs = durationFlag('--health-timeout', o.healthTimeout, 1);
      const client = await ctx.client();
      const names = (await existing(client, unitNames(args))).map((u) => u.name);
      if (o.allAtOnce !== true) {
        await rollingRestart(ctx, client, names, healthTimeoutMs);
        return;
      }
      await client.putUnits(
        names.map((name) => ({ name, target: 'loaded' })),
        { create: false },
      );
      await block(ctx, new Map(names.map((n) => [n, 'loaded'])), o);
      await client.putUnits(
        names.map((name) => ({ name, target: 'launched' })),
        { create: false },
      );
      await block(ctx, new Map(names.map((n) => [n, 'launched'])), o);
    });
}

/**
 * Restarts `names` one at a time, in the order given: each must be active again (and announced
 * again under the service keys that named it before) before the next one stops, so a farm of n
 * instances never has more than one down. Stops at the first that does not come back.
 */
async function rollingRestart(
  ctx: CliContext,
  client: ApiClient,
  names: readonly string[],
  healthTimeoutMs: number,
): Promise<void> {
  const units = new Map((await client.listUnits(names)).map((u) => [u.name, u]));
  for (const [i, name] of names.entries()) {
    const unit = units.get(name);
    const target = unit === undefined ? { unit: name, where: [], hash: '' } : rollTarget(unit);
    const where = target.where.length === 0 ? '' : ` on ${target.where.join(', ')}`;
    ctx.output.out(`Restarting ${name}${where} (${i + 1}/${names.length})`);
    try {
      await rollBatch(
        [target],
        { kind: 'restart' },
        {
          client,
          output: ctx.output,
          clock: ctx.clock,
          pollMs: ctx.pollMs,
          healthTimeoutMs,
          signal: ctx.signal,
        },
      );
    } catch (err) {
      if (!(err instanceof RollError)) throw err;
      const rest = names.slice(i + 1);
      throw new FleetError(
        'not_reached',
        `restart stopped at ${err.message}${rest.length === 0 ? '' : `\nnot restarted: ${rest.join(', ')}`}`,
      );
    }
  }
}

/**
 * The units to destroy: as other commands name them, except that an argument that is no valid unit
 * name is passed on as it is. It may name a corrupt key under units/ (list-unit-files reports such
 * keys by the name they are stored under); fleetd refuses it with the name's error otherwise.
 */
function destroyNames(args: readonly string[], raw: boolean): string[] {
  const names = args.map((arg) => {
    if (raw) return arg;
    try {
      return mangleUnitName(arg);
    } catch (error) {
      if (error instanceof UnitFileError) return arg;
      throw error;
    }
  });
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`unit ${dup} is given twice`);
  return names;
}

/** Submits (and sets the target of) the units in one batch; returns their names. */
async function submit(
  ctx: CliContext,
  args: readonly string[],
  target: TargetState | undefined,
  replace: boolean,
): Promise<UnitName[]> {
  const units = await readUnitArgs(args, ctx.cwd);
  const client = await ctx.client();
  const items = await withTemplates(client, units);
  let results;
  try {
    results = await client.putUnits(
      items.map((u) => ({ name: u.name, text: u.text, target })),
      { replace },
    );
  } catch (err) {
    // "Not submitted": say which local files were looked for, and where.
    if (err instanceof ApiClientError && err.status === 404)
      throw (await explainNotFound(client, units)) ?? err;
    throw err;
  }
  for (const r of results) {
    if (r.outcome === 'differs')
      ctx.output.err(
        `WARNING: unit ${r.name} in the registry differs from the local unit file; kept the registry's (use --replace to replace it)`,
      );
    if (r.outcome === 'replaced') ctx.output.out(`Replaced ${r.name}`);
  }
  return units.map((u) => u.name);
}

/**
 * fleetctl's order for an instance without its own file: an instance already submitted, then the
 * template in the registry, then the local template file (sent as the instance's text).
 */
async function withTemplates(
  client: ApiClient,
  units: readonly UnitArg[],
): Promise<{ name: UnitName; text?: string }[]> {
  const ask = units
    .filter((u) => u.templateText !== undefined)
    .flatMap((u) => [u.name, u.templateName ?? u.name]);
  const known = new Set(ask.length === 0 ? [] : (await client.listUnits(ask)).map((u) => u.name));
  return units.map((u) => {
    if (u.text !== undefined) return { name: u.name, text: u.text };
    if (u.templateText === undefined || known.has(u.name) || known.has(u.templateName ?? u.name))
      return { name: u.name };
    return { name: u.name, text: u.templateText };
  });
}

/** The named units as submitted; an error naming those that are not. */
async function existing(client: ApiClient, names: readonly UnitName[]) {
  const units = await client.listUnits(names);
  const missing = names.filter((n) => !units.some((u) => u.name === n));
  if (missing.length > 0)
    throw new FleetError('not_found', `${missing.join(', ')}: not submitted (see fleetts list-unit-files)`);
  return units;
}

/** Checks the blocking flags before anything is changed. */
function blockAttempts(o: BlockOptions): number {
  const attempts = Number(o.blockAttempts);
  if (!Number.isInteger(attempts) || attempts < 0)
    throw new UsageError(
      `--block-attempts must be a whole number (0 for no limit), not "${o.blockAttempts}"`,
    );
  return attempts;
}

async function block(
  ctx: CliContext,
  wants: ReadonlyMap<string, TargetState>,
  o: BlockOptions,
): Promise<void> {
  const attempts = blockAttempts(o);
  if (!o.block) {
    for (const [name, target] of wants)
      ctx.output.out(
        `Triggered unit ${name} ${target === 'launched' ? 'start' : target === 'loaded' ? 'load' : 'unload'}`,
      );
    return;
  }
  const client = await ctx.client();
  const news = UnitNews.open(client, ctx.clock);
  let problems: Awaited<ReturnType<typeof waitForUnits>>['problems'];
  try {
    ({ problems } = await waitForUnits(wants, {
      client,
      output: ctx.output,
      clock: ctx.clock,
      attempts,
      pollMs: ctx.pollMs,
      signal: ctx.signal,
      news,
    }));
  } finally {
    news.close();
  }
  if (problems.length === 0) return;
  const lines = problems.map((p) => `  ${p.unit}: ${p.reason}`).join('\n');
  throw new FleetError(
    'not_reached',
    `${problems.length === 1 ? '1 unit' : `${problems.length} units`} did not reach the target state:\n${lines}`,
  );
}
