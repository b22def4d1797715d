// The web-farm demo as reusable steps (bring up, deploy the farm, wait for backends, probe, power a
// host off and measure the failover, power it on, tear down), so that `npm run demo`, the e2e tests
// and the failover benchmark drive one implementation. It composes the dev cluster (src/dev), the
// shipped [Service] units (examples/process) and the real CLI; it needs root (namespaces).
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../lib/clock.js';
import { DevCluster, DEFAULT_DEV_STATE_DIR } from '../dev/dev-cluster.js';
import type { ClusterPlan, EtcdTopology, HostPlan } from '../dev/plan.js';
import { runCommand } from '../dev/system.js';
import { createEtcdRegistry, type EtcdRegistry } from '../registry/etcd-registry.js';
import { DemoError } from './demo-error.js';
import { FailoverTimeline, type TimedEvent } from './failover-timeline.js';
import {
  farmPaths,
  farmSharedFiles,
  FLOATING_UNIT,
  floatingAddressEnv,
  GLOBAL_UNITS,
  LB_PORT,
  LB_UNITS,
  lbPrefix,
  lbUpstreamFile,
  machineRunDir,
  unitTextFor,
  WEB_TEMPLATES,
  webPort,
  type FarmPaths,
} from './farm-files.js';
import { countRecords, get, SteadyClient, type ClientCounts } from './steady-client.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the demo puts a `fleetts` the units' ExecStart=/usr/bin/env fleetts can find. */
export const WRAPPER_PATH = '/usr/local/bin/fleetts';
const WRAPPER_MARK = '# fleetts-demo wrapper';
/** The demo client's patience per request (the issue's "client with a 10 s connect timeout"). */
const CLIENT_TIMEOUT_MS = 10_000;

export interface WebFarmDemoDeps {
  readonly clock: Clock;
  /** Progress lines of slow steps (the dev cluster's, waits). */
  readonly progress: (line: string) => void;
  readonly stateDir?: string;
  /** Where `dev up` writes the CLI context (default: the user's). */
  readonly contextFile?: string;
  /** The services whose announcements the timeline follows (default: web and lb). */
  readonly services?: readonly string[];
}

export interface UpOptions {
  readonly nodes?: number;
  readonly leaseTtlMs?: number;
  readonly sharedPath?: string;
  /** Where etcd runs (default: the dev cluster's, a member in each host). */
  readonly etcd?: EtcdTopology;
}

export interface CommandOutput {
  readonly command: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** One unit that was on the powered-off host and where it went. */
export interface MovedUnit {
  readonly unit: string;
  readonly to: string;
  /** ms after the power-off. */
  readonly placedMs: number;
  readonly activeMs: number;
  /** When its service key was written anew (web@N, lb); undefined for sidekicks. */
  readonly announcedMs?: number;
}

export interface FailoverResult {
  readonly host: string;
  /** Wall-clock ms of the power-off. */
  readonly t0: number;
  /**
   * ms after t0 when `dev power-off` was done: every process of the host killed and its floating
   * address dropped (a real power cut is instant; here it takes this long).
   */
  readonly offMs: number;
  /** Wall-clock ms when the farm was whole again (upstream updated, client answered). */
  readonly end: number;
  readonly unitsOnHost: readonly string[];
  /**
   * The host held the floating address, so the clients' balancer changed (every host runs a
   * balancer, Global=true: the address moves to another one).
   */
  readonly lbMoved: boolean;
  readonly deadMs: number;
  readonly moved: readonly MovedUnit[];
  /**
   * Every live balancer's upstream file no longer lists a backend of the dead host (NaN when none
   * was listed).
   */
  readonly deadOutMs: number;
  /** Every live balancer's upstream file lists exactly the live backends again (the last of them). */
  readonly upstreamMs: number;
  /** Every live balancer's nginx reloaded with that file (the last of them). */
  readonly reloadedMs: number;
  /**
   * Failed requests that were in flight at the power-off or sent while `dev power-off` was killing
   * the host (before offMs): the ones a power cut may take with it.
   */
  readonly inFlightFailed: number;
  /** Failed requests sent after the power-off was done (offMs): the target is 0. */
  readonly failedAfterOff: number;
  /** The floating address up on another host (undefined when the host did not hold it). */
  readonly addressUpMs?: number;
  /** That host. */
  readonly addressTo?: string;
  /** The timeline from the power-off to the end (plus the settle time). */
  readonly events: readonly TimedEvent[];
  /** The steady client from the power-off to the end of the settle time. */
  readonly client: ClientCounts;
  /** Failed or unsent requests: first and last, ms after the power-off (undefined when none). */
  readonly outage?: { readonly fromMs: number; readonly toMs: number };
}

export interface PowerOnResult {
  readonly host: string;
  readonly bootMs: number;
  /** Units whose host changed while the host came back and afterwards (should be none; balancers aside). */
  readonly movedBack: readonly { readonly unit: string; readonly from: string; readonly to: string }[];
  readonly unitsOnHost: readonly string[];
  readonly client: ClientCounts;
}

export class WebFarmDemo {
  readonly #d: WebFarmDemoDeps;
  readonly dev: DevCluster;
  #plan: ClusterPlan | undefined;
  #registry: EtcdRegistry | undefined;
  #timeline: FailoverTimeline | undefined;
  #client: SteadyClient | undefined;
  #instances: readonly number[] = [1, 2, 3];
  /** Hosts this demo powered off: the CLI talks to another host's fleetd meanwhile. */
  readonly #off = new Set<string>();
  /** The host holding the floating address when last sampled (waitForFarm, failover). */
  #holder: string | undefined;

  constructor(deps: WebFarmDemoDeps) {
    this.#d = deps;
    this.dev = new DevCluster({
      stateDir: deps.stateDir ?? DEFAULT_DEV_STATE_DIR,
      clock: deps.clock,
      progress: deps.progress,
      ...(deps.contextFile === undefined ? {} : { contextFile: deps.contextFile }),
    });
  }

  get plan(): ClusterPlan {
    if (this.#plan === undefined)
      throw new DemoError('demo_step_failed', 'the dev cluster is not up: call up() first');
    return this.#plan;
  }

  get paths(): FarmPaths {
    return farmPaths(this.plan.shared.target);
  }

  /** The balancer's floating address: .250 of the cluster's subnet (lb-address.unit keeps it up). */
  get floatingAddress(): string {
    return this.plan.bridge.ip.replace(/\.\d+$/, '.250');
  }

  get timeline(): FailoverTimeline {
    if (this.#timeline === undefined)
      throw new DemoError(
        'demo_step_failed',
        'the recorder is not running: call up() or attach() first (close() stops it)',
      );
    return this.#timeline;
  }

  get registry(): EtcdRegistry {
    if (this.#registry === undefined)
      throw new DemoError(
        'demo_step_failed',
        'no etcd client: call up() or attach() first (close() closes it)',
      );
    return this.#registry;
  }

  /** Starts (or checks) the dev cluster, and the recorder that watches it. */
  async up(options: UpOptions = {}): Promise<ClusterPlan> {
    const result = await this.dev.up({
      ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
      ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
      ...(options.sharedPath === undefined ? {} : { sharedPath: options.sharedPath }),
      ...(options.etcd === undefined ? {} : { etcd: options.etcd }),
    });
    await this.attach(result.plan);
    return result.plan;
  }

  /** Uses a cluster that is already up (its plan from the state dir). */
  async attach(plan?: ClusterPlan): Promise<void> {
    const p = plan ?? (await this.dev.plan());
    if (p === undefined) throw new DemoError('demo_step_failed', `no dev cluster in ${this.dev.stateDir}`);
    this.#plan = p;
    this.#registry ??= createEtcdRegistry({ endpoints: [...p.etcd.endpoints] });
    if (this.#timeline === undefined) {
      this.#timeline = new FailoverTimeline({
        registry: this.#registry,
        clock: this.#d.clock,
        hosts: p.hosts,
        upstreamFile: lbUpstreamFile,
        nginxErrorLog: (m) => join(lbPrefix(m), 'error.log'),
        ...(this.#d.services === undefined ? {} : { services: this.#d.services }),
      });
      await this.#timeline.start();
    }
  }

  /**
   * Makes `fleetts` runnable by the units (ExecStart=/usr/bin/env fleetts): a two-line wrapper in
   * /usr/local/bin running this checkout. An existing fleetts that is not the demo's is left alone.
   */
  async installFleetts(): Promise<'installed' | 'up to date' | 'kept yours'> {
    const text = `#!/bin/sh\n${WRAPPER_MARK}: runs the fleetts of ${REPO_ROOT} (safe to remove)\nexec ${process.execPath} ${join(REPO_ROOT, 'bin', 'fleetts.js')} "$@"\n`;
    const current = await readFile(WRAPPER_PATH, 'utf8').catch(() => undefined);
    if (current === text) return 'up to date';
    if (current !== undefined && !current.includes(WRAPPER_MARK)) return 'kept yours';
    await writeFile(WRAPPER_PATH, text);
    await chmod(WRAPPER_PATH, 0o755);
    return 'installed';
  }

  /** Writes the farm's configuration, site and unit files to shared storage; returns their paths. */
  async prepareSharedStorage(): Promise<string[]> {
    const shared = this.plan.shared.target;
    const written: string[] = [];
    for (const [rel, text] of Object.entries(farmSharedFiles(shared))) {
      const path = join(shared, rel);
      await mkdir(dirname(path), { recursive: true });
      // The upstream file belongs to lb-upstream.unit once it runs: only its first version is ours.
      if (
        path === this.paths.upstreamFile &&
        (await readFile(path).then(
          () => true,
          () => false,
        ))
      )
        continue;
      await writeFile(path, text, { mode: 0o644 });
      written.push(path);
    }
    await writeFile(
      this.paths.floatingEnv,
      floatingAddressEnv(`${this.floatingAddress}/${this.plan.prefixLength}`, 'eth0'),
      { mode: 0o644 },
    );
    written.push(this.paths.floatingEnv);
    await mkdir(this.paths.units, { recursive: true });
    for (const name of [...WEB_TEMPLATES, ...LB_UNITS, FLOATING_UNIT]) {
      const text = await readFile(join(REPO_ROOT, 'examples', 'process', name), 'utf8');
      const path = join(this.paths.units, name);
      await writeFile(path, unitTextFor(text, shared), { mode: 0o644 });
      written.push(path);
    }
    return written;
  }

  /** The API socket of the first host that is on (the dev context names host1's). */
  endpoint(): string {
    const host = this.plan.hosts.find((h) => !this.#off.has(h.name));
    return host === undefined ? this.plan.endpoint : `unix://${host.apiSocket}`;
  }

  /** Runs the real CLI against the cluster. */
  fleetts(
    args: readonly string[],
    options: { timeoutMs?: number; cwd?: string; stdin?: string } = {},
  ): Promise<CommandOutput> {
    const command = `fleetts ${args.join(' ')}`;
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(REPO_ROOT, 'bin', 'fleetts.js'), ...args],
        {
          cwd: options.cwd ?? REPO_ROOT,
          env: { ...process.env, FLEETTS_ENDPOINT: this.endpoint() },
          timeout: options.timeoutMs ?? 120_000,
          maxBuffer: 16 << 20,
        },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ command, code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
      // A secret (a password) goes in on stdin, never in argv.
      child.stdin?.end(options.stdin);
    });
  }

  /** `fleetts start` for the web instances and their sidekicks, then the balancer and its two. */
  async deploy(instances: readonly number[] = [1, 2, 3]): Promise<CommandOutput[]> {
    this.#instances = instances;
    const webs = instances.flatMap((i) => [`web@${i}.unit`, `web-discovery@${i}.unit`]);
    // Webs first, in one command: the scheduler spreads them (least loaded host first) before the
    // balancer is placed.
    return this.startGroups([webs, [...LB_UNITS, FLOATING_UNIT]]);
  }

  /** `fleetts start` of each group in turn, from the units on shared storage; throws on a failure. */
  async startGroups(
    groups: readonly (readonly string[])[],
    options: { timeoutMs?: number } = {},
  ): Promise<CommandOutput[]> {
    const out: CommandOutput[] = [];
    for (const units of groups) {
      const r = await this.fleetts(['start', ...units], { cwd: this.paths.units, ...options });
      out.push(r);
      if (r.code !== 0)
        throw new DemoError(
          'demo_step_failed',
          `\`${r.command}\` failed (exit ${r.code}):\n${r.stderr}${r.stdout}`,
        );
    }
    return out;
  }

  /** The farm's units in start order. */
  farmUnits(): string[] {
    return [
      ...this.#instances.flatMap((i) => [`web@${i}.unit`, `web-discovery@${i}.unit`]),
      ...LB_UNITS,
      FLOATING_UNIT,
    ];
  }

  /** Where each web instance should be reached now: ip(host of web@N):808N. */
  expectedBackends(): string[] {
    const placement = this.timeline.placement();
    return this.#instances
      .map((i) => {
        const host = this.#host(placement.get(`web@${i}.unit`));
        return host === undefined ? undefined : `${host.ip}:${webPort(i)}`;
      })
      .filter((a): a is string => a !== undefined)
      .sort();
  }

  /** Resolves when every farm unit is active, every backend announced and in the upstream. */
  async waitForFarm(timeoutMs = 90_000): Promise<void> {
    const t = this.timeline;
    await t
      .until(
        'every farm unit active, every backend in the upstream and the balancer announced',
        (pending) => {
          const units = this.farmUnits();
          const inactive = units.filter((u) => !t.isActive(u));
          if (inactive.length > 0) return pending(`not active: ${inactive.join(', ')}`);
          const expected = this.expectedBackends();
          if (expected.length !== this.#instances.length)
            return pending(`${expected.length} of ${this.#instances.length} backends placed`);
          const announced = [...t.instances('web').values()].sort();
          if (announced.join(' ') !== expected.join(' '))
            return pending(`announced [${announced.join(' ')}], expected [${expected.join(' ')}]`);
          const lbHosts = t.hostsOf('lb.unit');
          if (lbHosts.length === 0) return pending('lb.unit is on no host');
          for (const h of lbHosts)
            if (this.#upstreamCurrent(h, expected, 0) === undefined)
              return pending(
                `the balancer on ${h} has upstream [${(t.upstreams().get(h) ?? []).join(' ')}], expected [${expected.join(' ')}], or has not loaded it as last written`,
              );
          return t.instances('lb').size === lbHosts.length
            ? true
            : pending(`${t.instances('lb').size} of ${lbHosts.length} balancers announced`);
        },
        timeoutMs,
      )
      .catch((err: unknown) => {
        throw new DemoError('demo_timeout', `${(err as Error).message}; see \`fleetts list-units\``, {
          cause: err,
        });
      });
    // nginx logs a reload before its new worker takes connections: wait for answers in a row, at
    // every balancer's own address and at the floating one, held by exactly one host.
    const deadline = this.#d.clock.monotonic() + 15_000;
    for (let inARow = 0; inARow < 6;) {
      const lbs = [...this.timeline.instances('lb').values()];
      const answers = await Promise.all(lbs.map((lb) => get(`http://${lb}/`, 2_000)));
      const f = await get(`http://${this.floatingAddress}:${LB_PORT}/`, 2_000);
      const holders = await this.addressHolders();
      this.#holder = holders.length === 1 ? holders[0] : undefined;
      inARow =
        answers.every((r) => r.kind === 'answered') && f.kind === 'answered' && holders.length === 1
          ? inARow + 1
          : 0;
      if (this.#d.clock.monotonic() > deadline)
        throw new DemoError(
          'demo_timeout',
          `the balancers at ${lbs.join(', ')} and the floating address ${this.floatingAddress} (up on ${holders.join(', ') || 'no host'}) do not answer steadily with 200`,
        );
      if (inARow === 0) await this.#d.clock.sleep(100);
    }
  }

  /**
   * The address of the balancer clients use: the one on the host holding the floating address
   * (every host runs a balancer), else the first announced.
   */
  lbAddress(): string | undefined {
    const holder = this.#host(this.#holder);
    if (holder !== undefined && !this.#off.has(holder.name)) return `${holder.ip}:${LB_PORT}`;
    return [...this.timeline.instances('lb').values()][0];
  }

  /** The host holding the floating address when last sampled (waitForFarm, failover). */
  addressHost(): string | undefined {
    return this.#holder;
  }

  /** The hosts the floating address is up on now, from `ip addr` in each host's namespace. */
  async addressHolders(): Promise<string[]> {
    const out: string[] = [];
    for (const h of this.plan.hosts) {
      const r = await runCommand(['ip', '-n', h.netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0'], {
        allowFail: true,
      });
      if (r.stdout.includes(`inet ${this.floatingAddress}/`)) out.push(h.name);
    }
    return out;
  }

  /**
   * Whether a host's upstream file lists exactly `expected` and its nginx has reloaded (or
   * started) since the file was last written at or after `since` (wall-clock ms): that write and
   * reload ({} when not written since), or undefined.
   */
  #upstreamCurrent(
    host: string,
    expected: readonly string[],
    since: number,
  ): { readonly written?: TimedEvent; readonly reload?: TimedEvent } | undefined {
    const t = this.timeline;
    if ((t.upstreams().get(host) ?? []).join(' ') !== expected.join(' ')) return undefined;
    const written = [...t.events]
      .reverse()
      .find((e) => e.at >= since && e.event.kind === 'upstream-written' && e.event.host === host);
    // Not rewritten since `since`: its nginx runs with it already.
    if (written === undefined) return {};
    // Reloaded, or started (with the file as written) since the write.
    const reload = t.loadedSince(host, written.at);
    return reload === undefined ? undefined : { written, reload };
  }

  /** `n` GETs through the balancer, one after the other: who answered. */
  async probe(n = 12): Promise<ClientCounts> {
    const client = new SteadyClient({ registry: this.registry, clock: this.#d.clock, rate: 50 });
    await client.start();
    await this.#d.clock.sleep((n * 1000) / 50);
    await client.stop();
    return countRecords(client.records().slice(0, n));
  }

  /**
   * Starts the steady client: 20 GETs/s through the balancer's floating address, each given 10 s
   * (a browser's patience: SYNs retransmitted while the address moves still connect).
   */
  async startClient(rate = 20): Promise<SteadyClient> {
    if (this.#client !== undefined) return this.#client;
    this.#client = new SteadyClient({
      registry: this.registry,
      clock: this.#d.clock,
      rate,
      address: `${this.floatingAddress}:${LB_PORT}`,
      timeoutMs: CLIENT_TIMEOUT_MS,
    });
    await this.#client.start();
    return this.#client;
  }

  async stopClient(): Promise<void> {
    await this.#client?.stop();
    this.#client = undefined;
  }

  /** The host (name) of a unit now. */
  hostOf(unit: string): string | undefined {
    return this.timeline.placement().get(unit);
  }

  /**
   * Pulls the host's plug and follows the cluster until the farm is whole again: every unit of the
   * host that runs on one host at a time active elsewhere, every live balancer's upstream equal to
   * the live backends and its nginx reloaded with it, and (when the host held the floating address)
   * the address up on another host and the client answered there. Then `settleMs` more of traffic.
   */
  async failover(
    host: string,
    options: { timeoutMs?: number; settleMs?: number } = {},
  ): Promise<FailoverResult> {
    const t = this.timeline;
    const client = await this.startClient();
    const unitsOnHost = t.unitsOn(host);
    // Global units are on every other host already: nothing of theirs moves.
    const movable = unitsOnHost.filter((u) => !GLOBAL_UNITS.includes(u));
    const holders = await this.addressHolders();
    const lbMoved = holders.includes(host);
    const oldBackends = new Set(t.servers);
    const watching = new AbortController();
    const addressWatch = this.#watchAddress(watching.signal, holders);
    const t0 = await this.powerOff(host).catch((err: unknown) => {
      watching.abort();
      throw err;
    });
    const t1 = this.#d.clock.now();
    const timeoutMs = options.timeoutMs ?? 60_000;
    const after = (pred: (e: TimedEvent) => boolean): TimedEvent | undefined =>
      t.events.find((e) => e.at >= t0 && pred(e));
    const ms = (e: TimedEvent | undefined): number => (e === undefined ? NaN : e.at - t0);
    const latest = (es: readonly (TimedEvent | undefined)[]): number =>
      es.length === 0 ? NaN : Math.max(...es.map(ms));

    const whole = await t
      .until(
        `the farm to be whole again after powering off ${host}`,
        (pending) => {
          const placement = t.placement();
          const notBack = movable.filter(
            (u) => placement.get(u) === undefined || placement.get(u) === host || !t.isActive(u),
          );
          if (notBack.length > 0)
            return pending(
              `not yet active elsewhere: ${notBack
                .map(
                  (u) =>
                    `${u} (on ${placement.get(u) ?? 'no host'}, ${t.isActive(u) ? 'active' : 'not active'})`,
                )
                .join(', ')}`,
            );
          const expected = this.expectedBackends();
          const lbHosts = t.hostsOf('lb.unit').filter((h) => h !== host);
          if (lbHosts.length === 0) return pending('no balancer on any other host');
          const changed = expected.join(' ') !== [...oldBackends].sort().join(' ');
          const current = new Map<string, { written?: TimedEvent; reload?: TimedEvent }>();
          for (const h of lbHosts) {
            const c = this.#upstreamCurrent(h, expected, t0);
            const has = (t.upstreams().get(h) ?? []).join(' ');
            if (has !== expected.join(' '))
              return pending(`the balancer on ${h} has upstream [${has}], expected [${expected.join(' ')}]`);
            if (c === undefined)
              return pending(`nginx on ${h} has not reloaded or started since its upstream was written`);
            if (changed && c.written === undefined)
              return pending(`the upstream of the balancer on ${h} was not rewritten since the power-off`);
            current.set(h, c);
          }
          if (lbMoved) {
            const up = after((e) => e.event.kind === 'address-up' && e.event.host !== host);
            if (up === undefined)
              return pending(`the floating address ${this.floatingAddress} is up on no other host`);
            const ok = client.records(t0).find((r) => r.outcome.kind === 'answered' && r.at + r.ms >= up.at);
            if (ok === undefined)
              return pending(
                `the client has no answer through ${this.floatingAddress} since it came up on ${up.event.kind === 'address-up' ? up.event.host : '?'} (since the power-off: ${describeCounts(countRecords(client.records(t0)))})`,
              );
          }
          return current;
        },
        timeoutMs,
      )
      .catch((err: unknown) => {
        watching.abort();
        throw new DemoError('demo_timeout', `${(err as Error).message}; see \`fleetts list-units\``, {
          cause: err,
        });
      });
    const end = this.#d.clock.now();
    await this.#d.clock.sleep(options.settleMs ?? 2_000);
    const until = this.#d.clock.now();
    watching.abort();
    const up = await addressWatch;
    if (up.size === 1) this.#holder = [...up][0];
    const addressUp = after((e) => e.event.kind === 'address-up' && e.event.host !== host);

    const dead = after((e) => e.event.kind === 'machine-dead' && e.event.host === host);
    const moved: MovedUnit[] = movable.map((unit) => {
      const placed = after((e) => e.event.kind === 'placed' && e.event.unit === unit);
      const to = placed?.event.kind === 'placed' ? placed.event.host : (t.placement().get(unit) ?? '?');
      const active = after((e) => e.event.kind === 'active' && e.event.unit === unit && e.event.host === to);
      const service = unit.startsWith('web@') ? 'web' : undefined;
      const announced =
        service === undefined
          ? undefined
          : after(
              (e) => e.event.kind === 'announced' && e.event.service === service && e.event.instance === unit,
            );
      return {
        unit,
        to,
        placedMs: ms(placed),
        activeMs: ms(active),
        ...(service === undefined ? {} : { announcedMs: ms(announced) }),
      };
    });
    const deadIp = this.#host(host)?.ip ?? '?';
    const onDead = (a: string): boolean => a.slice(0, a.lastIndexOf(':')) === deadIp;
    const deadOut = [...oldBackends].some(onDead)
      ? [...whole.keys()].map((h) =>
          after(
            (e) => e.event.kind === 'upstream-written' && e.event.host === h && !e.event.servers.some(onDead),
          ),
        )
      : [];
    const records = client.records(t0, until);
    const bad = records.filter((r) => r.outcome.kind !== 'answered');
    const first = bad[0];
    const last = bad.at(-1);
    const failed = (r: { outcome: { kind: string } }): boolean => r.outcome.kind !== 'answered';
    return {
      host,
      t0,
      offMs: t1 - t0,
      end,
      unitsOnHost,
      lbMoved,
      deadMs: ms(dead),
      moved,
      deadOutMs: latest(deadOut),
      upstreamMs: latest([...whole.values()].map((c) => c.written).filter((e) => e !== undefined)),
      reloadedMs: latest([...whole.values()].map((c) => c.reload).filter((e) => e !== undefined)),
      // In flight at the power-off, or sent while it was under way.
      inFlightFailed: client
        .records(t0 - CLIENT_TIMEOUT_MS, t1 + 1)
        .filter((r) => r.at + r.ms >= t0 && failed(r)).length,
      failedAfterOff: client.records(t1 + 1, until).filter(failed).length,
      ...(lbMoved
        ? {
            addressUpMs: ms(addressUp),
            ...(addressUp?.event.kind === 'address-up' ? { addressTo: addressUp.event.host } : {}),
          }
        : {}),
      events: t.events.filter((e) => e.at >= t0 && e.at < until),
      client: countRecords(records),
      ...(first === undefined || last === undefined
        ? {}
        : { outage: { fromMs: first.at - t0, toMs: last.at - t0 } }),
    };
  }

  /**
   * Pulls the host's plug (marked on the timeline, with the units it ran); returns the wall-clock
   * ms of the power-off. The CLI talks to another host's fleetd until powerOn().
   */
  async powerOff(host: string): Promise<number> {
    const t0 = this.#d.clock.now();
    this.timeline.mark({ kind: 'power-off', host, units: this.timeline.unitsOn(host) }, t0);
    this.#off.add(host);
    await this.dev.powerOff(host);
    return t0;
  }

  /** Boots the host again, waits `settleMs`, and reports any unit that moved (none should). */
  async powerOn(host: string, options: { settleMs?: number } = {}): Promise<PowerOnResult> {
    const t = this.timeline;
    const before = t.placement();
    const t0 = this.#d.clock.now();
    t.mark({ kind: 'power-on', host }, t0);
    await this.dev.powerOn(host);
    this.#off.delete(host);
    const bootMs = this.#d.clock.now() - t0;
    await this.#d.clock.sleep(options.settleMs ?? 3_000);
    const now = t.placement();
    // Global units (the balancers) come back to the host, and move nowhere.
    const movedBack = [...now]
      .filter(([u, h]) => !GLOBAL_UNITS.includes(u) && before.get(u) !== undefined && before.get(u) !== h)
      .map(([unit, to]) => ({ unit, from: before.get(unit) ?? '?', to }));
    const until = this.#d.clock.now();
    return {
      host,
      bootMs,
      movedBack,
      unitsOnHost: t.unitsOn(host),
      client: this.#client === undefined ? countRecords([]) : this.#client.counts(t0, until),
    };
  }

  /**
   * A backend host that does not hold the floating address (the last by name), or undefined. Every
   * host runs a balancer; this one's is a standby.
   */
  backendOnlyHost(): string | undefined {
    const p = this.timeline.placement();
    const lbHost = this.#holder;
    const hosts = this.#instances
      .map((i) => p.get(`web@${i}.unit`))
      .filter((h): h is string => h !== undefined && h !== lbHost)
      .sort();
    return hosts.at(-1);
  }

  /** Stops the client and the recorder; `down` also removes the cluster. */
  async close(options: { down: boolean }): Promise<void> {
    await this.stopClient();
    await this.#timeline?.stop();
    this.#timeline = undefined;
    await this.#registry?.close();
    this.#registry = undefined;
    if (!options.down) return;
    const hosts = this.#plan?.hosts ?? (await this.dev.plan())?.hosts ?? [];
    await this.dev.down();
    // What the units left in /run (pid files, nginx's prefix): every host sees this machine's /run.
    for (const h of hosts) await rm(machineRunDir(h.machineId), { recursive: true, force: true });
  }

  /**
   * Marks on the timeline each host the floating address appears on or leaves (`initial`: where it
   * was up), from `ip addr` in every host's namespace (5 times a second), until `signal` aborts;
   * returns where it is up at the end.
   */
  async #watchAddress(signal: AbortSignal, initial: readonly string[]): Promise<ReadonlySet<string>> {
    const address = this.floatingAddress;
    let up = new Set<string>(initial);
    while (!signal.aborted) {
      const now = new Set<string>();
      for (const h of this.plan.hosts) {
        const r = await runCommand(['ip', '-n', h.netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0'], {
          allowFail: true,
        });
        if (r.stdout.includes(`inet ${address}/`)) now.add(h.name);
      }
      const at = this.#d.clock.now();
      for (const h of now) if (!up.has(h)) this.timeline.mark({ kind: 'address-up', host: h, address }, at);
      for (const h of up) if (!now.has(h)) this.timeline.mark({ kind: 'address-down', host: h, address }, at);
      up = now;
      await this.#d.clock.sleep(200, signal).catch(() => undefined);
    }
    return up;
  }

  #host(name: string | undefined): HostPlan | undefined {
    return this.plan.hosts.find((h) => h.name === name);
  }
}

/** Pure: one line for a client's counts, for a timeout's message. */
function describeCounts(c: ClientCounts): string {
  const reasons = [...c.reasons].map(([r, n]) => `${n}× ${r}`).join(', ');
  return `${c.answered} answered, ${c.failed} failed${reasons === '' ? '' : ` (${reasons})`}, ${c.noLb} with no balancer announced`;
}
