// The container form of the FTP service for real: units/ftp.unit as written, parsed and turned into
// a Docker config as the agent does (containerConfigFromSpec with the agent's environment), run by
// the real DockerRuntime with the fleetts/vsftpd image; the FTP directory made by the real CLI. A
// virtual user logs in, uploads and downloads in passive mode; a wrong password gets 530. And an FTP
// directory that is missing or does not fit the image: the container fails saying what to do.
//
// The FTP directory's files name their own path (/srv/fleetts/shared/ftp, the image's PAM service
// too), so the CLI writes the test's directory as that path inside a private mount namespace
// (unshare), and the container mounts it there: the unit's one changed field is the bind source.
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import type Dockerode from 'dockerode';
import { asMachineId, asUnitHash, type UnitName } from '../../src/cluster/types.js';
import { unitBaseEnvironment, unitSpecifiers, type HostFacts } from '../../src/agent/unit-environment.js';
import { DEFAULT_FTP_DIR } from '../../src/ftp/ftp-config.js';
import { download, upload, withFtp } from '../../src/ftp/ftp-client.js';
import { containerConfigFromSpec, type ContainerUnitConfig } from '../../src/runtime/docker-config.js';
import { DockerRuntime } from '../../src/runtime/docker-runtime.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import { ROOT, runBin } from '../helpers/cli.js';
import { ensureDockerImages, removeContainers, testInstance, waitFor } from '../helpers/docker.js';

const exec = promisify(execFile);
const PW = `virtual-${randomBytes(6).toString('hex')}`;
// A loopback address of its own: vsftpd binds port 21 of it (the unit's listen_address), and the
// passive ports below, without meeting anything else on the host's network.
const IP = `127.${randomInt(100, 250)}.${randomInt(0, 250)}.${randomInt(2, 250)}`;
const PASV = 41_000 + randomInt(0, 1_500) * 10;
const instance = testInstance('ftp');
let root = '';
let dir = '';
let docker: Dockerode | undefined;
let runtime: DockerRuntime | undefined;
let unit: UnitName;
let config: ContainerUnitConfig;

/** Runs `fleetts ARGS` with `source` (the test's FTP directory) mounted at DEFAULT_FTP_DIR, in a private mount namespace. */
function fleettsAtDefaultDir(
  args: readonly string[],
  stdin = '',
  source = dir,
): Promise<{ code: number | null; stderr: string }> {
  const script = `set -e
mount -t tmpfs fleetts-test /srv
mkdir -p "${DEFAULT_FTP_DIR}"
mount --bind "$1" "${DEFAULT_FTP_DIR}"
shift
exec "$@"`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        'sh',
        source,
        process.execPath,
        join(ROOT, 'bin/fleetts.js'),
        ...args,
        '--ftp-dir',
        DEFAULT_FTP_DIR,
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(stdin);
  });
}

async function banner(): Promise<string> {
  return new Promise<string>((resolve) => {
    const sock = connect(21, IP);
    sock.setTimeout(2_000, () => sock.destroy());
    sock.once('data', (d: Buffer) => {
      sock.destroy();
      resolve(d.toString());
    });
    sock.once('error', () => resolve(''));
    sock.once('close', () => resolve(''));
  });
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the vsftpd container test needs root (dockerd, mount namespaces): run it as root');
  docker = await ensureDockerImages(['vsftpd']);
  root = await mkdtemp(join(tmpdir(), 'fleetts-vsftpd-docker-'));
  dir = join(root, 'ftp');
  await mkdir(dir, { mode: 0o755 });
  await chmod(dir, 0o755);

  const init = await fleettsAtDefaultDir(['ftp', 'init', '--pasv-ports', `${PASV}-${PASV + 4}`]);
  if (init.code !== 0) throw new Error(`fleetts ftp init: ${init.stderr}`);
  const add = await fleettsAtDefaultDir(['ftp', 'add-user', 'alice', '--password-stdin'], `${PW}\n`);
  if (add.code !== 0) throw new Error(`fleetts ftp add-user: ${add.stderr}`);

  // units/ftp.unit → the Docker config, as the agent builds it on a host whose address is IP.
  const text = await readFile(join(ROOT, 'units/ftp.unit'), 'utf8');
  const spec = parseUnitSpec(text, 'ftp.unit');
  if (spec.run.kind !== 'container') throw new Error('units/ftp.unit is not a [Container] unit');
  unit = spec.name;
  const host: HostFacts = {
    machine: { id: asMachineId(`m-${instance}`), ip: IP, metadata: {} },
    hostname: 'ftp-test',
    bootId: randomBytes(16).toString('hex'),
  };
  const built = containerConfigFromSpec({
    unit,
    hash: asUnitHash(spec.hash),
    spec: spec.run.container,
    specifiers: unitSpecifiers(spec.parsedName, host),
    baseEnv: unitBaseEnvironment(unit, host),
    readFile: () => undefined,
  });
  if (built.kind !== 'ok') throw new Error(`units/ftp.unit: ${built.reason}`);
  config = {
    ...built.config,
    // A name of its own (ContainerName=ftp may be a real service on this dockerd) and the test's
    // FTP directory as the source of the unit's one bind mount.
    name: `ftp-${instance}`,
    volumes: built.config.volumes.map((v) =>
      v.kind === 'bind' && v.source === DEFAULT_FTP_DIR ? { ...v, source: dir } : v,
    ),
  };
  runtime = new DockerRuntime({ machine: host.machine.id, instance, docker, resyncMs: 1_000 });
});

test.after.always(async () => {
  await runtime?.close();
  if (docker !== undefined) await removeContainers(docker, [instance]);
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const login = (user: string, password: string) => ({ host: IP, port: 21, user, password, timeoutMs: 10_000 });

test.serial(
  'the unit as the agent builds it: image, host network, the FTP directory, the host address',
  (t) => {
    t.is(config.image, 'fleetts/vsftpd:latest');
    t.deepEqual(config.network, { kind: 'host' });
    t.deepEqual(config.cmd, [
      '/usr/local/bin/fleetts-ftp-check',
      '/usr/sbin/vsftpd',
      `${DEFAULT_FTP_DIR}/vsftpd.conf`,
      `-olisten_address=${IP}`,
    ]);
    t.deepEqual(
      config.volumes.map((v) => (v.kind === 'bind' ? v.target : v.kind)),
      [DEFAULT_FTP_DIR],
    );
  },
);

test.serial(
  'vsftpd in its container: a virtual user uploads and downloads; a wrong password gets 530',
  async (t) => {
    t.timeout(60_000);
    if (runtime === undefined) return t.fail('no runtime');
    await runtime.start(config);
    const journal = async (): Promise<string> => {
      const lines: string[] = [];
      for await (const l of runtime?.journal(unit, { lines: 50 }) ?? []) lines.push(l);
      return lines.join('\n');
    };
    await waitFor('vsftpd to answer on port 21', async () => (await banner()).startsWith('220')).catch(
      async (err: Error) => {
        throw new Error(`${err.message}; container log:\n${await journal()}`);
      },
    );

    const bytes = randomBytes(256 * 1024);
    const listed = await withFtp(login('alice', PW), async (c) => {
      await upload(c, 'site.tar', bytes);
      t.true((await download(c, 'site.tar')).equals(bytes), 'downloaded bytes equal the uploaded ones');
      await c.cd('..');
      t.is(await c.pwd(), '/', 'chrooted in its home');
      return (await c.list()).map((f) => f.name);
    });
    t.deepEqual(listed, ['site.tar']);
    const onDisk = join(dir, 'home', 'alice', 'site.tar');
    t.true((await readFile(onDisk)).equals(bytes), 'the file is in the FTP directory on the host');
    t.is((await stat(onDisk)).uid, 2121, "written as the image's guest account, the default uid");

    const wrong = await t.throwsAsync(
      withFtp(login('alice', 'not-the-passw0rd'), () => Promise.resolve(undefined)),
    );
    t.regex(wrong.message, /530/);
    // PAM reads users.pwd at each login: a user added by the CLI while the container runs logs in.
    const add = await fleettsAtDefaultDir(['ftp', 'add-user', 'bob', '--password-stdin'], `${PW}-bob\n`);
    t.is(add.code, 0, add.stderr);
    await withFtp(login('bob', `${PW}-bob`), async (c) => t.deepEqual(await c.list(), []));

    await runtime.stop(unit);
    const stopped = (await runtime.list()).find((o) => o.unit === unit);
    t.is(stopped?.active, 'inactive', JSON.stringify(stopped));
    t.is(await banner(), '', 'nothing answers on port 21 once stopped');
    const ps = await exec('docker', ['ps', '-q', '--filter', `name=^ftp-${instance}$`]);
    t.is(ps.stdout.trim(), '', 'the container is not running');
  },
);

/** Runs the unit with its FTP directory at `source`, once (Restart=no), and returns its log once it failed. */
async function failedRun(tag: string, source: string): Promise<string> {
  const r = runtime;
  if (r === undefined) throw new Error('no runtime');
  const bad = `ftp-${tag}.unit` as UnitName;
  await r.start({
    ...config,
    unit: bad,
    name: `ftp-${tag}-${instance}`,
    restart: 'no',
    volumes: config.volumes.map((v) => (v.kind === 'bind' ? { ...v, source } : v)),
  });
  await waitFor(`${bad} to fail`, async () =>
    (await r.list()).find((o) => o.unit === bad && o.active === 'failed'),
  );
  const lines: string[] = [];
  for await (const l of r.journal(bad, { lines: 20 })) lines.push(l);
  return lines.join('\n');
}

test.serial(
  'an FTP directory that is missing or does not fit the image: the container says what to do',
  async (t) => {
    t.timeout(60_000);
    const empty = join(root, 'empty');
    await mkdir(empty);
    t.regex(
      await failedRun('empty', empty),
      /fleetts\/vsftpd: no FTP directory at \/srv\/fleetts\/shared\/ftp \(.*ftp\.json is missing\): mount the shared storage and run `fleetts ftp init`/,
    );

    // Made for its own path, not for the path the unit mounts it at: logins would fail in chroot.
    const elsewhere = join(root, 'elsewhere');
    const init = await runBin('fleetts', ['ftp', 'init', '--ftp-dir', elsewhere]);
    t.is(init.code, 0, init.stderr);
    const log = await failedRun('elsewhere', elsewhere);
    t.regex(log, /vsftpd\.conf was written for another directory \(.*\/elsewhere\/home\/\$USER\)/);
    t.regex(log, /run `fleetts ftp init --force --ftp-dir \/srv\/fleetts\/shared\/ftp`/);

    // Other guest ids than the image's account: uploads would fail on the homes' owner.
    const otherIds = join(root, 'other-ids');
    await mkdir(otherIds, { mode: 0o755 });
    const initIds = await fleettsAtDefaultDir(
      ['ftp', 'init', '--guest-uid', '2200', '--guest-gid', '2200'],
      '',
      otherIds,
    );
    t.is(initIds.code, 0, initIds.stderr);
    t.regex(
      await failedRun('other-ids', otherIds),
      /ftp\.json gives fleetts-ftp the ids 2200:2200; this image's fleetts-ftp has 2121:2121: keep the defaults of `fleetts ftp init`, or change images\/vsftpd to match/,
    );
  },
);
