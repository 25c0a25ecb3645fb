// The rtmp-relay HTTP API under load (plain k6): list the node's streams, list the cluster's streams, resolve one
// stream's owner. Each iteration is that request mix against one of TARGETS (round robin).
//
// Env: TARGETS (node HTTP base URLs, comma separated), STREAM (app/name to resolve when the cluster list is empty;
// default live/demo), API_TOKEN (bearer token when the nodes set API_TOKEN), CLUSTER (0 for a standalone node:
// skips /api/cluster/*), P95_MS (default 250), and the scenario settings of lib/scenarios.js (K6_SCENARIO,
// RATE requests/s, DURATION, RAMP, HOLD).
import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { Rate, Trend } from 'k6/metrics';
import { list, pickTarget } from './lib/flv-stats.js';
import { apiScenarios, envNumber } from './lib/scenarios.js';

const TARGETS = list(__ENV.TARGETS, [
  'http://127.0.0.1:8090',
  'http://127.0.0.1:8091',
  'http://127.0.0.1:8080',
  'http://127.0.0.1:8081',
]);
const STREAM = __ENV.STREAM || 'live/demo';
const CLUSTER = __ENV.CLUSTER !== '0';
const P95_MS = envNumber(__ENV, 'P95_MS', 250);
/** @type {Record<string, string>} */
const HEADERS = __ENV.API_TOKEN ? { authorization: `Bearer ${__ENV.API_TOKEN}` } : {};

const resolveDuration = new Trend('api_resolve_duration', true);
const resolveFound = new Rate('api_resolve_found');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: apiScenarios(__ENV, 'api'),
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:GET /api/streams}': [`p(95)<${P95_MS}`],
    ...(CLUSTER
      ? {
          'http_req_duration{name:GET /api/cluster/streams}': [`p(95)<${P95_MS}`],
          'http_req_duration{name:GET /api/cluster/streams/:key}': [`p(95)<${P95_MS}`],
        }
      : {}),
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

/**
 * @param {import('k6/http').RefinedResponse<'text'>} res
 * @returns {unknown}
 */
function json(res) {
  try {
    return res.json();
  } catch {
    return undefined;
  }
}

export function api() {
  const base = pickTarget(TARGETS, exec.vu.idInTest + exec.vu.iterationInScenario).replace(/\/+$/, '');
  const local = http.get(`${base}/api/streams`, { headers: HEADERS, tags: { name: 'GET /api/streams' } });
  check(local, {
    'GET /api/streams 200': (r) => r.status === 200,
    'GET /api/streams lists streams': (r) => {
      const body = /** @type {{ streams?: unknown }} */ (json(r));
      return body !== undefined && Array.isArray(body.streams);
    },
  });
  if (!CLUSTER) return;

  const all = http.get(`${base}/api/cluster/streams`, { headers: HEADERS, tags: { name: 'GET /api/cluster/streams' } });
  const body = /** @type {{ streams?: Array<{ key?: string }> } | undefined} */ (json(all));
  check(all, {
    'GET /api/cluster/streams 200': (r) => r.status === 200,
    'GET /api/cluster/streams lists streams': () => body !== undefined && Array.isArray(body.streams),
  });
  const keys =
    body && Array.isArray(body.streams) ? body.streams.map((s) => s.key).filter((k) => typeof k === 'string') : [];
  const key = keys.length > 0 ? keys[exec.scenario.iterationInTest % keys.length] : STREAM;
  const path = String(key).split('/').map(encodeURIComponent).join('/');
  // A stream nobody publishes is a 404: an answer, not a failure.
  const one = http.get(`${base}/api/cluster/streams/${path}`, {
    headers: HEADERS,
    tags: { name: 'GET /api/cluster/streams/:key' },
    responseCallback: http.expectedStatuses(200, 404),
  });
  resolveDuration.add(one.timings.duration);
  resolveFound.add(one.status === 200);
  check(one, {
    'resolve answers 200 or 404': (r) => r.status === 200 || r.status === 404,
    'a resolved stream names its owner': (r) => {
      if (r.status !== 200) return true;
      const owner = /** @type {{ nodeId?: string } | undefined} */ (json(r));
      return owner !== undefined && typeof owner.nodeId === 'string';
    },
  });
}

export default api;
