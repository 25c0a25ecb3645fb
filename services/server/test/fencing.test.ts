import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MessageType, RtmpClient, parseVideoTag, type RtmpMessage } from '@rtmp-relay/rtmp';
import type { Redis } from 'ioredis';
import { createRedis, StreamOwnership, waitForRedis } from '../src/cluster/redis-registry.js';
import { clusterEnv, localStream, startInProcessNode, type ClusterNode } from './support/cluster-harness.js';
import { waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

/**
 * Fencing both ways, with real redis-server / nats-server and in-process origins and edges:
 * 1. a takeover while NATS is down reaches edge viewers as a move (Redis says so), not as an end;
 * 2. (issue 9) a stream that ended and came back while its edge pull lingered plays for a NEW viewer on that edge;
 * 3. an origin cut off from Redis stops serving its stream before its lease can be handed to another origin;
 * 4. after Redis restarts empty, epochs never go backwards and a stale origin cannot keep the stream.
 * Publishers are synthetic RtmpClients whose video payloads carry a tag byte, so a viewer can tell owners apart.
 */

const LEASE_MS = 1500;
const GRACE_MS = 1000;
const FRAME_MS = 33;
const GOP_FRAMES = 15;
const TAG_OFFSET = 5;

/** Video as a viewer received it: arrival time, timestamp, the publisher's tag, keyframe / sequence header. */
interface Received {
  at: number;
  ts: number;
  tag: number;
  key: boolean;
  seq: boolean;
}

/** A publisher sending AVC-like video (~30 fps, a keyframe every GOP_FRAMES) whose payload bytes are `tag`. */
class TaggedPublisher {
  closedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly client: RtmpClient,
    readonly tag: number,
  ) {
    client.on('close', () => {
      this.closedAt ??= performance.now();
      clearInterval(this.timer);
    });
  }

  static async start(url: string, tag: number): Promise<TaggedPublisher> {
    const client = await RtmpClient.connect(url, { readTimeoutMs: 0, connectTimeoutMs: 5000 });
    try {
      await client.publish(undefined, 10_000);
    } catch (err) {
      client.close();
      throw err;
    }
    const p = new TaggedPublisher(client, tag);
    client.sendMedia(MessageType.Video, 0, Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, tag]));
    const t0 = performance.now();
    let n = 0;
    p.timer = setInterval(() => {
      const key = n % GOP_FRAMES === 0;
      const payload = Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 0x01, 0, 0, 0]), Buffer.alloc(200, tag)]);
      client.sendMedia(MessageType.Video, Math.round(performance.now() - t0), payload);
      n++;
    }, FRAME_MS);
    return p;
  }

  get closed(): boolean {
    return this.client.closed;
  }

  stop(): void {
    clearInterval(this.timer);
    this.client.close();
  }
}

/** An RTMP viewer recording every video message with its tag, the end-of-stream notifications and the close. */
class TaggedViewer {
  readonly video: Received[] = [];
  readonly ends: string[] = [];
  closedAt: number | undefined;

  private constructor(readonly client: RtmpClient) {
    client.on('media', (m: RtmpMessage) => {
      if (m.type !== MessageType.Video || m.payload.length <= TAG_OFFSET) return;
      const info = parseVideoTag(m.payload);
      const tag = info.isSequenceHeader ? m.payload.at(-1)! : m.payload[TAG_OFFSET]!;
      this.video.push({
        at: performance.now(),
        ts: m.timestamp,
        tag,
        key: info.isKeyframe,
        seq: info.isSequenceHeader,
      });
    });
    client.on('end', (reason) => this.ends.push(reason));
    client.on('close', () => (this.closedAt ??= performance.now()));
  }

  static async open(url: string, playTimeoutMs = 10_000): Promise<TaggedViewer> {
    const client = await RtmpClient.connect(url, { readTimeoutMs: 30_000, connectTimeoutMs: 5000 });
    const v = new TaggedViewer(client);
    try {
      await client.play(undefined, playTimeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return v;
  }

  frames(tag?: number): Received[] {
    return this.video.filter((r) => !r.seq && (tag === undefined || r.tag === tag));
  }

  /** Coded frames of another tag after the first frame of `tag` (frames from two owners interleaved). */
  interleavedAfter(tag: number): Received[] {
    const coded = this.frames();
    const first = coded.findIndex((r) => r.tag === tag);
    return first < 0 ? [] : coded.slice(first).filter((r) => r.tag !== tag);
  }

  /** Coded frames whose timestamp does not grow. */
  regressions(): Received[] {
    const coded = this.frames();
    return coded.filter((r, i) => i > 0 && r.ts <= coded[i - 1]!.ts);
  }

  close(): void {
    this.client.close();
  }
}

/**
 * A TCP relay in front of Redis for one node: `cut()` models a network partition truthfully (connections stay open,
 * nothing gets through either way, new connections hang), which a killed or paused redis-server would not (the
 * other nodes must keep reaching Redis).
 */
class PartitionableLink {
  private readonly pairs = new Set<[Socket, Socket]>();
  private isCut = false;

  private constructor(private readonly server: Server) {}

  static async open(targetPort: number): Promise<PartitionableLink> {
    const server = createServer();
    const link = new PartitionableLink(server);
    server.on('connection', (client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      link.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (d: Buffer) => {
          if (!link.isCut) to.write(d);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        link.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return link;
  }

  get url(): string {
    const addr = this.server.address();
    return `redis://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }

  cut(): void {
    this.isCut = true;
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('fencing: takeovers without NATS, lingering pulls, origins cut off from Redis, Redis data loss', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  const nodes: ClusterNode[] = [];
  const publishers: TaggedPublisher[] = [];
  const viewers: TaggedViewer[] = [];
  const links: PartitionableLink[] = [];
  const clients: Redis[] = [];

  const node = async (role: 'origin' | 'edge', id: string, extra: Record<string, string> = {}) => {
    const n = await startInProcessNode(
      role,
      id,
      clusterEnv(redis.url, nats.url, { LEASE_MS: String(LEASE_MS), UNPUBLISH_GRACE_MS: String(GRACE_MS), ...extra }),
    );
    nodes.push(n);
    return n;
  };
  const publish = async (origin: ClusterNode, key: string, tag: number): Promise<TaggedPublisher> => {
    const p = await TaggedPublisher.start(origin.rtmpUrl(key), tag);
    publishers.push(p);
    return p;
  };
  const view = async (n: ClusterNode, key: string, playTimeoutMs?: number): Promise<TaggedViewer> => {
    const v = await TaggedViewer.open(n.rtmpUrl(key), playTimeoutMs);
    viewers.push(v);
    return v;
  };
  /** Stops the nodes of one case (a case's cluster is its own: NATS and Redis states differ between cases). */
  const stopNodes = async () => {
    for (const v of viewers.splice(0)) v.close();
    for (const p of publishers.splice(0)) p.stop();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  };

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await stopNodes();
    for (const l of links) await l.close();
    for (const c of clients) c.disconnect();
    await stopAllServices();
  });

  it('1. NATS down + a takeover at origin B: edge viewers stay connected and continue with B, no end', async () => {
    nats = await startNats();
    const key = 'live/nats-down-takeover';
    const A = await node('origin', 'f1-origin-a');
    const B = await node('origin', 'f1-origin-b');
    const E = await node('edge', 'f1-edge');
    await publish(A, key, 1);
    const v = await view(E, key);
    await waitFor('edge viewer frames from A', () => v.frames(1).length >= 10, 10_000);

    await nats.kill();
    await waitFor(
      'every node to see NATS down',
      async () => (await Promise.all([A, B, E].map((n) => n.metric('rtmp_nats_up')))).every((up) => up === 0),
      10_000,
    );
    const p2 = await publish(B, key, 2);
    const takeoverAt = performance.now();
    await waitFor('edge viewer frames from B', () => v.frames(2).length >= 20, 15_000);
    const firstB = v.frames(2)[0]!;
    console.log(
      `[fencing] 1. NATS down takeover: first frame from B ${(firstB.at - takeoverAt).toFixed(0)} ms after B went live`,
    );

    assert.equal(v.closedAt, undefined, 'the edge viewer was disconnected');
    assert.deepEqual(v.ends, [], 'the edge viewer was told the stream ended');
    assert.deepEqual(v.interleavedAfter(2).slice(0, 3), [], "frames of A's publisher after B's");
    assert.deepEqual(v.regressions().slice(0, 3), [], 'timestamps repeat or go back');
    assert.equal(firstB.key, true, "B's first frame is a keyframe");
    assert.equal(p2.closed, false);
    await stopNodes();
    await nats.stop();
  });

  it('2. (issue 9) a new viewer on an edge whose pull lingered across an end and a re-publish plays', async () => {
    nats = await startNats();
    const key = 'live/republish';
    const A = await node('origin', 'f2-origin');
    const E = await node('edge', 'f2-edge'); // the default PULL_LINGER_MS
    const p1 = await publish(A, key, 1);
    const v1 = await view(E, key);
    await waitFor('the first viewer to get frames', () => v1.frames(1).length >= 10, 10_000);

    // The publisher stops; the viewer watches until the end of stream, then leaves (as FFmpeg does).
    p1.stop();
    await waitFor('the first viewer to be told the stream ended', () => v1.ends.length > 0, 10_000);
    v1.close();
    // The publisher is back (about a second after it stopped: the end arrives after the origin's grace).
    await publish(A, key, 2);
    await waitFor(
      'the lingering edge pull to re-pull from the origin',
      async () => (await localStream(A, key))?.viewers === 1,
      10_000,
    );

    const v2 = await view(E, key, 5000).catch((err: Error) =>
      assert.fail(`the new viewer's play failed: ${err.message}`),
    );
    await waitFor('the new viewer to get frames', () => v2.frames(2).length >= 10, 10_000);
    await stopNodes();
    await nats.stop();
  });

  it('3. an origin cut off from Redis stops serving within its lease; no viewer gets frames from two owners', async () => {
    nats = await startNats();
    const key = 'live/partitioned';
    const link = await PartitionableLink.open(redis.port);
    links.push(link);
    const A = await node('origin', 'f3-origin-a', { REDIS_URL: link.url });
    // No takeover at B: it gets the stream only once A's lease expired in Redis.
    const B = await node('origin', 'f3-origin-b', { ALLOW_TAKEOVER: 'false' });
    const E = await node('edge', 'f3-edge');
    const p1 = await publish(A, key, 1);
    const atEdge = await view(E, key);
    const atOrigin = await view(A, key);
    await waitFor(
      'viewers to get frames from A',
      () => atEdge.frames(1).length >= 10 && atOrigin.frames(1).length >= 10,
      10_000,
    );

    link.cut();
    const cutAt = performance.now();
    // The encoder (through a load balancer) tries origin B until B accepts: once A's lease is gone from Redis.
    const p2 = await waitFor(
      'origin B to accept the publish',
      () => publish(B, key, 2).catch(() => undefined),
      LEASE_MS * 4,
      100,
    );
    const claimedAt = performance.now();
    await waitFor('A to drop its publisher', () => p1.closed, LEASE_MS * 2);
    const kickedAt = p1.closedAt!;
    console.log(
      `[fencing] 3. partition: A dropped its publisher ${(kickedAt - cutAt).toFixed(0)} ms after the cut, B owned it after ${(claimedAt - cutAt).toFixed(0)} ms (LEASE_MS ${LEASE_MS})`,
    );
    assert.ok(kickedAt - cutAt <= LEASE_MS + 100, `A stopped ${(kickedAt - cutAt).toFixed(0)} ms after the cut`);
    assert.ok(kickedAt < claimedAt, 'A was still serving when B got the stream');
    assert.equal(await A.metric('rtmp_lease_expirations_total'), 1);

    await waitFor('the edge viewer to get frames from B', () => atEdge.frames(2).length >= 10, 15_000);
    assert.deepEqual(atEdge.interleavedAfter(2).slice(0, 3), [], "frames of A's publisher after B's");
    assert.ok(
      atEdge.frames(1).every((r) => r.at <= kickedAt + 50),
      'the edge viewer got frames from A after A stopped serving',
    );
    assert.ok(atOrigin.closedAt !== undefined && atOrigin.closedAt <= claimedAt, "A's own viewer was not cut off");
    assert.equal(atEdge.closedAt, undefined, 'the edge viewer was disconnected');
    assert.deepEqual(atEdge.regressions().slice(0, 3), [], 'timestamps repeat or go back');
    assert.equal(p2.closed, false);
    await stopNodes();
    await nats.stop();
  });

  it('4. Redis restarted empty: epochs never go back, and a stale origin refreshing first cannot keep the stream', async () => {
    const c = createRedis(redis.url, { onError: () => undefined });
    clients.push(c);
    await waitForRedis(c, 5000);
    const own = new StreamOwnership(c, { prefix: 'rtmp:fencing:', leaseMs: 5000 });
    const A = { nodeId: 'origin-a', addr: '10.0.0.1:1935' };
    const B = { nodeId: 'origin-b', addr: '10.0.0.2:1935' };
    const C = { nodeId: 'origin-c', addr: '10.0.0.3:1935' };
    const a = await own.claim('live/x', A);
    const b = await own.claim('live/x', B, { takeover: true }); // A has not heard of it (NATS down, or paused)
    assert.ok(a.ok && b.ok && b.epoch > a.epoch);

    await redis.restart();
    await waitFor('the client to reconnect', async () => (await c.ping().catch(() => 'no')) === 'PONG', 10_000);
    assert.equal(await own.resolve('live/x'), undefined, 'the restart emptied Redis');

    // The stale owner refreshes first: it may re-create the lease for now, but the newer claim's holder replaces it.
    await own.refresh('live/x', a.epoch, A);
    assert.equal(await own.refresh('live/x', b.epoch, B), 'restored', 'the newer owner is fenced by a stale one');
    assert.equal(await own.refresh('live/x', a.epoch, A), 'lost', 'the stale owner keeps refreshing');
    assert.equal(await own.refresh('live/x', b.epoch, B), 'ok');
    const owner = await own.resolve('live/x');
    assert.equal(owner?.nodeId, B.nodeId);
    assert.equal(owner?.epoch, b.epoch);

    // A claim after the restore gets an epoch above every one handed out before the data loss.
    const c2 = await own.claim('live/x', C, { takeover: true });
    assert.ok(c2.ok && c2.epoch > b.epoch, `epoch went back: ${c2.ok && c2.epoch} after ${b.epoch}`);
    assert.equal(await own.refresh('live/x', b.epoch, B), 'lost', 'a restored lease beat a newer claim');

    // The same after a restore by the stale owner alone (the newer one is gone): new claims still go above.
    const d = await own.claim('live/y', A);
    const e = await own.claim('live/y', B, { takeover: true });
    assert.ok(d.ok && e.ok);
    await redis.restart();
    await waitFor('the client to reconnect', async () => (await c.ping().catch(() => 'no')) === 'PONG', 10_000);
    assert.equal(await own.refresh('live/y', d.epoch, A), 'restored');
    const f = await own.claim('live/y', C, { takeover: true });
    assert.ok(f.ok && f.epoch > e.epoch, `epoch went back: ${f.ok && f.epoch} after ${e.epoch}`);
  });
});
