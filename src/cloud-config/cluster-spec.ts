// The input of `fleetts cloud-config`, checked once at the edge: the cluster's hosts, its shared
// storage and what the hosts install. Pure; every mistake is a one-line UsageError naming the option.
import { z } from 'zod';
import { configSchema } from '../daemon/config.js';
import { UsageError } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';

/** Where every host mounts the shared storage: the path the farm's units use (docs/dev-cluster.md). */
export const SHARED_PATH = '/srv/fleetts/shared';
/** The etcd members are the first hosts: three tolerate the loss of one. */
export const ETCD_MEMBERS = 3;
export const DEFAULT_ETCD_IMAGE = 'quay.io/coreos/etcd:v3.5.17';
export const DEFAULT_NODE_TARBALL = `${SHARED_PATH}/dist/node-linux-x64.tar.xz`;
export const DEFAULT_FLEETTS_TARBALL = `${SHARED_PATH}/dist/fleetts-${VERSION}.tgz`;

export type HostOs = 'debian' | 'flatcar';
/** Where Debian hosts get Node.js ≥ 20.19: NodeSource's apt source (bookworm), or Debian's own (trixie+). */
export type NodeSource = 'nodesource' | 'debian';

export interface HostSpec {
  /** 1-based position in --hosts. */
  readonly index: number;
  /** Host name, also the etcd member name. */
  readonly name: string;
  readonly ip: string;
  readonly etcdMember: boolean;
  /** fleetd's metadata setting (`k=v,k2=v2`), '' for none. */
  readonly metadata: string;
}

export interface ClusterSpec {
  readonly os: HostOs;
  readonly hosts: readonly HostSpec[];
  readonly nfs: { readonly server: string; readonly export: string };
  readonly sshKeys: readonly string[];
  readonly fleettsTarball: string;
  readonly node: NodeSource;
  readonly nodeTarball: string;
  readonly etcdImage: string;
  readonly clusterToken: string;
}

/** What the command line gives (strings as typed; the key file already read). */
export interface ClusterSpecInput {
  readonly os: string;
  readonly hosts: string;
  readonly nfs: string;
  /** `k=v,…` for every host, or `N:k=v,…` for host N (repeatable, later wins). */
  readonly metadata?: readonly string[];
  readonly sshKeys?: { readonly file: string; readonly text: string };
  readonly fleettsTarball?: string;
  readonly node?: string;
  readonly nodeTarball?: string;
  readonly etcdImage?: string;
  readonly namePrefix?: string;
  readonly clusterToken?: string;
}

// Paths and names end up in shell scripts and unit files unquoted: keep them to a safe alphabet.
const SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;
const HOSTNAME_PREFIX = /^[a-z]([a-z0-9-]{0,50}[a-z0-9])?$/;
const SSH_KEY =
  /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\s"'\\][^"'\\]*)?$/;
const ipSchema = z.union([z.ipv4(), z.ipv6()]);
const metadataSchema = configSchema.shape.metadata;

export function parseClusterSpec(input: ClusterSpecInput): ClusterSpec {
  const os = parseOs(input.os);
  const ips = parseHosts(input.hosts);
  const prefix = input.namePrefix ?? 'host';
  if (!HOSTNAME_PREFIX.test(prefix))
    throw new UsageError(
      `--name-prefix "${prefix}": must be lower-case letters, digits and "-", starting with a letter (host names are PREFIX1, PREFIX2, …)`,
    );
  const metadata = parseMetadata(input.metadata ?? [], ips.length);
  if (os === 'flatcar' && input.node !== undefined)
    throw new UsageError('--node is for --os debian (Flatcar hosts take --node-tarball)');
  if (os === 'debian' && input.nodeTarball !== undefined)
    throw new UsageError(
      '--node-tarball is for --os flatcar (Debian hosts install Node.js with apt: --node)',
    );
  if (os === 'debian' && input.etcdImage !== undefined)
    throw new UsageError('--etcd-image is for --os flatcar (Debian hosts install the etcd-server package)');
  const token = input.clusterToken ?? 'fleetts';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(token))
    throw new UsageError(`--cluster-token "${token}": must be 1–64 letters, digits, "_" or "-"`);
  return {
    os,
    hosts: ips.map((ip, i) => ({
      index: i + 1,
      name: `${prefix}${i + 1}`,
      ip,
      etcdMember: i < ETCD_MEMBERS,
      metadata: metadata[i] ?? '',
    })),
    nfs: parseNfs(input.nfs),
    sshKeys: input.sshKeys === undefined ? [] : parseSshKeys(input.sshKeys.file, input.sshKeys.text),
    fleettsTarball: sharedFile('--fleetts-tarball', input.fleettsTarball ?? DEFAULT_FLEETTS_TARBALL),
    node: parseNodeSource(input.node ?? 'nodesource'),
    nodeTarball: sharedFile('--node-tarball', input.nodeTarball ?? DEFAULT_NODE_TARBALL),
    etcdImage: parseImage(input.etcdImage ?? DEFAULT_ETCD_IMAGE),
    clusterToken: token,
  };
}

/** `--host N` (1-based) → the host, or a UsageError naming the range. */
export function pickHost(spec: ClusterSpec, raw: string): HostSpec {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  const host = spec.hosts[n - 1];
  if (host === undefined)
    throw new UsageError(
      `--host "${raw}": must be a host number from 1 to ${spec.hosts.length} (the position in --hosts)`,
    );
  return host;
}

function parseOs(raw: string): HostOs {
  if (raw === 'debian' || raw === 'flatcar') return raw;
  throw new UsageError(
    `--os "${raw}": must be debian (Debian, Raspberry Pi OS: cloud-init) or flatcar (Butane)`,
  );
}

function parseNodeSource(raw: string): NodeSource {
  if (raw === 'nodesource' || raw === 'debian') return raw;
  throw new UsageError(
    `--node "${raw}": must be nodesource (NodeSource's apt source, for bookworm) or debian (Debian's nodejs, trixie and later)`,
  );
}

function parseHosts(raw: string): string[] {
  const ips = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const [i, ip] of ips.entries()) {
    if (!ipSchema.safeParse(ip).success)
      throw new UsageError(
        `--hosts: "${ip}" (host ${i + 1}) is not an IPv4 or IPv6 address (example: --hosts 10.0.0.11,10.0.0.12,10.0.0.13)`,
      );
    if (ips.indexOf(ip) !== i)
      throw new UsageError(`--hosts: ${ip} is given twice (hosts ${ips.indexOf(ip) + 1} and ${i + 1})`);
  }
  if (ips.length < ETCD_MEMBERS)
    throw new UsageError(
      `--hosts: ${ips.length} given, at least ${ETCD_MEMBERS} needed (the first three run the etcd members)`,
    );
  return ips;
}

function parseMetadata(specs: readonly string[], hostCount: number): string[] {
  const perHost: Record<string, string>[] = Array.from({ length: hostCount }, () => ({}));
  for (const spec of specs) {
    const m = /^(\d+):(.*)$/.exec(spec);
    const target = m === null ? undefined : Number(m[1]);
    const text = m === null ? spec : (m[2] ?? '');
    if (target !== undefined && (target < 1 || target > hostCount))
      throw new UsageError(
        `--metadata "${spec}": host ${target} is not one of the ${hostCount} hosts (N:k=v applies to host N, 1 to ${hostCount})`,
      );
    const parsed = metadataSchema.safeParse(text);
    if (!parsed.success)
      throw new UsageError(`--metadata "${spec}": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    if (text.includes('#') || text.includes('"') || text.includes("'"))
      throw new UsageError(
        `--metadata "${spec}": no quotes or "#" (the value goes into fleetd's config file)`,
      );
    for (const [i, entries] of perHost.entries()) {
      if (target === undefined || target === i + 1) Object.assign(entries, parsed.data);
    }
  }
  return perHost.map((entries) =>
    Object.entries(entries)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  );
}

function parseNfs(raw: string): ClusterSpec['nfs'] {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\/.*)$/.exec(raw.trim());
  const server = m?.[1];
  const path = m?.[2];
  if (server === undefined || path === undefined)
    throw new UsageError(`--nfs "${raw}": must be SERVER:/EXPORT (example: --nfs 10.0.0.10:/export/fleetts)`);
  if (!SAFE_PATH.test(path) || path.includes('//') || path.split('/').includes('..'))
    throw new UsageError(
      `--nfs "${raw}": the export path may hold only letters, digits and . _ / + - (no spaces, no "..")`,
    );
  return { server, export: path.length > 1 ? path.replace(/\/$/, '') : path };
}

/** A file on the shared storage as the hosts see it: absolute under the mount, or relative to it. */
function sharedFile(option: string, raw: string): string {
  const path = raw.startsWith('/') ? raw : `${SHARED_PATH}/${raw}`;
  if (!SAFE_PATH.test(path) || path.split('/').includes('..') || !path.startsWith(`${SHARED_PATH}/`))
    throw new UsageError(
      `${option} "${raw}": must be a file on the shared storage, under ${SHARED_PATH}/ or relative to it (letters, digits and . _ / + - only)`,
    );
  return path;
}

function parseImage(raw: string): string {
  if (!/^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$/.test(raw))
    throw new UsageError(`--etcd-image "${raw}": not an image reference (example: ${DEFAULT_ETCD_IMAGE})`);
  return raw;
}

function parseSshKeys(file: string, text: string): string[] {
  if (text.includes('PRIVATE KEY'))
    throw new UsageError(`--ssh-key ${file}: this is a private key; give the public one (${file}.pub)`);
  const keys = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  keys.forEach((key, i) => {
    if (!SSH_KEY.test(key))
      throw new UsageError(
        `--ssh-key ${file}: key ${i + 1} is not an OpenSSH public key line ("ssh-ed25519 AAAA… comment")`,
      );
  });
  if (keys.length === 0) throw new UsageError(`--ssh-key ${file}: no public key in the file`);
  return keys;
}
