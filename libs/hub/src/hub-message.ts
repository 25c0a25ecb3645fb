import {
  MessageType,
  encodeFlvTag,
  encodeMessageChunks,
  parseAudioTag,
  parseVideoTag,
  payloadFromMessageChunks,
} from '@rtmp-relay/rtmp';

/** Chunk stream ids the hub writes media on. Every message starts with a type-0 header, so they never interfere. */
export const CSID_HUB_AUDIO = 4;
export const CSID_HUB_DATA = 5;
export const CSID_HUB_VIDEO = 6;
/** The stream id nearly every player gets from its first createStream: messages are pre-chunked for it. */
export const PRIMARY_STREAM_ID = 1;

export type MediaKind = 'audio' | 'video' | 'data';

/**
 * A message on the hub timeline, classified once and serialized once. `chunks` is shared by every viewer that
 * plays on PRIMARY_STREAM_ID with the hub's chunk size; other stream ids get a lazily built variant, also shared.
 *
 * A media frame keeps only its chunks (a GOP cache holds one copy of each frame, not the payload beside it): the
 * payload is rebuilt from them by payloadOf() for the forms built later (FLV tag, other stream ids). Headers and
 * data keep their payload: they are compared with every resend and re-stamped for joins.
 */
export interface HubMessage {
  readonly kind: MediaKind;
  readonly type: number;
  /** Hub timeline, uint32. */
  readonly timestamp: number;
  readonly payloadLength: number;
  /** The payload, for headers and data only (see above); use payloadOf(). */
  readonly keptPayload: Buffer | undefined;
  readonly isKeyframe: boolean;
  readonly isSequenceHeader: boolean;
  /**
   * Cache slot of a header message: codec + packet type (+ tracks), so an AV1 SequenceStart and its colorInfo
   * Metadata, or Opus's SequenceStart and MultichannelConfig, are kept side by side for late joiners.
   */
  readonly headerKey: string | undefined;
  /** A new decoder configuration (not just metadata): frames cached before it can't be decoded with it. */
  readonly resetsDecoder: boolean;
  /** Set for Enhanced RTMP (ExHeader) frames: only viewers that negotiated this FourCC receive them. */
  readonly fourCc: string | undefined;
  /** Re-pointed (same bytes) by the join burst when it copies the message into its arena. */
  chunks: Buffer;
  /** The chunk size `chunks` was cut with. */
  readonly chunkSize: number;
  variants: Map<number, Buffer> | undefined;
  /** The message as one FLV tag (header + data + PreviousTagSize), built on first use, shared by FLV viewers. */
  flvTag: Buffer | undefined;
}

function csidFor(kind: MediaKind): number {
  return kind === 'audio' ? CSID_HUB_AUDIO : kind === 'video' ? CSID_HUB_VIDEO : CSID_HUB_DATA;
}

export function kindOf(type: number): MediaKind | undefined {
  if (type === MessageType.Audio) return 'audio';
  if (type === MessageType.Video) return 'video';
  if (type === MessageType.DataAmf0 || type === MessageType.DataAmf3) return 'data';
  return undefined;
}

/** Classifies and serializes a message; a media frame keeps only the serialized form (see HubMessage). */
export function createHubMessage(
  kind: MediaKind,
  type: number,
  timestamp: number,
  payload: Buffer,
  chunkSize: number,
): HubMessage {
  let isKeyframe = false;
  let isSequenceHeader = false;
  let resetsDecoder = false;
  let fourCc: string | undefined;
  let headerKey: string | undefined;
  if (kind === 'video' && payload.length > 0) {
    const info = parseVideoTag(payload);
    isKeyframe = info.isKeyframe;
    isSequenceHeader = info.isSequenceHeader || info.isMetadata;
    resetsDecoder = info.isSequenceHeader;
    if (info.exHeader) fourCc = info.fourCc;
    if (isSequenceHeader) headerKey = headerSlot(info.exHeader, info.fourCc, info.packetType, info.tracks);
  } else if (kind === 'audio' && payload.length > 0) {
    const info = parseAudioTag(payload);
    isSequenceHeader = info.isSequenceHeader;
    if (info.exHeader) fourCc = info.fourCc;
    if (isSequenceHeader) headerKey = headerSlot(info.exHeader, info.fourCc, info.packetType, info.tracks);
  }
  const chunks = encodeMessageChunks(
    { type, streamId: PRIMARY_STREAM_ID, timestamp, payload },
    csidFor(kind),
    chunkSize,
  );
  const isFrame = kind !== 'data' && !isSequenceHeader;
  return {
    kind,
    type,
    timestamp,
    payloadLength: payload.length,
    keptPayload: isFrame ? undefined : payload,
    isKeyframe,
    isSequenceHeader,
    headerKey,
    resetsDecoder,
    fourCc,
    chunks,
    chunkSize,
    variants: undefined,
    flvTag: undefined,
  };
}

function headerSlot(
  exHeader: boolean,
  fourCc: string | undefined,
  packetType: number | undefined,
  tracks: ReadonlyArray<{ trackId: number }> | undefined,
): string {
  if (!exHeader) return 'legacy';
  const trackIds = tracks?.map((t) => t.trackId).join(',') ?? '';
  return `${fourCc ?? '?'}:${packetType ?? '?'}:${trackIds}`;
}

/** The message's payload: kept (headers, data) or copied out of its chunks (media frames; FLV and variants only). */
export function payloadOf(m: HubMessage): Buffer {
  return m.keptPayload ?? payloadFromMessageChunks(m.chunks, m.chunkSize);
}

/** The message chunked for a viewer playing on `streamId` (shared among all such viewers). */
export function chunksFor(m: HubMessage, streamId: number, chunkSize: number): Buffer {
  if (streamId === PRIMARY_STREAM_ID) return m.chunks;
  let variant = m.variants?.get(streamId);
  if (!variant) {
    variant = encodeMessageChunks(
      { type: m.type, streamId, timestamp: m.timestamp, payload: payloadOf(m) },
      csidFor(m.kind),
      chunkSize,
    );
    (m.variants ??= new Map()).set(streamId, variant);
  }
  return variant;
}

/** The message as an FLV tag, shared by every HTTP-FLV / WebSocket-FLV viewer. */
export function flvTagFor(m: HubMessage): Buffer {
  return (m.flvTag ??= encodeFlvTag({
    type: m.type === MessageType.DataAmf3 ? MessageType.DataAmf0 : m.type,
    timestamp: m.timestamp,
    data: payloadOf(m),
  }));
}
