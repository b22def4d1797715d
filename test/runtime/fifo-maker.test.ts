// The host supervisor's FIFO maker against the real Perl: FIFOs made, errors named, a helper that
// died replaced at the next request.
import test from 'ava';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FifoMaker } from '../../src/runtime/fifo-maker.js';

test('makes FIFOs with mode 0600 through one helper, in order; names the errno of a failure', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-fifo-'));
  const fifos = new FifoMaker();
  t.teardown(async () => {
    fifos.close();
    await rm(dir, { recursive: true, force: true });
  });
  const paths = Array.from({ length: 20 }, (_, i) => join(dir, `u${i}.fifo`));
  await Promise.all(paths.map((p) => fifos.make(p)));
  for (const p of paths) {
    const s = await stat(p);
    t.true(s.isFIFO(), p);
    t.is(s.mode & 0o777 & ~0o600, 0, `${p}: mode ${(s.mode & 0o777).toString(8)}`);
  }
  await t.throwsAsync(fifos.make(paths[0]!), { code: 'EEXIST', message: /mkfifo .*u0\.fifo: EEXIST/ });
  await t.throwsAsync(fifos.make(join(dir, 'missing', 'x.fifo')), { code: 'ENOENT' });
  await t.throwsAsync(fifos.make(join(dir, 'a\nb')), { message: /newline/ });
  // The requests after a failure are still answered, each with its own answer.
  const [ok, bad] = await Promise.allSettled([fifos.make(join(dir, 'late.fifo')), fifos.make(paths[1]!)]);
  t.is(ok.status, 'fulfilled');
  t.is(bad.status, 'rejected');
});

test('a helper that died is replaced at the next request; one that cannot run fails the request', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-fifo-'));
  const fifos = new FifoMaker();
  t.teardown(async () => {
    fifos.close();
    await rm(dir, { recursive: true, force: true });
  });
  await fifos.make(join(dir, 'a.fifo'));
  const first = fifos.helperPid;
  t.truthy(first);
  await fifos.make(join(dir, 'a2.fifo'));
  t.is(fifos.helperPid, first, 'one helper for every request');
  process.kill(first!, 'SIGKILL');
  while (fifos.helperPid === first) await new Promise((r) => setTimeout(r, 10));
  await fifos.make(join(dir, 'b.fifo'));
  t.true((await stat(join(dir, 'b.fifo'))).isFIFO());
  t.not(fifos.helperPid, first);

  // Closed with nothing waiting, then asked again: the new helper's answer is not mixed up with
  // the old one's end.
  const before = fifos.helperPid;
  fifos.close();
  await fifos.make(join(dir, 'd.fifo'));
  t.not(fifos.helperPid, before);
  t.true((await stat(join(dir, 'd.fifo'))).isFIFO());

  const none = new FifoMaker('/nonexistent/perl');
  await t.throwsAsync(none.make(join(dir, 'c.fifo')), { message: /could not run|ended/ });
});
