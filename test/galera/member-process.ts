// Runs the real `fleetts galera member` binary for the real-server Galera tests (process and Docker
// forms, the outage restart): one member on a loopback address of its own, its output kept for
// failure messages, and a wait on its clustercheck.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { systemClock } from '../../src/lib/clock.js';
import { ROOT } from '../helpers/cli.js';

export interface MemberSetup {
  readonly cluster: string;
  readonly instance: string;
  readonly host: string;
  readonly port: number;
  readonly checkPort: number;
  readonly dataDir: string;
  readonly runDir: string;
  /** Galera's group address: `host:port` (4567 unless the test needs another). */
  readonly gcomm: string;
  readonly etcdEndpoint: string;
  readonly prefix: string;
}

export interface Member {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log(): string;
}

/** Starts a member with the setup's flags plus `extra` (runtime, image, --recovery-wait, …). */
export function startMember(s: MemberSetup, extra: readonly string[] = []): Member {
  let log = '';
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/fleetts.js'),
      'galera',
      'member',
      '--cluster',
      s.cluster,
      '--instance',
      s.instance,
      '--host',
      s.host,
      '--port',
      String(s.port),
      '--check-port',
      String(s.checkPort),
      '--data-dir',
      s.dataDir,
      '--run-dir',
      s.runDir,
      ...extra,
      `--mariadbd-arg=--wsrep-provider-options=gcache.size=16M;gmcast.listen_addr=tcp://${s.gcomm}`,
      '--etcd-endpoints',
      s.etcdEndpoint,
      '--etcd-key-prefix',
      s.prefix,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (d: Buffer): void => void (log = (log + d.toString()).slice(-40_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, log: () => log };
}

/** The clustercheck's status once it says 200, or the last one after 90 s / the member's exit. */
export async function untilSynced(m: Member, s: Pick<MemberSetup, 'host' | 'checkPort'>): Promise<number> {
  let status = 0;
  const deadline = Date.now() + 90_000;
  while (status !== 200 && Date.now() < deadline && m.child.exitCode === null) {
    status = await fetch(`http://${s.host}:${s.checkPort}/`)
      .then((r) => r.status)
      .catch(() => 0);
    if (status !== 200) await systemClock.sleep(250);
  }
  return status;
}
