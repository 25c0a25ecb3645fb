import { HubRegistry, type HubObserver } from '@rtmp-relay/hub';
import { configToConnectionLimits, configToHubOptions, type Config } from './config.js';
import { flvMetricsObserver } from './flv/index.js';
import { startHttpServer } from './http.js';
import { createLogger } from './logger.js';
import { createMetrics, HotCounters } from './metrics.js';
import { RtmpServer, type RtmpServerObserver } from './rtmp/server.js';
import { startCluster, type ClusterRuntime } from './cluster/runtime.js';
import { describeStream } from './streams.js';

const VERSION = '0.1.0';

export type Role = 'standalone' | 'origin' | 'edge';

export interface RunningNode {
  rtmpPort: number;
  httpPort: number;
  /** Stop accepting, go not-ready, let connections finish up to SHUTDOWN_TIMEOUT_MS, then close everything. */
  shutdown(reason: string): Promise<void>;
}

/**
 * One node: RTMP listener, stream hubs, HTTP (health, readiness, metrics, stream list). The standalone role runs
 * origin and edge together on the in-memory registry.
 */
export async function startNode(config: Config, opts: { role: Role }): Promise<RunningNode> {
  const log = createLogger(config.logLevel, { node: config.nodeId, role: opts.role });
  const hot = new HotCounters();
  const metrics = createMetrics(hot);
  // The hub observer is created before the RTMP server it notifies.
  const late: { rtmp?: RtmpServer } = {};
  const hubObserver: HubObserver = {
    messageIn: (kind, bytes) => hot.messageIn(kind, bytes),
    bytesOut: (bytes) => {
      hot.bytesOut += bytes;
    },
    dropped: (kind, reason) => hot.dropped(kind, reason),
    live: (key) => late.rtmp?.notifyLive(key),
    slowViewerDisconnected: (viewerId, reason) => {
      metrics.slowViewersDisconnected.inc({ reason });
      log.warn({ viewer: viewerId, reason }, 'slow viewer disconnected');
    },
  };
  const registry = new HubRegistry(configToHubOptions(config), hubObserver);
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
    publishStarted: () => metrics.publishers.inc(),
    publishStopped: () => metrics.publishers.dec(),
    viewerStarted: () => metrics.viewers.inc({ protocol: 'rtmp' }),
    viewerStopped: () => metrics.viewers.dec({ protocol: 'rtmp' }),
    publishRejected: (reason) => metrics.publishRejected.inc({ reason }),
    playRejected: (reason) => metrics.playRejected.inc({ reason }),
  };
  metrics.streams.collect = () => metrics.streams.set(registry.list().filter((h) => h.isLive).length);

  const rtmp = new RtmpServer(
    {
      host: config.rtmpHost,
      port: config.rtmpPort,
      maxConnections: config.maxConnections,
      connectTimeoutMs: config.connectTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      pingIntervalMs: config.pingIntervalMs,
      chunkSize: config.chunkSize,
      maxStreamsPerConnection: config.maxStreamsPerConnection,
      playWaitMs: config.playWaitMs,
      limits: configToConnectionLimits(config),
    },
    registry,
    log,
    observer,
  );
  late.rtmp = rtmp;
  const rtmpPort = await rtmp.listen();
  let draining = false;
  let cluster: ClusterRuntime | undefined;
  let httpPortBound = 0;
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    logger: log,
    register: metrics.register,
    isReady: () => !draining && (cluster?.isReady() ?? true),
    apiToken: config.apiToken,
    ...(opts.role !== 'standalone'
      ? {
          cluster: {
            listNodes: () => need(cluster).api.listNodes(),
            listStreams: () => need(cluster).api.listStreams(),
            getStream: (k: string) => need(cluster).api.getStream(k),
            kick: (c) => need(cluster).api.kick(c),
          },
        }
      : {}),
    listStreams: () => registry.list().map(describeStream),
    getStream: (key) => {
      const hub = registry.get(key);
      return hub ? describeStream(hub) : undefined;
    },
    nodeInfo: () => ({
      id: config.nodeId,
      role: opts.role,
      rtmpPort,
      connections: rtmp.connectionCount,
      streams: registry.size,
    }),
    // HTTP-FLV / WS-FLV plays: same hubs and the same (role's) policy as RTMP plays, counted in the same metrics.
    flv: { registry, policy: () => rtmp.policy, observer: flvMetricsObserver(metrics) },
  });
  httpPortBound = http.port;
  if (opts.role !== 'standalone') {
    try {
      cluster = await startCluster(config, opts.role, {
        registry,
        rtmpPort,
        httpPort: httpPortBound,
        log,
        register: metrics.register,
        hot,
        version: VERSION,
        waitForLive: rtmp.waitForLive,
        // Viewer ids start with their connection's session id (RTMP `<session>/<stream>`, FLV likewise).
        kickViewers: (key, sessionId, reason) =>
          registry
            .get(key)
            ?.disconnectViewers(
              reason,
              (id) => sessionId === undefined || id === sessionId || id.startsWith(`${sessionId}/`),
            ),
      });
    } catch (err) {
      rtmp.stopAccepting();
      rtmp.closeAll('startup_failed');
      await http.close();
      throw err;
    }
    rtmp.policy = cluster.policy;
  }
  log.info({ rtmpPort, httpPort: http.port }, 'node started');

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (shuttingDown ??= (async () => {
      draining = true;
      log.info({ reason }, 'shutting down: not ready, draining');
      if (config.drainDelayMs > 0) await delay(config.drainDelayMs);
      rtmp.stopAccepting();
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (rtmp.connectionCount > 0 && Date.now() < deadline) await delay(100);
      await cluster?.close();
      registry.closeAll('shutdown');
      rtmp.closeAll('shutdown');
      await http.close();
      log.info('shutdown complete');
    })());
  return { rtmpPort, httpPort: http.port, shutdown };
}

function need<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('cluster runtime not started');
  return value;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
