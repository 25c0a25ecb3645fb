/**
 * FLV container: file header, tag header and an incremental (push) reader.
 *
 * Layout [FLV spec, Annex E.2-E.3]:
 *   header  = 'F' 'L' 'V' | version u8 (1) | flags u8 (bit 2 audio, bit 0 video) | dataOffset u32 (9)
 *   body    = PreviousTagSize0 u32 (0) | { tag | PreviousTagSize u32 (= 11 + dataSize) }*
 *   tag     = reserved u2 | filter u1 | tagType u5 | dataSize u24 | timestamp u24 | timestampExt u8
 *             | streamId u24 (always 0) | data[dataSize]
 * An FLV tag body is exactly the payload of the RTMP message of the same type (8 audio, 9 video, 18 data), and the
 * FLV timestamp (ts24 | ext << 24) is the RTMP message timestamp.
 */
import { RtmpProtocolError } from './errors.js';

export const FLV_HEADER_SIZE = 9;
export const FLV_TAG_HEADER_SIZE = 11;
/** Size of the PreviousTagSize field that follows the header and every tag. */
export const FLV_PREVIOUS_TAG_SIZE_SIZE = 4;
/** Default cap on a tag's data size (the u24 field cannot exceed 16 MiB - 1 anyway). */
const FLV_MAX_TAG_SIZE = 16 * 1024 * 1024;

export const FlvTagType = { Audio: 8, Video: 9, Script: 18 } as const;

export interface FlvHeader {
  audio: boolean;
  video: boolean;
}

export interface FlvTag {
  /** 8 audio, 9 video, 18 script data (AMF0). */
  type: number;
  /** ts24 | ext << 24, as an unsigned 32-bit integer (milliseconds). */
  timestamp: number;
  /** Always 0 in conforming files; reported as read. */
  streamId: number;
  /** The tag body: a subarray of the input when the tag arrived in one chunk (no copy). */
  data: Buffer;
}

const FLV_SIGNATURE = 0x464c56; // 'FLV'
/** Larger data offsets are nonsense (the header is 9 bytes in every FLV version); refuse to skip megabytes. */
const MAX_DATA_OFFSET = 1024;

function checkTimestamp(timestamp: number): number {
  if (!Number.isInteger(timestamp)) throw new RangeError(`FLV timestamp must be an integer, got ${timestamp}`);
  return timestamp >>> 0; // RTMP/FLV time is modulo 2^32
}

/** FLV file header plus PreviousTagSize0: 13 bytes. */
export function encodeFlvHeader(opts: { audio: boolean; video: boolean }): Buffer {
  const buf = Buffer.alloc(FLV_HEADER_SIZE + FLV_PREVIOUS_TAG_SIZE_SIZE);
  buf.writeUIntBE(FLV_SIGNATURE, 0, 3);
  buf[3] = 1;
  buf[4] = (opts.audio ? 0x04 : 0) | (opts.video ? 0x01 : 0);
  buf.writeUInt32BE(FLV_HEADER_SIZE, 5);
  // PreviousTagSize0 = 0 (already zero)
  return buf;
}

/** The 11-byte tag header alone, for writers that send header, data and PreviousTagSize without copying the data. */
export function encodeFlvTagHeader(type: number, timestamp: number, dataSize: number): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 0x1f) throw new RangeError(`bad FLV tag type ${type}`);
  if (!Number.isInteger(dataSize) || dataSize < 0 || dataSize > 0xffffff) {
    throw new RangeError(`FLV tag data size ${dataSize} out of range 0..16777215`);
  }
  const ts = checkTimestamp(timestamp);
  const buf = Buffer.alloc(FLV_TAG_HEADER_SIZE);
  buf[0] = type;
  buf.writeUIntBE(dataSize, 1, 3);
  buf.writeUIntBE(ts & 0xffffff, 4, 3);
  buf[7] = ts >>> 24;
  // streamId u24 = 0
  return buf;
}

/** PreviousTagSize for a tag with `dataSize` bytes of data (4 bytes). */
export function encodeFlvPreviousTagSize(dataSize: number): Buffer {
  const buf = Buffer.alloc(FLV_PREVIOUS_TAG_SIZE_SIZE);
  buf.writeUInt32BE(FLV_TAG_HEADER_SIZE + dataSize, 0);
  return buf;
}

/** A complete tag: header + data + PreviousTagSize (one copy of the data). */
export function encodeFlvTag(tag: { type: number; timestamp: number; data: Buffer }): Buffer {
  const size = tag.data.length;
  const out = Buffer.allocUnsafe(FLV_TAG_HEADER_SIZE + size + FLV_PREVIOUS_TAG_SIZE_SIZE);
  encodeFlvTagHeader(tag.type, tag.timestamp, size).copy(out, 0);
  tag.data.copy(out, FLV_TAG_HEADER_SIZE);
  out.writeUInt32BE(FLV_TAG_HEADER_SIZE + size, FLV_TAG_HEADER_SIZE + size);
  return out;
}

export interface FlvReaderOptions {
  /** Largest accepted tag data size in bytes (default 16 MiB). */
  maxTagSize?: number;
  /**
   * Require every PreviousTagSize to equal 11 + the previous tag's data size (and PreviousTagSize0 to be 0).
   * Default true; some old writers get it wrong, turn it off to read their files.
   */
  strictPreviousTagSize?: boolean;
}

type State = 'Header' | 'HeaderPadding' | 'PreviousTagSize' | 'TagHeader' | 'TagData';

/**
 * Incremental FLV parser: push chunks split anywhere, get complete tags back.
 * A tag is returned as soon as its data is complete; the PreviousTagSize after it is checked when it arrives.
 * Errors are RtmpProtocolError with reasons `flv_bad_header`, `flv_bad_tag`, `flv_tag_too_large`,
 * `flv_bad_previous_tag_size`, `flv_truncated` (from end()); after an error the reader stays failed.
 */
export class FlvReader {
  /** Parsed file header, once its 9 bytes have arrived. */
  header: FlvHeader | undefined;

  private readonly maxTagSize: number;
  private readonly strict: boolean;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private state: State = 'Header';
  private need = FLV_HEADER_SIZE;
  private expectedPrevSize = 0;
  private tagType = 0;
  private tagTimestamp = 0;
  private tagStreamId = 0;
  /** Absolute stream position of the next unconsumed byte, for error messages. */
  private position = 0;
  private failed: RtmpProtocolError | undefined;

  constructor(opts: FlvReaderOptions = {}) {
    this.maxTagSize = opts.maxTagSize ?? FLV_MAX_TAG_SIZE;
    this.strict = opts.strictPreviousTagSize ?? true;
  }

  /** Bytes received but not yet consumed (part of an incomplete header, tag or PreviousTagSize). */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): FlvTag[] {
    if (this.failed) throw this.failed;
    const out: FlvTag[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    try {
      while (this.buffered >= this.need) this.step(this.take(this.need), out);
    } catch (err) {
      if (err instanceof RtmpProtocolError) this.failed = err;
      throw err;
    }
    return out;
  }

  /**
   * Declare the end of input. Throws `flv_truncated` if a header or tag is incomplete. A missing final
   * PreviousTagSize is tolerated (the last tag was already complete).
   */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered === 0 && (this.state === 'TagHeader' || (this.state === 'PreviousTagSize' && this.header)))
      return;
    throw new RtmpProtocolError(
      'flv_truncated',
      `FLV input ended inside ${this.state} (${this.buffered} of ${this.need} bytes) at offset ${this.position}`,
    );
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    this.position += n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      // Fast path: no copy.
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    // Spans chunks: one copy, and one splice of the consumed chunks (many tiny chunks stay linear).
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) i++;
      else this.chunks[i] = c.subarray(k);
    }
    this.chunks.splice(0, i);
    return out;
  }

  private fail(reason: string, message: string): never {
    throw new RtmpProtocolError(reason, `${message} (at FLV offset ${this.position - this.need})`);
  }

  private step(buf: Buffer, out: FlvTag[]): void {
    switch (this.state) {
      case 'Header': {
        if (buf.readUIntBE(0, 3) !== FLV_SIGNATURE) this.fail('flv_bad_header', 'missing FLV signature');
        if (buf[3] !== 1) this.fail('flv_bad_header', `unsupported FLV version ${buf[3]}`);
        const flags = buf[4]!;
        const dataOffset = buf.readUInt32BE(5);
        if (dataOffset < FLV_HEADER_SIZE || dataOffset > MAX_DATA_OFFSET) {
          this.fail('flv_bad_header', `bad FLV header data offset ${dataOffset}`);
        }
        this.header = { audio: (flags & 0x04) !== 0, video: (flags & 0x01) !== 0 };
        this.expectedPrevSize = 0;
        if (dataOffset > FLV_HEADER_SIZE) {
          this.state = 'HeaderPadding';
          this.need = dataOffset - FLV_HEADER_SIZE;
        } else {
          this.state = 'PreviousTagSize';
          this.need = FLV_PREVIOUS_TAG_SIZE_SIZE;
        }
        return;
      }
      case 'HeaderPadding':
        this.state = 'PreviousTagSize';
        this.need = FLV_PREVIOUS_TAG_SIZE_SIZE;
        return;
      case 'PreviousTagSize': {
        const prev = buf.readUInt32BE(0);
        if (this.strict && prev !== this.expectedPrevSize) {
          this.fail('flv_bad_previous_tag_size', `PreviousTagSize ${prev}, expected ${this.expectedPrevSize}`);
        }
        this.state = 'TagHeader';
        this.need = FLV_TAG_HEADER_SIZE;
        return;
      }
      case 'TagHeader': {
        const b0 = buf[0]!;
        if (b0 & 0xc0) this.fail('flv_bad_tag', `reserved bits set in FLV tag type byte 0x${b0.toString(16)}`);
        if (b0 & 0x20) this.fail('flv_bad_tag', 'encrypted (filtered) FLV tags are not supported');
        const type = b0 & 0x1f;
        if (type !== 8 && type !== 9 && type !== 18) this.fail('flv_bad_tag', `unknown FLV tag type ${type}`);
        const size = buf.readUIntBE(1, 3);
        if (size > this.maxTagSize)
          this.fail('flv_tag_too_large', `FLV tag of ${size} bytes exceeds ${this.maxTagSize}`);
        this.tagType = type;
        this.tagTimestamp = (buf.readUIntBE(4, 3) | (buf[7]! << 24)) >>> 0;
        this.tagStreamId = buf.readUIntBE(8, 3);
        this.expectedPrevSize = FLV_TAG_HEADER_SIZE + size;
        if (size === 0) {
          out.push({ type, timestamp: this.tagTimestamp, streamId: this.tagStreamId, data: Buffer.alloc(0) });
          this.state = 'PreviousTagSize';
          this.need = FLV_PREVIOUS_TAG_SIZE_SIZE;
        } else {
          this.state = 'TagData';
          this.need = size;
        }
        return;
      }
      case 'TagData':
        out.push({ type: this.tagType, timestamp: this.tagTimestamp, streamId: this.tagStreamId, data: buf });
        this.state = 'PreviousTagSize';
        this.need = FLV_PREVIOUS_TAG_SIZE_SIZE;
        return;
    }
  }
}

/** Parse a whole FLV file held in memory. Tag data are subarrays of `buf`. */
export function readFlvFile(buf: Buffer, opts: FlvReaderOptions = {}): { header: FlvHeader; tags: FlvTag[] } {
  const reader = new FlvReader(opts);
  const tags = reader.push(buf);
  reader.end();
  return { header: reader.header!, tags };
}
