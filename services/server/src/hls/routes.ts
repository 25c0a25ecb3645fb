/**
 * Low-Latency HLS on the node's HTTP port, from the same hubs and through the same admission as RTMP and FLV plays:
 *
 *   GET /{app}/{stream}/index.m3u8                  the media playlist (LL-HLS; plain HLS clients read it too)
 *   GET /{app}/{stream}/init-<gen>-<v>.mp4          CMAF init segment (ftyp + moov)
 *   GET /{app}/{stream}/seg-<gen>-<msn>.m4s         media segment (its parts, moof + mdat each)
 *   GET /{app}/{stream}/part-<gen>-<msn>-<i>.m4s    partial segment
 *
 * A stream name with a slash is written %2F-encoded in the path (`/live/a%2Fb/index.m3u8`). Playlist query:
 * `_HLS_msn`, `_HLS_part` (blocking reload), `_HLS_skip=YES|v2` (delta playlist), `session` (an id the player picks,
 * for the viewer estimate); every other parameter (the play token: `expires`, `token`) is checked by admission like
 * an FLV play and carried into every URI of the playlist, so segments and parts are authorized the same way.
 *
 * Status: 403 denied (bad token), 404 not live / unknown file, 400 an invalid blocking request (RFC 8216bis 6.2.5.2),
 * 503 a blocking request not satisfied within three target durations. Playlists: `Cache-Control: max-age=1`
 * (blocking ones longer: their URL names the awaited part), media: immutable; ETag and If-None-Match; CORS.
 *
 * A stream is packaged from its first HLS request and stops LINGER after the last request (playlist or media).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { StreamAccess } from '../streams/access.js';
import type { StreamRequest } from '../streams/types.js';
import { hlsMetrics, type HlsMetrics, type HlsRequestType } from './metrics.js';
import { parseMediaName } from './playlist.js';
import { HlsStream } from './stream.js';

export interface HlsSettings {
  segmentMs: number;
  partMs: number;
  windowSegments: number;
  lingerMs: number;
}

export const HLS_DEFAULTS: HlsSettings = { segmentMs: 2000, partMs: 500, windowSegments: 10, lingerMs: 10_000 };

export interface HlsRoutesOptions {
  access: StreamAccess;
  register?: Registry;
  settings?: Partial<HlsSettings>;
}

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
const IMMUTABLE = 'public, max-age=31536000, immutable';
const PLAYLIST_CACHE = 'public, max-age=1';
const CONTROL_PARAMS = new Set(['_HLS_msn', '_HLS_part', '_HLS_skip', 'session']);

const CORS = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'etag, content-length' } as const;

interface Target {
  app: string;
  name: string;
  key: string;
  query: URLSearchParams;
  /** The query minus the HLS control parameters: what admission sees and what URIs carry. */
  authQuery: string;
}

function targetOf(request: FastifyRequest): Target {
  const { app, stream } = request.params as { app: string; stream: string };
  const q = request.url.indexOf('?');
  const query = new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1));
  const carried = new URLSearchParams();
  for (const [k, v] of query) if (!CONTROL_PARAMS.has(k)) carried.append(k, v);
  return { app, name: stream, key: `${app}/${stream}`, query, authQuery: carried.toString() };
}

/** Parses a non-negative decimal integer parameter; undefined if absent, NaN if malformed. */
function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  return /^\d{1,12}$/.test(v) ? Number(v) : Number.NaN;
}

export function registerHlsRoutes(root: FastifyInstance, opts: HlsRoutesOptions): void {
  void root.register(async (app) => hlsRoutes(app, opts));
}

function hlsRoutes(app: FastifyInstance, opts: HlsRoutesOptions): void {
  const settings: HlsSettings = { ...HLS_DEFAULTS, ...opts.settings };
  const access = opts.access;
  const streams = new Map<string, HlsStream>();
  let nextId = 0;
  const metrics: HlsMetrics | undefined = opts.register
    ? hlsMetrics(opts.register, () => {
        let sessions = 0;
        let memoryBytes = 0;
        for (const s of streams.values()) {
          sessions += s.sessionCount(settings.lingerMs);
          memoryBytes += s.packager.memoryBytes();
        }
        return { sessions, packagers: streams.size, memoryBytes };
      })
    : undefined;

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [key, s] of streams) {
      if (now - s.lastRequestAt > settings.lingerMs && !s.hasWaiters) {
        streams.delete(key);
        s.stop();
      }
    }
  }, SWEEP_MS);
  sweep.unref();
  app.addHook('onClose', (_app, done) => {
    clearInterval(sweep);
    for (const s of streams.values()) s.stop();
    streams.clear();
    done();
  });

  const count = (type: HlsRequestType, status: number, bytes = 0): void => {
    metrics?.requests.inc({ type, status: String(status) });
    if (bytes > 0) metrics?.bytes.inc({ type }, bytes);
  };

  const fail = (reply: FastifyReply, type: HlsRequestType, status: number, body: object): FastifyReply => {
    count(type, status);
    return reply
      .code(status)
      .headers({ ...CORS, 'cache-control': 'no-store' })
      .send(body);
  };

  /**
   * The stream's packager, after admission: a known (stream, auth query) pair is reused for AUTH_TTL_MS; anything
   * else goes through StreamAccess.admitPlay like an FLV play (on an edge that starts the pull and waits for it).
   */
  const resolve = async (
    request: FastifyRequest,
    t: Target,
  ): Promise<{ stream: HlsStream } | { status: 403 | 404; reason: string; description: string }> => {
    const existing = streams.get(t.key);
    // An ended stream's final playlist is served for a little while; after that a request is a new play (the
    // stream may be live again: a new packager).
    const current =
      existing?.endedAt === undefined ||
      performance.now() - existing.endedAt < ENDED_SERVE_TARGET_DURATIONS * existing.packager.targetDuration * 1000;
    if (existing && current && !existing.isStopped && existing.isAuthorized(t.authQuery, AUTH_TTL_MS))
      return { stream: existing };
    const req: StreamRequest = {
      app: t.app,
      name: t.name,
      key: t.key,
      query: new URLSearchParams(t.authQuery),
      clientIp: request.ip,
      sessionId: `hls-${(++nextId).toString(36)}`,
    };
    const decision = await access.admitPlay(req);
    if (!decision.allow) {
      return {
        status: decision.status === 'Denied' ? 403 : 404,
        reason: decision.reason,
        description: decision.description,
      };
    }
    let stream = streams.get(t.key);
    // A stream that ended and is live again (admission said so) gets a new packager.
    if (!stream || stream.isStopped || stream.packager.isEnded) {
      stream?.stop();
      stream = new HlsStream(req.sessionId, t.key, settings);
      streams.set(t.key, stream);
      const s = stream;
      s.membership = access.join(req, s, 'hls', decision.clusterPeer === true);
    }
    stream.authorize(t.authQuery, AUTH_TTL_MS);
    return { stream };
  };

  const sessionOf = (request: FastifyRequest, t: Target): string =>
    t.query.get('session') ?? `${request.ip} ${String(request.headers['user-agent'] ?? '')}`;

  const playlistHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const t = targetOf(request);
    const msn = intParam(t.query, '_HLS_msn');
    const part = intParam(t.query, '_HLS_part');
    const skipParam = t.query.get('_HLS_skip');
    // RFC 8216bis 6.2.5.2: _HLS_part without _HLS_msn, or malformed values: 400.
    if (Number.isNaN(msn) || Number.isNaN(part) || (part !== undefined && msn === undefined)) {
      return fail(reply, 'playlist', 400, { error: 'bad request', reason: 'invalid _HLS_msn/_HLS_part' });
    }
    const r = await resolve(request, t);
    if ('status' in r)
      return fail(reply, 'playlist', r.status, {
        error: r.status === 403 ? 'forbidden' : 'stream not found',
        reason: r.reason,
        description: r.description,
        key: t.key,
      });
    const s = r.stream;
    s.touch(sessionOf(request, t));
    const p = s.packager;
    if (!p.segments[0]?.complete) {
      // A new packager: wait for its first complete segment (clients without LL-HLS need one to start; the hub's
      // cached GOP gives the start of it at once, the next keyframe ends it).
      await s.waitUntil(
        () => p.segments[0]?.complete === true || p.isEnded,
        2 * settings.segmentMs + FIRST_SEGMENT_SLACK_MS,
      );
    }
    if (msn !== undefined) {
      const last = p.lastPart();
      const current = p.nextPart()?.msn ?? last?.msn ?? 0;
      const wantPart = part ?? 0;
      if (
        msn > current + ADVANCE_MSN_LIMIT ||
        (msn === current && part !== undefined && part > (p.nextPart()?.index ?? 0) + ADVANCE_PART_LIMIT - 1)
      ) {
        return fail(reply, 'playlist', 400, { error: 'bad request', reason: 'too far past the live edge' });
      }
      // Part N of segment M (or segment M whole when no part is named) is in the playlist, or something later.
      const ready = (): boolean => {
        const lp = p.lastPart();
        if (p.isEnded) return true;
        if (!lp) return false;
        if (part === undefined) return p.segment(msn)?.complete === true || lp.msn > msn;
        return lp.msn > msn || (lp.msn === msn && lp.index >= wantPart);
      };
      const ok = await s.waitUntil(ready, BLOCK_TARGET_DURATIONS * p.targetDuration * 1000);
      metrics?.blockingReloads.inc({ outcome: ok ? 'ready' : 'timeout' });
      if (!ok) return fail(reply, 'playlist', 503, { error: 'playlist not updated in time' });
    }
    s.lastRequestAt = performance.now(); // a request that waited was in use all along
    const rendered = s.playlist(t.authQuery, skipParam === 'YES' || skipParam === 'v2');
    const headers = {
      ...CORS,
      'content-type': 'application/vnd.apple.mpegurl',
      'cache-control':
        msn !== undefined ? `public, max-age=${BLOCK_TARGET_DURATIONS * 2 * p.targetDuration}` : PLAYLIST_CACHE,
      etag: rendered.etag,
    };
    if (request.headers['if-none-match'] === rendered.etag) {
      count('playlist', 304);
      return reply.code(304).headers(headers).send();
    }
    const bytes = Buffer.byteLength(rendered.body);
    count('playlist', 200, request.method === 'HEAD' ? 0 : bytes);
    return reply.code(200).headers(headers).send(rendered.body);
  };

  const mediaHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const t = targetOf(request);
    const name = (request.params as { file: string }).file;
    const media = parseMediaName(name);
    if (!media) {
      reply.callNotFound();
      return reply;
    }
    const type: HlsRequestType = media.type;
    const r = await resolve(request, t);
    if ('status' in r)
      return fail(reply, type, r.status, {
        error: r.status === 403 ? 'forbidden' : 'stream not found',
        reason: r.reason,
        key: t.key,
      });
    const s = r.stream;
    s.touch(sessionOf(request, t));
    const p = s.packager;
    if (media.gen !== s.gen) return fail(reply, type, 404, { error: 'not found', reason: 'unknown_generation' });
    let bytes: Buffer | undefined;
    if (media.type === 'init') {
      bytes = p.init(media.version);
    } else if (media.type === 'segment') {
      const seg = (): Buffer | undefined => p.segment(media.msn)?.bytes;
      // The segment being built (a client ahead of the playlist) is answered when complete.
      if (!seg() && p.nextPart()?.msn === media.msn)
        await s.waitUntil(() => seg() !== undefined, (p.targetDuration + 1) * 1000 * 2);
      bytes = seg();
    } else {
      const find = (): Buffer | undefined => p.segment(media.msn)?.parts[media.index]?.bytes;
      const next = p.nextPart();
      // The preload hint's part (or the one right after it): held until it is built (LL-HLS).
      const hinted = next !== undefined && media.msn === next.msn && media.index <= next.index + 1;
      const nextSegment = next !== undefined && media.msn === next.msn + 1 && media.index === 0;
      if (!find() && (hinted || nextSegment)) {
        await s.waitUntil(() => find() !== undefined, BLOCK_TARGET_DURATIONS * p.targetDuration * 1000);
      }
      bytes = find();
    }
    s.lastRequestAt = performance.now();
    if (!bytes) return fail(reply, type, 404, { error: 'not found' });
    const etag = `"${name}"`;
    const headers = {
      ...CORS,
      'content-type': media.type === 'init' ? 'video/mp4' : 'video/iso.segment',
      'cache-control': IMMUTABLE,
      etag,
    };
    if (request.headers['if-none-match'] === etag) {
      count(type, 304);
      return reply.code(304).headers(headers).send();
    }
    count(type, 200, request.method === 'HEAD' ? 0 : bytes.length);
    return reply.code(200).headers(headers).send(bytes);
  };

  app.get('/:app/:stream/index.m3u8', playlistHandler);
  app.get('/:app/:stream/:file(^[a-z0-9-]+\\.(?:m4s|mp4)$)', mediaHandler);
  const preflight = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
    reply
      .code(204)
      .headers({
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': String(request.headers['access-control-request-headers'] ?? '*'),
        'access-control-max-age': '600',
      })
      .send();
  app.options('/:app/:stream/index.m3u8', preflight);
  app.options('/:app/:stream/:file(^[a-z0-9-]+\\.(?:m4s|mp4)$)', preflight);
}
