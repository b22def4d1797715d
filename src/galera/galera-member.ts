// `fleetts galera member`: the main process of a mysql@ unit. It learns its data position
// (data-position.ts), decides under the cluster's etcd lock to bootstrap or join
// (decide-under-lock.ts), records it (galera-store.ts), then runs MariaDB as its child, serves the
// clustercheck and exits with the server's status.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, chown, mkdir, readFile, rm, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Kv } from '../registry/kv.js';
import type { LeaseHandle, LeaseOptions, LeaseSource, ServiceReader } from '../registry/registry.js';
import { serveClustercheck, type NodeState } from './clustercheck.js';
import { formatPosition } from './choose-bootstrap.js';
import { readDataPosition } from './data-position.js';
import type { StartDecision } from './decide-start.js';
import { decideUnderLock } from './decide-under-lock.js';
import { GaleraError } from './galera-error.js';
import { GaleraStore, type MemberRecord } from './galera-store.js';
import { markDataDirSafe } from './grastate.js';
import { clientCommand, installDbCommand, serverCommand, type MemberLayout } from './mariadbd-command.js';
import { runFile, type CommandLine } from '../lib/run-file.js';

export interface GaleraMemberDeps {
  readonly kv: Kv;
  readonly registry: ServiceReader & LeaseSource;
  readonly clock: Clock;
  readonly log: Logger;
  /** The fleetd key prefix (the lock and member keys live under it). */
  readonly prefix: string;
}

export interface MemberSettings {
  readonly layout: MemberLayout;
  /** Where the sidekicks announce Synced members: services/<service>/. */
  readonly service: string;
  readonly machine?: string;
  /** The clustercheck's port on the host address; 0: none. */
  readonly checkPort: number;
  /** SQL run through the local socket after this member bootstrapped (users, databases). */
  readonly initSqlFile?: string;
  readonly lease: LeaseOptions;
  readonly probeIntervalMs: number;
  /** How long a bootstrapping server may take to reach Synced. */
  readonly bootstrapTimeoutMs: number;
  /**
   * After a whole-cluster outage: how long to wait, from the first published position, for every
   * known member to publish its own before the best one present bootstraps (default 60 s).
   */
  readonly recoveryWaitMs?: number;
  /** How often a member that waits for a better one asks again (default 2 s). */
  readonly retryMs?: number;
}

const DEFAULT_RECOVERY_WAIT_MS = 60_000;
const RETRY_MS = 2_000;

const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';

export class GaleraMember {
  readonly #d: GaleraMemberDeps;
  readonly #s: MemberSettings;
  readonly store: GaleraStore;
  #state: NodeState | undefined;
  #decision: StartDecision | undefined;

  constructor(deps: GaleraMemberDeps, settings: MemberSettings) {
    this.#d = deps;
    this.#s = settings;
    this.store = new GaleraStore({
      kv: deps.kv,
      clock: deps.clock,
      prefix: deps.prefix,
      cluster: settings.layout.cluster,
    });
  }

  get decision(): StartDecision | undefined {
    return this.#decision;
  }

  /** Runs until the server exits (its status is returned) or `signal` stops it (0 when clean). */
  async run(signal: AbortSignal): Promise<number> {
    const { layout } = this.#s;
    const log = this.#d.log;
    await this.#preflight();
    await this.#prepareDirs();
    const lease = await this.#d.registry.openLease(this.#s.lease);
    let server: Server | undefined;
    let child: ChildProcess | undefined;
    const probing = new AbortController();
    try {
      if (this.#s.checkPort > 0)
        server = await serveClustercheck({
          host: layout.host,
          port: this.#s.checkPort,
          clock: this.#d.clock,
          state: () => this.#state,
          maxAgeMs: Math.max(5_000, this.#s.probeIntervalMs * 5),
        });

      // Our own container or pid file from a killed run goes first: recovery needs the data dir.
      await this.#removeLeftovers();
      const local = await readDataPosition(layout, this.#d.clock);
      log.info(
        { event: 'galera.position', position: formatPosition(local.position), source: local.source },
        `local data: ${formatPosition(local.position)} (${local.source})`,
      );
      const decision = await decideUnderLock(
        { store: this.store, registry: this.#d.registry, clock: this.#d.clock, log },
        {
          lease: lease.leaseId,
          instance: layout.instance,
          host: layout.host,
          cluster: layout.cluster,
          service: this.#s.service,
          position: local.position,
          recoveryWaitMs: this.#s.recoveryWaitMs ?? DEFAULT_RECOVERY_WAIT_MS,
          retryMs: this.#s.retryMs ?? RETRY_MS,
        },
        signal,
      );
      if (decision === undefined) return 0;
      this.#decision = decision;
      const member: MemberRecord = {
        instance: layout.instance,
        address: `${layout.host}:${layout.port}`,
        role: decision.kind,
        since: new Date(this.#d.clock.now()).toISOString(),
        ...(this.#s.machine === undefined ? {} : { machine: this.#s.machine }),
      };
      if (decision.kind === 'bootstrap') {
        log.info(
          {
            event: 'galera.bootstrap',
            cluster: layout.cluster,
            address: layout.host,
            reason: decision.reason,
          },
          `bootstrapping the cluster: ${decision.reason}`,
        );
        await this.#prepareBootstrap();
      } else {
        log.info(
          { event: 'galera.join', cluster: layout.cluster, peers: decision.peers, reason: decision.reason },
          `joining ${decision.peers.join(',')}: ${decision.reason}`,
        );
      }
      await this.store.recordStart(
        lease.leaseId,
        member,
        decision.kind === 'bootstrap'
          ? {
              instance: layout.instance,
              address: member.address,
              at: member.since,
              reason: decision.reason,
              ...(this.#s.machine === undefined ? {} : { machine: this.#s.machine }),
            }
          : undefined,
      );
      this.#keepMemberKey(lease, member, probing.signal);
      // A joiner is visible (members/) from here on: the next one to take the lock sees it.
      if (decision.kind === 'join') await this.store.releaseLock(lease.leaseId);

      if (signal.aborted) return 0;
      const cmd = serverCommand(layout, decision, local.startPosition);
      log.info(
        { event: 'galera.server_start', command: [cmd.file, ...cmd.args].join(' ') },
        'starting MariaDB',
      );
      child = spawn(cmd.file, [...cmd.args], { stdio: ['ignore', 'inherit', 'inherit'] });
      const exited = exitOf(child);
      const stop = (): void => {
        child?.kill('SIGTERM');
      };
      signal.addEventListener('abort', stop, { once: true });
      void this.#probeLoop(probing.signal);

      if (decision.kind === 'bootstrap') {
        const synced = await Promise.race([
          this.#untilSynced(this.#s.bootstrapTimeoutMs, signal),
          exited.then(() => false),
        ]);
        if (!synced && !signal.aborted) {
          const why =
            child.exitCode !== null || child.signalCode !== null ? 'exited' : 'is not Synced in time';
          if (why !== 'exited') child.kill('SIGTERM');
          await exited;
          throw new GaleraError(
            'bootstrap_failed',
            `the bootstrapping MariaDB ${why} (see its log above); the lock is released with this process's lease`,
          );
        }
        // A stop while the init SQL runs (it shuts the server down under it) is not a failure.
        if (synced)
          await this.#runInitSql().catch((err: unknown) => {
            if (!signal.aborted) throw err;
          });
        await this.store.releaseLock(lease.leaseId);
        log.info(
          { event: 'galera.lock_released', lock: this.store.lockKey },
          'bootstrap done: lock released',
        );
      }
      const status = await exited;
      signal.removeEventListener('abort', stop);
      log.info({ event: 'galera.server_exit', ...status }, 'MariaDB exited');
      if (status.code !== null) return status.code;
      return signal.aborted ? 0 : 128 + signalNumber(status.signal);
    } finally {
      probing.abort();
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exitOf(child);
      }
      server?.close();
      await this.store.releaseLock(lease.leaseId).catch(() => undefined);
      // Revoking deletes members/<instance> at once: the next decider does not wait for a TTL.
      await lease.close().catch(() => undefined);
    }
  }

  async #preflight(): Promise<void> {
    const rt = this.#s.layout.runtime;
    if (rt.kind !== 'process') return;
    for (const [path, what] of [
      [rt.mariadbd, 'mariadbd'],
      [GALERA_PROVIDER, 'the Galera provider'],
    ] as const) {
      const ok = await access(path, what === 'mariadbd' ? constants.X_OK : constants.R_OK).then(
        () => true,
        () => false,
      );
      if (!ok)
        throw new GaleraError(
          'mariadbd_missing',
          `${what} not found at ${path}: install it (apt-get install mariadb-server galera-4 rsync) or give --mariadbd`,
        );
    }
  }

  async #prepareDirs(): Promise<void> {
    const { dataDir, runDir, runtime } = this.#s.layout;
    const owner = runtime.kind === 'process' ? await mysqlOwner() : undefined;
    for (const [dir, what] of [
      [dataDir, 'data dir'],
      [runDir, 'run dir'],
    ] as const) {
      try {
        // Parents stay traversable: the server runs as mysql, not root.
        await mkdir(dir, { recursive: true, mode: 0o755 });
        await access(dir, constants.R_OK | constants.W_OK | constants.X_OK);
        if (owner !== undefined) {
          await chown(dir, owner.uid, owner.gid);
          await chmod(dir, 0o750);
        }
      } catch (err) {
        if (err instanceof GaleraError) throw err;
        throw new GaleraError(
          'data_dir',
          `cannot use the ${what} ${dir}: ${(err as Error).message} (it must be a local directory root can write)`,
          { cause: err },
        );
      }
      if (owner !== undefined) await checkTraversable(dir, owner.uid);
    }
  }

  /** A bootstrap needs system tables (a joiner gets everything by SST) and a safe grastate. */
  async #prepareBootstrap(): Promise<void> {
    const { dataDir } = this.#s.layout;
    const initialized = await stat(join(dataDir, 'mysql')).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!initialized) {
      this.#d.log.info({ event: 'galera.install_db', dataDir }, 'initializing an empty data dir');
      await this.#must(installDbCommand(this.#s.layout), 'mariadb-install-db', 120_000);
      return;
    }
    const before = await markDataDirSafe(dataDir);
    if (before !== undefined)
      this.#d.log.info(
        {
          event: 'galera.safe_to_bootstrap',
          was: before.safeToBootstrap ?? null,
          seqno: before.seqno ?? null,
        },
        'grastate.dat marked safe_to_bootstrap: 1 (etcd chose this member)',
      );
  }

  /** A powered-off host leaves its pid file and socket behind, and Docker maybe a container. */
  async #removeLeftovers(): Promise<void> {
    const rt = this.#s.layout.runtime;
    if (rt.kind === 'docker') {
      await runFile(
        { file: rt.docker, args: ['rm', '-f', rt.container] },
        { clock: this.#d.clock, timeoutMs: 30_000 },
      );
      return;
    }
    await rm(join(this.#s.layout.runDir, 'mysqld.pid'), { force: true });
  }

  async #runInitSql(): Promise<void> {
    const file = this.#s.initSqlFile;
    if (file === undefined) return;
    const sql = await readFile(file, 'utf8').catch((err: Error) => {
      throw new GaleraError('command_failed', `cannot read --init-sql ${file}: ${err.message}`, {
        cause: err,
      });
    });
    await this.#must(clientCommand(this.#s.layout, []), `the init SQL ${file}`, 60_000, sql);
    this.#d.log.info({ event: 'galera.init_sql', file }, 'init SQL applied');
  }

  async #must(cmd: CommandLine, what: string, timeoutMs: number, input?: string): Promise<void> {
    const r = await runFile(cmd, {
      clock: this.#d.clock,
      timeoutMs,
      ...(input === undefined ? {} : { input }),
    });
    if (!r.ok)
      throw new GaleraError(
        'command_failed',
        `${what} failed (exit ${r.code ?? 'none'}): ${r.stderr.split('\n').slice(-3).join(' ') || 'no output'}`,
      );
  }

  /** Probes wsrep_local_state_comment through the local socket until stopped. */
  async #probeLoop(signal: AbortSignal): Promise<void> {
    let last = '';
    while (!signal.aborted) {
      const state = await this.probe();
      this.#state = state;
      const label = state.kind === 'state' ? state.comment : 'down';
      if (label !== last) {
        this.#d.log.info({ event: 'galera.state', state: label }, `local node: ${label}`);
        last = label;
      }
      await this.#d.clock.sleep(this.#s.probeIntervalMs, signal).catch(() => undefined);
    }
  }

  async probe(): Promise<NodeState> {
    const r = await runFile(
      clientCommand(this.#s.layout, [
        '-N',
        '-B',
        '-e',
        "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'",
      ]),
      { clock: this.#d.clock, timeoutMs: 3_000 },
    );
    const at = this.#d.clock.monotonic();
    if (!r.ok) return { kind: 'down', reason: r.stderr.split('\n')[0] ?? 'no answer', at };
    const comment = r.stdout.trim().split('\t')[1];
    return comment === undefined
      ? { kind: 'down', reason: 'no wsrep status (is wsrep on?)', at }
      : { kind: 'state', comment, at };
  }

  async #untilSynced(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const deadline = this.#d.clock.monotonic() + timeoutMs;
    while (!signal.aborted && this.#d.clock.monotonic() < deadline) {
      const s = this.#state;
      if (s?.kind === 'state' && s.comment === 'Synced') return true;
      await this.#d.clock.sleep(200, signal).catch(() => undefined);
    }
    return false;
  }

  /** The member key dies with the lease; if the lease is lost while MariaDB runs, write it anew. */
  #keepMemberKey(lease: LeaseHandle, member: MemberRecord, stop: AbortSignal): void {
    lease.onLost((loss) => {
      if (stop.aborted) return;
      this.#d.log.warn({ event: 'galera.lease_lost', loss: loss.kind }, 'member lease lost: re-registering');
      void (async () => {
        while (!stop.aborted) {
          try {
            const next = await this.#d.registry.openLease(this.#s.lease);
            await this.store.putMember(next.leaseId, member);
            stop.addEventListener('abort', () => void next.close().catch(() => undefined), { once: true });
            this.#keepMemberKey(next, member, stop);
            return;
          } catch {
            await this.#d.clock.sleep(1_000, stop).catch(() => undefined);
          }
        }
      })();
    });
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('error', () => resolve({ code: 127, signal: null }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGINT: 2,
    SIGABRT: 6,
    SIGSEGV: 11,
  };
  return signal === null ? 0 : (numbers[signal] ?? 0);
}

/** mariadbd runs as mysql: every parent of its dirs must let it through. */
async function checkTraversable(dir: string, uid: number): Promise<void> {
  for (let p = dirname(dir); p !== '/'; p = dirname(p)) {
    const s = await stat(p);
    if ((s.mode & 0o001) === 0 && s.uid !== uid)
      throw new GaleraError(
        'data_dir',
        `the mysql user cannot reach ${dir}: ${p} has mode ${(s.mode & 0o777).toString(8)} (run chmod o+x ${p})`,
      );
  }
}

/** The uid/gid of the `mysql` user (Debian's mariadb-server creates it). */
async function mysqlOwner(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const line = passwd.split('\n').find((l) => l.startsWith('mysql:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined)
    throw new GaleraError(
      'mariadbd_missing',
      'no mysql user on this host: install mariadb-server (it creates the user the server runs as)',
    );
  return { uid: Number(uid), gid: Number(gid) };
}
