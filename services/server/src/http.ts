import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { apiEndpoints, registerApi, type ApiOptions } from './api.js';
import { ClusterUnavailableError } from './cluster/api.js';
import { registerConsole } from './console.js';
import { registerFlvRoutes, type FlvRoutesOptions } from './flv/routes.js';
import { registerHlsRoutes, type HlsSettings } from './hls/routes.js';
import { registerRouteHttp } from './route-http.js';

export interface HttpServerOptions extends ApiOptions {
  host: string;
  /** 0 binds any free port; the bound one is returned. */
  port: number;
  logger: Logger;
  register: Registry;
  isReady: () => boolean;
  /** HTTP-FLV and WebSocket-FLV playback at /{app}/{stream}.flv (see flv/routes.ts). */
  flv?: FlvRoutesOptions;
  /** LL-HLS at /{app}/{stream}/index.m3u8, served with the FLV routes (same access); see hls/routes.ts. */
  hls?: Partial<HlsSettings>;
  /**
   * A separate admin listener: /metrics and /api/* are then served only there (404 on the public port), for a
   * deployment that keeps it cluster-internal. Port 0 binds any free port.
   */
  admin?: { host: string; port: number };
  /** HTTP connections (WebSocket-FLV ones included) accepted at once, per listener; more are dropped at accept. */
  maxConnections?: number;
  /** Slow-client bounds; defaults in HTTP_TIMEOUTS. */
  timeouts?: Partial<HttpTimeouts>;
}

/** Bounds on slow clients (slowloris). None limits a response: an HTTP-FLV play is a long response, not a slow request. */
export interface HttpTimeouts {
  /** A request's headers must arrive within this (an idle new connection counts from its accept); else 408, closed. */
  headersMs: number;
  /** A whole request (headers and body) must arrive within this. */
  requestMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
  /** How often Node checks the two bounds above (they fire up to this late). */
  checkIntervalMs: number;
}

export const HTTP_TIMEOUTS: HttpTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 10_000,
  checkIntervalMs: 2_000,
};

export const DEFAULT_MAX_HTTP_CONNECTIONS = 20_000;

/** Request bodies: the API's largest is a kick command of well under 1 KiB. */
const BODY_LIMIT_BYTES = 16 * 1024;

/** At most one "connection cap reached" warning per this long (a flood would otherwise flood the log). */
const DROP_LOG_INTERVAL_MS = 10_000;

export interface RunningHttpServer {
  port: number;
  /** The admin listener's port, when `admin` was given. */
  adminPort?: number;
  close(): Promise<void>;
}

type ListenerName = 'public' | 'admin';

/** What one listener serves. */
interface Surface {
  name: ListenerName;
  /** HTTP-FLV / WS-FLV and the index of them. */
  media: boolean;
  /** /metrics and /api/*. */
  admin: boolean;
}

/**
 * Health, readiness, Prometheus metrics and a small JSON API:
 * GET /healthz, /readyz, /metrics, /api/streams, /api/streams/<app>/<name>, /api/node (+ /api/cluster/* in cluster
 * roles); with `flv`, HTTP-FLV and WebSocket-FLV playback at /<app>/<name>.flv; the web console at /console/.
 * With `admin`, /metrics and /api/* move to the admin listener; health, readiness and the console are on both.
 * Fastify logs through a child of the given logger, warn and above, no per-request lines.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const rejected = rejectedCounter(opts.register);
  const surfaces: Surface[] = opts.admin
    ? [
        { name: 'public', media: true, admin: false },
        { name: 'admin', media: false, admin: true },
      ]
    : [{ name: 'public', media: true, admin: true }];
  const apps: FastifyInstance[] = [];
  const closeAll = (): Promise<void> => Promise.all(apps.map((a) => a.close())).then(() => {});
  try {
    for (const surface of surfaces) {
      const bind = surface.name === 'admin' ? opts.admin! : { host: opts.host, port: opts.port };
      apps.push(await listen(() => buildApp(opts, surface, rejected), bind.host, bind.port));
    }
  } catch (err) {
    await closeAll().catch(() => {});
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    port: portOf(apps[0]!),
    ...(apps[1] ? { adminPort: portOf(apps[1]) } : {}),
    close: () => (closing ??= closeAll()),
  };
}

async function listen(build: () => FastifyInstance, host: string, port: number): Promise<FastifyInstance> {
  const app = build();
  try {
    await app.listen({ host, port });
    return app;
  } catch (err) {
    await app.close().catch(() => {});
    // '::' on a host without IPv6: fall back to all IPv4 interfaces rather than failing to start.
    if (host === '::' && (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') {
      const v4 = build();
      await v4.listen({ host: '0.0.0.0', port });
      return v4;
    }
    throw err;
  }
}

function portOf(app: FastifyInstance): number {
  return (app.server.address() as AddressInfo).port;
}

/** One counter per registry (several servers may share one, e.g. a restart in-process). */
function rejectedCounter(register: Registry): Counter<'listener' | 'reason'> {
  const name = 'http_connections_rejected_total';
  return (
    (register.getSingleMetric(name) as Counter<'listener' | 'reason'> | undefined) ??
    new Counter({
      name,
      help: 'HTTP/WebSocket connections refused at accept, by listener and reason',
      labelNames: ['listener', 'reason'],
      registers: [register],
    })
  );
}

function buildApp(
  opts: HttpServerOptions,
  surface: Surface,
  rejected: Counter<'listener' | 'reason'>,
): FastifyInstance {
  const timeouts = { ...HTTP_TIMEOUTS, ...opts.timeouts };
  const log = opts.logger.child({ component: 'http', listener: surface.name });
  // Request/response lines are info level: below warn, so never written.
  const app = Fastify({
    // warn and above, never more verbose than the node's own level (LOG_LEVEL=silent stays silent).
    loggerInstance: log.child({}, { level: quieterOf(opts.logger.level, 'warn') }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: timeouts.checkIntervalMs },
    // The listener closes last, just before the process exits; until then /healthz answers 200 (a liveness failure
    // during a drain would restart the pod and cut its viewers), never Fastify's default 503-while-closing.
    return503OnClosing: false,
    // ...and once it closes, every connection goes with it: media viewers were ended by then, and a client
    // mid-request (or a slow-headers one) must not keep a closed listener and a live process until its timeout.
    forceCloseConnections: true,
  });
  limitConnections(app, opts.maxConnections ?? DEFAULT_MAX_HTTP_CONNECTIONS, surface.name, rejected, log);

  app.get('/', async () => ({
    endpoints: [
      '/healthz',
      '/readyz',
      ...(surface.admin ? ['/metrics', ...apiEndpoints(opts)] : []),
      ...(surface.media && opts.flv ? ['/:app/:name.flv (HTTP-FLV; WebSocket-FLV on upgrade)'] : []),
      ...(surface.media && opts.flv ? ['/:app/:name/index.m3u8 (LL-HLS)'] : []),
      '/console/',
    ],
  }));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const ready = opts.isReady();
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  if (surface.admin) {
    app.get('/metrics', async (_req, reply) => {
      const text = await opts.register.metrics();
      return reply.header('content-type', opts.register.contentType).send(text);
    });
    registerApi(app, opts);
  }

  if (surface.media && opts.flv) registerFlvRoutes(app, opts.flv);
  if (surface.media && opts.cluster) registerRouteHttp(app, opts.cluster, opts.routePendingMs); // public: viewers call it
  if (surface.media && opts.flv)
    registerHlsRoutes(app, { access: opts.flv.access, register: opts.register, settings: opts.hls });

  // Its files carry no data; on the admin listener too, where its /api calls are answered (same origin).
  registerConsole(app);

  // A dependency outage (Redis down: the cluster API can't answer) is 503, not a server bug (500).
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    const unavailable = err instanceof ClusterUnavailableError;
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

/**
 * Node drops connections past `server.maxConnections` at accept (before any byte is read; WebSocket upgrades are
 * HTTP connections, so they count until closed) and emits 'drop' for each (Node >= 18.6): counted, and logged at
 * most once per DROP_LOG_INTERVAL_MS.
 */
function limitConnections(
  app: FastifyInstance,
  max: number,
  listener: ListenerName,
  rejected: Counter<'listener' | 'reason'>,
  log: Logger,
): void {
  app.server.maxConnections = max;
  let unlogged = 0;
  let lastLogAt = -Infinity;
  app.server.on('drop', () => {
    rejected.inc({ listener, reason: 'max_connections' });
    unlogged++;
    const now = performance.now();
    if (now - lastLogAt < DROP_LOG_INTERVAL_MS) return;
    log.warn({ dropped: unlogged, maxConnections: max }, 'HTTP connection cap reached: dropping new connections');
    unlogged = 0;
    lastLogAt = now;
  });
}

const LEVEL_ORDER = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The less verbose of two pino levels. */
function quieterOf(a: string, b: string): string {
  return LEVEL_ORDER.indexOf(a) > LEVEL_ORDER.indexOf(b) ? a : b;
}
