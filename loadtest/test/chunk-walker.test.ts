import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkReader, MessageType, type RtmpMessage } from '@rtmp-relay/rtmp';
import { ChunkWalker, ChunkWalkerError, classifyVideo, MEDIA_HEAD_BYTES } from '../src/chunk-walker.js';
import { prng } from '../src/prng.js';

interface CsState {
  length: number;
  type: number;
  streamId: number;
  timestamp: number;
  /** Delta of the last type 1/2 header (undefined after type 0: we never rely on type-0 deltas). */
  delta: number | undefined;
}

/**
 * A chunk encoder that compresses headers the way encoders and nginx do (types 1, 2 and 3 for new messages),
 * with 1/2/3-byte basic headers, extended timestamps and chunk size changes, to check the walker against the
 * library's ChunkReader on inputs our own writer never produces.
 */
class CompressingEncoder {
  chunkSize = 128;
  private readonly cs = new Map<number, CsState>();
  private readonly out: Buffer[] = [];

  constructor(private readonly rnd: () => number) {}

  private basic(fmt: number, csid: number): Buffer {
    if (csid < 64) return Buffer.from([(fmt << 6) | csid]);
    if (csid < 320) return Buffer.from([fmt << 6, csid - 64]);
    const r = csid - 64;
    return Buffer.from([(fmt << 6) | 1, r & 0xff, r >> 8]);
  }

  message(csid: number, msg: RtmpMessage): void {
    const prev = this.cs.get(csid);
    const len = msg.payload.length;
    const ts = msg.timestamp >>> 0;
    let fmt: number;
    let field: number; // timestamp or delta carried by the header
    const delta = prev ? (ts - prev.timestamp) >>> 0 : 0;
    const forceFull = this.rnd() < 0.1;
    if (!prev || forceFull || prev.streamId !== msg.streamId || ts < prev.timestamp) {
      fmt = 0;
      field = ts;
    } else if (prev.length !== len || prev.type !== msg.type) {
      fmt = 1;
      field = delta;
    } else if (prev.delta !== delta || delta >= 0xffffff) {
      fmt = 2;
      field = delta;
    } else {
      fmt = 3;
      field = delta;
    }
    const extended = fmt !== 3 && field >= 0xffffff;
    const header: Buffer[] = [this.basic(fmt, csid)];
    if (fmt <= 2) {
      const h = Buffer.alloc(fmt === 0 ? 11 : fmt === 1 ? 7 : 3);
      h.writeUIntBE(extended ? 0xffffff : field, 0, 3);
      if (fmt <= 1) {
        h.writeUIntBE(len, 3, 3);
        h[6] = msg.type;
      }
      if (fmt === 0) h.writeUInt32LE(msg.streamId, 7);
      header.push(h);
      if (extended) {
        const e = Buffer.alloc(4);
        e.writeUInt32BE(field);
        header.push(e);
      }
    }
    this.cs.set(csid, {
      length: len,
      type: msg.type,
      streamId: msg.streamId,
      timestamp: ts,
      delta: fmt === 0 ? undefined : fmt === 3 ? prev!.delta : delta,
    });
    let p = Math.min(this.chunkSize, len);
    this.out.push(...header, msg.payload.subarray(0, p));
    while (p < len) {
      this.out.push(this.basic(3, csid));
      if (extended) {
        const e = Buffer.alloc(4);
        e.writeUInt32BE(field);
        this.out.push(e);
      }
      const n = Math.min(this.chunkSize, len - p);
      this.out.push(msg.payload.subarray(p, p + n));
      p += n;
    }
  }

  setChunkSize(size: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(size);
    this.message(2, { type: MessageType.SetChunkSize, streamId: 0, timestamp: 0, payload });
    this.chunkSize = size;
  }

  bytes(): Buffer {
    return Buffer.concat(this.out);
  }
}

type Event =
  | { kind: 'media'; type: number; timestamp: number; streamId: number; length: number; head: string }
  | { kind: 'message'; type: number; timestamp: number; streamId: number; payload: string };

function expectedEvents(input: Buffer): Event[] {
  const events: Event[] = [];
  const reader = new ChunkReader(
    (m) => {
      if (m.type === MessageType.Audio || m.type === MessageType.Video) {
        events.push({
          kind: 'media',
          type: m.type,
          timestamp: m.timestamp,
          streamId: m.streamId,
          length: m.payload.length,
          head: m.payload.subarray(0, MEDIA_HEAD_BYTES).toString('hex'),
        });
      } else {
        events.push({
          kind: 'message',
          type: m.type,
          timestamp: m.timestamp,
          streamId: m.streamId,
          payload: m.payload.toString('hex'),
        });
      }
    },
    { minChunkSize: 1 },
  );
  reader.push(input);
  return events;
}

function walk(input: Buffer, rnd: () => number, maxPiece: number): { events: Event[]; walker: ChunkWalker } {
  const events: Event[] = [];
  const walker = new ChunkWalker({
    media: (type, timestamp, streamId, length, head) =>
      events.push({
        kind: 'media',
        type,
        timestamp,
        streamId,
        length,
        head: head.subarray(0, Math.min(length, MEDIA_HEAD_BYTES)).toString('hex'),
      }),
    message: (type, timestamp, streamId, payload) =>
      events.push({ kind: 'message', type, timestamp, streamId, payload: payload.toString('hex') }),
  });
  // Like net's onread: one buffer reused for every read, scribbled over afterwards.
  const shared = Buffer.alloc(maxPiece + 16);
  for (let o = 0; o < input.length;) {
    const n = Math.min(input.length - o, 1 + Math.floor(rnd() * maxPiece));
    input.copy(shared, 8, o, o + n);
    walker.push(shared, 8, 8 + n);
    shared.fill(0xa5);
    o += n;
  }
  return { events, walker };
}

function randomStream(seed: number): Buffer {
  const rnd = prng(seed);
  const enc = new CompressingEncoder(rnd);
  const csids = [3, 4, 5, 6, 7, 70, 300, 400, 65599];
  const types = [
    MessageType.Audio,
    MessageType.Video,
    MessageType.Video,
    MessageType.CommandAmf0,
    MessageType.DataAmf0,
    MessageType.UserControl,
  ];
  const clocks = new Map<number, number>();
  const count = 20 + Math.floor(rnd() * 60);
  for (let i = 0; i < count; i++) {
    if (rnd() < 0.05) enc.setChunkSize([1, 7, 128, 4096, 60000][Math.floor(rnd() * 5)]!);
    const csid = csids[Math.floor(rnd() * csids.length)]!;
    const type = types[Math.floor(rnd() * types.length)]!;
    const big = rnd() < 0.1;
    const len = type === MessageType.UserControl ? 6 : Math.floor(rnd() * (big ? 30000 : 600));
    const payload = Buffer.alloc(len);
    for (let k = 0; k < len; k++) payload[k] = Math.floor(rnd() * 256);
    let ts = clocks.get(csid) ?? Math.floor(rnd() * 1000);
    const r = rnd();
    ts += r < 0.5 ? 33 : r < 0.8 ? Math.floor(rnd() * 100) : r < 0.95 ? 0 : 0x1000000 + Math.floor(rnd() * 1000);
    ts = ts >>> 0;
    clocks.set(csid, ts);
    enc.message(csid, { type, streamId: rnd() < 0.8 ? 1 : 0, timestamp: ts, payload });
  }
  return enc.bytes();
}

describe('ChunkWalker', () => {
  it('sees the same messages as ChunkReader on compressed headers, split anywhere, with a reused input buffer', () => {
    for (let seed = 1; seed <= 150; seed++) {
      const input = randomStream(seed);
      const expected = expectedEvents(input);
      const rnd = prng(seed * 7919);
      for (const maxPiece of seed <= 15 ? [1, 5, 64, 4096, 70000] : [5, 64, 4096, 70000]) {
        const { events, walker } = walk(input, rnd, maxPiece);
        assert.deepEqual(events, expected, `seed ${seed}, pieces up to ${maxPiece} bytes`);
        assert.equal(walker.totalBytes, input.length);
        const media = expected.reduce((s, e) => s + (e.kind === 'media' ? e.length : 0), 0);
        assert.equal(walker.mediaBytes, media);
      }
    }
  });

  it('applies Set Chunk Size', () => {
    const rnd = prng(1);
    const enc = new CompressingEncoder(rnd);
    enc.setChunkSize(4096);
    enc.message(6, { type: MessageType.Video, streamId: 1, timestamp: 0, payload: Buffer.alloc(10_000, 1) });
    const { walker, events } = walk(enc.bytes(), rnd, 100_000);
    assert.equal(walker.incomingChunkSize, 4096);
    assert.equal(events.length, 2);
    assert.equal(events[1]!.kind, 'media');
  });

  it('rejects a chunk stream that starts with a type-3 header, and too many chunk streams', () => {
    const w = new ChunkWalker({ media: () => {}, message: () => {} });
    assert.throws(
      () => w.push(Buffer.from([0xc5, 0, 0])),
      (e: unknown) => e instanceof ChunkWalkerError && e.reason === 'chunk_stream_not_started',
    );
    const w2 = new ChunkWalker({ media: () => {}, message: () => {} }, { maxChunkStreams: 2 });
    const enc = new CompressingEncoder(() => 0.5);
    for (const csid of [3, 4, 5])
      enc.message(csid, { type: MessageType.Audio, streamId: 1, timestamp: 0, payload: Buffer.alloc(2) });
    assert.throws(
      () => w2.push(enc.bytes()),
      (e: unknown) => e instanceof ChunkWalkerError && e.reason === 'too_many_chunk_streams',
    );
  });
});

describe('classifyVideo', () => {
  it('tells AVC keyframes, inter frames and sequence headers apart', () => {
    assert.deepEqual(classifyVideo(Buffer.from([0x17, 0x00]), 5), {
      frame: false,
      keyframe: false,
      sequenceHeader: true,
    });
    assert.deepEqual(classifyVideo(Buffer.from([0x17, 0x01]), 500), {
      frame: true,
      keyframe: true,
      sequenceHeader: false,
    });
    assert.deepEqual(classifyVideo(Buffer.from([0x27, 0x01]), 500), {
      frame: true,
      keyframe: false,
      sequenceHeader: false,
    });
    assert.deepEqual(classifyVideo(Buffer.from([0x17, 0x02]), 5), {
      frame: false,
      keyframe: false,
      sequenceHeader: false,
    });
  });

  it('reads Enhanced RTMP packet types', () => {
    // 0x80 | frameType << 4 | packetType, then the FourCC.
    assert.equal(classifyVideo(Buffer.from([0x90, 0x68, 0x76, 0x63, 0x31]), 100).sequenceHeader, true);
    assert.deepEqual(classifyVideo(Buffer.from([0x91, 0x68, 0x76, 0x63, 0x31]), 100), {
      frame: true,
      keyframe: true,
      sequenceHeader: false,
    });
    assert.deepEqual(classifyVideo(Buffer.from([0xa3, 0x61, 0x76, 0x30, 0x31]), 100), {
      frame: true,
      keyframe: false,
      sequenceHeader: false,
    });
    assert.equal(classifyVideo(Buffer.from([0x94]), 100).frame, false); // metadata
  });

  it('ignores command frames and empty messages', () => {
    assert.equal(classifyVideo(Buffer.from([0x57, 0x00]), 2).frame, false);
    assert.equal(classifyVideo(Buffer.alloc(0), 0).frame, false);
  });
});
