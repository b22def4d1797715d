// The systemd runtime: runs `[Service]` units as transient systemd services (StartTransientUnit
// over D-Bus, through busctl) on hosts where systemd is PID 1. systemd supervises, restarts, kills
// and logs; this side maps a ProcessUnitConfig to unit properties, reads the state back with one
// batched `systemctl show`, and keeps one small record per unit so that a restarted fleetd adopts
// its units by name (docs/systemd-runtime.md).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { UnitName } from '../cluster/types.js';
import {
  RuntimeError,
  type ChangeListener,
  type ExecStep,
  type JournalOptions,
  type ObservedUnit,
  type ProcessUnitConfig,
  type Runtime,
} from './runtime.js';
import { UnitChanges } from './unit-changes.js';
import {
  encodeSystemdUnitRecord,
  parseSystemdUnitRecord,
  type SystemdUnitRecord,
} from './systemd-records.js';

export interface SystemdRuntimeDeps {
  /** Where the unit records live (`<stateDir>/systemd/`); must survive fleetd restarts. */
  readonly stateDir: string;
  /** Prefix of the transient units' names; default `fleetts-`. Several fleetd on one systemd need their own. */
  readonly prefix?: string;
  readonly clock?: Clock;
  /** How often every unit's state is read back from systemd (besides right after each action); default 2 s. */
  readonly pollMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /** Runs systemctl and busctl; a test may script systemd's answers. Default: the real commands. */
  readonly run?: CommandRunner;
}

export type CommandRunner = (command: string, args: readonly string[]) => Promise<RunResult>;

/** What `systemctl show` tells of one unit. */
interface Shown {
  readonly id: string;
  readonly load: string;
  readonly active: string;
  readonly sub: string;
  readonly mainPid: number;
  readonly execMainCode: number;
  readonly execMainStatus: number;
  readonly execMainExit: string | undefined;
  readonly result: string;
  readonly since: string | undefined;
  readonly description: string;
  readonly nRestarts: number;
}

interface Tracked {
  record: SystemdUnitRecord;
  last?: string;
  lastActive?: string;
  /** NRestarts last seen (to log `runtime.unit_restarted` with the growth). */
  restarts?: number;
  /** Failure details fetched once per failure (keyed by the state change time). */
  failure?: { readonly key: string; readonly reason: string; readonly lastExit?: ObservedUnit['lastExit'] };
  shown?: Shown | undefined;
  /**
   * Just handed to systemd: a reading that does not show the unit yet is older than the start
   * (it is reported activating, not as a unit systemd forgot) unless that reading began after
   * refresh number `pendingUntil`. Infinity while the start call runs.
   */
  pendingUntil?: number;
  /** The number of the refresh `shown` comes from: an older reading that ends later is ignored. */
  shownSeq?: number;
}

const SHOW_PROPERTIES = [
  'Id',
  'LoadState',
  'ActiveState',
  'SubState',
  'MainPID',
  'ExecMainCode',
  'ExecMainStatus',
  'ExecMainExitTimestamp',
  'Result',
  'StateChangeTimestamp',
  'Description',
  'NRestarts',
  'Job',
];

/** How soon after an action its unit's state is read back (coalescing a burst of actions). */
const SOON_MS = 30;
const USEC_INFINITY = '18446744073709551615';
const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);
/** systemd's exit codes for a unit's process that could not be set up (systemd.exec(5)). */
const EXIT_CHDIR = 200;
const EXIT_EXEC = 203;
const EXIT_GROUP = 216;
const EXIT_USER = 217;

export class SystemdRuntime implements Runtime<ProcessUnitConfig> {
  readonly #dir: string;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #pollMs: number;
  readonly #log: (event: string, fields: Record<string, unknown>) => void;
  readonly #run: CommandRunner;
  readonly #units = new Map<string, Tracked>();
  readonly #changes: UnitChanges;
  readonly #locks = new Map<string, Promise<unknown>>();
  #refreshing: Promise<void> | undefined;
  #nextRefresh: Promise<void> | undefined;
  /** Readings begun so far (Tracked.pendingUntil). */
  #refreshSeq = 0;
  #timer: Timer | undefined;
  #soon: Timer | undefined;
  #closed = false;

  constructor(deps: SystemdRuntimeDeps) {
    this.#dir = join(resolve(deps.stateDir), 'systemd');
    this.#prefix = deps.prefix ?? 'fleetts-';
    this.#clock = deps.clock ?? systemClock;
    this.#pollMs = deps.pollMs ?? 2000;
    this.#log = deps.log ?? (() => undefined);
    this.#run = deps.run ?? realRun;
    this.#changes = new UnitChanges(this.#log);
    mkdirSync(this.#dir, { recursive: true });
    this.#arm();
  }

  /** The transient unit that runs `unit` (`web@1.unit` → `fleetts-web@1.unit.service`). */
  systemdName(unit: string): string {
    return `${this.#prefix}${unit}.service`;
  }

  async adopt(): Promise<ObservedUnit[]> {
    await checkSystemd(this.#run);
    for (const file of readdirSync(this.#dir).sort()) {
      if (!file.endsWith('.json')) continue;
      const path = join(this.#dir, file);
      const read = parseSystemdUnitRecord(readText(path) ?? '', path);
      if (!read.ok) {
        this.#log('runtime.record_unreadable', {
          path: read.problem.where,
          record: read.problem.record,
          reason: read.problem.reason,
        });
        continue;
      }
      this.#units.set(read.value.unit, { record: read.value });
    }
    await this.#refreshAll(false);
    const found = [...this.#units.values()].map((t) => this.#observe(t));
    for (const t of this.#units.values()) {
      const o = this.#observe(t);
      this.#changes.seen(t, o);
      if (t.shown !== undefined) t.restarts = t.shown.nRestarts;
      this.#log('runtime.unit_adopted', { unit: o.unit, active: o.active, sub: o.sub, pid: o.pid });
    }
    return sortByUnit(found);
  }

  start(config: ProcessUnitConfig): Promise<void> {
    return this.#serial(config.unit, () => this.#start(config));
  }

  stop(unit: UnitName): Promise<void> {
    return this.#serial(unit, () => this.#stop(unit));
  }

  remove(unit: UnitName): Promise<void> {
    return this.#serial(unit, async () => {
      const t = this.#units.get(unit);
      if (t === undefined) return;
      await this.#stop(unit);
      this.#units.delete(unit);
      rmSync(this.#recordPath(unit), { force: true });
      rmSync(this.#exitPath(unit), { force: true });
      this.#log('runtime.unit_removed', { unit });
    });
  }

  async list(): Promise<ObservedUnit[]> {
    await this.#refreshAll(true);
    return sortByUnit([...this.#units.values()].map((t) => this.#observe(t)));
  }

  onChange(listener: ChangeListener): () => void {
    return this.#changes.subscribe(listener);
  }

  journal(unit: UnitName, options: JournalOptions = {}): AsyncIterable<string> {
    const t = this.#units.get(unit);
    if (t === undefined) {
      throw new RuntimeError(`unit ${unit} is not known to this host's runtime`, { unit, code: 'not_found' });
    }
    return readSystemdJournal(t.record.systemdUnit, unit, options);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#timer?.cancel();
    this.#soon?.cancel();
    this.#changes.clear();
    return Promise.resolve();
  }

  async #start(config: ProcessUnitConfig): Promise<void> {
    const unit = config.unit;
    const name = this.systemdName(unit);
    const existing = this.#units.get(unit);
    if (existing !== undefined && existing.record.refused === undefined) {
      await this.#refreshOne(existing);
      const s = existing.shown;
      const running = s !== undefined && s.load === 'loaded' && isRunning(s.active);
      if (running && existing.record.hash === config.hash && s.active !== 'deactivating') return;
    }
    const refused = refusal(config, name);
    const record: SystemdUnitRecord = {
      v: 1,
      unit,
      hash: config.hash,
      systemdUnit: name,
      type: config.type,
      ...(config.atMostOnce === true ? { atMostOnce: true } : {}),
      ...(config.user === undefined ? {} : { user: config.user }),
      ...(config.group === undefined ? {} : { group: config.group }),
      ...(config.workingDirectory === undefined ? {} : { workingDirectory: config.workingDirectory.path }),
      timeoutStartMs: config.timeoutStartMs,
      restart: config.restart,
      successCodes: [...config.successExitStatus.codes],
      startedAt: iso(this.#clock),
      ...(refused === undefined ? {} : { refused }),
    };
    // The name must be free: a unit of the same name that still runs (another hash) is stopped, a
    // failed one is reset (systemd then forgets it). An unknown name is tried at once.
    if (existing?.shown !== undefined && existing.shown.load === 'loaded') await this.#release(name);
    rmSync(this.#exitPath(unit), { force: true });
    writeFileAtomic(this.#recordPath(unit), encodeSystemdUnitRecord(record) + '\n');
    // systemd counts NRestarts from 0 for a new unit.
    const t: Tracked = { record, restarts: 0, pendingUntil: Infinity };
    this.#units.set(unit, t);
    if (refused !== undefined) {
      this.#log('runtime.unit_refused', { unit, reason: refused });
      this.#emit(t);
      return;
    }
    const args = startTransientArgs(name, config, record, this.#exitPath(unit));
    for (let attempt = 0; ; attempt++) {
      const r = await this.#run('busctl', args).catch((err: unknown) => {
        delete t.pendingUntil;
        throw err;
      });
      if (r.code === 0) break;
      // Left by an earlier fleetd, or reset and not collected yet (systemd's next GC sweep).
      if (/already exists/.test(r.stderr) && attempt < 50) {
        await this.#release(name);
        if (attempt > 0) await this.#clock.sleep(20);
        continue;
      }
      // A unit systemd will not take (a property it rejects): the unit's failure, not the runtime's.
      const reason = `systemd refused the transient unit ${name}: ${oneLine(r.stderr)}`;
      t.record = { ...record, refused: reason };
      delete t.pendingUntil;
      writeFileAtomic(this.#recordPath(unit), encodeSystemdUnitRecord(t.record) + '\n');
      this.#log('runtime.unit_refused', { unit, reason });
      this.#emit(t);
      return;
    }
    t.pendingUntil = this.#refreshSeq;
    this.#log('runtime.unit_started', { unit, systemdUnit: name });
    this.#refreshSoon();
  }

  async #stop(unit: string): Promise<void> {
    const t = this.#units.get(unit);
    if (t === undefined) return;
    if (t.record.refused === undefined) {
      const r = await this.#run('systemctl', ['stop', '--', t.record.systemdUnit]);
      if (r.code !== 0 && !/not loaded|not found/i.test(r.stderr)) {
        throw new RuntimeError(`cannot stop ${unit} (${t.record.systemdUnit}): ${oneLine(r.stderr)}`, {
          unit,
        });
      }
      // A failed unit stays failed until reset: stopped by fleetts, it is inactive (dead).
      await this.#run('systemctl', ['reset-failed', '--', t.record.systemdUnit]);
    }
    const { refused: _refused, ...rest } = t.record;
    t.record = { ...rest, stoppedAt: iso(this.#clock) };
    delete t.failure;
    writeFileAtomic(this.#recordPath(unit), encodeSystemdUnitRecord(t.record) + '\n');
    this.#refreshSoon();
  }

  /** Stops and resets whatever unit holds `name`, so that a new transient unit can take it. */
  async #release(name: string): Promise<void> {
    const [s] = await showUnits(this.#run, [name]);
    if (s === undefined || s.load === 'not-found') return;
    if (isRunning(s.active)) await this.#run('systemctl', ['stop', '--', name]);
    await this.#run('systemctl', ['reset-failed', '--', name]);
  }

  #recordPath(unit: string): string {
    return join(this.#dir, `${unit}.json`);
  }

  #exitPath(unit: string): string {
    return join(this.#dir, `${unit}.exit`);
  }

  async #refreshOne(t: Tracked): Promise<void> {
    if (t.record.refused === undefined) {
      const seq = ++this.#refreshSeq;
      const [s] = await showUnits(this.#run, [t.record.systemdUnit]);
      if (this.#takeReading(t, seq, s) && s !== undefined) await this.#explainFailure(t, s);
    } else delete t.shown;
    this.#emit(t);
  }

  /**
   * Keeps reading `s` of refresh `seq` unless a reading begun later was already kept: two readings
   * may overlap, and the older one may end last.
   */
  #takeReading(t: Tracked, seq: number, s: Shown | undefined): boolean {
    if (t.shownSeq !== undefined && t.shownSeq > seq) return false;
    t.shownSeq = seq;
    t.shown = s;
    return true;
  }

  /** A refresh of every unit shortly, shared by the actions of a burst (one `systemctl show` for all). */
  #refreshSoon(): void {
    if (this.#soon !== undefined || this.#closed) return;
    this.#soon = this.#clock.setTimer(SOON_MS, () => {
      this.#soon = undefined;
      this.#refreshAll(true).catch((err: unknown) => this.#log('runtime.poll_failed', { err: String(err) }));
    });
  }

  /**
   * One `systemctl show` over every tracked unit, begun after this call: a caller never gets a
   * reading older than its call. Callers while one runs share the next one.
   */
  #refreshAll(emit: boolean): Promise<void> {
    // The queued one is still to begin (also between the end of the running one and its start).
    if (this.#nextRefresh !== undefined) return this.#nextRefresh;
    if (this.#refreshing === undefined) return this.#refreshNow(emit);
    this.#nextRefresh ??= this.#refreshing
      .catch(() => undefined)
      .then(() => {
        this.#nextRefresh = undefined;
        return this.#refreshNow(true);
      });
    return this.#nextRefresh;
  }

  #refreshNow(emit: boolean): Promise<void> {
    const seq = ++this.#refreshSeq;
    const p = (async () => {
      const tracked = [...this.#units.values()].filter((t) => t.record.refused === undefined);
      const shown = await showUnits(
        this.#run,
        tracked.map((t) => t.record.systemdUnit),
      );
      const byId = new Map(shown.map((s) => [s.id, s]));
      for (const t of tracked) {
        const s = byId.get(t.record.systemdUnit);
        if (!this.#takeReading(t, seq, s)) continue;
        if (t.pendingUntil !== undefined && (seq > t.pendingUntil || s?.load === 'loaded'))
          delete t.pendingUntil;
        if (s !== undefined) await this.#explainFailure(t, s);
      }
      if (emit) for (const t of this.#units.values()) this.#emit(t);
    })().finally(() => {
      if (this.#refreshing === p) this.#refreshing = undefined;
    });
    this.#refreshing = p;
    return p;
  }

  /** A failed unit's reason and last exit, read once per failure from its Exec statuses. */
  async #explainFailure(t: Tracked, s: Shown): Promise<void> {
    if (s.active !== 'failed') return;
    const key = `${s.since ?? ''} ${s.result}`;
    if (t.failure?.key === key) return;
    const statuses = await execStatuses(this.#run, s.id);
    t.failure = { key, ...explain(t.record, s, statuses) };
  }

  /** Tells the listeners when the unit's observation changed. */
  #emit(t: Tracked): void {
    if (this.#closed || this.#units.get(t.record.unit) !== t) return;
    const o = this.#observe(t);
    const s = t.shown;
    if (s !== undefined && s.load === 'loaded') {
      const before = t.restarts;
      if (before !== undefined && s.nRestarts > before)
        this.#log('runtime.unit_restarted', {
          unit: o.unit,
          restarts: s.nRestarts,
          count: s.nRestarts - before,
        });
      // A unit stopped and started again by fleetts counts from systemd's 0.
      t.restarts = s.nRestarts;
    }
    this.#changes.tell(t, o);
  }

  #observe(t: Tracked): ObservedUnit {
    const o = this.#observeState(t);
    return t.record.atMostOnce === true ? { ...o, atMostOnce: true } : o;
  }

  #observeState(t: Tracked): ObservedUnit {
    const r = t.record;
    const base = { unit: r.unit, hash: r.hash, load: 'loaded' as const };
    if (r.refused !== undefined)
      return { ...base, active: 'failed', sub: 'failed', since: r.startedAt, reason: r.refused };
    const s = t.shown;
    if (t.pendingUntil !== undefined && (s === undefined || s.load !== 'loaded'))
      return { ...base, active: 'activating', sub: 'start-pre', since: r.startedAt };
    if (s === undefined || s.load !== 'loaded') {
      // systemd forgot it: it ended cleanly (or was stopped), and its ExecStopPost left the exit.
      const exit = this.#readExit(r);
      return {
        ...base,
        active: 'inactive',
        sub: 'dead',
        since: exit?.at ?? r.stoppedAt ?? r.startedAt,
        ...(exit?.lastExit === undefined ? {} : { lastExit: exit.lastExit }),
      };
    }
    const active = activeState(s.active);
    const failed = active === 'failed' ? t.failure : undefined;
    const mainExit = mainLastExit(r, s);
    const lastExit = failed?.lastExit ?? mainExit;
    return {
      ...base,
      active,
      sub: s.sub,
      since: s.since ?? r.startedAt,
      ...(s.mainPid > 0 ? { pid: s.mainPid } : {}),
      ...(lastExit === undefined ? {} : { lastExit }),
      ...(failed === undefined ? {} : { reason: failed.reason }),
    };
  }

  /** `<unit>.exit`, written by the unit's first ExecStopPost: `SERVICE_RESULT EXIT_CODE EXIT_STATUS`. */
  #readExit(r: SystemdUnitRecord): { at: string; lastExit?: ObservedUnit['lastExit'] } | undefined {
    const path = this.#exitPath(r.unit);
    const text = readText(path);
    if (text === undefined) return undefined;
    let at: string;
    try {
      at = statSync(path).mtime.toISOString();
    } catch {
      return undefined;
    }
    const [result = '', code = '', status = ''] = text.trim().split(' ');
    let lastExit: ObservedUnit['lastExit'];
    if (code === 'exited' && /^\d+$/.test(status)) lastExit = { code: Number(status), at };
    else if ((code === 'killed' || code === 'dumped') && status !== '')
      lastExit = { signal: status.startsWith('SIG') ? status : `SIG${status}`, at };
    // A oneshot that ended well leaves no last exit (as in the process runtime).
    if (r.type === 'oneshot' && result === 'success') lastExit = undefined;
    return lastExit === undefined ? { at } : { at, lastExit };
  }

  #arm(): void {
    this.#timer = this.#clock.setTimer(this.#pollMs, () => {
      if (this.#closed) return;
      this.#refreshAll(true)
        .catch((err: unknown) => this.#log('runtime.poll_failed', { err: String(err) }))
        .finally(() => {
          if (!this.#closed) this.#arm();
        });
    });
  }

  #serial<T>(unit: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(unit) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.#locks.set(unit, settled);
    void settled.then(() => {
      if (this.#locks.get(unit) === settled) this.#locks.delete(unit);
    });
    return next;
  }
}

/** Why the systemd runtime cannot run this unit faithfully (shown as its failure reason), or undefined. */
function refusal(config: ProcessUnitConfig, name: string): string | undefined {
  if (name.length > 255)
    return `the systemd unit name ${name.slice(0, 40)}… would be longer than systemd's 255 characters; use a shorter unit name`;
  if (config.health !== undefined)
    return '[X-Health] is not supported by the systemd runtime (docs/systemd-runtime.md): drop the section, or run this unit on a host with the process runtime';
  if (config.atMostOnce === true)
    return 'AtMostOnce=true is not supported by the systemd runtime: its units cannot stop by themselves when this host is cut off (docs/systemd-runtime.md); run this unit on a host with the process runtime';
  return undefined;
}

/** busctl's arguments for StartTransientUnit: every property typed, every argv word one argument. */
export function startTransientArgs(
  name: string,
  config: ProcessUnitConfig,
  record: SystemdUnitRecord,
  exitPath: string,
): string[] {
  const props: string[][] = [];
  const prop = (key: string, sig: string, ...values: (string | number | boolean)[]): void => {
    props.push([key, sig, ...values.map(String)]);
  };
  prop('Description', 's', `fleetts ${record.unit} ${record.hash}`);
  prop('Type', 's', config.type);
  prop('RemainAfterExit', 'b', config.remainAfterExit);
  prop('Restart', 's', config.restart);
  prop('RestartUSec', 't', config.restartSecMs * 1000);
  prop('StartLimitBurst', 'u', config.startLimitBurst);
  prop('StartLimitIntervalUSec', 't', config.startLimitIntervalMs * 1000);
  prop('TimeoutStartUSec', 't', usec(config.timeoutStartMs));
  prop('TimeoutStopUSec', 't', usec(config.timeoutStopMs));
  prop('KillSignal', 'i', signalNumber(config.killSignal));
  prop('KillMode', 's', config.killMode);
  const env = { ...config.env, FLEETTS_INVOCATION_ID: randomBytes(16).toString('hex') };
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  prop('Environment', 'as', pairs.length, ...pairs);
  if (config.workingDirectory !== undefined)
    prop(
      'WorkingDirectory',
      's',
      `${config.workingDirectory.optional ? '-' : ''}${config.workingDirectory.path}`,
    );
  if (config.user !== undefined) prop('User', 's', config.user);
  if (config.group !== undefined) prop('Group', 's', config.group);
  const { codes, signals } = config.successExitStatus;
  if (codes.length > 0 || signals.length > 0) {
    const nums = signals.map(signalNumber);
    prop('SuccessExitStatus', '(aiai)', codes.length, ...codes, nums.length, ...nums);
  }
  const path = config.env['PATH'] ?? DEFAULT_PATH;
  const exec = (key: string, steps: readonly ExecStep[]): void => {
    if (steps.length === 0) return;
    const words: (string | number)[] = [steps.length];
    for (const s of steps) {
      const flags: string[] = [];
      if (s.ignoreFailure) flags.push('ignore-failure');
      if (s.privileged) flags.push('privileged');
      // fleetts expanded $VAR already; systemd expands only the lines that name $MAINPID.
      if (s.expandAtLaunch !== true) flags.push('no-env-expand');
      words.push(resolveProgram(s.path, path), s.argv.length, ...s.argv, flags.length, ...flags);
    }
    prop(`${key}Ex`, 'a(sasas)', ...words);
  };
  exec('ExecStartPre', config.execStartPre);
  exec('ExecStart', config.execStart);
  exec('ExecStartPost', config.execStartPost);
  exec('ExecReload', config.execReload);
  exec('ExecStop', config.execStop);
  // First of the ExecStopPost lines: records how the unit ended, which systemd forgets once it
  // collects a unit that ended cleanly.
  const recorder: ExecStep = {
    path: '/bin/sh',
    argv: [
      '/bin/sh',
      '-c',
      'printf "%s %s %s\\n" "$SERVICE_RESULT" "$EXIT_CODE" "$EXIT_STATUS" > "$1"',
      'fleetts-exit',
      exitPath,
    ],
    ignoreFailure: true,
    privileged: true,
  };
  exec('ExecStopPost', [recorder, ...config.execStopPost]);
  const out = [
    '--quiet',
    '--',
    'call',
    'org.freedesktop.systemd1',
    '/org/freedesktop/systemd1',
    'org.freedesktop.systemd1.Manager',
    'StartTransientUnit',
    'ssa(sv)a(sa(sv))',
    name,
    'replace',
    String(props.length),
  ];
  for (const p of props) out.push(...p);
  out.push('0');
  return out;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A bare program name looked up in the unit's PATH, as the process runtime does; unchanged when not found. */
function resolveProgram(program: string, path: string): string {
  if (program.includes('/')) return program;
  for (const dir of path.split(':')) {
    if (dir === '') continue;
    const full = join(dir, program);
    try {
      accessSync(full, fsConstants.X_OK);
      if (statSync(full).isFile()) return full;
    } catch {
      // next
    }
  }
  return program;
}

function usec(ms: number): string {
  return ms > 0 ? String(Math.round(ms * 1000)) : USEC_INFINITY;
}

function signalNumber(name: string): number {
  const n = (osConstants.signals as Record<string, number | undefined>)[name];
  if (n === undefined) throw new RuntimeError(`unknown signal ${name}`);
  return n;
}

function signalName(n: number): string {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === n) return name;
  return `signal ${n}`;
}

function isRunning(active: string): boolean {
  return (
    active === 'active' || active === 'activating' || active === 'reloading' || active === 'deactivating'
  );
}

function activeState(s: string): ObservedUnit['active'] {
  switch (s) {
    case 'active':
    case 'reloading':
      return 'active';
    case 'activating':
    case 'deactivating':
    case 'inactive':
    case 'failed':
      return s;
    default:
      return 'deactivating'; // maintenance (cleaning)
  }
}

/** The main process's last exit, as systemd keeps it (a oneshot's clean exit leaves none). */
function mainLastExit(r: SystemdUnitRecord, s: Shown): ObservedUnit['lastExit'] {
  if (s.execMainCode <= 0 || s.execMainExit === undefined) return undefined;
  const at = s.execMainExit;
  if (s.execMainCode === 1) {
    if (r.type === 'oneshot' && (s.execMainStatus === 0 || r.successCodes.includes(s.execMainStatus)))
      return undefined;
    return { code: s.execMainStatus, at };
  }
  return { signal: signalName(s.execMainStatus), at };
}

/** systemd's service_shall_restart: whether Restart= restarts a unit that ended with `result`. */
function shallRestart(policy: SystemdUnitRecord['restart'], result: string): boolean {
  switch (policy) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'on-success':
      return result === 'success';
    case 'on-failure':
      return result !== 'success';
    case 'on-abnormal':
      return ['signal', 'core-dump', 'timeout', 'watchdog'].includes(result);
    case 'on-abort':
      return ['signal', 'core-dump'].includes(result);
  }
}

/** One Exec line's last run, as systemd reports it (the ExecStartPre… properties). */
interface ExecStatus {
  readonly key: string;
  readonly path: string;
  readonly ignore: boolean;
  readonly exitUs: number;
  /** CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3; 0 never ran. */
  readonly code: number;
  readonly status: number;
}

const EXEC_KEYS = ['ExecStartPre', 'ExecStart', 'ExecStartPost'] as const;

async function execStatuses(run: CommandRunner, systemdUnit: string): Promise<ExecStatus[]> {
  const r = await run('busctl', [
    '--json=short',
    '--',
    'get-property',
    'org.freedesktop.systemd1',
    `/org/freedesktop/systemd1/unit/${busEscape(systemdUnit)}`,
    'org.freedesktop.systemd1.Service',
    ...EXEC_KEYS,
  ]);
  if (r.code !== 0) return [];
  const out: ExecStatus[] = [];
  r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .forEach((line, i) => {
      const key = EXEC_KEYS[i] ?? '?';
      let parsed: { data?: unknown };
      try {
        parsed = JSON.parse(line) as { data?: unknown };
      } catch {
        return;
      }
      if (!Array.isArray(parsed.data)) return;
      for (const e of parsed.data as unknown[]) {
        if (!Array.isArray(e)) continue;
        const [path, , ignore, , , exitUs, , , code, status] = e as unknown[];
        out.push({
          key,
          path: String(path),
          ignore: ignore === true,
          exitUs: Number(exitUs),
          code: Number(code),
          status: Number(status),
        });
      }
    });
  return out;
}

/** The reason a failed unit gives, in the process runtime's words, and the exit that caused it. */
function explain(
  r: SystemdUnitRecord,
  s: Shown,
  statuses: readonly ExecStatus[],
): { reason: string; lastExit?: ObservedUnit['lastExit'] } {
  // systemd keeps the first failure as the Result when the start limit then refuses the restart.
  if (s.result === 'start-limit-hit' || shallRestart(r.restart, s.result))
    return { reason: 'start-limit-hit' };
  const failedStep = (e: ExecStatus): boolean => {
    if (e.ignore || e.exitUs === 0 || e.code === 0) return false;
    if (s.result === 'timeout') return e.code !== 1;
    if (e.code === 1) return e.status !== 0 && !r.successCodes.includes(e.status);
    return !(r.type !== 'oneshot' && CLEAN_SIGNALS.has(signalName(e.status)));
  };
  const culprit = statuses.filter(failedStep).sort((a, b) => b.exitUs - a.exitUs)[0];
  if (culprit === undefined) return { reason: `failed (systemd result: ${s.result})` };
  const at = new Date(culprit.exitUs / 1000).toISOString();
  const step = `${culprit.key}=${culprit.path}`;
  if (s.result === 'timeout')
    return {
      reason:
        r.timeoutStartMs > 0 && culprit.key !== 'ExecStop'
          ? `${step} timed out after ${r.timeoutStartMs} ms`
          : `${step} timed out`,
    };
  if (culprit.code !== 1)
    return {
      reason: `${step} killed by ${signalName(culprit.status)}`,
      lastExit: { signal: signalName(culprit.status), at },
    };
  const lastExit = { code: culprit.status, at };
  switch (culprit.status) {
    case EXIT_EXEC:
      return { reason: `${step}: ${whyNotExecutable(culprit.path)}`, lastExit };
    case EXIT_CHDIR:
      return { reason: `WorkingDirectory=${r.workingDirectory ?? '?'}: no such directory`, lastExit };
    case EXIT_USER:
      return { reason: `User=${r.user ?? '?'}: no such user in /etc/passwd`, lastExit };
    case EXIT_GROUP:
      return { reason: `Group=${r.group ?? '?'}: no such group in /etc/group`, lastExit };
    default:
      return { reason: `${step} exited with status ${culprit.status}`, lastExit };
  }
}

/** Why execve of `path` failed (systemd says only 203/EXEC): looked at now, on this host. */
function whyNotExecutable(path: string): string {
  if (!path.startsWith('/')) return 'not found on PATH';
  try {
    const st = statSync(path);
    if (st.isDirectory()) return 'is a directory';
    accessSync(path, fsConstants.X_OK);
    return 'cannot be executed';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file or directory';
    if (code === 'EACCES') return 'permission denied';
    return `cannot be executed (${code ?? String(err)})`;
  }
}

/** D-Bus object path escaping of a unit name (sd_bus_path_encode). */
function busEscape(s: string): string {
  let out = '';
  for (const ch of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(ch);
    out += /[A-Za-z0-9]/.test(c) ? c : `_${ch.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** `systemctl show` over `units` (in one call); units systemd does not know come back not-found. */
async function showUnits(run: CommandRunner, units: readonly string[]): Promise<Shown[]> {
  if (units.length === 0) return [];
  const out: Shown[] = [];
  // Long lists in several calls, to stay far below the argument size limit.
  for (let i = 0; i < units.length; i += 500) {
    const chunk = units.slice(i, i + 500);
    const r = await run('systemctl', [
      'show',
      '--timestamp=us+utc',
      `--property=${SHOW_PROPERTIES.join(',')}`,
      '--',
      ...chunk,
    ]);
    if (r.code !== 0) throw new RuntimeError(`systemctl show failed: ${oneLine(r.stderr)}`);
    for (const block of r.stdout.split(/\n\n+/)) {
      const kv = new Map<string, string>();
      for (const line of block.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
      }
      const id = kv.get('Id');
      if (id === undefined || id === '') continue;
      // A unit just handed to systemd is loaded and inactive (dead) until its start job runs: with
      // a job queued it is on its way up, not a unit that ended.
      const queued = kv.get('ActiveState') === 'inactive' && /^[1-9]\d*$/.test(kv.get('Job') ?? '');
      out.push({
        id,
        load: kv.get('LoadState') ?? 'not-found',
        active: queued ? 'activating' : (kv.get('ActiveState') ?? 'inactive'),
        sub: queued ? 'waiting' : (kv.get('SubState') ?? 'dead'),
        mainPid: Number(kv.get('MainPID') ?? 0) || 0,
        execMainCode: Number(kv.get('ExecMainCode') ?? 0) || 0,
        execMainStatus: Number(kv.get('ExecMainStatus') ?? 0) || 0,
        execMainExit: timestamp(kv.get('ExecMainExitTimestamp')),
        result: kv.get('Result') ?? '',
        since: timestamp(kv.get('StateChangeTimestamp')),
        description: kv.get('Description') ?? '',
        nRestarts: Number(kv.get('NRestarts') ?? 0) || 0,
      });
    }
  }
  return out;
}

/** `Sun 2026-12-06 18:33:20.123456 UTC` → ISO; empty (never happened) → undefined. */
function timestamp(s: string | undefined): string | undefined {
  const m = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? UTC/.exec(s ?? '');
  if (m === null) return undefined;
  const frac = (m[3] ?? '.0').slice(0, 4).padEnd(4, '0');
  return new Date(`${m[1]}T${m[2]}${frac}Z`).toISOString();
}

/** Whether this host runs systemd as PID 1 with a reachable manager; a RuntimeError saying what is missing. */
export async function checkSystemd(run: CommandRunner = realRun): Promise<void> {
  const r = await run('systemctl', ['is-system-running']).catch((err: unknown) => ({
    code: -1,
    stdout: '',
    stderr: String(err),
  }));
  // Any state (running, degraded, starting…) means the manager answers.
  if (r.stdout.trim() !== '' && r.stdout.trim() !== 'offline') return;
  throw new RuntimeError(
    `the systemd runtime needs systemd as PID 1 and systemctl: ${oneLine(r.stderr || r.stdout || 'systemctl gave no answer')}; use --service-runtime process on this host`,
  );
}

/** A host where systemd is PID 1 (its own test, as sd_booted() does). */
export function systemdIsPid1(): boolean {
  try {
    return (
      statSync('/run/systemd/system').isDirectory() &&
      readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd'
    );
  } catch {
    return false;
  }
}

/** The unit's journal: `<ISO time> <unit>[<pid>]: <text>`, systemd's own lines about it included. */
async function* readSystemdJournal(
  systemdUnit: string,
  unit: string,
  options: JournalOptions,
): AsyncIterable<string> {
  const lines = options.lines ?? 10;
  const follow = options.follow ?? false;
  if (options.signal?.aborted) return;
  if (lines === 0 && !follow) return;
  const args = ['-u', systemdUnit, '-o', 'json', '--no-pager', '-n', String(lines)];
  if (follow) args.push('--follow');
  const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // Both made now: the child may close before the lines are all read.
  const failed = new Promise<Error>((ok) => child.once('error', ok));
  const closed = new Promise<undefined>((ok) => child.once('close', () => ok(undefined)));
  try {
    const rl = createInterface({ input: child.stdout });
    for await (const line of rl) {
      if (options.signal?.aborted) break;
      const formatted = formatJournalLine(line, systemdUnit, unit);
      if (formatted !== undefined) yield formatted;
    }
    const err = await Promise.race([failed, closed]);
    if (err !== undefined)
      throw new RuntimeError(`cannot read the journal of ${unit}: journalctl: ${err.message}`, { unit });
    if (child.exitCode !== null && child.exitCode !== 0 && !options.signal?.aborted && stderr.trim() !== '')
      throw new RuntimeError(`cannot read the journal of ${unit}: ${oneLine(stderr)}`, { unit });
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}

function formatJournalLine(json: string, systemdUnit: string, unit: string): string | undefined {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const us = Number(e['__REALTIME_TIMESTAMP']);
  const time = Number.isFinite(us) ? new Date(us / 1000).toISOString() : '?';
  const raw = e['MESSAGE'];
  let text =
    typeof raw === 'string'
      ? raw
      : Array.isArray(raw)
        ? Buffer.from(raw.filter((b): b is number => typeof b === 'number')).toString('utf8')
        : '';
  text = text.replace(/\n+$/, '');
  // systemd's own lines about the unit start with its name: the unit is in front already.
  if (text.startsWith(`${systemdUnit}: `)) text = text.slice(systemdUnit.length + 2);
  const pid = typeof e['_PID'] === 'string' ? e['_PID'] : '?';
  return `${time} ${unit}[${pid}]: ${text}`;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function realRun(command: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((ok, fail) => {
    execFile(
      command,
      args,
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          fail(
            new RuntimeError(
              `cannot run ${command}: ${err.message}${err.code === 'ENOENT' ? ' (is systemd installed on this host?)' : ''}`,
              { cause: err },
            ),
          );
          return;
        }
        ok({ code: err === null ? 0 : Number(err.code), stdout, stderr });
      },
    );
  });
}

function oneLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).slice(-2).join('; ') || 'no message';
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  // No fsync: transient units do not outlive a reboot either; rename keeps it whole across a crash.
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function iso(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

function sortByUnit(all: ObservedUnit[]): ObservedUnit[] {
  return all.sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));
}
