import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default process metrics (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_open_fds, nodejs_eventloop_lag_*,
 * nodejs_heap_*, ...; docs/metrics.md) on `registry`: the usual first look at
 * a daemon that is slow or growing. Each process of a gateway registers its
 * own; with workers the primary's /metrics merges them (worker-metrics.ts).
 */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters, which `promtool check metrics` rejects; the
  // same counts are in nodejs_active_handles, _requests and _resources (by type).
  for (const name of MISNAMED_GAUGES) registry.removeSingleMetric(name);
}

const MISNAMED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
