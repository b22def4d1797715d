// `fleetts dev …`: the local multi-host cluster (src/dev). Thin: parses flags, calls DevCluster,
// prints; every failure is a DevError (exit 1) or a UsageError (exit 2) for the top-level catch.
import { Option, type Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import {
  DEFAULT_DEV_LEASE_TTL_MS,
  DEFAULT_DEV_STATE_DIR,
  DEFAULT_NODES,
  DEFAULT_SHARED_PATH,
} from '../dev/defaults.js';
// The cluster's code (and the etcd client it uses) is loaded by the dev commands only: every other
// command of the CLI starts faster without it.
import type { DevCluster, DevDeps } from '../dev/dev-cluster.js';
import type { DevRuntime, EtcdTopology } from '../dev/plan.js';
import { formatTable, type Column } from './table.js';
import type { CliContext } from './main.js';
import type { HostStatus } from '../dev/dev-cluster.js';
import type { EtcdMemberStatus } from '../dev/etcd-members.js';

interface StateDirOpts {
  readonly stateDir: string;
}

/** `overrides`: tests inject the uid check, the context file or the fleetd command. */
export function registerDev(program: Command, ctx: CliContext, overrides: Partial<DevDeps> = {}): void {
  const dev = program
    .command('dev')
    .description(
      'a local cluster of several hosts on this machine (network namespaces, etcd, one fleetd each)',
    )
    .addHelpText(
      'after',
      `
Examples:
  sudo fleetts dev up --nodes 3          3 hosts, an etcd member in each; fleetts commands then reach them
  sudo fleetts dev up --etcd external    one etcd outside the hosts instead (no fault reaches it)
  fleetts dev status                     hosts, IPs, machine ids, power, network, etcd member and leader
  sudo fleetts dev power-off host2       pull host2's plug (every process in it killed at once)
  sudo fleetts dev partition host1       cut host1's network (etcd included); heal restores it
  sudo fleetts dev down                  stop and remove everything dev up made`,
    );
  const stateDirOption = (): Option =>
    new Option('--state-dir <dir>', 'where the cluster keeps its state, logs and shared directory')
      .env('FLEETTS_DEV_STATE_DIR')
      .default(DEFAULT_DEV_STATE_DIR);
  const cluster = async (opts: StateDirOpts): Promise<DevCluster> => {
    const { DevCluster } = await import('../dev/dev-cluster.js');
    return new DevCluster({
      stateDir: opts.stateDir,
      clock: ctx.clock,
      progress: (line) => ctx.output.err(line),
      ...overrides,
    });
  };

  dev
    .command('up')
    .description('start etcd and N hosts; returns when every host is registered, and prints the endpoint')
    .addOption(new Option('--nodes <n>', 'how many hosts').default(String(DEFAULT_NODES)))
    .addOption(
      new Option('--runtime <runtime>', 'how units run on the hosts')
        .choices(['process', 'docker'])
        .default('process'),
    )
    .addOption(
      new Option(
        '--etcd <topology>',
        'where etcd runs: hosts (a member in each of the first 3 hosts, as on real hosts) or external ' +
          '(one etcd outside the hosts); default: hosts with 3 or more hosts, else external',
      ).choices(['hosts', 'external']),
    )
    .addOption(stateDirOption())
    .addOption(
      new Option('--lease-ttl-ms <ms>', "fleetd's membership lease TTL").default(
        String(DEFAULT_DEV_LEASE_TTL_MS),
      ),
    )
    .addOption(
      new Option('--shared-path <dir>', 'where every host sees the shared directory').default(
        DEFAULT_SHARED_PATH,
      ),
    )
    .addOption(new Option('--skip-images', 'Docker runtime: do not build and load the farm images'))
    .action(
      async (
        opts: StateDirOpts & {
          nodes: string;
          runtime: DevRuntime;
          etcd?: EtcdTopology;
          leaseTtlMs: string;
          sharedPath: string;
          skipImages?: boolean;
        },
        cmd: Command,
      ) => {
        const nodes = wholeNumber(opts.nodes, '--nodes');
        const leaseTtlMs = wholeNumber(opts.leaseTtlMs, '--lease-ttl-ms');
        if (leaseTtlMs < 2_000)
          throw new UsageError('--lease-ttl-ms must be at least 2000 (etcd grants leases in whole seconds)');
        // Given flags only: on a running cluster, defaults must not read as a request to change it.
        const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
        const result = await (
          await cluster(opts)
        ).up({
          ...(given('nodes') ? { nodes } : {}),
          ...(given('runtime') ? { runtime: opts.runtime } : {}),
          ...(opts.etcd !== undefined ? { etcd: opts.etcd } : {}),
          ...(given('leaseTtlMs') ? { leaseTtlMs } : {}),
          ...(given('sharedPath') ? { sharedPath: opts.sharedPath } : {}),
          ...(opts.skipImages === true ? { skipImages: true } : {}),
        });
        const { plan } = result;
        ctx.output.out(
          [
            result.wasUp
              ? `dev cluster already up (checked): ${plan.hosts.length} hosts`
              : `dev cluster up: ${plan.hosts.length} hosts`,
            ...plan.hosts.map((h) => `  ${h.name}  ${h.ip}  ${h.machineId}`),
            plan.etcd.topology === 'hosts'
              ? `etcd:     members in ${plan.etcd.members.map((m) => m.host).join(', ')}: ${plan.etcd.clientUrls.join(',')}`
              : `etcd:     ${plan.etcd.endpoints.join(',')} (outside the hosts; they use ${plan.etcd.clientUrls.join(',')})`,
            `shared:   ${plan.shared.target} on every host (${plan.shared.source})`,
            `endpoint: ${plan.endpoint}`,
            'fleetts commands in this account now use it; elsewhere: eval "$(fleetts dev env)"',
          ].join('\n'),
        );
      },
    );

  dev
    .command('down')
    .description('stop every process and remove every namespace, link, rule and mount dev up made')
    .addOption(stateDirOption())
    .addOption(new Option('--purge', 'also delete the state dir (machine ids, logs, shared files)'))
    .action(async (opts: StateDirOpts & { purge?: boolean }) => {
      const c = await cluster(opts);
      const { removed } = await c.down({ purge: opts.purge === true });
      ctx.output.out(
        removed === 0
          ? `no dev cluster resources left in ${c.stateDir}`
          : `dev cluster down (${removed} resources removed)`,
      );
    });

  dev
    .command('status')
    .description(
      "the cluster's hosts: IP, machine id, power, network, whether fleetd is registered, and the etcd member it runs",
    )
    .addOption(stateDirOption())
    .action(async (opts: StateDirOpts) => {
      const s = await (await cluster(opts)).status();
      ctx.output.out(
        [
          `cluster:  ${s.phase} (${s.runtime} runtime; state in ${s.stateDir})`,
          `endpoint: ${s.endpoint}`,
          `etcd:     ${s.etcd} (${s.etcdTopology === 'hosts' ? 'a member in each of the first 3 hosts' : 'outside the hosts'}${etcdSummary(s.etcdMembers)})`,
          `shared:   ${s.sharedPath}`,
          '',
          formatTable(STATUS_COLUMNS, s.hosts, { legend: true, full: true }),
        ].join('\n'),
      );
    });

  dev
    .command('env')
    .description('print the shell line that points fleetts at the dev cluster')
    .addOption(stateDirOption())
    .action(async (opts: StateDirOpts) => {
      ctx.output.out(await (await cluster(opts)).env());
    });

  const hostCommand = (
    name: string,
    description: string,
    act: (c: DevCluster, host: string) => Promise<string>,
  ): void => {
    dev
      .command(name)
      .description(description)
      .argument('<host>', 'host name (host2), machine id, or an unambiguous prefix of the id')
      .addOption(stateDirOption())
      .action(async (host: string, opts: StateDirOpts) => {
        ctx.output.out(await act(await cluster(opts), host));
      });
  };
  hostCommand(
    'power-off',
    "pull the host's plug: kill every process in it at once (fleetd, units, dockerd)",
    async (c, q) => {
      const h = await c.powerOff(q);
      return `${h.name} (${h.machineId}) powered off`;
    },
  );
  hostCommand(
    'power-on',
    'boot the host again (same machine id); returns when it is registered',
    async (c, q) => {
      const h = await c.powerOn(q);
      return `${h.name} (${h.machineId}) powered on`;
    },
  );
  hostCommand(
    'partition',
    "cut the host's network (etcd and the other hosts); its processes keep running",
    async (c, q) => {
      const h = await c.partition(q);
      return `${h.name} (${h.machineId}) partitioned`;
    },
  );
  hostCommand('heal', "restore the host's network; returns when its fleetd has rejoined", async (c, q) => {
    const h = await c.heal(q);
    return `${h.name} (${h.machineId}) healed`;
  });
}

const STATUS_COLUMNS: readonly Column<HostStatus>[] = [
  { field: 'host', cell: (h) => h.name },
  { field: 'machine', cell: (h) => h.machineId },
  { field: 'ip', cell: (h) => h.ip },
  { field: 'power', cell: (h) => h.power },
  { field: 'network', cell: (h) => h.network },
  { field: 'registered', cell: (h) => h.registered },
  { field: 'etcd', cell: (h) => (h.etcd === 'none' ? '-' : h.etcd) },
];

/** `; leader host2` or `; no leader` (the external member leads itself). */
function etcdSummary(members: readonly EtcdMemberStatus[]): string {
  if (members.length < 2) return members[0]?.state === 'down' ? '; not answering' : '';
  const leader = members.find((m) => m.state === 'leader');
  return leader === undefined ? '; no leader' : `; leader ${leader.host ?? leader.name}`;
}

function wholeNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a whole number greater than 0, not "${value}"`);
  return n;
}
