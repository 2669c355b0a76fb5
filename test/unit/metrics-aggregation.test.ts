import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { ObservedChannel } from '../../src/metrics/gateway-metrics.js';
import { registerGatewayMetrics, type ChannelSource } from '../../src/metrics/prometheus-metrics.js';
import { parseExposition } from '../helpers/prometheus.js';

/** The channels of one process of a gateway: a list and the observer the metrics register. */
function processChannels(): { source: ChannelSource; open(c: ObservedChannel): void } {
  const list: ObservedChannel[] = [];
  let observer: Parameters<ChannelSource['observe']>[0] | undefined;
  return {
    source: { list: () => list, observe: (o) => (observer = o) },
    open(c) {
      list.push(c);
      observer?.added(c);
    },
  };
}

test('per-process-registries-aggregate: counters and active gauges sum, build_info stays 1', async () => {
  const registries = [new Registry(), new Registry()];
  const sent = [100, 50];
  for (const [i, registry] of registries.entries()) {
    const channels = processChannels();
    const metrics = registerGatewayMetrics(registry, channels.source);
    channels.open({ role: 'server', session: `s${i}`, owner: 'peer', relay: { counters: { bytesOut: 7, bytesIn: sent[i] ?? 0 } } });
    metrics.handshakeSucceeded('server', 20);
    metrics.handshakeFailed('server', 'auth-failed');
  }
  const merged = AggregatorRegistry.aggregate(await Promise.all(registries.map((r) => r.getMetricsAsJSON())));
  const s = parseExposition(await merged.metrics());
  assert.equal(s.value('vmgate_bytes_total', { role: 'server', direction: 'from_peer' }), 150);
  assert.equal(s.value('vmgate_bytes_total', { role: 'server', direction: 'to_peer' }), 14);
  assert.equal(s.value('vmgate_channels_active', { role: 'server' }), 2);
  assert.equal(s.value('vmgate_sessions_active', { role: 'server' }), 2);
  assert.equal(s.value('vmgate_handshake_failures_total', { role: 'server', cause: 'auth-failed' }), 2);
  assert.equal(s.value('vmgate_handshake_duration_seconds_count', { role: 'server' }), 2);
  assert.equal(s.sum('vmgate_build_info'), 1, 'one build, not one per process');
});
