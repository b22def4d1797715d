// A runtime in memory for the agent's loop tests (the real ProcessRuntime is tested in
// agent-etcd.test.ts): units become active at once on start and inactive on stop.
import type { UnitName } from '../../src/cluster/types.js';
import type { Clock } from '../../src/lib/clock.js';
import type { ChangeListener, ObservedUnit, ProcessUnitConfig, Runtime } from '../../src/runtime/runtime.js';

export class FakeRuntime implements Runtime<ProcessUnitConfig> {
  readonly units = new Map<string, ObservedUnit>();
  readonly configs = new Map<string, ProcessUnitConfig>();
  /** Every call, in order: `start web.unit`, `stop web.unit`, `remove web.unit`. */
  readonly calls: string[] = [];
  /** Each setFenceDeadline argument. */
  readonly deadlines: (number | undefined)[] = [];
  readonly #listeners = new Set<ChangeListener>();
  #pid = 100;

  constructor(
    readonly clock: Clock,
    adopted: readonly ObservedUnit[] = [],
  ) {
    for (const o of adopted) this.units.set(o.unit, o);
  }

  adopt(): Promise<ObservedUnit[]> {
    return Promise.resolve([...this.units.values()]);
  }

  async start(config: ProcessUnitConfig): Promise<void> {
    this.calls.push(`start ${config.unit}`);
    await Promise.resolve();
    this.configs.set(config.unit, config);
    this.#set({
      unit: config.unit,
      hash: config.hash,
      load: 'loaded',
      active: 'active',
      sub: 'running',
      pid: ++this.#pid,
      since: this.#now(),
    });
  }

  async stop(unit: UnitName): Promise<void> {
    this.calls.push(`stop ${unit}`);
    await Promise.resolve();
    const o = this.units.get(unit);
    if (o === undefined || o.active === 'inactive') return;
    const { pid: _pid, ...rest } = o;
    this.#set({ ...rest, active: 'inactive', sub: 'dead', since: this.#now() });
  }

  async remove(unit: UnitName): Promise<void> {
    this.calls.push(`remove ${unit}`);
    await Promise.resolve();
    this.units.delete(unit);
  }

  setFenceDeadline(remainingMs: number | undefined): void {
    this.deadlines.push(remainingMs);
  }

  list(): Promise<ObservedUnit[]> {
    return Promise.resolve([...this.units.values()].sort((a, b) => (a.unit < b.unit ? -1 : 1)));
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What a unit does by itself (exits, fails): tells the agent as a runtime would. */
  exit(unit: string, active: 'inactive' | 'failed', reason?: string): void {
    const o = this.units.get(unit);
    if (o === undefined) throw new Error(`no unit ${unit}`);
    const { pid: _pid, reason: _r, ...rest } = o;
    this.#set({
      ...rest,
      active,
      sub: active === 'failed' ? 'failed' : 'dead',
      since: this.#now(),
      ...(reason === undefined ? {} : { reason }),
    });
  }

  /** A change of state by the unit's own machinery (start-pre → start, auto-restart): `since` moves with `active` only. */
  move(unit: string, active: ObservedUnit['active'], sub: string): void {
    const o = this.units.get(unit);
    if (o === undefined) throw new Error(`no unit ${unit}`);
    this.#set({ ...o, active, sub, since: o.active === active ? o.since : this.#now() });
  }

  async *journal(unit: UnitName): AsyncIterable<string> {
    await Promise.resolve();
    yield `${unit} journal line`;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #set(o: ObservedUnit): void {
    this.units.set(o.unit, o);
    for (const l of this.#listeners) l(o);
  }

  #now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}
