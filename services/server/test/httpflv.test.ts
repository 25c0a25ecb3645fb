/**
 * HTTP-FLV and WebSocket-FLV playback: real players (FFmpeg, ffprobe, a `ws` client, Node's HTTP client) against a
 * standalone node, an origin + edge cluster (Redis, NATS) for the shared on-demand pull and play tokens, the
 * slow-viewer policy on a stalled HTTP viewer, and the zero-copy fan-out (the same Buffer to every FLV viewer).
 */
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HubRegistry, StreamHub, createHubMessage, flvTagFor } from '@rtmp-relay/hub';
import {
  FlvReader,
  MessageType,
  RtmpClient,
  encodeAmf0,
  encodeFlvTag,
  decodeAmf0,
  parseAudioTag,
  parseVideoTag,
  type FlvTag,
} from '@rtmp-relay/rtmp';
import WebSocket from 'ws';
import { signedQuery } from '../src/auth/index.js';
import { loadConfig } from '../src/config.js';
import {
  HttpFlvViewer,
  WsFlvViewer,
  flvHeaderFlags,
  parseCodecsQuery,
  parseFlvPath,
  type FlvWebSocket,
} from '../src/flv/index.js';
import { startNode, type RunningNode } from '../src/node.js';
import { ffmpegCountFrames, ffmpegPublish, ffprobeCount } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const log = (...args: unknown[]): void => console.log('   ', ...args);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// FLV players

/** What one FLV player received: parsed tags (with arrival times), bytes, the end. */
class FlvRecorder {
  readonly reader = new FlvReader();
  readonly tags: Array<FlvTag & { at: number }> = [];
  bytes = 0;
  /** Largest tag body seen. */
  maxTagSize = 0;
  firstKeyframeAt: number | undefined;
  ended = false;
  error: string | undefined;
  readonly openedAt = performance.now();

  push(chunk: Buffer): FlvTag[] {
    this.bytes += chunk.length;
    const tags = this.reader.push(chunk);
    const now = performance.now();
    for (const t of tags) {
      if (t.data.length > this.maxTagSize) this.maxTagSize = t.data.length;
      // Keep the first few dozen tags whole for assertions; count the rest.
      if (this.tags.length < 64) this.tags.push({ ...t, data: Buffer.from(t.data), at: now });
      if (this.firstKeyframeAt === undefined && t.type === MessageType.Video && t.data.length > 0) {
        const info = parseVideoTag(t.data);
        if (info.isKeyframe && !info.isSequenceHeader) this.firstKeyframeAt = now;
      }
    }
    return tags;
  }

  get header(): { audio: boolean; video: boolean } | undefined {
    return this.reader.header;
  }
}

interface HttpFlvPlayer {
  rec: FlvRecorder;
  res: IncomingMessage;
  req: http.ClientRequest;
  close(): void;
}

/** GET an .flv URL; resolves with the response (any status). */
function httpFlv(url: string, agent: http.Agent | false = false): Promise<HttpFlvPlayer> {
  return new Promise((resolve, reject) => {
    const rec = new FlvRecorder();
    const req = http.get(url, { agent }, (res) => {
      if (res.statusCode === 200) {
        res.on('data', (d: Buffer) => {
          try {
            rec.push(d);
          } catch (err) {
            rec.error = String(err);
          }
        });
      } else {
        res.resume();
      }
      res.on('end', () => (rec.ended = true));
      res.on('error', () => {});
      resolve({ rec, res, req, close: () => req.destroy() });
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

interface WsFlvPlayer {
  rec: FlvRecorder;
  ws: WebSocket;
  /** Binary messages received, in order, with their sizes. */
  messages: number;
  firstMessage: Buffer | undefined;
  /** Messages that were not exactly one FLV tag (after the header). */
  badFrames: number;
  closeCode: number | undefined;
  close(): void;
}

/** Opens a WebSocket-FLV player; resolves once open (rejects on an HTTP error status with it in the message). */
function wsFlv(url: string): Promise<WsFlvPlayer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 15_000 });
    const p: WsFlvPlayer = {
      rec: new FlvRecorder(),
      ws,
      messages: 0,
      firstMessage: undefined,
      badFrames: 0,
      closeCode: undefined,
      close: () => ws.terminate(),
    };
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      p.messages++;
      if (!isBinary) p.badFrames++;
      if (p.messages === 1) p.firstMessage = Buffer.from(data);
      try {
        const tags = p.rec.push(data);
        // After the header, every message is exactly one tag: it parses completely, with nothing left over.
        if (p.messages > 1 && (tags.length !== 1 || p.rec.reader.pendingBytes !== 0)) p.badFrames++;
      } catch (err) {
        p.rec.error = String(err);
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () =>
        reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })),
      );
    });
    ws.on('open', () => resolve(p));
    ws.on('close', (code) => {
      p.closeCode = code;
      p.rec.ended = true;
    });
    ws.on('error', (err) => reject(err));
  });
}

const videoInfo = (t: FlvTag) => parseVideoTag(t.data);

/** The join sequence a player must see: onMetaData, AVC sequence header, AAC sequence header, then a keyframe first. */
function assertJoinSequence(tags: FlvTag[], who: string): void {
  const script = tags.findIndex((t) => t.type === 18);
  const avcSeq = tags.findIndex((t) => t.type === 9 && videoInfo(t).isSequenceHeader);
  const aacSeq = tags.findIndex((t) => t.type === 8 && parseAudioTag(t.data).isSequenceHeader);
  const firstFrame = tags.findIndex((t) => t.type === 9 && !videoInfo(t).isSequenceHeader);
  assert.equal(script, 0, `${who}: onMetaData is the first tag`);
  const meta = decodeAmf0(tags[script]!.data);
  assert.equal(meta[0], 'onMetaData', `${who}: script tag is onMetaData`);
  assert.ok(avcSeq > 0, `${who}: AVC sequence header present`);
  assert.equal(tags[avcSeq]!.data[0], 0x17, `${who}: AVC sequence header is an AVC keyframe packet`);
  assert.ok(aacSeq > 0, `${who}: AAC sequence header present`);
  assert.equal(tags[aacSeq]!.data[0]! >> 4, 10, `${who}: AAC`);
  assert.ok(firstFrame > avcSeq, `${who}: video frames come after the AVC sequence header`);
  assert.ok(videoInfo(tags[firstFrame]!).isKeyframe, `${who}: the first video frame is a keyframe`);
  const firstAudio = tags.findIndex((t) => t.type === 8 && !parseAudioTag(t.data).isSequenceHeader);
  if (firstAudio >= 0) assert.ok(firstAudio > aacSeq, `${who}: audio frames come after the AAC sequence header`);
}

function closeAll(players: Array<{ close(): void }>): void {
  for (const p of players) p.close();
}

after(async () => {
  await stopAll();
  await stopAllServices();
});

// ---------------------------------------------------------------------------------------------------------------

describe('FLV viewers in the hub (unit-ish: fake transports)', () => {
  /** A fake socket that records every write (Buffer identity kept). */
  function fakeSocket() {
    const writes: Buffer[] = [];
    return {
      writes,
      destroyed: false,
      writableLength: 0,
      cork: () => {},
      uncork: () => {},
      write(b: Buffer) {
        writes.push(b);
        return true;
      },
    };
  }
  /** Records what the hub hands the viewer (the HubViewer.write spy). */
  function spyWrites(viewer: { write(b: Buffer): void }): Buffer[] {
    const seen: Buffer[] = [];
    const write = viewer.write.bind(viewer);
    viewer.write = (b: Buffer) => {
      seen.push(b);
      write(b);
    };
    return seen;
  }
  function httpViewer(id: string, fourCcs: Set<string> = new Set()) {
    const socket = fakeSocket();
    const res = {
      socket,
      chunkedEncoding: true,
      once: () => res,
      end: () => {},
      destroy: () => {},
      destroyed: false,
      writableEnded: false,
    };
    const viewer = new HttpFlvViewer(id, res as unknown as http.ServerResponse, fourCcs, () => {});
    return { viewer, socket, hubWrites: spyWrites(viewer) };
  }
  function wsViewer(id: string, fourCcs: Set<string> = new Set()) {
    const sent: Buffer[] = [];
    const ws: FlvWebSocket = {
      readyState: 1,
      bufferedAmount: 0,
      send: (b) => void sent.push(b),
      close: () => {},
      terminate: () => {},
      on: () => ws,
      once: () => ws,
    };
    const socket = fakeSocket();
    const viewer = new WsFlvViewer(id, ws, socket as unknown as Socket, fourCcs, () => {});
    /** Binary messages in order: ws.send()s (header, join burst), then raw frames written to the socket (unframed). */
    const messages = (): Buffer[] => [...sent, ...socket.writes.map(unframe)];
    return { viewer, sent, socket, messages, hubWrites: spyWrites(viewer) };
  }
  /** Checks a server WebSocket frame (FIN, binary, unmasked, exact length) and returns its payload. */
  function unframe(frame: Buffer): Buffer {
    assert.equal(frame[0], 0x82, 'FIN + binary');
    const b1 = frame[1]!;
    assert.equal(b1 & 0x80, 0, 'server frames are not masked');
    let len = b1 & 0x7f;
    let offset = 2;
    if (len === 126) {
      len = frame.readUInt16BE(2);
      offset = 4;
      assert.ok(len >= 126, 'minimal length encoding');
    } else if (len === 127) {
      len = Number(frame.readBigUInt64BE(2));
      offset = 10;
      assert.ok(len >= 0x10000, 'minimal length encoding');
    }
    assert.equal(frame.length, offset + len, 'one whole frame');
    return frame.subarray(offset);
  }
  const avcSeq = Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 1]);
  const avcKey = (n: number, size = 900) => Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), Buffer.alloc(size, n)]);
  const avcInter = (n: number, size = 300) => Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0]), Buffer.alloc(size, n)]);
  const aacSeq = Buffer.from([0xaf, 0, 0x12, 0x10]);
  const aac = (n: number) => Buffer.concat([Buffer.from([0xaf, 1]), Buffer.alloc(60, n)]);
  const exSeq = (fourCc: string) =>
    Buffer.concat([Buffer.from([0x80 | 0x10 | 0]), Buffer.from(fourCc, 'latin1'), Buffer.from([1, 2, 3])]);
  const exKey = (fourCc: string, n: number) =>
    Buffer.concat([
      Buffer.from([0x80 | 0x10 | 1]),
      Buffer.from(fourCc, 'latin1'),
      Buffer.from([0, 0, 0]),
      Buffer.alloc(500, n),
    ]);
  const pub = { id: 'pub', kick: () => {} };
  const push = (hub: StreamHub, type: number, ts: number, payload: Buffer) =>
    hub.push({ type, streamId: 1, timestamp: ts, payload });

  it('two HTTP-FLV and two WS-FLV viewers are handed the identical Buffer for every message; on the wire one shared Buffer per protocol (zero per-viewer copies)', () => {
    // Audio goes out at once here so each message is one observable write (coalescing has its own hub tests).
    const registry = new HubRegistry({ audioCoalesceMs: 0 });
    const hub = registry.getOrCreate('live/share');
    hub.attachPublisher(pub);
    push(
      hub,
      MessageType.DataAmf0,
      0,
      encodeAmf0('@setDataFrame', 'onMetaData', { width: 320, height: 240, videocodecid: 7, audiocodecid: 10 }),
    );
    push(hub, MessageType.Video, 0, avcSeq);
    push(hub, MessageType.Audio, 0, aacSeq);
    push(hub, MessageType.Video, 0, avcKey(1));
    const h1 = httpViewer('h1');
    const h2 = httpViewer('h2');
    const w1 = wsViewer('w1');
    const w2 = wsViewer('w2');
    for (const v of [h1, h2, w1, w2]) hub.addViewer(v.viewer);
    const joinWrites = [h1, h2, w1, w2].map((v) => v.hubWrites.length);
    assert.deepEqual(joinWrites, [4, 4, 4, 4], 'join: metadata, two sequence headers, the GOP keyframe');
    const mark = {
      h1: h1.socket.writes.length,
      h2: h2.socket.writes.length,
      w1: w1.socket.writes.length,
      w2: w2.socket.writes.length,
    };
    // Sizes across every WebSocket length encoding (7-bit, 16-bit, 64-bit).
    for (let i = 1; i <= 20; i++) {
      push(hub, MessageType.Video, i * 33, i % 10 === 0 ? avcKey(i, 70_000) : avcInter(i, i === 5 ? 50 : 300));
      push(hub, MessageType.Audio, i * 33, aac(i));
    }
    // The HubViewer.write spy: the same FLV tag instance for all four viewers, message by message.
    const live = [h1, h2, w1, w2].map((v) => v.hubWrites.slice(4));
    assert.equal(live[0]!.length, 40);
    for (let i = 0; i < 40; i++) {
      assert.ok(
        live.every((l) => l[i] === live[0]![i]),
        `message ${i}: one Buffer instance for all four viewers`,
      );
    }
    // On the wire: one write per viewer per message, the same Buffer for both viewers of a protocol.
    const hw1 = h1.socket.writes.slice(mark.h1);
    const hw2 = h2.socket.writes.slice(mark.h2);
    const ww1 = w1.socket.writes.slice(mark.w1);
    const ww2 = w2.socket.writes.slice(mark.w2);
    for (const list of [hw1, hw2, ww1, ww2]) assert.equal(list.length, 40, 'one socket write per message');
    for (let i = 0; i < 40; i++) {
      assert.equal(hw1[i], hw2[i], `HTTP message ${i}: the same chunk Buffer for both viewers`);
      assert.equal(ww1[i], ww2[i], `WS message ${i}: the same frame Buffer for both viewers`);
      const tag = live[0]![i]!;
      assert.deepEqual(
        hw1[i],
        Buffer.concat([Buffer.from(`\r\n${tag.length.toString(16)}\r\n`, 'latin1'), tag]),
        'HTTP chunk = size line + tag',
      );
      assert.deepEqual(unframe(ww1[i]!), tag, 'WS frame = header + tag');
    }
    // The tag is the hub's shared FLV tag: header + payload + PreviousTagSize.
    const tag = live[0]![0]!;
    assert.equal(tag[0], 9);
    assert.equal(tag.readUInt32BE(tag.length - 4), tag.length - 4);
    assert.ok(
      live[0]!.some((t) => t.length >= 0x10000) && live[0]!.some((t) => t.length < 126),
      'all frame length forms exercised',
    );
    // The join burst itself is written without copies: the cached tags as they are.
    const burstTags = w1.sent.slice(1);
    assert.equal(burstTags.length, 4);
    burstTags.forEach((b, i) => assert.equal(b, w1.hubWrites[i], 'join burst: the hub tag itself'));
    assert.ok(h1.socket.writes.slice(0, mark.h1).includes(h1.hubWrites[3]!), 'HTTP join burst: the hub tag itself');
    hub.close('test');
  });

  it('the join: FLV header first (flags from the burst), then metadata, sequence headers and the GOP from its keyframe', () => {
    const hub = new StreamHub('live/join');
    hub.attachPublisher(pub);
    push(hub, MessageType.Video, 0, avcSeq);
    push(hub, MessageType.Video, 0, avcKey(1));
    push(hub, MessageType.Video, 33, avcInter(2));
    const { viewer, sent } = wsViewer('w');
    hub.addViewer(viewer);
    assert.equal(sent.length, 4, 'header + sequence header + 2 GOP frames');
    const reader = new FlvReader();
    const tags = sent.flatMap((b) => reader.push(b));
    assert.deepEqual(reader.header, { audio: false, video: true }, 'video-only stream: the header says so');
    assert.deepEqual(
      tags.map((t) => [t.type, t.data[0]]),
      [
        [9, 0x17],
        [9, 0x17],
        [9, 0x27],
      ],
    );
    hub.close('test');
    assert.deepEqual(flvHeaderFlags([]), { audio: true, video: true }, 'nothing known: both');
  });

  it('FourCC gating: ?codecs=hvc1 gets Enhanced RTMP HEVC, a legacy FLV viewer does not', () => {
    assert.deepEqual([...parseCodecsQuery('av01, hvc1,bad,*')], ['av01', 'hvc1', '*']);
    assert.equal(parseCodecsQuery(null).size, 0);
    const hub = new StreamHub('live/hevc');
    hub.attachPublisher(pub);
    const legacy = wsViewer('legacy');
    const hevc = wsViewer('hevc', parseCodecsQuery('hvc1'));
    const any = wsViewer('any', parseCodecsQuery('*'));
    for (const v of [legacy, hevc, any]) hub.addViewer(v.viewer);
    push(hub, MessageType.Video, 0, exSeq('hvc1'));
    push(hub, MessageType.Video, 0, exKey('hvc1', 1));
    push(hub, MessageType.Audio, 0, aacSeq);
    const types = (v: ReturnType<typeof wsViewer>) =>
      v
        .messages()
        .slice(1)
        .map((b) => b[0]);
    assert.deepEqual(types(legacy), [8], 'legacy: audio only');
    assert.deepEqual(types(hevc), [9, 9, 8]);
    assert.deepEqual(types(any), [9, 9, 8]);
    hub.close('test');
  });

  it('parses /{app}/{stream}.flv paths (names may contain slashes; traversal and non-.flv refused)', () => {
    assert.deepEqual(
      (({ app, name, query }) => ({ app, name, token: query.get('token') }))(
        parseFlvPath('/live/cam%201.flv?expires=1&token=abc')!,
      ),
      { app: 'live', name: 'cam 1', token: 'abc' },
    );
    assert.equal(parseFlvPath('/live/a/b.flv')?.name, 'a/b');
    assert.equal(parseFlvPath('/live/x'), undefined);
    assert.equal(parseFlvPath('/x.flv'), undefined);
    assert.equal(parseFlvPath('/live/../x.flv'), undefined);
    assert.equal(parseFlvPath('/live/%ZZ.flv'), undefined);
  });

  // The hub builds a message's FLV tag once (flvTagFor) and hands that Buffer to every FLV viewer. A media frame keeps
  // only its chunks, so the tag's data is rebuilt from them: byte-exact across chunk boundaries.
  it('flvTagFor builds a message tag once, byte-exact from a frame held only as chunks', () => {
    const payload = Buffer.concat([Buffer.from([0xaf, 1]), Buffer.from(Array.from({ length: 300 }, (_, i) => i))]);
    for (const timestamp of [5, 0x1234567]) {
      const m = createHubMessage('audio', MessageType.Audio, timestamp, payload, 128);
      assert.equal(m.keptPayload, undefined);
      const tag = flvTagFor(m);
      assert.equal(flvTagFor(m), tag);
      assert.deepEqual(tag, encodeFlvTag({ type: MessageType.Audio, timestamp, data: payload }));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('HTTP-FLV and WS-FLV on a standalone node', { timeout: 180_000 }, () => {
  let node: NodeUnderTest;
  let publisher: Running;
  let base: string;
  let wsBase: string;

  before(async () => {
    node = await startTestNode({ PLAY_WAIT_MS: '1500', UNPUBLISH_GRACE_MS: '300' });
    base = `http://127.0.0.1:${node.httpPort}`;
    wsBase = `ws://127.0.0.1:${node.httpPort}`;
    publisher = ffmpegPublish(node.rtmpUrl('live/x'), { seconds: 120, gop: 30 });
    await waitLive(node, 'live/x');
    await sleep(1500); // a GOP in the cache
  });

  after(async () => {
    await publisher?.stop();
    await node?.shutdown('test');
  });

  it('FFmpeg decodes http://…/live/x.flv (-progress frame count) and ffprobe counts its frames', async () => {
    const url = `${base}/live/x.flv`;
    const [ff, probe] = await Promise.all([ffmpegCountFrames(url, 3), ffprobeCount(url, 3)]);
    log(`ffmpeg decoded ${ff.frames} frames in 3 s; ffprobe: ${probe.codec} ${probe.frames} frames`);
    assert.equal(ff.code, 0, ff.stderr);
    assert.ok(ff.frames >= 60, `ffmpeg decoded ${ff.frames} frames`);
    assert.equal(probe.codec, 'h264', probe.stderr);
    assert.ok(probe.frames >= 30, `ffprobe counted ${probe.frames} frames`);
  });

  it('HTTP response: 200, chunked, video/x-flv, CORS *; FLV header, metadata, sequence headers, keyframe first; counted as http-flv', async () => {
    const p = await httpFlv(`${base}/live/x.flv`);
    try {
      assert.equal(p.res.statusCode, 200);
      assert.equal(p.res.headers['transfer-encoding'], 'chunked');
      assert.equal(p.res.headers['content-type'], 'video/x-flv');
      assert.equal(p.res.headers['access-control-allow-origin'], '*');
      await waitFor(
        'a keyframe over HTTP',
        () => p.rec.firstKeyframeAt !== undefined && p.rec.tags.length > 10,
        10_000,
      );
      assert.equal(p.rec.error, undefined);
      assert.deepEqual(p.rec.header, { audio: true, video: true });
      assertJoinSequence(p.rec.tags, 'http-flv');
      log(`first keyframe ${(p.rec.firstKeyframeAt! - p.rec.openedAt).toFixed(0)} ms after the request`);
      assert.equal(await node.metric('rtmp_viewers', { protocol: 'http-flv' }), 1);
      assert.equal((await node.json('/api/streams/live/x')).viewers, 1);
    } finally {
      p.close();
    }
    await waitFor(
      'http-flv viewer gone',
      async () => (await node.metric('rtmp_viewers', { protocol: 'http-flv' })) === 0,
      5000,
    );
    assert.equal((await node.json('/api/streams/live/x')).viewers, 0);
  });

  it('WebSocket: FLV header as the first binary message, then exactly one tag per message; join sequence; counted as ws-flv', async () => {
    const p = await wsFlv(`${wsBase}/live/x.flv`);
    try {
      await waitFor(
        'a keyframe over WebSocket',
        () => p.rec.firstKeyframeAt !== undefined && p.rec.tags.length > 10,
        10_000,
      );
      assert.equal(p.rec.error, undefined);
      assert.equal(p.firstMessage?.length, 13, 'the first message is the 13-byte FLV header (with PreviousTagSize0)');
      assert.equal(p.firstMessage!.subarray(0, 3).toString('latin1'), 'FLV');
      assert.equal(p.badFrames, 0, 'every later message is one whole FLV tag');
      assertJoinSequence(p.rec.tags, 'ws-flv');
      assert.equal(await node.metric('rtmp_viewers', { protocol: 'ws-flv' }), 1);
    } finally {
      p.close();
    }
    await waitFor(
      'ws-flv viewer gone',
      async () => (await node.metric('rtmp_viewers', { protocol: 'ws-flv' })) === 0,
      5000,
    );
  });

  it('unknown stream: 404 with a JSON body over HTTP and for the WebSocket upgrade; non-.flv paths keep the plain 404', async () => {
    const res = await fetch(`${base}/live/nope.flv`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: string; reason: string };
    assert.equal(body.reason, 'not_found');
    await assert.rejects(wsFlv(`${wsBase}/live/nope.flv`), (err: { status?: number }) => err.status === 404);
    const plain = await fetch(`${base}/live/x`, { signal: AbortSignal.timeout(5000) });
    assert.equal(plain.status, 404);
    assert.deepEqual(await plain.json(), { error: 'not found', path: '/live/x' });
    assert.ok((await node.metric('rtmp_play_rejected_total', { reason: 'not_found' })) >= 2);
    // The rest of the HTTP API is unchanged.
    assert.equal((await node.http('/healthz')).status, 200);
    assert.equal((await node.http('/api/streams')).status, 200);
  });

  it('keep-alive: an .flv request on a reused connection; when the stream ends the response ends cleanly and the connection serves the next request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const short = ffmpegPublish(node.rtmpUrl('live/short'), { seconds: 4 });
      await waitLive(node, 'live/short');
      const first = await new Promise<http.ClientRequest>((resolve, reject) => {
        const req = http.get(`${base}/healthz`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(req));
        });
        req.on('error', reject);
      });
      assert.equal(first.reusedSocket, false);
      const p = await httpFlv(`${base}/live/short.flv`, agent);
      assert.equal(p.req.reusedSocket, true, 'the .flv request reused the keep-alive connection');
      assert.equal(p.res.statusCode, 200);
      await waitFor('the short stream to end and its response to complete', () => p.rec.ended, 20_000, 50);
      await short.exited;
      assert.equal(p.rec.error, undefined);
      assert.ok(p.rec.firstKeyframeAt !== undefined && p.rec.bytes > 10_000, `received ${p.rec.bytes} bytes`);
      p.rec.reader.end(); // a complete FLV: no truncated tag at the end
      const next = await new Promise<{ reused: boolean; status: number | undefined }>((resolve, reject) => {
        const req = http.get(`${base}/api/streams`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode }));
        });
        req.on('error', reject);
      });
      assert.deepEqual(
        next,
        { reused: true, status: 200 },
        'the connection that carried the FLV serves the next request',
      );
    } finally {
      agent.destroy();
    }
  });

  it('CORS preflight for .flv answers 204 with the allowed methods', async () => {
    const res = await fetch(`${base}/live/x.flv`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://example.test',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range',
      },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /GET/);
    assert.equal(res.headers.get('access-control-allow-headers'), 'range');
  });

  it('byte sharing on real sockets: both HTTP-FLV viewers are written the same Buffers, both WS-FLV viewers too, one write per message', async () => {
    const players = [
      await httpFlv(`${base}/live/x.flv`),
      await httpFlv(`${base}/live/x.flv`),
      await wsFlv(`${wsBase}/live/x.flv`),
      await wsFlv(`${wsBase}/live/x.flv`),
    ];
    try {
      await waitFor('all four playing', () => players.every((p) => p.rec.firstKeyframeAt !== undefined), 10_000);
      const writes = new Map<Socket, Buffer[]>();
      const original = net.Socket.prototype.write;
      // Spy on server-side writes to the HTTP port (the clients' sockets have it as their remote port).
      net.Socket.prototype.write = function spy(this: Socket, chunk: unknown, ...rest: unknown[]) {
        if (this.localPort === node.httpPort && Buffer.isBuffer(chunk)) {
          let list = writes.get(this);
          if (!list) writes.set(this, (list = []));
          list.push(chunk);
        }
        return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof original;
      try {
        await sleep(1500);
      } finally {
        net.Socket.prototype.write = original;
      }
      const lists = [...writes.values()];
      assert.equal(lists.length, 4, 'writes seen on the four viewer connections');
      // HTTP chunks start with the CRLF closing the previous chunk; WebSocket frames with 0x82 (FIN, binary).
      const http = lists.filter((l) => l[0]![0] === 0x0d);
      const ws = lists.filter((l) => l[0]![0] === 0x82);
      assert.equal(http.length, 2);
      assert.equal(ws.length, 2);
      for (const [name, [a, b]] of [
        ['http-flv', http],
        ['ws-flv', ws],
      ] as const) {
        assert.ok(a!.length >= 30, `${name}: ${a!.length} messages written in 1.5 s`);
        // Fan-out is synchronous per message, so both viewers saw the same messages: compare write by write.
        const n = Math.min(a!.length, b!.length);
        assert.ok(Math.abs(a!.length - b!.length) <= 1);
        let same = 0;
        for (let i = 0; i < n; i++) if (a![i] === b![i]) same++;
        log(
          `${name}: ${a!.length} and ${b!.length} socket writes (one per message), ${same} of ${n} the same Buffer instance`,
        );
        assert.equal(same, n, `${name}: every message was the same Buffer instance on both connections`);
        assert.equal(new Set(a).size, a!.length, `${name}: one write per message`);
      }
    } finally {
      closeAll(players);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('slow-viewer policy for HTTP-FLV', { timeout: 120_000 }, () => {
  let node: NodeUnderTest;
  let publisher: Running;

  before(async () => {
    node = await startTestNode({
      VIEWER_SOFT_BACKLOG_BYTES: String(128 * 1024),
      VIEWER_HARD_BACKLOG_BYTES: String(512 * 1024),
      VIEWER_SOFT_BACKLOG_MS: '500',
      VIEWER_HARD_BACKLOG_MS: '2000',
    });
    // High bitrate (CBR with filler), so kernel socket buffers fill in seconds rather than minutes; 10 fps makes
    // every frame ~100 KB (WebSocket frames with 64-bit lengths).
    publisher = ffmpegPublish(node.rtmpUrl('live/hi'), {
      seconds: 90,
      size: '1280x720',
      rate: 10,
      gop: 10,
      extra: ['-b:v', '8M', '-minrate', '8M', '-maxrate', '8M', '-bufsize', '2M', '-x264-params', 'nal-hrd=cbr'],
    });
    await waitLive(node, 'live/hi');
  });

  after(async () => {
    await publisher?.stop();
    await node?.shutdown('test');
  });

  it('a stalled HTTP viewer (stops reading) is dropped per the policy; a healthy one keeps playing', async () => {
    const healthy = await httpFlv(`http://127.0.0.1:${node.httpPort}/live/hi.flv`);
    const wsHealthy = await wsFlv(`ws://127.0.0.1:${node.httpPort}/live/hi.flv`);
    const stalled = await httpFlv(`http://127.0.0.1:${node.httpPort}/live/hi.flv`);
    let closedAt: number | undefined;
    stalled.res.on('close', () => (closedAt = performance.now()));
    try {
      await waitFor(
        'both playing',
        () => healthy.rec.firstKeyframeAt !== undefined && stalled.rec.firstKeyframeAt !== undefined,
        15_000,
      );
      stalled.res.pause();
      stalled.req.socket!.pause();
      const pausedAt = performance.now();
      const received = stalled.rec.bytes;
      assert.equal(await node.metric('rtmp_viewers', { protocol: 'http-flv' }), 2);
      assert.equal(await node.metric('rtmp_viewers', { protocol: 'ws-flv' }), 1);
      await waitFor(
        'the stalled viewer to be disconnected',
        async () => (await node.metric('rtmp_slow_viewers_disconnected_total')) >= 1,
        60_000,
        250,
      );
      const droppedAfter = performance.now() - pausedAt;
      assert.equal(await node.metric('rtmp_viewers', { protocol: 'http-flv' }), 1, 'only the healthy viewer is left');
      const droppedFrames = await node.metric('rtmp_messages_dropped_total', { reason: 'slow_viewer' });
      log(
        `stalled viewer dropped ${(droppedAfter / 1000).toFixed(1)} s after it stopped reading (${received} bytes read; ${droppedFrames} frames skipped first)`,
      );
      // The stalled client sees its connection end once it reads again.
      stalled.req.socket!.resume();
      stalled.res.resume();
      await waitFor('the stalled client to see the end of its connection', () => closedAt !== undefined, 15_000);
      const before = healthy.rec.bytes;
      await sleep(1000);
      assert.ok(healthy.rec.bytes > before + 100_000, 'the healthy viewer kept receiving');
      assert.equal(healthy.rec.error, undefined);
      // The WebSocket viewer of the same 8 Mbit/s stream: big keyframes (64-bit frame lengths) arrive whole.
      assert.equal(wsHealthy.rec.error, undefined);
      assert.equal(wsHealthy.badFrames, 0, 'one FLV tag per WebSocket message');
      assert.ok(wsHealthy.rec.maxTagSize >= 0x10000, `largest tag ${wsHealthy.rec.maxTagSize} bytes`);
      assert.ok(wsHealthy.closeCode === undefined, 'the healthy WebSocket viewer is still connected');
    } finally {
      closeAll([healthy, stalled, wsHealthy]);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('edge: 200 HTTP/WS-FLV viewers plus RTMP viewers share one upstream pull', { timeout: 180_000 }, () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let origin: RunningNode;
  let edge: RunningNode;
  let publisher: Running;
  const SECRET = 'flv-test-secret';

  const metric = async (n: RunningNode, name: string, labels: Record<string, string> = {}): Promise<number> => {
    const text = await (
      await fetch(`http://127.0.0.1:${n.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) })
    ).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  };
  const playQuery = (name: string) =>
    signedQuery({ secret: SECRET, action: 'play', app: 'live', name, expiresAt: Math.floor(Date.now() / 1000) + 600 });

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = (id: string): Record<string, string> => ({
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      ADVERTISE_HOST: '127.0.0.1',
      RTMP_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SHUTDOWN_TIMEOUT_MS: '500',
      PLAY_WAIT_MS: '2000',
      NODE_ID: id,
      // Plays need a signed token (edge viewers and the edge's own pull alike).
      PLAY_SECRET: SECRET,
      REQUIRE_PLAY_TOKEN: 'true',
    });
    origin = await startNode(loadConfig({ env: env('origin-1') }), { role: 'origin' });
    edge = await startNode(loadConfig({ env: env('edge-1') }), { role: 'edge' });
    publisher = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/x`, { seconds: 120 });
    await waitFor(
      'live/x live on the origin',
      async () => {
        const res = await fetch(`http://127.0.0.1:${origin.httpPort}/api/streams/live/x`, {
          signal: AbortSignal.timeout(2000),
        });
        return res.status === 200 && ((await res.json()) as { live: boolean }).live;
      },
      20_000,
      100,
    );
    await sleep(1500);
  });

  after(async () => {
    await publisher?.stop();
    await edge?.shutdown('test');
    await origin?.shutdown('test');
  });

  it('tokens in the query: a bad token is 403 (HTTP and WebSocket), no token is 403, a stream nobody publishes is 404', async () => {
    const base = `http://127.0.0.1:${edge.httpPort}`;
    const bad = await fetch(`${base}/live/x.flv?expires=${Math.floor(Date.now() / 1000) + 60}&token=AAAA`, {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(bad.status, 403);
    assert.equal(((await bad.json()) as { reason: string }).reason, 'token_invalid');
    const none = await fetch(`${base}/live/x.flv`, { signal: AbortSignal.timeout(5000) });
    assert.equal(none.status, 403);
    await none.body?.cancel();
    await assert.rejects(
      wsFlv(`ws://127.0.0.1:${edge.httpPort}/live/x.flv?token=nope`),
      (err: { status?: number }) => err.status === 403,
    );
    const missing = await fetch(`${base}/live/ghost.flv?${playQuery('ghost')}`, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    assert.equal(await metric(edge, 'rtmp_pull_starts_total'), 0, 'denied plays started no pull');
  });

  it('100 HTTP-FLV + 100 WS-FLV + 5 RTMP viewers arriving at once: one pull, one viewer on the origin, everyone receives', async () => {
    const q = playQuery('x');
    const httpUrl = `http://127.0.0.1:${edge.httpPort}/live/x.flv?${q}`;
    const wsUrl = `ws://127.0.0.1:${edge.httpPort}/live/x.flv?${q}`;
    const started = performance.now();
    const httpPlayers: HttpFlvPlayer[] = [];
    const wsPlayers: WsFlvPlayer[] = [];
    const rtmpViewers: Array<{ client: RtmpClient; bytes: number; keyframe: boolean }> = [];
    try {
      await Promise.all([
        ...Array.from({ length: 100 }, async () => httpPlayers.push(await httpFlv(httpUrl))),
        ...Array.from({ length: 100 }, async () => wsPlayers.push(await wsFlv(wsUrl))),
        ...Array.from({ length: 5 }, async () => {
          const client = await RtmpClient.connect(`rtmp://127.0.0.1:${edge.rtmpPort}/live/x?${q}`, {
            connectTimeoutMs: 10_000,
          });
          const v = { client, bytes: 0, keyframe: false };
          rtmpViewers.push(v);
          client.on('media', (m) => {
            v.bytes += m.payload.length;
            if (m.type === MessageType.Video && !v.keyframe && parseVideoTag(m.payload).isKeyframe) v.keyframe = true;
          });
          await client.play(`x?${q}`, 15_000);
        }),
      ]);
      for (const p of httpPlayers) assert.equal(p.res.statusCode, 200);
      const everyone = [...httpPlayers, ...wsPlayers];
      await waitFor(
        'every FLV viewer at a keyframe',
        () => everyone.every((p) => p.rec.firstKeyframeAt !== undefined),
        20_000,
        100,
      );
      await waitFor('every RTMP viewer at a keyframe', () => rtmpViewers.every((v) => v.keyframe), 20_000, 100);
      const ttk = everyone.map((p) => p.rec.firstKeyframeAt! - started).sort((a, b) => a - b);
      log(
        `205 viewers joined; time to first keyframe p50 ${ttk[100]!.toFixed(0)} ms, max ${ttk.at(-1)!.toFixed(0)} ms`,
      );

      assert.equal(await metric(edge, 'rtmp_pull_starts_total'), 1, 'exactly one upstream pull for everyone');
      assert.equal(
        await metric(origin, 'rtmp_viewers', { protocol: 'rtmp' }),
        1,
        'the origin sees exactly one viewer: the pull',
      );
      assert.equal(await metric(origin, 'rtmp_viewers', { protocol: 'http-flv' }), 0);
      assert.equal(await metric(edge, 'rtmp_viewers', { protocol: 'http-flv' }), 100);
      assert.equal(await metric(edge, 'rtmp_viewers', { protocol: 'ws-flv' }), 100);
      assert.equal(await metric(edge, 'rtmp_viewers', { protocol: 'rtmp' }), 5);
      const local = (await (await fetch(`http://127.0.0.1:${edge.httpPort}/api/streams/live/x`)).json()) as {
        viewers: number;
      };
      assert.equal(local.viewers, 205);

      // Everyone keeps receiving.
      const mark = everyone.map((p) => p.rec.bytes);
      const rtmpMark = rtmpViewers.map((v) => v.bytes);
      await sleep(2000);
      const stalled = everyone.filter((p, i) => p.rec.bytes <= mark[i]! + 1000).length;
      assert.equal(stalled, 0, `${stalled} FLV viewers stopped receiving`);
      rtmpViewers.forEach((v, i) => assert.ok(v.bytes > rtmpMark[i]! + 1000, 'RTMP viewer keeps receiving'));
      for (const p of everyone) assert.equal(p.rec.error, undefined);
      assert.equal(
        wsPlayers.reduce((n, p) => n + p.badFrames, 0),
        0,
        'one FLV tag per WebSocket message',
      );
      assert.equal(await metric(edge, 'rtmp_slow_viewers_disconnected_total'), 0);
    } finally {
      closeAll(httpPlayers);
      closeAll(wsPlayers);
      for (const v of rtmpViewers) v.client.close();
    }
    await waitFor(
      'all edge viewers gone',
      async () =>
        (await metric(edge, 'rtmp_viewers', { protocol: 'http-flv' })) === 0 &&
        (await metric(edge, 'rtmp_viewers', { protocol: 'ws-flv' })) === 0 &&
        (await metric(edge, 'rtmp_viewers', { protocol: 'rtmp' })) === 0,
      10_000,
      100,
    );
  });
});
