import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { controlEvent } from '../src/cluster/events/schema.js';
import { StandbyAnswers } from '../src/cluster/standby-answers.js';

const answer = (nodeId: string, ready: boolean, epoch = 7, key = 'live/a') =>
  controlEvent('stream.standby', { key, fromNodeId: 'origin-a', nodeId, epoch, ready });

describe('StandbyAnswers: a draining origin waits for the edges of a move', () => {
  it('resolves once every expected edge answered, counting each edge once and the ready ones apart', async () => {
    const answers = new StandbyAnswers();
    const waiting = answers.wait('live/a', 7, 3, performance.now() + 10_000);
    let settled = false;
    void waiting.then(() => (settled = true));
    answers.answer(answer('e1', true));
    answers.answer(answer('e1', true)); // the same edge again
    answers.answer(answer('e2', false));
    await Promise.resolve();
    assert.equal(settled, false, 'resolved before the third edge answered');
    answers.answer(answer('e3', true));
    assert.deepEqual(await waiting, { answered: 3, ready: 2, timedOut: false });
  });

  it('ignores answers about another key or epoch', async () => {
    const answers = new StandbyAnswers();
    const waiting = answers.wait('live/a', 7, 1, performance.now() + 100);
    answers.answer(answer('e1', true, 6));
    answers.answer(answer('e1', true, 7, 'live/b'));
    assert.deepEqual(await waiting, { answered: 0, ready: 0, timedOut: true });
  });

  it('ends at the bound with what came, and at once when no edge is expected', async () => {
    const answers = new StandbyAnswers();
    const started = performance.now();
    const waiting = answers.wait('live/a', 7, 2, started + 150);
    answers.answer(answer('e1', true));
    const result = await waiting;
    assert.deepEqual(result, { answered: 1, ready: 1, timedOut: true });
    assert.ok(performance.now() - started >= 140, 'the wait ended before its bound');
    assert.deepEqual(await answers.wait('live/a', 7, 0, started + 60_000), {
      answered: 0,
      ready: 0,
      timedOut: false,
    });
  });

  it('clear() ends every wait (the node is closing), and a late answer changes nothing', async () => {
    const answers = new StandbyAnswers();
    const a = answers.wait('live/a', 7, 2, performance.now() + 60_000);
    const b = answers.wait('live/b', 3, 1, performance.now() + 60_000);
    answers.clear();
    assert.deepEqual(await a, { answered: 0, ready: 0, timedOut: false });
    assert.deepEqual(await b, { answered: 0, ready: 0, timedOut: false });
    answers.answer(answer('e1', true)); // nobody waits: no throw, nothing kept
  });
});
