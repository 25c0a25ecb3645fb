import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clusterEnv,
  clusterStream,
  localStream,
  median,
  openViewers,
  RecordingViewer,
  startInProcessNode,
  timestampRegressions,
  waitLocalLive,
  within,
  type ClusterNode,
} from './support/cluster-harness.js';
import { ffmpegCountFrames, ffmpegPublish, ffprobeCount, type PublishOptions } from './support/media-tools.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

/**
 * End to end on a real cluster: two origins and two edges (in-process nodes) on a private redis-server and
 * nats-server, FFmpeg publishers, FFmpeg / ffprobe / RtmpClient viewers. Each case uses its own stream key.
 */

const LEASE_MS = 2000;
const LINGER_MS = 1000;
const PLAY_WAIT_MS = 3000;
const GRACE_MS = 1000;
const verbose = !!process.env.CLUSTER_VERBOSE;
const log = (...args: unknown[]): void => {
  if (verbose) console.log('[cluster]', ...args);
};

describe('cluster: origins A and B, edges 1 and 2, real Redis and NATS', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let A: ClusterNode;
  let B: ClusterNode;
  let E1: ClusterNode;
  let E2: ClusterNode;
  const nodes: ClusterNode[] = [];
  const viewers: RecordingViewer[] = [];
  const publishers: Running[] = [];

  const startPublisher = (origin: ClusterNode, key: string, opts: PublishOptions = {}): Running => {
    const p = ffmpegPublish(origin.rtmpUrl(key), { seconds: 60, ...opts });
    publishers.push(p);
    return p;
  };
  const publish = async (origin: ClusterNode, key: string, opts: PublishOptions = {}): Promise<Running> => {
    const p = startPublisher(origin, key, opts);
    await waitLocalLive(origin, key);
    return p;
  };
  const track = (vs: RecordingViewer[]): RecordingViewer[] => {
    viewers.push(...vs);
    return vs;
  };
  /**
   * Ends what earlier cases left (viewers, publishers), then waits until no pulls are left on the edges and no
   * viewers on the origins (lingered out).
   */
  const quiesce = async (): Promise<void> => {
    for (const v of viewers.splice(0)) v.close();
    await Promise.all(publishers.splice(0).map((p) => p.stop()));
    await waitFor(
      'edges without pulls and origins without viewers',
      async () => {
        const [p1, p2, va, vb] = await Promise.all([
          E1.metric('rtmp_pulls_active'),
          E2.metric('rtmp_pulls_active'),
          A.metric('rtmp_viewers'),
          B.metric('rtmp_viewers'),
        ]);
        return p1 + p2 + va + vb === 0;
      },
      10_000,
    );
  };

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = clusterEnv(redis.url, nats.url, {
      LEASE_MS: String(LEASE_MS),
      HEARTBEAT_MS: '500',
      PULL_LINGER_MS: String(LINGER_MS),
      PLAY_WAIT_MS: String(PLAY_WAIT_MS),
      UNPUBLISH_GRACE_MS: String(GRACE_MS),
      PULL_RETRY_MAX_MS: '500',
      PULL_FAILOVER_WAIT_MS: '10000',
    });
    [A, B, E1, E2] = await Promise.all([
      startInProcessNode('origin', 'origin-a', env),
      startInProcessNode('origin', 'origin-b', env),
      startInProcessNode('edge', 'edge-1', env),
      startInProcessNode('edge', 'edge-2', env),
    ]);
    nodes.push(A, B, E1, E2);
    await waitFor(
      'every node ready',
      async () => (await Promise.all(nodes.map((n) => n.http('/readyz')))).every((r) => r.status === 200),
      10_000,
    );
    await waitFor(
      'four nodes registered',
      async () => (await A.json<{ nodes: unknown[] }>('/api/cluster/nodes')).nodes.length === 4,
      10_000,
    );
  });

  after(async () => {
    for (const v of viewers) v.close();
    await stopAll();
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    await stopAllServices();
  });

  it(
    '(a) FFmpeg publishes to origin A; FFmpeg and ffprobe decode it through edge 1 and edge 2',
    { timeout: 60_000 },
    async () => {
      const key = 'live/a';
      const pub = await publish(A, key);
      const [f1, p1, f2, p2] = await Promise.all([
        ffmpegCountFrames(E1.rtmpUrl(key), 2),
        ffprobeCount(E1.rtmpUrl(key), 2),
        ffmpegCountFrames(E2.rtmpUrl(key), 2),
        ffprobeCount(E2.rtmpUrl(key), 2),
      ]);
      for (const [what, r] of [
        ['ffmpeg via edge 1', f1],
        ['ffmpeg via edge 2', f2],
      ] as const) {
        assert.equal(r.code, 0, `${what}: ${r.stderr}`);
        assert.ok(r.frames >= 30, `${what} decoded ${r.frames} frames: ${r.stderr}`);
      }
      for (const [what, r] of [
        ['ffprobe via edge 1', p1],
        ['ffprobe via edge 2', p2],
      ] as const) {
        assert.equal(r.codec, 'h264', `${what}: ${r.stderr}`);
        assert.ok(r.frames >= 30, `${what} read ${r.frames} frames: ${r.stderr}`);
      }
      // Two players per edge, one pull per edge; the origin owns the stream in the registry.
      assert.equal(await E1.metric('rtmp_pull_starts_total'), 1);
      assert.equal(await E2.metric('rtmp_pull_starts_total'), 1);
      const owner = await clusterStream(E1, key);
      assert.equal(owner?.nodeId, 'origin-a');
      assert.equal(owner?.addr, `127.0.0.1:${A.rtmpPort}`);
      await pub.stop();
    },
  );

  let bViewers: RecordingViewer[] = [];

  it(
    '(b) 20 viewers on one edge make exactly one pull to the origin, and all of them get frames',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/b';
      await publish(A, key);
      const startsBefore = await E1.metric('rtmp_pull_starts_total');
      bViewers = track(await openViewers('b', E1.rtmpUrl(key), 20));
      await waitFor(
        'every viewer to receive 10 frames',
        () => bViewers.every((v) => v.framesSince().length >= 10),
        15_000,
      );
      for (const v of bViewers) {
        const first = v.framesSince()[0]!;
        assert.equal(first.key, true, `${v.name}: the first coded frame is a keyframe`);
        assert.deepEqual(
          timestampRegressions(v.video),
          [],
          `${v.name}: video timestamps only grow (no duplicated frames)`,
        );
      }
      assert.equal((await E1.metric('rtmp_pull_starts_total')) - startsBefore, 1, 'one pull started');
      assert.equal(await E1.metric('rtmp_pulls_active'), 1, 'one pull active');
      assert.equal(await E1.metric('rtmp_viewers', { protocol: 'rtmp' }), 20);
      assert.equal(await A.metric('rtmp_viewers', { protocol: 'rtmp' }), 1, 'the origin serves one viewer: the edge');
      assert.equal((await localStream(A, key))?.viewers, 1);
      assert.equal(await E2.metric('rtmp_pulls_active'), 0);
      // The cluster API (heartbeats) agrees: 20 viewers on edge-1, one (the pull) on origin-a.
      await waitFor(
        'the cluster API to show 20 viewers on edge-1 and 1 on origin-a',
        async () => {
          const s = await clusterStream(E2, key);
          return s?.nodeId === 'origin-a' && s.viewers['edge-1'] === 20 && s.viewers['origin-a'] === 1;
        },
        5000,
      );
    },
  );

  it('(c) the last viewer leaving closes the pull after the linger, not before', { timeout: 30_000 }, async () => {
    const key = 'live/b';
    assert.equal(bViewers.length, 20, 'needs the viewers of (b)');
    assert.equal(await E1.metric('rtmp_pulls_active'), 1);
    // All but one leave: the pull stays.
    for (const v of bViewers.slice(1)) v.close();
    await waitFor(
      '19 viewers gone',
      async () => (await E1.metric('rtmp_viewers', { protocol: 'rtmp' })) === 1,
      5000,
      20,
    );
    const last = bViewers[0]!;
    const framesBefore = last.framesSince().length;
    await waitFor('the remaining viewer still gets frames', () => last.framesSince().length >= framesBefore + 15, 5000);
    assert.equal(await E1.metric('rtmp_pulls_active'), 1);
    // The last one leaves.
    last.close();
    const leftAt = performance.now();
    const goneAt = await waitFor(
      'the pull to close',
      async () => ((await E1.metric('rtmp_pulls_active')) === 0 ? performance.now() : undefined),
      LINGER_MS + 5000,
      20,
    );
    const elapsed = goneAt - leftAt;
    log(`pull closed ${elapsed.toFixed(0)} ms after the last viewer left (linger ${LINGER_MS} ms)`);
    assert.ok(
      elapsed >= LINGER_MS - 100,
      `pull closed after ${elapsed.toFixed(0)} ms, before the ${LINGER_MS} ms linger`,
    );
    assert.ok(
      elapsed <= LINGER_MS + 1000,
      `pull closed after ${elapsed.toFixed(0)} ms, long after the ${LINGER_MS} ms linger`,
    );
    await waitFor('origin A to lose the edge viewer', async () => (await localStream(A, key))?.viewers === 0, 3000);
  });

  it(
    '(d) unknown stream: StreamNotFound after PLAY_WAIT_MS; a play just before the publish is woken by the NATS event',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const t0 = performance.now();
      await assert.rejects(
        RecordingViewer.open('d-unknown', E1.rtmpUrl('live/nope')),
        (err: Error & { code?: string; status?: string }) => {
          assert.equal(err.code, 'not_found', err.message);
          assert.equal(err.status, 'NetStream.Play.StreamNotFound', err.message);
          return true;
        },
      );
      const waited = performance.now() - t0;
      log(`StreamNotFound after ${waited.toFixed(0)} ms (PLAY_WAIT_MS ${PLAY_WAIT_MS})`);
      assert.ok(waited >= PLAY_WAIT_MS - 100, `StreamNotFound after ${waited.toFixed(0)} ms, before PLAY_WAIT_MS`);
      assert.ok(waited < PLAY_WAIT_MS + 1500, `StreamNotFound after ${waited.toFixed(0)} ms`);
      await waitFor(
        'the pull for the unknown stream to go',
        async () => (await E1.metric('rtmp_pulls_active')) === 0,
        LINGER_MS + 3000,
      );

      // A play that arrives before the publish: it waits on the edge (an upstream pull without an owner yet).
      const key = 'live/d';
      const startsBefore = await E2.metric('rtmp_pull_starts_total');
      const askedAt = performance.now();
      const playing = RecordingViewer.open('d-early', E2.rtmpUrl(key));
      playing.catch(() => undefined);
      await waitFor('edge 2 to wait for an owner', async () => (await E2.metric('rtmp_pulls_active')) === 1, 2000, 10);
      startPublisher(A, key);
      const v = (await playing)!;
      track([v]);
      const playWaited = v.playStartedAt! - askedAt;
      const origin = await localStream(A, key);
      assert.ok(origin?.live && origin.startedAt, 'live on origin A');
      const fromPublish = v.playStartedWall! - Date.parse(origin.startedAt);
      console.log(
        `(d) publish start on origin -> Play.Start on edge: ${fromPublish} ms (play waited ${playWaited.toFixed(0)} ms in all)`,
      );
      assert.ok(playWaited < PLAY_WAIT_MS, `the play waited ${playWaited.toFixed(0)} ms`);
      // Without the event, the pull would only re-check Redis after max(1000, LEASE_MS) ms.
      assert.ok(fromPublish < 500, `Play.Start ${fromPublish} ms after the publish: not woken by the NATS event`);
      await waitFor('the early viewer to get 30 frames', () => v.framesSince().length >= 30, 10_000);
      assert.equal(v.framesSince()[0]!.key, true);
      // Still one pull: one upstream connection on the origin, one pull start on the edge, every frame once.
      assert.equal((await localStream(A, key))?.viewers, 1, 'origin A serves edge 2 over exactly one connection');
      assert.equal((await E2.metric('rtmp_pull_starts_total')) - startsBefore, 1, 'edge 2 started one pull');
      const regressions = timestampRegressions(v.video);
      assert.deepEqual(
        regressions.slice(0, 5),
        [],
        `${regressions.length} frames repeat or go back in time: ${v
          .framesSince()
          .slice(0, 8)
          .map((r) => r.ts)
          .join(',')}...`,
      );
      // And when the viewer leaves, nothing stays connected to the origin after the linger.
      v.close();
      await waitFor(
        'edge 2 to close its pull',
        async () => (await E2.metric('rtmp_pulls_active')) === 0,
        LINGER_MS + 3000,
      );
      await waitFor(
        'origin A to have no viewer of the stream',
        async () => (await localStream(A, key))?.viewers === 0,
        3000,
      );
    },
  );

  it(
    '(e) takeover: a publisher of the same key on origin B replaces the one on A; viewers on both edges follow',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/e';
      const p1 = await publish(A, key);
      let p1ExitedAt: number | undefined;
      void p1.exited.then(() => (p1ExitedAt = performance.now()));
      const vs = track([
        ...(await openViewers('e1', E1.rtmpUrl(key), 3)),
        ...(await openViewers('e2', E2.rtmpUrl(key), 3)),
      ]);
      await waitFor(
        'viewers to get frames from the first publisher',
        () => vs.every((v) => v.framesSince().length >= 10),
        15_000,
      );
      const before = await clusterStream(E1, key);
      assert.equal(before?.nodeId, 'origin-a');
      const failovers = await Promise.all([E1.metric('rtmp_failovers_total'), E2.metric('rtmp_failovers_total')]);
      const takeovers = await B.metric('rtmp_takeovers_total', { scope: 'cluster' });

      const takeoverAt = performance.now();
      // A different picture size: a new sequence header tells the second publisher's frames apart.
      const p2 = startPublisher(B, key, { size: '240x180' });
      await waitLocalLive(B, key);
      const bLiveAt = performance.now();

      const p1Exit = await within(p1.exited, 5000);
      assert.ok(p1Exit, 'the first publisher was not disconnected within 5 s');
      assert.notEqual(p1Exit.code, 0, `the first publisher exits with an error: ${p1Exit.stderr}`);
      const dropDelay = p1ExitedAt! - bLiveAt;
      assert.ok(dropDelay < 2000, `the first publisher was dropped ${dropDelay.toFixed(0)} ms after the takeover`);

      const after = await waitFor(
        'the registry to name origin-b',
        async () => {
          const s = await clusterStream(E2, key);
          return s?.nodeId === 'origin-b' ? s : undefined;
        },
        5000,
      );
      assert.ok(after.epoch > before.epoch, `epoch ${after.epoch} > ${before.epoch}`);
      assert.equal(after.addr, `127.0.0.1:${B.rtmpPort}`);
      const listed = await A.json<{ streams: Array<{ key: string; nodeId: string; epoch: number }> }>(
        '/api/cluster/streams',
      );
      assert.deepEqual(
        listed.streams.filter((s) => s.key === key).map((s) => [s.nodeId, s.epoch]),
        [['origin-b', after.epoch]],
      );

      // Every viewer: still connected, a fresh sequence header, then a keyframe and frames from the new publisher.
      const resumed = await waitFor(
        'every viewer to get 10 frames from the new publisher',
        () => {
          const times: number[] = [];
          for (const v of vs) {
            const seqAt = v.video.findIndex((r) => r.seq && r.at >= takeoverAt);
            if (seqAt < 0) return undefined;
            const fresh = v.video.slice(seqAt + 1).filter((r) => !r.seq);
            if (fresh.length < 10) return undefined;
            times.push(fresh[0]!.at);
          }
          return times;
        },
        10_000,
      );
      const gaps = resumed.map((t) => t - bLiveAt);
      console.log(
        `(e) takeover: first publisher dropped ${dropDelay.toFixed(0)} ms after B went live; viewers' first new frame after B live: median ${median(gaps).toFixed(0)} ms, max ${Math.max(...gaps).toFixed(0)} ms`,
      );
      for (const v of vs) {
        assert.equal(v.closed, false, `${v.name} was disconnected (${v.closeReason})`);
        assert.deepEqual(v.ends, [], `${v.name} was told the stream ended`);
        const seqAt = v.video.findIndex((r) => r.seq && r.at >= takeoverAt);
        const lastOld = v.video
          .slice(0, seqAt)
          .filter((r) => !r.seq)
          .at(-1)!;
        const firstNew = v.video.slice(seqAt + 1).find((r) => !r.seq)!;
        assert.equal(firstNew.key, true, `${v.name}: first frame of the new publisher is a keyframe`);
        assert.ok(firstNew.ts > lastOld.ts, `${v.name}: timestamps continue (${lastOld.ts} -> ${firstNew.ts})`);
        assert.deepEqual(timestampRegressions(v.video), [], `${v.name}: video timestamps only grow`);
      }

      await waitFor(
        'each edge to count one failover',
        async () => {
          const now = await Promise.all([E1.metric('rtmp_failovers_total'), E2.metric('rtmp_failovers_total')]);
          return now[0] === failovers[0]! + 1 && now[1] === failovers[1]! + 1;
        },
        5000,
      );
      assert.equal(await B.metric('rtmp_takeovers_total', { scope: 'cluster' }), takeovers + 1);
      assert.equal((await localStream(B, key))?.viewers, 2, 'origin B serves one pull per edge');
      // The replaced publisher is gone from origin A: its hub no longer claims the stream is live there.
      await waitFor(
        'origin A to drop the replaced stream',
        async () => (await localStream(A, key))?.live !== true,
        3000,
      );
      await p2.stop();
    },
  );

  it(
    '(f) the publisher stops: edge viewers get the normal end of stream after UNPUBLISH_GRACE_MS',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/f';
      const pub = await publish(A, key, { seconds: 4 });
      const vs = track([
        ...(await openViewers('f1', E1.rtmpUrl(key), 2)),
        ...(await openViewers('f2', E2.rtmpUrl(key), 2)),
      ]);
      await waitFor('viewers to get frames', () => vs.every((v) => v.framesSince().length >= 5), 10_000);
      const exit = await pub.exited;
      const exitedAt = performance.now();
      assert.equal(exit.code, 0, exit.stderr);
      await waitFor(
        'every viewer to get the end of stream',
        () => vs.every((v) => v.ends.length > 0),
        GRACE_MS * 3 + 5000,
      );
      const delays = vs.map((v) => v.ends[0]!.at - exitedAt);
      console.log(
        `(f) end of stream at the edge viewers after the publisher stopped: median ${median(delays).toFixed(0)} ms, max ${Math.max(...delays).toFixed(0)} ms (UNPUBLISH_GRACE_MS ${GRACE_MS})`,
      );
      for (const [i, v] of vs.entries()) {
        assert.equal(v.closed, false, `${v.name}: the connection stays open after the end of stream`);
        assert.ok(delays[i]! >= GRACE_MS - 150, `${v.name}: end after ${delays[i]!.toFixed(0)} ms, before the grace`);
        assert.ok(
          delays[i]! <= GRACE_MS + 700,
          `${v.name}: end after ${delays[i]!.toFixed(0)} ms, expected about UNPUBLISH_GRACE_MS (${GRACE_MS} ms)`,
        );
      }
      await waitFor('the lease to be released', async () => (await clusterStream(E1, key)) === undefined, 3000);
    },
  );

  it(
    '(g) an admin kick of the publisher through an edge reaches the origin and disconnects the publisher',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/g';
      const pub = await publish(A, key);
      const vs = track(await openViewers('g', E1.rtmpUrl(key), 1));
      await waitFor('the viewer to get frames', () => vs[0]!.framesSince().length >= 5, 10_000);
      const res = await E2.http('/api/cluster/kick', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key, what: 'publisher', reason: 'test' }),
      });
      assert.equal(res.status, 202, await res.text());
      const kickedAt = performance.now();
      const exit = await within(pub.exited, 5000);
      assert.ok(exit, 'the publisher was not disconnected within 5 s');
      const took = performance.now() - kickedAt;
      assert.ok(took < 2000, `publisher disconnected ${took.toFixed(0)} ms after the kick`);
      assert.notEqual(exit.code, 0, 'the kicked ffmpeg exits with an error');
      await waitFor('the lease to be released', async () => (await clusterStream(E1, key)) === undefined, 3000);
      // The stream is over on the origin, and the edge's viewer is told so (normal end of stream).
      await waitFor('origin A to drop the kicked stream', async () => (await localStream(A, key))?.live !== true, 3000);
      await waitFor('the edge viewer to get the end of stream', () => vs[0]!.ends.length > 0, GRACE_MS * 2 + 3000);
    },
  );

  it(
    '(h) NATS outage: a new play on an edge still works (the owner is resolved in Redis); NATS comes back',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/h';
      const pub = await publish(A, key);
      await nats.kill();
      await waitFor(
        'every node to see NATS down',
        async () => (await Promise.all(nodes.map((n) => n.metric('rtmp_nats_up')))).every((v) => v === 0),
        10_000,
      );
      // NATS gates readiness only until the first connection: an outage must not take every pod out of service.
      assert.equal(
        (await E2.http('/readyz')).status,
        200,
        'still ready during a NATS outage (edges fall back to Redis)',
      );
      const askedAt = performance.now();
      const [v] = track(await openViewers('h', E2.rtmpUrl(key), 1));
      log(`play during the NATS outage started in ${(v!.playStartedAt! - askedAt).toFixed(0)} ms`);
      await waitFor('the viewer to get frames', () => v!.framesSince().length >= 10, 10_000);
      assert.equal(v!.framesSince()[0]!.key, true);
      await nats.restart();
      await waitFor(
        'every node to reconnect to NATS',
        async () => (await Promise.all(nodes.map((n) => n.metric('rtmp_nats_up')))).every((x) => x === 1),
        15_000,
      );
      await waitFor(
        'every node ready again',
        async () => (await Promise.all(nodes.map((n) => n.http('/readyz')))).every((r) => r.status === 200),
        5000,
      );
      assert.equal(v!.closed, false);
      v!.close();
      await pub.stop();
    },
  );

  it(
    '(i) Redis restart: the live stream keeps flowing, and the origin re-registers its lease',
    { timeout: 60_000 },
    async () => {
      await quiesce();
      const key = 'live/i';
      await publish(A, key);
      const [v] = track(await openViewers('i', E1.rtmpUrl(key), 1));
      await waitFor('the viewer to get frames', () => v!.framesSince().length >= 10, 10_000);
      const before = await clusterStream(E1, key);
      assert.equal(before?.nodeId, 'origin-a');
      const refreshFailures = await A.metric('rtmp_lease_refresh_failures_total');
      const restores = await A.metric('rtmp_lease_restores_total');

      await redis.kill();
      const downAt = performance.now();
      await waitFor('origin A to see Redis down', async () => (await A.metric('rtmp_redis_up')) === 0, 5000);
      // Frames keep coming while Redis is down, for longer than the lease.
      await waitFor(
        'frames to keep flowing past the lease while Redis is down',
        () => v!.framesSince(downAt).length >= Math.ceil(((LEASE_MS + 500) / 1000) * 30),
        LEASE_MS + 8000,
      );
      assert.ok(
        (await A.metric('rtmp_lease_refresh_failures_total')) > refreshFailures,
        'lease refreshes failed while Redis was down',
      );

      await redis.restart();
      const upAt = performance.now();
      await waitFor(
        'the nodes to reconnect to Redis',
        async () => (await Promise.all(nodes.map((n) => n.metric('rtmp_redis_up')))).every((x) => x === 1),
        10_000,
      );
      const back = await waitFor(
        'the lease to be back in Redis',
        async () => {
          const s = await clusterStream(E1, key).catch(() => undefined);
          return s?.nodeId === 'origin-a' ? s : undefined;
        },
        10_000,
        100,
      );
      log(`lease back ${(performance.now() - upAt).toFixed(0)} ms after the Redis restart`);
      assert.equal(back.epoch, before.epoch, 'same owner, same epoch');
      assert.ok((await A.metric('rtmp_lease_restores_total')) > restores);
      const listed = await E2.json<{ streams: Array<{ key: string; nodeId: string }> }>('/api/cluster/streams');
      assert.ok(
        listed.streams.some((s) => s.key === key && s.nodeId === 'origin-a'),
        JSON.stringify(listed),
      );
      await waitFor(
        'the nodes to re-register',
        async () => (await A.json<{ nodes: unknown[] }>('/api/cluster/nodes')).nodes.length === 4,
        5000,
      );
      const afterUp = performance.now();
      await waitFor('frames to keep flowing after the restart', () => v!.framesSince(afterUp).length >= 15, 5000);
      assert.equal(v!.closed, false);
      assert.deepEqual(v!.ends, []);
    },
  );
});
