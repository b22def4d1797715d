// `fleetts ftp` through the real binary (dist/): init, add-user/passwd/remove-user/list-users with
// the password on stdin; bad input refused with one clear line and exit 2; the password never
// appears in any output; concurrent edits all land (the lock) and the file is replaced atomically.
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runBin, type RunResult } from '../helpers/cli.js';
import { hashPassword } from '../../src/ftp/hash-password.js';

let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleetts-ftp-cli-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

/** The real CLI with `stdin` piped in. Generous limit: the lock test alone waits 10 s. */
function fleetts(args: readonly string[], stdin?: string, concurrent = false): Promise<RunResult> {
  return runBin('fleetts', args, {
    env: { FLEETTS_FTP_DIR: '' },
    timeoutMs: 120_000,
    concurrent,
    ...(stdin === undefined ? {} : { stdin }),
  });
}

let n = 0;
async function freshDir(): Promise<string> {
  const dir = join(root, `ftp${++n}`);
  const r = await fleetts(['ftp', 'init', '--ftp-dir', dir]);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  return dir;
}

const PW = 'S3cret-passw0rd!';

test('init, add-user (stdin), list-users, passwd, remove-user: files, modes and messages', async (t) => {
  const dir = join(root, 'main');
  const init = await fleetts(['ftp', 'init', '--ftp-dir', dir]);
  t.is(init.code, 0, init.stderr);
  t.regex(init.stdout, new RegExp(`wrote ${dir}/vsftpd.conf`));
  const again = await fleetts(['ftp', 'init', '--ftp-dir', dir]);
  t.is(again.code, 0);
  t.regex(again.stdout, /kept .*users\.pwd \(exists\)/);

  const add = await fleetts(['ftp', 'add-user', 'alice', '--ftp-dir', dir, '--password-stdin'], `${PW}\n`);
  t.is(add.code, 0, add.stderr);
  t.is(add.stdout, `added FTP user alice (home ${dir}/home/alice)\n`);
  const users = join(dir, 'users.pwd');
  const line = (await readFile(users, 'utf8')).trim();
  t.regex(line, /^alice:\$6\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{86}$/);
  const salt = line.split('$')[2] ?? '';
  t.is(line, `alice:${await hashPassword(PW, { salt })}`, 'the hash is of the password given on stdin');
  t.is((await stat(users)).mode & 0o777, 0o600);
  const home = await stat(join(dir, 'home', 'alice'));
  t.is(home.mode & 0o777, 0o750);
  if (process.getuid?.() === 0) t.is(home.uid, 2121, 'home owned by the guest account');

  const before = (await stat(users)).ino;
  const pw = await fleetts(
    ['ftp', 'passwd', 'alice', '--ftp-dir', dir, '--password-stdin'],
    'another-passw0rd\n',
  );
  t.is(pw.code, 0, pw.stderr);
  const changed = (await readFile(users, 'utf8')).trim();
  t.not(changed, line);
  t.not((await stat(users)).ino, before, 'rewritten by rename, not in place');

  const bob = await fleetts(
    ['ftp', 'add-user', 'bob', '--ftp-dir', dir, '--password-stdin'],
    `${PW}\r\nignored\n`,
  );
  t.is(bob.code, 0, bob.stderr);
  const list = await fleetts(['ftp', 'list-users', '--ftp-dir', dir]);
  t.is(list.stdout, 'alice\nbob\n');

  const rm1 = await fleetts(['ftp', 'remove-user', 'bob', '--ftp-dir', dir]);
  t.is(rm1.code, 0, rm1.stderr);
  t.is(
    rm1.stdout,
    `removed FTP user bob; its files stay in ${dir}/home/bob (delete them with --delete-files)\n`,
  );
  t.truthy(await stat(join(dir, 'home', 'bob')));
  const rm2 = await fleetts(['ftp', 'remove-user', 'alice', '--ftp-dir', dir, '--delete-files']);
  t.is(rm2.code, 0, rm2.stderr);
  await t.throwsAsync(stat(join(dir, 'home', 'alice')));
  t.is(await readFile(users, 'utf8'), '');
  t.deepEqual(
    (await readdir(dir)).filter((f) => f.includes('.tmp-') || f.endsWith('.lock')),
    [],
    'no temporary or lock file left',
  );
});

const refusals: [string, string[], string | undefined, string][] = [
  [
    'an upper-case name',
    ['add-user', 'Alice', '--password-stdin'],
    `${PW}\n`,
    'FTP user name "Alice" is not allowed',
  ],
  [
    'a path as name',
    ['add-user', '../x', '--password-stdin'],
    `${PW}\n`,
    'FTP user name "../x" is not allowed',
  ],
  [
    'a reserved name',
    ['add-user', 'root', '--password-stdin'],
    `${PW}\n`,
    'FTP user name "root" is reserved',
  ],
  [
    'a short password',
    ['add-user', 'carol', '--password-stdin'],
    'tiny-pw\n',
    'the password is too short (7 characters)',
  ],
  ['an empty stdin', ['add-user', 'carol', '--password-stdin'], '', '--password-stdin: stdin is empty'],
  [
    'no terminal and no --password-stdin',
    ['add-user', 'carol'],
    undefined,
    'no terminal to ask the password on',
  ],
  ['a password as an argument', ['add-user', 'carol', PW], undefined, "too many arguments for 'add-user'"],
  ['an existing user', ['add-user', 'dave', '--password-stdin'], `${PW}\n`, 'FTP user "dave" already exists'],
  ['an unknown user (passwd)', ['passwd', 'erin', '--password-stdin'], `${PW}\n`, 'no FTP user "erin"'],
  ['an unknown user (remove)', ['remove-user', 'erin'], undefined, 'no FTP user "erin"'],
  [
    'bad passive ports',
    ['init', '--force', '--pasv-ports', '3000-x'],
    undefined,
    '--pasv-ports 3000-x: give a range',
  ],
];

for (const [what, args, stdin, message] of refusals) {
  test(`refused with exit 2: ${what}`, async (t) => {
    const dir = await freshDir();
    if (what === 'an existing user') {
      const r = await fleetts(['ftp', 'add-user', 'dave', '--ftp-dir', dir, '--password-stdin'], `${PW}\n`);
      t.is(r.code, 0, r.stderr);
    }
    const before = await readFile(join(dir, 'users.pwd'), 'utf8');
    const r = await fleetts(['ftp', ...args, '--ftp-dir', dir], stdin);
    t.is(r.code, 2, `${r.stdout}${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    t.true(lines[0]?.includes(message), r.stderr);
    t.false(r.stderr.includes('    at '), 'no stack trace');
    for (const secret of [PW, 'tiny-pw']) {
      t.false(r.stdout.includes(secret), 'the password is not in stdout');
      t.false(r.stderr.includes(secret), 'the password is not in stderr');
    }
    t.is(await readFile(join(dir, 'users.pwd'), 'utf8'), before, 'the users file is unchanged');
  });
}

test('a missing FTP directory is named, with the command that creates it', async (t) => {
  const dir = join(root, 'nowhere');
  const r = await fleetts(['ftp', 'list-users', '--ftp-dir', dir]);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    `fleetts: no FTP directory at ${dir} (${dir}/ftp.json is missing): run \`fleetts ftp init --ftp-dir ${dir}\` first, or give --ftp-dir\n`,
  );
});

test('eight concurrent add-user commands all land (the lock), each with a valid line', async (t) => {
  const dir = await freshDir();
  const names = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8'];
  const results = await Promise.all(
    names.map((name) =>
      fleetts(['ftp', 'add-user', name, '--ftp-dir', dir, '--password-stdin'], `${PW}-${name}\n`, true),
    ),
  );
  for (const r of results) t.is(r.code, 0, r.stderr);
  const lines = (await readFile(join(dir, 'users.pwd'), 'utf8')).trim().split('\n');
  t.deepEqual(
    lines.map((l) => l.split(':')[0]),
    names,
  );
  for (const l of lines) t.regex(l, /^u\d:\$6\$/);
});

test('a held lock makes an edit wait, then fail with the holder named and how to fix it', async (t) => {
  const dir = await freshDir();
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'users.pwd.lock'), 'pid 999999 since then\n');
  await chmod(join(dir, 'users.pwd.lock'), 0o600);
  const r = await fleetts(['ftp', 'remove-user', 'nobody1', '--ftp-dir', dir]);
  t.is(r.code, 1, r.stderr);
  t.is(
    r.stderr,
    `fleetts: ${dir}/users.pwd.lock is held (pid 999999 since then): another \`fleetts ftp\` edit is running; if none is, delete the file and try again\n`,
  );
});
