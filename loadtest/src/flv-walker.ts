/**
 * A header-only FLV stream walker for cheap HTTP-FLV / WebSocket-FLV load-test viewers: the FLV counterpart of
 * ChunkWalker. It parses the 13-byte file header (9-byte header + PreviousTagSize0), then for every tag its
 * 11-byte header, counts the data bytes without copying them (keeping only the first MEDIA_HEAD_BYTES, enough to
 * tell keyframes and sequence headers apart), and skips the 4-byte PreviousTagSize. Input may be split anywhere:
 * an HTTP chunk boundary or a WebSocket message boundary means nothing to it.
 *
 * It never retains the input buffer (the caller may reuse it).
 */
import { MEDIA_HEAD_BYTES } from './chunk-walker.js';

const FLV_HEADER_MIN = 9;
const TAG_HEADER = 11;
const PREVIOUS_TAG_SIZE = 4;
const TYPE_AUDIO = 8;
const TYPE_VIDEO = 9;
const TYPE_SCRIPT = 18;
/** Data offsets beyond this are nonsense (every FLV version has a 9-byte header). */
const MAX_DATA_OFFSET = 1024;

export class FlvWalkerError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'FlvWalkerError';
  }
}

export interface FlvWalkerHandler {
  /**
   * A tag's data has fully arrived (its PreviousTagSize may still be in flight). `head` holds the first
   * min(dataSize, MEDIA_HEAD_BYTES) bytes of the data and is reused for the next tag.
   */
  tag(type: number, timestamp: number, dataSize: number, head: Buffer): void;
}

export interface FlvWalkerOptions {
  /** Expect the FLV file header first (default true). */
  header?: boolean;
  /** Largest accepted tag data size (default 16 MiB - 1, the field's range). */
  maxTagSize?: number;
}

const State = { FileHeader: 0, HeaderSkip: 1, TagHeader: 2, TagData: 3, Trailer: 4 } as const;
type State = (typeof State)[keyof typeof State];

export class FlvTagWalker {
  /** Audio + video data bytes seen (counted as they arrive, not when tags complete). */
  mediaBytes = 0;
  /** Every byte pushed. */
  totalBytes = 0;
  /** Tags completed. */
  tags = 0;
  private state: State;
  /** Bytes still to read in the current state (header collection, data, skip). */
  private need: number;
  private have = 0;
  private readonly scratch = Buffer.alloc(TAG_HEADER);
  private readonly head = Buffer.alloc(MEDIA_HEAD_BYTES);
  private headLen = 0;
  private type = 0;
  private timestamp = 0;
  private dataSize = 0;
  private readonly maxTagSize: number;

  constructor(
    private readonly handler: FlvWalkerHandler,
    opts: FlvWalkerOptions = {},
  ) {
    this.maxTagSize = opts.maxTagSize ?? 0xffffff;
    const header = opts.header ?? true;
    this.state = header ? State.FileHeader : State.TagHeader;
    this.need = header ? FLV_HEADER_MIN : TAG_HEADER;
  }

  push(buf: Buffer, start = 0, end = buf.length): void {
    this.totalBytes += end - start;
    let i = start;
    while (i < end) {
      switch (this.state) {
        case State.FileHeader:
        case State.TagHeader: {
          const n = Math.min(this.need - this.have, end - i);
          buf.copy(this.scratch, this.have, i, i + n);
          this.have += n;
          i += n;
          if (this.have < this.need) return;
          this.have = 0;
          if (this.state === State.FileHeader) this.fileHeader();
          else this.tagHeader();
          break;
        }
        case State.HeaderSkip:
        case State.Trailer: {
          const n = Math.min(this.need, end - i);
          this.need -= n;
          i += n;
          if (this.need > 0) return;
          this.state = State.TagHeader;
          this.need = TAG_HEADER;
          break;
        }
        case State.TagData: {
          const n = Math.min(this.need, end - i);
          if (this.headLen < MEDIA_HEAD_BYTES) {
            const h = Math.min(n, MEDIA_HEAD_BYTES - this.headLen);
            buf.copy(this.head, this.headLen, i, i + h);
            this.headLen += h;
          }
          if (this.type === TYPE_AUDIO || this.type === TYPE_VIDEO) this.mediaBytes += n;
          this.need -= n;
          i += n;
          if (this.need > 0) return;
          this.endData();
          break;
        }
      }
    }
  }

  private fileHeader(): void {
    const s = this.scratch;
    if (s[0] !== 0x46 || s[1] !== 0x4c || s[2] !== 0x56) throw new FlvWalkerError('bad_signature', 'not an FLV stream');
    const offset = s.readUInt32BE(5);
    if (offset < FLV_HEADER_MIN || offset > MAX_DATA_OFFSET)
      throw new FlvWalkerError('bad_header', `FLV data offset ${offset}`);
    this.state = State.HeaderSkip;
    this.need = offset - FLV_HEADER_MIN + PREVIOUS_TAG_SIZE;
  }

  private tagHeader(): void {
    const s = this.scratch;
    const type = s[0]! & 0x1f;
    if (type !== TYPE_AUDIO && type !== TYPE_VIDEO && type !== TYPE_SCRIPT)
      throw new FlvWalkerError('bad_tag_type', `FLV tag type ${s[0]}`);
    const size = s.readUIntBE(1, 3);
    if (size > this.maxTagSize) throw new FlvWalkerError('tag_too_large', `FLV tag of ${size} bytes`);
    this.type = type;
    this.dataSize = size;
    this.timestamp = (s.readUIntBE(4, 3) | (s[7]! << 24)) >>> 0;
    this.headLen = 0;
    this.state = State.TagData;
    this.need = size;
    if (size === 0) this.endData();
  }

  private endData(): void {
    this.tags++;
    this.state = State.Trailer;
    this.need = PREVIOUS_TAG_SIZE;
    this.handler.tag(this.type, this.timestamp, this.dataSize, this.head);
  }
}
