/**
 * Hostile input against a LIVE node (docs/INTEROP.md §9): while FFmpeg publishes a test pattern and an RtmpClient
 * plays it, raw TCP peers send garbage, broken handshakes, malformed chunk streams, AMF bombs, protocol abuse and
 * never-reading players. Every hostile connection must be closed by the server within a bounded time and counted
 * under its reason in rtmp_connection_errors_total; the server must stay healthy, the real viewer must never starve,
 * and nothing may leak (connections, hubs, gauges). A second node checks NetStream id bookkeeping on its own.
 *
 * Randomised parts use fast-check with a fixed seed (override with HOSTILE_SEED=<int>); failures print the case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ClientHandshake,
  Command,
  MessageType,
  RtmpClient,
  encodeAmf0,
  encodeMessageChunks,
  type AmfValue,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import {
  RawRtmpPeer,
  commandMessage,
  connectObject,
  controlU32,
  destroyAllRawPeers,
  type CloseResult,
} from './support/raw-rtmp.js';

// ---------------------------------------------------------------------------------------------------------------
// Limits of the node under attack (tight, so that every timeout-based case is fast). See config.ts cross-field
// rules: PING_INTERVAL_MS < IDLE_TIMEOUT_MS, soft < hard backlog, message caps <= MAX_PARTIAL_BYTES.

const L = {
  handshakeTimeoutMs: 1500,
  connectTimeoutMs: 1500,
  idleTimeoutMs: 4000,
  pingIntervalMs: 1000,
  maxConnections: 40,
  maxStreamsPerConnection: 4,
  maxChunkStreams: 32,
  minChunkSize: 128,
  maxAudioBytes: 1024 * 1024,
  maxDataBytes: 1024 * 1024,
  maxVideoBytes: 4 * 1024 * 1024,
  maxPartialBytes: 6 * 1024 * 1024,
  amfMaxDepth: 32,
  softBacklogBytes: 64 * 1024,
  hardBacklogBytes: 256 * 1024,
  softBacklogMs: 1000,
  hardBacklogMs: 2000,
};

const NODE_ENV: Record<string, string> = {
  HANDSHAKE_TIMEOUT_MS: String(L.handshakeTimeoutMs),
  CONNECT_TIMEOUT_MS: String(L.connectTimeoutMs),
  IDLE_TIMEOUT_MS: String(L.idleTimeoutMs),
  PING_INTERVAL_MS: String(L.pingIntervalMs),
  MAX_CONNECTIONS: String(L.maxConnections),
  MAX_STREAMS_PER_CONNECTION: String(L.maxStreamsPerConnection),
  MAX_CHUNK_STREAMS: String(L.maxChunkStreams),
  MIN_CHUNK_SIZE: String(L.minChunkSize),
  MAX_AUDIO_MESSAGE_BYTES: String(L.maxAudioBytes),
  MAX_DATA_MESSAGE_BYTES: String(L.maxDataBytes),
  MAX_VIDEO_MESSAGE_BYTES: String(L.maxVideoBytes),
  MAX_PARTIAL_BYTES: String(L.maxPartialBytes),
  AMF_MAX_DEPTH: String(L.amfMaxDepth),
  VIEWER_SOFT_BACKLOG_BYTES: String(L.softBacklogBytes),
  VIEWER_HARD_BACKLOG_BYTES: String(L.hardBacklogBytes),
  VIEWER_SOFT_BACKLOG_MS: String(L.softBacklogMs),
  VIEWER_HARD_BACKLOG_MS: String(L.hardBacklogMs),
  UNPUBLISH_GRACE_MS: '300',
  PLAY_WAIT_MS: '500',
};

/** The server's sweep period (server.ts): connect deadline / idle checks happen at most this late. */
const SWEEP_MS = Math.max(100, Math.min(L.connectTimeoutMs, L.pingIntervalMs, L.idleTimeoutMs) / 4);
/** Scheduling slack on a loaded 2-core CI box. */
const SLACK_MS = 1000;
/** A protocol error must close the connection "at once". */
const PROMPT_CLOSE_MS = 1000;
const HANDSHAKE_CLOSE_MS = L.handshakeTimeoutMs + SLACK_MS;
const CONNECT_CLOSE_MS = L.connectTimeoutMs + 2 * SWEEP_MS + SLACK_MS;
const IDLE_CLOSE_MS = L.idleTimeoutMs + 2 * SWEEP_MS + SLACK_MS;

const SEED = Number(process.env.HOSTILE_SEED ?? 20240611);
const CSID_CONTROL = 2;
const CSID_COMMAND = 3;
const CSID_AUDIO = 4;
const CSID_DATA = 5;
const CSID_VIDEO = 6;
const CSID_STREAM = 8;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** rtmp_connection_errors_total by reason. */
async function errorCounts(node: NodeUnderTest): Promise<Map<string, number>> {
  const text = await (await node.http('/metrics')).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^rtmp_connection_errors_total\{reason="([^"]*)"\}\s+(\S+)$/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) {
    const n = v - (before.get(k) ?? 0);
    if (n !== 0) d[k] = n;
  }
  return d;
}

/** Waits (bounded) until every expected reason grew by at least its count since `before`; asserts with all deltas. */
async function expectReasons(
  node: NodeUnderTest,
  before: Map<string, number>,
  expected: Record<string, number>,
): Promise<Record<string, number>> {
  let d: Record<string, number> = {};
  const ok = (): boolean => Object.entries(expected).every(([k, n]) => (d[k] ?? 0) >= n);
  const deadline = Date.now() + 2000;
  do {
    d = delta(before, await errorCounts(node));
    if (ok()) break;
    await delay(50);
  } while (Date.now() < deadline);
  assert.ok(
    ok(),
    `rtmp_connection_errors_total deltas ${JSON.stringify(d)}, expected at least ${JSON.stringify(expected)}`,
  );
  return d;
}

function assertClosed(r: CloseResult, withinMs: number, what: string): void {
  assert.ok(r.closed, `${what}: server did not close the connection within ${withinMs} ms`);
  assert.ok(r.ms <= withinMs, `${what}: closed after ${r.ms} ms (> ${withinMs} ms)`);
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
async function pool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return results;
}

/** A chunk basic header for (fmt, csid) in its 1/2/3-byte form. */
function basicHeader(fmt: number, csid: number): Buffer {
  if (csid < 64) return Buffer.from([(fmt << 6) | csid]);
  if (csid < 320) return Buffer.from([fmt << 6, csid - 64]);
  const rest = csid - 64;
  return Buffer.from([(fmt << 6) | 1, rest & 0xff, rest >>> 8]);
}

/** A type-0 chunk header declaring a message (the payload is up to the caller). */
function fmt0Header(csid: number, type: number, length: number, streamId: number, timestamp = 0): Buffer {
  const h = Buffer.alloc(11);
  h.writeUIntBE(timestamp, 0, 3);
  h.writeUIntBE(length, 3, 3);
  h[6] = type;
  h.writeUInt32LE(streamId >>> 0, 7);
  return Buffer.concat([basicHeader(0, csid), h]);
}

const cmd = (streamId: number, name: string, txn: number, obj: AmfValue, ...args: AmfValue[]): RtmpMessage =>
  commandMessage(streamId, name, txn, obj, ...args);

/** `levels` AMF0 anonymous objects nested through key "a": 03 (00 01 'a' 03 ...) ... 00 00 09. */
function nestedAmf0Objects(levels: number): Buffer {
  const b = Buffer.alloc(levels * 7 + 1);
  for (let i = 0; i < levels; i++) b.set([0x03, 0x00, 0x01, 0x61], i * 4);
  let o = levels * 4;
  b[o++] = 0x05; // null at the bottom
  for (let i = 0; i < levels; i++, o += 3) b[o + 2] = 0x09; // 00 00 09 object end
  return b;
}

/** `levels` AMF0 strict arrays of one element each: 0A 00000001 0A 00000001 ... 05. */
function nestedAmf0StrictArrays(levels: number): Buffer {
  const b = Buffer.alloc(levels * 5 + 1);
  for (let i = 0; i < levels; i++) {
    b[i * 5] = 0x0a;
    b.writeUInt32BE(1, i * 5 + 1);
  }
  b[levels * 5] = 0x05;
  return b;
}

/** `levels` AMF0 ECMA arrays nested through key "a" (count hint 1): 08 00000001 0001 'a' ... 05 ... 00 00 09. */
function nestedAmf0Ecma(levels: number): Buffer {
  const b = Buffer.alloc(levels * 11 + 1);
  let o = 0;
  for (let i = 0; i < levels; i++, o += 8) {
    b[o] = 0x08;
    b.writeUInt32BE(1, o + 1);
    b.writeUInt16BE(1, o + 5);
    b[o + 7] = 0x61;
  }
  b[o++] = 0x05;
  for (let i = 0; i < levels; i++, o += 3) b[o + 2] = 0x09;
  return b;
}

/** AMF0 0x11 switch, then `levels` AMF3 dense arrays of one element: 09 03 01 ... 01 (null). */
function nestedAmf3Arrays(levels: number): Buffer {
  const b = Buffer.alloc(1 + levels * 3 + 1);
  b[0] = 0x11;
  for (let i = 0; i < levels; i++) b.set([0x09, 0x03, 0x01], 1 + i * 3);
  b[1 + levels * 3] = 0x01;
  return b;
}

/** Synthetic AVC video: sequence header, keyframes every 30 frames, `size`-byte frames (the hub never decodes). */
function avcFrame(n: number, size: number): Buffer {
  const p = Buffer.alloc(size, 0x55);
  p[0] = n % 30 === 0 ? 0x17 : 0x27;
  p[1] = 0x01; // NALU
  p.writeUIntBE(0, 2, 3);
  return p;
}
const AVC_SEQUENCE_HEADER = Buffer.from([
  0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x00, 0x01, 0x00, 0x00,
]);
const AAC_SEQUENCE_HEADER = Buffer.from([0xaf, 0x00, 0x12, 0x10]);

/** An aggregate payload from sub-messages (FLV tag header + data + back pointer); sizes may be overridden to lie. */
function aggregate(
  subs: Array<{ type: number; ts: number; data: Buffer; declared?: number; backPointer?: number }>,
): Buffer {
  return Buffer.concat(
    subs.flatMap((s) => {
      const h = Buffer.alloc(11);
      h[0] = s.type;
      h.writeUIntBE(s.declared ?? s.data.length, 1, 3);
      h.writeUIntBE(s.ts & 0xffffff, 4, 3);
      h[7] = (s.ts >>> 24) & 0xff;
      const bp = Buffer.alloc(4);
      bp.writeUInt32BE(s.backPointer ?? s.data.length + 11, 0);
      return [h, s.data, bp];
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------

describe('hostile input against a live node (docs/INTEROP.md §9)', { timeout: 180_000 }, () => {
  let node: NodeUnderTest;
  let publisher: Running;
  let viewer: RtmpClient;
  const KEY = 'live/main';

  // Real viewer: frames and the largest gap between two video messages while the attacks run.
  let frames = 0;
  let lastFrameAt = 0;
  let maxGapMs = 0;
  let gapsOver1s: string[] = [];
  let armedAt = 0;
  let framesAtArm = 0;
  let viewerCloseReason: string | undefined;

  // /healthz answered throughout?
  let healthStop = false;
  let healthLoop: Promise<void> | undefined;
  let healthChecks = 0;
  const healthFailures: string[] = [];

  let baselineErrors: Map<string, number>;

  before(async () => {
    node = await startTestNode(NODE_ENV);
    publisher = ffmpegPublish(node.rtmpUrl(KEY), { seconds: 150 });
    await waitLive(node, KEY);
    viewer = await RtmpClient.connect(node.rtmpUrl(KEY));
    viewer.on('media', (m) => {
      if (m.type !== MessageType.Video) return;
      const now = performance.now();
      if (armedAt > 0 && lastFrameAt > 0) {
        const gap = now - lastFrameAt;
        if (gap > maxGapMs) maxGapMs = gap;
        if (gap > 1000) gapsOver1s.push(`${Math.round(gap)} ms at +${Math.round(now - armedAt)} ms`);
      }
      lastFrameAt = now;
      frames++;
    });
    viewer.on('close', (reason) => {
      viewerCloseReason = reason;
    });
    await viewer.play();
    await waitFor('30 frames at the real viewer', () => frames >= 30, 15_000);
    await waitFor('publisher + viewer connections', async () => (await node.metric('rtmp_connections')) === 2, 5000);
    // Measure from here on: the join burst (GOP cache) is over.
    armedAt = performance.now();
    lastFrameAt = armedAt;
    framesAtArm = frames;
    maxGapMs = 0;
    gapsOver1s = [];
    baselineErrors = await errorCounts(node);
    healthLoop = (async () => {
      while (!healthStop) {
        const t0 = performance.now();
        try {
          const res = await node.http('/healthz');
          if (res.status !== 200) healthFailures.push(`status ${res.status}`);
          await res.arrayBuffer();
        } catch (err) {
          healthFailures.push(String(err));
        }
        const ms = performance.now() - t0;
        if (ms > 2000) healthFailures.push(`/healthz took ${Math.round(ms)} ms`);
        healthChecks++;
        await delay(250);
      }
    })();
  });

  after(async () => {
    healthStop = true;
    await healthLoop;
    destroyAllRawPeers();
    viewer?.close();
    await publisher?.stop();
    await stopAll();
    await node?.shutdown('test');
  });

  it('bad C0 bytes (RTMPE, TLS, HTTP, unknown versions) are refused at once, without S0', async () => {
    const cases: Array<[string, Buffer, string]> = [
      ['RTMPE 0x06', Buffer.concat([Buffer.from([0x06]), Buffer.alloc(1536, 1)]), 'handshake_rtmpe_unsupported'],
      ['RTMPE 0x08', Buffer.from([0x08]), 'handshake_rtmpe_unsupported'],
      [
        'TLS ClientHello',
        Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
        'handshake_tls',
      ],
      ['GET', Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'), 'handshake_http'],
      ['POST (RTMPT)', Buffer.from('POST /open/1 HTTP/1.1\r\nContent-Length: 1\r\n\r\n\0'), 'handshake_http'],
      ['version 0', Buffer.from([0x00, 0x00, 0x00]), 'handshake_bad_version'],
      ['version 0xff', Buffer.from([0xff]), 'handshake_bad_version'],
    ];
    const before = await errorCounts(node);
    await Promise.all(
      cases.map(async ([what, bytes]) => {
        const peer = await RawRtmpPeer.open(node.rtmpPort);
        peer.send(bytes);
        assertClosed(await peer.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, what);
        assert.equal(
          peer.bytesReceived,
          0,
          `${what}: the server answered ${peer.bytesReceived} bytes (must not send S0)`,
        );
      }),
    );
    const expected: Record<string, number> = {};
    for (const [, , reason] of cases) expected[reason] = (expected[reason] ?? 0) + 1;
    await expectReasons(node, before, expected);
  });

  it('random bytes (fast-check) are always closed, within the handshake + connect deadlines', async (t) => {
    const before = await errorCounts(node);
    // Any first byte; a valid C0 (3) then random C1/C2 of any length; a complete (random) C0+C1+C2 then random
    // bytes for the chunk parser. Lengths are drawn explicitly (fast-check's default size would keep arrays tiny).
    const bytes = (min: number, max: number): fc.Arbitrary<Buffer> =>
      fc
        .integer({ min, max })
        .chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))
        .map((b) => Buffer.from(b));
    const arb = fc.oneof(
      bytes(1, 4000),
      bytes(0, 4000).map((b) => Buffer.concat([Buffer.from([3]), b])),
      fc.tuple(bytes(3072, 3072), bytes(1, 3000)).map(([hs, rest]) => Buffer.concat([Buffer.from([3]), hs, rest])),
    );
    const inputs = fc.sample(arb, { seed: SEED, numRuns: 30 });
    const bound = Math.max(HANDSHAKE_CLOSE_MS, CONNECT_CLOSE_MS);
    const results = await pool(inputs, 16, async (bytes, i) => {
      const peer = await RawRtmpPeer.open(node.rtmpPort);
      const opened = performance.now();
      peer.send(bytes);
      const r = await peer.waitClosed(bound + 500, opened);
      return { i, len: bytes.length, head: bytes.subarray(0, 8).toString('hex'), r };
    });
    const open = results.filter((x) => !x.r.closed || x.r.ms > bound);
    assert.deepEqual(open, [], `seed ${SEED}: connections not closed within ${bound} ms`);
    t.diagnostic(
      `seed ${SEED}, ${inputs.length} inputs, close reasons ${JSON.stringify(delta(before, await errorCounts(node)))}`,
    );
  });

  it('truncated and slow-drip handshakes are closed by HANDSHAKE_TIMEOUT_MS (and half-closes at once)', async () => {
    const before = await errorCounts(node);
    const c0c1 = new ClientHandshake().start();
    const timed = async (what: string, act: (peer: RawRtmpPeer) => Promise<void>): Promise<RawRtmpPeer> => {
      const peer = await RawRtmpPeer.open(node.rtmpPort);
      const opened = performance.now();
      await act(peer);
      const r = await peer.waitClosed(HANDSHAKE_CLOSE_MS + 500, opened);
      assertClosed(r, HANDSHAKE_CLOSE_MS, what);
      assert.ok(r.ms >= L.handshakeTimeoutMs - 100, `${what}: closed after ${r.ms} ms, before the handshake timeout`);
      return peer;
    };
    let dripped = 0;
    const [none, c0, c1Part, c2Partial, drip] = await Promise.all([
      timed('nothing sent', async () => {}),
      timed('C0 only', async (p) => p.send(c0c1.subarray(0, 1))),
      timed('C0 + 1000 bytes of C1', async (p) => p.send(c0c1.subarray(0, 1001))),
      timed('C0 + C1, then 100 bytes of C2', async (p) => {
        p.send(c0c1);
        await waitFor('S0+S1+S2', () => p.bytesReceived >= 3073, 2000, 10);
        p.send(Buffer.alloc(100, 7));
      }),
      timed('slow drip, 1 byte / 100 ms', async (p) => {
        // Bounded: at most 60 bytes / 6 s, stops as soon as the server closes.
        for (let i = 0; i < 60 && !p.closed; i++) {
          p.send(c0c1.subarray(i, i + 1));
          dripped++;
          await delay(100);
        }
      }),
    ]);
    assert.ok(dripped < 30, `the drip went on for ${dripped} bytes`);
    await expectReasons(node, before, { handshake_timeout: 5 });
    // Nothing but S0+S1+S2 may ever be written to a peer that has not finished the handshake.
    const expectedBytes: Array<[string, RawRtmpPeer, number]> = [
      ['nothing sent', none, 0],
      ['C0 only', c0, 0],
      ['C0 + 1000 bytes of C1', c1Part, 0],
      ['C0 + C1 + 100 bytes of C2', c2Partial, 3073],
      ['slow drip (C0 + < 30 bytes of C1)', drip, 0],
    ];
    const wrong = expectedBytes
      .filter(([, p, n]) => p.bytesReceived !== n)
      .map(
        ([what, p, n]) =>
          `${what}: received ${p.bytesReceived} bytes, expected ${n}; extra bytes ${p.receivedBytes(n).toString('hex')}`,
      );
    assert.deepEqual(
      wrong,
      [],
      'the server wrote to peers still in the handshake (an 18-byte chunk = PingRequest from the sweep?)',
    );

    // C0 + part of C1, then FIN: nothing will ever complete, the server closes at once (a normal close, not counted).
    const half = await RawRtmpPeer.open(node.rtmpPort);
    half.send(c0c1.subarray(0, 700));
    half.socket.end();
    assertClosed(await half.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, 'half-closed truncated handshake');
  });

  it('a connection flood past MAX_CONNECTIONS is refused at accept; the accepted ones time out', async () => {
    await waitFor('only publisher + viewer connected', async () => (await node.metric('rtmp_connections')) === 2, 5000);
    const rejectedBefore = await node.metric('rtmp_connections_rejected_total', { reason: 'max_connections' });
    const before = await errorCounts(node);
    const extra = 5;
    const n = L.maxConnections - 2 + extra;
    const peers = await Promise.all(Array.from({ length: n }, () => RawRtmpPeer.open(node.rtmpPort)));
    const opened = performance.now();
    const results = await Promise.all(peers.map((p) => p.waitClosed(HANDSHAKE_CLOSE_MS + 500, opened)));
    const notClosed = results.filter((r) => !r.closed).length;
    assert.equal(notClosed, 0, `${notClosed} flood connections still open`);
    const rejected =
      (await node.metric('rtmp_connections_rejected_total', { reason: 'max_connections' })) - rejectedBefore;
    assert.equal(rejected, extra, 'connections beyond MAX_CONNECTIONS rejected at accept');
    const fast = results.filter((r) => r.ms < L.handshakeTimeoutMs - 200).length;
    assert.equal(fast, extra, 'exactly the rejected ones were closed before the handshake timeout');
    await expectReasons(node, before, { handshake_timeout: n - extra });
    assert.equal(viewer.closed, false, 'the real viewer survived the flood');
  });

  it('chunk layer: Set Chunk Size 0 / bit 31 / below minimum / short, fmt 2-3 on a new csid, too many csids, huge messages', async () => {
    const before = await errorCounts(node);
    const setChunk = (v: number): Buffer =>
      encodeMessageChunks(controlU32(MessageType.SetChunkSize, v), CSID_CONTROL, 128);
    const cases: Array<[string, string, Buffer]> = [
      ['Set Chunk Size 0', 'bad_chunk_size', setChunk(0)],
      ['Set Chunk Size 0x80000000', 'bad_chunk_size', setChunk(0x8000_0000)],
      ['Set Chunk Size 0xFFFFFFFF', 'bad_chunk_size', setChunk(0xffff_ffff)],
      ['Set Chunk Size 1', 'chunk_size_too_small', setChunk(1)],
      [`Set Chunk Size ${L.minChunkSize - 1}`, 'chunk_size_too_small', setChunk(L.minChunkSize - 1)],
      [
        'Set Chunk Size of 2 bytes',
        'bad_control_message',
        Buffer.concat([fmt0Header(CSID_CONTROL, MessageType.SetChunkSize, 2, 0), Buffer.from([0, 1])]),
      ],
      ['fmt 3 on a new csid', 'chunk_stream_not_started', Buffer.concat([basicHeader(3, 10), Buffer.alloc(20)])],
      [
        'fmt 2 on a new 2-byte csid',
        'chunk_stream_not_started',
        Buffer.concat([basicHeader(2, 300), Buffer.alloc(20)]),
      ],
      [
        'fmt 3 on a new 3-byte csid',
        'chunk_stream_not_started',
        Buffer.concat([basicHeader(3, 65599), Buffer.alloc(20)]),
      ],
      [
        'fmt 0 inside an unfinished message',
        'chunk_header_mid_message',
        Buffer.concat([
          fmt0Header(CSID_AUDIO, MessageType.Audio, 300, 1),
          Buffer.alloc(128),
          fmt0Header(CSID_AUDIO, MessageType.Audio, 10, 1),
        ]),
      ],
      ['16 MiB audio declared', 'message_too_large', fmt0Header(CSID_AUDIO, MessageType.Audio, 0xffffff, 1)],
      [
        'audio 1 byte over the cap',
        'message_too_large',
        fmt0Header(CSID_AUDIO, MessageType.Audio, L.maxAudioBytes + 1, 1),
      ],
      [
        '16 MiB video declared (cap 4 MiB)',
        'message_too_large',
        fmt0Header(CSID_VIDEO, MessageType.Video, 0xffffff, 1),
      ],
      [
        '2 MiB command declared',
        'message_too_large',
        fmt0Header(CSID_COMMAND, MessageType.CommandAmf0, 2 * 1024 * 1024, 0),
      ],
      [
        '65-byte Set Chunk Size declared',
        'message_too_large',
        fmt0Header(CSID_CONTROL, MessageType.SetChunkSize, 65, 0),
      ],
      [
        `${L.maxChunkStreams + 1} chunk streams`,
        'too_many_chunk_streams',
        Buffer.concat(
          // Complete 4-byte acknowledgements on csids spread over the 1-, 2- and 3-byte forms.
          Array.from({ length: L.maxChunkStreams + 1 }, (_, i) => {
            const csid = [3 + i, 100 + i, 1000 + i * 1000][i % 3]!;
            return encodeMessageChunks(controlU32(MessageType.Acknowledgement, i), csid, 128);
          }),
        ),
      ],
    ];
    await Promise.all(
      cases.map(async ([what, , bytes]) => {
        const peer = await RawRtmpPeer.openReady(node.rtmpPort);
        peer.send(bytes);
        assertClosed(await peer.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, what);
      }),
    );
    const expected: Record<string, number> = {};
    for (const [, reason] of cases) expected[reason] = (expected[reason] ?? 0) + 1;
    await expectReasons(node, before, expected);
  });

  it('chunk layer: the limits are exact (MAX_CHUNK_STREAMS csids, clamped 0x7FFFFFFF chunk size, partial-byte budget)', async () => {
    const before = await errorCounts(node);
    // Exactly MAX_CHUNK_STREAMS csids are fine (connect on the last one is answered); one more is not.
    const many = await RawRtmpPeer.openReady(node.rtmpPort);
    const csids = Array.from({ length: L.maxChunkStreams }, (_, i) => 3 + i * 7);
    for (const csid of csids.slice(0, -1))
      many.send(encodeMessageChunks(controlU32(MessageType.Acknowledgement, csid), csid, 128));
    many.sendMessage(cmd(0, Command.Connect, 1, connectObject('live', node.rtmpPort)), csids.at(-1)!);
    await many.waitCommand((c) => c.name === '_result' && c.transactionId === 1, 3000);
    many.send(encodeMessageChunks(controlU32(MessageType.Acknowledgement, 0), 65599, 128));
    assertClosed(await many.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, 'MAX_CHUNK_STREAMS + 1');

    // 0x7FFFFFFF is legal and clamped to 0xFFFFFF (never allocated): a connect in one big chunk still works.
    const big = await RawRtmpPeer.openReady(node.rtmpPort);
    big.sendMessage(controlU32(MessageType.SetChunkSize, 0x7fff_ffff), CSID_CONTROL);
    big.sendMessage(cmd(0, Command.Connect, 1, connectObject('live', node.rtmpPort)), CSID_COMMAND, 0xffffff);
    await big.waitCommand((c) => c.name === '_result' && c.transactionId === 1, 3000);
    big.sendMessage(cmd(0, Command.Connect, 2, connectObject('live', node.rtmpPort)), CSID_COMMAND, 0xffffff);
    assertClosed(await big.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, 'second connect after a clamped chunk size');

    // Two unfinished 3.5 MiB videos (each under the 4 MiB cap) exceed the 6 MiB partial budget.
    const partial = await RawRtmpPeer.openReady(node.rtmpPort);
    partial.sendMessage(controlU32(MessageType.SetChunkSize, 65536), CSID_CONTROL);
    const part = 3.5 * 1024 * 1024;
    for (const csid of [CSID_VIDEO, CSID_VIDEO + 1]) {
      partial.send(Buffer.concat([fmt0Header(csid, MessageType.Video, part + 1000, 1), Buffer.alloc(65536)]));
      for (let sent = 65536; sent < part; sent += 65536)
        partial.send(Buffer.concat([basicHeader(3, csid), Buffer.alloc(65536)]));
    }
    assertClosed(await partial.waitClosed(PROMPT_CLOSE_MS * 2), PROMPT_CLOSE_MS * 2, 'partial budget');
    await expectReasons(node, before, { too_many_chunk_streams: 1, duplicate_connect: 1, partial_bytes_exceeded: 1 });
  });

  it('AMF: 70,000-level nesting in commands (AMF0 object / ECMA / strict array, AMF3 array) fails fast with amf_depth', async () => {
    const LEVELS = 70_000;
    const before = await errorCounts(node);
    const connectHead = encodeAmf0(Command.Connect, 1);
    const cases: Array<[string, (p: RawRtmpPeer) => Promise<void>]> = [
      [
        'AMF0 objects as the connect command object',
        async (p) =>
          p.sendMessage({
            type: MessageType.CommandAmf0,
            streamId: 0,
            timestamp: 0,
            payload: Buffer.concat([connectHead, nestedAmf0Objects(LEVELS)]),
          }),
      ],
      [
        'AMF0 ECMA arrays as the connect command object (64 KiB chunks)',
        async (p) => {
          p.sendMessage(controlU32(MessageType.SetChunkSize, 65536), CSID_CONTROL);
          p.sendMessage(
            {
              type: MessageType.CommandAmf0,
              streamId: 0,
              timestamp: 0,
              payload: Buffer.concat([connectHead, nestedAmf0Ecma(LEVELS)]),
            },
            CSID_COMMAND,
            65536,
          );
        },
      ],
      [
        'AMF0 strict arrays as an argument after connect',
        async (p) => {
          await p.connectApp('live', node.rtmpPort);
          const payload = Buffer.concat([encodeAmf0(Command.FCPublish, 2, null), nestedAmf0StrictArrays(LEVELS)]);
          p.sendMessage({ type: MessageType.CommandAmf0, streamId: 0, timestamp: 0, payload });
        },
      ],
      [
        'AMF3 arrays in a type-17 connect',
        async (p) => {
          const payload = Buffer.concat([Buffer.from([0x00]), connectHead, nestedAmf3Arrays(LEVELS)]);
          p.sendMessage({ type: MessageType.CommandAmf3, streamId: 0, timestamp: 0, payload });
        },
      ],
    ];
    await Promise.all(
      cases.map(async ([what, act]) => {
        const peer = await RawRtmpPeer.openReady(node.rtmpPort);
        await act(peer);
        assertClosed(await peer.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, what);
      }),
    );
    await expectReasons(node, before, { amf_depth: cases.length });
  });

  it('AMF: a publisher\'s onMetaData nested 70,000 levels is refused too (AMF_MAX_DEPTH covers "commands and metadata")', async () => {
    const before = await errorCounts(node);
    const peer = await RawRtmpPeer.openReady(node.rtmpPort);
    let player: RawRtmpPeer | undefined;
    try {
      await peer.connectApp('live', node.rtmpPort);
      peer.sendCommand(0, Command.CreateStream, 2, null);
      peer.sendCommand(1, Command.Publish, 0, null, 'deepmeta', 'live');
      await peer.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1, 3000);
      assert.deepEqual(peer.statusCodes(1), ['NetStream.Publish.Start']);
      const deep = nestedAmf0Objects(70_000);
      const payload = Buffer.concat([encodeAmf0('@setDataFrame', 'onMetaData'), deep]);
      peer.sendMessage({ type: MessageType.DataAmf0, streamId: 1, timestamp: 0, payload }, CSID_DATA);
      const r = await peer.waitClosed(PROMPT_CLOSE_MS);
      const d = delta(before, await errorCounts(node));
      let relayed = 'n/a';
      if (!r.closed) {
        // Accepted: does a late-joining player get it from the metadata cache?
        player = await RawRtmpPeer.openReady(node.rtmpPort);
        await player.connectApp('live', node.rtmpPort);
        player.sendCommand(0, Command.CreateStream, 2, null);
        player.sendCommand(1, Command.Play, 0, null, 'deepmeta', -1000);
        const p = player;
        await waitFor(
          'metadata at the player',
          () => p.messages.some((m) => m.type === MessageType.DataAmf0 && m.payload.length > deep.length),
          3000,
        ).catch(() => {});
        const got = p.messages.find((m) => m.type === MessageType.DataAmf0 && m.payload.length > deep.length);
        relayed = got ? `yes, a ${got.payload.length}-byte onMetaData` : 'no';
      }
      assert.ok(
        r.closed && (d['amf_depth'] ?? 0) >= 1,
        `onMetaData nested 70,000 levels was accepted (publisher still connected: ${!r.closed}, error deltas ${JSON.stringify(d)}; ` +
          `relayed to a late-joining player: ${relayed}). AMF_MAX_DEPTH=${L.amfMaxDepth} is documented as covering metadata, ` +
          'but data messages are never decoded: the hub caches the payload and sends it to every player of the stream',
      );
    } finally {
      peer.destroy();
      player?.destroy();
    }
  });

  it('session: the connect deadline runs from the end of the handshake (CONNECT_TIMEOUT_MS: "the first command after the handshake")', async () => {
    // The handshake completes at ~2/3 of HANDSHAKE_TIMEOUT_MS, connect follows at ~1/2 of CONNECT_TIMEOUT_MS: both in time.
    const before = await errorCounts(node);
    const peer = await RawRtmpPeer.open(node.rtmpPort);
    let outcome: string;
    let connectAfterMs = -1;
    try {
      await peer.doHandshake(3000, { holdC2Ms: Math.round(L.handshakeTimeoutMs * 0.66) });
      await waitFor('C2 sent', () => peer.c2SentAt, 3000, 10);
      await delay(L.connectTimeoutMs * 0.5);
      connectAfterMs = Math.round(performance.now() - peer.c2SentAt!);
      outcome = await peer.connectApp('live', node.rtmpPort, 3000).then(
        () => 'answered',
        (err: Error) =>
          `${err.message}${peer.closed ? ` (closed ${Math.round(peer.closedAt! - peer.c2SentAt!)} ms after C2)` : ''}`,
      );
    } finally {
      peer.destroy();
    }
    const d = delta(before, await errorCounts(node));
    assert.equal(
      outcome,
      'answered',
      `connect sent ${connectAfterMs} ms after the handshake completed (CONNECT_TIMEOUT_MS=${L.connectTimeoutMs}) was refused: ` +
        `${outcome}; error deltas ${JSON.stringify(d)}. The sweep measures the connect deadline from accept (session.createdAt), ` +
        'not from the end of the handshake',
    );
  });

  it('session: commands before connect, a second connect, no connect at all, connect then silence', async () => {
    const before = await errorCounts(node);
    const prompt = async (what: string, act: (p: RawRtmpPeer) => Promise<void> | void): Promise<RawRtmpPeer> => {
      const p = await RawRtmpPeer.openReady(node.rtmpPort);
      await act(p);
      assertClosed(await p.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, what);
      return p;
    };
    const timedOut = async (
      what: string,
      bound: number,
      act: (p: RawRtmpPeer) => Promise<void>,
      reference: 'open' | 'last-send',
    ): Promise<RawRtmpPeer> => {
      const p = await RawRtmpPeer.open(node.rtmpPort);
      const opened = performance.now();
      await p.doHandshake();
      await act(p);
      const r = await p.waitClosed(bound + 500, reference === 'open' ? opened : undefined);
      assertClosed(r, bound, what);
      return p;
    };
    const results = await Promise.all([
      prompt('createStream before connect', (p) => p.sendCommand(0, Command.CreateStream, 1, null)),
      prompt('publish before connect', (p) => p.sendCommand(1, Command.Publish, 0, null, 'x', 'live')),
      prompt('play before connect', (p) => p.sendCommand(1, Command.Play, 0, null, 'main', -1000)),
      prompt('deleteStream before connect', (p) => p.sendCommand(0, Command.DeleteStream, 0, null, 1)),
      prompt('second connect', async (p) => {
        await p.connectApp('live', node.rtmpPort);
        p.sendCommand(0, Command.Connect, 2, connectObject('other', node.rtmpPort));
      }),
      // Media and acks keep the socket busy but are not a connect: the connect deadline still applies.
      timedOut(
        'busy without connect',
        CONNECT_CLOSE_MS,
        async (p) => {
          for (let i = 0; i < 40 && !p.closed; i++) {
            p.sendMessage(
              { type: MessageType.Audio, streamId: 1, timestamp: i * 20, payload: AAC_SEQUENCE_HEADER },
              CSID_AUDIO,
            );
            await delay(100);
          }
        },
        'open',
      ),
      timedOut('connect, then silence', IDLE_CLOSE_MS, async (p) => p.connectApp('live', node.rtmpPort), 'last-send'),
    ]);
    for (const p of results.slice(0, 4)) assert.equal(p.commands.length, 0, 'no reply to a command before connect');
    const silent = results[6]!;
    assert.ok(
      silent.messages.some((m) => m.type === MessageType.UserControl && m.payload.readUInt16BE(0) === 6),
      'the server pinged the silent client before dropping it',
    );
    await expectReasons(node, before, {
      command_before_connect: 4,
      duplicate_connect: 1,
      connect_timeout: 1,
      idle_timeout: 1,
    });
  });

  it('session: createStream beyond the limit, publish on stream 0 / absurd ids, bad stream names', async () => {
    const before = await errorCounts(node);

    // createStream past MAX_STREAMS_PER_CONNECTION gets _error (not a new id); then publish on an id never created.
    const flood = await RawRtmpPeer.openReady(node.rtmpPort);
    await flood.connectApp('live', node.rtmpPort);
    const extra = 3;
    for (let i = 0; i < L.maxStreamsPerConnection + extra; i++)
      flood.sendCommand(0, Command.CreateStream, 10 + i, null);
    await flood.waitCommand((c) => c.transactionId === 10 + L.maxStreamsPerConnection + extra - 1, 3000);
    const replies = flood.commands.filter((c) => c.transactionId >= 10);
    const ids = replies.filter((c) => c.name === '_result').map((c) => c.args[1]);
    assert.deepEqual(
      ids,
      Array.from({ length: L.maxStreamsPerConnection }, (_, i) => i + 1),
      'stream ids 1..MAX',
    );
    assert.equal(
      replies.filter((c) => c.name === '_error').length,
      extra,
      '_error for each createStream past the limit',
    );
    flood.sendCommand(0x7fff_ffff, Command.Publish, 0, null, 'absurd', 'live');
    assertClosed(
      await flood.waitClosed(PROMPT_CLOSE_MS),
      PROMPT_CLOSE_MS,
      'publish on an uncreated id with no stream slots left',
    );

    // Publish on message stream 0 (the NetConnection).
    const zero = await RawRtmpPeer.openReady(node.rtmpPort);
    await zero.connectApp('live', node.rtmpPort);
    zero.sendCommand(0, Command.Publish, 0, null, 'zero', 'live');
    assertClosed(await zero.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, 'publish on stream 0');

    // Bad names: refused with Publish.BadName on the stream they came on, and the connection stays usable.
    const names = await RawRtmpPeer.openReady(node.rtmpPort);
    await names.connectApp('live', node.rtmpPort);
    names.sendCommand(0, Command.CreateStream, 2, null);
    const bad = ['', 'x'.repeat(100_000), 'a\u0000b', '../../etc/passwd', 'a/../b', '\u001b[31m'];
    for (const n of bad) names.sendCommand(1, Command.Publish, 0, null, n, 'live');
    names.sendCommand(1, Command.Publish, 0, null, 12345, 'live'); // not a string at all
    await waitFor('a reply per bad publish', () => names.statusCodes(1).length >= bad.length + 1, 3000);
    assert.deepEqual(new Set(names.statusCodes(1)), new Set(['NetStream.Publish.BadName']));

    // An absurd id with slots free: the server creates the NetStream implicitly (documented leniency for clients that
    // skip createStream's reply); the reply must come on that id, and everything must go when the peer goes.
    const absurd = await RawRtmpPeer.openReady(node.rtmpPort);
    await absurd.connectApp('live', node.rtmpPort);
    absurd.sendCommand(0xffff_ffff, Command.Publish, 0, null, 'absurd-id', 'live');
    await absurd.waitCommand((c) => c.name === 'onStatus', 3000);
    assert.deepEqual(
      absurd.commands.filter((c) => c.name === 'onStatus').map((c) => c.streamId),
      [0xffff_ffff],
    );
    names.sendCommand(0, Command.Connect, 3, connectObject('live', node.rtmpPort));
    const [rn, ra] = await Promise.all([names.waitClosed(PROMPT_CLOSE_MS), absurd.waitClosed(IDLE_CLOSE_MS)]);
    assertClosed(rn, PROMPT_CLOSE_MS, 'bad names, then a second connect');
    assertClosed(ra, IDLE_CLOSE_MS, 'silent publisher on an absurd stream id (idle timeout)');
    await expectReasons(node, before, { bad_stream_id: 2, duplicate_connect: 1, idle_timeout: 1 });
    await waitFor(
      'live/absurd-id gone',
      async () => (await node.http('/api/streams/live/absurd-id')).status === 404,
      3000,
    );
  });

  it('Abort: random csids are harmless, an aborted partial message is dropped and framing stays intact', async () => {
    const before = await errorCounts(node);
    const peer = await RawRtmpPeer.openReady(node.rtmpPort);
    await peer.connectApp('live', node.rtmpPort);
    // A command message left half-way on csid 9 ...
    const createStream = encodeAmf0(Command.CreateStream, 7, null);
    // (exactly one full 128-byte chunk, so the reader stands between chunks)
    peer.send(Buffer.concat([fmt0Header(9, MessageType.CommandAmf0, 300, 0), Buffer.alloc(128, 0x41)]));
    // ... Abort of random chunk streams (in use, unused, escape values, out of range) ...
    const randomCsids = fc.sample(
      fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(0, 1, 2, 3, 9, 65599, 0xffff_ffff)),
      { seed: SEED, numRuns: 60 },
    );
    peer.send(
      Buffer.concat(randomCsids.map((c) => encodeMessageChunks(controlU32(MessageType.Abort, c), CSID_CONTROL, 128))),
    );
    // ... then csid 9 starts over with a new type-0 header: legal only if the partial message was aborted.
    peer.send(Buffer.concat([fmt0Header(9, MessageType.CommandAmf0, createStream.length, 0), createStream]));
    const reply = await peer.waitCommand((c) => c.transactionId === 7, 3000);
    assert.equal(reply.name, '_result', 'createStream after the aborts is answered');
    peer.sendCommand(0, Command.Connect, 8, connectObject('live', node.rtmpPort));
    assertClosed(await peer.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, 'second connect after the aborts');
    await expectReasons(node, before, { duplicate_connect: 1 });
  });

  it('aggregate messages with lying sizes close the publisher; honest ones are split', async () => {
    const before = await errorCounts(node);
    const publishOn = async (name: string): Promise<RawRtmpPeer> => {
      const p = await RawRtmpPeer.openReady(node.rtmpPort);
      await p.connectApp('live', node.rtmpPort);
      p.sendCommand(0, Command.CreateStream, 2, null);
      p.sendCommand(1, Command.Publish, 0, null, name, 'live');
      await p.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1, 3000);
      assert.deepEqual(p.statusCodes(1), ['NetStream.Publish.Start'], name);
      return p;
    };
    const agg = (payload: Buffer): RtmpMessage => ({
      type: MessageType.Aggregate,
      streamId: 1,
      timestamp: 1000,
      payload,
    });
    const honest = aggregate([
      { type: MessageType.Video, ts: 0, data: AVC_SEQUENCE_HEADER },
      { type: MessageType.Audio, ts: 0, data: AAC_SEQUENCE_HEADER },
      { type: MessageType.Video, ts: 33, data: avcFrame(0, 200), backPointer: 0xdeadbeef }, // back pointers are not trusted
      { type: MessageType.CommandAmf0, ts: 40, data: encodeAmf0(Command.Connect, 1, null) }, // not media: ignored
      { type: MessageType.Aggregate, ts: 50, data: Buffer.alloc(5) }, // nested aggregate: ignored
    ]);
    const lies: Array<[string, string, Buffer]> = [
      [
        'sub-message longer than the aggregate',
        'bad_aggregate',
        aggregate([{ type: MessageType.Video, ts: 0, data: avcFrame(0, 50), declared: 0xffffff }]),
      ],
      [
        'second sub-message longer than what is left',
        'bad_aggregate',
        aggregate([
          { type: MessageType.Audio, ts: 0, data: AAC_SEQUENCE_HEADER },
          { type: MessageType.Video, ts: 1, data: avcFrame(0, 50), declared: 50 + 4 + 10 }, // past the back pointer too
        ]),
      ],
      ['truncated sub-message header', 'bad_aggregate', Buffer.from([MessageType.Video, 0, 0, 5, 0])],
      [
        '4097 empty sub-messages',
        'bad_aggregate',
        aggregate(Array.from({ length: 4097 }, () => ({ type: 0, ts: 0, data: Buffer.alloc(0) }))),
      ],
      [
        '1-byte AVC video inside',
        'video_truncated',
        aggregate([{ type: MessageType.Video, ts: 0, data: Buffer.from([0x17]) }]),
      ],
    ];
    const honestPeer = await publishOn('agg-honest');
    honestPeer.sendMessage(agg(honest), CSID_VIDEO);
    await waitFor(
      'honest aggregate split into the hub',
      async () => {
        const s = await node.json<{ messagesIn?: number }>('/api/streams/live/agg-honest');
        return (s.messagesIn ?? 0) >= 3;
      },
      3000,
    );
    assert.equal(honestPeer.closed, false, 'an honest aggregate keeps the publisher');
    await Promise.all(
      lies.map(async ([what, , payload], i) => {
        const p = await publishOn(`agg-lie-${i}`);
        p.sendMessage(agg(payload), CSID_VIDEO, 128);
        assertClosed(await p.waitClosed(PROMPT_CLOSE_MS), PROMPT_CLOSE_MS, what);
      }),
    );
    honestPeer.destroy();
    const expected: Record<string, number> = {};
    for (const [, reason] of lies) expected[reason] = (expected[reason] ?? 0) + 1;
    await expectReasons(node, before, expected);
  });

  it('mutated valid chunk streams (fast-check: flip / insert / delete / set bytes) are always closed in bounded time', async (t) => {
    // A real publisher's byte stream after the handshake, built with the library's own encoders.
    const base = (name: string): Buffer => {
      const parts: Buffer[] = [];
      const m = (msg: RtmpMessage, csid: number, size: number): void =>
        void parts.push(encodeMessageChunks(msg, csid, size));
      m(
        cmd(0, Command.Connect, 1, { ...connectObject('fuzz', node.rtmpPort), description: 'x'.repeat(100) }),
        CSID_COMMAND,
        128,
      );
      m(controlU32(MessageType.WindowAckSize, 2_500_000), CSID_CONTROL, 128);
      m(controlU32(MessageType.SetChunkSize, 4096), CSID_CONTROL, 128);
      m(cmd(0, Command.ReleaseStream, 2, null, name), CSID_COMMAND, 4096);
      m(cmd(0, Command.FCPublish, 3, null, name), CSID_COMMAND, 4096);
      m(cmd(0, Command.CreateStream, 4, null), CSID_COMMAND, 4096);
      m(cmd(1, Command.Publish, 5, null, name, 'live'), CSID_STREAM, 4096);
      m(
        {
          type: MessageType.DataAmf0,
          streamId: 1,
          timestamp: 0,
          payload: encodeAmf0('@setDataFrame', 'onMetaData', {
            width: 320,
            height: 240,
            framerate: 30,
            videocodecid: 7,
          }),
        },
        CSID_DATA,
        4096,
      );
      m({ type: MessageType.Video, streamId: 1, timestamp: 0, payload: AVC_SEQUENCE_HEADER }, CSID_VIDEO, 4096);
      m({ type: MessageType.Audio, streamId: 1, timestamp: 0, payload: AAC_SEQUENCE_HEADER }, CSID_AUDIO, 4096);
      m({ type: MessageType.Video, streamId: 1, timestamp: 33, payload: avcFrame(0, 5000) }, CSID_VIDEO, 4096);
      m(
        {
          type: MessageType.Aggregate,
          streamId: 1,
          timestamp: 66,
          payload: aggregate([
            { type: MessageType.Video, ts: 66, data: avcFrame(1, 300) },
            { type: MessageType.Audio, ts: 70, data: Buffer.from([0xaf, 0x01, 1, 2, 3]) },
          ]),
        },
        CSID_VIDEO,
        4096,
      );
      m(controlU32(MessageType.Abort, CSID_AUDIO), CSID_CONTROL, 4096);
      m(controlU32(MessageType.Acknowledgement, 1234), CSID_CONTROL, 4096);
      return Buffer.concat(parts);
    };
    type Mutation =
      | { kind: 'flip'; at: number; xor: number }
      | { kind: 'set'; at: number; value: number }
      | { kind: 'insert'; at: number; bytes: Uint8Array }
      | { kind: 'delete'; at: number; len: number };
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({
        kind: fc.constant('set' as const),
        at: fc.nat(),
        value: fc.constantFrom(0x00, 0x01, 0x02, 0x3f, 0x7f, 0x80, 0xc0, 0xff),
      }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
    );
    const apply = (buf: Buffer, muts: Mutation[]): Buffer => {
      let b = buf;
      for (const mu of muts) {
        const at = mu.at % b.length;
        if (mu.kind === 'flip') (b = Buffer.from(b))[at] = b[at]! ^ mu.xor;
        else if (mu.kind === 'set') (b = Buffer.from(b))[at] = mu.value;
        else if (mu.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(mu.bytes), b.subarray(at)]);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(at + mu.len)]);
      }
      return b;
    };
    const cases = fc.sample(fc.array(mutation, { minLength: 1, maxLength: 5 }), { seed: SEED, numRuns: 48 });
    const before = await errorCounts(node);
    const results = await pool(cases, 16, async (muts, i) => {
      const peer = await RawRtmpPeer.openReady(node.rtmpPort);
      peer.send(apply(base(`fz${i}`), muts));
      // Worst case the mutation left a valid publisher that then goes silent: the idle timeout closes it.
      const r = await peer.waitClosed(IDLE_CLOSE_MS + 500);
      return { i, muts: JSON.stringify(muts), r, parseError: peer.parseError?.message };
    });
    const bad = results.filter((x) => !x.r.closed || x.r.ms > IDLE_CLOSE_MS || x.parseError);
    assert.deepEqual(
      bad,
      [],
      `seed ${SEED}: mutated streams not closed in ${IDLE_CLOSE_MS} ms (or server bytes unparseable)`,
    );
    const d = delta(before, await errorCounts(node));
    const total = Object.values(d).reduce((a, b) => a + b, 0);
    t.diagnostic(`seed ${SEED}, ${cases.length} cases, close reasons ${JSON.stringify(d)}`);
    // Connections that closed on their own (peer_closed) are not counted; every other close has a reason.
    assert.ok(
      total >= cases.length * 0.5,
      `only ${total} of ${cases.length} mutated connections counted: ${JSON.stringify(d)}`,
    );
    await waitFor(
      'no fuzz stream left',
      async () => {
        const { streams } = await node.json<{ streams: Array<{ key: string }> }>('/api/streams');
        return !streams.some((s) => s.key.startsWith('fuzz/'));
      },
      3000,
    );
  });

  it('never-reading players are dropped by the slow-viewer policy without slowing the publisher; silent ones by the idle timeout', async () => {
    const before = await errorCounts(node);
    const slowBefore = await node.metric('rtmp_slow_viewers_disconnected_total');
    // A 1 MB/s synthetic publisher: the test pattern (~30 KB/s) would take minutes to fill the kernel socket buffers
    // of a loopback connection before the server's own backlog (socket.writableLength) grows at all.
    const fire = await RtmpClient.connect(node.rtmpUrl('live/firehose'), { chunkSize: 65536 });
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const players: RawRtmpPeer[] = [];
    const keepAlive: NodeJS.Timeout[] = [];
    try {
      await fire.publish();
      fire.sendMedia(MessageType.Video, 0, AVC_SEQUENCE_HEADER);
      timer = setInterval(() => {
        fire.sendMedia(MessageType.Video, sent * 33, avcFrame(sent, 32 * 1024));
        sent++;
      }, 33);
      const play = async (name: string): Promise<RawRtmpPeer> => {
        const p = await RawRtmpPeer.openReady(node.rtmpPort);
        await p.connectApp('live', node.rtmpPort);
        p.sendCommand(0, Command.CreateStream, 2, null);
        p.sendCommand(1, Command.Play, 0, null, name, -1000);
        await p.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1, 3000);
        p.stopReading();
        players.push(p);
        return p;
      };
      const chatty = await Promise.all([play('firehose'), play('firehose')]);
      // They keep writing (acks), so the idle timeout never fires: only the backlog policy can drop them.
      for (const p of chatty)
        keepAlive.push(setInterval(() => p.sendMessage(controlU32(MessageType.Acknowledgement, 1), CSID_CONTROL), 500));
      const silent = await play('main');
      await waitFor(
        'two slow viewers dropped and one idle one',
        async () => {
          const d = delta(before, await errorCounts(node));
          return (d['slow_viewer'] ?? 0) >= 2 && (d['idle_timeout'] ?? 0) >= 1;
        },
        20_000,
        250,
      );
      for (const t of keepAlive) clearInterval(t);
      for (const p of players) p.resumeReading();
      for (const p of [...chatty, silent])
        assertClosed(await p.waitClosed(3000, performance.now()), 3000, 'dropped never-reading player');
      assert.equal((await node.metric('rtmp_slow_viewers_disconnected_total')) - slowBefore, 2);
      assert.equal(fire.closed, false, 'the publisher was not affected by its slow players');
      // The server kept reading the publisher while its players were stuck (the hub counted what was sent so far).
      const sentSoFar = sent;
      await waitFor(
        'the hub to take in what the publisher sent',
        async () =>
          ((await node.json<{ messagesIn?: number }>('/api/streams/live/firehose')).messagesIn ?? 0) >= sentSoFar,
        3000,
      ).catch(async () => {
        const s = await node.json<{ messagesIn?: number }>('/api/streams/live/firehose');
        assert.fail(`publisher sent ${sentSoFar} frames, the hub took in ${s.messagesIn}: the publisher was held back`);
      });
      await expectReasons(node, before, { slow_viewer: 2, idle_timeout: 1 });
    } finally {
      clearInterval(timer);
      for (const t of keepAlive) clearInterval(t);
      for (const p of players) p.destroy();
      fire.close();
    }
    await waitFor(
      'live/firehose gone',
      async () => (await node.http('/api/streams/live/firehose')).status === 404,
      3000,
    );
  });

  it('afterwards: no crash, no starved viewer, no leaked connection / hub / gauge, and FFmpeg still plays', async () => {
    await waitFor(
      'connections back to publisher + viewer',
      async () => (await node.metric('rtmp_connections')) === 2,
      8000,
    ).catch(async () => {
      assert.fail(`rtmp_connections is ${await node.metric('rtmp_connections')} after the attacks, expected 2`);
    });
    assert.equal(await node.metric('rtmp_publishers'), 1, 'rtmp_publishers');
    assert.equal(await node.metric('rtmp_viewers', { protocol: 'rtmp' }), 1, 'rtmp_viewers');
    await waitFor(
      'only the real stream listed',
      async () => {
        const { streams } = await node.json<{ streams: Array<{ key: string }> }>('/api/streams');
        return streams.length === 1 && streams[0]!.key === KEY;
      },
      3000,
    ).catch(async () => {
      assert.fail(`/api/streams after the attacks: ${JSON.stringify(await node.json('/api/streams'))}`);
    });
    const node_ = await node.json<{ connections: number; streams: number }>('/api/node');
    assert.equal(node_.connections, 2);
    assert.equal(node_.streams, 1);

    // The server process: answering throughout, and now.
    healthStop = true;
    await healthLoop;
    assert.deepEqual(healthFailures, [], '/healthz failures during the attacks');
    assert.ok(healthChecks > 20, `only ${healthChecks} health checks ran`);
    assert.equal((await node.http('/healthz')).status, 200);

    // The real viewer: never starved, never dropped.
    const now = performance.now();
    const elapsedS = (now - armedAt) / 1000;
    const gotFrames = frames - framesAtArm;
    const finalGap = now - lastFrameAt;
    assert.equal(viewerCloseReason, undefined, `the real viewer was closed: ${viewerCloseReason}`);
    assert.ok(
      Math.max(maxGapMs, finalGap) < 2000,
      `largest gap between video frames ${Math.round(Math.max(maxGapMs, finalGap))} ms; gaps > 1 s: ${gapsOver1s.join(', ')}`,
    );
    assert.ok(
      gotFrames >= elapsedS * 30 * 0.8,
      `${gotFrames} frames in ${elapsedS.toFixed(1)} s of attacks (30 fps source)`,
    );

    // Nothing counted as an error that should not have been: the publisher and viewer never failed.
    const errorsTotal = delta(baselineErrors, await errorCounts(node));
    assert.ok(
      !('socket_error' in errorsTotal) && !('internal_error' in errorsTotal),
      `unexpected reasons: ${JSON.stringify(errorsTotal)}`,
    );

    // A fresh FFmpeg player still decodes the stream; then the connection count returns to 2.
    const r = await ffmpegCountFrames(node.rtmpUrl(KEY), 3);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 60, `fresh FFmpeg player decoded ${r.frames} frames`);
    await waitFor(
      'connections back to 2 after the FFmpeg player',
      async () => (await node.metric('rtmp_connections')) === 2,
      5000,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('hostile input: NetStream ids created implicitly vs createStream', { timeout: 60_000 }, () => {
  let node: NodeUnderTest;
  let source: RtmpClient | undefined;
  let timer: NodeJS.Timeout | undefined;

  before(async () => {
    node = await startTestNode(NODE_ENV);
  });
  after(async () => {
    clearInterval(timer);
    source?.close();
    destroyAllRawPeers();
    await stopAll();
    await node?.shutdown('test');
  });

  const streamsListed = async (): Promise<string[]> =>
    (await node.json<{ streams: Array<{ key: string }> }>('/api/streams')).streams.map((s) => s.key);

  it('publish on stream 1 without createStream, then createStream: the id is not handed out twice and nothing leaks', async () => {
    const peer = await RawRtmpPeer.openReady(node.rtmpPort);
    await peer.connectApp('live', node.rtmpPort);
    // Like a client that does not wait for createStream's reply and assumes stream 1 (accepted by design).
    peer.sendCommand(1, Command.Publish, 0, null, 'implicit', 'live');
    await peer.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1, 3000);
    assert.deepEqual(peer.statusCodes(1), ['NetStream.Publish.Start']);
    peer.sendCommand(0, Command.CreateStream, 2, null);
    const reply = await peer.waitCommand((c) => c.transactionId === 2, 3000);
    const newId = reply.args[1];
    peer.destroy();
    await waitFor('the publisher connection gone', async () => (await node.metric('rtmp_connections')) === 0, 3000);
    await delay(500); // > UNPUBLISH_GRACE_MS
    const listed = await streamsListed();
    const publishers = await node.metric('rtmp_publishers');
    assert.ok(
      listed.length === 0 && publishers === 0,
      `after the only publisher disconnected: /api/streams ${JSON.stringify(listed)}, rtmp_publishers ${publishers} ` +
        `(createStream returned ${String(newId)} while stream 1 was already publishing)`,
    );
  });

  it('play on stream 1 without createStream, then createStream: the viewer slot is released on disconnect', async () => {
    source = await RtmpClient.connect(node.rtmpUrl('live/src'), { chunkSize: 4096 });
    await source.publish();
    source.sendMedia(MessageType.Video, 0, AVC_SEQUENCE_HEADER);
    let n = 0;
    timer = setInterval(() => source!.sendMedia(MessageType.Video, ++n * 33, avcFrame(n, 500)), 33);
    const peer = await RawRtmpPeer.openReady(node.rtmpPort);
    await peer.connectApp('live', node.rtmpPort);
    peer.sendCommand(1, Command.Play, 0, null, 'src', -1000);
    await peer.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1, 3000);
    peer.sendCommand(0, Command.CreateStream, 2, null);
    const reply = await peer.waitCommand((c) => c.transactionId === 2, 3000);
    const newId = reply.args[1];
    peer.destroy();
    await waitFor('the player connection gone', async () => (await node.metric('rtmp_connections')) === 1, 3000);
    const viewers = await node.metric('rtmp_viewers', { protocol: 'rtmp' });
    const hub = await node.json<{ viewers?: number }>('/api/streams/live/src');
    clearInterval(timer);
    source.close();
    source = undefined;
    await delay(600);
    const listed = (await streamsListed()).filter((k) => k === 'live/src');
    assert.ok(
      viewers === 0 && hub.viewers === 0 && listed.length === 0,
      `after the only player disconnected: rtmp_viewers ${viewers}, hub viewers ${hub.viewers}; after the publisher left too: ` +
        `/api/streams ${JSON.stringify(listed)} (createStream returned ${String(newId)} while stream 1 was already playing)`,
    );
  });
});
