// LL-HLS viewers against rtmp-relay nodes (plain k6 HTTP, no extensions). Each VU iteration is one viewer session
// of SESSION seconds on http://<node>/<app>/<stream>/index.m3u8:
//
//   1. GET the playlist, GET the init segment (EXT-X-MAP), fetch from the newest independent part on;
//   2. then, until the session ends: a blocking reload (_HLS_msn/_HLS_part: the part after the newest one) and
//      every new part it lists. With LL=0 the viewer is a plain HLS client: it reloads every target duration and
//      fetches complete segments.
//
//   hls_playlist_latency   Trend (ms)  playlist response time (blocking reloads wait for the next part: ≈ part)
//   hls_segment_ttfb       Trend (ms)  time to first byte of parts / segments / init
//   hls_live_edge_distance Trend (ms)  arrival of a part minus the program date time of its end (publish-to-view)
//   hls_stall_time         Trend (ms)  per session: time the received media could not cover (beyond STALL_MS)
//   hls_stalled_sessions   Rate        sessions with a stall
//   hls_playing            Rate        sessions that received media
//   hls_errors             Counter     HTTP errors (403/404/5xx), bad playlists
//
// Env: TARGETS, STREAM(S), QUERY (play token, carried by the server into media URIs), SESSION, STALL_MS (500),
// LL (1), K6_SCENARIO, VIEWERS, DURATION, RAMP, HOLD; thresholds PLAYLIST_P95_MS (part target + 1000 when
// blocking, else 500), TTFB_P95_MS (500), EDGE_P95_MS (3000), MAX_STALLED (0.05).
// ROUTE=1: each viewer asks its TARGETS node which edge to use (lib/route.js) and keeps to it for the whole
// session (an LL-HLS playlist's numbering is the node's own: a viewer must not hop between edges).
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import { list, pickTarget } from './lib/flv-stats.js';
import { viewerBase } from './lib/route.js';
import {
  HlsViewerStats,
  blockingUrl,
  newMedia,
  nextBlockingRequest,
  parsePlaylist,
  resolveUri,
} from './lib/hls-stats.js';
import { envNumber, viewerScenarios } from './lib/scenarios.js';

const TARGETS = list(__ENV.TARGETS, ['http://127.0.0.1:8090', 'http://127.0.0.1:8091']);
const STREAMS = list(__ENV.STREAMS || __ENV.STREAM, ['live/demo']);
const ROUTE = envNumber(__ENV, 'ROUTE', 0) > 0;
const SESSION_S = envNumber(__ENV, 'SESSION', 20);
const STALL_MS = envNumber(__ENV, 'STALL_MS', 500);
const LOW_LATENCY = envNumber(__ENV, 'LL', 1) > 0;
const PLAYLIST_P95_MS = envNumber(__ENV, 'PLAYLIST_P95_MS', LOW_LATENCY ? 2000 : 500);
const TTFB_P95_MS = envNumber(__ENV, 'TTFB_P95_MS', 500);
const EDGE_P95_MS = envNumber(__ENV, 'EDGE_P95_MS', 3000);
const MAX_STALLED = envNumber(__ENV, 'MAX_STALLED', 0.05);
/** Blocking reloads are answered within 3 target durations (else 503): give them that and a margin. */
const PLAYLIST_TIMEOUT_MS = 20_000;

const playlistLatency = new Trend('hls_playlist_latency', true);
const segmentTtfb = new Trend('hls_segment_ttfb', true);
const edgeDistance = new Trend('hls_live_edge_distance', true);
const stallTime = new Trend('hls_stall_time', true);
const stalledSessions = new Rate('hls_stalled_sessions');
const playing = new Rate('hls_playing');
const errors = new Counter('hls_errors');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: viewerScenarios(__ENV, 'viewer'),
  thresholds: {
    hls_playlist_latency: [`p(95)<${PLAYLIST_P95_MS}`],
    hls_segment_ttfb: [`p(95)<${TTFB_P95_MS}`],
    hls_live_edge_distance: [`p(95)<${EDGE_P95_MS}`],
    hls_stalled_sessions: [`rate<${MAX_STALLED}`],
    hls_playing: ['rate>0.99'],
    hls_errors: ['count<1'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

/**
 * @param {string} target
 * @param {string} stream
 * @param {string | undefined} query
 */
function playlistUrl(target, stream, query) {
  const slash = stream.indexOf('/');
  const path = `${encodeURIComponent(stream.slice(0, slash))}/${encodeURIComponent(stream.slice(slash + 1))}`;
  const q = (query || '').replace(/^\?/, '');
  return `${target.replace(/\/+$/, '')}/${path}/index.m3u8${q ? `?${q}` : ''}`;
}

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
  const url = playlistUrl(edge.base, stream, __ENV.QUERY);
  const stats = new HlsViewerStats(STALL_MS);
  const seen = new Set();
  const endAt = Date.now() + SESSION_S * 1000;
  /** @type {ReturnType<typeof parsePlaylist> | undefined} */
  let pl;
  let reloadUrl = url;
  let failed = false;
  while (Date.now() < endAt && !failed) {
    const res = http.get(reloadUrl, { timeout: PLAYLIST_TIMEOUT_MS, tags: { ...tags, name: 'GET index.m3u8' } });
    playlistLatency.add(res.timings.duration, tags);
    if (res.status !== 200 || typeof res.body !== 'string') {
      errors.add(1, { ...tags, status: String(res.status) });
      failed = true;
      break;
    }
    try {
      pl = parsePlaylist(res.body);
    } catch {
      errors.add(1, { ...tags, status: 'bad_playlist' });
      failed = true;
      break;
    }
    if (seen.size === 0 && pl.map) {
      const init = http.get(resolveUri(url, pl.map), { responseType: 'binary', tags: { ...tags, name: 'GET init' } });
      segmentTtfb.add(init.timings.waiting, tags);
      if (init.status !== 200) {
        errors.add(1, { ...tags, status: String(init.status) });
        failed = true;
        break;
      }
    }
    for (const m of newMedia(pl, seen, LOW_LATENCY)) {
      const r = http.get(resolveUri(url, m.uri), {
        responseType: 'binary',
        tags: { ...tags, name: LOW_LATENCY ? 'GET part' : 'GET segment' },
      });
      if (r.status !== 200 || !r.body) {
        errors.add(1, { ...tags, status: String(r.status) });
        failed = true;
        break;
      }
      segmentTtfb.add(r.timings.waiting, tags);
      const now = Date.now();
      const endPdt = m.programDateTime === undefined ? undefined : m.programDateTime + m.duration * 1000;
      stats.onMedia(m.duration, r.body.byteLength, now, endPdt);
      if (endPdt !== undefined) edgeDistance.add(Math.max(0, now - endPdt), tags);
    }
    if (pl.ended) break;
    const next = nextBlockingRequest(pl);
    if (LOW_LATENCY && pl.canBlockReload && next) {
      reloadUrl = blockingUrl(url, next, pl.partTarget !== undefined);
    } else {
      // A plain client: reload every target duration.
      sleep(Math.max(0.1, Math.min(pl.targetDuration || 1, (endAt - Date.now()) / 1000)));
    }
  }
  const got = stats.startedAt !== undefined;
  playing.add(got && !failed, tags);
  const stalled = stats.stallTimeAt(Date.now());
  stallTime.add(stalled, tags);
  stalledSessions.add(stalled > 0, tags);
  check(stats, { 'received media': () => got, 'no HTTP errors': () => !failed });
}
