/**
 * The slow-viewer policy under the default configuration (adaptive batching, shared join burst): a few viewers that
 * stop reading are dropped by the policy while everyone else keeps full delivery and low latency. Our standalone node
 * in this process, the load generator against it, three stalled RtmpClients among the viewers. Needs ffmpeg.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RtmpClient } from '@rtmp-relay/rtmp';
import { loadConfig } from '../../services/server/src/config.js';
import { startNode, type RunningNode } from '../../services/server/src/node.js';
import { formatReport, runLoad } from '../src/loadgen.js';
import { generateFlv } from '../src/source.js';

/** ~8 Mbit/s so a stalled viewer's kernel buffers fill, and its backlog grows, within seconds. */
const FAT_STREAM = { width: 640, height: 360, fps: 30, seconds: 4, videoKbps: 8000, audioKbps: 64, gopSeconds: 1 };
const STALLED = 3;
const VIEWERS = 30;
/** Generous for a shared CI machine; a viewer held up by the stalled ones would be seconds behind. */
const LATENCY_P99_BOUND_MS = 300;
/** After reading again, a disconnected viewer sees its close this quickly (what was queued is a few MB). */
const CLOSE_BOUND_MS = 10_000;

describe('slow-viewer policy with the default configuration', { timeout: 90_000 }, () => {
  let node: RunningNode;
  let input: string;
  const stalled: RtmpClient[] = [];

  before(async () => {
    input = await generateFlv(FAT_STREAM);
    const config = loadConfig({
      env: {
        RTMP_HOST: '127.0.0.1',
        RTMP_PORT: '0',
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        SHUTDOWN_TIMEOUT_MS: '500',
        MAX_CONNECTIONS_PER_IP: '0',
        // Small bounds so a stalled viewer is dropped within seconds (loopback kernel buffers absorb the first MBs).
        VIEWER_SOFT_BACKLOG_BYTES: String(512 * 1024),
        VIEWER_SOFT_BACKLOG_MS: '400',
        VIEWER_HARD_BACKLOG_BYTES: String(2 * 1024 * 1024),
        VIEWER_HARD_BACKLOG_MS: '2000',
      },
    });
    node = await startNode(config, { role: 'standalone' });
  });

  after(async () => {
    for (const c of stalled) c.close();
    await node?.shutdown('test done');
  });

  it(`${STALLED} stalled viewers are dropped; the other ${VIEWERS} keep full delivery and low latency`, async () => {
    const url = `rtmp://127.0.0.1:${node.rtmpPort}/live/slow`;
    const closed: Array<string | undefined> = [];
    const load = runLoad({
      url,
      viewers: VIEWERS,
      rampPerSecond: 200,
      durationSeconds: 14,
      settleSeconds: 1,
      warmupSeconds: 2,
      input,
      hardStopSeconds: 60,
    });
    // They play while the publisher warms up (a play waits for the stream), then stop reading.
    await Promise.all(
      Array.from({ length: STALLED }, async (_, i) => {
        const c = await RtmpClient.connect(url, { readTimeoutMs: 0 });
        stalled.push(c);
        c.on('close', (reason) => (closed[i] = String(reason)));
        await c.play();
        c.connection.socket.pause();
      }),
    );
    const report = await load;
    const summary = formatReport(report);
    assert.equal(report.viewers.failuresTotal, 0, summary);
    assert.equal(report.viewers.upAtWindowStart, VIEWERS, summary);
    assert.ok(report.delivery.ratio >= 0.99, summary);
    assert.equal(report.delivery.viewersUnder90, 0, summary);
    assert.equal(report.stalls.inWindow, 0, summary);
    assert.ok(report.latencyMs.p99 < LATENCY_P99_BOUND_MS, summary);
    // A paused socket never sees the server's close: read again, and the connection must end (drained data, then EOF
    // or reset); a viewer the server had kept would just go on receiving.
    for (const c of stalled) c.connection.socket.resume();
    const deadline = performance.now() + CLOSE_BOUND_MS;
    while (closed.filter((r) => r !== undefined).length < STALLED && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(
      closed.filter((r) => r !== undefined).length,
      STALLED,
      `every stalled viewer was disconnected by the server (${JSON.stringify(closed)}); ${summary}`,
    );
  });
});
