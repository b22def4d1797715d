// The per-unit supervisor process (like containerd-shim or conmon): spawned detached by the process
// runtime as `node supervisor-main.js <unitDir>`, it runs the unit and outlives fleetd. Protocol in
// supervisor-protocol.ts. Imports only node builtins and small modules, to keep its memory low.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { JournalWriter } from './journal-writer.js';
import { identify } from './proc.js';
import { openProcessTree } from './process-tree.js';
import { UnitSupervisor } from './supervisor.js';
import { writeFileAtomic, type SupervisorConfig, type SupervisorStatus } from './supervisor-protocol.js';
import { lookupCredentials } from './users.js';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: supervisor-main <unitDir>');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as SupervisorConfig;
  const self = identify(process.pid);
  if (self === undefined) throw new Error('cannot read /proc/self/stat');
  const statusPath = join(dir, 'status.json');
  let last: SupervisorStatus | undefined;
  const writeStatus = (s: SupervisorStatus): void => {
    last = s;
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
  // Signal handlers do not keep Node's event loop alive; an idle unit (active/exited, waiting
  // for a stop) has nothing else that would.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await supervisor.run();
  clearInterval(keepAlive);
  tree.release();
  journal.close();
  process.exit(0);
}

await main();
