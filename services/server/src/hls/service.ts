/**
 * LL-HLS on one HTTP listener: the streams being packaged, their admission, and the answers to playlist and media
 * requests, written straight to Node's ServerResponse from state built once per stream (renderings, headers,
 * parts) and shared by every viewer. The routes (routes.ts) decide which requests come here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { StreamAccess } from '../streams/access.js';
import type { StreamRequest } from '../streams/types.js';
import { hlsMetrics, type HlsMetrics, type HlsRequestType } from './metrics.js';
import type { HlsQuery } from './query.js';
import {
  MEDIA_CACHE,
  PLAYLIST_CACHE,
  blockingPlaylistCache,
  prepareHeaders,
  sendError,
  sendPrepared,
} from './responses.js';
import type { MediaName } from './playlist.js';
import { HlsStream } from './stream.js';
import type { Answer } from './waiters.js';

export interface HlsSettings {
  segmentMs: number;
  partMs: number;
  windowSegments: number;
  lingerMs: number;
}

export const HLS_DEFAULTS: HlsSettings = { segmentMs: 2000, partMs: 500, windowSegments: 10, lingerMs: 10_000 };

/** An admission is reused per stream and auth query while requests with it keep coming at least this often. */
const AUTH_TTL_MS = 10_000;
/** The "Advance Part Limit" of RFC 8216bis 6.2.5.2. */
const ADVANCE_PART_LIMIT = 3;
/** _HLS_msn more than this past the last segment is a Bad Request. */
const ADVANCE_MSN_LIMIT = 2;
/** Blocking requests wait at most this many target durations (then 503). */
const BLOCK_TARGET_DURATIONS = 3;
/** The first playlist waits this long past two segment targets for the first complete segment. */
const FIRST_SEGMENT_SLACK_MS = 2000;
const SWEEP_MS = 1000;
/** An ended stream's playlist (with EXT-X-ENDLIST) is served to admitted viewers this many target durations. */
const ENDED_SERVE_TARGET_DURATIONS = 3;
const MS_PER_S = 1000;
const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
const INIT_TYPE = 'video/mp4';
const SEGMENT_TYPE = 'video/iso.segment';
/**
 * Wait-group keys name what is awaited: FIRST_SEGMENT_KEY; `s<msn>` / `p<msn>.<part>` a blocking playlist reload
 * (segment whole / part); `S<msn>` / `P<msn>.<index>` a segment or part request ahead of the packager.
 */
const FIRST_SEGMENT_KEY = 'first';

export interface HlsTarget {
  app: string;
  name: string;
  key: string;
  query: HlsQuery;
}

/** Where a bug in an answer is reported (Fastify's logger). */
export interface ErrorLog {
  error(obj: object, msg: string): void;
}

/** A request held by a stream until its packager has what the request asks for. */
export interface HeldRequest {
  req: IncomingMessage;
  res: ServerResponse;
  s: HlsStream;
  q: HlsQuery;
  /** The media file name ('' for a playlist). */
  name: string;
  media: MediaName | undefined;
}

export interface Denial {
  status: 403 | 404;
  reason: string;
  description: string;
}

export class HlsService {
  private readonly streams = new Map<string, HlsStream>();
  private readonly settings: HlsSettings;
  private readonly metrics: HlsMetrics | undefined;
  private readonly sweep: NodeJS.Timeout;
  private nextId = 0;
  private readonly socketSessions = new WeakMap<object, { ua: string; session: string }>();

  constructor(
    private readonly access: StreamAccess,
    private readonly log: ErrorLog,
    settings: Partial<HlsSettings> = {},
    register?: Registry,
  ) {
    this.settings = { ...HLS_DEFAULTS, ...settings };
    this.metrics = register
      ? hlsMetrics(register, () => {
          let sessions = 0;
          let memoryBytes = 0;
          for (const s of this.streams.values()) {
            sessions += s.sessionCount(this.settings.lingerMs);
            memoryBytes += s.packager.memoryBytes();
          }
          return { sessions, packagers: this.streams.size, memoryBytes };
        })
      : undefined;
    this.sweep = setInterval(() => this.sweepIdle(), SWEEP_MS);
    this.sweep.unref();
  }

  close(): void {
    clearInterval(this.sweep);
    for (const s of this.streams.values()) s.stop();
    this.streams.clear();
  }

  private sweepIdle(): void {
    const now = performance.now();
    for (const [key, s] of this.streams) {
      if (now - s.lastRequestAt > this.settings.lingerMs && !s.hasWaiters) {
        this.streams.delete(key);
        s.stop();
      }
    }
  }

  /** Runs an answer; a bug in it is logged and answered 500 (as Fastify's error handler would), never thrown. */
  private safely(res: ServerResponse, answer: () => void): void {
    try {
      answer();
    } catch (err) {
      this.log.error({ err }, 'hls handler error');
      if (res.destroyed) return;
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: 'internal error' }));
    }
  }

  count(type: HlsRequestType, status: number, bytes = 0): void {
    if (!this.metrics) return;
    this.metrics.requests.inc({ type, status: String(status) });
    if (bytes > 0) this.metrics.bytes.inc({ type }, bytes);
  }

  fail(res: ServerResponse, type: HlsRequestType, status: number, body: object): void {
    this.count(type, status);
    sendError(res, status, body);
  }

  /**
   * The stream for `key`, without admission: a known (stream, auth query) pair is reused for AUTH_TTL_MS while
   * requests with it keep coming. Undefined when the request needs admission.
   */
  admitted(key: string, authQuery: string): HlsStream | undefined {
    const s = this.streams.get(key);
    if (!s || s.isStopped) return undefined;
    // An ended stream's final playlist is served for a little while; after that a request is a new play (the
    // stream may be live again: a new packager).
    const current =
      s.endedAt === undefined ||
      performance.now() - s.endedAt < ENDED_SERVE_TARGET_DURATIONS * s.packager.targetDuration * MS_PER_S;
    return current && s.isAuthorized(authQuery, AUTH_TTL_MS) ? s : undefined;
  }

  /** The stream's packager, after admission: reused as `admitted` says, else StreamAccess.admitPlay like an FLV play. */
  async admit(t: HlsTarget, clientIp: string): Promise<HlsStream | Denial> {
    const known = this.admitted(t.key, t.query.authQuery);
    if (known) return known;
    const req: StreamRequest = {
      app: t.app,
      name: t.name,
      key: t.key,
      query: new URLSearchParams(t.query.authQuery),
      clientIp,
      sessionId: `hls-${(++this.nextId).toString(36)}`,
    };
    const decision = await this.access.admitPlay(req);
    if (!decision.allow) {
      return {
        status: decision.status === 'Denied' ? 403 : 404,
        reason: decision.reason,
        description: decision.description,
      };
    }
    let stream = this.streams.get(t.key);
    // A stream that ended and is live again (admission said so) gets a new packager.
    if (!stream || stream.isStopped || stream.packager.isEnded) {
      stream?.stop();
      stream = new HlsStream(req.sessionId, t.key, this.settings);
      this.streams.set(t.key, stream);
      stream.membership = this.access.join(req, stream, 'hls', decision.clusterPeer === true);
    }
    stream.authorize(t.query.authQuery, AUTH_TTL_MS);
    return stream;
  }

  /** The viewer estimate's session: the `session` parameter, else client address and user agent (kept per socket). */
  private sessionOf(req: IncomingMessage, q: HlsQuery): string {
    if (q.session !== undefined) return q.session;
    const ua = req.headers['user-agent'] ?? '';
    const known = this.socketSessions.get(req.socket);
    if (known?.ua === ua) return known.session;
    const session = `${req.socket.remoteAddress} ${ua}`;
    this.socketSessions.set(req.socket, { ua, session });
    return session;
  }

  // ---- playlists ----

  /** Answers a playlist request of an admitted stream (blocking reloads when they are ready). */
  playlist(req: IncomingMessage, res: ServerResponse, s: HlsStream, q: HlsQuery): void {
    this.safely(res, () => {
      s.touch(this.sessionOf(req, q));
      const p = s.packager;
      if (p.segments[0]?.complete) return this.blockingPlaylist({ req, res, s, q, name: '', media: undefined });
      // A new packager: wait for its first complete segment (clients without LL-HLS need one to start; the hub's
      // cached GOP gives the start of it at once, the next keyframe ends it).
      s.waiters.wait(
        FIRST_SEGMENT_KEY,
        () => p.segments[0]?.complete === true || p.isEnded,
        2 * this.settings.segmentMs + FIRST_SEGMENT_SLACK_MS,
        this.afterFirstSegment,
        { req, res, s, q, name: '', media: undefined },
      );
    });
  }

  private readonly afterFirstSegment: Answer<HeldRequest> = (h) => this.safely(h.res, () => this.blockingPlaylist(h));

  private blockingPlaylist(h: HeldRequest): void {
    const { s, q } = h;
    const { msn, part } = q;
    if (msn === undefined) return this.sendPlaylist(h, false);
    const p = s.packager;
    const next = p.nextPart();
    const current = next?.msn ?? p.lastPart()?.msn ?? 0;
    if (
      msn > current + ADVANCE_MSN_LIMIT ||
      (msn === current && part !== undefined && part > (next?.index ?? 0) + ADVANCE_PART_LIMIT - 1)
    ) {
      return this.fail(h.res, 'playlist', 400, { error: 'bad request', reason: 'too far past the live edge' });
    }
    const key = part === undefined ? `s${msn}` : `p${msn}.${part}`;
    if (s.waiters.join(key, h)) return;
    // Part N of segment M (or segment M whole when no part is named) is in the playlist, or something later.
    const ready =
      part === undefined
        ? (): boolean => {
            const lp = p.lastPart();
            return p.isEnded || (lp !== undefined && (p.segment(msn)?.complete === true || lp.msn > msn));
          }
        : (): boolean => {
            const lp = p.lastPart();
            return p.isEnded || (lp !== undefined && (lp.msn > msn || (lp.msn === msn && lp.index >= part)));
          };
    s.waiters.wait(key, ready, BLOCK_TARGET_DURATIONS * p.targetDuration * MS_PER_S, this.afterReload, h);
  }

  private readonly afterReload: Answer<HeldRequest> = (h, ok) =>
    this.safely(h.res, () => {
      this.metrics?.blockingReloads.inc({ outcome: ok ? 'ready' : 'timeout' });
      if (ok) this.sendPlaylist(h, true);
      else this.fail(h.res, 'playlist', 503, { error: 'playlist not updated in time' });
    });

  private sendPlaylist({ req, res, s, q }: HeldRequest, blocking: boolean): void {
    s.lastRequestAt = performance.now(); // a request that waited was in use all along
    const r = s.playlist(q.authQuery, q.skip);
    const headers = blocking
      ? (r.blocking ??= prepareHeaders(
          PLAYLIST_TYPE,
          blockingPlaylistCache(r.targetDuration, BLOCK_TARGET_DURATIONS),
          r.etag,
          r.body.length,
        ))
      : (r.live ??= prepareHeaders(PLAYLIST_TYPE, PLAYLIST_CACHE, r.etag, r.body.length));
    const sent = sendPrepared(req, res, headers, r.body);
    this.count('playlist', sent.status, sent.bytes);
  }

  // ---- media ----

  /** Answers an init, segment or part request of an admitted stream (a preload-hinted part when it is built). */
  media(req: IncomingMessage, res: ServerResponse, s: HlsStream, q: HlsQuery, name: string, media: MediaName): void {
    this.safely(res, () => {
      s.touch(this.sessionOf(req, q));
      const p = s.packager;
      if (media.gen !== s.gen)
        return this.fail(res, media.type, 404, { error: 'not found', reason: 'unknown_generation' });
      if (media.type === 'init') return this.sendMedia(req, res, s, name, 'init', p.init(media.version));
      const h: HeldRequest = { req, res, s, q, name, media };
      if (media.type === 'segment') {
        // The segment being built (a client ahead of the playlist) is answered when complete.
        if (p.segment(media.msn)?.bytes || p.nextPart()?.msn !== media.msn) return this.afterMedia(h, true);
        const key = `S${media.msn}`;
        if (s.waiters.join(key, h)) return;
        const ready = (): boolean => p.segment(media.msn)?.bytes !== undefined;
        return s.waiters.wait(key, ready, (p.targetDuration + 1) * MS_PER_S * 2, this.afterMedia, h);
      }
      if (p.segment(media.msn)?.parts[media.index]) return this.afterMedia(h, true);
      const next = p.nextPart();
      // The preload hint's part (or the one right after it): held until it is built (LL-HLS).
      const hinted = next !== undefined && media.msn === next.msn && media.index <= next.index + 1;
      const nextSegment = next !== undefined && media.msn === next.msn + 1 && media.index === 0;
      if (!hinted && !nextSegment) return this.afterMedia(h, true);
      const key = `P${media.msn}.${media.index}`;
      if (s.waiters.join(key, h)) return;
      const ready = (): boolean => p.segment(media.msn)?.parts[media.index] !== undefined;
      s.waiters.wait(key, ready, BLOCK_TARGET_DURATIONS * p.targetDuration * MS_PER_S, this.afterMedia, h);
    });
  }

  /** A segment or part request, answered with what there is now (404 when it is still missing). */
  private readonly afterMedia: Answer<HeldRequest> = (h) =>
    this.safely(h.res, () => {
      const { s, media } = h;
      const p = s.packager;
      if (media?.type === 'segment') this.sendMedia(h.req, h.res, s, h.name, 'segment', p.segment(media.msn)?.bytes);
      else if (media?.type === 'part')
        this.sendMedia(h.req, h.res, s, h.name, 'part', p.segment(media.msn)?.parts[media.index]?.bytes);
    });

  private sendMedia(
    req: IncomingMessage,
    res: ServerResponse,
    s: HlsStream,
    name: string,
    type: HlsRequestType,
    bytes: Buffer | undefined,
  ): void {
    s.lastRequestAt = performance.now();
    if (!bytes) return this.fail(res, type, 404, { error: 'not found' });
    const headers = s.mediaHeadersFor(name, type === 'init' ? INIT_TYPE : SEGMENT_TYPE, MEDIA_CACHE, bytes.length);
    const sent = sendPrepared(req, res, headers, bytes);
    this.count(type, sent.status, sent.bytes);
  }
}
