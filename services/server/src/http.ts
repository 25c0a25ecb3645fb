import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { registerConsole } from './console.js';
import { registerFlvRoutes, type FlvRoutesOptions } from './flv/routes.js';

export interface HttpServerOptions {
  host: string;
  /** 0 binds any free port; the bound one is returned. */
  port: number;
  logger: Logger;
  register: Registry;
  isReady: () => boolean;
  listStreams: () => unknown[];
  getStream: (key: string) => unknown | undefined;
  nodeInfo: () => unknown;
  /** Bearer token required for /api/* when set (health, readiness and metrics stay open for probes). */
  apiToken?: string;
  /** Cluster-wide API (origin and edge roles). */
  cluster?: ClusterApi;
  /** HTTP-FLV and WebSocket-FLV playback at /{app}/{stream}.flv (see flv/routes.ts). */
  flv?: FlvRoutesOptions;
}

/** Cluster-wide view and control, backed by Redis (truth) and NATS (commands). */
export interface ClusterApi {
  listNodes(): Promise<unknown[]>;
  listStreams(): Promise<unknown[]>;
  getStream(key: string): Promise<unknown | undefined>;
  /** Kick a stream's publisher, its viewers (optionally one session), or drop the stream, wherever it is. */
  kick(cmd: {
    key: string;
    what: 'publisher' | 'viewers' | 'stream';
    sessionId?: string;
    reason?: string;
  }): Promise<void>;
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Health, readiness, Prometheus metrics and a small read-only JSON API:
 * GET /healthz, /readyz, /metrics, /api/streams, /api/streams/<app>/<name>, /api/node; and, with `flv`, HTTP-FLV and
 * WebSocket-FLV playback at /<app>/<name>.flv.
 * Fastify logs through a child of the given logger, warn and above, no per-request lines.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const app = buildApp(opts);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    // '::' on a host without IPv6: fall back to all IPv4 interfaces rather than failing to start.
    if (opts.host === '::' && (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') {
      await app.close().catch(() => {});
      const v4 = buildApp(opts);
      await v4.listen({ host: '0.0.0.0', port: opts.port });
      return running(v4);
    }
    await app.close().catch(() => {});
    throw err;
  }
  return running(app);
}

function running(app: FastifyInstance): RunningHttpServer {
  const address = app.server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    close: () => (closing ??= app.close()),
  };
}

function buildApp(opts: HttpServerOptions): FastifyInstance {
  // Request/response lines are info level: below warn, so never written.
  const app = Fastify({
    // warn and above, never more verbose than the node's own level (LOG_LEVEL=silent stays silent).
    loggerInstance: opts.logger.child(
      { component: 'http' },
      { level: quieterOf(opts.logger.level, 'warn') },
    ) as FastifyBaseLogger,
  });

  app.get('/', async () => ({
    endpoints: [
      '/healthz',
      '/readyz',
      '/metrics',
      '/api/streams',
      '/api/streams/:app/:name',
      '/api/node',
      ...(opts.cluster
        ? ['/api/cluster/nodes', '/api/cluster/streams', '/api/cluster/streams/:app/:name', 'POST /api/cluster/kick']
        : []),
      ...(opts.flv ? ['/:app/:name.flv (HTTP-FLV; WebSocket-FLV on upgrade)'] : []),
    ],
  }));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const ready = opts.isReady();
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await opts.register.metrics();
    return reply.header('content-type', opts.register.contentType).send(text);
  });

  if (opts.apiToken) {
    const expected = Buffer.from(`Bearer ${opts.apiToken}`);
    app.addHook('onRequest', async (req, reply) => {
      if (!req.url.startsWith('/api/')) return;
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized' });
      }
    });
  }

  app.get('/api/streams', async () => ({ streams: opts.listStreams() }));

  app.get('/api/streams/*', async (req, reply) => {
    const key = ((req.params as Record<string, string | undefined>)['*'] ?? '').replace(/\/+$/, '');
    const stream = key ? opts.getStream(key) : undefined;
    if (stream === undefined) return reply.code(404).send({ error: 'stream not found', key });
    return stream;
  });

  app.get('/api/node', async () => opts.nodeInfo());

  const cluster = opts.cluster;
  if (cluster) {
    app.get('/api/cluster/nodes', async () => ({ nodes: await cluster.listNodes() }));
    app.get('/api/cluster/streams', async () => ({ streams: await cluster.listStreams() }));
    app.get('/api/cluster/streams/*', async (req, reply) => {
      const key = ((req.params as Record<string, string | undefined>)['*'] ?? '').replace(/\/+$/, '');
      const stream = key ? await cluster.getStream(key) : undefined;
      if (stream === undefined) return reply.code(404).send({ error: 'stream not found', key });
      return stream;
    });
    app.post(
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
        await cluster.kick(req.body as Parameters<ClusterApi['kick']>[0]);
        return reply.code(202).send({ accepted: true });
      },
    );
  }

  if (opts.flv) registerFlvRoutes(app, opts.flv);

  registerConsole(app);

  // A dependency outage (Redis down: the cluster API can't answer) is 503, not a server bug (500).
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    const unavailable = /isn't writeable|ECONNREFUSED|Connection is closed|Command timed out|not connected/i.test(
      err.message,
    );
    if (!unavailable) opts.logger.error({ err }, 'http handler error');
    return reply
      .code(unavailable ? 503 : 500)
      .send({ error: unavailable ? 'cluster registry unavailable' : 'internal error' });
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not found', path: req.url });
  });

  return app;
}

const LEVEL_ORDER = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The less verbose of two pino levels. */
function quieterOf(a: string, b: string): string {
  return LEVEL_ORDER.indexOf(a) > LEVEL_ORDER.indexOf(b) ? a : b;
}
