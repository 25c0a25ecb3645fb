/**
 * A header-only RTMP chunk stream walker for cheap load-test viewers.
 *
 * The library's ChunkReader keeps every payload slice and concatenates whole messages: right for a server, too much
 * work when one process plays 2000 viewers of a 2.5 Mbit/s stream. This walker parses chunk headers (all four
 * formats, extended timestamps, Set Chunk Size) and, for audio and video, only counts payload bytes and keeps the
 * first few bytes of each message (enough to tell keyframes and sequence headers apart). Other messages (commands,
 * protocol control, data) are small and are assembled whole, so the viewer can answer pings and read onStatus.
 *
 * It never retains the input buffer: the caller may reuse it (net.Socket `onread` with one shared buffer).
 */

const FMT_FULL = 0;
const FMT_SAME_STREAM = 1;
const FMT_DELTA = 2;
const MESSAGE_HEADER_SIZE = [11, 7, 3, 0] as const;
const EXTENDED_MARKER = 0xffffff;
const DEFAULT_CHUNK_SIZE = 128;
const MAX_CHUNK_SIZE = 0xffffff;
/** Largest basic + message header + extended timestamp. */
const MAX_HEADER = 3 + 11 + 4;
const TYPE_SET_CHUNK_SIZE = 1;
const TYPE_AUDIO = 8;
const TYPE_VIDEO = 9;

export const MEDIA_HEAD_BYTES = 16;

export class ChunkWalkerError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'ChunkWalkerError';
  }
}

export interface ChunkWalkerLimits {
  maxChunkStreams: number;
  /** Largest non-media message assembled (commands, control, metadata). */
  maxControlMessage: number;
}

interface Cs {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  extendedValue: number;
  /** Bytes of the current message received so far (0 = between messages). */
  received: number;
  /** Whole payload for non-media messages. */
  body: Buffer | undefined;
  /** First bytes of a media message. */
  head: Buffer;
}

export interface ChunkWalkerHandler {
  /** An audio or video message is complete: `head` holds its first min(length, MEDIA_HEAD_BYTES) bytes (reused). */
  media(type: number, timestamp: number, streamId: number, length: number, head: Buffer): void;
  /** Any other message, assembled (the buffer is the handler's to keep). */
  message(type: number, timestamp: number, streamId: number, payload: Buffer): void;
}

export class ChunkWalker {
  /** Audio + video payload bytes seen (counted as they arrive, not when messages complete). */
  mediaBytes = 0;
  /** Every byte pushed. */
  totalBytes = 0;
  private chunkSize = DEFAULT_CHUNK_SIZE;
  private readonly streams = new Map<number, Cs>();
  private current: Cs | undefined;
  private chunkRemaining = 0;
  /** Bytes of an incomplete chunk header carried over from the previous push (copied, at most MAX_HEADER). */
  private pending: Buffer | undefined;
  private readonly scratch = Buffer.allocUnsafe(MAX_HEADER * 2);
  private readonly limits: ChunkWalkerLimits;

  constructor(
    private readonly handler: ChunkWalkerHandler,
    limits: Partial<ChunkWalkerLimits> = {},
  ) {
    this.limits = { maxChunkStreams: 64, maxControlMessage: 1024 * 1024, ...limits };
  }

  get incomingChunkSize(): number {
    return this.chunkSize;
  }

  push(buf: Buffer, start = 0, end = buf.length): void {
    this.totalBytes += end - start;
    let o = start;
    if (this.pending) {
      // Complete the carried-over header with a few bytes of the new input, in a scratch buffer.
      const have = this.pending.length;
      const take = Math.min(MAX_HEADER, end - o);
      this.pending.copy(this.scratch, 0);
      buf.copy(this.scratch, have, o, o + take);
      const next = this.parseHeader(this.scratch, 0, have + take);
      if (next < 0) {
        this.pending = Buffer.from(this.scratch.subarray(0, have + take));
        return;
      }
      this.pending = undefined;
      o += next - have;
    }
    while (o < end) {
      const cs = this.current;
      if (cs) {
        const n = Math.min(this.chunkRemaining, end - o);
        this.consume(cs, buf, o, n);
        o += n;
        this.chunkRemaining -= n;
        if (this.chunkRemaining === 0) {
          this.current = undefined;
          if (cs.received === cs.length) this.complete(cs);
        }
        continue;
      }
      const next = this.parseHeader(buf, o, end);
      if (next < 0) {
        this.pending = Buffer.from(buf.subarray(o, end));
        return;
      }
      o = next;
    }
  }

  private consume(cs: Cs, buf: Buffer, o: number, n: number): void {
    const at = cs.received;
    cs.received += n;
    if (cs.type === TYPE_AUDIO || cs.type === TYPE_VIDEO) {
      this.mediaBytes += n;
      if (at < MEDIA_HEAD_BYTES) buf.copy(cs.head, at, o, o + Math.min(n, MEDIA_HEAD_BYTES - at));
    } else {
      buf.copy(cs.body!, at, o, o + n);
    }
  }

  private complete(cs: Cs): void {
    const { type, timestamp, streamId, length } = cs;
    cs.received = 0;
    if (type === TYPE_AUDIO || type === TYPE_VIDEO) {
      this.handler.media(type, timestamp, streamId, length, cs.head);
      return;
    }
    const body = cs.body!;
    cs.body = undefined;
    if (type === TYPE_SET_CHUNK_SIZE) {
      if (body.length < 4) throw new ChunkWalkerError('bad_control_message', 'Set Chunk Size shorter than 4 bytes');
      const size = body.readUInt32BE(0) & 0x7fffffff;
      if (size < 1) throw new ChunkWalkerError('bad_chunk_size', `Set Chunk Size ${size}`);
      this.chunkSize = Math.min(size, MAX_CHUNK_SIZE);
    }
    this.handler.message(type, timestamp, streamId, body);
  }

  /** Parses one chunk header at `o`; returns the offset after it, or -1 if it is not complete before `end`. */
  private parseHeader(buf: Buffer, o: number, end: number): number {
    const b0 = buf[o]!;
    const fmt = b0 >>> 6;
    let csid = b0 & 0x3f;
    let p = o + 1;
    if (csid === 0) {
      if (end - o < 2) return -1;
      csid = buf[o + 1]! + 64;
      p = o + 2;
    } else if (csid === 1) {
      if (end - o < 3) return -1;
      csid = buf[o + 1]! + buf[o + 2]! * 256 + 64;
      p = o + 3;
    }
    const headerSize = MESSAGE_HEADER_SIZE[fmt]!;
    if (end - p < headerSize) return -1;
    let cs = this.streams.get(csid);
    if (!cs) {
      if (fmt === FMT_DELTA || fmt === 3)
        throw new ChunkWalkerError('chunk_stream_not_started', `chunk stream ${csid} starts with a type-${fmt} header`);
      if (this.streams.size >= this.limits.maxChunkStreams)
        throw new ChunkWalkerError('too_many_chunk_streams', `more than ${this.limits.maxChunkStreams} chunk streams`);
      cs = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        extendedValue: 0,
        received: 0,
        body: undefined,
        head: Buffer.alloc(MEDIA_HEAD_BYTES),
      };
      this.streams.set(csid, cs);
    }
    const inProgress = cs.received > 0;
    if (fmt === 3) {
      if (cs.extended) {
        if (end - p < 4) return -1;
        if (inProgress) {
          if (buf.readUInt32BE(p) === cs.extendedValue) p += 4;
        } else {
          cs.extendedValue = buf.readUInt32BE(p);
          cs.delta = cs.extendedValue;
          p += 4;
        }
      }
      if (!inProgress) cs.timestamp = (cs.timestamp + cs.delta) >>> 0;
    } else {
      if (inProgress)
        throw new ChunkWalkerError(
          'chunk_header_mid_message',
          `type-${fmt} header on chunk stream ${csid} inside a message`,
        );
      const ts24 = (buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!;
      const extended = ts24 === EXTENDED_MARKER;
      const extAt = p + headerSize;
      if (extended && end - extAt < 4) return -1;
      const value = extended ? buf.readUInt32BE(extAt) : ts24;
      if (fmt === FMT_FULL) {
        cs.timestamp = value;
        cs.delta = value;
      } else {
        cs.delta = value;
        cs.timestamp = (cs.timestamp + value) >>> 0;
      }
      if (fmt === FMT_FULL || fmt === FMT_SAME_STREAM) {
        cs.length = (buf[p + 3]! << 16) | (buf[p + 4]! << 8) | buf[p + 5]!;
        cs.type = buf[p + 6]!;
        if (fmt === FMT_FULL) cs.streamId = buf.readUInt32LE(p + 7);
      }
      cs.extended = extended;
      cs.extendedValue = value;
      p = extAt + (extended ? 4 : 0);
    }
    if (!inProgress) {
      const media = cs.type === TYPE_AUDIO || cs.type === TYPE_VIDEO;
      if (!media) {
        if (cs.length > this.limits.maxControlMessage) {
          throw new ChunkWalkerError('message_too_large', `message type ${cs.type} of ${cs.length} bytes`);
        }
        cs.body = Buffer.allocUnsafe(cs.length);
      }
      if (cs.length === 0) {
        this.complete(cs);
        return p;
      }
    }
    this.current = cs;
    this.chunkRemaining = Math.min(this.chunkSize, cs.length - cs.received);
    return p;
  }
}

export interface VideoHead {
  /** A coded frame (not a sequence header, end of sequence, metadata or command frame). */
  frame: boolean;
  keyframe: boolean;
  sequenceHeader: boolean;
}

/** Classifies a video message from its first bytes: legacy FLV (AVC/HEVC packet types) and Enhanced RTMP. */
export function classifyVideo(head: Buffer, length: number): VideoHead {
  if (length < 1) return { frame: false, keyframe: false, sequenceHeader: false };
  const b0 = head[0]!;
  const frameType = (b0 >> 4) & 0x07;
  if (frameType === 5) return { frame: false, keyframe: false, sequenceHeader: false }; // video info/command frame
  if (b0 & 0x80) {
    // Enhanced RTMP: low nibble is the packet type. 0 SequenceStart, 1 CodedFrames, 2 SequenceEnd, 3 CodedFramesX,
    // 4 Metadata, 5 MPEG2TSSequenceStart, 6 Multitrack, 7 ModEx.
    const pt = b0 & 0x0f;
    const seq = pt === 0 || pt === 5;
    const frame = pt === 1 || pt === 3 || pt === 6 || pt === 7;
    return { frame, keyframe: frame && frameType === 1, sequenceHeader: seq };
  }
  const codec = b0 & 0x0f;
  if (codec === 7 || codec === 12 || codec === 13) {
    if (length < 2) return { frame: false, keyframe: false, sequenceHeader: false };
    const pt = head[1]!;
    return { frame: pt === 1, keyframe: pt === 1 && frameType === 1, sequenceHeader: pt === 0 };
  }
  return { frame: true, keyframe: frameType === 1, sequenceHeader: false };
}
