import { HubRegistry, type HubObserver } from '@rtmp-relay/hub';
import type { Logger } from 'pino';
import { Authorizer, TokenVerifier } from './auth/index.js';
import { prepareCluster, type ClusterRuntime } from './cluster/runtime.js';
import { configToConnectionLimits, configToHubOptions, type Config } from './config.js';
import { FLV_PROTOCOLS } from './flv/index.js';
import { startHttpServer } from './http.js';
import { createLogger } from './logger.js';
import { createMetrics, HotCounters, type Metrics } from './metrics.js';
import { RtmpServer, type RtmpServerObserver } from './rtmp/server.js';
import { startTlsListener, type TlsListener } from './rtmp/tls-listener.js';
import { AuthFailureLimiter, LiveWaiters, LocalStreamPolicy, StreamAccess, streamLabel } from './streams/index.js';
import { statsOf } from './streams/stats.js';
import { describeStream } from './streams.js';
import type { StreamPolicy } from './streams/types.js';
import { VERSION } from './version.js';
import { routePendingMs } from './cluster/route.js';

import type { Role } from './roles.js';

export type { Role };

export interface RunningNode {
  rtmpPort: number;
  httpPort: number;
  /** The RTMPS listener's port, when TLS_CERT_FILE/TLS_KEY_FILE are set. */
  rtmpsPort?: number;
  /** The admin listener's port (/metrics, /api), when ADMIN_PORT is set. */
  adminPort?: number;
  /** Stop accepting, go not-ready, let connections finish up to SHUTDOWN_TIMEOUT_MS, then close everything. */
  shutdown(reason: string): Promise<void>;
}

/**
 * One node: stream hubs, the role's policy and admission (built first), then the RTMP/RTMPS and HTTP listeners, then
 * (cluster roles) registration and heartbeats. Nothing is accepted before the node can apply its role's rules, and
 * `/readyz` says ready only once every part is up. The standalone role runs origin and edge together in memory.
 */
export async function startNode(config: Config, opts: { role: Role }): Promise<RunningNode> {
  const log = createLogger(config.logLevel, { node: config.nodeId, role: opts.role });
  const hot = new HotCounters();
  const metrics = createMetrics(hot);
  const waiters: { live?: LiveWaiters } = {};
  const hubObserver: HubObserver = {
    messageIn: (kind, bytes) => hot.messageIn(kind, bytes),
    bytesOut: (bytes) => {
      hot.bytesOut += bytes;
    },
    dropped: (kind, reason) => hot.dropped(kind, reason),
    live: (key) => waiters.live?.notifyLive(key),
    slowViewerDisconnected: (viewerId, reason) => {
      metrics.slowViewersDisconnected.inc({ reason });
      log.warn({ viewer: viewerId, reason }, 'slow viewer disconnected');
    },
  };
  const registry = new HubRegistry(configToHubOptions(config), hubObserver);
  const live = (waiters.live = new LiveWaiters(registry));
  metrics.streams.collect = () => metrics.streams.set(registry.list().filter((h) => h.isLive).length);
  metrics.streamViewers.collect = () => collectTopStreams(registry, metrics, config.streamMetricsTopN);
  for (const protocol of FLV_PROTOCOLS) metrics.viewers.inc({ protocol }, 0);

  // 1. The role's policy and admission, before any listener opens.
  let cluster: ClusterRuntime | undefined;
  let policy: StreamPolicy;
  if (opts.role === 'standalone') {
    policy = new LocalStreamPolicy(live.waitForLive, config.playWaitMs);
  } else {
    cluster = await prepareCluster(config, opts.role, {
      registry,
      log,
      register: metrics.register,
      hot,
      version: VERSION,
      waitForLive: live.waitForLive,
      // Viewer ids start with their connection's session id (RTMP `<session>/<stream>`, FLV likewise).
      kickViewers: (key, sessionId, reason) =>
        registry
          .get(key)
          ?.disconnectViewers(
            reason,
            (id) => sessionId === undefined || id === sessionId || id.startsWith(`${sessionId}/`),
          ),
    });
    policy = cluster.policy;
  }
  const authFailures = new AuthFailureLimiter(config.authFailLimit, config.authFailWindowMs);
  const access = new StreamAccess({
    registry,
    policy,
    authorizer: buildAuthorizer(config, log, metrics),
    clusterTokens: config.clusterSecret
      ? new TokenVerifier('pull', { defaultSecret: config.clusterSecret })
      : undefined,
    playsNeedClusterToken: opts.role === 'origin' && config.clusterSecret !== '',
    authFailures,
    observer: {
      publishStarted: () => metrics.publishers.inc(),
      publishStopped: () => metrics.publishers.dec(),
      viewerStarted: (protocol) => metrics.viewers.inc({ protocol }),
      viewerStopped: (protocol) => metrics.viewers.dec({ protocol }),
      publishRejected: (reason) => metrics.publishRejected.inc({ reason }),
      playRejected: (reason) => metrics.playRejected.inc({ reason }),
    },
    log,
  });
  warnAboutOpenDoors(config, opts.role, log);

  // 2. Listeners.
  const observer: RtmpServerObserver = {
    connectionOpened: () => {
      metrics.connections.inc();
      metrics.connectionsTotal.inc();
    },
    connectionClosed: (reason, protocolError) => {
      metrics.connections.dec();
      if (protocolError) metrics.connectionErrors.inc({ reason });
    },
    connectionRejected: (reason) => metrics.connectionsRejected.inc({ reason }),
    bytesReceived: (n) => {
      hot.bytesIn += n;
    },
    sessionRejected: (reason) => metrics.publishRejected.inc({ reason }),
  };
  const rtmp = new RtmpServer(
    {
      host: config.rtmpHost,
      port: config.rtmpPort,
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      connectTimeoutMs: config.connectTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      pingIntervalMs: config.pingIntervalMs,
      chunkSize: config.chunkSize,
      maxStreamsPerConnection: config.maxStreamsPerConnection,
      limits: configToConnectionLimits(config),
    },
    access,
    authFailures,
    log,
    observer,
  );
  let draining = false;
  let started = false;
  let rtmps: TlsListener | undefined;
  let http: Awaited<ReturnType<typeof startHttpServer>> | undefined;
  const rtmpPort = await rtmp.listen();
  try {
    if (config.tlsCertFile) {
      rtmps = await startTlsListener({
        host: config.rtmpsHost,
        port: config.rtmpsPort,
        certFile: config.tlsCertFile,
        keyFile: config.tlsKeyFile,
        log,
        onSocket: (socket) => rtmp.accept(socket),
        observer: {
          tlsError: (reason) => metrics.tlsErrors.inc({ reason }),
          reloaded: () => metrics.tlsReloads.inc(),
        },
      });
    }
    http = await startHttpServer({
      host: config.httpHost,
      port: config.httpPort,
      logger: log,
      register: metrics.register,
      isReady: () => started && !draining && (cluster?.isReady() ?? true),
      apiToken: config.apiToken,
      maxConnections: config.maxHttpConnections,
      ...(config.adminPort !== null ? { admin: { host: config.adminHost, port: config.adminPort } } : {}),
      ...(cluster ? { cluster: cluster.api, routePendingMs: routePendingMs(config.heartbeatMs) } : {}),
      listStreams: () => registry.list().map(describeStream),
      getStream: (key) => {
        const hub = registry.get(key);
        return hub ? describeStream(hub) : undefined;
      },
      nodeInfo: () => ({
        id: config.nodeId,
        role: opts.role,
        version: VERSION,
        rtmpPort,
        connections: rtmp.connectionCount,
        streams: registry.size,
      }),
      flv: { access },
      hls: {
        segmentMs: config.hlsSegmentMs,
        partMs: config.hlsPartMs,
        windowSegments: config.hlsWindowSegments,
        lingerMs: config.hlsLingerMs,
      },
    });
    // 3. Cluster registration, now that the addresses are known.
    await cluster?.start({ rtmpPort, httpPort: http.port });
  } catch (err) {
    rtmp.stopAccepting();
    rtmp.closeAll('startup_failed');
    await rtmps?.close();
    await http?.close();
    await cluster?.close().catch(() => undefined);
    throw err;
  }
  const httpServer = http;
  started = true;
  log.info(
    { rtmpPort, httpPort: httpServer.port, rtmpsPort: rtmps?.port, adminPort: httpServer.adminPort },
    'node started',
  );

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (shuttingDown ??= (async () => {
      draining = true;
      log.info({ reason }, 'shutting down: not ready, draining');
      cluster?.markDraining(); // the node record says so at once: viewer routing sends nobody here any more
      if (config.drainDelayMs > 0) await delay(config.drainDelayMs);
      // Origins move their streams to other origins before the listeners close (no-op on edges).
      await cluster
        ?.drain(Math.min(config.shutdownTimeoutMs, DRAIN_RECONNECT_WAIT_MS))
        .catch((err: Error) => log.warn({ err: err.message }, 'drain failed'));
      rtmp.stopAccepting();
      rtmps?.stopAccepting();
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (rtmp.connectionCount > 0 && Date.now() < deadline) await delay(100);
      await cluster?.close();
      registry.closeAll('shutdown');
      rtmp.closeAll('shutdown');
      await rtmps?.close();
      await httpServer.close();
      log.info('shutdown complete');
    })());
  return {
    rtmpPort,
    httpPort: httpServer.port,
    ...(rtmps ? { rtmpsPort: rtmps.port } : {}),
    ...(httpServer.adminPort !== undefined ? { adminPort: httpServer.adminPort } : {}),
    shutdown,
  };
}

/** Signed URLs and webhooks for every role (standalone included); undefined when none is configured. */
function buildAuthorizer(config: Config, log: Logger, metrics: Metrics): Authorizer | undefined {
  const anyAuth =
    config.publishSecret ||
    config.playSecret ||
    config.hookOnPublish ||
    config.hookOnPlay ||
    config.hookOnPublishDone ||
    config.hookOnPlayDone;
  if (!anyAuth) return undefined;
  return new Authorizer({
    ...(config.publishSecret ? { defaultPublishSecret: config.publishSecret } : {}),
    ...(config.playSecret ? { defaultPlaySecret: config.playSecret } : {}),
    requirePlayToken: config.requirePlayToken,
    hooks: {
      ...(config.hookOnPublish ? { onPublish: config.hookOnPublish } : {}),
      ...(config.hookOnPlay ? { onPlay: config.hookOnPlay } : {}),
      ...(config.hookOnPublishDone ? { onPublishDone: config.hookOnPublishDone } : {}),
      ...(config.hookOnPlayDone ? { onPlayDone: config.hookOnPlayDone } : {}),
      timeoutMs: config.hookTimeoutMs,
      failOpen: config.hookFailOpen,
    },
    nodeId: config.nodeId,
    log,
    observer: {
      onHook: (o) => metrics.hookSeconds.observe({ event: o.event, outcome: o.outcome }, o.latencyMs / 1000),
      onDenied: (d) => metrics.authDenied.inc({ action: d.action, reason: d.reason }),
    },
  });
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** Loud start-up warnings for configurations that leave a reachable node open to anyone. */
function warnAboutOpenDoors(config: Config, role: Role, log: Logger): void {
  const publicRtmp = !LOOPBACK_HOSTS.has(config.rtmpHost);
  if (role !== 'edge' && publicRtmp && !config.publishSecret && !config.hookOnPublish) {
    log.warn(
      { rtmpHost: config.rtmpHost },
      'ANYONE WHO REACHES THIS NODE CAN PUBLISH (and take over live streams): set PUBLISH_SECRET or HOOK_ON_PUBLISH',
    );
  }
  const apiExposed =
    config.adminPort === null ? !LOOPBACK_HOSTS.has(config.httpHost) : !LOOPBACK_HOSTS.has(config.adminHost);
  if (apiExposed && !config.apiToken && role !== 'standalone') {
    log.warn('the cluster API (/api, including kicks) needs no token: set API_TOKEN');
  }
  if (role === 'origin' && !config.clusterSecret) {
    log.warn('no CLUSTER_SECRET: anyone who reaches this origin can pull streams from it directly');
  }
}

/** Per-stream series for the `topN` streams with the most viewers; the rest have none (bounded cardinality). */
function collectTopStreams(registry: HubRegistry, metrics: Metrics, topN: number): void {
  metrics.streamViewers.reset();
  metrics.streamIngestBps.reset();
  metrics.streamFps.reset();
  metrics.streamEgressBytesPerSecond.reset();
  metrics.streamDroppedFrames.reset();
  if (topN === 0) return;
  const top = registry
    .list()
    .sort((a, b) => b.viewerCount - a.viewerCount)
    .slice(0, topN);
  for (const hub of top) {
    const stream = streamLabel(hub.key);
    const s = statsOf(hub).snapshot(hub);
    for (const [protocol, n] of Object.entries(s.viewers)) metrics.streamViewers.set({ stream, protocol }, n);
    metrics.streamIngestBps.set({ stream }, s.ingestKbps.last10s * 1000);
    if (s.video?.fps !== undefined) metrics.streamFps.set({ stream }, s.video.fps);
    metrics.streamEgressBytesPerSecond.set({ stream }, s.egressBytesPerSecond.last10s);
    metrics.streamDroppedFrames.inc({ stream }, s.droppedFrames);
  }
}

/**
 * How long a draining origin waits for E-RTMP publishers to reconnect elsewhere (counted from the last wave of
 * requests; pacing the waves takes at most as long again) before handing streams off.
 */
const DRAIN_RECONNECT_WAIT_MS = 5000;

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
