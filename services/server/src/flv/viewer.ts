import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HubViewer } from '@rtmp-relay/hub';
import {
  FLV_PREVIOUS_TAG_SIZE_SIZE,
  FLV_TAG_HEADER_SIZE,
  FlvTagType,
  amfProperties,
  decodeAmf0,
  encodeFlvHeader,
} from '@rtmp-relay/rtmp';

/** The part of a `ws` WebSocket the viewer uses (structural: the server has no dependency on ws's typings). */
export interface FlvWebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Buffer, options: { binary: boolean }): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'message', listener: (...args: unknown[]) => void): unknown;
  once(event: 'close', listener: (...args: unknown[]) => void): unknown;
}

/**
 * HTTP-FLV and WebSocket-FLV viewers as the hub sees them. The hub hands every FLV viewer the same Buffer for a
 * message (one FLV tag, built once per message). Nothing is copied per viewer, and a live message costs each viewer
 * one socket write, as an RTMP viewer:
 *
 * - Live messages: the hub writes a message to all its viewers in one synchronous loop, so the first FLV viewer of
 *   a protocol frames it once (an HTTP/1.1 chunk `\r\n<size>\r\n` + tag; a WebSocket binary frame, which is the
 *   same for every client since servers don't mask) and every other viewer of that protocol writes the same framed
 *   Buffer to its socket. One copy per message and protocol, none per viewer.
 * - A viewer's join burst (metadata, sequence headers, cached GOP) is its own: there the cached tags are written as
 *   they are, not copied (HTTP: behind a shared chunk-size line; WebSocket: `ws.send`, a small frame header + the
 *   same Buffer).
 *
 * The 13-byte FLV header comes first; its audio/video flags are taken from the join burst (onMetaData, sequence
 * headers, cached GOP) so that players which trust them (flv.js, mpegts.js) don't wait for a track that never comes.
 */

export type FlvProtocol = 'http-flv' | 'ws-flv';

/** What a viewer tells its owner: it is gone from the hub (the owner undoes the join's bookkeeping). */
export type FlvViewerGone = (reason: string) => void;

/** FLV header flags for a join burst: from onMetaData's codec ids and the tags present; both when nothing is known. */
export function flvHeaderFlags(tags: readonly Buffer[]): { audio: boolean; video: boolean } {
  let audio = false;
  let video = false;
  for (const tag of tags) {
    const type = tag[0]! & 0x1f;
    if (type === FlvTagType.Audio) audio = true;
    else if (type === FlvTagType.Video) video = true;
    else if (type === FlvTagType.Script) {
      const meta = metadataTracks(tag);
      audio ||= meta.audio;
      video ||= meta.video;
    }
  }
  return audio || video ? { audio, video } : { audio: true, video: true };
}

function metadataTracks(tag: Buffer): { audio: boolean; video: boolean } {
  try {
    const values = decodeAmf0(tag.subarray(FLV_TAG_HEADER_SIZE, tag.length - FLV_PREVIOUS_TAG_SIZE_SIZE));
    if (values[0] !== 'onMetaData' || values[1] === undefined) return { audio: false, video: false };
    const props = amfProperties(values[1]);
    if (!props) return { audio: false, video: false };
    const has = (k: string): boolean => Object.hasOwn(props, k) && props[k] !== null && props[k] !== undefined;
    return { audio: has('audiocodecid'), video: has('videocodecid') };
  } catch {
    return { audio: false, video: false };
  }
}

/** Parses `?codecs=av01,hvc1` into the FourCC set a viewer accepts (Enhanced RTMP codecs); none = legacy codecs only. */
export function parseCodecsQuery(value: string | null | undefined): Set<string> {
  const set = new Set<string>();
  if (!value) return set;
  for (const part of value.split(',')) {
    const fourCc = part.trim();
    if (fourCc === '*' || fourCc.length === 4) set.add(fourCc);
  }
  return set;
}

/**
 * Shared part of both FLV viewers: FourCC gating, and the join burst. The hub writes the join sequence (metadata,
 * sequence headers, GOP) between cork() and uncork() in addViewer; those tags are held (by reference) until the
 * uncork so the FLV header can be written first with the right flags. They count as backlog meanwhile, so the hub's
 * join allowance covers them.
 */
export abstract class FlvViewer implements HubViewer {
  readonly format = 'flv' as const;
  /** Unused for FLV viewers (no RTMP message stream). */
  readonly streamId = 0;
  private joinBurst: Buffer[] | undefined = [];
  private joinBytes = 0;
  private gone = false;
  /** Writing this viewer's own join burst (not a message shared with other viewers at this moment). */
  protected inJoinBurst = false;

  constructor(
    readonly id: string,
    readonly protocol: FlvProtocol,
    private readonly fourCcs: ReadonlySet<string>,
    private readonly onGone: FlvViewerGone,
  ) {}

  acceptsFourCc(fourCc: string): boolean {
    return this.fourCcs.has(fourCc) || this.fourCcs.has('*');
  }

  write(tag: Buffer): void {
    if (this.joinBurst) {
      this.joinBurst.push(tag);
      this.joinBytes += tag.length;
      return;
    }
    this.send(tag);
  }

  backlogBytes(): number {
    return this.joinBytes + this.pendingBytes();
  }

  cork(): void {
    this.corkTransport();
  }

  uncork(): void {
    if (this.joinBurst) this.flushJoin();
    this.uncorkTransport();
  }

  /** Writes the FLV header and the held join burst (idempotent; also called after addViewer, in case). */
  flushJoin(): void {
    const tags = this.joinBurst;
    if (!tags) return;
    this.joinBurst = undefined;
    this.joinBytes = 0;
    this.corkTransport();
    this.sendHeader(encodeFlvHeader(flvHeaderFlags(tags)));
    this.inJoinBurst = true;
    for (const tag of tags) this.send(tag);
    this.inJoinBurst = false;
    this.uncorkTransport();
  }

  /** Slow viewer (hub already removed it), shutdown or admin drop. */
  disconnect(reason: string): void {
    this.leave(reason);
    if (reason === 'slow_viewer') this.abort();
    else this.finish(reason);
  }

  /** Live ended: HTTP responses end (terminating chunk), WebSockets close normally; players reconnect if they like. */
  streamEnded(): void {
    this.leave('stream_ended');
    this.finish('stream_ended');
  }

  /** Never reached: an FLV viewer leaves the hub when the stream ends. */
  streamRestarted(): void {}

  /** The connection closed or is closing: undo the join once. */
  leave(reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.joinBurst = undefined;
    this.joinBytes = 0;
    this.onGone(reason);
  }

  get isGone(): boolean {
    return this.gone;
  }

  protected abstract send(tag: Buffer): void;
  protected abstract sendHeader(header: Buffer): void;
  protected abstract pendingBytes(): number;
  protected abstract corkTransport(): void;
  protected abstract uncorkTransport(): void;
  /** Ends the connection now, dropping what is queued. */
  protected abstract abort(): void;
  /** Ends the response / WebSocket normally (bounded in time). */
  protected abstract finish(reason: string): void;
}

const CRLF = Buffer.from('\r\n', 'latin1');
/** The FLV header's chunk-size line: the first chunk has no CRLF before it. */
const HEADER_CHUNK_LINE = Buffer.from(`${(13).toString(16)}\r\n`, 'latin1');
/** `\r\n<hex size>\r\n`: ends the previous chunk and starts the next; shared by every tag of the same size. */
const chunkLines = new Map<number, Buffer>();
const CHUNK_LINE_CACHE_MAX = 8192;

function chunkLine(size: number): Buffer {
  let line = chunkLines.get(size);
  if (!line) {
    if (chunkLines.size >= CHUNK_LINE_CACHE_MAX) chunkLines.clear();
    line = Buffer.from(`\r\n${size.toString(16)}\r\n`, 'latin1');
    chunkLines.set(size, line);
  }
  return line;
}

/**
 * A message framed once as an HTTP chunk (`\r\n<size>\r\n` + tag) and shared by every HTTP-FLV viewer it goes to.
 * Keyed by the hub's tag Buffer (weakly, so it lives exactly as long as the message): the hub may hand a viewer
 * several messages in a row (held audio + the next video frame) before moving to the next viewer, so a single
 * "last message" entry would miss. One write per viewer per message, like an RTMP viewer.
 */
const chunkedByTag = new WeakMap<Buffer, Buffer>();

function sharedChunk(tag: Buffer): Buffer {
  let chunk = chunkedByTag.get(tag);
  if (!chunk) {
    const line = chunkLine(tag.length);
    chunk = Buffer.allocUnsafe(line.length + tag.length);
    line.copy(chunk, 0);
    tag.copy(chunk, line.length);
    chunkedByTag.set(tag, chunk);
  }
  return chunk;
}

/** How an HTTP-FLV response is written: see HttpFlvViewer. */
type HttpMode = 'chunked' | 'plain' | 'response';

/** An unanswered graceful end is cut off after this long. */
const FINISH_TIMEOUT_MS = 5000;

/**
 * An HTTP-FLV viewer: a long-lived GET response. The response headers are sent by the caller (flushHeaders) before
 * the viewer is created. Then:
 * - HTTP/1.1 (chunked): tags go to the socket directly, each as one chunk (the shared framed message, or during the
 *   join the tag behind a shared chunk-size line); the response is ended through Node (its terminating chunk), so
 *   the connection stays reusable.
 * - HTTP/1.0 (no chunking): tags go to the socket as they are; the end of the response closes the connection.
 * - A response that has no socket yet (a pipelined request waiting behind another): through ServerResponse.write.
 */
export class HttpFlvViewer extends FlvViewer {
  private readonly mode: HttpMode;
  private readonly socket: Socket | null;
  private finishTimer: NodeJS.Timeout | undefined;

  constructor(
    id: string,
    private readonly res: ServerResponse,
    fourCcs: ReadonlySet<string>,
    onGone: FlvViewerGone,
  ) {
    super(id, 'http-flv', fourCcs, onGone);
    this.socket = res.socket;
    this.mode = !this.socket ? 'response' : res.chunkedEncoding ? 'chunked' : 'plain';
    res.once('close', () => clearTimeout(this.finishTimer));
  }

  protected send(tag: Buffer): void {
    const s = this.socket;
    if (this.mode === 'chunked') {
      if (s!.destroyed) return;
      if (this.inJoinBurst) {
        // This viewer alone: the tag as it is, behind its shared chunk-size line (no copy).
        s!.write(chunkLine(tag.length));
        s!.write(tag);
      } else {
        s!.write(sharedChunk(tag));
      }
    } else if (this.mode === 'plain') {
      if (!s!.destroyed) s!.write(tag);
    } else if (!this.res.destroyed) {
      this.res.write(tag);
    }
  }

  protected sendHeader(header: Buffer): void {
    const s = this.socket;
    if (this.mode === 'chunked') {
      if (s!.destroyed) return;
      s!.write(HEADER_CHUNK_LINE);
      s!.write(header);
    } else {
      this.send(header);
    }
  }

  protected pendingBytes(): number {
    return this.socket ? this.socket.writableLength : this.res.writableLength;
  }

  protected corkTransport(): void {
    if (this.socket) this.socket.cork();
    else this.res.cork();
  }

  protected uncorkTransport(): void {
    if (this.socket) this.socket.uncork();
    else this.res.uncork();
  }

  protected abort(): void {
    this.res.destroy();
  }

  protected finish(): void {
    const res = this.res;
    if (res.writableEnded || res.destroyed) return;
    // The last tag's chunk is still open: close it, then Node writes the terminating 0-size chunk.
    if (this.mode === 'chunked' && !this.socket!.destroyed) this.socket!.write(CRLF);
    res.end();
    this.finishTimer = setTimeout(() => res.destroy(), FINISH_TIMEOUT_MS);
    this.finishTimer.unref();
  }
}

const SEND_BINARY = { binary: true } as const;

/**
 * A message as one WebSocket binary frame (server frames are unmasked, so the frame is the same for every client),
 * shared by every WS-FLV viewer it goes to; keyed by tag, as for HTTP chunks.
 */
const framedByTag = new WeakMap<Buffer, Buffer>();

function sharedFrame(tag: Buffer): Buffer {
  let frame = framedByTag.get(tag);
  if (!frame) {
    const n = tag.length;
    const headerSize = n < 126 ? 2 : n < 0x10000 ? 4 : 10;
    frame = Buffer.allocUnsafe(headerSize + n);
    frame[0] = 0x82; // FIN, binary
    if (n < 126) {
      frame[1] = n;
    } else if (n < 0x10000) {
      frame[1] = 126;
      frame.writeUInt16BE(n, 2);
    } else {
      frame[1] = 127;
      frame.writeUInt32BE(0, 2);
      frame.writeUInt32BE(n, 6);
    }
    tag.copy(frame, headerSize);
    framedByTag.set(tag, frame);
  }
  return frame;
}

/**
 * A WebSocket-FLV viewer: the FLV header as the first binary message, then one binary message per FLV tag.
 * `socket` is the upgraded connection under `ws`: live messages are written to it as the shared frame. That is safe
 * next to `ws`'s own writes (pongs, the close frame) because `ws` writes whole frames synchronously when per-message
 * deflate is off (it is, on this server), and nothing is written here once the socket is no longer OPEN.
 */
export class WsFlvViewer extends FlvViewer {
  constructor(
    id: string,
    private readonly ws: FlvWebSocket,
    private readonly socket: Socket,
    fourCcs: ReadonlySet<string>,
    onGone: FlvViewerGone,
  ) {
    super(id, 'ws-flv', fourCcs, onGone);
  }

  protected send(tag: Buffer): void {
    if (this.ws.readyState !== 1 /* OPEN */) return;
    if (this.inJoinBurst) this.ws.send(tag, SEND_BINARY);
    else if (!this.socket.destroyed) this.socket.write(sharedFrame(tag));
  }

  protected sendHeader(header: Buffer): void {
    if (this.ws.readyState === 1 /* OPEN */) this.ws.send(header, SEND_BINARY);
  }

  protected pendingBytes(): number {
    return this.ws.bufferedAmount;
  }

  protected corkTransport(): void {
    this.socket.cork();
  }

  protected uncorkTransport(): void {
    this.socket.uncork();
  }

  protected abort(): void {
    this.ws.terminate();
  }

  protected finish(reason: string): void {
    // 1000 normal closure when the stream ended, 1001 going away otherwise (shutdown, dropped by an operator).
    // ws bounds the closing handshake itself (it destroys the socket if the peer never answers).
    if (this.ws.readyState === 0 || this.ws.readyState === 1)
      this.ws.close(reason === 'stream_ended' ? 1000 : 1001, reason.slice(0, 100));
  }
}
