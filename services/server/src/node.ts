import { HubRegistry, type HubObserver } from '@rtmp-relay/hub';
import { configToConnectionLimits, configToHubOptions, type Config } from './config.js';
import { startHttpServer } from './http.js';
import { createLogger } from './logger.js';
import { createMetrics, HotCounters } from './metrics.js';
import { RtmpServer, type RtmpServerObserver } from './rtmp/server.js';
import { describeStream } from './streams.js';

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
  const hubObserver: HubObserver = {
    messageIn: (kind, bytes) => hot.messageIn(kind, bytes),
    bytesOut: (bytes) => {
      hot.bytesOut += bytes;
    },
    dropped: (kind, reason) => hot.dropped(kind, reason),
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
  const rtmpPort = await rtmp.listen();
  let draining = false;
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    logger: log,
    register: metrics.register,
    isReady: () => !draining,
    listStreams: () => registry.list().map(describeStream),
    getStream: (key) => {
      const hub = registry.get(key);
      return hub ? describeStream(hub) : undefined;
    },
    nodeInfo: () => ({ id: config.nodeId, role: opts.role, rtmpPort, connections: rtmp.connectionCount, streams: registry.size }),
  });
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
      registry.closeAll('shutdown');
      rtmp.closeAll('shutdown');
      await http.close();
      log.info('shutdown complete');
    })());
  return { rtmpPort, httpPort: http.port, shutdown };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
