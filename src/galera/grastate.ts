// Galera's saved state (grastate.dat in the data dir). A member etcd chose to bootstrap marks it
// safe_to_bootstrap: 1, since Galera itself refuses to bootstrap from a node that was not the last
// to leave; etcd's lock, not that flag, is what keeps bootstraps unique here.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface GraState {
  readonly uuid?: string;
  readonly seqno?: number;
  readonly safeToBootstrap?: boolean;
}

export function parseGrastate(text: string): GraState {
  const field = (name: string): string | undefined =>
    new RegExp(`^${name}:\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1];
  const uuid = field('uuid');
  const seqno = field('seqno');
  const safe = field('safe_to_bootstrap');
  return {
    ...(uuid === undefined ? {} : { uuid }),
    ...(seqno === undefined || !Number.isFinite(Number(seqno)) ? {} : { seqno: Number(seqno) }),
    ...(safe === undefined ? {} : { safeToBootstrap: safe === '1' }),
  };
}

/** The text with `safe_to_bootstrap: 1` (added when missing); undefined when already so. */
export function markSafeToBootstrap(text: string): string | undefined {
  if (parseGrastate(text).safeToBootstrap === true) return undefined;
  if (/^safe_to_bootstrap:/m.test(text))
    return text.replace(/^safe_to_bootstrap:.*$/m, 'safe_to_bootstrap: 1');
  return `${text.replace(/\n?$/, '\n')}safe_to_bootstrap: 1\n`;
}

/** Marks the data dir's grastate.dat, if any. Returns what it found (undefined: no file). */
export async function markDataDirSafe(dataDir: string): Promise<GraState | undefined> {
  const path = join(dataDir, 'grastate.dat');
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  const marked = markSafeToBootstrap(text);
  if (marked !== undefined) await writeFile(path, marked);
  return parseGrastate(text);
}
