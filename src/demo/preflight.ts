// What `npm run demo` checks before it makes anything (src/demo/main.ts): the programs the dev
// cluster and the units run are installed, the state dir holds no dev cluster (the demo tears down
// at the end what it brought up, so it must never adopt someone's cluster), and the shared path is
// not another cluster's mount. Each failure is one DemoError whose message names the fix.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { readState, type DevState } from '../dev/state.js';
import { isRunning, mountTargets } from '../dev/system.js';
import { DemoError } from './demo-error.js';

/** A program the demo needs: an absolute path, or a bare name looked up on $PATH. */
export interface Program {
  readonly name: string;
  readonly path: string;
  /** The Debian package that installs it. */
  readonly pkg: string;
}

/**
 * etcd (the dev cluster runs it from $PATH), and what the farm's units run (examples/process:
 * web@.unit's ExecStart=, lb.unit's).
 */
export const FARM_PROGRAMS: readonly Program[] = [
  { name: 'etcd', path: 'etcd', pkg: 'etcd-server' },
  { name: 'apache2', path: '/usr/sbin/apache2', pkg: 'apache2' },
  { name: 'nginx', path: '/usr/sbin/nginx', pkg: 'nginx' },
];

/** --hosting adds the Galera members (`fleetts galera member`'s defaults), its SST, and FTP. */
export const HOSTING_PROGRAMS: readonly Program[] = [
  { name: 'mariadbd', path: '/usr/sbin/mariadbd', pkg: 'mariadb-server' },
  { name: 'mariadb', path: '/usr/bin/mariadb', pkg: 'mariadb-client' },
  { name: 'the Galera provider', path: '/usr/lib/galera/libgalera_smm.so', pkg: 'galera-4' },
  { name: 'rsync', path: '/usr/bin/rsync', pkg: 'rsync' },
  { name: 'vsftpd', path: '/usr/sbin/vsftpd', pkg: 'vsftpd' },
];

/** The message for the programs that are missing, or undefined when none is. */
export function missingProgramsMessage(missing: readonly Program[]): string | undefined {
  if (missing.length === 0) return undefined;
  const what = missing.map((p) => (p.path.startsWith('/') ? `${p.name} (${p.path})` : p.name)).join(', ');
  const pkgs = [...new Set(missing.map((p) => p.pkg))].join(' ');
  return (
    `not installed: ${what}; install ${missing.length === 1 ? 'it' : 'them'} with ` +
    `\`sudo bash scripts/ensure-deps.sh ${pkgs}\` (npm run demo does so before it starts)`
  );
}

/** `--state-dir DIR` for the commands a message suggests, or nothing for the default dir. */
export function stateDirFlag(stateDir: string, defaultDir: string): string {
  return stateDir === defaultDir ? '' : ` --state-dir ${stateDir}`;
}

/**
 * Why the state dir cannot take the demo's cluster, or undefined when it can (no state, or a
 * cluster that was brought down). `running`: some process of the recorded cluster still runs.
 */
export function existingClusterMessage(
  state: Pick<DevState, 'phase'> | undefined,
  running: boolean,
  stateDir: string,
  flag: string,
): string | undefined {
  if (state === undefined || state.phase === 'down') return undefined;
  const fix = `remove it with \`sudo fleetts dev down${flag}\` and run the demo again`;
  return running
    ? `a dev cluster is already up in ${stateDir} (an earlier \`npm run demo -- --keep\`, or \`fleetts dev up\`); ` +
        `the demo brings up and tears down its own: ${fix}`
    : `an earlier run left a dev cluster behind in ${stateDir} (its namespaces, bridge or mounts; nothing of it runs): ${fix}`;
}

export interface PreflightInput {
  /** Absolute. */
  readonly stateDir: string;
  /** Absolute. */
  readonly sharedPath: string;
  readonly hosting: boolean;
  /** `--state-dir DIR` or '' (stateDirFlag). */
  readonly flag: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Throws the first DemoError that stops the demo from starting; makes nothing. */
export async function checkBeforeUp(input: PreflightInput): Promise<void> {
  const wanted = [...FARM_PROGRAMS, ...(input.hosting ? HOSTING_PROGRAMS : [])];
  const missing: Program[] = [];
  for (const p of wanted) if (!(await installed(p, input.env ?? process.env))) missing.push(p);
  const programs = missingProgramsMessage(missing);
  if (programs !== undefined) throw new DemoError('demo_missing_program', programs);

  const state = await readState(input.stateDir);
  let running = false;
  for (const p of state?.processes ?? []) running ||= await isRunning(p);
  const existing = existingClusterMessage(state, running, input.stateDir, input.flag);
  if (existing !== undefined) throw new DemoError('demo_cluster_exists', existing);

  // With no cluster in our state dir, a mount there is someone else's (`dev up` would refuse it
  // half-way, after it had recorded the mount as its own).
  if ((await mountTargets()).includes(input.sharedPath))
    throw new DemoError(
      'demo_shared_path_busy',
      `${input.sharedPath} is already a mount point (another dev cluster's shared directory? \`findmnt ${input.sharedPath}\` ` +
        `names its source): remove that cluster with \`sudo fleetts dev down --state-dir ITS_DIR\`, or give the demo --shared-path DIR`,
    );
}

async function installed(p: Program, env: NodeJS.ProcessEnv): Promise<boolean> {
  const mode = p.path.endsWith('.so') ? constants.R_OK : constants.X_OK;
  const candidates = p.path.includes('/')
    ? [p.path]
    : (env['PATH'] ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, p.path));
  for (const c of candidates)
    if (
      await access(c, mode).then(
        () => true,
        () => false,
      )
    )
      return true;
  return false;
}
