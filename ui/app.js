// The fleetts dashboard (docs/dashboard.md): hosts, units per host, services, the event feed and
// failover timelines, kept live from GET /v1/events. No framework: the listings are re-read after
// events (debounced) and the page is drawn again from them; the events themselves feed the event
// list, the leader and the failover timelines. Data goes into the page as text only, never as HTML.
'use strict';

const TOKEN_KEY = 'fleetts.apiToken';
/** fleetd sends a comment every 15 s: a stream silent three times as long is dead. */
const SILENT_MS = 45_000;
const RETRY_MS = 1_000;
const FEED_MAX = 200;

const state = {
  /** id → the machine listing's entry, with `up` (false once lost, kept to show it down). */
  hosts: new Map(),
  leader: undefined,
  units: [],
  services: [],
  events: [],
  /** Newest first: { machine, lostAt, units, steps: [{ kind, unit, machine, detail, time }] }. */
  failovers: [],
  /** The id to resume the event stream after. */
  cursor: undefined,
  /** Why the event stream was reopened, each time. */
  reconnects: [],
};
// For tests and the curious: the page's state, and when it was loaded (a reload would reset it).
window.fleettsDashboard = { loadedAt: Date.now(), state };

class NeedToken extends Error {}

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
  e.append(...children.flat().filter((c) => c !== undefined && c !== null));
  return e;
}

async function api(path, headers = {}, signal = undefined) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, {
    headers: token === null ? headers : { ...headers, authorization: `Bearer ${token}` },
    cache: 'no-store',
    signal,
  });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(token === null ? '' : 'that token was refused');
    throw new NeedToken();
  }
  return res;
}

async function json(path) {
  const res = await api(path);
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${path}: ${body?.error?.message ?? res.status}`);
  return body;
}

function askToken(problem) {
  setConnection('down', 'needs the API token');
  $('token-form').hidden = false;
  $('token-error').textContent = problem;
  $('token').focus();
}

function setConnection(kind, text) {
  $('connection').dataset.state = kind;
  $('connection').textContent = text;
}

// ---- the listings ----

let refreshTimer;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => void refresh(), 200);
}

async function refresh() {
  try {
    const units = [];
    let page = await json('/v1/units');
    units.push(...page.units);
    while (page.nextPageToken !== undefined) {
      page = await json(`/v1/units?pageToken=${encodeURIComponent(page.nextPageToken)}`);
      units.push(...page.units);
    }
    const [machines, services] = await Promise.all([json('/v1/machines'), json('/v1/services')]);
    const live = new Set(machines.machines.map((m) => m.id));
    for (const m of machines.machines) state.hosts.set(m.id, { ...m, up: true });
    for (const h of state.hosts.values()) if (!live.has(h.id)) h.up = false;
    state.units = units;
    state.services = services.instances;
    render();
  } catch (err) {
    if (!(err instanceof NeedToken)) setConnection('down', String(err.message ?? err));
  }
}

// ---- the event stream ----

/** Reads GET /v1/events with fetch (EventSource cannot send the token), resuming after breaks. */
async function follow() {
  for (;;) {
    const abort = new AbortController();
    let silence;
    const alive = () => {
      clearTimeout(silence);
      silence = setTimeout(() => abort.abort(new Error('the event stream went silent')), SILENT_MS);
    };
    try {
      const since = state.cursor === undefined ? '' : `?since=${encodeURIComponent(state.cursor)}`;
      alive();
      const res = await api(`/v1/events${since}`, { accept: 'text/event-stream' }, abort.signal);
      if (res.status === 410) {
        state.cursor = undefined; // compacted: start again from the current state
        continue;
      }
      if (!res.ok) throw new Error(`GET /v1/events: ${(await res.json())?.error?.message ?? res.status}`);
      setConnection('live', 'live');
      refreshSoon();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        alive();
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const data = buffer
            .slice(0, end)
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          buffer = buffer.slice(end + 2);
          if (data !== '') onEvent(JSON.parse(data));
        }
      }
      throw new Error('the event stream ended');
    } catch (err) {
      if (err instanceof NeedToken) return;
      const why = String(abort.signal.reason?.message ?? err.message ?? err);
      state.reconnects.push(why);
      setConnection('down', `reconnecting: ${why}`);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    } finally {
      clearTimeout(silence);
    }
  }
}

function onEvent(e) {
  if (e.id !== undefined) state.cursor = e.id;
  if (e.kind === 'stream.synced') return;
  if (e.kind === 'leader.changed') state.leader = e.machine;
  if (e.kind === 'host.joined') {
    const h = state.hosts.get(e.machine);
    state.hosts.set(e.machine, { id: e.machine, ip: e.ip, units: 0, ...h, up: true });
  }
  if (e.kind === 'host.lost') {
    const h = state.hosts.get(e.machine) ?? { id: e.machine, ip: '', units: 0 };
    state.hosts.set(e.machine, { ...h, up: false });
    if (e.snapshot !== true)
      state.failovers.unshift({ machine: e.machine, lostAt: e.time, units: e.units, steps: [] });
  }
  for (const f of state.failovers) {
    if (e.kind === 'unit.moved' && e.from === f.machine)
      f.steps.push({ kind: e.kind, unit: e.unit, machine: e.machine, detail: e.reason, time: e.time });
    const moved = f.steps.some(
      (s) => s.kind === 'unit.moved' && s.unit === e.unit && s.machine === e.machine,
    );
    const started = f.steps.some((s) => s.kind === 'unit.started' && s.unit === e.unit);
    if (e.kind === 'unit.started' && moved && !started)
      f.steps.push({ kind: e.kind, unit: e.unit, machine: e.machine, detail: '', time: e.time });
  }
  state.events.unshift(e);
  state.events.length = Math.min(state.events.length, FEED_MAX);
  render();
  refreshSoon();
}

// ---- drawing ----

function render() {
  const hosts = [...state.hosts.values()].sort((a, b) => a.id.localeCompare(b.id));
  $('hosts').replaceChildren(...hosts.map(hostCard), ...unplacedCard());
  $('services').replaceChildren(...serviceCards());
  if (state.failovers.length > 0) $('failovers').replaceChildren(...state.failovers.map(timeline));
  $('events').replaceChildren(...state.events.map(eventLine));
}

function hostCard(h) {
  const units = state.units
    .filter((u) => u.placements.some((p) => p.machine === h.id))
    .map((u) => {
      const s = u.statuses.find((x) => x.machine === h.id);
      const active = s === undefined ? 'placed' : s.active;
      return el('li', { 'data-unit': u.name, 'data-active': active }, `${u.name} `, el('span', {}, active));
    });
  const lost = h.up ? [] : (state.failovers.find((f) => f.machine === h.id)?.units ?? []);
  return el(
    'div',
    { class: 'card', 'data-host': h.id, 'data-state': h.up ? 'up' : 'down', 'data-memory': h.memoryBytes },
    el(
      'h3',
      {},
      h.id,
      state.leader === h.id ? el('span', { class: 'badge' }, 'engine leader') : undefined,
      h.up ? undefined : el('span', { class: 'badge state-down' }, 'down'),
      h.drain === undefined ? undefined : el('span', { class: 'badge' }, h.drain.state),
    ),
    el(
      'div',
      { class: 'meta' },
      [h.ip, h.version, h.up ? `${h.units} units` : undefined, memory(h.memoryBytes)]
        .filter(Boolean)
        .join(' · '),
    ),
    units.length > 0 ? el('ul', {}, units) : undefined,
    lost.length > 0 ? el('div', { class: 'meta' }, `had: ${lost.join(', ')}`) : undefined,
  );
}

/** A host's total memory (bytes, from its fleetd) as `15.6 GiB memory`; undefined when not known. */
function memory(bytes) {
  if (typeof bytes !== 'number') return undefined;
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB memory` : `${Math.round(bytes / 2 ** 20)} MiB memory`;
}

function unplacedCard() {
  const units = state.units.filter((u) => u.placements.length === 0 && u.target !== 'inactive');
  if (units.length === 0) return [];
  return [
    el(
      'div',
      { class: 'card', 'data-host': '', 'data-state': 'down' },
      el('h3', {}, 'not placed'),
      el(
        'ul',
        {},
        units.map((u) => el('li', { 'data-unit': u.name }, `${u.name} `, u.unschedulable?.reason ?? '')),
      ),
    ),
  ];
}

function serviceCards() {
  const by = new Map();
  for (const i of state.services) by.set(i.service, [...(by.get(i.service) ?? []), i]);
  if (by.size === 0) return [el('p', { class: 'empty' }, 'no service instances announced')];
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, instances]) =>
      el(
        'div',
        { class: 'card', 'data-service': service },
        el('h3', {}, service),
        el(
          'ul',
          {},
          instances.map((i) =>
            el(
              'li',
              { 'data-instance': i.instance },
              i.address,
              el('span', { class: 'meta' }, ` ${[i.machine, i.unit].filter(Boolean).join(' · ')}`),
            ),
          ),
        ),
      ),
    );
}

function timeline(f) {
  // Offsets from the earliest time shown: each event carries the time its key records (a move's
  // placement, a start's status) or, for the loss (a deletion), when a fleetd saw it.
  const times = [f.lostAt, ...f.steps.map((s) => s.time)].map((t) => Date.parse(t));
  const t0 = Math.min(...times);
  const at = (time) => `+${((Date.parse(time) - t0) / 1000).toFixed(2)} s`;
  const row = (time, kind, subject, detail) =>
    el(
      'tr',
      { 'data-kind': kind },
      el('td', {}, at(time)),
      el('td', {}, kind),
      el('td', {}, subject),
      el('td', {}, detail),
    );
  return el(
    'div',
    { class: 'timeline', 'data-failover': f.machine },
    el('div', {}, `host ${f.machine} lost at ${clock(f.lostAt)}`),
    el(
      'table',
      {},
      row(f.lostAt, 'host.lost', f.machine, f.units.length > 0 ? `had ${f.units.join(', ')}` : ''),
      f.steps.map((s) =>
        row(
          s.time,
          s.kind,
          s.unit,
          s.kind === 'unit.moved' ? `→ ${s.machine}: ${s.detail}` : `on ${s.machine}`,
        ),
      ),
    ),
  );
}

/** 08:49:01.123 in the browser's time zone. */
function clock(time) {
  const d = new Date(time);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function eventLine(e) {
  const subject = e.unit ?? e.service ?? e.machine ?? '';
  const detail =
    e.kind === 'unit.moved'
      ? `${e.from} → ${e.machine}: ${e.reason}`
      : e.kind.startsWith('service.')
        ? `${e.instance} ${e.address}`
        : e.unit !== undefined
          ? `on ${e.machine}${e.reason === undefined ? '' : `: ${e.reason}`}`
          : e.kind === 'host.lost'
            ? e.units.join(', ')
            : e.kind === 'upstream.reloaded'
              ? `nginx on ${e.host}: ${e.servers} server(s)`
              : '';
  const time = clock(e.time);
  return el(
    'li',
    { 'data-kind': e.kind },
    `${time}  ${e.kind}  ${subject}  ${detail}${e.snapshot === true ? '  (state)' : ''}`,
  );
}

// ---- start ----

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  $('token-form').hidden = true;
  void follow();
});
void follow();
