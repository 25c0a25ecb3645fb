// WebSocket-FLV viewers against rtmp-relay edges (plain k6, no extensions; k6 >= 1.0 for k6/websockets).
//
// Each VU is one viewer at a time: it opens ws://<edge>/<app>/<stream>.flv, parses every FLV tag it receives
// (tags may be split across WebSocket messages or packed several to one), and after SESSION seconds leaves;
// its next iteration is a new viewer. Per session it records:
//
//   flv_time_to_first_keyframe  Trend (ms)   connect -> first coded video keyframe received
//   flv_received_bitrate        Trend (bit/s) bytes received over the session
//   flv_stalls                  Counter       media gaps longer than STALL_MS while playing
//   flv_stall_time              Trend (ms)    time stalled beyond STALL_MS, per session
//   flv_stalled_sessions        Rate          sessions with at least one stall
//   flv_max_lag                 Trend (ms)    how far media time fell behind wall time
//   flv_playing                 Rate          sessions that reached a keyframe
//   flv_errors                  Counter       failed connects, bad FLV, a join not starting with a keyframe
//
// Env: TARGETS (edge HTTP base URLs, comma separated; VUs are spread over them), STREAM or STREAMS (app/name,
// comma separated), QUERY (e.g. a signed play token "expires=...&token=..."), CODECS (Enhanced RTMP FourCCs the
// viewer accepts, e.g. "hvc1,av01"; default legacy codecs only), SESSION, STALL_MS (default 1000),
// TTFK_P95_MS (default 1500), MIN_BITRATE (bit/s, default 50000), MAX_STALLED (rate, default 0.05), and the
// scenario settings of lib/scenarios.js (K6_SCENARIO=smoke|ramp|soak, VIEWERS, DURATION, RAMP, HOLD).
// ROUTE=1: each viewer asks its TARGETS node which edge to use (lib/route.js) instead of playing from it.
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearTimeout, setTimeout } from 'k6/timers';
import http from 'k6/http';
import { WebSocket } from 'k6/websockets';
import { ViewerStats, flvUrl, list, pickTarget } from './lib/flv-stats.js';
import { viewerBase } from './lib/route.js';
import { envNumber, viewerScenarios } from './lib/scenarios.js';

const TARGETS = list(__ENV.TARGETS, ['http://127.0.0.1:8090', 'http://127.0.0.1:8091']);
const STREAMS = list(__ENV.STREAMS || __ENV.STREAM, ['live/demo']);
const ROUTE = envNumber(__ENV, 'ROUTE', 0) > 0;
const SESSION_MS = envNumber(__ENV, 'SESSION', 20) * 1000;
const STALL_MS = envNumber(__ENV, 'STALL_MS', 1000);
const TTFK_P95_MS = envNumber(__ENV, 'TTFK_P95_MS', 1500);
const MIN_BITRATE = envNumber(__ENV, 'MIN_BITRATE', 50000);
const MAX_STALLED = envNumber(__ENV, 'MAX_STALLED', 0.05);

const timeToFirstKeyframe = new Trend('flv_time_to_first_keyframe', true);
const receivedBitrate = new Trend('flv_received_bitrate');
const stalls = new Counter('flv_stalls');
const stallTime = new Trend('flv_stall_time', true);
const stalledSessions = new Rate('flv_stalled_sessions');
const maxLag = new Trend('flv_max_lag', true);
const playing = new Rate('flv_playing');
const errors = new Counter('flv_errors');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: viewerScenarios(__ENV, 'viewer'),
  thresholds: {
    flv_time_to_first_keyframe: [`p(95)<${TTFK_P95_MS}`],
    flv_received_bitrate: [`avg>${MIN_BITRATE}`],
    flv_stalled_sessions: [`rate<${MAX_STALLED}`],
    flv_playing: ['rate>0.99'],
    flv_errors: ['count<1'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function viewer() {
  const vu = exec.vu.idInTest;
  const target = pickTarget(TARGETS, vu);
  const stream = STREAMS[(vu + exec.vu.iterationInScenario) % STREAMS.length];
  const tags = { target, stream };
  const edge = viewerBase(ROUTE, target, stream, 'ws-flv', (routeUrl) =>
    http.get(routeUrl, { tags: { ...tags, name: 'GET route' } }),
  );
  if ('error' in edge) {
    errors.add(1, { ...tags, reason: edge.error });
    return;
  }
  const url = flvUrl(edge.base, stream, { websocket: true, query: __ENV.QUERY, codecs: __ENV.CODECS });
  const startedAt = Date.now();
  const stats = new ViewerStats({ startedAt, stallMs: STALL_MS });
  /** @type {string | undefined} */
  let failure;
  let opened = false;

  const ws = new WebSocket(url, null, { tags });
  ws.binaryType = 'arraybuffer';
  const timer = setTimeout(() => ws.close(), SESSION_MS);
  ws.onopen = () => {
    opened = true;
  };
  ws.onmessage = (event) => {
    if (!event || !(event.data instanceof ArrayBuffer)) return;
    stats.push(event.data, event.timestamp > 0 ? event.timestamp : Date.now());
    if (stats.error && !failure) {
      failure = `bad FLV: ${stats.error}`;
      ws.close();
    }
  };
  ws.onerror = (event) => {
    if (!failure) failure = event && event.error ? String(event.error) : 'websocket error';
  };
  ws.onclose = () => {
    clearTimeout(timer);
    const s = stats.summary(Date.now());
    if (!opened && !failure) failure = 'not connected';
    const ok = check(
      s,
      {
        connected: () => opened,
        'valid FLV': (x) => x.error === undefined,
        'reached a keyframe': (x) => x.playing,
        'join starts with a keyframe': (x) => !x.startedWithoutKeyframe,
      },
      tags,
    );
    playing.add(s.playing, tags);
    if (s.timeToFirstKeyframeMs !== undefined) timeToFirstKeyframe.add(s.timeToFirstKeyframeMs, tags);
    if (s.bytes > 0) receivedBitrate.add(s.bitsPerSecond, tags);
    if (s.playing) {
      stalls.add(s.stalls, tags);
      stallTime.add(s.stallTimeMs, tags);
      stalledSessions.add(s.stalls > 0, tags);
      maxLag.add(s.maxLagMs, tags);
    }
    if (!ok || failure) {
      errors.add(1, { ...tags, reason: failure ? failure.slice(0, 60) : 'check_failed' });
    }
  };
}

export default viewer;
