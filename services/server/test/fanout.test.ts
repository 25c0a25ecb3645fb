import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, MessageType, RtmpClient, parseVideoTag, type RtmpMessage } from '@rtmp-relay/rtmp';
import { ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll, waitFor, type Running } from './support/processes.js';

/**
 * Fan-out on a real node: FFmpeg publishes one stream, 50 RtmpClient viewers play it and must receive the same
 * frames (same timestamps, identical payload bytes) in time, while one viewer that stopped reading its socket is
 * dropped by the slow-viewer policy (non-key video first, then a disconnect) without slowing anyone else down.
 */

const KEY = 'live/fanout';
const VIEWERS = 50;
const verbose = !!process.env.FANOUT_VERBOSE;
const log = (...args: unknown[]): void => {
  if (verbose) console.log('[fanout]', ...args);
};

/** What one viewer saw: coded video frames (sequence headers excluded), in arrival order. */
interface ViewerRecord {
  index: number;
  client: RtmpClient;
  ts: number[];
  digest: string[];
  arrivedAt: number[];
  closeReason: string | undefined;
}

function record(client: RtmpClient, index: number): ViewerRecord {
  const r: ViewerRecord = { index, client, ts: [], digest: [], arrivedAt: [], closeReason: undefined };
  client.on('media', (m: RtmpMessage) => {
    if (m.type !== MessageType.Video || m.payload.length === 0) return;
    const now = performance.now();
    if (parseVideoTag(m.payload).isSequenceHeader) return;
    r.ts.push(m.timestamp);
    r.digest.push(createHash('sha1').update(m.payload).digest('base64'));
    r.arrivedAt.push(now);
  });
  client.on('close', (reason) => {
    r.closeReason ??= reason;
  });
  return r;
}

async function gopCacheBytes(n: NodeUnderTest): Promise<number> {
  return (await n.json<{ gopCache?: { bytes: number } }>(`/api/streams/${KEY}`)).gopCache?.bytes ?? 0;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('fan-out: FFmpeg publishes, 50 viewers + 1 stalled viewer', () => {
  let node: NodeUnderTest | undefined;
  let publisher: Running | undefined;
  const clients: RtmpClient[] = [];

  before(async () => {
    node = await startTestNode({
      // Small bounds so a stalled viewer is dropped within seconds (loopback kernel buffers absorb the first MBs).
      VIEWER_SOFT_BACKLOG_BYTES: String(512 * 1024),
      VIEWER_SOFT_BACKLOG_MS: '400',
      VIEWER_HARD_BACKLOG_BYTES: String(2 * 1024 * 1024),
      VIEWER_HARD_BACKLOG_MS: '2000',
    });
    // ~8 Mbit/s constant bitrate (x264 filler), 1 s GOP, so the stalled viewer's backlog grows fast.
    publisher = ffmpegPublish(node.rtmpUrl(KEY), {
      seconds: 50,
      size: '640x360',
      rate: 30,
      gop: 30,
      extra: ['-b:v', '8M', '-minrate', '8M', '-maxrate', '8M', '-bufsize', '2M', '-x264-params', 'nal-hrd=cbr'],
    });
    await waitLive(node, KEY, 15_000);
  });

  after(async () => {
    for (const c of clients) c.close();
    await publisher?.stop();
    await stopAll();
    await node?.shutdown('test');
  });

  it('every viewer gets the same frames in time; the stalled one is dropped by the policy, nobody else', async () => {
    const n = node!;
    const url = n.rtmpUrl(KEY);
    const slowBefore = await n.metric('rtmp_slow_viewers_disconnected_total');
    const droppedBefore = await n.metric('rtmp_messages_dropped_total', { reason: 'slow_viewer' });

    // The stalled viewer: completes connect + play, then stops reading its socket.
    const stalled = await RtmpClient.connect(url, { readTimeoutMs: 0 });
    clients.push(stalled);
    let stalledClosed: string | undefined;
    stalled.on('close', (reason) => (stalledClosed = reason));
    await stalled.play();
    stalled.connection.socket.pause();
    const stalledAt = performance.now();

    // 50 healthy viewers, connecting at once, early in a GOP: the join burst stays far below the soft bound (see the
    // late-joiner test below for what happens otherwise).
    await waitFor('the start of a GOP', async () => (await gopCacheBytes(n)) < 200 * 1024, 5_000, 10);
    const records = await Promise.all(
      Array.from({ length: VIEWERS }, async (_, i) => {
        const c = await RtmpClient.connect(url, { readTimeoutMs: 10_000 });
        clients.push(c);
        const r = record(c, i);
        await c.play();
        return r;
      }),
    );
    const allJoinedAt = performance.now();
    log(`viewers joined in ${(allJoinedAt - stalledAt).toFixed(0)} ms`);
    await waitFor('every viewer to receive video', () => records.every((r) => r.ts.length >= 5), 10_000);

    // The stalled viewer is dropped: first its non-key video, then the connection.
    await waitFor(
      'the stalled viewer to be disconnected by the slow-viewer policy',
      async () => (await n.metric('rtmp_slow_viewers_disconnected_total')) > slowBefore,
      25_000,
      200,
    );
    const droppedAfterMs = performance.now() - stalledAt;
    log(`stalled viewer disconnected ${droppedAfterMs.toFixed(0)} ms after it stopped reading`);
    // Keep watching the healthy viewers for a while after the disconnect.
    await sleep(2000);
    const measuredUntil = performance.now();

    const slowAfter = await n.metric('rtmp_slow_viewers_disconnected_total');
    const droppedAfter = await n.metric('rtmp_messages_dropped_total', { reason: 'slow_viewer' });
    log(
      'by reason',
      await n.metric('rtmp_slow_viewers_disconnected_total', { reason: 'backlog_age' }),
      await n.metric('rtmp_slow_viewers_disconnected_total', { reason: 'backlog_bytes' }),
      'bytes out',
      await n.metric('rtmp_bytes_out_total'),
    );
    log(`slow disconnects +${slowAfter - slowBefore}, slow_viewer drops +${droppedAfter - droppedBefore}`, {
      stalledClosed,
    });
    assert.equal(slowAfter - slowBefore, 1, 'exactly one viewer (the stalled one) was disconnected as slow');
    assert.ok(
      droppedAfter > droppedBefore,
      'the stalled viewer lost non-key video (soft bound) before it was disconnected',
    );
    assert.equal(
      await n.metric('rtmp_viewers', { protocol: 'rtmp' }),
      VIEWERS,
      'the healthy viewers are all still playing',
    );
    assert.equal(
      await n.metric('rtmp_connections'),
      VIEWERS + 1,
      "the stalled viewer's connection was closed (50 viewers + FFmpeg remain)",
    );

    // No healthy viewer was disconnected.
    const closed = records.filter((r) => r.closeReason !== undefined || r.client.closed);
    assert.deepEqual(
      closed.map((r) => `${r.index}: ${r.closeReason}`),
      [],
      'healthy viewers stay connected',
    );

    // Same frames from a common point on: identical timestamps and payload bytes.
    const commonStart = Math.max(...records.map((r) => r.ts[0]!));
    const commonEnd = Math.min(...records.map((r) => r.ts.at(-1)!));
    assert.ok(commonEnd - commonStart > 3000, `common window ${commonStart}..${commonEnd} ms of stream time`);
    const ref = records[0]!;
    const refFrom = ref.ts.indexOf(commonStart);
    const refTo = ref.ts.lastIndexOf(commonEnd);
    assert.ok(refFrom >= 0 && refTo > refFrom);
    const refTs = ref.ts.slice(refFrom, refTo + 1);
    const refDigest = ref.digest.slice(refFrom, refTo + 1);
    for (const r of records) {
      const from = r.ts.indexOf(commonStart);
      assert.ok(from >= 0, `viewer ${r.index} has the frame at ${commonStart}`);
      assert.deepEqual(r.ts.slice(from, from + refTs.length), refTs, `viewer ${r.index}: same video timestamps`);
      assert.deepEqual(
        r.digest.slice(from, from + refTs.length),
        refDigest,
        `viewer ${r.index}: identical payload bytes`,
      );
    }
    log(`${refTs.length} frames compared across ${records.length} viewers (${commonStart}..${commonEnd} ms)`);

    // Timeliness: for each frame sent live after everyone joined, each viewer's arrival relative to the earliest.
    const settleFrom = allJoinedAt + 500;
    const arrivals = new Map<number, number[]>();
    for (const r of records) {
      r.ts.forEach((ts, i) => {
        const t = r.arrivedAt[i]!;
        let list = arrivals.get(ts);
        if (!list) arrivals.set(ts, (list = []));
        list.push(t);
      });
    }
    const delays: number[] = [];
    let frames = 0;
    for (const list of arrivals.values()) {
      if (list.length !== records.length) continue;
      const first = Math.min(...list);
      if (first < settleFrom || first > measuredUntil) continue;
      frames++;
      for (const t of list) delays.push(t - first);
    }
    delays.sort((a, b) => a - b);
    const p50 = percentile(delays, 50);
    const p99 = percentile(delays, 99);
    log(
      `arrival spread over ${frames} frames: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${delays.at(-1)?.toFixed(1)} ms`,
    );
    assert.ok(frames >= 60, `${frames} frames measured`);
    assert.ok(
      p99 < 100,
      `p99 arrival delay relative to the earliest viewer: ${p99.toFixed(1)} ms (p50 ${p50.toFixed(1)})`,
    );
  });

  it('a late joiner on a healthy connection gets the whole cached GOP (its own join burst is not held against it)', async () => {
    const n = node!;
    // The GOP (1 s at ~8 Mbit/s, ~1 MB) is larger than VIEWER_SOFT_BACKLOG_BYTES (512 KiB): the join sequence alone
    // puts that much into the new viewer's socket buffer in one go.
    const droppedBefore = await n.metric('rtmp_messages_dropped_total', { reason: 'slow_viewer' });
    const c = await RtmpClient.connect(n.rtmpUrl(KEY), { readTimeoutMs: 10_000 });
    clients.push(c);
    const r = record(c, -1);
    // Play late in a GOP, when the cache holds well over the soft bound.
    let gopBytes = 0;
    await waitFor('a GOP cache over 800 KiB', async () => (gopBytes = await gopCacheBytes(n)) > 800 * 1024, 5_000, 5);
    await c.play();
    await waitFor('90 frames at the late joiner', () => r.ts.length >= 90, 10_000);
    const droppedAfter = await n.metric('rtmp_messages_dropped_total', { reason: 'slow_viewer' });
    const gaps = r.ts.slice(1, 90).map((t, i) => t - r.ts[i]!);
    const maxGap = Math.max(...gaps);
    log(
      `late joiner: GOP ${gopBytes} bytes, max frame gap ${maxGap} ms, slow_viewer drops +${droppedAfter - droppedBefore}`,
    );
    assert.equal(r.closeReason, undefined, 'the late joiner is still connected');
    assert.ok(
      maxGap <= 40,
      `the late joiner's first 90 frames have a ${maxGap} ms hole (frames dropped as 'slow_viewer': +${droppedAfter - droppedBefore}); GOP cache ${gopBytes} bytes`,
    );
    assert.equal(droppedAfter - droppedBefore, 0, 'no frames dropped for a viewer that reads as fast as it can');
  });
});

describe('fan-out with write batching (WRITE_BATCH_MS)', () => {
  let node: NodeUnderTest | undefined;
  const clients: RtmpClient[] = [];
  let pump: NodeJS.Timeout | undefined;

  const avcHeader = Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1]);
  const aacHeader = Buffer.from([0xaf, 0x00, 0x12, 0x10]);
  const frame = (key: boolean, n: number): Buffer =>
    Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 0x01, 0, 0, 0]), Buffer.alloc(2000, n & 0xff)]);
  const aac = (n: number): Buffer => Buffer.concat([Buffer.from([0xaf, 0x01]), Buffer.alloc(100, n & 0xff)]);

  /** A synthetic publisher: AVC + AAC at 100 messages/s, so batch windows follow one another back to back. */
  async function publish(n: NodeUnderTest, key: string): Promise<RtmpClient> {
    const pub = await RtmpClient.connect(n.rtmpUrl(key), { chunkSize: 4096, readTimeoutMs: 0 });
    clients.push(pub);
    await pub.publish();
    pub.sendMedia(MessageType.Video, 0, avcHeader);
    pub.sendMedia(MessageType.Audio, 0, aacHeader);
    return pub;
  }

  before(async () => {
    node = await startTestNode({ WRITE_BATCH_MS: '1000' });
    const pubs = [await publish(node, 'live/batch-a'), await publish(node, 'live/batch-b')];
    const t0 = performance.now();
    let i = 0;
    pump = setInterval(() => {
      const ts = Math.round(performance.now() - t0);
      for (const p of pubs) {
        if (i % 3 === 0) p.sendMedia(MessageType.Video, ts, frame(i % 90 === 0, i));
        p.sendMedia(MessageType.Audio, ts, aac(i));
      }
      i++;
    }, 10);
    await waitLive(node, 'live/batch-a');
    await waitLive(node, 'live/batch-b');
  });

  after(async () => {
    clearInterval(pump);
    for (const c of clients) c.close();
    await stopAll();
    await node?.shutdown('test');
  });

  it('viewers receive batched media', async () => {
    const n = node!;
    const viewers = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const c = await RtmpClient.connect(n.rtmpUrl('live/batch-a'), { readTimeoutMs: 10_000 });
        clients.push(c);
        const got: number[] = [];
        c.on('media', (m) => {
          if (m.type === MessageType.Audio) got.push(m.timestamp);
        });
        await c.play();
        return got;
      }),
    );
    await waitFor('audio at every viewer', () => viewers.every((g) => g.length >= 50), 10_000);
  });

  it('a viewer that closes its stream inside a batch window and plays another on the same connection keeps receiving', async () => {
    const n = node!;
    const c = await RtmpClient.connect(n.rtmpUrl('live/batch-a'), { readTimeoutMs: 0 });
    clients.push(c);
    let media = 0;
    c.on('media', () => media++);
    await c.play();
    await waitFor('media from batch-a', () => media > 10, 5_000);
    // The join sequence arrives at once; after 1.5 s we are inside a window that opened after the join (windows
    // follow one another back to back: the next opens with the next message, <= 10 ms after one ends).
    await sleep(1500);
    // closeStream/deleteStream while the hub has this connection corked for its current window.
    c.connection.sendCommand(0, Command.DeleteStream, 0, null, c.streamId);
    await sleep(100);
    const before = media;
    const replayed = await Promise.race([
      c.play('batch-b').then(
        () => 'started',
        (err: Error) => `failed: ${err.message}`,
      ),
      sleep(4000).then(() => 'no reply within 4 s (the connection is still corked: every write to it is held back)'),
    ]);
    assert.equal(replayed, 'started');
    await waitFor('media from batch-b on the same connection', () => media > before + 10, 5_000);
  });
});
