import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HubRegistry } from '@rtmp-relay/hub';
import { pino } from 'pino';
import {
  controlEvent,
  type AdminEvent,
  type ControlEvent,
  type EventBus,
  type StreamStandby,
} from '../src/cluster/events.js';
import { OriginPolicy } from '../src/cluster/origin-policy.js';
import type { StreamOwnership } from '../src/cluster/redis-registry.js';
import type { StreamRequest } from '../src/streams/types.js';

/**
 * OriginPolicy.drain's pacing, in process with fake Redis, bus and hubs (the end-to-end drain with real processes is
 * drain.test.ts): ReconnectRequests go in waves of `reconnectBatch`, `reconnectIntervalMs` apart unless the last
 * wave's streams all moved; pacing lasts at most `reconnectWaitMs` (the rest then go in one last wave); the wait for
 * moves counts from the last wave; publishers that cannot take a request cost no wait and are handed off, in waves of
 * the same size and interval while the drain is within its bound (2 x `reconnectWaitMs`), all at once without a peer.
 */

type Behavior = 'move' | 'ignore' | 'legacy';

interface FakeStream {
  key: string;
  behavior: Behavior;
  requestedAt?: number;
  movedAt?: number;
  kickedAt?: number;
  kickReason?: string;
}

/**
 * `answerAfterMs`: for each stream key, when (ms after its `stream.moving`) each of its edges answers `stream.standby`
 * (what the edges do over NATS in drain-lead.test.ts).
 */
function harness(moveAfterMs = 0, answerAfterMs: Record<string, number[]> = {}) {
  let admin: ((e: AdminEvent) => void) | undefined;
  let onStandby: ((e: StreamStandby) => void) | undefined;
  const announcedAt = new Map<string, number>();
  const streams = new Map<string, FakeStream>();
  const released: string[] = [];
  const ownership = {
    claim: async () => ({ ok: true, epoch: 1, previous: undefined }),
    refresh: async () => 'ok',
    release: async (key: string) => {
      released.push(key);
      return true;
    },
  } as unknown as StreamOwnership;
  const bus = {
    connected: true,
    publish: (e: ControlEvent) => {
      if (e.type !== 'stream.moving') return true;
      announcedAt.set(e.key, performance.now());
      for (const [i, ms] of (answerAfterMs[e.key] ?? []).entries()) {
        const answer = { key: e.key, fromNodeId: e.fromNodeId, nodeId: `edge-${i}`, epoch: e.epoch, ready: true };
        setTimeout(() => onStandby?.(controlEvent('stream.standby', answer)), ms);
      }
      return true;
    },
    on: (type: string, handler: (e: StreamStandby) => void) => {
      if (type === 'stream.standby') onStandby = handler;
      return () => undefined;
    },
    onAdmin: (_node: string, handler: (e: AdminEvent) => void) => {
      admin = handler;
      return () => undefined;
    },
  } as unknown as EventBus;
  // What the other origin does when a mover publishes there: a takeover, our copy is released.
  const moveAway = (s: FakeStream): void => {
    s.movedAt = performance.now();
    admin!({ type: 'admin.release_stream', key: s.key, target: 'a', reason: 'taken_over', from: 'b' } as AdminEvent);
  };
  const registry = {
    get: (key: string) => {
      const s = streams.get(key);
      if (!s) return undefined;
      return {
        currentPublisher: {
          id: key,
          canReconnect: () => s.behavior !== 'legacy' && s.kickedAt === undefined,
          requestReconnect: () => {
            if (s.behavior === 'legacy' || s.kickedAt !== undefined) return false;
            assert.equal(s.requestedAt, undefined, `${key} asked twice`);
            s.requestedAt = performance.now();
            if (s.behavior === 'move') setTimeout(() => moveAway(s), moveAfterMs);
            return true;
          },
          kick: (reason: string) => {
            s.kickedAt = performance.now();
            s.kickReason = reason;
          },
        },
        disconnectViewers: () => undefined,
        close: () => undefined,
      };
    },
  } as unknown as HubRegistry;
  const policy = new OriginPolicy(
    ownership,
    bus,
    registry,
    async () => true,
    {
      nodeId: 'a',
      advertiseAddr: '127.0.0.1:1',
      allowTakeover: true,
      leaseMs: 60_000,
      playWaitMs: 0,
      publishWhileRedisDown: 'reject',
    },
    pino({ level: 'silent' }),
    undefined,
  );
  const publish = async (name: string, behavior: Behavior): Promise<FakeStream> => {
    const req: StreamRequest = {
      app: 'live',
      name,
      key: `live/${name}`,
      query: new URLSearchParams(),
      clientIp: '127.0.0.1',
      sessionId: name,
    };
    const s: FakeStream = { key: req.key, behavior };
    streams.set(req.key, s);
    assert.deepEqual(await policy.beforePublish(req), { allow: true });
    policy.published(req);
    return s;
  };
  const peerCalls: string[] = [];
  const peerTcUrl = (app: string, key: string): string => {
    peerCalls.push(key);
    return `rtmp://127.0.0.1:2/${app}`;
  };
  return { policy, publish, peerTcUrl, peerCalls, released, announcedAt, close: () => policy.releaseAll() };
}

describe('origin drain pacing (OriginPolicy.drain)', () => {
  it('asks in waves of the batch size, an interval apart while a wave stays; pacing stops at the wait, then waits from the last wave', async () => {
    const h = harness();
    const INTERVAL = 200;
    const WAIT = 500;
    // 9 publishers that never move: waves at 0, 200, 400, then 500 (the pacing bound: the rest together).
    const ss: FakeStream[] = [];
    for (let i = 0; i < 9; i++) ss.push(await h.publish(`s${i}`, 'ignore'));
    const t0 = performance.now();
    const result = await h.policy.drain({
      peerTcUrl: h.peerTcUrl,
      reconnectWaitMs: WAIT,
      reconnectBatch: 2,
      reconnectIntervalMs: INTERVAL,
      peersUp: true,
    });
    const took = performance.now() - t0;
    await h.close();
    const at = ss.map((s) => s.requestedAt! - t0);
    const waves = [at.slice(0, 2), at.slice(2, 4), at.slice(4, 6), at.slice(6)];
    assert.ok(
      ss.every((s) => s.requestedAt !== undefined),
      'every stream asked',
    );
    // The hand-off starts at the drain's bound (2 x WAIT): no time is left to pace it, so it is one wave.
    assert.deepEqual(result, {
      reconnectRequested: 9,
      handedOff: 9,
      waves: 4,
      handOffWaves: 1,
      movesPrepared: 0,
      leadExpired: 0,
    });
    for (const w of waves) assert.ok(Math.max(...w) - Math.min(...w) < 50, `one wave spread over ${w.join(', ')} ms`);
    for (let k = 1; k < 3; k++) {
      const gap = Math.min(...waves[k]!) - Math.max(...waves[k - 1]!);
      assert.ok(gap >= INTERVAL - 1, `wave ${k + 1} came ${gap} ms after wave ${k}`);
    }
    // Wave 4 is cut short by the pacing bound and takes every stream left (3 > the batch).
    assert.ok(waves[3]![0]! >= WAIT - 1, `last wave at ${waves[3]![0]} ms, before the pacing bound`);
    assert.equal(waves[3]!.length, 3);
    // Hand-off: WAIT after the last wave, so the whole drain takes about 2 x WAIT.
    const lastWave = Math.max(...at);
    for (const s of ss) {
      assert.equal(s.kickReason, 'draining');
      assert.ok(
        s.kickedAt! - t0 >= lastWave + WAIT - 1,
        `${s.key} handed off ${s.kickedAt! - t0 - lastWave} ms after the last wave`,
      );
    }
    assert.ok(took < 2 * WAIT + 500, `drain took ${took} ms (bound 2 x ${WAIT} + a Redis round trip)`);
    assert.equal(h.released.length, 9);
  });

  it('sends the next wave as soon as the last one moved; legacy publishers get no request, cost no wait and are handed off', async () => {
    const h = harness(20);
    const LONG = 10_000; // neither the interval nor the wait may be what ends a step
    // Two legacy publishers: one hand-off wave of the batch size (the interval between two would be LONG).
    const order: Behavior[] = ['move', 'legacy', 'move', 'move', 'move', 'move', 'legacy'];
    const ss: FakeStream[] = [];
    for (const [i, b] of order.entries()) ss.push(await h.publish(`s${i}`, b));
    const t0 = performance.now();
    const result = await h.policy.drain({
      peerTcUrl: h.peerTcUrl,
      reconnectWaitMs: LONG,
      reconnectBatch: 2,
      reconnectIntervalMs: LONG,
      peersUp: true,
    });
    const took = performance.now() - t0;
    await h.close();
    const movers = ss.filter((s) => s.behavior === 'move');
    const legacy = ss.filter((s) => s.behavior === 'legacy');
    assert.deepEqual(result, {
      reconnectRequested: 5,
      handedOff: 2,
      waves: 3,
      handOffWaves: 1,
      movesPrepared: 0,
      leadExpired: 0,
    });
    assert.deepEqual(
      h.peerCalls,
      movers.map((s) => s.key),
      'a target was picked only for publishers that can take a request',
    );
    for (const s of legacy) {
      assert.equal(s.requestedAt, undefined);
      assert.equal(s.kickReason, 'draining');
    }
    // A mover's copy here goes when the new owner takes it over, never by a hand-off.
    for (const s of movers) assert.equal(s.kickReason, 'taken_over', s.key);
    // Waves [m0, m2] [m3, m4] [m5]: each one only after every stream of the previous one moved.
    const waves = [movers.slice(0, 2), movers.slice(2, 4), movers.slice(4)];
    for (let k = 1; k < waves.length; k++) {
      const sent = Math.min(...waves[k]!.map((s) => s.requestedAt!));
      const previousMoved = Math.max(...waves[k - 1]!.map((s) => s.movedAt!));
      assert.ok(sent >= previousMoved, `wave ${k + 1} was sent before wave ${k} moved`);
      assert.ok(sent - previousMoved < 1000, `wave ${k + 1} came ${sent - previousMoved} ms after wave ${k} moved`);
    }
    assert.ok(took < 3000, `drain took ${took} ms: it waited for an interval or the wait instead of the moves`);
  });

  it('with no other origin to send publishers to, asks nobody and hands everything off at once', async () => {
    const h = harness();
    const ss = [await h.publish('a', 'move'), await h.publish('b', 'legacy')];
    const t0 = performance.now();
    const result = await h.policy.drain({
      peerTcUrl: () => undefined,
      reconnectWaitMs: 10_000,
      reconnectBatch: 1,
      reconnectIntervalMs: 10_000,
      peersUp: false,
    });
    const took = performance.now() - t0;
    await h.close();
    assert.deepEqual(result, {
      reconnectRequested: 0,
      handedOff: 2,
      waves: 0,
      handOffWaves: 1,
      movesPrepared: 0,
      leadExpired: 0,
    });
    for (const s of ss) assert.equal(s.kickReason, 'draining');
    assert.ok(took < 1000, `drain took ${took} ms`);
  });

  it('hands legacy publishers off in waves of the batch size, an interval apart, until the bound; then the rest at once', async () => {
    /** Drains `n` legacy publishers; returns the result, each hand-off's time from the drain's start, and its length. */
    const drainLegacy = async (n: number, waitMs: number, batch: number, intervalMs: number) => {
      const h = harness();
      const ss: FakeStream[] = [];
      for (let i = 0; i < n; i++) ss.push(await h.publish(`p${i}`, 'legacy'));
      const t0 = performance.now();
      const result = await h.policy.drain({
        peerTcUrl: h.peerTcUrl,
        reconnectWaitMs: waitMs,
        reconnectBatch: batch,
        reconnectIntervalMs: intervalMs,
        peersUp: true,
      });
      const took = performance.now() - t0;
      await h.close();
      for (const s of ss) assert.equal(s.kickReason, 'draining');
      assert.equal(h.released.length, n, 'every lease released');
      return { result, at: ss.map((s) => s.kickedAt! - t0), took };
    };
    const together = (w: number[]): void =>
      assert.ok(Math.max(...w) - Math.min(...w) < 50, `one wave spread over ${w.join(', ')} ms`);

    // Within the bound: 7 streams, batch 3, 150 ms apart: waves of 3, 3, 1 at 0, 150, 300 ms.
    const paced = await drainLegacy(7, 2000, 3, 150);
    assert.deepEqual(paced.result, {
      reconnectRequested: 0,
      handedOff: 7,
      waves: 0,
      handOffWaves: 3,
      movesPrepared: 0,
      leadExpired: 0,
    });
    const waves = [paced.at.slice(0, 3), paced.at.slice(3, 6), paced.at.slice(6)];
    for (const w of waves) together(w);
    assert.ok(waves[0]![0]! < 100, `first hand-off after ${waves[0]![0]} ms`);
    for (let k = 1; k < 3; k++) {
      const gap = Math.min(...waves[k]!) - Math.max(...waves[k - 1]!);
      assert.ok(gap >= 149, `hand-off wave ${k + 1} came ${gap} ms after wave ${k}`);
    }

    // The bound cuts it: 2 x 200 ms. Waves of 1 at 0, 150, 300; at 400 the 4 left go together.
    const bounded = await drainLegacy(7, 200, 1, 150);
    assert.deepEqual(bounded.result, {
      reconnectRequested: 0,
      handedOff: 7,
      waves: 0,
      handOffWaves: 4,
      movesPrepared: 0,
      leadExpired: 0,
    });
    const last = bounded.at.slice(3);
    together(last);
    assert.ok(Math.min(...last) >= 399, `the rest went at ${Math.min(...last)} ms, before the bound`);
    assert.ok(bounded.took < 400 + 300, `drain took ${bounded.took} ms (bound 2 x 200 ms + a Redis round trip)`);
  });
  it('asks each publisher once its own edges answered the announced move, or at the lead; the wave waits for none', async () => {
    const LEAD = 400;
    // s0's two edges answer at 30 and 80 ms, s1's one edge at 150 ms, s2's second edge never (the lead ends it),
    // s3 has no edge (asked at once).
    const h = harness(0, { 'live/s0': [30, 80], 'live/s1': [150], 'live/s2': [20] });
    const edges: Record<string, number> = { 'live/s0': 2, 'live/s1': 1, 'live/s2': 2, 'live/s3': 0 };
    const ss: FakeStream[] = [];
    for (let i = 0; i < 4; i++) ss.push(await h.publish(`s${i}`, 'move'));
    const result = await h.policy.drain({
      peerTcUrl: h.peerTcUrl,
      peerAddrOf: () => '127.0.0.1:2',
      edgePullsOf: (key) => edges[key] ?? 0,
      moveLeadMs: LEAD,
      reconnectWaitMs: 2000,
      reconnectBatch: 10,
      reconnectIntervalMs: 0,
      peersUp: true,
    });
    await h.close();
    const lead = ss.map((s) => s.requestedAt! - h.announcedAt.get(s.key)!);
    console.log(`[drain-waves] asked after announcing: ${lead.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    assert.ok(lead[0]! >= 79 && lead[0]! < 80 + 100, `s0 asked ${lead[0]} ms after announcing (last answer at 80)`);
    assert.ok(lead[1]! >= 149 && lead[1]! < 150 + 100, `s1 asked ${lead[1]} ms after announcing (answer at 150)`);
    assert.ok(lead[2]! >= LEAD - 1 && lead[2]! < LEAD + 100, `s2 asked ${lead[2]} ms after announcing (lead ${LEAD})`);
    assert.ok(lead[3]! < 50, `s3 (no edge) asked ${lead[3]} ms after announcing`);
    assert.deepEqual(result, {
      reconnectRequested: 4,
      handedOff: 0,
      waves: 1,
      handOffWaves: 0,
      movesPrepared: 2,
      leadExpired: 1,
    });
  });

  it('caps the lead at half the reconnect wait, so an asked publisher keeps time to move', async () => {
    const h = harness(0, {});
    const s = await h.publish('slow', 'move');
    const result = await h.policy.drain({
      peerTcUrl: h.peerTcUrl,
      peerAddrOf: () => '127.0.0.1:2',
      edgePullsOf: () => 1,
      moveLeadMs: 10_000,
      reconnectWaitMs: 300,
      reconnectBatch: 10,
      reconnectIntervalMs: 0,
      peersUp: true,
    });
    await h.close();
    const lead = s.requestedAt! - h.announcedAt.get(s.key)!;
    assert.ok(lead >= 149 && lead < 150 + 100, `asked ${lead} ms after announcing (cap 150)`);
    assert.equal(result.leadExpired, 1);
    assert.equal(result.reconnectRequested, 1);
    assert.equal(result.handedOff, 0, 'the publisher had no time left to move');
  });
  it('DRAIN_MOVE_LEAD_MS 0 asks at once: no wait, nothing counted as prepared or expired', async () => {
    const h = harness(0, { 'live/now': [300] });
    const s = await h.publish('now', 'move');
    const result = await h.policy.drain({
      peerTcUrl: h.peerTcUrl,
      peerAddrOf: () => '127.0.0.1:2',
      edgePullsOf: () => 1,
      moveLeadMs: 0,
      reconnectWaitMs: 2000,
      reconnectBatch: 10,
      reconnectIntervalMs: 0,
      peersUp: true,
    });
    await h.close();
    const lead = s.requestedAt! - h.announcedAt.get(s.key)!;
    assert.ok(lead < 50, `asked ${lead} ms after announcing`);
    assert.equal(result.movesPrepared, 0);
    assert.equal(result.leadExpired, 0);
  });
});
