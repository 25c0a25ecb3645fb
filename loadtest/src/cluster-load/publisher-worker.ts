/**
 * The publishers' worker thread (`--publisher-thread`, the default): every StreamPublisher of a run, on an event loop
 * of their own, so the viewers' socket reads in the runner's thread do not delay their paced sends, their reaction to
 * ReconnectRequests or their back-off reconnects. Driven by publishers.ts with {seq, op, args} requests, answered
 * {seq, result} or {seq, error}. Send times, the measurement windows, window bytes, timeline starts and liveness go
 * through shared memory, in the main thread's clock.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { loadFlv, type FlvSource } from '../source.js';
import { StreamPublisher } from './publisher.js';
import { SentTimes, type SentTimesInit } from './sent-times.js';

export interface PublisherSpecInit {
  key: string;
  /** The FLV file (each thread loads its own copy of the tags). */
  sourcePath: string;
  ertmp: boolean;
  seed: number;
}

/** Shared memory of a publisher set, one slot (two for bounds) per publisher, in the main thread's clock. */
export interface SharedPublisherState {
  /** [t0, t1] per publisher: media inside (t0, t1] is what "delivered" is measured on. */
  bounds: Float64Array;
  /** Payload bytes sent inside the window (written by the publishers' thread). */
  windowBytes: Float64Array;
  /** performance.now() (main thread) where each timeline starts; NaN before. */
  startAt: Float64Array;
  /** The start request (generation) a publisher is live under, 0 when not live. */
  liveGen: Int32Array;
  sent: SentTimesInit;
}

export interface PublisherWorkerInit {
  specs: PublisherSpecInit[];
  reconnectDelayMs: number;
  connectTimeoutMs: number;
  origins: string[];
  state: SharedPublisherState;
  mainTimeOrigin: number;
}

export type PublisherRequest =
  | { seq: number; op: 'start'; args: { i: number; gen: number } }
  | { seq: number; op: 'stop'; args: { i: number; clean: boolean } }
  | { seq: number; op: 'origins'; args: { urls: string[] } }
  | { seq: number; op: 'counters' | 'loopDelay' | 'dispose'; args?: undefined };

export type PublisherReply = { seq: number; result?: unknown; error?: string } | { ready: true };

export interface PublisherCounters {
  connects: number;
  reconnectRequests: number;
  switchMs: number[];
  /** Each reconnect after a lost connection: loss to publishing again, ms (StreamPublisher.awayMs). */
  awayMs: number[];
  failures: Record<string, number>;
}

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/** An event-loop delay histogram (nanoseconds) as p50 / p99 / max in ms. */
export function loopDelayMs(h: IntervalHistogram): LoopDelay {
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

/** A TimestampWindow over two slots of shared memory. */
export class SharedWindow {
  constructor(private readonly b: Float64Array) {}
  get t0(): number {
    return this.b[0]!;
  }
  set t0(v: number) {
    this.b[0] = v;
  }
  get t1(): number {
    return this.b[1]!;
  }
  set t1(v: number) {
    this.b[1] = v;
  }
}

/** How often liveness and window bytes are copied to shared memory. */
const MIRROR_MS = 10;
/** dispose: how long the clean closes may take to flush. */
const DISPOSE_FLUSH_MS = 2000;

if (parentPort) {
  const port = parentPort;
  const init = workerData as PublisherWorkerInit;
  const { state } = init;
  // This thread's performance.now() + shift = the main thread's.
  const shift = performance.timeOrigin - init.mainTimeOrigin;
  const sent = new SentTimes(state.sent);
  let origins = init.origins;
  const sources = new Map<string, FlvSource>();
  const source = (path: string): FlvSource => {
    let s = sources.get(path);
    if (!s) sources.set(path, (s = loadFlv(path)));
    return s;
  };
  const pubs = init.specs.map(
    (spec, i) =>
      new StreamPublisher(
        spec.key,
        source(spec.sourcePath),
        {
          origins: () => origins,
          ertmp: spec.ertmp,
          reconnectDelayMs: init.reconnectDelayMs,
          connectTimeoutMs: init.connectTimeoutMs,
          onVideoSent: (ts, at) => sent.record(i, ts, at + shift),
          window: new SharedWindow(state.bounds.subarray(2 * i, 2 * i + 2)),
        },
        spec.seed,
      ),
  );
  const gens = new Int32Array(pubs.length);
  const mirror = (): void => {
    for (let i = 0; i < pubs.length; i++) {
      const p = pubs[i]!;
      Atomics.store(state.liveGen, i, p.live ? gens[i]! : 0);
      state.windowBytes[i] = p.windowBytes;
    }
  };
  const mirrorTimer = setInterval(mirror, MIRROR_MS);
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();

  const handle = async (req: PublisherRequest): Promise<unknown> => {
    switch (req.op) {
      case 'start': {
        const p = pubs[req.args.i]!;
        gens[req.args.i] = req.args.gen;
        p.start();
        state.startAt[req.args.i] = p.startedAt + shift;
        mirror();
        return undefined;
      }
      case 'stop': {
        const closed = pubs[req.args.i]!.stop(req.args.clean);
        mirror();
        await closed;
        return undefined;
      }
      case 'origins':
        origins = req.args.urls;
        return undefined;
      case 'counters':
        return pubs.map((p): PublisherCounters => ({
          connects: p.connects,
          reconnectRequests: p.reconnectRequests,
          switchMs: p.switchMs,
          awayMs: p.awayMs,
          failures: p.failures.toJSON(),
        }));
      case 'loopDelay':
        return loopDelayMs(eld);
      case 'dispose': {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(pubs.map((p) => p.dispose())),
          new Promise((r) => (timer = setTimeout(r, DISPOSE_FLUSH_MS))),
        ]);
        clearTimeout(timer);
        mirror();
        clearInterval(mirrorTimer);
        eld.disable();
        return undefined;
      }
    }
  };
  port.on('message', (req: PublisherRequest) => {
    handle(req).then(
      (result) => port.postMessage({ seq: req.seq, result } satisfies PublisherReply),
      (err: Error) => port.postMessage({ seq: req.seq, error: err.stack ?? String(err) } satisfies PublisherReply),
    );
  });
  port.postMessage({ ready: true } satisfies PublisherReply);
}
