/**
 * What a stream carries, read from its decoder configurations (sequence headers), for live stream stats: codec,
 * profile, level, picture size; audio codec, sample rate, channels. Never on the media path: these run once per
 * sequence header, and a configuration they cannot read gives partial information, never an error.
 *
 *   avc1  AVCDecoderConfigurationRecord (ISO/IEC 14496-15) → SPS (ITU-T H.264 7.3.2.1.1)
 *   hvc1  HEVCDecoderConfigurationRecord → SPS (ITU-T H.265 7.3.2.2)
 *   av01  AV1CodecConfigurationRecord → sequence header OBU (AV1 spec 5.5)
 *   mp4a  AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1)
 *   Opus  OpusHead (RFC 7845 5.1) or the dOps layout (Opus in ISOBMFF)
 */
import {
  HevcNalType,
  hevcNalType,
  parseAvcDecoderConfig,
  parseAvcSps,
  parseHevcDecoderConfig,
  parseHevcSps,
} from './annexb.js';
import { BitReader } from './bit-reader.js';

export interface VideoCodecInfo {
  /** FourCC as in E-RTMP / CMAF (`avc1`, `hvc1`, `av01`, ...). */
  codec: string;
  /** e.g. `High`, `Main 10`, `Main`. */
  profile?: string;
  /** e.g. `3.1` (H.264), `4` (HEVC), `4.0` (AV1 seq_level_idx). */
  level?: string;
  width?: number;
  height?: number;
}

export interface AudioCodecInfo {
  codec: string;
  /** e.g. `LC`, `HE-AAC`. */
  profile?: string;
  /** Output sample rate in Hz (what a decoder produces: Opus always 48000). */
  sampleRate?: number;
  channels?: number;
}

const AVC_PROFILES: Record<number, string> = {
  66: 'Baseline',
  77: 'Main',
  88: 'Extended',
  100: 'High',
  110: 'High 10',
  122: 'High 4:2:2',
  244: 'High 4:4:4 Predictive',
};
const AVC_PROFILE_BASELINE = 66;
const AVC_PROFILE_HIGH = 100;
const HEVC_PROFILES: Record<number, string> = { 1: 'Main', 2: 'Main 10', 3: 'Main Still Picture', 4: 'Rext' };
const AV1_PROFILES: Record<number, string> = { 0: 'Main', 1: 'High', 2: 'Professional' };
const AAC_PROFILES: Record<number, string> = { 1: 'Main', 2: 'LC', 3: 'SSR', 4: 'LTP', 5: 'HE-AAC', 29: 'HE-AACv2' };
const AAC_SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
const AAC_EXPLICIT_RATE_INDEX = 15;
const AAC_ESCAPE_OBJECT_TYPE = 31;
/** Audio object types whose AudioSpecificConfig carries an SBR extension rate (the decoder's output rate). */
const AAC_SBR_TYPES = new Set([5, 29]);
/** AAC channel_configuration → channels (7 is 7.1). */
const AAC_CHANNELS = [0, 1, 2, 3, 4, 5, 6, 8];
const OPUS_HEAD_MAGIC = Buffer.from('OpusHead', 'latin1');
const OPUS_OUTPUT_RATE = 48000;
const AV1_OBU_SEQUENCE_HEADER = 1;
const AV1C_HEADER_BYTES = 4;

/** Decoder configuration of a video codec → what it says; `codec` alone when it can't be read. */
export function videoCodecInfo(codec: string, config: Buffer): VideoCodecInfo {
  try {
    switch (codec) {
      case 'avc1':
        return avcInfo(config);
      case 'hvc1':
        return hevcInfo(config);
      case 'av01':
        return av1Info(config);
      default:
        return { codec };
    }
  } catch {
    return { codec };
  }
}

/** Decoder configuration of an audio codec → what it says; `codec` alone when it can't be read. */
export function audioCodecInfo(codec: string, config: Buffer): AudioCodecInfo {
  try {
    switch (codec) {
      case 'mp4a':
        return aacInfo(config);
      case 'Opus':
        return opusInfo(config);
      default:
        return { codec };
    }
  } catch {
    return { codec };
  }
}

function avcInfo(config: Buffer): VideoCodecInfo {
  const record = parseAvcDecoderConfig(config);
  const sps = record.sps[0];
  if (!sps) return { codec: 'avc1' };
  const info = parseAvcSps(sps);
  return {
    codec: 'avc1',
    profile: avcProfileName(info.profileIdc, info.constraintFlags),
    level: (info.levelIdc / 10).toFixed(1),
    width: info.width,
    height: info.height,
  };
}

/** H.264 Annex A names, including the constrained variants that constraint_set1/4/5 select. */
function avcProfileName(profileIdc: number, constraintFlags: number): string {
  const set1 = (constraintFlags >> 6) & 1;
  const set4 = (constraintFlags >> 3) & 1;
  const set5 = (constraintFlags >> 2) & 1;
  if (profileIdc === AVC_PROFILE_BASELINE && set1) return 'Constrained Baseline';
  if (profileIdc === AVC_PROFILE_HIGH && set4) return set5 ? 'Constrained High' : 'Progressive High';
  return AVC_PROFILES[profileIdc] ?? String(profileIdc);
}

function hevcInfo(config: Buffer): VideoCodecInfo {
  const record = parseHevcDecoderConfig(config);
  const sps = record.arrays.flatMap((a) => a.nalus).find((n) => hevcNalType(n) === HevcNalType.Sps);
  if (!sps) return { codec: 'hvc1' };
  const info = parseHevcSps(sps);
  return {
    codec: 'hvc1',
    profile: HEVC_PROFILES[info.generalProfileIdc] ?? String(info.generalProfileIdc),
    // general_level_idc is 30 × the level number.
    level: String(info.generalLevelIdc / 30),
    width: info.width,
    height: info.height,
  };
}

function av1Info(config: Buffer): VideoCodecInfo {
  const profileByte = config[1];
  if (config.length < AV1C_HEADER_BYTES || profileByte === undefined) return { codec: 'av01' };
  const seqProfile = profileByte >> 5;
  const seqLevelIdx = profileByte & 0x1f;
  const out: VideoCodecInfo = {
    codec: 'av01',
    profile: AV1_PROFILES[seqProfile] ?? String(seqProfile),
    // seq_level_idx = (major - 2) * 4 + minor
    level: `${2 + (seqLevelIdx >> 2)}.${seqLevelIdx & 3}`,
  };
  const size = av1SequenceHeaderSize(config.subarray(AV1C_HEADER_BYTES));
  return size ? { ...out, ...size } : out;
}

/** max_frame_width/height from the sequence header OBU among the av1C's configOBUs. */
function av1SequenceHeaderSize(obus: Buffer): { width: number; height: number } | undefined {
  let pos = 0;
  while (pos < obus.length) {
    const header = obus[pos]!;
    const type = (header >> 3) & 0x0f;
    const hasExtension = (header >> 2) & 1;
    const hasSize = (header >> 1) & 1;
    pos += 1 + hasExtension;
    let payloadSize = obus.length - pos;
    if (hasSize) {
      const leb = readLeb128(obus, pos);
      payloadSize = leb.value;
      pos += leb.bytes;
    }
    const payload = obus.subarray(pos, pos + payloadSize);
    if (type === AV1_OBU_SEQUENCE_HEADER) return av1FrameSize(new BitReader(payload, 'AV1 sequence header'));
    pos += payloadSize;
  }
  return undefined;
}

function readLeb128(buf: Buffer, at: number): { value: number; bytes: number } {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const byte = buf[at + i];
    if (byte === undefined) break;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (!(byte & 0x80)) return { value, bytes: i + 1 };
  }
  return { value, bytes: 8 };
}

/** AV1 spec 5.5.1 sequence_header_obu(), up to max_frame_height_minus_1. */
function av1FrameSize(r: BitReader): { width: number; height: number } {
  r.skip(3); // seq_profile
  r.skip(1); // still_picture
  const reduced = r.u1();
  if (reduced) {
    r.skip(5); // seq_level_idx[0]
  } else {
    const timingInfoPresent = r.u1();
    let decoderModelInfoPresent = 0;
    let bufferDelayLength = 0;
    if (timingInfoPresent) {
      r.skip(32 + 32); // num_units_in_display_tick, time_scale
      if (r.u1()) uvlc(r); // equal_picture_interval → num_ticks_per_picture_minus_1
      decoderModelInfoPresent = r.u1();
      if (decoderModelInfoPresent) {
        bufferDelayLength = r.u(5) + 1;
        r.skip(32); // num_units_in_decoding_tick
        r.skip(5 + 5); // buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1
      }
    }
    const initialDisplayDelayPresent = r.u1();
    const operatingPoints = r.u(5) + 1;
    for (let i = 0; i < operatingPoints; i++) {
      r.skip(12); // operating_point_idc
      const seqLevelIdx = r.u(5);
      if (seqLevelIdx > 7) r.skip(1); // seq_tier
      if (decoderModelInfoPresent && r.u1()) r.skip(bufferDelayLength * 2 + 1);
      if (initialDisplayDelayPresent && r.u1()) r.skip(4);
    }
  }
  const widthBits = r.u(4) + 1;
  const heightBits = r.u(4) + 1;
  return { width: r.u(widthBits) + 1, height: r.u(heightBits) + 1 };
}

/** AV1 uvlc(): leading zeros, then that many bits. */
function uvlc(r: BitReader): number {
  let zeros = 0;
  while (r.u1() === 0) if (++zeros >= 32) return 2 ** 32 - 1;
  return zeros === 0 ? 0 : r.u(zeros) + 2 ** zeros - 1;
}

function aacInfo(config: Buffer): AudioCodecInfo {
  const r = new BitReader(config, 'AudioSpecificConfig');
  let objectType = r.u(5);
  if (objectType === AAC_ESCAPE_OBJECT_TYPE) objectType = 32 + r.u(6);
  const rate = (): number => {
    const index = r.u(4);
    return index === AAC_EXPLICIT_RATE_INDEX ? r.u(24) : (AAC_SAMPLE_RATES[index] ?? 0);
  };
  let sampleRate = rate();
  const channelConfig = r.u(4);
  // HE-AAC: the extension rate is what the decoder outputs (twice the core rate).
  if (AAC_SBR_TYPES.has(objectType)) sampleRate = rate();
  const channels = AAC_CHANNELS[channelConfig];
  return {
    codec: 'mp4a',
    profile: AAC_PROFILES[objectType] ?? String(objectType),
    ...(sampleRate ? { sampleRate } : {}),
    ...(channels ? { channels } : {}),
  };
}

function opusInfo(config: Buffer): AudioCodecInfo {
  // OpusHead: magic, version, channel count, ...; dOps: version, channel count, ... (no magic).
  const channelsAt = config.subarray(0, OPUS_HEAD_MAGIC.length).equals(OPUS_HEAD_MAGIC)
    ? OPUS_HEAD_MAGIC.length + 1
    : 1;
  const channels = config[channelsAt];
  return { codec: 'Opus', sampleRate: OPUS_OUTPUT_RATE, ...(channels ? { channels } : {}) };
}
