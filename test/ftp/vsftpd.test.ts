// vsftpd for real with the configuration `fleetts ftp init` writes: the host prepared by
// `fleetts ftp prepare-host` (PAM service, guest account), vsftpd on loopback, a virtual user added
// by the CLI logs in, uploads and downloads in passive mode, stays in its chroot; a wrong password
// and a removed user are refused. Needs root (PAM service in /etc/pam.d, chroot).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runBin } from '../helpers/cli.js';
import { download, upload, withFtp } from '../../src/ftp/ftp-client.js';
import { spawnSync } from 'node:child_process';
import { onFreePort, PortTaken } from '../helpers/ports.js';
import { WaitAborted, waitFor } from '../helpers/wait.js';

const VSFTPD = '/usr/sbin/vsftpd';
const PW = 'virtual-user-passw0rd';
let root = '';
let dir = '';
let pamService = '';
let port = 0;
let vsftpd: ChildProcess | undefined;

function addUser(name: string, password: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['bin/fleetts.js', 'ftp', 'add-user', name, '--ftp-dir', dir, '--password-stdin'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(`${password}\n`);
  });
}

/** The first line the server at `port` sends ('' when it refuses or closes). */
function banner(): Promise<string> {
  return new Promise<string>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('data', (d: Buffer) => {
      sock.destroy();
      resolve(d.toString());
    });
    sock.once('error', () => resolve(''));
  });
}

/** vsftpd on a fresh port; PortTaken when another process bound that port first. */
async function startVsftpd(p: number): Promise<void> {
  port = p;
  const child = spawn(
    VSFTPD,
    [
      join(dir, 'vsftpd.conf'),
      '-olisten_address=127.0.0.1',
      `-olisten_port=${port}`,
      `-ovsftpd_log_file=${join(root, 'vsftpd.log')}`,
    ],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  vsftpd = child;
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    process.stderr.write(d);
  });
  await waitFor(`vsftpd to answer on 127.0.0.1:${port}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      const why = `vsftpd exited (${child.exitCode ?? child.signalCode}): ${stderr}`;
      throw /could not bind/.test(stderr) ? new PortTaken(why) : new WaitAborted(why);
    }
    return (await banner()).startsWith('220');
  });
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the vsftpd test needs root (PAM service, chroot): run it as root');
  if (!existsSync(VSFTPD) || !existsSync('/lib/x86_64-linux-gnu/security/pam_pwdfile.so'))
    throw new Error('vsftpd or libpam-pwdfile is missing: apt-get install vsftpd libpam-pwdfile');
  root = await mkdtemp(join(tmpdir(), 'fleetts-vsftpd-'));
  await chmod(root, 0o755);
  dir = join(root, 'ftp');
  pamService = `fleetts-ftp-test-${randomBytes(3).toString('hex')}`;
  const pasv = 40_000 + randomInt(0, 2_000) * 10;
  const init = await runBin('fleetts', [
    'ftp',
    'init',
    '--ftp-dir',
    dir,
    '--pam-service',
    pamService,
    '--pasv-ports',
    `${pasv}-${pasv + 4}`,
  ]);
  if (init.code !== 0) throw new Error(`fleetts ftp init: ${init.stderr}`);
  const add = await addUser('alice', PW);
  if (add.code !== 0) throw new Error(`fleetts ftp add-user: ${add.stderr}`);
  const prep = await runBin('fleetts', ['ftp', 'prepare-host', '--ftp-dir', dir]);
  if (prep.code !== 0) throw new Error(`fleetts ftp prepare-host: ${prep.stderr}`);
  await onFreePort(1, ([p]) => startVsftpd(p ?? 0));
});

test.after.always(async () => {
  vsftpd?.kill('SIGTERM');
  if (pamService !== '') await rm(join('/etc/pam.d', pamService), { force: true });
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const login = (user: string, password: string) => ({
  host: '127.0.0.1',
  port,
  user,
  password,
  timeoutMs: 10_000,
});

test.serial('prepare-host is idempotent and installs the PAM service for this FTP directory', async (t) => {
  const pam = await readFile(join('/etc/pam.d', pamService), 'utf8');
  t.true(pam.includes(`auth required pam_pwdfile.so pwdfile=${dir}/users.pwd`), pam);
  const again = await runBin('fleetts', ['ftp', 'prepare-host', '--ftp-dir', dir]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'host ready (nothing to change)\n');
  const id = spawnSync('id', ['-u', 'fleetts-ftp']).stdout.toString().trim();
  t.is(id, '2121');
});

test.serial('a virtual user uploads and downloads in passive mode, inside its own home', async (t) => {
  const bytes = randomBytes(256 * 1024);
  const listed = await withFtp(login('alice', PW), async (c) => {
    await upload(c, 'site.tar', bytes);
    const back = await download(c, 'site.tar');
    t.true(back.equals(bytes), 'downloaded bytes equal the uploaded ones');
    await c.cd('..');
    t.is(await c.pwd(), '/', 'chrooted: .. of the home is still /');
    return (await c.list()).map((f) => f.name);
  });
  t.deepEqual(listed, ['site.tar']);
  const onDisk = join(dir, 'home', 'alice', 'site.tar');
  t.true((await readFile(onDisk)).equals(bytes));
  t.is((await stat(onDisk)).uid, 2121, 'written as the guest account');
});

test.serial('a wrong password and an unknown user are refused with 530', async (t) => {
  const wrong = await t.throwsAsync(
    withFtp(login('alice', 'not-the-passw0rd'), () => Promise.resolve(undefined)),
  );
  t.regex(wrong.message, /530/);
  const unknown = await t.throwsAsync(withFtp(login('mallory', PW), () => Promise.resolve(undefined)));
  t.regex(unknown.message, /530/);
});

test.serial('a removed user can no longer log in (PAM reads the users file at each login)', async (t) => {
  const add = await addUser('bob', PW);
  t.is(add.code, 0, add.stderr);
  await withFtp(login('bob', PW), async (c) => t.deepEqual(await c.list(), []));
  const r = await runBin('fleetts', ['ftp', 'remove-user', 'bob', '--ftp-dir', dir]);
  t.is(r.code, 0, r.stderr);
  const err = await t.throwsAsync(withFtp(login('bob', PW), () => Promise.resolve(undefined)));
  t.regex(err.message, /530/);
});
