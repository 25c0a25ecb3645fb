import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareLoadBalancers } from '../../../loadtest/src/cluster-load/compare.js';
import { DEFAULT_OPTIONS } from '../../../loadtest/src/cluster-load/options.js';

/**
 * The cluster scenario runner's load-balancer comparison at the smallest useful size (real redis-server,
 * nats-server, 1 origin and 3 edges of the built CLI, 4 streams, 16 viewers): the same audience joins through the
 * route API, then through a round-robin balancer, on one cluster. Routing must not open more upstream pulls than
 * round-robin, and with every edge far below ROUTE_MAX_VIEWERS it opens exactly one per stream.
 */

const STREAMS = 4;
const VIEWERS = 16;

describe('cluster-load --compare-lb route,round-robin (small)', () => {
  it('routing pulls each stream once; round-robin pulls at least as often', { timeout: 90_000 }, async () => {
    const lines: string[] = [];
    const c = await compareLoadBalancers(
      {
        ...DEFAULT_OPTIONS,
        origins: 1,
        edges: 3,
        streams: STREAMS,
        viewers: VIEWERS,
        hotStreams: 0,
        rampPerSecond: 40,
        durationS: 1,
        settleMs: 500,
        probes: 0,
        heartbeatMs: 300, // the router sees every edge ready sooner
        leaseMs: 3000,
        pullLingerMs: 1000,
        shutdownTimeoutMs: 2000,
        timeLimitS: 60,
        progress: false,
        log: (l) => lines.push(l),
      },
      ['route', 'round-robin'],
    );
    const route = c.reports.route!;
    const rr = c.reports['round-robin']!;
    const context = `${lines.join('\n')}\nroute ${JSON.stringify(route.balance)}\nround-robin ${JSON.stringify(rr.balance)}`;
    for (const r of [route, rr]) {
      // Everyone played, and each (stream, edge) with viewers holds exactly one pull.
      assert.equal(r.steadyFailures, 0, context);
      assert.equal(r.delivery.viewersMeasured, VIEWERS, context);
      assert.equal(r.pulls.pairsWithExactlyOnePull, r.pulls.pairsWithViewers, context);
      assert.deepEqual(r.pulls.mismatches, [], context);
      // The cold starts the runner counted are the pulls the edges say they started.
      assert.equal(r.balance.coldStarts, r.balance.pullStarts, context);
      assert.ok(r.leaks.ok, context);
    }
    // The same audience under both.
    assert.deepEqual(route.balance.rampViewersPerStream, rr.balance.rampViewersPerStream, context);
    assert.equal(route.balance.rampViewers, VIEWERS, context);
    // Routing: one edge per stream. Round-robin: never fewer pulls.
    assert.equal(route.balance.pullsPerStream.total, STREAMS, context);
    assert.equal(route.balance.pullsPerStream.max, 1, context);
    assert.equal(route.balance.routeFailures, 0, context);
    assert.ok(route.balance.pullsPerStream.total <= rr.balance.pullsPerStream.total, context);
    assert.ok(route.balance.coldShare <= rr.balance.coldShare, context);
    // Round-robin spreads viewers evenly over the three edges (16 = 6 + 5 + 5).
    assert.deepEqual(Object.values(rr.balance.viewersPerEdge).sort(), [5, 5, 6], context);
  });
});
