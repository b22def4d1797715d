// `fleetts cloud-config` and `fleetts farm-files` through the real binary (dist/): a user's mistake
// is one line naming the option and exits 2; good input prints or writes the files.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { runBin } from '../helpers/cli.js';

const BASE = ['cloud-config', '--os', 'debian', '--nfs', '10.0.0.10:/export/fleetts'];
const HOSTS = ['--hosts', '10.0.0.11,10.0.0.12,10.0.0.13'];

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetts-cloud-config-cli-'));
});
test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

const bad: [string, string[], RegExp][] = [
  [
    'a bad IP',
    [...BASE, '--hosts', '10.0.0.11,10.0.0.300,10.0.0.13', '--host', '1'],
    /^fleetts: --hosts: "10\.0\.0\.300" \(host 2\) is not an IPv4 or IPv6 address \(example: /,
  ],
  [
    'too few hosts',
    [...BASE, '--hosts', '10.0.0.11,10.0.0.12', '--host', '1'],
    /^fleetts: --hosts: 2 given, at least 3 needed \(the first three run the etcd members\)$/,
  ],
  [
    'a host index out of range',
    [...BASE, ...HOSTS, '--host', '4'],
    /^fleetts: --host "4": must be a host number from 1 to 3 \(the position in --hosts\)$/,
  ],
  [
    'bad metadata',
    [...BASE, ...HOSTS, '--host', '1', '--metadata', 'region'],
    /^fleetts: --metadata "region": "region" is not key=value \(example: region=eu,disk=ssd\)$/,
  ],
  [
    'metadata for a host that is not there',
    [...BASE, ...HOSTS, '--host', '1', '--metadata', '7:disk=ssd'],
    /^fleetts: --metadata "7:disk=ssd": host 7 is not one of the 3 hosts /,
  ],
  [
    'a bad NFS spec',
    ['cloud-config', '--os', 'debian', ...HOSTS, '--host', '1', '--nfs', '/export/fleetts'],
    /^fleetts: --nfs "\/export\/fleetts": must be SERVER:\/EXPORT \(example: --nfs 10\.0\.0\.10:\/export\/fleetts\)$/,
  ],
  [
    'an unknown OS',
    ['cloud-config', '--os', 'coreos', ...HOSTS, '--host', '1', '--nfs', 'nas:/x'],
    /^fleetts: --os "coreos": must be debian \(Debian, Raspberry Pi OS: cloud-init\) or flatcar \(Butane\)$/,
  ],
  [
    'neither --host nor --out',
    [...BASE, ...HOSTS],
    /^fleetts: give --host N to print one host, or --out DIR to write every host$/,
  ],
];

for (const [what, args, message] of bad) {
  test(`${what}: one line, exit 2`, async (t) => {
    const r = await runBin('fleetts', args);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr.trimEnd(), message);
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.is(r.stdout, '');
  });
}

test('a private key given as --ssh-key is refused without echoing it', async (t) => {
  const key = join(dir, 'id_ed25519');
  await writeFile(
    key,
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
  );
  const r = await runBin('fleetts', [...BASE, ...HOSTS, '--host', '1', '--ssh-key', key]);
  t.is(r.code, 2);
  t.is(r.stderr, `fleetts: --ssh-key ${key}: this is a private key; give the public one (${key}.pub)\n`);
});

test('--host N prints that host; --out DIR writes every host and names the files', async (t) => {
  const one = await runBin('fleetts', [...BASE, ...HOSTS, '--host', '2']);
  t.is(one.code, 0, one.stderr);
  t.true(one.stdout.startsWith('#cloud-config\n'));
  t.is((parse(one.stdout) as { hostname: string }).hostname, 'host2');

  const out = join(dir, 'flatcar');
  const all = await runBin('fleetts', [
    'cloud-config',
    '--os',
    'flatcar',
    '--hosts',
    '10.0.0.11,10.0.0.12,10.0.0.13,10.0.0.14',
    '--nfs',
    'nas.example:/export/fleetts',
    '--out',
    out,
  ]);
  t.is(all.code, 0, all.stderr);
  t.deepEqual((await readdir(out)).sort(), ['host1.yaml', 'host2.yaml', 'host3.yaml', 'host4.yaml']);
  t.is(all.stdout, [1, 2, 3, 4].map((n) => `wrote ${join(out, `host${n}.yaml`)}\n`).join(''));
  const host4 = parse(await readFile(join(out, 'host4.yaml'), 'utf8')) as { variant: string };
  t.is(host4.variant, 'flatcar');
});

test('farm-files writes the web farm to the shared storage and keeps an existing upstream file', async (t) => {
  const out = join(dir, 'export');
  const first = await runBin('fleetts', ['farm-files', '--out', out]);
  t.is(first.code, 0, first.stderr);
  const apache = await readFile(join(out, 'web/apache.conf'), 'utf8');
  t.true(apache.includes('DocumentRoot /srv/fleetts/shared/web/htdocs'));
  const unit = await readFile(join(out, 'units/web@.unit'), 'utf8');
  t.true(unit.includes('-f /srv/fleetts/shared/web/apache.conf'));
  await writeFile(join(out, 'lb/conf.d/upstream-web.conf'), '# rendered by lb-upstream.unit\n');
  const again = await runBin('fleetts', ['farm-files', '--out', out]);
  t.is(again.code, 0, again.stderr);
  t.true(again.stdout.includes(`kept ${join(out, 'lb/conf.d/upstream-web.conf')}\n`));
  t.is(await readFile(join(out, 'lb/conf.d/upstream-web.conf'), 'utf8'), '# rendered by lb-upstream.unit\n');
});

test('farm-files --floating-address adds the env file and lb-address.unit; a bad address is a usage error', async (t) => {
  const out = join(dir, 'export-floating');
  const r = await runBin('fleetts', ['farm-files', '--out', out, '--floating-address', '10.0.0.100/24']);
  t.is(r.code, 0, r.stderr);
  const env = await readFile(join(out, 'lb/floating-address.env'), 'utf8');
  t.deepEqual(
    env.split('\n').filter((l) => l.startsWith('FLOATING_')),
    ['FLOATING_ADDRESS=10.0.0.100/24', 'FLOATING_INTERFACE=eth0'],
  );
  const unit = await readFile(join(out, 'units/lb-address.unit'), 'utf8');
  t.true(unit.includes('EnvironmentFile=/srv/fleetts/shared/lb/floating-address.env'), unit);
  const verified = await runBin('fleetts', ['verify', join(out, 'units/lb-address.unit')]);
  t.is(verified.code, 0, verified.stderr);
  const bad = await runBin('fleetts', ['farm-files', '--out', out, '--floating-address', '10.0.0.1/40']);
  t.is(bad.code, 2);
  t.is(
    bad.stderr,
    'fleetts: --floating-address must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "10.0.0.1/40"\n',
  );
});
