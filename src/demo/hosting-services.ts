// The hosting cluster's other services beside the web farm, for `npm run demo -- --hosting` and its
// e2e test: the MySQL (Galera) cluster and FTP of examples/process/, set up on the dev cluster of a
// WebFarmDemo, checked through their real clients (mariadb over TCP, FTP), and one host's
// power-off followed until every service is whole again and the host has rejoined.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { download, splitAddress, upload, withFtp } from '../ftp/ftp-client.js';
import { runSql, type SqlResult } from '../galera/sql-client.js';
import { DemoError } from './demo-error.js';
import type { TimedEvent } from './failover-timeline.js';
import { GLOBAL_UNITS, unitTextFor } from './farm-files.js';
import { REPO_ROOT, type CommandOutput, type WebFarmDemo } from './web-farm-demo.js';

export const MYSQL_INSTANCES = [1, 2, 3] as const;
export const MYSQL_UNITS = MYSQL_INSTANCES.flatMap((i) => [`mysql@${i}.unit`, `mysql-discovery@${i}.unit`]);
export const FTP_UNITS = ['ftp.unit', 'ftp-discovery.unit'] as const;
export const HOSTING_SERVICES = ['web', 'lb', 'mysql', 'ftp'] as const;
const MYSQL_TEMPLATES = ['mysql@.unit', 'mysql-discovery@.unit'] as const;
/** Where the members keep their data (examples/process/mysql@.unit): per machine, per instance. */
const MYSQL_DATA_ROOT = '/var/lib/fleetts/mysql';

export interface HostingServicesDeps {
  readonly farm: WebFarmDemo;
  readonly clock: Clock;
}

/** What one host's power-off did to the services, in ms after the power-off. */
export interface HostOutage {
  readonly host: string;
  readonly t0: number;
  readonly unitsOnHost: readonly string[];
  /** Every unit of the host that can move is active elsewhere, the farm's upstream is whole. */
  readonly webWholeMs: number;
  /** ftp.unit announced on another host and the file uploaded before read back identical. */
  readonly ftpBackMs: number;
  readonly ftpHost: string;
  /** A row written through one surviving member and read through the other. */
  readonly mysqlServedMs: number;
  /** The member of the dead host, which Conflicts= keeps off the hosts that have one. */
  readonly mysqlWaiting: string | undefined;
  /** `fleetts list-unit-files` while the host is off: why that member waits. */
  readonly unitFiles: string;
  readonly events: readonly TimedEvent[];
}

export interface Rejoin {
  readonly host: string;
  /** ms after the power-on: the member Synced and announced again on its host. */
  readonly syncedMs: number;
  /** Rows the rejoined member serves (written before and during the outage). */
  readonly rows: readonly string[];
}

export class HostingServices {
  readonly #d: HostingServicesDeps;
  readonly #appPassword = `app-${randomBytes(9).toString('base64url')}`;
  readonly #ftpPassword = `ftp-${randomBytes(9).toString('base64url')}`;
  readonly ftpUser = 'webmaster';
  readonly #uploaded = new Map<string, Buffer>();

  constructor(deps: HostingServicesDeps) {
    this.#d = deps;
  }

  get #shared(): string {
    return this.#d.farm.plan.shared.target;
  }

  get #units(): string {
    return this.#d.farm.paths.units;
  }

  get #initSql(): string {
    return join(this.#shared, 'mysql', 'init.sql');
  }

  /**
   * The services' files on shared storage: the unit files, the SQL a bootstrapping member runs
   * (the `app` database and a user for TCP clients), the FTP directory with one virtual user.
   * Returns what it wrote.
   */
  async prepare(): Promise<string[]> {
    const written: string[] = [];
    await mkdir(join(this.#shared, 'mysql'), { recursive: true });
    await writeFile(
      this.#initSql,
      [
        'CREATE DATABASE IF NOT EXISTS app;',
        `CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY '${this.#appPassword}';`,
        "GRANT ALL ON app.* TO 'app'@'%';",
        'CREATE TABLE IF NOT EXISTS app.notes (id INT PRIMARY KEY, body VARCHAR(200) NOT NULL);',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    written.push(this.#initSql);
    await mkdir(this.#units, { recursive: true });
    for (const name of [...MYSQL_TEMPLATES, ...FTP_UNITS]) {
      let text = await readFile(join(REPO_ROOT, 'examples', 'process', name), 'utf8');
      // The demo's members also create the app's database and user when they bootstrap.
      if (name === 'mysql@.unit') text = withInitSql(text, this.#initSql);
      const path = join(this.#units, name);
      await writeFile(path, unitTextFor(text, this.#shared), { mode: 0o644 });
      written.push(path);
    }
    const ftpDir = join(this.#shared, 'ftp');
    await this.#mustRun(['ftp', 'init', '--ftp-dir', ftpDir]);
    const users = await this.#mustRun(['ftp', 'list-users', '--ftp-dir', ftpDir]);
    if (!users.stdout.split(/\s+/).includes(this.ftpUser))
      await this.#mustRun(['ftp', 'add-user', this.ftpUser, '--ftp-dir', ftpDir, '--password-stdin'], {
        stdin: `${this.#ftpPassword}\n`,
      });
    else
      await this.#mustRun(['ftp', 'passwd', this.ftpUser, '--ftp-dir', ftpDir, '--password-stdin'], {
        stdin: `${this.#ftpPassword}\n`,
      });
    written.push(ftpDir);
    return written;
  }

  /** `fleetts start` of the three members with their sidekicks (at once), then FTP. */
  async deploy(): Promise<CommandOutput[]> {
    return this.#d.farm.startGroups([MYSQL_UNITS, [...FTP_UNITS]], { timeoutMs: 240_000 });
  }

  /** Announced members: unit → `ip:3306`. */
  members(): Map<string, string> {
    return this.#d.farm.timeline.instances('mysql');
  }

  ftpAddress(): string | undefined {
    return [...this.#d.farm.timeline.instances('ftp').values()][0];
  }

  /** Resolves when the three members are Synced and announced and the FTP server is announced. */
  async waitForServices(timeoutMs = 180_000): Promise<void> {
    const t = this.#d.farm.timeline;
    await t
      .until(
        'three MySQL members Synced and announced, and the FTP server announced',
        () =>
          this.members().size === MYSQL_INSTANCES.length &&
          this.ftpAddress() !== undefined &&
          [...MYSQL_UNITS, ...FTP_UNITS].every((u) => t.isActive(u))
            ? true
            : undefined,
        timeoutMs,
      )
      .catch((err: unknown) => {
        throw new DemoError('demo_timeout', `${(err as Error).message}; see \`fleetts list-units\``, {
          cause: err,
        });
      });
  }

  /** One SQL batch over TCP as the app user. */
  sql(address: string, statement: string, timeoutMs = 15_000): Promise<SqlResult> {
    return runSql(
      { address, user: 'app', password: this.#appPassword, database: 'app' },
      statement,
      timeoutMs,
    );
  }

  /** Retries until the batch succeeds (a member that just joined may still refuse); throws at the deadline. */
  async sqlUntil(address: string, statement: string, timeoutMs = 30_000): Promise<string> {
    const deadline = this.#d.clock.monotonic() + timeoutMs;
    for (;;) {
      const r = await this.sql(address, statement);
      if (r.ok) return r.stdout;
      if (this.#d.clock.monotonic() > deadline)
        throw new DemoError(
          'demo_step_failed',
          `SQL on ${address} failed: ${r.stderr.trim() || 'no answer'}`,
        );
      await this.#d.clock.sleep(500);
    }
  }

  /** Writes a row through `address`. */
  async writeRow(address: string, id: number, body: string): Promise<void> {
    await this.sqlUntil(
      address,
      `REPLACE INTO notes (id, body) VALUES (${id}, '${body.replace(/'/g, "''")}')`,
    );
  }

  /** The rows `address` serves, `id: body` each. */
  async rows(address: string): Promise<string[]> {
    const out = await this.sqlUntil(address, 'SELECT id, body FROM notes ORDER BY id');
    return out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.replace('\t', ': '));
  }

  /** Uploads `bytes` as `name` to the announced FTP server; returns its address. */
  async ftpUpload(name: string, bytes: Buffer): Promise<string> {
    const address = this.ftpAddress();
    if (address === undefined) throw new DemoError('demo_step_failed', 'no FTP server announced');
    await withFtp(this.#login(address), (c) => upload(c, name, bytes));
    this.#uploaded.set(name, bytes);
    return address;
  }

  /** Downloads `name` from the announced FTP server; undefined when that fails. */
  async ftpDownload(name: string): Promise<Buffer | undefined> {
    const address = this.ftpAddress();
    if (address === undefined) return undefined;
    return withFtp(this.#login(address), (c) => download(c, name)).catch(() => undefined);
  }

  /**
   * Pulls the plug on `host` and follows the cluster until every service is whole again: the web
   * farm's units active elsewhere and its upstream exact, the FTP server back on another host with
   * the uploaded file, the two surviving MySQL members taking writes; the dead host's member waits
   * (Conflicts=: one member per host) and `fleetts list-unit-files` says why.
   */
  async powerOff(host: string, timeoutMs = 120_000): Promise<HostOutage> {
    const farm = this.#d.farm;
    const t = farm.timeline;
    const unitsOnHost = t.unitsOn(host);
    const mysqlWaiting = unitsOnHost.find((u) => /^mysql@\d+\.unit$/.test(u));
    const survivors = [...this.members()].filter(([u]) => u !== mysqlWaiting).map(([, a]) => a);
    const t0 = await farm.powerOff(host);
    const since = (): number => this.#d.clock.now() - t0;
    const deadline = this.#d.clock.monotonic() + timeoutMs;
    const wait = async (what: string, probe: () => Promise<boolean>): Promise<number> => {
      for (;;) {
        if (await probe()) return since();
        if (this.#d.clock.monotonic() > deadline)
          throw new DemoError(
            'demo_timeout',
            `timed out after powering off ${host}: ${what}; see \`fleetts list-units\``,
          );
        await this.#d.clock.sleep(200);
      }
    };

    // MySQL first: the survivors must serve at once (they keep quorum: 2 of 3).
    const [a, b] = survivors;
    const mysqlServedMs =
      a === undefined || b === undefined
        ? NaN
        : await wait('a row written through one surviving member, read through the other', async () => {
            const w = await this.sql(
              a,
              "REPLACE INTO notes (id, body) VALUES (2, 'written while a host was off')",
            );
            if (!w.ok) return false;
            const r = await this.sql(b, 'SELECT body FROM notes WHERE id = 2');
            return r.ok && r.stdout.includes('written while a host was off');
          });
    // MySQL members stay with their data; the balancers run on every host (Global=true).
    const movable = unitsOnHost.filter(
      (u) => !/^mysql(-discovery)?@\d+\.unit$/.test(u) && !GLOBAL_UNITS.includes(u),
    );
    const webWholeMs = await wait('the farm whole again (units active elsewhere, upstream exact)', () => {
      const placement = t.placement();
      if (!movable.every((u) => placement.get(u) !== undefined && placement.get(u) !== host && t.isActive(u)))
        return Promise.resolve(false);
      const expected = farm.expectedBackends();
      return Promise.resolve(
        expected.length === 3 &&
          [...t.servers].sort().join(' ') === expected.join(' ') &&
          farm.lbAddress() !== undefined,
      );
    });
    const ftpBackMs = await wait(
      'the FTP server announced on another host, serving the uploaded files',
      async () => {
        const at = this.ftpAddress();
        if (at === undefined || t.hostOfAddress(at) === host) return false;
        for (const [name, bytes] of this.#uploaded) {
          const got = await this.ftpDownload(name);
          if (got === undefined || !got.equals(bytes)) return false;
        }
        return true;
      },
    );
    const unitFiles = await farm.fleetts(['list-unit-files']);
    return {
      host,
      t0,
      unitsOnHost,
      webWholeMs,
      ftpBackMs,
      ftpHost: t.hostOfAddress(this.ftpAddress() ?? ''),
      mysqlServedMs,
      mysqlWaiting,
      unitFiles: unitFiles.stdout,
      events: t.events.filter((e) => e.at >= t0),
    };
  }

  /** Boots the host again and waits until its member is Synced and announced there, with every row. */
  async powerOn(host: string, timeoutMs = 180_000): Promise<Rejoin> {
    const farm = this.#d.farm;
    const t = farm.timeline;
    const t0 = this.#d.clock.now();
    await farm.powerOn(host, { settleMs: 0 });
    await t
      .until(
        `three MySQL members announced again after powering ${host} on`,
        () => (this.members().size === MYSQL_INSTANCES.length ? true : undefined),
        timeoutMs,
      )
      .catch((err: unknown) => {
        throw new DemoError('demo_timeout', `${(err as Error).message}; see \`fleetts list-units\``, {
          cause: err,
        });
      });
    const syncedMs = this.#d.clock.now() - t0;
    const back = [...this.members().values()].find((a) => t.hostOfAddress(a) === host);
    if (back === undefined)
      throw new DemoError('demo_step_failed', `no MySQL member was announced on ${host} after it came back`);
    return { host, syncedMs, rows: await this.rows(back) };
  }

  /** The members' data dirs on every host (the dev cluster's hosts share this machine's disk). */
  async removeData(): Promise<void> {
    for (const h of this.#d.farm.plan.hosts)
      await rm(join(MYSQL_DATA_ROOT, h.machineId), { recursive: true, force: true });
  }

  #login(address: string): { host: string; port: number; user: string; password: string } {
    return { ...splitAddress(address), user: this.ftpUser, password: this.#ftpPassword };
  }

  async #mustRun(args: readonly string[], o: { stdin?: string } = {}): Promise<CommandOutput> {
    const r = await this.#d.farm.fleetts(args, o);
    if (r.code !== 0)
      throw new DemoError(
        'demo_step_failed',
        `\`${r.command}\` failed (exit ${r.code}):\n${r.stderr}${r.stdout}`,
      );
    return r;
  }
}

/** mysql@.unit's ExecStart with `--init-sql FILE` (run by the member that bootstraps). */
export function withInitSql(unitText: string, file: string): string {
  const lines = unitText.split('\n');
  const i = lines.findIndex((l) => l.startsWith('ExecStart=') && l.includes('fleetts galera member'));
  if (i < 0)
    throw new DemoError(
      'demo_step_failed',
      'examples/process/mysql@.unit has no `fleetts galera member` ExecStart',
    );
  lines[i] = `${lines[i] ?? ''} --init-sql ${file}`;
  return lines.join('\n');
}
