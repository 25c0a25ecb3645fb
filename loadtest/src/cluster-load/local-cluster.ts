/**
 * A cluster the runner starts itself: redis-server, nats-server and O origins and E edges of the built CLI, all on
 * free loopback ports; it can stop and replace nodes (rolling updates).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { nodeMallocEnv } from '../node-flags.js';
import type { ClusterUnderTest, NodeHandle, Role } from './cluster.js';
import type { ClusterLoadOptions } from './options.js';
import { NatsServer, RedisServer, RelayNode, redisScan, redisTotalCommands } from './processes.js';

const PREFIX = 'rtmp';

export async function startLocalCluster(o: ClusterLoadOptions): Promise<ClusterUnderTest> {
  if (o.cpuProfDir) mkdirSync(o.cpuProfDir, { recursive: true });
  const allocator = nodeMallocEnv(o.malloc, existsSync);
  if (allocator.warning) o.log(`cluster-load: warning: ${allocator.warning}`);
  const redis = await RedisServer.start();
  const nats = await NatsServer.start().catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  const env = (): Record<string, string> => ({
    REDIS_URL: redis.url,
    NATS_URL: nats.url,
    ADVERTISE_HOST: '127.0.0.1',
    RTMP_HOST: '127.0.0.1',
    HTTP_HOST: '127.0.0.1',
    RTMP_PORT: '0',
    HTTP_PORT: '0',
    LOG_LEVEL: process.env.CLUSTER_LOAD_LOG_LEVEL ?? 'warn',
    MAX_CONNECTIONS_PER_IP: '0',
    LEASE_MS: String(o.leaseMs),
    PULL_LINGER_MS: String(o.pullLingerMs),
    SHUTDOWN_TIMEOUT_MS: String(o.shutdownTimeoutMs),
    CLUSTER_PREFIX: PREFIX,
    ...(o.routeMaxViewers ? { ROUTE_MAX_VIEWERS: String(o.routeMaxViewers) } : {}),
    ...(o.heartbeatMs ? { HEARTBEAT_MS: String(o.heartbeatMs) } : {}),
    ...allocator.env,
  });
  /** Every node ever started (replacements too): all are killed at the end. */
  const started: RelayNode[] = [];
  /** Replacements of a slot get the next generation: origin-0, origin-0-g1, ... */
  const generations = new Map<string, number>();
  const startNode = async (role: Role, i: number): Promise<RelayNode> => {
    const slot = `${role}-${i}`;
    const g = generations.get(slot) ?? 0;
    generations.set(slot, g + 1);
    const node = await RelayNode.start(role, g ? `${slot}-g${g}` : slot, env(), o.cpuProfDir);
    started.push(node);
    return node;
  };
  const close = async (): Promise<void> => {
    // A profiled node writes its profile only when it exits by itself: its graceful shutdown (SIGTERM) then.
    await Promise.all(started.map((n) => n.proc.stop(o.cpuProfDir ? 'SIGTERM' : 'SIGKILL')));
    await redis.stop();
    await nats.stop();
  };
  try {
    const origins = await Promise.all(Array.from({ length: o.origins }, (_, i) => startNode('origin', i)));
    const edges = await Promise.all(Array.from({ length: o.edges }, (_, i) => startNode('edge', i)));
    const relayOf = (n: NodeHandle): RelayNode => {
      const r = started.find((s) => s === n);
      if (!r) throw new Error(`${n.id} was not started by this runner`);
      return r;
    };
    return {
      origins,
      edges,
      prefix: PREFIX,
      redis: { totalCommands: () => redisTotalCommands(redis.port), keys: (match) => redisScan(redis.port, match) },
      nats,
      routeBases: () => [...origins, ...edges].filter((n) => n.alive).map((n) => n.publicHttp),
      lifecycle: {
        startNode,
        stopNode: (n, signal, killAfterMs) => relayOf(n).proc.stop(signal, killAfterMs),
      },
      description: `started by the runner: redis :${redis.port}, nats :${nats.port}, ${o.origins} origins, ${o.edges} edges, allocator ${allocator.malloc}`,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
