import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatColdPull, runColdPullBench } from '../src/cold-pull-bench.js';

/**
 * The cold-pull bench, small: real redis-server, nats-server, an origin behind the delay relay and an edge. Cold joins
 * cross the relay at least twice each way after the edge's lookup (handshake, then the pull's commands and the
 * GOP), so they cannot beat 2 round trips: a bench whose edge bypassed the relay, or whose joins found a lingering
 * pull, would measure a few ms. Warm joins never touch the relay.
 */
describe('cold-pull-bench (small)', () => {
  it('measures cold joins through the relay and warm joins from the edge cache', { timeout: 90_000 }, async () => {
    const rttMs = 40;
    const lines: string[] = [];
    const r = await runColdPullBench({ rttMs, joins: 3, runs: 1, log: (l) => lines.push(l) });
    const ctx = `${lines.join('\n')}\n${formatColdPull(r)}`;
    assert.equal(r.runs.length, 1, ctx);
    assert.equal(r.runs[0]!.cold.count, 3, ctx);
    assert.equal(r.runs[0]!.warm.count, 3, ctx);
    assert.ok(r.runs[0]!.cold.min >= 2 * rttMs, ctx);
    assert.ok(r.runs[0]!.warm.p50 < r.runs[0]!.cold.p50, ctx);
    assert.equal(r.coldP50.p50, r.runs[0]!.cold.p50, ctx);
    assert.match(formatColdPull(r), /cold p50 +\d+ ms/);
  });
});
