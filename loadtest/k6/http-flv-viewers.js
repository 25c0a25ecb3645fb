// HTTP-FLV viewers with a bounded duration against rtmp-relay edges (plain k6, no extensions).
//
// k6's HTTP client returns a body only when the request ends, so each viewer session is one GET of
// http://<edge>/<app>/<stream>.flv with `timeout` = SESSION seconds and responseType 'binary': when the timeout
// fires k6 ends the request and hands back what arrived (status 0, error_code 1050 "request timeout"; k6 logs a
// "Request Failed" warning for each, and counts it in http_req_failed: that is expected here, the suite's own
// metrics below say whether viewers were served). The body is then parsed as FLV:
//
//   flv_time_to_first_byte  Trend (ms)    TTFB of the .flv response (the join burst starts at a keyframe)
//   flv_received_bitrate    Trend (bit/s) bytes over the time after the first byte
//   flv_realtime_ratio      Trend         media seconds received per wall second (~1, more with the join burst)
//   flv_stalled_sessions    Rate          sessions that received less media than wall time by more than STALL_MS
//   flv_stall_time          Trend (ms)    the shortfall beyond STALL_MS
//   flv_playing             Rate          sessions with a 200 and a keyframe
//   flv_errors              Counter       HTTP errors, bad FLV, a join not starting with a keyframe
//
// Env as ws-flv-viewers.js (TARGETS, STREAM(S), QUERY, CODECS, SESSION, STALL_MS, MIN_BITRATE, MAX_STALLED,
// K6_SCENARIO, VIEWERS, DURATION, RAMP, HOLD, ROUTE), plus TTFB_P95_MS (default 1000).
// ROUTE=1: each viewer asks its TARGETS node which edge to use (lib/route.js) instead of playing from it.
import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import { flvUrl, list, pickTarget, summarizeHttpBody } from './lib/flv-stats.js';
import { viewerBase } from './lib/route.js';
import { envNumber, viewerScenarios } from './lib/scenarios.js';

const TARGETS = list(__ENV.TARGETS, ['http://127.0.0.1:8090', 'http://127.0.0.1:8091']);
const STREAMS = list(__ENV.STREAMS || __ENV.STREAM, ['live/demo']);
const SESSION_S = envNumber(__ENV, 'SESSION', 20);
const STALL_MS = envNumber(__ENV, 'STALL_MS', 1000);
const TTFB_P95_MS = envNumber(__ENV, 'TTFB_P95_MS', 1000);
const MIN_BITRATE = envNumber(__ENV, 'MIN_BITRATE', 50000);
const MAX_STALLED = envNumber(__ENV, 'MAX_STALLED', 0.05);
/** k6's error code for a request that hit its timeout. */
const K6_REQUEST_TIMEOUT = 1050;
const ROUTE = envNumber(__ENV, 'ROUTE', 0) > 0;

const timeToFirstByte = new Trend('flv_time_to_first_byte', true);
const receivedBitrate = new Trend('flv_received_bitrate');
const realtimeRatio = new Trend('flv_realtime_ratio');
const stalledSessions = new Rate('flv_stalled_sessions');
const stallTime = new Trend('flv_stall_time', true);
const playing = new Rate('flv_playing');
const errors = new Counter('flv_errors');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: viewerScenarios(__ENV, 'viewer'),
  thresholds: {
    flv_time_to_first_byte: [`p(95)<${TTFB_P95_MS}`],
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
  const edge = viewerBase(ROUTE, target, stream, 'http-flv', (routeUrl) =>
    http.get(routeUrl, { tags: { ...tags, name: 'GET route' } }),
  );
  if ('error' in edge) {
    errors.add(1, { ...tags, reason: edge.error });
    return;
  }
  const url = flvUrl(edge.base, stream, { query: __ENV.QUERY, codecs: __ENV.CODECS });
  const started = Date.now();
  const res = http.get(url, { responseType: 'binary', timeout: SESSION_S * 1000, tags: { ...tags, name: 'GET .flv' } });
  const wallMs = Date.now() - started;
  const served =
    res.status === 200 || (res.error_code === K6_REQUEST_TIMEOUT && res.body !== null && res.body.byteLength > 0);
  const ttfbMs = res.timings.waiting > 0 ? res.timings.waiting : 0;
  const s =
    served && res.body
      ? summarizeHttpBody(res.body, {
          wallMs: wallMs - res.timings.connecting - res.timings.sending,
          ttfbMs,
          stallMs: STALL_MS,
        })
      : undefined;
  const ok = check(
    res,
    {
      'served (200, or ended by the session timeout)': () => served,
      'valid FLV': () => s !== undefined && s.error === undefined && s.header !== undefined,
      'reached a keyframe': () => s !== undefined && s.playing,
      'join starts with a keyframe': () => s !== undefined && s.startsWithKeyframe,
    },
    tags,
  );
  playing.add(s !== undefined && s.playing, tags);
  if (ttfbMs > 0 && served) timeToFirstByte.add(ttfbMs, tags);
  if (s) {
    receivedBitrate.add(s.bitsPerSecond, tags);
    realtimeRatio.add(s.realtimeRatio, tags);
    stalledSessions.add(s.stalled, tags);
    stallTime.add(s.stallTimeMs, tags);
  }
  if (!ok) errors.add(1, { ...tags, reason: served ? 'bad_stream' : `http_${res.status}_${res.error_code}` });
}

export default viewer;
