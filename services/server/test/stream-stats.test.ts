/**
 * Live stream stats (codec, profile, picture size, frame rate, keyframe interval, audio, bitrate, viewers by
 * protocol) measured from what flows, checked against what ffprobe says of the same stream or input: an FFmpeg
 * H.264/AAC publish, an HEVC Enhanced RTMP publish (x265 output packaged by the test), and the AV1 + Opus Enhanced
 * FLV fixture.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamHub, type HubViewer } from '@rtmp-relay/hub';
import { MessageType, RtmpClient, parseVideoTag, type RtmpMessage } from '@rtmp-relay/rtmp';
import { StreamStats, type StreamStatsSnapshot } from '../src/streams/stats.js';
import { parseMetric } from './support/cluster-harness.js';
import { connectPublisher, loadFlvFixture, packageHevcAsErtmp, replayTags } from './support/ertmp-tools.js';
import { ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { run, stopAll, waitFor } from './support/processes.js';

interface ProbeStream {
  codec_type: string;
  codec_name: string;
  profile?: string;
  level?: number;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  sample_rate?: string;
  channels?: number;
}

async function ffprobeStreams(args: string[]): Promise<ProbeStream[]> {
  const r = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', ...args], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { streams: ProbeStream[] }).streams;
}

const rate = (fraction: string | undefined): number => {
  const [n, d] = (fraction ?? '0/1').split('/').map(Number);
  return n! / (d || 1);
};

interface Media {
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
  ingestKbps: { last1s: number; last10s: number };
  egressBytesPerSecond: { last1s: number; last10s: number };
  droppedFrames: number;
  slowViewersDisconnected: number;
  viewers: Record<string, number>;
  uptimeSeconds: number | null;
}

interface ClusterMedia extends Media {
  byNode: Record<string, Pick<Media, 'viewers' | 'egressBytesPerSecond' | 'droppedFrames'> & { upstream: boolean }>;
}

/** A hub viewer that counts what it is given, with a settable socket backlog. */
class CountingViewer implements HubViewer {
  readonly streamId = 1;
  bytes = 0;
  backlog = 0;
  disconnects: string[] = [];
  constructor(
    readonly id: string,
    readonly format: 'rtmp' | 'flv' = 'rtmp',
  ) {}
  acceptsFourCc(): boolean {
    return false;
  }
  write(b: Buffer): void {
    this.bytes += b.length;
  }
  backlogBytes(): number {
    return this.backlog;
  }
  cork(): void {}
  uncork(): void {}
  disconnect(reason: string): void {
    this.disconnects.push(reason);
  }
  streamEnded(): void {}
  streamRestarted(): void {}
}

describe('egress and slow-viewer stats from the hub counters (simulated clock)', () => {
  const FPS = 25;
  const FRAME_BYTES = 2000;
  const frame = (ts: number, key: boolean): RtmpMessage => ({
    type: MessageType.Video,
    streamId: 1,
    timestamp: ts,
    payload: Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 0x01, 0, 0, 0]), Buffer.alloc(FRAME_BYTES - 5, 7)]),
  });

  it('egress bytes/s over the last 1 s and 10 s are what the viewers were given in those seconds', () => {
    let now = 5_000_250; // ms, a quarter into a second
    const hub = new StreamHub('live/egress', {
      audioCoalesceMs: 0,
      adaptiveBatchMs: 0,
      unpublishGraceMs: 0,
      viewerSoftBacklogBytes: 10_000,
      viewerHardBacklogBytes: 1_000_000,
    });
    const stats = new StreamStats(
      () => hub.stats(),
      () => now,
    );
    hub.attachPublisher({ id: 'pub', kick: () => {} });
    const viewers = [new CountingViewer('rtmp'), new CountingViewer('flv', 'flv')];
    for (const v of viewers) hub.addViewer(v);
    const given = (): number => viewers.reduce((n, v) => n + v.bytes, 0);
    /** Bytes given to viewers per simulated second. */
    const perSecond = new Map<number, number>();
    let ts = 0;
    const runSeconds = (seconds: number, during?: (second: number) => void): void => {
      for (let s = 0; s < seconds; s++) {
        const second = Math.floor(now / 1000);
        const before = given();
        during?.(second);
        for (let f = 0; f < FPS; f++) {
          const msg = frame(ts, ts % 2000 === 0);
          stats.record(msg); // ingest() records, then pushes
          hub.push(msg);
          ts += 1000 / FPS;
          now += 1000 / FPS;
        }
        perSecond.set(second, given() - before);
      }
    };
    runSeconds(12);
    const snap: StreamStatsSnapshot = stats.snapshot(hub);
    const last = Math.floor(now / 1000) - 1;
    assert.equal(snap.egressBytesPerSecond.last1s, perSecond.get(last));
    let sum = 0;
    for (let s = last - 9; s <= last; s++) sum += perSecond.get(s)!;
    assert.equal(snap.egressBytesPerSecond.last10s, Math.round(sum / 10));
    // Two viewers of a 50 KB/s stream: a bit over 100 KB/s (RTMP chunk headers, FLV tag headers).
    assert.ok(snap.egressBytesPerSecond.last1s > 2 * FPS * FRAME_BYTES, JSON.stringify(snap.egressBytesPerSecond));
    assert.ok(snap.egressBytesPerSecond.last1s < 2.1 * FPS * FRAME_BYTES, JSON.stringify(snap.egressBytesPerSecond));
    assert.deepEqual([snap.droppedFrames, snap.slowViewersDisconnected], [0, 0]);

    // One viewer falls behind (backlog past the soft bound): its inter frames are dropped and egress halves.
    viewers[1]!.backlog = 20_000;
    runSeconds(3);
    const slow = stats.snapshot(hub);
    const keyframes = 1; // one every 2 s: the dropping viewer still gets them
    assert.ok(slow.droppedFrames >= 2 * FPS - 2 * keyframes, `dropped ${slow.droppedFrames}`);
    assert.equal(slow.droppedFrames, hub.stats().framesDropped);
    const lastSecond = perSecond.get(Math.floor(now / 1000) - 1)!;
    assert.equal(slow.egressBytesPerSecond.last1s, lastSecond);
    assert.ok(lastSecond < 1.2 * FPS * FRAME_BYTES, `${lastSecond} bytes/s with one viewer dropping`);
    // Past the hard bound it is disconnected.
    viewers[1]!.backlog = 2_000_000;
    runSeconds(1);
    assert.deepEqual(viewers[1]!.disconnects, ['slow_viewer']);
    assert.equal(stats.snapshot(hub).slowViewersDisconnected, 1);
    hub.close('test');
  });
});

describe('live stream stats match ffprobe', { timeout: 180_000 }, () => {
  let node: NodeUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'stream-stats-'));
  const media = async (key: string): Promise<Media> =>
    ((await (await fetch(`http://127.0.0.1:${node.httpPort}/api/streams/${key}`)).json()) as { media: Media }).media;

  before(async () => {
    node = await startTestNode({ STREAM_METRICS_TOP_N: '5' });
  });
  after(async () => {
    await stopAll();
    await node?.shutdown('test');
    rmSync(dir, { recursive: true, force: true });
  });

  it('FFmpeg H.264/AAC: codec, profile, size, frame rate, keyframe interval, audio, bitrate, viewers', async () => {
    const url = `rtmp://127.0.0.1:${node.rtmpPort}/live/h264`;
    ffmpegPublish(url, { seconds: 40, size: '640x360', rate: 25, gop: 50 });
    await waitLive(node, 'live/h264');
    const probe = await ffprobeStreams([url]);
    const v = probe.find((s) => s.codec_type === 'video')!;
    const a = probe.find((s) => s.codec_type === 'audio')!;
    // One RTMP and one HTTP-FLV viewer, counted by protocol.
    const rtmpViewer = await RtmpClient.connect(url);
    await rtmpViewer.play('h264');
    const flv = await fetch(`http://127.0.0.1:${node.httpPort}/live/h264.flv`);
    const reader = flv.body!.getReader();
    try {
      // Frame rate and bitrate need complete seconds of history.
      const m = await waitFor(
        'stats with 4 s of history',
        async () => {
          const got = await media('live/h264');
          return got.video?.keyframeIntervalMs !== undefined && (got.uptimeSeconds ?? 0) >= 4 ? got : undefined;
        },
        20_000,
        250,
      );
      assert.equal(v.codec_name, 'h264');
      assert.equal(m.video!.codec, 'avc1');
      assert.equal(m.video!.profile, v.profile);
      assert.equal(m.video!.width, v.width);
      assert.equal(m.video!.height, v.height);
      assert.equal(Number(m.video!.level) * 10, v.level);
      assert.ok(Math.abs(m.video!.fps! - rate(v.r_frame_rate)) <= 2, `fps ${m.video!.fps} vs ${v.r_frame_rate}`);
      assert.equal(m.video!.keyframeIntervalMs, 2000, 'gop 50 at 25 fps');
      assert.equal(a.codec_name, 'aac');
      assert.equal(m.audio!.codec, 'mp4a');
      assert.equal(m.audio!.profile, a.profile);
      assert.equal(m.audio!.sampleRate, Number(a.sample_rate));
      assert.equal(m.audio!.channels, a.channels);
      assert.ok(m.ingestKbps.last10s > 50 && m.ingestKbps.last1s > 0, JSON.stringify(m.ingestKbps));
      assert.deepEqual(m.viewers, { rtmp: 1, 'http-flv': 1, 'ws-flv': 0, hls: 0 });
      // Egress: both viewers are given every message, so twice the ingest bytes plus RTMP chunk / FLV tag headers
      // (compared over one whole second, once both viewers' join bursts are in the past).
      let seen = '';
      const steady = await waitFor(
        'egress of a whole second with both viewers',
        async () => {
          const got = await media('live/h264');
          const ratio = got.egressBytesPerSecond.last1s / ((got.ingestKbps.last1s * 1000) / 8);
          seen = `${JSON.stringify(got.egressBytesPerSecond)} vs ingest ${JSON.stringify(got.ingestKbps)} kbit/s`;
          return ratio >= 1.8 && ratio <= 2.5 ? got : undefined;
        },
        10_000,
        250,
      ).catch((err: Error) => assert.fail(`${err.message}; last seen ${seen}`));
      assert.ok(steady.egressBytesPerSecond.last10s > 0);
      assert.deepEqual([steady.droppedFrames, steady.slowViewersDisconnected], [0, 0]);
      // Per-stream Prometheus series under the top-N guard, labelled without the stream name.
      const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
      assert.equal(parseMetric(text, 'rtmp_stream_viewers', { protocol: 'rtmp' }), 1);
      assert.ok(parseMetric(text, 'rtmp_stream_ingest_bits_per_second') > 50_000);
      assert.ok(parseMetric(text, 'rtmp_stream_egress_bytes_per_second') > 0);
      assert.match(text, /^rtmp_stream_dropped_frames_total\{stream="[^"]+"\} 0$/m);
      assert.ok(!text.includes('live/h264'), 'stream names are not metric labels');
    } finally {
      rtmpViewer.close();
      await reader.cancel();
    }
  });

  it('HEVC over Enhanced RTMP: codec, profile, size and frame rate match ffprobe of the x265 output', async () => {
    const src = join(dir, 't.hevc');
    const enc = await run(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=480x272:rate=30', '-t', '6'].concat([
        '-c:v',
        'libx265',
        '-x265-params',
        'keyint=30:bframes=0:log-level=error',
        '-f',
        'hevc',
        '-y',
        src,
      ]),
      { timeoutMs: 60_000 },
    );
    assert.equal(enc.code, 0, enc.stderr);
    const [probe] = await ffprobeStreams([src]);
    const pkg = packageHevcAsErtmp(readFileSync(src), 30);
    const publisher = await connectPublisher(`rtmp://127.0.0.1:${node.rtmpPort}/ertmp/hevc`, ['hvc1']);
    try {
      const replay = replayTags(publisher, pkg.messages, { speed: 1, timeoutMs: 20_000 }).catch((err: Error) => err);
      const m = await waitFor(
        'HEVC stats with history',
        async () => {
          const got = await media('ertmp/hevc').catch(() => undefined);
          return got?.video?.fps !== undefined && (got.uptimeSeconds ?? 0) >= 3 ? got : undefined;
        },
        15_000,
        250,
      );
      assert.equal(probe!.codec_name, 'hevc');
      assert.equal(m.video!.codec, 'hvc1');
      assert.equal(m.video!.profile, probe!.profile);
      assert.equal(m.video!.width, probe!.width);
      assert.equal(m.video!.height, probe!.height);
      assert.equal(Number(m.video!.level) * 30, probe!.level);
      assert.ok(Math.abs(m.video!.fps! - rate(probe!.r_frame_rate)) <= 3, `fps ${m.video!.fps}`);
      assert.equal(m.video!.keyframeIntervalMs, 1000, 'keyint 30 at 30 fps');
      assert.equal(m.audio, null);
      assert.equal(await replay, undefined, 'the replay finished');
    } finally {
      publisher.close();
    }
  });

  it('AV1 + Opus fixture: codec, profile, level and size match ffprobe of its OBUs', async () => {
    const tags = loadFlvFixture('testsrc.flv');
    // The same AV1 bitstream as an OBU file for ffprobe: the configOBUs of the last SequenceStart, then the frames.
    const obus: Buffer[] = [];
    const TEMPORAL_DELIMITER = Buffer.from([0x12, 0x00]);
    const AV1C_HEADER = 4;
    for (const t of tags) {
      if (t.type !== MessageType.Video) continue;
      const info = parseVideoTag(t.data);
      const body = t.data.subarray(info.payloadOffset);
      if (info.isSequenceHeader && body.length > AV1C_HEADER) obus.push(TEMPORAL_DELIMITER, body.subarray(AV1C_HEADER));
      else if (info.isCodedFrame) obus.push(TEMPORAL_DELIMITER, body);
    }
    const obuFile = join(dir, 't.obu');
    writeFileSync(obuFile, Buffer.concat(obus));
    const [probe] = await ffprobeStreams(['-f', 'obu', obuFile]);
    const publisher = await connectPublisher(`rtmp://127.0.0.1:${node.rtmpPort}/ertmp/av1`, ['av01', 'Opus']);
    try {
      const replay = replayTags(publisher, tags, { speed: 1, timeoutMs: 30_000 }).catch(() => undefined);
      const m = await waitFor(
        'AV1 stats with history',
        async () => {
          const got = await media('ertmp/av1').catch(() => undefined);
          return got?.video?.fps !== undefined && (got.uptimeSeconds ?? 0) >= 3 ? got : undefined;
        },
        15_000,
        250,
      );
      assert.equal(probe!.codec_name, 'av1');
      assert.equal(m.video!.codec, 'av01');
      assert.equal(m.video!.profile, probe!.profile);
      assert.equal(m.video!.width, probe!.width);
      assert.equal(m.video!.height, probe!.height);
      // ffprobe reports AV1's seq_level_idx; level X.Y is idx (X - 2) * 4 + Y.
      const [major, minor] = m.video!.level!.split('.').map(Number);
      assert.equal((major! - 2) * 4 + minor!, probe!.level);
      // A raw OBU file has no timing (ffprobe guesses 25): the input's frame rate is in the FLV timestamps.
      const frameTimes = tags
        .filter((t) => t.type === MessageType.Video && parseVideoTag(t.data).isCodedFrame)
        .map((t) => t.timestamp);
      const inputFps = ((frameTimes.length - 1) * 1000) / (frameTimes.at(-1)! - frameTimes[0]!);
      assert.ok(Math.abs(m.video!.fps! - inputFps) <= 3, `fps ${m.video!.fps} vs ${inputFps.toFixed(2)}`);
      assert.equal(m.audio!.codec, 'Opus');
      assert.equal(m.audio!.sampleRate, 48000);
      assert.ok((m.audio!.channels ?? 0) >= 1);
      publisher.close();
      await replay;
    } finally {
      publisher.close();
    }
  });
});

describe('cluster-wide stream stats', { timeout: 120_000 }, () => {
  for (const signedPulls of [false, true])
    it(`any node's cluster API shows the owner's measured media and the viewers per node (${signedPulls ? 'with' : 'without'} CLUSTER_SECRET)`, async () => {
      const { startRedis, startNats, stopAllServices } = await import('./support/services.js');
      const { clusterEnv, startInProcessNode, clusterStream } = await import('./support/cluster-harness.js');
      const [redis, nats] = await Promise.all([startRedis(), startNats()]);
      const env = clusterEnv(redis.url, nats.url, {
        HEARTBEAT_MS: '500',
        ...(signedPulls ? { CLUSTER_SECRET: 'stats-test-cluster-secret-0123456789' } : {}),
      });
      const origin = await startInProcessNode('origin', 'origin-stats', env);
      const edge = await startInProcessNode('edge', 'edge-stats', env);
      const viewer = await RtmpClient.connect(edge.rtmpUrl('live/cs'));
      try {
        ffmpegPublish(origin.rtmpUrl('live/cs'), { seconds: 30, size: '426x240', rate: 30 });
        await viewer.play('cs', 15_000);
        const s = await waitFor(
          'the owner to report media',
          async () => {
            const got = (await clusterStream(edge, 'live/cs')) as
              (Awaited<ReturnType<typeof clusterStream>> & { media: ClusterMedia | null }) | undefined;
            // Each node's figures come from its own heartbeat: wait until both have reported a second of egress
            // (the edge's can arrive before the origin's first complete second is in its record).
            const egress = got?.media?.byNode?.['edge-stats']?.egressBytesPerSecond.last1s ?? 0;
            const originEgress = got?.media?.byNode?.['origin-stats']?.egressBytesPerSecond.last1s ?? 0;
            return got?.media?.video?.width && got.viewers['edge-stats'] === 1 && egress > 0 && originEgress > 0
              ? got
              : undefined;
          },
          15_000,
          200,
        );
        assert.equal(s.nodeId, 'origin-stats');
        assert.equal(s.media!.video!.codec, 'avc1');
        assert.equal(s.media!.video!.width, 426);
        assert.equal(s.media!.video!.height, 240);
        assert.equal(s.media!.audio!.codec, 'mp4a');
        // Viewers and egress summed over the nodes: the edge's pull is not a viewer of the public. With signed pulls the
        // origin knows it for a pull; without, it looks like an RTMP viewer there and the cluster view takes it out.
        const { byNode } = s.media!;
        assert.deepEqual(byNode['origin-stats']!.viewers, {
          rtmp: signedPulls ? 0 : 1,
          'http-flv': 0,
          'ws-flv': 0,
          hls: 0,
        });
        assert.equal((byNode['origin-stats'] as { edgePulls?: number }).edgePulls, signedPulls ? 1 : 0);
        assert.deepEqual(byNode['edge-stats']!.viewers, { rtmp: 1, 'http-flv': 0, 'ws-flv': 0, hls: 0 });
        assert.deepEqual([byNode['origin-stats']!.upstream, byNode['edge-stats']!.upstream], [false, true]);
        assert.deepEqual(s.media!.viewers, { rtmp: 1, 'http-flv': 0, 'ws-flv': 0, hls: 0 });
        assert.ok(byNode['origin-stats']!.egressBytesPerSecond.last1s > 0, 'the origin sends to the edge');
        assert.equal(
          s.media!.egressBytesPerSecond.last10s,
          byNode['origin-stats']!.egressBytesPerSecond.last10s + byNode['edge-stats']!.egressBytesPerSecond.last10s,
        );
        assert.equal(s.media!.droppedFrames, 0);
      } finally {
        viewer.close();
        await edge.stop();
        await origin.stop();
        await stopAll();
        await stopAllServices();
      }
    });
});
