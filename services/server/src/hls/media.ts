/**
 * From hub messages (FLV tags: legacy FLV and Enhanced RTMP) to what a CMAF packager needs: decoder configurations
 * and coded samples, for the codecs CMAF carries: H.264 (avc1), HEVC (hvc1), AV1 (av01), AAC (mp4a) and Opus.
 * FLV carries H.264/HEVC as length-prefixed NAL units, AV1 as low-overhead OBUs, AAC as raw access units: the same
 * bytes an MP4 sample holds, so samples are subarrays of the hub's message, never copied here.
 */
import {
  AudioFourCc,
  AudioPacketType,
  AvcPacketType,
  FLV_PREVIOUS_TAG_SIZE_SIZE,
  FLV_TAG_HEADER_SIZE,
  FlvTagType,
  SoundFormat,
  VideoCodecId,
  VideoFourCc,
  VideoPacketType,
  audioCodecInfo,
  parseAudioTag,
  parseVideoTag,
  videoCodecInfo,
} from '@rtmp-relay/rtmp';

export type TrackKind = 'video' | 'audio';
export type VideoCodec = 'avc1' | 'hvc1' | 'av01';
export type AudioCodec = 'mp4a' | 'Opus';

/** FourCCs the packager can put in CMAF (what its hub viewer accepts from Enhanced RTMP). */
export const PACKAGED_FOURCCS: ReadonlySet<string> = new Set([
  VideoFourCc.Avc,
  VideoFourCc.Hevc,
  VideoFourCc.Av1,
  AudioFourCc.Aac,
  AudioFourCc.Opus,
]);

/** A decoder configuration: the sequence header's record (avcC, hvcC, av1C, AudioSpecificConfig, OpusHead/dOps). */
export interface CodecConfig {
  kind: TrackKind;
  codec: VideoCodec | AudioCodec;
  config: Buffer;
}

/** One coded frame. Times in ms on the hub timeline; `cts` is the composition offset (B-frames), video only. */
export interface MediaSample {
  kind: TrackKind;
  codec: VideoCodec | AudioCodec;
  dts: number;
  cts: number;
  keyframe: boolean;
  data: Buffer;
}

export type MediaEvent = { type: 'config'; config: CodecConfig } | { type: 'sample'; sample: MediaSample };

/** An FLV tag from the hub → its type, timestamp (uint32 ms) and body. */
export function splitFlvTag(tag: Buffer): { type: number; timestamp: number; body: Buffer } {
  const type = tag[0]! & 0x1f;
  const timestamp = ((tag[7]! << 24) | (tag[4]! << 16) | (tag[5]! << 8) | tag[6]!) >>> 0;
  return { type, timestamp, body: tag.subarray(FLV_TAG_HEADER_SIZE, tag.length - FLV_PREVIOUS_TAG_SIZE_SIZE) };
}

/**
 * A hub message → a configuration or a sample, or undefined for what CMAF does not carry here (metadata, commands,
 * sequence ends, multitrack, other codecs). Malformed payloads are skipped, not thrown: the hub already accepted them.
 */
export function mediaEventOf(type: number, timestamp: number, body: Buffer): MediaEvent | undefined {
  try {
    if (type === FlvTagType.Video) return videoEvent(timestamp, body);
    if (type === FlvTagType.Audio) return audioEvent(timestamp, body);
  } catch {
    return undefined;
  }
  return undefined;
}

function videoEvent(timestamp: number, body: Buffer): MediaEvent | undefined {
  if (body.length === 0) return undefined;
  const info = parseVideoTag(body);
  if (info.multitrackType !== undefined || info.isMetadata || info.isCommand || info.isSequenceEnd) return undefined;
  let codec: VideoCodec;
  let isConfig: boolean;
  if (!info.exHeader) {
    if (info.codecId !== VideoCodecId.Avc) return undefined;
    codec = 'avc1';
    isConfig = info.packetType === AvcPacketType.SequenceHeader;
    if (!isConfig && info.packetType !== AvcPacketType.Nalu) return undefined;
  } else {
    if (info.fourCc !== VideoFourCc.Avc && info.fourCc !== VideoFourCc.Hevc && info.fourCc !== VideoFourCc.Av1)
      return undefined;
    codec = info.fourCc;
    isConfig = info.packetType === VideoPacketType.SequenceStart;
    if (!isConfig && !info.isCodedFrame) return undefined;
  }
  const data = body.subarray(info.payloadOffset);
  if (data.length === 0) return undefined;
  if (isConfig) return { type: 'config', config: { kind: 'video', codec, config: data } };
  return {
    type: 'sample',
    sample: { kind: 'video', codec, dts: timestamp, cts: info.compositionTime, keyframe: info.isKeyframe, data },
  };
}

function audioEvent(timestamp: number, body: Buffer): MediaEvent | undefined {
  const info = parseAudioTag(body);
  if (info.isSilence || info.multitrackType !== undefined || info.isSequenceEnd) return undefined;
  let codec: AudioCodec;
  let isConfig: boolean;
  if (!info.exHeader) {
    if (info.soundFormat !== SoundFormat.Aac) return undefined;
    codec = 'mp4a';
    isConfig = info.isSequenceHeader;
  } else {
    if (info.fourCc !== AudioFourCc.Aac && info.fourCc !== AudioFourCc.Opus) return undefined;
    codec = info.fourCc;
    if (info.packetType === AudioPacketType.MultichannelConfig) return undefined;
    isConfig = info.packetType === AudioPacketType.SequenceStart;
    if (!isConfig && info.packetType !== AudioPacketType.CodedFrames) return undefined;
  }
  const data = body.subarray(info.payloadOffset);
  if (data.length === 0) return undefined;
  if (isConfig) return { type: 'config', config: { kind: 'audio', codec, config: data } };
  return { type: 'sample', sample: { kind: 'audio', codec, dts: timestamp, cts: 0, keyframe: true, data } };
}

/** A track as the init segment and the fragments describe it. */
export interface TrackInfo {
  kind: TrackKind;
  codec: VideoCodec | AudioCodec;
  /** 1 video, 2 audio. */
  id: number;
  /** Ticks per second: 90 kHz for video, the sample rate for audio (48 kHz for Opus). */
  timescale: number;
  config: Buffer;
  width: number;
  height: number;
  sampleRate: number;
  channels: number;
  /** RFC 6381 codecs parameter (for CODECS= and MSE). */
  codecString: string;
}

export const VIDEO_TIMESCALE = 90_000;
export const VIDEO_TRACK_ID = 1;
export const AUDIO_TRACK_ID = 2;
const DEFAULT_WIDTH = 1280;
const DEFAULT_HEIGHT = 720;
const DEFAULT_SAMPLE_RATE = 48_000;
const DEFAULT_CHANNELS = 2;
const OPUS_RATE = 48_000;

export function trackOf(c: CodecConfig): TrackInfo {
  if (c.kind === 'video') {
    const info = videoCodecInfo(c.codec, c.config);
    return {
      kind: 'video',
      codec: c.codec,
      id: VIDEO_TRACK_ID,
      timescale: VIDEO_TIMESCALE,
      config: c.config,
      width: info.width ?? DEFAULT_WIDTH,
      height: info.height ?? DEFAULT_HEIGHT,
      sampleRate: 0,
      channels: 0,
      codecString: videoCodecString(c.codec as VideoCodec, c.config),
    };
  }
  const info = audioCodecInfo(c.codec, c.config);
  const sampleRate = c.codec === 'Opus' ? OPUS_RATE : (aacCoreSampleRate(c.config) ?? DEFAULT_SAMPLE_RATE);
  return {
    kind: 'audio',
    codec: c.codec,
    id: AUDIO_TRACK_ID,
    timescale: sampleRate,
    config: c.config,
    width: 0,
    height: 0,
    sampleRate,
    channels: info.channels ?? DEFAULT_CHANNELS,
    codecString: c.codec === 'Opus' ? 'opus' : `mp4a.40.${aacObjectType(c.config)}`,
  };
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
const AAC_EXPLICIT_RATE = 15;

/**
 * The AudioSpecificConfig's own sampling rate (not the SBR output rate): AAC frames are 1024 samples at this rate,
 * which makes it the natural timescale.
 */
function aacCoreSampleRate(asc: Buffer): number | undefined {
  if (asc.length < 2) return undefined;
  // 5 bits of object type, 6 more when escaped (31).
  let bit = asc[0]! >> 3 === 31 ? 11 : 5;
  const readBits = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) v = (v << 1) | ((asc[bit >> 3]! >> (7 - (bit & 7))) & 1);
    return v;
  };
  const index = readBits(4);
  if (index === AAC_EXPLICIT_RATE) return asc.length >= 5 ? readBits(24) : undefined;
  return AAC_RATES[index];
}

function aacObjectType(asc: Buffer): number {
  const aot = (asc[0] ?? 0x10) >> 3;
  return aot === 31 && asc.length > 1 ? 32 + (((asc[0]! & 0x07) << 3) | (asc[1]! >> 5)) : aot || 2;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** RFC 6381 / ISO 14496-15 Annex E / AV1-ISOBMFF codecs strings from the decoder configuration records. */
export function videoCodecString(codec: VideoCodec, config: Buffer): string {
  if (codec === 'avc1')
    return config.length >= 4 ? `avc1.${hex2(config[1]!)}${hex2(config[2]!)}${hex2(config[3]!)}` : 'avc1';
  if (codec === 'hvc1') {
    if (config.length < 13) return 'hvc1';
    const b1 = config[1]!;
    const space = ['', 'A', 'B', 'C'][b1 >> 6]!;
    const tier = (b1 >> 5) & 1 ? 'H' : 'L';
    const profile = b1 & 0x1f;
    // general_profile_compatibility_flags, bit-reversed, in hex without leading zeros.
    let compat = config.readUInt32BE(2);
    let reversed = 0;
    for (let i = 0; i < 32; i++) {
      reversed = (reversed << 1) | (compat & 1);
      compat >>>= 1;
    }
    const level = config[12]!;
    const constraints = [...config.subarray(6, 12)];
    while (constraints.length > 0 && constraints[constraints.length - 1] === 0) constraints.pop();
    const tail = constraints.map((b) => `.${b.toString(16).toUpperCase()}`).join('');
    return `hvc1.${space}${profile}.${(reversed >>> 0).toString(16).toUpperCase()}.${tier}${level}${tail}`;
  }
  if (config.length < 4) return 'av01';
  const profile = config[1]! >> 5;
  const level = config[1]! & 0x1f;
  const tier = config[2]! >> 7 ? 'H' : 'M';
  const highBitdepth = (config[2]! >> 6) & 1;
  const twelveBit = (config[2]! >> 5) & 1;
  const depth = highBitdepth ? (twelveBit ? 12 : 10) : 8;
  return `av01.${profile}.${String(level).padStart(2, '0')}${tier}.${String(depth).padStart(2, '0')}`;
}

const OPUS_FRAME_SAMPLES_48K_SILK = [480, 960, 1920, 2880];
const OPUS_FRAME_SAMPLES_48K_HYBRID = [480, 960];
const OPUS_FRAME_SAMPLES_48K_CELT = [120, 240, 480, 960];

/** Samples (at 48 kHz) in one Opus packet, from its TOC byte and frame count code (RFC 6716 3.1). */
export function opusPacketSamples(packet: Buffer): number {
  if (packet.length === 0) return 960;
  const toc = packet[0]!;
  const config = toc >> 3;
  const perFrame =
    config < 12
      ? OPUS_FRAME_SAMPLES_48K_SILK[config & 3]!
      : config < 16
        ? OPUS_FRAME_SAMPLES_48K_HYBRID[config & 1]!
        : OPUS_FRAME_SAMPLES_48K_CELT[config & 3]!;
  const code = toc & 3;
  const frames = code === 0 ? 1 : code === 3 ? (packet.length > 1 ? packet[1]! & 0x3f : 1) : 2;
  return perFrame * frames;
}

/** Samples per AAC frame (AAC-LC and the core of HE-AAC). */
export const AAC_FRAME_SAMPLES = 1024;
