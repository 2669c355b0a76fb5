import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { NO_METRICS } from '../metrics/gateway-metrics.js';
import type { MetricsEndpoint, MetricsEndpointDeps } from '../metrics/metrics-endpoint.js';
import { registerProcessMetrics } from '../metrics/process-metrics.js';
import { registerGatewayMetrics } from '../metrics/prometheus-metrics.js';

export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

/**
 * A worker's metrics: the gateway's metrics on a registry of the worker's
 * own, with no listener. The primary serves /metrics for the whole gateway
 * by aggregating every worker's registry (prom-client AggregatorRegistry,
 * see docs/metrics.md "Several processes per gateway").
 */
export class WorkerMetrics {
  private registry: Registry | undefined;

  constructor(private readonly enabled: boolean) {}

  /** The endpoint a worker's Gateway gets instead of a listener (WorkerRole.metrics). */
  endpoint(deps: MetricsEndpointDeps): MetricsEndpoint {
    const none = { address: () => undefined, close: () => Promise.resolve() };
    if (!this.enabled) return { ...none, metrics: NO_METRICS, setIdentity: () => undefined };
    this.registry = new Registry();
    registerProcessMetrics(this.registry);
    const metrics = registerGatewayMetrics(this.registry, deps.channels, deps.names);
    metrics.setIdentity(deps.identity);
    return { ...none, metrics, setIdentity: (id) => metrics.setIdentity(id) };
  }

  /** This worker's metrics for the primary's aggregation; empty when metrics are off. */
  async json(): Promise<MetricsJson> {
    return this.registry ? ((await this.registry.getMetricsAsJSON())) : [];
  }
}

/**
 * What the primary's MetricsServer serves: every worker's registry and the
 * primary's own process metrics, merged at scrape time (prom-client's
 * aggregators: process counters and sizes summed over the processes, event
 * loop lag averaged, process_start_time_seconds left out).
 */
export function aggregatedRegistry(collect: () => Promise<MetricsJson[]>): { metrics(): Promise<string>; readonly contentType: string } {
  const own = new Registry();
  registerProcessMetrics(own);
  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: async () => AggregatorRegistry.aggregate([await own.getMetricsAsJSON(), ...(await collect())]).metrics(),
  };
}
