/**
 * H.264 / HEVC bitstream helpers: Annex B (start codes, as encoders and .h264/.hevc files write it) <-> the
 * length-prefixed NAL units that FLV/RTMP and MP4 carry, and the decoder configuration records that go into
 * sequence headers: AVCDecoderConfigurationRecord (avcC) and HEVCDecoderConfigurationRecord (hvcC), ISO/IEC 14496-15.
 * Used by the live stream stats (codec-info.ts: picture size and profile from the SPS), tests and the load generator;
 * the relay's media path never looks inside NAL units.
 */
import { BitReader } from './bit-reader.js';
import { RtmpProtocolError } from './errors.js';

/** H.264 nal_unit_type values (ITU-T H.264 Table 7-1) used here. */
const AvcNalType = {
  NonIdrSlice: 1,
  IdrSlice: 5,
  Sei: 6,
  Sps: 7,
  Pps: 8,
  AccessUnitDelimiter: 9,
  EndOfSequence: 10,
  EndOfStream: 11,
  FillerData: 12,
  SpsExtension: 13,
} as const;

/** HEVC nal_unit_type values (ITU-T H.265 Table 7-1) used here. */
export const HevcNalType = {
  /** IRAP pictures are 16..23 (BLA_W_LP .. RSV_IRAP_VCL23). */
  BlaWLp: 16,
  IdrWRadl: 19,
  IdrNLp: 20,
  CraNut: 21,
  Vps: 32,
  Sps: 33,
  Pps: 34,
  AccessUnitDelimiter: 35,
  EndOfSequence: 36,
  EndOfBitstream: 37,
  FillerData: 38,
  PrefixSei: 39,
  SuffixSei: 40,
} as const;

export type VideoBitstreamCodec = 'avc' | 'hevc';

const START_CODE_3 = Buffer.from([0, 0, 1]);
const START_CODE_4 = Buffer.from([0, 0, 0, 1]);

/** nal_unit_type of an H.264 NAL unit (-1 for an empty buffer). */
export function avcNalType(nal: Buffer): number {
  return nal.length > 0 ? nal[0]! & 0x1f : -1;
}

/** nal_unit_type of an HEVC NAL unit (-1 for an empty buffer). */
export function hevcNalType(nal: Buffer): number {
  return nal.length > 0 ? (nal[0]! >> 1) & 0x3f : -1;
}

/**
 * Split an Annex B byte stream into NAL units (subarrays of `buf`, without start codes and trailing zero bytes).
 * Bytes before the first start code are ignored; empty NAL units are dropped.
 */
export function splitAnnexB(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let sc = buf.indexOf(START_CODE_3);
  if (sc < 0) return out;
  let start = sc + 3;
  for (;;) {
    sc = buf.indexOf(START_CODE_3, start);
    const end = sc < 0 ? buf.length : sc;
    let e = end;
    // A NAL unit never ends in 0x00 (rbsp_trailing_bits), so zeros here belong to a 4-byte start code or padding.
    while (e > start && buf[e - 1] === 0) e--;
    if (e > start) out.push(buf.subarray(start, e));
    if (sc < 0) return out;
    start = sc + 3;
  }
}

function checkLengthSize(lengthSize: number): void {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 3 && lengthSize !== 4) {
    throw new RangeError(`NAL length size must be 1, 2, 3 or 4, got ${lengthSize}`);
  }
}

/** Concatenate NAL units, each preceded by its big-endian length (`lengthSize` bytes, default 4). */
export function toLengthPrefixed(nals: readonly Buffer[], lengthSize = 4): Buffer {
  checkLengthSize(lengthSize);
  const max = 2 ** (8 * lengthSize) - 1;
  let total = 0;
  for (const n of nals) {
    if (n.length > max) throw new RangeError(`NAL unit of ${n.length} bytes does not fit a ${lengthSize}-byte length`);
    total += lengthSize + n.length;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const n of nals) {
    out.writeUIntBE(n.length, pos, lengthSize);
    pos += lengthSize;
    n.copy(out, pos);
    pos += n.length;
  }
  return out;
}

/** Split length-prefixed NAL units (subarrays of `buf`). Throws RtmpProtocolError('nalu_truncated') on overrun. */
export function splitLengthPrefixed(buf: Buffer, lengthSize = 4): Buffer[] {
  checkLengthSize(lengthSize);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + lengthSize > buf.length) {
      throw new RtmpProtocolError('nalu_truncated', `NAL length field cut short at offset ${pos}`);
    }
    const len = buf.readUIntBE(pos, lengthSize);
    pos += lengthSize;
    if (pos + len > buf.length) {
      throw new RtmpProtocolError('nalu_truncated', `NAL unit of ${len} bytes at offset ${pos} overruns ${buf.length}`);
    }
    out.push(buf.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

/** Join NAL units into an Annex B byte stream with 4-byte start codes. */
export function joinAnnexB(nals: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of nals) parts.push(START_CODE_4, n);
  return Buffer.concat(parts);
}

/** Length-prefixed NAL units (FLV/MP4 sample) to Annex B with 4-byte start codes. */
export function lengthPrefixedToAnnexB(buf: Buffer, lengthSize = 4): Buffer {
  return joinAnnexB(splitLengthPrefixed(buf, lengthSize));
}

/** NAL unit payload with emulation prevention bytes (00 00 03 -> 00 00) removed: the RBSP. */
export function nalToRbsp(nal: Buffer): Buffer {
  if (nal.indexOf(START_CODE_3.subarray(0, 2)) < 0) return nal;
  const out = Buffer.allocUnsafe(nal.length);
  let o = 0;
  let zeros = 0;
  for (let i = 0; i < nal.length; i++) {
    const b = nal[i]!;
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    zeros = b === 0 ? zeros + 1 : 0;
    out[o++] = b;
  }
  return out.subarray(0, o);
}

export interface AvcSpsInfo {
  profileIdc: number;
  /** constraint_set0..5 flags + reserved bits (the byte after profile_idc). */
  constraintFlags: number;
  levelIdc: number;
  spsId: number;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  /** Picture size after cropping. */
  width: number;
  height: number;
}

const AVC_HIGH_PROFILES: ReadonlySet<number> = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

function skipAvcScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Parse the fields of an H.264 SPS NAL unit (with its 1-byte NAL header) that configuration records need. */
export function parseAvcSps(sps: Buffer): AvcSpsInfo {
  if (avcNalType(sps) !== AvcNalType.Sps || sps.length < 4) {
    throw new RtmpProtocolError('bad_parameter_set', 'not an H.264 SPS NAL unit');
  }
  const r = new BitReader(nalToRbsp(sps.subarray(1)), 'H.264 SPS');
  const profileIdc = r.u(8);
  const constraintFlags = r.u(8);
  const levelIdc = r.u(8);
  const spsId = r.ue();
  let chromaFormatIdc = 1;
  let bitDepthLumaMinus8 = 0;
  let bitDepthChromaMinus8 = 0;
  let separateColourPlane = 0;
  if (AVC_HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ue();
    if (chromaFormatIdc === 3) separateColourPlane = r.u1();
    bitDepthLumaMinus8 = r.ue();
    bitDepthChromaMinus8 = r.ue();
    r.u1(); // qpprime_y_zero_transform_bypass_flag
    if (r.u1()) {
      // seq_scaling_matrix_present_flag
      const lists = chromaFormatIdc !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) if (r.u1()) skipAvcScalingList(r, i < 6 ? 16 : 64);
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue(); // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType === 1) {
    r.u1(); // delta_pic_order_always_zero_flag
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const n = r.ue();
    if (n > 255) throw new RtmpProtocolError('bad_parameter_set', 'H.264 SPS: too many ref frames in POC cycle');
    for (let i = 0; i < n; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.u1(); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.u1();
  if (!frameMbsOnly) r.u1(); // mb_adaptive_frame_field_flag
  r.u1(); // direct_8x8_inference_flag
  let cropLeft = 0;
  let cropRight = 0;
  let cropTop = 0;
  let cropBottom = 0;
  if (r.u1()) {
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  const arrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const cropUnitX = arrayType === 0 ? 1 : arrayType === 3 ? 1 : 2;
  const cropUnitY = (arrayType === 0 ? 1 : arrayType === 1 ? 2 : 1) * (2 - frameMbsOnly);
  return {
    profileIdc,
    constraintFlags,
    levelIdc,
    spsId,
    chromaFormatIdc,
    bitDepthLumaMinus8,
    bitDepthChromaMinus8,
    width: widthMbs * 16 - cropUnitX * (cropLeft + cropRight),
    height: (2 - frameMbsOnly) * heightMapUnits * 16 - cropUnitY * (cropTop + cropBottom),
  };
}

/** One NAL unit or a list; identical copies (encoders repeat parameter sets at every keyframe) are dropped. */
function asList(x: Buffer | readonly Buffer[]): readonly Buffer[] {
  if (Buffer.isBuffer(x)) return [x];
  const out: Buffer[] = [];
  for (const n of x) if (!out.some((o) => o.equals(n))) out.push(n);
  return out;
}

function u16Prefixed(nal: Buffer): Buffer[] {
  if (nal.length > 0xffff)
    throw new RangeError(`parameter set of ${nal.length} bytes is too large for a config record`);
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(nal.length, 0);
  return [len, nal];
}

/**
 * AVCDecoderConfigurationRecord (avcC) from SPS and PPS NAL units (without start codes), with 4-byte NAL lengths.
 * Duplicate parameter sets in the lists are written once.
 * Profile, compatibility and level come from the first SPS; for profiles other than Baseline/Main/Extended the
 * chroma format / bit depth extension is appended, as FFmpeg writes it.
 */
export function buildAvcDecoderConfig(
  sps: Buffer | readonly Buffer[],
  pps: Buffer | readonly Buffer[],
  opts: { lengthSize?: 1 | 2 | 4 } = {},
): Buffer {
  const spsList = asList(sps);
  const ppsList = asList(pps);
  const first = spsList[0];
  if (!first) throw new RangeError('avcC needs at least one SPS');
  if (ppsList.length === 0) throw new RangeError('avcC needs at least one PPS');
  if (spsList.length > 31 || ppsList.length > 255) throw new RangeError('too many parameter sets for avcC');
  const info = parseAvcSps(first);
  const lengthSize = opts.lengthSize ?? 4;
  const parts: Buffer[] = [
    Buffer.from([1, first[1]!, first[2]!, first[3]!, 0xfc | (lengthSize - 1), 0xe0 | spsList.length]),
  ];
  for (const s of spsList) parts.push(...u16Prefixed(s));
  parts.push(Buffer.from([ppsList.length]));
  for (const p of ppsList) parts.push(...u16Prefixed(p));
  if (info.profileIdc !== 66 && info.profileIdc !== 77 && info.profileIdc !== 88) {
    parts.push(
      Buffer.from([
        0xfc | info.chromaFormatIdc,
        0xf8 | info.bitDepthLumaMinus8,
        0xf8 | info.bitDepthChromaMinus8,
        0, // numOfSequenceParameterSetExt
      ]),
    );
  }
  return Buffer.concat(parts);
}

export interface AvcDecoderConfig {
  profileIdc: number;
  profileCompatibility: number;
  levelIdc: number;
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
}

/** Parse an avcC record (e.g. the body of an AVC sequence header after `17 00 00 00 00`). */
export function parseAvcDecoderConfig(buf: Buffer): AvcDecoderConfig {
  const bad = (what: string): never => {
    throw new RtmpProtocolError('bad_decoder_config', `avcC: ${what}`);
  };
  if (buf.length < 7) bad('too short');
  if (buf[0] !== 1) bad(`configurationVersion ${buf[0]}`);
  let pos = 5;
  const readSets = (count: number): Buffer[] => {
    const sets: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (pos + 2 > buf.length) bad('parameter set length cut short');
      const len = buf.readUInt16BE(pos);
      pos += 2;
      if (pos + len > buf.length) bad('parameter set overruns the record');
      sets.push(buf.subarray(pos, pos + len));
      pos += len;
    }
    return sets;
  };
  const sps = readSets(buf[pos++]! & 0x1f);
  if (pos >= buf.length) bad('missing PPS count');
  const pps = readSets(buf[pos++]!);
  return {
    profileIdc: buf[1]!,
    profileCompatibility: buf[2]!,
    levelIdc: buf[3]!,
    lengthSize: (buf[4]! & 3) + 1,
    sps,
    pps,
  };
}

export interface HevcSpsInfo {
  spsId: number;
  vpsId: number;
  maxSubLayersMinus1: number;
  temporalIdNestingFlag: number;
  generalProfileSpace: number;
  generalTierFlag: number;
  generalProfileIdc: number;
  /** general_profile_compatibility_flags, 32 bits (unsigned). */
  generalProfileCompatibilityFlags: number;
  /** general_constraint_indicator_flags, 48 bits as 6 bytes. */
  generalConstraintIndicatorFlags: Buffer;
  generalLevelIdc: number;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  /** Picture size after the conformance window. */
  width: number;
  height: number;
}

/** Parse the fields of an HEVC SPS NAL unit (with its 2-byte NAL header) that configuration records need. */
export function parseHevcSps(sps: Buffer): HevcSpsInfo {
  if (hevcNalType(sps) !== HevcNalType.Sps || sps.length < 3) {
    throw new RtmpProtocolError('bad_parameter_set', 'not an HEVC SPS NAL unit');
  }
  const rbsp = nalToRbsp(sps.subarray(2));
  if (rbsp.length < 14) throw new RtmpProtocolError('bad_parameter_set', 'HEVC SPS too short');
  const r = new BitReader(rbsp, 'HEVC SPS');
  const vpsId = r.u(4);
  const maxSubLayersMinus1 = r.u(3);
  const temporalIdNestingFlag = r.u1();
  // profile_tier_level(1, maxSubLayersMinus1): the general part is byte-aligned at RBSP bytes 1..12.
  const generalProfileSpace = r.u(2);
  const generalTierFlag = r.u1();
  const generalProfileIdc = r.u(5);
  const generalProfileCompatibilityFlags = r.u(32);
  const generalConstraintIndicatorFlags = Buffer.from(rbsp.subarray(6, 12));
  r.skip(48);
  const generalLevelIdc = r.u(8);
  const profilePresent: number[] = [];
  const levelPresent: number[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    profilePresent.push(r.u1());
    levelPresent.push(r.u1());
  }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.skip(2);
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profilePresent[i]) r.skip(88);
    if (levelPresent[i]) r.skip(8);
  }
  const spsId = r.ue();
  const chromaFormatIdc = r.ue();
  let separateColourPlane = 0;
  if (chromaFormatIdc === 3) separateColourPlane = r.u1();
  const picWidth = r.ue();
  const picHeight = r.ue();
  let confLeft = 0;
  let confRight = 0;
  let confTop = 0;
  let confBottom = 0;
  if (r.u1()) {
    confLeft = r.ue();
    confRight = r.ue();
    confTop = r.ue();
    confBottom = r.ue();
  }
  const bitDepthLumaMinus8 = r.ue();
  const bitDepthChromaMinus8 = r.ue();
  const arrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = arrayType === 1 || arrayType === 2 ? 2 : 1;
  const subHeightC = arrayType === 1 ? 2 : 1;
  return {
    spsId,
    vpsId,
    maxSubLayersMinus1,
    temporalIdNestingFlag,
    generalProfileSpace,
    generalTierFlag,
    generalProfileIdc,
    generalProfileCompatibilityFlags,
    generalConstraintIndicatorFlags,
    generalLevelIdc,
    chromaFormatIdc,
    bitDepthLumaMinus8,
    bitDepthChromaMinus8,
    width: picWidth - subWidthC * (confLeft + confRight),
    height: picHeight - subHeightC * (confTop + confBottom),
  };
}

export interface HevcDecoderConfigOptions {
  /** NAL length size announced (lengthSizeMinusOne + 1); default 4. */
  lengthSize?: 1 | 2 | 4;
  /**
   * array_completeness for the VPS/SPS/PPS arrays. Default false, as FFmpeg writes it (in-band parameter sets
   * allowed); set true to promise that all parameter sets are in the record.
   */
  arrayCompleteness?: boolean;
  /** Extra prefix SEI NAL units to carry in the record (e.g. HDR metadata). */
  sei?: readonly Buffer[];
}

/**
 * HEVCDecoderConfigurationRecord (hvcC) from VPS, SPS and PPS NAL units (without start codes); duplicates are
 * written once.
 * general_profile_space, tier, profile, compatibility flags, constraint flags, level, chroma format, bit depths,
 * numTemporalLayers and temporalIdNested come from the first SPS. min_spatial_segmentation_idc, parallelismType,
 * avgFrameRate and constantFrameRate are written as 0 ("unknown"), which the format allows.
 */
export function buildHevcDecoderConfig(
  vps: Buffer | readonly Buffer[],
  sps: Buffer | readonly Buffer[],
  pps: Buffer | readonly Buffer[],
  opts: HevcDecoderConfigOptions = {},
): Buffer {
  const spsList = asList(sps);
  const first = spsList[0];
  if (!first) throw new RangeError('hvcC needs at least one SPS');
  const info = parseHevcSps(first);
  const lengthSize = opts.lengthSize ?? 4;
  const complete = opts.arrayCompleteness ? 0x80 : 0;
  const arrays: { type: number; nals: readonly Buffer[]; completeness: number }[] = [
    { type: HevcNalType.Vps, nals: asList(vps), completeness: complete },
    { type: HevcNalType.Sps, nals: spsList, completeness: complete },
    { type: HevcNalType.Pps, nals: asList(pps), completeness: complete },
  ];
  if (opts.sei && opts.sei.length > 0) arrays.push({ type: HevcNalType.PrefixSei, nals: opts.sei, completeness: 0 });
  const nonEmpty = arrays.filter((a) => a.nals.length > 0);

  const head = Buffer.alloc(23);
  head[0] = 1; // configurationVersion
  head[1] = (info.generalProfileSpace << 6) | (info.generalTierFlag << 5) | info.generalProfileIdc;
  head.writeUInt32BE(info.generalProfileCompatibilityFlags >>> 0, 2);
  info.generalConstraintIndicatorFlags.copy(head, 6);
  head[12] = info.generalLevelIdc;
  head.writeUInt16BE(0xf000 | 0, 13); // reserved 1111 + min_spatial_segmentation_idc
  head[15] = 0xfc | 0; // reserved 111111 + parallelismType
  head[16] = 0xfc | info.chromaFormatIdc;
  head[17] = 0xf8 | info.bitDepthLumaMinus8;
  head[18] = 0xf8 | info.bitDepthChromaMinus8;
  head.writeUInt16BE(0, 19); // avgFrameRate
  head[21] =
    (0 << 6) | // constantFrameRate
    ((info.maxSubLayersMinus1 + 1) << 3) | // numTemporalLayers
    (info.temporalIdNestingFlag << 2) |
    (lengthSize - 1);
  head[22] = nonEmpty.length;
  const parts: Buffer[] = [head];
  for (const a of nonEmpty) {
    if (a.nals.length > 0xffff) throw new RangeError('too many NAL units in an hvcC array');
    const h = Buffer.allocUnsafe(3);
    h[0] = a.completeness | a.type;
    h.writeUInt16BE(a.nals.length, 1);
    parts.push(h);
    for (const n of a.nals) parts.push(...u16Prefixed(n));
  }
  return Buffer.concat(parts);
}

export interface HevcDecoderConfig {
  generalProfileSpace: number;
  generalTierFlag: number;
  generalProfileIdc: number;
  generalProfileCompatibilityFlags: number;
  generalConstraintIndicatorFlags: Buffer;
  generalLevelIdc: number;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  numTemporalLayers: number;
  temporalIdNested: number;
  lengthSize: number;
  arrays: { arrayCompleteness: boolean; nalUnitType: number; nalus: Buffer[] }[];
}

/** Parse an hvcC record (e.g. the body of an E-RTMP `hvc1` SequenceStart). */
export function parseHevcDecoderConfig(buf: Buffer): HevcDecoderConfig {
  const bad = (what: string): never => {
    throw new RtmpProtocolError('bad_decoder_config', `hvcC: ${what}`);
  };
  if (buf.length < 23) bad('too short');
  if (buf[0] !== 1) bad(`configurationVersion ${buf[0]}`);
  const arrays: HevcDecoderConfig['arrays'] = [];
  let pos = 23;
  const numArrays = buf[22]!;
  for (let i = 0; i < numArrays; i++) {
    if (pos + 3 > buf.length) bad('array header cut short');
    const b = buf[pos]!;
    const count = buf.readUInt16BE(pos + 1);
    pos += 3;
    const nalus: Buffer[] = [];
    for (let j = 0; j < count; j++) {
      if (pos + 2 > buf.length) bad('NAL unit length cut short');
      const len = buf.readUInt16BE(pos);
      pos += 2;
      if (pos + len > buf.length) bad('NAL unit overruns the record');
      nalus.push(buf.subarray(pos, pos + len));
      pos += len;
    }
    arrays.push({ arrayCompleteness: (b & 0x80) !== 0, nalUnitType: b & 0x3f, nalus });
  }
  return {
    generalProfileSpace: buf[1]! >> 6,
    generalTierFlag: (buf[1]! >> 5) & 1,
    generalProfileIdc: buf[1]! & 0x1f,
    generalProfileCompatibilityFlags: buf.readUInt32BE(2),
    generalConstraintIndicatorFlags: buf.subarray(6, 12),
    generalLevelIdc: buf[12]!,
    chromaFormatIdc: buf[16]! & 3,
    bitDepthLumaMinus8: buf[17]! & 7,
    bitDepthChromaMinus8: buf[18]! & 7,
    numTemporalLayers: (buf[21]! >> 3) & 7,
    temporalIdNested: (buf[21]! >> 2) & 1,
    lengthSize: (buf[21]! & 3) + 1,
    arrays,
  };
}

function isVcl(nal: Buffer, codec: VideoBitstreamCodec): boolean {
  if (codec === 'avc') {
    const t = avcNalType(nal);
    return t >= 1 && t <= 5;
  }
  const t = hevcNalType(nal);
  return t >= 0 && t <= 31;
}

/** True if a VCL NAL unit is the first slice of a picture (first_mb_in_slice == 0 / first_slice_segment_in_pic_flag). */
function isFirstSlice(nal: Buffer, codec: VideoBitstreamCodec): boolean {
  if (codec === 'avc') return nal.length > 1 && (nal[1]! & 0x80) !== 0; // ue(v) '1' == 0
  return nal.length > 2 && (nal[2]! & 0x80) !== 0;
}

/** Non-VCL NAL units that may only start an access unit (they never follow the VCL NAL units of one). */
function startsAccessUnit(nal: Buffer, codec: VideoBitstreamCodec): boolean {
  if (codec === 'avc') {
    const t = avcNalType(nal);
    return t === 6 || t === 7 || t === 8 || t === 9 || (t >= 14 && t <= 18);
  }
  const t = hevcNalType(nal);
  return (t >= 32 && t <= 35) || t === 39 || (t >= 41 && t <= 44) || (t >= 48 && t <= 55);
}

/** Group a sequence of NAL units into access units (pictures), per H.264 7.4.1.2.3 / H.265 7.4.2.4.4. */
export function groupAccessUnits(nals: readonly Buffer[], codec: VideoBitstreamCodec): Buffer[][] {
  const out: Buffer[][] = [];
  let current: Buffer[] = [];
  let hasVcl = false;
  for (const nal of nals) {
    const vcl = isVcl(nal, codec);
    if (hasVcl && ((vcl && isFirstSlice(nal, codec)) || (!vcl && startsAccessUnit(nal, codec)))) {
      out.push(current);
      current = [];
      hasVcl = false;
    }
    current.push(nal);
    if (vcl) hasVcl = true;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** True if the NAL unit is a random access point picture: H.264 IDR slice, HEVC IRAP (types 16..23). */
export function isKeyframeNal(nal: Buffer, codec: VideoBitstreamCodec): boolean {
  if (codec === 'avc') return avcNalType(nal) === AvcNalType.IdrSlice;
  const t = hevcNalType(nal);
  return t >= 16 && t <= 23;
}

/** True for parameter sets (H.264 SPS/PPS/SPS extension, HEVC VPS/SPS/PPS), which belong in the config record. */
export function isParameterSetNal(nal: Buffer, codec: VideoBitstreamCodec): boolean {
  if (codec === 'avc') {
    const t = avcNalType(nal);
    return t === AvcNalType.Sps || t === AvcNalType.Pps || t === AvcNalType.SpsExtension;
  }
  const t = hevcNalType(nal);
  return t === HevcNalType.Vps || t === HevcNalType.Sps || t === HevcNalType.Pps;
}
