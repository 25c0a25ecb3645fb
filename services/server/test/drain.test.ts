import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RtmpClient } from '@rtmp-relay/rtmp';
import { clusterEnv, spawnNode, type ProcessNode } from './support/cluster-harness.js';
import { stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { MovablePublisher, TagViewer } from './support/tagged-stream.js';
import { Relay } from './support/tcp-relay.js';

/**
 * An origin drained with SIGTERM (real processes): publishers that advertised E-RTMP capsEx Reconnect get a
 * `NetConnection.Connect.ReconnectRequest` naming another origin and move without a gap; a legacy publisher gets
 * none, is handed off (disconnected, lease released) and comes back through another origin after its back-off;
 * the draining origin refuses new publishes and is not ready; edge viewers of both streams stay connected, see
 * timestamps that only grow and never a frame of the old connection after the new one's.
 */

const LEGACY_BACKOFF_MS = 500;

describe('origin drain: E-RTMP ReconnectRequest and hand-off', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  const nodes: ProcessNode[] = [];
  const pubs: MovablePublisher[] = [];
  const viewers: TagViewer[] = [];
  const relays: Relay[] = [];

  before(async () => {
    redis = await startRedis();
    nats = await startNats();
  });

  after(async () => {
    for (const v of viewers) v.close();
    for (const p of pubs) p.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all(relays.map((r) => r.close()));
    await stopAll();
    await stopAllServices();
  });

  it(
    'moves E-RTMP publishers by ReconnectRequest, hands legacy ones off, keeps edge viewers',
    { timeout: 60_000 },
    async () => {
      const env = clusterEnv(redis.url, nats.url, { LEASE_MS: '3000', SHUTDOWN_TIMEOUT_MS: '3000' });
      const A = await spawnNode('origin', 'drain-a', env);
      const B = await spawnNode('origin', 'drain-b', env);
      const E = await spawnNode('edge', 'drain-e', env);
      nodes.push(A, B, E);
      await waitFor(
        'B in the node registry',
        async () => {
          const list = await A.json<{ nodes: Array<{ id: string }> }>('/api/cluster/nodes');
          return list.nodes.some((n) => n.id === 'drain-b');
        },
        10_000,
      );

      const modern = new MovablePublisher({ ertmp: true });
      const legacy = new MovablePublisher({ ertmp: false });
      pubs.push(modern, legacy);
      await modern.moveTo(A.rtmpUrl('live/modern'), 1);
      await legacy.moveTo(A.rtmpUrl('live/legacy'), 1);
      const vm = await TagViewer.open(E.rtmpUrl('live/modern'));
      const vl = await TagViewer.open(E.rtmpUrl('live/legacy'));
      viewers.push(vm, vl);
      await waitFor('edge viewers get frames', () => vm.count(1) >= 10 && vl.count(1) >= 10, 10_000);

      const drainAt = performance.now();
      const legacyClosed = new Promise<void>((resolve) => legacy.client!.once('close', () => resolve()));
      const exited = A.proc.stop('SIGTERM');

      // The E-RTMP publisher is told where to go: another origin's address, the same app.
      await waitFor('a ReconnectRequest', () => modern.reconnectRequests.length > 0, 5000);
      assert.equal(modern.reconnectRequests[0], `rtmp://127.0.0.1:${B.rtmpPort}/live`);
      assert.equal(legacy.reconnectRequests.length, 0, 'a legacy publisher got a ReconnectRequest');
      // Draining: not ready, and new publishes are refused.
      assert.equal((await A.http('/readyz')).status, 503);
      const late = await RtmpClient.connect(A.rtmpUrl('live/late'), { connectTimeoutMs: 3000 });
      await assert.rejects(late.publish(undefined, 3000), /NetStream\.Publish\.BadName/);
      late.close();

      // Make-before-break: publish at B with the same key, then close the connection to A.
      await modern.moveTo(modern.client!.reconnectUrl(modern.reconnectRequests[0]), 2);
      // The legacy publisher is handed off (disconnected), and reconnects through "the load balancer" to B.
      await legacyClosed;
      await new Promise((r) => setTimeout(r, LEGACY_BACKOFF_MS)); // the encoder's own back-off, not a wait for state
      await legacy.moveTo(B.rtmpUrl('live/legacy'), 2);

      await waitFor('edge viewers get frames from B', () => vm.count(2) >= 20 && vl.count(2) >= 20, 15_000);
      const result = await exited;
      assert.equal(result.code, 0, A.output().slice(-2000));

      const gapModern = vm.maxGapAfter(drainAt);
      const gapLegacy = vl.maxGapAfter(drainAt);
      console.log(`[drain] viewer gap: E-RTMP ${gapModern.toFixed(0)} ms, legacy ${gapLegacy.toFixed(0)} ms`);
      for (const v of [vm, vl]) {
        assert.equal(v.closedAt, undefined, 'an edge viewer was disconnected');
        assert.equal(v.regressions(), 0, 'timestamps went back');
        assert.equal(v.interleavedAfter(2), 0, 'frames of the old connection after the new one');
      }
      assert.deepEqual(vm.ends, [], 'the E-RTMP stream was ended for viewers');
      assert.ok(gapModern < 1000, `E-RTMP gap ${gapModern} ms`);
      assert.ok(gapLegacy < LEGACY_BACKOFF_MS + 1500, `legacy gap ${gapLegacy} ms`);
    },
  );
  it(
    'with INGEST_PUBLIC_URL, the ReconnectRequest names the public ingest address, and the move through it has no gap',
    { timeout: 60_000 },
    async () => {
      const env = clusterEnv(redis.url, nats.url, { LEASE_MS: '3000', SHUTDOWN_TIMEOUT_MS: '3000' });
      const B = await spawnNode('origin', 'ingest-b', env);
      nodes.push(B);
      // "The load balancer" in front of the origins: once A drains (not ready), it sends new publishes to B.
      const lb = await Relay.open('127.0.0.1', B.rtmpPort);
      relays.push(lb);
      const ingest = `rtmp://127.0.0.1:${lb.port}`;
      const A = await spawnNode('origin', 'ingest-a', { ...env, INGEST_PUBLIC_URL: `${ingest}/` });
      const E = await spawnNode('edge', 'ingest-e', env);
      nodes.push(A, E);
      await waitFor(
        'B in the node registry',
        async () => {
          const list = await A.json<{ nodes: Array<{ id: string }> }>('/api/cluster/nodes');
          return list.nodes.some((n) => n.id === 'ingest-b');
        },
        10_000,
      );
      const modern = new MovablePublisher({ ertmp: true });
      pubs.push(modern);
      await modern.moveTo(A.rtmpUrl('live/public'), 1);
      const v = await TagViewer.open(E.rtmpUrl('live/public'));
      viewers.push(v);
      await waitFor('edge viewer gets frames', () => v.count(1) >= 10, 10_000);

      const drainAt = performance.now();
      const exited = A.proc.stop('SIGTERM');
      await waitFor('a ReconnectRequest', () => modern.reconnectRequests.length > 0, 5000);
      assert.equal(modern.reconnectRequests[0], `${ingest}/live`);
      await modern.moveTo(modern.client!.reconnectUrl(modern.reconnectRequests[0]), 2);
      await waitFor('the edge viewer gets frames published through the ingest address', () => v.count(2) >= 20, 15_000);
      assert.equal((await exited).code, 0, A.output().slice(-2000));
      assert.ok(lb.connections >= 1, 'the publisher did not reconnect through the ingest address');
      const gap = v.maxGapAfter(drainAt);
      console.log(`[drain] through INGEST_PUBLIC_URL: viewer gap ${gap.toFixed(0)} ms`);
      assert.equal(v.closedAt, undefined, 'the edge viewer was disconnected');
      assert.equal(v.regressions(), 0, 'timestamps went back');
      assert.equal(v.interleavedAfter(2), 0, 'frames of the old connection after the new one');
      assert.ok(gap < 1000, `gap ${gap} ms`);
    },
  );
});
