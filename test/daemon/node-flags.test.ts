// fleetd's Node/V8 flags (src/daemon/node-flags.ts): bin/fleetd.js's #! line names them, and an
// installed fleetd, run through that line, runs with them against a real etcd.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { FLEETD_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { ROOT } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';
import { startTcpFleetd } from '../helpers/fleetd.js';

const etcd = useEtcd(test);

test("bin/fleetd.js's #! line passes exactly FLEETD_NODE_FLAGS to node", async (t) => {
  const [first] = (await readFile(`${ROOT}bin/fleetd.js`, 'utf8')).split('\n');
  t.is(first, `#!/usr/bin/env -S node ${FLEETD_NODE_FLAGS.join(' ')}`);
});

test('fleetd run through its #! line runs with the flags and serves', async (t) => {
  const fleetd = await startTcpFleetd({
    etcdEndpoint: etcd().endpoint,
    machineId: 'f'.repeat(32),
    viaShebang: true,
  });
  t.teardown(() => fleetd.stop());
  // env(1) execs node: the pid is node's, with the flags before the script.
  const argv = (await readFile(`/proc/${fleetd.pid}/cmdline`, 'utf8')).split('\0');
  t.deepEqual(argv.slice(1, 1 + FLEETD_NODE_FLAGS.length), [...FLEETD_NODE_FLAGS]);
  t.is(argv[1 + FLEETD_NODE_FLAGS.length], `${ROOT}bin/fleetd.js`);
  t.is((await fleetd.request('GET', '/v1/health')).status, 200);
});
