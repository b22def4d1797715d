// fleet's classic form, `ExecStart=/usr/bin/docker run --rm --name %p-%i …`, run as a [Service]
// unit by the PROCESS runtime against the real Docker daemon: start, journal, ExecStop, cleanup.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { processConfigFromServiceSpec } from '../../src/runtime/from-service-spec.js';
import { parseUnitName } from '../../src/unit/names.js';
import { specifierContextForUnit } from '../../src/unit/specifiers.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import { ensureDockerAndTestImage, removeContainersNamed, TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { cleanupHosts, journalLines, newRuntime, waitState } from './helpers.js';

const names: string[] = [];

test.before(async () => {
  await ensureDockerAndTestImage();
});

test.after.always(async () => {
  await cleanupHosts();
  removeContainersNamed(names);
});

function containerState(name: string): string | undefined {
  try {
    return execFileSync('docker', ['inspect', '-f', '{{.State.Status}}', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

test('ExecStart=/usr/bin/docker run --rm --name %p-%i works through the process runtime, ExecStop stops it', async (t) => {
  const prefix = `fleetts-classic-${process.pid}`;
  const unitName = `${prefix}@1.service`;
  const container = `${prefix}-1`;
  names.push(container);
  const text = [
    '[Service]',
    'ExecStartPre=-/usr/bin/docker rm -f %p-%i',
    `ExecStart=/usr/bin/docker run --rm --init --name %p-%i ${TEST_IMAGE} /bin/sh -c "echo hello from %p-%i; exec sleep 1000"`,
    'ExecStop=/usr/bin/docker stop %p-%i',
    '',
  ].join('\n');
  const spec = parseUnitSpec(text, unitName);
  if (spec.run.kind !== 'service') throw new Error('not a service');
  const built = processConfigFromServiceSpec({
    unit: spec.name,
    hash: spec.hash,
    spec: spec.run.service,
    specifiers: { ...specifierContextForUnit(parseUnitName(unitName)), H: 'host1', m: 'abc', b: 'boot' },
    baseEnv: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    readFile: () => undefined,
  });
  if (built.kind !== 'ok') throw new Error(built.reason);
  t.deepEqual(built.config.execStop[0]?.argv, ['/usr/bin/docker', 'stop', container]);

  const { runtime } = newRuntime();
  await runtime.start(built.config);
  await waitState(runtime, spec.name, 'active', 'running');
  await waitFor(`container ${container} to run`, () => containerState(container) === 'running');
  const lines = await waitFor('the container output in the unit journal', async () => {
    const l = await journalLines(runtime, spec.name);
    return l.some((x) => x.endsWith(`hello from ${container}`)) ? l : undefined;
  });
  t.true(lines.some((x) => x.endsWith(`hello from ${container}`)));

  await runtime.stop(spec.name);
  const stopped = (await runtime.list()).find((o) => o.unit === spec.name);
  t.like(stopped, { active: 'inactive', sub: 'dead' });
  t.is(containerState(container), undefined, 'docker stop + --rm removed the container');
});
