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
    const metrics = registerGatewayMetrics(registry, channels.source, { routes: [], targets: ['incoming'] });
    channels.open({ role: 'server', target: 'incoming', session: `s${i}`, owner: 'peer', relay: { counters: { bytesOut: 7, bytesIn: sent[i] ?? 0 } } });
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

test('series carry the route or target they are about, one per configured path, never a session or port', async () => {
  const registry = new Registry();
  const channels = processChannels();
  const metrics = registerGatewayMetrics(registry, channels.source, { routes: ['to-b', 'to-c'], targets: ['incoming'] });
  const c = { role: 'route' as const, target: 'to-c', session: 'a'.repeat(32), owner: 'peer', relay: { counters: { bytesOut: 40, bytesIn: 2 } } };
  channels.open(c);
  metrics.channelEnded(c, 'stalled');
  const s = parseExposition(await registry.metrics());
  assert.equal(s.value('vmgate_bytes_total', { role: 'route', route: 'to-c', direction: 'to_peer' }), 40);
  assert.equal(s.value('vmgate_bytes_total', { role: 'route', route: 'to-b', direction: 'to_peer' }), 0, 'a configured route has its series before its first migration');
  assert.equal(s.value('vmgate_bytes_total', { role: 'server', target: 'incoming', direction: 'from_peer' }), 0);
  assert.equal(s.value('vmgate_channels_total', { route: 'to-c', outcome: 'stalled' }), 1);
  assert.equal(s.value('vmgate_sessions_total', { route: 'to-c', outcome: 'stalled' }), 1);
  assert.equal(s.value('vmgate_channels_total', { route: 'to-b', outcome: 'ok' }), 0);
  for (const sample of s.samples) {
    assert.ok(!('session' in sample.labels) && !('port' in sample.labels), `${sample.name} has an unbounded label`);
  }
});
