import {
  CHUNK_FMT_CONTINUATION,
  CHUNK_FMT_DELTA_ONLY,
  CHUNK_FMT_FULL,
  DEFAULT_CHUNK_SIZE,
  EXTENDED_TIMESTAMP_MARKER,
  MAX_CHUNK_SIZE,
  MessageType,
} from './constants.js';
import { RtmpProtocolError } from './errors.js';
import type { RtmpMessage } from './message.js';

export interface ChunkReaderLimits {
  /** Smallest Set Chunk Size accepted from the peer (1-byte chunks are a CPU amplification vector). */
  minChunkSize: number;
  /** Distinct chunk stream ids one connection may use. Real encoders use fewer than 10. */
  maxChunkStreams: number;
  /**
   * Bytes of not-yet-complete messages one connection may hold across all chunk streams, counted as really
   * retained: pieces kept as slices are charged their whole backing buffer, copied pieces their allocation.
   */
  maxPartialBytes: number;
  /** Largest message accepted, by message type. */
  maxMessageSize: (type: number) => number;
}

const KIB = 1024;
const MIB = 1024 * KIB;

/** The configurable message size caps: video (and aggregates), audio, and everything else but protocol control. */
export interface MessageSizeLimits {
  video: number;
  audio: number;
  /** Commands, data, shared objects. */
  data: number;
}

/** Video keyframes of 4K encoders exceed 1 MiB (docs/INTEROP.md §8 row 11), so video gets the protocol maximum. */
export const DEFAULT_MESSAGE_SIZE_LIMITS: Readonly<MessageSizeLimits> = Object.freeze({
  video: 16 * MIB - 1, // protocol maximum (24-bit length)
  audio: 1 * MIB,
  data: 1 * MIB,
});

/** Protocol control messages are 4-6 bytes: a fixed, tiny cap. */
const MAX_CONTROL_MESSAGE_SIZE = 64;

/** The per-type cap function of a ChunkReader for the given limits: the one place that maps types to limits. */
export function maxMessageSizeBy(limits: MessageSizeLimits): (type: number) => number {
  const { video, audio, data } = limits;
  return (type: number): number => {
    switch (type) {
      case MessageType.Video:
      case MessageType.Aggregate:
        return video;
      case MessageType.Audio:
        return audio;
      case MessageType.SetChunkSize:
      case MessageType.Abort:
      case MessageType.Acknowledgement:
      case MessageType.WindowAckSize:
      case MessageType.SetPeerBandwidth:
      case MessageType.UserControl:
        return MAX_CONTROL_MESSAGE_SIZE;
      default:
        return data;
    }
  };
}

/** Per-type message size caps with the default limits. */
export const defaultMaxMessageSize: (type: number) => number = maxMessageSizeBy(DEFAULT_MESSAGE_SIZE_LIMITS);

export const DEFAULT_CHUNK_READER_LIMITS: ChunkReaderLimits = {
  minChunkSize: DEFAULT_CHUNK_SIZE,
  maxChunkStreams: 64,
  maxPartialBytes: 32 * MIB,
  maxMessageSize: defaultMaxMessageSize,
};

interface ChunkStream {
  /** Absolute uint32 timestamp of the current (or last) message. */
  timestamp: number;
  /** Delta reused by a type-3 header that starts a new message. */
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last type 0/1/2 header carried an extended timestamp, so type-3 chunks may repeat it. */
  extended: boolean;
  /** Raw 32-bit value carried by the current message's first chunk (absolute for type 0, delta for 1/2). */
  extendedValue: number;
  parts: Buffer[];
  received: number;
  /** Bytes charged to the partial budget for this message: what its parts really retain (>= received). */
  charged: number;
  /** The push() that last added parts, and the index of the first part it added. */
  pushMark: number;
  firstNew: number;
  /** Owned buffer that small pieces are copied into (grown by doubling), and its part index and fill. */
  tail: Buffer | undefined;
  tailIndex: number;
  tailUsed: number;
}

/**
 * A piece left in a read buffer is kept as a slice (zero copy) only when it is at least this fraction (1/n) of the
 * buffer's backing store; smaller pieces are copied out, so a few bytes never pin a whole 64 KiB socket read.
 */
const KEEP_SLICE_SHARE_DIVISOR = 2;
/**
 * ...and at least this large: tiny reads (a peer trickling bytes) are copied too, into one growing buffer, so a
 * message never becomes millions of Buffer objects whose overhead the byte count would not see.
 */
const KEEP_SLICE_MIN_BYTES = 4096;
/** Largest allocation for copied pieces of one message (it doubles up to this, bounded by the message length). */
const MAX_COPY_CAPACITY = 256 * 1024;

const MESSAGE_HEADER_SIZE = [11, 7, 3, 0] as const;
const CSID_OFFSET = 64;
const EXTENDED_TIMESTAMP_SIZE = 4;
const SET_CHUNK_SIZE_RESERVED_BIT = 0x8000_0000;

/**
 * Incremental chunk stream parser (RTMP spec 5.3). Accepts input split at any byte, never allocates by a declared
 * length, and throws RtmpProtocolError on anything malformed; after an error the reader is unusable and the
 * connection should be closed.
 *
 * Memory: payload bytes stay slices of the input buffers while a push() runs (a message completed within one read
 * costs one concat, or nothing if it was one chunk). What outlives the push is made to cost what it is counted as:
 * a small piece of an unfinished message is copied out of its read buffer, a large one is kept as a slice and
 * charged its whole backing buffer, and a small completed message is copied before it is delivered (caches
 * downstream count payload lengths). So `maxPartialBytes` bounds what the connection really pins.
 *
 * Set Chunk Size and Abort are applied here, at the exact point in the byte stream where they arrive, and still
 * reported to `onMessage` for visibility.
 */
export class ChunkReader {
  private readonly streams = new Map<number, ChunkStream>();
  private readonly limits: ChunkReaderLimits;
  private chunkSize = DEFAULT_CHUNK_SIZE;
  private pending: Buffer | undefined;
  private current: ChunkStream | undefined;
  private chunkRemaining = 0;
  /** Charged against maxPartialBytes: what incomplete messages retain (see settle()). */
  private partialBytes = 0;
  private heldBytes = 0;
  private stopped = false;
  /** Increments per push(); chunk streams that got pieces in the current one are listed in `touched`. */
  private pushSeq = 0;
  private readonly touched: ChunkStream[] = [];

  constructor(
    private readonly onMessage: (msg: RtmpMessage) => void,
    limits: Partial<ChunkReaderLimits> = {},
  ) {
    this.limits = { ...DEFAULT_CHUNK_READER_LIMITS, ...limits };
  }

  get incomingChunkSize(): number {
    return this.chunkSize;
  }

  /** Payload bytes of incomplete messages received so far, plus an unfinished header. */
  get bufferedBytes(): number {
    return this.heldBytes + (this.pending?.length ?? 0);
  }

  /** Memory those bytes really keep alive (whole backing buffers of kept slices, copy capacity): the budgeted count. */
  get retainedBytes(): number {
    return this.partialBytes + (this.pending?.length ?? 0);
  }

  /** Stops delivering messages (e.g. once the connection is closing). */
  stop(): void {
    this.stopped = true;
    this.pending = undefined;
    this.streams.clear();
  }

  push(data: Buffer): void {
    if (this.stopped) return;
    let buf = data;
    if (this.pending) {
      buf = Buffer.concat([this.pending, data]);
      this.pending = undefined;
    }
    let o = 0;
    while (o < buf.length && !this.stopped) {
      const cs = this.current;
      if (cs) {
        const n = Math.min(this.chunkRemaining, buf.length - o);
        this.checkPartialBudget(n); // before the slice is taken, so a failed reader pins nothing more
        if (cs.pushMark !== this.pushSeq) {
          cs.pushMark = this.pushSeq;
          cs.firstNew = cs.parts.length;
          this.touched.push(cs);
        }
        cs.parts.push(buf.subarray(o, o + n));
        cs.received += n;
        cs.charged += n;
        this.partialBytes += n;
        this.heldBytes += n;
        this.chunkRemaining -= n;
        o += n;
        if (this.chunkRemaining === 0) {
          this.current = undefined;
          if (cs.received === cs.length) this.complete(cs);
        }
        continue;
      }
      const next = this.parseHeader(buf, o);
      if (next < 0) {
        // Header incomplete: keep the few bytes we have (copied, so the large input buffer can be freed).
        this.pending = ownedConcat([buf.subarray(o)], buf.length - o);
        break;
      }
      o = next;
    }
    this.settle(buf);
  }

  private checkPartialBudget(adding = 0): void {
    if (this.partialBytes + adding > this.limits.maxPartialBytes) {
      throw new RtmpProtocolError(
        'partial_bytes_exceeded',
        `more than ${this.limits.maxPartialBytes} bytes of incomplete messages`,
      );
    }
  }

  /**
   * End of a push: the pieces unfinished messages took from `buf` either stay slices (a large share of its backing
   * store, which is then charged whole) or are copied out, so the budget counts what is really retained.
   */
  private settle(buf: Buffer): void {
    const touched = this.touched;
    this.pushSeq++;
    if (touched.length === 0) return;
    if (this.stopped) {
      touched.length = 0;
      return;
    }
    const backing = buf.buffer.byteLength;
    for (const cs of touched) {
      const from = cs.firstNew;
      if (cs.received === 0 || from >= cs.parts.length) continue; // completed (or aborted) meanwhile
      let bytes = 0;
      for (let i = from; i < cs.parts.length; i++) bytes += cs.parts[i]!.length;
      if (bytes >= KEEP_SLICE_MIN_BYTES && bytes * KEEP_SLICE_SHARE_DIVISOR >= backing) {
        const unused = backing - bytes;
        cs.charged += unused;
        this.partialBytes += unused;
      } else {
        this.copyOut(cs, from, bytes);
      }
    }
    touched.length = 0;
    this.checkPartialBudget();
  }

  /** Replaces the parts from index `from` (`bytes` in all) by a copy in the message's owned tail buffer. */
  private copyOut(cs: ChunkStream, from: number, bytes: number): void {
    const parts = cs.parts;
    let tail = cs.tail;
    let at: number;
    if (tail && cs.tailIndex === from - 1 && tail.length - cs.tailUsed >= bytes) {
      at = cs.tailUsed;
      // The new bytes were charged as they came; the tail's capacity already was.
      cs.charged -= bytes;
      this.partialBytes -= bytes;
    } else {
      const before = cs.received - bytes;
      // Exact the first time (most messages get at most one small copied piece), doubling after.
      const growth = tail ? Math.min(tail.length * 2, MAX_COPY_CAPACITY) : 0;
      const capacity = Math.min(cs.length - before, Math.max(bytes, growth));
      tail = Buffer.allocUnsafeSlow(capacity); // its own backing store, not a shared pool slab
      cs.tail = tail;
      cs.tailIndex = from;
      at = 0;
      cs.charged += capacity - bytes;
      this.partialBytes += capacity - bytes;
    }
    for (let i = from; i < parts.length; i++) at += parts[i]!.copy(tail, at);
    cs.tailUsed = at;
    parts[cs.tailIndex] = tail.subarray(0, at);
    parts.length = cs.tailIndex + 1;
  }

  /** Parses one chunk header at `o`. Returns the offset after it, or -1 if more bytes are needed. */
  private parseHeader(buf: Buffer, o: number): number {
    const available = buf.length - o;
    const b0 = buf[o]!;
    const fmt = b0 >>> 6;
    let csid = b0 & 0x3f;
    let p = o + 1;
    if (csid === 0) {
      if (available < 2) return -1;
      csid = buf[o + 1]! + CSID_OFFSET;
      p = o + 2;
    } else if (csid === 1) {
      if (available < 3) return -1;
      csid = buf[o + 1]! + buf[o + 2]! * 256 + CSID_OFFSET;
      p = o + 3;
    }
    const headerSize = MESSAGE_HEADER_SIZE[fmt]!;
    if (buf.length - p < headerSize) return -1;

    let cs = this.streams.get(csid);
    if (!cs) {
      if (fmt === CHUNK_FMT_DELTA_ONLY || fmt === CHUNK_FMT_CONTINUATION) {
        throw new RtmpProtocolError(
          'chunk_stream_not_started',
          `chunk stream ${csid} starts with a type-${fmt} header`,
        );
      }
      if (this.streams.size >= this.limits.maxChunkStreams) {
        throw new RtmpProtocolError('too_many_chunk_streams', `more than ${this.limits.maxChunkStreams} chunk streams`);
      }
      cs = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        extendedValue: 0,
        parts: [],
        received: 0,
        charged: 0,
        pushMark: -1,
        firstNew: 0,
        tail: undefined,
        tailIndex: -1,
        tailUsed: 0,
      };
    }
    const inProgress = cs.received > 0;

    if (fmt === CHUNK_FMT_CONTINUATION) {
      if (cs.extended) {
        if (buf.length - p < EXTENDED_TIMESTAMP_SIZE) return -1;
        if (inProgress) {
          // Senders disagree on whether continuation chunks repeat the extended timestamp: peek and compare.
          if (buf.readUInt32BE(p) === cs.extendedValue) p += EXTENDED_TIMESTAMP_SIZE;
        } else {
          cs.extendedValue = buf.readUInt32BE(p);
          cs.delta = cs.extendedValue;
          p += EXTENDED_TIMESTAMP_SIZE;
        }
      }
      if (!inProgress) cs.timestamp = (cs.timestamp + cs.delta) >>> 0;
    } else {
      if (inProgress) {
        throw new RtmpProtocolError(
          'chunk_header_mid_message',
          `type-${fmt} header on chunk stream ${csid} inside an unfinished message`,
        );
      }
      const ts24 = buf.readUIntBE(p, 3);
      const extended = ts24 === EXTENDED_TIMESTAMP_MARKER;
      const extAt = p + headerSize;
      if (extended && buf.length - extAt < EXTENDED_TIMESTAMP_SIZE) return -1;
      const value = extended ? buf.readUInt32BE(extAt) : ts24;
      if (fmt === CHUNK_FMT_FULL) {
        cs.timestamp = value;
        cs.delta = value; // a type-3 new message after type 0 reuses its timestamp as the delta (spec 5.3.1.2.4)
      } else {
        cs.delta = value;
        cs.timestamp = (cs.timestamp + value) >>> 0;
      }
      if (fmt !== CHUNK_FMT_DELTA_ONLY) {
        cs.length = buf.readUIntBE(p + 3, 3);
        cs.type = buf[p + 6]!;
        if (fmt === CHUNK_FMT_FULL) cs.streamId = buf.readUInt32LE(p + 7);
      }
      cs.extended = extended;
      cs.extendedValue = value;
      p = extAt + (extended ? EXTENDED_TIMESTAMP_SIZE : 0);
    }

    if (!this.streams.has(csid)) this.streams.set(csid, cs);

    if (!inProgress) {
      const max = this.limits.maxMessageSize(cs.type);
      if (cs.length > max) {
        throw new RtmpProtocolError(
          'message_too_large',
          `message type ${cs.type} of ${cs.length} bytes exceeds ${max}`,
        );
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

  private complete(cs: ChunkStream): void {
    let payload: Buffer;
    if (cs.parts.length !== 1) {
      payload = ownedConcat(cs.parts, cs.length);
    } else {
      payload = cs.parts[0]!;
      // One chunk: a slice of the read buffer. Caches downstream count its length, so a small one is copied.
      if (payload.length * KEEP_SLICE_SHARE_DIVISOR < payload.buffer.byteLength)
        payload = ownedConcat([payload], payload.length);
    }
    this.release(cs);
    const msg: RtmpMessage = { type: cs.type, streamId: cs.streamId, timestamp: cs.timestamp, payload };
    if (msg.type === MessageType.SetChunkSize) this.applySetChunkSize(payload);
    else if (msg.type === MessageType.Abort) this.applyAbort(payload);
    this.onMessage(msg);
  }

  private applySetChunkSize(payload: Buffer): void {
    if (payload.length < 4) throw new RtmpProtocolError('bad_control_message', 'Set Chunk Size shorter than 4 bytes');
    const size = payload.readUInt32BE(0);
    if (size === 0 || size & SET_CHUNK_SIZE_RESERVED_BIT) {
      throw new RtmpProtocolError('bad_chunk_size', `invalid Set Chunk Size ${size}`);
    }
    if (size < this.limits.minChunkSize) {
      throw new RtmpProtocolError(
        'chunk_size_too_small',
        `Set Chunk Size ${size} below the minimum ${this.limits.minChunkSize}`,
      );
    }
    this.chunkSize = Math.min(size, MAX_CHUNK_SIZE);
  }

  private applyAbort(payload: Buffer): void {
    if (payload.length < 4) throw new RtmpProtocolError('bad_control_message', 'Abort shorter than 4 bytes');
    const cs = this.streams.get(payload.readUInt32BE(0));
    if (!cs || cs === this.current) return; // a message is never aborted from inside its own chunk
    this.release(cs);
  }

  /** Forgets a chunk stream's message parts and returns their charge to the budget. */
  private release(cs: ChunkStream): void {
    this.partialBytes -= cs.charged;
    this.heldBytes -= cs.received;
    cs.parts = [];
    cs.received = 0;
    cs.charged = 0;
    cs.firstNew = 0;
    cs.tail = undefined;
    cs.tailIndex = -1;
    cs.tailUsed = 0;
  }
}

/**
 * `parts` copied into a Buffer with its own backing store. Buffer.concat/Buffer.from serve small results from a
 * shared pool slab (8 KiB on Node 20/22, 64 KiB on Node 24), which a cached message would then pin: the memory
 * accounting above (and the hub's caches, which count payload lengths) must see what a payload really holds.
 */
function ownedConcat(parts: readonly Buffer[], length: number): Buffer {
  const out = Buffer.allocUnsafeSlow(length);
  let offset = 0;
  for (const part of parts) offset += part.copy(out, offset);
  return out;
}
