// `fleetts ftp prepare-host`: what vsftpd needs on the host itself, outside the shared FTP directory
// (ftp.unit's ExecStartPre, so the service can start on any host): the PAM service file in
// /etc/pam.d, the guest account with the fixed uid/gid of ftp.json, vsftpd's empty chroot dir.
// Idempotent; an existing account or group with other ids is an error, never changed.
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../lib/errors.js';
import { ftpPaths, renderPamService, type FtpSettings } from './ftp-config.js';
import { readSettings, writeAtomically } from './users-store.js';

/** vsftpd's default secure_chroot_dir: must exist, be empty and not writable by the session. */
export const SECURE_CHROOT_DIR = '/var/run/vsftpd/empty';

export interface PrepareHostOptions {
  readonly dir: string;
  /** Default /etc/pam.d (tests may not replace the host's). */
  readonly pamDir?: string;
}

export interface PrepareHostResult {
  readonly settings: FtpSettings;
  /** What was changed on this host (empty when it was ready). */
  readonly changed: readonly string[];
}

export async function prepareHost(options: PrepareHostOptions): Promise<PrepareHostResult> {
  const paths = ftpPaths(options.dir);
  const settings = await readSettings(paths);
  const changed: string[] = [];
  await readFile(paths.users).catch(() => {
    throw new FleetError(
      'ftp_not_ready',
      `${paths.users} is missing: run \`fleetts ftp init --ftp-dir ${paths.dir}\` on a host that mounts the shared storage`,
    );
  });

  // The PAM file is rendered from the directory's own paths, not copied: a stale copy on shared
  // storage cannot point PAM at another users file.
  const pamFile = join(options.pamDir ?? '/etc/pam.d', settings.pamService);
  const pamText = renderPamService(paths);
  if ((await readFile(pamFile, 'utf8').catch(() => undefined)) !== pamText) {
    await writeAtomically(pamFile, pamText, 0o644);
    changed.push(pamFile);
  }

  const made = await mkdir(SECURE_CHROOT_DIR, { recursive: true, mode: 0o755 });
  if (made !== undefined) changed.push(SECURE_CHROOT_DIR);

  const group = await getent('group', settings.guestUser);
  if (group === undefined) {
    const holder = await getent('group', String(settings.guestGid));
    if (holder !== undefined)
      throw idsError(`gid ${settings.guestGid} already belongs to group "${holder[0]}"`, paths.settings);
    await ensureCreated(
      'groupadd',
      ['--system', '--gid', String(settings.guestGid), settings.guestUser],
      () => getent('group', settings.guestUser),
    );
    changed.push(`group ${settings.guestUser} (gid ${settings.guestGid})`);
  } else if (group[2] !== String(settings.guestGid))
    throw idsError(
      `group "${settings.guestUser}" exists with gid ${group[2]}, not ${settings.guestGid}`,
      paths.settings,
    );

  const user = await getent('passwd', settings.guestUser);
  if (user === undefined) {
    const holder = await getent('passwd', String(settings.guestUid));
    if (holder !== undefined)
      throw idsError(`uid ${settings.guestUid} already belongs to user "${holder[0]}"`, paths.settings);
    await ensureCreated(
      'useradd',
      [
        '--system',
        '--uid',
        String(settings.guestUid),
        '--gid',
        String(settings.guestGid),
        // vsftpd enters the account's own home before local_root: it must be reachable on every
        // host, whatever the FTP directory's parents allow.
        '--home-dir',
        SECURE_CHROOT_DIR,
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        '--comment',
        'fleetts FTP virtual users',
        settings.guestUser,
      ],
      () => getent('passwd', settings.guestUser),
    );
    changed.push(`user ${settings.guestUser} (uid ${settings.guestUid})`);
  } else if (user[2] !== String(settings.guestUid) || user[3] !== String(settings.guestGid))
    throw idsError(
      `user "${settings.guestUser}" exists with uid:gid ${user[2]}:${user[3]}, not ${settings.guestUid}:${settings.guestGid}`,
      paths.settings,
    );

  return { settings, changed };
}

function idsError(what: string, settingsFile: string): FleetError {
  return new FleetError(
    'ftp_host_conflict',
    `${what} on this host: the FTP guest account must have the same ids on every host; change guestUser/guestUid/guestGid in ${settingsFile} (then \`fleetts ftp init --force\`) or fix the host`,
  );
}

/** Runs the command; when it fails because another start made the same entry meanwhile, fine. */
async function ensureCreated(
  command: string,
  args: readonly string[],
  check: () => Promise<readonly string[] | undefined>,
): Promise<void> {
  try {
    await run(command, args);
  } catch (err) {
    if ((await check()) === undefined)
      throw new FleetError(
        'ftp_host_failed',
        `${command} ${args.join(' ')} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
  }
}

/** The `:`-split entry of a passwd/group database, or undefined when there is none. */
async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | undefined> {
  try {
    const out = await run('getent', [db, key]);
    const line = out.split('\n')[0];
    return line === undefined || line === '' ? undefined : line.split(':');
  } catch {
    return undefined; // exit 2: no such entry
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      [...args],
      { env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` } },
      (err, stdout, stderr) => {
        if (err === null) resolve(String(stdout));
        else reject(new Error(String(stderr).trim() || err.message));
      },
    );
  });
}
