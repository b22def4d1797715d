// The host supervisor: one Node process per state dir that runs the UnitSupervisor state machine of
// every process unit of the host, instead of one Node supervisor per unit (supervisor-main.ts).
// Spawned detached by the process runtime when absent (`node host-supervisor-main.js <stateDir>
// <cgroupRoot> <auto|proc-scan>`), it outlives fleetd; each unit's main process runs under a shim
// (unit-shim.ts) that outlives it in turn, so that a host supervisor started again (after a crash,
// a kill -9) takes every unit over where its status.json left it, without restarting running ones.
// Commands come over a unix socket (host-supervisor-protocol.ts); statuses go to the per-unit
// status.json files as before. SIGTERM/SIGINT stop every unit and end it.
// Imports no zod (record-envelope.ts says why).

import { createServer, type Socket } from 'node:net';
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { fenceOverdueMs, SUPERVISOR_FENCE_REASON } from './fence.js';
import {
  acquireHostLock,
  hostPaths,
  releaseHostLock,
  type HostReply,
  type HostRequest,
} from './host-supervisor-protocol.js';
import { JournalWriter } from './journal-writer.js';
import { identify } from './proc.js';
import { hostSupervisorCgroup, openProcessTree, serviceProcsFile, type ProcessTree } from './process-tree.js';
import { readOwnRecord, SUPERVISOR_CONFIG_RECORD, type RecordProblem } from './record-envelope.js';
import { UnitSupervisor, type Resume, type Running } from './supervisor.js';
import {
  unitPaths,
  writeFileAtomic,
  type ProcessIdentity,
  type SupervisorConfig,
  type SupervisorStatus,
} from './supervisor-protocol.js';
import { ShimLauncher } from './shim-launcher.js';
import {
  adoptShim,
  launchUnderShim,
  parseShimRecord,
  PERL,
  shimPaths,
  type ShimContext,
  type ShimRecord,
} from './unit-shim.js';
import { lookupCredentials } from './users.js';

/** How often the fence deadline is read: a small share of the 1.5 s between it and lease expiry. */
const FENCE_CHECK_MS = 200;
/** How long it stays without any unit before it ends, and how often it looks. */
const IDLE_EXIT_MS = 30_000;
const IDLE_CHECK_MS = 1_000;

interface Hosted {
  readonly supervisor: UnitSupervisor;
  readonly config: SupervisorConfig;
  /** Settles once the unit's supervisor is finished and its files closed. */
  readonly finished: Promise<void>;
  /** Its final status is written (done): a new start waits for `finished` instead of refusing. */
  done: boolean;
}

class HostSupervisor {
  readonly #stateDir: string;
  readonly #self: ProcessIdentity;
  readonly #units = new Map<string, Hosted>();
  /** Makes new units' FIFOs and forks the shims: one Perl helper, no spawn from Node per start. */
  readonly #launcher = new ShimLauncher(PERL);
  #seq = 0;
  #fenceReported: string | undefined;
  #shuttingDown = false;

  constructor(stateDir: string, self: ProcessIdentity) {
    this.#stateDir = stateDir;
    this.#self = self;
  }

  /** Takes over every unit a previous host supervisor left running (status.json with host, not done). */
  adoptAll(): void {
    let names: string[] = [];
    try {
      names = readdirSync(join(this.#stateDir, 'units')).sort();
    } catch {
      return;
    }
    for (const unit of names) {
      const paths = unitPaths(this.#stateDir, unit);
      let status: SupervisorStatus;
      try {
        status = JSON.parse(readFileSync(paths.status, 'utf8')) as SupervisorStatus;
      } catch {
        continue;
      }
      if (status.host !== true || status.done) continue;
      if (status.supervisor.pid === this.#self.pid && status.supervisor.startTime === this.#self.startTime)
        continue;
      const config = this.#readConfig(paths.config);
      if (!config.ok) {
        warn(`${config.problem.message}; ${unit} not taken over`);
        continue;
      }
      this.#run(unit, config.value, status.invocation, status);
    }
  }

  /** No unit to supervise. */
  idle(): boolean {
    return this.#units.size === 0;
  }

  /** Refuses new starts from now on (the host supervisor is ending). */
  shutDown(): void {
    this.#shuttingDown = true;
  }

  /** Stops every unit; resolves once all are finished. */
  async stopAll(): Promise<void> {
    const all = [...this.#units.values()];
    for (const h of all) h.supervisor.requestStop();
    await Promise.all(all.map((h) => h.finished));
  }

  async handle(req: HostRequest): Promise<HostReply> {
    const ok: HostReply = { ok: true, supervisor: this.#self };
    if (req.op === 'hello') return ok;
    if (req.op === 'start' && this.#shuttingDown)
      return { ok: false, error: 'the host supervisor is stopping its units and ending (SIGTERM)' };
    const hosted = this.#units.get(req.unit);
    switch (req.op) {
      case 'stop':
        hosted?.supervisor.requestStop();
        return ok;
      case 'reload':
        hosted?.supervisor.requestReload();
        return ok;
      case 'start': {
        if (hosted !== undefined) {
          if (!hosted.done)
            return { ok: false, error: `${req.unit} still runs under the host supervisor: stop it first` };
          await hosted.finished;
        }
        const paths = unitPaths(this.#stateDir, req.unit);
        const config = this.#readConfig(paths.config);
        if (!config.ok) {
          // Shown as the unit's failure, as a per-unit supervisor's last line of supervisor.log is.
          this.#writeFailed(paths.status, req.unit, config.problem.message);
          return ok;
        }
        const files = shimPaths(paths.dir);
        for (const f of [files.exit, `${files.exit}.out`, files.record]) rmSync(f, { force: true });
        this.#run(req.unit, config.value, undefined, undefined);
        return ok;
      }
    }
  }

  /** One timer for every AtMostOnce unit: stops them all once fleetd's deadline passed. */
  checkFence(): void {
    const fenced = [...this.#units.values()].filter((h) => h.config.fence !== undefined && !h.done);
    const path = fenced[0]?.config.fence?.path;
    if (path !== undefined) {
      const report = (p: RecordProblem): void => {
        if (p.message === this.#fenceReported) return;
        this.#fenceReported = p.message;
        warn(`${p.message} (counted as no deadline)`);
      };
      if (fenceOverdueMs(path, report) !== undefined) {
        for (const h of fenced) h.supervisor.requestStop(SUPERVISOR_FENCE_REASON);
      }
    }
    systemClock.setTimer(FENCE_CHECK_MS, () => this.checkFence());
  }

  #readConfig(path: string): ReturnType<typeof readOwnRecord<SupervisorConfig>> {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      return {
        ok: false,
        problem: {
          record: SUPERVISOR_CONFIG_RECORD.record,
          where: path,
          reason: 'cannot be read',
          newer: false,
          message: `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`,
        },
      };
    }
    return readOwnRecord<SupervisorConfig>(SUPERVISOR_CONFIG_RECORD, text, path);
  }

  #writeFailed(path: string, unit: string, reason: string): void {
    const now = new Date().toISOString();
    const s: SupervisorStatus = {
      v: 1,
      unit,
      hash: '',
      supervisor: this.#self,
      active: 'failed',
      sub: 'failed',
      since: now,
      reason: `supervisor: ${reason}`,
      restarts: 0,
      done: true,
      host: true,
    };
    writeFileAtomic(path, JSON.stringify(s) + '\n');
  }

  /** Runs (or, given the previous status, takes over) one unit's state machine. */
  #run(
    unit: string,
    config: SupervisorConfig,
    previousInvocation: string | undefined,
    previous: SupervisorStatus | undefined,
  ): void {
    const paths = unitPaths(this.#stateDir, unit);
    const files = shimPaths(paths.dir);
    // pid + start time is unique for this boot: a token no other invocation can carry.
    const invocationId =
      previousInvocation ?? `${this.#self.pid}-${this.#self.startTime}-${Date.now()}-${++this.#seq}`;
    const tree = openProcessTree(config.tracking, invocationId, { host: true });
    const shims = new Set<number>();
    const journal = new JournalWriter(paths.journal, config.journal);
    const ctx: ShimContext = {
      unitDir: paths.dir,
      launcher: this.#launcher,
      journal,
      clock: systemClock,
      cgroupProcs: serviceProcsFile(config.tracking),
      onShim: (shim) => {
        shims.add(shim.pid);
        tree.register(shim.pid);
      },
    };
    const watchShim = (run: Running & { shim: ProcessIdentity }): void => {
      void run.exited.then(() => shims.delete(run.shim.pid));
    };
    let resume: Resume | undefined;
    if (previous !== undefined) resume = resumeFrom(previous, readShim(files.record), unit, ctx);
    const adopted = resume !== undefined && 'main' in resume ? resume.main : undefined;
    if (adopted !== undefined) watchShim(adopted as Running & { shim: ProcessIdentity });
    const hosted: { done: boolean } = { done: false };
    const write = (s: SupervisorStatus): void => {
      const status = JSON.stringify({ ...s, host: true, invocation: invocationId }) + '\n';
      writeFileAtomic(paths.status, status, false);
    };
    // The first status is written at once (fleetd reads it when the start is answered), and so is
    // the last (done). The others are written once the state machine has stopped moving for this
    // turn of the event loop: start-post and running follow each other within microtasks, so a
    // start is three files, not four (each a new inode, read back by fleetd through inotify).
    let written = false;
    let later: SupervisorStatus | undefined;
    const writeStatus = (s: SupervisorStatus): void => {
      if (s.done) hosted.done = true;
      if (!written || s.done) {
        written = true;
        later = undefined;
        write(s);
        return;
      }
      if (later === undefined)
        setImmediate(() => {
          const last = later;
          later = undefined;
          if (last !== undefined) write(last);
        });
      later = s;
    };
    const supervisor = new UnitSupervisor({
      config: config.unitConfig,
      tree: shielded(tree, shims),
      journal,
      clock: systemClock,
      self: this.#self,
      invocationId,
      writeStatus,
      lookupCredentials,
      launchMain: async (spec) => {
        const r = await launchUnderShim(spec, ctx);
        if ('pid' in r) {
          watchShim(r);
          const record: ShimRecord = { v: 1, shim: r.shim, mainPid: r.pid, invocationId };
          writeFileAtomic(files.record, JSON.stringify(record) + '\n', false);
        }
        return r;
      },
      ...(resume === undefined ? {} : { resume }),
    });
    const finished = supervisor.run().then(
      () => undefined,
      (err: unknown) => {
        warn(
          `${unit}: supervisor crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        );
      },
    );
    const entry: Hosted = {
      supervisor,
      config,
      finished: finished.then(() => {
        tree.release();
        journal.close();
        if (this.#units.get(unit) === entry) this.#units.delete(unit);
      }),
      get done() {
        return hosted.done;
      },
    };
    this.#units.set(unit, entry);
  }
}

/** Where the previous host supervisor left the unit, as a Resume (see UnitSupervisor). */
function resumeFrom(
  s: SupervisorStatus,
  shim: ShimRecord | undefined,
  unit: string,
  ctx: ShimContext,
): Resume {
  const status = {
    since: s.since,
    restarts: s.restarts,
    ...(s.lastExit === undefined ? {} : { lastExit: s.lastExit }),
    ...(s.reason === undefined ? {} : { reason: s.reason }),
    ...(s.health === undefined ? {} : { health: s.health }),
  };
  const main = shim !== undefined && shim.mainPid === s.mainPid ? adoptShim(shim, unit, ctx) : undefined;
  if (s.active === 'active' && (s.sub === 'running' || s.sub === 'reload') && main !== undefined)
    return { kind: 'running', main, status };
  if (s.active === 'active' && s.sub === 'exited') return { kind: 'exited', status };
  if (s.sub === 'auto-restart') return { kind: 'auto-restart', status };
  return {
    kind: 'interrupted',
    stopping: s.active === 'deactivating',
    status,
    ...(main === undefined ? {} : { main }),
  };
}

function readShim(path: string): ShimRecord | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const r = parseShimRecord(text, path);
  if (r.ok) return r.value;
  warn(r.problem.message);
  return undefined;
}

/** The unit's tree, whose signals spare the shims: a shim must live to record how its process ended. */
function shielded(tree: ProcessTree, shims: ReadonlySet<number>): ProcessTree {
  return {
    tracking: tree.tracking,
    spawnInside: (spawn) => tree.spawnInside(spawn),
    register: (pid) => tree.register(pid),
    pids: () => tree.pids(),
    signal: (signal, except = new Set()) => tree.signal(signal, new Set([...except, ...shims])),
    release: () => tree.release(),
  };
}

function warn(message: string): void {
  process.stderr.write(`${new Date().toISOString()} host-supervisor: ${message}\n`);
}

async function main(): Promise<void> {
  const [stateDir, cgroupRoot, mode] = process.argv.slice(2);
  if (stateDir === undefined || cgroupRoot === undefined || (mode !== 'auto' && mode !== 'proc-scan')) {
    warn('usage: host-supervisor-main <stateDir> <cgroupRoot> <auto|proc-scan>');
    process.exit(2);
  }
  const self = identify(process.pid);
  if (self === undefined) throw new Error('cannot read /proc/self/stat');
  const paths = hostPaths(stateDir);
  const lock = acquireHostLock(paths.lock, self);
  if (lock.kind === 'held') {
    warn(`another host supervisor (pid ${lock.by.pid}) runs for ${stateDir}; exiting`);
    process.exit(0);
  }
  // Out of fleetd's cgroup: stopping fleetd.service must not kill it.
  const home = hostSupervisorCgroup(cgroupRoot, mode);
  if (home.kind !== 'proc-scan') writeFileSync(join(home.path, 'cgroup.procs'), String(process.pid));
  const host = new HostSupervisor(stateDir, self);
  host.adoptAll();
  host.checkFence();

  rmSync(paths.socket, { force: true });
  let connections = 0;
  let idleSince = 0;
  const server = createServer((conn) => {
    connections++;
    idleSince = systemClock.monotonic(); // a runtime is talking to it
    conn.once('close', () => connections--);
    serve(conn, host);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(paths.socket, resolve);
  });
  chmodSync(paths.socket, 0o600);
  // SIGTERM/SIGINT: stop every unit and end (as a per-unit supervisor stops its unit). A host
  // supervisor killed -9 leaves them running; the next one takes them over.
  let leaving = false;
  const leave = (): void => {
    if (leaving) return;
    leaving = true;
    host.shutDown();
    void host.stopAll().then(() => {
      server.close();
      rmSync(paths.socket, { force: true });
      releaseHostLock(paths.lock, self);
      process.exit(0);
    });
  };
  process.on('SIGTERM', leave);
  process.on('SIGINT', leave);
  // With no unit for IDLE_EXIT_MS (all removed), or its state dir gone (fleetts dev down --purge),
  // it ends: the runtime starts one again for the next unit. All in one tick, with no connection
  // open: a command still in the socket's backlog finds it closed, and the runtime sends it again
  // to a new one.
  idleSince = systemClock.monotonic();
  const idleCheck = (): void => {
    const now = systemClock.monotonic();
    if (!host.idle() || connections > 0 || leaving) idleSince = now;
    else if (now - idleSince >= IDLE_EXIT_MS || !existsSync(join(stateDir, 'units'))) {
      warn(
        `no unit for ${Math.round(now - idleSince)} ms${existsSync(join(stateDir, 'units')) ? '' : ` and ${stateDir}/units is gone`}: ending`,
      );
      server.close();
      rmSync(paths.socket, { force: true });
      releaseHostLock(paths.lock, self);
      process.exit(0);
    }
    systemClock.setTimer(IDLE_CHECK_MS, idleCheck);
  };
  systemClock.setTimer(IDLE_CHECK_MS, idleCheck);
  process.on('SIGHUP', () => undefined);
  process.on('uncaughtException', (err) => {
    // The units run on under their shims; the next host supervisor takes them over.
    warn(`crashed: ${err.stack ?? String(err)}`);
    releaseHostLock(paths.lock, self);
    process.exit(1);
  });
}

function serve(conn: Socket, host: HostSupervisor): void {
  let buf = '';
  conn.setEncoding('utf8');
  conn.on('error', () => undefined);
  conn.on('data', (chunk: string) => {
    buf += chunk;
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > 64 * 1024) conn.destroy();
      return;
    }
    const line = buf.slice(0, nl);
    buf = '';
    let req: HostRequest;
    try {
      req = JSON.parse(line) as HostRequest;
    } catch {
      conn.end(JSON.stringify({ ok: false, error: 'not JSON' }) + '\n');
      return;
    }
    const valid =
      req.op === 'hello' ||
      ((req.op === 'start' || req.op === 'stop' || req.op === 'reload') &&
        typeof req.unit === 'string' &&
        /^[A-Za-z0-9:_.\-\\@]+$/.test(req.unit) &&
        !req.unit.startsWith('.'));
    if (!valid) {
      conn.end(JSON.stringify({ ok: false, error: `bad request: ${line.slice(0, 200)}` }) + '\n');
      return;
    }
    host.handle(req).then(
      (reply) => conn.end(JSON.stringify(reply) + '\n'),
      (err: unknown) => conn.end(JSON.stringify({ ok: false, error: String(err) }) + '\n'),
    );
  });
}

await main();
