// The runtimes report events as (name, fields); this gives each its log level (an operator running
// at the default level, info, sees every unit failure and crash restart) and counts Restart=
// restarts for the metrics. One table, so a new runtime event gets a level where the others are.
import type { Logger } from '../lib/logger.js';
import type { FleetMetrics } from '../metrics/fleet-metrics.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** Events not listed are logged at info. */
export const RUNTIME_EVENT_LEVELS: Readonly<Record<string, Level>> = {
  // The agent already logs agent.unit_started/stopped/removed at info for these steps.
  'runtime.supervisor_spawned': 'debug',
  'runtime.unit_started': 'debug',
  'runtime.container_created': 'debug',
  'runtime.container_started': 'debug',
  'runtime.container_stopped': 'debug',
  'runtime.container_removed': 'debug',
  'runtime.unit_adopted': 'info',
  'runtime.unit_removed': 'info',
  'runtime.container_replacing': 'info',
  'runtime.container_stale_removed': 'info',
  'runtime.container_exited': 'info',
  // A unit that failed or crashed and was restarted: the unit's trouble, not fleetd's (systemd logs
  // these at warning too).
  'runtime.unit_failed': 'warn',
  'runtime.unit_restarted': 'warn',
  'runtime.container_restarting': 'warn',
  'runtime.container_vanished': 'warn',
  'runtime.container_unreadable': 'warn',
  'runtime.supervisor_stuck': 'warn',
  'runtime.docker_events_lost': 'warn',
  'runtime.refresh_failed': 'warn',
  'runtime.poll_failed': 'warn',
  // The systemd runtime cannot run this unit as asked ([X-Health], AtMostOnce): the unit shows why.
  'runtime.unit_refused': 'warn',
  // fleetd could not do its part.
  'runtime.restart_failed': 'error',
  'runtime.listener_failed': 'error',
};

/** The `log` callback of a runtime: logs at the event's level, counts restarts. */
export function runtimeEventSink(
  log: Logger,
  runtime: 'process' | 'docker',
  metrics?: Pick<FleetMetrics, 'supervisorRestarts'>,
): (event: string, fields: Record<string, unknown>) => void {
  return (event, fields) => {
    const level = RUNTIME_EVENT_LEVELS[event] ?? 'info';
    log[level]({ event, runtime, ...fields }, describe(event, fields));
    if (event === 'runtime.unit_restarted')
      metrics?.supervisorRestarts.inc({ runtime }, typeof fields['count'] === 'number' ? fields['count'] : 1);
    else if (event === 'runtime.container_restarting') metrics?.supervisorRestarts.inc({ runtime });
  };
}

/** A line for people: the event and the unit (the fields carry the rest). */
function describe(event: string, fields: Record<string, unknown>): string {
  const unit = typeof fields['unit'] === 'string' ? ` ${fields['unit']}` : '';
  const reason = typeof fields['reason'] === 'string' ? `: ${fields['reason']}` : '';
  return `${event.replace(/^runtime\./, '').replace(/_/g, ' ')}${unit}${reason}`;
}
