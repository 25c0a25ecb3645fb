import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  RateTracker,
  flvUrl,
  hlsUrl,
  formatBitrate,
  formatCodecs,
  formatDuration,
  formatResolution,
  nodeRows,
  routedFlvUrl,
  streamRows,
  streamStatLines,
  type Snapshot,
  type StreamStats,
} from '../src/model.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('console model', () => {
  it('RateTracker: per-second rates over a sliding window, restarted by a counter reset or a new epoch', () => {
    const r = new RateTracker(5000);
    assert.equal(r.update('a', 0, [0, 0]), undefined);
    assert.deepEqual(r.update('a', 1000, [1000, 10]), [1000, 10]);
    assert.deepEqual(r.update('a', 2000, [3000, 20]), [1500, 10]);
    // Old samples leave the window: rate over the last ~5 s only.
    for (let t = 3000; t <= 10_000; t += 1000) r.update('a', t, [3000 + (t - 2000) * 4, 20]);
    assert.deepEqual(r.update('a', 11_000, [3000 + 9000 * 4, 20]), [4000, 0]);
    // A repeated timestamp does not divide by zero.
    assert.deepEqual(r.update('a', 11_000, [3000 + 9000 * 4, 20]), [4000, 0]);
    // A counter going down (stream restarted) starts over.
    assert.equal(r.update('a', 12_000, [10, 1]), undefined);
    assert.deepEqual(r.update('a', 13_000, [110, 2]), [100, 1]);
    // So does a new epoch (startedAt).
    assert.equal(r.update('a', 14_000, [500, 3], 'later'), undefined);
    r.retain([]);
    assert.equal(r.update('a', 15_000, [600, 4], 'later'), undefined);
  });

  it('nodeRows: a standalone node alone, with readiness and totals from its streams', () => {
    const rows = nodeRows({
      at: T0,
      node: { id: 'n1', role: 'standalone', rtmpPort: 1935, connections: 3 },
      ready: true,
      streams: [
        { key: 'live/a', live: true, publisher: 'p1', viewers: 2 },
        { key: 'live/b', live: false, publisher: null, viewers: 1 },
      ],
    });
    assert.equal(rows.length, 1);
    assert.deepEqual(
      {
        id: rows[0]!.id,
        self: rows[0]!.self,
        health: rows[0]!.health,
        viewers: rows[0]!.viewers,
        streams: rows[0]!.streams,
        publishers: rows[0]!.publishers,
        rtmp: rows[0]!.rtmpAddr,
      },
      { id: 'n1', self: true, health: 'ready', viewers: 3, streams: 1, publishers: 1, rtmp: ':1935' },
    );
  });

  it('nodeRows: registry records, origins first, this node marked, and added when not registered yet', () => {
    const base: Snapshot = {
      at: T0 + 60_000,
      node: { id: 'e1', role: 'edge', connections: 5 },
      ready: false,
      streams: [],
      clusterNodes: [
        { id: 'e2', role: 'edge', startedAt: T0, load: { viewers: 7, streams: 1, publishers: 0, egressBps: 1e6 } },
        { id: 'o1', role: 'origin', startedAt: T0, load: { viewers: 1, streams: 1, publishers: 1, egressBps: 2e5 } },
        {
          id: 'e1',
          role: 'edge',
          startedAt: T0 + 30_000,
          load: { viewers: 0, streams: 0, publishers: 0, egressBps: 0 },
        },
      ],
    };
    const rows = nodeRows(base);
    assert.deepEqual(
      rows.map((r) => [r.id, r.health, r.self, r.uptimeS]),
      [
        ['o1', 'up', false, 60],
        ['e1', 'not ready', true, 30],
        ['e2', 'up', false, 60],
      ],
    );
    assert.equal(rows[1]!.connections, 5);
    const missing = nodeRows({ ...base, ready: true, clusterNodes: base.clusterNodes!.filter((n) => n.id !== 'e1') });
    assert.deepEqual(
      missing.map((r) => [r.id, r.health]),
      [
        ['o1', 'up'],
        ['e1', 'ready'],
        ['e2', 'up'],
      ],
    );
  });

  it('streamRows: owner and epoch from the cluster, viewers per node with this node live, bitrate from bytesIn', () => {
    const rates = new RateTracker();
    const snap = (at: number, bytesIn: number, localViewers: number): Snapshot => ({
      at,
      node: { id: 'e1', role: 'edge' },
      ready: true,
      streams: [
        {
          key: 'live/a',
          live: true,
          publisher: 'pull',
          viewers: localViewers,
          bytesIn,
          messagesIn: bytesIn / 1000,
          startedAt: new Date(T0).toISOString(),
        },
      ],
      clusterNodes: [],
      clusterStreams: [
        { key: 'live/a', nodeId: 'o1', epoch: 4, since: T0, viewers: { o1: 1, e1: 1, e2: 3 } },
        { key: 'live/b', nodeId: 'o1', epoch: 2, since: T0, viewers: {} },
      ],
    });
    const media = new Map([['live/a', { videoCodec: 'avc1.42c00d', width: 320, height: 240, fps: 30 }]]);
    const first = streamRows(snap(T0 + 10_000, 100_000, 2), rates, media);
    assert.deepEqual(
      first.map((r) => [r.key, r.owner, r.epoch, r.viewersByNode, r.viewersTotal, r.bitrateBps, r.onThisNode, r.live]),
      [
        [
          'live/a',
          'o1',
          4,
          [
            ['e1', 2],
            ['e2', 3],
            ['o1', 1],
          ],
          6,
          undefined,
          true,
          true,
        ],
        ['live/b', 'o1', 2, [], 0, undefined, false, true],
      ],
    );
    assert.equal(first[0]!.uptimeS, 10);
    assert.deepEqual(first[0]!.media, media.get('live/a'));
    const second = streamRows(snap(T0 + 12_000, 350_000, 2), rates, media);
    assert.equal(second[0]!.bitrateBps, 1_000_000);
    assert.equal(second[0]!.messagesPerS, 125);
  });

  it('streamRows: a standalone node owns its streams', () => {
    const rows = streamRows(
      {
        at: T0,
        node: { id: 'n1', role: 'standalone' },
        ready: true,
        streams: [{ key: 'live/x', live: false, viewers: 0 }],
      },
      new RateTracker(),
    );
    assert.deepEqual(
      rows.map((r) => [r.key, r.owner, r.epoch, r.viewersByNode, r.live]),
      [['live/x', 'n1', undefined, [['n1', 0]], false]],
    );
  });

  it('flvUrl: HTTP-FLV and WS-FLV on the console’s host, path segments encoded, query appended', () => {
    const http = { protocol: 'http:', host: 'edge:8080', pathname: '/' };
    assert.equal(flvUrl(http, 'live/cam', 'http-flv'), 'http://edge:8080/live/cam.flv');
    assert.equal(flvUrl(http, 'live/cam', 'ws-flv'), 'ws://edge:8080/live/cam.flv');
    assert.equal(flvUrl({ ...http, protocol: 'https:' }, 'live/cam', 'ws-flv'), 'wss://edge:8080/live/cam.flv');
    assert.equal(
      flvUrl(http, 'live/a b/c#d', 'http-flv', '?expires=1&token=x'),
      'http://edge:8080/live/a%20b/c%23d.flv?expires=1&token=x',
    );
    assert.equal(
      flvUrl({ ...http, pathname: '/relay' }, 'live/cam', 'http-flv', '  '),
      'http://edge:8080/relay/live/cam.flv',
    );
  });

  it('routedFlvUrl: /play/<app>/<name>.flv on the console’s node (from a URL too), query passed on', () => {
    assert.equal(routedFlvUrl(new URL('http://origin:8080/'), 'live/cam'), 'http://origin:8080/play/live/cam.flv');
    assert.equal(
      routedFlvUrl(new URL('https://lb.example/relay/'), 'live/a b', 'token=x'),
      'https://lb.example/relay/play/live/a%20b.flv?token=x',
    );
  });

  it('streamStatLines: what the nodes measure, worded for the stats panel', () => {
    const stats: StreamStats = {
      video: {
        codec: 'avc1',
        profile: 'High',
        level: '3.1',
        width: 1280,
        height: 720,
        fps: 29.97,
        keyframeIntervalMs: 2000,
      },
      audio: { codec: 'mp4a', profile: 'LC', sampleRate: 44100, channels: 2 },
      ingestKbps: { last1s: 2512, last10s: 2480 },
      egressBytesPerSecond: { last1s: 1_250_000, last10s: 1_200_000 },
      viewers: { rtmp: 3, 'http-flv': 0, 'ws-flv': 2, hls: 1 },
      uptimeSeconds: 125,
      droppedFrames: 42,
      slowViewersDisconnected: 1,
    };
    const text = Object.fromEntries(streamStatLines(stats).map((l) => [l.name, l.value]));
    assert.deepEqual(text, {
      video: 'avc1 · High · level 3.1',
      resolution: '1280×720',
      fps: '29.97 fps',
      keyframe: '2 s',
      audio: 'mp4a · LC · 44.1 kHz · 2 ch',
      ingest: '2.51 Mb/s · 10 s: 2.48 Mb/s',
      egress: '10.00 Mb/s · 10 s: 9.60 Mb/s',
      viewers: '6 (rtmp 3 · ws-flv 2 · hls 1)',
      uptime: '2m 05s',
      dropped: '42 · 1 slow viewer disconnected',
    });
    assert.deepEqual(
      streamStatLines(stats).map((l) => l.label),
      [
        'Video',
        'Resolution',
        'Frame rate',
        'Keyframe interval',
        'Audio',
        'Ingest',
        'Egress',
        'Viewers',
        'Publisher uptime',
        'Dropped frames',
      ],
    );
    // Nothing known yet (no stream, or the owner has not reported): every line reads "—"; nobody watching is 0.
    assert.ok(streamStatLines(undefined).every((l) => l.value === '—'));
    const early = Object.fromEntries(
      streamStatLines({
        video: { codec: 'hvc1', keyframeIntervalMs: 1500 },
        audio: { codec: 'Opus' },
        ingestKbps: null,
        viewers: { rtmp: 0, hls: 0 },
        uptimeSeconds: null,
        droppedFrames: 0,
      }).map((l) => [l.name, l.value]),
    );
    assert.deepEqual(
      [
        early.video,
        early.resolution,
        early.fps,
        early.keyframe,
        early.audio,
        early.ingest,
        early.viewers,
        early.dropped,
      ],
      ['hvc1', '—', '—', '1.50 s', 'Opus', '—', '0', '0'],
    );
  });

  it('hlsUrl: the LL-HLS playlist on the console’s host; a name with slashes is one %2F-encoded segment', () => {
    const http = { protocol: 'http:', host: 'edge:8080', pathname: '/' };
    assert.equal(hlsUrl(http, 'live/cam'), 'http://edge:8080/live/cam/index.m3u8');
    assert.equal(
      hlsUrl({ ...http, protocol: 'https:' }, 'live/a/b', '?expires=1&token=x'),
      'https://edge:8080/live/a%2Fb/index.m3u8?expires=1&token=x',
    );
  });

  it('formats', () => {
    assert.equal(formatBitrate(undefined), '—');
    assert.equal(formatBitrate(999), '999 b/s');
    assert.equal(formatBitrate(2500), '2.5 kb/s');
    assert.equal(formatBitrate(237_000), '237 kb/s');
    assert.equal(formatBitrate(4_560_000), '4.56 Mb/s');
    assert.equal(formatDuration(5.9), '5s');
    assert.equal(formatDuration(65), '1m 05s');
    assert.equal(formatDuration(3 * 3600 + 120), '3h 02m');
    assert.equal(formatDuration(50 * 3600), '2d 2h');
    assert.equal(formatResolution({ width: 320, height: 240 }), '320×240');
    assert.equal(formatResolution(undefined), '—');
    assert.equal(formatCodecs({ videoCodec: 'avc1.42c00d', audioCodec: 'mp4a.40.2' }), 'avc1.42c00d / mp4a.40.2');
    assert.equal(formatCodecs({}), '—');
  });
});
