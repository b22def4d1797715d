// The CLI context a dev cluster leaves behind (as kind sets the kubectl context): a small JSON file
// naming the endpoint, read by `fleetts` when neither --endpoint nor FLEETTS_ENDPOINT is given.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

const contextSchema = z.object({
  endpoint: z.string().min(1),
  /** Every host's endpoint, in order: the CLI uses the first one that answers. */
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

/** The endpoints of the current dev cluster (first the primary), or [] when there is none. */
export function readDevContext(path: string = devContextPath()): string[] {
  try {
    const parsed = contextSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) return [];
    return [...new Set([parsed.data.endpoint, ...(parsed.data.endpoints ?? [])])];
  } catch {
    return [];
  }
}

/**
 * The first dev-cluster endpoint whose unix socket accepts a connection (a powered-off host's
 * socket file stays behind but refuses), else the primary one, else undefined.
 */
export async function liveDevEndpoint(path: string = devContextPath()): Promise<string | undefined> {
  const endpoints = readDevContext(path);
  for (const e of endpoints) {
    if (!e.startsWith('unix://')) return e;
    if (await socketAnswers(e.slice('unix://'.length))) return e;
  }
  return endpoints[0];
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path: socketPath });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
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
