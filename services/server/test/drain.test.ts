import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RtmpClient } from '@rtmp-relay/rtmp';
import { clusterEnv, clusterStream, spawnNode, type ProcessNode } from './support/cluster-harness.js';
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

/** Slack for when a client sees what the origin sent (both ends are loaded test processes). */
const DELIVERY_SLACK_MS = 250;

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
      // The edge opened its pull to B when A announced the move (stream.moving), and the move took that connection:
      // one standby, used; the legacy stream, moved without an announcement, got none.
      assert.equal(await E.metric('rtmp_pull_standbys_total', { outcome: 'opened' }), 1);
      assert.equal(await E.metric('rtmp_pull_standbys_total', { outcome: 'used' }), 1);
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
      // Where the ingest address leads is the balancer's choice: no move is announced, so the edge prepares none.
      assert.equal(await E.metric('rtmp_pull_standbys_total', { outcome: 'opened' }), 0);
      const gap = v.maxGapAfter(drainAt);
      console.log(`[drain] through INGEST_PUBLIC_URL: viewer gap ${gap.toFixed(0)} ms`);
      assert.equal(v.closedAt, undefined, 'the edge viewer was disconnected');
      assert.equal(v.regressions(), 0, 'timestamps went back');
      assert.equal(v.interleavedAfter(2), 0, 'frames of the old connection after the new one');
      assert.ok(gap < 1000, `gap ${gap} ms`);
    },
  );

  it(
    'paces ReconnectRequests in waves of DRAIN_RECONNECT_BATCH, DRAIN_RECONNECT_INTERVAL_MS apart unless the last wave moved; one that ignores it is handed off after the wait',
    { timeout: 90_000 },
    async () => {
      const INTERVAL_MS = 2500;
      const WAIT_MS = 5000; // the reconnect wait is min(SHUTDOWN_TIMEOUT_MS, 5 s)
      // A cluster of its own (the earlier tests' origins are still up, and would be targets too).
      const env = clusterEnv(redis.url, nats.url, {
        LEASE_MS: '3000',
        SHUTDOWN_TIMEOUT_MS: String(WAIT_MS),
        CLUSTER_PREFIX: 'waves',
      });
      const A = await spawnNode('origin', 'waves-a', {
        ...env,
        DRAIN_RECONNECT_BATCH: '2',
        DRAIN_RECONNECT_INTERVAL_MS: String(INTERVAL_MS),
      });
      const B = await spawnNode('origin', 'waves-b', env);
      const E = await spawnNode('edge', 'waves-e', env);
      nodes.push(A, B, E);
      await waitFor(
        'B in the node registry',
        async () => {
          const list = await A.json<{ nodes: Array<{ id: string }> }>('/api/cluster/nodes');
          return list.nodes.some((n) => n.id === 'waves-b');
        },
        10_000,
      );

      // Five E-RTMP publishers; the origin asks them in publish order: waves [ignorer, m1] [m2, m3] [m4].
      // The ignorer never moves, so wave 1 never moves entirely: wave 2 waits for the interval. Wave 2 moves at
      // once, so wave 3 goes before the interval is over.
      const names = ['w-ignore', 'w-m1', 'w-m2', 'w-m3', 'w-m4'];
      const ps = names.map(() => new MovablePublisher({ ertmp: true }));
      pubs.push(...ps);
      for (const [i, p] of ps.entries()) await p.moveTo(A.rtmpUrl(`live/${names[i]}`), 1);
      const vs: TagViewer[] = [];
      for (const name of names) vs.push(await TagViewer.open(E.rtmpUrl(`live/${name}`)));
      viewers.push(...vs);
      await waitFor('edge viewers get frames', () => vs.every((v) => v.count(1) >= 10), 15_000);

      const [ignorer, ...movers] = ps as [MovablePublisher, ...MovablePublisher[]];
      let ignorerClosedAt: number | undefined;
      ignorer.client!.once('close', () => (ignorerClosedAt = performance.now()));
      // Each mover publishes where it is told as soon as it is told (on the event, not by polling).
      const movedAt: Array<number | undefined> = movers.map(() => undefined);
      const moveErrors: unknown[] = [];
      for (const [i, p] of movers.entries()) {
        p.client!.once('reconnectRequest', ({ tcUrl }) => {
          p.moveTo(p.client!.reconnectUrl(tcUrl), 2).then(
            () => (movedAt[i] = performance.now()),
            (err: unknown) => moveErrors.push(err),
          );
        });
      }

      const drainAt = performance.now();
      A.proc.child.kill('SIGTERM'); // not A.proc.stop(): that one SIGKILLs after 3 s, the paced drain takes longer
      await waitFor(
        'every mover published at B',
        () => {
          if (moveErrors.length > 0) throw moveErrors[0];
          return movedAt.every((t) => t !== undefined);
        },
        20_000,
      );
      await waitFor('the ignorer handed off (disconnected by A)', () => ignorerClosedAt !== undefined, 20_000);
      // Its encoder reconnects through "the load balancer", which now sends it to B.
      await ignorer.moveTo(B.rtmpUrl('live/w-ignore'), 2);
      await waitFor('edge viewers get frames from B', () => vs.every((v) => v.count(2) >= 20), 20_000);
      await waitFor('A exits', () => A.proc.child.exitCode !== null || A.proc.child.signalCode !== null, 20_000);
      const result = await A.proc.exited;
      assert.equal(result.code, 0, A.output().slice(-2000));

      // One request each, naming B.
      for (const [i, p] of ps.entries()) {
        assert.deepEqual(p.reconnectRequests, [`rtmp://127.0.0.1:${B.rtmpPort}/live`], names[i]);
      }
      const at = ps.map((p) => p.reconnectRequestAt[0]! - drainAt);
      const [w1, w2, w3] = [at.slice(0, 2), at.slice(2, 4), at.slice(4)];
      const moved = movedAt.map((t) => t! - drainAt); // movers: m1..m4
      console.log(
        `[drain] waves at ${[w1, w2, w3].map((w) => w.map((t) => t.toFixed(0)).join('+')).join(', ')} ms; ` +
          `moves done at ${moved.map((t) => t.toFixed(0)).join(', ')} ms; ignorer handed off at ` +
          `${(ignorerClosedAt! - drainAt).toFixed(0)} ms`,
      );
      // Three waves: wave 2 only after the interval (the ignorer kept wave 1 from moving entirely) ...
      assert.ok(
        Math.min(...w2) - Math.max(...w1) >= INTERVAL_MS - DELIVERY_SLACK_MS,
        `wave 2 came ${Math.min(...w2) - Math.max(...w1)} ms after wave 1 (interval ${INTERVAL_MS} ms)`,
      );
      // ... wave 3 early: once both streams of wave 2 had moved, well before the interval was over.
      const w3Gap = w3[0]! - Math.max(...w2);
      assert.ok(w3Gap > 0, 'wave 3 before wave 2');
      assert.ok(w3Gap < INTERVAL_MS - 1000, `wave 3 came ${w3Gap} ms after wave 2: not early`);
      assert.ok(
        w3[0]! >= Math.min(moved[1]!, moved[2]!) - DELIVERY_SLACK_MS,
        `wave 3 (${w3[0]} ms) before wave 2 moved (${moved[1]}, ${moved[2]} ms)`,
      );
      // The wait for moves counts from the last wave: the ignorer (asked in wave 1) is handed off WAIT_MS after
      // wave 3, not after wave 1; and not much later (the drain is bounded).
      const handOffAfterLastWave = ignorerClosedAt! - drainAt - w3[0]!;
      assert.ok(
        handOffAfterLastWave >= WAIT_MS - DELIVERY_SLACK_MS && handOffAfterLastWave < WAIT_MS + 3000,
        `the ignorer was handed off ${handOffAfterLastWave} ms after the last wave (wait ${WAIT_MS} ms)`,
      );

      // Every stream ended up on B, and no edge viewer noticed more than a frame's gap (the ignorer: a hand-off).
      for (const name of names) assert.equal((await clusterStream(B, `live/${name}`))?.nodeId, 'waves-b', name);
      for (const [i, v] of vs.entries()) {
        assert.equal(v.closedAt, undefined, `an edge viewer of ${names[i]} was disconnected`);
        assert.equal(v.regressions(), 0, `${names[i]}: timestamps went back`);
        assert.equal(v.interleavedAfter(2), 0, `${names[i]}: frames of the old connection after the new one`);
      }
      for (const [i, v] of vs.entries()) {
        if (i === 0) continue;
        assert.deepEqual(v.ends, [], `${names[i]} was ended for viewers`);
        const gap = v.maxGapAfter(drainAt);
        assert.ok(gap < 1000, `${names[i]}: gap ${gap} ms`);
      }
    },
  );
});
