import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/**
 * Is this process's event loop busy? One decision for the whole process (every hub reads the same flag), refreshed
 * by one unref'd timer: adaptive batching merges writes per viewer only while the loop is busy, so small audiences
 * keep per-message latency and large ones get the batching cost before the loop saturates.
 *
 * Busy means the event loop utilization (the share of time the loop spent running callbacks rather than waiting in
 * epoll) over the last sample period is at or above `busyAbove`; it stays busy until it falls below `idleBelow`
 * (hysteresis, so the decision doesn't flap around the threshold every period).
 */
export interface LoadGaugeOptions {
  /** Utilization (0..1) at or above which the loop counts as busy. */
  busyAbove: number;
  /** Utilization below which a busy loop counts as idle again. */
  idleBelow: number;
  /** Sampling period in ms. */
  periodMs: number;
}

export interface LoadSignal {
  /** True while the loop is busy: merge writes. */
  readonly busy: boolean;
}

export const DEFAULT_LOAD_GAUGE_OPTIONS: LoadGaugeOptions = { busyAbove: 0.5, idleBelow: 0.35, periodMs: 100 };

export class LoadGauge implements LoadSignal {
  private timer: NodeJS.Timeout | undefined;
  private last: EventLoopUtilization | undefined;
  private isBusy = false;
  /** Utilization of the last period (0..1). */
  utilization = 0;

  constructor(private options: LoadGaugeOptions = DEFAULT_LOAD_GAUGE_OPTIONS) {}

  get busy(): boolean {
    return this.isBusy;
  }

  /** Sets the thresholds (the last caller wins; the process has one loop and one policy). */
  configure(options: Partial<LoadGaugeOptions>): void {
    const next = { ...this.options, ...options };
    const restart = this.timer !== undefined && next.periodMs !== this.options.periodMs;
    this.options = next;
    if (restart) {
      this.stop();
      this.start();
    }
  }

  start(): void {
    if (this.timer) return;
    this.last = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.sample(), this.options.periodMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.isBusy = false;
  }

  /** Takes one sample now (the timer calls it; tests may too). */
  sample(): void {
    const now = performance.eventLoopUtilization();
    const delta = this.last ? performance.eventLoopUtilization(now, this.last) : now;
    this.last = now;
    this.utilization = delta.utilization;
    this.isBusy = this.isBusy
      ? delta.utilization >= this.options.idleBelow
      : delta.utilization >= this.options.busyAbove;
  }
}

let shared: LoadGauge | undefined;

/** The process-wide gauge, started on first use. */
export function processLoadGauge(): LoadGauge {
  if (!shared) {
    shared = new LoadGauge();
    shared.start();
  }
  return shared;
}
