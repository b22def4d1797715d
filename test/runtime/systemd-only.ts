// What only the systemd runtime does, beside the contract (contract.ts): units refused with a
// reason where systemd cannot keep fleetts' promise ([X-Health], AtMostOnce), and units that are
// ordinary systemd services to an operator. Registered inside the systemd container
// (fixtures/systemd-contract.ts), reported by systemd-runtime.test.ts.

import type { TestFn } from 'ava';
import { execFileSync } from 'node:child_process';
import type { ProcessUnitConfig, Runtime } from '../../src/runtime/runtime.js';
import type { SystemdRuntime } from '../../src/runtime/systemd-runtime.js';
import { config, step, unitName, waitFor, waitState } from './helpers.js';

export interface SystemdHarness {
  newRuntime(): { runtime: SystemdRuntime & Runtime<ProcessUnitConfig> };
}

function systemctl(...args: string[]): string {
  try {
    return execFileSync('systemctl', args, { encoding: 'utf8' });
  } catch (err) {
    return (err as { stdout?: string }).stdout ?? '';
  }
}

export function systemdRuntimeTests(test: TestFn, h: SystemdHarness): void {
  test('systemd: a unit with [X-Health] is refused with a reason, and nothing runs', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('health');
    await runtime.start(
      config(unit, {
        execStart: [step('/bin/sleep', '100')],
        health: { check: 'tcp://127.0.0.1:1', intervalMs: 100, timeoutMs: 100, retries: 1, startPeriodMs: 0 },
      }),
    );
    const o = await waitState(runtime, unit, 'failed', 'failed');
    t.regex(o.reason ?? '', /^\[X-Health\] is not supported by the systemd runtime/);
    t.regex(systemctl('show', '-p', 'LoadState', runtime.systemdName(unit)), /LoadState=not-found/);
    await runtime.remove(unit);
  });

  test('systemd: an AtMostOnce unit is refused with a reason', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('amo');
    await runtime.start({ ...config(unit, { execStart: [step('/bin/sleep', '100')] }), atMostOnce: true });
    const o = await waitState(runtime, unit, 'failed', 'failed');
    t.regex(o.reason ?? '', /^AtMostOnce=true is not supported by the systemd runtime/);
    t.true(o.atMostOnce);
  });

  test('systemd: a unit systemd will not take is failed with its words, not a stack', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('refused');
    await runtime.start(
      config(unit, {
        execStart: [step('/bin/sleep', '100')],
        workingDirectory: { path: 'relative/dir', optional: false },
      }),
    );
    const o = await waitState(runtime, unit, 'failed', 'failed');
    t.regex(o.reason ?? '', /^systemd refused the transient unit .*: .+/);
    t.log(o.reason);
  });

  test('systemd: units just started are never reported inactive before systemd shows them', async (t) => {
    const { runtime } = h.newRuntime();
    const units = Array.from({ length: 20 }, () => unitName('burst'));
    const early: string[] = [];
    const active = new Set<string>();
    runtime.onChange((o) => {
      if (o.active === 'active') active.add(o.unit);
      else if (!active.has(o.unit) && (o.active === 'inactive' || o.active === 'failed'))
        early.push(`${o.unit} ${o.active}/${o.sub}`);
    });
    // Readings of systemd's state run all along, some begun while a start call is in flight.
    let reading = true;
    const readings = (async () => {
      while (reading) await runtime.list();
    })();
    await Promise.all(units.map((u) => runtime.start(config(u, { execStart: [step('/bin/sleep', '100')] }))));
    reading = false;
    await readings;
    for (const o of await runtime.list()) if (units.includes(o.unit)) t.not(o.active, 'inactive', o.unit);
    await waitFor('all active', () => units.every((u) => active.has(u)));
    t.deepEqual(early, []);
    await Promise.all(units.map((u) => runtime.remove(u)));
  });

  test('systemd: a unit is an ordinary service to systemctl, named and described after the fleetts unit', async (t) => {
    const { runtime } = h.newRuntime();
    const unit = unitName('visible');
    const c = config(unit, { execStart: [step('/bin/sleep', '100')] });
    await runtime.start(c);
    const o = await waitState(runtime, unit, 'active', 'running');
    const name = runtime.systemdName(unit);
    const status = systemctl('status', '--no-pager', name);
    t.regex(
      status,
      new RegExp(`${name.replace(/[.]/g, '\\.')} - fleetts ${unit.replace(/[.]/g, '\\.')} ${c.hash}`),
    );
    t.regex(status, /Active: active \(running\)/);
    t.regex(status, new RegExp(`Main PID: ${o.pid}`));
    t.regex(systemctl('show', '-p', 'ControlGroup', name), /ControlGroup=\S*\/system\.slice\/fleetts-/);
    await runtime.stop(unit);
    t.regex(
      systemctl('show', '-p', 'LoadState', name),
      /LoadState=not-found/,
      'systemd forgot the stopped unit',
    );
    t.like(
      (await runtime.list()).find((x) => x.unit === unit),
      { active: 'inactive', sub: 'dead' },
    );
  });
}
