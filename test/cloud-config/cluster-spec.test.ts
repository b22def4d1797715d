// The generator's input rules (pure): what a spec holds, and the messages for what it refuses.
import test from 'ava';
import { parseClusterSpec, type ClusterSpecInput } from '../../src/cloud-config/cluster-spec.js';
import { hostFiles } from '../../src/cloud-config/host-files.js';

const BASE: ClusterSpecInput = { os: 'debian', hosts: '10.0.0.11,10.0.0.12,10.0.0.13', nfs: 'nas:/export' };

test('the first three hosts are etcd members; metadata for all, then per host (later wins)', (t) => {
  const spec = parseClusterSpec({
    ...BASE,
    hosts: '10.0.0.11, 10.0.0.12,10.0.0.13,10.0.0.14',
    metadata: ['region=eu,disk=hdd', '2:disk=ssd', 'rack=r1'],
  });
  t.deepEqual(
    spec.hosts.map((h) => [h.name, h.ip, h.etcdMember, h.metadata]),
    [
      ['host1', '10.0.0.11', true, 'region=eu,disk=hdd,rack=r1'],
      ['host2', '10.0.0.12', true, 'region=eu,disk=ssd,rack=r1'],
      ['host3', '10.0.0.13', true, 'region=eu,disk=hdd,rack=r1'],
      ['host4', '10.0.0.14', false, 'region=eu,disk=hdd,rack=r1'],
    ],
  );
  t.is(spec.fleettsTarball.startsWith('/srv/fleetts/shared/dist/fleetts-'), true);
});

test('IPv6 hosts are bracketed in etcd URLs; relative tarball paths are on the share', (t) => {
  const spec = parseClusterSpec({
    ...BASE,
    os: 'flatcar',
    hosts: 'fd00::11,fd00::12,fd00::13',
    nfs: '[fd00::10]:/export/fleetts/',
    nodeTarball: 'dist/node-v20.19.5-linux-arm64.tar.xz',
  });
  t.deepEqual(spec.nfs, { server: '[fd00::10]', export: '/export/fleetts' });
  t.is(spec.nodeTarball, '/srv/fleetts/shared/dist/node-v20.19.5-linux-arm64.tar.xz');
  const conf = hostFiles(spec, spec.hosts[0]!).files.find((f) => f.path === '/etc/fleetts/fleetd.conf');
  t.regex(conf?.text ?? '', /^etcd-endpoints = http:\/\/\[fd00::11\]:2379,http:\/\/\[fd00::12\]:2379,/m);
});

const refused: [string, Partial<ClusterSpecInput>, string][] = [
  [
    'a repeated IP',
    { hosts: '10.0.0.11,10.0.0.12,10.0.0.11' },
    '--hosts: 10.0.0.11 is given twice (hosts 1 and 3)',
  ],
  [
    'an export path with a space',
    { nfs: 'nas:/export/my files' },
    '--nfs "nas:/export/my files": the export path may hold only letters, digits and . _ / + - (no spaces, no "..")',
  ],
  [
    'a tarball off the share',
    { fleettsTarball: '/root/fleetts.tgz' },
    '--fleetts-tarball "/root/fleetts.tgz": must be a file on the shared storage, under /srv/fleetts/shared/ or relative to it (letters, digits and . _ / + - only)',
  ],
  [
    'a Flatcar option for Debian',
    { nodeTarball: 'node.tar.xz' },
    '--node-tarball is for --os flatcar (Debian hosts install Node.js with apt: --node)',
  ],
  [
    'a bad name prefix',
    { namePrefix: 'Web_' },
    '--name-prefix "Web_": must be lower-case letters, digits and "-", starting with a letter (host names are PREFIX1, PREFIX2, …)',
  ],
  [
    'metadata with a quote',
    { metadata: ['owner="ops"'] },
    '--metadata "owner="ops"": no quotes or "#" (the value goes into fleetd\'s config file)',
  ],
  [
    'a key file without keys',
    { sshKeys: { file: 'k.pub', text: '# nothing\n' } },
    '--ssh-key k.pub: no public key in the file',
  ],
  [
    'a key file with a bad line',
    { sshKeys: { file: 'k.pub', text: 'ssh-ed25519 AAAA\nhello\n' } },
    '--ssh-key k.pub: key 2 is not an OpenSSH public key line ("ssh-ed25519 AAAA… comment")',
  ],
];

for (const [what, change, message] of refused) {
  test(`refused: ${what}`, (t) => {
    t.throws(() => parseClusterSpec({ ...BASE, ...change }), { message, name: 'UsageError' });
  });
}
