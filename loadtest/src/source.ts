/**
 * The load generator's stream source: an FLV file (given, or generated once with ffmpeg and cached under
 * os.tmpdir()), published in real time and looped with continuous timestamps.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAmf0, MessageType, readFlvFile, RtmpClient, type AmfObject } from '@rtmp-relay/rtmp';
import { classifyVideo } from './chunk-walker.js';

export interface GenerateOptions {
  width: number;
  height: number;
  fps: number;
  seconds: number;
  videoKbps: number;
  audioKbps: number;
  gopSeconds: number;
}

export const DEFAULT_GENERATE: GenerateOptions = {
  width: 1280,
  height: 720,
  fps: 30,
  seconds: 10,
  videoKbps: 2500,
  audioKbps: 128,
  gopSeconds: 2,
};

export interface SourceTag {
  type: number;
  /** Milliseconds from the first media tag of the file. */
  offset: number;
  data: Buffer;
  keyframe: boolean;
}

export interface FlvSource {
  path: string;
  metadata: AmfObject | undefined;
  /** Sequence headers (sent once, before the first frame). */
  headers: SourceTag[];
  /** Audio and video frames in send order. */
  tags: SourceTag[];
  /** One loop's length: last offset + one video frame interval. */
  loopMs: number;
  /** Audio + video payload bytes per loop. */
  bytesPerLoop: number;
  /** Audio + video payload bytes per second of stream. */
  bytesPerSecond: number;
}

/** Runs ffmpeg once per parameter set; later calls return the cached file. */
export async function generateFlv(
  opts: Partial<GenerateOptions> = {},
  log: (line: string) => void = () => {},
): Promise<string> {
  const o = { ...DEFAULT_GENERATE, ...opts };
  const name = `rtmp-loadtest-${o.width}x${o.height}-${o.fps}fps-${o.videoKbps}k-a${o.audioKbps}k-${o.seconds}s-g${o.gopSeconds}.flv`;
  const path = join(tmpdir(), name);
  if (existsSync(path) && statSync(path).size > 0) return path;
  const partial = `${path}.${process.pid}.partial`;
  const gop = Math.max(1, Math.round(o.fps * o.gopSeconds));
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc=size=${o.width}x${o.height}:rate=${o.fps}:duration=${o.seconds}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=44100:duration=${o.seconds}`,
    // Noise so x264 actually spends the bitrate (testsrc alone compresses to almost nothing).
    '-vf',
    'noise=alls=10:allf=t',
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-tune',
    'zerolatency',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    `${o.videoKbps}k`,
    '-maxrate',
    `${o.videoKbps}k`,
    '-bufsize',
    `${o.videoKbps}k`,
    '-g',
    String(gop),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    '-c:a',
    'aac',
    '-b:a',
    `${o.audioKbps}k`,
    '-ar',
    '44100',
    '-ac',
    '2',
    '-f',
    'flv',
    partial,
  ];
  log(
    `generating ${path} with ffmpeg (${o.width}x${o.height} ${o.fps} fps, ${o.videoKbps}k + ${o.audioKbps}k, ${o.seconds} s, GOP ${o.gopSeconds} s)`,
  );
  await new Promise<void>((resolve, reject) => {
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ffmpeg: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`ffmpeg failed (${signal ?? code}): ${err.trim().slice(-2000)}`));
    });
  }).catch((e: unknown) => {
    try {
      unlinkSync(partial);
    } catch {
      /* not there */
    }
    throw e;
  });
  renameSync(partial, path);
  return path;
}

function isAudioSequenceHeader(data: Buffer): boolean {
  if (data.length < 2) return false;
  const format = data[0]! >> 4;
  if (format === 9) {
    // Enhanced audio: low nibble packet type 0 = SequenceStart.
    return (data[0]! & 0x0f) === 0;
  }
  return format === 10 && data[1] === 0; // AAC sequence header
}

/** Reads an FLV file into a loopable source. */
export function loadFlv(path: string): FlvSource {
  const { tags } = readFlvFile(readFileSync(path), { strictPreviousTagSize: false });
  let metadata: AmfObject | undefined;
  const headers: SourceTag[] = [];
  const media: Array<{ type: number; timestamp: number; data: Buffer; keyframe: boolean }> = [];
  for (const t of tags) {
    if (t.type === MessageType.DataAmf0) {
      if (metadata) continue;
      try {
        const values = decodeAmf0(t.data);
        const i = values.findIndex((v) => v === 'onMetaData');
        const obj = i >= 0 ? values[i + 1] : undefined;
        if (obj && typeof obj === 'object' && !Array.isArray(obj) && !Buffer.isBuffer(obj)) metadata = obj as AmfObject;
      } catch {
        /* unreadable metadata: send none */
      }
      continue;
    }
    if (t.type === MessageType.Video) {
      const v = classifyVideo(t.data, t.data.length);
      if (v.sequenceHeader) {
        if (!headers.some((h) => h.type === t.type))
          headers.push({ type: t.type, offset: 0, data: t.data, keyframe: false });
        continue;
      }
      if (!v.frame) continue;
      media.push({ type: t.type, timestamp: t.timestamp, data: t.data, keyframe: v.keyframe });
    } else if (t.type === MessageType.Audio) {
      if (isAudioSequenceHeader(t.data)) {
        if (!headers.some((h) => h.type === t.type))
          headers.push({ type: t.type, offset: 0, data: t.data, keyframe: false });
        continue;
      }
      media.push({ type: t.type, timestamp: t.timestamp, data: t.data, keyframe: false });
    }
  }
  if (!media.some((m) => m.type === MessageType.Video)) throw new Error(`${path}: no video frames`);
  // Start the loop at the first keyframe so every loop (and every late joiner) begins decodable.
  const firstKey = media.findIndex((m) => m.type === MessageType.Video && m.keyframe);
  const frames = firstKey > 0 ? media.slice(firstKey) : media;
  const t0 = frames[0]!.timestamp;
  const out: SourceTag[] = frames.map((m) => ({
    type: m.type,
    offset: Math.max(0, m.timestamp - t0),
    data: m.data,
    keyframe: m.keyframe,
  }));
  out.sort((a, b) => a.offset - b.offset);
  const videoOffsets = out.filter((t) => t.type === MessageType.Video).map((t) => t.offset);
  const deltas = videoOffsets
    .slice(1)
    .map((v, i) => v - videoOffsets[i]!)
    .filter((d) => d > 0)
    .sort((a, b) => a - b);
  const frameMs = deltas.length ? deltas[Math.floor(deltas.length / 2)]! : 33;
  const loopMs = out[out.length - 1]!.offset + frameMs;
  const bytesPerLoop = out.reduce((s, t) => s + t.data.length, 0);
  return { path, metadata, headers, tags: out, loopMs, bytesPerLoop, bytesPerSecond: (bytesPerLoop * 1000) / loopMs };
}

export interface PublisherStats {
  connectedAt: number;
  firstFrameAt: number;
  /** Audio + video payload bytes written. */
  bytesSent: number;
  /** Timestamp of the last audio/video message written (-1 before the first). */
  lastTimestamp: number;
  messagesSent: number;
  videoFramesSent: number;
  loops: number;
  /** Sends later than their due time by more than 50 ms (the load generator's own event loop lagging). */
  lateSends: number;
  maxLateMs: number;
  /** socket.write returned false (the server reads slower than real time). */
  backpressureEvents: number;
}

/**
 * Publishes a source in real time with RtmpClient, looping with continuous timestamps starting at 0, and records
 * the send time of every video timestamp (for publish-to-view latency).
 */
export class PacedPublisher {
  readonly sentVideo = new Map<number, number>();
  /** Told every video send (timestamp, performance.now()): the load runner shares them with its viewer threads. */
  onVideoSent: ((ts: number, at: number) => void) | undefined;
  readonly stats: PublisherStats = {
    connectedAt: NaN,
    firstFrameAt: NaN,
    bytesSent: 0,
    lastTimestamp: -1,
    messagesSent: 0,
    videoFramesSent: 0,
    loops: 0,
    lateSends: 0,
    maxLateMs: 0,
    backpressureEvents: 0,
  };
  private client: RtmpClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private startAt = 0;
  private loop = 0;
  private index = 0;
  private stopped = false;
  /** Set when the connection closed on its own. */
  closedReason: string | undefined;

  constructor(
    readonly url: string,
    readonly source: FlvSource,
    private readonly opts: { connectTimeoutMs: number; chunkSize?: number; keepSentMs?: number } = {
      connectTimeoutMs: 10_000,
    },
  ) {}

  async start(): Promise<void> {
    const client = await RtmpClient.connect(this.url, {
      connectTimeoutMs: this.opts.connectTimeoutMs,
      readTimeoutMs: 0,
      chunkSize: this.opts.chunkSize ?? 4096,
    });
    this.client = client;
    client.on('close', (reason) => {
      if (!this.stopped) this.closedReason = reason;
      clearTimeout(this.timer);
    });
    await client.publish(undefined, this.opts.connectTimeoutMs);
    this.stats.connectedAt = performance.now();
    if (this.source.metadata) client.sendMetadata(this.source.metadata);
    for (const h of this.source.headers) client.sendMedia(h.type, 0, h.data);
    this.startAt = performance.now();
    this.tick();
  }

  private tick(): void {
    this.timer = undefined;
    const client = this.client;
    if (this.stopped || !client || client.closed) return;
    const { tags, loopMs } = this.source;
    const now = performance.now();
    for (;;) {
      const tag = tags[this.index]!;
      const rel = this.loop * loopMs + tag.offset;
      const due = this.startAt + rel;
      if (due > now) {
        this.timer = setTimeout(() => this.tick(), Math.max(1, Math.floor(due - now)));
        return;
      }
      const late = now - due;
      if (late > 50) this.stats.lateSends++;
      if (late > this.stats.maxLateMs) this.stats.maxLateMs = late;
      const ts = Math.round(rel) >>> 0;
      const sentAt = performance.now();
      if (tag.type === MessageType.Video) {
        this.sentVideo.set(ts, sentAt);
        this.onVideoSent?.(ts, sentAt);
        this.stats.videoFramesSent++;
        if (Number.isNaN(this.stats.firstFrameAt)) this.stats.firstFrameAt = sentAt;
      }
      if (!client.sendMedia(tag.type, ts, tag.data)) this.stats.backpressureEvents++;
      this.stats.bytesSent += tag.data.length;
      this.stats.lastTimestamp = ts;
      this.stats.messagesSent++;
      this.index++;
      if (this.index >= tags.length) {
        this.index = 0;
        this.loop++;
        this.stats.loops = this.loop;
      }
    }
  }

  /** Forgets send times older than `keepMs` (called once a second). */
  prune(keepMs = this.opts.keepSentMs ?? 60_000): void {
    const limit = performance.now() - keepMs;
    for (const [ts, at] of this.sentVideo) {
      if (at >= limit) break;
      this.sentVideo.delete(ts);
    }
  }

  get closed(): boolean {
    return this.client?.closed ?? true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.client?.close();
  }
}
