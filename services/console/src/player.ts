/**
 * The live FLV player: mpegts.js (MSE) over HTTP-FLV or WebSocket-FLV, tuned for low start-up delay and latency
 * (no IO stash buffer, live latency chasing), plus the start-up timings the console shows: from the press of play to
 * the `playing` event, to the first frame on screen, and to the media clock advancing.
 */
import mpegts from 'mpegts.js';
import type { MediaInfo } from './model.js';

export interface PlayTimings {
  /** performance.now() when play was pressed. */
  pressedAt: number;
  /** ms from the press to the video element's first `playing` event. */
  playingMs?: number;
  /** ms from the press to the first video frame presented (requestVideoFrameCallback). */
  firstFrameMs?: number;
  /** ms from the press to currentTime first moving past its start. */
  advancingMs?: number;
}

export interface PlayerEvents {
  onMediaInfo(info: MediaInfo): void;
  onError(message: string): void;
  onTimings(t: PlayTimings): void;
}

export interface PlayerStats {
  url: string;
  width: number;
  height: number;
  currentTime: number;
  /** Seconds buffered ahead of the playhead (a floor on the latency added by the player). */
  bufferS: number;
  decodedFrames: number | undefined;
  droppedFrames: number | undefined;
  /** Download speed reported by mpegts.js, KB/s. */
  speedKBps: number | undefined;
  media: MediaInfo;
  timings: PlayTimings | undefined;
}

mpegts.LoggingControl.applyConfig({
  enableVerbose: false,
  enableDebug: false,
  enableInfo: false,
  enableWarn: true,
  enableError: true,
});

export function playerSupported(): boolean {
  return mpegts.isSupported() && mpegts.getFeatureList().mseLivePlayback;
}

export class FlvPlayer {
  private player: ReturnType<typeof mpegts.createPlayer> | undefined;
  private url = '';
  private media: MediaInfo = {};
  private speedKBps: number | undefined;
  private timings: PlayTimings | undefined;
  /** Bumped on every play/stop so callbacks of an older session are ignored. */
  private session = 0;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly events: PlayerEvents,
  ) {}

  get playing(): boolean {
    return this.player !== undefined;
  }

  play(url: string, pressedAt = performance.now()): void {
    this.stop();
    const session = ++this.session;
    this.url = url;
    this.media = {};
    this.speedKBps = undefined;
    const timings: PlayTimings = { pressedAt };
    this.timings = timings;
    const video = this.video;
    const player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url },
      {
        enableWorker: false,
        enableStashBuffer: false,
        stashInitialSize: 64 * 1024,
        lazyLoad: false,
        autoCleanupSourceBuffer: true,
        liveBufferLatencyChasing: true,
        liveBufferLatencyMaxLatency: 1.5,
        liveBufferLatencyMinRemain: 0.3,
      },
    );
    this.player = player;
    const current = (): boolean => session === this.session;
    const report = (): void => {
      if (current()) this.events.onTimings({ ...timings });
    };
    player.on(mpegts.Events.ERROR, (type: string, detail: string, info: unknown) => {
      if (!current()) return;
      const extra =
        info && typeof info === 'object' && 'msg' in info ? `: ${String((info as { msg: unknown }).msg)}` : '';
      this.events.onError(`${type} ${detail}${extra}`);
    });
    player.on(mpegts.Events.MEDIA_INFO, (info: Record<string, unknown>) => {
      if (!current()) return;
      const num = (v: unknown): number | undefined =>
        typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
      const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
      this.media = {
        ...this.media,
        videoCodec: str(info.videoCodec),
        audioCodec: str(info.audioCodec),
        width: num(info.width) ?? this.media.width,
        height: num(info.height) ?? this.media.height,
        fps: num(info.fps),
      };
      this.events.onMediaInfo({ ...this.media });
    });
    player.on(mpegts.Events.STATISTICS_INFO, (info: { speed?: number }) => {
      if (current() && typeof info.speed === 'number') this.speedKBps = info.speed;
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
    player.attachMediaElement(video);
    player.load();
    const started = player.play();
    if (started) {
      started.catch((err: unknown) => {
        if (current()) this.events.onError(`play() refused: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
  }

  stop(): void {
    this.session++;
    for (const off of this.listeners.splice(0)) off();
    const p = this.player;
    this.player = undefined;
    if (!p) return;
    try {
      p.pause();
      p.unload();
      p.detachMediaElement();
    } finally {
      p.destroy();
    }
  }

  stats(): PlayerStats | undefined {
    if (!this.player) return undefined;
    const v = this.video;
    const quality = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : undefined;
    const b = v.buffered;
    const bufferS = b.length ? Math.max(0, b.end(b.length - 1) - v.currentTime) : 0;
    return {
      url: this.url,
      width: v.videoWidth,
      height: v.videoHeight,
      currentTime: v.currentTime,
      bufferS,
      decodedFrames: quality?.totalVideoFrames,
      droppedFrames: quality?.droppedVideoFrames,
      speedKBps: this.speedKBps,
      media: { ...this.media },
      timings: this.timings ? { ...this.timings } : undefined,
    };
  }
}

/**
 * Start-up timings every player reports the same way: `playing`, the first time the picture advances, the first
 * frame shown (where the browser can tell), and the picture size when it changes. `on` adds a listener the player
 * removes when it stops; `current` is false once another play replaced this one.
 */
export function watchPlaybackStart(
  video: HTMLVideoElement,
  o: {
    on: (name: keyof HTMLMediaElementEventMap, fn: () => void) => void;
    current: () => boolean;
    timings: PlayTimings;
    report: () => void;
    onResize: (width: number, height: number) => void;
  },
): void {
  const { on, current, timings, report } = o;
  const pressedAt = timings.pressedAt;
  let startTime: number | undefined;
  on('playing', () => {
    if (timings.playingMs === undefined) {
      timings.playingMs = performance.now() - pressedAt;
      report();
    }
  });
  on('timeupdate', () => {
    startTime ??= video.currentTime;
    if (timings.advancingMs === undefined && video.currentTime > startTime) {
      timings.advancingMs = performance.now() - pressedAt;
      report();
    }
  });
  on('resize', () => {
    if (!current() || !video.videoWidth) return;
    o.onResize(video.videoWidth, video.videoHeight);
  });
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback(() => {
      if (!current() || timings.firstFrameMs !== undefined) return;
      timings.firstFrameMs = performance.now() - pressedAt;
      report();
    });
  }
}
