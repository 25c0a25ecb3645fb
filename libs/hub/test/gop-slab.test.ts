import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageType } from '@rtmp-relay/rtmp';
import { GopSlab, createHubMessage, payloadOf } from '../src/index.js';

const KIB = 1024;
const contiguous = (a: Buffer, b: Buffer): boolean => a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;

describe('GopSlab (one allocation per GOP for a stream media frames)', () => {
  it('a GOP is allocated back to back; a keyframe starts a new slab sized from the GOP before it', () => {
    const slab = new GopSlab();
    const key = slab.allocate(10 * KIB, true);
    const inter = slab.allocate(2 * KIB, false);
    assert.ok(contiguous(key, inter), 'frames of one GOP are neighbours in one slab');
    assert.equal(slab.currentSlabBytes, 64 * KIB, 'the first slab is the minimum');
    for (let i = 0; i < 60; i++) slab.allocate(2 * KIB, false); // the GOP outgrows its slab
    assert.equal(slab.currentSlabBytes, 64 * KIB, 'a full slab is followed by another of the same size');
    const next = slab.allocate(10 * KIB, true);
    assert.notEqual(next.buffer, key.buffer, 'a new GOP never shares a slab with the one before');
    // The GOP before was 10 + 2 + 120 KiB: its successor's slab has a quarter of headroom over that.
    assert.equal(slab.currentSlabBytes, Math.ceil(132 * KIB * 1.25));
  });

  it('slabs stay between 64 KiB and 4 MiB, and a frame larger than a slab gets one of its own', () => {
    const slab = new GopSlab();
    slab.allocate(100, true);
    slab.allocate(100, true);
    assert.equal(slab.currentSlabBytes, 64 * KIB, 'a tiny GOP still gets the minimum');
    for (let i = 0; i < 100; i++) slab.allocate(100 * KIB, false);
    slab.allocate(100, true);
    assert.equal(slab.currentSlabBytes, 4 * 1024 * KIB, 'a 10 MB GOP: capped');
    const huge = slab.allocate(5 * 1024 * KIB, false);
    assert.equal(huge.length, 5 * 1024 * KIB);
    assert.equal(huge.buffer.byteLength, 5 * 1024 * KIB, 'its own slab, exactly its size');
  });
});

describe('HubMessage memory: a media frame keeps only its chunks', () => {
  const avcKey = Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.alloc(5000, 7)]);
  const avcHeader = Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 1]);

  it('frames drop their payload (rebuilt on demand, byte-exact); headers and data keep theirs', () => {
    const slab = new GopSlab();
    const frame = createHubMessage('video', MessageType.Video, 0x1234_5678, avcKey, 4096, slab);
    assert.equal(frame.keptPayload, undefined);
    assert.equal(frame.payloadLength, avcKey.length);
    assert.ok(payloadOf(frame).equals(avcKey), 'rebuilt across chunks with an extended timestamp');
    assert.equal(frame.chunks.buffer.byteLength, 64 * KIB, 'chunks written into the slab');
    const header = createHubMessage('video', MessageType.Video, 0, avcHeader, 4096, slab);
    assert.equal(header.keptPayload, avcHeader);
    assert.notEqual(header.chunks.buffer, frame.chunks.buffer, 'headers are not in the GOP slab');
    const meta = createHubMessage('data', MessageType.DataAmf0, 0, Buffer.from([2, 0, 1, 0x41]), 4096, slab);
    assert.ok(meta.keptPayload);
  });
});
