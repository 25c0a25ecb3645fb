/**
 * Viewer pools as the load runner drives them: in this thread (LocalPool) or in a worker thread (WorkerPool). Both
 * answer asynchronously, so the runner treats them alike.
 */
import { Worker } from 'node:worker_threads';
import {
  SharedTimestampWindow,
  ViewerPool,
  type PoolConfig,
  type PoolResult,
  type PoolStatus,
  type WindowEnd,
} from './viewer-pool.js';
import type { WorkerInit, WorkerRequest } from './viewer-worker.js';

export type MeasureArgs = { expected: number; byTimestamp: boolean; windowStart: number; windowEnd: number };
/** A pool's window end, with its thread's event loop figures (NaN for the main thread's pool: measured there). */
export type WindowEndReport = WindowEnd & { eldP99Ms: number; eldMaxMs: number; elu: number };

export interface PoolHandle {
  /** Last known status (local: live; worker: as of its last answer). */
  readonly last: PoolStatus | undefined;
  launch(ids: number[]): void;
  tick(): Promise<PoolStatus>;
  status(): Promise<PoolStatus>;
  windowStart(): Promise<{ up: number; totalBytes: number }>;
  /** Worker pools also report their own loop's delay in the window (local: NaN, the runner measures its own). */
  windowEnd(): Promise<WindowEndReport>;
  measure(args: MeasureArgs): Promise<PoolResult>;
  stop(): Promise<void>;
}

export class LocalPool implements PoolHandle {
  private readonly pool: ViewerPool;
  constructor(config: PoolConfig, window: SharedTimestampWindow, sent: Float64Array) {
    this.pool = new ViewerPool(config, window, sent, 0);
  }
  get last(): PoolStatus {
    return this.pool.status();
  }
  launch(ids: number[]): void {
    this.pool.launch(ids);
  }
  async tick(): Promise<PoolStatus> {
    return this.pool.tick();
  }
  async status(): Promise<PoolStatus> {
    return this.pool.status();
  }
  async windowStart(): Promise<{ up: number; totalBytes: number }> {
    return this.pool.windowStart();
  }
  async windowEnd(): Promise<WindowEndReport> {
    return { ...this.pool.windowEnd(), eldP99Ms: NaN, eldMaxMs: NaN, elu: NaN };
  }
  async measure(args: MeasureArgs): Promise<PoolResult> {
    return this.pool.measure(args);
  }
  async stop(): Promise<void> {
    this.pool.stop();
  }
}

/** The worker's module next to this one: .ts when run from sources (tsx), .js when built. */
function workerUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./viewer-worker.${ext}`, import.meta.url);
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type NoSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;

export class WorkerPool implements PoolHandle {
  private readonly worker: Worker;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private failed: Error | undefined;
  last: PoolStatus | undefined;

  constructor(config: PoolConfig, window: SharedTimestampWindow, sent: Float64Array) {
    const init: WorkerInit = { config, bounds: window.bounds, sent, mainTimeOrigin: performance.timeOrigin };
    const url = workerUrl();
    this.worker = url.pathname.endsWith('.ts')
      ? // From sources (tests under tsx): a worker doesn't get the parent's loader hooks, so it registers tsx first.
        new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`,
          { eval: true, workerData: init },
        )
      : new Worker(url, { workerData: init });
    this.worker.on('message', (m: { seq: number; result: unknown }) => {
      const p = this.pending.get(m.seq);
      this.pending.delete(m.seq);
      p?.resolve(m.result);
    });
    const fail = (err: Error): void => {
      this.failed ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`viewer worker exited (${code})`)));
  }

  private request<T>(req: NoSeq<WorkerRequest>): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...req, seq });
    });
  }

  launch(ids: number[]): void {
    void this.request({ op: 'launch', ids }).catch(() => {});
  }
  async tick(): Promise<PoolStatus> {
    this.last = await this.request<PoolStatus>({ op: 'tick' });
    return this.last;
  }
  async status(): Promise<PoolStatus> {
    this.last = await this.request<PoolStatus>({ op: 'status' });
    return this.last;
  }
  windowStart(): Promise<{ up: number; totalBytes: number }> {
    return this.request({ op: 'windowStart' });
  }
  windowEnd(): Promise<WindowEndReport> {
    return this.request({ op: 'windowEnd' });
  }
  async measure(args: MeasureArgs): Promise<PoolResult> {
    const r = await this.request<PoolResult>({ op: 'measure', args });
    this.last = r.status;
    return r;
  }
  async stop(): Promise<void> {
    await this.request({ op: 'stop' }).catch(() => {});
    await this.worker.terminate();
  }
}
