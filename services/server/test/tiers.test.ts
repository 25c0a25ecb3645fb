import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ParentSelector, parentCandidates, rendezvousOrder, type TierNode } from '../src/cluster/tiers.js';
import {
  clusterEnv,
  localStream,
  RecordingViewer,
  startInProcessNode,
  timestampRegressions,
  waitLocalLive,
  type ClusterNode,
} from './support/cluster-harness.js';
import { ffmpegPublish } from './support/media-tools.js';
import { type Running, start, startLinePorts, stopAll, waitFor } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const edge = (id: string, tier?: 'leaf' | 'parent', extra: Partial<TierNode> = {}): TierNode => ({
  id,
  role: 'edge',
  rtmpAddr: `${id}:1935`,
  ...(tier ? { tier } : {}),
  ...extra,
});

describe('tiers: rendezvous hashing and parent selection', () => {
  const parents = ['p1', 'p2', 'p3', 'p4'].map((id) => edge(id, 'parent'));

  it('orders nodes the same way whatever the input order, and spreads keys over every node', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const key = `live/s${i}`;
      const a = rendezvousOrder(key, parents).map((n) => n.id);
      const b = rendezvousOrder(key, [...parents].reverse()).map((n) => n.id);
      assert.deepEqual(a, b);
      counts.set(a[0]!, (counts.get(a[0]!) ?? 0) + 1);
    }
    // 4000 keys over 4 nodes: each gets about 1000 (binomial sd ~27; 800 is > 7 sd away).
    for (const p of parents) assert.ok((counts.get(p.id) ?? 0) > 800, `${p.id}: ${counts.get(p.id)}`);
  });

  it('removing a node moves only the keys it was first for (to their next node in order)', () => {
    let moved = 0;
    for (let i = 0; i < 2000; i++) {
      const key = `live/m${i}`;
      const full = rendezvousOrder(key, parents).map((n) => n.id);
      const without = rendezvousOrder(
        key,
        parents.filter((p) => p.id !== 'p2'),
      ).map((n) => n.id);
      if (full[0] === 'p2') {
        moved++;
        assert.equal(without[0], full[1]);
      } else assert.equal(without[0], full[0]);
    }
    assert.ok(moved > 300 && moved < 700, `moved ${moved}`);
  });

  it('candidates are live parent-tier edges other than this node: never a leaf, an origin, itself, a draining or unready node', () => {
    const nodes: TierNode[] = [
      edge('self', 'parent'),
      edge('leaf1', 'leaf'),
      edge('untiered'),
      { id: 'origin1', role: 'origin', rtmpAddr: 'o:1935', tier: 'parent' },
      edge('draining', 'parent', { draining: true }),
      edge('unready', 'parent', { ready: false }),
      edge('ok', 'parent', { ready: true, draining: false }),
    ];
    assert.deepEqual(
      parentCandidates(nodes, 'self').map((n) => n.id),
      ['ok'],
    );
  });

  it('selector: first unsuspected parent in hash order; suspects expire; no parent (or all suspect) means origin', async () => {
    let now = 0;
    let list: TierNode[] = parents;
    let reads = 0;
    const sel = new ParentSelector(
      async () => {
        reads++;
        return list;
      },
      { selfId: 'leaf', cacheMs: 100, suspectMs: 1000, now: () => now },
    );
    const key = 'live/x';
    const order = rendezvousOrder(key, parents).map((n) => n.id);
    assert.equal((await sel.choose(key))?.id, order[0]);
    await sel.choose(key);
    assert.equal(reads, 1, 'cached list reused within cacheMs');
    sel.suspect(order[0]!);
    assert.equal((await sel.choose(key))?.id, order[1]);
    sel.suspect(order[1]!);
    assert.equal((await sel.choose(key))?.id, order[2]);
    now = 1001;
    assert.equal((await sel.choose(key))?.id, order[0], 'suspicion expires');
    assert.equal(reads, 2);
    for (const p of parents) sel.suspect(p.id);
    assert.equal(await sel.choose(key), undefined, 'all suspect: origin');
    now = 5000;
    list = [edge('leaf2', 'leaf')];
    assert.equal(await sel.choose(key), undefined, 'no parent: origin');
  });

  it('selector keeps the last list when the registry cannot be read', async () => {
    let fail = false;
    let now = 0;
    const sel = new ParentSelector(
      async () => {
        if (fail) throw new Error('redis down');
        return parents;
      },
      { selfId: 'leaf', cacheMs: 10, suspectMs: 1000, now: () => now },
    );
    const first = await sel.choose('live/y');
    fail = true;
    now = 100;
    assert.equal((await sel.choose('live/y'))?.id, first?.id);
  });
});

/**
 * Two tiers on real Redis and NATS: origin O and leaves L1-L4 in this process, parents P1 and P2 as `rtmp-relay edge`
 * processes (tsx, from source) so one can be SIGKILLed. Two streams, chosen so that rendezvous hashing puts one on
 * each parent. Every leaf has one RTMP viewer per stream.
 */
const HEARTBEAT_MS = 200;
const LEASE_MS = 2000;
const CLI_SRC = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const FRAMES_AFTER_KILL = 30;

describe('tiers: 1 origin, 2 parents, 4 leaves (real Redis, NATS, FFmpeg)', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let O: ClusterNode;
  const leaves: ClusterNode[] = [];
  const parentProcs = new Map<string, { proc: Running; rtmpPort: number; httpPort: number; out: () => string }>();
  const viewers: RecordingViewer[] = [];
  const publishers: Running[] = [];
  let env: Record<string, string>;

  const spawnParent = async (id: string) => {
    const proc = start(process.execPath, ['--conditions=source', '--import', 'tsx', CLI_SRC, 'edge'], {
      timeoutMs: 5 * 60_000,
      env: { ...process.env, ...env, NODE_ID: id, EDGE_TIER: 'parent' },
    });
    let out = '';
    proc.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const ports = await waitFor(
      `parent ${id} start line`,
      () => {
        if (proc.child.exitCode !== null) throw new Error(`parent ${id} exited:\n${out}`);
        return startLinePorts(out);
      },
      30_000,
      20,
    );
    parentProcs.set(id, { proc, rtmpPort: ports.rtmp, httpPort: ports.http, out: () => out });
  };
  const viewersOn = async (httpPort: number, key: string): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/streams/${key}`, { signal: AbortSignal.timeout(3000) });
    if (res.status !== 200) {
      await res.body?.cancel();
      return 0;
    }
    return ((await res.json()) as { viewers: number }).viewers;
  };

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    env = clusterEnv(redis.url, nats.url, {
      HEARTBEAT_MS: String(HEARTBEAT_MS),
      LEASE_MS: String(LEASE_MS),
      CLUSTER_SECRET: 'tiers-test-cluster-secret',
      PULL_LINGER_MS: '1000',
    });
    O = await startInProcessNode('origin', 'O', env);
    await Promise.all([spawnParent('P1'), spawnParent('P2')]);
    for (let i = 1; i <= 4; i++)
      leaves.push(await startInProcessNode('edge', `L${i}`, { ...env, EDGE_UPSTREAM: 'parents' }));
    // Every leaf must see both parents live and ready before the first play.
    await waitFor(
      'both parents registered ready with tier=parent',
      async () => {
        const { nodes } = await O.json<{ nodes: Array<{ id: string; tier?: string; ready?: boolean }> }>(
          '/api/cluster/nodes',
        );
        return nodes.filter((n) => n.tier === 'parent' && n.ready === true).length === 2;
      },
      15_000,
    );
  });

  after(async () => {
    for (const v of viewers) v.close();
    await Promise.all(publishers.map((p) => p.stop()));
    for (const p of parentProcs.values()) await p.proc.stop('SIGKILL');
    for (const l of leaves) await l.stop();
    await O?.stop();
    await stopAll();
    await stopAllServices();
  });

  it("origin serves one pull per parent; a parent SIGKILL moves its leaves to the other parent, the last parent's to the origin, without dropping viewers", async () => {
    // One stream per parent: rendezvous over the two parents decides.
    const parentNodes = ['P1', 'P2'].map((id) => edge(id, 'parent'));
    const keyFor = new Map<string, string>();
    for (let i = 0; keyFor.size < 2; i++) {
      const key = `live/tier${i}`;
      const first = rendezvousOrder(key, parentNodes)[0]!.id;
      if (!keyFor.has(first)) keyFor.set(first, key);
    }
    const keys = [...keyFor.values()];
    for (const key of keys) publishers.push(ffmpegPublish(O.rtmpUrl(key), { seconds: 90 }));
    await Promise.all(keys.map((k) => waitLocalLive(O, k)));

    for (const leaf of leaves)
      for (const key of keys) viewers.push(await RecordingViewer.open(`${leaf.id}:${key}`, leaf.rtmpUrl(key)));
    await waitFor('frames on every leaf viewer', () => viewers.every((v) => v.framesSince().length >= 10), 20_000);

    // Origin: exactly one pull (viewer) per stream, each from its parent; parents: the 4 leaves of their stream only;
    // leaves: their own viewer only (nobody pulls from a leaf, no node from itself).
    for (const [parentId, key] of keyFor) {
      assert.equal(await viewersOn(O.httpPort, key), 1, `origin pulls of ${key}`);
      const other = parentId === 'P1' ? 'P2' : 'P1';
      assert.equal(
        await viewersOn(parentProcs.get(parentId)!.httpPort, key),
        4,
        `${parentId} serves ${key} to 4 leaves`,
      );
      assert.equal(await viewersOn(parentProcs.get(other)!.httpPort, key), 0, `${other} does not carry ${key}`);
    }
    for (const leaf of leaves)
      for (const key of keys) assert.equal((await localStream(leaf, key))?.viewers, 1, `${leaf.id} ${key}`);

    // SIGKILL P1: its stream's leaves move to P2 (next in hash order); viewers stay connected and play on.
    const killed = 'P1';
    const survivor = parentProcs.get('P2')!;
    const movedKey = keyFor.get(killed)!;
    const killAt = performance.now();
    await parentProcs.get(killed)!.proc.stop('SIGKILL');
    await waitFor(
      `${FRAMES_AFTER_KILL} frames after the kill on every viewer`,
      () => viewers.every((v) => v.framesSince(killAt).length >= FRAMES_AFTER_KILL),
      20_000,
    );
    const resumed = viewers.filter((v) => v.name.endsWith(movedKey)).map((v) => v.framesSince(killAt)[0]!.at - killAt);
    console.log(
      `[tiers] moved-stream viewers resumed ${Math.max(...resumed).toFixed(0)} ms (max) after the parent SIGKILL`,
    );
    for (const v of viewers) {
      assert.equal(v.closed, false, `${v.name} still connected`);
      assert.deepEqual(timestampRegressions(v.video), [], `${v.name}: timestamps monotonic`);
    }
    assert.equal(await viewersOn(survivor.httpPort, movedKey), 4, 'survivor serves the moved stream to all 4 leaves');
    for (const key of keys) assert.equal(await viewersOn(O.httpPort, key), 1, `origin still one pull of ${key}`);
    for (const leaf of leaves)
      for (const key of keys) assert.equal((await localStream(leaf, key))?.viewers, 1, `${leaf.id} ${key} after`);

    // SIGKILL the last parent: no parent is live, so every leaf falls back to the origin, viewers held.
    const lastKillAt = performance.now();
    await survivor.proc.stop('SIGKILL');
    await waitFor(
      `${FRAMES_AFTER_KILL} frames after the last parent's kill on every viewer`,
      () => viewers.every((v) => v.framesSince(lastKillAt).length >= FRAMES_AFTER_KILL),
      20_000,
    );
    for (const v of viewers) {
      assert.equal(v.closed, false, `${v.name} still connected without parents`);
      assert.deepEqual(timestampRegressions(v.video), [], `${v.name}: timestamps monotonic without parents`);
    }
    for (const key of keys)
      assert.equal(await viewersOn(O.httpPort, key), 4, `every leaf pulls ${key} from the origin`);
  });
});
