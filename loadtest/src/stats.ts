/**
 * Small statistics helpers for the load generator and the benchmark: percentiles (nearest-rank), summaries, a
 * growable sample buffer that never boxes numbers, and counters by reason.
 */

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Nearest-rank percentile of an ascending-sorted array (p in [0, 100]): the smallest value such that at least p% of
 * the samples are <= it. NaN for an empty array.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (p === 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

/** Percentile of unsorted values (copies and sorts; NaN values are ignored). */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(sortedCopy(values), p);
}

function sortedCopy(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isNaN(v)) out[n++] = v;
  }
  return out.subarray(0, n).sort();
}

/** count/min/mean/p50/p95/p99/max; every field but count is NaN (null in JSON) when there are no samples. */
export function summarize(values: ArrayLike<number>): Summary {
  const s = sortedCopy(values);
  const n = s.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return {
    count: n,
    min: n ? s[0]! : NaN,
    mean: n ? sum / n : NaN,
    p50: percentileSorted(s, 50),
    p95: percentileSorted(s, 95),
    p99: percentileSorted(s, 99),
    max: n ? s[n - 1]! : NaN,
  };
}

/** Rounds every number of a summary to `digits` decimals (NaN stays NaN). */
export function roundSummary(s: Summary, digits = 2): Summary {
  const r = (v: number): number => round(v, digits);
  return { count: s.count, min: r(s.min), mean: r(s.mean), p50: r(s.p50), p95: r(s.p95), p99: r(s.p99), max: r(s.max) };
}

export function round(v: number, digits = 2): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** A growable Float64Array of samples, with marks to read only what arrived since a point in time. */
export class SampleBuffer {
  private data: Float64Array;
  private n = 0;

  constructor(initialCapacity = 1024) {
    this.data = new Float64Array(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.n;
  }

  push(v: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = v;
  }

  /** A view of samples [from, to) (default: all); valid until the next push. */
  view(from = 0, to = this.n): Float64Array {
    return this.data.subarray(Math.max(0, from), Math.min(this.n, to));
  }

  clear(): void {
    this.n = 0;
  }
}

/** Counts by reason: `{ connect_timeout: 3, ECONNRESET: 1 }`. */
export class ReasonCounter {
  private readonly counts = new Map<string, number>();

  add(reason: string, n = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + n);
  }

  get total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort((a, b) => b[1] - a[1]));
  }

  /** `reason:n reason:n` or `none`. */
  format(): string {
    const entries = Object.entries(this.toJSON());
    return entries.length ? entries.map(([k, v]) => `${k}:${v}`).join(' ') : 'none';
  }
}

/** Formats a number for tables: fixed decimals, '-' for NaN/undefined. */
export function fmt(v: number | undefined | null, digits = 1): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '-';
  return v.toFixed(digits);
}

/** Ratio a/b, NaN when b is 0 or either is not finite. */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/**
 * JSON.stringify replacer that turns NaN/Infinity into null (JSON has no NaN) and a Map into an object of its entries
 * (JSON.stringify writes a Map as {}: a report's per-stream gaps were lost that way).
 */
export function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

/**
 * A uniform sample of at most `capacity` values from a stream of any length (reservoir sampling), with the stream's
 * exact count, min, max and mean: constant memory for a measurement that runs for hours. Percentiles come from the
 * sample (at the default capacity, within a fraction of a percentile rank of the stream's).
 */
export class Reservoir {
  private readonly sample: Float64Array;
  private kept = 0;
  private seen = 0;
  private min = Infinity;
  private max = -Infinity;
  private sum = 0;

  constructor(
    capacity = 200_000,
    private readonly rand: () => number = Math.random,
  ) {
    this.sample = new Float64Array(Math.max(1, capacity));
  }

  /** Values pushed so far (not only those kept). */
  get count(): number {
    return this.seen;
  }

  push(v: number): void {
    if (Number.isNaN(v)) return;
    this.seen++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.kept < this.sample.length) {
      this.sample[this.kept++] = v;
      return;
    }
    const slot = Math.floor(this.rand() * this.seen);
    if (slot < this.sample.length) this.sample[slot] = v;
  }

  /** The stream's summary: exact count, min, mean and max; percentiles of the sample. */
  summary(): Summary {
    const s = summarize(this.sample.subarray(0, this.kept));
    if (this.seen === 0) return s;
    return { ...s, count: this.seen, min: this.min, mean: this.sum / this.seen, max: this.max };
  }
}
