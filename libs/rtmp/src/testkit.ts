/**
 * `@rtmp-relay/rtmp/testkit`: H.264/HEVC bitstream helpers that tests and tools use to build and check streams
 * (Annex B <-> length-prefixed NAL units, hvcC records, access units). Not part of the relay's API: the media path
 * never looks inside NAL units, and only the stream stats read decoder configurations (codec-info.ts).
 */
export {
  HevcNalType,
  buildHevcDecoderConfig,
  groupAccessUnits,
  hevcNalType,
  isKeyframeNal,
  isParameterSetNal,
  joinAnnexB,
  lengthPrefixedToAnnexB,
  parseHevcDecoderConfig,
  splitAnnexB,
  toLengthPrefixed,
} from './annexb.js';
