/**
 * Viewer routing over HTTP, on the public (media) listener of every cluster node: viewers and players call it, and it
 * reveals only an edge's viewer URL (no API token).
 *   GET /api/cluster/route?stream=<app>/<name>&protocol=rtmp|http-flv|ws-flv  → { url, nodeId, reason }
 *   GET /play/<app>/<name>.flv   → 302 to the chosen edge's HTTP-FLV URL (FFmpeg and flv.js follow it)
 *   GET /play/<app>/<name>       → 302 to the chosen edge's rtmp:// URL, with the same JSON as the body
 * The query string of a /play/ request (a signed play token) is passed on to the edge URL. The choice is
 * cluster/route.ts's, over the node records in Redis. (An app named `play` is not reachable as /play/<name>.flv.)
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ClusterApi } from './cluster/api.js';
import {
  PendingRoutes,
  ROUTE_PROTOCOLS,
  chooseEdge,
  edgeUrl,
  routePendingMs,
  type RouteNode,
  type RouteProtocol,
} from './cluster/route.js';

/** Cap for node records that declare none (nodes older than ROUTE_MAX_VIEWERS): the setting's default. */
const DEFAULT_MAX_VIEWERS = 2000;
/** HEARTBEAT_MS's default, for callers that don't say. */
const DEFAULT_HEARTBEAT_MS = 2000;
const FLV_SUFFIX = '.flv';
/**
 * Browser players on another origin (a platform's site) fetch /play/ and the route API cross-origin: a redirect
 * without this header fails in the browser before it is followed. The answers are public (an edge's viewer URL).
 */
const CORS = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'location' } as const;
/** `<app>/<name>`: one segment each, as the RTMP and FLV routes accept them. */
const STREAM_RE = /^([^/?#\s]{1,256})\/([^/?#\s]{1,1024})$/;

interface Routed {
  url: string;
  nodeId: string;
  reason: string;
}

export function registerRouteHttp(
  app: FastifyInstance,
  cluster: ClusterApi,
  pendingMs = routePendingMs(DEFAULT_HEARTBEAT_MS),
): void {
  const pending = new PendingRoutes(pendingMs);
  const route = async (stream: string, protocol: RouteProtocol, query: string): Promise<Routed | undefined> => {
    const m = STREAM_RE.exec(stream);
    if (!m) return undefined;
    const records = (await cluster.listNodes()) as RouteNode[];
    const choice = chooseEdge(pending.apply(records), stream, { maxViewers: DEFAULT_MAX_VIEWERS });
    if (!choice) return undefined;
    pending.add(records.find((n) => n.id === choice.node.id)!);
    return { url: edgeUrl(choice.node, m[1]!, m[2]!, protocol, query), nodeId: choice.node.id, reason: choice.reason };
  };
  const noEdge = (reply: FastifyReply) => reply.code(503).headers(CORS).send({ error: 'no edge can take viewers now' });

  app.get('/api/cluster/route', async (req, reply) => {
    const q = req.query as { stream?: string; protocol?: string };
    const protocol = (q.protocol ?? 'http-flv') as RouteProtocol;
    if (!q.stream || !STREAM_RE.test(q.stream) || !ROUTE_PROTOCOLS.includes(protocol))
      return reply.code(400).send({ error: `expected ?stream=<app>/<name>&protocol=${ROUTE_PROTOCOLS.join('|')}` });
    const routed = await route(q.stream, protocol, '');
    return routed ? reply.headers(CORS).header('cache-control', 'no-store').send(routed) : noEdge(reply);
  });

  app.get('/play/*', async (req, reply) => {
    const [path = '', query = ''] = req.url.slice('/play/'.length).split(/\?(.*)/s, 2);
    let stream: string;
    try {
      stream = decodeURIComponent(path);
    } catch {
      return reply.code(400).send({ error: 'bad path' });
    }
    const flv = stream.endsWith(FLV_SUFFIX);
    if (flv) stream = stream.slice(0, -FLV_SUFFIX.length);
    if (!STREAM_RE.test(stream)) return reply.code(404).send({ error: 'not found', path: req.url });
    const routed = await route(stream, flv ? 'http-flv' : 'rtmp', query);
    if (!routed) return noEdge(reply);
    return reply
      .code(302)
      .headers(CORS)
      .header('location', routed.url)
      .header('cache-control', 'no-store')
      .send(routed);
  });
}
