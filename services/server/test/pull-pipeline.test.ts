/**
 * Pipelined play: an edge's pull sends createStream and play right behind connect instead of waiting for each
 * reply, so a cold pull reaches the origin's GOP cache two round trips sooner (issue 9, cold TTFF under load).
 *
 * Proven with a gate in front of a real node: a TCP relay that forwards the client's bytes at once but holds the
 * node's replies after the handshake until the client has sent `play`. A client that waits for each reply never
 * gets past connect there; a pipelining one plays, and the commands the node got before any reply are exactly
 * connect, createStream, play.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ChunkReader,
  decodeAmf0,
  MessageType,
  parseVideoTag,
  RtmpClient,
  RtmpClientError,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import { StreamOwnership, createRedis, waitForRedis } from '../src/cluster/redis-registry.js';
import { clusterEnv, RecordingViewer, startInProcessNode, type ClusterNode } from './support/cluster-harness.js';
import { ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const KEY = 'live/pipe';
/** C0+C1 then C2 from the client; S0+S1+S2 from the server (simple or digest handshake alike). */
const CLIENT_HANDSHAKE_BYTES = 1 + 1536 + 1536;
const SERVER_HANDSHAKE_BYTES = 1 + 1536 + 1536;

/** One relayed connection: the commands its client sent, and which of them came before any reply. */
interface GatedConnection {
  commands: string[];
  beforeReplies: string[];
  released: boolean;
}

/** The relay described above; each connection is gated on its own. */
class ReplyGate {
  readonly connections: GatedConnection[] = [];
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async open(targetPort: number): Promise<ReplyGate> {
    const server = createServer();
    const gate = new ReplyGate(server);
    server.on('connection', (c) => gate.link(c, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  private link(c: Socket, targetPort: number): void {
    const conn: GatedConnection = { commands: [], beforeReplies: [], released: false };
    this.connections.push(conn);
    const u = connect(targetPort, '127.0.0.1');
    this.sockets.add(c).add(u);
    const held: Buffer[] = [];
    const release = (): void => {
      conn.released = true;
      for (const b of held.splice(0)) c.write(b);
    };
    const reader = new ChunkReader((m: RtmpMessage) => {
      if (m.type !== MessageType.CommandAmf0) return;
      const name = String(decodeAmf0(m.payload)[0]);
      conn.commands.push(name);
      if (conn.released) return;
      conn.beforeReplies.push(name);
      if (name === 'play') release();
    });
    let clientSkip = CLIENT_HANDSHAKE_BYTES;
    c.on('data', (d: Buffer) => {
      u.write(d);
      const n = Math.min(clientSkip, d.length);
      clientSkip -= n;
      if (n < d.length) reader.push(d.subarray(n));
    });
    let serverPass = SERVER_HANDSHAKE_BYTES;
    u.on('data', (d: Buffer) => {
      if (conn.released) return void c.write(d);
      const n = Math.min(serverPass, d.length);
      serverPass -= n;
      if (n > 0) c.write(d.subarray(0, n));
      if (n < d.length) held.push(d.subarray(n));
    });
    const end = (): void => {
      c.destroy();
      u.destroy();
    };
    c.on('error', end).on('close', end);
    u.on('error', end).on('close', end);
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('pipelined play (createStream and play sent with connect)', { timeout: 60_000 }, () => {
  let redis: ServiceHandle;
  let origin: NodeUnderTest;
  let edge: ClusterNode;
  const procs: Running[] = [];
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    redis = await startRedis();
    origin = await startTestNode();
    cleanups.push(() => origin.shutdown('test'));
    procs.push(ffmpegPublish(origin.rtmpUrl(KEY), { seconds: 40 }));
    await waitLive(origin, KEY);
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await stopAll(procs);
    await stopAllServices();
  });

  it('a client that waits for each reply is stuck at connect behind the gate (the gate tells them apart)', async () => {
    const gate = await ReplyGate.open(origin.rtmpPort);
    cleanups.push(() => gate.close());
    await assert.rejects(
      RtmpClient.connect(`rtmp://127.0.0.1:${gate.port}/${KEY}`, { connectTimeoutMs: 800 }),
      (err: unknown) => err instanceof RtmpClientError && err.code === 'timeout',
    );
    assert.deepEqual(gate.connections[0]?.beforeReplies, ['connect']);
  });

  it('RtmpClient pipelinePlay: plays with no reply in between, and loses no media that came with the replies', async () => {
    const gate = await ReplyGate.open(origin.rtmpPort);
    cleanups.push(() => gate.close());
    const video: Array<{ seq: boolean; key: boolean }> = [];
    const client = await RtmpClient.connect(`rtmp://127.0.0.1:${gate.port}/${KEY}`, {
      connectTimeoutMs: 10_000,
      pipelinePlay: { name: 'pipe', timeoutMs: 10_000 },
      beforeConnect: (c) =>
        c.on('media', (m) => {
          if (m.type !== MessageType.Video || m.payload.length === 0) return;
          const info = parseVideoTag(m.payload);
          video.push({ seq: info.isSequenceHeader, key: info.isKeyframe });
        }),
    });
    try {
      await client.play('pipe', 10_000);
      assert.equal(client.streamId, 1);
      assert.deepEqual(gate.connections[0]?.beforeReplies, ['connect', 'createStream', 'play']);
      await waitFor('coded frames', () => video.filter((v) => !v.seq).length >= 10, 15_000, 25);
      // The join burst arrived with the replies: the sequence header first, then the GOP from its keyframe.
      assert.equal(video[0]?.seq, true, JSON.stringify(video.slice(0, 3)));
      assert.equal(video.find((v) => !v.seq)?.key, true, JSON.stringify(video.slice(0, 3)));
    } finally {
      client.close();
    }
  });

  it("an edge's cold pull pipelines its play, and its viewer gets frames", async () => {
    const gate = await ReplyGate.open(origin.rtmpPort);
    cleanups.push(() => gate.close());
    const client = createRedis(redis.url);
    cleanups.push(() => client.disconnect());
    await waitForRedis(client);
    const claim = await new StreamOwnership(client, { prefix: 'rtmp:', leaseMs: 60_000 }).claim(KEY, {
      nodeId: 'gated-origin',
      addr: `127.0.0.1:${gate.port}`,
    });
    assert.equal(claim.ok, true);
    edge = await startInProcessNode('edge', 'pipe-edge', clusterEnv(redis.url, ''));
    cleanups.push(() => edge.stop());
    const viewer = await RecordingViewer.open('cold', edge.rtmpUrl(KEY), { playTimeoutMs: 15_000 });
    try {
      await waitFor('coded frames through the edge', () => viewer.framesSince().length >= 10, 15_000, 25);
      assert.equal(gate.connections.length, 1);
      assert.deepEqual(gate.connections[0]!.beforeReplies, ['connect', 'createStream', 'play']);
    } finally {
      viewer.close();
    }
  });
});
