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
 *
 * Two ways in, one answer: the Fastify routes below take a request that needs admission (a new viewer, a new
 * token, an unknown stream) or is invalid; once a stream and auth query are admitted, a viewer's following
 * requests (several a second each) are served by a request listener in front of Fastify's (`serveAdmittedFirst`),
 * which skips Fastify's per-request objects and hooks. It claims only what Fastify's own router sends to these
 * routes, so /api and every other path keep their guards.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { StreamAccess } from '../streams/access.js';
import type { HlsRequestType } from './metrics.js';
import { parseMediaName, type MediaName } from './playlist.js';
import { parseHlsQuery, type HlsQuery } from './query.js';
import { HlsService, type HlsSettings, type HlsTarget } from './service.js';

export { HLS_DEFAULTS, type HlsSettings } from './service.js';

export interface HlsRoutesOptions {
  access: StreamAccess;
  register?: Registry;
  settings?: Partial<HlsSettings>;
}

interface HlsParams {
  app?: string;
  stream?: string;
  file?: string;
}

const PLAYLIST_ROUTE = '/:app/:stream/index.m3u8';
const MEDIA_ROUTE = '/:app/:stream/:file(^[a-z0-9-]+\\.(?:m4s|mp4)$)';

const rawQueryOf = (url: string): string => {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
};

/** RFC 8216bis 6.2.5.2: _HLS_part without _HLS_msn, or malformed values. */
const invalidBlocking = (q: HlsQuery): boolean =>
  Number.isNaN(q.msn) || Number.isNaN(q.part) || (q.part !== undefined && q.msn === undefined);

export function registerHlsRoutes(root: FastifyInstance, opts: HlsRoutesOptions): void {
  const service = new HlsService(opts.access, root.log, opts.settings, opts.register);
  void root.register(async (app) => hlsRoutes(app, service));
  serveAdmittedFirst(root, service);
}

function hlsRoutes(app: FastifyInstance, service: HlsService): void {
  app.addHook('onClose', (_app, done) => {
    service.close();
    done();
  });

  const targetOf = (request: FastifyRequest): HlsTarget => {
    const { app: appName, stream } = request.params as Required<HlsParams>;
    return { app: appName, name: stream, key: `${appName}/${stream}`, query: parseHlsQuery(rawQueryOf(request.url)) };
  };

  /** The answer from here on is written by the service, on the raw response. */
  const answer = (reply: FastifyReply, fn: (res: ServerResponse) => void): void => {
    reply.hijack();
    fn(reply.raw);
  };

  const deny = (
    reply: FastifyReply,
    type: HlsRequestType,
    t: HlsTarget,
    d: { status: 403 | 404; reason: string; description: string },
    withDescription: boolean,
  ): void =>
    answer(reply, (res) =>
      service.fail(res, type, d.status, {
        error: d.status === 403 ? 'forbidden' : 'stream not found',
        reason: d.reason,
        ...(withDescription ? { description: d.description } : {}),
        key: t.key,
      }),
    );

  const playlistHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const t = targetOf(request);
    if (invalidBlocking(t.query)) {
      return answer(reply, (res) =>
        service.fail(res, 'playlist', 400, { error: 'bad request', reason: 'invalid _HLS_msn/_HLS_part' }),
      );
    }
    const r = await service.admit(t, request.ip);
    if ('status' in r) return deny(reply, 'playlist', t, r, true);
    answer(reply, (res) => service.playlist(request.raw, res, r, t.query));
  };

  const mediaHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    const name = (request.params as Required<HlsParams>).file;
    const media = parseMediaName(name);
    if (!media) {
      reply.callNotFound();
      return reply;
    }
    const t = targetOf(request);
    const r = await service.admit(t, request.ip);
    if ('status' in r) return deny(reply, media.type, t, r, false);
    answer(reply, (res) => service.media(request.raw, res, r, t.query, name, media));
  };

  app.get(PLAYLIST_ROUTE, playlistHandler);
  app.get(MEDIA_ROUTE, mediaHandler);
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
  app.options(PLAYLIST_ROUTE, preflight);
  app.options(MEDIA_ROUTE, preflight);
}

/** What a request target routes to: parsed once per distinct target and shared (immutable). */
interface Routed {
  key: string;
  query: HlsQuery;
  /** The media file name and what it names; undefined for the playlist. */
  file: string | undefined;
  media: MediaName | undefined;
}

/** Request targets remembered (each viewer at the live edge asks for the same ones); past this, it starts over. */
const ROUTED_MAX = 4096;

/**
 * Puts a request listener in front of Fastify's on `root`'s server: a GET or HEAD that Fastify's router sends to
 * an HLS route, for a stream and auth query admitted within AUTH_TTL_MS, is answered here; everything else
 * (admission, invalid requests, preflight, every other route) goes on to Fastify unchanged.
 */
function serveAdmittedFirst(root: FastifyInstance, service: HlsService): void {
  const server = root.server;
  const next = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  const routed = new Map<string, Routed>();
  /** Fastify's own router decides what is an HLS request (so every other route keeps its precedence and guards). */
  const route = (method: 'GET' | 'HEAD', url: string): Routed | undefined => {
    const known = routed.get(url);
    if (known) return known;
    const params = root.findRoute({ method, url })?.params as HlsParams | undefined;
    if (params?.app === undefined || params.stream === undefined) return undefined;
    const query = parseHlsQuery(rawQueryOf(url));
    const media = params.file === undefined ? undefined : parseMediaName(params.file);
    if (params.file === undefined ? invalidBlocking(query) : !media) return undefined; // Fastify answers those
    const r: Routed = { key: `${params.app}/${params.stream}`, query, file: params.file, media };
    if (routed.size >= ROUTED_MAX) routed.clear();
    routed.set(url, r);
    return r;
  };
  const served = (req: IncomingMessage, res: ServerResponse): boolean => {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const r = route(method, req.url ?? '');
    if (!r) return false;
    const s = service.admitted(r.key, r.query.authQuery);
    if (!s) return false;
    if (r.media) service.media(req, res, s, r.query, r.file!, r.media);
    else service.playlist(req, res, s, r.query);
    return true;
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!served(req, res)) for (const listener of next) listener(req, res);
  });
}
