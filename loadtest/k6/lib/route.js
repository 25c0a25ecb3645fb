// Stream-aware viewer routing for the k6 suites (ROUTE=1): instead of spreading viewers over TARGETS as a plain load
// balancer would, each viewer first asks a node (its TARGETS entry) which edge to use for its stream:
// GET /api/cluster/route?stream=<app>/<name>&protocol=http-flv answers { url, nodeId, reason } (reason: warm, cold
// or spill), and the viewer plays from that edge's base URL. Pure functions, so Node tests them too.

/** Protocols the route API knows; HLS viewers ask for the edge's http-flv URL and use its base. */
export const ROUTE_PROTOCOLS = ['rtmp', 'http-flv', 'ws-flv'];

/**
 * The route API URL on `base` (http(s)://host:port) for a viewer of `stream` (app/name).
 * @param {string} base
 * @param {string} stream
 * @param {string} [protocol]
 */
export function routeApiUrl(base, stream, protocol = 'http-flv') {
  if (!ROUTE_PROTOCOLS.includes(protocol)) throw new Error(`unknown route protocol ${protocol}`);
  const b = base.replace(/\/+$/, '').replace(/^ws:/, 'http:').replace(/^wss:/, 'https:');
  return `${b}/api/cluster/route?stream=${encodeURIComponent(stream)}&protocol=${protocol}`;
}

/**
 * The edge a route API response names: its HTTP base URL (scheme://host:port), node id and reason; or an error
 * label for the suites' error counter.
 * @param {{ status: number, body: unknown }} res
 * @returns {{ base: string, nodeId: string, reason: string } | { error: string }}
 */
export function routedEdge(res) {
  if (res.status !== 200) return { error: `route_${res.status}` };
  let answer;
  try {
    answer = JSON.parse(typeof res.body === 'string' ? res.body : '');
  } catch {
    return { error: 'route_bad_json' };
  }
  if (!answer || typeof answer.url !== 'string') return { error: 'route_bad_json' };
  // No URL global in k6: scheme and authority by pattern.
  const m = /^(https?|wss?):\/\/([^/?#\s]+)/.exec(answer.url);
  if (!m) return { error: 'route_bad_url' };
  const scheme = m[1] === 'wss' ? 'https' : m[1] === 'ws' ? 'http' : m[1];
  return { base: `${scheme}://${m[2]}`, nodeId: String(answer.nodeId ?? ''), reason: String(answer.reason ?? '') };
}

/**
 * Where one viewer plays: `target` itself, or with `route` the edge the route API on `target` names for `stream`.
 * @param {boolean} route
 * @param {string} target
 * @param {string} stream
 * @param {string} protocol
 * @param {(url: string) => { status: number, body: unknown }} get k6's http.get (with the request's tags)
 * @returns {{ base: string } | { error: string }}
 */
export function viewerBase(route, target, stream, protocol, get) {
  return route ? routedEdge(get(routeApiUrl(target, stream, protocol))) : { base: target };
}
