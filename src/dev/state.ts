// The dev cluster's state file (<state-dir>/cluster.json): the plan's inputs (so machine ids and
// addresses stay stable) and every resource `up` made, recorded BEFORE it is made, so that `down`
// cleans exactly those even after a crash half-way through `up`.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DevError } from './dev-error.js';

const planInputSchema = z.object({
  stateDir: z.string().min(1),
  tag: z.string().regex(/^[a-z0-9]{1,6}$/),
  subnetIndex: z.number().int().min(0).max(255),
  machineIds: z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)),
  runtime: z.enum(['process', 'docker']),
  leaseTtlMs: z.number().int().positive(),
  sharedPath: z.string().min(1),
  etcdLoopbackPort: z.number().int().min(1).max(65535),
  etcdTopology: z.enum(['hosts', 'external']).optional(),
});

const resourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('bridge'), name: z.string() }),
  z.object({ kind: z.literal('netns'), name: z.string(), host: z.string() }),
  z.object({ kind: z.literal('link'), name: z.string() }),
  z.object({ kind: z.literal('iptables'), rule: z.array(z.string()) }),
  z.object({ kind: z.literal('mount'), target: z.string() }),
  z.object({ kind: z.literal('dir'), path: z.string() }),
]);
export type Resource = z.infer<typeof resourceSchema>;

const processSchema = z.object({
  /** `etcd`, `host1/etcd`, `host1/fleetd`, `host1/dockerd`. */
  id: z.string(),
  pid: z.number().int().positive(),
  /** /proc/<pid>/stat start time: a recycled pid is not ours. */
  startTime: z.string(),
});
export type ProcessRecord = z.infer<typeof processSchema>;

const stateSchema = z.object({
  version: z.literal(1),
  phase: z.enum(['starting', 'up', 'down']),
  input: planInputSchema,
  resources: z.array(resourceSchema),
  processes: z.array(processSchema),
  /** Hosts the user powered off (`up` leaves them off when it reconciles). */
  poweredOff: z.array(z.string()),
  partitioned: z.array(z.string()),
});
export type DevState = z.infer<typeof stateSchema>;

export const stateFile = (stateDir: string): string => join(stateDir, 'cluster.json');

/** `undefined` when the state dir holds no cluster. */
export async function readState(stateDir: string): Promise<DevState | undefined> {
  let text: string;
  try {
    text = await readFile(stateFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DevError(
      'dev_step_failed',
      `${stateFile(stateDir)} is not valid JSON; remove it after cleaning up by hand`,
      {
        cause: err,
      },
    );
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success)
    throw new DevError(
      'dev_step_failed',
      `${stateFile(stateDir)} is not a dev cluster state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  return parsed.data;
}

/** Atomic (write then rename): a crash leaves the old or the new state, never half of one. */
export async function writeState(state: DevState): Promise<void> {
  const dir = state.input.stateDir;
  await mkdir(dir, { recursive: true });
  const tmp = `${stateFile(dir)}.tmp`;
  await writeFile(tmp, JSON.stringify(stateSchema.parse(state), null, 2) + '\n');
  await rename(tmp, stateFile(dir));
}

export function sameResource(a: Resource, b: Resource): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
