import type { HubRegistry } from '@rtmp-relay/hub';

/**
 * Plays that wait for a stream to go live (a player that connects a moment before the encoder, an edge waiting for
 * its pull). One timer per waiting play, woken by `notifyLive` when the stream's hub gets a publisher.
 */
export class LiveWaiters {
  private readonly waiters = new Map<string, Set<(live: boolean) => void>>();

  constructor(private readonly registry: HubRegistry) {}

  /** Resolves true as soon as `key` goes live, false after `timeoutMs`. */
  readonly waitForLive = (key: string, timeoutMs: number): Promise<boolean> => {
    if (this.registry.get(key)?.isLive) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      const waiting = set;
      const done = (live: boolean): void => {
        clearTimeout(timer);
        waiting.delete(done);
        if (waiting.size === 0 && this.waiters.get(key) === waiting) this.waiters.delete(key);
        resolve(live);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      waiting.add(done);
    });
  };

  /** Wakes plays waiting for `key` (called when its hub gets a publisher). */
  notifyLive(key: string): void {
    const set = this.waiters.get(key);
    if (set) for (const w of [...set]) w(true);
  }

  /** Plays waiting now (tests, metrics). */
  get size(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }
}
