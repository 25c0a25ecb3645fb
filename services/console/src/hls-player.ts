/**
 * The LL-HLS player: hls.js (MSE) in low-latency mode on the node's `/<app>/<stream>/index.m3u8`, with the same
 * start-up timings and stats as the FLV player, plus the live latency: the wall clock minus the program date time
 * (EXT-X-PROGRAM-DATE-TIME, the node's clock when the frame arrived) of the frame being shown.
 */
import Hls from 'hls.js/light';
import type { MediaInfo } from './model.js';
import { watchPlaybackStart, type PlayTimings, type PlayerEvents, type PlayerStats } from './player.js';

export function hlsSupported(): boolean {
  return Hls.isSupported();
}

/** hls.js tuned for low latency: blocking reloads and parts, and a slight speed-up to catch up with the live edge. */
const HLS_CONFIG = {
  lowLatencyMode: true,
  enableWorker: false,
  backBufferLength: 10,
  maxLiveSyncPlaybackRate: 1.2,
} as const;

export class HlsPlayer {
  private hls: Hls | undefined;
  private url = '';
  private media: MediaInfo = {};
  private timings: PlayTimings | undefined;
  private session = 0;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly events: PlayerEvents,
  ) {}

  get playing(): boolean {
    return this.hls !== undefined;
  }

  play(url: string, pressedAt = performance.now()): void {
    this.stop();
    const session = ++this.session;
    this.url = url;
    this.media = {};
    const timings: PlayTimings = { pressedAt };
    this.timings = timings;
    const video = this.video;
    const hls = new Hls(HLS_CONFIG);
    this.hls = hls;
    const current = (): boolean => session === this.session;
    const report = (): void => {
      if (current()) this.events.onTimings({ ...timings });
    };
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!current() || !data.fatal) return;
      this.events.onError(`${data.type} ${data.details}`);
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
      if (!current()) return;
      const level = hls.levels[data.level];
      this.media = {
        ...this.media,
        videoCodec: level?.videoCodec ?? this.media.videoCodec,
        audioCodec: level?.audioCodec ?? this.media.audioCodec,
      };
    });
    const on = (name: keyof HTMLMediaElementEventMap, fn: () => void): void => {
      video.addEventListener(name, fn);
      this.listeners.push(() => video.removeEventListener(name, fn));
    };
    watchPlaybackStart(video, {
      on,
      current,
      timings,
      report,
      onResize: (width, height) => {
        this.media = { ...this.media, width, height };
        this.events.onMediaInfo({ ...this.media });
      },
    });
    hls.attachMedia(video);
    hls.loadSource(url);
    video.play().catch((err: unknown) => {
      if (current()) this.events.onError(`play() refused: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  stop(): void {
    this.session++;
    for (const off of this.listeners.splice(0)) off();
    const hls = this.hls;
    this.hls = undefined;
    if (!hls) return;
    hls.detachMedia();
    hls.destroy();
  }

  /** Wall clock minus the program date time of the frame on screen, ms (undefined before the first PDT). */
  latencyMs(): number | undefined {
    const date = this.hls?.playingDate;
    return date ? Date.now() - date.getTime() : undefined;
  }

  stats(): PlayerStats | undefined {
    if (!this.hls) return undefined;
    const v = this.video;
    const quality = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : undefined;
    const b = v.buffered;
    const bufferS = b.length ? Math.max(0, b.end(b.length - 1) - v.currentTime) : 0;
    const kbps = this.hls.bandwidthEstimate;
    return {
      url: this.url,
      width: v.videoWidth,
      height: v.videoHeight,
      currentTime: v.currentTime,
      bufferS,
      decodedFrames: quality?.totalVideoFrames,
      droppedFrames: quality?.droppedVideoFrames,
      speedKBps: Number.isFinite(kbps) ? kbps / 8 / 1024 : undefined,
      media: { ...this.media },
      timings: this.timings ? { ...this.timings } : undefined,
    };
  }
}
