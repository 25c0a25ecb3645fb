import type { StreamStandby } from './events.js';

/** How the edges answered one announced move, when the wait for them ended. */
export interface MoveAnswers {
  /** Distinct edges that answered (ready or not). */
  answered: number;
  /** Of those, edges whose next upstream waits at the announced address. */
  ready: number;
  /** The bound ended the wait before every expected edge answered. */
  timedOut: boolean;
}

interface Waiting {
  epoch: number;
  expected: number;
  nodes: Map<string, boolean>;
  done: () => void;
}

/**
 * A draining origin's view of the edges' answers (`stream.standby`) to the moves it announced (`stream.moving`): it
 * asks a publisher to reconnect only once every edge pulling the stream has its next upstream waiting at the new
 * origin, or a bound passed. Sent together with the announcement, the request had the publisher at the new origin
 * tens of milliseconds later, while the edges' next pulls took 0.3 to 0.9 s to connect on a loaded node: the
 * viewers' gap was their connection set-up (docs/RELIABILITY.md).
 */
export class StandbyAnswers {
  private readonly waiting = new Map<string, Waiting>();

  /**
   * Resolves once `expected` distinct edges answered the announced move of `key`'s copy at `epoch`, or at `until`
   * (performance.now()). Call before announcing, so no answer arrives unheard. Expecting none resolves at once.
   */
  wait(key: string, epoch: number, expected: number, until: number): Promise<MoveAnswers> {
    const nodes = new Map<string, boolean>();
    const tally = (timedOut: boolean): MoveAnswers => ({
      answered: nodes.size,
      ready: [...nodes.values()].filter(Boolean).length,
      timedOut,
    });
    if (expected <= 0) return Promise.resolve(tally(false));
    this.waiting.get(key)?.done();
    return new Promise((resolve) => {
      const finish = (timedOut: boolean): void => {
        clearTimeout(timer);
        if (this.waiting.get(key) === entry) this.waiting.delete(key);
        resolve(tally(timedOut));
      };
      const entry: Waiting = { epoch, expected, nodes, done: () => finish(false) };
      const timer = setTimeout(() => finish(true), Math.max(0, until - performance.now()));
      this.waiting.set(key, entry);
    });
  }

  /** An edge's answer; ignored unless it is about a move being waited for (same key and epoch). */
  answer(e: StreamStandby): void {
    const entry = this.waiting.get(e.key);
    if (!entry || entry.epoch !== e.epoch) return;
    entry.nodes.set(e.nodeId, e.ready);
    if (entry.nodes.size >= entry.expected) entry.done();
  }

  /** Ends every wait now (the node is closing). */
  clear(): void {
    for (const entry of [...this.waiting.values()]) entry.done();
  }
}
