import type { HubStats, StreamHub } from '@rtmp-relay/hub';
import {
  AudioPacketType,
  MessageType,
  SoundFormat,
  VideoCodecId,
  audioCodecInfo,
  parseAudioTag,
  parseVideoTag,
  videoCodecInfo,
  type AudioCodecInfo,
  type RtmpMessage,
  type VideoCodecInfo,
} from '@rtmp-relay/rtmp';

/**
 * Live stream stats measured from what flows through ingest (a publisher's or an edge pull's messages), not from
 * what the encoder's metadata claims: codecs and picture size from the sequence headers, frame rate and keyframe
 * interval from the frames, bitrate from the bytes, in per-second buckets over a 10 s window. Per message this is a
 * tag parse and a few counter increments; the configuration parse runs once per sequence header.
 *
 * Egress comes from the hub's own byte counter (bytes handed to viewers), read once per second when a message or a
 * snapshot first lands in a new second: the delta since the last reading goes into the bucket of the second it was
 * taken in. No timers; a quiet stream just reads it less often (the bytes are kept, in an earlier bucket).
 */

/** Seconds of history: the long bitrate and frame-rate window. */
export const STATS_WINDOW_SECONDS = 10;

export type StatsProtocol = 'rtmp' | 'http-flv' | 'ws-flv' | 'hls';

export interface StreamStatsSnapshot {
  video: (VideoCodecInfo & { fps?: number; keyframeIntervalMs?: number }) | null;
  audio: AudioCodecInfo | null;
  /** Ingest bitrate (kbit/s) over the last complete second and the last 10 s. */
  ingestKbps: { last1s: number; last10s: number };
  /** Bytes per second handed to this node's viewers of the stream, over the same windows. */
  egressBytesPerSecond: { last1s: number; last10s: number };
  /** Video frames the slow-viewer policy did not send (one per viewer and frame), since the stream's hub started. */
  droppedFrames: number;
  /** Viewers disconnected as too slow, since the stream's hub started. */
  slowViewersDisconnected: number;
  viewers: Record<StatsProtocol, number>;
  /** Edges (cluster peers) pulling the stream from this node: counted apart from viewers. */
  edgePulls: number;
  /** Since the current publisher (or upstream) attached. */
  uptimeSeconds: number | null;
}

/** Legacy FLV SoundRate (2 bits) in Hz. */
const LEGACY_SOUND_RATES = [5512, 11025, 22050, 44100];
const LEGACY_VIDEO_CODECS: Record<number, string> = { [VideoCodecId.Avc]: 'avc1' };
const LEGACY_AUDIO_CODECS: Record<number, string> = { [SoundFormat.Aac]: 'mp4a', [SoundFormat.Mp3]: 'mp3' };

interface Bucket {
  second: number;
  bytes: number;
  videoFrames: number;
  egressBytes: number;
}

/** The hub counters stats read: what StreamHub.stats() returns (a function, so tests can drive them). */
export type EgressCounters = () => Pick<HubStats, 'bytesOut' | 'framesDropped' | 'slowViewersDisconnected'>;
const NO_EGRESS: EgressCounters = () => ({ bytesOut: 0, framesDropped: 0, slowViewersDisconnected: 0 });

export class StreamStats {
  private video: VideoCodecInfo | undefined;
  private audio: AudioCodecInfo | undefined;
  private readonly buckets: Bucket[] = Array.from({ length: STATS_WINDOW_SECONDS + 1 }, () => ({
    second: -1,
    bytes: 0,
    videoFrames: 0,
    egressBytes: 0,
  }));
  /** The second of the last egress reading (undefined before the first), and the hub's byte count then. */
  private egressSecond: number | undefined;
  private egressRead = 0;
  private firstSecond: number | undefined;
  private lastKeyframeTs: number | undefined;
  private keyframeIntervalMs: number | undefined;
  readonly viewers: Record<StatsProtocol, number> = { rtmp: 0, 'http-flv': 0, 'ws-flv': 0, hls: 0 };
  edgePulls = 0;

  constructor(
    private readonly counters: EgressCounters = NO_EGRESS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** One ingested message (after aggregate splitting). */
  record(msg: RtmpMessage): void {
    const second = Math.floor(this.now() / 1000);
    this.firstSecond ??= second;
    if (second !== this.egressSecond) this.readEgress(second);
    const bucket = this.bucketFor(second);
    bucket.bytes += msg.payload.length;
    if (msg.type === MessageType.Video) this.recordVideo(msg, bucket);
    else if (msg.type === MessageType.Audio) this.recordAudio(msg);
  }

  snapshot(hub: StreamHub): StreamStatsSnapshot {
    const second = Math.floor(this.now() / 1000);
    const counters = this.counters();
    if (second !== this.egressSecond) this.readEgress(second, counters.bytesOut);
    // Complete seconds only: the current one is still filling and the first one started part-way.
    const covered =
      this.firstSecond === undefined ? 0 : Math.max(0, Math.min(STATS_WINDOW_SECONDS, second - this.firstSecond - 1));
    let bytes10 = 0;
    let frames10 = 0;
    let bytes1 = 0;
    let egress10 = 0;
    let egress1 = 0;
    for (const b of this.buckets) {
      if (b.second >= second || b.second < second - covered) continue;
      bytes10 += b.bytes;
      frames10 += b.videoFrames;
      egress10 += b.egressBytes;
      if (b.second === second - 1) {
        bytes1 = b.bytes;
        egress1 = b.egressBytes;
      }
    }
    const kbps = (bytes: number, seconds: number): number =>
      seconds > 0 ? Math.round((bytes * 8) / seconds / 1000) : 0;
    const perSecond = (bytes: number, seconds: number): number => (seconds > 0 ? Math.round(bytes / seconds) : 0);
    const startedAt = hub.stats().startedAt;
    return {
      video: this.video
        ? {
            ...this.video,
            ...(covered > 0 ? { fps: Math.round((frames10 / covered) * 100) / 100 } : {}),
            ...(this.keyframeIntervalMs !== undefined ? { keyframeIntervalMs: this.keyframeIntervalMs } : {}),
          }
        : null,
      audio: this.audio ?? null,
      ingestKbps: { last1s: kbps(bytes1, covered > 0 ? 1 : 0), last10s: kbps(bytes10, covered) },
      egressBytesPerSecond: { last1s: perSecond(egress1, covered > 0 ? 1 : 0), last10s: perSecond(egress10, covered) },
      droppedFrames: counters.framesDropped,
      slowViewersDisconnected: counters.slowViewersDisconnected,
      viewers: { ...this.viewers },
      edgePulls: this.edgePulls,
      uptimeSeconds: hub.isLive && startedAt ? Math.round((Date.now() - startedAt) / 1000) : null,
    };
  }

  private bucketFor(second: number): Bucket {
    const b = this.buckets[second % this.buckets.length]!;
    if (b.second !== second) {
      b.second = second;
      b.bytes = 0;
      b.videoFrames = 0;
      b.egressBytes = 0;
    }
    return b;
  }

  /**
   * The first event of a new second reads the hub's byte count: what was written since the previous reading belongs
   * to that reading's second (whose bucket is still in the window, unless the stream was quiet for longer).
   */
  private readEgress(second: number, bytesOut = this.counters().bytesOut): void {
    const prev = this.egressSecond;
    if (prev !== undefined && second - prev < this.buckets.length)
      this.bucketFor(prev).egressBytes += bytesOut - this.egressRead;
    this.egressSecond = second;
    this.egressRead = bytesOut;
  }

  private recordVideo(msg: RtmpMessage, bucket: Bucket): void {
    if (msg.payload.length === 0) return;
    const info = parseVideoTag(msg.payload);
    const codec = info.exHeader ? info.fourCc : LEGACY_VIDEO_CODECS[info.codecId ?? -1];
    if (info.isSequenceHeader && codec) {
      this.video = videoCodecInfo(codec, msg.payload.subarray(info.payloadOffset));
      return;
    }
    if (!info.isCodedFrame) return;
    if (!this.video || this.video.codec !== (codec ?? String(info.codecId)))
      this.video = { codec: codec ?? String(info.codecId) };
    bucket.videoFrames++;
    if (info.isKeyframe) {
      if (this.lastKeyframeTs !== undefined && msg.timestamp > this.lastKeyframeTs)
        this.keyframeIntervalMs = msg.timestamp - this.lastKeyframeTs;
      this.lastKeyframeTs = msg.timestamp;
    }
  }

  private recordAudio(msg: RtmpMessage): void {
    if (msg.payload.length === 0) return;
    const info = parseAudioTag(msg.payload);
    if (info.isSilence) return;
    const codec = info.exHeader ? info.fourCc : (LEGACY_AUDIO_CODECS[info.soundFormat] ?? String(info.soundFormat));
    if (!codec) return;
    if (info.exHeader && info.packetType === AudioPacketType.MultichannelConfig) {
      // channelOrder, then channelCount: the layout the decoder will output.
      const channels = msg.payload[info.payloadOffset + 1];
      if (this.audio && channels) this.audio = { ...this.audio, channels };
      return;
    }
    if (info.isSequenceHeader) {
      this.audio = audioCodecInfo(codec, msg.payload.subarray(info.payloadOffset));
      return;
    }
    if (this.audio?.codec === codec) return;
    // No configuration record (MP3, Speex, ...): what the legacy flags byte says.
    const flags = msg.payload[0]!;
    this.audio = info.exHeader
      ? { codec }
      : { codec, sampleRate: LEGACY_SOUND_RATES[(flags >> 2) & 3]!, channels: (flags & 1) + 1 };
  }
}

const statsByHub = new WeakMap<StreamHub, StreamStats>();

/** The stats of a hub (created on first use; they go with the hub). */
export function statsOf(hub: StreamHub): StreamStats {
  let s = statsByHub.get(hub);
  if (!s) statsByHub.set(hub, (s = new StreamStats(() => hub.stats())));
  return s;
}
