/**
 * HTTP-FLV and WebSocket-FLV load-test viewers: the same measurements as the light RTMP viewer (bytes, video
 * frames and keyframes, timestamps for latency), read through the header-only FlvTagWalker.
 *
 * - HTTP-FLV: `GET http://host:port/app/name.flv` with node:http (no agent pooling); "up" when the 200 response
 *   headers arrive, then every body 'data' chunk (already de-chunked by node's HTTP parser) goes to the walker.
 * - WebSocket-FLV: the `ws` client at `ws://host:port/app/name.flv` (no per-message deflate); "up" on open; each
 *   binary message (the 13-byte FLV header first, then one tag per message) goes to the same walker.
 *
 * "Play sent" (for TTFF) is when the request is written, i.e. right after the TCP connect.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { classifyVideo } from './chunk-walker.js';
import { FlvTagWalker, FlvWalkerError } from './flv-walker.js';
import { Viewer, type ViewerOptions, type ViewerSink } from './viewer.js';

export type ViewerProtocol = 'rtmp' | 'http-flv' | 'ws-flv';

export interface FlvViewerOptions extends ViewerOptions {
  /** http://host:port/app/name.flv (ws://... for WebSocket-FLV). */
  flvUrl: string;
}

const TYPE_AUDIO = 8;
const TYPE_VIDEO = 9;

/** The part of a `ws` client the viewer uses (structural: the workspace has no typings for ws). */
interface WsClient {
  readonly readyState: number;
  on(event: 'open', listener: () => void): unknown;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'close', listener: (code: number) => void): unknown;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  on(event: 'unexpected-response', listener: (req: ClientRequest, res: IncomingMessage) => void): unknown;
  terminate(): void;
}
type WsCtor = new (url: string, options: Record<string, unknown>) => WsClient;
let wsCtor: WsCtor | undefined;
function loadWs(): WsCtor {
  wsCtor ??= createRequire(import.meta.url)('ws') as WsCtor;
  return wsCtor;
}

abstract class FlvViewerBase extends Viewer {
  protected readonly walker: FlvTagWalker;
  protected readAt = 0;
  protected readonly url: string;

  constructor(id: number, opts: FlvViewerOptions, sink: ViewerSink) {
    super(id, opts, sink);
    this.url = opts.flvUrl;
    this.walker = new FlvTagWalker({
      tag: (type, timestamp, size, head) => {
        if (type !== TYPE_AUDIO && type !== TYPE_VIDEO) return;
        this.countMedia(timestamp, size);
        if (type !== TYPE_VIDEO) return;
        const v = classifyVideo(head, size);
        if (v.frame) this.onVideo(timestamp, v.keyframe, this.readAt);
      },
    });
  }

  get mediaBytes(): number {
    return this.walker.mediaBytes;
  }

  /** FLV bytes received (HTTP chunk framing / WebSocket frame headers not included). */
  get totalBytes(): number {
    return this.walker.totalBytes;
  }

  protected onData(buf: Buffer): void {
    if (this.isDone) return;
    const now = performance.now();
    this.readAt = now;
    this.lastReadAt = now;
    try {
      this.walker.push(buf);
    } catch (err) {
      this.fail(err instanceof FlvWalkerError ? err.reason : 'protocol_error');
    }
  }

  protected onEnd(): void {
    if (this.isDone) return;
    if (this.phase === 'playing' && Number.isNaN(this.endedAt)) {
      this.endedAt = performance.now();
      this.sink.ended(this, 'eof');
    }
    this.fail(this.phase === 'playing' ? 'closed_by_server' : 'closed');
  }

  stop(): void {
    if (this.isDone) return;
    this.finalBytes = this.mediaBytes;
    this.doneAt = performance.now();
    this.phase = 'stopped';
    this.close();
  }
}

export class HttpFlvViewer extends FlvViewerBase {
  private req: ClientRequest | undefined;

  start(): void {
    this.startedAt = performance.now();
    const req = httpRequest(this.url, { agent: false, headers: { connection: 'close' } });
    this.req = req;
    req.on('socket', (socket) => {
      socket.setNoDelay(true);
      socket.once('connect', () => {
        if (this.isDone) return;
        this.phase = 'play';
        this.playSentAt = performance.now();
      });
    });
    req.on('response', (res) => {
      if (this.isDone) return void res.destroy();
      if (res.statusCode !== 200) {
        this.fail(`http_${res.statusCode}`);
        return;
      }
      if (Number.isNaN(this.playSentAt)) this.playSentAt = this.startedAt;
      this.markUp(performance.now());
      res.on('data', (chunk: Buffer) => this.onData(chunk));
      res.on('end', () => this.onEnd());
      res.on('close', () => this.onEnd());
      res.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? 'response_error'));
    });
    req.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? 'socket_error'));
    req.end();
  }

  protected close(): void {
    this.req?.destroy();
  }
}

export class WsFlvViewer extends FlvViewerBase {
  private ws: WsClient | undefined;

  start(): void {
    this.startedAt = performance.now();
    const WebSocket = loadWs();
    const ws = new WebSocket(this.url.replace(/^http/, 'ws'), { perMessageDeflate: false, maxPayload: 64 << 20 });
    this.ws = ws;
    // ws writes the upgrade request once connected: count "play sent" from the start (loopback connect ~0.1 ms).
    this.phase = 'play';
    this.playSentAt = this.startedAt;
    ws.on('open', () => {
      if (!this.isDone) this.markUp(performance.now());
    });
    ws.on('message', (data) => this.onData(data));
    ws.on('unexpected-response', (_req, res) => {
      res.destroy();
      this.fail(`http_${res.statusCode}`);
    });
    ws.on('close', () => this.onEnd());
    ws.on('error', (err) => this.fail(err.code ?? 'ws_error'));
  }

  protected close(): void {
    this.ws?.terminate();
  }
}
