// The public API of @rtmp-relay/rtmp: what libs/hub, services/server and loadtest use, plus the option, event and
// result types of those functions and classes. Everything else is internal to the package (its own tests import the
// modules directly). Add a name here when another package needs it; keep this list the only way in.

// AMF values and codecs
export {
  AmfEcmaArray,
  AmfTypedObject,
  DEFAULT_AMF_LIMITS,
  amfProperties,
  isAmfObject,
  type Amf3Value,
  type AmfDictionary,
  type AmfLimits,
  type AmfObject,
  type AmfValue,
} from './amf.js';
export { decodeAmf0, decodeAmf3MessagePayload, encodeAmf0 } from './amf0.js';

// Chunk streams and messages
export {
  ChunkReader,
  DEFAULT_CHUNK_READER_LIMITS,
  DEFAULT_MESSAGE_SIZE_LIMITS,
  maxMessageSizeBy,
  type ChunkReaderLimits,
  type MessageSizeLimits,
} from './chunk-reader.js';
export { encodeMessageChunks, payloadFromMessageChunks } from './chunk-writer.js';
export { TimestampUnwrapper, timestampDelta, type RtmpMessage } from './message.js';
export { splitAggregate } from './aggregate.js';
export {
  DEFAULT_WINDOW_ACK_SIZE,
  FIRST_NETSTREAM_ID,
  MessageType,
  PeerBandwidthLimit,
  UserControlEvent,
} from './constants.js';
export {
  acknowledgement,
  parseUserControl,
  pingRequest,
  pingResponse,
  setBufferLength,
  setChunkSize,
  setPeerBandwidth,
  streamBegin,
  streamEof,
  windowAckSize,
  type UserControlEventData,
} from './control.js';
export { RtmpClientError, RtmpProtocolError, type RtmpClientErrorCode } from './errors.js';

// Handshake, connections, commands, the client
export { ClientHandshake, type HandshakeMode } from './handshake.js';
export { RtmpConnection, type ConnectionEvents, type ConnectionLimits, type RtmpCommand } from './connection.js';
export {
  CapsEx,
  Command,
  Status,
  connectResult,
  parseConnect,
  splitStreamName,
  statusInfo,
  type ConnectInfo,
  type StatusLevel,
} from './commands.js';
export {
  RtmpClient,
  parseRtmpUrl,
  type ClientEvents,
  type RtmpClientOptions,
  type RtmpTlsOptions,
  type RtmpUrl,
} from './client.js';

// Media: FLV, legacy and Enhanced RTMP tags, Annex B / decoder configurations, codec details
export {
  AudioFourCc,
  AudioPacketType,
  AvcPacketType,
  SoundFormat,
  VideoCodecId,
  VideoFourCc,
  VideoFrameType,
  VideoPacketType,
  parseAudioTag,
  parseVideoTag,
  type AudioInfo,
  type MediaTrack,
  type ParseVideoOptions,
  type VideoInfo,
} from './media.js';
export {
  FLV_PREVIOUS_TAG_SIZE_SIZE,
  FLV_TAG_HEADER_SIZE,
  FlvReader,
  FlvTagType,
  encodeFlvHeader,
  encodeFlvTag,
  readFlvFile,
  type FlvHeader,
  type FlvReaderOptions,
  type FlvTag,
} from './flv.js';
export { audioCodecInfo, videoCodecInfo, type AudioCodecInfo, type VideoCodecInfo } from './codec-info.js';
