import test from 'ava';
import { startEtcd } from '../helpers/etcd.js';

test('a missing etcd binary fails with a message that says what to install', async (t) => {
  const error = await t.throwsAsync(startEtcd({ binary: 'fleetts-no-such-etcd' }));
  t.regex(
    error.message,
    /etcd is not installed: 'fleetts-no-such-etcd' was not found on PATH.*apt-get install etcd-server/,
  );
});

test('a started etcd answers and its data dir is removed after stop', async (t) => {
  const etcd = await startEtcd();
  const health = (await (await fetch(`${etcd.endpoint}/health`)).json()) as { health: string };
  t.is(health.health, 'true');
  await etcd.stop();
  const { existsSync } = await import('node:fs');
  t.false(existsSync(etcd.dataDir));
});
