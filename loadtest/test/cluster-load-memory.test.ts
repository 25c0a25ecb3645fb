import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bufferSpread, meanRssMiB, memoryDrift, type MemoryPoint } from '../src/cluster-load/memory-trend.js';

/** A heap that rises and falls with GC cycles around a live set of `floor`, and RSS `rss`, sampled every 5 s. */
function series(seconds: number, at: (s: number) => { floor: number; rss: number }): MemoryPoint[] {
  const points: MemoryPoint[] = [];
  for (let s = 0; s <= seconds; s += 5) {
    const { floor, rss } = at(s);
    points.push({
      atS: s,
      rssMiB: rss,
      heapUsedMiB: floor + ((s / 5) % 4) * 3,
      heapTotalMiB: floor * 2,
      externalMiB: rss / 10,
    });
  }
  return points;
}

describe('cluster-load memory drift', () => {
  it('growth in the warm-up does not count; the heap floor ignores the GC sawtooth', () => {
    // RSS grows 40 % in the first minute (heap sizing), then stays; the live set stays at 20 MiB throughout.
    const d = memoryDrift(
      series(600, (s) => ({ floor: 20, rss: s < 60 ? 100 + (40 * s) / 60 : 140 })),
      60,
      60,
    );
    assert.equal(d.rssWarmMiB, 140);
    assert.equal(d.rssEndMiB, 140);
    assert.equal(d.rssDriftPercent, 0);
    assert.equal(d.heapFloorWarmMiB, 20);
    assert.equal(d.heapFloorEndMiB, 20);
    assert.equal(d.heapDriftPercent, 0);
    // Where RSS went since the phase began: from the first sample to the last window's mean.
    assert.equal(d.rssStartMiB, 100);
    assert.equal(d.heapTotalStartMiB, 40);
    assert.equal(d.heapTotalEndMiB, 40);
    assert.equal(d.externalStartMiB, 10);
    assert.equal(d.externalEndMiB, 14);
  });

  it('a leak after the warm-up shows in both', () => {
    // 1 MiB a minute of live objects kept, and RSS with them.
    const d = memoryDrift(
      series(600, (s) => ({ floor: 20 + s / 60, rss: 140 + s / 60 })),
      60,
      60,
    );
    assert.ok(d.heapDriftPercent > 35, `heap drift ${d.heapDriftPercent}`);
    assert.ok(d.rssDriftPercent > 5, `rss drift ${d.rssDriftPercent}`);
    assert.ok(d.rssFloorDriftPercent > 5, `rss floor drift ${d.rssFloorDriftPercent}`);
  });

  it('a node without heap metrics: RSS only', () => {
    const points = series(120, () => ({ floor: NaN, rss: 100 }));
    const d = memoryDrift(points, 30, 30);
    assert.equal(d.rssDriftPercent, 0);
    assert.ok(Number.isNaN(d.heapDriftPercent));
  });

  it('RSS swinging with garbage between collections: the floor is flat, the window means are not', () => {
    // jemalloc gives freed Buffers back: RSS climbs with garbage through each 30 s cycle and drops to 120 MiB after
    // every full collection; the last minute's peaks are higher (more garbage), the floor is not.
    const d = memoryDrift(
      series(600, (s) => ({ floor: 20, rss: s % 30 === 0 ? 120 : 120 + 2 * (s % 30) + (s > 540 ? 20 : 0) })),
      60,
      60,
    );
    assert.equal(d.rssFloorWarmMiB, 120);
    assert.equal(d.rssFloorEndMiB, 120);
    assert.equal(d.rssFloorDriftPercent, 0);
    assert.ok(d.rssDriftPercent > 1, `the means move with the cycles' phase: ${d.rssDriftPercent}`);
  });

  it('the steady window is read by its mean: one sample on a garbage peak does not set the baseline', () => {
    // The window's first sample sits on a peak of Buffer garbage (190 MiB); the node is at 120 MiB otherwise.
    const steady = series(30, (s) => ({ floor: 20, rss: s === 0 ? 190 : 120 }));
    assert.equal(steady.length, 7);
    assert.equal(meanRssMiB(steady), 130);
    assert.ok(Number.isNaN(meanRssMiB([])));
  });

  it("Buffers are read as floor (kept), median and peak (garbage included); nodes that don't export them give NaN", () => {
    // A sawtooth: 30 MiB kept, garbage rising 0..40 MiB between full collections.
    const points = series(60, (s) => ({ floor: 20, rss: 10 * (30 + ((s / 5) % 5) * 10) }));
    assert.deepEqual(bufferSpread(points), { floor: 30, median: 50, max: 70 });
    const absent = points.map((p) => ({ ...p, externalMiB: NaN }));
    const none = bufferSpread(absent);
    assert.ok(Number.isNaN(none.floor) && Number.isNaN(none.median) && Number.isNaN(none.max));
  });
});
