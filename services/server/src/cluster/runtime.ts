import { networkInterfaces } from 'node:os';
import type { HubRegistry } from '@rtmp-relay/hub';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { signedQuery } from '../auth/index.js';
import { configToConnectionLimits, type Config } from '../config.js';
import type { ClusterRole } from '../roles.js';
import { withUnavailableErrors, type ClusterApi } from './api.js';
import type { HotCounters } from '../metrics.js';
import { statsOf } from '../streams/stats.js';
import type { StreamPolicy } from '../streams/types.js';
import { EdgePolicy } from './edge-policy.js';
import { ControlBus, NoopBus, controlEvent, type EventBus, type NodeRole } from './events.js';
import { isRedisAuthError, isRedisUnavailableError, natsConnectOptions, redisConnectOptions } from './connections.js';
import { createClusterMetrics } from './metrics.js';
import { OriginPolicy } from './origin-policy.js';
import { NodeRegistry, StreamOwnership, createRedis, waitForRedis, type NodeRecord } from './redis-registry.js';
import type { RoutingFields } from './route.js';
import { clusterStreamMedia, nodeStreamStats, type StreamStatsFields } from './stream-media.js';
import { ParentSelector, type EdgeTier } from './tiers.js';

export interface ClusterRuntime {
  /** The role's policy: exists before any listener opens, so no publish or play ever sees another one. */
  readonly policy: StreamPolicy;
  readonly api: ClusterApi;
  /** Started, and Redis (and NATS, when configured) reachable. */
  isReady(): boolean;
  /** The node's listeners are bound: register in the node registry, start heartbeats, announce node.up. */
  start(ports: { rtmpPort: number; httpPort: number }): Promise<void>;
  /**
   * SIGTERM, before the listeners close: origins refuse new publishes and move their streams to other origins
   * (E-RTMP ReconnectRequest in waves of DRAIN_RECONNECT_BATCH every DRAIN_RECONNECT_INTERVAL_MS, else a hand-off
   * edges treat as a failover, in waves of the same size and interval); edges have nothing to do. Takes at most 2 x `reconnectWaitMs` plus a Redis round trip.
   */
  drain(reconnectWaitMs: number): Promise<void>;
  /** Shutdown began (before DRAIN_DELAY_MS): the node record says `draining` from now on (viewer routing skips it). */
  markDraining(): void;
  /** Announce node.down, release leases / stop pulls, close connections. */
  close(): Promise<void>;
}

export interface ClusterContext {
  registry: HubRegistry;
  log: Logger;
  register: Registry;
  hot: HotCounters;
  version: string;
  waitForLive: (key: string, timeoutMs: number) => Promise<boolean>;
  /** Disconnects local viewers of `key` (one session, or all). */
  kickViewers: (key: string, sessionId: string | undefined, reason: string) => void;
}

/** The address other nodes reach this one at: ADVERTISE_HOST, else the first non-internal IPv4, else loopback. */
export function advertiseHost(config: Config): string {
  if (config.advertiseHost) return config.advertiseHost;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** How long start-up waits for the first Redis connection before opening the listeners anyway (not ready then). */
const REDIS_STARTUP_WAIT_MS = 5000;

/**
 * Origin and edge: Redis for ownership and the node registry (the truth), NATS for fast events and admin
 * commands, the role's stream policy, heartbeats, and the cluster-wide API. Called before the node's listeners
 * open; `start()` once they are bound.
 */
export async function prepareCluster(config: Config, role: ClusterRole, ctx: ClusterContext): Promise<ClusterRuntime> {
  if (!config.redisUrl) throw new Error(`the ${role} role needs REDIS_URL (--redis-url)`);
  const log = ctx.log.child({ component: 'cluster' });
  const metrics = createClusterMetrics(ctx.register);
  const prefix = `${config.clusterPrefix}:`;
  const redis = createRedis(redisConnectOptions(config), {
    connectionName: config.nodeId,
    // Wrong credentials are a configuration error, not a transient outage: say so at error level.
    onError: (err) => log[isRedisAuthError(err) ? 'error' : 'debug']({ err: err.message }, 'redis connection error'),
  });
  metrics.sources.redisUp = () => (redis.status === 'ready' ? 1 : 0);
  // Readiness through a Redis outage (see isReady): when the connection was last lost, and whether it ever worked.
  let redisSeen = false;
  let redisDownSince: number | undefined;
  redis.on('ready', () => {
    redisSeen = true;
    redisDownSince = undefined;
    log.info('redis connected');
  });
  redis.on('close', () => (redisDownSince ??= performance.now()));
  redis.on('end', () => log.warn('redis connection ended'));

  const bus: EventBus = config.natsUrl
    ? await ControlBus.connect(natsConnectOptions(config), {
        name: config.nodeId,
        prefix: config.clusterPrefix,
        onStatus: (up) => log.info({ up }, 'nats connection'),
        onError: (err, context) => log.warn({ err: (err as Error)?.message, context }, 'nats error'),
      })
    : new NoopBus();
  metrics.sources.natsUp = () => (bus.connected ? 1 : 0);
  let natsSeen = bus.connected;

  // A node that starts while Redis is down still starts (not ready): publishes are refused, never unleased.
  await waitForRedis(redis, REDIS_STARTUP_WAIT_MS).catch((err: Error) =>
    log.warn({ err: err.message }, 'redis not reachable at start: not ready until it is'),
  );
  const ownership = new StreamOwnership(redis, { prefix, leaseMs: config.leaseMs });
  const nodes = new NodeRegistry(redis, { prefix, ttlMs: config.heartbeatMs * 3 });
  const host = advertiseHost(config);
  // Bound once the listeners are (a port of 0 means "any free port"); no publish or pull can arrive before that.
  const addrs = { rtmp: hostPort(host, config.rtmpPort), http: hostPort(host, config.httpPort) };

  // What peers say of Redis in their heartbeats tells a cluster-wide Redis outage from this node's own partition:
  // when every peer heard from lately says Redis is down, nobody can claim our streams, so origins keep serving them
  // (and for one lease after the outage, while their own reconnect and refresh catch up).
  const peerRedis = new Map<string, { up: boolean; at: number }>();
  let lastAllDownAt = Number.NEGATIVE_INFINITY;
  const onPeer = (e: { nodeId: string; redisUp?: boolean | undefined }): void => {
    if (e.nodeId === config.nodeId || e.redisUp === undefined) return;
    const now = performance.now();
    peerRedis.set(e.nodeId, { up: e.redisUp, at: now });
    const fresh = now - config.heartbeatMs * PEER_REPORT_HEARTBEATS;
    let allDown = true;
    for (const [id, r] of peerRedis) {
      if (r.at < fresh)
        peerRedis.delete(id); // gone quiet (dead or cut off): says nothing about Redis
      else if (r.up) allDown = false;
    }
    if (allDown) lastAllDownAt = now;
  };
  const unsubscribePeers = [bus.on('node.load', onPeer), bus.on('node.up', onPeer)];
  const redisDownEverywhereSince = (since: number): boolean =>
    bus.connected && lastAllDownAt > since && performance.now() - lastAllDownAt < config.leaseMs;

  let policy: OriginPolicy | EdgePolicy;
  if (role === 'origin') {
    policy = new OriginPolicy(
      ownership,
      bus,
      ctx.registry,
      ctx.waitForLive,
      {
        nodeId: config.nodeId,
        get advertiseAddr() {
          return addrs.rtmp;
        },
        allowTakeover: config.allowTakeover,
        leaseMs: config.leaseMs,
        playWaitMs: config.playWaitMs,
        publishWhileRedisDown: config.publishWhileRedisDown,
        redisDownEverywhereSince,
      },
      log,
      undefined, // authorization happens before any role policy (StreamAccess)
      {
        leaseRefreshFailed: (reason) => metrics.leaseRefreshFailures.inc({ reason }),
        leaseRestored: () => metrics.leaseRestores.inc(),
        takeover: (crossNode) => metrics.takeovers.inc({ scope: crossNode ? 'cluster' : 'node' }),
        leaseExpired: () => metrics.leaseExpirations.inc(),
      },
    );
    const origin = policy;
    metrics.sources.ownedStreams = () => origin.ownedStreams().length;
  } else {
    // Edges sign their pulls with the cluster secret (origins then serve only cluster peers); without one, with the
    // play secret, for origins that require play tokens.
    const pullSecret = config.clusterSecret || config.playSecret;
    const pullAction = config.clusterSecret ? 'pull' : 'play';
    const playQuery = pullSecret
      ? (app: string, name: string) =>
          signedQuery({
            secret: pullSecret,
            action: pullAction,
            app,
            name,
            expiresAt: Math.floor(Date.now() / 1000) + PULL_TOKEN_LIFETIME_S,
          })
      : undefined;
    // Tiered edges: a leaf may pull through a parent; a parent always pulls from the origin (no loops).
    if (config.edgeUpstream === 'parents' && config.edgeTier === 'parent')
      log.warn('EDGE_UPSTREAM=parents ignored on a parent-tier edge: parents pull from the origin');
    const parents =
      config.edgeUpstream === 'parents' && config.edgeTier !== 'parent'
        ? new ParentSelector(() => nodes.list(), {
            selfId: config.nodeId,
            cacheMs: config.heartbeatMs,
            suspectMs: config.heartbeatMs * 3, // a dead parent's record lives up to one node TTL
          })
        : undefined;
    if (parents) unsubscribePeers.push(bus.on('node.down', (e) => parents.suspect(e.nodeId)));
    policy = new EdgePolicy(
      ownership,
      bus,
      ctx.registry,
      ctx.waitForLive,
      {
        nodeId: config.nodeId,
        playWaitMs: config.playWaitMs,
        pull: {
          lingerMs: config.pullLingerMs,
          connectTimeoutMs: config.connectTimeoutMs,
          readTimeoutMs: Math.max(5000, config.leaseMs),
          failoverWaitMs: config.pullFailoverWaitMs,
          ownerRecheckMs: Math.max(1000, config.leaseMs),
          retryMinMs: 100,
          retryMaxMs: config.pullRetryMaxMs,
          limits: configToConnectionLimits(config),
        },
        ...(parents
          ? {
              upstream: {
                // No live parent: the origin itself (a parent-tier outage costs origin egress, not viewers).
                choose: async (key, owner) => {
                  const parent = await parents.choose(key);
                  return parent ? { nodeId: parent.id, addr: parent.rtmpAddr, epoch: owner.epoch } : owner;
                },
                failed: (nodeId) => parents.suspect(nodeId),
              },
            }
          : {}),
      },
      log,
      undefined, // authorization happens before any role policy (StreamAccess)
      {
        pullStarted: () => metrics.pullStarts.inc(),
        pullFailed: (_key, reason) => metrics.pullFailures.inc({ reason }),
        resolveLatency: (seconds, found) => metrics.resolveSeconds.observe({ found: String(found) }, seconds),
        failover: () => metrics.failovers.inc(),
        standby: (_key, outcome) => metrics.pullStandbys.inc({ outcome }),
      },
      playQuery,
    );
    const edge = policy;
    metrics.sources.pullsActive = () => edge.activePulls().length;
  }

  // Admin commands that any role handles: viewers live on every node.
  const unsubscribeAdmin = bus.onAdmin(config.nodeId, (e) => {
    if (e.type === 'admin.kick_viewer') ctx.kickViewers(e.key, e.sessionId, e.reason ?? 'kicked');
    if (e.type === 'admin.drop_stream') ctx.kickViewers(e.key, undefined, e.reason ?? 'dropped');
  });

  const startedAt = Date.now();
  let lastBytesOut = ctx.hot.bytesOut;
  let lastBeatAt = performance.now();
  let draining = false;
  const tier: EdgeTier | undefined = role === 'edge' ? config.edgeTier : undefined;
  const record = (): NodeRecord & RoutingFields & StreamStatsFields => {
    const hubs = ctx.registry.list();
    const now = performance.now();
    const egressBps = ((ctx.hot.bytesOut - lastBytesOut) * 8) / Math.max(0.001, (now - lastBeatAt) / 1000);
    lastBytesOut = ctx.hot.bytesOut;
    lastBeatAt = now;
    const streams: Record<string, number> = {};
    for (const h of hubs) streams[h.key] = h.viewerCount;
    return {
      id: config.nodeId,
      role,
      rtmpAddr: addrs.rtmp,
      httpAddr: addrs.http,
      version: ctx.version,
      startedAt,
      load: {
        viewers: hubs.reduce((n, h) => n + h.viewerCount, 0),
        streams: hubs.filter((h) => h.isLive).length,
        publishers: role === 'origin' ? hubs.filter((h) => h.isLive).length : 0,
        egressBps: Math.round(egressBps),
      },
      streams,
      // Origins: what their live streams carry; every node: its viewers and egress per stream (stream-media.ts).
      ...nodeStreamStats(hubs, role),
      ...(tier ? { tier } : {}),
      draining,
      ready: isReady(),
      maxViewers: config.routeMaxViewers,
    };
  };
  const nodeFields = (rec: NodeRecord) => ({
    redisUp: redis.status === 'ready',
    nodeId: rec.id,
    role: rec.role as NodeRole,
    rtmpAddr: rec.rtmpAddr,
    httpAddr: rec.httpAddr,
    version: rec.version,
    load: rec.load,
    ...(tier ? { tier } : {}),
  });
  const beat = async (): Promise<void> => {
    const rec = record();
    bus.publish(controlEvent('node.load', nodeFields(rec)));
    await nodes
      .register(rec)
      .catch((err) => log.debug({ err: (err as Error).message }, 'node registry refresh failed'));
  };
  const rawApi: ClusterApi = {
    listNodes: () => nodes.list(),
    listStreams: async () => {
      const [owners, all] = await Promise.all([ownership.list(), nodes.list()]);
      return owners.map((o) => ({
        ...o,
        viewers: viewersByNode(all as Array<NodeRecord & { streams?: Record<string, number> }>, o.key),
      }));
    },
    getStream: async (key) => {
      const owner = await ownership.resolve(key);
      if (!owner) return undefined;
      const all = (await nodes.list()) as Array<NodeRecord & StreamStatsFields & { streams?: Record<string, number> }>;
      return { ...owner, viewers: viewersByNode(all, key), media: clusterStreamMedia(all, key, owner.nodeId) };
    },
    kick: async ({ key, what, sessionId, reason }) => {
      const type =
        what === 'publisher' ? 'admin.kick_publisher' : what === 'viewers' ? 'admin.kick_viewer' : 'admin.drop_stream';
      bus.publish(
        controlEvent(type, {
          key,
          ...(sessionId ? { sessionId } : {}),
          reason: reason ?? 'admin',
          from: config.nodeId,
        }),
      );
    },
  }; // Redis outages surface as ClusterUnavailableError (HTTP 503), classified here rather than by message text.
  const api = withUnavailableErrors(rawApi, isRedisUnavailableError);

  let heartbeat: NodeJS.Timeout | undefined;
  let reconcile: NodeJS.Timeout | undefined;
  let started = false;
  const start = async (ports: { rtmpPort: number; httpPort: number }): Promise<void> => {
    addrs.rtmp = hostPort(host, ports.rtmpPort);
    addrs.http = hostPort(host, ports.httpPort);
    heartbeat = setInterval(() => void beat(), config.heartbeatMs);
    heartbeat.unref();
    if (policy instanceof EdgePolicy) {
      const edge = policy;
      reconcile = setInterval(() => void edge.reconcile().catch(() => undefined), config.reconcileMs);
      reconcile.unref();
    }
    // Best effort at start: a node that came up while Redis was down registers on its next beat.
    await nodes.register(record()).catch(() => undefined);
    bus.publish(controlEvent('node.up', nodeFields(record())));
    started = true;
    log.info({ role, rtmpAddr: addrs.rtmp, httpAddr: addrs.http, nats: bus.connected }, 'cluster node up');
  };

  /**
   * Where a drained publisher should reconnect: INGEST_PUBLIC_URL when set (encoders outside the cluster network can't
   * reach a pod address; the load balancer no longer sends to this not-ready node), else another origin's RTMP
   * address, the least loaded (publishers, counting those sent there by this drain), so a rolling update's fresh
   * origin takes the streams rather than the next old one to drain. Never when no other origin is up.
   */
  let peerOrigins: Array<{ addr: string; load: number }> = [];
  const publicIngest = config.ingestPublicUrl.replace(/\/+$/, '');
  /** The origin each tcUrl handed out names (not for INGEST_PUBLIC_URL: where that leads is the balancer's choice). */
  const peerAddrByTcUrl = new Map<string, string>();
  const peerTcUrl = (app: string): string | undefined => {
    if (publicIngest && peerOrigins.length > 0) return `${publicIngest}/${app}`;
    const best = peerOrigins.reduce<{ addr: string; load: number } | undefined>(
      (a, b) => (a === undefined || b.load < a.load ? b : a),
      undefined,
    );
    if (!best) return undefined;
    best.load++;
    const tcUrl = `rtmp://${best.addr}/${app}`;
    peerAddrByTcUrl.set(tcUrl, best.addr);
    return tcUrl;
  };
  /**
   * The edges pulling `key` from this origin, each of which answers an announced move. Plays signed with the cluster
   * secret are edges; without a secret no play can be told from an edge's, so every player counts (a viewer playing
   * from the origin directly then costs that stream the lead's bound, never more).
   */
  const edgePullsOf = (key: string): number => {
    const hub = ctx.registry.get(key);
    if (!hub) return 0;
    return config.clusterSecret ? statsOf(hub).edgePulls : hub.viewerCount;
  };
  // What a node carries and can keep serving without Redis: an origin its (unfenced) leases, an edge its pulls.
  const carriesStreams = (): boolean =>
    policy instanceof OriginPolicy ? policy.ownedStreams().length > 0 : policy.activePulls().length > 0;

  // NATS gates readiness only until its first connection: later outages must not take every pod out of the load
  // balancers, since edges fall back to Redis. Redis gates readiness until its first connection too; after that
  // an outage takes a node out only when it can serve nothing: a Redis blip would otherwise take every pod out of
  // every load balancer at once (no endpoints: every new session refused) while they could still serve what
  // they carry. So a node stays ready while Redis is down if it carries live streams (an origin its leases, which
  // self-fencing drops when they could belong to another origin; an edge its pulls), or for one lease (a blip).
  const isReady = (): boolean => {
    if (bus.connected) natsSeen = true;
    if (redis.status === 'ready') redisSeen = true;
    if (!started || (config.natsUrl && !natsSeen) || !redisSeen) return false;
    if (redis.status === 'ready') return true;
    const downFor = performance.now() - (redisDownSince ?? performance.now());
    return downFor < config.leaseMs || carriesStreams();
  };

  return {
    policy,
    api,
    start,
    markDraining: () => {
      if (draining) return;
      draining = true;
      void beat().catch(() => undefined);
    },
    drain: async (reconnectWaitMs) => {
      if (!(policy instanceof OriginPolicy)) return;
      // A draining origin is no target for anyone else's drain: leave the registry (and stop re-registering).
      clearInterval(heartbeat);
      await nodes.remove(config.nodeId).catch(() => undefined);
      peerOrigins = await nodes
        .list()
        .then((all) =>
          all
            .filter((n) => n.role === 'origin' && n.id !== config.nodeId)
            .map((n) => ({ addr: n.rtmpAddr, load: n.load.publishers })),
        )
        .catch(() => []);
      await policy.drain({
        peerTcUrl,
        peerAddrOf: (tcUrl) => peerAddrByTcUrl.get(tcUrl),
        edgePullsOf,
        moveLeadMs: config.drainMoveLeadMs,
        reconnectWaitMs,
        reconnectBatch: config.drainReconnectBatch,
        reconnectIntervalMs: config.drainReconnectIntervalMs,
        peersUp: peerOrigins.length > 0,
      });
    },
    isReady,
    close: async () => {
      clearInterval(heartbeat);
      clearInterval(reconcile);
      unsubscribeAdmin();
      for (const u of unsubscribePeers) u();
      if (policy instanceof OriginPolicy) await policy.releaseAll();
      else policy.close();
      if (started) bus.publish(controlEvent('node.down', nodeFields(record())));
      await nodes.remove(config.nodeId).catch(() => undefined);
      await bus.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}

/** A peer's Redis report counts for this many heartbeat intervals. */
const PEER_REPORT_HEARTBEATS = 3;

/** Lifetime of the tokens an edge signs for its own pulls (each attempt signs a fresh one). */
const PULL_TOKEN_LIFETIME_S = 300;

function viewersByNode(
  nodes: Array<NodeRecord & { streams?: Record<string, number> }>,
  key: string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of nodes) {
    const v = n.streams?.[key];
    if (v !== undefined) out[n.id] = v;
  }
  return out;
}
