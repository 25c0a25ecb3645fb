import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import {
  createRedis,
  NodeRegistry,
  StreamOwnership,
  waitForRedis,
  type NodeRecord,
} from '../src/cluster/redis-registry.js';
import { waitFor } from './support/processes.js';
import { startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const A = { nodeId: 'origin-a', addr: '10.0.0.1:1935' };
const B = { nodeId: 'origin-b', addr: '10.0.0.2:1935' };
const SHORT_LEASE_MS = 300;

describe('redis registry (real redis-server)', () => {
  let server: ServiceHandle;
  const clients: Redis[] = [];
  const clientErrors: Error[] = [];
  let redis: Redis;
  let prefixCounter = 0;
  /** A key prefix of its own for each test, so tests never see each other's keys. */
  const freshPrefix = () => `rtmp:t${++prefixCounter}:`;

  async function client(): Promise<Redis> {
    const c = createRedis(server.url, { onError: (err) => clientErrors.push(err) });
    clients.push(c);
    await waitForRedis(c, 5000);
    return c;
  }

  before(async () => {
    server = await startRedis();
    assert.notEqual(server.port, 6379);
    redis = await client();
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await stopAllServices();
  });

  it('claims a free stream, resolves it, refuses a second node, refreshes and releases', async () => {
    const prefix = freshPrefix();
    const own = new StreamOwnership(redis, { prefix, leaseMs: 5000 });
    const won = await own.claim('live/foo', A);
    assert.equal(won.ok, true);
    assert.ok(won.ok && Number.isSafeInteger(won.epoch) && won.epoch > 0);
    assert.ok(won.ok && won.previous === undefined);
    const epoch = won.ok ? won.epoch : 0;

    const owner = await own.resolve('live/foo');
    assert.ok(owner);
    assert.deepEqual({ ...owner, since: 0 }, { key: 'live/foo', ...A, epoch, since: 0 });
    assert.ok(Math.abs(owner.since - Date.now()) < 5000, 'since is a ms timestamp');

    // Schema as documented: a hash with a TTL, an epoch counter, an index zset.
    assert.deepEqual(await redis.hgetall(`${prefix}stream:live/foo`), {
      nodeId: A.nodeId,
      addr: A.addr,
      epoch: String(epoch),
      since: String(owner.since),
    });
    const pttl = await redis.pttl(`${prefix}stream:live/foo`);
    assert.ok(pttl > 0 && pttl <= 5000, `lease pttl ${pttl}`);
    assert.equal(await redis.get(`${prefix}epoch:live/foo`), String(epoch));
    assert.ok((await redis.pttl(`${prefix}epoch:live/foo`)) > 6 * 24 * 3600 * 1000);
    assert.deepEqual(await redis.zrange(`${prefix}streams`, '0', '-1'), ['live/foo']);

    const lost = await own.claim('live/foo', B);
    assert.deepEqual(lost, { ok: false, owner });

    assert.equal(await own.refresh('live/foo', epoch, A), 'ok');
    assert.deepEqual(await own.list(), [owner]);
    assert.equal(await own.resolve('live/bar'), undefined);

    assert.equal(await own.release('live/foo', epoch + 1), false, 'a wrong epoch does not release');
    assert.equal(await own.release('live/foo', epoch), true);
    assert.equal(await own.resolve('live/foo'), undefined);
    assert.deepEqual(await own.list(), []);
    assert.equal(await redis.get(`${prefix}epoch:live/foo`), String(epoch), 'the counter survives release');

    const again = await own.claim('live/foo', B);
    assert.ok(again.ok && again.epoch > epoch, 'a later claim gets a higher epoch');
  });

  it('keeps a refreshed lease alive past leaseMs, expires an unrefreshed one, and list() prunes it', async () => {
    const own = new StreamOwnership(redis, { prefix: freshPrefix(), leaseMs: SHORT_LEASE_MS });
    const kept = await own.claim('live/kept', A);
    const dropped = await own.claim('live/dropped', B);
    assert.ok(kept.ok && dropped.ok);

    // Refresh live/kept every 100 ms for three lease lengths; live/dropped must expire meanwhile.
    const until = Date.now() + 3 * SHORT_LEASE_MS;
    while (Date.now() < until) {
      assert.equal(await own.refresh('live/kept', kept.epoch, A), 'ok');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await own.resolve('live/kept'))?.epoch, kept.epoch);
    await waitFor('live/dropped to expire', async () => (await own.resolve('live/dropped')) === undefined, 3000, 20);
    assert.deepEqual(
      (await own.list()).map((o) => o.key),
      ['live/kept'],
    );

    // Nobody claimed live/dropped since it expired: its owner may restore it.
    assert.equal(await own.refresh('live/dropped', dropped.epoch, B), 'restored');
    assert.equal((await own.resolve('live/dropped'))?.nodeId, B.nodeId);
    assert.equal((await own.resolve('live/dropped'))?.epoch, dropped.epoch);
  });

  it('list() drops expired entries from the index zset', async () => {
    const prefix = freshPrefix();
    const own = new StreamOwnership(redis, { prefix, leaseMs: SHORT_LEASE_MS });
    const long = new StreamOwnership(redis, { prefix, leaseMs: 60_000 });
    for (const key of ['live/a', 'live/b', 'live/c']) assert.ok((await own.claim(key, A)).ok);
    assert.ok((await long.claim('live/long', B)).ok);
    assert.deepEqual(
      (await own.list()).map((o) => o.key),
      ['live/a', 'live/b', 'live/c', 'live/long'],
    );
    // A hash can expire a millisecond before its index entry's score passes (both are "now + lease", but the score's
    // "now" is the script's TIME call, truncated to ms): list() then already hides it, and a later list() prunes it.
    await waitFor(
      'short leases to leave list() and the index',
      async () => (await own.list()).length === 1 && (await redis.zcard(`${prefix}streams`)) === 1,
      3000,
      20,
    );
    assert.deepEqual(await redis.zrange(`${prefix}streams`, '0', '-1'), ['live/long']);
  });

  it('fences an owner whose lease expired and was claimed by another node', async () => {
    const own = new StreamOwnership(redis, { prefix: freshPrefix(), leaseMs: SHORT_LEASE_MS });
    const a = await own.claim('live/x', A);
    assert.ok(a.ok);
    await waitFor('A lease to expire', async () => (await own.resolve('live/x')) === undefined, 3000, 20);

    const b = await own.claim('live/x', B);
    assert.ok(b.ok && b.epoch > a.epoch, 'the new owner has a higher epoch');
    assert.equal(b.previous, undefined, 'an expired lease is not a previous owner');

    assert.equal(await own.refresh('live/x', a.epoch, A), 'lost');
    assert.equal(await own.release('live/x', a.epoch), false);
    const owner = await own.resolve('live/x');
    assert.equal(owner?.nodeId, B.nodeId);
    assert.equal(owner?.epoch, b.epoch);

    // Even once B's lease is gone too, the stale owner cannot bring its old epoch back.
    assert.equal(await own.release('live/x', b.epoch), true);
    assert.equal(await own.refresh('live/x', a.epoch, A), 'lost');
    assert.equal(await own.resolve('live/x'), undefined);

    // And B, whose lease expired without anyone claiming, restores with its own epoch.
    const b2 = await own.claim('live/x', B);
    assert.ok(b2.ok && b2.epoch > b.epoch);
    await waitFor('B lease to expire', async () => (await own.resolve('live/x')) === undefined, 3000, 20);
    assert.equal(await own.refresh('live/x', b2.epoch, B), 'restored');
    assert.equal(await own.refresh('live/x', b2.epoch, B), 'ok');
  });

  it('takeover wins with a higher epoch and returns the previous owner; the old owner is fenced', async () => {
    const own = new StreamOwnership(redis, { prefix: freshPrefix(), leaseMs: 5000 });
    const a = await own.claim('live/t', A);
    assert.ok(a.ok);
    const held = await own.resolve('live/t');

    const b = await own.claim('live/t', B, { takeover: true });
    assert.ok(b.ok);
    assert.ok(b.epoch > a.epoch);
    assert.deepEqual(b.previous, held);

    assert.equal(await own.refresh('live/t', a.epoch, A), 'lost');
    assert.equal(await own.release('live/t', a.epoch), false);
    assert.equal((await own.resolve('live/t'))?.nodeId, B.nodeId);

    // The holder claiming again (a new publish session) gets a new epoch too, and its old record back.
    const b2 = await own.claim('live/t', B);
    assert.ok(b2.ok && b2.epoch > b.epoch);
    assert.equal(b2.previous?.epoch, b.epoch);
    assert.equal(await own.refresh('live/t', b.epoch, B), 'lost', "the older session's epoch is fenced");
    assert.equal(await own.refresh('live/t', b2.epoch, B), 'ok');
  });

  it('lets exactly one of 50 racing connections win a claim, and gives 50 racing takeovers distinct epochs', async () => {
    const prefix = freshPrefix();
    const racers = await Promise.all(Array.from({ length: 50 }, () => client()));
    const owns = racers.map((r) => new StreamOwnership(r, { prefix, leaseMs: 5000 }));
    const me = (i: number) => ({ nodeId: `origin-${i}`, addr: `10.0.1.${i}:1935` });

    const results = await Promise.all(owns.map((own, i) => own.claim('live/race', me(i))));
    const winners = results.flatMap((r, i) => (r.ok ? [{ i, epoch: r.epoch }] : []));
    assert.equal(winners.length, 1, `winners: ${JSON.stringify(winners)}`);
    const winner = winners[0]!;
    for (const r of results) {
      if (!r.ok) {
        assert.equal(r.owner.nodeId, me(winner.i).nodeId);
        assert.equal(r.owner.epoch, winner.epoch);
      }
    }
    assert.equal((await owns[0]!.resolve('live/race'))?.nodeId, me(winner.i).nodeId);

    const takeovers = await Promise.all(owns.map((own, i) => own.claim('live/race', me(i), { takeover: true })));
    const epochs = takeovers.map((r) => (r.ok ? r.epoch : -1));
    assert.ok(
      epochs.every((e) => e > winner.epoch),
      'every takeover wins with a newer epoch',
    );
    assert.equal(new Set(epochs).size, 50, 'epochs are unique');
    const final = await owns[0]!.resolve('live/race');
    assert.equal(final?.epoch, Math.max(...epochs), 'the last takeover (highest epoch) owns the stream');
    // Every takeover but the first replaced exactly the owner that held the epoch just below it.
    const chain = takeovers
      .flatMap((r) => (r.ok ? [{ epoch: r.epoch, previousEpoch: r.previous?.epoch }] : []))
      .sort((x, y) => x.epoch - y.epoch);
    assert.equal(chain[0]!.previousEpoch, winner.epoch);
    for (let k = 1; k < chain.length; k++) assert.equal(chain[k]!.previousEpoch, chain[k - 1]!.epoch);
  });

  it('node registry: register, get, list, remove, TTL expiry', async () => {
    const prefix = freshPrefix();
    const nodes = new NodeRegistry(redis, { prefix, ttlMs: SHORT_LEASE_MS });
    const rec = (id: string, role: NodeRecord['role']): NodeRecord => ({
      id,
      role,
      rtmpAddr: `${id}:1935`,
      httpAddr: `${id}:8080`,
      version: '0.1.0',
      startedAt: Date.now(),
      load: { viewers: 3, streams: 1, publishers: 1, egressBps: 8_000_000 },
    });
    const origin = rec('origin-1', 'origin');
    const edge = rec('edge-1', 'edge');
    await nodes.register(origin);
    await nodes.register(edge);
    assert.deepEqual(await nodes.list(), [edge, origin]);
    assert.deepEqual(await nodes.get('origin-1'), origin);
    assert.equal(await nodes.get('nope'), undefined);
    const pttl = await redis.pttl(`${prefix}node:origin-1`);
    assert.ok(pttl > 0 && pttl <= SHORT_LEASE_MS, `node pttl ${pttl}`);

    await nodes.remove('edge-1');
    assert.deepEqual(await nodes.list(), [origin]);
    assert.equal(await nodes.get('edge-1'), undefined);

    // A node that keeps registering stays; one that stops expires within its TTL.
    const kept = { ...origin, load: { ...origin.load, viewers: 42 } };
    const standalone = rec('solo', 'standalone');
    await nodes.register(standalone);
    const until = Date.now() + 3 * SHORT_LEASE_MS;
    while (Date.now() < until) {
      await nodes.register(kept);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor('solo to expire', async () => (await nodes.list()).length === 1, 3000, 20);
    assert.deepEqual(await nodes.list(), [kept]);
    assert.deepEqual(await redis.zrange(`${prefix}nodes`, '0', '-1'), ['origin-1'], 'the index is pruned');
    await waitFor('origin-1 to expire', async () => (await nodes.get('origin-1')) === undefined, 3000, 20);
    assert.deepEqual(await nodes.list(), []);
  });

  it('after a Redis restart (data lost) the owner restores its lease and epochs keep growing', async () => {
    const prefix = freshPrefix();
    const own = new StreamOwnership(redis, { prefix, leaseMs: 5000 });
    const a = await own.claim('live/r', A);
    const other = await own.claim('live/other', A);
    assert.ok(a.ok && other.ok);

    await server.restart();
    await waitForRedis(redis, 5000).catch(() => undefined);
    await waitFor(
      'the client to reconnect',
      async () => (await redis.ping().catch(() => 'not yet')) === 'PONG',
      10_000,
      50,
    );
    assert.equal(await own.resolve('live/r'), undefined, 'the restart emptied Redis');

    assert.equal(await own.refresh('live/r', a.epoch, A), 'restored');
    const owner = await own.resolve('live/r');
    assert.equal(owner?.nodeId, A.nodeId);
    assert.equal(owner?.addr, A.addr);
    assert.equal(owner?.epoch, a.epoch);
    assert.equal(await own.refresh('live/r', a.epoch, A), 'ok');
    assert.equal((await own.claim('live/r', B)).ok, false, 'the restored lease is held');
    const b = await own.claim('live/r', B, { takeover: true });
    assert.ok(b.ok && b.epoch > a.epoch);

    // Another node claimed live/other first after the restart: the epoch counter was lost with the data, yet the
    // new epoch is above the old one, and the old owner is fenced rather than restored.
    const b2 = await own.claim('live/other', B);
    assert.ok(b2.ok && b2.epoch > other.epoch, `${b2.ok && b2.epoch} > ${other.epoch}`);
    assert.equal(await own.refresh('live/other', other.epoch, A), 'lost');
  });

  it('rejects quickly while Redis is down, and works again once it is back', async () => {
    const own = new StreamOwnership(redis, { prefix: freshPrefix(), leaseMs: 5000 });
    const nodes = new NodeRegistry(redis, { prefix: freshPrefix(), ttlMs: 5000 });
    const a = await own.claim('live/down', A);
    assert.ok(a.ok);

    await server.kill();
    for (const attempt of [
      () => own.claim('live/new', A),
      () => own.refresh('live/down', a.epoch, A),
      () => own.resolve('live/down'),
      () => nodes.list(),
    ]) {
      const started = Date.now();
      await assert.rejects(attempt(), (err: unknown) => err instanceof Error);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 2000, `rejected after ${elapsed} ms`);
    }
    // Still failing fast a while into the outage (the client is reconnecting in the background).
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await assert.rejects(own.claim('live/new', B));
    assert.ok(Date.now() - started < 2000);

    // A client created during the outage does not hang either.
    const late = createRedis(server.url, { onError: () => undefined, connectTimeoutMs: 500 });
    clients.push(late);
    await assert.rejects(waitForRedis(late, 500));
    await assert.rejects(new StreamOwnership(late, { leaseMs: 5000 }).claim('live/late', A));

    await server.restart();
    await waitFor('the client to reconnect', async () => (await redis.ping().catch(() => 'no')) === 'PONG', 10_000);
    assert.equal(await own.refresh('live/down', a.epoch, A), 'restored');
    assert.ok((await own.claim('live/new', B)).ok);
    assert.ok(clientErrors.length > 0, 'connection errors were reported to onError');
  });
});
