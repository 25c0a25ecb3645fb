import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ControlBus } from '../src/cluster/events/bus.js';
import type { StreamStandby } from '../src/cluster/events/schema.js';
import { clusterEnv, spawnNode, type ProcessNode } from './support/cluster-harness.js';
import { stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { MovablePublisher, TagViewer } from './support/tagged-stream.js';

/**
 * A draining origin asks an E-RTMP publisher to reconnect only once every edge pulling its stream has answered the
 * announced move (`stream.standby`: the edge's next pull waits at the target origin), or when DRAIN_MOVE_LEAD_MS
 * passed. With the cluster secret the origin counts the edges' signed pulls; without it every player counts, so a
 * viewer playing from the origin directly (it never answers) holds the request for the bound, and no longer.
 */

interface DrainSummary {
  reconnectRequested: number;
  movesPrepared: number;
  leadExpired: number;
}

/** The drain's summary line in a node's JSON log. */
function drainSummary(output: string): DrainSummary {
  const line = output.split('\n').find((l) => l.includes('"drain: streams moved to other origins"'));
  assert.ok(line, `no drain summary in the log:\n${output.slice(-2000)}`);
  return JSON.parse(line) as DrainSummary;
}

describe('origin drain: the ReconnectRequest waits for the edges’ next pulls', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let bus: ControlBus | undefined;
  const nodes: ProcessNode[] = [];
  const pubs: MovablePublisher[] = [];
  const viewers: TagViewer[] = [];
  const unsubscribes: Array<() => void> = [];

  before(async () => {
    redis = await startRedis();
    nats = await startNats();
    bus = await ControlBus.connect(nats.url, { name: 'drain-lead-test', initialWaitMs: 5000 });
  });

  after(async () => {
    for (const off of unsubscribes) off();
    for (const v of viewers) v.close();
    for (const p of pubs) p.stop();
    await bus?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await stopAll();
    await stopAllServices();
  });

  /** Origins A and B in each other's registry, `edges` edges; A logs at info (its drain summary is read). */
  async function cluster(prefix: string, edges: number, extra: Record<string, string>) {
    const env = clusterEnv(redis.url, nats.url, { LEASE_MS: '3000', SHUTDOWN_TIMEOUT_MS: '6000', ...extra });
    const A = await spawnNode('origin', `${prefix}-a`, { ...env, LOG_LEVEL: 'info' });
    const B = await spawnNode('origin', `${prefix}-b`, env);
    const E = await Promise.all(Array.from({ length: edges }, (_, i) => spawnNode('edge', `${prefix}-e${i}`, env)));
    nodes.push(A, B, ...E);
    await waitFor(
      'B in the node registry',
      async () => {
        const list = await A.json<{ nodes: Array<{ id: string }> }>('/api/cluster/nodes');
        return list.nodes.some((n) => n.id === `${prefix}-b`);
      },
      10_000,
    );
    return { A, B, E };
  }

  /** Every `stream.standby` about `key` from now on. */
  function recordAnswers(key: string): StreamStandby[] {
    const seen: StreamStandby[] = [];
    const off = bus!.on('stream.standby', (e) => {
      if (e.key === key) seen.push(e);
    });
    unsubscribes.push(off);
    return seen;
  }

  it(
    'with the cluster secret: asked once both edges answered ready, and both moves take the prepared pull',
    { timeout: 60_000 },
    async () => {
      // The bound is long (2.5 s): a request before it means the answers, not the bound, released it.
      const { A, E } = await cluster('lead', 2, { CLUSTER_SECRET: 'drain-lead-secret', DRAIN_MOVE_LEAD_MS: '2500' });
      const key = 'live/lead';
      const pub = new MovablePublisher({ ertmp: true });
      pubs.push(pub);
      await pub.moveTo(A.rtmpUrl(key), 1);
      const vs = await Promise.all(E.map((e) => TagViewer.open(e.rtmpUrl(key))));
      viewers.push(...vs);
      await waitFor('both edge viewers get frames', () => vs.every((v) => v.count(1) >= 10), 10_000);
      const owner = await A.json<{ epoch: number }>(`/api/cluster/streams/${key}`);
      const answers = recordAnswers(key);

      const drainAt = performance.now();
      const exited = A.proc.stop('SIGTERM');
      await waitFor('a ReconnectRequest', () => pub.reconnectRequests.length > 0, 5000);
      await pub.moveTo(pub.client!.reconnectUrl(pub.reconnectRequests[0]), 2);
      await waitFor('both edge viewers get frames from B', () => vs.every((v) => v.count(2) >= 20), 15_000);
      assert.equal((await exited).code, 0, A.output().slice(-2000));

      const summary = drainSummary(A.output());
      assert.equal(summary.reconnectRequested, 1);
      assert.equal(summary.movesPrepared, 1, 'the request did not wait for the answers');
      assert.equal(summary.leadExpired, 0, 'the lead ran out before both edges answered');
      const answered = answers.filter((a) => a.fromNodeId === 'lead-a' && a.epoch === owner.epoch);
      assert.deepEqual(answered.map((a) => `${a.nodeId}:${a.ready}`).sort(), ['lead-e0:true', 'lead-e1:true']);
      for (const [i, e] of E.entries()) {
        assert.equal(await e.metric('rtmp_pull_standbys_total', { outcome: 'used' }), 1, `edge ${i}: standby unused`);
        assert.equal(await e.metric('rtmp_pull_starts_total'), 2, `edge ${i}: pulls started`);
      }
      for (const v of vs) {
        const gap = v.maxGapAfter(drainAt);
        console.log(`[drain-lead] prepared move: viewer gap ${gap.toFixed(0)} ms`);
        assert.equal(v.closedAt, undefined, 'an edge viewer was disconnected');
        assert.equal(v.regressions(), 0, 'timestamps went back');
        assert.equal(v.interleavedAfter(2), 0, 'frames of the old connection after the new one');
        assert.ok(gap < 1000, `viewer gap ${gap} ms`);
      }
    },
  );

  it(
    'without the secret a player on the origin never answers: the request goes at the bound, the edge still prepared',
    { timeout: 60_000 },
    async () => {
      const LEAD_MS = 800;
      const { A, E } = await cluster('silent', 1, { DRAIN_MOVE_LEAD_MS: String(LEAD_MS) });
      const key = 'live/silent';
      const pub = new MovablePublisher({ ertmp: true });
      pubs.push(pub);
      await pub.moveTo(A.rtmpUrl(key), 1);
      const atEdge = await TagViewer.open(E[0]!.rtmpUrl(key));
      const atOrigin = await TagViewer.open(A.rtmpUrl(key));
      viewers.push(atEdge, atOrigin);
      await waitFor('both viewers get frames', () => atEdge.count(1) >= 10 && atOrigin.count(1) >= 10, 10_000);
      const answers = recordAnswers(key);

      const drainAt = performance.now();
      const exited = A.proc.stop('SIGTERM');
      await waitFor('a ReconnectRequest', () => pub.reconnectRequests.length > 0, 5000);
      const waited = pub.reconnectRequestAt[0]! - drainAt;
      console.log(`[drain-lead] ReconnectRequest ${waited.toFixed(0)} ms after SIGTERM (bound ${LEAD_MS} ms)`);
      assert.ok(waited >= LEAD_MS - 50, `asked ${waited} ms after SIGTERM: before the lead's bound`);
      atOrigin.close(); // or the origin waits SHUTDOWN_TIMEOUT_MS for it before exiting
      await pub.moveTo(pub.client!.reconnectUrl(pub.reconnectRequests[0]), 2);
      await waitFor('the edge viewer gets frames from B', () => atEdge.count(2) >= 20, 15_000);
      assert.equal((await exited).code, 0, A.output().slice(-2000));

      const summary = drainSummary(A.output());
      assert.equal(summary.movesPrepared, 0);
      assert.equal(summary.leadExpired, 1, 'the lead did not run out');
      assert.deepEqual(
        answers.map((a) => `${a.nodeId}:${a.ready}`),
        ['silent-e0:true'],
      );
      assert.equal(await E[0]!.metric('rtmp_pull_standbys_total', { outcome: 'used' }), 1);
      assert.equal(atEdge.closedAt, undefined, 'the edge viewer was disconnected');
      assert.ok(atEdge.maxGapAfter(drainAt) < 1000, `edge viewer gap ${atEdge.maxGapAfter(drainAt)} ms`);
    },
  );
});
