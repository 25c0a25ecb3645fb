import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFlvHeader, encodeFlvTag } from '@rtmp-relay/rtmp';
import { classifyVideo } from '../src/chunk-walker.js';
import { FlvTagWalker, FlvWalkerError } from '../src/flv-walker.js';

interface Seen {
  type: number;
  timestamp: number;
  size: number;
  keyframe: boolean;
  frame: boolean;
  head: number[];
}

/** A small FLV: metadata, AVC + AAC sequence headers, keyframe, inter frames, audio, an empty tag, big timestamps. */
function sampleTags(): { type: number; timestamp: number; data: Buffer }[] {
  const fill = (n: number, seed: number): Buffer =>
    Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  return [
    { type: 18, timestamp: 0, data: Buffer.concat([Buffer.from([0x02, 0x00, 0x0a]), Buffer.from('onMetaData')]) },
    { type: 9, timestamp: 0, data: Buffer.concat([Buffer.from([0x17, 0x00, 0, 0, 0]), fill(30, 1)]) }, // AVC seq hdr
    { type: 8, timestamp: 0, data: Buffer.from([0xaf, 0x00, 0x12, 0x10]) }, // AAC seq hdr
    { type: 9, timestamp: 33, data: Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), fill(5000, 2)]) }, // keyframe
    { type: 8, timestamp: 40, data: Buffer.concat([Buffer.from([0xaf, 0x01]), fill(300, 3)]) },
    { type: 9, timestamp: 66, data: Buffer.concat([Buffer.from([0x27, 0x01, 0, 0, 0]), fill(700, 4)]) }, // inter
    { type: 8, timestamp: 80, data: Buffer.alloc(0) },
    { type: 9, timestamp: 0x1234_5678, data: Buffer.concat([Buffer.from([0x27, 0x01, 0, 0, 0]), fill(3, 5)]) },
    { type: 9, timestamp: 0xfedc_ba98, data: Buffer.from([0x17, 0x01]) },
  ];
}

function walk(parts: Buffer[], header = true): { seen: Seen[]; walker: FlvTagWalker } {
  const seen: Seen[] = [];
  const walker = new FlvTagWalker(
    {
      tag: (type, timestamp, size, head) => {
        const v = classifyVideo(head, size);
        seen.push({
          type,
          timestamp,
          size,
          frame: type === 9 && v.frame,
          keyframe: type === 9 && v.keyframe,
          head: [...head.subarray(0, Math.min(size, 16))],
        });
      },
    },
    { header },
  );
  for (const p of parts) walker.push(p);
  return { seen, walker };
}

function expected(): Seen[] {
  return sampleTags().map((t) => ({
    type: t.type,
    timestamp: t.timestamp >>> 0,
    size: t.data.length,
    frame: t.type === 9 && t.data.length >= 2 && t.data[1] === 1,
    keyframe: t.type === 9 && t.data[0]! >> 4 === 1 && t.data[1] === 1,
    head: [...t.data.subarray(0, 16)],
  }));
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of points) {
    parts.push(Buffer.from(buf.subarray(prev, c))); // copies: the walker must not depend on the input buffer
    prev = c;
  }
  parts.push(Buffer.from(buf.subarray(prev)));
  return parts;
}

describe('FlvTagWalker', () => {
  const tags = sampleTags();
  const flv = Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...tags.map((t) => encodeFlvTag(t))]);
  const mediaBytes = tags.filter((t) => t.type !== 18).reduce((s, t) => s + t.data.length, 0);

  it('walks a whole FLV in one push: tags, timestamps, keyframes, sequence headers skipped', () => {
    const { seen, walker } = walk([flv]);
    assert.deepEqual(seen, expected());
    assert.equal(walker.tags, tags.length);
    assert.equal(walker.mediaBytes, mediaBytes);
    assert.equal(walker.totalBytes, flv.length);
    assert.deepEqual(
      seen.filter((s) => s.keyframe).map((s) => s.timestamp),
      [33, 0xfedc_ba98],
    );
    assert.equal(seen.filter((s) => s.frame).length, 4, 'sequence headers are not frames');
  });

  it('gives the same result however the input is split (every single cut, then random multi-cuts)', () => {
    for (let c = 1; c < flv.length; c++) {
      const { seen, walker } = walk(splitAt(flv, [c]));
      assert.deepEqual(seen, expected(), `cut at ${c}`);
      assert.equal(walker.mediaBytes, mediaBytes);
    }
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const cuts = Array.from({ length: 1 + rnd(40) }, () => rnd(flv.length));
      const { seen, walker } = walk(splitAt(flv, cuts));
      assert.deepEqual(seen, expected(), `cuts ${cuts.join(',')}`);
      assert.equal(walker.totalBytes, flv.length);
    }
    // byte by byte
    assert.deepEqual(walk([...flv].map((b) => Buffer.from([b]))).seen, expected());
  });

  it('reads WebSocket-FLV framing: the header message, then one tag per message', () => {
    const messages = [encodeFlvHeader({ audio: true, video: true }), ...tags.map((t) => encodeFlvTag(t))];
    assert.deepEqual(walk(messages).seen, expected());
  });

  it('works without a file header when told so', () => {
    assert.deepEqual(walk([flv.subarray(13)], false).seen, expected());
  });

  it('rejects a non-FLV stream and bad tag types', () => {
    assert.throws(
      () => walk([Buffer.from('HTTP/1.1 200 OK\r\n\r\n')]),
      (e: unknown) => e instanceof FlvWalkerError && e.reason === 'bad_signature',
    );
    const bad = Buffer.from(flv);
    bad[13] = 0x07; // first tag's type
    assert.throws(
      () => walk([bad]),
      (e: unknown) => e instanceof FlvWalkerError && e.reason === 'bad_tag_type',
    );
  });
});
