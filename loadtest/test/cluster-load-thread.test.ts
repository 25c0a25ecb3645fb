import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_OPTIONS, type ClusterLoadOptions } from '../src/cluster-load/options.js';
import { publisherThreadsRunning } from '../src/cluster-load/publishers.js';
import { runClusterLoad, type ClusterLoadReport } from '../src/cluster-load/runner.js';
import { SentTimes } from '../src/cluster-load/sent-times.js';

/**
 * The cluster scenario runner with its publishers in a worker thread (the default) and without: real redis-server,
 * nats-server, 1 origin and 2 edges of the built CLI, a handful of streams and viewers. With the thread: media
 * delivered, publish-to-view latency measured across the threads' clocks, publishers stopped and restarted by churn
 * (clean and TCP reset), the thread's event-loop delay in the report, and no thread left afterwards.
 */

const SMALL: ClusterLoadOptions = {
  ...DEFAULT_OPTIONS,
  origins: 1,
  edges: 2,
  hotStreams: 0,
  rampPerSecond: 40,
  durationS: 2,
  settleMs: 500,
  probes: 0,
  reconnectDelayMs: 500,
  republishDelayMs: 500,
  leaseMs: 3000,
  pullLingerMs: 1000,
  shutdownTimeoutMs: 2000,
  timeLimitS: 45,
  progress: false,
};

function context(lines: string[], r: ClusterLoadReport): string {
  const { churn, ...rest } = r;
  const c = churn && { ...churn, memoryTrend: undefined };
  return `${lines.join('\n')}\n${JSON.stringify({ ...rest, options: undefined, churn: c }, null, 1).slice(0, 6000)}`;
}

describe('cluster-load publishers in a worker thread (small)', () => {
  it(
    'delivers, measures latency across threads, survives churn, reports the thread loop delay',
    { timeout: 60_000 },
    async () => {
      const lines: string[] = [];
      const r = await runClusterLoad({
        ...SMALL,
        streams: 6,
        viewers: 18,
        churnS: 3,
        publisherChurnPerS: 1.5,
        dropFraction: 0.5,
        viewerChurnPerS: 2,
        log: (l) => lines.push(l),
      });
      const ctx = context(lines, r);
      assert.equal(r.options.publisherThread, true, ctx);
      assert.ok(
        lines.some((l) => /publishers in a worker thread/.test(l)),
        ctx,
      );
      // Delivery in the steady window, as with the publishers in the runner's thread.
      assert.equal(r.steadyFailures, 0, ctx);
      assert.equal(r.delivery.viewersMeasured, 18, ctx);
      assert.ok(r.delivery.deliveredPercent.min >= 99, ctx);
      // Send times recorded in the publishers' thread, looked up in the viewers': plausible in the runner's clock.
      assert.ok(r.latencyMs.count > 0, ctx);
      for (const v of [r.latencyMs.min, r.latencyMs.p50, r.latencyMs.max]) assert.ok(Number.isFinite(v), ctx);
      assert.ok(r.latencyMs.min > -1 && r.latencyMs.p50 > 0 && r.latencyMs.max < 5000, ctx);
      // Churn stopped publishers (clean and by TCP reset) and each came back: a connect more per stop, no stream lost.
      assert.ok(r.churn && r.churn.publisherStops > 0, ctx);
      assert.ok(r.publishers.connects >= 6 + r.churn!.publisherStops, ctx);
      assert.equal(r.churn!.streamsLost, 0, ctx);
      assert.equal(r.churn!.viewersDisconnected, 0, ctx);
      // Viewers the churn stopped are retired: the runner follows its audience, not every viewer it opened.
      assert.ok(r.churn!.viewerLeaves > 0, ctx);
      assert.equal(r.runnerMemory.followedViewers, 18 + r.churn!.viewerJoins - r.churn!.viewerLeaves, ctx);
      assert.ok(r.viewers.opened >= 18 + r.churn!.viewerJoins, ctx);
      assert.ok(r.runnerMemory.rssMiB > r.runnerMemory.heapUsedMiB && r.runnerMemory.heapUsedMiB > 0, ctx);
      // The thread's own event-loop delay, next to the runner's.
      assert.ok(r.publisherLagMs, ctx);
      assert.ok(r.publisherLagMs.p99 > 0 && Number.isFinite(r.publisherLagMs.p99), ctx);
      assert.ok(r.publisherLagMs.max >= r.publisherLagMs.p99, ctx);
      assert.ok(Number.isFinite(r.runnerLagMs.p99), ctx);
      assert.ok(r.leaks.ok, ctx);
      assert.equal(publisherThreadsRunning(), 0, 'publisher thread left running');
    },
  );

  it('--no-publisher-thread: publishers in the runner thread still deliver', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const r = await runClusterLoad({
      ...SMALL,
      publisherThread: false,
      streams: 3,
      viewers: 8,
      log: (l) => lines.push(l),
    });
    const ctx = context(lines, r);
    assert.equal(r.steadyFailures, 0, ctx);
    assert.equal(r.delivery.viewersMeasured, 8, ctx);
    assert.ok(r.delivery.deliveredPercent.min >= 99, ctx);
    assert.ok(r.latencyMs.count > 0 && r.latencyMs.max < 5000, ctx);
    assert.equal(r.publisherLagMs, undefined, ctx);
    assert.ok(r.leaks.ok, ctx);
  });
});

describe('cluster-load send times (shared ring)', () => {
  it('finds the latest send of a timestamp among the kept frames; older and unknown ones are undefined', () => {
    const sent = SentTimes.create(2, 64);
    for (let f = 0; f < 200; f++) sent.record(1, f * 33, 1000 + f);
    sent.record(1, 199 * 33, 5000); // the same timestamp again (a reconnect at that instant): the latest wins
    assert.equal(sent.lookup(1, 150 * 33), 1150);
    assert.equal(sent.lookup(1, 199 * 33), 5000);
    assert.equal(sent.lookup(1, 150 * 33 + 1), undefined); // never sent
    assert.equal(sent.lookup(1, 10 * 33), undefined); // overwritten
    assert.equal(sent.lookup(0, 0), undefined); // other stream: nothing yet
    // Readable from another thread's copy of the same memory.
    assert.equal(new SentTimes(sent.init).lookup(1, 160 * 33), 1160);
  });
});
