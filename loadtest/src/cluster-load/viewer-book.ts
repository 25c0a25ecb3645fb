/**
 * The runner's viewers: those it still follows, and what it must still know of those it let go. A churn of an hour
 * opens tens of thousands of viewers; keeping every one (its state, its closed socket, its map entry) grew the
 * runner by about 8 KiB per join, a heap whose collections then stall the runner's reads of every stream at once.
 * A viewer the runner stops (a churn leave, a TTFF probe) is retired here: dropped, with the tallies the report and
 * the current phase still need from it. Failed viewers stay followed: each phase counts its disconnects from them.
 */
import type { Viewer } from '../viewer.js';

/** What the book reads of a viewer's state. */
export interface BookedViewer {
  v: Viewer;
  stream: number;
  ttffDone: boolean;
  /** Longest gap between video frames since the current phase began, ms. */
  maxGapMs: number;
  /** Timestamp regressions since the viewer started. */
  regressions: number;
}

export class ViewerBook<S extends BookedViewer> implements Iterable<S> {
  private readonly followed = new Set<S>();
  private readonly byViewer = new Map<Viewer, S>();
  private openedCount = 0;
  private retiredRegressions = 0;
  /** Retired in the current phase after a gap in it: their stream's largest gap, and their regressions. */
  private phaseGaps = new Map<number, number>();
  private phaseRegressionsOfRetired = 0;

  /** Viewers ever opened (followed or retired). */
  get opened(): number {
    return this.openedCount;
  }

  /** Viewers still followed. */
  get size(): number {
    return this.followed.size;
  }

  add(st: S): void {
    this.followed.add(st);
    this.byViewer.set(st.v, st);
    this.openedCount++;
  }

  /** The state of a followed viewer (undefined once retired: a late event of a stopped viewer is ignored). */
  get(v: Viewer): S | undefined {
    return this.byViewer.get(v);
  }

  [Symbol.iterator](): Iterator<S> {
    return this.followed.values();
  }

  filter(keep: (st: S) => boolean): S[] {
    const out: S[] = [];
    for (const st of this.followed) if (keep(st)) out.push(st);
    return out;
  }

  /**
   * Stops following a viewer the runner stopped. Kept: its regressions (run total) and, if it saw a gap in the
   * current phase, that gap and its regressions for the phase's outcome, exactly as if it were still followed.
   */
  retire(st: S): void {
    if (!this.followed.delete(st)) return;
    this.byViewer.delete(st.v);
    this.retiredRegressions += st.regressions;
    if (st.ttffDone && st.v.phase !== 'failed' && st.maxGapMs > 0) {
      this.phaseGaps.set(st.stream, Math.max(this.phaseGaps.get(st.stream) ?? 0, st.maxGapMs));
      this.phaseRegressionsOfRetired += st.regressions;
    }
  }

  /** A phase begins: every followed viewer's gap starts from 0, and nothing retired before counts for it. */
  beginPhase(): void {
    for (const st of this.followed) st.maxGapMs = 0;
    this.phaseGaps = new Map();
    this.phaseRegressionsOfRetired = 0;
  }

  /** Of viewers retired in the current phase after a gap in it: largest gap by stream, and their regressions. */
  retiredInPhase(): { gapByStream: ReadonlyMap<number, number>; regressions: number } {
    return { gapByStream: this.phaseGaps, regressions: this.phaseRegressionsOfRetired };
  }

  /** Timestamp regressions of every viewer ever opened. */
  totalRegressions(): number {
    let n = this.retiredRegressions;
    for (const st of this.followed) n += st.regressions;
    return n;
  }
}
