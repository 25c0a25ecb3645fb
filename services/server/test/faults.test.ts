import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI, clusterEnv, spawnNode, type ClusterNode, type ProcessNode } from './support/cluster-harness.js';
import { run, start, stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { Relay } from './support/tcp-relay.js';
import { MovablePublisher, TagViewer } from './support/tagged-stream.js';

/**
 * Faults with real redis-server, nats-server and rtmp-relay processes:
 * 1. a short Redis outage (Redis then comes back EMPTY): nodes that carry streams stay ready throughout (a blip must
 *    not take every pod out of every load balancer), an idle edge leaves readiness only after one lease, viewers
 *    keep playing, leases are re-created, and new plays work after it;
 * 2. NATS restarted: playback continues, nodes stay ready, and a stream published afterwards reaches edges;
 * 3. an origin SIGSTOPped past its lease while its encoder moves to another origin, then resumed: it fences itself,
 *    and no viewer ever gets frames of the frozen origin after the new one's;
 * 4. (network namespaces, root only) a link slower than the stream between one edge and the origin (`tc tbf` on the
 *    veth into the edge's namespace): viewers of another edge are unaffected. (`tc netem` would model delay and loss,
 *    but this machine's kernel has no netem qdisc: "Specified qdisc kind is unknown"; tbf and htb exist);
 * 5. an edge partitioned from NATS (its NATS connection through a relay that stops forwarding) still follows a
 *    takeover (Redis names the new owner when the old copy ends) and plays streams published meanwhile;
 * 6. (network namespaces + nftables, root only) 200 ms delay and 2 % packet loss between one edge and the origin:
 *    without netem, the loss is an nftables rule in the edge's namespace dropping 2 % of the packets it receives
 *    (real TCP retransmissions), and the delay a relay on the host that holds every byte 200 ms each way (the
 *    namespace's connections to the origin are DNATed to it). The slowed edge keeps playing ~200 ms behind, in
 *    order; the other edge is unaffected.
 */

const LEASE_MS = 2000;
/** The tagged stream is ~50 kbit/s (200-byte frames at 30 fps). */
const SLOW_LINK = '16kbit';
const LINK_DELAY_MS = 200;
const LINK_LOSS_PERCENT = 2;

/** Samples `/readyz` of `node` every 50 ms until stopped; returns the statuses seen. */
function sampleReady(node: ClusterNode): { stop: () => Promise<number[]> } {
  const seen: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const res = await node.http('/readyz').catch(() => undefined);
      await res?.body?.cancel();
      seen.push(res?.status ?? 0);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return seen;
    },
  };
}

describe('faults: Redis blip and restart, NATS restart, a frozen origin, a slow edge link', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  const nodes: ProcessNode[] = [];
  const pubs: MovablePublisher[] = [];
  const viewers: TagViewer[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  const env = (extra: Record<string, string> = {}) =>
    clusterEnv(redis.url, nats.url, { LEASE_MS: String(LEASE_MS), HEARTBEAT_MS: '300', ...extra });
  const node = async (role: 'origin' | 'edge', id: string, extra?: Record<string, string>) => {
    const n = await spawnNode(role, id, env(extra));
    nodes.push(n);
    return n;
  };
  /** An edge inside `ns`; Redis and NATS listen on loopback, so relays on the veth address carry its connections. */
  const edgeIn = async (ns: NetNs, id: string) => {
    const redisRelay = await Relay.open(ns.hostIp, redis.port);
    const natsRelay = await Relay.open(ns.hostIp, nats.port);
    cleanups.push(
      () => redisRelay.close(),
      () => natsRelay.close(),
    );
    const edge = await ns.spawnEdge(id, {
      ...env(),
      REDIS_URL: `redis://${ns.hostIp}:${redisRelay.port}`,
      NATS_URL: `nats://${ns.hostIp}:${natsRelay.port}`,
      RTMP_HOST: ns.nsIp,
      HTTP_HOST: ns.nsIp,
      ADVERTISE_HOST: ns.nsIp,
    });
    cleanups.push(() => edge.stop().then(() => undefined));
    return edge;
  };
  const stopCase = async () => {
    for (const v of viewers.splice(0)) v.close();
    for (const p of pubs.splice(0)) p.stop();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  };

  before(async () => {
    redis = await startRedis();
    nats = await startNats();
  });

  after(async () => {
    await stopCase();
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await stopAll();
    await stopAllServices();
  });

  it(
    '1. a short Redis outage (back empty): carrying nodes stay ready, viewers keep playing, leases come back',
    { timeout: 60_000 },
    async () => {
      const A = await node('origin', 'f1-origin');
      const E1 = await node('edge', 'f1-edge-busy');
      const E2 = await node('edge', 'f1-edge-idle');
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(A.rtmpUrl('live/blip'), 1);
      const v = await TagViewer.open(E1.rtmpUrl('live/blip'));
      viewers.push(v);
      await waitFor('frames through the edge', () => v.count() >= 10, 10_000);

      const samplers = [A, E1, E2].map(sampleReady);
      const downAt = performance.now();
      await redis.kill();
      await waitFor('nodes to see Redis down', async () => (await A.metric('rtmp_redis_up')) === 0, 10_000);
      // The idle edge carries nothing: after one lease it leaves readiness.
      await waitFor(
        'the idle edge to turn not-ready',
        async () => (await E2.http('/readyz')).status === 503,
        LEASE_MS * 3,
      );
      const idleOutAfter = performance.now() - downAt;
      // An outage of more than one lease, then Redis comes back empty.
      await waitFor('an outage longer than a lease', () => performance.now() - downAt > LEASE_MS * 1.5, LEASE_MS * 3);
      await redis.restart();
      await waitFor(
        'the lease re-created in the empty Redis',
        async () => (await A.metric('rtmp_lease_restores_total')) >= 1,
        10_000,
      );
      await waitFor('the idle edge ready again', async () => (await E2.http('/readyz')).status === 200, 10_000);
      const [onA, onE1, onE2] = await Promise.all(samplers.map((s) => s.stop()));
      const framesBefore = v.count();
      await waitFor('frames keep coming', () => v.count() > framesBefore + 10, 5000);
      // A new viewer on the idle edge resolves the stream in the restored registry.
      const late = await TagViewer.open(E2.rtmpUrl('live/blip'));
      viewers.push(late);
      await waitFor('the late viewer gets frames', () => late.count() >= 5, 10_000);

      console.log(
        `[faults] 1. Redis down ${LEASE_MS * 1.5}+ ms: max viewer gap ${v.maxGapAfter(downAt).toFixed(0)} ms, idle edge out after ${idleOutAfter.toFixed(0)} ms`,
      );
      assert.ok(!onA!.includes(503) && !onA!.includes(0), `origin readiness during the outage: ${onA}`);
      assert.ok(!onE1!.includes(503) && !onE1!.includes(0), `busy edge readiness during the outage: ${onE1}`);
      assert.ok(onE2!.includes(503), 'the idle edge never left readiness');
      assert.ok(
        idleOutAfter >= LEASE_MS * 0.9,
        `the idle edge left readiness after ${idleOutAfter} ms, before a lease`,
      );
      assert.equal(v.closedAt, undefined, 'the viewer was disconnected');
      assert.deepEqual(v.ends, []);
      assert.ok(v.maxGapAfter(downAt) < 1000, `viewer gap ${v.maxGapAfter(downAt)} ms`);
      await stopCase();
    },
  );

  it(
    '2. NATS restarted: playback continues, nodes stay ready, a later stream reaches the edge',
    { timeout: 60_000 },
    async () => {
      const A = await node('origin', 'f2-origin');
      const E = await node('edge', 'f2-edge');
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(A.rtmpUrl('live/nats-a'), 1);
      const v = await TagViewer.open(E.rtmpUrl('live/nats-a'));
      viewers.push(v);
      await waitFor('frames', () => v.count() >= 10, 10_000);
      const samplers = [A, E].map(sampleReady);
      const downAt = performance.now();
      await nats.kill();
      await waitFor('NATS down seen', async () => (await E.metric('rtmp_nats_up')) === 0, 10_000);
      await nats.restart();
      await waitFor(
        'NATS back on both nodes',
        async () => (await A.metric('rtmp_nats_up')) === 1 && (await E.metric('rtmp_nats_up')) === 1,
        15_000,
      );
      const ready = await Promise.all(samplers.map((s) => s.stop()));
      // A stream published after the restart plays through the edge (events flow again, or Redis answers).
      const p2 = new MovablePublisher({ ertmp: false });
      pubs.push(p2);
      await p2.moveTo(A.rtmpUrl('live/nats-b'), 1);
      const v2 = await TagViewer.open(E.rtmpUrl('live/nats-b'));
      viewers.push(v2);
      await waitFor('frames of the later stream', () => v2.count() >= 5, 10_000);
      console.log(`[faults] 2. NATS restart: max viewer gap ${v.maxGapAfter(downAt).toFixed(0)} ms`);
      for (const r of ready) assert.ok(!r.includes(503), `readiness during the NATS restart: ${r}`);
      assert.equal(v.closedAt, undefined);
      assert.ok(v.maxGapAfter(downAt) < 1000);
      await stopCase();
    },
  );

  it(
    '3. an origin SIGSTOPped past its lease, then resumed, fences itself; no viewer sees two owners',
    { timeout: 60_000 },
    async () => {
      const A = await node('origin', 'f3-origin-a');
      const B = await node('origin', 'f3-origin-b');
      const E = await node('edge', 'f3-edge');
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(A.rtmpUrl('live/frozen'), 1);
      const v = await TagViewer.open(E.rtmpUrl('live/frozen'));
      viewers.push(v);
      await waitFor('frames from A', () => v.count(1) >= 10, 10_000);

      A.proc.child.kill('SIGSTOP');
      cleanups.push(async () => void A.proc.child.kill('SIGCONT'));
      const frozenAt = performance.now();
      // Another encoder publishes the key at B once A's lease has expired (a takeover). A's own publisher stays
      // connected, so when A resumes only its lease can stop it from serving (its publisher leaving would not test
      // the fence: which of the two A handles first after SIGCONT is a race).
      await waitFor(
        'A lease to expire',
        async () => {
          const s = await B.json<{ nodeId?: string }>('/api/cluster/streams/live/frozen').catch(
            () => ({}) as { nodeId?: string },
          );
          return s.nodeId !== 'f3-origin-a';
        },
        LEASE_MS * 4,
      );
      const takeover = new MovablePublisher({ ertmp: false });
      pubs.push(takeover);
      await takeover.moveTo(B.rtmpUrl('live/frozen'), 2);
      await waitFor('frames from B at the edge', () => v.count(2) >= 10, 15_000);
      const movedAfter = v.frames.find((f) => f.tag === 2)!.at - frozenAt;
      A.proc.child.kill('SIGCONT');
      // Resumed: its lease is gone (and the stream has a newer owner), so it must stop serving it, not compete with B.
      await waitFor('A to give the stream up', async () => (await A.metric('rtmp_owned_streams')) === 0, 15_000);
      const fencedBy = {
        expired: await A.metric('rtmp_lease_expirations_total'),
        lost: await A.metric('rtmp_lease_refresh_failures_total', { reason: 'lost' }),
      };
      const framesAfterResume = v.count(2);
      await waitFor('frames from B keep coming', () => v.count(2) > framesAfterResume + 15, 10_000);
      console.log(
        `[faults] 3. frozen origin: viewer back on B ${movedAfter.toFixed(0)} ms after the freeze; A fenced by ${JSON.stringify(fencedBy)}`,
      );
      assert.ok(fencedBy.expired + fencedBy.lost >= 1, 'A did not fence itself');
      assert.equal(v.interleavedAfter(2), 0, 'frames of the frozen origin after the new owner');
      assert.equal(v.regressions(), 0, 'timestamps went back');
      assert.equal(v.closedAt, undefined, 'the edge viewer was disconnected');
      const owner = await B.json<{ nodeId: string }>('/api/cluster/streams/live/frozen');
      assert.equal(owner.nodeId, 'f3-origin-b');
      await stopCase();
    },
  );

  it(
    '5. an edge partitioned from NATS still follows a takeover and finds new streams through Redis',
    { timeout: 60_000 },
    async () => {
      const relay = await Relay.open('127.0.0.1', nats.port);
      cleanups.push(() => relay.close());
      const A = await node('origin', 'f5-origin-a');
      const B = await node('origin', 'f5-origin-b');
      const E = await node('edge', 'f5-edge', { NATS_URL: `nats://127.0.0.1:${relay.port}` });
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(A.rtmpUrl('live/no-nats'), 1);
      const v = await TagViewer.open(E.rtmpUrl('live/no-nats'));
      viewers.push(v);
      await waitFor('frames from A', () => v.count(1) >= 10, 10_000);
      relay.isCut = true;
      // A takeover at B: the edge gets no stream.moved; A's copy ends and Redis names B.
      const movedAt = performance.now();
      await p.moveTo(B.rtmpUrl('live/no-nats'), 2);
      await waitFor('frames from B at the partitioned edge', () => v.count(2) >= 10, 15_000);
      const delay = v.frames.find((f) => f.tag === 2)!.at - movedAt;
      // A stream published while the edge is cut off plays there (its owner is resolved in Redis).
      const p2 = new MovablePublisher({ ertmp: false });
      pubs.push(p2);
      await p2.moveTo(B.rtmpUrl('live/no-nats-new'), 1);
      const v2 = await TagViewer.open(E.rtmpUrl('live/no-nats-new'));
      viewers.push(v2);
      await waitFor('frames of the new stream', () => v2.count() >= 5, 10_000);
      console.log(`[faults] 5. edge cut from NATS: takeover reached its viewer after ${delay.toFixed(0)} ms`);
      assert.equal(v.closedAt, undefined, 'the viewer was disconnected');
      assert.equal(v.interleavedAfter(2), 0, 'frames from two owners');
      assert.equal(v.regressions(), 0);
      assert.ok(delay < 5000, `takeover took ${delay} ms to reach the partitioned edge`);
      await stopCase();
    },
  );

  it(
    '4. a link slower than the stream between one edge and the origin (netns, tc tbf): the other edge is unaffected',
    { timeout: 60_000 },
    async (t) => {
      const why = await NetNs.unavailable();
      if (why) return t.skip(`network namespaces unavailable here (${why})`);
      const ns = await NetNs.create(cleanups);
      // The origin listens on the host end of the veth, reachable from both the host and the namespace.
      const A = await node('origin', 'f4-origin', { RTMP_HOST: ns.hostIp, ADVERTISE_HOST: ns.hostIp });
      const fast = await node('edge', 'f4-edge-fast');
      const slow = await edgeIn(ns, 'f4-edge-slow');
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(`rtmp://${ns.hostIp}:${A.rtmpPort}/live/slow-link`, 1);
      const vFast = await TagViewer.open(fast.rtmpUrl('live/slow-link'));
      const vSlow = await TagViewer.open(`rtmp://${ns.nsIp}:${slow.rtmpPort}/live/slow-link`);
      viewers.push(vFast, vSlow);
      await waitFor('frames on both edges', () => vFast.count() >= 10 && vSlow.count() >= 10, 15_000);

      // Everything from the host into the namespace (the edge's pull above all) at a third of the stream's bitrate.
      await ns.limit(SLOW_LINK);
      const slowAt = performance.now();
      await waitFor('5 s on the slow link', () => performance.now() - slowAt > 5000, 7000);
      const slowFramesUnder = vSlow.frames.filter((f) => f.at > slowAt).length;
      console.log(
        `[faults] 4. slow link ${SLOW_LINK}: fast edge max gap ${vFast.maxGapAfter(slowAt).toFixed(0)} ms, ` +
          `slow edge max gap ${vSlow.maxGapAfter(slowAt).toFixed(0)} ms, ${slowFramesUnder} frames`,
      );
      assert.ok(vFast.maxGapAfter(slowAt) < 300, `fast edge gap ${vFast.maxGapAfter(slowAt)} ms`);
      assert.equal(vFast.closedAt, undefined);
      assert.ok(slowFramesUnder > 0, 'the slowed edge got nothing');
      await stopCase();
    },
  );

  it(
    `6. ${LINK_DELAY_MS} ms delay and ${LINK_LOSS_PERCENT} % loss between one edge and the origin (netns, nftables): the other edge is unaffected`,
    { timeout: 60_000 },
    async (t) => {
      const nft = await run('nft', ['--version'], { timeoutMs: 5000 }).catch(() => undefined);
      if (nft?.code !== 0) return t.skip('nftables (nft) is not installed');
      const why = await NetNs.unavailable();
      if (why) return t.skip(`network namespaces unavailable here (${why})`);
      const ns = await NetNs.create(cleanups);
      const A = await node('origin', 'f6-origin', { RTMP_HOST: ns.hostIp, ADVERTISE_HOST: ns.hostIp });
      const fast = await node('edge', 'f6-edge-fast');
      const delayRelay = await Relay.open(ns.hostIp, A.rtmpPort, { targetHost: ns.hostIp, delayMs: LINK_DELAY_MS });
      cleanups.push(() => delayRelay.close());
      await ns.impair({ to: `${ns.hostIp}:${A.rtmpPort}`, via: delayRelay.port, lossPercent: LINK_LOSS_PERCENT });
      const far = await edgeIn(ns, 'f6-edge-far');
      const p = new MovablePublisher({ ertmp: false });
      pubs.push(p);
      await p.moveTo(`rtmp://${ns.hostIp}:${A.rtmpPort}/live/lossy-link`, 1);
      const vFast = await TagViewer.open(fast.rtmpUrl('live/lossy-link'));
      const vFar = await TagViewer.open(`rtmp://${ns.nsIp}:${far.rtmpPort}/live/lossy-link`);
      viewers.push(vFast, vFar);
      const since = performance.now();
      await waitFor('8 s of frames on both edges', () => performance.now() - since > 8000, 10_000);

      assert.ok(delayRelay.connections >= 1, 'the far edge did not pull through the delaying relay');
      const dropped = await ns.droppedPackets();
      assert.ok(dropped > 0, `the loss rule dropped ${dropped} packets`);
      // The same frame (timestamp) on both edges: how much later the far edge's viewer got it.
      const fastAt = new Map(vFast.frames.map((f) => [f.ts, f.at]));
      const lag = vFar.frames.flatMap((f) => (fastAt.has(f.ts) ? [f.at - fastAt.get(f.ts)!] : []));
      lag.sort((a, b) => a - b);
      const lagP50 = lag[Math.floor(lag.length / 2)] ?? NaN;
      const lagMax = lag[lag.length - 1] ?? NaN;
      console.log(
        `[faults] 6. ${LINK_DELAY_MS} ms + ${LINK_LOSS_PERCENT} % loss (${dropped} packets dropped): far edge ${vFar.count()} frames, lag behind the ` +
          `other edge p50 ${lagP50.toFixed(0)} ms max ${lagMax.toFixed(0)} ms, max gap ${vFar.maxGapAfter(since).toFixed(0)} ms; ` +
          `other edge max gap ${vFast.maxGapAfter(since).toFixed(0)} ms`,
      );
      assert.ok(lag.length >= 100, `only ${lag.length} frames reached both edges`);
      assert.ok(lagP50 >= LINK_DELAY_MS * 0.9, `far edge only ${lagP50} ms behind: the delay is not in the path`);
      assert.ok(lagP50 < LINK_DELAY_MS + 1000, `far edge ${lagP50} ms behind`);
      assert.equal(vFar.regressions(), 0, 'the far edge delivered frames out of order');
      assert.equal(vFast.regressions(), 0);
      assert.ok(vFast.maxGapAfter(since) < 400, `other edge gap ${vFast.maxGapAfter(since)} ms`);
      assert.equal(vFast.closedAt, undefined);
      assert.equal(vFar.closedAt, undefined);
      await stopCase();
    },
  );
});

/**
 * A network namespace joined to the host by a veth pair with two addresses of 10.213.<n>.0/30, made and removed by
 * the test (nothing else on the machine is touched).
 */
class NetNs {
  private constructor(
    readonly name: string,
    readonly hostDev: string,
    readonly hostIp: string,
    readonly nsIp: string,
    readonly nsDev: string,
  ) {}

  private static made = 0;

  /** Why this process cannot make namespaces (not root, no `ip`), or undefined. Any other failure fails the test. */
  static async unavailable(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return 'not root';
    const ip = await run('ip', ['-V'], { timeoutMs: 5000 }).catch(() => undefined);
    return ip?.code === 0 ? undefined : 'no ip command';
  }

  static async create(cleanups: Array<() => Promise<void>>): Promise<NetNs> {
    // Several per test process (each case makes its own; all are removed in after()): names and /30s differ by `seq`.
    const seq = ++NetNs.made;
    const n = process.pid % 250;
    const id = `${process.pid % 10000}x${seq}`;
    const base = 4 * (seq % 64);
    const ns = new NetNs(`rr9-${id}`, `rr9h${id}`, `10.213.${n}.${base + 1}`, `10.213.${n}.${base + 2}`, `rr9n${id}`);
    const sh = async (...args: string[]) => {
      const r = await run('ip', args, { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    };
    await sh('netns', 'add', ns.name);
    cleanups.push(async () => {
      await run('ip', ['netns', 'del', ns.name], { timeoutMs: 10_000 });
      await run('ip', ['link', 'del', ns.hostDev], { timeoutMs: 10_000 });
    });
    await sh('link', 'add', ns.hostDev, 'type', 'veth', 'peer', 'name', ns.nsDev);
    await sh('link', 'set', ns.nsDev, 'netns', ns.name);
    await sh('addr', 'add', `${ns.hostIp}/30`, 'dev', ns.hostDev);
    await sh('link', 'set', ns.hostDev, 'up');
    await sh('-n', ns.name, 'addr', 'add', `${ns.nsIp}/30`, 'dev', ns.nsDev);
    await sh('-n', ns.name, 'link', 'set', ns.nsDev, 'up');
    await sh('-n', ns.name, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** An edge process inside the namespace (ports parsed from its start line, as spawnNode does). */
  async spawnEdge(
    id: string,
    env: Record<string, string>,
  ): Promise<{ rtmpPort: number; stop: () => Promise<unknown> }> {
    const proc: Running = start('ip', ['netns', 'exec', this.name, process.execPath, CLI, 'edge'], {
      timeoutMs: 5 * 60_000,
      env: { ...process.env, ...env, NODE_ID: id },
    });
    let out = '';
    proc.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const port = await waitFor(
      `${id} start line`,
      () => /rtmp-relay \w+: rtmp:\/\/[^:]+:(\d+)\//.exec(out)?.[1],
      15_000,
    );
    const http = await waitFor(`${id} http port`, () => /http:\/\/[^:]+:(\d+)\//.exec(out)?.[1], 15_000);
    // Ready: its registry and bus are up (checked from inside the namespace's address).
    await waitFor(
      `${id} ready`,
      async () => {
        const res = await fetch(`http://${env.HTTP_HOST}:${http}/readyz`).catch(() => undefined);
        await res?.body?.cancel();
        return res?.status === 200;
      },
      15_000,
    );
    return { rtmpPort: Number(port), stop: () => proc.stop('SIGTERM') };
  }

  /**
   * Inside the namespace: connections to `to` (host:port) go to port `via` of the same host instead (a relay), and
   * `lossPercent` of the packets arriving on the veth are dropped at random.
   */
  async impair(o: { to: string; via: number; lossPercent: number }): Promise<void> {
    const [host, port] = o.to.split(':');
    const rules = [
      'add table ip rr9',
      'add chain ip rr9 out { type nat hook output priority -100; }',
      `add rule ip rr9 out ip daddr ${host} tcp dport ${port} dnat to ${host}:${o.via}`,
      'add chain ip rr9 in { type filter hook input priority 0; }',
      `add rule ip rr9 in iifname "${this.nsDev}" numgen random mod 100 < ${o.lossPercent} counter drop`,
    ];
    for (const rule of rules) {
      const r = await run('ip', ['netns', 'exec', this.name, 'nft', rule], { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`nft ${rule}: ${r.stderr.trim()}`);
    }
  }

  /** Packets the loss rule of `impair` dropped so far. */
  async droppedPackets(): Promise<number> {
    const r = await run('ip', ['netns', 'exec', this.name, 'nft', 'list', 'chain', 'ip', 'rr9', 'in'], {
      timeoutMs: 10_000,
    });
    return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  }

  /** A token-bucket rate limit on the host end: every packet into the namespace. */
  async limit(rate: string): Promise<void> {
    const r = await run(
      'tc',
      ['qdisc', 'add', 'dev', this.hostDev, 'root', 'tbf', 'rate', rate, 'burst', '4kb', 'latency', '2s'],
      {
        timeoutMs: 10_000,
      },
    );
    if (r.code !== 0) throw new Error(`tc tbf: ${r.stderr.trim()}`);
  }
}
