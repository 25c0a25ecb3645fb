import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

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
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Health, readiness, Prometheus metrics and a small read-only JSON API:
 * GET /healthz, /readyz, /metrics, /api/streams, /api/streams/<app>/<name>, /api/node.
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
    loggerInstance: opts.logger.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
  });

  app.get('/', async () => ({
    endpoints: ['/healthz', '/readyz', '/metrics', '/api/streams', '/api/streams/:app/:name', '/api/node'],
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

  app.get('/api/streams', async () => ({ streams: opts.listStreams() }));

  app.get('/api/streams/*', async (req, reply) => {
    const key = ((req.params as Record<string, string | undefined>)['*'] ?? '').replace(/\/+$/, '');
    const stream = key ? opts.getStream(key) : undefined;
    if (stream === undefined) return reply.code(404).send({ error: 'stream not found', key });
    return stream;
  });

  app.get('/api/node', async () => opts.nodeInfo());

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not found', path: req.url });
  });

  return app;
}
