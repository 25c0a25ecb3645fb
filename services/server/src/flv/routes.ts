import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Membership, StreamAccess } from '../streams/access.js';
import type { StreamRequest } from '../streams/types.js';
import {
  HttpFlvViewer,
  WsFlvViewer,
  parseCodecsQuery,
  type FlvProtocol,
  type FlvViewer,
  type FlvWebSocket,
} from './viewer.js';

export interface FlvRoutesOptions {
  /** The node's one path to streams: the same admission, metrics and limits as RTMP plays. */
  access: StreamAccess;
}

/** Largest message a WebSocket-FLV client may send (it has nothing to say; anything it sends is ignored). */
const WS_MAX_PAYLOAD = 4096;

/** A play that passed admission, between the preHandler and the handler. */
interface AdmittedPlay {
  req: StreamRequest;
  clusterPeer: boolean;
  fourCcs: Set<string>;
}

const FLV_HEADERS = {
  'content-type': 'video/x-flv',
  'cache-control': 'no-cache, no-store',
  'access-control-allow-origin': '*',
  'x-content-type-options': 'nosniff',
} as const;

/**
 * `/app/name.flv` -> app and name (the name may contain slashes: `/live/a/b.flv` is app `live`, name `a/b`). Only
 * the shape is checked here; what names may contain is decided by admission, as for RTMP plays.
 */
export function parseFlvPath(url: string): { app: string; name: string; query: URLSearchParams } | undefined {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (!path.endsWith('.flv')) return undefined;
  const segments = path.slice(1, -'.flv'.length).split('/');
  if (segments.length < 2) return undefined;
  let decoded: string[];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  const [app, ...rest] = decoded;
  const name = rest.join('/');
  // Dot segments never name a stream (admission refuses them too; here they are simply not an FLV path).
  if (!app || app.includes('/') || !name || decoded.some((s) => s === '..' || s === '.')) return undefined;
  return { app, name, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)) };
}

/**
 * HTTP-FLV and WebSocket-FLV playback on the node's HTTP port, served from the same hubs as RTMP plays:
 *
 *   GET /{app}/{stream}.flv                       chunked FLV (CORS: Access-Control-Allow-Origin *)
 *   GET /{app}/{stream}.flv + Upgrade: websocket  the FLV header, then one FLV tag per binary message
 *
 * Query parameters (both forms):
 *   expires, token   signed play token, as for RTMP plays (checked by the node's StreamPolicy)
 *   codecs           Enhanced RTMP FourCCs the player can decode, comma separated (e.g. `codecs=av01,hvc1`; `*` =
 *                    any). Without it the viewer gets legacy codecs only (H.264/AAC/MP3...), like an RTMP player that
 *                    sent no fourCcList.
 *
 * A play goes through the same policy as an RTMP play (authorization; on edges the on-demand pull, waiting for the
 * stream): denied -> 403, not live -> 404, both with a JSON body { error, reason, description }. Viewers count as
 * rtmp_viewers{protocol="http-flv"|"ws-flv"} and keep an edge's pull alive like RTMP viewers.
 */
export function registerFlvRoutes(root: FastifyInstance, opts: FlvRoutesOptions): void {
  // On the root instance, so that its hooks close upgrade requests to every other route too; the routes below are
  // registered after it has loaded (the plugin only handles routes added after it).
  void root.register(fastifyWebsocket, {
    // No per-message deflate: WsFlvViewer writes the shared frames next to ws's own, which needs ws to write
    // whole frames synchronously (it queues only while compressing).
    options: { maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false, clientTracking: true },
    errorHandler: (err, socket, request) => {
      request.log.debug({ err: err.message }, 'websocket error');
      socket.terminate();
    },
  });
  void root.register(async (app) => flvRoutes(app, opts));
}

function flvRoutes(app: FastifyInstance, opts: FlvRoutesOptions): void {
  const admitted = new WeakMap<FastifyRequest, AdmittedPlay>();
  const live = new Set<FlvViewer>();
  let nextId = 0;

  // Shutdown: end every HTTP-FLV response (the websocket plugin closes its clients itself).
  app.addHook('preClose', (done) => {
    for (const v of [...live]) v.disconnect('shutdown');
    done();
  });

  const access = opts.access;

  /** Authorization and stream lookup, before the response starts (or the WebSocket upgrade): 403/404 stay possible. */
  const preHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const target = parseFlvPath(request.url);
    if (!target) {
      reply.callNotFound();
      return reply;
    }
    const key = `${target.app}/${target.name}`;
    const protocol: FlvProtocol = request.ws ? 'ws-flv' : 'http-flv';
    const req: StreamRequest = {
      app: target.app,
      name: target.name,
      key,
      query: target.query,
      clientIp: request.ip,
      sessionId: `${protocol}-${(++nextId).toString(36)}`,
    };
    const decision = await access.admitPlay(req);
    if (request.raw.socket?.destroyed) {
      // The client went away while the play waited: nothing to answer.
      reply.hijack();
      return reply;
    }
    if (!decision.allow) {
      const status = decision.status === 'Denied' ? 403 : 404;
      return reply
        .code(status)
        .headers({ 'access-control-allow-origin': '*', 'cache-control': 'no-store' })
        .send({
          error: status === 403 ? 'forbidden' : 'stream not found',
          reason: decision.reason,
          description: decision.description,
          key,
        });
    }
    admitted.set(request, {
      req,
      clusterPeer: decision.clusterPeer === true,
      fourCcs: parseCodecsQuery(target.query.get('codecs')),
    });
  };

  /** Adds a viewer to the stream's hub through the same path as an RTMP play. */
  const join = (play: AdmittedPlay, make: (onGone: (reason: string) => void) => FlvViewer): FlvViewer => {
    const joined: { membership?: Membership } = {};
    // Called once, when the viewer leaves (its connection closed, the stream ended, or the hub dropped it).
    const viewer: FlvViewer = make(() => {
      live.delete(viewer);
      joined.membership?.leave();
    });
    live.add(viewer);
    joined.membership = access.join(play.req, viewer, viewer.protocol, play.clusterPeer);
    viewer.flushJoin();
    return viewer;
  };

  const httpHandler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    const play = admitted.get(request);
    if (!play) return reply.callNotFound();
    admitted.delete(request);
    if (request.method === 'HEAD') return reply.code(200).headers(FLV_HEADERS).send();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, FLV_HEADERS);
    res.flushHeaders();
    const viewer = join(play, (onGone) => new HttpFlvViewer(play.req.sessionId, res, play.fourCcs, onGone));
    if (res.destroyed) viewer.leave('client_closed');
    else res.once('close', () => viewer.leave('client_closed'));
  };

  const wsHandler = (ws: FlvWebSocket, request: FastifyRequest): void => {
    const play = admitted.get(request);
    if (!play) {
      ws.close(1008, 'not found');
      return;
    }
    admitted.delete(request);
    const socket = (request.raw as IncomingMessage).socket as Socket;
    ws.on('message', () => {}); // nothing to read; maxPayload bounds it
    const viewer = join(play, (onGone) => new WsFlvViewer(play.req.sessionId, ws, socket, play.fourCcs, onGone));
    if (ws.readyState > 1) viewer.leave('client_closed');
    else ws.once('close', () => viewer.leave('client_closed'));
  };

  app.route({
    method: 'GET',
    url: '/:app/*',
    preHandler,
    handler: httpHandler,
    wsHandler,
  });

  // CORS preflight for players that add headers (Range, custom auth headers) to their FLV request.
  app.options('/:app/*', async (request, reply) => {
    if (!parseFlvPath(request.url)) return reply.callNotFound();
    return reply
      .code(204)
      .headers({
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': String(request.headers['access-control-request-headers'] ?? '*'),
        'access-control-max-age': '600',
      })
      .send();
  });
}
