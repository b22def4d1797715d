// `fleetts cloud-config`: first-boot configuration for real hosts (cloud-init user-data for Debian
// and Raspberry Pi OS, Butane for Flatcar), rendered by src/cloud-config/; and `fleetts farm-files`,
// which writes the web farm's files to the shared storage (what `npm run demo` writes on dev hosts).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import {
  parseClusterSpec,
  pickHost,
  SHARED_PATH,
  type ClusterSpecInput,
} from '../cloud-config/cluster-spec.js';
import { renderUserData, userDataFileName } from '../cloud-config/render-user-data.js';
import {
  farmSharedFiles,
  FLOATING_UNIT,
  floatingAddressEnv,
  LB_UNITS,
  unitTextFor,
  WEB_TEMPLATES,
} from '../demo/farm-files.js';
import { parseFloatingAddress } from './floating-address.js';
import { FleetError, UsageError } from '../lib/errors.js';
import type { CliContext } from './main.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface CloudConfigFlags {
  readonly os: string;
  readonly hosts: string;
  readonly nfs: string;
  readonly host?: string;
  readonly out?: string;
  readonly metadata?: string[];
  readonly sshKey?: string;
  readonly fleettsTarball?: string;
  readonly node?: string;
  readonly nodeTarball?: string;
  readonly etcdImage?: string;
  readonly namePrefix?: string;
  readonly clusterToken?: string;
}

export function registerCloudConfig(program: Command, ctx: CliContext): void {
  program
    .command('cloud-config')
    .description("render hosts' first-boot configuration: fleetd, etcd, metadata and the NFS mount")
    .requiredOption('--os <os>', 'debian (cloud-init user-data; also Raspberry Pi OS) or flatcar (Butane)')
    .requiredOption('--hosts <ips>', 'every host IP in order, comma-separated; the first three run etcd')
    .requiredOption('--nfs <server:/export>', `the NFS export every host mounts at ${SHARED_PATH}`)
    .option('--host <n>', 'render host N only (1-based position in --hosts); printed unless --out')
    .option('--out <dir>', 'write DIR/hostN.yaml (every host, or --host N)')
    .option(
      '--metadata <k=v,…>',
      "fleetd's machine metadata for every host; N:k=v,… for host N (repeatable)",
      (value: string, prev: string[] | undefined) => [...(prev ?? []), value],
    )
    .option(
      '--ssh-key <file>',
      "OpenSSH public key(s) for the login user (Debian's default user, Flatcar's core)",
    )
    .option(
      '--fleetts-tarball <path>',
      `the \`npm pack\` tarball on the shared storage (default: ${SHARED_PATH}/dist/fleetts-VERSION.tgz)`,
    )
    .option('--node <source>', 'debian: Node.js from nodesource (default; bookworm) or debian (trixie+)')
    .option(
      '--node-tarball <path>',
      `flatcar: a Node.js ≥ 20.19 linux binary tarball on the shared storage (default: ${SHARED_PATH}/dist/node-linux-x64.tar.xz)`,
    )
    .option('--etcd-image <ref>', 'flatcar: the etcd container image (default: quay.io/coreos/etcd:v3.5.17)')
    .option(
      '--name-prefix <prefix>',
      'host names are PREFIX1, PREFIX2, … (also the etcd member names)',
      'host',
    )
    .option('--cluster-token <token>', "etcd's initial cluster token (tell clusters apart)", 'fleetts')
    .addHelpText(
      'after',
      `
Examples:
  fleetts cloud-config --os debian --hosts 10.0.0.11,10.0.0.12,10.0.0.13 --nfs 10.0.0.10:/export/fleetts \\
      --metadata region=eu --ssh-key ~/.ssh/id_ed25519.pub --out user-data/
  fleetts cloud-config --os flatcar --hosts 10.0.0.11,10.0.0.12,10.0.0.13 --nfs 10.0.0.10:/export/fleetts --host 2

See docs/cloud-config.md: from three bare hosts to the web farm.`,
    )
    .action(async (flags: CloudConfigFlags) => {
      const input: ClusterSpecInput = {
        os: flags.os,
        hosts: flags.hosts,
        nfs: flags.nfs,
        metadata: flags.metadata ?? [],
        ...(flags.sshKey === undefined ? {} : { sshKeys: await readSshKeys(ctx, flags.sshKey) }),
        ...optional('fleettsTarball', flags.fleettsTarball),
        ...optional('node', flags.node),
        ...optional('nodeTarball', flags.nodeTarball),
        ...optional('etcdImage', flags.etcdImage),
        ...optional('namePrefix', flags.namePrefix),
        ...optional('clusterToken', flags.clusterToken),
      };
      const spec = parseClusterSpec(input);
      const hosts = flags.host === undefined ? spec.hosts : [pickHost(spec, flags.host)];
      if (flags.out === undefined) {
        if (flags.host === undefined)
          throw new UsageError('give --host N to print one host, or --out DIR to write every host');
        ctx.output.write(renderUserData(spec, hosts[0]!));
        return;
      }
      const dir = resolve(ctx.cwd, flags.out);
      await mkdir(dir, { recursive: true }).catch((err: unknown) => failWrite(dir, err));
      for (const host of hosts) {
        const path = join(dir, userDataFileName(host));
        await writeFile(path, renderUserData(spec, host)).catch((err: unknown) => failWrite(path, err));
        ctx.output.out(`wrote ${path}`);
      }
    });

  program
    .command('farm-files')
    .description("write the web farm's configuration, site and unit files to the shared storage")
    .requiredOption('--out <dir>', 'where to write: the NFS export (or its mount on a host)')
    .option('--shared-path <path>', 'where the hosts mount it (the path inside the files)', SHARED_PATH)
    .option(
      '--floating-address <ip/len>',
      "the balancer's floating address (e.g. 10.0.0.100/24): also writes lb/floating-address.env and units/lb-address.unit",
    )
    .option('--floating-interface <dev>', 'the interface the floating address goes on', 'eth0')
    .addHelpText(
      'after',
      `
Writes web/apache.conf, web/htdocs/index.shtml, lb/nginx.conf, lb/conf.d/upstream-web.conf (kept
when it exists: lb-upstream.unit owns it) and units/ (the process farm of examples/process). With
--floating-address, also the balancers' floating address (docs/floating-address.md): start
lb-address.unit with lb.unit. lb.unit and its sidekicks run on every host (Global=true), each with
its own copy of lb/nginx.conf and of the upstream file under /run/fleetts/<machine>/lb/.

Example (on the NFS server):  fleetts farm-files --out /export/fleetts`,
    )
    .action(
      async (flags: {
        out: string;
        sharedPath: string;
        floatingAddress?: string;
        floatingInterface: string;
      }) => {
        if (!flags.sharedPath.startsWith('/'))
          throw new UsageError(`--shared-path "${flags.sharedPath}": must be an absolute path`);
        const dir = resolve(ctx.cwd, flags.out);
        const files: [string, string][] = Object.entries(farmSharedFiles(flags.sharedPath));
        const units: string[] = [...WEB_TEMPLATES, ...LB_UNITS];
        if (flags.floatingAddress !== undefined) {
          const t = parseFloatingAddress(flags.floatingAddress, flags.floatingInterface, {
            address: '--floating-address',
            device: '--floating-interface',
          });
          files.push([
            'lb/floating-address.env',
            floatingAddressEnv(`${t.address}/${t.prefixLength}`, t.device),
          ]);
          units.push(FLOATING_UNIT);
        }
        for (const name of units) {
          const text = await readFile(join(PACKAGE_ROOT, 'examples', 'process', name), 'utf8');
          files.push([`units/${name}`, unitTextFor(text, flags.sharedPath)]);
        }
        for (const [rel, text] of files) {
          const path = join(dir, rel);
          if (rel === 'lb/conf.d/upstream-web.conf' && (await exists(path))) {
            ctx.output.out(`kept ${path}`);
            continue;
          }
          await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => failWrite(path, err));
          await writeFile(path, text, { mode: 0o644 }).catch((err: unknown) => failWrite(path, err));
          ctx.output.out(`wrote ${path}`);
        }
      },
    );
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

async function readSshKeys(ctx: CliContext, file: string): Promise<{ file: string; text: string }> {
  try {
    return { file, text: await readFile(resolve(ctx.cwd, file), 'utf8') };
  } catch (err) {
    throw new UsageError(
      `--ssh-key ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
}

function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}

function failWrite(path: string, err: unknown): never {
  throw new FleetError(
    'write_failed',
    `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
  );
}
