import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type GaugeConfiguration } from 'prom-client';

/**
 * Plain counters the hot path bumps (per message, per viewer write): no prom-client calls, no label lookups
 * beyond a small map for the rarer labeled ones. The prom-client Counters read them on scrape.
 */
export class HotCounters {
  bytesIn = 0;
  bytesOut = 0;
  /** Messages received from publishers (and upstream pulls), by kind. */
  readonly messagesIn: Record<string, number> = { audio: 0, video: 0, data: 0 };
  /** Messages not delivered to a viewer, by kind then reason: droppedCounts.get(kind)?.get(reason). */
  readonly droppedCounts = new Map<string, Map<string, number>>();

  /** One message received (the byte count is accepted for HubObserver compatibility; bytes in are counted per socket). */
  messageIn(kind: string, _bytes?: number): void {
    this.messagesIn[kind] = (this.messagesIn[kind] ?? 0) + 1;
  }

  dropped(kind: string, reason: string, count = 1): void {
    let byReason = this.droppedCounts.get(kind);
    if (!byReason) this.droppedCounts.set(kind, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + count);
  }
}

/**
 * A Gauge whose `collect` hook (called on every scrape, before reading) may be assigned after creation, e.g.
 * `metrics.streams.collect = () => metrics.streams.set(registry.size)`; prom-client supports it, its types don't say so.
 */
export type CollectableGauge<T extends string = string> = Gauge<T> & {
  collect?: (this: Gauge<T>) => void | Promise<void>;
};

function gauge<T extends string = string>(config: GaugeConfiguration<T>): CollectableGauge<T> {
  return new Gauge<T>(config);
}

/** Counter whose value is owned elsewhere: on each scrape it is increased by what `read` gained since the last one. */
function deltaCollector(read: () => number): (this: Counter) => void {
  let last = 0;
  return function collect(this: Counter) {
    const now = read();
    if (now > last) this.inc(now - last);
    last = now;
  };
}

/**
 * Every metric of a node on `register` (a fresh Registry by default, never the global one), plus Node's default process
 * metrics. Arguments may come in either order: `createMetrics(hot)`, `createMetrics(register, hot)`, `createMetrics()`.
 */
export function createMetrics(hot?: HotCounters, register?: Registry): Metrics;
export function createMetrics(register: Registry, hot?: HotCounters): Metrics;
export function createMetrics(a?: HotCounters | Registry, b?: HotCounters | Registry): Metrics {
  const args = [a, b];
  const hot = args.find((x): x is HotCounters => x instanceof HotCounters) ?? new HotCounters();
  const register = args.find((x): x is Registry => x instanceof Registry) ?? new Registry();
  return buildMetrics(register, hot);
}

function buildMetrics(register: Registry, hot: HotCounters) {
  collectDefaultMetrics({ register });
  const registers = [register];

  const lastMessagesIn = new Map<string, number>();
  const lastDropped = new Map<string, number>();

  const metrics = {
    register,
    hot,
    connections: gauge({ name: 'rtmp_connections', help: 'RTMP connections open now', registers }),
    connectionsTotal: new Counter({ name: 'rtmp_connections_total', help: 'RTMP connections accepted', registers }),
    connectionsRejected: new Counter({
      name: 'rtmp_connections_rejected_total',
      help: 'RTMP connections refused at accept (limits, draining)',
      labelNames: ['reason'] as const,
      registers,
    }),
    publishers: gauge({ name: 'rtmp_publishers', help: 'Streams being published now', registers }),
    viewers: gauge({
      name: 'rtmp_viewers',
      help: 'Viewers playing now',
      labelNames: ['protocol'] as const,
      registers,
    }),
    streams: gauge({ name: 'rtmp_streams', help: 'Live streams on this node', registers }),
    // Per-stream series, only for the top STREAM_METRICS_TOP_N streams by viewers (a cardinality guard); the
    // `stream` label is the hashed label of logs and the API (`label`), never the stream name.
    streamViewers: gauge({
      name: 'rtmp_stream_viewers',
      help: 'Viewers of one of the top streams, by protocol',
      labelNames: ['stream', 'protocol'] as const,
      registers,
    }),
    streamIngestBps: gauge({
      name: 'rtmp_stream_ingest_bits_per_second',
      help: 'Ingest bitrate of one of the top streams over the last 10 s',
      labelNames: ['stream'] as const,
      registers,
    }),
    streamFps: gauge({
      name: 'rtmp_stream_video_fps',
      help: 'Video frame rate of one of the top streams, measured over the last 10 s',
      labelNames: ['stream'] as const,
      registers,
    }),
    streamEgressBytesPerSecond: gauge({
      name: 'rtmp_stream_egress_bytes_per_second',
      help: "Bytes per second written to this node's viewers of one of the top streams, over the last 10 s",
      labelNames: ['stream'] as const,
      registers,
    }),
    // Set to the stream's total on each scrape (it only grows while the stream's hub lives; a new hub starts at 0,
    // which Prometheus reads as a counter reset).
    streamDroppedFrames: new Counter({
      name: 'rtmp_stream_dropped_frames_total',
      help: 'Video frames not sent to slow viewers of one of the top streams (one per viewer and frame)',
      labelNames: ['stream'] as const,
      registers,
    }),
    bytesIn: new Counter({
      name: 'rtmp_bytes_in_total',
      help: 'Bytes received on RTMP connections',
      registers,
      collect: deltaCollector(() => hot.bytesIn),
    }),
    bytesOut: new Counter({
      name: 'rtmp_bytes_out_total',
      help: 'Bytes written to RTMP viewers',
      registers,
      collect: deltaCollector(() => hot.bytesOut),
    }),
    messagesIn: new Counter({
      name: 'rtmp_messages_in_total',
      help: 'Media messages received from publishers, by kind',
      labelNames: ['kind'] as const,
      registers,
      collect(this: Counter<'kind'>) {
        for (const [kind, now] of Object.entries(hot.messagesIn)) {
          const last = lastMessagesIn.get(kind) ?? 0;
          if (now > last) this.inc({ kind }, now - last);
          else if (!lastMessagesIn.has(kind)) this.inc({ kind }, 0); // expose the series at 0
          lastMessagesIn.set(kind, now);
        }
      },
    }),
    messagesDropped: new Counter({
      name: 'rtmp_messages_dropped_total',
      help: 'Messages not delivered to a viewer, by kind and reason',
      labelNames: ['kind', 'reason'] as const,
      registers,
      collect(this: Counter<'kind' | 'reason'>) {
        for (const [kind, byReason] of hot.droppedCounts) {
          for (const [reason, now] of byReason) {
            const id = `${kind}\u0000${reason}`;
            const last = lastDropped.get(id) ?? 0;
            if (now > last) this.inc({ kind, reason }, now - last);
            lastDropped.set(id, now);
          }
        }
      },
    }),
    slowViewersDisconnected: new Counter({
      name: 'rtmp_slow_viewers_disconnected_total',
      help: 'Viewers disconnected by the slow-viewer policy, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    connectionErrors: new Counter({
      name: 'rtmp_connection_errors_total',
      help: 'RTMP connections closed because of a protocol error or a timeout, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    publishRejected: new Counter({
      name: 'rtmp_publish_rejected_total',
      help: 'publish commands refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    playRejected: new Counter({
      name: 'rtmp_play_rejected_total',
      help: 'play commands refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    tlsErrors: new Counter({
      name: 'rtmps_tls_errors_total',
      help: 'RTMPS connections that failed the TLS handshake, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    tlsReloads: new Counter({
      name: 'rtmps_certificate_reloads_total',
      help: 'RTMPS certificate/key pairs loaded after a file change',
      registers,
    }),
    hookSeconds: new Histogram({
      name: 'rtmp_hook_duration_seconds',
      help: 'Webhook calls by event and outcome',
      labelNames: ['event', 'outcome'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    authDenied: new Counter({
      name: 'rtmp_auth_denied_total',
      help: 'Publishes and plays denied by tokens, hooks or cluster credentials',
      labelNames: ['action', 'reason'] as const,
      registers,
    }),
  };
  // Series that exist from the start (dashboards and alerts see 0 rather than no data).
  metrics.viewers.set({ protocol: 'rtmp' }, 0);
  return metrics;
}

export type Metrics = ReturnType<typeof buildMetrics>;
