/**
 * rtmp-relay web console: polls this node's API (and the cluster API when the node is an origin or edge) every
 * 1.5 s, renders the nodes and streams tables and the selected stream's live stats (every 2 s), and plays any stream
 * over HTTP-FLV (direct or routed through /play/), WebSocket-FLV (mpegts.js) or LL-HLS (hls.js).
 * The API token (nodes with API_TOKEN) is typed into the header field and kept in sessionStorage.
 */
import { ApiClient, HttpError } from './api.js';
import {
  RateTracker,
  flvUrl,
  hlsUrl,
  formatBitrate,
  formatCodecs,
  formatDuration,
  formatNumber,
  formatResolution,
  nodeRows,
  routedFlvUrl,
  streamRows,
  streamStatLines,
  type MediaInfo,
  type NodeRow,
  type Snapshot,
  type StatsScope,
  type StreamRow,
  type StreamStats,
  type Transport,
} from './model.js';
import { HlsPlayer, hlsSupported } from './hls-player.js';
import { FlvPlayer, playerSupported, type PlayTimings, type PlayerEvents } from './player.js';

const POLL_MS = 1500;
const POLL_HIDDEN_MS = 10_000;
/** The selected stream's live stats (GET /api/cluster/streams/<key> or /api/streams/<key>). */
const STREAM_STATS_MS = 2000;
const TOKEN_KEY = 'rtmp-relay.console.apiToken';
const TRANSPORT_KEY = 'rtmp-relay.console.transport';

function $<T extends HTMLElement>(selector: string): T {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`console markup lacks ${selector}`);
  return el;
}

const storage = {
  get: (k: string): string => {
    try {
      return sessionStorage.getItem(k) ?? '';
    } catch {
      return '';
    }
  },
  set: (k: string, v: string): void => {
    try {
      if (v) sessionStorage.setItem(k, v);
      else sessionStorage.removeItem(k);
    } catch {
      // storage disabled: the value lives for this page only
    }
  },
};

/** The node's root: the parent of /console/ (so a path prefix added by a proxy is kept). */
const root = new URL('../', location.href);
let token = storage.get(TOKEN_KEY);
const api = new ApiClient(root, () => token);
const rates = new RateTracker();
const media = new Map<string, MediaInfo>();
let last: Snapshot | undefined;

const ui = {
  badge: $<HTMLSpanElement>('#node-badge'),
  status: $<HTMLSpanElement>('#status'),
  tokenForm: $<HTMLFormElement>('#token-form'),
  token: $<HTMLInputElement>('#token'),
  tokenClear: $<HTMLButtonElement>('#token-clear'),
  nodes: $<HTMLTableSectionElement>('#nodes tbody'),
  streams: $<HTMLTableSectionElement>('#streams tbody'),
  streamsEmpty: $<HTMLParagraphElement>('#streams-empty'),
  playerForm: $<HTMLFormElement>('#player-form'),
  playerStream: $<HTMLSelectElement>('#player-stream'),
  transport: $<HTMLSelectElement>('#player-transport'),
  routedOption: $<HTMLOptionElement>('#player-transport option[value="routed-flv"]'),
  query: $<HTMLInputElement>('#player-query'),
  stop: $<HTMLButtonElement>('#stop'),
  playerError: $<HTMLParagraphElement>('#player-error'),
  video: $<HTMLVideoElement>('#video'),
  stats: $<HTMLElement>('#player-stats'),
  streamStats: $<HTMLElement>('#stream-stats'),
  streamStatsKey: $<HTMLElement>('#stream-stats-key'),
  streamStatsScope: $<HTMLElement>('#stream-stats-scope'),
};

// ---- status and token -------------------------------------------------------------------------------------------

function setStatus(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

ui.token.value = token;
ui.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  token = ui.token.value.trim();
  storage.set(TOKEN_KEY, token);
  void pollNow();
});
ui.tokenClear.addEventListener('click', () => {
  token = '';
  ui.token.value = '';
  storage.set(TOKEN_KEY, '');
  void pollNow();
});

// ---- tables -----------------------------------------------------------------------------------------------------

/** Sets text (and optional class/title) of a cell only when it changed, so a poll does not churn the DOM. */
function cell(td: HTMLTableCellElement, text: string, cls?: string, title?: string): void {
  if (td.textContent !== text) td.textContent = text;
  if (cls !== undefined && td.className !== cls) td.className = cls;
  if (title !== undefined && td.title !== title) td.title = title;
}

/** Keeps one <tr> per key (created with `columns` cells), in the given order; removes the others. */
function syncRows<R>(
  tbody: HTMLTableSectionElement,
  rows: R[],
  keyOf: (r: R) => string,
  columns: number,
  fill: (tr: HTMLTableRowElement, r: R) => void,
): void {
  const existing = new Map<string, HTMLTableRowElement>();
  for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key ?? '', tr);
  let prev: HTMLTableRowElement | null = null;
  for (const r of rows) {
    const key = keyOf(r);
    let tr = existing.get(key);
    existing.delete(key);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.key = key;
      for (let i = 0; i < columns; i++) tr.appendChild(document.createElement('td'));
    }
    fill(tr, r);
    const want: ChildNode | null = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

const NODE_COLUMNS = [
  'id',
  'role',
  'health',
  'viewers',
  'streams',
  'publishers',
  'egress',
  'rtmp',
  'http',
  'version',
  'uptime',
] as const;

function renderNodes(rows: NodeRow[]): void {
  syncRows(
    ui.nodes,
    rows,
    (r) => r.id,
    NODE_COLUMNS.length,
    (tr, r) => {
      const c = tr.cells;
      tr.classList.toggle('self', r.self);
      NODE_COLUMNS.forEach((name, i) => (c[i]!.dataset.col = name));
      cell(c[0]!, r.id);
      cell(c[1]!, r.role);
      cell(
        c[2]!,
        r.health,
        `health-${r.health.replace(' ', '-')}`,
        r.self ? 'GET /readyz of this node' : 'registered: its heartbeats are current',
      );
      cell(c[3]!, formatNumber(r.viewers), 'num');
      cell(c[4]!, formatNumber(r.streams), 'num');
      cell(c[5]!, formatNumber(r.publishers), 'num');
      cell(c[6]!, formatBitrate(r.egressBps), 'num');
      cell(c[7]!, r.rtmpAddr || '—');
      cell(c[8]!, r.httpAddr || '—');
      cell(c[9]!, r.version || '—');
      cell(c[10]!, formatDuration(r.uptimeS), 'num');
    },
  );
}

const STREAM_COLUMNS = [
  'key',
  'state',
  'owner',
  'epoch',
  'viewers',
  'per-node',
  'bitrate',
  'msgs',
  'codec',
  'resolution',
  'fps',
  'uptime',
  'action',
] as const;

function renderStreams(rows: StreamRow[]): void {
  ui.streamsEmpty.hidden = rows.length > 0;
  syncRows(
    ui.streams,
    rows,
    (r) => r.key,
    STREAM_COLUMNS.length,
    (tr, r) => {
      const c = tr.cells;
      STREAM_COLUMNS.forEach((name, i) => (c[i]!.dataset.col = name));
      cell(c[0]!, r.key);
      cell(c[1]!, r.live ? 'live' : 'offline', r.live ? 'state-live' : 'state-offline');
      cell(c[2]!, r.owner ?? '—');
      cell(c[3]!, r.epoch !== undefined ? String(r.epoch) : '—', 'num');
      cell(c[4]!, String(r.viewersTotal), 'num');
      const perNode = r.viewersByNode.map(([id, n]) => `${id}: ${n}`).join('  ');
      if (c[5]!.dataset.value !== perNode) {
        c[5]!.dataset.value = perNode;
        c[5]!.replaceChildren(
          ...r.viewersByNode.map(([id, n]) => {
            const chip = document.createElement('span');
            chip.className = 'chip';
            chip.dataset.node = id;
            chip.textContent = `${id}: ${n}`;
            return chip;
          }),
        );
      }
      const here = r.onThisNode ? '' : 'not on this node';
      cell(c[6]!, formatBitrate(r.bitrateBps), 'num', here);
      cell(c[7]!, formatNumber(r.messagesPerS), 'num', here);
      cell(c[8]!, formatCodecs(r.media));
      cell(c[9]!, formatResolution(r.media));
      cell(c[10]!, formatNumber(r.media?.fps, r.media?.fps && r.media.fps % 1 ? 2 : 0), 'num');
      cell(c[11]!, formatDuration(r.uptimeS), 'num');
      if (!c[12]!.firstChild) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'play';
        b.textContent = 'Play';
        b.addEventListener('click', () => {
          selectStream(r.key);
          startPlayback();
        });
        c[12]!.appendChild(b);
      }
      (c[12]!.firstChild as HTMLButtonElement).disabled = !r.live;
    },
  );
}

function renderStreamSelect(rows: StreamRow[]): void {
  const keys = rows.map((r) => r.key);
  const current = ui.playerStream.value;
  if (current && !keys.includes(current)) keys.push(current);
  const have = Array.from(ui.playerStream.options).map((o) => o.value);
  if (have.join('\n') === keys.join('\n')) return;
  ui.playerStream.replaceChildren(
    ...keys.map((k) => {
      const o = document.createElement('option');
      o.value = k;
      o.textContent = k;
      return o;
    }),
  );
  if (current) ui.playerStream.value = current;
}

function selectStream(key: string): void {
  if (!Array.from(ui.playerStream.options).some((o) => o.value === key)) {
    const o = document.createElement('option');
    o.value = key;
    o.textContent = key;
    ui.playerStream.appendChild(o);
  }
  ui.playerStream.value = key;
  void refreshStreamStats();
}

function render(): void {
  if (!last) return;
  const s = last;
  ui.badge.textContent = `${s.node.id} · ${s.node.role}`;
  // Routing through /play/ is a cluster feature: a standalone node has no such route.
  ui.routedOption.disabled = s.node.role === 'standalone';
  if (ui.routedOption.disabled && ui.transport.value === 'routed-flv') ui.transport.value = 'http-flv';
  renderNodes(nodeRows(s));
  const rows = streamRows(s, rates, media);
  renderStreams(rows);
  renderStreamSelect(rows);
}

// ---- polling ----------------------------------------------------------------------------------------------------

let timer: ReturnType<typeof setTimeout> | undefined;
let inFlight: Promise<void> | undefined;

async function poll(): Promise<void> {
  try {
    last = await api.snapshot();
    render();
    ui.token.classList.remove('attention');
    setStatus(
      `updated ${new Date(last.at).toLocaleTimeString()}${last.clusterNodes ? ` · ${last.clusterNodes.length} nodes` : ''}`,
    );
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      ui.token.classList.add('attention');
      setStatus(
        token ? 'API token rejected (401): check the token' : 'this node protects its API: enter the API token',
        true,
      );
    } else {
      setStatus(`API unreachable: ${err instanceof Error ? err.message : String(err)}`, true);
    }
  }
}

function schedule(): void {
  clearTimeout(timer);
  timer = setTimeout(() => void pollNow(), document.hidden ? POLL_HIDDEN_MS : POLL_MS);
}

async function pollNow(): Promise<void> {
  clearTimeout(timer);
  if (inFlight) return inFlight;
  inFlight = poll().finally(() => {
    inFlight = undefined;
    schedule();
  });
  return inFlight;
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void pollNow();
});

// ---- stream stats -----------------------------------------------------------------------------------------------

/** One <dt>/<dd> pair per stat line, made once; refreshes only change the text. */
const streamStatEls = new Map(
  streamStatLines(undefined).map((l) => {
    const dt = document.createElement('dt');
    dt.textContent = l.label;
    const dd = document.createElement('dd');
    dd.dataset.stat = l.name;
    dd.textContent = l.value;
    ui.streamStats.append(dt, dd);
    return [l.name, dd] as const;
  }),
);

function renderStreamStats(key: string, found: { scope: StatsScope; stats: StreamStats } | undefined): void {
  ui.streamStatsKey.textContent = key || '—';
  const nodes = Object.keys(found?.stats.byNode ?? {}).length;
  ui.streamStatsScope.textContent = !found
    ? key
      ? 'no stats: the stream is not known here'
      : ''
    : found.scope === 'cluster'
      ? `cluster-wide: the owner's measurements, viewers and egress of ${nodes} node${nodes === 1 ? '' : 's'}`
      : 'this node';
  ui.streamStats.dataset.scope = found?.scope ?? '';
  for (const l of streamStatLines(found?.stats)) {
    const dd = streamStatEls.get(l.name);
    if (dd && dd.textContent !== l.value) dd.textContent = l.value;
  }
}

let streamStatsTimer: ReturnType<typeof setTimeout> | undefined;

/** Fetches and shows the selected stream's stats now, then every STREAM_STATS_MS while the page is visible. */
async function refreshStreamStats(): Promise<void> {
  clearTimeout(streamStatsTimer);
  const key = ui.playerStream.value;
  try {
    const found = key ? await api.streamStats(key) : undefined;
    if (ui.playerStream.value === key) renderStreamStats(key, found);
  } catch (err) {
    ui.streamStatsScope.textContent = `stats unavailable: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    clearTimeout(streamStatsTimer);
    if (!document.hidden) streamStatsTimer = setTimeout(() => void refreshStreamStats(), STREAM_STATS_MS);
  }
}

ui.playerStream.addEventListener('change', () => void refreshStreamStats());
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void refreshStreamStats();
});

// ---- player -----------------------------------------------------------------------------------------------------

const statEls = new Map(
  Array.from(ui.stats.querySelectorAll<HTMLElement>('dd[data-stat]')).map((dd) => [dd.dataset.stat!, dd]),
);
function stat(name: string, text: string): void {
  const dd = statEls.get(name);
  if (dd && dd.textContent !== text) dd.textContent = text;
}

let playingKey: string | undefined;
let statsTimer: ReturnType<typeof setInterval> | undefined;

function showTimings(t: PlayTimings): void {
  const ms = t.playingMs;
  const dd = statEls.get('start');
  if (!dd || ms === undefined) return;
  dd.dataset.playingMs = String(Math.round(ms));
  if (t.firstFrameMs !== undefined) dd.dataset.firstFrameMs = String(Math.round(t.firstFrameMs));
  if (t.advancingMs !== undefined) dd.dataset.advancingMs = String(Math.round(t.advancingMs));
  const parts = [`${Math.round(ms)} ms`];
  if (t.firstFrameMs !== undefined) parts.push(`first frame ${Math.round(t.firstFrameMs)} ms`);
  stat('start', parts.join(' · '));
}

function showError(message: string | undefined): void {
  ui.playerError.hidden = !message;
  ui.playerError.textContent = message ?? '';
}

const TRANSPORT_NAMES: Record<Transport, string> = {
  'http-flv': 'HTTP-FLV',
  'ws-flv': 'WebSocket-FLV',
  hls: 'LL-HLS',
  'routed-flv': 'HTTP-FLV routed through /play/',
};

const playerEvents: PlayerEvents = {
  onMediaInfo: (info) => {
    if (!playingKey) return;
    media.set(playingKey, { ...media.get(playingKey), ...info });
    render();
  },
  onError: (message) =>
    showError(
      `${message} — is the stream live, and does this node serve ${TRANSPORT_NAMES[ui.transport.value as Transport] ?? ui.transport.value}?`,
    ),
  onTimings: showTimings,
};
const flvPlayer = new FlvPlayer(ui.video, playerEvents);
const hlsPlayer = new HlsPlayer(ui.video, playerEvents);
/** The player of the current playback (FLV or HLS). */
let player: FlvPlayer | HlsPlayer = flvPlayer;

function refreshStats(): void {
  const s = player.stats();
  if (!s) return;
  if (player instanceof HlsPlayer) {
    const latency = player.latencyMs();
    stat('latency', latency !== undefined ? `${(latency / 1000).toFixed(2)} s` : '—');
    const dd = statEls.get('latency');
    if (dd && latency !== undefined) dd.dataset.latencyMs = String(Math.round(latency));
  }
  stat('resolution', s.width ? `${s.width}×${s.height}` : '—');
  stat('codec', formatCodecs(s.media));
  stat('fps', formatNumber(s.media.fps, s.media.fps && s.media.fps % 1 ? 2 : 0));
  stat('time', `${s.currentTime.toFixed(1)} s`);
  stat('buffer', `${(s.bufferS * 1000).toFixed(0)} ms`);
  stat('frames', s.decodedFrames !== undefined ? `${s.decodedFrames} decoded, ${s.droppedFrames ?? 0} dropped` : '—');
  stat('speed', s.speedKBps !== undefined ? formatBitrate(s.speedKBps * 8 * 1024) : '—');
}

function startPlayback(pressedAt = performance.now()): void {
  const key = ui.playerStream.value;
  if (!key) {
    showError('no stream selected');
    return;
  }
  const transport = ui.transport.value as Transport;
  if (transport === 'hls' ? !hlsSupported() : !playerSupported()) {
    showError(
      `this browser lacks Media Source Extensions live playback (${transport === 'hls' ? 'hls.js' : 'mpegts.js'})`,
    );
    return;
  }
  storage.set(TRANSPORT_KEY, transport);
  const url =
    transport === 'hls'
      ? hlsUrl(root, key, ui.query.value)
      : transport === 'routed-flv'
        ? routedFlvUrl(root, key, ui.query.value)
        : flvUrl(root, key, transport, ui.query.value);
  player.stop();
  player = transport === 'hls' ? hlsPlayer : flvPlayer;
  showError(undefined);
  for (const dd of statEls.values()) {
    dd.textContent = '—';
    for (const k of Object.keys(dd.dataset)) if (k !== 'stat') delete dd.dataset[k];
  }
  stat('url', url);
  playingKey = key;
  ui.video.dataset.key = key;
  ui.video.dataset.transport = transport;
  player.play(url, pressedAt);
  ui.stop.disabled = false;
  clearInterval(statsTimer);
  statsTimer = setInterval(refreshStats, 500);
}

function stopPlayback(): void {
  player.stop();
  playingKey = undefined;
  delete ui.video.dataset.key;
  clearInterval(statsTimer);
  ui.stop.disabled = true;
}

const savedTransport = storage.get(TRANSPORT_KEY);
if (Object.keys(TRANSPORT_NAMES).includes(savedTransport)) ui.transport.value = savedTransport;

ui.playerForm.addEventListener('submit', (e) => {
  e.preventDefault();
  startPlayback(e.timeStamp || performance.now());
});
ui.stop.addEventListener('click', stopPlayback);
window.addEventListener('pagehide', () => player.stop());

void pollNow().then(() => refreshStreamStats());
