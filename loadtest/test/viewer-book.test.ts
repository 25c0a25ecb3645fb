import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ViewerBook, type BookedViewer } from '../src/cluster-load/viewer-book.js';
import type { Viewer } from '../src/viewer.js';

type Phase = 'playing' | 'stopped' | 'failed';

function booked(stream: number, opts: Partial<BookedViewer> & { phase?: Phase } = {}): BookedViewer {
  const v = { phase: opts.phase ?? 'playing' } as unknown as Viewer;
  return {
    v,
    stream,
    ttffDone: opts.ttffDone ?? true,
    maxGapMs: opts.maxGapMs ?? 0,
    regressions: opts.regressions ?? 0,
  };
}

function stop(st: BookedViewer): void {
  (st.v as { phase: Phase }).phase = 'stopped';
}

describe('ViewerBook', () => {
  it('stops following a retired viewer and forgets it, but still counts it as opened', () => {
    const book = new ViewerBook<BookedViewer>();
    const a = booked(0);
    const b = booked(1);
    book.add(a);
    book.add(b);
    stop(a);
    book.retire(a);
    assert.equal(book.opened, 2);
    assert.equal(book.size, 1);
    assert.deepEqual([...book], [b]);
    assert.equal(book.get(a.v), undefined);
    assert.equal(book.get(b.v), b);
    book.retire(a); // twice: no effect
    assert.equal(book.size, 1);
  });

  it('holds no state per retired viewer: a long churn leaves the book the size of the audience', () => {
    const book = new ViewerBook<BookedViewer>();
    for (let i = 0; i < 100; i++) book.add(booked(i % 7));
    for (let i = 0; i < 10_000; i++) {
      const [leaving] = book;
      stop(leaving!);
      book.retire(leaving!);
      book.add(booked(i % 7, { regressions: i % 2 }));
    }
    assert.equal(book.size, 100);
    assert.equal(book.opened, 10_100);
    // Regressions of every viewer ever opened: 5000 joiners had one each.
    assert.equal(book.totalRegressions(), 5000);
  });

  it('keeps the gap a viewer retired in the current phase saw, for its stream, until the next phase', () => {
    const book = new ViewerBook<BookedViewer>();
    const gapped = booked(3, { maxGapMs: 1200, regressions: 2 });
    const smaller = booked(3, { maxGapMs: 400 });
    const noGap = booked(4, { maxGapMs: 0, regressions: 5 });
    const neverPlayed = booked(5, { ttffDone: false, maxGapMs: 900 });
    for (const st of [gapped, smaller, noGap, neverPlayed]) {
      book.add(st);
      stop(st);
      book.retire(st);
    }
    const inPhase = book.retiredInPhase();
    assert.deepEqual([...inPhase.gapByStream], [[3, 1200]]);
    // A viewer that left without a gap in the phase saw none of it: its regressions are not the phase's.
    assert.equal(inPhase.regressions, 2);
    assert.equal(book.totalRegressions(), 7);
    book.beginPhase();
    assert.equal(book.retiredInPhase().gapByStream.size, 0);
    assert.equal(book.retiredInPhase().regressions, 0);
    assert.equal(book.totalRegressions(), 7);
  });

  it('starts every followed viewer from a gap of 0 when a phase begins', () => {
    const book = new ViewerBook<BookedViewer>();
    const a = booked(0, { maxGapMs: 700 });
    book.add(a);
    book.beginPhase();
    assert.equal(a.maxGapMs, 0);
  });
});
