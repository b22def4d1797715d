// The shipped FTP units and image agree with what `fleetts ftp` writes: both unit forms parse, the
// paths they name are the FTP directory's, the announcer follows ftp.unit, and the image bakes the
// PAM service and guest account of the default settings (a change to one must reach the other).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { parseUnitFile, sectionEntries } from '../../src/unit/parse-unit-file.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import {
  DEFAULT_FTP_DIR,
  DEFAULT_FTP_SETTINGS,
  ftpPaths,
  renderPamService,
  renderVsftpdConf,
} from '../../src/ftp/ftp-config.js';
import { ROOT } from '../helpers/cli.js';

const read = (rel: string): Promise<string> => readFile(join(ROOT, rel), 'utf8');
const values = (text: string, section: string, key: string): string[] =>
  sectionEntries(parseUnitFile(text), section)
    .filter((e) => e.key === key)
    .map((e) => e.value);

for (const dir of ['examples/process', 'units']) {
  test(`${dir}: ftp.unit and ftp-discovery.unit parse; the sidekick follows ftp.unit and announces port 21`, async (t) => {
    const ftp = await read(`${dir}/ftp.unit`);
    const disco = await read(`${dir}/ftp-discovery.unit`);
    t.notThrows(() => parseUnitSpec(ftp, 'ftp.unit'));
    t.notThrows(() => parseUnitSpec(disco, 'ftp-discovery.unit'));
    t.deepEqual(values(disco, 'X-Fleet', 'MachineOf'), ['ftp.unit']);
    t.deepEqual(values(disco, 'Unit', 'BindsTo'), ['ftp.unit']);
    const exec = values(disco, 'Service', 'ExecStart')[0] ?? '';
    t.true(
      exec.includes(
        'announce --service ftp --unit ftp.unit --addr ${FLEETTS_MACHINE_IP}:21 --check tcp://${FLEETTS_MACHINE_IP}:21',
      ),
      exec,
    );
    const start = [...values(ftp, 'Service', 'ExecStart'), ...values(ftp, 'Container', 'Exec')].join(' ');
    t.true(
      start.includes(
        `/usr/sbin/vsftpd ${ftpPaths(DEFAULT_FTP_DIR).vsftpdConf} -olisten_address=\${FLEETTS_MACHINE_IP}`,
      ),
      start,
    );
  });
}

test('the process unit prepares the host from the same FTP directory before vsftpd starts', async (t) => {
  const ftp = await read('examples/process/ftp.unit');
  t.deepEqual(
    values(ftp, 'Service', 'ExecStartPre')[0],
    `/usr/bin/env fleetts ftp prepare-host --ftp-dir ${DEFAULT_FTP_DIR}`,
  );
});

test('the container unit mounts the FTP directory at the same path', async (t) => {
  const ftp = await read('units/ftp.unit');
  t.deepEqual(values(ftp, 'Container', 'Volume'), [`${DEFAULT_FTP_DIR}:${DEFAULT_FTP_DIR}`]);
  t.deepEqual(values(ftp, 'Container', 'Network'), ['host']);
});

test('the image bakes the PAM service and the guest account of the default settings', async (t) => {
  const s = DEFAULT_FTP_SETTINGS;
  const dockerfile = await read('images/vsftpd/Dockerfile');
  t.true(dockerfile.includes(`groupadd --system --gid ${s.guestGid} ${s.guestUser}`));
  t.true(
    dockerfile.includes(
      `useradd --system --uid ${s.guestUid} --gid ${s.guestGid} --home-dir /var/run/vsftpd/empty`,
    ),
  );
  t.true(
    dockerfile.includes('ENTRYPOINT ["/usr/bin/tini", "--"]'),
    'vsftpd is not PID 1 (it crashes as PID 1)',
  );
  t.true(dockerfile.includes(`COPY pam-fleetts-ftp /etc/pam.d/${s.pamService}`));
  const rules = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  t.deepEqual(
    rules(await read('images/vsftpd/pam-fleetts-ftp')),
    rules(renderPamService(ftpPaths(DEFAULT_FTP_DIR))),
  );
});

test('vsftpd.conf: virtual users chrooted in their homes, passive ports of the settings, no address in it', (t) => {
  const conf = renderVsftpdConf(
    { ...DEFAULT_FTP_SETTINGS, pasvMinPort: 31000, pasvMaxPort: 31004 },
    ftpPaths('/x/ftp'),
  );
  const settings = new Map(
    conf
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  for (const [k, v] of Object.entries({
    guest_enable: 'YES',
    guest_username: 'fleetts-ftp',
    pam_service_name: 'fleetts-ftp',
    local_root: '/x/ftp/home/$USER',
    user_sub_token: '$USER',
    chroot_local_user: 'YES',
    anonymous_enable: 'NO',
    background: 'NO',
    pasv_min_port: '31000',
    pasv_max_port: '31004',
  }))
    t.is(settings.get(k), v, k);
  t.false(settings.has('listen_address'), 'the unit gives the host address');
});
