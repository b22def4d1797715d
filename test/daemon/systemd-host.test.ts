// fleetd on a host whose PID 1 is systemd (a container of images/systemd, host network, etcd on
// this machine's loopback), with --service-runtime auto choosing systemd: a unit placed there runs as a transient
// systemd service that `systemctl status` shows, its output comes from journald through `fleetts
// journal`, and a restart of fleetd adopts it without restarting it (same MainPID, NRestarts 0).
// Uses dist/ (npm run build).

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { REPO_ROOT, startSystemdContainer, type SystemdContainer } from '../helpers/systemd-container.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
let container: SystemdContainer | undefined;
test.after.always(() => container?.remove());

const SOCKET = '/run/fleetts/fleetd.sock';
const UNIT = 'sleeper.service';
const SYSTEMD_UNIT = `fleetts-${UNIT}.service`;

interface Row {
  readonly unit: string;
  readonly active: string;
  readonly sub: string;
  readonly pid?: number;
}

test('fleetd with the systemd runtime: the unit is a systemd service, journald is its journal, a fleetd restart keeps it running', async (t) => {
  t.timeout(5 * 60_000);
  container = await startSystemdContainer(`fleetts-systemd-host-${randomBytes(4).toString('hex')}`, [
    '--network',
    'host',
  ]);
  const c = container;
  const sh = (script: string): Promise<string> => c.exec(['sh', '-c', script]);
  const cli = (...args: string[]): Promise<string> =>
    c.exec(['node', join(REPO_ROOT, 'bin/fleetts.js'), '--endpoint', `unix://${SOCKET}`, ...args], {
      timeoutMs: 120_000,
    });
  // fleetd runs as a service of that systemd, as on a real host; its units are services beside it.
  const fleetd = [
    'systemd-run',
    '--unit=fleetd.service',
    '--property=KillMode=mixed',
    '/usr/bin/node',
    join(REPO_ROOT, 'bin/fleetd.js'),
    '--etcd-endpoints',
    etcd().endpoint,
    '--etcd-key-prefix',
    randomPrefix(),
    '--machine-id',
    `sd${randomBytes(4).toString('hex')}`,
    '--public-ip',
    '127.0.0.1',
    '--state-dir',
    '/var/lib/fleetts',
    '--api-socket',
    SOCKET,
    '--runtime',
    'process',
    // --service-runtime left at its default, auto: systemd is PID 1 here.
  ];
  await c.exec(fleetd);
  const rows = async (): Promise<Row[]> =>
    JSON.parse(await cli('list-units', '-o', 'json', '--fields', 'unit,active,sub,pid')) as Row[];
  await waitFor('fleetd to answer', () => rows().then(() => true), { timeoutMs: 60_000, intervalMs: 500 });
  t.regex(
    await sh('journalctl -u fleetd.service --no-pager -o cat'),
    /"event":"fleetd.service_runtime","runtime":"systemd"/,
    'auto chose systemd',
  );

  await sh(
    `printf '%s\\n' '[Service]' "ExecStart=/bin/sh -c 'echo hello from systemd; exec sleep 1000'" > /root/${UNIT}`,
  );
  await cli('start', `/root/${UNIT}`);
  const running = await waitFor(
    'the unit active',
    async () => (await rows()).find((r) => r.unit === UNIT && r.active === 'active' && r.pid !== undefined),
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch(async (err: unknown) => {
    t.log(await cli('list-units', '-o', 'json').catch(String));
    t.log(await sh('journalctl -u fleetd.service -n 40 --no-pager; systemctl list-units --all "fleetts-*"'));
    throw err;
  });

  const status = await sh(`systemctl status --no-pager ${SYSTEMD_UNIT} || true`);
  t.regex(status, /Active: active \(running\)/);
  t.regex(status, new RegExp(`Main PID: ${running.pid} `));
  t.regex(status, /fleetts sleeper\.service [0-9a-f]+/, 'described after the fleetts unit and its hash');
  const journal = await waitFor('the journal', async () => {
    const out = await cli('journal', UNIT);
    return out.includes('hello from systemd') ? out : undefined;
  });
  t.regex(journal, new RegExp(`sleeper\\.service\\[${running.pid}\\]: hello from systemd`));

  // SIGTERM (systemctl restart): fleetd leaves its units to the next one, which adopts them.
  await c.exec(['systemctl', 'restart', 'fleetd.service']);
  await waitFor('fleetd back', () => rows().then(() => true), { timeoutMs: 120_000, intervalMs: 500 }).catch(
    async (err: unknown) => {
      t.log(await sh('journalctl -u fleetd.service -n 30 --no-pager -o cat'));
      throw err;
    },
  );
  const adopted = await waitFor(
    'the unit reported by the new fleetd',
    async () => (await rows()).find((r) => r.unit === UNIT && r.active === 'active'),
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  t.is(adopted.pid, running.pid, 'not restarted');
  const shown = await c.exec(['systemctl', 'show', '-p', 'MainPID,NRestarts,ActiveState', SYSTEMD_UNIT]);
  t.regex(shown, new RegExp(`MainPID=${running.pid}\\n`));
  t.regex(shown, /NRestarts=0\n/);
  t.log(`unit ${SYSTEMD_UNIT} kept MainPID ${running.pid} across a fleetd restart`);

  await cli('destroy', UNIT);
  await waitFor('the unit gone from systemd', async () =>
    /LoadState=not-found/.test(await c.exec(['systemctl', 'show', '-p', 'LoadState', SYSTEMD_UNIT])),
  );
  t.pass();
});
