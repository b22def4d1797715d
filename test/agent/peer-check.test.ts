// The peer check's rule (pure): peer answers → keep or fence, with the reason; and the report a
// fleetd gives of its own lease.
import test from 'ava';
import {
  FENCE_KEEP_BOUND_MS,
  LIVE_AGAIN_WAIT_MS,
  MIN_ENGINE_GRACE_MS,
  peerVerdict,
  selfLeaseReport,
  type PeerAnswer,
  type SelfLeaseReport,
} from '../../src/agent/peer-check.js';
import { asMachineId } from '../../src/cluster/types.js';

const lost = (id: string, renewedAgoMs: number | null = 4200): PeerAnswer => ({
  kind: 'answered',
  machine: asMachineId(id),
  report: { machine: id, leaseAlive: false, renewedAgoMs, liveSinceMs: null },
});
const alive = (id: string): PeerAnswer => ({
  kind: 'answered',
  machine: asMachineId(id),
  report: { machine: id, leaseAlive: true, renewedAgoMs: 300, liveSinceMs: 60_000 },
});
const silent = (id: string, error = 'connection refused'): PeerAnswer => ({
  kind: 'unanswered',
  machine: asMachineId(id),
  error,
});

const cases: { title: string; answers: PeerAnswer[]; kind: 'keep' | 'fence'; reason: RegExp }[] = [
  { title: 'no peer at all', answers: [], kind: 'fence', reason: /^no peer to ask/ },
  {
    title: 'the only peer lost etcd too',
    answers: [lost('b')],
    kind: 'keep',
    reason: /^all 1 peer\(s\) have lost etcd too \(b renewed 4200 ms ago\)/,
  },
  {
    title: 'every peer lost etcd (one never had a lease)',
    answers: [lost('b'), lost('c', null)],
    kind: 'keep',
    reason: /^all 2 peer\(s\) .*b renewed 4200 ms ago, c has no lease/,
  },
  {
    title: 'a split: one peer reaches etcd',
    answers: [lost('b'), alive('c')],
    kind: 'fence',
    reason: /^peer c has a live lease \(etcd works for it\)/,
  },
  {
    title: 'a peer powered off during the outage (no answer)',
    answers: [lost('b'), silent('c')],
    kind: 'fence',
    reason: /^peer c did not answer \(connection refused\); it may reach etcd/,
  },
  {
    title: 'a silent peer wins over a live one that comes later',
    answers: [silent('b', 'no answer within 500 ms'), alive('c')],
    kind: 'fence',
    reason: /^peer b did not answer \(no answer within 500 ms\)/,
  },
  {
    title: 'a peer answering as another machine is not trusted',
    answers: [
      {
        kind: 'answered',
        machine: asMachineId('b'),
        report: { machine: 'c', leaseAlive: false, renewedAgoMs: 4000, liveSinceMs: null },
      },
    ],
    kind: 'fence',
    reason: /^peer b answered as machine c/,
  },
];

for (const c of cases) {
  test(`verdict: ${c.title} → ${c.kind}`, (t) => {
    const v = peerVerdict(c.answers);
    t.is(v.kind, c.kind);
    t.regex(v.reason, c.reason);
  });
}

const report = (lease: Parameters<typeof selfLeaseReport>[0]['lease'], now = 10_000): SelfLeaseReport =>
  selfLeaseReport({ machine: 'a', now, keepaliveMs: 1000, lease });

test('self lease: renewed within one and a half keepalive periods is alive', (t) => {
  t.deepEqual(report({ renewedAt: 9_100, since: 4_000, lost: false }), {
    machine: 'a',
    leaseAlive: true,
    renewedAgoMs: 900,
    liveSinceMs: 6000,
  });
  t.true(report({ renewedAt: 8_500, since: 0, lost: false }).leaseAlive, '1500 ms: still alive');
});

test('self lease: older renewals, a lost lease or none are not alive', (t) => {
  t.deepEqual(report({ renewedAt: 8_499, since: 0, lost: false }), {
    machine: 'a',
    leaseAlive: false,
    renewedAgoMs: 1501,
    liveSinceMs: null,
  });
  t.deepEqual(report({ renewedAt: 9_900, since: 0, lost: true }), {
    machine: 'a',
    leaseAlive: false,
    renewedAgoMs: null,
    liveSinceMs: null,
  });
  t.is(report(undefined).leaseAlive, false);
});

test('the bound for the engine grace: peer alive again + the wait for a peer back lately + re-check + answer, then the stop budget', (t) => {
  t.is(FENCE_KEEP_BOUND_MS, 5000);
  t.is(MIN_ENGINE_GRACE_MS, 6500);
});

test('while keeping, peers registered again only lately are waited for; older ones, or not keeping, fence', (t) => {
  const back = (machine: string, liveSinceMs: number): PeerAnswer => ({
    kind: 'answered',
    machine: asMachineId(machine),
    report: { machine, leaseAlive: true, renewedAgoMs: 100, liveSinceMs },
  });
  const young = [back('b', 300), lost('c')];
  const wait = peerVerdict(young, { wasKeeping: true });
  t.is(wait.kind, 'keep');
  t.regex(wait.reason, /etcd works again for b, registered again less than 1500 ms ago/);
  t.is(peerVerdict(young).kind, 'fence', 'not keeping before: a live peer fences, young or not');
  t.is(
    peerVerdict([back('b', 300), back('c', 1500)], { wasKeeping: true }).kind,
    'fence',
    'c has been back long enough',
  );
  t.is(peerVerdict([back('b', LIVE_AGAIN_WAIT_MS)], { wasKeeping: true }).kind, 'fence');
});
