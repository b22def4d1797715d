// Signed peer requests (src/api/peer-auth.ts): what a receiver accepts and why it refuses the rest.
import test from 'ava';
import { PEER_AUTH_WINDOW_MS, PeerAuthVerifier, signPeerRequest } from '../../src/api/peer-auth.js';

const TOKEN = 'peer-auth-test-token-0123456789';
const REQ = { method: 'GET', path: '/v1/units/web%401.unit/journal?lines=10' };
const NOW = 1_800_000_000_000;

function verifier(now = NOW, self = 'bbbb'): PeerAuthVerifier {
  return new PeerAuthVerifier({ token: TOKEN, self, now: () => now });
}
const sign = (o: { to?: string; now?: number; nonce?: string; token?: string } = {}): string =>
  signPeerRequest(o.token ?? TOKEN, REQ, {
    from: 'aaaa',
    to: o.to ?? 'bbbb',
    now: o.now ?? NOW,
    ...(o.nonce === undefined ? {} : { nonce: o.nonce }),
  });

test('a signed request is accepted once; its header holds no token', (t) => {
  const v = verifier();
  const header = sign();
  t.false(header.includes(TOKEN));
  t.is(v.verify(header, REQ), undefined);
  t.regex(v.verify(header, REQ) ?? '', /replayed/);
});

test('refused: meant for another machine, another path or method, another token', (t) => {
  t.regex(
    verifier().verify(sign({ to: 'cccc' }), REQ) ?? '',
    /meant for machine cccc, not this one \(bbbb\)/,
  );
  t.regex(
    verifier().verify(sign(), { ...REQ, path: '/v1/units/other.unit/journal' }) ?? '',
    /signature does not match/,
  );
  t.regex(verifier().verify(sign(), { ...REQ, method: 'DELETE' }) ?? '', /signature does not match/);
  t.regex(verifier().verify(sign({ token: `${TOKEN}x` }), REQ) ?? '', /signature does not match/);
});

test('refused: stamped outside the window (clock skew), either way', (t) => {
  t.is(verifier().verify(sign({ now: NOW - PEER_AUTH_WINDOW_MS }), REQ), undefined);
  t.regex(
    verifier().verify(sign({ now: NOW - PEER_AUTH_WINDOW_MS - 1 }), REQ) ?? '',
    /30 s from this host's clock.*NTP/,
  );
  t.regex(verifier().verify(sign({ now: NOW + 60_000 }), REQ) ?? '', /-60 s from this host's clock/);
});

test('a nonce is forgotten once its request is out of the window', (t) => {
  let now = NOW;
  const v = new PeerAuthVerifier({ token: TOKEN, self: 'bbbb', now: () => now });
  t.is(v.verify(sign({ nonce: 'n1' }), REQ), undefined);
  now += PEER_AUTH_WINDOW_MS + 2_000;
  // The old header is now stale, and a new request may use the same nonce again.
  t.regex(v.verify(sign({ nonce: 'n1' }), REQ) ?? '', /from this host's clock/);
  t.is(v.verify(sign({ nonce: 'n1', now }), REQ), undefined);
});

test('malformed headers are refused, never thrown', (t) => {
  const v = verifier();
  for (const h of [
    'FleetPeer',
    'FleetPeer from=a',
    'FleetPeer from=a, to=bbbb, ts=1, nonce=x, sig=zz, sig=zz',
    'FleetPeer from=a b, to=bbbb, ts=1, nonce=x, sig=00',
    `FleetPeer from=aaaa, to=bbbb, ts=abc, nonce=x, sig=00`,
    `FleetPeer from=aaaa, to=bbbb, ts=${NOW}, nonce=x, sig=00`,
    'Bearer abc',
  ]) {
    t.is(typeof v.verify(h, REQ), 'string', h);
  }
});
