/**
 * ChunkReader memory accounting: what the partial-byte budget counts must be what the reader really keeps alive.
 * A slice of a read buffer keeps the whole buffer; so tiny pieces of unfinished messages carved from large reads
 * must be copied out (or charged whole), while large pieces and whole messages stay zero-copy.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';

import { ChunkReader } from '../src/chunk-reader.js';
import { encodeMessageChunks } from '../src/chunk-writer.js';
import { MessageType } from '../src/constants.js';
import { RtmpProtocolError } from '../src/errors.js';
import type { RtmpMessage } from '../src/message.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** What a socket read holds under load (Node reads up to 64 KiB at a time). */
const READ_BYTES = 64 * KIB;
const CHUNK_SIZE = 128;
const PARTIAL_STREAMS = 32;
const FIRST_PARTIAL_CSID = 10;
const CSID_JUNK = 6;
const DECLARED_LENGTH = MIB;
/** process.memoryUsage().arrayBuffers right after a forced GC still varies by a few tens of KiB. */
const GC_NOISE_BYTES = 128 * KIB;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** ArrayBuffer bytes alive after a full GC. */
function arrayBufferBytes(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

/** One 128-byte chunk of an unfinished video message on `csid` (type-0 header the first time). */
function piece(csid: number, first: boolean, fill = 0xab): Buffer {
  const body = Buffer.alloc(CHUNK_SIZE, fill);
  if (!first) return Buffer.concat([Buffer.from([0xc0 | csid]), body]);
  const h = Buffer.alloc(12);
  h[0] = csid;
  h.writeUIntBE(DECLARED_LENGTH, 4, 3);
  h[7] = MessageType.Video;
  return Buffer.concat([h, body]);
}

/** A complete video message (the junk the reader parses and delivers) chunked with the initial chunk size. */
function junk(payloadBytes: number): Buffer {
  const payload = Buffer.alloc(payloadBytes, 0x5a);
  return encodeMessageChunks({ type: MessageType.Video, streamId: 1, timestamp: 0, payload }, CSID_JUNK, CHUNK_SIZE);
}

/** A fresh READ_BYTES buffer: one partial piece, then junk messages filling the rest (like one socket read). */
function hostileRead(p: Buffer, filler: Buffer): Buffer {
  const read = Buffer.allocUnsafeSlow(READ_BYTES);
  p.copy(read, 0);
  let at = p.length;
  while (at + filler.length <= READ_BYTES) at += filler.copy(read, at);
  return read.subarray(0, at);
}

describe('ChunkReader memory accounting', () => {
  it('tiny partial pieces carved from 64 KiB reads are copied: retained ArrayBuffers stay within the budget', () => {
    const filler = junk(2000);
    const maxPartialBytes = 2 * MIB;
    let delivered = 0;
    const reader = new ChunkReader(
      () => {
        delivered++;
      },
      { maxPartialBytes },
    );
    const pieces = 2000; // 250 KiB of pieces; as slices they would pin 2000 × 64 KiB = 125 MiB
    const before = arrayBufferBytes();
    const started = new Set<number>();
    for (let i = 0; i < pieces; i++) {
      const csid = FIRST_PARTIAL_CSID + (i % PARTIAL_STREAMS);
      reader.push(hostileRead(piece(csid, !started.has(csid)), filler));
      started.add(csid);
    }
    const retained = arrayBufferBytes() - before;
    assert.ok(delivered > pieces * 30, 'the junk messages were parsed and delivered');
    assert.equal(reader.bufferedBytes, pieces * CHUNK_SIZE);
    // Copies of 128 B grow per chunk stream by doubling: the charge is at most twice the bytes (plus one piece).
    assert.ok(reader.retainedBytes >= reader.bufferedBytes);
    assert.ok(
      reader.retainedBytes <= 2 * reader.bufferedBytes + PARTIAL_STREAMS * CHUNK_SIZE,
      `${reader.retainedBytes}`,
    );
    assert.ok(
      retained <= reader.retainedBytes + GC_NOISE_BYTES,
      `ArrayBuffers retained ${retained} B, accounted ${reader.retainedBytes} B`,
    );
  });

  it('the budget trips before the really retained bytes exceed it', () => {
    const maxPartialBytes = 256 * KIB;
    const filler = junk(2000);
    const reader = new ChunkReader(() => {}, { maxPartialBytes });
    const before = arrayBufferBytes();
    const started = new Set<number>();
    // Only the reason is kept: an Error's captured stack may hold on to the last read buffer.
    let error: string | undefined;
    let pushed = 0;
    for (; pushed < 10_000 && !error; pushed++) {
      const csid = FIRST_PARTIAL_CSID + (pushed % PARTIAL_STREAMS);
      try {
        reader.push(hostileRead(piece(csid, !started.has(csid)), filler));
      } catch (err) {
        error = err instanceof RtmpProtocolError ? err.reason : String(err);
      }
      started.add(csid);
    }
    // The reader (still referenced) holds everything it kept, including the piece that tripped the limit.
    const retained = arrayBufferBytes() - before;
    assert.equal(error, 'partial_bytes_exceeded');
    assert.ok(pushed * CHUNK_SIZE > maxPartialBytes / 2, `tripped after only ${pushed} pieces`);
    assert.ok(
      retained <= maxPartialBytes + GC_NOISE_BYTES,
      `${retained} B of ArrayBuffers retained (${reader.retainedBytes} B accounted), the limit is ${maxPartialBytes} B`,
    );
    assert.ok(reader.retainedBytes > 0);
  });

  it('a message trickled in 1-byte reads is copied into a few growing buffers, not 100,000 slices', () => {
    const messages: RtmpMessage[] = [];
    const reader = new ChunkReader((m) => messages.push(m));
    reader.push(
      encodeMessageChunks(
        { type: MessageType.SetChunkSize, streamId: 0, timestamp: 0, payload: Buffer.from([0, 2, 0, 0]) },
        2,
        CHUNK_SIZE,
      ),
    );
    const payload = Buffer.alloc(100_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 0xff;
    const bytes = encodeMessageChunks({ type: MessageType.Video, streamId: 1, timestamp: 0, payload }, 6, 128 * KIB);
    const mem = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = mem();
    for (let i = 0; i < bytes.length - 1; i++) {
      const read = Buffer.allocUnsafeSlow(1); // what a socket read of one byte is: its own backing store
      read[0] = bytes[i]!;
      reader.push(read);
    }
    const grown = mem() - before;
    assert.equal(reader.bufferedBytes, payload.length - 1);
    assert.ok(reader.retainedBytes <= 2 * payload.length, `${reader.retainedBytes}`);
    // 100,000 one-byte slices would cost ~10 MB of Buffer objects alone.
    assert.ok(grown < reader.retainedBytes + 512 * KIB, `memory grew by ${grown} B`);
    reader.push(bytes.subarray(bytes.length - 1));
    assert.equal(messages.length, 2);
    assert.ok(messages[1]!.payload.equals(payload));
  });

  it('a large piece stays a slice and is charged its whole backing buffer', () => {
    const reader = new ChunkReader(() => {});
    const chunkSize = 64 * KIB;
    const setChunkSize = encodeMessageChunks(
      { type: MessageType.SetChunkSize, streamId: 0, timestamp: 0, payload: Buffer.from([0, 1, 0, 0]) },
      2,
      CHUNK_SIZE,
    );
    reader.push(setChunkSize);
    const payload = Buffer.alloc(200 * KIB, 7);
    const bytes = encodeMessageChunks({ type: MessageType.Video, streamId: 1, timestamp: 0, payload }, 6, chunkSize);
    // 40 KiB of a 41 KiB read: kept as a slice, charged 41 KiB.
    const firstRead = Buffer.from(bytes.subarray(0, 41 * KIB));
    reader.push(firstRead);
    assert.equal(reader.bufferedBytes, 41 * KIB - 12);
    assert.equal(reader.retainedBytes, 41 * KIB);
  });

  it('a small piece is copied exactly once, then grows by doubling; the message arrives intact', () => {
    const messages: RtmpMessage[] = [];
    const reader = new ChunkReader((m) => messages.push(m));
    const payload = Buffer.alloc(3000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const bytes = encodeMessageChunks({ type: MessageType.Video, streamId: 1, timestamp: 5, payload }, 6, CHUNK_SIZE);
    // Each read: 10 message bytes in front of a 4 KiB unrelated buffer (a small share of the backing store).
    const carve = (from: number, to: number): Buffer => {
      const read = Buffer.alloc(4096 + to - from);
      bytes.copy(read, 0, from, to);
      return read.subarray(0, to - from);
    };
    reader.push(carve(0, 22)); // header (12) + 10 bytes
    assert.equal(reader.bufferedBytes, 10);
    assert.equal(reader.retainedBytes, 10, 'the first copy is exact');
    let at = 22;
    while (at < bytes.length) {
      const to = Math.min(bytes.length, at + 10);
      reader.push(carve(at, to));
      at = to;
      if (messages.length === 0) {
        assert.ok(reader.retainedBytes >= reader.bufferedBytes);
        assert.ok(reader.retainedBytes <= 2 * reader.bufferedBytes + 10, `${reader.retainedBytes}`);
      }
    }
    assert.equal(messages.length, 1);
    assert.ok(messages[0]!.payload.equals(payload));
    assert.equal(reader.retainedBytes, 0);
  });

  it('whole messages: a large one-chunk message stays a slice of its read, a small one is copied out', () => {
    const messages: RtmpMessage[] = [];
    const reader = new ChunkReader((m) => messages.push(m));
    reader.push(
      encodeMessageChunks(
        { type: MessageType.SetChunkSize, streamId: 0, timestamp: 0, payload: Buffer.from([0, 1, 0, 0]) },
        2,
        CHUNK_SIZE,
      ),
    );
    const big = encodeMessageChunks(
      { type: MessageType.Video, streamId: 1, timestamp: 0, payload: Buffer.alloc(60 * KIB, 1) },
      6,
      64 * KIB,
    );
    const small = encodeMessageChunks(
      { type: MessageType.Audio, streamId: 1, timestamp: 0, payload: Buffer.alloc(300, 2) },
      4,
      64 * KIB,
    );
    const read = Buffer.concat([big, small]);
    reader.push(read);
    assert.equal(messages.length, 3);
    assert.equal(messages[1]!.payload.buffer, read.buffer, 'zero copy for a message that is most of the read');
    assert.notEqual(messages[2]!.payload.buffer, read.buffer, 'a 300-byte message must not pin the 60 KiB read');
    assert.ok(messages[2]!.payload.equals(Buffer.alloc(300, 2)));
  });

  it('a multi-chunk message completed within one read costs one concat and leaves nothing charged', () => {
    const messages: RtmpMessage[] = [];
    const reader = new ChunkReader((m) => messages.push(m));
    const payload = Buffer.alloc(20 * KIB, 9);
    reader.push(encodeMessageChunks({ type: MessageType.Video, streamId: 1, timestamp: 0, payload }, 6, CHUNK_SIZE));
    assert.equal(messages.length, 1);
    assert.ok(messages[0]!.payload.equals(payload));
    assert.equal(messages[0]!.payload.buffer.byteLength, payload.length, 'one exact concat');
    assert.equal(reader.retainedBytes, 0);
    assert.equal(reader.bufferedBytes, 0);
  });
});
