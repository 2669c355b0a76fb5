import { Registry } from 'prom-client';
import type { HostPort } from '../config/endpoint.js';
import type { Logger } from '../log/logger.js';
import type { Identity } from '../tls/identity.js';
import { NO_METRICS, type GatewayMetrics } from './gateway-metrics.js';
import { MetricsServer } from './metrics-server.js';
import { registerProcessMetrics } from './process-metrics.js';
import { registerGatewayMetrics, type ChannelSource, type MetricNames } from './prometheus-metrics.js';

/** A gateway's metrics and their HTTP listener, or a no-op pair when `metrics` is not configured. */
export interface MetricsEndpoint {
  readonly metrics: GatewayMetrics;
  /** Updates the certificate expiry gauges (start, and each successful reload). */
  setIdentity(id: Identity): void;
  address(): HostPort | undefined;
  close(): Promise<void>;
}

export interface MetricsEndpointDeps {
  channels: ChannelSource;
  /** The configured route and target names: every labelled series exists from the start. */
  names: MetricNames;
  identity: Identity;
  notReady: () => string | undefined;
  log: Logger;
}

/** Starts the metrics listener of one gateway, with a registry of its own. */
export async function startMetricsEndpoint(config: { listen: HostPort } | undefined, deps: MetricsEndpointDeps): Promise<MetricsEndpoint> {
  if (!config) {
    return { metrics: NO_METRICS, setIdentity: () => undefined, address: () => undefined, close: () => Promise.resolve() };
  }
  const registry = new Registry();
  registerProcessMetrics(registry);
  const metrics = registerGatewayMetrics(registry, deps.channels, deps.names);
  metrics.setIdentity(deps.identity);
  const server = await MetricsServer.start({ listen: config.listen, registry, notReady: deps.notReady, log: deps.log });
  return {
    metrics,
    setIdentity: (id) => metrics.setIdentity(id),
    address: () => server.address(),
    close: () => server.close(),
  };
}
