import type { Counter, Gauge } from 'prom-client';
import type { FlvObserver } from './routes.js';
import type { FlvProtocol } from './viewer.js';

export * from './routes.js';
export * from './viewer.js';

export const FLV_PROTOCOLS: readonly FlvProtocol[] = ['http-flv', 'ws-flv'];

/**
 * Binds FLV plays to the node's metrics: rtmp_viewers{protocol="http-flv"|"ws-flv"} (series exposed at 0 from the
 * start, like protocol="rtmp") and rtmp_play_rejected_total{reason}.
 */
export function flvMetricsObserver(metrics: {
  viewers: Gauge<'protocol'>;
  playRejected: Counter<'reason'>;
}): FlvObserver {
  for (const protocol of FLV_PROTOCOLS) metrics.viewers.inc({ protocol }, 0);
  return {
    viewerStarted: (protocol) => metrics.viewers.inc({ protocol }),
    viewerStopped: (protocol) => metrics.viewers.dec({ protocol }),
    playRejected: (reason) => metrics.playRejected.inc({ reason }),
  };
}
