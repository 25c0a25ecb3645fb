import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Cluster metrics of origins and edges, on the node's registry. */
export function createClusterMetrics(register: Registry) {
  const registers = [register];
  /** Read at scrape time; the runtime points them at its live state. */
  const sources = { pullsActive: () => 0, ownedStreams: () => 0, redisUp: () => 0, natsUp: () => 0 };
  const sampled = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  return {
    sources,
    pullsActive: sampled('rtmp_pulls_active', 'Upstream pulls this edge holds (one per stream)', () =>
      sources.pullsActive(),
    ),
    pullStarts: new Counter({
      name: 'rtmp_pull_starts_total',
      help: 'Upstream pull connections started (first and re-pulls)',
      registers,
    }),
    pullFailures: new Counter({
      name: 'rtmp_pull_failures_total',
      help: 'Upstream pull attempts that failed or broke',
      labelNames: ['reason'],
      registers,
    }),
    pullStandbys: new Counter({
      name: 'rtmp_pull_standbys_total',
      help: 'Next upstreams opened ahead of an announced move (stream.moving), by outcome: opened, used (the move attached it), failed, expired, unused (the stream went elsewhere), stopped',
      labelNames: ['outcome'],
      registers,
    }),
    failovers: new Counter({
      name: 'rtmp_failovers_total',
      help: 'Edge pulls that switched to a new owner (failover or takeover)',
      registers,
    }),
    resolveSeconds: new Histogram({
      name: 'rtmp_resolve_seconds',
      help: 'Stream owner lookups in Redis',
      labelNames: ['found'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    leaseRefreshFailures: new Counter({
      name: 'rtmp_lease_refresh_failures_total',
      help: 'Origin lease refreshes that failed (error) or found a newer owner (lost)',
      labelNames: ['reason'],
      registers,
    }),
    leaseRestores: new Counter({
      name: 'rtmp_lease_restores_total',
      help: 'Leases re-created after Redis lost them (restart)',
      registers,
    }),
    leaseExpirations: new Counter({
      name: 'rtmp_lease_expirations_total',
      help: 'Streams an origin stopped serving (publisher kicked, viewers cut) because it could not renew the lease in time',
      registers,
    }),
    takeovers: new Counter({
      name: 'rtmp_takeovers_total',
      help: 'Publishes that replaced a live publisher of the same key',
      labelNames: ['scope'],
      registers,
    }),
    ownedStreams: sampled('rtmp_owned_streams', 'Streams this origin holds a lease for', () => sources.ownedStreams()),
    redisUp: sampled('rtmp_redis_up', '1 while the Redis connection is ready', () => sources.redisUp()),
    natsUp: sampled('rtmp_nats_up', '1 while the NATS connection is up', () => sources.natsUp()),
  };
}

export type ClusterMetrics = ReturnType<typeof createClusterMetrics>;
