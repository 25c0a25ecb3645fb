/**
 * Memory under hostile input, against a REAL node process (its RSS read from /proc/<pid>/status):
 *
 * (a) slice pinning: one connection sends many tiny pieces of unfinished messages on many chunk streams, each piece
 *     followed by ~64 KiB of junk (complete video messages on stream 0, which the server parses and ignores). Each
 *     socket read then holds one tiny partial piece; a reader that keeps slices of its read buffers pins a 64 KiB
 *     buffer per piece while counting only the piece against MAX_PARTIAL_BYTES. RSS growth must stay within the
 *     budget (plus slack), and going past the budget must close the connection with a logged reason.
 * (b) header flood: a publisher sends 100 sequence headers of ~1 MiB, each with another Enhanced RTMP FourCC. The
 *     header cache must stay capped, and a normal viewer must still get the real headers and frames.
 *
 * The node runs from the sources (tsx), so the test exercises the working tree, not a stale build.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  MessageType,
  RtmpClient,
  UserControlEvent,
  encodeMessageChunks,
  parseUserControl,
  pingRequest,
} from '@rtmp-relay/rtmp';
import { DEFAULT_HEADER_CACHE_MAX_BYTES } from '@rtmp-relay/hub';
import { parseMetric } from './support/cluster-harness.js';
import { type Running, start, startLinePorts, stopAll, waitFor } from './support/processes.js';
import { RawRtmpPeer, destroyAllRawPeers } from './support/raw-rtmp.js';

const KIB = 1024;
const MIB = 1024 * KIB;

const MAX_PARTIAL_BYTES = 2 * MIB;
const MAX_VIDEO_BYTES = 1 * MIB;
const MAX_SMALL_MESSAGE_BYTES = 256 * KIB;
/**
 * Garbage not yet collected and allocator retention between two RSS samples (measured 1-30 MiB with the fix; it does
 * not grow with the length of the attack, while what the old code pinned does: +140 MiB and +204 MiB).
 */
const RSS_SLACK_BYTES = 64 * MIB;

const CLI_SOURCE = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

// (a) slice pinning
/** The initial chunk size: every piece is one full chunk of an unfinished message. */
const PIECE_BYTES = 128;
const FIRST_PARTIAL_CSID = 10;
const PARTIAL_STREAMS = 32;
/** Pieces sent with junk: 4000 × 128 B = 500 KiB counted, well under the budget; 4000 × 64 KiB pinned by slices. */
const ATTACK_PIECES = 4000;
/** One junk message per piece, sized so a piece and its junk fill about one 64 KiB socket read. */
const JUNK_PAYLOAD_BYTES = 63 * KIB;
const CSID_JUNK = 6;
const WARMUP_JUNK_MESSAGES = 300;

// (b) header flood
const FLOOD_HEADERS = 100;
const FLOOD_HEADER_BYTES = MIB - 64;
const VIDEO_EX_HEADER = 0x80;
const FRAME_KEY = 1;
const VIDEO_PACKET_SEQUENCE_START = 0;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * KIB;
}

const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;

interface SpawnedNode {
  proc: Running;
  pid: number;
  rtmpPort: number;
  httpPort: number;
  output(): string;
  http(path: string): Promise<Response>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** `rtmp-relay standalone` from the sources on free ports; ports parsed from its start line. */
async function spawnStandalone(env: Record<string, string>): Promise<SpawnedNode> {
  const proc = start(process.execPath, ['--conditions=source', '--import', TSX, CLI_SOURCE, 'standalone'], {
    timeoutMs: 5 * 60_000,
    env: {
      ...process.env,
      RTMP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: '500',
      ...env,
    },
  });
  let out = '';
  const append = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 256 * KIB) out = out.slice(-128 * KIB);
  };
  proc.child.stdout!.on('data', append);
  proc.child.stderr!.on('data', append);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const ports = await waitFor(
    'standalone node start line',
    () => {
      if (exited) throw new Error(`node exited before starting:\n${out}`);
      return startLinePorts(out);
    },
    30_000,
    20,
  );
  const base = `http://127.0.0.1:${ports.http}`;
  const http = (path: string): Promise<Response> => fetch(base + path, { signal: AbortSignal.timeout(5000) });
  return {
    proc,
    pid: proc.child.pid!,
    rtmpPort: ports.rtmp,
    httpPort: ports.http,
    output: () => out,
    http,
    metric: async (name, labels = {}) => parseMetric(await (await http('/metrics')).text(), name, labels),
  };
}

/** Writes and waits for the socket to drain when it asks to (the client must not buffer the whole attack). */
async function write(peer: RawRtmpPeer, data: Buffer): Promise<void> {
  if (peer.closed) throw new Error('server closed the connection');
  if (peer.socket.write(data)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      peer.socket.off('drain', done);
      peer.socket.off('close', done);
      resolve();
    };
    peer.socket.on('drain', done);
    peer.socket.on('close', done);
  });
}

/** Sends a PingRequest and waits for its response: the server has processed every byte sent before it. */
async function sync(peer: RawRtmpPeer, value: number, timeoutMs: number): Promise<void> {
  await write(peer, encodeMessageChunks(pingRequest(value), 2, PIECE_BYTES));
  await waitFor(
    `PingResponse ${value}`,
    () => {
      if (peer.closed) throw new Error('server closed the connection');
      return peer.messages.some((m) => {
        if (m.type !== MessageType.UserControl) return false;
        const ev = parseUserControl(m);
        return ev.event === UserControlEvent.PingResponse && ev.value === value;
      });
    },
    timeoutMs,
    10,
  );
}

/** One chunk of an unfinished video message on `csid`: a type-0 header first, type-3 continuations after. */
function piece(csid: number, first: boolean): Buffer {
  if (!first) return Buffer.concat([Buffer.from([0xc0 | csid]), Buffer.alloc(PIECE_BYTES, 0xab)]);
  const h = Buffer.alloc(12);
  h[0] = csid; // fmt 0
  h.writeUIntBE(0, 1, 3);
  h.writeUIntBE(MAX_VIDEO_BYTES, 4, 3); // declared, never completed
  h[7] = MessageType.Video;
  h.writeUInt32LE(0, 8);
  return Buffer.concat([h, Buffer.alloc(PIECE_BYTES, 0xab)]);
}

/** Sends `count` pieces round-robin over the partial chunk streams (state in `started`), each followed by `junk`. */
async function sendPieces(peer: RawRtmpPeer, count: number, started: Set<number>, junk?: Buffer): Promise<void> {
  for (let i = 0; i < count; i++) {
    const csid = FIRST_PARTIAL_CSID + (i % PARTIAL_STREAMS);
    const first = !started.has(csid);
    started.add(csid);
    await write(peer, junk ? Buffer.concat([piece(csid, first), junk]) : piece(csid, first));
  }
}

function videoEx(frameType: number, packetType: number, fourCc: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = VIDEO_EX_HEADER | (frameType << 4) | packetType;
  head.write(fourCc, 1, 'latin1');
  return Buffer.concat([head, body]);
}

/** Legacy AVC: sequence header (a minimal avcC) and NALU frames. */
const AVC_SEQUENCE_HEADER = Buffer.from('1700000000014d401fffe1000a674d401fe8802d805b0101000468ee3c80', 'hex');
const avcFrame = (key: boolean): Buffer =>
  Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 1, 0, 0, 0, 0, 0, 0, 8]), Buffer.alloc(8, key ? 0x65 : 0x41)]);

describe('memory under hostile input (live node, RSS)', { timeout: 240_000 }, () => {
  let node: SpawnedNode;

  before(async () => {
    node = await spawnStandalone({
      MAX_PARTIAL_BYTES: String(MAX_PARTIAL_BYTES),
      MAX_VIDEO_MESSAGE_BYTES: String(MAX_VIDEO_BYTES),
      MAX_AUDIO_MESSAGE_BYTES: String(MAX_SMALL_MESSAGE_BYTES),
      MAX_DATA_MESSAGE_BYTES: String(MAX_SMALL_MESSAGE_BYTES),
      IDLE_TIMEOUT_MS: '60000',
    });
  });

  after(async () => {
    destroyAllRawPeers();
    await node?.proc.stop();
    await stopAll();
  });

  it('(a) tiny partial pieces between junk cannot pin read buffers beyond MAX_PARTIAL_BYTES', async () => {
    const peer = await RawRtmpPeer.openReady(node.rtmpPort);
    await peer.connectApp('live', node.rtmpPort);
    const junk = encodeMessageChunks(
      { type: MessageType.Video, streamId: 0, timestamp: 0, payload: Buffer.alloc(JUNK_PAYLOAD_BYTES, 0x5a) },
      CSID_JUNK,
      PIECE_BYTES,
    );
    // Warm up with junk alone, so the baseline already includes what parsing junk costs.
    for (let i = 0; i < WARMUP_JUNK_MESSAGES; i++) await write(peer, junk);
    await sync(peer, 1, 30_000);
    const baseline = rssBytes(node.pid);

    const started = new Set<number>();
    await sendPieces(peer, ATTACK_PIECES, started, junk);
    await sync(peer, 2, 60_000);
    const attacked = rssBytes(node.pid);
    const growth = attacked - baseline;
    const bound = 2 * MAX_PARTIAL_BYTES + RSS_SLACK_BYTES;
    console.log(
      `slice pinning: ${ATTACK_PIECES} pieces (${mib(ATTACK_PIECES * PIECE_BYTES)} counted) with ` +
        `${mib(ATTACK_PIECES * junk.length)} of junk: RSS ${mib(baseline)} -> ${mib(attacked)} ` +
        `(+${mib(growth)}, bound ${mib(bound)})`,
    );
    assert.ok(growth < bound, `RSS grew by ${mib(growth)} (bound ${mib(bound)})`);

    // Past the budget the connection is closed, counted and logged with its reason.
    const errorsBefore = await node.metric('rtmp_connection_errors_total', { reason: 'partial_bytes_exceeded' });
    const remaining = Math.ceil((MAX_PARTIAL_BYTES - ATTACK_PIECES * PIECE_BYTES) / PIECE_BYTES) + PARTIAL_STREAMS;
    await sendPieces(peer, remaining, started).catch(() => {}); // the server may close mid-way
    const closed = await peer.waitClosed(10_000);
    assert.ok(closed.closed, 'connection over the partial budget was not closed');
    await waitFor(
      'partial_bytes_exceeded counted',
      async () =>
        (await node.metric('rtmp_connection_errors_total', { reason: 'partial_bytes_exceeded' })) > errorsBefore,
      5000,
    );
    await waitFor('partial_bytes_exceeded logged', () => /"reason":"partial_bytes_exceeded"/.test(node.output()), 5000);
  });

  it('(b) 100 sequence headers of 1 MiB with different FourCCs: header cache capped, the stream still plays', async () => {
    const key = 'live/flood';
    const publisher = await RtmpClient.connect(`rtmp://127.0.0.1:${node.rtmpPort}/${key}`, {
      connectTimeoutMs: 5000,
      chunkSize: 65536,
    });
    let viewer: RtmpClient | undefined;
    try {
      await publisher.publish(undefined, 5000);
      let ts = 0;
      let sent = 0;
      const send = (payload: Buffer): void => {
        publisher.sendMedia(MessageType.Video, ts, payload);
        ts += 33;
        sent++;
      };
      send(AVC_SEQUENCE_HEADER);
      send(avcFrame(true));
      const messagesIn = async (): Promise<number> => {
        const res = await node.http(`/api/streams/${key}`);
        return res.status === 200 ? ((await res.json()) as { messagesIn: number }).messagesIn : 0;
      };
      await waitFor('first frames in', async () => (await messagesIn()) >= sent, 10_000);
      const baseline = rssBytes(node.pid);

      for (let i = 0; i < FLOOD_HEADERS; i++) {
        const fourCc = `x${String(i).padStart(3, '0')}`;
        send(videoEx(FRAME_KEY, VIDEO_PACKET_SEQUENCE_START, fourCc, Buffer.alloc(FLOOD_HEADER_BYTES, i)));
        if (i % 10 === 9) await waitFor('flood headers in', async () => (await messagesIn()) >= sent, 30_000);
      }
      for (let i = 0; i < 5; i++) send(avcFrame(false));
      await waitFor('flood in', async () => (await messagesIn()) >= sent, 30_000);
      const flooded = rssBytes(node.pid);
      const growth = flooded - baseline;
      const bound = 2 * DEFAULT_HEADER_CACHE_MAX_BYTES + RSS_SLACK_BYTES;
      console.log(
        `header flood: ${FLOOD_HEADERS} x ${mib(FLOOD_HEADER_BYTES)}: RSS ${mib(baseline)} -> ${mib(flooded)} ` +
          `(+${mib(growth)}, bound ${mib(bound)})`,
      );
      assert.ok(growth < bound, `RSS grew by ${mib(growth)} (bound ${mib(bound)})`);
      assert.ok(
        (await node.metric('rtmp_messages_dropped_total', { kind: 'video', reason: 'header_cache_full' })) > 0,
        'header cache overflow not counted',
      );

      // A normal (legacy) viewer joins after the flood: the AVC header and the GOP, then live frames.
      viewer = await RtmpClient.connect(`rtmp://127.0.0.1:${node.rtmpPort}/${key}`, { connectTimeoutMs: 5000 });
      const video: Buffer[] = [];
      viewer.on('media', (m) => {
        if (m.type === MessageType.Video) video.push(m.payload);
      });
      await viewer.play(undefined, 5000);
      // Every SequenceStart cleared the GOP (as a codec change must): the viewer starts at the next keyframe.
      send(avcFrame(true));
      send(avcFrame(false));
      await waitFor('viewer gets the header and live frames', () => video.length >= 3, 10_000);
      assert.ok(video[0]!.equals(AVC_SEQUENCE_HEADER), 'first video message is the AVC sequence header');
      assert.ok(video[1]!.equals(avcFrame(true)), 'then the keyframe');
      assert.ok(video[2]!.equals(avcFrame(false)), 'then an inter frame');
      assert.ok(
        video.every((p) => (p[0]! & VIDEO_EX_HEADER) === 0),
        'a legacy viewer gets no Enhanced RTMP headers',
      );
    } finally {
      viewer?.close();
      publisher.close();
    }
  });
});
