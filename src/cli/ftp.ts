// `fleetts ftp …`: the FTP service's files on shared storage (docs/ftp.md). `init` creates the FTP
// directory, `add-user`/`passwd`/`remove-user`/`list-users` edit the virtual users (passwords read
// without echo or from stdin, never from argv), `prepare-host` is ftp.unit's ExecStartPre.
import type { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import {
  DEFAULT_FTP_DIR,
  DEFAULT_FTP_SETTINGS,
  ftpSettingsSchema,
  type FtpSettings,
} from '../ftp/ftp-config.js';
import { checkPassword, checkUserName } from '../ftp/ftp-users.js';
import { hashPassword } from '../ftp/hash-password.js';
import { prepareHost } from '../ftp/prepare-host.js';
import {
  readPasswordFromStdin,
  readPasswordFromTerminal,
  type PromptOutput,
  type TerminalInput,
} from '../ftp/read-password.js';
import { UsersStore } from '../ftp/users-store.js';
import type { CliContext } from './main.js';

/** Injected by tests; the real CLI uses the process's stdin and stderr. */
export interface FtpCommandDeps {
  readonly stdin?: TerminalInput & AsyncIterable<Buffer | string>;
  readonly prompt?: PromptOutput;
  readonly env?: NodeJS.ProcessEnv;
}

interface DirFlags {
  readonly ftpDir?: string;
}

const DIR_HELP = `the FTP directory on shared storage (default: $FLEETTS_FTP_DIR, else ${DEFAULT_FTP_DIR})`;

export function registerFtp(program: Command, ctx: CliContext, deps: FtpCommandDeps = {}): void {
  const env = deps.env ?? process.env;
  const dirOf = (flags: DirFlags): string => {
    const dir = flags.ftpDir ?? (env.FLEETTS_FTP_DIR || DEFAULT_FTP_DIR);
    if (!dir.startsWith('/')) throw new UsageError(`--ftp-dir ${dir}: give an absolute path`);
    return dir.replace(/\/+$/, '') || '/';
  };
  const store = (flags: DirFlags): UsersStore => new UsersStore({ dir: dirOf(flags), clock: ctx.clock });
  const password = async (flags: { passwordStdin?: boolean }): Promise<string> => {
    const stdin = deps.stdin ?? (process.stdin as TerminalInput & AsyncIterable<Buffer | string>);
    const raw = flags.passwordStdin
      ? await readPasswordFromStdin(stdin)
      : await readPasswordFromTerminal(stdin, deps.prompt ?? process.stderr);
    return checkPassword(raw);
  };

  const ftp = program
    .command('ftp')
    .description('the FTP service (vsftpd, virtual users on shared storage): set up, manage users')
    .addHelpText(
      'after',
      `
Examples:
  fleetts ftp init                                  create ${DEFAULT_FTP_DIR} (once, on any host)
  fleetts ftp add-user alice                        asks for the password twice, without echo
  fleetts ftp add-user alice --password-stdin < pw  the first line of stdin is the password
  fleetts ftp passwd alice                          change alice's password
  fleetts ftp remove-user alice [--delete-files]    alice can no longer log in (her files stay unless --delete-files)
  fleetts ftp list-users
  fleetts start ftp.unit ftp-discovery.unit         run it (units/ or examples/process/)
See docs/ftp.md.`,
    );

  ftp
    .command('init')
    .description('create the FTP directory: ftp.json, vsftpd.conf, users.pwd, home/')
    .option('--ftp-dir <dir>', DIR_HELP)
    .option('--force', 're-render ftp.json, vsftpd.conf and the PAM service (users and homes are kept)')
    .option(
      '--pam-service <name>',
      'PAM service name (/etc/pam.d/NAME on each host)',
      DEFAULT_FTP_SETTINGS.pamService,
    )
    .option('--guest-user <name>', 'the system account virtual users map to', DEFAULT_FTP_SETTINGS.guestUser)
    .option('--guest-uid <n>', 'its uid, the same on every host', String(DEFAULT_FTP_SETTINGS.guestUid))
    .option('--guest-gid <n>', 'its gid, the same on every host', String(DEFAULT_FTP_SETTINGS.guestGid))
    .option(
      '--pasv-ports <min-max>',
      'passive data ports (open them in the firewall)',
      `${DEFAULT_FTP_SETTINGS.pasvMinPort}-${DEFAULT_FTP_SETTINGS.pasvMaxPort}`,
    )
    .action(
      async (
        flags: DirFlags & {
          force?: boolean;
          pamService: string;
          guestUser: string;
          guestUid: string;
          guestGid: string;
          pasvPorts: string;
        },
      ) => {
        const settings = initSettings(flags);
        const s = store(flags);
        const result = await s.init(settings, flags.force === true);
        for (const p of result.written) ctx.output.out(`wrote ${p}`);
        for (const p of result.kept)
          ctx.output.out(`kept ${p} (exists${p === s.paths.users ? '' : '; --force re-renders it'})`);
        ctx.output.out(`next: fleetts ftp add-user NAME --ftp-dir ${s.paths.dir}`);
      },
    );

  ftp
    .command('add-user <name>')
    .description('add a virtual user and create its home; the password is asked twice without echo')
    .option('--ftp-dir <dir>', DIR_HELP)
    .option(
      '--password-stdin',
      'read the password from the first line of stdin (never give it as an argument)',
    )
    .action(async (name: string, flags: DirFlags & { passwordStdin?: boolean }) => {
      const s = store(flags);
      const settings = await s.settings();
      checkUserName(name, settings.guestUser);
      if ((await s.list()).some((u) => u.name === name))
        throw new UsageError(
          `FTP user "${name}" already exists; to change the password: fleetts ftp passwd ${name}`,
        );
      const hash = await hashPassword(await password(flags));
      const { home } = await s.add(name, hash);
      ctx.output.out(`added FTP user ${name} (home ${home})`);
    });

  ftp
    .command('passwd <name>')
    .description("change a virtual user's password (asked twice without echo)")
    .option('--ftp-dir <dir>', DIR_HELP)
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action(async (name: string, flags: DirFlags & { passwordStdin?: boolean }) => {
      const s = store(flags);
      checkUserName(name, (await s.settings()).guestUser);
      if (!(await s.list()).some((u) => u.name === name))
        throw new UsageError(`no FTP user "${name}"; see \`fleetts ftp list-users\``);
      await s.setPassword(name, await hashPassword(await password(flags)));
      ctx.output.out(`changed the password of FTP user ${name}`);
    });

  ftp
    .command('remove-user <name>')
    .description('remove a virtual user (it can no longer log in); its files stay unless --delete-files')
    .option('--ftp-dir <dir>', DIR_HELP)
    .option('--delete-files', "also delete the user's home directory and everything in it")
    .action(async (name: string, flags: DirFlags & { deleteFiles?: boolean }) => {
      const s = store(flags);
      checkUserName(name, (await s.settings()).guestUser);
      const r = await s.remove(name, flags.deleteFiles === true);
      ctx.output.out(
        r.deleted
          ? `removed FTP user ${name} and deleted ${r.home}`
          : `removed FTP user ${name}; its files stay in ${r.home} (delete them with --delete-files)`,
      );
    });

  ftp
    .command('list-users')
    .description('list the virtual users (names only)')
    .option('--ftp-dir <dir>', DIR_HELP)
    .action(async (flags: DirFlags) => {
      for (const u of await store(flags).list()) ctx.output.out(u.name);
    });

  ftp
    .command('prepare-host')
    .description("install on this host what vsftpd needs besides the FTP directory (ftp.unit's ExecStartPre)")
    .option('--ftp-dir <dir>', DIR_HELP)
    .option('--pam-dir <dir>', 'where PAM services live', '/etc/pam.d')
    .action(async (flags: DirFlags & { pamDir: string }) => {
      if (process.getuid?.() !== 0)
        throw new UsageError(
          'fleetts ftp prepare-host needs root (it writes /etc/pam.d and adds a system account)',
        );
      const r = await prepareHost({ dir: dirOf(flags), pamDir: flags.pamDir });
      ctx.output.out(
        r.changed.length === 0
          ? 'host ready (nothing to change)'
          : `host ready; made ${r.changed.join(', ')}`,
      );
    });
}

function initSettings(flags: {
  pamService: string;
  guestUser: string;
  guestUid: string;
  guestGid: string;
  pasvPorts: string;
}): FtpSettings {
  const ports = /^(\d+)-(\d+)$/.exec(flags.pasvPorts);
  if (ports === null) throw new UsageError(`--pasv-ports ${flags.pasvPorts}: give a range like 30000-30009`);
  const int = (flag: string, v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`${flag} ${v}: give a whole number`);
    return Number(v);
  };
  const parsed = ftpSettingsSchema.safeParse({
    version: 1,
    pamService: flags.pamService,
    guestUser: flags.guestUser,
    guestUid: int('--guest-uid', flags.guestUid),
    guestGid: int('--guest-gid', flags.guestGid),
    pasvMinPort: Number(ports[1]),
    pasvMaxPort: Number(ports[2]),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const flag: Record<string, string> = {
      pamService: '--pam-service',
      guestUser: '--guest-user',
      guestUid: '--guest-uid',
      guestGid: '--guest-gid',
      pasvMinPort: '--pasv-ports',
      pasvMaxPort: '--pasv-ports',
    };
    const key = String(issue?.path[0] ?? '');
    throw new UsageError(`${flag[key] ?? key}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
