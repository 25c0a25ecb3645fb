import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clusterEnv,
  clusterStream,
  median,
  openViewers,
  spawnNode,
  waitLocalLive,
  type ProcessNode,
  timestampRegressions,
  type RecordingViewer,
} from './support/cluster-harness.js';
import { ffmpegWatch, type FfmpegWatcher } from './support/cluster-media.js';
import { ffmpegPublish } from './support/media-tools.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

/**
 * Failover with real processes: origins A, B and C and edges 1 and 2 run as `rtmp-relay` processes. FFmpeg publishes
 * to A; RTMP viewers (5 per edge) and one FFmpeg player per edge watch through both edges.
 *
 * Round 1: SIGKILL origin A and its publisher; a new publisher reconnects at once to origin B (as a load balancer
 * would), while A's lease is still live in Redis: the takeover path.
 * Round 2: SIGKILL origin B and its publisher; the publisher reconnects to origin C only after B's lease expired and the
 * edges stopped retrying B (they wait for an owner): the lease-expiry path, a fresh claim announced by stream.published.
 * Its kill-to-frames time includes that deliberate reconnect delay; the report also gives publish-to-frames.
 * Every viewer must keep its connection and get video again, a keyframe first, with timestamps that continue. The
 * time from SIGKILL to frames resuming is printed for each round.
 */

const KEY = 'live/failover';
const LEASE_MS = 2000;
const VIEWERS_PER_EDGE = 5;

interface Round {
  name: string;
  killAt: number;
  /** Per viewer: the last coded frame received before the kill. */
  lastBefore: Map<RecordingViewer, { ts: number; at: number } | undefined>;
  /** Per FFmpeg player: decoded frames at the kill. */
  watcherFrames: number[];
}

describe('failover: SIGKILL the owning origin while viewers watch through two edges', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let A: ProcessNode;
  let B: ProcessNode;
  let C: ProcessNode;
  let E1: ProcessNode;
  let E2: ProcessNode;
  const nodes: ProcessNode[] = [];
  const publishers: Running[] = [];
  let viewers: RecordingViewer[] = [];
  let watchers: FfmpegWatcher[] = [];

  const publish = (origin: ProcessNode): Running => {
    const p = ffmpegPublish(origin.rtmpUrl(KEY), { seconds: 120 });
    publishers.push(p);
    return p;
  };

  /** Waits until no edge counted a failed pull attempt for `quietMs` (they wait for an owner instead of retrying). */
  const waitForQuietPulls = async (edges: ProcessNode[], quietMs: number): Promise<void> => {
    let last = -1;
    let changedAt = performance.now();
    await waitFor(
      `no failed pull attempt for ${quietMs} ms`,
      async () => {
        const n = (await Promise.all(edges.map((e) => e.metric('rtmp_pull_failures_total')))).reduce(
          (a, b) => a + b,
          0,
        );
        if (n !== last) {
          last = n;
          changedAt = performance.now();
        }
        return performance.now() - changedAt >= quietMs;
      },
      10_000,
      50,
    );
  };

  /** Marks the kill: what every viewer had received until now. */
  const beginRound = (name: string): Round => ({
    name,
    killAt: performance.now(),
    lastBefore: new Map(viewers.map((v) => [v, v.framesSince().at(-1)])),
    watcherFrames: watchers.map((w) => w.frames()),
  });

  /**
   * Waits until every viewer got a fresh sequence header and 15 frames after the kill; returns each viewer's resume
   * time (first new coded frame) relative to the kill.
   */
  const freshOf = (round: Round, v: RecordingViewer) => {
    const seqAt = v.video.findIndex((r) => r.seq && r.at >= round.killAt);
    return seqAt < 0 ? [] : v.video.slice(seqAt + 1).filter((r) => !r.seq);
  };
  const awaitResume = async (round: Round): Promise<number[]> => {
    await waitFor(
      `${round.name}: every viewer to get 15 frames from the new owner`,
      () => viewers.every((v) => freshOf(round, v).length >= 15),
      20_000,
    );
    return viewers.map((v) => freshOf(round, v)[0]!.at - round.killAt);
  };

  /** Every viewer: still connected, no end of stream, a keyframe first after the gap, timestamps that continue. */
  const checkViewers = (round: Round): void => {
    for (const v of viewers) {
      assert.equal(v.closed, false, `${round.name}: ${v.name} was disconnected (${v.closeReason})`);
      assert.deepEqual(v.ends, [], `${round.name}: ${v.name} was told the stream ended`);
      const fresh = freshOf(round, v);
      const last = round.lastBefore.get(v);
      assert.ok(last, `${v.name} had frames before the kill`);
      assert.equal(fresh[0]!.key, true, `${round.name}: ${v.name}: the first frame after the gap is a keyframe`);
      assert.ok(
        fresh[0]!.ts > last.ts,
        `${round.name}: ${v.name}: timestamps continue (${last.ts} before, ${fresh[0]!.ts} after)`,
      );
      const regressions = timestampRegressions(fresh);
      assert.deepEqual(
        regressions.slice(0, 3),
        [],
        `${round.name}: ${v.name}: ${regressions.length} of ${fresh.length} new frames repeat or go back in time (${fresh
          .slice(0, 8)
          .map((r) => r.ts)
          .join(',')}...)`,
      );
    }
  };

  /** FFmpeg players: still running, decoding again after the kill; returns kill -> first progress past the gap. */
  const awaitWatchers = async (round: Round): Promise<number[]> => {
    await waitFor(
      `${round.name}: the FFmpeg players to decode 30 more frames`,
      () => watchers.every((w, i) => w.frames() >= round.watcherFrames[i]! + 30 || !w.running()),
      20_000,
    );
    return watchers.map((w, i) => {
      assert.ok(
        w.running(),
        `${round.name}: FFmpeg player ${i + 1} exited: ${w.proc.child.exitCode} ${w.proc.child.signalCode}`,
      );
      // First progress report after the stall (the first gap of >= 250 ms between reports after the kill).
      const after = w.samples.filter((s) => s.at >= round.killAt);
      let resumedAt = after[0]?.at ?? NaN;
      for (let j = 1; j < after.length; j++) {
        if (after[j]!.at - after[j - 1]!.at >= 250) {
          resumedAt = after[j]!.at;
          break;
        }
      }
      return resumedAt - round.killAt;
    });
  };

  const report = (round: Round, what: string, gaps: number[], watcherGaps: number[], extra: string): void => {
    const fmt = (n: number) => `${n.toFixed(0)} ms`;
    console.log(
      `[failover] ${round.name} (${what}): SIGKILL -> frames resume at ${gaps.length} RTMP viewers: median ${fmt(median(gaps))}, max ${fmt(Math.max(...gaps))}, min ${fmt(Math.min(...gaps))}; ` +
        `FFmpeg players (-progress, 100 ms resolution): ${watcherGaps.map(fmt).join(', ')}; ${extra}`,
    );
  };

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = clusterEnv(redis.url, nats.url, {
      LEASE_MS: String(LEASE_MS),
      HEARTBEAT_MS: '500',
      PULL_RETRY_MAX_MS: '500',
      PULL_FAILOVER_WAIT_MS: '15000',
      UNPUBLISH_GRACE_MS: '1000',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    });
    [A, B, C, E1, E2] = await Promise.all([
      spawnNode('origin', 'origin-a', env),
      spawnNode('origin', 'origin-b', env),
      spawnNode('origin', 'origin-c', env),
      spawnNode('edge', 'edge-1', env),
      spawnNode('edge', 'edge-2', env),
    ]);
    nodes.push(A, B, C, E1, E2);
    await waitFor(
      'every node ready',
      async () => (await Promise.all(nodes.map((n) => n.http('/readyz')))).every((r) => r.status === 200),
      15_000,
    );
  });

  after(async () => {
    for (const v of viewers) v.close();
    await Promise.all(publishers.map((p) => p.stop()));
    await Promise.all(watchers.map((w) => w.proc.stop()));
    await Promise.all(nodes.map((n) => n.stop()));
    await stopAll();
    await stopAllServices();
    if (process.env.FAILOVER_LOGS) for (const n of nodes) console.log(`--- ${n.id} ---\n${n.output()}`);
  });

  it(
    'viewers on both edges keep their connections and get frames again; the gap is measured',
    { timeout: 120_000 },
    async () => {
      const p1 = publish(A);
      await waitLocalLive(A, KEY);
      viewers = [
        ...(await openViewers('edge-1', E1.rtmpUrl(KEY), VIEWERS_PER_EDGE, { readTimeoutMs: 20_000 })),
        ...(await openViewers('edge-2', E2.rtmpUrl(KEY), VIEWERS_PER_EDGE, { readTimeoutMs: 20_000 })),
      ];
      watchers = [ffmpegWatch(E1.rtmpUrl(KEY), 100), ffmpegWatch(E2.rtmpUrl(KEY), 100)];
      await waitFor('every viewer to get 20 frames', () => viewers.every((v) => v.framesSince().length >= 20), 15_000);
      await waitFor('the FFmpeg players to decode 20 frames', () => watchers.every((w) => w.frames() >= 20), 15_000);
      const ownerA = await clusterStream(E1, KEY);
      assert.equal(ownerA?.nodeId, 'origin-a');
      assert.equal(await A.metric('rtmp_viewers', { protocol: 'rtmp' }), 2, 'one pull per edge');

      // Round 1: origin A and its publisher die; the publisher reconnects at once to origin B.
      const r1 = beginRound('round 1');
      p1.child.kill('SIGKILL');
      await A.kill();
      publish(B);
      await waitLocalLive(B, KEY);
      const bLive = performance.now() - r1.killAt;
      const ownerB = await clusterStream(E1, KEY);
      const gaps1 = await awaitResume(r1);
      const watcherGaps1 = await awaitWatchers(r1);
      report(
        r1,
        'publisher reconnects at once, takeover of the live lease',
        gaps1,
        watcherGaps1,
        `publisher live on B ${bLive.toFixed(0)} ms after the kill, viewers resume ${(median(gaps1) - bLive).toFixed(0)} ms (median) after that`,
      );
      assert.equal(ownerB?.nodeId, 'origin-b');
      assert.ok(ownerB.epoch > ownerA.epoch, `epoch ${ownerB.epoch} > ${ownerA.epoch}`);
      assert.equal(
        await B.metric('rtmp_takeovers_total', { scope: 'cluster' }),
        1,
        "B took the stream over from A's still-live lease",
      );
      checkViewers(r1);
      assert.equal(await B.metric('rtmp_viewers', { protocol: 'rtmp' }), 2, 'one pull per edge, now from B');
      for (const e of [E1, E2]) assert.equal(await e.metric('rtmp_failovers_total'), 1, `${e.id} counts one failover`);

      // Round 2: origin B and its publisher die; the publisher comes back (to C) only after B's lease expired.
      const r2 = beginRound('round 2');
      publishers.at(-1)!.child.kill('SIGKILL');
      await B.kill();
      await waitFor(
        "B's lease to expire",
        async () => (await clusterStream(E1, KEY)) === undefined,
        LEASE_MS + 3000,
        25,
      );
      const expired = performance.now() - r2.killAt;
      assert.ok(
        expired <= LEASE_MS + 1000,
        `the dead owner's lease was gone ${expired.toFixed(0)} ms after the kill (lease ${LEASE_MS} ms)`,
      );
      // The publisher takes a little longer than that to come back (as encoders do): the edges have stopped retrying
      // the dead address and wait for a new owner to be announced (no failed attempt for longer than the max backoff).
      await waitForQuietPulls([E1, E2], 1000);
      const reconnectAt = performance.now();
      publish(C);
      await waitLocalLive(C, KEY);
      const cLive = performance.now() - r2.killAt;
      const ownerC = await clusterStream(E1, KEY);
      const gaps2 = await awaitResume(r2);
      const watcherGaps2 = await awaitWatchers(r2);
      report(
        r2,
        'publisher reconnects after the lease expired',
        gaps2,
        watcherGaps2,
        `lease gone after ${expired.toFixed(0)} ms, publisher live on C ${cLive.toFixed(0)} ms after the kill (${(cLive - (reconnectAt - r2.killAt)).toFixed(0)} ms after it reconnected), viewers resume ${(median(gaps2) - cLive).toFixed(0)} ms (median) after that`,
      );
      assert.equal(ownerC?.nodeId, 'origin-c');
      assert.ok(ownerC!.epoch > ownerB!.epoch, `epoch ${ownerC!.epoch} > ${ownerB!.epoch}`);
      assert.equal(await C.metric('rtmp_takeovers_total', { scope: 'cluster' }), 0, 'a fresh claim, not a takeover');
      checkViewers(r2);
      assert.equal(await C.metric('rtmp_viewers', { protocol: 'rtmp' }), 2, 'one pull per edge, now from C');
      for (const e of [E1, E2]) assert.equal(await e.metric('rtmp_failovers_total'), 2, `${e.id} counts two failovers`);
      for (const v of viewers) assert.equal(v.closed, false, `${v.name} kept its connection`);
    },
  );
});
