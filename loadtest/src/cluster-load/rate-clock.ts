/**
 * A rate of events (publisher stops, viewer leave+join pairs) turned into "how many are due now", for a loop that
 * wakes every few milliseconds but may wake late on a loaded machine. Each turn takes every event due since the last
 * one, so a late turn catches up instead of lowering the rate (one event per turn held the churn's joins to 3/s of
 * the 10 asked when turns ran 300 ms late); at most `maxPerTurn` at once, and a backlog older than `backlogMs` is
 * dropped rather than caught up on in a burst. The runner's counts then show how far below the asked rate it stayed.
 */
export class RateClock {
  private next: number;
  private droppedCount = 0;

  constructor(
    private readonly everyMs: number,
    start: number,
    private readonly maxPerTurn: number,
    private readonly backlogMs: number,
  ) {
    if (!(everyMs > 0)) throw new RangeError(`event interval must be > 0 ms, got ${everyMs}`);
    this.next = start;
  }

  /** Events skipped because the loop fell more than `backlogMs` behind. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** The number of events due at `now` (performance.now()); they count as taken. */
  take(now: number): number {
    let due = 0;
    while (now >= this.next && due < this.maxPerTurn) {
      this.next += this.everyMs;
      due++;
    }
    const behind = now - this.next;
    if (behind > this.backlogMs) {
      this.droppedCount += Math.floor(behind / this.everyMs) + 1;
      this.next = now + this.everyMs;
    }
    return due;
  }
}
