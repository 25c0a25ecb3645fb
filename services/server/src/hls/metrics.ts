/** HLS metrics, registered once per prom-client registry (several servers may share one, e.g. in tests). */
import { Counter, Gauge, type Registry } from 'prom-client';

export type HlsRequestType = 'playlist' | 'init' | 'segment' | 'part';

export interface HlsMetrics {
  requests: Counter<'type' | 'status'>;
  bytes: Counter<'type'>;
  blockingReloads: Counter<'outcome'>;
  sessions: Gauge;
  packagers: Gauge;
  memory: Gauge;
}

function getOrCreate<T>(register: Registry, name: string, make: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? make();
}

/** `collect` reads the live values at scrape time (no per-request gauge updates). */
export function hlsMetrics(
  register: Registry,
  collect: () => { sessions: number; packagers: number; memoryBytes: number },
): HlsMetrics {
  const registers = [register];
  return {
    requests: getOrCreate(
      register,
      'hls_requests_total',
      () =>
        new Counter({
          name: 'hls_requests_total',
          help: 'HLS requests by type (playlist, init, segment, part) and status',
          labelNames: ['type', 'status'],
          registers,
        }),
    ),
    bytes: getOrCreate(
      register,
      'hls_bytes_sent_total',
      () =>
        new Counter({
          name: 'hls_bytes_sent_total',
          help: 'HLS response body bytes by type',
          labelNames: ['type'],
          registers,
        }),
    ),
    blockingReloads: getOrCreate(
      register,
      'hls_blocking_reloads_total',
      () =>
        new Counter({
          name: 'hls_blocking_reloads_total',
          help: 'LL-HLS blocking playlist reloads (_HLS_msn) by outcome: ready, timeout',
          labelNames: ['outcome'],
          registers,
        }),
    ),
    sessions: getOrCreate(
      register,
      'hls_sessions',
      () =>
        new Gauge({
          name: 'hls_sessions',
          help: 'HLS viewers, estimated: distinct sessions (session query parameter, else client address and user agent) seen within the linger time',
          registers,
          collect() {
            this.set(collect().sessions);
          },
        }),
    ),
    packagers: getOrCreate(
      register,
      'hls_packagers',
      () =>
        new Gauge({
          name: 'hls_packagers',
          help: 'Streams being packaged for HLS on this node',
          registers,
          collect() {
            this.set(collect().packagers);
          },
        }),
    ),
    memory: getOrCreate(
      register,
      'hls_window_bytes',
      () =>
        new Gauge({
          name: 'hls_window_bytes',
          help: 'Bytes held by HLS windows (init segments, segments and parts) on this node',
          registers,
          collect() {
            this.set(collect().memoryBytes);
          },
        }),
    ),
  };
}
