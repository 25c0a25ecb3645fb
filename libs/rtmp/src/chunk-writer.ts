import {
  CHUNK_FMT_CONTINUATION,
  CHUNK_FMT_FULL,
  CSID_MAX,
  CSID_MIN,
  DEFAULT_CHUNK_SIZE,
  EXTENDED_TIMESTAMP_MARKER,
  MAX_CHUNK_SIZE,
} from './constants.js';
import type { RtmpMessage } from './message.js';

const ONE_BYTE_CSID_MAX = 63;
const TWO_BYTE_CSID_MAX = 319;
const CSID_OFFSET = 64;
const FMT0_HEADER_SIZE = 11;
const EXTENDED_TIMESTAMP_SIZE = 4;

function basicHeaderSize(csid: number): number {
  if (csid <= ONE_BYTE_CSID_MAX) return 1;
  return csid <= TWO_BYTE_CSID_MAX ? 2 : 3;
}

function writeBasicHeader(out: Buffer, offset: number, fmt: number, csid: number): number {
  if (csid <= ONE_BYTE_CSID_MAX) {
    out[offset] = (fmt << 6) | csid;
    return offset + 1;
  }
  const rest = csid - CSID_OFFSET;
  if (csid <= TWO_BYTE_CSID_MAX) {
    out[offset] = fmt << 6; // csid6 = 0: one more byte
    out[offset + 1] = rest;
    return offset + 2;
  }
  out[offset] = (fmt << 6) | 1; // csid6 = 1: two more bytes, low byte first
  out[offset + 1] = rest & 0xff;
  out[offset + 2] = rest >>> 8;
  return offset + 3;
}

/** Total encoded size of a message in chunks of `chunkSize` on `csid` with a type-0 first header. */
export function encodedMessageSize(payloadLength: number, timestamp: number, csid: number, chunkSize: number): number {
  const basic = basicHeaderSize(csid);
  const ext = timestamp >= EXTENDED_TIMESTAMP_MARKER ? EXTENDED_TIMESTAMP_SIZE : 0;
  const chunks = Math.max(1, Math.ceil(payloadLength / chunkSize));
  return payloadLength + basic + FMT0_HEADER_SIZE + ext + (chunks - 1) * (basic + ext);
}

/**
 * Serializes one message into chunks: a self-contained type-0 header, then type-3 continuations that repeat the
 * extended timestamp (what FFmpeg and librtmp always read). Because nothing depends on the previous message on
 * the chunk stream, the returned Buffer is valid for any receiver that uses the same chunk size: this is what lets
 * the hub serialize a message once and write the same bytes to every viewer.
 */
export function encodeMessageChunks(msg: RtmpMessage, csid: number, chunkSize: number): Buffer {
  if (csid < CSID_MIN || csid > CSID_MAX) throw new RangeError(`chunk stream id ${csid} out of range`);
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw new RangeError(`chunk size ${chunkSize} out of range`);
  const { payload } = msg;
  const timestamp = msg.timestamp >>> 0;
  const extended = timestamp >= EXTENDED_TIMESTAMP_MARKER;
  const out = Buffer.allocUnsafe(encodedMessageSize(payload.length, timestamp, csid, chunkSize));

  let o = writeBasicHeader(out, 0, CHUNK_FMT_FULL, csid);
  out.writeUIntBE(extended ? EXTENDED_TIMESTAMP_MARKER : timestamp, o, 3);
  out.writeUIntBE(payload.length, o + 3, 3);
  out[o + 6] = msg.type;
  out.writeUInt32LE(msg.streamId >>> 0, o + 7); // message stream id is little-endian on the wire
  o += FMT0_HEADER_SIZE;
  if (extended) o = out.writeUInt32BE(timestamp, o);

  let p = Math.min(chunkSize, payload.length);
  o += payload.copy(out, o, 0, p);
  while (p < payload.length) {
    o = writeBasicHeader(out, o, CHUNK_FMT_CONTINUATION, csid);
    if (extended) o = out.writeUInt32BE(timestamp, o);
    const n = Math.min(chunkSize, payload.length - p);
    o += payload.copy(out, o, p, p + n);
    p += n;
  }
  return out;
}

/** Basic header size of the chunk starting at `chunk[0]` (the csid's form is in its low six bits). */
function basicHeaderSizeAt(chunk: Buffer): number {
  const csid6 = chunk[0]! & 0x3f;
  return csid6 === 0 ? 2 : csid6 === 1 ? 3 : 1;
}

/**
 * The payload of a message serialized by encodeMessageChunks with `chunkSize`, copied out of its chunks (the
 * inverse, for holders that keep only the chunked form). Not a general chunk parser: it trusts the layout.
 */
export function payloadFromMessageChunks(chunks: Buffer, chunkSize: number): Buffer {
  const basic = basicHeaderSizeAt(chunks);
  const length = chunks.readUIntBE(basic + 3, 3);
  const extended = chunks.readUIntBE(basic, 3) === EXTENDED_TIMESTAMP_MARKER;
  const continuationHeader = basic + (extended ? EXTENDED_TIMESTAMP_SIZE : 0);
  const payload = Buffer.allocUnsafe(length);
  let o = basic + FMT0_HEADER_SIZE + (extended ? EXTENDED_TIMESTAMP_SIZE : 0);
  let p = 0;
  while (p < length) {
    if (p > 0) o += continuationHeader;
    const n = Math.min(chunkSize, length - p);
    chunks.copy(payload, p, o, o + n);
    o += n;
    p += n;
  }
  return payload;
}

/** Per-connection outgoing chunk state: just the chunk size, since every message starts with a type-0 header. */
export class ChunkWriter {
  private size = DEFAULT_CHUNK_SIZE;

  get chunkSize(): number {
    return this.size;
  }

  /** Call right after queueing a Set Chunk Size message: it applies from the next chunk on. */
  setChunkSize(size: number): void {
    if (size < 1 || size > MAX_CHUNK_SIZE) throw new RangeError(`chunk size ${size} out of range`);
    this.size = size;
  }

  encode(msg: RtmpMessage, csid: number): Buffer {
    return encodeMessageChunks(msg, csid, this.size);
  }
}
