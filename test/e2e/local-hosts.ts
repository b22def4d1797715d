// End-to-end harness: real `fleetd` processes (one per "host": own machine id, state dir and API
// socket, host A also on loopback TCP with a token) on a real etcd, driven with the real `fleetts`.
// Everything it starts carries one marker (its temp dir's name) in its command line, so that the
// unit processes can be found (and, at the end, killed) whatever state the test left them in.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ROOT, runBin, type RunResult } from '../helpers/cli.js';
import { randomPrefix } from '../helpers/etcd.js';
import { WaitAborted, waitFor } from '../helpers/wait.js';

export interface HostSpec {
  /** Short name: the machine id is `e2e-<name>-<random>` and the metadata `host=<name>`. */
  readonly name: string;
  /** Also serve the API on 127.0.0.1 (random port) with the cluster's token. */
  readonly tcp: boolean;
}

export interface Host {
  readonly name: string;
  readonly machineId: string;
  readonly stateDir: string;
  /** `unix://…/fleetd.sock` */
  readonly socket: string;
  readonly process: ChildProcess;
  /** The last few KB of fleetd's stderr (warnings and errors), for failure messages. */
  stderr(): string;
}

/** A unit's main process as the OS sees it (found by the marker, identified by its environment). */
export interface UnitProcess {
  readonly pid: number;
  readonly unit: string;
  readonly machine: string;
}

export interface LocalHosts {
  /** The marker: in the command line of every process started here (fleetd, supervisors, units). */
  readonly marker: string;
  readonly root: string;
  /** Where the tests write unit files (fleetts runs with this working directory). */
  readonly unitDir: string;
  /** A `sleep` whose path holds the marker: units `exec` it as their main process. */
  readonly sleep: string;
  readonly token: string;
  readonly hosts: readonly Host[];
  /** Host `name`'s TCP endpoint (`http://127.0.0.1:PORT`), as it registered it. */
  tcpEndpoint(name: string): string;
  host(name: string): Host;
  /** Runs `fleetts` with `--endpoint` (default host A's socket) in the unit directory. */
  fleetts(args: readonly string[], o?: { endpoint?: string; timeoutMs?: number }): Promise<RunResult>;
  /** The unit processes (main pids) running now, sorted by unit then machine. */
  unitProcesses(): Promise<UnitProcess[]>;
  /** Stops the fleetds and kills whatever is left with the marker (supervisors, units); removes the temp dirs. */
  close(): Promise<void>;
}

const TIMEOUT_MS = 30_000;

export async function startLocalHosts(o: {
  etcdEndpoint: string;
  hosts: readonly HostSpec[];
  leaseTtlMs: number;
}): Promise<LocalHosts> {
  const root = await mkdtemp(join(tmpdir(), 'fleetts-e2e-'));
  const marker = basename(root);
  const unitDir = join(root, 'units');
  const bin = join(root, 'bin');
  await mkdir(unitDir);
  await mkdir(bin);
  const sleep = join(bin, 'sleep');
  await symlink('/bin/sleep', sleep);
  const token = randomBytes(24).toString('hex');
  const prefix = randomPrefix();
  const hosts: Host[] = [];
  const tcp = new Map<string, string>();

  const fleetts: LocalHosts['fleetts'] = (args, ro = {}) =>
    runBin('fleetts', ['--endpoint', ro.endpoint ?? hosts[0]?.socket ?? '', ...args], {
      cwd: unitDir,
      // Nothing from the caller's environment may pick another cluster or token.
      env: { FLEETTS_ENDPOINT: undefined, FLEETTS_TOKEN: undefined },
      timeoutMs: ro.timeoutMs ?? TIMEOUT_MS,
    });

  const cluster: LocalHosts = {
    marker,
    root,
    unitDir,
    sleep,
    token,
    hosts,
    tcpEndpoint(name) {
      const e = tcp.get(name);
      if (e === undefined) throw new Error(`host ${name} has no TCP endpoint`);
      return e;
    },
    host(name) {
      const h = hosts.find((x) => x.name === name);
      if (h === undefined) throw new Error(`no host ${name}`);
      return h;
    },
    fleetts,
    unitProcesses: () => unitProcesses(sleep),
    async close() {
      await Promise.all(hosts.map((h) => stopProcess(h.process)));
      // Supervisors outlive fleetd by design (until their fence deadline): end them and their units.
      for (let round = 0; round < 5; round++) {
        const left = await pgrep(marker);
        if (left.length === 0) break;
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        await delay(200);
      }
      await rm(root, { recursive: true, force: true });
    },
  };

  try {
    for (const spec of o.hosts) {
      const stateDir = join(root, `host-${spec.name}`);
      const machineId = `e2e-${spec.name}-${randomBytes(4).toString('hex')}`;
      const socketPath = join(stateDir, 'fleetd.sock');
      const args = [
        '--etcd-endpoints',
        o.etcdEndpoint,
        '--etcd-key-prefix',
        prefix,
        '--machine-id',
        machineId,
        '--public-ip',
        '127.0.0.1',
        '--metadata',
        `host=${spec.name}`,
        '--lease-ttl-ms',
        String(o.leaseTtlMs),
        '--state-dir',
        stateDir,
        '--api-socket',
        socketPath,
        // Every host knows the token: it is also what a host shows when it asks a peer's TCP API.
        '--api-token',
        token,
        ...(spec.tcp ? ['--api-listen', '127.0.0.1:0'] : []),
        '--runtime',
        'process',
        '--log-level',
        'warn',
      ];
      const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      hosts.push({
        name: spec.name,
        machineId,
        stateDir,
        socket: `unix://${socketPath}`,
        process: child,
        stderr: () => stderr,
      });
    }
    // Ready when every host's own API lists every machine (all registered, all APIs up).
    for (const h of hosts) {
      const machines = await waitFor(
        `${h.name}'s API listing every host`,
        async () => {
          if (h.process.exitCode !== null)
            throw new WaitAborted(`fleetd ${h.name} exited (${h.process.exitCode}): ${h.stderr()}`);
          const r = await fleetts(['list-machines', '-o', 'json', '--fields', 'machine,api'], {
            endpoint: h.socket,
          });
          if (r.code !== 0) return undefined;
          const rows = JSON.parse(r.stdout) as { machine: string; api: string | null }[];
          return hosts.every((x) => rows.some((m) => m.machine === x.machineId)) ? rows : undefined;
        },
        // Two fleetd and a fleetts per try start on a loaded machine: node start-ups, not just I/O.
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      for (const spec of o.hosts.filter((s) => s.tcp)) {
        const api = machines.find((m) => m.machine === cluster.host(spec.name).machineId)?.api;
        if (api === undefined || api === null || !api.startsWith('http://127.0.0.1:'))
          throw new Error(
            `host ${spec.name} registered API address ${String(api)}, not http://127.0.0.1:PORT`,
          );
        tcp.set(spec.name, api);
      }
    }
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

async function unitProcesses(sleep: string): Promise<UnitProcess[]> {
  const out: UnitProcess[] = [];
  for (const pid of await pgrep(sleep)) {
    let environ: string;
    try {
      environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const env = new Map(
      environ
        .split('\0')
        .filter((kv) => kv.includes('='))
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    out.push({ pid, unit: env.get('FLEETTS_UNIT') ?? '?', machine: env.get('FLEETTS_MACHINE_ID') ?? '?' });
  }
  return out.sort((a, b) => a.unit.localeCompare(b.unit) || a.machine.localeCompare(b.machine));
}

/** Pids whose command line contains `pattern` (taken literally). */
export function pgrep(pattern: string): Promise<number[]> {
  const regex = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new Promise((resolve, reject) => {
    execFile('pgrep', ['-f', regex], (err, stdout) => {
      // pgrep exits 1 when nothing matched.
      if (err !== null && err.code !== 1) return reject(new Error(`pgrep failed: ${err.message}`));
      resolve(
        stdout
          .split('\n')
          .filter((l) => l !== '')
          .map(Number),
      );
    });
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
