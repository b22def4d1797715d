// The users file and the input rules, table-driven: validation messages, add/remove/passwd, parsing
// refusals; hashes checked against openssl's own crypt for a fixed salt.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { UsageError } from '../../src/lib/errors.js';
import {
  addUser,
  checkPassword,
  checkUserName,
  isSha512CryptHash,
  parseUsersFile,
  removeUser,
  serializeUsersFile,
  setUserHash,
  type FtpUser,
} from '../../src/ftp/ftp-users.js';
import { hashPassword } from '../../src/ftp/hash-password.js';

const names: [string, string | undefined][] = [
  ['alice', undefined],
  ['site-42', undefined],
  ['a_b', undefined],
  ['x'.repeat(32), undefined],
  ['', 'FTP user name is empty: give a name like alice or site-42'],
  ['x'.repeat(33), `FTP user name "${'x'.repeat(33)}" is 33 characters long: at most 32`],
  [
    'Alice',
    'FTP user name "Alice" is not allowed: use lower-case letters, digits, "-" and "_", starting with a letter (like alice or site-42)',
  ],
  ['1abc', 'FTP user name "1abc" is not allowed'],
  ['../etc', 'FTP user name "../etc" is not allowed'],
  ['a b', 'FTP user name "a b" is not allowed'],
  ['a:b', 'FTP user name "a:b" is not allowed'],
  ['a\nb', 'FTP user name "a\\nb" is not allowed'],
  ['-rf', 'FTP user name "-rf" is not allowed'],
  ['root', 'FTP user name "root" is reserved: choose another name'],
  ['anonymous', 'FTP user name "anonymous" is reserved'],
  ['ftp', 'FTP user name "ftp" is reserved'],
  ['guesty', 'FTP user name "guesty" is reserved'],
];

for (const [name, message] of names) {
  test(`user name ${JSON.stringify(name)} → ${message ?? 'ok'}`, (t) => {
    if (message === undefined) return t.is(checkUserName(name, 'guesty'), name);
    const err = t.throws(() => checkUserName(name, 'guesty'), { instanceOf: UsageError });
    t.true(err.message.startsWith(message), err.message);
  });
}

const passwords: [string, string, string | undefined][] = [
  ['ten chars', 'correct-ho', undefined],
  ['spaces and unicode', 'pässwört mit leer', undefined],
  ['too short', 'abc123XYZ', 'the password is too short (9 characters): use at least 10'],
  ['too long', 'p'.repeat(129), 'the password is too long (129 characters): at most 128'],
  ['a tab', 'abcdefghij\tk', 'the password contains a control character'],
  ['a newline', 'abcdefghij\nk', 'the password contains a control character'],
];

for (const [what, pw, message] of passwords) {
  test(`password: ${what} → ${message ?? 'ok'}`, (t) => {
    if (message === undefined) return t.is(checkPassword(pw), pw);
    const err = t.throws(() => checkPassword(pw), { instanceOf: UsageError });
    t.true(err.message.startsWith(message), err.message);
    t.false(err.message.includes(pw), 'the message never quotes the password');
  });
}

test('hashPassword makes the SHA-512 crypt openssl makes for the same salt, and a random salt otherwise', async (t) => {
  const pw = 'correct horse battery';
  const hash = await hashPassword(pw, { salt: 'fixedsalt123' });
  const expected = execFileSync('openssl', ['passwd', '-6', '-salt', 'fixedsalt123', '-stdin'], {
    input: `${pw}\n`,
  })
    .toString()
    .trim();
  t.is(hash, expected);
  t.true(hash.startsWith('$6$fixedsalt123$'));
  const a = await hashPassword(pw);
  const b = await hashPassword(pw);
  t.true(isSha512CryptHash(a), a);
  t.not(a, b, 'fresh salts');
  const salt = a.split('$')[2] ?? '';
  t.is(await hashPassword(pw, { salt }), a, 'a hash verifies with its own salt');
  t.not(await hashPassword('wrong password', { salt }), a);
});

const HASH = `$6$abcdefgh$${'A'.repeat(86)}`;
const HASH2 = `$6$rounds=5000$salt$${'b'.repeat(86)}`;

test('add keeps users sorted, refuses a duplicate; passwd and remove need an existing user', (t) => {
  let users: FtpUser[] = [];
  users = addUser(users, { name: 'carol', hash: HASH });
  users = addUser(users, { name: 'alice', hash: HASH });
  t.deepEqual(
    users.map((u) => u.name),
    ['alice', 'carol'],
  );
  t.is(
    t.throws(() => addUser(users, { name: 'alice', hash: HASH2 }))?.message,
    'FTP user "alice" already exists; to change the password: fleetts ftp passwd alice',
  );
  users = setUserHash(users, 'alice', HASH2);
  t.is(users[0]?.hash, HASH2);
  t.is(
    t.throws(() => setUserHash(users, 'bob', HASH))?.message,
    'no FTP user "bob"; see `fleetts ftp list-users`',
  );
  users = removeUser(users, 'carol');
  t.deepEqual(users, [{ name: 'alice', hash: HASH2 }]);
  t.is(
    t.throws(() => removeUser(users, 'carol'))?.message,
    'no FTP user "carol"; see `fleetts ftp list-users`',
  );
  t.is(serializeUsersFile(users), `alice:${HASH2}\n`);
});

test('the users file round-trips; comments and blank lines are read', (t) => {
  const text = `# users\n\nalice:${HASH}\nbob:${HASH2}\n`;
  const users = parseUsersFile(text, 'users.pwd');
  t.deepEqual(users, [
    { name: 'alice', hash: HASH },
    { name: 'bob', hash: HASH2 },
  ]);
  t.deepEqual(parseUsersFile(serializeUsersFile(users), 'users.pwd'), users);
  t.deepEqual(parseUsersFile('', 'users.pwd'), []);
});

const badFiles: [string, string, string][] = [
  ['a bad name', `Bob:${HASH}\n`, 'f line 1: "Bob" is not a valid FTP user name; fix or delete the line'],
  ['no hash', `\nalice\n`, 'f line 2: the password of "alice" is not a SHA-512 crypt hash'],
  ['a DES hash', `alice:abJnggxhB/yJU\n`, 'f line 1: the password of "alice" is not a SHA-512 crypt hash'],
  [
    'a duplicate',
    `alice:${HASH}\nalice:${HASH2}\n`,
    'f line 2: "alice" is listed twice; delete one of the lines',
  ],
];

for (const [what, text, message] of badFiles) {
  test(`a users file with ${what} is refused with its line`, (t) => {
    const err = t.throws(() => parseUsersFile(text, 'f'), { instanceOf: UsageError });
    t.true(err.message.startsWith(message), err.message);
  });
}
