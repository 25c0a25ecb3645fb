// FLV parsing and viewer metric math for the k6 scripts, in plain JavaScript with no k6 (or Node) imports, so
// that k6 runs it and Node's test runner unit-tests it (loadtest/test/k6-flv-stats.test.ts).
//
// Works on ArrayBuffer / Uint8Array chunks split anywhere (WebSocket messages, HTTP body pieces). Only the bytes
// that matter are looked at: the file header, each 11-byte tag header and the first few bytes of each tag body
// (codec, frame type, packet type); tag bodies are skipped by count, never copied, so that a k6 VU (a slow JS
// engine) can follow a multi-megabit stream.
//
// FLV layout [FLV spec, Annex E]: header 'FLV' u8 version | u8 flags | u32 dataOffset, then PreviousTagSize0 u32,
// then { tag header (type u8, dataSize u24, timestamp u24, timestampExt u8, streamId u24) | data | PreviousTagSize
// u32 }*. Enhanced RTMP (E-FLV) video/audio set bit 7 / SoundFormat 9 and carry a FourCC.

export const TAG_AUDIO = 8;
export const TAG_VIDEO = 9;
export const TAG_SCRIPT = 18;

/** Bytes of a tag body inspected for classification (ExHeader byte + FourCC). */
const PEEK = 5;
/** Refuse absurd tags rather than skipping gigabytes of garbage (the FLV field is u24 anyway). */
const MAX_TAG_SIZE = 16 * 1024 * 1024;

/**
 * @typedef {object} FlvTagInfo
 * @property {number} type         8 audio, 9 video, 18 script
 * @property {number} timestamp    milliseconds (ts24 | ext << 24), unsigned
 * @property {number} size         tag body size in bytes
 * @property {boolean} keyframe    a coded video keyframe (not a sequence header)
 * @property {boolean} sequenceHeader  decoder configuration (AVC/HEVC/AV1 config, AAC AudioSpecificConfig, E-RTMP SequenceStart)
 * @property {boolean} exHeader    Enhanced RTMP / E-FLV packet
 * @property {string | undefined} fourCc  E-RTMP FourCC (e.g. 'hvc1'), or a legacy codec name ('avc', 'aac', ...)
 * @property {number} offset       byte offset of the tag header in the stream
 */

const LEGACY_VIDEO = /** @type {Record<number, string>} */ ({
  2: 'h263',
  3: 'screen',
  4: 'vp6',
  5: 'vp6a',
  6: 'screen2',
  7: 'avc',
  12: 'hevc',
});
const LEGACY_AUDIO = /** @type {Record<number, string>} */ ({
  0: 'pcm',
  1: 'adpcm',
  2: 'mp3',
  3: 'pcm',
  6: 'nellymoser',
  7: 'g711a',
  8: 'g711u',
  10: 'aac',
  11: 'speex',
  13: 'opus',
});

/**
 * Classifies a tag from the first bytes of its body (`peek`, up to 5 bytes) and its size.
 * @param {number} type
 * @param {Uint8Array} peek
 * @param {number} size
 * @returns {{ keyframe: boolean, sequenceHeader: boolean, exHeader: boolean, fourCc: string | undefined }}
 */
export function classifyTag(type, peek, size) {
  const none = { keyframe: false, sequenceHeader: false, exHeader: false, fourCc: undefined };
  if (size === 0 || peek.length === 0) return none;
  const b0 = peek[0];
  if (type === TAG_VIDEO) {
    if (b0 & 0x80) {
      // E-RTMP: [1 | FrameType u3 | VideoPacketType u4] FourCC ...
      const frameType = (b0 >> 4) & 0x07;
      const packetType = b0 & 0x0f;
      const fourCc = peek.length >= 5 ? fourCcOf(peek) : undefined;
      // 0 SequenceStart, 1 CodedFrames, 2 SequenceEnd, 3 CodedFramesX, 4 Metadata, 5 MPEG2TSSequenceStart, 6 Multitrack
      const sequenceHeader = packetType === 0 || packetType === 5;
      const coded = packetType === 1 || packetType === 3 || packetType === 6;
      return { keyframe: frameType === 1 && coded, sequenceHeader, exHeader: true, fourCc };
    }
    const frameType = b0 >> 4;
    const codecId = b0 & 0x0f;
    const fourCc = LEGACY_VIDEO[codecId];
    if (codecId === 7 || codecId === 12) {
      // AVC/HEVC packet type: 0 sequence header, 1 NALU, 2 end of sequence
      const packetType = peek.length > 1 ? peek[1] : -1;
      if (packetType === 0) return { keyframe: false, sequenceHeader: true, exHeader: false, fourCc };
      return { keyframe: frameType === 1 && packetType === 1, sequenceHeader: false, exHeader: false, fourCc };
    }
    // Frame type 5 is a video info/command frame, not a picture.
    return { keyframe: frameType === 1, sequenceHeader: false, exHeader: false, fourCc };
  }
  if (type === TAG_AUDIO) {
    const soundFormat = b0 >> 4;
    if (soundFormat === 9) {
      // E-RTMP audio: [9 | AudioPacketType u4] FourCC ...; 0 SequenceStart, 4 MultichannelConfig
      const packetType = b0 & 0x0f;
      const fourCc = peek.length >= 5 ? fourCcOf(peek) : undefined;
      return { keyframe: false, sequenceHeader: packetType === 0 || packetType === 4, exHeader: true, fourCc };
    }
    const fourCc = LEGACY_AUDIO[soundFormat];
    const sequenceHeader = soundFormat === 10 && peek.length > 1 && peek[1] === 0;
    return { keyframe: false, sequenceHeader, exHeader: false, fourCc };
  }
  return none;
}

/** @param {Uint8Array} peek */
function fourCcOf(peek) {
  return String.fromCharCode(peek[1], peek[2], peek[3], peek[4]);
}

/**
 * @param {ArrayBuffer | ArrayBufferView} chunk
 * @returns {Uint8Array}
 */
export function toBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return new Uint8Array(chunk);
}

/**
 * Incremental FLV parser: push chunks split at any byte, get the completed tags back (header and peek only).
 * A malformed stream sets `error` and stops parsing (further pushes return nothing).
 */
export class FlvParser {
  constructor() {
    /** @type {{ audio: boolean, video: boolean } | undefined} */
    this.header = undefined;
    /** @type {string | undefined} */
    this.error = undefined;
    /** Total bytes pushed. */
    this.bytes = 0;
    /** Completed tags. */
    this.tagCount = 0;
    /** @private */ this.state = 'header';
    /** @private Bytes still needed by the current state (header/tag header/prev size), or left of the tag body. */
    this.need = 9;
    /** @private Partial fixed-size field being assembled across chunks. */
    this.field = new Uint8Array(11);
    /** @private */ this.fieldLen = 0;
    /** @private */ this.peek = new Uint8Array(PEEK);
    /** @private */ this.peekLen = 0;
    /** @private */ this.tagType = 0;
    /** @private */ this.tagSize = 0;
    /** @private */ this.tagTimestamp = 0;
    /** @private */ this.tagOffset = 0;
    /** @private */ this.expectedPrev = 0;
    /** Previous-tag-size mismatches seen (tolerated, counted). */
    this.prevSizeMismatches = 0;
  }

  /**
   * @param {ArrayBuffer | ArrayBufferView} chunk
   * @returns {FlvTagInfo[]}
   */
  push(chunk) {
    const bytes = toBytes(chunk);
    /** @type {FlvTagInfo[]} */
    const out = [];
    if (this.error) return out;
    const start = this.bytes;
    this.bytes += bytes.length;
    let i = 0;
    while (i < bytes.length && !this.error) {
      if (this.state === 'data') {
        const take = Math.min(this.need, bytes.length - i);
        const wantPeek = Math.min(PEEK - this.peekLen, take);
        for (let k = 0; k < wantPeek; k++) this.peek[this.peekLen++] = bytes[i + k];
        i += take;
        this.need -= take;
        if (this.need === 0) this.finishTag(out);
        continue;
      }
      if (this.state === 'skip') {
        const take = Math.min(this.need, bytes.length - i);
        i += take;
        this.need -= take;
        if (this.need === 0) this.enter('prev', 4);
        continue;
      }
      // Fixed-size fields: copy into `field` until complete.
      const take = Math.min(this.need - this.fieldLen, bytes.length - i);
      for (let k = 0; k < take; k++) this.field[this.fieldLen++] = bytes[i + k];
      i += take;
      if (this.fieldLen === this.need) this.onField(start + i - this.need, out);
    }
    return out;
  }

  /**
   * @private
   * @param {string} state
   * @param {number} need
   */
  enter(state, need) {
    this.state = state;
    this.need = need;
    this.fieldLen = 0;
  }

  /**
   * @private
   * @param {number} offset stream offset where the completed field began
   * @param {FlvTagInfo[]} out
   */
  onField(offset, out) {
    const f = this.field;
    if (this.state === 'header') {
      if (f[0] !== 0x46 || f[1] !== 0x4c || f[2] !== 0x56) {
        this.error = 'not an FLV stream (no FLV signature)';
        return;
      }
      this.header = { audio: (f[4] & 0x04) !== 0, video: (f[4] & 0x01) !== 0 };
      const dataOffset = ((f[5] << 24) | (f[6] << 16) | (f[7] << 8) | f[8]) >>> 0;
      if (dataOffset < 9 || dataOffset > 1024) {
        this.error = `bad FLV data offset ${dataOffset}`;
        return;
      }
      this.expectedPrev = 0;
      if (dataOffset > 9) this.enter('skip', dataOffset - 9);
      else this.enter('prev', 4);
      return;
    }
    if (this.state === 'prev') {
      const prev = ((f[0] << 24) | (f[1] << 16) | (f[2] << 8) | f[3]) >>> 0;
      if (prev !== this.expectedPrev) this.prevSizeMismatches++;
      this.enter('tag', 11);
      return;
    }
    // tag header
    const type = f[0] & 0x1f;
    if ((f[0] & 0xc0) !== 0 || (type !== TAG_AUDIO && type !== TAG_VIDEO && type !== TAG_SCRIPT)) {
      this.error = `bad FLV tag header (type byte 0x${f[0].toString(16)}) at offset ${offset}`;
      return;
    }
    const size = (f[1] << 16) | (f[2] << 8) | f[3];
    if (size > MAX_TAG_SIZE) {
      this.error = `FLV tag of ${size} bytes at offset ${offset}`;
      return;
    }
    this.tagType = type;
    this.tagSize = size;
    this.tagTimestamp = ((f[4] << 16) | (f[5] << 8) | f[6] | (f[7] << 24)) >>> 0;
    this.tagOffset = offset;
    this.expectedPrev = 11 + size;
    this.peekLen = 0;
    if (size === 0) {
      this.finishTag(out);
    } else {
      this.state = 'data';
      this.need = size;
      this.fieldLen = 0;
    }
  }

  /**
   * @private
   * @param {FlvTagInfo[]} out
   */
  finishTag(out) {
    const info = classifyTag(this.tagType, this.peek.subarray(0, this.peekLen), this.tagSize);
    out.push({ type: this.tagType, timestamp: this.tagTimestamp, size: this.tagSize, offset: this.tagOffset, ...info });
    this.tagCount++;
    this.enter('prev', 4);
  }
}

/**
 * Statistics of one viewer session, fed with chunks and their arrival times (ms, any monotonic clock):
 * time to first keyframe, received bit rate, stalls.
 *
 * - Time to first keyframe: from `startedAt` (the connect) to the arrival of the chunk completing the first coded
 *   video keyframe (audio-only streams: the first audio frame).
 * - Bit rate: bytes received over wall time between the first byte and the last one (the join burst included).
 * - Stalls: once playing, a gap of more than `stallMs` between two arrivals of media (audio/video frames) is a stall
 *   (a player with a small buffer would freeze); `stallTimeMs` sums the time beyond the threshold.
 * - Lag: how far media time fell behind wall time since the first keyframe (grows when delivery is slower than real
 *   time; a live stream delivered in real time stays near 0 after the join burst).
 */
export class ViewerStats {
  /**
   * @param {{ startedAt: number, stallMs?: number }} opts
   */
  constructor(opts) {
    this.parser = new FlvParser();
    this.startedAt = opts.startedAt;
    this.stallMs = opts.stallMs ?? 1000;
    /** @type {number | undefined} */ this.firstByteAt = undefined;
    /** @type {number | undefined} */ this.lastByteAt = undefined;
    /** @type {number | undefined} */ this.firstKeyframeAt = undefined;
    /** @type {number | undefined} Media timestamp of the first keyframe. */ this.firstKeyframeTs = undefined;
    /** @type {number | undefined} */ this.lastMediaAt = undefined;
    /** @type {number | undefined} Newest media timestamp received. */ this.maxMediaTs = undefined;
    this.stalls = 0;
    this.stallTimeMs = 0;
    this.longestGapMs = 0;
    this.maxLagMs = 0;
    this.videoFrames = 0;
    this.audioFrames = 0;
    this.keyframes = 0;
    /** True when the first coded video frame received was not a keyframe (a join that isn't decodable). */
    this.startedWithoutKeyframe = false;
  }

  get bytes() {
    return this.parser.bytes;
  }

  get error() {
    return this.parser.error;
  }

  /**
   * @param {ArrayBuffer | ArrayBufferView} chunk
   * @param {number} now arrival time (same clock as startedAt)
   * @returns {FlvTagInfo[]}
   */
  push(chunk, now) {
    if (this.firstByteAt === undefined) this.firstByteAt = now;
    this.lastByteAt = now;
    const tags = this.parser.push(chunk);
    let media = false;
    for (const t of tags) {
      if (t.type === TAG_VIDEO && !t.sequenceHeader && t.size > 0) {
        if (this.videoFrames === 0 && !t.keyframe) this.startedWithoutKeyframe = true;
        this.videoFrames++;
        if (t.keyframe) {
          this.keyframes++;
          if (this.firstKeyframeAt === undefined) {
            this.firstKeyframeAt = now;
            this.firstKeyframeTs = t.timestamp;
          }
        }
        media = true;
        this.noteTs(t.timestamp);
      } else if (t.type === TAG_AUDIO && !t.sequenceHeader && t.size > 0) {
        this.audioFrames++;
        media = true;
        this.noteTs(t.timestamp);
      }
    }
    if (
      media &&
      this.firstKeyframeAt === undefined &&
      this.videoFrames === 0 &&
      this.audioFrames > 0 &&
      this.parser.header &&
      !this.parser.header.video
    ) {
      // Audio-only stream: playing from the first audio frame.
      this.firstKeyframeAt = now;
      this.firstKeyframeTs = this.maxMediaTs;
    }
    if (media) {
      // Gaps count once playing: both ends at or after the first keyframe's arrival.
      if (
        this.firstKeyframeAt !== undefined &&
        this.lastMediaAt !== undefined &&
        this.lastMediaAt >= this.firstKeyframeAt
      ) {
        const gap = now - this.lastMediaAt;
        if (gap > this.longestGapMs) this.longestGapMs = gap;
        if (gap > this.stallMs) {
          this.stalls++;
          this.stallTimeMs += gap - this.stallMs;
        }
      }
      this.lastMediaAt = now;
      if (this.firstKeyframeAt !== undefined && this.firstKeyframeTs !== undefined && this.maxMediaTs !== undefined) {
        const lag = now - this.firstKeyframeAt - (this.maxMediaTs - this.firstKeyframeTs);
        if (lag > this.maxLagMs) this.maxLagMs = lag;
      }
    }
    return tags;
  }

  /** @private @param {number} ts */
  noteTs(ts) {
    if (this.maxMediaTs === undefined || ts > this.maxMediaTs) this.maxMediaTs = ts;
  }

  /**
   * The session's numbers; `endedAt` closes an open stall (no media since `lastMediaAt`).
   * @param {number} endedAt
   */
  summary(endedAt) {
    let stalls = this.stalls;
    let stallTimeMs = this.stallTimeMs;
    if (this.firstKeyframeAt !== undefined && this.lastMediaAt !== undefined) {
      const tail = endedAt - this.lastMediaAt;
      if (tail > this.stallMs) {
        stalls++;
        stallTimeMs += tail - this.stallMs;
      }
    }
    return {
      bytes: this.bytes,
      tags: this.parser.tagCount,
      playing: this.firstKeyframeAt !== undefined,
      timeToFirstKeyframeMs: this.firstKeyframeAt === undefined ? undefined : this.firstKeyframeAt - this.startedAt,
      bitsPerSecond: bitsPerSecond(this.bytes, this.firstByteAt === undefined ? 0 : endedAt - this.firstByteAt),
      stalls,
      stallTimeMs,
      longestGapMs: this.longestGapMs,
      maxLagMs: this.maxLagMs,
      videoFrames: this.videoFrames,
      audioFrames: this.audioFrames,
      keyframes: this.keyframes,
      startedWithoutKeyframe: this.startedWithoutKeyframe,
      mediaMs:
        this.firstKeyframeTs === undefined || this.maxMediaTs === undefined
          ? 0
          : this.maxMediaTs - this.firstKeyframeTs,
      error: this.error,
    };
  }
}

/**
 * Bits per second for `bytes` over `ms` milliseconds (0 when no time passed).
 * @param {number} bytes
 * @param {number} ms
 */
export function bitsPerSecond(bytes, ms) {
  return ms > 0 ? (bytes * 8 * 1000) / ms : 0;
}

/**
 * A bounded HTTP-FLV session read as one body (k6's http client returns the body at the end): what the body says
 * about the session. Arrival times are unknown, so stalls are inferred: a viewer that watched for `wallMs` after
 * its first byte (`ttfbMs` after the request) should hold about that much media past its first keyframe; media
 * shorter than that by more than `stallMs` means delivery stalled (or fell behind real time) for the difference.
 * @param {ArrayBuffer | ArrayBufferView} body
 * @param {{ wallMs: number, ttfbMs: number, stallMs?: number }} opts
 */
export function summarizeHttpBody(body, opts) {
  const stallMs = opts.stallMs ?? 1000;
  const parser = new FlvParser();
  const tags = parser.push(body);
  let firstVideo;
  let firstKey;
  let firstMediaTs;
  let maxTs;
  let keyframes = 0;
  for (const t of tags) {
    const media = (t.type === TAG_VIDEO || t.type === TAG_AUDIO) && !t.sequenceHeader && t.size > 0;
    if (!media) continue;
    if (t.type === TAG_VIDEO) {
      if (firstVideo === undefined) firstVideo = t;
      if (t.keyframe) {
        keyframes++;
        if (firstKey === undefined) firstKey = t;
      }
    }
    if (firstMediaTs === undefined) firstMediaTs = t.timestamp;
    if (maxTs === undefined || t.timestamp > maxTs) maxTs = t.timestamp;
  }
  const startTs = firstKey ? firstKey.timestamp : firstMediaTs;
  const mediaMs = startTs === undefined || maxTs === undefined ? 0 : maxTs - startTs;
  const watchedMs = Math.max(0, opts.wallMs - opts.ttfbMs);
  const missingMs = Math.max(0, watchedMs - mediaMs);
  return {
    bytes: parser.bytes,
    tags: parser.tagCount,
    header: parser.header,
    error: parser.error,
    keyframes,
    /** The first coded video frame is a keyframe (decodable join); true for audio-only streams. */
    startsWithKeyframe: firstVideo === undefined ? true : firstVideo.keyframe,
    playing: firstKey !== undefined || (firstVideo === undefined && firstMediaTs !== undefined),
    mediaMs,
    bitsPerSecond: bitsPerSecond(parser.bytes, watchedMs),
    /** Media per wall second after the first byte: ~1 for real-time delivery (a little more with the join burst). */
    realtimeRatio: watchedMs > 0 ? mediaMs / watchedMs : 0,
    stalled: missingMs > stallMs,
    stallTimeMs: missingMs > stallMs ? missingMs - stallMs : 0,
  };
}

/**
 * Percentile (0..100) of a list of numbers, nearest-rank; NaN for an empty list.
 * @param {number[]} values
 * @param {number} p
 */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Spreads viewers over targets: the target for virtual user `vu` (1-based, as k6's __VU).
 * @template T
 * @param {T[]} targets
 * @param {number} vu
 * @returns {T}
 */
export function pickTarget(targets, vu) {
  if (targets.length === 0) throw new Error('no targets');
  return targets[(Math.max(1, vu) - 1) % targets.length];
}

/**
 * A comma-separated list from an env var, trimmed, empty entries dropped.
 * @param {string | undefined} value
 * @param {string[]} [fallback]
 * @returns {string[]}
 */
export function list(value, fallback = []) {
  const items = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return items.length > 0 ? items : fallback;
}

/**
 * The .flv URL of `stream` (app/name) on `base` (http(s)://host:port, or ws(s)://...), with an optional query.
 * @param {string} base
 * @param {string} stream
 * @param {{ websocket?: boolean, query?: string, codecs?: string }} [opts]
 */
export function flvUrl(base, stream, opts = {}) {
  let b = base.replace(/\/+$/, '');
  if (opts.websocket) b = b.replace(/^http:/, 'ws:').replace(/^https:/, 'wss:');
  else b = b.replace(/^ws:/, 'http:').replace(/^wss:/, 'https:');
  const params = [];
  if (opts.query) params.push(opts.query.replace(/^\?/, ''));
  if (opts.codecs) params.push(`codecs=${encodeURIComponent(opts.codecs)}`);
  const path = stream.split('/').map(encodeURIComponent).join('/');
  return `${b}/${path}.flv${params.length ? `?${params.join('&')}` : ''}`;
}
