// The committed examples under cloud-config/ are exactly what the generator writes, and what it
// writes is accepted by the real consumers: cloud-init's own schema check (Debian's cloud-init),
// fleetd's own config schema and flags, etcd's flags, systemd's unit checker, sh/bash syntax.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { parse } from 'yaml';
import { z } from 'zod';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { parseClusterSpec } from '../../src/cloud-config/cluster-spec.js';
import { renderUserData } from '../../src/cloud-config/render-user-data.js';
import { parseConfigFile, resolveConfig } from '../../src/daemon/config.js';
import { parseUnitFile, sectionEntries } from '../../src/unit/parse-unit-file.js';
import { ROOT, runBin } from '../helpers/cli.js';

const exec = promisify(execFile);
const EXAMPLE_IPS = ['10.0.0.11', '10.0.0.12', '10.0.0.13'];
const CLOUD_INIT_SCHEMA =
  '/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json';
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcQXCJoVNgt63Uizf62IB3ZSR9c0s69DaS3lG8KQUBv admin@example';

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetts-cloud-config-'));
});
test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** A tool a real-component check needs: its absence fails the test with how to install it. */
async function need(cmd: string, pkg: string): Promise<void> {
  try {
    await exec('sh', ['-c', `command -v ${cmd}`]);
  } catch {
    throw new Error(`${cmd} is not installed: apt-get install ${pkg} (this test checks files with it)`);
  }
}

async function example(os: string, n: number): Promise<string> {
  return readFile(join(ROOT, 'cloud-config', os, `host${n}.yaml`), 'utf8');
}

/** One host's files and units, from either format. */
interface Host {
  readonly files: Map<string, string>;
  readonly units: Map<string, string>;
}

const debianSchema = z.object({
  write_files: z.array(z.object({ path: z.string(), content: z.string(), permissions: z.string() })),
  runcmd: z.array(z.array(z.string())),
});

// The part of Butane's flatcar 1.0.0 spec the generator uses; strict, so a misspelt key fails.
const butaneSchema = z
  .object({
    variant: z.literal('flatcar'),
    version: z.literal('1.0.0'),
    passwd: z
      .object({
        users: z.array(z.object({ name: z.string(), ssh_authorized_keys: z.array(z.string()) }).strict()),
      })
      .strict()
      .optional(),
    storage: z
      .object({
        files: z.array(
          z
            .object({
              path: z.string().startsWith('/'),
              mode: z.number().int(),
              contents: z.object({ inline: z.string() }).strict(),
            })
            .strict(),
        ),
      })
      .strict(),
    systemd: z
      .object({
        units: z.array(z.object({ name: z.string(), enabled: z.boolean(), contents: z.string() }).strict()),
      })
      .strict(),
  })
  .strict();

function hostOf(os: string, text: string): Host {
  const doc: unknown = parse(text);
  if (os === 'debian') {
    const d = debianSchema.parse(doc);
    const files = new Map(d.write_files.map((f) => [f.path, f.content]));
    const units = new Map(
      [...files]
        .filter(([p]) => p.startsWith('/etc/systemd/system/'))
        .map(([p, t]) => [p.slice('/etc/systemd/system/'.length), t]),
    );
    return { files, units };
  }
  const b = butaneSchema.parse(doc);
  return {
    files: new Map(b.storage.files.map((f) => [f.path, f.contents.inline])),
    units: new Map(b.systemd.units.map((u) => [u.name, u.contents])),
  };
}

function unitValue(text: string, section: string, key: string): string | undefined {
  return sectionEntries(parseUnitFile(text), section).find((e) => e.key === key)?.value;
}

function envFile(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** A 4-host cluster with a key: host 4 is an etcd client only. */
function render(os: 'debian' | 'flatcar', n: number): string {
  const spec = parseClusterSpec({
    os,
    hosts: [...EXAMPLE_IPS, '10.0.0.14'].join(','),
    nfs: 'nas.example:/export/fleetts',
    sshKeys: { file: 'key.pub', text: SSH_KEY + '\n' },
    metadata: ['role=web'],
  });
  return renderUserData(spec, spec.hosts[n - 1]!);
}

test('the committed examples are what the commands in cloud-config/README.md write', async (t) => {
  const readme = await readFile(join(ROOT, 'cloud-config', 'README.md'), 'utf8');
  const commands = readme.split('\n').filter((l) => l.startsWith('fleetts cloud-config '));
  t.is(commands.length, 2, 'README.md shows one command per OS');
  for (const command of commands) {
    const args = command.split(' ').slice(1);
    const outAt = args.indexOf('--out');
    const committed = args[outAt + 1]!;
    const out = join(dir, committed);
    args[outAt + 1] = out;
    const output = new BufferOutput();
    t.is(await run(args, output), 0, output.stderr);
    const want = (await readdir(join(ROOT, committed))).sort();
    t.deepEqual((await readdir(out)).sort(), want, `${committed}: the same files`);
    for (const name of want) {
      const fresh = await readFile(join(out, name), 'utf8');
      const kept = await readFile(join(ROOT, committed, name), 'utf8');
      t.is(kept, fresh, `${committed}/${name} drifted: regenerate it with: ${command}`);
    }
  }
});

test('cloud-init schema (Debian cloud-init) accepts every Debian user-data file', async (t) => {
  await need('cloud-init', 'cloud-init');
  const paths: string[] = [];
  for (const n of [1, 2, 3]) paths.push(join(ROOT, 'cloud-config', 'debian', `host${n}.yaml`));
  // A client-only host and an SSH key: parts the committed examples do not show.
  const extra = join(dir, 'debian-host4.yaml');
  await writeFile(extra, render('debian', 4));
  paths.push(extra);
  const results = await Promise.all(
    paths.map((p) =>
      exec('cloud-init', ['schema', '--config-file', p]).then(
        (r) => ({ p, ok: true, out: r.stdout + r.stderr }),
        (err: { stdout: string; stderr: string }) => ({ p, ok: false, out: err.stdout + err.stderr }),
      ),
    ),
  );
  for (const r of results) {
    t.true(r.ok, `${r.p}: ${r.out}`);
    t.regex(r.out, /Valid cloud-config/);
  }
});

test('the checks bite: cloud-init rejects a misspelt key, and an unknown top-level key is caught', async (t) => {
  await need('cloud-init', 'cloud-init');
  const good = await example('debian', 1);
  t.true(good.includes('    permissions: '));
  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, good.replace('    permissions: ', '    permisions: '));
  const err = await exec('cloud-init', ['schema', '--config-file', broken]).then(
    () => undefined,
    (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
  );
  t.not(err, undefined, 'cloud-init schema accepted a misspelt write_files key');
  t.regex(err ?? '', /'permisions' was unexpected/);

  // cloud-init 22.4 lets unknown top-level keys through, so they are checked against its schema file.
  const known = await cloudInitTopLevelKeys();
  t.true(known.has('write_files') && known.has('runcmd'));
  const typo = parse(good.replace('\npackages:', '\npackges:')) as Record<string, unknown>;
  t.deepEqual(
    Object.keys(typo).filter((k) => !known.has(k)),
    ['packges'],
  );
});

test('every Debian file uses only top-level keys that cloud-init knows', async (t) => {
  const known = await cloudInitTopLevelKeys();
  for (const text of [await example('debian', 1), render('debian', 4)]) {
    const doc = parse(text) as Record<string, unknown>;
    t.deepEqual(
      Object.keys(doc).filter((k) => !known.has(k)),
      [],
    );
  }
});

async function cloudInitTopLevelKeys(): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(CLOUD_INIT_SCHEMA, 'utf8');
  } catch {
    throw new Error(`${CLOUD_INIT_SCHEMA} is missing: apt-get install cloud-init`);
  }
  const schema = z
    .object({
      $defs: z.record(z.string(), z.object({ properties: z.record(z.string(), z.unknown()).optional() })),
    })
    .parse(JSON.parse(text));
  return new Set(Object.values(schema.$defs).flatMap((d) => Object.keys(d.properties ?? {})));
}

test('every file parses as YAML; the Flatcar files hold only Butane flatcar 1.0.0 keys', async (t) => {
  for (const os of ['debian', 'flatcar'] as const) {
    for (const text of [await example(os, 1), await example(os, 2), await example(os, 3), render(os, 4)]) {
      t.notThrows(() => hostOf(os, text));
    }
  }
  const broken = (await example('flatcar', 1)).replace('      enabled: true', '      enable: true');
  t.throws(() => hostOf('flatcar', broken), { message: /enable/ });
});

test('etcd: the first three hosts bootstrap one cluster naming all three; host 4 is a client', async (t) => {
  await need('etcd', 'etcd-server');
  const help = (await exec('etcd', ['--help'])).stdout;
  for (const os of ['debian', 'flatcar'] as const) {
    const envPath = os === 'debian' ? '/etc/default/etcd' : '/etc/fleetts/etcd.env';
    const initial = 'host1=http://10.0.0.11:2380,host2=http://10.0.0.12:2380,host3=http://10.0.0.13:2380';
    for (const n of [1, 2, 3]) {
      const env = envFile(hostOf(os, await example(os, n)).files.get(envPath) ?? '');
      t.is(env.get('ETCD_INITIAL_CLUSTER'), initial, `${os} host${n}`);
      t.is(env.get('ETCD_NAME'), `host${n}`);
      t.is(env.get('ETCD_INITIAL_ADVERTISE_PEER_URLS'), `http://${EXAMPLE_IPS[n - 1]}:2380`);
      t.is(env.get('ETCD_INITIAL_CLUSTER_STATE'), 'new');
      t.is(env.get('ETCD_INITIAL_CLUSTER_TOKEN'), 'fleetts');
      for (const key of env.keys()) {
        const flag = '--' + key.slice('ETCD_'.length).toLowerCase().replace(/_/g, '-');
        t.true(help.includes(`${flag} `) || help.includes(`${flag}\n`), `${key}: etcd has no ${flag}`);
      }
    }
    const client = hostOf(os, render(os, 4));
    t.false(client.files.has(envPath), `${os}: host 4 runs no etcd`);
    t.false(client.units.has('fleetts-etcd.service'));
  }
});

test("fleetd: its config file passes fleetd's own schema; ExecStart's flags are fleetd's", async (t) => {
  const help = (await runBin('fleetd', ['--help'])).stdout;
  t.regex(help, /--config <file>/);
  for (const os of ['debian', 'flatcar'] as const) {
    for (const [n, text] of [
      [3, await example(os, 3)],
      [4, render(os, 4)],
    ] as const) {
      const host = hostOf(os, text);
      const conf = host.files.get('/etc/fleetts/fleetd.conf') ?? '';
      const config = resolveConfig([{ name: 'fleetd.conf', values: parseConfigFile(conf, 'fleetd.conf') }]);
      t.deepEqual(
        config.etcdEndpoints,
        EXAMPLE_IPS.map((ip) => `http://${ip}:2379`),
      );
      t.is(config.publicIp, n === 3 ? '10.0.0.13' : '10.0.0.14');
      t.deepEqual(config.metadata, n === 3 ? { region: 'eu', disk: 'ssd' } : { role: 'web' });

      const unit = host.units.get('fleetd.service') ?? '';
      const [bin, ...args] = (unitValue(unit, 'Service', 'ExecStart') ?? '').split(' ');
      t.is(bin, os === 'debian' ? '/usr/local/bin/fleetd' : '/opt/bin/fleetd');
      t.deepEqual(args, ['--config', '/etc/fleetts/fleetd.conf']);
      for (const flag of args.filter((a) => a.startsWith('--'))) t.true(help.includes(`${flag} `), flag);
      t.is(unitValue(unit, 'Service', 'KillMode'), 'process');
      // The setup script installs fleetd where ExecStart looks for it.
      const setup = [...host.files].find(([p]) => p.endsWith('/fleetts-setup'))?.[1] ?? '';
      t.true(setup.includes(`npm install -g --prefix ${os === 'debian' ? '/usr/local' : '/opt'} "$tarball"`));
    }
  }
});

test('the NFS export is mounted at /srv/fleetts/shared, by a unit systemd names for that path', async (t) => {
  await need('systemd-escape', 'systemd');
  const name = (
    await exec('systemd-escape', ['--path', '--suffix=mount', '/srv/fleetts/shared'])
  ).stdout.trim();
  for (const os of ['debian', 'flatcar'] as const) {
    const mount = hostOf(os, await example(os, 2)).units.get(name);
    t.truthy(mount, `${os}: no ${name}`);
    t.is(unitValue(mount ?? '', 'Mount', 'What'), '10.0.0.10:/export/fleetts');
    t.is(unitValue(mount ?? '', 'Mount', 'Where'), '/srv/fleetts/shared');
    t.is(unitValue(mount ?? '', 'Mount', 'Type'), 'nfs');
  }
});

test('units pass systemd-analyze verify; nothing but fleetd, etcd, the mount and setup is started', async (t) => {
  await need('systemd-analyze', 'systemd');
  for (const os of ['debian', 'flatcar'] as const) {
    const host = hostOf(os, await example(os, 1));
    const expected =
      os === 'debian'
        ? ['fleetd.service', 'srv-fleetts-shared.mount']
        : ['fleetd.service', 'fleetts-etcd.service', 'fleetts-setup.service', 'srv-fleetts-shared.mount'];
    t.deepEqual([...host.units.keys()].sort(), expected);
    const unitDir = join(dir, `units-${os}`);
    await rm(unitDir, { recursive: true, force: true });
    await exec('mkdir', ['-p', unitDir]);
    for (const [name, text] of host.units) await writeFile(join(unitDir, name), text);
    const problems = await verifyUnits(unitDir, [...host.units.keys()]);
    t.deepEqual(problems, [], `${os}: systemd-analyze verify`);
    if (os === 'debian') {
      const setup = host.files.get('/usr/local/sbin/fleetts-setup') ?? '';
      const started = setup
        .split('\n')
        .filter((l) => l.startsWith('systemctl ') && !l.includes('daemon-reload'))
        .flatMap((l) => l.split(' ').filter((w) => /\.(service|mount)$/.test(w)));
      t.deepEqual([...new Set(started)].sort(), [
        'etcd.service',
        'fleetd.service',
        'srv-fleetts-shared.mount',
      ]);
    }
  }
  // The check bites: an unknown key is reported.
  const unitDir = join(dir, 'units-broken');
  await exec('mkdir', ['-p', unitDir]);
  const mount = hostOf('debian', await example('debian', 1)).units.get('srv-fleetts-shared.mount') ?? '';
  await writeFile(
    join(unitDir, 'srv-fleetts-shared.mount'),
    mount.replace('Type=nfs', 'Type=nfs\nFsType=nfs'),
  );
  const problems = await verifyUnits(unitDir, ['srv-fleetts-shared.mount']);
  t.true(
    problems.some((p) => p.includes("Unknown key 'FsType'")),
    problems.join('\n'),
  );
});

/** systemd-analyze verify's complaints, less the binaries that only the host's setup installs. */
async function verifyUnits(unitDir: string, names: string[]): Promise<string[]> {
  const out = await exec('systemd-analyze', ['verify', ...names.map((n) => join(unitDir, n))]).then(
    (r) => r.stdout + r.stderr,
    (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
  );
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => !/Command \/(usr\/local|opt)\/(s?bin)\/\S+ is not executable/.test(l));
}

test('the setup scripts are valid sh (Debian) and bash (Flatcar)', async (t) => {
  for (const [os, shell, path] of [
    ['debian', 'sh', '/usr/local/sbin/fleetts-setup'],
    ['flatcar', 'bash', '/opt/bin/fleetts-setup'],
  ] as const) {
    for (const text of [await example(os, 1), render(os, 4)]) {
      const script = hostOf(os, text).files.get(path) ?? '';
      t.true(script.startsWith(`#!/bin/${shell}\n`));
      const file = join(dir, `setup-${os}.sh`);
      await writeFile(file, script);
      await t.notThrowsAsync(exec(shell, ['-n', file]), `${os}: ${shell} -n`);
    }
  }
  const broken = join(dir, 'broken-setup.sh');
  await writeFile(broken, 'if true; then\n  echo\n');
  await t.throwsAsync(exec('sh', ['-n', broken]));
});

test('the SSH key reaches the login user: the default user on Debian, core on Flatcar', (t) => {
  const debian = parse(render('debian', 1)) as { ssh_authorized_keys: string[] };
  t.deepEqual(debian.ssh_authorized_keys, [SSH_KEY]);
  const flatcar = butaneSchema.parse(parse(render('flatcar', 1)));
  t.deepEqual(flatcar.passwd?.users, [{ name: 'core', ssh_authorized_keys: [SSH_KEY] }]);
  const files = new Map(flatcar.storage.files.map((f) => [f.path, f]));
  t.is(files.get('/opt/bin/fleetts-setup')?.mode, 0o755);
  t.is(files.get('/etc/hostname')?.contents.inline, 'host1\n');
});
