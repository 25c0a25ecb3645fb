import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HubRegistry } from '@rtmp-relay/hub';
import { pino } from 'pino';
import { ControlBus } from '../src/cluster/events/bus.js';
import { UpstreamPull, type StandbyOutcome, type UpstreamOwner } from '../src/cluster/pull.js';
import { controlEvent } from '../src/cluster/events/schema.js';
import { clusterEnv, spawnNode, type ProcessNode } from './support/cluster-harness.js';
import { stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { MovablePublisher, TagViewer } from './support/tagged-stream.js';
import { Relay } from './support/tcp-relay.js';

/**
 * `stream.moving` (a drain announcing where it sent a publisher) makes an edge open its next upstream ahead of the
 * move. An announcement that does not match the copy the edge pulls is ignored; one whose move never happens costs
 * the edge one connection that ends (the other origin answers StreamNotFound after its play wait), and the viewers,
 * still fed by the current upstream, never notice; a move that does happen takes the prepared connection.
 */
describe('edge pull: next upstream prepared on stream.moving', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let bus: ControlBus | undefined;
  const nodes: ProcessNode[] = [];
  const pubs: MovablePublisher[] = [];
  const viewers: TagViewer[] = [];
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    redis = await startRedis();
    nats = await startNats();
  });

  after(async () => {
    for (const c of cleanups.splice(0)) await c();
    for (const v of viewers) v.close();
    for (const p of pubs) p.stop();
    await bus?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await stopAll();
    await stopAllServices();
  });

  it(
    'ignores mismatched announcements, drops a standby whose move never comes, takes one whose move does',
    { timeout: 60_000 },
    async () => {
      const env = clusterEnv(redis.url, nats.url, { LEASE_MS: '3000', PLAY_WAIT_MS: '1000' });
      const A = await spawnNode('origin', 'standby-a', env);
      const B = await spawnNode('origin', 'standby-b', env);
      const E = await spawnNode('edge', 'standby-e', env);
      nodes.push(A, B, E);
      const standbys = (outcome: string): Promise<number> => E.metric('rtmp_pull_standbys_total', { outcome });

      const pub = new MovablePublisher({ ertmp: false });
      pubs.push(pub);
      await pub.moveTo(A.rtmpUrl('live/prep'), 1);
      const viewer = await TagViewer.open(E.rtmpUrl('live/prep'));
      viewers.push(viewer);
      await waitFor('the edge viewer gets frames from A', () => viewer.count(1) >= 10, 10_000);
      const owner = await A.json<{ nodeId: string; addr: string; epoch: number }>('/api/cluster/streams/live/prep');
      assert.equal(owner.nodeId, 'standby-a');

      bus = await ControlBus.connect(nats.url, { name: 'standby-test', initialWaitMs: 5000 });
      const toB = `127.0.0.1:${B.rtmpPort}`;
      const announce = (fields: { fromNodeId: string; addr: string; epoch: number }): void =>
        bus!.publish(controlEvent('stream.moving', { key: 'live/prep', ...fields }));
      // Not the copy the edge pulls (another node, an older epoch, its own address): nothing is opened.
      announce({ fromNodeId: 'standby-b', addr: toB, epoch: owner.epoch });
      announce({ fromNodeId: 'standby-a', addr: toB, epoch: owner.epoch - 1 });
      announce({ fromNodeId: 'standby-a', addr: owner.addr, epoch: owner.epoch });
      // Then one that matches (events of one publisher on one subject arrive in order: the three came first).
      const announcedAt = performance.now();
      announce({ fromNodeId: 'standby-a', addr: toB, epoch: owner.epoch });
      await waitFor('a standby opened', async () => (await standbys('opened')) >= 1, 10_000);
      assert.equal(await standbys('opened'), 1, 'a mismatched announcement opened a standby');

      // The publisher never goes to B: B refuses the waiting play after its PLAY_WAIT_MS, the standby is gone.
      await waitFor('the standby failed', async () => (await standbys('failed')) === 1, 10_000);
      const before = viewer.count(1);
      await waitFor('the viewer still gets frames from A', () => viewer.count(1) >= before + 10, 10_000);
      const quietGap = viewer.maxGapAfter(announcedAt);
      console.log(`[standby] viewer gap while a standby came and went: ${quietGap.toFixed(0)} ms`);
      assert.ok(quietGap < 1000, `viewer gap ${quietGap} ms while a standby came and went`);
      assert.equal(await standbys('used'), 0);
      assert.equal(await E.metric('rtmp_pull_starts_total'), 1, 'the edge re-pulled');

      // Announced and done: the move takes the prepared connection, and the edge starts no other.
      announce({ fromNodeId: 'standby-a', addr: toB, epoch: owner.epoch });
      await waitFor('a second standby opened', async () => (await standbys('opened')) === 2, 10_000);
      await pub.moveTo(B.rtmpUrl('live/prep'), 2);
      await waitFor('the viewer gets frames from B', () => viewer.count(2) >= 10, 10_000);
      assert.equal(await standbys('used'), 1);
      assert.equal(await E.metric('rtmp_pull_starts_total'), 2);
      assert.equal(viewer.closedAt, undefined, 'the edge viewer was disconnected');
      assert.equal(viewer.regressions(), 0, 'timestamps went back');
      assert.equal(viewer.interleavedAfter(2), 0, 'frames of the old connection after the new one');
    },
  );

  it(
    'a move that comes before its standby has connected still takes it (no second connection, no failed attempt)',
    { timeout: 30_000 },
    async () => {
      const env = clusterEnv(redis.url, nats.url, { LEASE_MS: '3000' });
      const origin = await spawnNode('origin', 'standby-slow', env);
      nodes.push(origin);
      const pub = new MovablePublisher({ ertmp: false });
      pubs.push(pub);
      await pub.moveTo(origin.rtmpUrl('live/early'), 1);
      // The next owner's address is a relay to the same origin that holds each new connection 1 s before connecting
      // onward: the standby cannot connect before the move below (as under load, when the publisher is quicker).
      const slow = await Relay.open('127.0.0.1', origin.rtmpPort, { acceptDelayMs: 1000 });
      cleanups.push(() => slow.close());
      const first: UpstreamOwner = { nodeId: 'o1', addr: `127.0.0.1:${origin.rtmpPort}`, epoch: 1 };
      const next: UpstreamOwner = { nodeId: 'o2', addr: `127.0.0.1:${slow.port}`, epoch: 2 };
      let owner = first;
      const outcomes: StandbyOutcome[] = [];
      const failures: string[] = [];
      const attached: string[] = [];
      const answers: string[] = [];
      let resolves = 0;
      const registry = new HubRegistry();
      const pull = new UpstreamPull(
        'live/early',
        'live',
        'early',
        () => registry.getOrCreate('live/early'),
        {
          resolveOwner: async () => {
            resolves++;
            return owner;
          },
          waitForOwnerEvent: (_key, ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 100))),
          answerMove: (_key, move, ready) => answers.push(`${move.fromNodeId}->${move.addr}:${ready}`),
          observer: {
            standby: (_key, outcome) => outcomes.push(outcome),
            pullFailed: (_key, reason) => failures.push(reason),
            pullStarted: () => attached.push(owner.nodeId),
          },
        },
        {
          lingerMs: 1000,
          connectTimeoutMs: 5000,
          readTimeoutMs: 5000,
          failoverWaitMs: 5000,
          ownerRecheckMs: 1000,
          retryMinMs: 2000,
          retryMaxMs: 4000,
        },
        pino({ level: 'silent' }),
        () => undefined,
      );
      cleanups.push(() => pull.stop('test'));
      pull.acquire();
      const hub = registry.getOrCreate('live/early');
      await waitFor('the pull from the first owner', () => pull.upstream?.nodeId === 'o1' && hub.isLive, 10_000);

      pull.prepareMove({ fromNodeId: 'o1', addr: next.addr, epoch: 1 });
      assert.deepEqual(outcomes, ['opened']);
      owner = next;
      pull.ownerChanged(next); // the move, while the standby still waits at the relay
      await waitFor('the pull from the next owner', () => pull.upstream?.nodeId === 'o2', 10_000);
      const bytes = hub.stats().bytesIn;
      await waitFor('media through the standby', () => hub.stats().bytesIn > bytes + 2000, 10_000);
      assert.deepEqual(outcomes, ['opened', 'used']);
      assert.equal(slow.connections, 1, 'the move opened a second connection');
      assert.deepEqual(failures, ['owner_changed'], 'only the old upstream, cut for the move, failed');
      assert.deepEqual(attached, ['o1', 'o2']);
      assert.equal(hub.currentPublisher, pull);
      // The move's attempt pulled from the announced owner: Redis was asked once, for the first owner only.
      assert.equal(resolves, 1, 'the move asked the registry for the owner the event had named');
      // The standby answered the announcement once it connected (after the move had taken it).
      assert.deepEqual(answers, [`o1->${next.addr}:true`]);
    },
  );
});
