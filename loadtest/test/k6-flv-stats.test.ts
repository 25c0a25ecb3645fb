/**
 * The k6 suites' FLV parsing and metric math (loadtest/k6/lib/*.js), run by Node: the same module k6 imports.
 * A real FLV made by FFmpeg is fed whole, as the server's WebSocket messages (header, then one tag each), and split
 * at random points; the results are checked against the repo's reference FLV reader (@rtmp-relay/rtmp).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  FLV_PREVIOUS_TAG_SIZE_SIZE,
  FLV_TAG_HEADER_SIZE,
  encodeFlvHeader,
  encodeFlvTag,
  parseAudioTag,
  parseVideoTag,
  readFlvFile,
} from '@rtmp-relay/rtmp';
import fc from 'fast-check';
import {
  FlvParser,
  ViewerStats,
  bitsPerSecond,
  classifyTag,
  flvUrl,
  list,
  percentile,
  pickTarget,
  summarizeHttpBody,
  toBytes,
  type FlvTagInfo,
} from '../k6/lib/flv-stats.js';
import { apiScenarios, envNumber, scenarioName, viewerScenarios } from '../k6/lib/scenarios.js';

let dir: string;
/** 4 s of H.264 (30 fps, GOP 30) + AAC, muxed by FFmpeg. */
let flv: Buffer;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'k6-flv-'));
  const out = join(dir, 'test.flv');
  const r = spawnSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=320x240:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=44100',
      '-t',
      '4',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '30',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-b:a',
      '64k',
      '-f',
      'flv',
      out,
    ],
    { timeout: 60_000, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `ffmpeg failed: ${r.stderr}`);
  flv = readFileSync(out);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What the reference reader says about each tag, in the parser's terms. */
function reference(
  buf: Buffer,
): Array<Pick<FlvTagInfo, 'type' | 'timestamp' | 'size' | 'keyframe' | 'sequenceHeader'>> {
  return readFlvFile(buf).tags.map((t) => {
    if (t.type === 9) {
      const v = parseVideoTag(t.data);
      return {
        type: 9,
        timestamp: t.timestamp,
        size: t.data.length,
        keyframe: v.isKeyframe && !v.isSequenceHeader,
        sequenceHeader: v.isSequenceHeader,
      };
    }
    if (t.type === 8) {
      const a = parseAudioTag(t.data);
      return {
        type: 8,
        timestamp: t.timestamp,
        size: t.data.length,
        keyframe: false,
        sequenceHeader: a.isSequenceHeader,
      };
    }
    return { type: t.type, timestamp: t.timestamp, size: t.data.length, keyframe: false, sequenceHeader: false };
  });
}

const essentials = (tags: FlvTagInfo[]) =>
  tags.map(({ type, timestamp, size, keyframe, sequenceHeader }) => ({
    type,
    timestamp,
    size,
    keyframe,
    sequenceHeader,
  }));

/** Splits `buf` at the given cut points (any order, duplicates allowed), as ArrayBuffers like k6 delivers them. */
function split(buf: Buffer, cuts: number[]): ArrayBuffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(buf.length, c))))].sort((a, b) => a - b);
  const out: ArrayBuffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    if (p < prev) continue;
    const piece = buf.subarray(prev, p);
    out.push(piece.buffer.slice(piece.byteOffset, piece.byteOffset + piece.length) as ArrayBuffer);
    prev = p;
  }
  return out;
}

/** The server's WebSocket-FLV framing: the 13-byte header, then one whole tag (with its PreviousTagSize) per message. */
function wsMessages(buf: Buffer): Buffer[] {
  const { header, tags } = readFlvFile(buf);
  return [
    encodeFlvHeader(header),
    ...tags.map((t) => encodeFlvTag({ type: t.type, timestamp: t.timestamp, data: t.data })),
  ];
}

describe('FlvParser on a real FFmpeg FLV', () => {
  it('parses the whole file like the reference reader (types, timestamps, sizes, keyframes, sequence headers)', () => {
    const p = new FlvParser();
    const tags = p.push(flv);
    assert.equal(p.error, undefined);
    assert.deepEqual(p.header, { audio: true, video: true });
    assert.equal(p.bytes, flv.length);
    assert.equal(p.prevSizeMismatches, 0);
    assert.deepEqual(essentials(tags), reference(flv));
    const key = tags.filter((t) => t.keyframe);
    assert.ok(key.length >= 4, `${key.length} keyframes in 4 s at GOP 30`);
    assert.equal(tags.find((t) => t.type === 9 && !t.sequenceHeader)?.keyframe, true, 'the file starts at a keyframe');
    assert.equal(tags.find((t) => t.type === 9)?.fourCc, 'avc');
    assert.equal(tags.find((t) => t.type === 8)?.fourCc, 'aac');
    assert.equal(tags.filter((t) => t.sequenceHeader).length, 2, 'one AVC and one AAC sequence header');
  });

  it('gives the same tags for the server WebSocket framing (header message, then one tag per message)', () => {
    const p = new FlvParser();
    const tags = wsMessages(flv).flatMap((m) => p.push(new Uint8Array(m)));
    assert.equal(p.error, undefined);
    assert.deepEqual(essentials(tags), reference(flv));
  });

  it('gives the same tags however the stream is split across messages (random split points, 1-byte pieces included)', () => {
    const expected = reference(flv);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: flv.length }), { maxLength: 400 }),
        fc.boolean(),
        (cuts, asViews) => {
          const p = new FlvParser();
          const tags: FlvTagInfo[] = [];
          for (const piece of split(flv, cuts)) tags.push(...p.push(asViews ? new DataView(piece) : piece));
          assert.equal(p.error, undefined);
          assert.deepEqual(essentials(tags), expected);
        },
      ),
      { numRuns: 150 },
    );
    // Every byte on its own: a header or tag boundary anywhere.
    const p = new FlvParser();
    const tags: FlvTagInfo[] = [];
    const head = flv.subarray(0, 6000);
    for (let i = 0; i < head.length; i++) tags.push(...p.push(head.subarray(i, i + 1)));
    const whole = new FlvParser().push(head);
    assert.deepEqual(essentials(tags), essentials(whole));
    assert.ok(tags.length > 3);
  });

  it('reports tag offsets in the stream', () => {
    const tags = new FlvParser().push(flv);
    for (const t of tags.slice(0, 20)) {
      assert.equal(flv[t.offset]! & 0x1f, t.type);
      assert.equal(flv.readUInt32BE(t.offset + FLV_TAG_HEADER_SIZE + t.size), FLV_TAG_HEADER_SIZE + t.size);
    }
    assert.equal(tags[0]!.offset, 9 + FLV_PREVIOUS_TAG_SIZE_SIZE);
  });

  it('fails on a stream that is not FLV, or on a corrupt tag header, and stops there', () => {
    const notFlv = new FlvParser();
    assert.deepEqual(notFlv.push(Buffer.from('HTTP/1.1 404 Not Found\r\n\r\n')), []);
    assert.match(notFlv.error ?? '', /signature/);
    const corrupt = Buffer.from(flv.subarray(0, 2000));
    const firstTag = 13;
    corrupt[firstTag] = 0x47; // reserved bits set
    const p = new FlvParser();
    p.push(corrupt);
    assert.match(p.error ?? '', /bad FLV tag header/);
    assert.deepEqual(p.push(flv), [], 'nothing more after an error');
  });

  it('reads zero-size tags and a data offset past 9', () => {
    const header = Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 12, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0]);
    const empty = encodeFlvTag({ type: 9, timestamp: 7, data: Buffer.alloc(0) });
    const audio = encodeFlvTag({ type: 8, timestamp: 9, data: Buffer.from([0xaf, 0x01, 1, 2, 3]) });
    const p = new FlvParser();
    const tags = p.push(Buffer.concat([header, empty, audio]));
    assert.equal(p.error, undefined);
    assert.deepEqual(
      tags.map((t) => [t.type, t.timestamp, t.size]),
      [
        [9, 7, 0],
        [8, 9, 5],
      ],
    );
  });
});

describe('classifyTag: keyframes and sequence headers', () => {
  const c = (type: number, bytes: number[], size = 100) => classifyTag(type, Uint8Array.from(bytes), size);
  it('legacy AVC/HEVC: keyframe NALUs, sequence headers, inter frames, end of sequence', () => {
    assert.deepEqual(c(9, [0x17, 0x01, 0, 0, 0]), {
      keyframe: true,
      sequenceHeader: false,
      exHeader: false,
      fourCc: 'avc',
    });
    assert.deepEqual(c(9, [0x17, 0x00, 0, 0, 0]), {
      keyframe: false,
      sequenceHeader: true,
      exHeader: false,
      fourCc: 'avc',
    });
    assert.equal(c(9, [0x27, 0x01, 0, 0, 0]).keyframe, false);
    assert.equal(c(9, [0x17, 0x02, 0, 0, 0]).keyframe, false, 'end of sequence is not a frame');
    assert.equal(c(9, [0x1c, 0x01]).fourCc, 'hevc');
    assert.equal(c(9, [0x12]).keyframe, true, 'H.263 keyframe');
  });
  it('Enhanced RTMP video: FourCC, SequenceStart, CodedFrames/CodedFramesX keyframes, metadata', () => {
    const ex = (frameType: number, packetType: number, fourCc: string) =>
      c(9, [0x80 | (frameType << 4) | packetType, ...Buffer.from(fourCc, 'latin1')]);
    assert.deepEqual(ex(1, 0, 'hvc1'), { keyframe: false, sequenceHeader: true, exHeader: true, fourCc: 'hvc1' });
    assert.deepEqual(ex(1, 1, 'hvc1'), { keyframe: true, sequenceHeader: false, exHeader: true, fourCc: 'hvc1' });
    assert.equal(ex(1, 3, 'av01').keyframe, true);
    assert.equal(ex(2, 3, 'av01').keyframe, false);
    assert.equal(ex(1, 4, 'av01').keyframe, false, 'metadata is not a frame');
  });
  it('audio: AAC sequence header vs frames, E-RTMP audio SequenceStart', () => {
    assert.equal(c(8, [0xaf, 0x00]).sequenceHeader, true);
    assert.equal(c(8, [0xaf, 0x01]).sequenceHeader, false);
    assert.equal(c(8, [0x2f]).fourCc, 'mp3');
    assert.deepEqual(c(8, [0x90, ...Buffer.from('Opus', 'latin1')]), {
      keyframe: false,
      sequenceHeader: true,
      exHeader: true,
      fourCc: 'Opus',
    });
    assert.equal(c(8, [0x91, ...Buffer.from('Opus', 'latin1')]).sequenceHeader, false);
  });
  it('empty tags and script data are neither', () => {
    assert.deepEqual(c(9, [], 0), { keyframe: false, sequenceHeader: false, exHeader: false, fourCc: undefined });
    assert.equal(c(18, [2, 0, 10]).keyframe, false);
  });
});

describe('ViewerStats: time to first keyframe, bit rate, stalls', () => {
  it('a real-time delivery of the FFmpeg file: TTFK at the keyframe message, no stalls, bit rate = bytes over time', () => {
    const msgs = wsMessages(flv);
    const { tags } = readFlvFile(flv);
    const stats = new ViewerStats({ startedAt: 1000, stallMs: 500 });
    // The header and sequence headers arrive 40 ms after the connect, each tag then at its media time.
    let now = 1040;
    stats.push(msgs[0]!, now);
    const t0 = tags[0]!.timestamp;
    for (let i = 0; i < tags.length; i++) {
      now = 1040 + (tags[i]!.timestamp - t0);
      stats.push(msgs[i + 1]!, now);
    }
    const end = now + 100;
    const s = stats.summary(end);
    assert.equal(s.error, undefined);
    assert.equal(s.playing, true);
    const firstKey = tags.find(
      (t) => t.type === 9 && parseVideoTag(t.data).isKeyframe && !parseVideoTag(t.data).isSequenceHeader,
    )!;
    assert.equal(
      s.timeToFirstKeyframeMs,
      40 + firstKey.timestamp - t0,
      'the keyframe message arrives at its media time',
    );
    assert.equal(s.stalls, 0);
    assert.equal(s.stallTimeMs, 0);
    assert.equal(s.startedWithoutKeyframe, false);
    assert.ok(s.keyframes >= 4);
    assert.equal(
      s.bytes,
      msgs.reduce((n, m) => n + m.length, 0),
    );
    assert.ok(Math.abs(s.bitsPerSecond - (s.bytes * 8 * 1000) / (end - 1040)) < 1e-6);
    assert.ok(s.maxLagMs <= 1, `lag ${s.maxLagMs}`);
    assert.ok(s.mediaMs > 3500, `media ${s.mediaMs} ms`);
  });

  it('counts a gap in media longer than the threshold as a stall, with the time beyond it, and an open stall at the end', () => {
    const stats = new ViewerStats({ startedAt: 0, stallMs: 1000 });
    const head = encodeFlvHeader({ audio: false, video: true });
    const key = (ts: number) => encodeFlvTag({ type: 9, timestamp: ts, data: Buffer.from([0x17, 1, 0, 0, 0, 9, 9]) });
    const inter = (ts: number) => encodeFlvTag({ type: 9, timestamp: ts, data: Buffer.from([0x27, 1, 0, 0, 0, 9]) });
    stats.push(head, 10);
    stats.push(key(0), 100);
    stats.push(inter(33), 133);
    stats.push(inter(66), 1666); // 1533 ms gap: a stall of 533 ms beyond the threshold
    stats.push(inter(99), 1699);
    let s = stats.summary(1700);
    assert.equal(s.timeToFirstKeyframeMs, 100);
    assert.equal(s.stalls, 1);
    assert.equal(s.stallTimeMs, 533);
    assert.equal(s.longestGapMs, 1533);
    assert.equal(s.maxLagMs, 1699 - 100 - 99);
    // Nothing after 1699: ending at 4000 closes an open stall (2301 ms silent, 1301 ms beyond).
    s = stats.summary(4000);
    assert.equal(s.stalls, 2);
    assert.equal(s.stallTimeMs, 533 + 1301);
  });

  it('a join that starts with an inter frame is flagged, and frames before the first keyframe are not stalls', () => {
    const stats = new ViewerStats({ startedAt: 0, stallMs: 100 });
    stats.push(encodeFlvHeader({ audio: false, video: true }), 1);
    stats.push(encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.from([0x27, 1, 0, 0, 0]) }), 2);
    stats.push(encodeFlvTag({ type: 9, timestamp: 5000, data: Buffer.from([0x17, 1, 0, 0, 0]) }), 5000);
    const s = stats.summary(5001);
    assert.equal(s.startedWithoutKeyframe, true);
    assert.equal(s.timeToFirstKeyframeMs, 5000);
    assert.equal(s.stalls, 0);
  });

  it('audio-only streams play from the first audio frame', () => {
    const stats = new ViewerStats({ startedAt: 0 });
    stats.push(encodeFlvHeader({ audio: true, video: false }), 5);
    stats.push(encodeFlvTag({ type: 8, timestamp: 0, data: Buffer.from([0xaf, 0x00, 0x12, 0x10]) }), 6);
    stats.push(encodeFlvTag({ type: 8, timestamp: 0, data: Buffer.from([0xaf, 0x01, 1, 2]) }), 30);
    const s = stats.summary(40);
    assert.equal(s.playing, true);
    assert.equal(s.timeToFirstKeyframeMs, 30);
  });

  it('never playing: no TTFK, no stalls', () => {
    const s = new ViewerStats({ startedAt: 0 }).summary(10_000);
    assert.equal(s.playing, false);
    assert.equal(s.timeToFirstKeyframeMs, undefined);
    assert.equal(s.stalls, 0);
    assert.equal(s.bitsPerSecond, 0);
  });
});

describe('summarizeHttpBody: a bounded HTTP-FLV session read as one body', () => {
  it('a body holding as much media as the session lasted: playing, no stall, ratio ~1', () => {
    const s = summarizeHttpBody(flv.buffer.slice(flv.byteOffset, flv.byteOffset + flv.length) as ArrayBuffer, {
      wallMs: 4000,
      ttfbMs: 20,
      stallMs: 1000,
    });
    assert.equal(s.error, undefined);
    assert.equal(s.playing, true);
    assert.equal(s.startsWithKeyframe, true);
    assert.equal(s.stalled, false);
    assert.ok(s.realtimeRatio > 0.9 && s.realtimeRatio < 1.1, `ratio ${s.realtimeRatio}`);
    assert.ok(Math.abs(s.bitsPerSecond - (flv.length * 8 * 1000) / 3980) < 1e-6);
  });

  it('a body far shorter than the session: stalled by the shortfall beyond the threshold', () => {
    const s = summarizeHttpBody(flv, { wallMs: 10_000, ttfbMs: 0, stallMs: 1000 });
    assert.equal(s.stalled, true);
    assert.ok(Math.abs(s.stallTimeMs - (10_000 - s.mediaMs - 1000)) < 1e-6);
  });

  it('a body that is not FLV (an error page) is reported as such', () => {
    const s = summarizeHttpBody(Buffer.from('{"error":"stream not found"}'), { wallMs: 100, ttfbMs: 10 });
    assert.ok(s.error);
    assert.equal(s.playing, false);
  });
});

describe('helpers', () => {
  it('bitsPerSecond and percentile', () => {
    assert.equal(bitsPerSecond(125_000, 1000), 1_000_000);
    assert.equal(bitsPerSecond(1000, 0), 0);
    assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
    assert.equal(percentile([5, 1, 4, 2, 3], 95), 5);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it('pickTarget spreads 1-based VUs round robin; list and flvUrl', () => {
    const targets = ['a', 'b', 'c'];
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((vu) => pickTarget(targets, vu)),
      ['a', 'b', 'c', 'a', 'b'],
    );
    assert.throws(() => pickTarget([], 1));
    assert.deepEqual(list(' x, ,y ,'), ['x', 'y']);
    assert.deepEqual(list(undefined, ['d']), ['d']);
    assert.equal(
      flvUrl('http://e:8090/', 'live/cam 1', { websocket: true, query: '?expires=1&token=t', codecs: 'hvc1,av01' }),
      'ws://e:8090/live/cam%201.flv?expires=1&token=t&codecs=hvc1%2Cav01',
    );
    assert.equal(flvUrl('https://e', 'live/x'), 'https://e/live/x.flv');
    assert.equal(flvUrl('wss://e', 'live/x'), 'https://e/live/x.flv');
    assert.equal(toBytes(new Uint8Array([1, 2]).buffer).length, 2);
  });

  it('scenarios from env: smoke, ramp to VIEWERS, soak; bad values refused', () => {
    assert.equal(scenarioName({}), 'smoke');
    const smoke = viewerScenarios({}, 'viewer');
    assert.deepEqual(Object.keys(smoke), ['smoke']);
    assert.equal((smoke.smoke as { vus: number }).vus, 2);
    const ramp = viewerScenarios(
      { K6_SCENARIO: 'ramp', VIEWERS: '500', RAMP: '5m', SESSION: '60' },
      'viewer',
    ) as Record<string, any>;
    assert.equal(ramp.ramp.executor, 'ramping-vus');
    assert.deepEqual(ramp.ramp.stages[0], { duration: '5m', target: 500 });
    assert.equal(ramp.ramp.gracefulStop, '70s');
    const soak = viewerScenarios({ K6_SCENARIO: 'SOAK', VIEWERS: '20', DURATION: '2h' }, 'viewer') as Record<
      string,
      any
    >;
    assert.deepEqual([soak.soak.executor, soak.soak.vus, soak.soak.duration], ['constant-vus', 20, '2h']);
    const api = apiScenarios({ K6_SCENARIO: 'soak', RATE: '200' }, 'api') as Record<string, any>;
    assert.deepEqual([api.soak.executor, api.soak.rate], ['constant-arrival-rate', 200]);
    assert.throws(() => scenarioName({ K6_SCENARIO: 'spike' }), /smoke, ramp or soak/);
    assert.throws(() => envNumber({ VIEWERS: 'lots' }, 'VIEWERS', 1), /VIEWERS/);
  });
});
