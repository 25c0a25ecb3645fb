/**
 * The console's pure logic, kept free of the DOM so node's test runner can check it: the shapes the node's HTTP API
 * answers with, merging the local and cluster views into table rows, rates from counter deltas, formatting and
 * player URLs.
 */

/** GET /api/node */
export interface NodeInfo {
  id: string;
  role: string;
  rtmpPort?: number;
  connections?: number;
  streams?: number;
}

/** One entry of GET /api/streams: this node's hub for a stream (published here, or pulled by an edge). */
export interface LocalStream {
  key: string;
  app?: string;
  name?: string;
  live: boolean;
  publisher?: string | null;
  viewers: number;
  messagesIn?: number;
  bytesIn?: number;
  startedAt?: string | null;
  gopCache?: { messages: number; bytes: number };
  media?: StreamStats;
}

/**
 * A stream's live stats as the node measures them: `media` of GET /api/streams/<key> (this node), or of
 * GET /api/cluster/streams/<key> (the owner's measurements, viewers and egress summed over the nodes).
 */
export interface StreamStats {
  video: {
    codec: string;
    profile?: string;
    level?: string;
    width?: number;
    height?: number;
    fps?: number;
    keyframeIntervalMs?: number;
  } | null;
  audio: { codec: string; profile?: string; sampleRate?: number; channels?: number } | null;
  /** kbit/s; null in the cluster view until the owner reports. */
  ingestKbps: { last1s: number; last10s: number } | null;
  egressBytesPerSecond?: { last1s: number; last10s: number };
  viewers?: Record<string, number>;
  uptimeSeconds: number | null;
  droppedFrames?: number;
  slowViewersDisconnected?: number;
  /** Cluster view: each node's part. */
  byNode?: Record<string, unknown>;
}

/** Where a stream's stats came from: the cluster-wide view, or this node's hub only. */
export type StatsScope = 'cluster' | 'node';

/** One entry of GET /api/cluster/nodes: a node's registry record, refreshed by its heartbeat. */
export interface ClusterNodeRecord {
  id: string;
  role: string;
  rtmpAddr?: string;
  httpAddr?: string;
  version?: string;
  startedAt?: number;
  load?: { viewers?: number; streams?: number; publishers?: number; egressBps?: number };
  /** Viewers per stream key on that node. */
  streams?: Record<string, number>;
}

/** One entry of GET /api/cluster/streams: the owner (origin) of a stream and its viewers per node. */
export interface ClusterStream {
  key: string;
  nodeId: string;
  addr?: string;
  epoch?: number;
  since?: number;
  viewers?: Record<string, number>;
}

/** What one poll of the API returned. Cluster parts are absent on a standalone node. */
export interface Snapshot {
  /** Date.now() when the answers arrived. */
  at: number;
  node: NodeInfo;
  /** GET /readyz of this node. */
  ready: boolean | undefined;
  streams: LocalStream[];
  clusterNodes?: ClusterNodeRecord[];
  clusterStreams?: ClusterStream[];
}

/** What the player learned about a stream (mpegts.js MEDIA_INFO and the video element). */
export interface MediaInfo {
  videoCodec?: string;
  audioCodec?: string;
  width?: number;
  height?: number;
  fps?: number;
}

export type Health = 'ready' | 'not ready' | 'up' | 'unknown';

export interface NodeRow {
  id: string;
  role: string;
  self: boolean;
  health: Health;
  rtmpAddr: string;
  httpAddr: string;
  version: string;
  uptimeS: number | undefined;
  viewers: number | undefined;
  streams: number | undefined;
  publishers: number | undefined;
  egressBps: number | undefined;
  connections: number | undefined;
}

export interface StreamRow {
  key: string;
  live: boolean;
  /** Owner node id (the origin in a cluster; this node when standalone). */
  owner: string | undefined;
  epoch: number | undefined;
  /** Viewers per node id, sorted by node id. */
  viewersByNode: Array<[string, number]>;
  viewersTotal: number;
  /** Bits per second into this node's hub, from bytesIn deltas (absent until two samples, or not on this node). */
  bitrateBps: number | undefined;
  messagesPerS: number | undefined;
  uptimeS: number | undefined;
  /** True when this node has a hub for the stream (its bitrate can be measured here). */
  onThisNode: boolean;
  media: MediaInfo | undefined;
}

/**
 * Rates of monotonic counters per key over a sliding window of samples (smoother than the last poll's delta).
 * A counter that goes down, or a new `epoch` (e.g. the stream's startedAt), restarts that key's window.
 */
export class RateTracker {
  private readonly samples = new Map<string, { epoch: string; points: Array<{ t: number; values: number[] }> }>();

  constructor(private readonly windowMs = 5000) {}

  /** Records counters at time `t` (ms); returns per-second rates over the window, or undefined before two samples. */
  update(key: string, t: number, values: number[], epoch = ''): number[] | undefined {
    let s = this.samples.get(key);
    const last = s?.points.at(-1);
    if (!s || s.epoch !== epoch || (last && values.some((v, i) => v < (last.values[i] ?? 0)))) {
      s = { epoch, points: [] };
      this.samples.set(key, s);
    }
    if (last && s.points.length > 0 && t <= last.t) return this.rates(s.points);
    s.points.push({ t, values });
    while (s.points.length > 2 && t - s.points[1]!.t >= this.windowMs) s.points.shift();
    return this.rates(s.points);
  }

  /** Forgets keys not in `keep`. */
  retain(keep: Iterable<string>): void {
    const set = new Set(keep);
    for (const k of this.samples.keys()) if (!set.has(k)) this.samples.delete(k);
  }

  private rates(points: Array<{ t: number; values: number[] }>): number[] | undefined {
    if (points.length < 2) return undefined;
    const a = points[0]!;
    const b = points.at(-1)!;
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) return undefined;
    return b.values.map((v, i) => (v - (a.values[i] ?? 0)) / dt);
  }
}

/** Nodes table: the registry's records in a cluster, else this node alone. */
export function nodeRows(s: Snapshot): NodeRow[] {
  const selfHealth: Health = s.ready === undefined ? 'unknown' : s.ready ? 'ready' : 'not ready';
  if (!s.clusterNodes) {
    return [
      {
        id: s.node.id,
        role: s.node.role,
        self: true,
        health: selfHealth,
        rtmpAddr: s.node.rtmpPort !== undefined ? `:${s.node.rtmpPort}` : '',
        httpAddr: '',
        version: '',
        uptimeS: undefined,
        viewers: s.streams.reduce((n, st) => n + st.viewers, 0),
        streams: s.streams.filter((st) => st.live).length,
        publishers: s.streams.filter((st) => st.live && st.publisher).length,
        egressBps: undefined,
        connections: s.node.connections,
      },
    ];
  }
  const rows = s.clusterNodes.map((n): NodeRow => {
    const self = n.id === s.node.id;
    return {
      id: n.id,
      role: n.role,
      self,
      // A record is in the registry only while its heartbeats keep it alive; readiness is known for this node only.
      health: self ? selfHealth : 'up',
      rtmpAddr: n.rtmpAddr ?? '',
      httpAddr: n.httpAddr ?? '',
      version: n.version ?? '',
      uptimeS: n.startedAt ? Math.max(0, (s.at - n.startedAt) / 1000) : undefined,
      viewers: n.load?.viewers,
      streams: n.load?.streams,
      publishers: n.load?.publishers,
      egressBps: n.load?.egressBps,
      connections: self ? s.node.connections : undefined,
    };
  });
  if (!rows.some((r) => r.self)) {
    // Not (yet) in the registry: show it anyway, so the node serving the console is never missing.
    rows.push(nodeRows({ ...s, clusterNodes: undefined })[0]!);
  }
  return rows.sort((a, b) => roleOrder(a.role) - roleOrder(b.role) || a.id.localeCompare(b.id));
}

function roleOrder(role: string): number {
  return role === 'origin' ? 0 : role === 'edge' ? 1 : 2;
}

/**
 * Streams table: the union of the cluster's owned streams and this node's hubs. Bitrate and message rate come from
 * this node's counters (so they are known for streams published or pulled here).
 */
export function streamRows(
  s: Snapshot,
  rates: RateTracker,
  media: ReadonlyMap<string, MediaInfo> = new Map(),
): StreamRow[] {
  const local = new Map(s.streams.map((st) => [st.key, st]));
  const cluster = new Map((s.clusterStreams ?? []).map((cs) => [cs.key, cs]));
  const keys = [...new Set([...cluster.keys(), ...local.keys()])].sort();
  rates.retain(local.keys());
  return keys.map((key): StreamRow => {
    const l = local.get(key);
    const c = cluster.get(key);
    let viewersByNode: Array<[string, number]>;
    if (c?.viewers) viewersByNode = Object.entries(c.viewers);
    else viewersByNode = l ? [[s.node.id, l.viewers]] : [];
    // The registry's counts lag by a heartbeat; this node's own count is live.
    if (l && c) {
      const i = viewersByNode.findIndex(([id]) => id === s.node.id);
      if (i >= 0) viewersByNode[i] = [s.node.id, l.viewers];
      else if (l.viewers > 0) viewersByNode.push([s.node.id, l.viewers]);
    }
    viewersByNode.sort((a, b) => a[0].localeCompare(b[0]));
    let bitrateBps: number | undefined;
    let messagesPerS: number | undefined;
    if (l && l.bytesIn !== undefined) {
      const r = rates.update(key, s.at, [l.bytesIn, l.messagesIn ?? 0], l.startedAt ?? '');
      if (r && l.live) {
        bitrateBps = r[0]! * 8;
        messagesPerS = r[1]!;
      } else if (r) {
        bitrateBps = 0;
        messagesPerS = 0;
      }
    }
    const started = l?.startedAt ? Date.parse(l.startedAt) : c?.since;
    return {
      key,
      live: l ? l.live : c !== undefined,
      owner: c ? c.nodeId : l ? (s.clusterNodes ? undefined : s.node.id) : undefined,
      epoch: c?.epoch,
      viewersByNode,
      viewersTotal: viewersByNode.reduce((n, [, v]) => n + v, 0),
      bitrateBps,
      messagesPerS,
      uptimeS: started && Number.isFinite(started) ? Math.max(0, (s.at - started) / 1000) : undefined,
      onThisNode: l !== undefined,
      media: media.get(key),
    };
  });
}

/** One line of the stream stats panel: `name` keys the element (data-stat), `label` is shown next to `value`. */
export interface StatLine {
  name: string;
  label: string;
  value: string;
}

/** The stream stats panel's lines, in order; unknown values read "—". */
export function streamStatLines(m: StreamStats | undefined): StatLine[] {
  const v = m?.video ?? undefined;
  const a = m?.audio ?? undefined;
  const line = (name: string, label: string, value: string | undefined): StatLine => ({
    name,
    label,
    value: value || '—',
  });
  const egress = m?.egressBytesPerSecond;
  return [
    line('video', 'Video', v && [v.codec, v.profile, v.level && `level ${v.level}`].filter(Boolean).join(' · ')),
    line('resolution', 'Resolution', v?.width && v.height ? `${v.width}×${v.height}` : undefined),
    line('fps', 'Frame rate', v?.fps !== undefined ? `${formatNumber(v.fps, v.fps % 1 ? 2 : 0)} fps` : undefined),
    line('keyframe', 'Keyframe interval', formatSeconds(v?.keyframeIntervalMs)),
    line('audio', 'Audio', a && formatAudio(a)),
    line(
      'ingest',
      'Ingest',
      m?.ingestKbps ? formatWindows(m.ingestKbps.last1s * 1000, m.ingestKbps.last10s * 1000) : undefined,
    ),
    line('egress', 'Egress', egress ? formatWindows(egress.last1s * 8, egress.last10s * 8) : undefined),
    line('viewers', 'Viewers', m?.viewers ? formatViewers(m.viewers) : undefined),
    line('uptime', 'Publisher uptime', m?.uptimeSeconds != null ? formatDuration(m.uptimeSeconds) : undefined),
    line('dropped', 'Dropped frames', m?.droppedFrames !== undefined ? formatDropped(m) : undefined),
  ];
}

/** "1.02 Mb/s · 10 s: 998 kb/s": a rate over the last second, then over the last 10. */
function formatWindows(last1sBps: number, last10sBps: number): string {
  return `${formatBitrate(last1sBps)} · 10 s: ${formatBitrate(last10sBps)}`;
}

/** "mp4a · LC · 44.1 kHz · 2 ch" */
function formatAudio(a: NonNullable<StreamStats['audio']>): string {
  const khz = a.sampleRate ? `${Number((a.sampleRate / 1000).toFixed(3))} kHz` : undefined;
  const ch = a.channels ? `${a.channels} ch` : undefined;
  return [a.codec, a.profile, khz, ch].filter(Boolean).join(' · ');
}

/** "3 (rtmp 1 · http-flv 2)", protocols with nobody left out. */
function formatViewers(viewers: Record<string, number>): string {
  const parts = Object.entries(viewers).filter(([, n]) => n > 0);
  const total = parts.reduce((n, [, v]) => n + v, 0);
  return total === 0 ? '0' : `${total} (${parts.map(([p, n]) => `${p} ${n}`).join(' · ')})`;
}

/** "0", or "120 · 1 slow viewer disconnected". */
function formatDropped(m: StreamStats): string {
  const cut = m.slowViewersDisconnected ?? 0;
  const frames = String(m.droppedFrames ?? 0);
  return cut > 0 ? `${frames} · ${cut} slow viewer${cut === 1 ? '' : 's'} disconnected` : frames;
}

/** "2 s", "1.50 s"; undefined stays undefined. */
function formatSeconds(ms: number | undefined): string | undefined {
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  return `${(ms / 1000).toFixed(ms % 1000 ? 2 : 0)} s`;
}

export type Transport = 'http-flv' | 'ws-flv' | 'hls' | 'routed-flv';

/**
 * The FLV URL of a stream on the node whose root is `root` (the console's own origin and base path, normally
 * `http://host/`): `/<app>/<name>.flv` over HTTP, or the same path over WebSocket. `query` (e.g. `expires=…&token=…`
 * for signed play URLs) is appended as given.
 */
export function flvUrl(
  root: { protocol: string; host: string; pathname?: string },
  key: string,
  transport: 'http-flv' | 'ws-flv',
  query = '',
): string {
  const path = key
    .split('/')
    .map((p) => encodeURIComponent(p))
    .join('/');
  const secure = root.protocol === 'https:' || root.protocol === 'wss:';
  const scheme = transport === 'ws-flv' ? (secure ? 'wss:' : 'ws:') : secure ? 'https:' : 'http:';
  const base = (root.pathname ?? '/').replace(/\/*$/, '/');
  const q = query.trim().replace(/^\?/, '');
  return `${scheme}//${root.host}${base}${path}.flv${q ? `?${q}` : ''}`;
}

/**
 * The routed HTTP-FLV URL of a stream: `/play/<app>/<name>.flv` on the console's node, which answers 302 to the edge
 * the cluster picks for the stream (cluster nodes only). `query` goes along to the edge.
 */
export function routedFlvUrl(
  root: { protocol: string; host: string; pathname?: string },
  key: string,
  query = '',
): string {
  const base = (root.pathname ?? '/').replace(/\/*$/, '/');
  // Fields named, not spread: `root` is often a URL, whose fields are getters.
  return flvUrl({ protocol: root.protocol, host: root.host, pathname: `${base}play/` }, key, 'http-flv', query);
}

/**
 * The LL-HLS playlist URL of a stream: `/<app>/<name>/index.m3u8` (a name with slashes is one %2F-encoded path
 * segment). `query` (a signed play token) is appended as given; the node carries it into segment URIs.
 */
export function hlsUrl(root: { protocol: string; host: string; pathname?: string }, key: string, query = ''): string {
  const slash = key.indexOf('/');
  const app = key.slice(0, slash);
  const name = key.slice(slash + 1);
  const scheme = root.protocol === 'https:' || root.protocol === 'wss:' ? 'https:' : 'http:';
  const base = (root.pathname ?? '/').replace(/\/*$/, '/');
  const q = query.trim().replace(/^\?/, '');
  return `${scheme}//${root.host}${base}${encodeURIComponent(app)}/${encodeURIComponent(name)}/index.m3u8${q ? `?${q}` : ''}`;
}

export function formatBitrate(bps: number | undefined): string {
  if (bps === undefined || !Number.isFinite(bps)) return '—';
  if (bps < 1000) return `${Math.round(bps)} b/s`;
  if (bps < 1e6) return `${(bps / 1e3).toFixed(bps < 1e4 ? 1 : 0)} kb/s`;
  if (bps < 1e9) return `${(bps / 1e6).toFixed(2)} Mb/s`;
  return `${(bps / 1e9).toFixed(2)} Gb/s`;
}

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function formatNumber(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return n.toFixed(digits);
}

/** "320×240" or "—". */
export function formatResolution(m: MediaInfo | undefined): string {
  return m?.width && m.height ? `${m.width}×${m.height}` : '—';
}

/** "avc1.64000d / mp4a.40.2", whichever is known, or "—". */
export function formatCodecs(m: MediaInfo | undefined): string {
  const parts = [m?.videoCodec, m?.audioCodec].filter((c): c is string => !!c);
  return parts.length ? parts.join(' / ') : '—';
}
