// A member's local Galera position, learned before it decides (galera-member.ts): uuid and seqno
// from grastate.dat after a clean shutdown, or from `mariadbd --wsrep-recover` after a crash
// (seqno -1). choose-bootstrap.ts compares the positions the members publish.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import type { DataPosition } from './choose-bootstrap.js';
import { parseGrastate } from './grastate.js';
import { parseRecoveredPosition, recoverCommand, type MemberLayout } from './mariadbd-command.js';
import { runFile } from '../lib/run-file.js';

export interface LocalPosition {
  readonly position: DataPosition;
  /** How it was learned: `grastate`, `recovered`, or why it stays unknown (seqno -1). */
  readonly source: string;
  /** `uuid:seqno` for --wsrep-start-position when recovery found it (grastate needs none). */
  readonly startPosition?: string;
}

const RECOVER_TIMEOUT_MS = 120_000;

export async function readDataPosition(layout: MemberLayout, clock: Clock): Promise<LocalPosition> {
  const dir = layout.dataDir;
  const text = await readFile(join(dir, 'grastate.dat'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const initialized = await stat(join(dir, 'mysql')).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (text === undefined && !initialized) return { position: { kind: 'empty' }, source: 'empty data dir' };
  const state = text === undefined ? {} : parseGrastate(text);
  if (state.uuid !== undefined && state.seqno !== undefined && state.seqno >= 0)
    return { position: { kind: 'data', uuid: state.uuid, seqno: state.seqno }, source: 'grastate' };

  // seqno -1 (the server did not shut down cleanly) or no grastate: ask InnoDB.
  const r = await runFile(recoverCommand(layout), { clock, timeoutMs: RECOVER_TIMEOUT_MS });
  const found = parseRecoveredPosition(r.stderr + '\n' + r.stdout);
  if (found !== undefined && found.seqno >= 0)
    return {
      position: { kind: 'data', uuid: found.uuid, seqno: found.seqno },
      source: 'recovered',
      startPosition: `${found.uuid}:${found.seqno}`,
    };
  const why = !r.ok
    ? `mariadbd --wsrep-recover failed (exit ${r.code ?? 'none'}): ${lastLine(r.stderr)}`
    : 'mariadbd --wsrep-recover found no committed position';
  return {
    position: { kind: 'data', uuid: found?.uuid ?? state.uuid ?? ZERO_UUID, seqno: -1 },
    source: why,
  };
}

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-1)[0] ?? 'no output'
  );
}
