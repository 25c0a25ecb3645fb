/**
 * The viewer side of a load run: opens viewers, follows them, and measures them at the end. One pool runs in the load
 * generator's own thread (the default), or one per worker thread with `--workers N` (viewer-worker.ts), so the
 * viewers' reads are spread over several event loops.
 *
 * Times inside a pool are its thread's performance.now(); `shiftMs` (this thread's time origin minus the main
 * thread's) turns them into the main thread's clock, where the publisher records its send times. Everything a pool
 * returns is in the main thread's clock.
 */
import type { RtmpUrl } from '@rtmp-relay/rtmp';
import { HttpFlvViewer, WsFlvViewer, type ViewerProtocol } from './flv-viewer.js';
import { ReasonCounter, SampleBuffer, summarize } from './stats.js';
import { ClientViewer, LightViewer, type TimestampWindow, type Viewer, type ViewerSink } from './viewer.js';

/** Send times of video timestamps, shared across threads: [timestamp, main-thread ms] per slot, by timestamp. */
export const SENT_RING_SLOTS = 1 << 16;

export function createSentRing(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(SENT_RING_SLOTS * 2 * Float64Array.BYTES_PER_ELEMENT)).fill(NaN);
}

export function recordSent(ring: Float64Array, ts: number, at: number): void {
  const i = (ts & (SENT_RING_SLOTS - 1)) * 2;
  ring[i + 1] = at; // the time first: a reader that sees the timestamp sees its time
  ring[i] = ts;
}

export function lookupSent(ring: Float64Array, ts: number): number | undefined {
  const i = (ts & (SENT_RING_SLOTS - 1)) * 2;
  return ring[i] === ts ? ring[i + 1] : undefined;
}

/** The measurement window's timestamp bounds in shared memory (moved by the main thread, read by every pool). */
export class SharedTimestampWindow implements TimestampWindow {
  readonly bounds: Float64Array;
  constructor(bounds?: Float64Array) {
    this.bounds = bounds ?? new Float64Array(new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT)).fill(Infinity);
  }
  get t0(): number {
    return this.bounds[0]!;
  }
  set t0(v: number) {
    this.bounds[0] = v;
  }
  get t1(): number {
    return this.bounds[1]!;
  }
  set t1(v: number) {
    this.bounds[1] = v;
  }
}

export interface PoolConfig {
  target: RtmpUrl;
  flvUrl: string;
  protocol: ViewerProtocol;
  impl: 'light' | 'client';
  connectTimeoutMs: number;
  readTimeoutMs: number;
  stallMs: number;
  /** Whether a publisher records send times (latency is measured only then). */
  measureLatency: boolean;
}

export interface PoolStatus {
  attempted: number;
  everUp: number;
  upNow: number;
  failedBeforeUp: number;
  disconnected: number;
  ended: number;
  stallsTotal: number;
  totalBytes: number;
  failures: Record<string, number>;
  /** Latency of the frames since the last status (p50/p95, NaN when none) and TTFF p50 so far. */
  latP50: number;
  latP95: number;
  ttffP50: number;
}

export interface WindowEnd {
  /** Latency samples over the whole run and timestamps not found: decide timestamp vs arrival accounting. */
  latencyAllCount: number;
  unmatched: number;
  totalBytes: number;
}

export interface PoolResult {
  winViewers: number;
  received: number;
  receivedByArrival: number;
  under90: number;
  minRatio: number;
  viewerMs: number;
  stallsInWindow: number;
  stallsTotal: number;
  viewersWithStalls: number;
  upAtEnd: number;
  ttff: Float64Array;
  ttffAny: Float64Array;
  burst: Float64Array;
  noKeyframe: number;
  latencyWin: Float64Array;
  /** The window's keyframe samples only (also in latencyWin): a keyframe is the largest write of a fan-out. */
  latencyKeyWin: Float64Array;
  latencyAll: Float64Array;
  unmatched: number;
  status: PoolStatus;
}

export class ViewerPool {
  private readonly viewers: Viewer[] = [];
  private readonly failures = new ReasonCounter();
  private everUp = 0;
  private upNow = 0;
  private failedBeforeUp = 0;
  private disconnected = 0;
  private ended = 0;
  private inWindow = false;
  private stallsTotal = 0;
  private stallsInWindow = 0;
  private readonly stalledViewers = new Set<number>();
  private readonly latencyAll = new SampleBuffer(1 << 16);
  private readonly latencyWin = new SampleBuffer(1 << 16);
  private readonly latencyKeyWin = new SampleBuffer(1 << 10);
  private unmatched = 0;
  private lastLatIndex = 0;
  private lastTtffIndex = 0;
  private readonly ttffSoFar: number[] = [];
  private winViewers: Viewer[] = [];
  private readonly arrival = new Map<Viewer, number>();
  private readonly sink: ViewerSink;

  constructor(
    private readonly config: PoolConfig,
    private readonly window: TimestampWindow,
    private readonly sent: Float64Array,
    /** This thread's clock minus the main thread's (0 in the main thread). */
    private readonly shiftMs = 0,
  ) {
    const shift = this.shiftMs;
    this.sink = {
      up: () => {
        this.everUp++;
        this.upNow++;
      },
      failed: (v, reason) => {
        this.failures.add(reason);
        if (Number.isNaN(v.upAt)) this.failedBeforeUp++;
        else {
          this.upNow--;
          this.disconnected++;
        }
      },
      videoFrame: (v, ts, now, keyframe) => {
        if (!this.config.measureLatency) return;
        const at = lookupSent(this.sent, ts);
        if (at === undefined) {
          this.unmatched++;
          return;
        }
        if (at < v.playSentAt + shift) {
          // GOP cache: sent before this viewer asked. Remember when the catch-up burst ended.
          v.lastCachedFrameAt = now;
          return;
        }
        const lat = now + shift - at;
        this.latencyAll.push(lat);
        if (this.inWindow) {
          this.latencyWin.push(lat);
          if (keyframe) this.latencyKeyWin.push(lat);
        }
      },
      stall: (v) => {
        this.stallsTotal++;
        if (this.inWindow) {
          this.stallsInWindow++;
          this.stalledViewers.add(v.id);
        }
      },
      ended: () => {
        this.ended++;
      },
    };
  }

  /** Opens viewers with these ids. */
  launch(ids: readonly number[]): void {
    const c = this.config;
    const opts = { target: c.target, window: this.window, connectTimeoutMs: c.connectTimeoutMs, stallMs: c.stallMs };
    for (const id of ids) {
      const v =
        c.protocol === 'http-flv'
          ? new HttpFlvViewer(id, { ...opts, flvUrl: c.flvUrl }, this.sink)
          : c.protocol === 'ws-flv'
            ? new WsFlvViewer(id, { ...opts, flvUrl: c.flvUrl }, this.sink)
            : c.impl === 'client'
              ? new ClientViewer(id, opts, this.sink)
              : new LightViewer(id, opts, this.sink);
      this.viewers.push(v);
      v.start();
    }
  }

  /** Once a second: timeouts, and the numbers for the progress line. */
  tick(): PoolStatus {
    const now = performance.now();
    const { connectTimeoutMs, readTimeoutMs } = this.config;
    for (const v of this.viewers) {
      if (v.isDone) continue;
      if (!v.isUp) {
        if (now - v.startedAt > connectTimeoutMs) v.fail('timeout');
      } else if (readTimeoutMs > 0 && now - v.lastReadAt > readTimeoutMs) {
        v.fail('read_timeout');
      }
    }
    for (; this.lastTtffIndex < this.viewers.length; this.lastTtffIndex++) {
      const v = this.viewers[this.lastTtffIndex]!;
      if (Number.isNaN(v.firstKeyframeAt) && !v.isDone) break;
      if (!Number.isNaN(v.firstKeyframeAt)) this.ttffSoFar.push(v.firstKeyframeAt - v.playSentAt);
    }
    const lat = summarize(this.latencyAll.view(this.lastLatIndex));
    this.lastLatIndex = this.latencyAll.length;
    const s = this.status();
    s.latP50 = lat.p50;
    s.latP95 = lat.p95;
    s.ttffP50 = summarize(this.ttffSoFar).p50;
    return s;
  }

  status(): PoolStatus {
    let totalBytes = 0;
    for (const v of this.viewers) totalBytes += v.totalBytes;
    return {
      attempted: this.viewers.length,
      everUp: this.everUp,
      upNow: this.upNow,
      failedBeforeUp: this.failedBeforeUp,
      disconnected: this.disconnected,
      ended: this.ended,
      stallsTotal: this.stallsTotal,
      totalBytes,
      failures: this.failures.toJSON(),
      latP50: NaN,
      latP95: NaN,
      ttffP50: NaN,
    };
  }

  /** The steady window opens: remember who is up and what they had. */
  windowStart(): { up: number; totalBytes: number } {
    this.inWindow = true;
    this.winViewers = this.viewers.filter((v) => v.isUp);
    for (const v of this.winViewers) v.windowStartBytes = v.mediaBytes;
    return { up: this.winViewers.length, totalBytes: this.status().totalBytes };
  }

  /** The window closes: arrival-based counts are taken now. */
  windowEnd(): WindowEnd {
    this.inWindow = false;
    for (const v of this.winViewers) this.arrival.set(v, (v.isDone ? v.finalBytes : v.mediaBytes) - v.windowStartBytes);
    return { latencyAllCount: this.latencyAll.length, unmatched: this.unmatched, totalBytes: this.status().totalBytes };
  }

  /** After the delivery grace: per-viewer ratios against `expected` bytes. Times in the main thread's clock. */
  measure(o: { expected: number; byTimestamp: boolean; windowStart: number; windowEnd: number }): PoolResult {
    const shift = this.shiftMs;
    const stallMs = this.config.stallMs;
    let received = 0;
    let receivedByArrival = 0;
    let under90 = 0;
    let minRatio = Infinity;
    let viewerMs = 0;
    for (const v of this.winViewers) {
      const got = o.byTimestamp ? v.windowTsBytes : this.arrival.get(v)!;
      received += got;
      receivedByArrival += this.arrival.get(v)!;
      const r = o.expected > 0 ? got / o.expected : NaN;
      if (r < 0.9) under90++;
      if (r < minRatio) minRatio = r;
      viewerMs += (v.isDone ? Math.min(v.doneAt + shift, o.windowEnd) : o.windowEnd) - o.windowStart;
      // A viewer still up whose last frame is older than the stall threshold is stalled right now.
      if (!v.isDone && !(o.windowEnd - (v.lastVideoAt + shift) <= stallMs)) {
        this.stallsInWindow++;
        this.stallsTotal++;
        this.stalledViewers.add(v.id);
      }
    }
    const ttff = new SampleBuffer();
    const ttffAny = new SampleBuffer();
    const burst = new SampleBuffer();
    let noKeyframe = 0;
    for (const v of this.viewers) {
      if (!Number.isNaN(v.lastCachedFrameAt)) burst.push(v.lastCachedFrameAt - v.playSentAt);
      if (Number.isNaN(v.upAt)) continue;
      if (Number.isNaN(v.firstKeyframeAt)) noKeyframe++;
      else ttff.push(v.firstKeyframeAt - v.playSentAt);
      if (!Number.isNaN(v.firstVideoAt)) ttffAny.push(v.firstVideoAt - v.playSentAt);
    }
    return {
      winViewers: this.winViewers.length,
      received,
      receivedByArrival,
      under90,
      minRatio,
      viewerMs,
      stallsInWindow: this.stallsInWindow,
      stallsTotal: this.stallsTotal,
      viewersWithStalls: this.stalledViewers.size,
      upAtEnd: this.upNow,
      ttff: ttff.view().slice(),
      ttffAny: ttffAny.view().slice(),
      burst: burst.view().slice(),
      noKeyframe,
      latencyWin: this.latencyWin.view().slice(),
      latencyKeyWin: this.latencyKeyWin.view().slice(),
      latencyAll: this.latencyAll.view().slice(),
      unmatched: this.unmatched,
      status: this.status(),
    };
  }

  stop(): void {
    for (const v of this.viewers) v.stop();
  }
}
