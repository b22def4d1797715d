// The FTP service's files on shared storage (vsftpd with virtual users, docs/ftp.md): the layout of
// the FTP directory, its settings file (ftp.json, zod-checked) and the texts `fleetts ftp init`
// renders from them (vsftpd.conf, the PAM service). Pure: callers write what this returns.
import { join } from 'node:path';
import { z } from 'zod';

/** Where the FTP directory lives on every host (the NFS mount of cloud-config). */
export const DEFAULT_FTP_DIR = '/srv/fleetts/shared/ftp';

export interface FtpPaths {
  readonly dir: string;
  readonly settings: string;
  readonly vsftpdConf: string;
  /** The virtual users: `name:$6$…` lines read by pam_pwdfile. */
  readonly users: string;
  /** Held while the users file is rewritten (two concurrent edits must not lose one). */
  readonly lock: string;
  /** home/<user>/: each user's chroot. */
  readonly homes: string;
}

export function ftpPaths(dir: string): FtpPaths {
  return {
    dir,
    settings: join(dir, 'ftp.json'),
    vsftpdConf: join(dir, 'vsftpd.conf'),
    users: join(dir, 'users.pwd'),
    lock: join(dir, 'users.pwd.lock'),
    homes: join(dir, 'home'),
  };
}

const SYSTEM_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export const ftpSettingsSchema = z
  .object({
    version: z.literal(1),
    /** /etc/pam.d/<pamService> on every host that runs vsftpd. */
    pamService: z.string().regex(SYSTEM_NAME, 'must be a plain name like fleetts-ftp'),
    /**
     * The one system account every virtual user is mapped to (vsftpd's guest_username). Its uid and
     * gid are fixed so that files on the shared storage belong to the same account on every host.
     */
    guestUser: z.string().regex(SYSTEM_NAME, 'must be a plain user name like fleetts-ftp'),
    guestUid: z.number().int().min(100).max(59_999),
    guestGid: z.number().int().min(100).max(59_999),
    pasvMinPort: z.number().int().min(1024).max(65_535),
    pasvMaxPort: z.number().int().min(1024).max(65_535),
  })
  .refine((s) => s.pasvMinPort <= s.pasvMaxPort, {
    message: 'pasvMinPort must not exceed pasvMaxPort',
    path: ['pasvMaxPort'],
  });

export type FtpSettings = z.infer<typeof ftpSettingsSchema>;

export const DEFAULT_FTP_SETTINGS: FtpSettings = {
  version: 1,
  pamService: 'fleetts-ftp',
  guestUser: 'fleetts-ftp',
  guestUid: 2121,
  guestGid: 2121,
  pasvMinPort: 30000,
  pasvMaxPort: 30009,
};

/**
 * vsftpd.conf for the virtual users. The host's address is not in it (the unit passes
 * -olisten_address=${FLEETTS_MACHINE_IP}), so one file serves every host; vsftpd announces the
 * control connection's local address in its PASV replies, which is that same address.
 */
export function renderVsftpdConf(settings: FtpSettings, paths: FtpPaths): string {
  return `# vsftpd for fleetts's FTP service (docs/ftp.md). Written by \`fleetts ftp init\`; every host
# that runs ftp.unit reads it from here. Started as:
#   vsftpd ${paths.vsftpdConf} -olisten_address=<host IP>
# Virtual users: PAM service ${settings.pamService} (pam_pwdfile on ${paths.users}), each mapped to the
# system account ${settings.guestUser} (uid ${settings.guestUid}) and locked into ${paths.homes}/<user>.
listen=YES
listen_ipv6=NO
listen_port=21
# In the foreground: the fleetts agent supervises the process.
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
guest_enable=YES
guest_username=${settings.guestUser}
# Virtual users write with the guest account's rights (not anonymous FTP's).
virtual_use_local_privs=YES
pam_service_name=${settings.pamService}
user_sub_token=$USER
local_root=${paths.homes}/$USER
chroot_local_user=YES
# The chroot is the user's own (writable) home: users upload at its top. Safe here because nothing
# is loaded from inside the chroot after login (no shell, no ls binary: vsftpd lists by itself).
allow_writeable_chroot=YES
hide_ids=YES
pasv_enable=YES
pasv_min_port=${settings.pasvMinPort}
pasv_max_port=${settings.pasvMaxPort}
port_enable=NO
# vsftpd 3.0.3's seccomp filter kills sessions on current kernels and libcs.
seccomp_sandbox=NO
dirmessage_enable=NO
use_localtime=NO
xferlog_enable=YES
xferlog_std_format=NO
# Per-host log: the unit passes -ovsftpd_log_file=/run/fleetts/<machine>/ftp/vsftpd.log.
vsftpd_log_file=/dev/null
max_clients=50
max_per_ip=10
idle_session_timeout=300
`;
}

/** The PAM service: virtual users from the users file only; no system account logs in. */
export function renderPamService(paths: FtpPaths): string {
  return `# PAM service of fleetts's FTP (vsftpd virtual users). Installed into /etc/pam.d by
# \`fleetts ftp prepare-host\` (ftp.unit's ExecStartPre), rendered for the FTP directory ${paths.dir}.
auth required pam_pwdfile.so pwdfile=${paths.users}
account required pam_permit.so
`;
}
