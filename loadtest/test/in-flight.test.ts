import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InFlight } from '../src/cluster-load/in-flight.js';

const later = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

describe('InFlight: work awaited at the end of a phase, holding only what still runs', () => {
  it('forgets settled work as it goes, and settled() waits for the rest, also work added meanwhile', async () => {
    const work = new InFlight();
    const done: number[] = [];
    for (let i = 0; i < 100; i++) work.add(Promise.resolve(i).then((v) => void done.push(v)));
    work.add(later(30, 'slow').then(() => void done.push(-1)));
    await new Promise((r) => setImmediate(r));
    assert.equal(work.size, 1, 'settled work is still held');
    const all = work.settled();
    work.add(later(60, 'late').then(() => void done.push(-2)));
    await all;
    assert.equal(work.size, 0);
    assert.equal(done.length, 102);
    assert.deepEqual(done.slice(-2), [-1, -2]);
  });

  it('settled() rejects with the first failure, after everything else settled', async () => {
    const work = new InFlight();
    let slowDone = false;
    work.add(Promise.reject(new Error('first')));
    work.add(later(10, 0).then(() => Promise.reject(new Error('second'))));
    work.add(later(30, 0).then(() => void (slowDone = true)));
    await assert.rejects(work.settled(), /first/);
    assert.equal(slowDone, true, 'settled() rejected before the rest settled');
    assert.equal(work.size, 0);
  });
});
