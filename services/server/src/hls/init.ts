/**
 * The CMAF initialization segment (ISO/IEC 23000-19): ftyp + moov with one trak per track (empty sample tables:
 * samples live in the fragments) and mvex/trex (fragmented). Sample entries: avc1/avcC, hvc1/hvcC, av01/av1C,
 * mp4a/esds, Opus/dOps.
 */
import { UNITY_MATRIX, ascii, box, fixed16, fullBox, u16, u32, u8, zeros } from './boxes.js';
import type { TrackInfo } from './media.js';

const MOVIE_TIMESCALE = 1000;
/** ISO 639-2 "und" packed in 15 bits. */
const LANGUAGE_UND = 0x55c4;
const TKHD_ENABLED_IN_MOVIE = 0x000003;
const DREF_SELF_CONTAINED = 0x000001;
const VMHD_FLAGS = 0x000001;
const FULL_VOLUME = 0x0100;
const SCREEN_DPI = 72;
const VIDEO_DEPTH = 0x0018;
/** trex default sample flags: not a sync sample (fragments carry their own flags). */
const TREX_DEFAULT_FLAGS = 0x00010000;
const AUDIO_SAMPLE_SIZE_BITS = 16;
/** MPEG-4 Audio (ISO/IEC 14496-3) in the esds objectTypeIndication. */
const OBJECT_TYPE_MPEG4_AUDIO = 0x40;
/** AudioStream (5) << 2 | reserved bit. */
const STREAM_TYPE_AUDIO = 0x15;
const ES_DESCRIPTOR_TAG = 3;
const DECODER_CONFIG_TAG = 4;
const DECODER_SPECIFIC_TAG = 5;
const SL_CONFIG_TAG = 6;
const SL_PREDEFINED_MP4 = 2;
const OPUS_HEAD_MAGIC = 'OpusHead';

export function ftyp(): Buffer {
  return box('ftyp', ascii('iso6'), u32(0), ascii('iso6'), ascii('cmfc'), ascii('mp41'));
}

export function initSegment(tracks: readonly TrackInfo[]): Buffer {
  const nextTrackId = Math.max(0, ...tracks.map((t) => t.id)) + 1;
  const mvhd = fullBox(
    'mvhd',
    0,
    0,
    u32(0), // creation
    u32(0), // modification
    u32(MOVIE_TIMESCALE),
    u32(0), // duration: live
    fixed16(1), // rate
    u16(FULL_VOLUME),
    zeros(10),
    UNITY_MATRIX,
    zeros(24),
    u32(nextTrackId),
  );
  const trex = tracks.map((t) => fullBox('trex', 0, 0, u32(t.id), u32(1), u32(0), u32(0), u32(TREX_DEFAULT_FLAGS)));
  return Buffer.concat([ftyp(), box('moov', mvhd, ...tracks.map(trak), box('mvex', ...trex))]);
}

function trak(t: TrackInfo): Buffer {
  const video = t.kind === 'video';
  const tkhd = fullBox(
    'tkhd',
    0,
    TKHD_ENABLED_IN_MOVIE,
    u32(0),
    u32(0),
    u32(t.id),
    u32(0),
    u32(0), // duration
    zeros(8),
    u16(0), // layer
    u16(0), // alternate group
    u16(video ? 0 : FULL_VOLUME),
    u16(0),
    UNITY_MATRIX,
    fixed16(video ? t.width : 0),
    fixed16(video ? t.height : 0),
  );
  const mdhd = fullBox('mdhd', 0, 0, u32(0), u32(0), u32(t.timescale), u32(0), u16(LANGUAGE_UND), u16(0));
  const hdlr = fullBox(
    'hdlr',
    0,
    0,
    u32(0),
    ascii(video ? 'vide' : 'soun'),
    zeros(12),
    ascii(video ? 'VideoHandler\0' : 'SoundHandler\0'),
  );
  const mediaHeader = video ? fullBox('vmhd', 0, VMHD_FLAGS, zeros(8)) : fullBox('smhd', 0, 0, zeros(4));
  const dinf = box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, DREF_SELF_CONTAINED)));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), sampleEntry(t)),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0), u32(0)),
    fullBox('stco', 0, 0, u32(0)),
  );
  return box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', mediaHeader, dinf, stbl)));
}

function sampleEntry(t: TrackInfo): Buffer {
  if (t.kind === 'video') {
    const configBox = t.codec === 'avc1' ? 'avcC' : t.codec === 'hvc1' ? 'hvcC' : 'av1C';
    return box(
      t.codec,
      zeros(6),
      u16(1), // data_reference_index
      zeros(16), // pre_defined, reserved
      u16(t.width),
      u16(t.height),
      fixed16(SCREEN_DPI),
      fixed16(SCREEN_DPI),
      u32(0),
      u16(1), // frame_count
      zeros(32), // compressorname
      u16(VIDEO_DEPTH),
      u16(0xffff), // pre_defined = -1
      box(configBox, t.config),
    );
  }
  const rate = t.sampleRate <= 0xffff ? t.sampleRate : 0;
  const header = [zeros(6), u16(1), zeros(8), u16(t.channels), u16(AUDIO_SAMPLE_SIZE_BITS), zeros(4), fixed16(rate)];
  if (t.codec === 'Opus') return box('Opus', ...header, box('dOps', dOpsOf(t.config)));
  return box('mp4a', ...header, esds(t.config));
}

/** An MPEG-4 descriptor (ISO/IEC 14496-1): tag, size in the 4-byte expandable form, body. */
function descriptor(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  // The 4-byte size form (0x80 continuation bits) is valid for any size up to 2^28.
  const size = Buffer.from([0x80 | ((n >> 21) & 0x7f), 0x80 | ((n >> 14) & 0x7f), 0x80 | ((n >> 7) & 0x7f), n & 0x7f]);
  return Buffer.concat([u8(tag), size, body]);
}

function esds(asc: Buffer): Buffer {
  const decoderConfig = descriptor(
    DECODER_CONFIG_TAG,
    u8(OBJECT_TYPE_MPEG4_AUDIO),
    u8(STREAM_TYPE_AUDIO),
    Buffer.from([0, 0, 0]), // bufferSizeDB
    u32(0), // maxBitrate
    u32(0), // avgBitrate
    descriptor(DECODER_SPECIFIC_TAG, asc),
  );
  const es = descriptor(
    ES_DESCRIPTOR_TAG,
    u16(0),
    u8(0),
    decoderConfig,
    descriptor(SL_CONFIG_TAG, u8(SL_PREDEFINED_MP4)),
  );
  return fullBox('esds', 0, 0, es);
}

/**
 * The Opus-in-ISOBMFF dOps body from E-RTMP's Opus sequence header: an OpusHead (RFC 7845, little-endian, with its
 * magic) is rewritten big-endian without the magic and with version 0; a header already in dOps layout passes.
 */
export function dOpsOf(config: Buffer): Buffer {
  if (config.subarray(0, OPUS_HEAD_MAGIC.length).toString('latin1') !== OPUS_HEAD_MAGIC) return config;
  const head = config.subarray(OPUS_HEAD_MAGIC.length);
  const channels = head[1] ?? 2;
  const family = head[10] ?? 0;
  const out = [
    u8(0), // Version
    u8(channels),
    u16(head.length >= 4 ? head.readUInt16LE(2) : 0), // PreSkip
    u32(head.length >= 8 ? head.readUInt32LE(4) : 48000), // InputSampleRate
    u16(head.length >= 10 ? head.readInt16LE(8) & 0xffff : 0), // OutputGain
    u8(family),
  ];
  // Family > 0: StreamCount, CoupledCount and the channel mapping follow unchanged (single bytes).
  if (family !== 0) out.push(head.subarray(11, 13 + channels));
  return Buffer.concat(out);
}
