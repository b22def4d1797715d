// The MySQL cluster on a real dev cluster, for the e2e test and the rejoin benchmark: brings up
// hosts (src/demo's WebFarmDemo for the dev cluster, the fleetts wrapper and the CLI), submits the
// [Service] units of examples/process/mysql*@.unit, and talks SQL over TCP to announced members.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/lib/clock.js';
import { REPO_ROOT, WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { DEFAULT_KEY_PREFIX } from '../../src/registry/keys.js';
import { GaleraStore, type BootstrapRecord } from '../../src/galera/galera-store.js';
import { runSql, type SqlResult } from '../../src/galera/sql-client.js';
import { waitFor } from '../helpers/wait.js';

export const APP_USER = 'app';
export const APP_PASSWORD = 'app-secret';
const INIT_SQL = `CREATE DATABASE IF NOT EXISTS app;
CREATE USER IF NOT EXISTS '${APP_USER}'@'%' IDENTIFIED BY '${APP_PASSWORD}';
GRANT ALL ON app.* TO '${APP_USER}'@'%';
CREATE TABLE IF NOT EXISTS app.notes (id INT PRIMARY KEY, body VARCHAR(200) NOT NULL);
`;

export class GaleraCluster {
  readonly demo: WebFarmDemo;
  readonly root: string;
  #kv: EtcdKv | undefined;

  private constructor(root: string, demo: WebFarmDemo) {
    this.root = root;
    this.demo = demo;
  }

  /** Brings up `nodes` hosts and installs the wrapper; nothing is started. */
  static async up(nodes: number, progress: (line: string) => void = () => undefined): Promise<GaleraCluster> {
    if (process.getuid?.() !== 0)
      throw new Error(
        'the Galera e2e needs root (network namespaces, mounts, mariadbd as mysql); run it as root',
      );
    const root = await mkdtemp(join(tmpdir(), 'fleetts-galera-'));
    await chmod(root, 0o755);
    const demo = new WebFarmDemo({
      clock: systemClock,
      progress,
      stateDir: join(root, 'state'),
      contextFile: join(root, 'context.json'),
    });
    const c = new GaleraCluster(root, demo);
    // etcd outside the hosts: these faults test fleetts; with a member per host (the dev default)
    // a partitioned or dead member stalls the etcd client (docs/dev-cluster.md).
    await demo.up({ nodes, leaseTtlMs: 4_000, sharedPath: join(root, 'shared'), etcd: 'external' });
    await demo.installFleetts();
    return c;
  }

  get unitsDir(): string {
    return join(this.root, 'units');
  }

  /** The example units, with `--init-sql` creating the app user (TCP clients need one). */
  async writeUnits(): Promise<void> {
    await mkdir(this.unitsDir, { recursive: true });
    const initSql = join(this.demo.plan.shared.target, 'mysql', 'init.sql');
    await mkdir(join(this.demo.plan.shared.target, 'mysql'), { recursive: true });
    await writeFile(initSql, INIT_SQL, { mode: 0o644 });
    for (const name of ['mysql@.unit', 'mysql-discovery@.unit']) {
      let text = await readFile(join(REPO_ROOT, 'examples', 'process', name), 'utf8');
      if (name === 'mysql@.unit') {
        if (!text.includes('--run-dir /run/fleetts/%m/mysql@%i'))
          throw new Error('examples/process/mysql@.unit changed: update test/galera/galera-cluster.ts');
        text = text.replace('--run-dir /run/fleetts/%m/mysql@%i', `$& --init-sql ${initSql}`);
      }
      await writeFile(join(this.unitsDir, name), text);
    }
  }

  /** `fleetts start` of the members and their sidekicks in one command (they start together). */
  async start(instances: readonly number[]): Promise<void> {
    const units = instances.flatMap((i) => [`mysql@${i}.unit`, `mysql-discovery@${i}.unit`]);
    const r = await this.demo.fleetts(['start', ...units], { cwd: this.unitsDir });
    if (r.code !== 0) throw new Error(`\`${r.command}\` failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  /** instance (unit) → announced address `ip:3306`. */
  async announced(): Promise<Map<string, string>> {
    const set = await this.demo.registry.listServiceInstances('mysql');
    return new Map(set.items.map((i) => [i.unit ?? i.instance, i.address]));
  }

  /** The host name (host1…) whose IP is `address`'s. */
  hostOfAddress(address: string): string | undefined {
    const ip = address.split(':')[0];
    return this.demo.plan.hosts.find((h) => h.ip === ip)?.name;
  }

  async bootstraps(): Promise<BootstrapRecord[]> {
    this.#kv ??= new EtcdKv({ endpoints: [...this.demo.plan.etcd.endpoints] }, systemClock);
    const store = new GaleraStore({
      kv: this.#kv,
      clock: systemClock,
      prefix: DEFAULT_KEY_PREFIX,
      cluster: 'mysql',
    });
    return store.listBootstraps();
  }

  /** One SQL batch over TCP to `address` as the app user. */
  sql(address: string, statement: string, timeoutMs = 15_000): Promise<SqlResult> {
    return runSql({ address, user: APP_USER, password: APP_PASSWORD, database: 'app' }, statement, timeoutMs);
  }

  /** Retries `statement` on `address` until it succeeds or `timeoutMs` passes. */
  async sqlUntil(address: string, statement: string, timeoutMs: number): Promise<SqlResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.sql(address, statement);
      if (r.ok || Date.now() > deadline) return r;
      await systemClock.sleep(500);
    }
  }

  /** Polls until `probe` returns a value, or throws naming `what` (with `fleetts list-units`). */
  async until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
    try {
      return await waitFor(what, probe, { timeoutMs, intervalMs: 250 });
    } catch (err) {
      const listed = await this.demo.fleetts(['list-units']);
      throw new Error(`${(err as Error).message}\n${listed.stdout}${listed.stderr}`);
    }
  }

  /** dev down, the member data and run dirs of every host, the temp dir. */
  async close(): Promise<void> {
    this.#kv?.close();
    const hosts = (() => {
      try {
        return this.demo.plan.hosts;
      } catch {
        return [];
      }
    })();
    await this.demo.close({ down: true }).catch((err: unknown) => console.error('dev down failed:', err));
    for (const h of hosts)
      await rm(join('/var/lib/fleetts/mysql', h.machineId), { recursive: true, force: true });
    await rm(this.root, { recursive: true, force: true });
  }
}
