// Test harness for the Docker runtime: makes sure dockerd runs (scripts/ensure-docker.sh) and that
// the base image and a tiny test image FROM it (or the project's images/<name> images) exist
// (built once, cached), and removes every container a test file created. Fails, never skips,
// when Docker cannot be had.

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { asUnitHash, type UnitName } from '../../src/cluster/types.js';
import type { ContainerUnitConfig } from '../../src/runtime/docker-config.js';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A tiny image FROM fleetts/base:bookworm: a shell, coreutils, and a stop-friendly default command. */
export const TEST_IMAGE = 'fleetts-test-image:latest';
const TEST_DOCKERFILE = `FROM fleetts/base:bookworm
LABEL org.fleetts.test=1
STOPSIGNAL SIGTERM
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
`;

/**
 * Starts dockerd if needed and builds fleetts/base:bookworm (debootstrap, a minute the first time)
 * and the test image, each only when missing or changed. Serialized across parallel test files.
 */
export async function ensureDockerAndTestImage(): Promise<Dockerode> {
  const hash = createHash('sha256').update(TEST_DOCKERFILE).digest('hex').slice(0, 16);
  const script = `set -e
bash ${join(root, 'scripts/ensure-docker.sh')}
exec 9>/run/fleetts-test-images.lock
flock 9
bash ${join(root, 'scripts/build-images.sh')} base
have=$(docker image inspect -f '{{index .Config.Labels "fleetts.build-hash"}}' ${TEST_IMAGE} 2>/dev/null || true)
if [ "$have" != "${hash}" ]; then
  printf '%s' "$DOCKERFILE" | docker build -q --label fleetts.build-hash=${hash} -t ${TEST_IMAGE} - >/dev/null
fi`;
  try {
    await run('bash', ['-c', script], {
      env: {
        ...process.env,
        PATH: `/usr/bin:/usr/sbin:${process.env['PATH'] ?? ''}`,
        DOCKERFILE: TEST_DOCKERFILE,
      },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(
      `Docker is required by this test and could not be set up (scripts/ensure-docker.sh, scripts/build-images.sh base): ${e.stderr?.trim() || e.message}`,
    );
  }
  return new Dockerode({ socketPath: '/var/run/docker.sock' });
}

/**
 * Starts dockerd if needed and builds fleetts/base:bookworm and the given images/<name> images
 * (fleetts/<name>:latest) with scripts/build-images.sh: cached by the script's build hashes, so a
 * second call takes seconds. Serialized across parallel test files with the same lock as above.
 */
export async function ensureDockerImages(names: readonly string[]): Promise<Dockerode> {
  for (const n of names)
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(n)) throw new Error(`not an image directory name: '${n}'`);
  const script = `set -e
bash ${join(root, 'scripts/ensure-docker.sh')}
exec 9>/run/fleetts-test-images.lock
flock 9
bash ${join(root, 'scripts/build-images.sh')} base ${names.join(' ')}`;
  try {
    await run('bash', ['-c', script], {
      env: { ...process.env, PATH: `/usr/bin:/usr/sbin:${process.env['PATH'] ?? ''}` },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 15 * 60_000,
    });
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(
      `Docker and the images ${names.map((n) => `fleetts/${n}`).join(', ')} are required by this test and could not be set up (scripts/ensure-docker.sh, scripts/build-images.sh base ${names.join(' ')}): ${e.stderr?.trim() || e.message}`,
    );
  }
  return new Dockerode({ socketPath: '/var/run/docker.sock' });
}

/** A runtime instance id unique to this test process, so parallel files never see each other's containers. */
export function testInstance(tag: string): string {
  return `test-${tag}-${randomBytes(4).toString('hex')}`;
}

let seq = 0;
/** A unique unit name; its default container name is unique too. */
export function containerUnit(prefix: string): UnitName {
  return `${prefix}-${process.pid}-${++seq}.unit` as UnitName;
}

export function containerConfig(
  unit: UnitName,
  over: Partial<Omit<ContainerUnitConfig, 'kind' | 'unit'>> = {},
): ContainerUnitConfig {
  return {
    kind: 'container',
    unit,
    hash: asUnitHash('h1'),
    image: TEST_IMAGE,
    pull: 'never',
    name: unit.replace(/[^A-Za-z0-9_.-]/g, '-'),
    env: {},
    network: { kind: 'none' },
    publishPorts: [],
    volumes: [],
    stopTimeoutMs: 5000,
    stopSignal: 'SIGTERM',
    restart: 'no',
    restartSecMs: 100,
    startLimitBurst: 5,
    startLimitIntervalMs: 10_000,
    labels: {},
    ...over,
  };
}

/** Removes every container (running or not) labelled with one of these runtime instances. */
export async function removeContainers(docker: Dockerode, instances: readonly string[]): Promise<void> {
  for (const instance of instances) {
    const all = await docker.listContainers({
      all: true,
      filters: { label: [`fleetts.runtime=${instance}`] },
    });
    for (const c of all)
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
  }
}

/** Removes containers by name (for those not started through the Docker runtime). */
export function removeContainersNamed(names: readonly string[]): void {
  for (const name of names) {
    try {
      execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    } catch {
      // not there
    }
  }
}

/** Polls `probe` until it returns a value other than undefined/false; throws after `timeoutMs`. */
export { waitFor } from './wait.js';
