// UsersStore on a real directory, with the chown injected: a share that refuses to hand a home to
// the guest account (NFS with root_squash) leaves no user behind and says what to change.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { UsersStore } from '../../src/ftp/users-store.js';

const HASH = '$6$saltsalt$' + 'x'.repeat(86);

async function store(chown: (path: string, uid: number, gid: number) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-ftp-store-'));
  const s = new UsersStore({ dir, clock: systemClock, chown });
  await s.init();
  return { s, dir };
}

test('a home that cannot be given to the guest account: the user is not added, the home is removed', async (t) => {
  const { s, dir } = await store(() =>
    Promise.reject(Object.assign(new Error('EPERM: operation not permitted'), { code: 'EPERM' })),
  );
  try {
    const err = await t.throwsAsync(s.add('alice', HASH));
    t.regex(
      err?.message ?? '',
      /cannot give .*home\/alice to the guest account \(uid 2121\): EPERM; on NFS, export the share with no_root_squash/,
    );
    t.regex(err?.message ?? '', /user alice was not added$/);
    t.deepEqual(await s.list(), []);
    t.false(existsSync(join(s.paths.homes, 'alice')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a user is added with its home (0750), and adding it again is refused before any home change', async (t) => {
  const owned: string[] = [];
  const { s, dir } = await store((path, uid, gid) => {
    owned.push(`${path} ${uid}:${gid}`);
    return Promise.resolve();
  });
  try {
    const { home } = await s.add('alice', HASH);
    t.deepEqual(owned, [`${home} 2121:2121`]);
    t.is((await stat(home)).mode & 0o777, 0o750);
    t.deepEqual(
      (await s.list()).map((u) => u.name),
      ['alice'],
    );
    await t.throwsAsync(s.add('alice', HASH), { message: /alice/ });
    t.is(owned.length, 1, 'the home of an existing user is not touched again');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
