/** RTMP wire constants (Adobe RTMP 1.0 spec section numbers in comments). */

export const RTMP_VERSION = 3; // C0/S0 version byte (5.2.2)
export const HANDSHAKE_SIZE = 1536; // C1/S1/C2/S2 length (5.2.3)

export const DEFAULT_CHUNK_SIZE = 128; // both directions until Set Chunk Size (5.4.1)
export const MAX_CHUNK_SIZE = 0xffffff; // larger values are equivalent to this; clamp, never allocate by it
export const EXTENDED_TIMESTAMP_MARKER = 0xffffff; // 24-bit field value that announces a 4-byte extension

/** Chunk stream ids (5.3.1.1). 0 and 1 are escape values in the basic header. */
export const CSID_PROTOCOL_CONTROL = 2;
export const CSID_COMMAND = 3;
export const CSID_AUDIO = 4;
export const CSID_DATA = 5;
export const CSID_VIDEO = 6;
export const CSID_MIN = 2;
export const CSID_MAX = 65599;

/** Chunk message header formats (5.3.1.2); fmt 1 (same stream id) needs no name: it is handled as "not 0, 2 or 3". */
export const CHUNK_FMT_FULL = 0;
export const CHUNK_FMT_DELTA_ONLY = 2;
export const CHUNK_FMT_CONTINUATION = 3;

/** Message type ids (5.4, 7.1). */
export const MessageType = {
  SetChunkSize: 1,
  Abort: 2,
  Acknowledgement: 3,
  UserControl: 4,
  WindowAckSize: 5,
  SetPeerBandwidth: 6,
  Audio: 8,
  Video: 9,
  DataAmf3: 15,
  SharedObjectAmf3: 16,
  CommandAmf3: 17,
  DataAmf0: 18,
  SharedObjectAmf0: 19,
  CommandAmf0: 20,
  Aggregate: 22,
} as const;

/** User control event types (6.2, 7.1.7). */
export const UserControlEvent = {
  StreamBegin: 0,
  StreamEOF: 1,
  StreamDry: 2,
  SetBufferLength: 3,
  StreamIsRecorded: 4,
  PingRequest: 6,
  PingResponse: 7,
} as const;

/** Set Peer Bandwidth limit types (5.4.5). */
export const PeerBandwidthLimit = { Hard: 0, Soft: 1, Dynamic: 2 } as const;

/** Window size we announce and assume for peers that announce none (what FFmpeg and librtmp use). */
export const DEFAULT_WINDOW_ACK_SIZE = 2_500_000;

/** Message stream 0 carries NetConnection traffic; NetStreams start at 1 (GStreamer ends only on StreamEOF(1)). */
export const NETCONNECTION_STREAM_ID = 0;
export const FIRST_NETSTREAM_ID = 1;
