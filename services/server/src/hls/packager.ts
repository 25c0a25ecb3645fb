/**
 * CMAF packaging of one stream: media events (decoder configurations and samples on the hub timeline, in ms) in,
 * an init segment and a bounded window of media segments made of partial segments out. One packager per stream per
 * node, shared by every HLS viewer of that node: each part is built once and served as the same Buffer to everyone.
 *
 * - Segments start at keyframes: a segment is closed at the first keyframe once it is at least the target long
 *   (so it follows the encoder's GOP: a 4 s GOP gives 4 s segments), or at once when a codec configuration changed
 *   (a new init segment, after EXT-X-DISCONTINUITY).
 * - Parts are cut at sample boundaries so that none exceeds the part target (given a steady frame rate).
 * - The last video frame is held until the next one arrives (its duration is the difference); audio durations come
 *   from the codec (1024 samples per AAC frame, the TOC of each Opus packet) and are accumulated exactly, re-synced
 *   to the message timestamps only when they drift apart: forward (a gap in the audio), or by dropping frames that
 *   fall behind what was already packaged (audio never overlaps itself).
 * - Gaps (a publisher that reconnected: the hub timeline advanced by the wall-clock gap) are collapsed, so media
 *   timestamps stay continuous across segments and reconnects; EXT-X-PROGRAM-DATE-TIME keeps wall-clock time.
 */
import { fragment, type FragmentSample } from './fragment.js';
import { initSegment } from './init.js';
import {
  AAC_FRAME_SAMPLES,
  opusPacketSamples,
  trackOf,
  type CodecConfig,
  type MediaSample,
  type TrackInfo,
  type TrackKind,
} from './media.js';

export interface PackagerOptions {
  /** Target segment duration (segments are cut at the first keyframe past it). */
  segmentMs: number;
  /** Target part duration. */
  partMs: number;
  /** Complete segments kept (and listed) besides the one being built. */
  windowSegments: number;
  /** Wall clock (epoch ms), for EXT-X-PROGRAM-DATE-TIME. */
  now?: () => number;
}

export interface Part {
  msn: number;
  index: number;
  /** Seconds. */
  duration: number;
  /** Starts with a keyframe (or audio only). */
  independent: boolean;
  bytes: Buffer;
}

export interface Segment {
  msn: number;
  parts: Part[];
  /** Seconds (sum of its parts); final once complete. */
  duration: number;
  complete: boolean;
  /** The whole segment (its parts' bytes, which then are views of it), once complete. */
  bytes: Buffer | undefined;
  /** Epoch ms of its first sample. */
  programDateTime: number;
  initVersion: number;
  /** Starts after a codec change (EXT-X-DISCONTINUITY). */
  discontinuity: boolean;
}

/** A gap longer than this between consecutive samples is a break in the stream (a reconnect), and collapsed. */
export const MAX_GAP_MS = 1000;
/** Audio timestamps further than this from the accumulated sample count re-sync it. */
const AUDIO_RESYNC_MS = 100;
const DEFAULT_FRAME_MS = 33;
/** Millisecond timestamps of 30 fps alternate 33 and 34 ms: a part may end this much past its target. */
const TIMESTAMP_SLACK_MS = 2;
const MS_PER_S = 1000;

interface HeldVideo {
  t: number;
  sample: MediaSample;
}

interface OpenPart {
  startT: number;
  video: Array<FragmentSample & { dts: number }>;
  audio: Array<FragmentSample & { dts: number }>;
}

export class Packager {
  private readonly now: () => number;
  private configs: Partial<Record<TrackKind, CodecConfig>> = {};
  private tracks: TrackInfo[] = [];
  private initVersion = -1;
  private readonly inits = new Map<number, Buffer>();
  private configChanged = false;
  private readonly window: Segment[] = [];
  private current: Segment | undefined;
  private part: OpenPart | undefined;
  private segmentStartT = 0;
  private held: HeldVideo | undefined;
  private pendingAudio: Array<FragmentSample & { dts: number; t: number }> = [];
  private audioNextDts: number | undefined;
  private lastT: number | undefined;
  private lastRaw: number | undefined;
  private unwrapBase = 0;
  private shiftMs = 0;
  private frameMs = DEFAULT_FRAME_MS;
  private wallOffset: number | undefined;
  private fragmentSeq = 0;
  private nextMsn = 0;
  private ended = false;
  private removedDiscontinuities = 0;
  private maxSegmentS = 0;
  /** Bumped on every change a playlist shows. */
  version = 0;

  constructor(
    private readonly o: PackagerOptions,
    private readonly onChange: () => void = () => {},
  ) {
    this.now = o.now ?? Date.now;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get started(): boolean {
    return this.current !== undefined;
  }

  get segments(): readonly Segment[] {
    return this.current ? [...this.window, this.current] : this.window;
  }

  get discontinuitySequence(): number {
    return this.removedDiscontinuities;
  }

  /** The advertised target duration (s): the configured one, or the longest segment seen (never shrinks). */
  get targetDuration(): number {
    return Math.max(Math.ceil(this.o.segmentMs / MS_PER_S), Math.round(this.maxSegmentS));
  }

  get partTarget(): number {
    return this.o.partMs / MS_PER_S;
  }

  get trackInfo(): readonly TrackInfo[] {
    return this.tracks;
  }

  init(version: number): Buffer | undefined {
    return this.inits.get(version);
  }

  /** The newest part (msn, index), if any. Called by every waiting request on every change: no allocation. */
  lastPart(): Part | undefined {
    const open = this.current?.parts;
    if (open && open.length > 0) return open[open.length - 1];
    for (let i = this.window.length - 1; i >= 0; i--) {
      const p = this.window[i]!.parts;
      if (p.length > 0) return p[p.length - 1];
    }
    return undefined;
  }

  /** The part being built (what EXT-X-PRELOAD-HINT points at). */
  nextPart(): { msn: number; index: number } | undefined {
    if (this.ended || !this.current) return undefined;
    return { msn: this.current.msn, index: this.current.parts.length };
  }

  segment(msn: number): Segment | undefined {
    if (this.current?.msn === msn) return this.current;
    // Window segments have consecutive numbers.
    const first = this.window[0];
    return first ? this.window[msn - first.msn] : undefined;
  }

  /** Bytes held: init segments and every part in the window. */
  memoryBytes(): number {
    let n = 0;
    for (const b of this.inits.values()) n += b.length;
    for (const s of this.segments) {
      if (s.bytes) n += s.bytes.length;
      else for (const p of s.parts) n += p.bytes.length;
    }
    return n;
  }

  /** A sample's hub timestamp (uint32 ms) → a monotonic number (hub timestamps wrap after 49.7 days). */
  private unwrap(raw: number): number {
    if (this.lastRaw !== undefined) {
      const delta = ((raw - this.lastRaw) << 0) | 0;
      const prev = this.lastRaw + this.unwrapBase;
      this.lastRaw = raw;
      const value = prev + delta;
      this.unwrapBase = value - raw;
      return value;
    }
    this.lastRaw = raw;
    return raw;
  }

  /**
   * Anchors program date time: wall = t + offset, where offset is the smallest (arrival - t) seen, i.e. the sample
   * that arrived with the least delay (a joiner's cached GOP arrives all at once: prime with its newest sample).
   */
  noteArrival(raw: number, wall: number): void {
    const t = raw - this.shiftMs + this.unwrapBase;
    const offset = wall - t;
    if (this.wallOffset === undefined || offset < this.wallOffset) this.wallOffset = offset;
  }

  config(c: CodecConfig): void {
    if (this.ended) return;
    const old = this.configs[c.kind];
    if (old && old.codec === c.codec && old.config.equals(c.config)) return;
    this.configs[c.kind] = { ...c, config: Buffer.from(c.config) };
    if (this.current) this.configChanged = true;
  }

  sample(s: MediaSample, wall: number = this.now()): void {
    if (this.ended) return;
    let t = this.unwrap(s.dts) - this.shiftMs;
    if (this.lastT !== undefined && t - this.lastT > MAX_GAP_MS) {
      // A break (reconnect): continue right after the last sample.
      // Whichever track comes first after the break, the next video frame follows the last one by a frame.
      const step = this.hasTrack('video') ? this.frameMs : 1;
      this.shiftMs += t - this.lastT - step;
      t = this.lastT + step;
      this.wallOffset = wall - t;
    }
    this.noteArrivalT(t, wall);
    if (!this.current && !this.tryStart(s, t)) return;
    if (s.kind === 'video') this.videoSample(s, t);
    else this.audioSample(s, t);
    if (this.lastT === undefined || t > this.lastT) this.lastT = t;
  }

  private noteArrivalT(t: number, wall: number): void {
    const offset = wall - t;
    if (this.wallOffset === undefined || offset < this.wallOffset) this.wallOffset = offset;
  }

  /** The stream ended: the last part and segment are closed, and the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.ended) return;
    if (this.current && this.part) {
      const endT = this.held ? this.held.t + this.frameMs : (this.lastAudioEnd() ?? this.part.startT);
      if (this.held) this.pushHeld(endT);
      this.closePart(endT, true);
      this.closeSegment();
    }
    this.ended = true;
    this.bump();
  }

  private lastAudioEnd(): number | undefined {
    const last = this.pendingAudio[this.pendingAudio.length - 1];
    return last ? last.t + 1 : undefined;
  }

  private tryStart(s: MediaSample, t: number): boolean {
    if (s.kind === 'video') {
      if (!s.keyframe || !this.configs.video) return false;
    } else if (this.configs.video || !this.configs.audio) {
      return false; // wait for video's first keyframe (or the audio config)
    }
    this.newInit();
    this.openSegment(t, false);
    return true;
  }

  private newInit(): void {
    const tracks: TrackInfo[] = [];
    if (this.configs.video) tracks.push(trackOf(this.configs.video));
    if (this.configs.audio) tracks.push(trackOf(this.configs.audio));
    const audioBefore = this.tracks.find((t) => t.kind === 'audio');
    this.tracks = tracks;
    this.initVersion++;
    this.inits.set(this.initVersion, initSegment(tracks));
    const audio = tracks.find((t) => t.kind === 'audio');
    if (audio?.timescale !== audioBefore?.timescale) this.audioNextDts = undefined;
    this.configChanged = false;
  }

  private hasTrack(kind: TrackKind): boolean {
    return this.tracks.some((t) => t.kind === kind);
  }

  private timescale(kind: TrackKind): number {
    return this.tracks.find((t) => t.kind === kind)?.timescale ?? 1;
  }

  private videoSample(s: MediaSample, t: number): void {
    if (!this.hasTrack('video')) {
      if (this.configChanged && s.keyframe) this.cut(t, true);
      return;
    }
    const held = this.held;
    if (held) {
      const d = t - held.t;
      if (d > 0 && d <= MAX_GAP_MS) this.frameMs = d;
    }
    const segmentDue =
      s.keyframe && (this.configChanged || t - this.segmentStartT >= this.o.segmentMs - this.frameMs / 2);
    const partDue = held !== undefined && t - this.part!.startT + this.frameMs > this.o.partMs + TIMESTAMP_SLACK_MS;
    if (segmentDue && held) this.cut(t, true);
    else if (segmentDue && this.configChanged) this.cut(t, true);
    else if (partDue) this.cut(t, false);
    else if (held) this.pushHeld(t);
    this.held = { t, sample: s };
  }

  private audioSample(s: MediaSample, t: number): void {
    if (!this.hasTrack('audio')) {
      if (this.configChanged && !this.hasTrack('video')) this.cut(t, true);
      return;
    }
    const rate = this.timescale('audio');
    const samples = s.codec === 'Opus' ? opusPacketSamples(s.data) : AAC_FRAME_SAMPLES;
    const actual = Math.round((t * rate) / MS_PER_S);
    const slack = (AUDIO_RESYNC_MS * rate) / MS_PER_S;
    if (this.audioNextDts === undefined || actual - this.audioNextDts > slack) {
      this.audioNextDts = actual; // audio resumes after a gap
    } else if (this.audioNextDts - actual > slack) {
      return; // audio behind what was already packaged (a reconnect's offset): dropped, never overlapped
    }
    const dts = this.audioNextDts;
    this.audioNextDts += samples;
    if (!this.hasTrack('video')) {
      // Audio only: audio decides the cuts.
      const frameMs = (samples * MS_PER_S) / rate;
      const segmentDue = this.configChanged || t - this.segmentStartT >= this.o.segmentMs - frameMs / 2;
      const partDue = t - this.part!.startT + frameMs > this.o.partMs + TIMESTAMP_SLACK_MS;
      if ((segmentDue || partDue) && this.pendingAudio.length > 0) this.cut(t, segmentDue);
    }
    this.pendingAudio.push({ t, dts, duration: samples, cts: 0, keyframe: true, data: s.data });
  }

  /** Moves the held video frame (now that its duration is known) into the open part. */
  private pushHeld(nextT: number): void {
    const h = this.held!;
    this.part!.video.push({
      dts: Math.round(h.t * 90),
      duration: Math.max(1, Math.round((nextT - h.t) * 90)),
      cts: Math.round(h.sample.cts * 90),
      keyframe: h.sample.keyframe,
      data: h.sample.data,
    });
    this.held = undefined;
  }

  /** Closes the open part at `t` (and the segment if `segment`), then opens the next one at `t`. */
  private cut(t: number, segment: boolean): void {
    if (this.held) this.pushHeld(t);
    this.closePart(t, false);
    if (segment) {
      this.closeSegment();
      const discontinuity = this.configChanged;
      if (this.configChanged) this.newInit();
      this.openSegment(t, discontinuity);
    } else {
      this.part = { startT: t, video: [], audio: [] };
    }
  }

  private openSegment(t: number, discontinuity: boolean): void {
    this.segmentStartT = t;
    this.current = {
      msn: this.nextMsn++,
      parts: [],
      duration: 0,
      complete: false,
      bytes: undefined,
      programDateTime: Math.round(t + (this.wallOffset ?? this.now() - t)),
      initVersion: this.initVersion,
      discontinuity,
    };
    this.part = { startT: t, video: [], audio: [] };
  }

  private closePart(endT: number, all: boolean): void {
    const part = this.part!;
    const seg = this.current!;
    const keep: typeof this.pendingAudio = [];
    for (const a of this.pendingAudio) (all || a.t < endT ? part.audio : keep).push(a);
    this.pendingAudio = keep;
    if (part.video.length === 0 && part.audio.length === 0) return;
    const tracks = [];
    const video = this.tracks.find((x) => x.kind === 'video');
    const audio = this.tracks.find((x) => x.kind === 'audio');
    if (video && part.video.length > 0)
      tracks.push({ id: video.id, baseDecodeTime: part.video[0]!.dts, samples: part.video });
    if (audio && part.audio.length > 0)
      tracks.push({ id: audio.id, baseDecodeTime: part.audio[0]!.dts, samples: part.audio });
    const duration = video
      ? part.video.reduce((n, s) => n + s.duration, 0) / video.timescale
      : part.audio.reduce((n, s) => n + s.duration, 0) / audio!.timescale;
    const independent = video ? part.video[0]?.keyframe === true : true;
    seg.parts.push({
      msn: seg.msn,
      index: seg.parts.length,
      duration,
      independent,
      bytes: fragment(++this.fragmentSeq, tracks),
    });
    seg.duration += duration;
    this.bump();
  }

  private closeSegment(): void {
    const seg = this.current;
    if (!seg) return;
    this.current = undefined;
    this.part = undefined;
    if (seg.parts.length === 0) {
      this.nextMsn = seg.msn; // nothing in it: its number is reused
      return;
    }
    const bytes = Buffer.concat(seg.parts.map((p) => p.bytes));
    let pos = 0;
    for (const p of seg.parts) {
      p.bytes = bytes.subarray(pos, pos + p.bytes.length);
      pos += p.bytes.length;
    }
    seg.bytes = bytes;
    seg.complete = true;
    this.maxSegmentS = Math.max(this.maxSegmentS, seg.duration);
    this.window.push(seg);
    while (this.window.length > this.o.windowSegments) {
      const gone = this.window.shift()!;
      if (gone.discontinuity) this.removedDiscontinuities++;
    }
    const used = new Set([...this.window.map((s) => s.initVersion), this.initVersion]);
    for (const v of this.inits.keys()) if (!used.has(v)) this.inits.delete(v);
    this.bump();
  }

  private bump(): void {
    this.version++;
    this.onChange();
  }
}
