/**
 * Reference RTMP chunk writer for tests, written from docs/INTEROP.md §3 and independent of
 * src/chunk-writer.ts on purpose. It emits every header form real senders produce:
 *
 * - fmt0 for a fresh chunk stream, a different message stream id or a timestamp that goes backwards (serial-number
 *   order); fmt1 when only the stream id is shared; fmt2 when length and type are also the same; fmt3 starting a new
 *   message when the delta equals the previous delta on that chunk stream (after fmt0 the "previous delta" is the
 *   fmt0 timestamp, spec 5.3.1.2.4) — the rule docs/INTEROP.md §3.2 gives writers;
 * - 1/2/3-byte basic headers (shortest form, or the 3-byte form for every csid >= 64, which readers must accept);
 * - extended timestamps (fmt0: absolute, fmt1/2/3: delta) repeated in every type-3 chunk (FFmpeg, librtmp 2.4,
 *   GStreamer, SRS) or omitted from continuation chunks (OBS before obs-studio#10097);
 * - Set Chunk Size between messages and in the middle of a message on another chunk stream (chunk-level cursors).
 *
 * It also records the order in which messages complete on the wire, which is the order a reader must yield them.
 * Callers put the chunks on the wire in the order nextChunk() returns them (writeInterleaved, write() do).
 */
import type { RtmpMessage } from '../../src/message.js';

export type ExtendedInContinuation = 'repeat' | 'omit';
export type CsidForm = 'shortest' | 'wide';

export interface ReferenceWriterOptions {
  /** 'repeat' (FFmpeg style, default) or 'omit' (old OBS style) for the 4-byte field in continuation chunks. */
  extendedInContinuation?: ExtendedInContinuation;
  /** 'shortest' (default) or 'wide' (3-byte basic header for every csid >= 64). */
  csidForm?: CsidForm;
  /** Use fmt1/2/3 compression (default true); false writes fmt0 for every message. */
  compress?: boolean;
}

const EXT = 0xffffff;
const UINT32 = 0x1_0000_0000;
const EXT_FIELD_SIZE = 4;

interface CsState {
  timestamp: number;
  /** The delta a type-3 new-message header reuses (the timestamp itself after fmt0). */
  delta: number;
  length: number;
  type: number;
  streamId: number;
  busy: boolean;
}

/** Signed serial-number distance b - a of two uint32 timestamps (independent of src/message.ts). */
function serialDelta(a: number, b: number): number {
  const d = (b - a + UINT32) % UINT32;
  return d >= 0x8000_0000 ? d - UINT32 : d;
}

export function basicHeader(fmt: number, csid: number, form: CsidForm = 'shortest'): Buffer {
  if (csid < 2 || csid > 65599) throw new Error(`csid ${csid} out of range`);
  if (csid <= 63) return Buffer.from([(fmt << 6) | csid]);
  const rest = csid - 64;
  if (csid <= 319 && form === 'shortest') return Buffer.from([fmt << 6, rest]);
  return Buffer.from([(fmt << 6) | 1, rest & 0xff, rest >> 8]); // b1 is the LOW byte
}

function u24(v: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(v, 0, 3);
  return b;
}
function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}
function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

/** The bytes a peek-and-compare reader reads where an omitted extended field would be, collected as they are written. */
interface OpenPeek {
  ext: number;
  value: number;
  have: number;
}

export interface WriterStats {
  /** First-chunk header forms used, indexed by fmt. */
  fmt: [number, number, number, number];
  /** fmt3 new-message headers that carried a 4-byte extended field. */
  fmt3NewWithExt: number;
  /** Continuation chunks of messages with an extended timestamp (field written or omitted). */
  extContinuations: number;
  /** Set Chunk Size messages emitted while another message was only partially written. */
  midMessageChunkSizeChanges: number;
  basicHeaderSizes: [number, number, number, number];
  /**
   * 'omit' mode only: continuation chunks where the 4 bytes after the basic header equal the extended value, which no
   * peek-and-compare reader can tell apart from a repeated field (inherent ambiguity, not a reader bug). Those bytes
   * are the wire's, not the chunk's: a chunk with fewer than 4 payload bytes is followed by the next chunk's header
   * and payload, which the reader's peek sees too (e.g. `ff ff ff | f5` = 0xFFFFFFF5 with 3-byte chunks on csid 53).
   */
  ambiguousContinuations: number;
}

export function emptyStats(): WriterStats {
  return {
    fmt: [0, 0, 0, 0],
    fmt3NewWithExt: 0,
    extContinuations: 0,
    midMessageChunkSizeChanges: 0,
    basicHeaderSizes: [0, 0, 0, 0],
    ambiguousContinuations: 0,
  };
}

export class MessageCursor {
  private sent = 0;
  private first = true;

  constructor(
    private readonly writer: ReferenceChunkWriter,
    readonly msg: RtmpMessage,
    readonly csid: number,
    private readonly header: Buffer,
    /** Extended field value carried by this message, or undefined. */
    private readonly ext: number | undefined,
  ) {}

  get done(): boolean {
    return !this.first && this.sent >= this.msg.payload.length;
  }

  /** Emits the next chunk using the writer's chunk size at this moment. */
  nextChunk(): Buffer {
    if (this.done) throw new Error('message already written');
    const w = this.writer;
    const n = Math.min(w.chunkSize, this.msg.payload.length - this.sent);
    const data = this.msg.payload.subarray(this.sent, this.sent + n);
    let head: Buffer;
    let omittedExt: number | undefined;
    if (this.first) {
      head = this.header;
      this.first = false;
    } else {
      const basic = basicHeader(3, this.csid, w.csidForm);
      w.stats.basicHeaderSizes[basic.length]!++;
      if (this.ext !== undefined) {
        w.stats.extContinuations++;
        if (w.extendedInContinuation === 'repeat') {
          head = Buffer.concat([basic, u32be(this.ext)]);
        } else {
          head = basic;
          omittedExt = this.ext;
        }
      } else {
        head = basic;
      }
    }
    this.sent += n;
    const chunk = Buffer.concat([head, data]);
    w.onWire(chunk, omittedExt === undefined ? undefined : { ext: omittedExt, at: head.length });
    if (this.done) w.finish(this);
    return chunk;
  }

  /** All remaining chunks back to back. */
  rest(): Buffer {
    const parts: Buffer[] = [];
    while (!this.done) parts.push(this.nextChunk());
    return Buffer.concat(parts);
  }
}

export class ReferenceChunkWriter {
  chunkSize = 128;
  readonly extendedInContinuation: ExtendedInContinuation;
  readonly csidForm: CsidForm;
  readonly compress: boolean;
  readonly stats: WriterStats;
  /** Messages in the order their last chunk was written. */
  readonly completed: RtmpMessage[] = [];
  private readonly streams = new Map<number, CsState>();
  private inFlight = 0;
  /** Omitted extended fields whose 4 would-be bytes have not all been written yet (see ambiguousContinuations). */
  private openPeeks: OpenPeek[] = [];

  constructor(options: ReferenceWriterOptions = {}, stats: WriterStats = emptyStats()) {
    this.extendedInContinuation = options.extendedInContinuation ?? 'repeat';
    this.csidForm = options.csidForm ?? 'shortest';
    this.compress = options.compress ?? true;
    this.stats = stats;
  }

  isBusy(csid: number): boolean {
    return this.streams.get(csid)?.busy ?? false;
  }

  /** Chooses the header for a new message on `csid` and returns a cursor that writes it chunk by chunk. */
  begin(msg: RtmpMessage, csid: number): MessageCursor {
    const prev = this.streams.get(csid);
    if (prev?.busy) throw new Error(`chunk stream ${csid} already has a message in flight`);
    const ts = msg.timestamp >>> 0;
    const length = msg.payload.length;
    if (length > 0xffffff) throw new Error('payload too long for a 24-bit length');

    let fmt: number;
    let field: number; // absolute (fmt0) or delta
    if (!this.compress || !prev || prev.streamId !== msg.streamId || serialDelta(prev.timestamp, ts) < 0) {
      fmt = 0;
      field = ts;
    } else {
      field = (ts - prev.timestamp + UINT32) % UINT32;
      if (prev.length !== length || prev.type !== msg.type) fmt = 1;
      else if (field === prev.delta) fmt = 3;
      else fmt = 2;
    }
    const extended = field >= EXT;
    const basic = basicHeader(fmt, csid, this.csidForm);
    this.stats.basicHeaderSizes[basic.length]!++;
    this.stats.fmt[fmt as 0 | 1 | 2 | 3]++;
    const parts: Buffer[] = [basic];
    if (fmt <= 2) parts.push(u24(extended ? EXT : field));
    if (fmt <= 1) parts.push(u24(length), Buffer.from([msg.type]));
    if (fmt === 0) parts.push(u32le(msg.streamId));
    if (extended) {
      // fmt3 new message after an extended header repeats the field (its value = the reused delta).
      parts.push(u32be(field));
      if (fmt === 3) this.stats.fmt3NewWithExt++;
    }
    this.streams.set(csid, {
      timestamp: ts,
      delta: field,
      length,
      type: msg.type,
      streamId: msg.streamId,
      busy: true,
    });
    this.inFlight++;
    return new MessageCursor(this, msg, csid, Buffer.concat(parts), extended ? field : undefined);
  }

  /**
   * @internal called by the cursor with every chunk in wire order; `omitted` when the chunk is a continuation without
   * its extended field (`at`: where the field would start, after the basic header). Settles the peeks that this
   * chunk's bytes complete.
   */
  onWire(chunk: Buffer, omitted: { ext: number; at: number } | undefined): void {
    for (const peek of this.openPeeks) this.feedPeek(peek, chunk);
    if (omitted) {
      const peek = { ext: omitted.ext, value: 0, have: 0 };
      this.openPeeks.push(peek);
      this.feedPeek(peek, chunk.subarray(omitted.at));
    }
    this.openPeeks = this.openPeeks.filter((peek) => peek.have < EXT_FIELD_SIZE);
  }

  private feedPeek(peek: OpenPeek, bytes: Buffer): void {
    for (let i = 0; i < bytes.length && peek.have < EXT_FIELD_SIZE; i++) {
      peek.value = peek.value * 256 + bytes[i]!;
      peek.have++;
      if (peek.have === EXT_FIELD_SIZE && peek.value === peek.ext) this.stats.ambiguousContinuations++;
    }
  }

  /** @internal called by the cursor after its last chunk. */
  finish(cursor: MessageCursor): void {
    const st = this.streams.get(cursor.csid);
    if (st) st.busy = false;
    this.inFlight--;
    this.completed.push(cursor.msg);
  }

  /** A whole message, all chunks back to back. */
  write(msg: RtmpMessage, csid: number): Buffer {
    return this.begin(msg, csid).rest();
  }

  /**
   * Writes Set Chunk Size (type 1, msid 0, ts 0) on `csid` with the current chunk size, then switches: the next chunk
   * of any chunk stream uses the new size, also if that chunk continues a message (spec 5.4.1).
   */
  setChunkSize(size: number, csid = 2): Buffer {
    if (this.inFlight > 0) this.stats.midMessageChunkSizeChanges++;
    const bytes = this.write({ type: 1, streamId: 0, timestamp: 0, payload: u32be(size) }, csid);
    this.chunkSize = Math.min(size, EXT);
    return bytes;
  }
}

/** Small deterministic PRNG (mulberry32) so one integer seed reproduces a whole interleaving. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface PlannedMessage {
  msg: RtmpMessage;
  csid: number;
}

/**
 * Writes `items` with chunk-level interleaving across chunk streams (messages on one chunk stream stay in order and
 * never overlap), inserting the given Set Chunk Size values on `controlCsid` at random points, including while other
 * messages are half written. Returns the byte stream; `writer.completed` holds the order a reader must yield.
 */
export function writeInterleaved(
  writer: ReferenceChunkWriter,
  items: readonly PlannedMessage[],
  chunkSizes: readonly number[],
  rng: () => number,
  controlCsid = 2,
): Buffer {
  const out: Buffer[] = [];
  const queue = [...items];
  const sizes = [...chunkSizes];
  const active: MessageCursor[] = [];
  while (queue.length > 0 || active.length > 0) {
    const r = rng();
    if (sizes.length > 0 && r < 0.15 && !writer.isBusy(controlCsid)) {
      out.push(writer.setChunkSize(sizes.shift()!, controlCsid));
      continue;
    }
    const head = queue[0];
    if (head && !writer.isBusy(head.csid) && (active.length === 0 || r < 0.5)) {
      queue.shift();
      const cursor = writer.begin(head.msg, head.csid);
      out.push(cursor.nextChunk());
      if (!cursor.done) active.push(cursor);
      continue;
    }
    if (active.length === 0) continue; // head blocked cannot happen without an active cursor; loop again
    const i = Math.floor(rng() * active.length);
    const cursor = active[i]!;
    out.push(cursor.nextChunk());
    if (cursor.done) active.splice(i, 1);
  }
  for (const s of sizes) out.push(writer.setChunkSize(s, controlCsid));
  return Buffer.concat(out);
}
