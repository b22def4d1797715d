// `fleetts rollout TEMPLATE`: gives a template a new unit file and replaces its running instances
// with it, --max-unavailable at a time, each batch back (active, announced again) before the next;
// stops at the first that is not, leaving the others on the previous file. The previous file is
// kept in etcd (rollouts/<template>) for --rollback. docs/rollout.md
import { Option, type Command } from 'commander';
import { FleetError, UsageError } from '../lib/errors.js';
import { mangleUnitName, parseUnitName } from '../unit/names.js';
import { unitHash } from '../unit/hash.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import type { UnitSummary } from '../api/schemas.js';
import type { CliContext } from './main.js';
import { countFlag, durationFlag } from './discovery-options.js';
import { readUnitArgs } from './unit-args.js';
import { DEFAULT_HEALTH_TIMEOUT_MS, rollBatch, RollError } from './roll-units.js';
import { describeRolloutPlan, planRollout, type RollTarget } from './rolling-plan.js';

interface RolloutFlags {
  readonly maxUnavailable: string;
  readonly healthTimeout: string;
  readonly dryRun?: boolean;
  readonly rollback?: boolean;
}

const EXAMPLES = `
The new file is read like submit reads it: "web@.unit" is ./web@.unit, "units/web@.unit" that path.
Instances made from the template (web@1.unit, web@2.unit, …) get the new file, running ones
--max-unavailable at a time: each is stopped, started with the new file and must be active, and
announced again by its sidekick if it was announced before, within --health-timeout, before the
next batch starts. A rollout that stops (a failed instance, a crash of this command) is resumed by
running it again: instances on the new file already are left alone.

Examples:
  fleetts rollout --dry-run units/web@.unit      which instances, in which batches, on which hosts
  fleetts rollout units/web@.unit                replace web@1, web@2, … one at a time
  fleetts rollout --max-unavailable 2 web@.unit  two at a time
  fleetts rollout --rollback web@.unit           back to the file before the last rollout`;

export function registerRollout(program: Command, ctx: CliContext): void {
  program
    .command('rollout')
    .description("replace a template's running instances with a new unit file, a few at a time, health-gated")
    .argument('<template>', 'the template file (web@.unit), or with --rollback its name')
    .addOption(
      new Option(
        '--max-unavailable <n>',
        'instances replaced at once (each batch must be back before the next)',
      ).default('1'),
    )
    .addOption(
      new Option(
        '--health-timeout <span>',
        'how long a batch may take to be active and announced again with the new file',
      ).default(`${DEFAULT_HEALTH_TIMEOUT_MS / 1000}s`),
    )
    .option('--dry-run', 'print the plan (instances, batches, hosts) and change nothing')
    .option('--rollback', 'roll back to the file the template had before its last rollout')
    .addHelpText('after', EXAMPLES)
    .action(async (arg: string, flags: RolloutFlags) => {
      const maxUnavailable = countFlag('--max-unavailable', flags.maxUnavailable, 1);
      const healthTimeoutMs = durationFlag('--health-timeout', flags.healthTimeout, 1);
      await rollout(ctx, arg, {
        maxUnavailable,
        healthTimeoutMs,
        dryRun: flags.dryRun === true,
        rollback: flags.rollback === true,
      });
    });
}

async function rollout(
  ctx: CliContext,
  arg: string,
  o: { maxUnavailable: number; healthTimeoutMs: number; dryRun: boolean; rollback: boolean },
): Promise<void> {
  const client = await ctx.client();
  const { name, text } = o.rollback ? await previousFile(ctx, arg) : await localFile(ctx, arg);
  const all: UnitSummary[] = await client.listUnits();
  const hash = unitHash(text);
  const plan = planRollout(all, name, hash, o.maxUnavailable);
  const instances = [...plan.batches.flat(), ...plan.idle, ...plan.done];
  const template = all.find((u) => u.name === name);
  // Instances made from a local template file leave the template unsubmitted: their common file
  // is then the previous one, and the template is submitted with it before the rollout begins.
  const current = template?.hash ?? commonHash(name, instances);
  if (current === undefined)
    throw new FleetError(
      'not_found',
      `${name} is not submitted and has no instances, so there is nothing to roll out to; start its instances first (fleetts start ${name.replace('@.', '@1.')})`,
    );
  const from = current === hash ? undefined : current;
  if (o.dryRun) {
    for (const line of describeRolloutPlan(plan, from)) ctx.output.out(line);
    return;
  }
  if (template === undefined) {
    const first = instances.find((t) => t.hash === current);
    const previous = first === undefined ? undefined : (await client.getUnit(first.unit)).text;
    if (previous === undefined)
      throw new FleetError('not_found', `the file of ${name}'s instances could not be read`);
    await client.putUnits([{ name, text: previous }]);
  }
  const began = await client.beginRollout(name, text);
  ctx.output.out(
    began.started
      ? `${o.rollback ? 'Rolling back' : 'Rolling out'} ${name}: ${current.slice(0, 12)} → ${hash.slice(0, 12)} (the previous file is kept for fleetts rollout --rollback ${name})`
      : `${name} has this file already (${hash.slice(0, 12)}); replacing the instances that do not`,
  );
  if (plan.idle.length > 0) {
    await client.putUnits(
      plan.idle.map((t) => ({ name: t.unit, text })),
      { replace: true, create: false },
    );
    ctx.output.out(`Gave the new file to ${plan.idle.map((t) => t.unit).join(', ')} (not running)`);
  }
  const total = plan.batches.length;
  for (const [i, batch] of plan.batches.entries()) {
    const where = batch.map((t) => `${t.unit}${t.where.length === 0 ? '' : ` on ${t.where.join(', ')}`}`);
    ctx.output.out(`Batch ${i + 1}/${total}: replacing ${where.join('; ')}`);
    try {
      await rollBatch(
        batch,
        { kind: 'replace', text },
        {
          client,
          output: ctx.output,
          clock: ctx.clock,
          pollMs: ctx.pollMs,
          healthTimeoutMs: o.healthTimeoutMs,
          signal: ctx.signal,
        },
      );
    } catch (err) {
      if (!(err instanceof RollError)) throw err;
      const untouched = plan.batches
        .slice(i + 1)
        .flat()
        .map((t) => t.unit);
      const lines = [
        `rollout of ${name} stopped in batch ${i + 1}/${total}: ${err.message}`,
        untouched.length === 0
          ? undefined
          : `still on the previous file, and serving: ${untouched.join(', ')}`,
        o.rollback
          ? `fix the cause and run fleetts rollout --rollback ${name} again`
          : `fix the file and run fleetts rollout again, or put the previous file back on every instance: fleetts rollout --rollback ${name}`,
      ];
      throw new FleetError('not_reached', lines.filter((l) => l !== undefined).join('\n'));
    }
  }
  const count = plan.batches.flat().length;
  ctx.output.out(
    `${o.rollback ? 'Rolled back' : 'Rolled out'} ${name} (${hash.slice(0, 12)}): ${count} running instance${count === 1 ? '' : 's'} replaced${plan.done.length === 0 ? '' : `, ${plan.done.length} had it already`}`,
  );
}

/**
 * The file every instance of an unsubmitted template runs; undefined without instances. Instances
 * on different files (each given its own, or a rollout of an unsubmitted template cut short) leave
 * no file to call the previous one: the user submits the template's file first.
 */
function commonHash(name: string, instances: readonly RollTarget[]): string | undefined {
  const hashes = new Set(instances.map((t) => t.hash));
  if (hashes.size <= 1) return [...hashes][0];
  throw new FleetError(
    'conflict',
    `${name} is not submitted and its instances run ${hashes.size} different files (${instances.map((t) => `${t.unit} ${t.hash.slice(0, 12)}`).join(', ')}); submit the file they should roll back to first (fleetts submit ${name}), then roll out`,
  );
}

/** The template's new file, read like `submit` reads it (and checked before anything is sent). */
async function localFile(ctx: CliContext, arg: string): Promise<{ name: string; text: string }> {
  const [unit] = await readUnitArgs([arg], ctx.cwd);
  if (unit === undefined) throw new UsageError('give the template file to roll out');
  if (unit.text !== undefined) refuseGlobal(unit.name, unit.text);
  checkTemplate(unit.name);
  if (unit.text === undefined)
    throw new FleetError(
      'not_found',
      `${arg}: no such file${unit.notFound === undefined ? '' : ` (looked for ${unit.notFound.file.path})`}; rollout needs the new unit file (or --rollback)`,
    );
  return { name: unit.name, text: unit.text };
}

/** The file the template had before its last rollout, from etcd. */
async function previousFile(ctx: CliContext, arg: string): Promise<{ name: string; text: string }> {
  const name = mangleUnitName(arg);
  checkTemplate(name);
  const record = await (await ctx.client()).getRollout(name);
  if (record === undefined)
    throw new FleetError(
      'not_found',
      `${name} has had no rollout, so there is no previous file to roll back to`,
    );
  return { name, text: record.previousText };
}

/**
 * A plain global unit is one record, with one file, that every matching host runs: a new file
 * reaches every host at once (docs/rollout.md, "Global units"), so rollout refuses it and says
 * what to do instead (a plain unit that is not global gets checkTemplate's advice).
 */
function refuseGlobal(name: string, text: string): void {
  if (parseUnitName(name).kind === 'template') return;
  let global: boolean;
  try {
    global = parseUnitSpec(text, name).placement.global;
  } catch {
    return; // not parsed here: checkTemplate refuses the plain unit anyway
  }
  if (!global) return;
  const base = name.replace(/\.unit$/, '');
  throw new UsageError(
    `${name} is a global unit (Global=true in [X-Fleet]); rollout cannot replace it one host at a time yet: ` +
      'every host runs its one record and file, so a new file reaches all of them at once. ' +
      `To replace it everywhere at once: fleetts start --replace ${name}. ` +
      'To roll it out host by host: run it as a template with one instance per host ' +
      `(${base}@.unit with Conflicts=${base}@*.unit instead of Global=true), then fleetts rollout ${base}@.unit`,
  );
}

function checkTemplate(name: string): void {
  const parsed = parseUnitName(name);
  if (parsed.kind !== 'template')
    throw new UsageError(
      `${name} is not a template; rollout replaces the instances of a template (web@.unit). For one unit use fleetts start --replace ${name}`,
    );
}
