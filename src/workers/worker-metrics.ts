import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { NO_METRICS } from '../metrics/gateway-metrics.js';
import type { MetricsEndpoint, MetricsEndpointDeps } from '../metrics/metrics-endpoint.js';
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
    const metrics = registerGatewayMetrics(this.registry, deps.channels, deps.names);
    metrics.setIdentity(deps.identity);
    return { ...none, metrics, setIdentity: (id) => metrics.setIdentity(id) };
  }

  /** This worker's metrics for the primary's aggregation; empty when metrics are off. */
  async json(): Promise<MetricsJson> {
    return this.registry ? ((await this.registry.getMetricsAsJSON())) : [];
  }
}

/** What the primary's MetricsServer serves: the sum of every worker's registry, merged at scrape time. */
export function aggregatedRegistry(collect: () => Promise<MetricsJson[]>): { metrics(): Promise<string>; readonly contentType: string } {
  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: async () => AggregatorRegistry.aggregate(await collect()).metrics(),
  };
}
