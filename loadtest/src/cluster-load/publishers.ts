/**
 * The runner's publishers, in its own thread (LocalPublishers) or, by default, in one worker thread
 * (ThreadPublishers, publisher-worker.ts) so that the viewers' event loop does not pace them. Both offer the same
 * handles: start/stop, liveness, the stream's timestamp, its measurement window and bytes, send times for latency,
 * and counters fetched on request. Everything a handle returns is in this (the runner's) thread's clock.
 */
import { Worker } from 'node:worker_threads';
import type { FlvSource } from '../source.js';
import type { TimestampWindow } from '../viewer.js';
import { StreamPublisher } from './publisher.js';
import type {
  LoopDelay,
  PublisherCounters,
  PublisherReply,
  PublisherRequest,
  PublisherWorkerInit,
  SharedPublisherState,
} from './publisher-worker.js';
import { SharedWindow } from './publisher-worker.js';
import { SentTimes } from './sent-times.js';

export type { LoopDelay, PublisherCounters } from './publisher-worker.js';
export { loopDelayMs } from './publisher-worker.js';

export interface PublisherSpec {
  key: string;
  source: FlvSource;
  ertmp: boolean;
  seed: number;
}

export interface PublisherSetOptions {
  /** Run the publishers in a worker thread. */
  thread: boolean;
  /** rtmp://host:port bases of the origins (the thread gets the list at syncOrigins() and every ORIGINS_SYNC_MS). */
  origins: () => string[];
  reconnectDelayMs: number;
  connectTimeoutMs: number;
  log: (line: string) => void;
}

/** One stream's publisher, as the runner sees it. */
export interface PublisherHandle {
  readonly key: string;
  readonly ertmp: boolean;
  /** Shared with this stream's viewers. */
  readonly window: TimestampWindow;
  /** Payload bytes sent inside the window (settable: the runner zeroes it when the window opens). */
  windowBytes: number;
  readonly live: boolean;
  /** Current stream timestamp (continuous across reconnects). */
  readonly timestamp: number;
  /** Resolves once the publisher's thread took the request (the connection is made in the background). */
  start(): Promise<void>;
  /** clean: FCUnpublish + deleteStream; else a TCP reset. Not live from the call on; resolves once closed. */
  stop(clean: boolean): Promise<void>;
  /** This thread's performance.now() when the latest video frame with timestamp `ts` was sent (undefined: unknown). */
  sentAt(ts: number): number | undefined;
}

export interface PublisherSet {
  readonly handles: readonly PublisherHandle[];
  /** Whether they run in a worker thread. */
  readonly threaded: boolean;
  /** Makes sure the publishers see the current origin list (call after changing it). */
  syncOrigins(): Promise<void>;
  counters(): Promise<PublisherCounters[]>;
  /** The publishers' thread's event-loop delay (ms) since it started; undefined in the runner's thread. */
  loopDelay(): Promise<LoopDelay | undefined>;
  /** Every publisher stops cleanly; the thread ends. Idempotent. */
  close(): Promise<void>;
}

export async function createPublisherSet(specs: PublisherSpec[], o: PublisherSetOptions): Promise<PublisherSet> {
  if (!o.thread) return new LocalPublishers(specs, o);
  const set = new ThreadPublishers(specs, o);
  try {
    await set.ready;
  } catch (err) {
    await set.close();
    throw err;
  }
  return set;
}

class LocalPublishers implements PublisherSet {
  readonly threaded = false;
  readonly handles: PublisherHandle[];
  private readonly pubs: StreamPublisher[];

  constructor(specs: PublisherSpec[], o: PublisherSetOptions) {
    const sent = SentTimes.create(specs.length);
    this.pubs = specs.map(
      (s, i) =>
        new StreamPublisher(
          s.key,
          s.source,
          {
            origins: o.origins,
            ertmp: s.ertmp,
            reconnectDelayMs: o.reconnectDelayMs,
            connectTimeoutMs: o.connectTimeoutMs,
            onVideoSent: (ts, at) => sent.record(i, ts, at),
          },
          s.seed,
        ),
    );
    this.handles = this.pubs.map((p, i) => ({
      key: p.key,
      ertmp: p.ertmp,
      window: p.window,
      get windowBytes() {
        return p.windowBytes;
      },
      set windowBytes(v: number) {
        p.windowBytes = v;
      },
      get live() {
        return p.live;
      },
      get timestamp() {
        return p.timestamp;
      },
      start: async () => p.start(),
      stop: (clean: boolean) => p.stop(clean),
      sentAt: (ts: number) => sent.lookup(i, ts),
    }));
  }

  async syncOrigins(): Promise<void> {} // read at every connect

  async counters(): Promise<PublisherCounters[]> {
    return this.pubs.map((p) => ({
      connects: p.connects,
      reconnectRequests: p.reconnectRequests,
      switchMs: [...p.switchMs],
      awayMs: [...p.awayMs],
      failures: p.failures.toJSON(),
    }));
  }

  async loopDelay(): Promise<LoopDelay | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.all(this.pubs.map((p) => p.dispose()));
  }
}

/** How long the worker may take to load (from sources, tsx compiles it first) and to answer a request. */
const READY_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** The origin list is also pushed this often when it changed (nodes that died, a list changed without a sync). */
const ORIGINS_SYNC_MS = 250;

type NoSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;

let threadsRunning = 0;
/** Publisher threads started and not yet exited (0 after every run: none is leaked). */
export function publisherThreadsRunning(): number {
  return threadsRunning;
}
type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** The worker's module next to this one: .ts when run from sources (tsx), .js when built. */
function workerUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./publisher-worker.${ext}`, import.meta.url);
}

class ThreadPublishers implements PublisherSet {
  readonly threaded = true;
  readonly handles: PublisherHandle[];
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly state: SharedPublisherState;
  private readonly sent: SentTimes;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private failed: Error | undefined;
  private closing: Promise<void> | undefined;
  private sentOrigins: string;
  private readonly originsTimer: NodeJS.Timeout;

  constructor(
    specs: PublisherSpec[],
    private readonly o: PublisherSetOptions,
  ) {
    const n = specs.length;
    this.sent = SentTimes.create(n);
    const shared = (bytes: number) => new SharedArrayBuffer(Math.max(1, n) * bytes);
    this.state = {
      bounds: new Float64Array(shared(16)).fill(Infinity),
      windowBytes: new Float64Array(shared(8)),
      startAt: new Float64Array(shared(8)).fill(NaN),
      liveGen: new Int32Array(shared(4)),
      sent: this.sent.init,
    };
    const origins = o.origins();
    this.sentOrigins = JSON.stringify(origins);
    const init: PublisherWorkerInit = {
      specs: specs.map((s) => ({ key: s.key, sourcePath: s.source.path, ertmp: s.ertmp, seed: s.seed })),
      reconnectDelayMs: o.reconnectDelayMs,
      connectTimeoutMs: o.connectTimeoutMs,
      origins,
      state: this.state,
      mainTimeOrigin: performance.timeOrigin,
    };
    const url = workerUrl();
    this.worker = url.pathname.endsWith('.ts')
      ? // From sources (tests under tsx): a worker doesn't get the parent's loader hooks, so it registers tsx first.
        new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`,
          { eval: true, workerData: init, name: 'cluster-load publishers' },
        )
      : new Worker(url, { workerData: init, name: 'cluster-load publishers' });
    threadsRunning++;
    this.worker.once('exit', () => threadsRunning--);
    // Never what keeps the process alive: close() terminates it, and a run that ends without close() still exits.
    this.worker.unref();
    let readyTimer: NodeJS.Timeout | undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.on('message', (m: PublisherReply) => {
        if ('ready' in m) return resolve();
        const p = this.pending.get(m.seq);
        if (!p) return;
        this.pending.delete(m.seq);
        clearTimeout(p.timer);
        if (m.error !== undefined) p.reject(new Error(`publisher thread: ${m.error}`));
        else p.resolve(m.result);
      });
      const fail = (err: Error): void => {
        if (!this.failed && !this.closing) o.log(`publisher thread failed: ${err.message}`);
        this.failed ??= err;
        reject(err);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(err);
        }
        this.pending.clear();
      };
      this.worker.on('error', fail);
      this.worker.on('exit', (code) => fail(new Error(`publisher thread exited (${code})`)));
      // Failed, not only late: close() then terminates it without asking it to unpublish first.
      readyTimer = setTimeout(
        () => fail(new Error(`publisher thread not ready after ${READY_TIMEOUT_MS} ms`)),
        READY_TIMEOUT_MS,
      );
    }).finally(() => clearTimeout(readyTimer));
    this.originsTimer = setInterval(() => void this.syncOrigins().catch(() => {}), ORIGINS_SYNC_MS);
    this.originsTimer.unref();
    this.handles = specs.map((s, i) => this.handle(s, i));
  }

  private handle(s: PublisherSpec, i: number): PublisherHandle {
    const { state, sent } = this;
    const failed = (): boolean => this.failed !== undefined;
    const request = (req: NoSeq<PublisherRequest>): Promise<unknown> => this.request(req);
    const window = new SharedWindow(state.bounds.subarray(2 * i, 2 * i + 2));
    let gen = 0;
    let wanted = false;
    /** windowBytes as the thread counts them, at the last reset. */
    let windowBase = 0;
    return {
      key: s.key,
      ertmp: s.ertmp,
      window,
      get windowBytes() {
        return state.windowBytes[i]! - windowBase;
      },
      set windowBytes(v: number) {
        windowBase = state.windowBytes[i]! - v;
      },
      get live() {
        return wanted && !failed() && Atomics.load(state.liveGen, i) === gen;
      },
      get timestamp() {
        const at = state.startAt[i]!;
        return Number.isNaN(at) ? 0 : Math.max(0, Math.round(performance.now() - at));
      },
      start: async () => {
        wanted = true;
        gen++;
        await request({ op: 'start', args: { i, gen } });
      },
      stop: async (clean: boolean) => {
        wanted = false;
        await request({ op: 'stop', args: { i, clean } });
      },
      sentAt: (ts: number) => sent.lookup(i, ts),
    };
  }

  private request<T>(req: NoSeq<PublisherRequest>): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`publisher thread: no answer to ${req.op} in ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.worker.postMessage({ ...req, seq });
    });
  }

  async syncOrigins(): Promise<void> {
    const urls = this.o.origins();
    const json = JSON.stringify(urls);
    if (json === this.sentOrigins || this.failed || this.closing) return;
    this.sentOrigins = json;
    await this.request({ op: 'origins', args: { urls } });
  }

  counters(): Promise<PublisherCounters[]> {
    return this.request({ op: 'counters' });
  }

  loopDelay(): Promise<LoopDelay | undefined> {
    return this.request({ op: 'loopDelay' });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.originsTimer);
      // Clean unpublishes first (bounded by the request timeout), then the thread goes whatever happened.
      if (!this.failed) await this.request({ op: 'dispose' }).catch((e: Error) => this.o.log(e.message));
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
