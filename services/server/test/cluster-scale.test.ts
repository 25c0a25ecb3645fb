import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_OPTIONS } from '../../../loadtest/src/cluster-load/options.js';
import { runClusterLoad, type ClusterLoadReport } from '../../../loadtest/src/cluster-load/runner.js';

/**
 * The cluster scenario runner at CI size (real redis-server, nats-server, 2 origins and 2 edges as processes of the
 * built CLI): many streams with skewed popularity, then churn (publishers stop cleanly or drop TCP and come back a
 * second later, viewers leave and join), then a rolling update of every origin while half the publishers speak
 * E-RTMP Reconnect and half reconnect like OBS, then every viewer and publisher goes and nothing may remain.
 * The big runs are `npm run cluster-load` (docs/RELIABILITY.md).
 */

const RECONNECT_DELAY_MS = 500;

describe('cluster at scale (small): streams, churn, rolling origins, leaks', () => {
  it('keeps every invariant', { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const r: ClusterLoadReport = await runClusterLoad({
      ...DEFAULT_OPTIONS,
      origins: 2,
      edges: 2,
      streams: 12,
      viewers: 48,
      hotStreams: 0,
      durationS: 4,
      churnS: 8,
      publisherChurnPerS: 1.5,
      viewerChurnPerS: 4,
      rolling: true,
      ertmpFraction: 0.5,
      reconnectDelayMs: RECONNECT_DELAY_MS,
      leaseMs: 3000,
      pullLingerMs: 1500,
      shutdownTimeoutMs: 4000,
      timeLimitS: 100,
      progress: false,
      log: (l) => lines.push(l),
    });
    const context = `${lines.join('\n')}\n${JSON.stringify(r, null, 1).slice(0, 6000)}`;
    // Steady state: everyone up, everything delivered, one pull per (stream, edge) with viewers.
    assert.equal(r.steadyFailures, 0, context);
    assert.ok(r.delivery.viewersMeasured >= 40, context);
    assert.ok(r.delivery.deliveredPercent.min >= 99, context);
    assert.equal(r.pulls.pairsWithExactlyOnePull, r.pulls.pairsWithViewers, context);
    assert.deepEqual(r.pulls.mismatches, [], context);
    // Churn: viewers stay connected through publishers leaving and coming back; no stream is lost.
    assert.ok(r.churn && r.churn.publisherStops > 0, context);
    assert.equal(r.churn!.viewersDisconnected, 0, context);
    assert.equal(r.churn!.streamsLost, 0, context);
    // Rolling origins: nobody disconnected; E-RTMP publishers moved without a gap over 1 s, the others within
    // their reconnect back-off + 1 s.
    assert.ok(r.rolling, context);
    assert.equal(r.rolling!.viewersDisconnected, 0, context);
    assert.equal(r.rolling!.streamsLost, 0, context);
    assert.ok(r.rolling!.reconnectRequests >= 1, context);
    assert.ok(r.rolling!.gapErtmpMs.max < 1000, context);
    assert.ok(r.rolling!.gapLegacyMs.max < RECONNECT_DELAY_MS * 4 + 1000, context);
    // Nobody saw timestamps go backwards, and nothing outlived its stream.
    assert.equal(r.timestampRegressions, 0, context);
    assert.ok(r.leaks.ok, `${JSON.stringify(r.leaks)}\n${context}`);
  });
});
