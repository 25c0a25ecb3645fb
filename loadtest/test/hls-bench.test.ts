/**
 * The LL-HLS bench's reporting: self time per function from a V8 CPU profile within a window of the profiled
 * process's clock, and medians with min–max over runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topSelfTime, type CpuProfile } from '../src/cpu-profile.js';
import { summarizeRuns } from '../src/hls-bench.js';

const frame = (id: number, functionName: string, url = '', lineNumber = 0) => ({
  id,
  callFrame: { functionName, url, lineNumber },
});

describe('hls-bench reporting', () => {
  it('sums self time per function within the window, idle left out, shares of the busy time', () => {
    const profile: CpuProfile = {
      nodes: [
        frame(1, '(root)'),
        frame(2, '(idle)'),
        frame(3, 'serve', 'file:///work/main/services/server/src/hls/service.ts', 9),
        frame(4, 'writev'),
        // The same function reached through another call path: summed with node 3.
        frame(5, 'serve', 'file:///work/main/services/server/src/hls/service.ts', 9),
      ],
      startTime: 1_000_000,
      // Sample times (µs) 1.1 s (before the window), 1.2, 1.5, 1.7, 2.0, 2.6 s (after it).
      samples: [4, 3, 4, 2, 5, 3],
      timeDeltas: [100_000, 100_000, 300_000, 200_000, 300_000, 600_000],
    };
    const top = topSelfTime(profile, 10, [1_150_000, 2_100_000]);
    assert.deepEqual(top, [
      { name: 'serve hls/service.ts:10', selfMs: 400, percent: 57.1 },
      { name: 'writev', selfMs: 300, percent: 42.9 },
    ]);
    const all = topSelfTime(profile, 1);
    assert.equal(all.length, 1);
    assert.equal(all[0]!.name, 'serve hls/service.ts:10');
  });

  it('summarizes runs as medians with min and max', () => {
    const run = (flv: number, hls: number, loadavg: number) => ({
      machine: { cores: 2, loadavg: [loadavg, 0, 0], pinned: true },
      phases: [
        { name: 'baseline (publisher only)', cpuMs: 400, seconds: 10, generator: { saturated: false } },
        {
          name: 'HTTP-FLV',
          cpuMsPerViewerSecond: flv,
          requestsPerViewerSecond: 0,
          connections: 100,
          generator: { cpuPercent: 20, loopDelayP99Ms: 20, saturated: false },
        },
        {
          name: 'LL-HLS',
          cpuMsPerViewerSecond: hls,
          requestsPerViewerSecond: 4,
          connections: 100,
          generator: { cpuPercent: 30, loopDelayP99Ms: 90, saturated: true },
        },
        { name: 'baseline after (publisher only)', cpuMs: 600, seconds: 10, generator: { saturated: false } },
      ],
      hlsVsFlvCpu: hls / flv,
      hlsMinusFlvCpuMsPerViewerSecond: hls - flv,
      latency: { publishToPartAvailableMs: { p50: 600 } },
    });
    const s = summarizeRuns([run(0.4, 0.3, 1), run(0.3, 0.33, 2), run(0.35, 0.28, 3)] as never) as Record<
      string,
      unknown
    >;
    assert.deepEqual(s.flvCpuMsPerViewerSecond, { median: 0.35, min: 0.3, max: 0.4 });
    assert.deepEqual(s.hlsCpuMsPerViewerSecond, { median: 0.3, min: 0.28, max: 0.33 });
    assert.deepEqual(s.hlsVsFlvCpu, { median: 0.8, min: 0.75, max: 1.1 });
    assert.deepEqual(s.baselineCpuMsPerSecond, { median: 50, min: 50, max: 50 });
    assert.equal(s.generatorSaturatedRuns, 3);
    assert.deepEqual(s.loadavg1m, [1, 2, 3]);
  });
});
