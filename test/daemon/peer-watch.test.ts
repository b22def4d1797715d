// The peer watch's rule and loop (src/daemon/peer-watch.ts), on a fake clock with fake peers: the
// real probes are HTTP to real fleetds, exercised by test/dev/dev-etcd-hosts.test.ts.
import test from 'ava';
import { asMachineId, type MachineId } from '../../src/cluster/types.js';
import {
  BEAT_FRESH_MS,
  deadVerdict,
  LIST_EVERY_MS,
  PeerWatch,
  ringAfter,
  ringBefore,
  SILENT_MS,
  WATCH_PEERS,
  type PeerViewsReport,
  type WatchedPeer,
} from '../../src/daemon/peer-watch.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';

const m = (id: string): MachineId => asMachineId(id);
const silent = (witness: string, ms: number | undefined) =>
  ({ kind: 'answered', witness: m(witness), silentForMs: ms }) as const;

test('deadVerdict: this host and a majority of the others must find the suspect silent', (t) => {
  // 3 hosts: this one and the third.
  t.true(deadVerdict({ suspect: m('c'), others: 2, answers: [silent('b', SILENT_MS)] }).dead);
  t.false(deadVerdict({ suspect: m('c'), others: 2, answers: [silent('b', 0)] }).dead, 'b still hears c');
  t.false(deadVerdict({ suspect: m('c'), others: 2, answers: [silent('b', SILENT_MS - 1)] }).dead);
  t.false(
    deadVerdict({ suspect: m('c'), others: 2, answers: [silent('b', undefined)] }).dead,
    'b does not watch c',
  );
  const cut = deadVerdict({ suspect: m('c'), others: 2, answers: [{ kind: 'unanswered', witness: m('b') }] });
  t.false(cut.dead, 'nobody confirms: this host may be the one cut off');
  t.regex(cut.reason, /1 of the 2 hosts needed find c silent \(not confirmed by b\)/);
  // 2 hosts: never (a dead peer and a cut cable look the same).
  t.false(deadVerdict({ suspect: m('b'), others: 1, answers: [] }).dead);
  // 5 hosts: 3 of the 4 others.
  t.false(deadVerdict({ suspect: m('e'), others: 4, answers: [silent('b', 5_000)] }).dead);
  const five = deadVerdict({
    suspect: m('e'),
    others: 4,
    answers: [silent('b', 5_000), silent('c', 4_000), { kind: 'unanswered', witness: m('d') }],
  });
  t.true(five.dead);
  t.true(five.reason.includes(`e has answered no fleetd for ${SILENT_MS / 1000} s (this host and b, c)`));
});

/** Hosts a, b and c, registered at revision 10. */
function threePeers(): WatchedPeer[] {
  return ['a', 'b', 'c'].map((id) => ({ id: m(id), apiAddress: `http://${id}:4003`, createRevision: 10 }));
}

/** a watches b and c; `answering` says who answers; b reports its own view of c. */
function harness() {
  const clock = new FakeClock();
  const peers = threePeers();
  const answering = new Set(['b', 'c']);
  let bSeesC = 0;
  const changes: string[][] = [];
  const watch = new PeerWatch({
    self: m('a'),
    clock,
    log: createLogger({ level: 'silent' }),
    machines: () => Promise.resolve(peers),
    probe: (p) => (answering.has(p.id) ? Promise.resolve() : Promise.reject(new Error('no answer'))),
    views: (w): Promise<PeerViewsReport> =>
      answering.has(w.id)
        ? Promise.resolve({ machine: w.id, peers: [{ machine: 'c', silentForMs: bSeesC }] })
        : Promise.reject(new Error('no answer')),
    onChange: (dead) => changes.push([...dead].sort()),
  });
  const round = async (): Promise<void> => {
    await watch.round(new AbortController().signal);
    await clock.advance(1_000);
  };
  return {
    clock,
    peers,
    watch,
    answering,
    changes,
    round,
    setBSeesC: (ms: number) => (bSeesC = ms),
  };
}

test('PeerWatch: a peer silent for SILENT_MS and confirmed by another is dead; it is alive again once it answers', async (t) => {
  const h = harness();
  await h.round();
  t.deepEqual(h.watch.views().peers, [
    { machine: 'b', silentForMs: 0 },
    { machine: 'c', silentForMs: 0 },
  ]);
  h.answering.delete('c');
  h.setBSeesC(0);
  for (let i = 0; i < 4; i++) await h.round();
  t.deepEqual(h.changes, [], 'b still hears c: not dead');
  t.true((h.watch.views().peers.find((p) => p.machine === 'c')?.silentForMs ?? 0) >= SILENT_MS);
  h.setBSeesC(SILENT_MS);
  await h.round();
  t.deepEqual(h.changes, [['c']]);
  t.deepEqual([...h.watch.dead], ['c']);
  await h.round();
  t.is(h.changes.length, 1, 'reported once');
  h.answering.add('c');
  await h.round();
  t.deepEqual(h.changes, [['c'], []]);
});

test('PeerWatch: a host that hears nobody declares nobody dead', async (t) => {
  const h = harness();
  await h.round();
  h.answering.clear();
  for (let i = 0; i < 6; i++) await h.round();
  t.deepEqual(h.changes, []);
  t.deepEqual([...h.watch.dead], []);
});

test('PeerWatch: a dead peer that registers again (a reboot) is a new peer, judged afresh', async (t) => {
  const h = harness();
  await h.round();
  h.answering.delete('c');
  h.setBSeesC(SILENT_MS);
  for (let i = 0; i < 4; i++) await h.round();
  t.deepEqual([...h.watch.deadRegistrations], [['c', 10]], 'dead in its registration at revision 10');
  const c = h.peers.findIndex((p) => p.id === 'c');
  h.peers[c] = { id: m('c'), apiAddress: 'http://c:4003', createRevision: 42 };
  // A round reads the list for the next one (etcd may be slow to answer just then).
  await h.round();
  await h.round();
  t.deepEqual([...h.watch.dead], [], 'registered again: not dead, silent since just now');
  t.deepEqual(h.changes.at(-1), []);
});

test('PeerWatch: once it has a peer list, a round does not wait for etcd to answer the next read', async (t) => {
  const clock = new FakeClock();
  const peers = threePeers();
  let reads = 0;
  const answering = new Set(['b']);
  const changes: string[][] = [];
  const watch = new PeerWatch({
    self: m('a'),
    clock,
    log: createLogger({ level: 'silent' }),
    // The first read answers; later ones hang, as while etcd elects a new leader.
    machines: () => (reads++ === 0 ? Promise.resolve(peers) : new Promise<never>(() => undefined)),
    probe: (p) => (answering.has(p.id) ? Promise.resolve() : Promise.reject(new Error('no answer'))),
    views: (w): Promise<PeerViewsReport> =>
      Promise.resolve({ machine: w.id, peers: [{ machine: 'c', silentForMs: SILENT_MS }] }),
    onChange: (dead) => changes.push([...dead].sort()),
  });
  const signal = new AbortController().signal;
  await watch.round(signal);
  // Each round must finish without the clock moving: none waits for the hanging read.
  for (let i = 0; i * 500 <= SILENT_MS; i++) {
    await watch.round(signal);
    await clock.advance(500);
  }
  await watch.round(signal);
  t.is(reads, 2, 'one read at a time: the hanging one is not repeated');
  t.deepEqual(changes, [['c']]);
});

test('PeerWatch: the peer list is read every LIST_EVERY_MS while every peer answers, and every round while one is silent', async (t) => {
  const clock = new FakeClock();
  const peers = threePeers();
  let reads = 0;
  const answering = new Set(['b', 'c']);
  const watch = new PeerWatch({
    self: m('a'),
    clock,
    log: createLogger({ level: 'silent' }),
    machines: () => {
      reads++;
      return Promise.resolve(peers);
    },
    probe: (p) => (answering.has(p.id) ? Promise.resolve() : Promise.reject(new Error('no answer'))),
    views: (w): Promise<PeerViewsReport> =>
      Promise.resolve({ machine: w.id, peers: [{ machine: 'c', silentForMs: 0 }] }),
    onChange: () => undefined,
  });
  const signal = new AbortController().signal;
  const rounds = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      await watch.round(signal);
      await clock.advance(500);
    }
  };
  await rounds(4 * (LIST_EVERY_MS / 500) + 1);
  t.is(reads, 5, 'once every LIST_EVERY_MS (the first round included)');
  answering.delete('c');
  reads = 0;
  await rounds(1);
  t.is(reads, 0, 'the round that finds c silent read no list (a fresh one was not due)');
  await rounds(3);
  t.is(reads, 3, 'c silent: every round reads the list');
});

test('ringAfter/ringBefore: the next and previous k machines in id order, wrapping; all others when fewer', (t) => {
  const ids = ['h01', 'h02', 'h03', 'h04', 'h05'].map(m);
  t.deepEqual(ringAfter(m('h04'), ids, 3), ['h05', 'h01', 'h02'].map(m));
  t.deepEqual(ringBefore(m('h02'), ids, 3), ['h01', 'h05', 'h04'].map(m));
  t.deepEqual(ringAfter(m('h01'), ids, 9), ['h02', 'h03', 'h04', 'h05'].map(m));
  t.deepEqual(ringAfter(m('h09'), ids, 2), ['h01', 'h02'].map(m), 'self not yet listed: placed in the ring');
});

/** 30 hosts; `self` probes only its WATCH_PEERS successors and asks only the suspect's watchers. */
function ringHarness(silentPeer: string) {
  const clock = new FakeClock();
  const names = Array.from({ length: 30 }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
  const peers: WatchedPeer[] = names.map((id) => ({
    id: m(id),
    apiAddress: `http://${id}:4003`,
    createRevision: 1,
  }));
  const probed = new Set<string>();
  const asked = new Set<string>();
  const changes: string[][] = [];
  const watch = new PeerWatch({
    self: m('h01'),
    clock,
    log: createLogger({ level: 'silent' }),
    machines: () => Promise.resolve(peers),
    probe: (p) => {
      probed.add(p.id);
      return p.id === silentPeer ? Promise.reject(new Error('no answer')) : Promise.resolve();
    },
    views: (w): Promise<PeerViewsReport> => {
      asked.add(w.id);
      // Every host that watches the suspect (it is among its next WATCH_PEERS) finds it silent.
      const watches = ringAfter(
        w.id,
        peers.map((p) => p.id),
        WATCH_PEERS,
      ).includes(m(silentPeer));
      return Promise.resolve({
        machine: w.id,
        peers: watches ? [{ machine: silentPeer, silentForMs: SILENT_MS }] : [],
      });
    },
    onChange: (dead) => changes.push([...dead].sort()),
  });
  const round = async (): Promise<void> => {
    await watch.round(new AbortController().signal);
    await clock.advance(1_000);
  };
  return { probed, asked, changes, round, watch };
}

test('PeerWatch at 30 hosts: probes its WATCH_PEERS successors only, and a suspect is judged by its own watchers', async (t) => {
  const h = ringHarness('h03');
  for (let i = 0; i < 4; i++) await h.round();
  t.deepEqual([...h.probed].sort(), ['h02', 'h03', 'h04', 'h05', 'h06', 'h07']);
  t.deepEqual(h.changes, [['h03']]);
  // h03's watchers are h02, h01, h30, h29, h28, h27: this host (h01) asks the five others, no one else.
  t.deepEqual([...h.asked].sort(), ['h02', 'h27', 'h28', 'h29', 'h30']);
});

test('PeerWatch at 30 hosts: a silent peer it does not watch is not its to judge', async (t) => {
  const h = ringHarness('h20');
  for (let i = 0; i < 5; i++) await h.round();
  t.false(h.probed.has('h20'));
  t.deepEqual(h.changes, []);
  t.deepEqual(
    h.watch
      .views()
      .peers.map((p) => p.machine)
      .sort(),
    ['h02', 'h03', 'h04', 'h05', 'h06', 'h07'],
  );
});

/** a watches b and c through their heartbeats; `beating` beat, `accepting` answer probes. */
function heartbeatHarness() {
  const clock = new FakeClock();
  const peers = threePeers();
  const beating = new Set(['b', 'c']);
  const accepting = new Set(['b', 'c']);
  const probes: string[] = [];
  const opened: string[] = [];
  const links = new Map<string, { onBeat: () => void; end: () => void }>();
  const changes: string[][] = [];
  const watch = new PeerWatch({
    self: m('a'),
    clock,
    log: createLogger({ level: 'silent' }),
    machines: () => Promise.resolve(peers),
    probe: (p) => {
      probes.push(p.id);
      return accepting.has(p.id) ? Promise.resolve() : Promise.reject(new Error('no answer'));
    },
    listen: (p, onBeat, signal) => {
      opened.push(p.id);
      if (!accepting.has(p.id)) return Promise.reject(new Error('no connection'));
      // The first beat comes with the answer's headers, from a fleetd that answers.
      if (beating.has(p.id)) onBeat();
      return new Promise<void>((resolve) => {
        const end = (): void => {
          links.delete(p.id);
          resolve();
        };
        links.set(p.id, { onBeat, end });
        signal.addEventListener('abort', end, { once: true });
      });
    },
    views: (w): Promise<PeerViewsReport> =>
      accepting.has(w.id)
        ? Promise.resolve({ machine: w.id, peers: [{ machine: 'c', silentForMs: SILENT_MS }] })
        : Promise.reject(new Error('no answer')),
    onChange: (dead) => changes.push([...dead].sort()),
  });
  // Rounds every 500 ms; each beating peer beats once per round, before it.
  const round = async (): Promise<void> => {
    for (const [id, l] of links) if (beating.has(id)) l.onBeat();
    await watch.round(new AbortController().signal);
    await clock.advance(500);
  };
  return { watch, clock, beating, accepting, probes, opened, links, changes, round };
}

test('PeerWatch: peers whose heartbeat is heard are not probed; a late heartbeat brings the probes back', async (t) => {
  const h = heartbeatHarness();
  for (let i = 0; i < 10; i++) await h.round();
  t.deepEqual(h.probes, [], 'every peer heard beating: no connection per probe');
  t.deepEqual(h.opened.sort(), ['b', 'c'], 'one heartbeat connection each, kept');
  t.deepEqual(
    h.watch.views().peers.map((p) => p.silentForMs),
    [0, 0],
  );
  // c's fleetd is busy (or frozen): no beats, but its kernel accepts connections.
  h.beating.delete('c');
  for (let i = 0; i < 10; i++) await h.round();
  t.true(h.probes.filter((p) => p === 'c').length >= 6, 'c is probed once its heartbeat is late');
  t.false(h.probes.includes('b'));
  t.deepEqual(h.changes, [], 'a peer whose kernel answers is not silent');
  t.is(h.watch.views().peers.find((p) => p.machine === 'c')?.silentForMs, 0);
  // Beating again: the probes stop.
  h.beating.add('c');
  const before = h.probes.length;
  for (let i = 0; i < 6; i++) await h.round();
  t.true(h.probes.length - before <= 3, `${h.probes.length - before} probes after c beat again`);
});

test('PeerWatch: a host gone with its heartbeat connection open is found silent and dead as fast as with probes alone', async (t) => {
  const h = heartbeatHarness();
  for (let i = 0; i < 4; i++) await h.round();
  // c is powered off: its connection never ends, no beat, no probe answered.
  h.beating.delete('c');
  h.accepting.delete('c');
  let rounds = 0;
  while (h.changes.length === 0 && rounds < 20) {
    await h.round();
    rounds++;
  }
  t.deepEqual(h.changes, [['c']]);
  // Silent from its last beat: SILENT_MS, then the round that judges it (as with probes alone).
  t.true(rounds * 500 <= SILENT_MS + 1_000, `dead after ${rounds * 500} ms`);
  t.false(h.links.has('c'), 'the silent connection was closed');
  const tries = h.opened.filter((p) => p === 'c').length;
  for (let i = 0; i < 8; i++) await h.round();
  const again = h.opened.filter((p) => p === 'c').length - tries;
  t.true(again >= 1 && again <= 2, `${again} connections tried in 4 s (every LISTEN_RETRY_MS)`);
  // Back: it answers, beats, and is alive again.
  h.accepting.add('c');
  h.beating.add('c');
  for (let i = 0; i < 6; i++) await h.round();
  t.deepEqual(h.changes.at(-1), []);
  t.true(h.links.has('c'));
});

test('PeerWatch.run: while every peer beats, a round runs only when the peer list is due; a late beat starts the probes at once', async (t) => {
  const h = heartbeatHarness();
  const clock = h.clock;
  const rounds: number[] = [];
  const round = h.watch.round.bind(h.watch);
  h.watch.round = (signal) => {
    rounds.push(clock.monotonic());
    return round(signal);
  };
  const stop = new AbortController();
  const running = h.watch.run(stop.signal);
  // The peers beat every 500 ms, as GET /v1/self/heartbeat does.
  const beatFor = async (ms: number): Promise<void> => {
    for (let at = 0; at < ms; at += 500) {
      for (const [id, l] of h.links) if (h.beating.has(id)) l.onBeat();
      await clock.advance(500);
    }
  };
  await beatFor(2_000); // the links open and the first beats come in
  const from = rounds.length;
  await beatFor(20_000);
  const quiet = rounds.length - from;
  t.true(quiet >= 8 && quiet <= 12, `${quiet} rounds in 20 s of fresh heartbeats (every LIST_EVERY_MS: 10)`);
  t.deepEqual(h.probes, [], 'no probe while every peer beats');
  // Just after a round, c beats twice more (no round hears them), then is powered off: no beat, no
  // answer; its connection stays open.
  const seen = rounds.length;
  while (rounds.length === seen) await beatFor(500);
  await beatFor(1_000);
  h.beating.delete('c');
  h.accepting.delete('c');
  const lastBeat = clock.monotonic() - 500;
  await beatFor(500);
  await beatFor(500);
  const firstProbe = rounds.find((r) => r > lastBeat + 1_000);
  t.truthy(firstProbe);
  t.true(
    firstProbe! <= lastBeat + BEAT_FRESH_MS + 1,
    `the round after c's last beat ran ${firstProbe! - lastBeat} ms after it (BEAT_FRESH_MS ${BEAT_FRESH_MS})`,
  );
  t.true(h.probes.includes('c'), 'c is probed once its beat is late');
  // Judged on its silence since its last beat, not since the last round (seconds earlier): found
  // dead neither before SILENT_MS nor long after.
  while (h.changes.length === 0 && clock.monotonic() - lastBeat < 10_000) {
    t.true(
      clock.monotonic() - lastBeat <= SILENT_MS || h.changes.length === 0,
      'found dead before it was silent for SILENT_MS',
    );
    await clock.advance(50);
  }
  t.true(
    clock.monotonic() - lastBeat >= SILENT_MS,
    `dead ${clock.monotonic() - lastBeat} ms after its last beat`,
  );
  t.deepEqual(h.changes, [['c']]);
  t.true(
    clock.monotonic() - lastBeat <= SILENT_MS + 1_500,
    `dead ${clock.monotonic() - lastBeat} ms after its last beat`,
  );
  stop.abort();
  await running;
});
