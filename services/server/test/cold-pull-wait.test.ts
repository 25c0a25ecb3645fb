/**
 * A cold-start storm on an edge: when hundreds of first pulls start at once, connecting to the origin can take longer
 * than PLAY_WAIT_MS. A stream that Redis says is live must then not be answered StreamNotFound while the edge is still
 * connecting to its owner (issue 9's join storm); a stream with no owner still is, after PLAY_WAIT_MS.
 *
 * The slow origin is a real standalone node behind a TCP relay that holds each new connection before forwarding it;
 * the stream's ownership lease in (real) Redis names the relay's address.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RtmpClientError } from '@rtmp-relay/rtmp';
import { StreamOwnership, createRedis, waitForRedis } from '../src/cluster/redis-registry.js';
import { clusterEnv, RecordingViewer, startInProcessNode, type ClusterNode } from './support/cluster-harness.js';
import { ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { Relay } from './support/tcp-relay.js';

const KEY = 'live/slow';
const PLAY_WAIT_MS = 300;
/** How long the relay holds a new connection: several play waits. */
const CONNECT_DELAY_MS = 1500;

describe('edge: a play waits out a slow first pull to a known owner', { timeout: 60_000 }, () => {
  let redis: ServiceHandle;
  let origin: NodeUnderTest;
  let edge: ClusterNode;
  let relay: Relay;
  const procs: Running[] = [];
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    redis = await startRedis();
    origin = await startTestNode();
    cleanups.push(() => origin.shutdown('test'));
    procs.push(ffmpegPublish(origin.rtmpUrl(KEY), { seconds: 40 }));
    await waitLive(origin, KEY);
    relay = await Relay.open('127.0.0.1', origin.rtmpPort, { acceptDelayMs: CONNECT_DELAY_MS });
    cleanups.push(() => relay.close());
    const client = createRedis(redis.url);
    cleanups.push(() => client.disconnect());
    await waitForRedis(client);
    const claim = await new StreamOwnership(client, { prefix: 'rtmp:', leaseMs: 60_000 }).claim(KEY, {
      nodeId: 'slow-origin',
      addr: `127.0.0.1:${relay.port}`,
    });
    assert.equal(claim.ok, true);
    edge = await startInProcessNode(
      'edge',
      'cold-edge',
      clusterEnv(redis.url, '', { PLAY_WAIT_MS: String(PLAY_WAIT_MS) }),
    );
    cleanups.push(() => edge.stop());
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await stopAll(procs);
    await stopAllServices();
  });

  it('plays a live stream whose pull takes longer than PLAY_WAIT_MS, and receives frames', async () => {
    const started = performance.now();
    const viewer = await RecordingViewer.open('cold', edge.rtmpUrl(KEY), { playTimeoutMs: 15_000 });
    try {
      const waited = performance.now() - started;
      assert.ok(waited >= CONNECT_DELAY_MS, `the play started after ${waited} ms, before the relay let the pull in`);
      await waitFor('coded frames through the slow pull', () => viewer.framesSince().length >= 10, 15_000, 25);
      assert.equal(viewer.closed, false);
    } finally {
      viewer.close();
    }
  });

  it('still answers StreamNotFound after PLAY_WAIT_MS for a stream with no owner', async () => {
    const started = performance.now();
    await assert.rejects(
      RecordingViewer.open('unknown', edge.rtmpUrl('live/nobody'), { playTimeoutMs: 10_000 }),
      (err: unknown) => err instanceof RtmpClientError && err.code === 'not_found',
    );
    const waited = performance.now() - started;
    assert.ok(waited >= PLAY_WAIT_MS && waited < PLAY_WAIT_MS + 2000, `answered after ${waited} ms`);
  });
});
