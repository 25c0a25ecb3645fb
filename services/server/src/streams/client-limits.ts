/**
 * Per-client-IP protection: a cap on concurrent connections and a limit on failed authorizations. Both are plain
 * counters in maps keyed by IP; their size is bounded by the connections that exist (the cap) or by a hard limit on
 * tracked IPs (failures), so a flood of source addresses cannot grow them without bound.
 */

/** Most IPs whose failures are remembered at once; beyond it the oldest windows are forgotten first. */
export const MAX_TRACKED_FAILURE_IPS = 100_000;

/** Fixed-window count of failed authorizations per IP. */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { startedAt: number; failures: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True while `ip` has used up its failures for the current window (always false when the limit is 0). */
  isLimited(ip: string): boolean {
    if (this.limit === 0) return false;
    const w = this.windows.get(ip);
    if (!w) return false;
    if (this.now() - w.startedAt >= this.windowMs) {
      this.windows.delete(ip);
      return false;
    }
    return w.failures >= this.limit;
  }

  /** Counts one failed authorization; true when this one reached the limit (log it once, not per attempt). */
  recordFailure(ip: string): boolean {
    if (this.limit === 0) return false;
    const now = this.now();
    let w = this.windows.get(ip);
    if (!w || now - w.startedAt >= this.windowMs) {
      if (w) this.windows.delete(ip);
      w = { startedAt: now, failures: 0 };
      if (this.windows.size >= MAX_TRACKED_FAILURE_IPS) this.evictOldest();
      this.windows.set(ip, w);
    }
    w.failures++;
    return w.failures === this.limit;
  }

  get trackedIps(): number {
    return this.windows.size;
  }

  /** Maps iterate in insertion order: the first entries are the oldest windows. */
  private evictOldest(): void {
    const drop = Math.max(1, Math.floor(MAX_TRACKED_FAILURE_IPS / 10));
    let n = 0;
    for (const ip of this.windows.keys()) {
      this.windows.delete(ip);
      if (++n >= drop) break;
    }
  }
}

/** Concurrent connections per IP, against a cap (0 = no cap). */
export class ConnectionsPerIp {
  private readonly counts = new Map<string, number>();

  constructor(private readonly cap: number) {}

  /** Takes a slot for `ip`; false (and nothing taken) when it holds `cap` already. */
  tryAcquire(ip: string): boolean {
    const n = this.counts.get(ip) ?? 0;
    if (this.cap > 0 && n >= this.cap) return false;
    this.counts.set(ip, n + 1);
    return true;
  }

  release(ip: string): void {
    const n = this.counts.get(ip) ?? 0;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
  }

  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }
}
