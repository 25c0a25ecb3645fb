import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateClock } from '../src/cluster-load/rate-clock.js';

describe('RateClock', () => {
  it('keeps the asked rate when turns come late: a late turn takes every event due since the last', () => {
    const clock = new RateClock(100, 0, 25, 1000); // 10 events a second
    let taken = 0;
    // Turns every 300 ms for 10 s: one event per turn would give 34.
    for (let now = 0; now <= 10_000; now += 300) taken += clock.take(now);
    assert.ok(taken >= 99 && taken <= 101, `took ${taken}`);
    assert.equal(clock.dropped, 0);
  });

  it('takes nothing before the next event is due, and one event per interval on time', () => {
    const clock = new RateClock(500, 1000, 25, 1000);
    assert.equal(clock.take(999), 0);
    assert.equal(clock.take(1000), 1);
    assert.equal(clock.take(1200), 0);
    assert.equal(clock.take(1500), 1);
  });

  it('caps one turn, and drops a backlog older than its bound instead of bursting it', () => {
    const clock = new RateClock(10, 0, 25, 1000);
    // A 5 s stall: 500 events due; one turn takes 25, and the rest (older than 1 s) is dropped.
    assert.equal(clock.take(5000), 25);
    assert.ok(clock.dropped >= 470 && clock.dropped <= 476, `dropped ${clock.dropped}`);
    // From there on, the rate again.
    let taken = 0;
    for (let now = 5010; now <= 6000; now += 10) taken += clock.take(now);
    assert.ok(taken >= 98 && taken <= 100, `took ${taken}`);
  });

  it('rejects a rate of no events', () => {
    assert.throws(() => new RateClock(0, 0, 1, 1), RangeError);
  });
});
