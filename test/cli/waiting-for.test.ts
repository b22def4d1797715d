// list-unit-files' reason for a unit placed on a machine that is not registered (an etcd outage
// took its lease, and the engine keeps the unit there while it re-registers).
import test from 'ava';
import { waitingFor } from '../../src/cli/list-commands.js';

test('a placement without an IP is on a machine that is not registered: the unit waits for it', (t) => {
  t.is(
    waitingFor({
      placements: [
        { machine: 'm1', ip: '10.0.0.1', target: 'launched' },
        { machine: 'm2', target: 'launched' },
      ],
    }),
    'waiting for m2 to re-register (its lease is gone); moved if it does not',
  );
  t.is(waitingFor({ placements: [{ machine: 'm1', ip: '10.0.0.1', target: 'launched' }] }), undefined);
  t.is(waitingFor({ placements: [] }), undefined);
});
