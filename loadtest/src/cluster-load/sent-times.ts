/**
 * Send times of every stream's video frames in shared memory, written by the publishers' thread and read by the
 * viewers' (publish-to-view latency). viewer-pool.ts's createSentRing keeps one 1 MiB ring per stream, keyed by
 * timestamp; for hundreds of streams this keeps the last `slots` frames of each stream in send order instead
 * (16 KiB a stream by default: 34 s of a 30 fps stream) and finds a timestamp by binary search, since a stream's
 * timestamps never decrease (one continuous timeline across reconnects).
 *
 * Times are in the reader's clock: the writer adds its clock's offset (performance.timeOrigin difference).
 */

/** Entries at the old end of a ring a reader leaves alone: the writer may be overwriting them. */
const MARGIN = 8;

export interface SentTimesInit {
  /** [timestamp, time] per slot, `slots` slots per stream. */
  times: Float64Array;
  /** Frames written per stream (the next slot is heads[s] % slots). */
  heads: Int32Array;
  slots: number;
}

export class SentTimes {
  private readonly times: Float64Array;
  private readonly heads: Int32Array;
  private readonly slots: number;

  constructor(init: SentTimesInit) {
    this.times = init.times;
    this.heads = init.heads;
    this.slots = init.slots;
  }

  static create(streams: number, slots = 1024): SentTimes {
    const n = Math.max(1, streams);
    return new SentTimes({
      times: new Float64Array(new SharedArrayBuffer(n * slots * 2 * Float64Array.BYTES_PER_ELEMENT)),
      heads: new Int32Array(new SharedArrayBuffer(n * Int32Array.BYTES_PER_ELEMENT)),
      slots,
    });
  }

  /** What another thread needs to open the same memory (structured-clone safe). */
  get init(): SentTimesInit {
    return { times: this.times, heads: this.heads, slots: this.slots };
  }

  /** One writer per stream. */
  record(stream: number, ts: number, at: number): void {
    const n = this.heads[stream]!;
    const i = (stream * this.slots + (n % this.slots)) * 2;
    this.times[i] = ts;
    this.times[i + 1] = at;
    Atomics.store(this.heads, stream, n + 1); // publishes the entry: a reader that sees the count sees it
  }

  /** The time the latest frame with timestamp `ts` was sent, or undefined when not (or no longer) kept. */
  lookup(stream: number, ts: number): number | undefined {
    const n = Atomics.load(this.heads, stream);
    let lo = Math.max(0, n - this.slots + MARGIN);
    let hi = n - 1;
    if (hi < lo) return undefined;
    const base = stream * this.slots;
    const tsAt = (k: number): number => this.times[(base + (k % this.slots)) * 2]!;
    if (tsAt(lo) > ts || tsAt(hi) < ts) return undefined;
    // The last entry with a timestamp <= ts.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (tsAt(mid) <= ts) lo = mid;
      else hi = mid - 1;
    }
    const i = (base + (lo % this.slots)) * 2;
    return this.times[i] === ts ? this.times[i + 1] : undefined;
  }
}
