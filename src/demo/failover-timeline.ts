// Records what the cluster does after a fault, as a person would want to read it: hosts leaving
// and joining (machine keys), units placed and active (assignments, statuses), backends announced
// and withdrawn (services/), each host's upstream file rewritten and its nginx reloaded (the files
// under each host's /run/fleetts/<machine>/lb/, which this machine sees). Watches wake a level-triggered pass that diffs full snapshots.
import { readFile, stat } from 'node:fs/promises';
import type { Clock, Timer } from '../lib/clock.js';
import type {
  ClusterSnapshot,
  ClusterWatcher,
  ServiceInstance,
  ServiceReader,
  SnapshotReader,
  Subscription,
} from '../registry/registry.js';
import { Wakeup } from '../lib/wakeup.js';

export type TimelineEvent =
  | { readonly kind: 'power-off'; readonly host: string; readonly units: readonly string[] }
  | { readonly kind: 'power-on'; readonly host: string }
  | { readonly kind: 'machine-dead'; readonly host: string }
  | { readonly kind: 'machine-joined'; readonly host: string }
  | { readonly kind: 'placed'; readonly unit: string; readonly host: string; readonly from?: string }
  | { readonly kind: 'active'; readonly unit: string; readonly host: string }
  | {
      readonly kind: 'announced';
      readonly service: string;
      readonly instance: string;
      readonly address: string;
    }
  | {
      readonly kind: 'withdrawn';
      readonly service: string;
      readonly instance: string;
      readonly address: string;
    }
  | {
      readonly kind: 'upstream-written';
      /** Whose upstream file (every host's balancer has its own). */
      readonly host: string;
      readonly servers: readonly string[];
      readonly added: readonly string[];
      readonly removed: readonly string[];
    }
  | { readonly kind: 'nginx-reloaded'; readonly host: string }
  /** nginx started on a host: it read the upstream file as it started (no reload needed). */
  | { readonly kind: 'nginx-started'; readonly host: string }
  /** The balancer's floating address seen up on a host (`ip addr` of the host's namespace). */
  | { readonly kind: 'address-up'; readonly host: string; readonly address: string }
  | { readonly kind: 'address-down'; readonly host: string; readonly address: string }
  | { readonly kind: 'note'; readonly text: string };

export interface TimedEvent {
  /** Wall-clock ms. */
  readonly at: number;
  readonly event: TimelineEvent;
}

export interface TimelineHost {
  readonly name: string;
  readonly machineId: string;
  readonly ip: string;
}

export interface FailoverTimelineDeps {
  readonly registry: SnapshotReader & ClusterWatcher & ServiceReader;
  readonly clock: Clock;
  readonly hosts: readonly TimelineHost[];
  /** A machine's rendered upstream file (servers are read from it). */
  readonly upstreamFile: (machineId: string) => string;
  /** nginx's error log on a machine (where reloads are logged). */
  readonly nginxErrorLog: (machineId: string) => string;
  readonly services?: readonly string[];
  /** How often the files are polled (default 50 ms). */
  readonly pollMs?: number;
}

interface View {
  readonly machines: ReadonlySet<string>;
  /** unit → its machines (several for a Global=true unit) */
  readonly assigned: ReadonlyMap<string, readonly string[]>;
  /** `unit machine` of active statuses */
  readonly active: ReadonlySet<string>;
}

/** How often `until` re-runs a check between events. */
const RECHECK_MS = 250;

const EMPTY_VIEW: View = { machines: new Set(), assigned: new Map(), active: new Set() };

export class FailoverTimeline {
  readonly #d: FailoverTimelineDeps;
  readonly #events: TimedEvent[] = [];
  readonly #wake: Wakeup;
  readonly #stop = new AbortController();
  readonly #subs: Subscription[] = [];
  readonly #instances = new Map<string, Map<string, ServiceInstance>>();
  readonly #logOffsets = new Map<string, number>();
  readonly #listeners = new Set<() => void>();
  #view: View = EMPTY_VIEW;
  #wokeAt: number | undefined;
  /** machine → the servers of its upstream file as last read */
  readonly #servers = new Map<string, string[]>();
  #poll: Timer | undefined;
  #loop: Promise<void> | undefined;

  constructor(deps: FailoverTimelineDeps) {
    this.#d = deps;
    this.#wake = new Wakeup(deps.clock);
  }

  get events(): readonly TimedEvent[] {
    return this.#events;
  }

  /**
   * The current view: unit → host name of its assignment (for a unit on several hosts, Global=true,
   * the first by name: see hostsOf).
   */
  placement(): Map<string, string> {
    return new Map(
      [...this.#view.assigned].flatMap(([u, ms]) => {
        const first = ms.map((m) => this.hostName(m)).sort()[0];
        return first === undefined ? [] : [[u, first] as const];
      }),
    );
  }

  /** Every host (by name) a unit is assigned to, sorted. */
  hostsOf(unit: string): string[] {
    return (this.#view.assigned.get(unit) ?? []).map((m) => this.hostName(m)).sort();
  }

  /** Units assigned to a host (by name). */
  unitsOn(host: string): string[] {
    return [...this.#view.assigned]
      .filter(([, ms]) => ms.some((m) => this.hostName(m) === host))
      .map(([u]) => u)
      .sort();
  }

  /** Assigned, and active on every host it is assigned to. */
  isActive(unit: string): boolean {
    const ms = this.#view.assigned.get(unit) ?? [];
    return ms.length > 0 && ms.every((m) => this.#view.active.has(`${unit} ${m}`));
  }

  /** Whether a unit is active on a host (by name). */
  isActiveOn(unit: string, host: string): boolean {
    return (this.#view.assigned.get(unit) ?? []).some(
      (m) => this.hostName(m) === host && this.#view.active.has(`${unit} ${m}`),
    );
  }

  /** Each live host's upstream servers as last read (host name → servers, sorted). */
  upstreams(): Map<string, readonly string[]> {
    return new Map(
      [...this.#servers]
        .filter(([m]) => this.#view.machines.has(m))
        .map(([m, servers]) => [this.hostName(m), [...servers].sort()]),
    );
  }

  /** The servers of the live hosts' upstream files as last read: every server any of them lists. */
  get servers(): readonly string[] {
    return [...new Set([...this.upstreams().values()].flat())].sort();
  }

  /** The live instances of a service: instance → address. */
  instances(service: string): Map<string, string> {
    return new Map(
      [...(this.#instances.get(service) ?? new Map<string, ServiceInstance>())].map(([k, v]) => [
        k,
        v.address,
      ]),
    );
  }

  hostName(machineId: string): string {
    return this.#d.hosts.find((h) => h.machineId === machineId)?.name ?? machineId.slice(0, 8);
  }

  hostOfAddress(address: string): string {
    const ip = address.slice(0, address.lastIndexOf(':'));
    return this.#d.hosts.find((h) => h.ip === ip)?.name ?? ip;
  }

  /** Adds an event the recorder cannot see (power-off, power-on, a note). */
  mark(event: TimelineEvent, at: number = this.#d.clock.now()): TimedEvent {
    const e = { at, event };
    this.#events.push(e);
    this.#notify();
    return e;
  }

  async start(): Promise<void> {
    const { registry, clock } = this.#d;
    const snap = await registry.snapshot({ unitFiles: 'none' });
    this.#view = viewOf(snap);
    for (const service of this.#d.services ?? ['web', 'lb']) {
      this.#subs.push(
        await registry.watchServiceInstances(service, (set) => this.#onInstances(service, set.items)),
      );
    }
    this.#subs.push(
      registry.watchCluster(['machines', 'assignments', 'statuses'], snap.revision, () => {
        this.#wokeAt ??= clock.now();
        this.#wake.trigger();
      }),
    );
    for (const h of this.#d.hosts) {
      const servers = await this.#readServers(h.machineId);
      if (servers !== undefined) this.#servers.set(h.machineId, servers);
    }
    for (const h of this.#d.hosts)
      this.#logOffsets.set(h.machineId, await fileSize(this.#d.nginxErrorLog(h.machineId)));
    this.#loop = this.#run();
    this.#schedulePoll();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#poll?.cancel();
    for (const s of this.#subs) s.close();
    await this.#loop;
  }

  /**
   * Resolves with the first value `check` returns other than undefined; rejects after `timeoutMs`.
   * `check` may say what it still waits for through `pending(reason)`: a timeout names the last
   * reason, so a failure says which condition never held.
   */
  until<T>(
    what: string,
    check: (pending: (reason: string) => undefined) => T | undefined,
    timeoutMs: number,
  ): Promise<T> {
    let reason: string | undefined;
    const pending = (r: string): undefined => {
      reason = r;
      return undefined;
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      let recheck: Timer | undefined;
      // Events re-run the check at once; a check that also reads what the timeline is not told of
      // (a client's answers) is re-run every RECHECK_MS as well, so it cannot wait for an event
      // that never comes.
      const scheduleRecheck = (): void => {
        recheck = this.#d.clock.setTimer(RECHECK_MS, () => {
          if (!settled && !test()) scheduleRecheck();
        });
      };
      const test = (): boolean => {
        if (settled) return true;
        const v = check(pending);
        if (v === undefined) return false;
        settled = true;
        this.#listeners.delete(test);
        timer.cancel();
        recheck?.cancel();
        resolve(v);
        return true;
      };
      const timer = this.#d.clock.setTimer(timeoutMs, () => {
        settled = true;
        recheck?.cancel();
        this.#listeners.delete(test);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}` +
              (reason === undefined ? '' : ` (still waiting: ${reason})`),
          ),
        );
      });
      this.#listeners.add(test);
      if (!test()) scheduleRecheck();
    });
  }

  /**
   * Whether nginx on `host` has read its configuration at or after `since` (wall ms): reloaded,
   * or started (a balancer that moved starts with the upstream already written).
   */
  loadedSince(host: string | undefined, since: number): TimedEvent | undefined {
    return this.events.find(
      (e) =>
        e.at >= since &&
        (e.event.kind === 'nginx-reloaded' || e.event.kind === 'nginx-started') &&
        e.event.host === host,
    );
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const cause = await this.#wake.wait(30_000, signal);
      if (cause === 'aborted') break;
      const at = this.#wokeAt ?? this.#d.clock.now();
      this.#wokeAt = undefined;
      try {
        const next = viewOf(await this.#d.registry.snapshot({ unitFiles: 'none' }));
        this.#diff(this.#view, next, at);
        this.#view = next;
        this.#notify();
      } catch {
        // etcd briefly unavailable: the next wake (or the resync) reads again.
      }
    }
  }

  #diff(prev: View, next: View, at: number): void {
    for (const m of prev.machines)
      if (!next.machines.has(m)) this.mark({ kind: 'machine-dead', host: this.hostName(m) }, at);
    for (const m of next.machines)
      if (!prev.machines.has(m)) this.mark({ kind: 'machine-joined', host: this.hostName(m) }, at);
    for (const [unit, ms] of next.assigned) {
      const before = prev.assigned.get(unit) ?? [];
      const added = ms.filter((m) => !before.includes(m));
      // A move: one machine before, another one now (not a Global unit joining a host).
      const from = before.length === 1 && ms.length === 1 ? before[0] : undefined;
      for (const m of added)
        this.mark(
          {
            kind: 'placed',
            unit,
            host: this.hostName(m),
            ...(from === undefined ? {} : { from: this.hostName(from) }),
          },
          at,
        );
    }
    for (const key of next.active) {
      if (prev.active.has(key)) continue;
      const [unit = '', m = ''] = key.split(' ');
      this.mark({ kind: 'active', unit, host: this.hostName(m) }, at);
    }
  }

  #onInstances(service: string, items: readonly ServiceInstance[]): void {
    const at = this.#d.clock.now();
    const prev = this.#instances.get(service);
    const next = new Map(items.map((i) => [i.instance, i]));
    this.#instances.set(service, next);
    if (prev === undefined) return; // the first listing is the baseline
    for (const [name, i] of next) {
      const before = prev.get(name);
      if (before?.address !== i.address || before.since !== i.since)
        this.mark({ kind: 'announced', service, instance: name, address: i.address }, at);
    }
    for (const [name, i] of prev)
      if (!next.has(name)) this.mark({ kind: 'withdrawn', service, instance: name, address: i.address }, at);
  }

  #schedulePoll(): void {
    if (this.#stop.signal.aborted) return;
    this.#poll = this.#d.clock.setTimer(this.#d.pollMs ?? 50, () => {
      void this.#pollFiles().finally(() => this.#schedulePoll());
    });
  }

  async #pollFiles(): Promise<void> {
    const at = this.#d.clock.now();
    // Each host's log before its upstream file: a write and the reload after it that happen between
    // the two reads are then seen as the write now and the reload at the next pass, never as a
    // reload before the write it loaded.
    const loads = new Map<string, ('started' | 'reloaded')[]>();
    for (const h of this.#d.hosts) {
      const file = this.#d.nginxErrorLog(h.machineId);
      const size = await fileSize(file);
      const offset = this.#logOffsets.get(h.machineId) ?? 0;
      if (size === offset) continue;
      this.#logOffsets.set(h.machineId, size);
      if (size < offset) continue;
      const text = await readFile(file, 'utf8').then(
        (t) => t.slice(offset),
        () => '',
      );
      loads.set(h.machineId, nginxLoads(text));
    }
    for (const h of this.#d.hosts) {
      const servers = await this.#readServers(h.machineId);
      const prev = this.#servers.get(h.machineId) ?? [];
      if (servers === undefined || servers.join(' ') === prev.join(' ')) continue;
      this.#servers.set(h.machineId, servers);
      this.mark(
        {
          kind: 'upstream-written',
          host: h.name,
          servers,
          added: servers.filter((s) => !prev.includes(s)),
          removed: prev.filter((s) => !servers.includes(s)),
        },
        at,
      );
    }
    for (const h of this.#d.hosts)
      for (const load of loads.get(h.machineId) ?? [])
        this.mark({ kind: load === 'reloaded' ? 'nginx-reloaded' : 'nginx-started', host: h.name }, at);
  }

  /** The `server ADDR` lines of the upstream block, backups left out; undefined when unreadable. */
  async #readServers(machineId: string): Promise<string[] | undefined> {
    try {
      return parseUpstreamServers(await readFile(this.#d.upstreamFile(machineId), 'utf8'));
    } catch {
      return undefined;
    }
  }
}

/**
 * Pure: when nginx read its configuration, in the order of its error log (level notice): started
 * (nginx logs its version only as it starts) or reloaded (SIGHUP).
 */
export function nginxLoads(errorLog: string): ('started' | 'reloaded')[] {
  return [...errorLog.matchAll(/signal 1 \(SIGHUP\) received|: nginx\/\d[\d.]*$/gm)].map((m) =>
    m[0].startsWith('signal') ? 'reloaded' : 'started',
  );
}

/**
 * Pure: the backends of an upstream file: its `server ADDR` lines, without backups and without the
 * local fallback (a loopback or unix address, which answers 503 when no backend is live).
 */
export function parseUpstreamServers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^[ \t]*server[ \t]+([^\s;{]+)([^;{\n]*);/gm)) {
    const [, address = '', params = ''] = m;
    if (/\bbackup\b/.test(params) || address.startsWith('127.') || address.startsWith('unix:')) continue;
    out.push(address);
  }
  return out;
}

function viewOf(snap: ClusterSnapshot): View {
  const assigned = new Map<string, string[]>();
  for (const a of snap.assignments) {
    const ms = assigned.get(String(a.unit)) ?? [];
    ms.push(String(a.machine));
    assigned.set(String(a.unit), ms);
  }
  return {
    machines: new Set([...snap.machines.keys()].map(String)),
    assigned,
    active: new Set(
      snap.statuses.filter((s) => s.active === 'active').map((s) => `${String(s.unit)} ${String(s.machine)}`),
    ),
  };
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
