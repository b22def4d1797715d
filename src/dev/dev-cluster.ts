// `fleetts dev`: a local multi-host cluster on one machine (one network namespace per host on a
// bridge, with its own fleetd, an etcd member in each of the first three and, for the Docker
// runtime, its own dockerd; or one etcd outside the hosts). The plan is pure
// (plan.ts); this module applies it step by step, each step idempotent and recorded in the state
// file first, so `down` removes exactly what `up` made, even after a crash.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../lib/clock.js';
import { shellQuote } from '../discovery/run-command.js';
import { clearDevContext, devContextPath, writeDevContext } from './context.js';
import { DevError } from './dev-error.js';
import { FLEETD_NODE_FLAGS } from '../daemon/node-flags.js';
import { defaultCgroupRoot } from '../runtime/process-tree.js';
import { fleetdArgs, fleetdEnv, parseHelpFlags } from './fleetd-argv.js';
import { etcdMemberStatuses, type EtcdMemberStatus } from './etcd-members.js';
import { matchHost } from './host-match.js';
import {
  chooseSubnetIndex,
  currentRoutes,
  deleteIptablesRule,
  deleteLink,
  deleteNetns,
  dropRuntimeAddresses,
  ensureBridge,
  ensureHostLink,
  ensureIptablesRule,
  ensureNetns,
  forwardNeedsRule,
  forwardRule,
  setHostLink,
} from './network.js';
import {
  longSocketPaths,
  MAX_SOCKET_PATH,
  dockerdArgv,
  ETCD_HOST_MEMBERS,
  etcdArgv,
  MAX_NODES,
  planCluster,
  type ClusterPlan,
  type DevRuntime,
  type EtcdTopology,
  type HostPlan,
  type PlanInput,
} from './plan.js';
import {
  readState,
  sameResource,
  writeState,
  type DevState,
  type ProcessRecord,
  type Resource,
} from './state.js';
import {
  cgroupHierarchies,
  fleettsCgroups,
  isRunning,
  killAll,
  mountTargets,
  netnsPids,
  removeCgroupTrees,
  runCommand,
  spawnDetached,
  unmountUnder,
  withDescendants,
} from './system.js';

// The defaults live apart (defaults.ts) so that the CLI can show them without loading all this.
export {
  DEFAULT_DEV_LEASE_TTL_MS,
  DEFAULT_DEV_STATE_DIR,
  DEFAULT_NODES,
  DEFAULT_SHARED_PATH,
} from './defaults.js';
import {
  DEFAULT_DEV_LEASE_TTL_MS,
  DEFAULT_DEV_STATE_DIR,
  DEFAULT_NODES,
  DEFAULT_SHARED_PATH,
} from './defaults.js';

/**
 * `hosts` whenever there are hosts for three members: real clusters (the seeds, our cloud-config)
 * run etcd on the first three hosts, so a power-off or partition there must hit etcd as well.
 * With 1 or 2 hosts a member per host would lose quorum to any single fault, so etcd stays outside.
 */
export function defaultEtcdTopology(nodes: number): EtcdTopology {
  return nodes >= ETCD_HOST_MEMBERS ? 'hosts' : 'external';
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface DevDeps {
  readonly stateDir: string;
  readonly clock: Clock;
  /** Progress lines for people (stderr in the CLI). */
  readonly progress: (line: string) => void;
  /** Injected by tests to simulate a user without root. */
  readonly getuid?: () => number;
  /** Where `up` writes the CLI context (default devContextPath()). */
  readonly contextFile?: string;
  /** How to run fleetd (default: this Node with FLEETD_NODE_FLAGS and <repo>/bin/fleetd.js). */
  readonly fleetdCommand?: readonly string[];
  readonly etcdBinary?: string;
  readonly dockerdBinary?: string;
}

export interface UpOptions {
  readonly nodes?: number;
  readonly runtime?: DevRuntime;
  readonly leaseTtlMs?: number;
  readonly sharedPath?: string;
  /** Where etcd runs (default: `hosts` with 3 hosts or more, else `external`; see defaultEtcdTopology). */
  readonly etcd?: EtcdTopology;
  /** How long to wait for every host to register (default 60 s, or 3 s a host when more than 20). */
  readonly timeoutMs?: number;
  /** Docker runtime: do not build (scripts/build-images.sh) and copy the farm images into the hosts. */
  readonly skipImages?: boolean;
}

export interface UpResult {
  readonly plan: ClusterPlan;
  readonly endpoint: string;
  /** The cluster was already up: `up` only checked and repaired it. */
  readonly wasUp: boolean;
}

export interface HostStatus {
  readonly name: string;
  readonly machineId: string;
  readonly ip: string;
  readonly power: 'on' | 'off';
  readonly network: 'connected' | 'partitioned';
  /** `unknown` when etcd cannot be asked. */
  readonly registered: 'yes' | 'no' | 'unknown';
  /** The etcd member in this host: `leader`, `follower`, `down` (not answering); `none` when it runs none. */
  readonly etcd: EtcdMemberStatus['state'] | 'none';
}

export interface ClusterStatus {
  readonly stateDir: string;
  readonly phase: DevState['phase'];
  readonly endpoint: string;
  /** The etcd URLs this machine uses (loopback for `external`, the members' for `hosts`). */
  readonly etcd: string;
  readonly etcdTopology: EtcdTopology;
  readonly etcdMembers: readonly EtcdMemberStatus[];
  readonly runtime: DevRuntime;
  readonly sharedPath: string;
  readonly hosts: readonly HostStatus[];
}

export class DevCluster {
  readonly #deps: DevDeps;
  readonly stateDir: string;
  #supportedFlags: Set<string> | undefined;

  constructor(deps: DevDeps) {
    this.#deps = deps;
    this.stateDir = resolve(deps.stateDir);
  }

  get contextFile(): string {
    return this.#deps.contextFile ?? devContextPath();
  }

  #requireRoot(verb: string): void {
    const uid = (this.#deps.getuid ?? process.getuid)?.();
    if (uid === 0) return;
    throw new DevError(
      'dev_needs_root',
      `fleetts dev ${verb} needs root: it creates network namespaces, a bridge, veth links and iptables rules ` +
        `(CAP_NET_ADMIN), mounts the shared directory and kills the hosts' processes (CAP_SYS_ADMIN, CAP_KILL). ` +
        `Run it as root: sudo fleetts dev ${verb}`,
    );
  }

  async #state(): Promise<DevState> {
    const state = await readState(this.stateDir);
    if (state === undefined || state.phase === 'down')
      throw new DevError(
        'dev_not_up',
        `no dev cluster is up in ${this.stateDir}; start one with \`fleetts dev up\``,
      );
    return state;
  }

  /** The plan of the cluster in the state dir (undefined when none was ever started). */
  async plan(): Promise<ClusterPlan | undefined> {
    const state = await readState(this.stateDir);
    return state === undefined ? undefined : planCluster(state.input);
  }

  async up(options: UpOptions = {}): Promise<UpResult> {
    this.#requireRoot('up');
    const previous = await readState(this.stateDir);
    const wasUp = previous !== undefined && previous.phase === 'up';
    if (wasUp) {
      const have = previous.input;
      const clash =
        (options.nodes !== undefined && options.nodes !== have.machineIds.length) ||
        (options.runtime !== undefined && options.runtime !== have.runtime) ||
        (options.etcd !== undefined && options.etcd !== (have.etcdTopology ?? 'external'));
      if (clash)
        throw new DevError(
          'dev_already_up',
          `a dev cluster of ${have.machineIds.length} hosts (${have.runtime} runtime, etcd ${have.etcdTopology ?? 'external'}) is already up in ${this.stateDir}; ` +
            `run \`fleetts dev down\` first to start a different one`,
        );
    }
    const nodes = options.nodes ?? previous?.input.machineIds.length ?? DEFAULT_NODES;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES)
      throw new DevError(
        'dev_step_failed',
        `--nodes must be a whole number from 1 to ${MAX_NODES}, not ${nodes}`,
      );
    if (options.etcd === 'hosts' && nodes < ETCD_HOST_MEMBERS)
      throw new DevError(
        'dev_step_failed',
        `--etcd hosts needs at least ${ETCD_HOST_MEMBERS} hosts (one etcd member in each of the first ${ETCD_HOST_MEMBERS}); ` +
          `give --nodes ${ETCD_HOST_MEMBERS} or more, or --etcd external`,
      );
    await this.#checkPrerequisites(options.runtime ?? previous?.input.runtime ?? 'process');

    const input = await this.#planInput(previous, nodes, options);
    const plan = planCluster(input);
    const [tooLong] = longSocketPaths(plan);
    if (tooLong !== undefined)
      throw new DevError(
        'dev_step_failed',
        `the socket path ${tooLong} is longer than ${MAX_SOCKET_PATH} bytes (the unix socket limit); choose a shorter --state-dir`,
      );
    const stored = { ...input, machineIds: [...input.machineIds] };
    let state: DevState = previous ?? {
      version: 1,
      phase: 'starting',
      input: stored,
      resources: [],
      processes: [],
      poweredOff: [],
      partitioned: [],
    };
    state = { ...state, input: stored, phase: wasUp ? 'up' : 'starting' };
    await writeState(state);
    const ctx = new Applier(state);

    this.#deps.progress(
      `fleetts dev: ${wasUp ? 'checking' : 'starting'} ${nodes} hosts on ${plan.subnet} (state in ${this.stateDir})`,
    );
    this.#deps.progress(
      plan.etcd.topology === 'hosts'
        ? `fleetts dev: etcd members in ${plan.etcd.members.map((m) => m.host).join(', ')} (faults on them hit etcd)`
        : `fleetts dev: one etcd outside the hosts${options.etcd === undefined && nodes < ETCD_HOST_MEMBERS ? ` (${nodes} hosts: too few for a member in each of three)` : ''}`,
    );
    await mkdir(this.stateDir, { recursive: true });
    await ctx.ensure({ kind: 'bridge', name: plan.bridge.name }, () => ensureBridge(plan));
    await this.#checkSubnetIsOurs(plan);
    if (await forwardNeedsRule()) {
      const rule = forwardRule(plan);
      await ctx.ensure({ kind: 'iptables', rule }, () => ensureIptablesRule(rule));
    }
    await ctx.ensure({ kind: 'mount', target: plan.shared.target }, () =>
      this.#ensureSharedMount(plan, ctx.state),
    );
    // A member's data dir is a resource: `down` deletes it, as it deletes the external one's.
    for (const m of plan.etcd.members)
      await ctx.ensure({ kind: 'dir', path: m.dataDir }, () => mkdir(m.dataDir, { recursive: true }));
    if (plan.etcd.topology === 'external') await this.#ensureEtcd(plan, ctx);

    for (const host of plan.hosts) {
      await mkdir(host.stateDir, { recursive: true });
      await ctx.ensure({ kind: 'netns', name: host.netns, host: host.name }, () => ensureNetns(host.netns));
      await ctx.ensure({ kind: 'link', name: host.veth }, () => ensureHostLink(plan, host));
      if (ctx.state.partitioned.includes(host.name)) await setHostLink(host, false);
    }
    const booting = plan.hosts.filter((h) => !ctx.state.poweredOff.includes(h.name));
    if (plan.etcd.topology === 'hosts') {
      // Every member first (each waits for a quorum of the others), then the fleetds.
      for (const host of booting) await this.#startMember(plan, host, ctx);
      await this.#ensureEtcd(plan, ctx);
    }
    for (const host of booting) await this.#bootHost(plan, host, ctx);
    if (plan.runtime === 'docker' && options.skipImages !== true) await this.#distributeImages(booting);
    const waitFor = booting.filter((h) => !ctx.state.partitioned.includes(h.name));
    // Every fleetd loads its modules at once: `up --nodes 30` took 42–60 s on 2 busy cores.
    await this.#waitRegistered(
      plan,
      waitFor,
      ctx,
      options.timeoutMs ?? Math.max(60_000, 3_000 * waitFor.length),
    );

    await ctx.save({ ...ctx.state, phase: 'up' });
    await writeDevContext(this.contextFile, {
      endpoint: plan.endpoint,
      // Every host's socket: plain commands still work while host1 is powered off.
      endpoints: [...plan.endpoints],
      stateDir: this.stateDir,
    });
    return { plan, endpoint: plan.endpoint, wasUp };
  }

  async down(options: { purge?: boolean } = {}): Promise<{ removed: number }> {
    this.#requireRoot('down');
    const state = await readState(this.stateDir);
    if (state === undefined) return { removed: 0 };
    const plan = planCluster(state.input);
    const ctx = new Applier(state);

    // Every host's plug is pulled at once (their etcd members too), then what is left outside the
    // namespaces (the external etcd).
    await this.#killHosts(plan.hosts);
    const others: ProcessRecord[] = [];
    for (const p of ctx.state.processes) if (await isRunning(p)) others.push(p);
    await killAll(
      others.map((p) => p.pid),
      this.#deps.clock,
    );
    await ctx.save({ ...ctx.state, processes: [] });
    // Their units' cgroups: a host whose plug was pulled cannot remove them itself.
    const hierarchies = await cgroupHierarchies();
    await removeCgroupTrees(
      plan.hosts.flatMap((h) => hierarchies.map((x) => join(x.dir, defaultCgroupRoot(h.stateDir)))),
    );

    let removed = 0;
    for (const r of [...ctx.state.resources].reverse()) {
      await this.#remove(r);
      removed++;
      await ctx.save({ ...ctx.state, resources: ctx.state.resources.filter((x) => !sameResource(x, r)) });
    }
    await unmountUnder(this.stateDir);
    await clearDevContext(this.contextFile, this.stateDir);
    await ctx.save({ ...ctx.state, phase: 'down', poweredOff: [], partitioned: [] });
    if (options.purge === true) await rm(this.stateDir, { recursive: true, force: true });
    return { removed };
  }

  async status(): Promise<ClusterStatus> {
    const state = await readState(this.stateDir);
    if (state === undefined)
      throw new DevError(
        'dev_not_up',
        `no dev cluster in ${this.stateDir}; start one with \`fleetts dev up\``,
      );
    const plan = planCluster(state.input);
    const registered = state.phase === 'down' ? undefined : await this.#registeredMachines(plan, 2_000);
    const members =
      state.phase === 'down' ? [] : await etcdMemberStatuses(plan.etcd.members, this.#deps.clock, 1_000);
    const hosts: HostStatus[] = [];
    for (const h of plan.hosts) {
      const fleetd = state.processes.find((p) => p.id === `${h.name}/fleetd`);
      const on = fleetd !== undefined && (await isRunning(fleetd));
      hosts.push({
        name: h.name,
        machineId: h.machineId,
        ip: h.ip,
        power: on ? 'on' : 'off',
        network: state.partitioned.includes(h.name) ? 'partitioned' : 'connected',
        registered:
          registered === undefined ? 'unknown' : registered.get(h.machineId) === h.ip ? 'yes' : 'no',
        etcd: plan.etcd.members.some((m) => m.host === h.name)
          ? (members.find((m) => m.host === h.name)?.state ?? 'down')
          : 'none',
      });
    }
    return {
      stateDir: this.stateDir,
      phase: state.phase,
      endpoint: plan.endpoint,
      etcd: plan.etcd.endpoints.join(','),
      etcdTopology: plan.etcd.topology,
      etcdMembers: members,
      runtime: plan.runtime,
      sharedPath: plan.shared.target,
      hosts,
    };
  }

  /** The shell line that points `fleetts` at every host of this cluster (host1 may be powered off). */
  async env(): Promise<string> {
    const state = await this.#state();
    return `export FLEETTS_ENDPOINT=${shellQuote(planCluster(state.input).endpoints.join(','))}`;
  }

  async findHost(query: string): Promise<HostPlan> {
    const state = await this.#state();
    return matchHost(planCluster(state.input).hosts, query);
  }

  /**
   * Pulls the plug: every process in the host's namespace (its etcd member too) is SIGKILLed at
   * once, and addresses added at run time (a floating address) are gone with the host's memory.
   */
  async powerOff(query: string, options: { readonly onKill?: () => void } = {}): Promise<HostPlan> {
    this.#requireRoot('power-off');
    const state = await this.#state();
    const plan = planCluster(state.input);
    const host = matchHost(plan.hosts, query);
    const ctx = new Applier(state);
    await this.#killHosts([host], options.onKill);
    await dropRuntimeAddresses(plan, host);
    await ctx.save({
      ...ctx.state,
      processes: ctx.state.processes.filter((p) => !p.id.startsWith(`${host.name}/`)),
      poweredOff: [...new Set([...ctx.state.poweredOff, host.name])],
    });
    return host;
  }

  /**
   * Boots the host again (same namespace, IP and machine id): its etcd member restarts on its data
   * dir and rejoins; waits for the fleetd to register.
   */
  async powerOn(query: string, options: { timeoutMs?: number } = {}): Promise<HostPlan> {
    this.#requireRoot('power-on');
    const state = await this.#state();
    const plan = planCluster(state.input);
    const host = matchHost(plan.hosts, query);
    const ctx = new Applier(state);
    await ctx.ensure({ kind: 'netns', name: host.netns, host: host.name }, () => ensureNetns(host.netns));
    await ctx.ensure({ kind: 'link', name: host.veth }, () => ensureHostLink(plan, host));
    if (ctx.state.partitioned.includes(host.name)) await setHostLink(host, false);
    await this.#bootHost(plan, host, ctx);
    await ctx.save({ ...ctx.state, poweredOff: ctx.state.poweredOff.filter((n) => n !== host.name) });
    if (!ctx.state.partitioned.includes(host.name))
      await this.#waitRegistered(plan, [host], ctx, options.timeoutMs ?? 60_000);
    return host;
  }

  /**
   * Cuts the host off the bridge: it reaches neither etcd nor the other hosts (its etcd member is
   * cut off with it); its processes run on.
   */
  async partition(query: string): Promise<HostPlan> {
    this.#requireRoot('partition');
    const state = await this.#state();
    const host = matchHost(planCluster(state.input).hosts, query);
    await setHostLink(host, false);
    await writeState({ ...state, partitioned: [...new Set([...state.partitioned, host.name])] });
    return host;
  }

  /** Plugs the host back; waits for its fleetd to rejoin when it is powered on. */
  async heal(query: string, options: { timeoutMs?: number; wait?: boolean } = {}): Promise<HostPlan> {
    this.#requireRoot('heal');
    const state = await this.#state();
    const plan = planCluster(state.input);
    const host = matchHost(plan.hosts, query);
    await setHostLink(host, true);
    const ctx = new Applier({ ...state, partitioned: state.partitioned.filter((n) => n !== host.name) });
    await ctx.save(ctx.state);
    if (options.wait !== false && !ctx.state.poweredOff.includes(host.name))
      await this.#waitRegistered(plan, [host], ctx, options.timeoutMs ?? 60_000);
    return host;
  }

  // ── steps ────────────────────────────────────────────────────────────────────────────────

  async #checkPrerequisites(runtime: DevRuntime): Promise<void> {
    if (this.#deps.fleetdCommand === undefined && !existsSync(join(REPO_ROOT, 'dist', 'daemon', 'main.js')))
      throw new DevError(
        'dev_not_built',
        `fleetd is not built: run \`npm run build\` in ${REPO_ROOT} first (fleetts dev starts bin/fleetd.js on every host)`,
      );
    const etcd = this.#deps.etcdBinary ?? 'etcd';
    if ((await runCommand(['sh', '-c', `command -v "$0"`, etcd], { allowFail: true })).code !== 0)
      throw new DevError(
        'dev_step_failed',
        `etcd is not installed (${etcd} not found): install Debian's etcd-server (bash scripts/ensure-deps.sh etcd-server)`,
      );
    for (const tool of ['ip', 'nsenter', 'mount', 'umount'])
      if ((await runCommand(['sh', '-c', `command -v "$0"`, tool], { allowFail: true })).code !== 0)
        throw new DevError(
          'dev_step_failed',
          `${tool} is not installed: run bash scripts/ensure-deps.sh iproute2 util-linux`,
        );
    if (runtime === 'docker') {
      const dockerd = this.#deps.dockerdBinary ?? 'dockerd';
      if ((await runCommand(['sh', '-c', `command -v "$0"`, dockerd], { allowFail: true })).code !== 0) {
        this.#deps.progress('fleetts dev: installing docker.io for the Docker runtime');
        await runCommand(['bash', join(REPO_ROOT, 'scripts', 'ensure-deps.sh'), 'docker.io'], {
          timeoutMs: 600_000,
        });
      }
    }
  }

  async #planInput(previous: DevState | undefined, nodes: number, options: UpOptions): Promise<PlanInput> {
    const tag = previous?.input.tag ?? createHash('sha256').update(this.stateDir).digest('hex').slice(0, 6);
    const machineIds = [...(previous?.input.machineIds ?? [])].slice(
      0,
      Math.max(nodes, previous?.input.machineIds.length ?? 0),
    );
    while (machineIds.length < nodes) machineIds.push(randomBytes(16).toString('hex'));
    const live = previous !== undefined && previous.resources.length > 0;
    let subnetIndex: number;
    let etcdLoopbackPort: number;
    if (live) {
      subnetIndex = previous.input.subnetIndex;
      etcdLoopbackPort = previous.input.etcdLoopbackPort;
    } else {
      const preferred =
        previous?.input.subnetIndex ??
        (this.stateDir === DEFAULT_DEV_STATE_DIR ? 0 : parseInt(tag.slice(0, 2), 16));
      const index = chooseSubnetIndex(await currentRoutes(), preferred);
      if (index === undefined)
        throw new DevError(
          'dev_conflict',
          'every 10.213.X.0/24 subnet is routed already; remove a dev cluster first',
        );
      subnetIndex = index;
      etcdLoopbackPort = await freeLoopbackPort();
    }
    return {
      stateDir: this.stateDir,
      tag,
      subnetIndex,
      machineIds: machineIds.slice(0, nodes),
      runtime: options.runtime ?? previous?.input.runtime ?? 'process',
      // A running cluster keeps its topology; a new one (or one brought up again) gets the default.
      // (state files from before the choice ran the external one).
      etcdTopology:
        options.etcd ?? (live ? (previous.input.etcdTopology ?? 'external') : defaultEtcdTopology(nodes)),
      leaseTtlMs: options.leaseTtlMs ?? previous?.input.leaseTtlMs ?? DEFAULT_DEV_LEASE_TTL_MS,
      sharedPath: resolve(options.sharedPath ?? previous?.input.sharedPath ?? DEFAULT_SHARED_PATH),
      etcdLoopbackPort,
    };
  }

  /** Two clusters started at the same moment may pick one subnet: the later one backs off. */
  async #checkSubnetIsOurs(plan: ClusterPlan): Promise<void> {
    const r = await runCommand(['ip', '-o', '-4', 'addr', 'show']);
    const prefix = plan.subnet.replace(/\.0\/24$/, '.');
    const other = r.stdout
      .split('\n')
      .map((l) => l.split(/\s+/))
      .find((f) => f[1] !== plan.bridge.name && (f[3] ?? '').startsWith(prefix));
    if (other !== undefined)
      throw new DevError(
        'dev_conflict',
        `subnet ${plan.subnet} is also on ${other[1] ?? '?'}; run \`fleetts dev down\` here and \`fleetts dev up\` again`,
      );
  }

  async #ensureSharedMount(plan: ClusterPlan, state: DevState): Promise<void> {
    const { source, target } = plan.shared;
    await mkdir(source, { recursive: true });
    await mkdir(target, { recursive: true });
    if ((await mountTargets()).includes(target)) {
      const ours =
        state.resources.some((r) => r.kind === 'mount' && r.target === target) &&
        (await sameFile(source, target));
      if (ours) return;
      throw new DevError(
        'dev_conflict',
        `${target} is already a mount point (another dev cluster?); run \`fleetts dev down\` there, or choose --shared-path`,
      );
    }
    await runCommand(['mount', '--bind', source, target]);
  }

  /** Starts the external etcd if needed; then, for either topology, waits until etcd answers healthy. */
  async #ensureEtcd(plan: ClusterPlan, ctx: Applier): Promise<void> {
    const external = plan.etcd.topology === 'external' ? plan.etcd.members[0] : undefined;
    if (external !== undefined) {
      const rec = ctx.state.processes.find((p) => p.id === external.processId);
      if (rec === undefined || !(await isRunning(rec))) {
        const p = await spawnDetached([this.#deps.etcdBinary ?? 'etcd', ...etcdArgv(plan, external)], {
          logFile: external.log,
        });
        await ctx.setProcess({ id: external.processId, ...p });
      }
    }
    const running = [];
    for (const m of plan.etcd.members) {
      const rec = ctx.state.processes.find((p) => p.id === m.processId);
      if (rec !== undefined && (await isRunning(rec))) running.push(m);
    }
    // Fewer than a quorum running (hosts powered off): nothing to wait for; the fleetds retry.
    if (running.length <= plan.etcd.members.length / 2) return;
    const logs = async (): Promise<string> =>
      (await Promise.all(plan.etcd.members.map(async (m) => `${m.name}: ${await tail(m.log)}`))).join('\n');
    const deadline = this.#deps.clock.monotonic() + 20_000;
    for (;;) {
      const healthy = await Promise.all(running.map((m) => etcdHealthy(m.clientUrl)));
      if (healthy.includes(true)) return;
      for (const m of running) {
        const now = ctx.state.processes.find((p) => p.id === m.processId);
        if (now === undefined || !(await isRunning(now)))
          throw new DevError(
            'dev_step_failed',
            `etcd member ${m.name} exited during start-up: ${await tail(m.log)}`,
          );
      }
      if (this.#deps.clock.monotonic() > deadline)
        throw new DevError('dev_timeout', `etcd did not become healthy within 20 s:\n${await logs()}`);
      await this.#deps.clock.sleep(100);
    }
  }

  /** The etcd member inside `host` (hosts topology), started like the host's other processes. */
  async #startMember(plan: ClusterPlan, host: HostPlan, ctx: Applier): Promise<void> {
    const member = plan.etcd.members.find((m) => m.host === host.name);
    if (member === undefined) return;
    const rec = ctx.state.processes.find((p) => p.id === member.processId);
    if (rec !== undefined && (await isRunning(rec))) return;
    await mkdir(member.dataDir, { recursive: true });
    const p = await spawnDetached(
      [
        'nsenter',
        `--net=/var/run/netns/${host.netns}`,
        '--',
        this.#deps.etcdBinary ?? 'etcd',
        ...etcdArgv(plan, member),
      ],
      { logFile: member.log },
    );
    await ctx.setProcess({ id: member.processId, ...p });
  }

  async #fleetdFlags(): Promise<Set<string>> {
    if (this.#supportedFlags !== undefined) return this.#supportedFlags;
    const r = await runCommand([...this.#fleetdCommand(), '--help'], { allowFail: true });
    this.#supportedFlags = parseHelpFlags(r.stdout + r.stderr);
    return this.#supportedFlags;
  }

  #fleetdCommand(): readonly string[] {
    // The flags of bin/fleetd.js's #! line, which running it through `node` bypasses.
    return (
      this.#deps.fleetdCommand ?? [
        process.execPath,
        ...FLEETD_NODE_FLAGS,
        join(REPO_ROOT, 'bin', 'fleetd.js'),
      ]
    );
  }

  async #bootHost(plan: ClusterPlan, host: HostPlan, ctx: Applier): Promise<void> {
    const enter = ['nsenter', `--net=/var/run/netns/${host.netns}`, '--'];
    await mkdir(host.stateDir, { recursive: true });
    await this.#startMember(plan, host, ctx);
    if (host.docker !== undefined) {
      const id = `${host.name}/dockerd`;
      const rec = ctx.state.processes.find((p) => p.id === id);
      if (rec === undefined || !(await isRunning(rec))) {
        await mkdir(join(host.stateDir, 'docker'), { recursive: true });
        await unmountUnder(host.docker.execRoot);
        await rm(host.docker.execRoot, { recursive: true, force: true });
        await rm(host.docker.pidFile, { force: true });
        await rm(host.docker.socket, { force: true });
        const p = await spawnDetached(
          [...enter, this.#deps.dockerdBinary ?? 'dockerd', ...dockerdArgv(host.docker)],
          {
            logFile: host.docker.log,
          },
        );
        await ctx.setProcess({ id, ...p });
      }
      await this.#waitDockerd(host, ctx);
    }
    const id = `${host.name}/fleetd`;
    const rec = ctx.state.processes.find((p) => p.id === id);
    if (rec !== undefined && (await isRunning(rec))) return;
    await ensureApiToken(plan.apiTokenFile);
    const args = fleetdArgs(plan, host, await this.#fleetdFlags());
    const p = await spawnDetached([...enter, ...this.#fleetdCommand(), ...args], {
      logFile: host.fleetdLog,
      env: { ...process.env, ...fleetdEnv(host) },
      cwd: host.stateDir,
    });
    await ctx.setProcess({ id, ...p });
  }

  async #waitDockerd(host: HostPlan, ctx: Applier): Promise<void> {
    const docker = host.docker;
    if (docker === undefined) return;
    const deadline = this.#deps.clock.monotonic() + 60_000;
    while (!(await dockerPing(docker.socket))) {
      const rec = ctx.state.processes.find((p) => p.id === `${host.name}/dockerd`);
      if (rec === undefined || !(await isRunning(rec)))
        throw new DevError('dev_step_failed', `${host.name}'s dockerd exited: ${await tail(docker.log)}`);
      if (this.#deps.clock.monotonic() > deadline)
        throw new DevError(
          'dev_timeout',
          `${host.name}'s dockerd did not answer within 60 s: ${await tail(docker.log)}`,
        );
      await this.#deps.clock.sleep(200);
    }
  }

  /** The farm images (scripts/build-images.sh, when present) copied into each host's dockerd. */
  async #distributeImages(hosts: readonly HostPlan[]): Promise<void> {
    const script = join(REPO_ROOT, 'scripts', 'build-images.sh');
    if (!existsSync(script)) return;
    this.#deps.progress('fleetts dev: building the farm images (scripts/build-images.sh)');
    const built = await runCommand(['bash', script], { allowFail: true, timeoutMs: 1_200_000 });
    if (built.code !== 0) {
      this.#deps.progress(
        `fleetts dev: building images failed; hosts start without them: ${built.stderr.trim().split('\n').at(-1) ?? ''}`,
      );
      return;
    }
    const list = await runCommand(['docker', 'images', '--format', '{{.Repository}}:{{.Tag}}', 'fleetts/*'], {
      allowFail: true,
    });
    const images = list.stdout.split('\n').filter((l) => l !== '' && !l.includes('<none>'));
    if (images.length === 0) return;
    for (const h of hosts) {
      if (h.docker === undefined) continue;
      this.#deps.progress(`fleetts dev: loading ${images.length} images into ${h.name}`);
      await runCommand(
        [
          'bash',
          '-c',
          'docker save "$@" | docker -H "unix://$0" load -q >/dev/null',
          h.docker.socket,
          ...images,
        ],
        { timeoutMs: 600_000 },
      );
    }
  }

  async #waitRegistered(
    plan: ClusterPlan,
    hosts: readonly HostPlan[],
    ctx: Applier,
    timeoutMs: number,
  ): Promise<void> {
    if (hosts.length === 0) return;
    const deadline = this.#deps.clock.monotonic() + timeoutMs;
    for (;;) {
      const machines = await this.#registeredMachines(plan, 2_000);
      const missing = hosts.filter((h) => machines?.get(h.machineId) !== h.ip);
      if (missing.length === 0) return;
      for (const h of missing) {
        const rec = ctx.state.processes.find((p) => p.id === `${h.name}/fleetd`);
        if (rec === undefined || !(await isRunning(rec)))
          throw new DevError('dev_step_failed', `${h.name}'s fleetd exited: ${await tail(h.fleetdLog)}`);
      }
      if (this.#deps.clock.monotonic() > deadline) {
        const detail = await Promise.all(missing.map(async (h) => `${h.name}: ${await tail(h.fleetdLog)}`));
        throw new DevError(
          'dev_timeout',
          `${missing.map((h) => h.name).join(', ')} did not register within ${timeoutMs} ms; last log lines:\n${detail.join('\n')}`,
        );
      }
      await this.#deps.clock.sleep(200);
    }
  }

  /** machine id → registered IP, or undefined when etcd does not answer in time. */
  async #registeredMachines(plan: ClusterPlan, timeoutMs: number): Promise<Map<string, string> | undefined> {
    // Loaded here only: the CLI's start-up does not pay for the etcd client.
    const { createEtcdRegistry } = await import('../registry/etcd-registry.js');
    const registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints], requestTimeoutMs: timeoutMs });
    try {
      const set = await registry.listMachines();
      return new Map(set.items.map((m) => [String(m.id), m.ip]));
    } catch {
      return undefined;
    } finally {
      await registry.close().catch(() => undefined);
    }
  }

  /** SIGKILLs every process of these hosts' namespaces (and their children) in one sweep. */
  /** Kills every process of the hosts; `onKill` is called at the moment of the kill (after the pids are found). */
  async #killHosts(hosts: readonly HostPlan[], onKill?: () => void): Promise<void> {
    const roots: number[] = [];
    for (const h of hosts) roots.push(...(await netnsPids(h.netns)));
    const pids = (await withDescendants(roots)).filter((p) => p !== process.pid);
    const cgroups = await fleettsCgroups(pids);
    onKill?.();
    await killAll(pids, this.#deps.clock);
    for (const h of hosts) {
      await unmountUnder(h.stateDir);
      if (h.docker !== undefined) {
        // The exec root is dockerd's /run: a reboot finds it empty (stale containerd pid files
        // would make the next dockerd wait for a containerd that is not there).
        await rm(h.docker.execRoot, { recursive: true, force: true });
        await rm(h.docker.pidFile, { force: true });
        await rm(h.docker.socket, { force: true });
      }
    }
    await removeCgroupTrees(cgroups);
  }

  async #remove(r: Resource): Promise<void> {
    switch (r.kind) {
      case 'bridge':
        return deleteLink(r.name);
      case 'link':
        return deleteLink(r.name);
      case 'netns':
        return deleteNetns(r.name);
      case 'iptables':
        return deleteIptablesRule(r.rule);
      case 'mount':
        if ((await mountTargets()).includes(r.target)) {
          const plain = await runCommand(['umount', r.target], { allowFail: true });
          if (plain.code !== 0) await runCommand(['umount', '-l', r.target], { allowFail: true });
        }
        // The mount point `up` made; rmdir leaves it when something else put files there.
        await rmdir(r.target).catch(() => undefined);
        return;
      case 'dir':
        await rm(r.path, { recursive: true, force: true });
        return;
    }
  }
}

/** Records resources before making them, and processes right after starting them. */
class Applier {
  state: DevState;
  constructor(state: DevState) {
    this.state = state;
  }

  async save(next: DevState): Promise<void> {
    this.state = next;
    await writeState(next);
  }

  async ensure(resource: Resource, make: () => Promise<unknown>): Promise<void> {
    if (!this.state.resources.some((r) => sameResource(r, resource)))
      await this.save({ ...this.state, resources: [...this.state.resources, resource] });
    await make();
  }

  async setProcess(p: ProcessRecord): Promise<void> {
    await this.save({ ...this.state, processes: [...this.state.processes.filter((x) => x.id !== p.id), p] });
  }
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const r = await runCommand(['stat', '-L', '-c', '%d:%i', a, b], { allowFail: true });
  const [x, y] = r.stdout.trim().split('\n');
  return r.code === 0 && x !== undefined && x === y;
}

async function tail(file: string, lines = 8): Promise<string> {
  try {
    const text = (await readFile(file, 'utf8')).trimEnd();
    return text.split('\n').slice(-lines).join('\n') || `(${file} is empty)`;
  } catch {
    return `(no log at ${file})`;
  }
}

async function etcdHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { health?: unknown };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

function dockerPing(socketPath: string): Promise<boolean> {
  return new Promise((resolveP) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1_000 }, (res) => {
      res.resume();
      resolveP(res.statusCode === 200);
    });
    req.on('error', () => resolveP(false));
    req.on('timeout', () => {
      req.destroy();
      resolveP(false);
    });
    req.end();
  });
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolveP, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolveP(port));
    });
  });
}

/**
 * The dev cluster's API token: made once (32 random bytes, hex, mode 0600) and kept in the state
 * dir, so that every fleetd of the cluster, and every boot of a host, has the same.
 */
async function ensureApiToken(path: string): Promise<void> {
  try {
    if ((await readFile(path, 'utf8')).trim() !== '') return;
  } catch {
    // absent: made below
  }
  await writeFile(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
}
