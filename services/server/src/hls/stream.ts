/**
 * One stream's HLS on this node: a hub viewer (format 'flv': the hub hands it each message as the FLV tag it
 * builds once for FLV viewers) feeding one CMAF packager, plus what the routes need around it: playlist renderings
 * and media response headers shared by every viewer, grouped waiters for blocking reloads and preloaded parts,
 * estimated sessions and the last request time (the stream stops packaging when every viewer has lingered out).
 */
import { createHash, randomInt } from 'node:crypto';
import type { HubViewer } from '@rtmp-relay/hub';
import type { Membership } from '../streams/access.js';
import { PACKAGED_FOURCCS, mediaEventOf, splitFlvTag } from './media.js';
import { Packager, type PackagerOptions } from './packager.js';
import { renderPlaylist } from './playlist.js';
import { prepareHeaders, type PreparedHeaders } from './responses.js';
import type { HeldRequest } from './service.js';
import { WaitGroups } from './waiters.js';

/** Renderings kept per playlist version (query × skip variants); a handful in practice. */
const RENDER_CACHE_MAX = 64;
/** Sessions tracked per stream (a flood of distinct addresses can't grow this without bound). */
const SESSIONS_MAX = 100_000;
/** Auth queries remembered per stream. */
const AUTHORIZED_MAX = 1024;
/** Media response headers kept per stream (a window's files are a few dozen; past this the cache starts over). */
const MEDIA_HEADERS_MAX = 256;
const GEN_RANDOM_RANGE = 36 * 36;
const ETAG_CHARS = 22;

/** One playlist rendering, shared by every request for it until the packager changes. */
export interface Rendered {
  body: Buffer;
  etag: string;
  /** The target duration it was rendered with. */
  targetDuration: number;
  /** Response headers, built by the first request that needs them (plain and blocking reloads differ in caching). */
  live?: PreparedHeaders;
  blocking?: PreparedHeaders;
}

export class HlsStream implements HubViewer {
  readonly format = 'flv' as const;
  readonly streamId = 0;
  /** Names this run of the packager in every media URI. */
  readonly gen = `${Date.now().toString(36)}${randomInt(GEN_RANDOM_RANGE).toString(36)}`;
  readonly packager: Packager;
  membership: Membership | undefined;
  lastRequestAt = performance.now();
  /** performance.now() when the stream ended here, if it did. */
  endedAt: number | undefined;
  /** Requests held until the packager has what they ask for; checked on every packager change. */
  readonly waiters = new WaitGroups<HeldRequest>();
  private burst: Buffer[] | undefined = [];
  private rendered = new Map<string, Rendered>();
  private readonly mediaHeaders = new Map<string, PreparedHeaders>();
  private renderedVersion = -1;
  private readonly sessions = new Map<string, number>();
  private readonly authorized = new Map<string, number>();
  private stopped = false;
  private wakeQueued = false;

  constructor(
    readonly id: string,
    readonly key: string,
    opts: PackagerOptions,
  ) {
    this.packager = new Packager(opts, () => this.wake());
  }

  // ---- HubViewer ----
  acceptsFourCc(fourCc: string): boolean {
    return PACKAGED_FOURCCS.has(fourCc);
  }

  write(tag: Buffer): void {
    if (this.burst) this.burst.push(tag);
    else this.take(tag, Date.now());
  }

  /** Packaging is synchronous: nothing waits in a socket. */
  backlogBytes(): number {
    return 0;
  }

  cork(): void {}

  /** The join burst (headers and the cached GOP) arrived at once: anchor wall-clock time on its newest sample. */
  uncork(): void {
    const burst = this.burst;
    if (!burst) return;
    this.burst = undefined;
    const wall = Date.now();
    let newest: number | undefined;
    for (const tag of burst) {
      const ts = splitFlvTag(tag).timestamp;
      if (newest === undefined || ((ts - newest) | 0) > 0) newest = ts;
    }
    if (newest !== undefined) this.packager.noteArrival(newest, wall);
    for (const tag of burst) this.take(tag, wall);
  }

  /** The hub dropped this viewer (operator drop, shutdown): it is no longer in the hub. */
  disconnect(): void {
    this.finish(false);
  }

  /** The hub keeps an ended stream's viewers until they leave: leave it, so the idle hub can go. */
  streamEnded(): void {
    this.finish(true);
  }

  streamRestarted(): void {}

  private take(tag: Buffer, wall: number): void {
    const { type, timestamp, body } = splitFlvTag(tag);
    const event = mediaEventOf(type, timestamp, body);
    if (!event) return;
    if (event.type === 'config') this.packager.config(event.config);
    else this.packager.sample(event.sample, wall);
  }

  /** The stream ended (or this node drops it): the playlist gets EXT-X-ENDLIST, the hub membership ends. */
  private finish(removeFromHub: boolean): void {
    this.endedAt ??= performance.now();
    this.packager.end();
    this.membership?.leave(removeFromHub);
    this.membership = undefined;
  }

  /** Stops for good (lingered out, shutdown): leaves the hub, answers every waiter. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.membership?.leave();
    this.membership = undefined;
    this.waiters.stop();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Requests are waiting here (blocking reloads, preloaded parts): the stream is in use. */
  get hasWaiters(): boolean {
    return !this.waiters.isEmpty;
  }

  // ---- requests ----
  touch(session: string, now = performance.now()): void {
    this.lastRequestAt = now;
    if (this.sessions.size >= SESSIONS_MAX && !this.sessions.has(session)) return;
    this.sessions.set(session, now);
  }

  /** Active sessions, forgetting those not seen within `lingerMs`. */
  sessionCount(lingerMs: number, now = performance.now()): number {
    for (const [s, at] of this.sessions) if (now - at > lingerMs) this.sessions.delete(s);
    return this.sessions.size;
  }

  /**
   * An admission is reused while the same auth query keeps coming (sliding: like an FLV connection, a viewer who
   * was let in is not cut off when its token's expiry passes; a new viewer with it is refused).
   */
  isAuthorized(authQuery: string, ttlMs: number, now = performance.now()): boolean {
    const until = this.authorized.get(authQuery);
    if (until === undefined || until <= now) return false;
    this.authorized.set(authQuery, now + ttlMs);
    return true;
  }

  authorize(authQuery: string, ttlMs: number, now = performance.now()): void {
    if (this.authorized.size >= AUTHORIZED_MAX) this.authorized.clear();
    this.authorized.set(authQuery, now + ttlMs);
  }

  /**
   * After a packager change, once the packager is done with it (one change may be several bumps: a part closes,
   * its segment closes, the next opens): waiters see a consistent window, and are checked once.
   */
  private wake(): void {
    if (this.wakeQueued) return;
    this.wakeQueued = true;
    queueMicrotask(() => {
      this.wakeQueued = false;
      this.waiters.check(this.packager.isEnded);
    });
  }

  /**
   * A media file's response headers, built once per file name and shared (a name never names two contents, so its
   * ETag and length never change).
   */
  mediaHeadersFor(name: string, contentType: string, cacheControl: string, length: number): PreparedHeaders {
    let h = this.mediaHeaders.get(name);
    if (!h) {
      if (this.mediaHeaders.size >= MEDIA_HEADERS_MAX) this.mediaHeaders.clear();
      h = prepareHeaders(contentType, cacheControl, `"${name}"`, length);
      this.mediaHeaders.set(name, h);
    }
    return h;
  }

  /** The playlist for this query and skip choice, rendered once per packager change and shared. */
  playlist(query: string, skip: boolean): Rendered {
    const p = this.packager;
    if (this.renderedVersion !== p.version) {
      this.rendered = new Map();
      this.renderedVersion = p.version;
    }
    const cacheKey = `${skip ? 1 : 0}?${query}`;
    let r = this.rendered.get(cacheKey);
    if (!r) {
      const body = renderPlaylist(
        {
          gen: this.gen,
          targetDuration: p.targetDuration,
          partTarget: p.partTarget,
          discontinuitySequence: p.discontinuitySequence,
          segments: p.segments,
          nextPart: p.nextPart(),
          ended: p.isEnded,
        },
        { skip, query },
      );
      const bytes = Buffer.from(body);
      const etag = `"${createHash('sha1').update(bytes).digest('base64url').slice(0, ETAG_CHARS)}"`;
      r = { body: bytes, etag, targetDuration: p.targetDuration };
      if (this.rendered.size < RENDER_CACHE_MAX) this.rendered.set(cacheKey, r);
    }
    return r;
  }
}
