// The FTP service on a dev cluster, for the e2e test and the failover benchmark: brings up the
// cluster (src/dev), puts `fleetts` on the hosts' PATH (the demo's wrapper), creates the FTP
// directory and a user with the real CLI, submits examples/process/ftp*.unit, follows services/ftp
// in etcd and drives a real FTP client. Needs root (namespaces, PAM, chroot).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'basic-ftp';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { machineRunDir, unitTextFor } from '../../src/demo/farm-files.js';
import { REPO_ROOT, WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { splitAddress, withFtp } from '../../src/ftp/ftp-client.js';
import { waitFor } from '../helpers/wait.js';

export const FTP_UNITS = ['ftp.unit', 'ftp-discovery.unit'] as const;
export const FTP_USER = 'webmaster';
export const FTP_PASSWORD = `pw-${randomBytes(9).toString('base64url')}`;

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class FtpCluster {
  readonly root: string;
  readonly dev: DevCluster;
  readonly pamService = `fleetts-ftp-e2e-${randomBytes(3).toString('hex')}`;
  #plan: ClusterPlan | undefined;
  #registry: EtcdRegistry | undefined;
  readonly #off = new Set<string>();

  private constructor(root: string, progress: (line: string) => void) {
    this.root = root;
    this.dev = new DevCluster({
      stateDir: join(root, 'state'),
      clock: systemClock,
      progress,
      contextFile: join(root, 'context.json'),
    });
  }

  static async create(progress: (line: string) => void = () => undefined): Promise<FtpCluster> {
    if (process.getuid?.() !== 0)
      throw new Error('the FTP cluster needs root (network namespaces, mounts, PAM): run it as root');
    const root = await mkdtemp(join(tmpdir(), 'fleetts-ftp-e2e-'));
    // The guest account (not root) walks down to the users' homes on the shared path under here.
    await chmod(root, 0o755);
    return new FtpCluster(root, progress);
  }

  get plan(): ClusterPlan {
    if (this.#plan === undefined) throw new Error('the dev cluster is not up');
    return this.#plan;
  }

  get registry(): EtcdRegistry {
    if (this.#registry === undefined) throw new Error('the dev cluster is not up');
    return this.#registry;
  }

  get ftpDir(): string {
    return join(this.plan.shared.target, 'ftp');
  }

  /** Cluster up, fleetts on PATH, FTP directory and user made, units submitted and started. */
  async up(): Promise<void> {
    // etcd outside the hosts: these faults test fleetts; with a member per host (the dev default)
    // a partitioned or dead member stalls the etcd client (docs/dev-cluster.md).
    const r = await this.dev.up({
      nodes: 3,
      leaseTtlMs: 4_000,
      sharedPath: join(this.root, 'shared'),
      etcd: 'external',
    });
    this.#plan = r.plan;
    this.#registry = createEtcdRegistry({ endpoints: [...r.plan.etcd.endpoints] });
    await new WebFarmDemo({
      clock: systemClock,
      progress: () => undefined,
      stateDir: this.dev.stateDir,
    }).installFleetts();
    await this.mustRun(['ftp', 'init', '--ftp-dir', this.ftpDir, '--pam-service', this.pamService]);
    await this.mustRun(
      ['ftp', 'add-user', FTP_USER, '--ftp-dir', this.ftpDir, '--password-stdin'],
      `${FTP_PASSWORD}\n`,
    );
    const units = join(this.plan.shared.target, 'units');
    await mkdir(units, { recursive: true });
    for (const name of FTP_UNITS) {
      const text = await readFile(join(REPO_ROOT, 'examples', 'process', name), 'utf8');
      await writeFile(join(units, name), unitTextFor(text, this.plan.shared.target));
    }
    await this.mustRun(['start', ...FTP_UNITS], undefined, units);
  }

  /** The real CLI against a host that is on; `stdin` piped in when given. */
  fleetts(args: readonly string[], stdin?: string, cwd = REPO_ROOT): Promise<CommandResult> {
    const host = this.plan.hosts.find((h) => !this.#off.has(h.name));
    const endpoint = host === undefined ? this.plan.endpoint : `unix://${host.apiSocket}`;
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(REPO_ROOT, 'bin', 'fleetts.js'), ...args],
        { cwd, env: { ...process.env, FLEETTS_ENDPOINT: endpoint }, timeout: 120_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
      child.stdin?.end(stdin);
    });
  }

  async mustRun(args: readonly string[], stdin?: string, cwd?: string): Promise<CommandResult> {
    const r = await this.fleetts(args, stdin, cwd);
    if (r.code !== 0)
      throw new Error(`fleetts ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
    return r;
  }

  /** The announced FTP server now, if any. */
  async announced(): Promise<ServiceInstance | undefined> {
    const set = await this.registry.listServiceInstances('ftp');
    return set.items[0];
  }

  hostOfMachine(machineId: string | undefined): HostPlan | undefined {
    return this.plan.hosts.find((h) => h.machineId === machineId);
  }

  /** Polls (every `pollMs`) until `probe` returns a value or the deadline passes. */
  until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, pollMs = 200): Promise<T> {
    return waitFor(what, probe, { timeoutMs, intervalMs: pollMs });
  }

  /** Resolves services/ftp and logs in there: one client session (throws on any failure). */
  async session<T>(body: (client: Client, at: ServiceInstance) => Promise<T>, timeoutMs = 3_000): Promise<T> {
    const at = await this.announced();
    if (at === undefined) throw new Error('no FTP server announced under services/ftp');
    const { host, port } = splitAddress(at.address);
    return withFtp({ host, port, user: FTP_USER, password: FTP_PASSWORD, timeoutMs }, (c) => body(c, at));
  }

  async powerOff(host: string): Promise<void> {
    this.#off.add(host);
    await this.dev.powerOff(host);
  }

  async powerOn(host: string): Promise<void> {
    await this.dev.powerOn(host);
    this.#off.delete(host);
  }

  /** Logs of vsftpd and fleetd, for a failure's message. */
  async logs(): Promise<string> {
    const parts: string[] = [];
    for (const h of this.#plan?.hosts ?? []) {
      const v = await readFile(join(machineRunDir(h.machineId), 'ftp', 'vsftpd.log'), 'utf8').catch(() => '');
      const f = await readFile(h.fleetdLog, 'utf8').catch(() => '');
      parts.push(`== ${h.name} vsftpd ==\n${v.slice(-1500)}\n== ${h.name} fleetd ==\n${f.slice(-3000)}`);
    }
    return parts.join('\n');
  }

  async close(): Promise<void> {
    await this.#registry?.close().catch(() => undefined);
    const hosts = this.#plan?.hosts ?? (await this.dev.plan())?.hosts ?? [];
    await this.dev.down().catch((err: unknown) => console.error('dev down failed:', err));
    for (const h of hosts) await rm(machineRunDir(h.machineId), { recursive: true, force: true });
    await rm(join('/etc/pam.d', this.pamService), { force: true });
    await rm(this.root, { recursive: true, force: true });
  }
}
