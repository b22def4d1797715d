// The CLI context a dev cluster leaves behind (as kind sets the kubectl context): a small JSON file
// naming every host's endpoint, read by `fleetts` when neither --endpoint nor FLEETTS_ENDPOINT is
// given; the CLI tries them in order (endpoint-list.ts), so host1 may be powered off.
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

const contextSchema = z.object({
  /** host1's endpoint (the only field older versions wrote and read). */
  endpoint: z.string().min(1),
  /** Every host's endpoint, in order: the CLI uses the first one that accepts a connection. */
  endpoints: z.array(z.string().min(1)).optional(),
  /** The dev cluster that wrote it: `down` removes the file only when it is still its own. */
  stateDir: z.string().optional(),
});
export type DevContext = z.infer<typeof contextSchema>;

/** $FLEETTS_CONTEXT_FILE, else $XDG_CONFIG_HOME/fleetts/context.json, else ~/.config/fleetts/context.json. */
export function devContextPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['FLEETTS_CONTEXT_FILE'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.config');
  return join(base, 'fleetts', 'context.json');
}

/** The endpoints of the current dev cluster (host1's first), or [] when there is none. */
export function readDevContext(path: string = devContextPath()): string[] {
  try {
    const parsed = contextSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) return [];
    return [...new Set([parsed.data.endpoint, ...(parsed.data.endpoints ?? [])])];
  } catch {
    return [];
  }
}

export async function writeDevContext(path: string, context: DevContext): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(context, null, 2) + '\n');
  await rename(tmp, path);
}

/** Removes the context when it belongs to the cluster in `stateDir` (another cluster's stays). */
export async function clearDevContext(path: string, stateDir: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return;
  }
  try {
    const parsed = contextSchema.safeParse(JSON.parse(text));
    if (parsed.success && parsed.data.stateDir !== stateDir) return;
  } catch {
    // unreadable: ours to replace
  }
  await rm(path, { force: true });
}
