// The member gate's rules, with a scripted probe (etcd-silent-member.test.ts runs it on real etcd).
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.js';
import { hostAndPort, MemberGate, RECHECK_MS } from '../../src/registry/member-gate.js';

const A = 'http://10.0.0.1:2379';
const B = 'http://10.0.0.2:2379';
const C = 'http://10.0.0.3:2379';

function gateWith(answering: Set<string>) {
  const clock = new FakeClock();
  const probed: string[] = [];
  const fell: string[][] = [];
  const gate = new MemberGate([A, B, C], {
    clock,
    probe: (e) => {
      probed.push(e);
      return Promise.resolve(answering.has(e));
    },
  });
  gate.onFall((eps) => fell.push([...eps]));
  return { clock, gate, probed, fell };
}

test('a member that does not answer is left out, and its connections closed once', async (t) => {
  const answering = new Set([A, C]);
  const { clock, gate, fell, probed } = gateWith(answering);
  gate.suspect();
  gate.suspect();
  await gate.settled();
  t.is(probed.length, 3, 'a burst of suspicions makes one round');
  t.deepEqual(gate.silent, [B]);
  t.true(gate.isSilent(B));
  t.false(gate.isSilent(A));
  gate.suspect();
  await clock.advance(1_000);
  await gate.settled();
  t.is(probed.length, 6);
  t.deepEqual(fell, [[B]], 'closed when it fell silent, not again');
});

test('the policy refuses a silent member without calling, and calls the others through', async (t) => {
  const { gate } = gateWith(new Set([A, C]));
  gate.suspect();
  await gate.settled();
  let calls = 0;
  const call = () => {
    calls++;
    return Promise.resolve('ok');
  };
  await t.throwsAsync(gate.policy(B).execute(call), { message: /silent/ });
  t.is(calls, 0);
  t.is(await gate.policy(A).execute(call), 'ok');
  const inner = { execute: <T>(fn: () => PromiseLike<T> | T) => Promise.resolve(fn()) };
  t.is(await gate.policy(C, inner).execute(call), 'ok');
  t.is(calls, 2);
});

test('with no member answering, none is left out', async (t) => {
  const { gate } = gateWith(new Set());
  gate.suspect();
  await gate.settled();
  t.deepEqual(gate.silent, []);
});

test('a silent member is probed again until it answers, then let back in', async (t) => {
  const answering = new Set([A, C]);
  const { clock, gate, probed } = gateWith(answering);
  gate.suspect();
  await gate.settled();
  t.deepEqual(gate.silent, [B]);
  answering.add(B);
  const before = probed.length;
  await clock.advance(RECHECK_MS);
  await gate.settled();
  t.true(probed.length > before, 'probed again without another fault');
  t.deepEqual(gate.silent, []);
  // All answer: no more probes on its own.
  const after = probed.length;
  await clock.advance(RECHECK_MS * 3);
  await gate.settled();
  t.is(probed.length, after);
});

test('a single endpoint is never probed (there is no other member to choose)', async (t) => {
  const clock = new FakeClock();
  let probes = 0;
  const gate = new MemberGate([A], {
    clock,
    probe: () => {
      probes++;
      return Promise.resolve(false);
    },
  });
  gate.suspect();
  await gate.settled();
  t.is(probes, 0);
  t.false(gate.isSilent(A));
});

test('endpoints as users write them', (t) => {
  t.deepEqual(hostAndPort('http://10.0.0.1:2379'), { host: '10.0.0.1', port: 2379 });
  t.deepEqual(hostAndPort('https://etcd1.lan:4001'), { host: 'etcd1.lan', port: 4001 });
  t.deepEqual(hostAndPort('https://[::1]:2379'), { host: '::1', port: 2379 });
  t.deepEqual(hostAndPort('etcd2'), { host: 'etcd2', port: 2379 });
});
