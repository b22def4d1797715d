// The FTP service end to end (issue 7) on a 3-host dev cluster: ftp.unit (vsftpd, virtual users on
// the shared path) and its announcer, an upload through the announced address, the FTP host powered
// off, the service announced again from another host and the same file downloaded from there.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { FtpCluster } from '../ftp/ftp-cluster.js';
import { download, upload } from '../../src/ftp/ftp-client.js';

let cluster: FtpCluster | undefined;
function ftp(): FtpCluster {
  if (cluster === undefined) throw new Error('the FTP cluster did not come up (see the first failure)');
  return cluster;
}

test.before(async (t) => {
  t.timeout(300_000);
  cluster = await FtpCluster.create();
  await cluster.up();
});

test.after.always(async () => {
  await cluster?.close();
});

test.serial(
  'an upload survives the FTP host’s power-off: the file is downloaded from the new host',
  async (t) => {
    t.timeout(240_000);
    const c = ftp();
    const first = await c
      .until(
        'services/ftp announced and a login there',
        () => c.session((_, at) => Promise.resolve(at)),
        90_000,
      )
      .catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${await c.logs()}`);
      });
    const oldHost = c.hostOfMachine(first.machine);
    t.truthy(oldHost, `announced by a known machine: ${JSON.stringify(first)}`);
    t.is(first.address, `${oldHost?.ip ?? '?'}:21`);
    t.is(String(first.unit), 'ftp.unit');

    const bytes = randomBytes(512 * 1024);
    await c.session(async (client) => {
      await upload(client, 'backup.bin', bytes);
      t.deepEqual(
        (await client.list()).map((f) => [f.name, f.size]),
        [['backup.bin', bytes.length]],
      );
    });

    const t0 = Date.now();
    await c.powerOff(oldHost?.name ?? '?');
    const again = await c
      .until(
        'a login at a new announced address',
        async () => {
          const at = await c.announced();
          if (at === undefined || at.address === first.address) return undefined;
          return c.session((_, a) => Promise.resolve(a));
        },
        120_000,
      )
      .catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${await c.logs()}`);
      });
    const back = c.hostOfMachine(again.machine);
    t.truthy(back);
    t.not(back?.name, oldHost?.name);
    t.is(again.address, `${back?.ip ?? '?'}:21`);
    t.log(
      `FTP moved ${oldHost?.name ?? '?'} → ${back?.name ?? '?'}; a login worked ${Date.now() - t0} ms after the power-off`,
    );

    const downloaded = await c.session((client) => download(client, 'backup.bin'));
    t.true(downloaded.equals(bytes), `downloaded ${downloaded.length} bytes, identical to the upload`);

    const statuses = await c.registry.snapshot();
    for (const u of ['ftp.unit', 'ftp-discovery.unit'])
      t.true(
        statuses.statuses.some((s) => s.unit === u && s.machine === back?.machineId && s.active === 'active'),
        `${u} active on ${back?.name ?? '?'}`,
      );
  },
);
