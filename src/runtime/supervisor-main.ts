// The per-unit supervisor process (like containerd-shim or conmon): spawned detached by the process
// runtime as `node supervisor-main.js <unitDir>`, it runs the unit and outlives fleetd. Protocol in
// supervisor-protocol.ts, records in records.ts. Imports only node builtins and small modules, not
// zod (record-envelope.ts says why), to keep its start cheap and its memory low.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { fenceOverdueMs, SUPERVISOR_FENCE_REASON } from './fence.js';
import { JournalWriter } from './journal-writer.js';
import { identify } from './proc.js';
import { openProcessTree } from './process-tree.js';
import { UnitSupervisor } from './supervisor.js';
import { readOwnRecord, SUPERVISOR_CONFIG_RECORD, type RecordProblem } from './record-envelope.js';
import { writeFileAtomic, type SupervisorConfig, type SupervisorStatus } from './supervisor-protocol.js';
import { lookupCredentials } from './users.js';

/** How often the fence deadline is read: a small share of the 1.5 s between it and lease expiry. */
const FENCE_CHECK_MS = 200;

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) return fatal('usage: supervisor-main <unitDir>');
  const configPath = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (err) {
    return fatal(`cannot read ${configPath}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const decoded = readOwnRecord<SupervisorConfig>(SUPERVISOR_CONFIG_RECORD, text, configPath);
  // The runtime reports the last line of supervisor.log as the unit's failure reason.
  if (!decoded.ok) return fatal(decoded.problem.message);
  const config = decoded.value;
  const self = identify(process.pid);
  if (self === undefined) throw new Error('cannot read /proc/self/stat');
  const statusPath = join(dir, 'status.json');
  let last: SupervisorStatus | undefined;
  const writeStatus = (s: SupervisorStatus): void => {
    last = s;
    // Plain JSON: fleetd reads it back through the schema (records.ts parseSupervisorStatus).
    writeFileAtomic(statusPath, JSON.stringify(s) + '\n');
  };
  const journal = new JournalWriter(join(dir, 'journal.log'), config.journal);
  // pid + start time is unique for this boot: a token no other invocation can carry.
  const invocationId = `${self.pid}-${self.startTime}-${Date.now()}`;
  const tree = openProcessTree(config.tracking, invocationId);
  const supervisor = new UnitSupervisor({
    config: config.unitConfig,
    tree,
    journal,
    clock: systemClock,
    self,
    invocationId,
    writeStatus,
    lookupCredentials,
  });
  process.on('SIGTERM', () => supervisor.requestStop());
  process.on('SIGINT', () => supervisor.requestStop());
  process.on('SIGHUP', () => supervisor.requestReload());
  process.on('uncaughtException', (err) => {
    process.stderr.write(`supervisor crashed: ${err.stack ?? String(err)}\n`);
    if (last !== undefined) {
      writeStatus({
        ...last,
        active: 'failed',
        sub: 'failed',
        reason: `supervisor crashed: ${err.message}`,
        done: true,
      });
    }
    process.exit(1);
  });
  // Self-fencing: stop the unit once fleetd's deadline passes without being moved forward.
  const fence = config.fence;
  if (fence !== undefined) {
    let reported: string | undefined;
    const report = (p: RecordProblem): void => {
      if (p.message === reported) return;
      reported = p.message;
      process.stderr.write(`${p.message} (counted as no deadline)\n`);
    };
    const check = (): void => {
      if (fenceOverdueMs(fence.path, report) !== undefined) supervisor.requestStop(SUPERVISOR_FENCE_REASON);
      else systemClock.setTimer(FENCE_CHECK_MS, check);
    };
    check();
  }
  // Signal handlers do not keep Node's event loop alive; an idle unit (active/exited, waiting
  // for a stop) has nothing else that would.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await supervisor.run();
  clearInterval(keepAlive);
  tree.release();
  journal.close();
  process.exit(0);
}

/** A one-line reason on stderr (supervisor.log), no stack: the runtime shows it as the unit's reason. */
function fatal(message: string): never {
  process.stderr.write(`supervisor: ${message}\n`);
  process.exit(1);
}

await main();
