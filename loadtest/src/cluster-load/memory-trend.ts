/**
 * Memory of every node through the churn phase, sampled every few seconds: RSS, the V8 heap in use
 * (`nodejs_heap_size_used_bytes` of the node's /metrics), the heap V8 has committed (`nodejs_heap_size_total_bytes`)
 * and the memory outside it that JavaScript objects hold (`nodejs_external_memory_bytes`: Buffers, mostly). RSS minus
 * those two is the allocator's and the runtime's own. RSS of a Node process grows while V8 sizes its heap to the
 * workload and never gives much back; a leak is what keeps growing after that. So the summary compares the window
 * after a warm-up with the last window of the phase, and for the heap it takes each window's lowest sample (the
 * live set just after a garbage collection; heap in use rises and falls with every GC cycle).
 */
import type { NodeHandle } from './cluster.js';
import { summarize } from '../stats.js';
import { metricValue } from './processes.js';

export interface MemoryPoint {
  /** Seconds since sampling started. */
  atS: number;
  rssMiB: number;
  /** NaN when the node does not export it (also the two below). */
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

export interface MemoryDrift {
  samples: number;
  /** Mean RSS over the window after the warm-up, and over the last window; the change between them. */
  rssWarmMiB: number;
  rssEndMiB: number;
  rssDriftPercent: number;
  /**
   * Lowest RSS over the same windows, and the change: with an allocator that returns freed memory (jemalloc), RSS
   * swings with the Buffer garbage between full collections, and the floor is what the node keeps.
   */
  rssFloorWarmMiB: number;
  rssFloorEndMiB: number;
  rssFloorDriftPercent: number;
  /** Lowest heap in use over the same windows, and the change. */
  heapFloorWarmMiB: number;
  heapFloorEndMiB: number;
  heapDriftPercent: number;
  /**
   * Where RSS went, from the first sample (the start of the phase) to the mean of the last window: the V8 heap
   * committed, and external memory. What RSS gained beyond these two is native (allocator, runtime).
   */
  heapTotalStartMiB: number;
  heapTotalEndMiB: number;
  externalStartMiB: number;
  externalEndMiB: number;
  rssStartMiB: number;
}

const MIB = 1024 * 1024;

/** Samples every node's RSS and heap every `everyMs` until stopped (bounded by the caller's phase). */
export class MemoryTrend {
  private readonly points = new Map<string, MemoryPoint[]>();
  private timer: NodeJS.Timeout | undefined;
  private readonly started = performance.now();
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly nodes: () => readonly NodeHandle[],
    everyMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    const atS = (performance.now() - this.started) / 1000;
    this.inFlight = this.inFlight.then(() =>
      Promise.all(
        this.nodes()
          .filter((n) => n.alive)
          .map(async (n) => {
            const [usage, text] = await Promise.all([n.usage(), n.metrics().catch(() => '')]);
            const mib = (name: string): number =>
              new RegExp(`^${name} `, 'm').test(text) ? metricValue(text, name) / MIB : NaN;
            let list = this.points.get(n.id);
            if (!list) this.points.set(n.id, (list = []));
            list.push({
              atS,
              rssMiB: usage.rssKiB / 1024,
              heapUsedMiB: mib('nodejs_heap_size_used_bytes'),
              heapTotalMiB: mib('nodejs_heap_size_total_bytes'),
              externalMiB: mib('nodejs_external_memory_bytes'),
            });
          }),
      ).then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  /** Stops sampling; the points per node id. */
  async stop(): Promise<Map<string, MemoryPoint[]>> {
    clearInterval(this.timer);
    this.sample();
    await this.inFlight;
    return this.points;
  }
}

/** Mean RSS of the points (NaN for none). */
export function meanRssMiB(points: readonly MemoryPoint[]): number {
  return points.length ? points.reduce((a, p) => a + p.rssMiB, 0) / points.length : NaN;
}

export interface BufferSpread {
  /** Lowest sample: the Buffers the node keeps (its streams' caches, sockets' queues), just after a collection. */
  floor: number;
  median: number;
  /** Highest sample: with the garbage that waits for V8's next full collection. */
  max: number;
}

/** External (Buffer) memory of the points: floor, median and peak (NaN without samples). */
export function bufferSpread(points: readonly MemoryPoint[]): BufferSpread {
  const { min, p50, max } = summarize(points.map((p) => p.externalMiB));
  return { floor: min, median: p50, max };
}

/** The drift from the window after `warmupS` to the last window of `windowS` seconds. */
export function memoryDrift(points: readonly MemoryPoint[], warmupS: number, windowS: number): MemoryDrift {
  const end = points.at(-1)?.atS ?? 0;
  const warm = points.filter((p) => p.atS >= warmupS && p.atS < warmupS + windowS);
  const last = points.filter((p) => p.atS > end - windowS);
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const floor = (xs: number[]): number => {
    const known = xs.filter((x) => Number.isFinite(x));
    return known.length ? Math.min(...known) : NaN;
  };
  const change = (from: number, to: number): number => (100 * (to - from)) / from;
  const rssWarmMiB = meanRssMiB(warm);
  const rssEndMiB = meanRssMiB(last);
  const rssFloorWarmMiB = floor(warm.map((p) => p.rssMiB));
  const rssFloorEndMiB = floor(last.map((p) => p.rssMiB));
  const heapFloorWarmMiB = floor(warm.map((p) => p.heapUsedMiB));
  const heapFloorEndMiB = floor(last.map((p) => p.heapUsedMiB));
  const first = points[0];
  return {
    samples: points.length,
    rssWarmMiB,
    rssEndMiB,
    rssDriftPercent: change(rssWarmMiB, rssEndMiB),
    rssFloorWarmMiB,
    rssFloorEndMiB,
    rssFloorDriftPercent: change(rssFloorWarmMiB, rssFloorEndMiB),
    heapFloorWarmMiB,
    heapFloorEndMiB,
    heapDriftPercent: change(heapFloorWarmMiB, heapFloorEndMiB),
    rssStartMiB: first?.rssMiB ?? NaN,
    heapTotalStartMiB: first?.heapTotalMiB ?? NaN,
    heapTotalEndMiB: mean(last.map((p) => p.heapTotalMiB)),
    externalStartMiB: first?.externalMiB ?? NaN,
    externalEndMiB: mean(last.map((p) => p.externalMiB)),
  };
}
