// The Docker runtime alone (no fleetd, no etcd): `node --import=tsx bench/runtime.bench.ts`. Time
// from DockerRuntime.start() to its `running` change event, for the tests' small image, one
// container at a time. The agent benchmark measures the same start end to end through fleetd.
import { loadavg } from 'node:os';
import type { UnitName } from '../src/cluster/types.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import {
  containerConfig,
  containerUnit,
  ensureDockerAndTestImage,
  removeContainers,
  TEST_IMAGE,
  testInstance,
} from '../test/helpers/docker.js';
import { fmt, median, percentile, writeSection } from './lib.js';

const RUNS = 10;

const load = loadavg()[0] ?? NaN;
const docker = await ensureDockerAndTestImage();
const instance = testInstance('bench');
const runtime = new DockerRuntime({ machine: 'm-bench', instance, resyncMs: 1000 });
try {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const unit: UnitName = containerUnit('bench');
    const t0 = performance.now();
    const running = new Promise<void>((resolve) => {
      const off = runtime.onChange((o) => {
        if (o.unit === unit && o.sub === 'running') {
          off();
          resolve();
        }
      });
    });
    await runtime.start(containerConfig(unit));
    await running;
    times.push(performance.now() - t0);
    await runtime.remove(unit);
  }
  process.stderr.write(`DockerRuntime start() → running: median ${fmt(median(times))} ms\n`);
  writeSection(
    'runtime-docker',
    [
      '### Docker runtime: start() → running',
      '',
      `\`DockerRuntime.start()\` of a \`[Container]\` unit (\`${TEST_IMAGE}\`, no network, a shell loop) until its`,
      `\`running\` change event; ${RUNS} starts one after another, each container removed before the next.`,
      '',
      `Load average (1 min) at the start: ${fmt(load, 2)} (the machine is shared).`,
      '',
      '| measure | runs | median | p95 | max | target |',
      '|---|---|---|---|---|---|',
      `| start() → running | ${RUNS} | ${fmt(median(times))} ms | ${fmt(percentile(times, 95))} ms | ${fmt(Math.max(...times))} ms | median < 5 s |`,
    ].join('\n'),
  );
} finally {
  await runtime.close();
  await removeContainers(docker, [instance]);
}
