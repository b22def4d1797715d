// Unit files for the simulation: a trivial [Service] plus the [X-Fleet] constraints under test.
// The simulated runtime never executes them: their placement, AtMostOnce and hash (their name) matter.

export interface UnitOptions {
  readonly conflicts?: readonly string[];
  readonly machineOf?: readonly string[];
  readonly machineId?: string;
  readonly metadata?: readonly string[];
  readonly global?: boolean;
  /** `AtMostOnce=true`: fenced (stopped) on a host cut off from etcd (docs/fencing.md). */
  readonly atMostOnce?: boolean;
  /** Makes otherwise equal texts differ (a different hash: a "new version" of a unit). */
  readonly tag?: string;
}

export function unitText(options: UnitOptions = {}): string {
  const fleet: string[] = [];
  for (const c of options.conflicts ?? []) fleet.push(`Conflicts=${c}`);
  for (const m of options.machineOf ?? []) fleet.push(`MachineOf=${m}`);
  if (options.machineId !== undefined) fleet.push(`MachineID=${options.machineId}`);
  for (const m of options.metadata ?? []) fleet.push(`MachineMetadata=${m}`);
  if (options.global === true) fleet.push('Global=true');
  if (options.atMostOnce === true) fleet.push('AtMostOnce=true');
  const lines = [
    '[Unit]',
    `Description=simulated unit${options.tag === undefined ? '' : ` ${options.tag}`}`,
    '',
    '[Service]',
    'ExecStart=/bin/sleep infinity',
  ];
  if (fleet.length > 0) lines.push('', '[X-Fleet]', ...fleet);
  return lines.join('\n') + '\n';
}
