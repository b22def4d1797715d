// What `fleetts cloud-config` puts on one host, as file texts: fleetd's config file and unit, the
// NFS mount unit, etcd's settings (first three hosts), and the setup script installing Node.js and
// fleetts. Pure; render-debian.ts and render-flatcar.ts wrap them in each OS's first-boot format.
import { ETCD_MEMBERS, SHARED_PATH, type ClusterSpec, type HostSpec } from './cluster-spec.js';

/** systemd's name for the mount unit of SHARED_PATH (systemd-escape --path). */
export const MOUNT_UNIT = 'srv-fleetts-shared.mount';
export const FLEETD_CONF = '/etc/fleetts/fleetd.conf';
/** etcd's data under /var/lib/etcd, apart from the default member Debian's package would create. */
export const ETCD_DATA_DIR = '/var/lib/etcd/fleetts';
const NODESOURCE_KEY = 'https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key';
const NODESOURCE_REPO = 'https://deb.nodesource.com/node_20.x nodistro main';

export interface HostFile {
  readonly path: string;
  readonly mode: number;
  readonly text: string;
}

export interface HostFiles {
  /** Files written before first boot's services start. */
  readonly files: readonly HostFile[];
  /** systemd units (name → text), written to /etc/systemd/system. */
  readonly units: readonly { readonly name: string; readonly text: string; readonly enable: boolean }[];
  /** The setup script's path (Debian runs it from cloud-init's runcmd, Flatcar from a unit). */
  readonly setupScript: string;
}

export function hostFiles(spec: ClusterSpec, host: HostSpec): HostFiles {
  const debian = spec.os === 'debian';
  const setupScript = debian ? '/usr/local/sbin/fleetts-setup' : '/opt/bin/fleetts-setup';
  const etcdEnvPath = debian ? '/etc/default/etcd' : '/etc/fleetts/etcd.env';
  const files: HostFile[] = [{ path: FLEETD_CONF, mode: 0o644, text: fleetdConf(spec, host) }];
  if (host.etcdMember) files.push({ path: etcdEnvPath, mode: 0o644, text: etcdEnv(spec, host) });
  files.push({
    path: setupScript,
    mode: 0o755,
    text: debian ? debianSetup(spec, host) : flatcarSetup(spec),
  });
  const units = [
    { name: MOUNT_UNIT, text: mountUnit(spec), enable: !debian },
    ...(host.etcdMember && !debian
      ? [{ name: 'fleetts-etcd.service', text: flatcarEtcdUnit(spec, etcdEnvPath), enable: true }]
      : []),
    ...(debian ? [] : [{ name: 'fleetts-setup.service', text: flatcarSetupUnit(setupScript), enable: true }]),
    { name: 'fleetd.service', text: fleetdUnit(spec, host), enable: !debian },
  ];
  return { files, units, setupScript };
}

/** The etcd client URLs fleetd and the CLI use: every member's. */
export function etcdEndpoints(spec: ClusterSpec): string[] {
  return etcdMembers(spec).map((h) => `http://${urlHost(h.ip)}:2379`);
}

function etcdMembers(spec: ClusterSpec): HostSpec[] {
  return spec.hosts.filter((h) => h.etcdMember).slice(0, ETCD_MEMBERS);
}

function urlHost(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function fleetdConf(spec: ClusterSpec, host: HostSpec): string {
  const lines = [
    `# fleetd's settings on ${host.name} (fleetd --config ${FLEETD_CONF}; \`fleetd --help\` lists them all).`,
    `# Written by fleetts cloud-config; FLEETTS_* environment variables and flags override these.`,
    `etcd-endpoints = ${etcdEndpoints(spec).join(',')}`,
    `public-ip = ${host.ip}`,
  ];
  if (host.metadata !== '') lines.push(`metadata = ${host.metadata}`);
  return lines.join('\n') + '\n';
}

function etcdEnv(spec: ClusterSpec, host: HostSpec): string {
  const me = urlHost(host.ip);
  const initial = etcdMembers(spec)
    .map((h) => `${h.name}=http://${urlHost(h.ip)}:2380`)
    .join(',');
  return `# etcd member ${host.name} of the fleetts cluster. Static bootstrap: the members are named in
# ETCD_INITIAL_CLUSTER and find each other at those peer URLs (docs/cloud-config.md). KEY=VALUE
# lines without quotes, read by systemd (EnvironmentFile=) and by \`docker run --env-file\`.
ETCD_NAME=${host.name}
ETCD_DATA_DIR=${ETCD_DATA_DIR}
ETCD_LISTEN_PEER_URLS=http://${me}:2380
ETCD_LISTEN_CLIENT_URLS=http://${me}:2379,http://127.0.0.1:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://${me}:2380
ETCD_ADVERTISE_CLIENT_URLS=http://${me}:2379
ETCD_INITIAL_CLUSTER=${initial}
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=${spec.clusterToken}
# A member back from a partition asks before it calls an election, so it does not depose a healthy
# leader (each leader change extends every fleetd lease by its TTL). etcd 3.5's default; 3.4's is off.
ETCD_PRE_VOTE=true
# Keep one hour of history: every status write and lease renewal adds a revision, and without
# compaction etcd fills its quota (2 GiB) and then refuses every write, lease renewals included.
ETCD_AUTO_COMPACTION_MODE=periodic
ETCD_AUTO_COMPACTION_RETENTION=1h
`;
}

function mountUnit(spec: ClusterSpec): string {
  return `# The cluster's shared storage (unit configuration, site files), at the path the units use.
[Unit]
Description=fleetts shared storage (NFS ${spec.nfs.server}:${spec.nfs.export})
Wants=network-online.target
After=network-online.target

[Mount]
What=${spec.nfs.server}:${spec.nfs.export}
Where=${SHARED_PATH}
Type=nfs
Options=rw,hard,noatime
TimeoutSec=60

[Install]
WantedBy=remote-fs.target
`;
}

function fleetdUnit(spec: ClusterSpec, host: HostSpec): string {
  const debian = spec.os === 'debian';
  const etcd = host.etcdMember ? (debian ? ' etcd.service' : ' fleetts-etcd.service') : '';
  const setup = debian ? '' : ' fleetts-setup.service';
  const bin = debian ? '/usr/local/bin/fleetd' : '/opt/bin/fleetd';
  return `# fleetd: the fleetts daemon (membership, engine, agent). Its settings: ${FLEETD_CONF}.
[Unit]
Description=fleetd: the fleetts daemon
Wants=network-online.target ${MOUNT_UNIT}
After=network-online.target ${MOUNT_UNIT}${etcd}${setup}
${debian ? '' : `Requires=fleetts-setup.service\n`}
[Service]
${debian ? '' : '# Node.js and fleetts are under /opt (Flatcar: /usr is read-only); units inherit this PATH.\nEnvironment=PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'}ExecStart=${bin} --config ${FLEETD_CONF}
# Units outlive fleetd: a restarted fleetd adopts them, and a dead one's AtMostOnce units stop at
# their fence deadline (docs/fencing.md). So stopping fleetd.service stops fleetd alone.
KillMode=process
Restart=always
RestartSec=2s

[Install]
WantedBy=multi-user.target
`;
}

function flatcarEtcdUnit(spec: ClusterSpec, envFile: string): string {
  return `# etcd member of the fleetts cluster, in a container (Flatcar has Docker, no etcd package).
[Unit]
Description=etcd member of the fleetts cluster
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service

[Service]
ExecStartPre=/usr/bin/mkdir -p ${ETCD_DATA_DIR}
ExecStartPre=-/usr/bin/docker rm -f fleetts-etcd
ExecStart=/usr/bin/docker run --rm --name fleetts-etcd --network host --env-file ${envFile} -v /var/lib/etcd:/var/lib/etcd ${spec.etcdImage} /usr/local/bin/etcd
ExecStop=/usr/bin/docker stop fleetts-etcd
Restart=always
RestartSec=5s
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
`;
}

function flatcarSetupUnit(script: string): string {
  return `# Installs Node.js and fleetts from the shared storage, once (run ${script} again to upgrade).
[Unit]
Description=Install Node.js and fleetts from the shared storage
Wants=network-online.target
After=network-online.target ${MOUNT_UNIT}
Requires=${MOUNT_UNIT}
ConditionPathExists=!/opt/bin/fleetd

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${script}

[Install]
WantedBy=multi-user.target
`;
}

// fleetts needs Node.js ≥ 20.19 (package.json "engines").
const NODE_OK = `node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'`;

function debianSetup(spec: ClusterSpec, host: HostSpec): string {
  const node =
    spec.node === 'nodesource'
      ? `  # Debian bookworm ships Node.js 18: NodeSource's apt source has 20.x (amd64, arm64).
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL ${NODESOURCE_KEY} -o /etc/apt/keyrings/nodesource.asc
  echo 'deb [signed-by=/etc/apt/keyrings/nodesource.asc] ${NODESOURCE_REPO}' >/etc/apt/sources.list.d/nodesource.list
  apt-get update
  $apt_install nodejs`
      : `  # Debian's own Node.js (trixie has 20.19; bookworm's 18 is refused below).
  $apt_install nodejs npm`;
  const etcd = host.etcdMember
    ? `
# etcd member: Debian's etcd-server, with /etc/default/etcd as written by cloud-init (kept:
# --force-confold). Its postinst would start etcd and wait for a quorum of members that may not be
# up yet, so starting is kept from it (policy-rc.d) and done below without waiting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
$apt_install etcd-server
rm -f /usr/sbin/policy-rc.d
`
    : '';
  const start = host.etcdMember
    ? 'systemctl enable etcd.service fleetd.service\nsystemctl start --no-block etcd.service\nsystemctl restart --no-block fleetd.service'
    : 'systemctl enable fleetd.service\nsystemctl restart --no-block fleetd.service';
  return `#!/bin/sh
# fleetts setup of ${host.name}: Node.js >= 20.19, the shared storage at ${SHARED_PATH}, fleetts
# from the tarball there${host.etcdMember ? ', the etcd member' : ''}; then starts fleetd. Run once by cloud-init
# (runcmd); run it again to upgrade: fleetts-setup [TARBALL]. Logs: /var/log/cloud-init-output.log.
set -eu
tarball="\${1:-${spec.fleettsTarball}}"
export DEBIAN_FRONTEND=noninteractive
apt_install='apt-get install -y -o Dpkg::Options::=--force-confold'

node_ok() { command -v node >/dev/null 2>&1 && ${NODE_OK}; }
if ! node_ok; then
${node}
fi
node_ok || { echo "fleetts-setup: Node.js $(node --version 2>/dev/null || echo missing) is older than 20.19, which fleetts needs" >&2; exit 1; }
${etcd}
systemctl daemon-reload
systemctl enable --now ${MOUNT_UNIT}
if [ ! -r "$tarball" ]; then
  echo "fleetts-setup: $tarball not found: put the output of 'npm pack' there (docs/cloud-config.md)" >&2
  exit 1
fi
# Also fetches fleetts's dependencies from the npm registry.
npm install -g --prefix /usr/local "$tarball"
${start}
`;
}

function flatcarSetup(spec: ClusterSpec): string {
  return `#!/bin/bash
# fleetts setup on Flatcar (no package manager): Node.js from a binary tarball and fleetts from its
# npm pack tarball, both on the shared storage, installed under /opt. Run once by
# fleetts-setup.service; run it again to upgrade: fleetts-setup [TARBALL]. Logs: journalctl -u fleetts-setup.
set -euo pipefail
tarball="\${1:-${spec.fleettsTarball}}"
node_tarball=${spec.nodeTarball}
for f in "$node_tarball" "$tarball"; do
  if [ ! -r "$f" ]; then
    echo "fleetts-setup: $f not found on the shared storage (docs/cloud-config.md)" >&2
    exit 1
  fi
done
rm -rf /opt/node.new
mkdir -p /opt/node.new /opt/bin
tar -xf "$node_tarball" -C /opt/node.new --strip-components=1
PATH=/opt/node.new/bin:$PATH
if ! ${NODE_OK}; then
  echo "fleetts-setup: $node_tarball holds Node.js $(node --version); fleetts needs 20.19 or later" >&2
  exit 1
fi
rm -rf /opt/node
mv /opt/node.new /opt/node
ln -sf /opt/node/bin/node /opt/bin/node
export PATH=/opt/bin:/opt/node/bin:$PATH
# Also fetches fleetts's dependencies from the npm registry.
npm install -g --prefix /opt "$tarball"
# An upgrade: the running fleetd restarts on the new version (at first boot it is not running yet).
systemctl try-restart --no-block fleetd.service
`;
}
