/**
 * End to end: our standalone node in this process, the load generator against it with a short generated stream.
 * Needs ffmpeg (the stream is generated once and cached in os.tmpdir()).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../services/server/src/config.js';
import { startNode, type RunningNode } from '../../services/server/src/node.js';
import { checkTarget, formatReport, runLoad } from '../src/loadgen.js';
import { generateFlv, loadFlv } from '../src/source.js';

const SHORT_STREAM = { width: 640, height: 360, fps: 30, seconds: 4, videoKbps: 800, audioKbps: 64, gopSeconds: 1 };

describe('checkTarget', () => {
  it('accepts loopback only, unless remote is allowed', () => {
    assert.equal(checkTarget('rtmp://127.0.0.1:1935/live/x').host, '127.0.0.1');
    assert.equal(checkTarget('rtmp://[::1]:1935/live/x').host, '::1');
    assert.equal(checkTarget('rtmp://localhost/live/x').host, '127.0.0.1');
    assert.throws(() => checkTarget('rtmp://example.com/live/x'), /only 127\.0\.0\.1 and ::1/);
    assert.throws(() => checkTarget('rtmp://10.0.0.1/live/x'), /--allow-remote/);
    assert.equal(checkTarget('rtmp://10.0.0.1/live/x', true).host, '10.0.0.1');
    assert.throws(() => checkTarget('rtmp://127.0.0.1/live'), /no stream name/);
  });
});

describe('load generator against our standalone server', { timeout: 60_000 }, () => {
  let node: RunningNode;
  let input: string;

  before(async () => {
    input = await generateFlv(SHORT_STREAM);
    const config = loadConfig({
      env: {
        RTMP_HOST: '127.0.0.1',
        RTMP_PORT: '0',
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        SHUTDOWN_TIMEOUT_MS: '500',
      },
    });
    node = await startNode(config, { role: 'standalone' });
  });

  after(async () => {
    await node?.shutdown('test done');
  });

  it('reads the generated stream as a loopable source', () => {
    const src = loadFlv(input);
    assert.ok(src.metadata, 'onMetaData');
    assert.deepEqual(src.headers.map((h) => h.type).sort(), [8, 9], 'AAC and AVC sequence headers');
    assert.equal(src.tags[0]!.type, 9);
    assert.ok(src.tags[0]!.keyframe, 'loops start at a keyframe');
    assert.ok(Math.abs(src.loopMs - 4000) < 100, `loop ${src.loopMs} ms`);
    assert.ok(src.bytesPerSecond > 50_000, `${src.bytesPerSecond} B/s`);
  });

  it('20 light viewers for 5 s: all up, no failures, full delivery, fast first frame, latency measured', async () => {
    const lines: string[] = [];
    const report = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/loadtest`,
      viewers: 20,
      rampPerSecond: 200,
      durationSeconds: 5,
      settleSeconds: 1,
      warmupSeconds: 1.5,
      input,
      serverPid: process.pid,
      progress: (l) => lines.push(l),
      hardStopSeconds: 45,
    });
    const summary = formatReport(report);
    assert.equal(report.aborted, undefined, summary);
    assert.equal(report.viewers.upAtWindowStart, 20, summary);
    assert.equal(report.viewers.upAtEnd, 20, summary);
    assert.equal(report.viewers.failuresTotal, 0, summary);
    assert.ok(report.delivery.ratio >= 0.9, summary);
    assert.equal(report.delivery.method, 'timestamp', 'the server passes the publisher timestamps through');
    assert.equal(report.delivery.viewersUnder90, 0, summary);
    assert.ok(report.ttffMs.count === 20 && report.ttffMs.p50 < 1000, summary);
    assert.ok(
      report.latencyMs.count > 0 && Number.isFinite(report.latencyMs.p50) && Number.isFinite(report.latencyMs.p99),
      summary,
    );
    assert.equal(report.latencyUnmatched, 0);
    // Keyframes (GOP 1 s at 30 fps) are split out: at least 3 per viewer in the window, about 1 in 30 of the samples.
    const key = report.latencyKeyframeMs;
    assert.ok(key.count >= 20 * 3 && key.count <= report.latencyMs.count / 25, summary);
    assert.ok(key.min >= 0 && key.p50 < 1000, summary);
    assert.match(summary, /keyframes p50\/p99 [\d.]+\/[\d.]+ ms/);
    assert.equal(report.stalls.inWindow, 0, summary);
    assert.ok(report.window.seconds >= 3.5, `window ${report.window.seconds} s`);
    assert.ok(Number.isFinite(report.loadgen.cpuPercent));
    assert.ok(report.server && report.server.cpuMs >= 0 && report.server.baselineRssKiB > 0);
    assert.ok(
      lines.some((l) => /up 20\/20/.test(l)),
      'progress lines',
    );
    assert.ok(JSON.parse(JSON.stringify(report)), 'the report is JSON');
  });

  it('--workers 2: viewers spread over worker threads, measured the same (latency on the publisher clock)', async () => {
    const report = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/loadtest-workers`,
      viewers: 10,
      rampPerSecond: 200,
      durationSeconds: 3,
      settleSeconds: 1,
      warmupSeconds: 1.5,
      input,
      workers: 2,
      hardStopSeconds: 40,
    });
    const summary = formatReport(report);
    assert.equal(report.loadgen.workers, 2);
    assert.equal(report.viewers.upAtWindowStart, 10, summary);
    assert.equal(report.viewers.failuresTotal, 0, summary);
    assert.equal(report.delivery.method, 'timestamp', summary);
    assert.ok(report.delivery.ratio >= 0.9, summary);
    assert.equal(report.ttffMs.count, 10, summary);
    assert.equal(report.latencyUnmatched, 0, summary);
    // Latency across threads: positive and small on loopback (a wrong clock shift would show seconds or negatives).
    assert.ok(report.latencyMs.count > 0 && report.latencyMs.min >= 0 && report.latencyMs.p50 < 500, summary);
    assert.equal(typeof report.loadgen.saturated, 'boolean');
  });

  it('FFmpeg cross-check players, demuxing packets and decoding, count the window frames and measure latency', async () => {
    const report = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/loadtest-ffmpeg`,
      viewers: 4,
      rampPerSecond: 200,
      durationSeconds: 5,
      settleSeconds: 3, // FFmpeg probes the stream for ~1 s after it connects: let it reach steady output first
      warmupSeconds: 1.5,
      input,
      workers: 1,
      ffmpegPlayers: 1,
      ffmpegMode: 'packets',
      hardStopSeconds: 40,
    });
    const summary = formatReport(report);
    const cc = report.crossCheck;
    assert.ok(cc, summary);
    assert.match(summary, /ffmpeg players demuxed/);
    assert.equal(cc.results[0]!.mode, 'packets');
    assert.equal(cc.results[0]!.error, undefined, summary);
    // 30 fps for a 2 s window: FFmpeg's demuxer saw (almost) every video frame the publisher sent in the window.
    assert.ok(cc.videoFramesSent >= 45, summary);
    assert.ok(cc.results[0]!.ratio >= 0.9 && cc.results[0]!.ratio <= 1.1, summary);
    assert.ok(cc.results[0]!.latencyMs.count > 0 && cc.results[0]!.latencyMs.p50 < 1000, summary);
    // Kernel socket queues were sampled in the window: 4 viewers + 1 FFmpeg player + the publisher on the port.
    const q = report.socketQueues;
    assert.ok(q && q.samples >= 2, summary);
    assert.ok(Number.isFinite(q.generatorLagMs.p50) && q.generatorLagMs.p50 >= 0, summary);
    // The worker's loop utilization is measured in the window (a fraction, not NaN).
    assert.ok(report.loadgen.workerEventLoopUtilization > 0 && report.loadgen.workerEventLoopUtilization <= 1, summary);

    const decoded = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/loadtest-ffmpeg-decode`,
      viewers: 2,
      rampPerSecond: 200,
      durationSeconds: 5,
      settleSeconds: 3, // FFmpeg probes the stream for ~1 s after it connects: let it reach steady output first
      warmupSeconds: 1.5,
      input,
      ffmpegPlayers: 1,
      ffmpegMode: 'decode',
      hardStopSeconds: 40,
    });
    const dc = decoded.crossCheck;
    assert.ok(dc, formatReport(decoded));
    assert.equal(dc.results[0]!.mode, 'decode');
    assert.ok(dc.results[0]!.ratio >= 0.9 && dc.results[0]!.ratio <= 1.1, formatReport(decoded));
  });

  it('RtmpClient viewers see the same delivery as light viewers', async () => {
    const report = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/loadtest-client`,
      viewers: 5,
      rampPerSecond: 100,
      durationSeconds: 3,
      settleSeconds: 1,
      warmupSeconds: 1.2,
      input,
      viewerImpl: 'client',
      hardStopSeconds: 30,
    });
    const summary = formatReport(report);
    assert.equal(report.viewers.upAtWindowStart, 5, summary);
    assert.equal(report.viewers.failuresTotal, 0, summary);
    assert.ok(report.delivery.ratio >= 0.9, summary);
    assert.ok(report.latencyMs.count > 0, summary);
  });

  it('reports play failures by reason (nothing published under that name)', async () => {
    const report = await runLoad({
      url: `rtmp://127.0.0.1:${node.rtmpPort}/live/nobody-here`,
      viewers: 3,
      rampPerSecond: 100,
      durationSeconds: 1,
      warmupSeconds: 0,
      publish: false,
      connectTimeoutMs: 8000,
      hardStopSeconds: 30,
    });
    assert.equal(report.viewers.everUp, 0);
    assert.equal(report.viewers.failuresTotal, 3);
    assert.ok(
      Object.keys(report.viewers.failures).every((r) => r.startsWith('play:')),
      JSON.stringify(report.viewers.failures),
    );
  });
});
