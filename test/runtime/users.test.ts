// User=/Group= resolution against passwd/group texts.

import test from 'ava';
import { resolveCredentials } from '../../src/runtime/users.js';

const passwd =
  'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nweb:x:1000:1001::/home/web:/bin/sh\n';
const group = 'root:x:0:\nnogroup:x:65534:\nwww:x:33:\n';

const cases: { user?: string; group?: string; expect: ReturnType<typeof resolveCredentials> }[] = [
  { user: 'nobody', expect: { kind: 'ok', credentials: { uid: 65534, gid: 65534, home: '/nonexistent' } } },
  { user: 'web', expect: { kind: 'ok', credentials: { uid: 1000, gid: 1001, home: '/home/web' } } },
  {
    user: 'web',
    group: 'www',
    expect: { kind: 'ok', credentials: { uid: 1000, gid: 33, home: '/home/web' } },
  },
  { user: '1000', expect: { kind: 'ok', credentials: { uid: 1000, gid: 1001, home: '/home/web' } } },
  { user: '4242', expect: { kind: 'ok', credentials: { uid: 4242, gid: 4242 } } },
  {
    user: 'web',
    group: '77',
    expect: { kind: 'ok', credentials: { uid: 1000, gid: 77, home: '/home/web' } },
  },
  { user: 'ghost', expect: { kind: 'error', reason: 'User=ghost: no such user in /etc/passwd' } },
  {
    user: 'web',
    group: 'ghosts',
    expect: { kind: 'error', reason: 'Group=ghosts: no such group in /etc/group' },
  },
];

for (const c of cases) {
  test(`User=${c.user ?? ''} Group=${c.group ?? ''}`, (t) => {
    t.deepEqual(resolveCredentials(c.user, c.group, passwd, group), c.expect);
  });
}
