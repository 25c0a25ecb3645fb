import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { ClusterApi, KickCommand } from './cluster/api.js';

/** What the node's JSON API reads and controls. */
export interface ApiOptions {
  listStreams: () => unknown[];
  getStream: (key: string) => unknown | undefined;
  nodeInfo: () => unknown;
  /** Bearer token required by every /api route when set. */
  apiToken?: string;
  /** Cluster-wide API (origin and edge roles). */
  cluster?: ClusterApi;
  /** Viewer routing counts the viewers it sent to an edge this long, until the edge's heartbeat reports them. */
  routePendingMs?: number;
}

/** The /api endpoints, as listed by GET / of the listener that serves them. */
export function apiEndpoints(opts: ApiOptions): string[] {
  return [
    '/api/streams',
    '/api/streams/:app/:name',
    '/api/node',
    ...(opts.cluster
      ? ['/api/cluster/nodes', '/api/cluster/streams', '/api/cluster/streams/:app/:name', 'POST /api/cluster/kick']
      : []),
  ];
}

/**
 * Registers the /api routes in their own encapsulated plugin whose onRequest hook checks the token. The hook belongs
 * to the routes, not to URL text: whatever request the router matched to an /api route (percent-encoded, dot
 * segments, duplicate slashes, HEAD...) passes the check first.
 */
export function registerApi(app: FastifyInstance, opts: ApiOptions): void {
  void app.register(async (api) => {
    if (opts.apiToken) api.addHook('onRequest', bearerGuard(opts.apiToken));
    apiRoutes(api, opts);
  });
}

/** 401 unless `Authorization: Bearer <token>` (compared in constant time). */
export function bearerGuard(token: string): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = Buffer.from(`Bearer ${token}`);
  return async (req, reply) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized' });
    }
  };
}

function apiRoutes(api: FastifyInstance, opts: ApiOptions): void {
  api.get('/api/streams', async () => ({ streams: opts.listStreams() }));

  api.get('/api/streams/*', async (req, reply) => {
    const key = wildcardKey(req);
    const stream = key ? opts.getStream(key) : undefined;
    if (stream === undefined) return reply.code(404).send({ error: 'stream not found', key });
    return stream;
  });

  api.get('/api/node', async () => opts.nodeInfo());

  const cluster = opts.cluster;
  if (!cluster) return;
  api.get('/api/cluster/nodes', async () => ({ nodes: await cluster.listNodes() }));
  api.get('/api/cluster/streams', async () => ({ streams: await cluster.listStreams() }));
  api.get('/api/cluster/streams/*', async (req, reply) => {
    const key = wildcardKey(req);
    const stream = key ? await cluster.getStream(key) : undefined;
    if (stream === undefined) return reply.code(404).send({ error: 'stream not found', key });
    return stream;
  });
  api.post(
    '/api/cluster/kick',
    {
      schema: {
        body: {
          type: 'object',
          required: ['key', 'what'],
          additionalProperties: false,
          properties: {
            key: { type: 'string', minLength: 1, maxLength: 512 },
            what: { type: 'string', enum: ['publisher', 'viewers', 'stream'] },
            sessionId: { type: 'string', maxLength: 128 },
            reason: { type: 'string', maxLength: 256 },
          },
        },
      },
    },
    async (req, reply) => {
      await cluster.kick(req.body as KickCommand);
      return reply.code(202).send({ accepted: true });
    },
  );
}

/** `<app>/<name>` of a `.../streams/*` route, without trailing slashes. */
function wildcardKey(req: FastifyRequest): string {
  return ((req.params as Record<string, string | undefined>)['*'] ?? '').replace(/\/+$/, '');
}
