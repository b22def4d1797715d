// The effectful side of `fleetts ftp`: creates the FTP directory on shared storage and edits the
// users file under a lock, rewriting it atomically (temporary file, fsync, rename) so that vsftpd's
// PAM never reads half a file and two concurrent edits never lose one.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { FleetError, UsageError } from '../lib/errors.js';
import {
  DEFAULT_FTP_SETTINGS,
  ftpPaths,
  ftpSettingsSchema,
  renderVsftpdConf,
  type FtpPaths,
  type FtpSettings,
} from './ftp-config.js';
import {
  addUser,
  checkUserName,
  parseUsersFile,
  removeUser,
  serializeUsersFile,
  setUserHash,
  type FtpUser,
} from './ftp-users.js';

export interface UsersStoreDeps {
  readonly dir: string;
  readonly clock: Clock;
  /** How long to wait for another edit's lock (default 10 s). */
  readonly lockTimeoutMs?: number;
  /** chown of the homes (tests that are not root pass a no-op). */
  readonly chown?: (path: string, uid: number, gid: number) => Promise<void>;
}

export type InitResult = { readonly written: readonly string[]; readonly kept: readonly string[] };

export class UsersStore {
  readonly paths: FtpPaths;
  readonly #d: UsersStoreDeps;

  constructor(deps: UsersStoreDeps) {
    this.#d = deps;
    this.paths = ftpPaths(deps.dir);
  }

  /**
   * Creates the FTP directory: ftp.json, vsftpd.conf, an empty users file and home/. Existing files are kept unless `force` (then the configuration is re-rendered; the users
   * file and homes are never overwritten).
   */
  async init(settings: FtpSettings = DEFAULT_FTP_SETTINGS, force = false): Promise<InitResult> {
    const p = this.paths;
    const written: string[] = [];
    const kept: string[] = [];
    await mkdir(p.homes, { recursive: true, mode: 0o755 });
    const files: [string, string, number][] = [
      [p.settings, `${JSON.stringify(settings, null, 2)}\n`, 0o644],
      [p.vsftpdConf, renderVsftpdConf(settings, p), 0o644],
    ];
    for (const [path, text, mode] of files) {
      if (!force && (await exists(path))) kept.push(path);
      else {
        await writeAtomically(path, text, mode);
        written.push(path);
      }
    }
    if (await exists(p.users)) kept.push(p.users);
    else {
      await writeAtomically(p.users, '', 0o600);
      written.push(p.users);
    }
    return { written, kept };
  }

  async settings(): Promise<FtpSettings> {
    return readSettings(this.paths);
  }

  async list(): Promise<FtpUser[]> {
    await this.settings();
    return this.#readUsers();
  }

  /** Adds the user and creates its home (owned by the guest account); `hash` from hashPassword. */
  async add(name: string, hash: string): Promise<{ home: string }> {
    const settings = await this.settings();
    checkUserName(name, settings.guestUser);
    const home = join(this.paths.homes, name);
    if ((await this.#readUsers()).some((u) => u.name === name)) {
      // The edit below refuses it with its own message; no home is touched first.
      await this.#edit((users) => addUser(users, { name, hash }));
    }
    // The home first: a share that forbids it (NFS root_squash) must not leave a user without one.
    const created = await mkdir(home, { recursive: true, mode: 0o750 });
    try {
      await chmod(home, 0o750);
      await (this.#d.chown ?? chown)(home, settings.guestUid, settings.guestGid);
    } catch (err) {
      if (created !== undefined) await rm(home, { recursive: true, force: true }).catch(() => undefined);
      throw new FleetError(
        'ftp_home_failed',
        `cannot give ${home} to the guest account (uid ${settings.guestUid}): ${(err as NodeJS.ErrnoException).code ?? String(err)}; on NFS, export the share with no_root_squash (docs/ftp.md); user ${name} was not added`,
      );
    }
    await this.#edit((users) => addUser(users, { name, hash }));
    return { home };
  }

  async setPassword(name: string, hash: string): Promise<void> {
    await this.settings();
    await this.#edit((users) => setUserHash(users, name, hash));
  }

  /** Removes the user's line; its files too when `deleteFiles` (else they stay in its home). */
  async remove(name: string, deleteFiles: boolean): Promise<{ home: string; deleted: boolean }> {
    await this.settings();
    const home = join(this.paths.homes, name);
    await this.#edit((users) => removeUser(users, name));
    if (deleteFiles) await rm(home, { recursive: true, force: true });
    return { home, deleted: deleteFiles };
  }

  async #readUsers(): Promise<FtpUser[]> {
    const text = await readFile(this.paths.users, 'utf8').catch((err: unknown) => {
      if (isCode(err, 'ENOENT'))
        throw new UsageError(
          `${this.paths.users} does not exist: run \`fleetts ftp init --ftp-dir ${this.paths.dir}\` first`,
        );
      throw err;
    });
    return parseUsersFile(text, this.paths.users);
  }

  /** Read, change, write back: all under the lock, so the change applies to the latest file. */
  async #edit(change: (users: FtpUser[]) => FtpUser[]): Promise<void> {
    const release = await this.#lock();
    try {
      const next = change(await this.#readUsers());
      await writeAtomically(this.paths.users, serializeUsersFile(next), 0o600);
    } finally {
      await release();
    }
  }

  /** An O_EXCL lock file (works on NFSv3+), naming its holder; waits for another edit to finish. */
  async #lock(): Promise<() => Promise<void>> {
    const { clock } = this.#d;
    const deadline = clock.monotonic() + (this.#d.lockTimeoutMs ?? 10_000);
    for (;;) {
      try {
        const handle = await open(this.paths.lock, 'wx', 0o600);
        await handle.writeFile(`pid ${process.pid} since ${new Date(clock.now()).toISOString()}\n`);
        await handle.close();
        return () => unlink(this.paths.lock).catch(() => undefined);
      } catch (err) {
        if (!isCode(err, 'EEXIST')) throw err;
        if (clock.monotonic() > deadline) {
          const holder = (await readFile(this.paths.lock, 'utf8').catch(() => '')).trim();
          throw new FleetError(
            'ftp_locked',
            `${this.paths.lock} is held (${holder || 'by an unknown process'}): another \`fleetts ftp\` edit is running; if none is, delete the file and try again`,
            { recoverable: true },
          );
        }
        await clock.sleep(50);
      }
    }
  }
}

export async function readSettings(paths: FtpPaths): Promise<FtpSettings> {
  const text = await readFile(paths.settings, 'utf8').catch((err: unknown) => {
    if (isCode(err, 'ENOENT'))
      throw new UsageError(
        `no FTP directory at ${paths.dir} (${paths.settings} is missing): run \`fleetts ftp init --ftp-dir ${paths.dir}\` first, or give --ftp-dir`,
      );
    throw err;
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(
      `${paths.settings} is not valid JSON: fix it or re-create it with \`fleetts ftp init --force\``,
    );
  }
  const parsed = ftpSettingsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${paths.settings}: ${issue?.path.join('.') || 'settings'} ${issue?.message ?? 'is invalid'}; fix it or re-create it with \`fleetts ftp init --force\``,
    );
  }
  return parsed.data;
}

/** Write a temporary file beside `path`, fsync it, rename it over `path`. */
export async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(text);
      await handle.chmod(mode); // the umask may have narrowed open()'s mode
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
