import type { LoadSignal } from './load-gauge.js';

export interface HubOptions {
  /** Outgoing chunk size every viewer connection is switched to; messages are chunked with it once. */
  chunkSize: number;
  /** GOP cache bounds; past any of them the cache is dropped until the next keyframe. 0 bytes disables it. */
  gopCacheMaxBytes: number;
  gopCacheMaxMessages: number;
  /**
   * Sequence-header cache bounds (entries per codec / packet type / track, audio and video together, and the bytes
   * they retain). Past them the oldest header of a codec not in use is dropped, or the newcomer is not cached.
   * Optional so that callers building a full HubOptions need not know them (defaults below).
   */
  headerCacheMaxEntries?: number;
  headerCacheMaxBytes?: number;
  /** Audio kept for late joiners of audio-only streams. */
  audioOnlyCacheMs: number;
  /** Slow-viewer policy: past the soft bound drop non-key video; past the hard bound disconnect. */
  viewerSoftBacklogBytes: number;
  viewerSoftBacklogMs: number;
  viewerHardBacklogBytes: number;
  viewerHardBacklogMs: number;
  /**
   * Merge this many ms of messages into one write per viewer, always (0 = no fixed window: adaptiveBatchMs decides).
   * An explicit override of adaptive batching.
   */
  batchWindowMs: number;
  /**
   * Adaptive batching (when batchWindowMs is 0): write each message at once while the event loop is idle, and merge
   * this many ms of messages per viewer while it is busy (see LoadGauge). 0 = never batch.
   */
  adaptiveBatchMs?: number;
  /** Event loop utilization (0..1) at or above which adaptive batching starts; it stops below 70% of it. */
  adaptiveBusyUtilization?: number;
  /** Where the busy/idle decision comes from (default: the process-wide LoadGauge). For tests. */
  loadSignal?: LoadSignal;
  /**
   * Audio frames (about 43/s for AAC, tiny) wait for the next video frame, at most this long, and go out with it in
   * one write per viewer: writes per viewer drop ~2.4x while video latency is unchanged. 0 sends audio at once.
   */
  audioCoalesceMs: number;
  /** A new publisher of a live key replaces the current one (encoder reconnects over a half-open session). */
  allowTakeover: boolean;
  /** How long viewers wait for a publisher to come back before they are told the stream ended. */
  unpublishGraceMs: number;
}

/** A stream has a few headers (one per codec, packet type and track); an AVC/HEVC/AV1 config is under 1 KiB. */
export const DEFAULT_HEADER_CACHE_MAX_ENTRIES = 16;
export const DEFAULT_HEADER_CACHE_MAX_BYTES = 4 * 1024 * 1024;

/** Adaptive batching: the window while busy (about half a 30 fps frame interval), and when busy starts. */
export const DEFAULT_ADAPTIVE_BATCH_MS = 20;
export const DEFAULT_ADAPTIVE_BUSY_UTILIZATION = 0.5;
/** A busy loop counts as idle again below this share of the busy threshold (hysteresis). */
export const ADAPTIVE_IDLE_RATIO = 0.7;

export const DEFAULT_HUB_OPTIONS: Required<Omit<HubOptions, 'loadSignal'>> = {
  chunkSize: 4096,
  gopCacheMaxBytes: 32 * 1024 * 1024,
  gopCacheMaxMessages: 4096,
  headerCacheMaxEntries: DEFAULT_HEADER_CACHE_MAX_ENTRIES,
  headerCacheMaxBytes: DEFAULT_HEADER_CACHE_MAX_BYTES,
  audioOnlyCacheMs: 1000,
  viewerSoftBacklogBytes: 2 * 1024 * 1024,
  viewerSoftBacklogMs: 1500,
  viewerHardBacklogBytes: 8 * 1024 * 1024,
  viewerHardBacklogMs: 8000,
  batchWindowMs: 0,
  adaptiveBatchMs: DEFAULT_ADAPTIVE_BATCH_MS,
  adaptiveBusyUtilization: DEFAULT_ADAPTIVE_BUSY_UTILIZATION,
  audioCoalesceMs: 40,
  allowTakeover: true,
  unpublishGraceMs: 1000,
};

/** Counters the hub reports; the server binds them to prom-client. All optional. */
export interface HubObserver {
  messageIn?(kind: string, bytes: number): void;
  /** Bytes written to viewers (counted once per viewer write). */
  bytesOut?(bytes: number): void;
  /** A message not delivered (`slow_viewer`) or a sequence header not kept for joiners (`header_cache_full`). */
  dropped?(kind: string, reason: string): void;
  slowViewerDisconnected?(viewerId: string, reason: string): void;
  /** A publisher (local encoder or an edge's upstream pull) attached: waiting plays can start. */
  live?(key: string): void;
}
