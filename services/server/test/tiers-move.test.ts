import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterEnv, localStream, startInProcessNode, type ClusterNode } from './support/cluster-harness.js';
import { stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { MovablePublisher, TagViewer } from './support/tagged-stream.js';

/**
 * A leaf that pulls through a parent edge keeps its connection when the stream moves between origins: the parent
 * follows the move itself (its hub goes on), so a leaf re-pull would only cost the leaf's viewers a gap. Before, the
 * leaf cut its connection to the parent on every `stream.moved` (counted as a failure, the parent suspected for three
 * heartbeats) and pulled again. Then a real end after the move still ends the stream for the leaf's viewers.
 */
describe('tiers: a stream moving between origins, seen from a leaf', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  const nodes: ClusterNode[] = [];
  const pubs: MovablePublisher[] = [];
  const viewers: TagViewer[] = [];

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
  });

  after(async () => {
    for (const v of viewers) v.close();
    for (const p of pubs) p.stop();
    for (const n of nodes.reverse()) await n.stop();
    await stopAll();
    await stopAllServices();
  });

  it('the leaf keeps its pull through the parent, the parent re-pulls; an end afterwards still ends', async () => {
    const env = clusterEnv(redis.url, nats.url, {
      HEARTBEAT_MS: '200',
      LEASE_MS: '2000',
      CLUSTER_SECRET: 'tiers-move-secret',
      UNPUBLISH_GRACE_MS: '200',
    });
    const O1 = await startInProcessNode('origin', 'tm-o1', env);
    const O2 = await startInProcessNode('origin', 'tm-o2', env);
    const P = await startInProcessNode('edge', 'tm-p', { ...env, EDGE_TIER: 'parent' });
    const L = await startInProcessNode('edge', 'tm-l', { ...env, EDGE_UPSTREAM: 'parents' });
    nodes.push(O1, O2, P, L);
    await waitFor(
      'the parent registered ready',
      async () => {
        const { nodes: list } = await O1.json<{ nodes: Array<{ id: string; tier?: string; ready?: boolean }> }>(
          '/api/cluster/nodes',
        );
        return list.some((n) => n.id === 'tm-p' && n.tier === 'parent' && n.ready === true);
      },
      15_000,
    );

    const key = 'live/tier-move';
    const pub = new MovablePublisher({ ertmp: false });
    pubs.push(pub);
    await pub.moveTo(O1.rtmpUrl(key), 1);
    const v = await TagViewer.open(L.rtmpUrl(key));
    viewers.push(v);
    await waitFor('the leaf viewer gets frames', () => v.count(1) >= 10, 15_000);
    // The leaf pulls through the parent: the parent has one player (the leaf), the first origin one (the parent).
    assert.equal((await localStream(P, key))?.viewers, 1, 'the leaf does not pull through the parent');
    assert.equal((await localStream(O1, key))?.viewers, 1);
    assert.equal(await L.metric('rtmp_pull_starts_total'), 1);

    // The publisher moves to the other origin (make-before-break: a takeover, stream.moved).
    const movedAt = performance.now();
    await pub.moveTo(O2.rtmpUrl(key), 2);
    await waitFor('the leaf viewer gets frames of the new origin', () => v.count(2) >= 20, 15_000);
    assert.equal(await P.metric('rtmp_pull_starts_total'), 2, 'the parent did not follow the move');
    assert.equal(await L.metric('rtmp_pull_starts_total'), 1, 'the leaf re-pulled although its parent stayed');
    assert.equal(await L.metric('rtmp_pull_failures_total'), 0, 'the leaf counted a failure');
    assert.equal((await localStream(O2, key))?.viewers, 1, 'the new origin serves the parent');
    const gap = v.maxGapAfter(movedAt);
    console.log(`[tiers-move] leaf viewer gap across the move: ${gap.toFixed(0)} ms`);
    assert.equal(v.closedAt, undefined, 'the leaf viewer was disconnected');
    assert.equal(v.regressions(), 0, 'timestamps went back');
    assert.equal(v.interleavedAfter(2), 0, 'frames of the old origin after the new one');
    assert.ok(gap < 1000, `leaf viewer gap ${gap} ms`);

    // The publisher stops for good: the end reaches the leaf's viewer (the leaf does not take it for a move to the
    // epoch it learned while keeping its connection).
    pub.stop();
    await waitFor('the stream ended for the leaf viewer', () => v.ends.length > 0 || v.closedAt !== undefined, 15_000);
    await waitFor('the leaf dropped its hub', async () => (await localStream(L, key))?.live !== true, 15_000);
  });
});
