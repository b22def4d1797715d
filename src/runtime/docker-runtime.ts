// The Docker runtime: runs `[Container]` units as Docker containers through dockerode. Containers
// carry fleetts.* labels (unit, hash, machine, runtime instance, config) so that a new fleetd
// adopts them; Docker's event stream reports changes at once; fleetts, not Docker, restarts them,
// also when Docker's health check (HealthCmd= or the image's HEALTHCHECK) calls one unhealthy.

import Dockerode from 'dockerode';
import type { ContainerInfo, ContainerInspectInfo } from 'dockerode';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { UnitName } from '../cluster/types.js';
import {
  dockerCreateOptions,
  LABEL_CONFIG,
  LABEL_RUNTIME,
  LABEL_UNIT,
  NO_LIMIT_S,
  type ContainerUnitConfig,
  type RuntimeIdentity,
} from './docker-config.js';
import { parseContainerConfigLabel } from './records.js';
import { isoOfDockerTime, LogCursor, LogDemuxer, type LogLine } from './docker-logs.js';
import {
  containerExit,
  describeExit,
  observeContainer,
  diedWithDaemon,
  lastProbe,
  shouldRestart,
  type ObservedContainer,
} from './docker-state.js';
import {
  RuntimeError,
  type ChangeListener,
  type JournalOptions,
  type ObservedUnit,
  type Runtime,
} from './runtime.js';

export interface DockerRuntimeDeps {
  /** The machine id, written on every container as `fleetts.machine`. */
  readonly machine: string;
  /**
   * Which runtime owns a container (`fleetts.runtime`): adoption and events see only this
   * instance's containers, so several fleetd may share one dockerd. Default: the machine id.
   */
  readonly instance?: string;
  /** Default: a client of /var/run/docker.sock (or `socketPath`). */
  readonly docker?: Dockerode;
  readonly socketPath?: string;
  readonly clock?: Clock;
  /** Backstop re-inspection of every unit, besides the event stream; default 5000 ms. */
  readonly resyncMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

interface Tracked {
  config: ContainerUnitConfig;
  containerId?: string;
  /** This runtime stopped (or is stopping) the container: its exit is clean and never restarted. */
  stopRequested: boolean;
  restartTimer?: Timer;
  failure?: { reason: string; since: string };
  /** FinishedAt of the last exit that Restart= was applied to (or that predates our watch). */
  handledExit?: string;
  /** StartedAt of the container run whose `unhealthy` was acted on (once per run). */
  handledUnhealthy?: string;
  /** Monotonic times of automatic restarts, for the start limit. */
  autoStarts: number[];
  /** start/stop in progress: exits are theirs to interpret, not Restart='s. */
  busy: number;
  chain: Promise<unknown>;
  last?: string;
  observed?: ObservedContainer;
  readonly seen: string;
}

interface DockerEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly id?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Readonly<Record<string, string>> };
}

const DOCKER_DOWN_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE']);

export const missingImageReason = (image: string): string =>
  `image ${image} is not present on this host; build it with scripts/build-images.sh (there is no registry to pull from)`;

export class DockerRuntime implements Runtime<ContainerUnitConfig> {
  readonly #docker: Dockerode;
  readonly #socket: string;
  readonly #id: RuntimeIdentity;
  readonly #clock: Clock;
  readonly #resyncMs: number;
  readonly #log: (event: string, fields: Record<string, unknown>) => void;
  readonly #units = new Map<string, Tracked>();
  readonly #listeners = new Set<ChangeListener>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #abort = new AbortController();
  #events: Promise<void> | undefined;
  #timer: Timer | undefined;
  #closed = false;

  constructor(deps: DockerRuntimeDeps) {
    this.#socket = deps.socketPath ?? '/var/run/docker.sock';
    this.#docker = deps.docker ?? new Dockerode({ socketPath: this.#socket });
    this.#id = { machine: deps.machine, instance: deps.instance ?? deps.machine };
    this.#clock = deps.clock ?? systemClock;
    this.#resyncMs = deps.resyncMs ?? 5000;
    this.#log = deps.log ?? (() => undefined);
  }

  async adopt(): Promise<ObservedUnit[]> {
    await this.#watch();
    const all = await this.#call('list containers', undefined, () =>
      this.#docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_RUNTIME}=${this.#id.instance}`] },
      }),
    );
    const byUnit = new Map<string, ContainerInfo[]>();
    for (const c of all) {
      const unit = c.Labels[LABEL_UNIT];
      if (unit !== undefined) byUnit.set(unit, [...(byUnit.get(unit) ?? []), c]);
    }
    const found: ObservedUnit[] = [];
    for (const [unit, containers] of [...byUnit].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      // Two containers of one unit: a replacement was cut short. The newest (running first) wins.
      containers.sort(
        (a, b) => Number(b.State === 'running') - Number(a.State === 'running') || b.Created - a.Created,
      );
      const [keep, ...stale] = containers;
      for (const c of stale) {
        this.#log('runtime.container_stale_removed', { unit, container: c.Id });
        await this.#docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch(() => undefined);
      }
      if (keep === undefined) continue;
      const config = this.#configOf(keep, unit);
      if (config === undefined) continue;
      const info = await this.#inspect(keep.Id, config.unit);
      const t: Tracked = {
        config,
        containerId: keep.Id,
        stopRequested: false,
        autoStarts: [],
        busy: 0,
        chain: Promise.resolve(),
        seen: this.#now(),
        // Exits that happened while no fleetd watched are reported, not restarted: the agent
        // decides from the unit's target state.
        ...(info === undefined ? {} : { handledExit: info.State.FinishedAt }),
      };
      this.#units.set(unit, t);
      const refreshed = await this.#refresh(t);
      const o: ObservedUnit =
        info !== undefined && diedWithDaemon(info) && refreshed.active === 'failed'
          ? {
              ...refreshed,
              reason: `the container was running when this host's Docker daemon went down (exit status 255: power loss, reboot): it did not end by itself`,
              lost: true,
            }
          : refreshed;
      found.push(o);
      this.#log('runtime.unit_adopted', { unit, container: keep.Id, active: o.active, sub: o.sub });
    }
    return found;
  }

  /**
   * The config a container was created from (its fleetts.config label), or undefined when it is
   * missing or unreadable: reported, and the container is left alone (not adopted).
   */
  #configOf(c: ContainerInfo, unit: string): ContainerUnitConfig | undefined {
    const where = `container ${c.Id.slice(0, 12)} (${unit}), label ${LABEL_CONFIG}`;
    const text = c.Labels[LABEL_CONFIG];
    let reason = 'the label is missing';
    if (text !== undefined) {
      const decoded = parseContainerConfigLabel(text, where);
      if (decoded.ok && decoded.value.unit === unit) return decoded.value;
      reason = decoded.ok
        ? `it is the config of ${decoded.value.unit}, not of ${unit}`
        : decoded.problem.reason;
    }
    this.#log('runtime.container_unreadable', { unit, container: c.Id, where, reason });
    return undefined;
  }

  start(config: ContainerUnitConfig): Promise<void> {
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
      if (t.containerId !== undefined) await this.#removeContainer(t.containerId, unit);
      this.#units.delete(unit);
      this.#log('runtime.unit_removed', { unit });
    });
  }

  async list(): Promise<ObservedUnit[]> {
    const all = await Promise.all([...this.#units.values()].map((t) => this.#refresh(t)));
    return all.sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  journal(unit: UnitName, options: JournalOptions = {}): AsyncIterable<string> {
    if (!this.#units.has(unit)) {
      throw new RuntimeError(`unit ${unit} is not known to this host's Docker runtime`, {
        unit,
        code: 'not_found',
      });
    }
    return this.#journal(unit, options.lines ?? 10, options.follow ?? false, options.signal);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#timer?.cancel();
    for (const t of this.#units.values()) t.restartTimer?.cancel();
    this.#listeners.clear();
    return Promise.resolve();
  }

  // ---- start / stop ----

  async #start(config: ContainerUnitConfig): Promise<void> {
    await this.#watch();
    const unit = config.unit;
    let t = this.#units.get(unit);
    if (t === undefined) {
      t = {
        config,
        stopRequested: false,
        autoStarts: [],
        busy: 0,
        chain: Promise.resolve(),
        seen: this.#now(),
      };
      this.#units.set(unit, t);
    }
    const tracked = t;
    tracked.restartTimer?.cancel();
    delete tracked.restartTimer;
    tracked.autoStarts = []; // an explicit start resets the start limit, as `systemctl reset-failed`
    tracked.busy++;
    try {
      if (tracked.containerId === undefined) {
        const found = await this.#findContainer(unit);
        if (found !== undefined) tracked.containerId = found;
      }
      let info =
        tracked.containerId === undefined ? undefined : await this.#inspect(tracked.containerId, unit);
      if (info === undefined) delete tracked.containerId;
      if (info !== undefined && info.Config.Labels?.['fleetts.hash'] === config.hash) {
        tracked.stopRequested = false;
        if (info.State.Running) return;
        delete tracked.failure;
        tracked.config = config;
        tracked.handledExit = info.State.FinishedAt;
        await this.#startContainer(tracked, info.Id);
        return;
      }
      if (info !== undefined) {
        // Another hash: the old container goes, a new one is made from this config.
        this.#log('runtime.container_replacing', { unit, container: info.Id, hash: config.hash });
        tracked.stopRequested = true;
        await this.#stopContainer(tracked, info.Id);
        await this.#removeContainer(info.Id, unit);
        delete tracked.containerId;
        info = undefined;
      }
      tracked.config = config;
      tracked.stopRequested = false;
      delete tracked.failure;
      delete tracked.handledExit;
      if (config.pull === 'always' || config.pull === 'newer') {
        this.#fail(
          tracked,
          `Pull=${config.pull} cannot work: fleetts hosts have no registry to pull ${config.image} from; build the image on each host with scripts/build-images.sh and set Pull=never`,
        );
        return;
      }
      if (!(await this.#imageExists(config.image, unit))) {
        this.#fail(tracked, missingImageReason(config.image));
        return;
      }
      const id = await this.#create(tracked);
      if (id === undefined) return;
      tracked.containerId = id;
      await this.#startContainer(tracked, id);
    } finally {
      tracked.busy--;
      await this.#refresh(tracked).catch(() => undefined);
    }
  }

  async #create(t: Tracked): Promise<string | undefined> {
    const { unit, name } = t.config;
    const options = dockerCreateOptions(t.config, this.#id);
    for (let attempt = 0; ; attempt++) {
      try {
        const c = await this.#docker.createContainer(options);
        this.#log('runtime.container_created', { unit, container: c.id, name });
        return c.id;
      } catch (err) {
        this.#throwIfDown(err, unit);
        if (statusOf(err) === 409 && attempt === 0) {
          // The name is taken. Ours (a leftover of this runtime): remove it and retry.
          const other = await this.#inspect(name, unit);
          const labels = other?.Config.Labels ?? {};
          if (
            other !== undefined &&
            labels[LABEL_RUNTIME] === this.#id.instance &&
            labels[LABEL_UNIT] === unit
          ) {
            await this.#removeContainer(other.Id, unit);
            continue;
          }
          this.#fail(
            t,
            `the container name ${name} is in use by container ${other?.Id.slice(0, 12) ?? '?'}, which this fleetd does not manage; remove it (docker rm -f ${name}) or set another ContainerName=`,
          );
          return undefined;
        }
        this.#fail(t, `cannot create container ${name} from ${t.config.image}: ${messageOf(err)}`);
        return undefined;
      }
    }
  }

  async #startContainer(t: Tracked, id: string): Promise<void> {
    try {
      await this.#docker.getContainer(id).start();
      this.#log('runtime.container_started', { unit: t.config.unit, container: id });
    } catch (err) {
      this.#throwIfDown(err, t.config.unit);
      if (statusOf(err) === 304) return; // already running
      this.#fail(t, `cannot start container ${t.config.name}: ${messageOf(err)}`);
    }
  }

  async #stop(unit: string): Promise<void> {
    const t = this.#units.get(unit);
    if (t === undefined) return;
    t.restartTimer?.cancel();
    delete t.restartTimer;
    t.stopRequested = true;
    delete t.failure;
    t.busy++;
    try {
      if (t.containerId !== undefined) {
        await this.#refresh(t); // deactivating, at once
        await this.#stopContainer(t, t.containerId);
      }
    } finally {
      t.busy--;
      await this.#refresh(t).catch(() => undefined);
    }
  }

  async #stopContainer(t: Tracked, id: string): Promise<void> {
    const ms = t.config.stopTimeoutMs;
    const seconds = ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : NO_LIMIT_S;
    try {
      await this.#docker.getContainer(id).stop({ t: seconds });
      this.#log('runtime.container_stopped', { unit: t.config.unit, container: id });
    } catch (err) {
      this.#throwIfDown(err, t.config.unit);
      const status = statusOf(err);
      if (status !== 304 && status !== 404) {
        throw new RuntimeError(
          `cannot stop container ${t.config.name} of ${t.config.unit}: ${messageOf(err)}`,
          {
            unit: t.config.unit,
            cause: err,
          },
        );
      }
    }
  }

  async #removeContainer(id: string, unit: string): Promise<void> {
    try {
      await this.#docker.getContainer(id).remove({ force: true, v: true });
      this.#log('runtime.container_removed', { unit, container: id });
    } catch (err) {
      this.#throwIfDown(err, unit);
      if (statusOf(err) !== 404) {
        throw new RuntimeError(`cannot remove container ${id.slice(0, 12)} of ${unit}: ${messageOf(err)}`, {
          unit,
          cause: err,
        });
      }
    }
  }

  #fail(t: Tracked, reason: string): void {
    t.failure = { reason, since: this.#now() };
    this.#log('runtime.unit_failed', { unit: t.config.unit, reason });
  }

  // ---- observation ----

  /** Re-inspects the unit (in order with other refreshes of it) and tells listeners of a change. */
  #refresh(t: Tracked): Promise<ObservedContainer> {
    const next = t.chain.then(
      () => this.#doRefresh(t),
      () => this.#doRefresh(t),
    );
    t.chain = next.catch(() => undefined);
    return next;
  }

  async #doRefresh(t: Tracked): Promise<ObservedContainer> {
    const unit = t.config.unit;
    let info: ContainerInspectInfo | undefined;
    if (t.containerId !== undefined) {
      info = await this.#inspect(t.containerId, unit);
      if (info === undefined) {
        this.#log('runtime.container_vanished', { unit, container: t.containerId });
        if (!t.stopRequested) this.#fail(t, `container ${t.config.name} was removed outside fleetts`);
        delete t.containerId;
      }
    }
    this.#applyRestartPolicy(t, info);
    this.#onUnhealthy(t, info);
    const o = observeContainer(
      t.config,
      info,
      {
        stopRequested: t.stopRequested,
        restartPending: t.restartTimer !== undefined,
        starting: t.busy > 0,
        ...failureOf(t),
      },
      t.seen,
    );
    t.observed = o;
    const key = JSON.stringify(o);
    if (key !== t.last && this.#units.get(unit) === t && !this.#closed) {
      t.last = key;
      for (const l of this.#listeners) {
        try {
          l(o);
        } catch (err) {
          this.#log('runtime.listener_failed', { unit, err: String(err) });
        }
      }
    }
    return o;
  }

  /** Restart=: on a new exit not caused by us, schedule a restart after RestartSec= (start limit permitting). */
  #applyRestartPolicy(t: Tracked, info: ContainerInspectInfo | undefined): void {
    if (info === undefined || t.busy > 0 || t.stopRequested || t.restartTimer !== undefined || this.#closed)
      return;
    const exit = containerExit(info);
    if (exit === undefined || info.State.FinishedAt === t.handledExit) return;
    t.handledExit = info.State.FinishedAt;
    const { unit, restart, restartSecMs, startLimitBurst, startLimitIntervalMs } = t.config;
    this.#log('runtime.container_exited', { unit, container: info.Id, code: exit.code, signal: exit.signal });
    if (!shouldRestart(restart, exit)) return;
    const now = this.#clock.monotonic();
    t.autoStarts = t.autoStarts.filter((at) => now - at < startLimitIntervalMs);
    if (startLimitIntervalMs > 0 && startLimitBurst > 0 && t.autoStarts.length >= startLimitBurst) {
      this.#fail(
        t,
        `start-limit-hit: restarted ${startLimitBurst} times within ${startLimitIntervalMs / 1000}s (StartLimitBurst=, StartLimitIntervalSec=); the last exit: ${describeExit(exit)}`,
      );
      return;
    }
    const id = info.Id;
    t.restartTimer = this.#clock.setTimer(restartSecMs, () => {
      void this.#serial(unit, () => this.#autoRestart(t, id)).catch((err: unknown) =>
        this.#log('runtime.restart_failed', { unit, err: String(err) }),
      );
    });
  }

  /**
   * Docker called the running container unhealthy (its HealthCmd= or its image's HEALTHCHECK failed
   * Retries times in a row): stop it the usual way, then Restart= decides, as for a process unit
   * whose [X-Health] check fails (docs/health.md): on-failure, on-abnormal and always restart it
   * (within the start limit); no, on-success and on-abort leave it failed with the reason.
   */
  #onUnhealthy(t: Tracked, info: ContainerInspectInfo | undefined): void {
    if (info === undefined || info.State.Health?.Status !== 'unhealthy' || !info.State.Running) return;
    if (t.busy > 0 || t.stopRequested || t.restartTimer !== undefined || this.#closed) return;
    if (t.handledUnhealthy === info.State.StartedAt) return;
    t.handledUnhealthy = info.State.StartedAt;
    const unit = t.config.unit;
    const reason = `unhealthy: ${lastProbe(info)}`;
    this.#log('runtime.container_unhealthy', { unit, container: info.Id, reason });
    void this.#serial(unit, () => this.#stopUnhealthy(t, info.Id, reason)).catch((err: unknown) =>
      this.#log('runtime.restart_failed', { unit, err: String(err) }),
    );
  }

  async #stopUnhealthy(t: Tracked, id: string, reason: string): Promise<void> {
    if (this.#closed || this.#units.get(t.config.unit) !== t || t.stopRequested || t.containerId !== id)
      return;
    const { unit, restart, restartSecMs, startLimitBurst, startLimitIntervalMs } = t.config;
    t.busy++;
    try {
      await this.#stopContainer(t, id);
      // This exit is the health check's doing: Restart= is applied here, not to the exit's status.
      const finished = (await this.#inspect(id, unit))?.State.FinishedAt;
      if (finished !== undefined) t.handledExit = finished;
      if (restart === 'no' || restart === 'on-success' || restart === 'on-abort') {
        this.#fail(t, reason);
        return;
      }
      const now = this.#clock.monotonic();
      t.autoStarts = t.autoStarts.filter((at) => now - at < startLimitIntervalMs);
      if (startLimitIntervalMs > 0 && startLimitBurst > 0 && t.autoStarts.length >= startLimitBurst) {
        this.#fail(
          t,
          `start-limit-hit: restarted ${startLimitBurst} times within ${startLimitIntervalMs / 1000}s (StartLimitBurst=, StartLimitIntervalSec=); the last stop: ${reason}`,
        );
        return;
      }
      t.restartTimer = this.#clock.setTimer(restartSecMs, () => {
        void this.#serial(unit, () => this.#autoRestart(t, id)).catch((err: unknown) =>
          this.#log('runtime.restart_failed', { unit, err: String(err) }),
        );
      });
    } finally {
      t.busy--;
      await this.#refresh(t).catch(() => undefined);
    }
  }

  async #autoRestart(t: Tracked, id: string): Promise<void> {
    if (t.restartTimer === undefined) return; // cancelled by a stop or start meanwhile
    delete t.restartTimer;
    if (this.#closed || this.#units.get(t.config.unit) !== t || t.stopRequested || t.containerId !== id)
      return;
    t.autoStarts.push(this.#clock.monotonic());
    this.#log('runtime.container_restarting', { unit: t.config.unit, container: id });
    t.busy++;
    try {
      await this.#startContainer(t, id);
    } finally {
      t.busy--;
      await this.#refresh(t).catch(() => undefined);
    }
  }

  // ---- events ----

  /** Starts the event stream and the resync timer once; resolves when the stream is connected. */
  #watch(): Promise<void> {
    if (this.#events === undefined) {
      this.#events = new Promise<void>((ready) => void this.#eventLoop(ready));
      this.#arm();
    }
    return this.#events;
  }

  async #eventLoop(ready: () => void): Promise<void> {
    let connectedBefore = false;
    while (!this.#closed) {
      try {
        const stream = await this.#docker.getEvents({
          filters: { type: ['container'], label: [`${LABEL_RUNTIME}=${this.#id.instance}`] },
          abortSignal: this.#abort.signal,
        });
        ready();
        if (connectedBefore) this.#resync(); // events missed while disconnected
        connectedBefore = true;
        let buf = '';
        for await (const chunk of stream as AsyncIterable<Buffer | string>) {
          buf += chunk.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line !== '') this.#onEvent(line);
          }
        }
      } catch (err) {
        if (this.#closed) break;
        this.#log('runtime.docker_events_lost', { err: messageOf(err) });
      }
      ready(); // a start() waiting for the stream fails on its own Docker call instead
      if (!this.#closed) await this.#clock.sleep(500, this.#abort.signal).catch(() => undefined);
    }
  }

  #onEvent(line: string): void {
    let ev: DockerEvent;
    try {
      ev = JSON.parse(line) as DockerEvent;
    } catch {
      return;
    }
    const action = ev.Action ?? '';
    if (ev.Type !== 'container' || action.startsWith('exec_')) return;
    const unit = ev.Actor?.Attributes?.[LABEL_UNIT];
    const t = unit === undefined ? undefined : this.#units.get(unit);
    const id = ev.Actor?.ID ?? ev.id;
    if (t === undefined || (t.containerId !== undefined && t.containerId !== id)) return;
    this.#refresh(t).catch((err: unknown) => this.#log('runtime.refresh_failed', { unit, err: String(err) }));
  }

  #resync(): void {
    for (const t of this.#units.values()) {
      this.#refresh(t).catch((err: unknown) =>
        this.#log('runtime.refresh_failed', { unit: t.config.unit, err: String(err) }),
      );
    }
  }

  #arm(): void {
    this.#timer = this.#clock.setTimer(this.#resyncMs, () => {
      if (this.#closed) return;
      this.#resync();
      this.#arm();
    });
  }

  // ---- journal ----

  async *#journal(
    unit: string,
    lines: number,
    follow: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<string> {
    const cursor = new LogCursor();
    let first = true;
    // A function, so that TypeScript does not narrow `aborted` across the awaits.
    const aborted = (): boolean => signal?.aborted === true;
    while (!aborted()) {
      const id = this.#units.get(unit)?.containerId;
      if (id !== undefined && !(first && !follow && lines === 0)) {
        const since = cursor.since;
        const window = first ? { tail: lines } : since === undefined ? {} : { since };
        cursor.nextWindow();
        const demux = new LogDemuxer();
        const emit = function* (batch: LogLine[]): Generator<string> {
          for (const l of batch) {
            if (!cursor.accept(l.time)) continue;
            yield `${isoOfDockerTime(l.time)} ${unit}[${id.slice(0, 12)}]: ${l.text}`;
          }
        };
        const container = this.#docker.getContainer(id);
        try {
          if (!follow) {
            const buf = await container.logs({
              stdout: true,
              stderr: true,
              timestamps: true,
              follow: false,
              ...window,
            });
            yield* emit(demux.push(Buffer.isBuffer(buf) ? buf : Buffer.from(buf)));
            yield* emit(demux.flush());
            return;
          }
          const stream = await container.logs({
            stdout: true,
            stderr: true,
            timestamps: true,
            follow: true,
            ...window,
            ...(signal === undefined ? {} : { abortSignal: signal }),
          });
          for await (const chunk of stream as AsyncIterable<Buffer>) yield* emit(demux.push(chunk));
          yield* emit(demux.flush());
        } catch (err) {
          if (aborted()) return;
          this.#throwIfDown(err, unit);
          if (statusOf(err) !== 404)
            throw new RuntimeError(`cannot read the logs of ${unit}: ${messageOf(err)}`, {
              unit,
              cause: err,
            });
        }
      }
      first = false;
      if (!follow) return;
      // The container stopped (its stream ended) or was replaced: look again shortly.
      try {
        await this.#clock.sleep(500, signal);
      } catch {
        return;
      }
    }
  }

  // ---- Docker calls ----

  async #findContainer(unit: string): Promise<string | undefined> {
    const found = await this.#call('list containers', unit, () =>
      this.#docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_RUNTIME}=${this.#id.instance}`, `${LABEL_UNIT}=${unit}`] },
      }),
    );
    return found.sort((a, b) => b.Created - a.Created)[0]?.Id;
  }

  async #inspect(idOrName: string, unit: string): Promise<ContainerInspectInfo | undefined> {
    try {
      return await this.#docker.getContainer(idOrName).inspect();
    } catch (err) {
      this.#throwIfDown(err, unit);
      if (statusOf(err) === 404) return undefined;
      throw new RuntimeError(`cannot inspect container ${idOrName} of ${unit}: ${messageOf(err)}`, {
        unit,
        cause: err,
      });
    }
  }

  async #imageExists(image: string, unit: string): Promise<boolean> {
    try {
      await this.#docker.getImage(image).inspect();
      return true;
    } catch (err) {
      this.#throwIfDown(err, unit);
      if (statusOf(err) === 404) return false;
      throw new RuntimeError(`cannot inspect image ${image} for ${unit}: ${messageOf(err)}`, {
        unit,
        cause: err,
      });
    }
  }

  async #call<T>(what: string, unit: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.#throwIfDown(err, unit);
      throw new RuntimeError(`Docker: cannot ${what}: ${messageOf(err)}`, {
        ...(unit === undefined ? {} : { unit }),
        cause: err,
      });
    }
  }

  /** Docker unreachable is the runtime's failure, not the unit's: RuntimeError, recoverable. */
  #throwIfDown(err: unknown, unit: string | undefined): void {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && DOCKER_DOWN_CODES.has(code)) {
      throw new RuntimeError(
        `cannot reach the Docker daemon at ${this.#socket} (${code})${unit === undefined ? '' : ` for ${unit}`}; start it with scripts/ensure-docker.sh`,
        {
          code: 'docker_unavailable',
          recoverable: true,
          cause: err,
          ...(unit === undefined ? {} : { unit }),
        },
      );
    }
  }

  #now(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  /** Runs operations on one unit one after another (start during stop waits for the stop). */
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

function failureOf(t: Tracked): { failure?: { reason: string; since: string } } {
  return t.failure === undefined ? {} : { failure: t.failure };
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Docker's own message ("No such image: …") rather than dockerode's "(HTTP code 404) …" prefix. */
function messageOf(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (json !== undefined && typeof json?.message === 'string') return json.message.trim();
  return err instanceof Error ? err.message : String(err);
}
