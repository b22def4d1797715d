// `fleetts list-units` with 1,000 units: `node --import=tsx bench/list-units.bench.ts`. A real etcd,
// the real engine (all units placed on 3 machines), a status per unit, the API on a unix socket;
// times the command in-process and as the real binary (dist/, node start-up included).
import { writeSection } from './lib.js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asMachineId, asUnitName } from '../src/cluster/types.js';
import { systemClock } from '../src/lib/clock.js';
import { createRandom } from '../src/lib/random.js';
import { silentLogger } from '../src/lib/logger.js';
import { Engine } from '../src/engine/engine.js';
import { createEtcdRegistry } from '../src/registry/etcd-registry.js';
import { NO_LOCAL_UNITS } from '../src/api/local-units.js';
import { createPeerClient } from '../src/api/peer-client.js';
import { serveApi } from '../src/api/serve-api.js';
import { run } from '../src/cli/main.js';
import { BufferOutput } from '../src/cli/output.js';
import { unitHash } from '../src/unit/hash.js';
import { startEtcd } from '../test/helpers/etcd.js';

const UNITS = 1_000;
const etcd = await startEtcd();
const dir = await mkdtemp(join(tmpdir(), 'fleetts-bench-'));
const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix: '/bench/' });
try {
  const memberships = await Promise.all(
    ['m1', 'm2', 'm3'].map((id, i) =>
      registry.register({
        id: asMachineId(id),
        ip: `10.0.0.${i + 1}`,
        metadata: {},
        version: 'bench',
        startedAt: new Date().toISOString(),
      }),
    ),
  );
  const text = '[Service]\nExecStart=/bin/sleep 1000\n';
  const hash = unitHash(text);
  for (let i = 0; i < UNITS; i += 50)
    await Promise.all(
      Array.from({ length: Math.min(50, UNITS - i) }, (_, j) =>
        registry.createUnit({ name: asUnitName(`svc@${i + j}.unit`), hash, target: 'launched' }, text),
      ),
    );
  const engine = new Engine({
    registry,
    clock: systemClock,
    random: createRandom(1),
    log: silentLogger,
    candidate: 'bench',
  });
  engine.start();
  for (;;) {
    const snap = await registry.snapshot({ unitFiles: 'none' });
    if (snap.assignments.length === UNITS) {
      for (let i = 0; i < snap.assignments.length; i += 100)
        await Promise.all(
          snap.assignments.slice(i, i + 100).map((a) =>
            registry.putStatus(memberships[Number(a.machine.slice(1)) - 1] ?? memberships[0]!, {
              unit: a.unit,
              machine: a.machine,
              hash: a.hash,
              load: 'loaded',
              active: 'active',
              sub: 'running',
              pid: 100,
              since: new Date().toISOString(),
            }),
          ),
        );
      break;
    }
    await systemClock.sleep(100);
  }
  await engine.stop();
  const socket = join(dir, 'fleetd.sock');
  const server = await serveApi(
    {
      registry,
      machineId: 'm1',
      local: NO_LOCAL_UNITS,
      peers: createPeerClient(),
      registered: () => true,
      clock: systemClock,
      log: silentLogger,
    },
    { socketPath: socket },
  );
  const times: number[] = [];
  let rows = 0;
  for (let i = 0; i < 7; i++) {
    const out = new BufferOutput();
    const t0 = performance.now();
    const code = await run(['--endpoint', `unix://${socket}`, 'list-units'], out);
    times.push(performance.now() - t0);
    if (code !== 0) throw new Error(out.stderr);
    rows = out.stdout.split('\n').length - 2;
  }
  times.sort((a, b) => a - b);
  console.log(
    `list-units, ${UNITS} units (${rows} rows), in-process: median ${times[3]?.toFixed(0)} ms, best ${times[0]?.toFixed(0)} ms`,
  );
  const bin = join(import.meta.dirname, '..', 'bin', 'fleetts.js');
  const real: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    // Not spawnSync: the API under test runs in this process and must keep serving.
    const r = await runBinary(process.execPath, [bin, '--endpoint', `unix://${socket}`, 'list-units']);
    real.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(`fleetts binary failed (run npm run build first): ${r.stderr}`);
  }
  real.sort((a, b) => a - b);
  console.log(
    `list-units, ${UNITS} units, real binary incl. node start-up: median ${real[2]?.toFixed(0)} ms, best ${real[0]?.toFixed(0)} ms`,
  );
  writeSection(
    'list-units',
    [
      '### `fleetts list-units` with 1,000 units (issue 5)',
      '',
      `${UNITS} units placed and reported active on 3 machines (real etcd, a real API server on a unix socket).`,
      '',
      '| measure | median | best | target |',
      '|---|---|---|---|',
      `| in-process (command + HTTP request + snapshot + table) | ${times[3]?.toFixed(0)} ms | ${times[0]?.toFixed(0)} ms | well under 1 s |`,
      `| the real \`fleetts\` binary, Node start-up included | ${real[2]?.toFixed(0)} ms | ${real[0]?.toFixed(0)} ms | well under 1 s |`,
    ].join('\n'),
  );
  await server.close();
  await Promise.all(memberships.map((m) => m.close()));
} finally {
  await registry.close();
  await etcd.stop();
  await rm(dir, { recursive: true, force: true });
}

function runBinary(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
