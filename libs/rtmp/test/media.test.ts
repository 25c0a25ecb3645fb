import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import {
  avcNalType,
  buildAvcDecoderConfig,
  buildHevcDecoderConfig,
  groupAccessUnits,
  hevcNalType,
  isKeyframeNal,
  isParameterSetNal,
  joinAnnexB,
  lengthPrefixedToAnnexB,
  nalToRbsp,
  parseAvcDecoderConfig,
  parseAvcSps,
  parseHevcDecoderConfig,
  parseHevcSps,
  splitAnnexB,
  splitLengthPrefixed,
  toLengthPrefixed,
} from '../src/annexb.js';
import { RtmpProtocolError } from '../src/errors.js';
import { encodeFlvHeader, encodeFlvTag, readFlvFile } from '../src/flv.js';
import {
  MAX_MULTITRACK_TRACKS,
  fourCcToNumber,
  fourCcToString,
  parseAudioTag,
  parseVideoTag,
  type AudioInfo,
  type VideoInfo,
} from '../src/media.js';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: <repo>/../shared/fixtures/e-rtmp (the repo and shared/ are siblings), or $RTMP_RELAY_SHARED_DIR.
// ---------------------------------------------------------------------------------------------------------------
function fixtureDir(): string {
  const relative = fileURLToPath(new URL('../../../../shared/fixtures/e-rtmp/', import.meta.url));
  if (existsSync(relative)) return relative;
  const env = process.env.RTMP_RELAY_SHARED_DIR;
  if (env) {
    const dir = join(env, 'fixtures', 'e-rtmp');
    if (existsSync(dir)) return dir;
  }
  throw new Error(`E-RTMP fixtures not found at ${relative} (set RTMP_RELAY_SHARED_DIR to the shared/ directory)`);
}
const FIXTURE_DIR = fixtureDir();

/** Build a payload from bytes, FourCC/ASCII strings and buffers. */
function bytes(...parts: (number | string | Buffer | number[])[]): Buffer {
  return Buffer.concat(
    parts.map((p) =>
      typeof p === 'number'
        ? Buffer.from([p])
        : typeof p === 'string'
          ? Buffer.from(p, 'latin1')
          : Buffer.isBuffer(p)
            ? p
            : Buffer.from(p),
    ),
  );
}
const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
/** SI24 */
const s24 = (n: number): Buffer => u24(n < 0 ? n + 0x1000000 : n);

function assertProtocolError(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RtmpProtocolError, `expected RtmpProtocolError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    return true;
  });
}

function pick<T extends object>(info: T, keys: (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) out[k] = info[k];
  return out;
}
const V_KEYS: (keyof VideoInfo)[] = [
  'exHeader',
  'frameType',
  'codecId',
  'fourCc',
  'packetType',
  'isKeyframe',
  'isSequenceHeader',
  'isMetadata',
  'isCommand',
  'compositionTime',
];
const A_KEYS: (keyof AudioInfo)[] = [
  'exHeader',
  'soundFormat',
  'fourCc',
  'packetType',
  'isSequenceHeader',
  'isSilence',
];
const video = (data: Buffer, opts?: { legacyHevcCodecId?: number }): Partial<VideoInfo> =>
  pick(parseVideoTag(data, opts), V_KEYS);
const audio = (data: Buffer): Partial<AudioInfo> => pick(parseAudioTag(data), A_KEYS);
const legacyVideo = (o: Partial<VideoInfo>): Partial<VideoInfo> => ({
  exHeader: false,
  fourCc: undefined,
  isMetadata: false,
  isCommand: false,
  compositionTime: 0,
  ...o,
});
const exVideo = (o: Partial<VideoInfo>): Partial<VideoInfo> => ({
  exHeader: true,
  codecId: undefined,
  isKeyframe: false,
  isSequenceHeader: false,
  isMetadata: false,
  isCommand: false,
  compositionTime: 0,
  ...o,
});

// A few real parameter sets and payload bytes (x264/x265 320x240) for the byte fixtures.
const AVC_SPS = Buffer.from('6764000dacb20283f60220000003002000000781e28549', 'hex');
const AVC_PPS = Buffer.from('68ebc3cb22c0', 'hex');
const AVCC = buildAvcDecoderConfig(AVC_SPS, AVC_PPS);
const NALUS = toLengthPrefixed([Buffer.from('65888404ff', 'hex')]);

// ---------------------------------------------------------------------------------------------------------------
// Every byte fixture used below, for the truncation sweep at the end.
// ---------------------------------------------------------------------------------------------------------------
const VIDEO_SAMPLES: Buffer[] = [];
const AUDIO_SAMPLES: Buffer[] = [];
const v = (b: Buffer): Buffer => (VIDEO_SAMPLES.push(b), b);
const a = (b: Buffer): Buffer => (AUDIO_SAMPLES.push(b), b);

describe('legacy video', () => {
  it('AVC sequence header 17 00 00 00 00', () => {
    const info = parseVideoTag(v(bytes(0x17, 0, 0, 0, 0, AVCC)));
    assert.deepEqual(
      pick(info, V_KEYS),
      legacyVideo({ frameType: 1, codecId: 7, packetType: 0, isKeyframe: false, isSequenceHeader: true }),
    );
    assert.equal(info.payloadOffset, 5);
    assert.deepEqual(parseAvcDecoderConfig(bytes(0x17, 0, 0, 0, 0, AVCC).subarray(info.payloadOffset)).sps, [AVC_SPS]);
  });

  it('AVC keyframe with negative composition time (FF FF F6 = -10)', () => {
    assert.deepEqual(
      video(v(bytes(0x17, 1, 0xff, 0xff, 0xf6, NALUS))),
      legacyVideo({
        frameType: 1,
        codecId: 7,
        packetType: 1,
        isKeyframe: true,
        isSequenceHeader: false,
        compositionTime: -10,
      }),
    );
    assert.equal(parseVideoTag(bytes(0x17, 1, 0x80, 0, 0)).compositionTime, -0x800000);
    assert.equal(parseVideoTag(bytes(0x17, 1, 0x7f, 0xff, 0xff)).compositionTime, 0x7fffff);
  });

  it('AVC inter frame with positive composition time', () => {
    assert.deepEqual(
      video(v(bytes(0x27, 1, 0, 0, 67, NALUS))),
      legacyVideo({
        frameType: 2,
        codecId: 7,
        packetType: 1,
        isKeyframe: false,
        isSequenceHeader: false,
        compositionTime: 67,
      }),
    );
  });

  it('AVC end of sequence is neither keyframe nor header', () => {
    const info = parseVideoTag(v(bytes(0x17, 2, 0, 0, 0)));
    assert.equal(info.isSequenceEnd, true);
    assert.equal(info.isKeyframe, false);
    assert.equal(info.isSequenceHeader, false);
  });

  it('legacy command frame (frame type 5)', () => {
    const info = parseVideoTag(v(bytes(0x57, 1)));
    assert.equal(info.isCommand, true);
    assert.equal(info.command, 1);
    assert.equal(info.isKeyframe, false);
    assert.equal(info.isCodedFrame, false);
    assert.equal(parseVideoTag(bytes(0x52)).isCommand, true); // command byte missing: best effort, no throw
  });

  it('other legacy codecs are opaque frames; HEVC codec id 12 is unknown unless configured', () => {
    assert.deepEqual(
      video(v(bytes(0x14, 0, 1, 2))),
      legacyVideo({ frameType: 1, codecId: 4, packetType: -1, isKeyframe: true, isSequenceHeader: false }),
    );
    assert.deepEqual(
      video(v(bytes(0x22, 9))),
      legacyVideo({ frameType: 2, codecId: 2, packetType: -1, isKeyframe: false, isSequenceHeader: false }),
    );
    const hevcHack = v(bytes(0x1c, 0, 0, 0, 0, 1, 2, 3));
    assert.deepEqual(
      video(hevcHack),
      legacyVideo({ frameType: 1, codecId: 12, packetType: -1, isKeyframe: false, isSequenceHeader: false }),
    );
    assert.deepEqual(
      video(hevcHack, { legacyHevcCodecId: 12 }),
      legacyVideo({ frameType: 1, codecId: 12, packetType: 0, isKeyframe: false, isSequenceHeader: true }),
    );
    assert.equal(parseVideoTag(bytes(0x1c, 1, 0xff, 0xff, 0xfe, 0), { legacyHevcCodecId: 12 }).compositionTime, -2);
  });

  it('rejects empty and cut-short AVC headers with RtmpProtocolError', () => {
    assertProtocolError(() => parseVideoTag(Buffer.alloc(0)), 'video_truncated');
    assertProtocolError(() => parseVideoTag(bytes(0x17)), 'video_truncated');
    assertProtocolError(() => parseVideoTag(bytes(0x17, 1, 0, 0)), 'video_truncated');
  });
});

describe('legacy audio', () => {
  it('AAC AF 00 is the sequence header, AF 01 raw', () => {
    assert.deepEqual(audio(a(bytes(0xaf, 0, 0x12, 0x10))), {
      exHeader: false,
      soundFormat: 10,
      fourCc: undefined,
      packetType: 0,
      isSequenceHeader: true,
      isSilence: false,
    });
    const raw = parseAudioTag(a(bytes(0xaf, 1, 0x21, 0x10, 0x04)));
    assert.deepEqual(pick(raw, A_KEYS), {
      exHeader: false,
      soundFormat: 10,
      fourCc: undefined,
      packetType: 1,
      isSequenceHeader: false,
      isSilence: false,
    });
    assert.equal(raw.payloadOffset, 2);
    // rate/size/type bits are ignored for AAC
    assert.equal(parseAudioTag(bytes(0xa0, 0, 0x12, 0x10)).isSequenceHeader, true);
  });

  it('MP3 and other legacy formats', () => {
    assert.deepEqual(audio(a(bytes(0x2f, 0xff, 0xfb))), {
      exHeader: false,
      soundFormat: 2,
      fourCc: undefined,
      packetType: undefined,
      isSequenceHeader: false,
      isSilence: false,
    });
    assert.equal(parseAudioTag(bytes(0xb2, 1)).soundFormat, 11);
  });

  it('an empty audio message is silence, not a header', () => {
    assert.deepEqual(audio(Buffer.alloc(0)), {
      exHeader: false,
      soundFormat: -1,
      fourCc: undefined,
      packetType: undefined,
      isSequenceHeader: false,
      isSilence: true,
    });
  });

  it('AAC without packet type is truncated', () => {
    assertProtocolError(() => parseAudioTag(bytes(0xaf)), 'audio_truncated');
  });
});

describe('E-RTMP video', () => {
  const hvcc = Buffer.from('0101600000009000000000003cf000fcfdf8f800000f03', 'hex');

  it('0x90 hvc1 SequenceStart', () => {
    const info = parseVideoTag(v(bytes(0x90, 'hvc1', hvcc)));
    assert.deepEqual(
      pick(info, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'hvc1', packetType: 0, isSequenceHeader: true }),
    );
    assert.equal(info.payloadOffset, 5);
  });

  it('0x91 hvc1 CodedFrames carries SI24 CTS', () => {
    const info = parseVideoTag(v(bytes(0x91, 'hvc1', s24(66), NALUS)));
    assert.deepEqual(
      pick(info, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'hvc1', packetType: 1, isKeyframe: true, compositionTime: 66 }),
    );
    assert.equal(info.payloadOffset, 8);
    assert.equal(parseVideoTag(v(bytes(0x91, 'avc1', s24(-33), NALUS))).compositionTime, -33);
    assert.equal(parseVideoTag(v(bytes(0x91, 'vvc1', s24(-1), NALUS))).compositionTime, -1);
  });

  it('0x93 CodedFramesX: CTS 0, no CTS bytes', () => {
    const info = parseVideoTag(v(bytes(0x93, 'hvc1', NALUS)));
    assert.deepEqual(pick(info, V_KEYS), exVideo({ frameType: 1, fourCc: 'hvc1', packetType: 3, isKeyframe: true }));
    assert.equal(info.payloadOffset, 5);
  });

  it('0xA1 inter frame; av01/vp09 CodedFrames have no CTS', () => {
    assert.deepEqual(
      video(v(bytes(0xa1, 'hvc1', s24(33), NALUS))),
      exVideo({ frameType: 2, fourCc: 'hvc1', packetType: 1, compositionTime: 33 }),
    );
    const av1 = parseVideoTag(v(bytes(0xa1, 'av01', 0x12, 0x00, 0x0a)));
    assert.deepEqual(pick(av1, V_KEYS), exVideo({ frameType: 2, fourCc: 'av01', packetType: 1 }));
    assert.equal(av1.payloadOffset, 5);
    assert.equal(parseVideoTag(v(bytes(0x91, 'vp09', 0xff))).isKeyframe, true);
  });

  it('MPEG2TSSequenceStart is a sequence header; SequenceEnd is not a keyframe', () => {
    assert.deepEqual(
      video(v(bytes(0x95, 'av01', 0x80))),
      exVideo({ frameType: 1, fourCc: 'av01', packetType: 5, isSequenceHeader: true }),
    );
    const end = parseVideoTag(v(bytes(0x92, 'hvc1')));
    assert.equal(end.isSequenceEnd, true);
    assert.equal(end.isKeyframe, false);
  });

  it('Metadata (packet type 4): frame type ignored, never a command or keyframe', () => {
    const amf = bytes(2, u16(9), 'colorInfo', 3, 0, 0, 9);
    assert.deepEqual(
      video(v(bytes(0xd4, 'hvc1', amf))),
      exVideo({ frameType: 5, fourCc: 'hvc1', packetType: 4, isMetadata: true }),
    );
    assert.deepEqual(
      video(v(bytes(0x94, 'av01', amf))),
      exVideo({ frameType: 1, fourCc: 'av01', packetType: 4, isMetadata: true }),
    );
  });

  it('command frame: frame type 5 with packet type != 4, a UI8 instead of FourCC and video', () => {
    const info = parseVideoTag(v(bytes(0xd1, 0x01)));
    assert.deepEqual(pick(info, V_KEYS), exVideo({ frameType: 5, fourCc: undefined, packetType: 1, isCommand: true }));
    assert.equal(info.command, 1);
    assert.equal(info.isCodedFrame, false);
    assert.equal(parseVideoTag(v(bytes(0xd0, 0x00))).command, 0);
    assert.equal(parseVideoTag(bytes(0xd3)).isCommand, true); // no command byte: best effort
  });

  it('unknown FourCC and unknown packet types pass through', () => {
    const info = parseVideoTag(v(bytes(0x91, 'xyz9', 1, 2, 3, 4)));
    assert.deepEqual(pick(info, V_KEYS), exVideo({ frameType: 1, fourCc: 'xyz9', packetType: 1, isKeyframe: true }));
    assert.equal(info.payloadOffset, 5);
    for (let pt = 8; pt < 16; pt++) {
      const u = parseVideoTag(v(bytes(0x90 | pt, 'hvc1', 0xde, 0xad)));
      assert.deepEqual(pick(u, V_KEYS), exVideo({ frameType: 1, fourCc: 'hvc1', packetType: pt }));
    }
    // reserved frame types
    assert.equal(parseVideoTag(bytes(0xe1, 'hvc1', s24(0))).frameType, 6);
    assert.equal(parseVideoTag(bytes(0x81, 'hvc1', s24(0))).isKeyframe, false);
  });

  it('Multitrack OneTrack', () => {
    const body = bytes(s24(10), NALUS);
    const msg = v(bytes(0x96, 0x01, 'hvc1', 3, body));
    const info = parseVideoTag(msg);
    assert.deepEqual(
      pick(info, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'hvc1', packetType: 1, isKeyframe: true, compositionTime: 10 }),
    );
    assert.equal(info.multitrackType, 0);
    assert.deepEqual(info.tracks, [
      { trackId: 3, fourCc: 'hvc1', bodyOffset: 7, bodySize: body.length, payloadOffset: 10, compositionTime: 10 },
    ]);
  });

  it('Multitrack ManyTracks (one codec, sized tracks)', () => {
    const t0 = bytes(AVCC);
    const t1 = bytes(AVCC, 0xee);
    const msg = v(bytes(0x96, 0x10, 'avc1', 0, u24(t0.length), t0, 1, u24(t1.length), t1));
    const info = parseVideoTag(msg);
    assert.deepEqual(
      pick(info, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'avc1', packetType: 0, isSequenceHeader: true }),
    );
    assert.equal(info.multitrackType, 1);
    assert.deepEqual(
      info.tracks!.map((t) => [t.trackId, t.fourCc, msg.subarray(t.bodyOffset, t.bodyOffset + t.bodySize)]),
      [
        [0, 'avc1', t0],
        [1, 'avc1', t1],
      ],
    );
  });

  it('Multitrack ManyTracksManyCodecs (per-track FourCC; CTS only for avc1/hvc1/vvc1)', () => {
    const t0 = bytes(s24(-20), NALUS);
    const t1 = bytes(0x12, 0x00);
    const t2 = bytes(s24(5), NALUS);
    const msg = v(
      bytes(0xa6, 0x21, 'avc1', 0, u24(t0.length), t0, 'av01', 1, u24(t1.length), t1, 'hvc1', 2, u24(t2.length), t2),
    );
    const info = parseVideoTag(msg);
    assert.deepEqual(
      pick(info, V_KEYS),
      exVideo({ frameType: 2, fourCc: 'avc1', packetType: 1, compositionTime: -20 }),
    );
    assert.equal(info.multitrackType, 2);
    assert.deepEqual(
      info.tracks!.map((t) => [t.trackId, t.fourCc, t.compositionTime, t.payloadOffset - t.bodyOffset]),
      [
        [0, 'avc1', -20, 3],
        [1, 'av01', 0, 0],
        [2, 'hvc1', 5, 3],
      ],
    );
  });

  it('Multitrack limits and malformed track sizes', () => {
    const track = (id: number): Buffer => bytes(id, u24(1), 0xaa);
    const ok = Array.from({ length: MAX_MULTITRACK_TRACKS }, (_, i) => track(i));
    assert.equal(parseVideoTag(v(bytes(0xa6, 0x13, 'av01', ...ok))).tracks!.length, MAX_MULTITRACK_TRACKS);
    assertProtocolError(() => parseVideoTag(bytes(0xa6, 0x13, 'av01', ...ok, track(16))), 'video_too_many_tracks');
    assertProtocolError(() => parseVideoTag(bytes(0xa6, 0x13, 'av01', 0, u24(5), 1, 2)), 'video_truncated');
    assertProtocolError(() => parseVideoTag(bytes(0xa6, 0x13, 'av01')), 'video_truncated');
    assertProtocolError(() => parseVideoTag(bytes(0xa6, 0x11, 'hvc1', 0, u24(2), 0, 0)), 'video_truncated'); // CTS cut
    // unknown multitrack type: reported, not parsed
    const unknown = parseVideoTag(v(bytes(0xa6, 0x31, 1, 2, 3)));
    assert.equal(unknown.multitrackType, 3);
    assert.deepEqual(unknown.tracks, []);
    assert.equal(unknown.packetType, 1);
  });

  it('ModEx with TimestampOffsetNano, 8- and 16-bit sizes, bounded count', () => {
    const nano = parseVideoTag(v(bytes(0x97, 2, u24(999_999), 0x01, 'hvc1', s24(-7), NALUS)));
    assert.deepEqual(
      pick(nano, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'hvc1', packetType: 1, isKeyframe: true, compositionTime: -7 }),
    );
    assert.equal(nano.timestampOffsetNano, 999_999);
    assert.equal(nano.payloadOffset, 1 + 1 + 3 + 1 + 4 + 3);

    // 16-bit size: 0xFF then u16 + 1 = 300 bytes of unknown ModEx (type 5), then SequenceStart
    const big = parseVideoTag(v(bytes(0x97, 0xff, u16(299), Buffer.alloc(300, 0x55), 0x50, 'av01', 0x81)));
    assert.deepEqual(
      pick(big, V_KEYS),
      exVideo({ frameType: 1, fourCc: 'av01', packetType: 0, isSequenceHeader: true }),
    );
    assert.equal(big.timestampOffsetNano, undefined);

    // ModEx before Multitrack
    const mt = parseVideoTag(v(bytes(0x97, 2, u24(1000), 0x06, 0x03, 'av01', 4, 0x0a)));
    assert.equal(mt.multitrackType, 0);
    assert.equal(mt.packetType, 3);
    assert.equal(mt.timestampOffsetNano, 1000);
    assert.deepEqual(
      mt.tracks!.map((t) => t.trackId),
      [4],
    );

    const chain = (n: number): Buffer =>
      bytes(0x97, ...Array.from({ length: n - 1 }, () => bytes(0, 0, 0x07)), 0, 0, 0x01, 'av01', 0);
    assert.equal(parseVideoTag(v(chain(8))).packetType, 1);
    assertProtocolError(() => parseVideoTag(chain(9)), 'video_too_many_modex');
    assertProtocolError(() => parseVideoTag(bytes(0x97, 0xff, u16(299), Buffer.alloc(100))), 'video_truncated');
  });

  it('cut-short E-RTMP headers throw RtmpProtocolError', () => {
    assertProtocolError(() => parseVideoTag(bytes(0x90, 'hv')), 'video_truncated');
    assertProtocolError(() => parseVideoTag(bytes(0x91, 'hvc1', 0)), 'video_truncated');
  });
});

describe('E-RTMP audio', () => {
  it('SequenceStart, MultichannelConfig, CodedFrames, SequenceEnd', () => {
    const ex = (o: Partial<AudioInfo>): Partial<AudioInfo> => ({
      exHeader: true,
      soundFormat: 9,
      isSilence: false,
      isSequenceHeader: false,
      ...o,
    });
    assert.deepEqual(
      audio(a(bytes(0x90, 'Opus', 'OpusHead', 1, 2))),
      ex({ fourCc: 'Opus', packetType: 0, isSequenceHeader: true }),
    );
    assert.deepEqual(
      audio(a(bytes(0x94, 'Opus', 1, 2, 0, 0, 0, 3))),
      ex({ fourCc: 'Opus', packetType: 4, isSequenceHeader: true }),
    );
    assert.deepEqual(audio(a(bytes(0x91, 'Opus', 0xf8, 0xff))), ex({ fourCc: 'Opus', packetType: 1 }));
    assert.deepEqual(
      audio(a(bytes(0x90, 'mp4a', 0x12, 0x10))),
      ex({ fourCc: 'mp4a', packetType: 0, isSequenceHeader: true }),
    );
    const end = parseAudioTag(a(bytes(0x92, 'fLaC')));
    assert.equal(end.isSequenceEnd, true);
    assert.equal(end.isSequenceHeader, false);
    assert.deepEqual(audio(a(bytes(0x9c, 'zzzz', 1))), ex({ fourCc: 'zzzz', packetType: 12 }));
  });

  it('Multitrack: OneTrack, ManyTracks, ManyTracksManyCodecs', () => {
    const one = parseAudioTag(a(bytes(0x95, 0x01, 'Opus', 2, 0xf8, 0xff)));
    assert.equal(one.packetType, 1);
    assert.equal(one.fourCc, 'Opus');
    assert.deepEqual(one.tracks, [
      { trackId: 2, fourCc: 'Opus', bodyOffset: 7, bodySize: 2, payloadOffset: 7, compositionTime: 0 },
    ]);

    const many = parseAudioTag(a(bytes(0x95, 0x10, 'mp4a', 0, u24(2), 0x12, 0x10, 1, u24(2), 0x11, 0x90)));
    assert.equal(many.isSequenceHeader, true);
    assert.equal(many.multitrackType, 1);
    assert.deepEqual(
      many.tracks!.map((t) => [t.trackId, t.fourCc, t.bodySize]),
      [
        [0, 'mp4a', 2],
        [1, 'mp4a', 2],
      ],
    );

    const mixed = parseAudioTag(
      a(bytes(0x95, 0x21, 'mp4a', 0, u24(3), 1, 2, 3, 'Opus', 1, u24(1), 9, '.mp3', 7, u24(0))),
    );
    assert.equal(mixed.fourCc, 'mp4a');
    assert.deepEqual(
      mixed.tracks!.map((t) => [t.trackId, t.fourCc]),
      [
        [0, 'mp4a'],
        [1, 'Opus'],
        [7, '.mp3'],
      ],
    );
    assertProtocolError(
      () => parseAudioTag(bytes(0x95, 0x11, 'Opus', ...Array.from({ length: 17 }, (_, i) => bytes(i, u24(0))))),
      'audio_too_many_tracks',
    );
  });

  it('ModEx TimestampOffsetNano', () => {
    const info = parseAudioTag(a(bytes(0x97, 2, u24(123_456), 0x01, 'Opus', 0xf8)));
    assert.equal(info.packetType, 1);
    assert.equal(info.fourCc, 'Opus');
    assert.equal(info.timestampOffsetNano, 123_456);
    assert.equal(info.payloadOffset, 10);
    const chain = bytes(0x97, ...Array.from({ length: 9 }, () => bytes(0, 0, 0x07)), 0, 0, 0x01, 'Opus');
    assertProtocolError(() => parseAudioTag(chain), 'audio_too_many_modex');
  });
});

describe('FourCC helpers', () => {
  it('converts both ways (onMetaData codec ids)', () => {
    assert.equal(fourCcToNumber('hvc1'), 1752589105);
    assert.equal(fourCcToNumber('av01'), 1635135537);
    assert.equal(fourCcToString(1752589105), 'hvc1');
    assert.equal(fourCcToString(fourCcToNumber('.mp3')), '.mp3');
    assert.throws(() => fourCcToNumber('hvc'), RangeError);
    assert.throws(() => fourCcToString(-1), RangeError);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => fourCcToNumber(fourCcToString(n)) === n));
  });
});

describe('E-RTMP fixtures (AV1 + Opus)', () => {
  function census(name: string) {
    const { tags } = readFlvFile(readFileSync(join(FIXTURE_DIR, name)));
    const c = {
      data: 0,
      videoFourCc: new Set<string>(),
      videoSeq: 0,
      videoMeta: 0,
      coded: 0,
      key: 0,
      inter: 0,
      audioFourCc: new Set<string>(),
      audioSeqStart: 0,
      audioMultichannel: 0,
      audioCoded: 0,
      other: 0,
    };
    for (const t of tags) {
      if (t.type === 18) c.data++;
      else if (t.type === 9) {
        const i = parseVideoTag(t.data);
        assert.equal(i.exHeader, true);
        c.videoFourCc.add(i.fourCc!);
        if (i.isSequenceHeader) c.videoSeq++;
        else if (i.isMetadata) {
          c.videoMeta++;
          assert.equal(i.frameType, 5);
          assert.equal(i.packetType, 4);
          assert.equal(i.isCommand, false);
          // the body is AMF0 ["colorInfo", {...}]
          assert.equal(t.data.toString('latin1', i.payloadOffset + 3, i.payloadOffset + 12), 'colorInfo');
        } else if (i.isCodedFrame) {
          c.coded++;
          if (i.isKeyframe) c.key++;
          else if (i.frameType === 2) c.inter++;
        } else c.other++;
      } else {
        const i = parseAudioTag(t.data);
        assert.equal(i.exHeader, true);
        c.audioFourCc.add(i.fourCc!);
        if (i.packetType === 0) c.audioSeqStart++;
        else if (i.packetType === 4) c.audioMultichannel++;
        else if (i.packetType === 1) c.audioCoded++;
        else c.other++;
        assert.equal(i.isSequenceHeader, i.packetType === 0 || i.packetType === 4);
      }
    }
    return c;
  }

  for (const name of ['testsrc.flv', 'testsrc2.flv']) {
    it(`${name}: AV1 2 SequenceStart, 1 Metadata, 300 coded (1 key); Opus SequenceStart + MultichannelConfig + 501 coded`, () => {
      const c = census(name);
      assert.deepEqual([...c.videoFourCc], ['av01']);
      assert.deepEqual([...c.audioFourCc], ['Opus']);
      assert.equal(c.videoSeq, 2);
      assert.equal(c.videoMeta, 1);
      assert.equal(c.coded, 300);
      assert.equal(c.key, 1);
      assert.equal(c.inter, 299);
      assert.equal(c.audioSeqStart, 1);
      assert.equal(c.audioMultichannel, 1);
      assert.equal(c.audioCoded, 501);
      assert.equal(c.data, 1);
      assert.equal(c.other, 0);
    });
  }

  it('mptestsrc.flv: AV1 + Opus, 3 keyframes, 339 inter frames', () => {
    const c = census('mptestsrc.flv');
    assert.deepEqual([...c.videoFourCc], ['av01']);
    assert.deepEqual([...c.audioFourCc], ['Opus']);
    assert.equal(c.key, 3);
    assert.equal(c.inter, 339);
    assert.equal(c.videoSeq, 2);
    assert.equal(c.videoMeta, 1);
    assert.equal(c.audioSeqStart + c.audioMultichannel, 2);
    assert.equal(c.other, 0);
  });
});

describe('robustness', () => {
  const check = (fn: () => unknown): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof RtmpProtocolError)) throw err;
      assert.match(err.reason, /^(video|audio)_/);
    }
  };

  it('every prefix of every byte fixture parses or throws RtmpProtocolError', () => {
    assert.ok(VIDEO_SAMPLES.length > 30 && AUDIO_SAMPLES.length > 10);
    for (const s of VIDEO_SAMPLES) for (let n = 0; n <= s.length; n++) check(() => parseVideoTag(s.subarray(0, n)));
    for (const s of AUDIO_SAMPLES) for (let n = 0; n <= s.length; n++) check(() => parseAudioTag(s.subarray(0, n)));
  });

  it('random payloads never throw anything else, and offsets stay in bounds (fast-check)', () => {
    const interesting = fc.constantFrom(
      0x17,
      0x27,
      0x57,
      0x90,
      0x91,
      0x93,
      0x94,
      0x96,
      0x97,
      0xa6,
      0xd1,
      0xd4,
      0x95,
      0xaf,
      0x9f,
    );
    const payload = fc.tuple(fc.oneof(interesting, fc.integer({ min: 0, max: 255 })), fc.uint8Array({ maxLength: 80 }));
    fc.assert(
      fc.property(payload, ([b0, rest]) => {
        const buf = bytes(b0, Buffer.from(rest));
        for (const parse of [parseVideoTag, parseAudioTag]) {
          check(() => {
            const info = parse(buf);
            assert.ok(info.payloadOffset <= buf.length);
            for (const t of info.tracks ?? [])
              assert.ok(t.bodyOffset + t.bodySize <= buf.length && t.payloadOffset <= buf.length);
            assert.ok((info.tracks?.length ?? 0) <= MAX_MULTITRACK_TRACKS);
          });
        }
      }),
      { numRuns: 5000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Annex B helpers, and interop with FFmpeg (encoders produce Annex B; FFmpeg must decode what we rebuild).
// ---------------------------------------------------------------------------------------------------------------
describe('Annex B helpers', () => {
  it('splits 3- and 4-byte start codes, drops leading garbage and trailing zeros', () => {
    const s = bytes(0xaa, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 0, 1, 0x65, 0, 0, 3, 0, 9, 0, 0);
    assert.deepEqual(splitAnnexB(s), [bytes(0x67, 1, 2), bytes(0x68, 3), bytes(0x65, 0, 0, 3, 0, 9)]);
    assert.deepEqual(splitAnnexB(bytes(1, 2, 3)), []);
    assert.deepEqual(splitAnnexB(bytes(0, 0, 1, 0, 0, 1)), []);
  });

  it('length-prefixed <-> Annex B', () => {
    const nals = [bytes(0x67, 1), bytes(0x65, 0, 0, 3, 1)];
    for (const size of [1, 2, 3, 4] as const) {
      const lp = toLengthPrefixed(nals, size);
      assert.deepEqual(splitLengthPrefixed(lp, size), nals);
      assert.deepEqual(lengthPrefixedToAnnexB(lp, size), bytes(0, 0, 0, 1, nals[0]!, 0, 0, 0, 1, nals[1]!));
    }
    assert.deepEqual(joinAnnexB(nals), lengthPrefixedToAnnexB(toLengthPrefixed(nals)));
    assertProtocolError(() => splitLengthPrefixed(bytes(0, 0, 0, 9, 1)), 'nalu_truncated');
    assertProtocolError(() => splitLengthPrefixed(bytes(0, 0)), 'nalu_truncated');
    assert.throws(() => toLengthPrefixed([Buffer.alloc(256)], 1), RangeError);
  });

  it('NAL types, RBSP and the SPS parsers', () => {
    assert.equal(avcNalType(AVC_SPS), 7);
    assert.equal(hevcNalType(bytes(0x40, 0x01)), 32);
    assert.equal(hevcNalType(bytes(0x26, 0x01)), 19);
    assert.deepEqual(nalToRbsp(bytes(1, 0, 0, 3, 0, 0, 0, 3)), bytes(1, 0, 0, 0, 0, 0));
    assert.deepEqual(pick(parseAvcSps(AVC_SPS), ['profileIdc', 'levelIdc', 'chromaFormatIdc', 'width', 'height']), {
      profileIdc: 100,
      levelIdc: 13,
      chromaFormatIdc: 1,
      width: 320,
      height: 240,
    });
    assert.deepEqual(
      AVCC,
      Buffer.from('0164000dffe100176764000dacb20283f60220000003002000000781e2854901000668ebc3cb22c0fdf8f800', 'hex'),
    );
    assertProtocolError(() => parseAvcSps(AVC_SPS.subarray(0, 5)), 'bad_parameter_set');
    assertProtocolError(() => parseHevcSps(bytes(0x42, 0x01, 1)), 'bad_parameter_set');
  });

  it('groups NAL units into access units', () => {
    const aus = groupAccessUnits(
      [
        AVC_SPS,
        AVC_PPS,
        bytes(0x06, 5),
        bytes(0x65, 0x88),
        bytes(0x65, 0x08),
        bytes(0x09, 0xf0),
        bytes(0x41, 0x9a),
        bytes(0x41, 0x9b),
        bytes(0x0c, 0xff),
      ],
      'avc',
    );
    assert.deepEqual(
      aus.map((au) => au.map(avcNalType)),
      [
        [7, 8, 6, 5, 5],
        [9, 1],
        [1, 12],
      ],
    );
    assert.equal(isKeyframeNal(bytes(0x65), 'avc'), true);
    assert.equal(isKeyframeNal(bytes(0x2a, 1), 'hevc'), true); // CRA (21)
    assert.equal(isParameterSetNal(bytes(0x44, 1), 'hevc'), true); // PPS (34)
  });
});

function hasFfmpeg(): boolean {
  for (const tool of ['ffmpeg', 'ffprobe']) {
    const r = spawnSync(tool, ['-version'], { stdio: 'ignore' });
    if (r.error || r.status !== 0) return false;
  }
  return true;
}
const FFMPEG_MISSING = hasFfmpeg() ? false : 'ffmpeg/ffprobe not installed (yet): skipping the codec interop tests';

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}
function ffprobeFrames(file: string): string {
  return execFileSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=codec_name,width,height,nb_read_frames',
      '-of',
      'csv=p=0',
      file,
    ],
    { encoding: 'utf8' },
  ).trim();
}
/** Body of the first MP4 box of that type (naive search; good enough for FFmpeg's small test files). */
function mp4Box(file: string, type: string): Buffer {
  const buf = readFileSync(file);
  const at = buf.indexOf(Buffer.from(type, 'latin1'));
  assert.ok(at >= 4, `${type} box not found in ${file}`);
  return buf.subarray(at + 4, at - 4 + buf.readUInt32BE(at - 4));
}

describe('codec interop with FFmpeg', () => {
  it(
    'H.264 (libx264): avcC and length-prefixed frames in an FLV that ffprobe decodes',
    { skip: FFMPEG_MISSING },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'rtmp-avc-'));
      try {
        const es = join(dir, 'out.h264');
        ffmpeg([
          '-f',
          'lavfi',
          '-i',
          'testsrc2=size=320x240:rate=30',
          '-t',
          '2',
          '-c:v',
          'libx264',
          '-x264-params',
          'keyint=30:bframes=0',
          '-f',
          'h264',
          es,
        ]);
        const nals = splitAnnexB(readFileSync(es));
        const sps = nals.filter((n) => avcNalType(n) === 7);
        const pps = nals.filter((n) => avcNalType(n) === 8);
        const avcc = buildAvcDecoderConfig(sps, pps);
        // Same record FFmpeg writes into MP4
        ffmpeg(['-i', es, '-c', 'copy', join(dir, 'ref.mp4')]);
        assert.deepEqual(avcc, mp4Box(join(dir, 'ref.mp4'), 'avcC'));

        const aus = groupAccessUnits(nals, 'avc');
        assert.equal(aus.length, 60);
        const tags = [{ type: 9, timestamp: 0, data: bytes(0x17, 0, 0, 0, 0, avcc) }];
        aus.forEach((au, i) => {
          const key = au.some((n) => isKeyframeNal(n, 'avc'));
          const frame = au.filter((n) => !isParameterSetNal(n, 'avc'));
          tags.push({
            type: 9,
            timestamp: Math.round((i * 1000) / 30),
            data: bytes(key ? 0x17 : 0x27, 1, 0, 0, 0, toLengthPrefixed(frame)),
          });
        });
        const flv = Buffer.concat([encodeFlvHeader({ audio: false, video: true }), ...tags.map(encodeFlvTag)]);
        writeFileSync(join(dir, 'out.flv'), flv);

        // Our own view of the file
        const infos = readFlvFile(flv).tags.map((t) => parseVideoTag(t.data));
        assert.equal(infos.filter((i) => i.isSequenceHeader).length, 1);
        assert.equal(infos.filter((i) => i.isKeyframe).length, 2);
        const cfg = parseAvcDecoderConfig(flv.subarray(13 + 11 + 5, 13 + 11 + 5 + avcc.length));
        assert.deepEqual([cfg.sps, cfg.pps, cfg.lengthSize], [[sps[0]], [pps[0]], 4]); // x264 repeats them per IDR
        // frames survive the trip through length prefixes
        const frames = readFlvFile(flv)
          .tags.slice(1)
          .map((t) => splitAnnexB(lengthPrefixedToAnnexB(t.data.subarray(5))));
        assert.deepEqual(
          frames.flat(),
          nals.filter((n) => !isParameterSetNal(n, 'avc')),
        );

        assert.equal(ffprobeFrames(join(dir, 'out.flv')), 'h264,320,240,60');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'HEVC (libx265): hvcC, length-prefixed round trip back to Annex B that ffprobe decodes',
    { skip: FFMPEG_MISSING },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'rtmp-hevc-'));
      try {
        const es = join(dir, 'out.hevc');
        ffmpeg([
        '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '2',
        '-c:v', 'libx265', '-x265-params', 'keyint=30:bframes=0:log-level=error', '-f', 'hevc', es,
      ]); // prettier-ignore
        const nals = splitAnnexB(readFileSync(es));
        const ofType = (t: number): Buffer[] => nals.filter((n) => hevcNalType(n) === t);
        const hvcc = buildHevcDecoderConfig(ofType(32), ofType(33), ofType(34));

        // Same record FFmpeg writes into MP4 (profile/tier/level, constraint flags, chroma, bit depth, layers, arrays)
        // (hev1: in-band parameter sets allowed, array_completeness 0; hvc1: all in the record, array_completeness 1)
        ffmpeg(['-i', es, '-c', 'copy', join(dir, 'hev1.mp4')]);
        assert.deepEqual(hvcc, mp4Box(join(dir, 'hev1.mp4'), 'hvcC'));
        ffmpeg(['-i', es, '-c', 'copy', '-tag:v', 'hvc1', join(dir, 'hvc1.mp4')]);
        const complete = buildHevcDecoderConfig(ofType(32), ofType(33), ofType(34), { arrayCompleteness: true });
        assert.deepEqual(complete, mp4Box(join(dir, 'hvc1.mp4'), 'hvcC'));
        const sps = parseHevcSps(ofType(33)[0]!);
        assert.deepEqual([sps.generalProfileIdc, sps.width, sps.height, sps.chromaFormatIdc], [1, 320, 240, 1]);

        const aus = groupAccessUnits(nals, 'hevc');
        assert.equal(aus.length, 60);
        assert.equal(aus.filter((au) => au.some((n) => isKeyframeNal(n, 'hevc'))).length, 2);

        // As E-RTMP messages: hvc1 SequenceStart + CodedFrames (key: 0x91 with CTS) / CodedFramesX (inter: 0xA3)
        const messages = [bytes(0x90, 'hvc1', hvcc)];
        for (const au of aus) {
          const key = au.some((n) => isKeyframeNal(n, 'hevc'));
          const lp = toLengthPrefixed(au.filter((n) => !isParameterSetNal(n, 'hevc')));
          messages.push(key ? bytes(0x91, 'hvc1', s24(0), lp) : bytes(0xa3, 'hvc1', lp));
        }

        // ...and back: parameter sets from the parsed hvcC, frames from the length-prefixed payloads
        const out: Buffer[] = [];
        let keys = 0;
        for (const m of messages) {
          const info = parseVideoTag(m);
          assert.equal(info.fourCc, 'hvc1');
          const payload = m.subarray(info.payloadOffset);
          if (info.isSequenceHeader) {
            const cfg = parseHevcDecoderConfig(payload);
            assert.deepEqual(
              cfg.arrays.map((x) => x.nalUnitType),
              [32, 33, 34],
            );
            assert.equal(cfg.lengthSize, 4);
            for (const arr of cfg.arrays) out.push(joinAnnexB(arr.nalus));
          } else {
            if (info.isKeyframe) keys++;
            out.push(lengthPrefixedToAnnexB(payload));
          }
        }
        assert.equal(keys, 2);
        const rebuilt = Buffer.concat(out);
        // x265 repeats VPS/SPS/PPS at every IRAP; the rebuilt stream has them once, from the hvcC
        const frameNals = nals.filter((n) => !isParameterSetNal(n, 'hevc'));
        assert.deepEqual(splitAnnexB(rebuilt), [
          ...ofType(32).slice(0, 1),
          ...ofType(33).slice(0, 1),
          ...ofType(34).slice(0, 1),
          ...frameNals,
        ]);
        writeFileSync(join(dir, 'rebuilt.hevc'), rebuilt);
        assert.equal(ffprobeFrames(join(dir, 'rebuilt.hevc')), 'hevc,320,240,60');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
