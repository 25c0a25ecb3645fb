import { streamLabel } from '../src/streams/redact.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { RtmpClient, MessageType } from '@rtmp-relay/rtmp';
import { loadConfig } from '../src/config.js';
import { startNode, type RunningNode } from '../src/node.js';
import { ffmpegPublish } from './support/media-tools.js';
import { stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices } from './support/services.js';

/** OpenTelemetry spans around connect, publish, play, claim, resolve and pull start, seen by an in-memory exporter. */
describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const nodes: RunningNode[] = [];

  before(() => {
    provider.register();
  });
  after(async () => {
    await stopAll();
    for (const n of nodes) await n.shutdown('test');
    await stopAllServices();
    await provider.shutdown();
    trace.disable();
  });

  it('an origin and an edge record connect, publish, claim, play, resolve and pull-start spans', async () => {
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = {
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      ADVERTISE_HOST: '127.0.0.1',
      RTMP_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      SHUTDOWN_TIMEOUT_MS: '500',
    };
    const origin = await startNode(loadConfig({ env: { ...env, NODE_ID: 'origin-t' } }), { role: 'origin' });
    const edge = await startNode(loadConfig({ env: { ...env, NODE_ID: 'edge-t' } }), { role: 'edge' });
    nodes.push(edge, origin);
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/traced`, { seconds: 30 });
    await waitFor('the publish span', () => exporter.getFinishedSpans().some((s) => s.name === 'rtmp.publish'), 15_000);
    const viewer = await RtmpClient.connect(`rtmp://127.0.0.1:${edge.rtmpPort}/live/traced`);
    let frames = 0;
    viewer.on('media', (m) => {
      if (m.type === MessageType.Video) frames++;
    });
    await viewer.play();
    await waitFor('frames through the edge', () => frames > 5, 10_000);
    viewer.close();
    await pub.stop();
    const spans = exporter.getFinishedSpans();
    const names = new Set(spans.map((s) => s.name));
    for (const name of [
      'rtmp.connect',
      'rtmp.publish',
      'cluster.claim',
      'rtmp.play',
      'cluster.resolve',
      'cluster.pull_start',
    ]) {
      assert.ok(names.has(name), `span ${name} recorded (got ${[...names].join(', ')})`);
    }
    const publish = spans.find((s) => s.name === 'rtmp.publish')!;
    // Stream names are credentials in key-as-name setups: spans carry the same label as logs.
    assert.equal(publish.attributes['rtmp.stream'], streamLabel('live/traced'));
    assert.equal(publish.attributes['rtmp.allowed'], true);
    const resolve = spans.find((s) => s.name === 'cluster.resolve' && s.attributes['rtmp.found'] === true);
    assert.equal(resolve?.attributes['rtmp.owner'], 'origin-t');
  });
});
