/**
 * Classification of RTMP audio (type 8) and video (type 9) message payloads, i.e. FLV tag bodies: what a relay
 * needs per message (sequence header? keyframe? metadata? which codec / track?), for legacy FLV [FLV E.4.2, E.4.3]
 * and Enhanced RTMP v1/v2 [ERTMP "Enhanced Audio", "Enhanced Video", "Multitrack"] payloads.
 *
 * Nothing here copies or rewrites the payload: offsets into it are reported instead.
 * Unknown codec ids, FourCCs, packet types and multitrack types never throw; they are reported as read, and classified
 * conservatively (not a sequence header, not a keyframe). Structurally impossible input (a header cut short, a track
 * size past the end, limits exceeded) throws RtmpProtocolError with reason `video_*` / `audio_*`.
 */
import { RtmpProtocolError } from './errors.js';

/** Legacy/E-RTMP video frame types (UB[3] after IsExHeader / UB[4] in legacy). */
export const VideoFrameType = {
  KeyFrame: 1,
  InterFrame: 2,
  DisposableInterFrame: 3,
  GeneratedKeyFrame: 4,
  /** Video info / command frame: a UI8 command instead of video (unless the packet type is Metadata). */
  Command: 5,
} as const;

/** Legacy FLV video codec ids (low nibble of byte 0 when IsExHeader is 0). */
export const VideoCodecId = {
  SorensonH263: 2,
  Screen: 3,
  On2Vp6: 4,
  On2Vp6Alpha: 5,
  ScreenV2: 6,
  Avc: 7,
} as const;

/** Legacy AVC packet type (byte 1 when CodecID is 7). */
export const AvcPacketType = { SequenceHeader: 0, Nalu: 1, EndOfSequence: 2 } as const;

/** E-RTMP VideoPacketType (low nibble of byte 0 when IsExHeader is 1). */
export const VideoPacketType = {
  SequenceStart: 0,
  CodedFrames: 1,
  SequenceEnd: 2,
  CodedFramesX: 3,
  Metadata: 4,
  Mpeg2TsSequenceStart: 5,
  Multitrack: 6,
  ModEx: 7,
} as const;

/** Legacy SoundFormat (high nibble of audio byte 0); 9 switches to the E-RTMP ExAudioTagHeader. */
export const SoundFormat = {
  LPcmPlatformEndian: 0,
  AdPcm: 1,
  Mp3: 2,
  LPcmLittleEndian: 3,
  Nellymoser16kMono: 4,
  Nellymoser8kMono: 5,
  Nellymoser: 6,
  G711ALaw: 7,
  G711MuLaw: 8,
  ExHeader: 9,
  Aac: 10,
  Speex: 11,
  Mp3_8k: 14,
  Native: 15,
} as const;

/** Legacy AAC packet type (byte 1 when SoundFormat is 10). */
const AacPacketType = { SequenceHeader: 0, Raw: 1 } as const;

/** E-RTMP AudioPacketType (low nibble of byte 0 when SoundFormat is 9). */
export const AudioPacketType = {
  SequenceStart: 0,
  CodedFrames: 1,
  SequenceEnd: 2,
  MultichannelConfig: 4,
  Multitrack: 5,
  ModEx: 7,
} as const;

const AvMultitrackType = { OneTrack: 0, ManyTracks: 1, ManyTracksManyCodecs: 2 } as const;

/** ModEx types shared by audio and video. */
const PacketModExType = { TimestampOffsetNano: 0 } as const;

/** Video FourCCs of E-RTMP v1/v2 (strings; fourCcToNumber gives the numeric form used in onMetaData). */
export const VideoFourCc = {
  Avc: 'avc1',
  Hevc: 'hvc1',
  Vvc: 'vvc1',
  Av1: 'av01',
  Vp8: 'vp08',
  Vp9: 'vp09',
} as const;

/** Audio FourCCs of E-RTMP v2. */
export const AudioFourCc = {
  Aac: 'mp4a',
  Opus: 'Opus',
  Flac: 'fLaC',
  Ac3: 'ac-3',
  Eac3: 'ec-3',
  Mp3: '.mp3',
} as const;

/** Multitrack messages with more tracks are rejected (E-RTMP robustness limit, docs/INTEROP.md §9). */
export const MAX_MULTITRACK_TRACKS = 16;
/** At most this many ModEx entries per message (a ModEx data block is at most 65536 bytes by its u16 + 1 encoding). */
const MAX_MODEX_ENTRIES = 8;

/** FourCCs whose CodedFrames (packet type 1) carry an SI24 composition time offset. */
const CTS_FOURCCS: ReadonlySet<string> = new Set([VideoFourCc.Avc, VideoFourCc.Hevc, VideoFourCc.Vvc]);

/** One track of an E-RTMP multitrack message. Offsets are into the payload passed to the parser. */
export interface MediaTrack {
  trackId: number;
  /** Undefined only when it could not be read (never for well-formed input). */
  fourCc: string | undefined;
  /** Start of this track's body (right after trackId [and sizeOfTrack]); includes the SI24 CTS if any. */
  bodyOffset: number;
  /** Length of the body: sizeOfTrack, or the rest of the message for OneTrack. */
  bodySize: number;
  /** Start of the codec data (after the CTS, if any). */
  payloadOffset: number;
  /** Video CodedFrames of avc1/hvc1/vvc1: signed composition time offset (ms); else 0. */
  compositionTime: number;
}

export interface VideoInfo {
  /** IsExHeader (byte 0 bit 7): E-RTMP FourCC mode. */
  exHeader: boolean;
  /** 1 key, 2 inter, 3 disposable, 4 generated key, 5 command/info (0, 6, 7 reserved). */
  frameType: number;
  /** Legacy codec id (exHeader false only). */
  codecId?: number;
  /**
   * E-RTMP FourCC (exHeader true). For a multitrack message, the shared FourCC, or the first track's for
   * ManyTracksManyCodecs (see `tracks` for all of them).
   */
  fourCc?: string;
  /**
   * Legacy: the AVC packet type (byte 1) for AVC (and a configured legacy HEVC codec id), -1 for other codecs.
   * E-RTMP: the VideoPacketType that applies to the media, i.e. after resolving ModEx and Multitrack
   * (never 6 or 7 for well-formed input; see `multitrackType`).
   */
  packetType: number;
  /** A coded frame of frame type 1 (not a sequence header/end, metadata, command or unknown packet type). */
  isKeyframe: boolean;
  /** Decoder configuration: legacy AVC packet type 0, E-RTMP SequenceStart or MPEG2TSSequenceStart. */
  isSequenceHeader: boolean;
  /** Legacy AVC end of sequence or E-RTMP SequenceEnd. */
  isSequenceEnd: boolean;
  /** E-RTMP Metadata (AMF `colorInfo` etc.); its frame type is meaningless. */
  isMetadata: boolean;
  /** Frame type 5 carrying a UI8 command (seek start/end) instead of video. */
  isCommand: boolean;
  /** The command byte of a command frame, when present. */
  command?: number;
  /** True for frames that carry coded video (legacy data, AVC NALUs, E-RTMP CodedFrames/CodedFramesX). */
  isCodedFrame: boolean;
  /** SI24 composition time offset in ms (legacy AVC, E-RTMP CodedFrames of avc1/hvc1/vvc1); 0 if none. */
  compositionTime: number;
  /** E-RTMP ModEx TimestampOffsetNano (0..16777215 ns), when present. */
  timestampOffsetNano?: number;
  /** Present for E-RTMP Multitrack messages: 0 OneTrack, 1 ManyTracks, 2 ManyTracksManyCodecs (others unknown). */
  multitrackType?: number;
  /** Present for E-RTMP Multitrack messages (empty for an unknown multitrack type). */
  tracks?: MediaTrack[];
  /** Start of the codec data (after all headers and the CTS); for multitrack, the first track's. */
  payloadOffset: number;
}

export interface AudioInfo {
  /** SoundFormat 9: E-RTMP FourCC mode. */
  exHeader: boolean;
  /** High nibble of byte 0 (9 = ExHeader, 10 = AAC); -1 for an empty (silence) message. */
  soundFormat: number;
  /** E-RTMP FourCC (for multitrack: the shared one or the first track's). */
  fourCc?: string;
  /** Legacy AAC: AACPacketType (byte 1). E-RTMP: AudioPacketType after resolving ModEx and Multitrack. */
  packetType?: number;
  /** AAC AudioSpecificConfig (`AF 00`), E-RTMP SequenceStart or MultichannelConfig. */
  isSequenceHeader: boolean;
  /** E-RTMP SequenceEnd. */
  isSequenceEnd: boolean;
  /** Empty message: the "audio silence" signal (not a header, carries no codec). */
  isSilence: boolean;
  timestampOffsetNano?: number;
  multitrackType?: number;
  tracks?: MediaTrack[];
  /** Start of the codec data; for multitrack, the first track's. */
  payloadOffset: number;
}

export interface ParseVideoOptions {
  /**
   * Legacy codec id that a pre-E-RTMP HEVC hack uses (12 in forked FFmpeg builds). Unset by default: such tags are
   * unknown codecs. When set, tags with this codec id are parsed like AVC (packet type, SI24 CTS).
   */
  legacyHevcCodecId?: number;
}

/** Numeric FourCC (big-endian ASCII, as in onMetaData videocodecid) to its 4-character string. */
export function fourCcToString(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not a 32-bit FourCC: ${n}`);
  return String.fromCharCode((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** 4-character FourCC string to its numeric (big-endian) form, e.g. 'hvc1' -> 1752589105. */
export function fourCcToNumber(s: string): number {
  if (s.length !== 4) throw new RangeError(`FourCC must have 4 characters: ${JSON.stringify(s)}`);
  let n = 0;
  for (let i = 0; i < 4; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`FourCC must be 8-bit characters: ${JSON.stringify(s)}`);
    n = n * 256 + c;
  }
  return n;
}

function readSI24(buf: Buffer, pos: number): number {
  const v = buf.readUIntBE(pos, 3);
  return v & 0x800000 ? v - 0x1000000 : v;
}

type Kind = 'video' | 'audio';

/** Cursor with bounds checks that throw `<kind>_truncated`. */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    readonly kind: Kind,
    pos: number,
  ) {
    this.pos = pos;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new RtmpProtocolError(
        `${this.kind}_truncated`,
        `${this.kind} message truncated: ${what} needs ${n} bytes at offset ${this.pos}, message has ${this.buf.length}`,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(what: string): number {
    this.need(3, what);
    const v = this.buf.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  fourCc(what: string): string {
    this.need(4, what);
    const s = this.buf.toString('latin1', this.pos, this.pos + 4);
    this.pos += 4;
    return s;
  }
}

/**
 * Consume ModEx entries while the packet type is ModEx (7); returns the final packet type and the
 * TimestampOffsetNano, if any.
 */
function readModEx(c: Cursor, packetType: number): { packetType: number; timestampOffsetNano?: number } {
  let timestampOffsetNano: number | undefined;
  let count = 0;
  while (packetType === 7) {
    if (++count > MAX_MODEX_ENTRIES) {
      throw new RtmpProtocolError(`${c.kind}_too_many_modex`, `more than ${MAX_MODEX_ENTRIES} ModEx entries`);
    }
    let size = c.u8('ModEx size') + 1;
    if (size === 256) size = c.u16('ModEx size16') + 1; // <= 65536 by construction
    c.need(size, 'ModEx data');
    const dataPos = c.pos;
    c.pos += size;
    const b = c.u8('ModEx type');
    const modExType = b >> 4;
    packetType = b & 0x0f;
    // TimestampOffsetNano: UI24 in the first 3 bytes of the data (spec: at least 3 bytes); shorter data is ignored.
    if (modExType === PacketModExType.TimestampOffsetNano && size >= 3) {
      timestampOffsetNano = c.buf.readUIntBE(dataPos, 3);
    }
  }
  return timestampOffsetNano === undefined ? { packetType } : { packetType, timestampOffsetNano };
}

interface BodyLayout {
  fourCc: string | undefined;
  packetType: number;
  multitrackType?: number;
  tracks?: MediaTrack[];
  payloadOffset: number;
  compositionTime: number;
}

/**
 * After the (resolved) packet type: either a single FourCC + body, or a Multitrack header + tracks.
 * `hasCts(fourCc, packetType)` says whether a track body starts with an SI24 CTS.
 */
function readBody(
  c: Cursor,
  packetType: number,
  multitrackPacketType: number,
  hasCts: (fourCc: string | undefined, packetType: number) => boolean,
): BodyLayout {
  const end = c.buf.length;
  if (packetType !== multitrackPacketType) {
    const fourCc = c.fourCc('FourCC');
    let compositionTime = 0;
    if (hasCts(fourCc, packetType)) {
      c.need(3, 'composition time');
      compositionTime = readSI24(c.buf, c.pos);
      c.pos += 3;
    }
    return { fourCc, packetType, payloadOffset: c.pos, compositionTime };
  }

  const b = c.u8('multitrack type');
  const multitrackType = b >> 4;
  const innerType = b & 0x0f;
  const tracks: MediaTrack[] = [];
  if (multitrackType > AvMultitrackType.ManyTracksManyCodecs) {
    // Unknown layout: report what we know, skip the rest.
    return { fourCc: undefined, packetType: innerType, multitrackType, tracks, payloadOffset: end, compositionTime: 0 };
  }
  const shared = multitrackType !== AvMultitrackType.ManyTracksManyCodecs ? c.fourCc('multitrack FourCC') : undefined;
  do {
    if (tracks.length >= MAX_MULTITRACK_TRACKS) {
      throw new RtmpProtocolError(
        `${c.kind}_too_many_tracks`,
        `${c.kind} multitrack message has more than ${MAX_MULTITRACK_TRACKS} tracks`,
      );
    }
    const fourCc = shared ?? c.fourCc('track FourCC');
    const trackId = c.u8('track id');
    let bodySize: number;
    if (multitrackType === AvMultitrackType.OneTrack) {
      bodySize = end - c.pos;
    } else {
      bodySize = c.u24('track size');
      c.need(bodySize, 'track body');
    }
    const bodyOffset = c.pos;
    let payloadOffset = bodyOffset;
    let compositionTime = 0;
    if (hasCts(fourCc, innerType)) {
      if (bodySize < 3) {
        throw new RtmpProtocolError(`${c.kind}_truncated`, `track ${trackId} body too short for a composition time`);
      }
      compositionTime = readSI24(c.buf, bodyOffset);
      payloadOffset += 3;
    }
    tracks.push({ trackId, fourCc, bodyOffset, bodySize, payloadOffset, compositionTime });
    c.pos = bodyOffset + bodySize;
  } while (multitrackType !== AvMultitrackType.OneTrack && c.pos < end);
  const first = tracks[0]!;
  return {
    fourCc: first.fourCc,
    packetType: innerType,
    multitrackType,
    tracks,
    payloadOffset: first.payloadOffset,
    compositionTime: first.compositionTime,
  };
}

function videoHasCts(fourCc: string | undefined, packetType: number): boolean {
  return packetType === VideoPacketType.CodedFrames && fourCc !== undefined && CTS_FOURCCS.has(fourCc);
}

function noCts(): boolean {
  return false;
}

/** Classify a video message payload (FLV video tag body). */
export function parseVideoTag(data: Buffer, opts: ParseVideoOptions = {}): VideoInfo {
  if (data.length === 0) throw new RtmpProtocolError('video_truncated', 'empty video message');
  const b0 = data[0]!;
  if (b0 & 0x80) return parseExVideo(data, b0);

  const frameType = b0 >> 4;
  const codecId = b0 & 0x0f;
  // Object literals, not spreads of a shared base: V8 (Node 20) runs `{ ...local, more }` through a slow path that
  // cost ~3-8 us per call here, and every media message is classified at least twice (hub and stream stats).
  if (frameType === VideoFrameType.Command) {
    // [FLV E.4.3.1] a UI8 command instead of video; FFmpeg skips such tags entirely. Best effort, never throws.
    const cmdPos = codecId === VideoCodecId.Avc && data.length >= 6 ? 5 : 1;
    const info: VideoInfo = {
      exHeader: false,
      frameType,
      codecId,
      packetType: -1,
      isKeyframe: false,
      isSequenceHeader: false,
      isSequenceEnd: false,
      isMetadata: false,
      isCommand: true,
      isCodedFrame: false,
      compositionTime: 0,
      payloadOffset: Math.min(cmdPos, data.length),
    };
    if (cmdPos < data.length) info.command = data[cmdPos]!;
    return info;
  }
  if (codecId === VideoCodecId.Avc || (opts.legacyHevcCodecId !== undefined && codecId === opts.legacyHevcCodecId)) {
    if (data.length < 5) {
      throw new RtmpProtocolError('video_truncated', `legacy AVC video header needs 5 bytes, got ${data.length}`);
    }
    const packetType = data[1]!;
    const coded = packetType === AvcPacketType.Nalu;
    return {
      exHeader: false,
      frameType,
      codecId,
      packetType,
      isKeyframe: coded && frameType === VideoFrameType.KeyFrame,
      isSequenceHeader: packetType === AvcPacketType.SequenceHeader,
      isSequenceEnd: packetType === AvcPacketType.EndOfSequence,
      isMetadata: false,
      isCommand: false,
      isCodedFrame: coded,
      compositionTime: readSI24(data, 2),
      payloadOffset: 5,
    };
  }
  // Other legacy codecs (H.263, VP6, screen video, unknown ids incl. unconfigured HEVC hacks): opaque frames.
  const known = codecId >= VideoCodecId.SorensonH263 && codecId <= VideoCodecId.ScreenV2;
  return {
    exHeader: false,
    frameType,
    codecId,
    packetType: -1,
    isKeyframe: known && frameType === VideoFrameType.KeyFrame,
    isSequenceHeader: false,
    isSequenceEnd: false,
    isMetadata: false,
    isCommand: false,
    isCodedFrame: known,
    compositionTime: 0,
    payloadOffset: 1,
  };
}

function parseExVideo(data: Buffer, b0: number): VideoInfo {
  const frameType = (b0 >> 4) & 0x07;
  const c = new Cursor(data, 'video', 1);
  const modEx = readModEx(c, b0 & 0x0f);
  let packetType = modEx.packetType;

  if (frameType === VideoFrameType.Command && packetType !== VideoPacketType.Metadata) {
    // ExVideoTagHeader followed by a UI8 command, no FourCC and no body. Best effort on the command byte.
    const info: VideoInfo = {
      exHeader: true,
      frameType,
      packetType,
      isKeyframe: false,
      isSequenceHeader: false,
      isSequenceEnd: false,
      isMetadata: false,
      isCommand: true,
      isCodedFrame: false,
      compositionTime: 0,
      payloadOffset: Math.min(c.pos + 1, data.length),
    };
    if (c.pos < data.length) info.command = data[c.pos]!;
    if (modEx.timestampOffsetNano !== undefined) info.timestampOffsetNano = modEx.timestampOffsetNano;
    return info;
  }

  const body = readBody(c, packetType, VideoPacketType.Multitrack, videoHasCts);
  packetType = body.packetType;
  const isSequenceHeader =
    packetType === VideoPacketType.SequenceStart || packetType === VideoPacketType.Mpeg2TsSequenceStart;
  const isMetadata = packetType === VideoPacketType.Metadata;
  const isCodedFrame = packetType === VideoPacketType.CodedFrames || packetType === VideoPacketType.CodedFramesX;
  const info: VideoInfo = {
    exHeader: true,
    frameType,
    packetType,
    isKeyframe: isCodedFrame && frameType === VideoFrameType.KeyFrame,
    isSequenceHeader,
    isSequenceEnd: packetType === VideoPacketType.SequenceEnd,
    isMetadata,
    isCommand: false,
    isCodedFrame,
    compositionTime: body.compositionTime,
    payloadOffset: body.payloadOffset,
  };
  if (body.fourCc !== undefined) info.fourCc = body.fourCc;
  if (modEx.timestampOffsetNano !== undefined) info.timestampOffsetNano = modEx.timestampOffsetNano;
  if (body.multitrackType !== undefined) {
    info.multitrackType = body.multitrackType;
    info.tracks = body.tracks!;
  }
  return info;
}

/** Classify an audio message payload (FLV audio tag body). An empty payload is the silence signal. */
export function parseAudioTag(data: Buffer): AudioInfo {
  // Literals, not spreads of a shared base (see parseVideoTag).
  if (data.length === 0) {
    return {
      exHeader: false,
      soundFormat: -1,
      isSequenceHeader: false,
      isSequenceEnd: false,
      isSilence: true,
      payloadOffset: 0,
    };
  }
  const b0 = data[0]!;
  const soundFormat = b0 >> 4;
  if (soundFormat !== SoundFormat.ExHeader) {
    if (soundFormat === SoundFormat.Aac) {
      if (data.length < 2) throw new RtmpProtocolError('audio_truncated', 'AAC audio message without packet type');
      const packetType = data[1]!;
      return {
        exHeader: false,
        soundFormat,
        packetType,
        isSequenceHeader: packetType === AacPacketType.SequenceHeader,
        isSequenceEnd: false,
        isSilence: false,
        payloadOffset: 2,
      };
    }
    return {
      exHeader: false,
      soundFormat,
      isSequenceHeader: false,
      isSequenceEnd: false,
      isSilence: false,
      payloadOffset: 1,
    };
  }

  const c = new Cursor(data, 'audio', 1);
  const modEx = readModEx(c, b0 & 0x0f);
  const body = readBody(c, modEx.packetType, AudioPacketType.Multitrack, noCts);
  const packetType = body.packetType;
  const info: AudioInfo = {
    exHeader: true,
    soundFormat,
    packetType,
    isSequenceHeader: packetType === AudioPacketType.SequenceStart || packetType === AudioPacketType.MultichannelConfig,
    isSequenceEnd: packetType === AudioPacketType.SequenceEnd,
    isSilence: false,
    payloadOffset: body.payloadOffset,
  };
  if (body.fourCc !== undefined) info.fourCc = body.fourCc;
  if (modEx.timestampOffsetNano !== undefined) info.timestampOffsetNano = modEx.timestampOffsetNano;
  if (body.multitrackType !== undefined) {
    info.multitrackType = body.multitrackType;
    info.tracks = body.tracks!;
  }
  return info;
}
