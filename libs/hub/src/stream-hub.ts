import { TimestampUnwrapper, type RtmpMessage } from '@rtmp-relay/rtmp';
import { HeaderCache } from './header-cache.js';
import {
  chunksFor,
  createHubMessage,
  flvTagFor,
  kindOf,
  payloadOf,
  PRIMARY_STREAM_ID,
  type HubMessage,
} from './hub-message.js';
import { JoinBurst } from './join-burst.js';
import { processLoadGauge, type LoadSignal } from './load-gauge.js';
import { stripSetDataFrame, isMetadataPayload, isClearDataFrame } from './metadata.js';
import {
  DEFAULT_HEADER_CACHE_MAX_BYTES,
  DEFAULT_HEADER_CACHE_MAX_ENTRIES,
  DEFAULT_HUB_OPTIONS,
  ADAPTIVE_IDLE_RATIO,
  type HubObserver,
  type HubOptions,
} from './options.js';
import type { HubViewer, ViewerSlot } from './viewer.js';

export interface HubPublisher {
  readonly id: string;
  /** Called when another publisher takes the stream over: close the old session. */
  kick(reason: string): void;
}

export interface HubStats {
  key: string;
  publisherId: string | undefined;
  viewers: number;
  messagesIn: number;
  bytesIn: number;
  startedAt: number | undefined;
  gopMessages: number;
  gopBytes: number;
  /** Cached sequence headers and the bytes they retain (bounded by headerCacheMaxEntries / headerCacheMaxBytes). */
  headerEntries: number;
  headerBytes: number;
  /**
   * Bytes handed to viewers' write() since the hub was created: RTMP chunks, FLV tags (before HTTP chunk or WebSocket
   * framing), join bursts included. An HLS packager is one viewer, so HLS counts once per node, not per HLS client.
   */
  bytesOut: number;
  /** Video frames not written to a viewer by the slow-viewer policy (one per viewer and frame), since creation. */
  framesDropped: number;
  /** Viewers disconnected by the slow-viewer policy since creation. */
  slowViewersDisconnected: number;
}

interface ViewerSlotInternal extends ViewerSlot {
  index: number;
}

const HEADER_KEY_LEGACY = 'legacy';
/** Adaptive batching off: never busy. */
const NEVER_BUSY: LoadSignal = { busy: false };
/** HubObserver.dropped reason: a sequence header left (or never entered) the full header cache. */
export const DROP_HEADER_CACHE_FULL = 'header_cache_full';

/**
 * One live stream: the publisher's messages go in, are classified and serialized once, cached for late joiners
 * (metadata, sequence headers, one GOP), and the same Buffers are written to every viewer. Slow viewers lose
 * non-key video first and are disconnected past a hard bound; nobody else waits for them.
 *
 * The hub keeps a single timeline that continues across publisher changes, so a message's bytes (self-contained
 * type-0 chunk headers with absolute timestamps) are right for every viewer, whenever it joined.
 */
export class StreamHub {
  private readonly options: HubOptions;
  private publisher: HubPublisher | undefined;
  private slots: ViewerSlotInternal[] = [];
  /** Slot by viewer: leaves and flag changes are O(1), so a mass disconnect isn't quadratic. */
  private readonly slotOf = new Map<HubViewer, ViewerSlotInternal>();
  private metadata: HubMessage | undefined;
  private readonly headers: HeaderCache;
  private gop: HubMessage[] = [];
  private gopBytes = 0;
  /** The join sequence (metadata, headers, GOP) as shared bytes for RTMP joiners on the primary stream id. */
  private readonly joinBurst: JoinBurst;
  /** Busy/idle decision for adaptive batching (one per process, not per viewer). */
  private readonly load: LoadSignal;
  private hasVideo = false;
  private readonly unwrapper = new TimestampUnwrapper();
  private offset: number | undefined;
  private lastHubTs: number | undefined;
  private lastMessageAt = 0;
  private ended = false;
  private endTimer: NodeJS.Timeout | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  /** Audio waiting to go out with the next video frame (shared by every viewer; one hub timer bounds the wait). */
  private pendingAudio: HubMessage[] = [];
  private audioTimer: NodeJS.Timeout | undefined;
  private messagesIn = 0;
  private bytesIn = 0;
  private startedAt: number | undefined;
  // Egress and slow-viewer counters: one integer add per write batch or drop, read by stats() (stream stats derive
  // rates from their deltas).
  private bytesOut = 0;
  private framesDropped = 0;
  private slowViewersDisconnected = 0;

  constructor(
    readonly key: string,
    options: Partial<HubOptions> = {},
    private readonly observer: HubObserver = {},
    private readonly onIdle: (hub: StreamHub) => void = () => {},
  ) {
    this.options = { ...DEFAULT_HUB_OPTIONS, ...options };
    this.headers = new HeaderCache({
      maxEntries: this.options.headerCacheMaxEntries ?? DEFAULT_HEADER_CACHE_MAX_ENTRIES,
      maxBytes: this.options.headerCacheMaxBytes ?? DEFAULT_HEADER_CACHE_MAX_BYTES,
    });
    this.joinBurst = new JoinBurst();
    const adaptive = (this.options.adaptiveBatchMs ?? 0) > 0 && this.options.batchWindowMs <= 0;
    if (this.options.loadSignal) this.load = this.options.loadSignal;
    else if (adaptive) {
      const gauge = processLoadGauge();
      const busyAbove = this.options.adaptiveBusyUtilization;
      if (busyAbove !== undefined) gauge.configure({ busyAbove, idleBelow: busyAbove * ADAPTIVE_IDLE_RATIO });
      this.load = gauge;
    } else this.load = NEVER_BUSY;
  }

  /** The batch window for the message being fanned out now: fixed, adaptive (busy loop) or none. */
  private batchWindowMs(): number {
    const o = this.options;
    if (o.batchWindowMs > 0) return o.batchWindowMs;
    const adaptive = o.adaptiveBatchMs ?? 0;
    return adaptive > 0 && this.load.busy ? adaptive : 0;
  }

  get chunkSize(): number {
    return this.options.chunkSize;
  }

  get isLive(): boolean {
    return this.publisher !== undefined;
  }

  get viewerCount(): number {
    return this.slots.length;
  }

  get currentPublisher(): HubPublisher | undefined {
    return this.publisher;
  }

  stats(): HubStats {
    return {
      key: this.key,
      publisherId: this.publisher?.id,
      viewers: this.slots.length,
      messagesIn: this.messagesIn,
      bytesIn: this.bytesIn,
      startedAt: this.startedAt,
      gopMessages: this.gop.length,
      gopBytes: this.gopBytes,
      headerEntries: this.headers.size,
      headerBytes: this.headers.totalBytes,
      bytesOut: this.bytesOut,
      framesDropped: this.framesDropped,
      slowViewersDisconnected: this.slowViewersDisconnected,
    };
  }

  /**
   * Makes `pub` the stream's publisher. If another one is live, it is kicked when takeover is allowed
   * (returns true), otherwise the newcomer is refused (returns false).
   */
  attachPublisher(pub: HubPublisher): boolean {
    const previous = this.publisher;
    if (previous && !this.options.allowTakeover) return false;
    this.publisher = pub;
    // The same publisher re-attaching is an upstream change (an edge re-pulling from a new origin).
    if (previous && previous !== pub) previous.kick('taken_over');
    this.resetForNewPublisher();
    // Whoever publishes next starts with fresh headers; viewers resume video at its first keyframe.
    for (const slot of this.slots) slot.awaitingKeyframe = true;
    clearTimeout(this.endTimer);
    this.endTimer = undefined;
    this.startedAt = Date.now();
    if (this.ended) {
      this.ended = false;
      for (const slot of this.slots) {
        slot.awaitingKeyframe = true;
        slot.viewer.streamRestarted();
      }
    }
    this.observer.live?.(this.key);
    return true;
  }

  /**
   * The publisher left. Viewers stay attached for the grace period, then are told the stream ended; `immediate`
   * skips the grace (an upstream whose own grace already ran out).
   */
  detachPublisher(pub: HubPublisher, opts: { immediate?: boolean } = {}): void {
    if (this.publisher !== pub) return;
    this.publisher = undefined;
    this.startedAt = undefined;
    this.resetForNewPublisher();
    const end = (): void => {
      this.endTimer = undefined;
      if (this.publisher) return;
      this.ended = true;
      for (const slot of [...this.slots]) slot.viewer.streamEnded();
      this.checkIdle();
    };
    if (!opts.immediate && this.options.unpublishGraceMs > 0 && this.slots.length > 0) {
      this.endTimer = setTimeout(end, this.options.unpublishGraceMs);
      this.endTimer.unref();
    } else {
      end();
    }
  }

  /** Caches are per publisher: a new one brings its own headers, and its timeline continues ours. */
  private resetForNewPublisher(): void {
    if (this.pendingAudio.length > 0) this.flushPendingAudio();
    this.metadata = undefined;
    this.headers.clear();
    this.gop = [];
    this.gopBytes = 0;
    this.joinBurst.resetGop();
    this.hasVideo = false;
    this.unwrapper.reset();
    this.offset = undefined;
  }

  /** Maps a publisher timestamp onto the hub timeline (uint32). */
  private mapTimestamp(ts: number, now: number): number {
    const unwrapped = this.unwrapper.unwrap(ts);
    if (this.offset === undefined) {
      // The first publisher passes its timestamps through; later ones continue after the last message sent,
      // advanced by the wall-clock gap so players see time pass.
      this.offset =
        this.lastHubTs === undefined
          ? 0
          : this.lastHubTs + Math.max(1, Math.round(now - this.lastMessageAt)) - unwrapped;
    }
    const hubTs = unwrapped + this.offset;
    if (this.lastHubTs === undefined || hubTs > this.lastHubTs) this.lastHubTs = hubTs;
    this.lastMessageAt = now;
    return hubTs >>> 0;
  }

  /** A message from the publisher (or the upstream pull): audio, video or data. Other types are ignored. */
  push(msg: RtmpMessage): void {
    const kind = kindOf(msg.type);
    if (!kind) return;
    const now = performance.now();
    this.messagesIn++;
    this.bytesIn += msg.payload.length;
    this.observer.messageIn?.(kind, msg.payload.length);

    let payload = msg.payload;
    if (kind === 'data') {
      if (isClearDataFrame(payload)) {
        this.metadata = undefined;
        this.joinBurst.invalidateHead();
        return;
      }
      payload = stripSetDataFrame(payload);
    }
    const m = createHubMessage(kind, msg.type, this.mapTimestamp(msg.timestamp, now), payload, this.options.chunkSize);

    if (kind === 'data') {
      if (isMetadataPayload(payload)) {
        if (this.metadata && payloadOf(this.metadata).equals(payload)) return; // encoders resend identical metadata often
        this.metadata = m;
        this.joinBurst.invalidateHead();
      }
    } else if (m.isSequenceHeader) {
      const put = this.headers.put(m.headerKey ?? HEADER_KEY_LEGACY, m);
      if (!put.changed) return;
      this.joinBurst.invalidateHead();
      for (const old of put.evicted) this.observer.dropped?.(old.kind, DROP_HEADER_CACHE_FULL);
      if (put.refused) this.observer.dropped?.(kind, DROP_HEADER_CACHE_FULL); // still sent to current viewers
      if (kind === 'video' && m.resetsDecoder) this.clearGop(); // old frames can't be decoded with the new header
    } else if (kind === 'video') {
      this.hasVideo = true;
      this.headers.noteFrame(m);
      if (m.isKeyframe) {
        this.clearGop();
        this.appendGop(m);
      } else if (this.gop.length > 0) {
        this.appendGop(m);
      }
    } else if (kind === 'audio') {
      this.headers.noteFrame(m);
      if (this.hasVideo) {
        if (this.gop.length > 0) this.appendGop(m);
      } else {
        this.appendGop(m);
        this.trimAudioOnlyCache(m.timestamp);
      }
    }
    if (kind === 'audio' && !m.isSequenceHeader && this.options.audioCoalesceMs > 0 && this.hasVideo) {
      this.pendingAudio.push(m);
      this.audioTimer ??= setTimeout(() => this.flushPendingAudio(), this.options.audioCoalesceMs);
      return;
    }
    if (this.pendingAudio.length > 0) this.fanOutWithPendingAudio(m, now);
    else this.fanOut(m, now);
  }

  /** Sends the held audio followed by `m` (if any) to every viewer in one corked write each. */
  private fanOutWithPendingAudio(m: HubMessage | undefined, now: number): void {
    const audio = this.pendingAudio;
    this.pendingAudio = [];
    clearTimeout(this.audioTimer);
    this.audioTimer = undefined;
    if (this.slots.length === 0) return;
    if (!this.batchTimer) {
      const windowMs = this.batchWindowMs();
      if (windowMs > 0) this.openBatch(windowMs);
    }
    const group = m ? [...audio, m] : audio;
    // The group's bytes, concatenated once (when the first viewer takes them) and written to every viewer that takes
    // every message of it: one write per viewer, no per-viewer cork/uncork or write list.
    let shared: Buffer | undefined;
    const sharable = !group.some((x) => x.fourCc !== undefined);
    let bytes = 0;
    for (let i = this.slots.length - 1; i >= 0; i--) {
      const slot = this.slots[i];
      if (!slot) continue;
      const v = slot.viewer;
      if (sharable && this.takesEverything(slot)) {
        if (!this.admit(slot, now)) continue; // disconnected by the slow-viewer policy
        if (!slot.dropping) {
          shared ??= Buffer.concat(group.map((x) => x.chunks));
          v.write(shared);
          bytes += shared.length;
          continue;
        }
      }
      v.cork();
      for (const x of group) if (slot.index >= 0) bytes += this.deliver(slot, x, now);
      v.uncork();
    }
    this.bytesOut += bytes;
    this.observer.bytesOut?.(bytes);
  }

  /** The common viewer: RTMP on the primary stream id, audio and video on, in step (not waiting, not dropping). */
  private takesEverything(slot: ViewerSlotInternal): boolean {
    const v = slot.viewer;
    return (
      v.format !== 'flv' &&
      v.streamId === PRIMARY_STREAM_ID &&
      slot.audio &&
      slot.video &&
      !slot.paused &&
      !slot.awaitingKeyframe &&
      !slot.dropping
    );
  }

  private flushPendingAudio(): void {
    this.audioTimer = undefined;
    if (this.pendingAudio.length > 0) this.fanOutWithPendingAudio(undefined, performance.now());
  }

  private clearGop(): void {
    this.gop = [];
    this.gopBytes = 0;
    this.joinBurst.resetGop();
  }

  private appendGop(m: HubMessage): void {
    if (this.options.gopCacheMaxBytes <= 0) return;
    this.gop.push(m);
    this.gopBytes += m.payloadLength;
    if (this.gopBytes > this.options.gopCacheMaxBytes || this.gop.length > this.options.gopCacheMaxMessages) {
      this.clearGop(); // an oversized GOP is dropped whole; late joiners then wait for the next keyframe
    } else {
      this.joinBurst.appendGop(m);
    }
  }

  private trimAudioOnlyCache(latest: number): void {
    let drop = 0;
    while (drop < this.gop.length && ((latest - this.gop[drop]!.timestamp) | 0) > this.options.audioOnlyCacheMs) drop++;
    if (drop > 0) {
      for (let i = 0; i < drop; i++) this.gopBytes -= this.gop[i]!.payloadLength;
      this.gop = this.gop.slice(drop);
      this.joinBurst.resetGop(); // audio-only: rebuilt from what is left on the next join (about a second of audio)
    }
  }

  private fanOut(m: HubMessage, now: number): void {
    if (this.slots.length === 0) return;
    if (!this.batchTimer) {
      const windowMs = this.batchWindowMs();
      if (windowMs > 0) this.openBatch(windowMs);
    }
    // Backwards, so a slot removed mid-loop (swap-remove) never makes us skip one.
    let bytes = 0;
    for (let i = this.slots.length - 1; i >= 0; i--) {
      const slot = this.slots[i];
      if (slot) bytes += this.deliver(slot, m, now);
    }
    this.bytesOut += bytes;
    this.observer.bytesOut?.(bytes); // once per message, not once per viewer
  }

  private openBatch(windowMs: number): void {
    for (const slot of this.slots) {
      slot.corked = true;
      slot.viewer.cork();
    }
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      for (const slot of this.slots) this.uncorkSlot(slot);
    }, windowMs);
  }

  private uncorkSlot(slot: ViewerSlotInternal): void {
    if (!slot.corked) return;
    slot.corked = false;
    slot.viewer.uncork();
  }

  /**
   * The slow-viewer policy's bounds for one viewer about to be written to: past the hard bound it is disconnected
   * (returns false), past the soft bound it starts dropping non-key video.
   */
  private admit(slot: ViewerSlotInternal, now: number, backlog = slot.viewer.backlogBytes()): boolean {
    const o = this.options;
    if (backlog === 0) {
      slot.lastDrainedAt = now;
      slot.joinAllowance = 0;
    } else if (backlog > slot.joinAllowance) {
      const age = now - slot.lastDrainedAt;
      const excess = backlog - slot.joinAllowance;
      if (excess > o.viewerHardBacklogBytes || age > o.viewerHardBacklogMs) {
        const v = slot.viewer;
        this.removeSlot(slot);
        this.slowViewersDisconnected++;
        this.observer.slowViewerDisconnected?.(
          v.id,
          excess > o.viewerHardBacklogBytes ? 'backlog_bytes' : 'backlog_age',
        );
        v.disconnect('slow_viewer');
        this.checkIdle();
        return false;
      }
      if (excess > o.viewerSoftBacklogBytes || age > o.viewerSoftBacklogMs) slot.dropping = true;
    }
    return true;
  }

  /** Writes `m` to one viewer under the slow-viewer policy; returns the bytes written (0 if skipped). */
  private deliver(slot: ViewerSlotInternal, m: HubMessage, now: number, joining = false): number {
    const v = slot.viewer;
    if (m.fourCc !== undefined && !v.acceptsFourCc(m.fourCc)) return 0;
    if (m.kind === 'audio' && (!slot.audio || slot.paused) && !m.isSequenceHeader) return 0;
    if (m.kind === 'video' && !m.isSequenceHeader) {
      if (!slot.video || slot.paused) return 0;
      if (slot.awaitingKeyframe) {
        if (!m.isKeyframe) return 0;
        slot.awaitingKeyframe = false;
      }
    }
    const o = this.options;
    const backlog = v.backlogBytes();
    // The catch-up burst is expected backlog, not slowness: no bounds apply while it is written.
    if (!joining && !this.admit(slot, now, backlog)) return 0;
    if (slot.dropping && m.kind === 'video' && !m.isSequenceHeader) {
      if (!m.isKeyframe) {
        this.framesDropped++;
        this.observer.dropped?.(m.kind, 'slow_viewer');
        return 0;
      }
      slot.dropping = backlog > o.viewerSoftBacklogBytes + slot.joinAllowance;
    }
    const bytes = v.format === 'flv' ? flvTagFor(m) : chunksFor(m, v.streamId, o.chunkSize);
    v.write(bytes);
    return bytes.length;
  }

  /** Adds a viewer and writes the join sequence: metadata, sequence headers, then the cached GOP. */
  addViewer(viewer: HubViewer, opts: { audio?: boolean; video?: boolean } = {}): void {
    // Held audio is already in the GOP cache: send it to the current viewers before this one joins.
    if (this.pendingAudio.length > 0) this.flushPendingAudio();
    const now = performance.now();
    const slot: ViewerSlotInternal = {
      viewer,
      index: this.slots.length,
      lastDrainedAt: now,
      dropping: false,
      awaitingKeyframe: true,
      audio: opts.audio ?? true,
      video: opts.video ?? true,
      paused: false,
      joinAllowance: 0,
      corked: false,
    };
    this.slots.push(slot);
    this.slotOf.set(viewer, slot);
    viewer.cork();
    const headers = (): HubMessage[] =>
      [...(this.metadata ? [this.metadata] : []), ...this.headers.values('video'), ...this.headers.values('audio')].map(
        (h) => this.notAfterGopStart(h),
      );
    let bytes = 0;
    // The common joiner (RTMP, primary stream id, all tracks) shares the join bytes with every other joiner of this GOP.
    const shared =
      viewer.format !== 'flv' && viewer.streamId === PRIMARY_STREAM_ID && slot.audio && slot.video
        ? this.joinBurst.take(headers, this.gop, (f) => viewer.acceptsFourCc(f))
        : undefined;
    if (shared) {
      if (shared.head.length > 0) viewer.write(shared.head);
      if (shared.gop.length > 0) viewer.write(shared.gop);
      slot.awaitingKeyframe = shared.awaitingKeyframe;
      bytes = shared.head.length + shared.gop.length;
    } else {
      for (const h of headers()) bytes += this.deliver(slot, h, now, true);
      for (const m of this.gop) bytes += this.deliver(slot, m, now, true);
    }
    this.bytesOut += bytes;
    this.observer.bytesOut?.(bytes);
    // Allowed on top of the bounds until the socket drains once.
    slot.joinAllowance = viewer.backlogBytes();
    viewer.uncork();
  }

  /**
   * Join headers must not be stamped later than the first cached frame (a header that changed mid-GOP is): such a
   * header is re-chunked once for this join with the GOP's first timestamp. Rare, so not shared.
   */
  private notAfterGopStart(h: HubMessage): HubMessage {
    const first = this.gop[0];
    if (!first || ((h.timestamp - first.timestamp) | 0) <= 0) return h;
    return createHubMessage(h.kind, h.type, first.timestamp, payloadOf(h), this.options.chunkSize);
  }

  removeViewer(viewer: HubViewer): void {
    const slot = this.slotOf.get(viewer);
    if (!slot) return;
    this.removeSlot(slot);
    this.checkIdle();
  }

  /** Pause/unpause, receiveAudio, receiveVideo. Video resumes at the next keyframe. */
  setViewerFlags(viewer: HubViewer, flags: { paused?: boolean; audio?: boolean; video?: boolean }): void {
    const slot = this.slotOf.get(viewer);
    if (!slot) return;
    const resumeVideo = (flags.paused === false && slot.paused) || (flags.video === true && !slot.video);
    if (flags.paused !== undefined) slot.paused = flags.paused;
    if (flags.audio !== undefined) slot.audio = flags.audio;
    if (flags.video !== undefined) slot.video = flags.video;
    if (resumeVideo) slot.awaitingKeyframe = true;
  }

  private removeSlot(slot: ViewerSlotInternal): void {
    const i = slot.index;
    if (i < 0) return;
    this.uncorkSlot(slot); // a removed viewer's connection may live on (deleteStream, then another play)
    this.slotOf.delete(slot.viewer);
    const last = this.slots.pop()!;
    if (last !== slot) {
      this.slots[i] = last;
      last.index = i;
    }
    slot.index = -1;
  }

  private checkIdle(): void {
    if (!this.publisher && this.slots.length === 0 && !this.endTimer) this.onIdle(this);
  }

  /** Disconnects the viewers whose id matches (all by default), whatever their protocol. Returns how many. */
  disconnectViewers(reason: string, match: (viewerId: string) => boolean = () => true): number {
    let n = 0;
    for (const slot of [...this.slots]) {
      if (!match(slot.viewer.id)) continue;
      this.removeSlot(slot);
      slot.viewer.disconnect(reason);
      n++;
    }
    if (n > 0) this.checkIdle();
    return n;
  }

  /** Disconnects everyone (shutdown or admin drop). */
  close(reason: string): void {
    clearTimeout(this.endTimer);
    clearTimeout(this.batchTimer);
    clearTimeout(this.audioTimer);
    this.pendingAudio = [];
    this.endTimer = undefined;
    const pub = this.publisher;
    this.publisher = undefined;
    pub?.kick(reason);
    for (const slot of [...this.slots]) {
      this.removeSlot(slot);
      slot.viewer.disconnect(reason);
    }
    this.onIdle(this);
  }
}
