/**
 * Load-test viewers. The light viewer speaks just enough RTMP to play (handshake with the library's
 * ClientHandshake, connect / createStream / play encoded with the library's AMF0 and chunk writer), then reads
 * with one shared buffer (net `onread`) through the header-only ChunkWalker: no payload is copied or assembled,
 * so one process can hold thousands of viewers. The client viewer uses the library's RtmpClient end to end
 * (full ChunkReader, whole payloads): a reference to cross-check the light one, and much heavier.
 */
import { connect as netConnect, type Socket } from 'node:net';
import {
  acknowledgement,
  ClientHandshake,
  decodeAmf0,
  encodeAmf0,
  encodeMessageChunks,
  MessageType,
  pingResponse,
  RtmpClient,
  setBufferLength,
  windowAckSize,
  type AmfObject,
  type AmfValue,
  type RtmpMessage,
  type RtmpUrl,
} from '@rtmp-relay/rtmp';
import { ChunkWalker, ChunkWalkerError, classifyVideo } from './chunk-walker.js';

export type ViewerPhase = 'tcp' | 'handshake' | 'connect' | 'create_stream' | 'play' | 'playing' | 'failed' | 'stopped';

/** What the load runner learns from a viewer. Calls are synchronous and must be cheap. */
export interface ViewerSink {
  up(v: Viewer): void;
  failed(v: Viewer, reason: string): void;
  /** A coded video frame (a keyframe when `keyframe`) finished arriving at `now` (performance.now()). */
  videoFrame(v: Viewer, timestamp: number, now: number, keyframe: boolean): void;
  /** A gap of more than the stall threshold between two video frames ended at `now`. */
  stall(v: Viewer, gapMs: number, now: number): void;
  /** UnpublishNotify / Play.Stop / StreamEOF while playing. */
  ended(v: Viewer, reason: string): void;
}

/** Stream-timestamp bounds of the measurement window, shared by all viewers and moved by the runner. */
export interface TimestampWindow {
  /** Exclusive lower bound (Infinity until the window opens). */
  t0: number;
  /** Inclusive upper bound (Infinity until the window closes). */
  t1: number;
}

export interface ViewerOptions {
  target: RtmpUrl;
  window: TimestampWindow;
  connectTimeoutMs: number;
  stallMs: number;
}

/** Common state of both viewer kinds; all times are performance.now() ms, NaN until they happen. */
export abstract class Viewer {
  phase: ViewerPhase = 'tcp';
  failReason: string | undefined;
  startedAt = NaN;
  playSentAt = NaN;
  upAt = NaN;
  firstVideoAt = NaN;
  firstKeyframeAt = NaN;
  lastVideoAt = NaN;
  lastReadAt = NaN;
  endedAt = NaN;
  /** Arrival of the last frame published before this viewer's play (the server's GOP cache burst). */
  lastCachedFrameAt = NaN;
  /** When the viewer failed or was stopped. */
  doneAt = NaN;
  stalls = 0;
  /** Payload bytes of complete audio/video messages whose timestamp is inside the window. */
  windowTsBytes = 0;
  /** Media bytes at the start of the measurement window (set by the runner). */
  windowStartBytes = NaN;
  /** Media bytes when the viewer failed (frozen). */
  finalBytes = NaN;

  constructor(
    readonly id: number,
    protected readonly opts: ViewerOptions,
    protected readonly sink: ViewerSink,
  ) {}

  abstract start(): void;
  abstract stop(): void;
  /** Audio + video payload bytes received so far. */
  abstract get mediaBytes(): number;
  /** Every byte received so far (handshake and chunk headers included). */
  abstract get totalBytes(): number;

  get isUp(): boolean {
    return this.phase === 'playing';
  }

  get isDone(): boolean {
    return this.phase === 'failed' || this.phase === 'stopped';
  }

  protected countMedia(timestamp: number, length: number): void {
    const w = this.opts.window;
    if (timestamp > w.t0 && timestamp <= w.t1) this.windowTsBytes += length;
  }

  protected onVideo(timestamp: number, keyframe: boolean, now: number): void {
    if (Number.isNaN(this.firstVideoAt)) this.firstVideoAt = now;
    if (keyframe && Number.isNaN(this.firstKeyframeAt)) this.firstKeyframeAt = now;
    const last = this.lastVideoAt;
    if (!Number.isNaN(last) && now - last > this.opts.stallMs) {
      this.stalls++;
      this.sink.stall(this, now - last, now);
    }
    this.lastVideoAt = now;
    this.sink.videoFrame(this, timestamp, now, keyframe);
  }

  protected markUp(now: number): void {
    if (this.phase === 'playing' || this.isDone) return;
    this.phase = 'playing';
    this.upAt = now;
    this.sink.up(this);
  }

  fail(reason: string): void {
    if (this.isDone) return;
    const wasPhase = this.phase;
    this.finalBytes = this.mediaBytes;
    this.doneAt = performance.now();
    this.phase = 'failed';
    this.failReason = wasPhase === 'playing' ? reason : `${wasPhase}:${reason}`;
    this.close();
    this.sink.failed(this, this.failReason);
  }

  protected abstract close(): void;
}

const CHUNK_SIZE_OUT = 128;
const CSID_CONTROL = 2;
const CSID_COMMAND = 3;
const CSID_PLAY = 8;
const TXN_CONNECT = 1;
const TXN_CREATE_STREAM = 2;
const DEFAULT_WINDOW = 2_500_000;

/** One 64 KiB read buffer for every light viewer: reads are handled synchronously, nothing keeps a reference. */
let sharedReadBuffer: Buffer | undefined;

function statusCode(args: AmfValue[]): string {
  const info = args[0];
  if (info && typeof info === 'object' && !Array.isArray(info) && !Buffer.isBuffer(info))
    return String((info as AmfObject)['code'] ?? '');
  return '';
}

export class LightViewer extends Viewer {
  private socket: Socket | undefined;
  private handshake: ClientHandshake | undefined;
  private readonly walker: ChunkWalker;
  private streamId = 0;
  private readAt = 0;
  private peerWindow = DEFAULT_WINDOW;
  private lastAck = 0;

  constructor(id: number, opts: ViewerOptions, sink: ViewerSink) {
    super(id, opts, sink);
    this.walker = new ChunkWalker({
      media: (type, timestamp, _streamId, length, head) => {
        this.countMedia(timestamp, length);
        if (type !== MessageType.Video) return;
        const v = classifyVideo(head, length);
        if (v.frame) this.onVideo(timestamp, v.keyframe, this.readAt);
      },
      message: (type, _ts, streamId, payload) => this.onMessage(type, streamId, payload),
    });
  }

  get mediaBytes(): number {
    return this.walker.mediaBytes;
  }

  get totalBytes(): number {
    return this.walker.totalBytes;
  }

  start(): void {
    this.startedAt = performance.now();
    sharedReadBuffer ??= Buffer.allocUnsafe(64 * 1024);
    const { host, port } = this.opts.target;
    const socket = netConnect({
      host,
      port,
      noDelay: true,
      onread: { buffer: sharedReadBuffer, callback: (n: number, buf: Uint8Array) => this.onRead(buf as Buffer, n) },
    });
    this.socket = socket;
    socket.on('connect', () => {
      if (this.isDone) return;
      this.phase = 'handshake';
      this.handshake = new ClientHandshake({ mode: 'simple' });
      socket.write(this.handshake.start());
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? 'socket_error'));
    socket.on('close', () => {
      if (!this.isDone) this.fail(this.phase === 'playing' ? 'closed_by_server' : 'closed');
    });
  }

  private onRead(buf: Buffer, n: number): boolean {
    if (this.isDone) return false;
    const now = performance.now();
    this.readAt = now;
    this.lastReadAt = now;
    try {
      if (this.handshake) {
        // The handshake may keep references to its input: give it a copy of the shared buffer.
        const step = this.handshake.push(Buffer.from(buf.subarray(0, n)));
        if (step.reply) this.socket!.write(step.reply);
        if (!step.done) return true;
        this.handshake = undefined;
        this.phase = 'connect';
        this.sendConnect();
        if (step.rest && step.rest.length > 0) this.walker.push(step.rest);
      } else {
        this.walker.push(buf, 0, n);
      }
      const total = this.walker.totalBytes;
      if (!this.handshake && total - this.lastAck >= this.peerWindow / 2) {
        this.lastAck = total;
        this.send(acknowledgement(total % 0x1_0000_0000), CSID_CONTROL);
      }
    } catch (err) {
      this.fail(
        err instanceof ChunkWalkerError ? err.reason : ((err as { reason?: string }).reason ?? 'protocol_error'),
      );
      return false;
    }
    return true;
  }

  private send(msg: RtmpMessage, csid: number): void {
    if (this.isDone || !this.socket) return;
    this.socket.write(encodeMessageChunks(msg, csid, CHUNK_SIZE_OUT));
  }

  private command(streamId: number, ...values: AmfValue[]): void {
    this.send(
      { type: MessageType.CommandAmf0, streamId, timestamp: 0, payload: encodeAmf0(...values) },
      streamId ? CSID_PLAY : CSID_COMMAND,
    );
  }

  private sendConnect(): void {
    const t = this.opts.target;
    this.command(0, 'connect', TXN_CONNECT, {
      app: t.app,
      flashVer: 'LNX 9,0,124,2',
      tcUrl: t.tcUrl,
      fpad: false,
      capabilities: 15,
      audioCodecs: 4071,
      videoCodecs: 252,
      videoFunction: 1,
    });
  }

  private onMessage(type: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case MessageType.CommandAmf0:
      case MessageType.CommandAmf3:
        this.onCommand(decodeAmf0(type === MessageType.CommandAmf3 ? payload.subarray(1) : payload));
        return;
      case MessageType.UserControl: {
        if (payload.length < 6) return;
        const event = payload.readUInt16BE(0);
        const value = payload.readUInt32BE(2);
        if (event === 6) this.send(pingResponse(value), CSID_CONTROL);
        else if (event === 1 && this.phase === 'playing' && value === this.streamId) this.markEnded('stream_eof');
        return;
      }
      case MessageType.WindowAckSize:
        if (payload.length >= 4 && payload.readUInt32BE(0) > 0) this.peerWindow = payload.readUInt32BE(0);
        return;
      case MessageType.SetPeerBandwidth:
        if (payload.length >= 5 && payload[4] !== 1) this.send(windowAckSize(payload.readUInt32BE(0)), CSID_CONTROL);
        return;
      default:
        void streamId;
    }
  }

  private onCommand(values: AmfValue[]): void {
    const [name, txn, , ...args] = values;
    if (name === '_result' || name === '_error') {
      if (txn === TXN_CONNECT && this.phase === 'connect') {
        const code = statusCode(args);
        if (name === '_error' || code !== 'NetConnection.Connect.Success')
          return this.fail(`rejected${code ? `:${code}` : ''}`);
        this.send(windowAckSize(DEFAULT_WINDOW), CSID_CONTROL);
        this.phase = 'create_stream';
        this.command(0, 'createStream', TXN_CREATE_STREAM, null);
      } else if (txn === TXN_CREATE_STREAM && this.phase === 'create_stream') {
        const id = args[0];
        if (name === '_error' || typeof id !== 'number' || id < 1) return this.fail('rejected');
        this.streamId = id;
        this.phase = 'play';
        this.playSentAt = performance.now();
        this.command(id, 'play', 0, null, this.opts.target.stream, -1000);
        this.send(setBufferLength(id, 3000), CSID_CONTROL);
      }
      return;
    }
    if (name === 'onStatus') {
      const code = statusCode(args);
      if (code === 'NetStream.Play.Start') this.markUp(this.readAt);
      else if (code === 'NetStream.Play.UnpublishNotify' || code === 'NetStream.Play.Stop') {
        if (this.phase === 'playing') this.markEnded(code);
      } else if (/Failed|NotFound|BadName|Rejected|Error/i.test(code)) this.fail(`rejected:${code}`);
    }
  }

  private markEnded(reason: string): void {
    if (Number.isNaN(this.endedAt)) {
      this.endedAt = performance.now();
      this.sink.ended(this, reason);
    }
  }

  protected close(): void {
    this.socket?.destroy();
  }

  stop(): void {
    if (this.isDone) return;
    this.finalBytes = this.mediaBytes;
    this.doneAt = performance.now();
    this.phase = 'stopped';
    this.socket?.destroy();
  }
}

/** A viewer on the library's RtmpClient (full chunk reassembly): heavier, for cross-checks. */
export class ClientViewer extends Viewer {
  private client: RtmpClient | undefined;
  private media = 0;
  private stopped = false;

  get mediaBytes(): number {
    return this.media;
  }

  get totalBytes(): number {
    return this.client?.connection.bytesReceived ?? 0;
  }

  start(): void {
    this.startedAt = performance.now();
    const { target } = this.opts;
    const url = `rtmp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}/${target.app}/${target.stream}`;
    void (async () => {
      this.phase = 'connect';
      const client = await RtmpClient.connect(url, { connectTimeoutMs: this.opts.connectTimeoutMs, readTimeoutMs: 0 });
      this.client = client;
      if (this.stopped) return client.close();
      client.on('media', (msg) => {
        const now = performance.now();
        this.lastReadAt = now;
        if (msg.type !== MessageType.Audio && msg.type !== MessageType.Video) return;
        this.media += msg.payload.length;
        this.countMedia(msg.timestamp, msg.payload.length);
        if (msg.type === MessageType.Video) {
          const v = classifyVideo(msg.payload, msg.payload.length);
          if (v.frame) this.onVideo(msg.timestamp, v.keyframe, now);
        }
      });
      client.on('end', (reason) => {
        if (Number.isNaN(this.endedAt)) {
          this.endedAt = performance.now();
          this.sink.ended(this, reason);
        }
      });
      client.on('close', (reason) => {
        if (!this.isDone) this.fail(this.phase === 'playing' ? 'closed_by_server' : reason);
      });
      this.phase = 'play';
      this.playSentAt = performance.now();
      await client.play(undefined, this.opts.connectTimeoutMs);
      this.markUp(performance.now());
    })().catch((err: unknown) => {
      const e = err as { code?: string; reason?: string; message?: string };
      this.fail(e.code ?? e.reason ?? 'error');
    });
  }

  protected close(): void {
    this.client?.close();
  }

  stop(): void {
    this.stopped = true;
    if (this.isDone) return;
    this.finalBytes = this.mediaBytes;
    this.doneAt = performance.now();
    this.phase = 'stopped';
    this.client?.close();
  }
}
