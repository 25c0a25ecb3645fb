import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import v8 from 'node:v8';
import { HubRegistry } from '@rtmp-relay/hub';
import { pino } from 'pino';
import { UpstreamPull, type UpstreamOwner } from '../src/cluster/pull.js';
import { waitFor } from './support/processes.js';

/**
 * Live objects named `name` in a heap snapshot of this process (which collects garbage first). By name, not by
 * prototype: Node's internals use their own WeakRef subclass, which v8.queryObjects(WeakRef) does not count.
 */
async function heapObjectCount(name: string): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const chunk of v8.getHeapSnapshot()) chunks.push(chunk as Buffer);
  // Joined as bytes: a chunk boundary may fall inside a multi-byte character of the snapshot's strings.
  const snapshot = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf('object');
  let count = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields.length)
    if (snapshot.nodes[i + typeAt] === objectType && snapshot.strings[snapshot.nodes[i + nameAt]!] === name) count++;
  return count;
}

/**
 * A pull lives as long as its stream has viewers on the edge, and under churn (encoders that drop and come back all
 * day) it re-pulls again and again. Nothing may accumulate per re-pull: a heap snapshot of an edge after a churn run
 * found one WeakRef per re-pull in the pull's abort signal (AbortSignal.any over a long-lived signal keeps an entry
 * per call in Node 20), 1282 more on one edge in six minutes, growing for as long as the pull lived.
 */
describe('edge pull: memory per re-pull', () => {
  const servers: Server[] = [];
  const pulls: UpstreamPull[] = [];

  after(async () => {
    for (const p of pulls) p.stop('test');
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('400 re-pulls leave no WeakRef behind', { timeout: 60_000 }, async () => {
    // An "origin" that accepts and closes at once: every connection attempt fails within a millisecond.
    const origin = createServer((socket) => socket.destroy());
    servers.push(origin);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const addr = `127.0.0.1:${(origin.address() as AddressInfo).port}`;

    // Each attempt learns of a newer owner while it connects (as when a stream moves under churn): the attempt fails,
    // and the pull starts over at once for the newer owner, without a back-off. Every start is one re-pull.
    let epoch = 1;
    const owner = (): UpstreamOwner => ({ nodeId: 'origin', addr, epoch });
    let starts = 0;
    const failures = new Map<string, number>();
    const registry = new HubRegistry();
    const pull: UpstreamPull = new UpstreamPull(
      'live/churn',
      'live',
      'churn',
      () => registry.getOrCreate('live/churn'),
      {
        resolveOwner: async () => owner(),
        waitForOwnerEvent: (_key, ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 100))),
        observer: {
          pullStarted: () => {
            starts++;
            epoch++;
            pull.ownerChanged(owner());
          },
          pullFailed: (_key, reason) => failures.set(reason, (failures.get(reason) ?? 0) + 1),
        },
      },
      {
        lingerMs: 1000,
        connectTimeoutMs: 5000,
        readTimeoutMs: 5000,
        failoverWaitMs: 5000,
        ownerRecheckMs: 1000,
        // A back-off would show as a stall: the newer owner must skip it.
        retryMinMs: 10_000,
        retryMaxMs: 10_000,
      },
      pino({ level: 'silent' }),
      () => undefined,
    );
    pulls.push(pull);

    pull.acquire();
    await waitFor('the first re-pulls', () => starts >= 50, 10_000);
    const weakRefsBefore = await heapObjectCount('WeakRef');
    const startsBefore = starts;
    await waitFor('400 more re-pulls', () => starts >= startsBefore + 400, 30_000);
    const weakRefsAfter = await heapObjectCount('WeakRef');
    const repulls = starts - startsBefore;
    console.log(`[pull-memory] ${repulls} re-pulls: WeakRef ${weakRefsBefore} -> ${weakRefsAfter}`);

    assert.ok(pull.upstream === undefined && !pull.isStopped, 'the pull never connected, and keeps trying');
    const failed = [...failures.values()].reduce((a, b) => a + b, 0);
    assert.ok(
      failed >= repulls - 1,
      `${failed} failed attempts for ${repulls} re-pulls: ${JSON.stringify([...failures])}`,
    );
    assert.ok(
      weakRefsAfter - weakRefsBefore < 40,
      `${weakRefsAfter - weakRefsBefore} more WeakRefs after ${repulls} re-pulls (one per re-pull leaks)`,
    );
  });
});
