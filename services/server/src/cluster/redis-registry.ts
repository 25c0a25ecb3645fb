/**
 * Cluster state in Redis: who owns each live stream (a lease fenced by an epoch) and which nodes are alive.
 * Redis is the truth; NATS events are only hints that make edges look here sooner.
 *
 * The key schema (keys, types, contents, expiry) is the "Redis schema" table in docs/ARCHITECTURE.md; all times are
 * milliseconds since the Unix epoch from the Redis server's clock (`TIME`), never from a node's clock.
 *
 * Stream ownership (all writes are Lua scripts, so each step is atomic):
 * - claim: if `<p>stream:<key>` exists and belongs to another node, the claim loses (unless takeover). Otherwise the
 *   epoch is max(counter + 1, server time in ms), bumped above the stored epoch if it is somehow not above it, and
 *   stored in the counter (TTL renewed); the hash is written `{nodeId, addr, epoch, since=now}` with PEXPIRE leaseMs
 *   and the zset score set to now + leaseMs. A claim by the current holder (a new publish session) also gets a new
 *   epoch. The time floor is what keeps epochs growing after Redis lost its data (counter included).
 * - refresh(epoch): if the hash's `epoch` equals mine, PEXPIRE it again (and renew the zset score and counter TTL).
 *   If the hash is gone (lease expired, or Redis restarted empty) and the counter is missing or not above mine
 *   (nobody claimed since), the hash is re-created with my epoch, `since=now`, `restored=1` ('restored'; the counter
 *   is set to my epoch). A restored hash is replaced by the refresh of a higher epoch ('restored' too): after a data
 *   loss the first holder to refresh may be a stale one (taken over shortly before the loss without knowing), and a
 *   higher epoch always comes from a later claim. So a restored lease never beats a newer claim, and once every live
 *   holder refreshed (within a third of a lease) the newest one holds the stream. Anything else is 'lost': a newer
 *   epoch exists, this owner is fenced.
 * - release(epoch): deletes the hash and its zset member only if the hash's `epoch` equals mine. The counter stays.
 * - resolve: HMGET of the hash (an expired lease is simply absent).
 * - list: a script drops zset members whose score is past, then the hashes of the remaining members are read
 *   (O(live streams); for dashboards and the API, not the hot path). No KEYS/SCAN anywhere.
 * Nodes: register = SET PX ttlMs + ZADD (score = now + ttlMs); remove = DEL + ZREM; list prunes the zset the same
 * way and MGETs the records.
 *
 * Epochs are integers that only grow per stream key, even across a Redis restart: each claim's is at least the server
 * time in ms (13 digits, well inside 2^53) and above the last one. Edges should prefer the owner with the higher
 * epoch. (This assumes the Redis server's clock does not step back across a restart by more than the claims' spacing.)
 *
 * Clocks: lease lengths are enforced by Redis's own expiry (relative PEXPIRE), and every absolute time (`since`,
 * zset scores, pruning) is read from `TIME` inside the scripts, so skew between nodes never affects who owns what
 * or what list() returns. Node clocks only matter for the refresh cadence: an owner should refresh every
 * leaseMs/3 or so and must consider its lease gone if no refresh succeeded within leaseMs of sending it (origins
 * stop serving the stream then: OriginPolicy's lease deadline). A paused process can outlive its lease anyway; the
 * epoch is what fences it: its next refresh answers 'lost'.
 * `NodeRecord.startedAt` is the node's own clock and is informational only.
 *
 * Deployment: standalone Redis or Sentinel. For Redis Cluster, give a prefix with a hash tag (e.g.
 * `rtmp:{relay}:`) so every key of one deployment lands in one slot, as the scripts touch several keys.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

import type { Role } from '../roles.js';

export interface StreamOwner {
  key: string;
  nodeId: string;
  /** host:port for RTMP pulls */
  addr: string;
  epoch: number;
  /** ms since the Unix epoch (Redis server clock) when this epoch was claimed or restored */
  since: number;
}

/** `previous` is the live record that was replaced (another node's on takeover, or my own older session). */
export type ClaimResult = { ok: true; epoch: number; previous?: StreamOwner } | { ok: false; owner: StreamOwner };

export type RefreshResult = 'ok' | 'restored' | 'lost';

export interface NodeRecord {
  id: string;
  role: Role;
  rtmpAddr: string;
  httpAddr: string;
  version: string;
  startedAt: number;
  load: { viewers: number; streams: number; publishers: number; egressBps: number };
}

/** How long an epoch counter outlives the last claim/refresh of its stream. */
const EPOCH_COUNTER_TTL_MS = 7 * 24 * 3600 * 1000;

/** A Lua script run by EVALSHA, falling back to EVAL when the server does not have it (first use, restart). */
class Script {
  private readonly sha: string;
  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }
  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Common prologue: `now` = Redis server time in ms; `int(n)` formats an integer for storage (a Lua number passed to
 * redis.call could otherwise be written in exponent form, which INCR and Number() would not read back as-is).
 */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%d', n) end
`;

/**
 * KEYS: stream hash, epoch counter, index zset. ARGV: stream key, nodeId, addr, leaseMs, takeover (1/0), counter TTL.
 * Returns {1, epoch [, prevNodeId, prevAddr, prevEpoch, prevSince]} or {0, nodeId, addr, epoch, since}.
 */
const CLAIM = new Script(`${NOW}
local cur = redis.call('HMGET', KEYS[1], 'nodeId', 'addr', 'epoch', 'since')
local held = cur[3] ~= false
if held and cur[1] ~= ARGV[2] and ARGV[5] ~= '1' then
  return {0, cur[1], cur[2], cur[3], cur[4]}
end
-- Epoch floor from time: max(counter + 1, now). The counter dies with the data if Redis restarts empty, and a lease
-- restored since then may carry an old epoch; an epoch of at least the server time still beats every epoch handed out
-- before, since each of those was at most its own claim time (plus the few claims within one ms).
local epoch = now
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if counter + 1 > epoch then
  epoch = counter + 1
end
if held and tonumber(cur[3]) >= epoch then
  epoch = tonumber(cur[3]) + 1
end
redis.call('SET', KEYS[2], int(epoch), 'PX', ARGV[6])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'nodeId', ARGV[2], 'addr', ARGV[3], 'epoch', int(epoch), 'since', int(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
if held then
  return {1, int(epoch), cur[1], cur[2], cur[3], cur[4]}
end
return {1, int(epoch)}
`);

/**
 * KEYS: stream hash, epoch counter, index zset. ARGV: stream key, epoch, nodeId, addr, leaseMs, counter TTL.
 * Returns 'ok', 'restored' or 'lost'.
 */
const REFRESH = new Script(`${NOW}
local mine = tonumber(ARGV[2])
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'restored')
if cur[1] then
  local stored = tonumber(cur[1])
  if stored == mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    if redis.call('PEXPIRE', KEYS[2], ARGV[6]) == 0 then
      redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[6])
    end
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
    return 'ok'
  end
  -- A restored lease is only "nobody newer showed up yet": a holder of a higher epoch got it from a later claim
  -- (epochs only grow), so it wins; the restorer's next refresh answers 'lost'. A claimed lease never yields.
  if cur[2] ~= '1' or mine < stored then
    return 'lost'
  end
else
  -- Vanished (expired, or Redis restarted empty): mine again unless someone claimed since. The counter holds the last
  -- epoch handed out; after a data loss it is gone or holds an older restored epoch, which a newer holder replaces.
  local counter = redis.call('GET', KEYS[2])
  if counter and tonumber(counter) > mine then
    return 'lost'
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[6])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'nodeId', ARGV[3], 'addr', ARGV[4], 'epoch', ARGV[2], 'since', int(now), 'restored', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
return 'restored'
`);

/** KEYS: stream hash, index zset. ARGV: stream key, epoch. Returns 1 if deleted, else 0. */
const RELEASE = new Script(`
local stored = redis.call('HGET', KEYS[1], 'epoch')
if stored and tonumber(stored) == tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
`);

/** KEYS: index zset. Drops members whose expiry score is past; returns the remaining members. */
const PRUNE_INDEX = new Script(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`);

/** KEYS: node record, node zset. ARGV: node id, JSON, ttlMs. */
const REGISTER_NODE = new Script(`${NOW}
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
`);

function positiveMs(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new RangeError(`${name} must be a positive integer (ms), got ${value}`);
  return value;
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch <= 0)
    throw new RangeError(`epoch must be a positive safe integer, got ${epoch}`);
}

function toOwner(key: string, fields: unknown[]): StreamOwner | undefined {
  const [nodeId, addr, epoch, since] = fields;
  if (typeof nodeId !== 'string' || typeof addr !== 'string' || epoch === null || epoch === undefined) return undefined;
  return { key, nodeId, addr, epoch: Number(epoch), since: Number(since) };
}

/** Per-stream ownership leases with fencing epochs (schema and semantics at the top of this file). */
export class StreamOwnership {
  private readonly prefix: string;
  private readonly leaseMs: number;

  constructor(
    private readonly redis: Redis,
    opts: { prefix?: string; leaseMs: number },
  ) {
    this.prefix = opts.prefix ?? 'rtmp:';
    this.leaseMs = positiveMs('leaseMs', opts.leaseMs);
  }

  private streamKey(key: string): string {
    return `${this.prefix}stream:${key}`;
  }
  private epochKey(key: string): string {
    return `${this.prefix}epoch:${key}`;
  }
  private indexKey(): string {
    return `${this.prefix}streams`;
  }

  /**
   * Claims `key` for `me`. Free or expired: won with a new epoch. Held by another node: lost (the current owner is
   * returned) unless `takeover`, which wins with a higher epoch and returns the replaced owner. Held by me: won with
   * a new epoch (a new publish session), `previous` is my older record.
   */
  async claim(key: string, me: { nodeId: string; addr: string }, opts?: { takeover?: boolean }): Promise<ClaimResult> {
    const reply = (await CLAIM.run(
      this.redis,
      [this.streamKey(key), this.epochKey(key), this.indexKey()],
      [key, me.nodeId, me.addr, this.leaseMs, opts?.takeover ? 1 : 0, EPOCH_COUNTER_TTL_MS],
    )) as unknown[];
    if (reply[0] === 1) {
      const epoch = Number(reply[1]);
      const previous = reply.length > 2 ? toOwner(key, reply.slice(2)) : undefined;
      return previous ? { ok: true, epoch, previous } : { ok: true, epoch };
    }
    const owner = toOwner(key, reply.slice(1));
    if (!owner) throw new Error(`unexpected claim reply for ${key}: ${JSON.stringify(reply)}`);
    return { ok: false, owner };
  }

  /**
   * Extends my lease if it is still mine ('ok'); re-creates it if it vanished and nobody claimed since
   * ('restored', e.g. after a Redis restart); otherwise 'lost': a newer epoch exists, stop publishing as owner.
   */
  async refresh(key: string, epoch: number, me: { nodeId: string; addr: string }): Promise<RefreshResult> {
    checkEpoch(epoch);
    const reply = await REFRESH.run(
      this.redis,
      [this.streamKey(key), this.epochKey(key), this.indexKey()],
      [key, epoch, me.nodeId, me.addr, this.leaseMs, EPOCH_COUNTER_TTL_MS],
    );
    if (reply === 'ok' || reply === 'restored' || reply === 'lost') return reply;
    throw new Error(`unexpected refresh reply for ${key}: ${JSON.stringify(reply)}`);
  }

  /** Deletes the lease only if it still carries `epoch`; true if it did. */
  async release(key: string, epoch: number): Promise<boolean> {
    checkEpoch(epoch);
    const reply = await RELEASE.run(this.redis, [this.streamKey(key), this.indexKey()], [key, epoch]);
    return reply === 1;
  }

  /** The live owner of `key`, if any. */
  async resolve(key: string): Promise<StreamOwner | undefined> {
    const fields = await this.redis.hmget(this.streamKey(key), 'nodeId', 'addr', 'epoch', 'since');
    return toOwner(key, fields);
  }

  /** Every stream with a live lease, sorted by key. */
  async list(): Promise<StreamOwner[]> {
    const keys = (await PRUNE_INDEX.run(this.redis, [this.indexKey()], [])) as string[];
    if (keys.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.hmget(this.streamKey(key), 'nodeId', 'addr', 'epoch', 'since');
    const replies = (await pipeline.exec()) ?? [];
    const owners: StreamOwner[] = [];
    keys.forEach((key, i) => {
      const [err, fields] = replies[i] ?? [new Error('missing pipeline reply'), null];
      if (err) throw err;
      const owner = toOwner(key, fields as unknown[]);
      if (owner) owners.push(owner); // expired between the prune and the read
    });
    return owners.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

/** Node liveness: each node re-registers periodically (e.g. every ttlMs/3); a record lives ttlMs after its last write. */
export class NodeRegistry {
  private readonly prefix: string;
  private readonly ttlMs: number;

  constructor(
    private readonly redis: Redis,
    opts: { prefix?: string; ttlMs: number },
  ) {
    this.prefix = opts.prefix ?? 'rtmp:';
    this.ttlMs = positiveMs('ttlMs', opts.ttlMs);
  }

  private nodeKey(id: string): string {
    return `${this.prefix}node:${id}`;
  }
  private indexKey(): string {
    return `${this.prefix}nodes`;
  }

  async register(rec: NodeRecord): Promise<void> {
    await REGISTER_NODE.run(
      this.redis,
      [this.nodeKey(rec.id), this.indexKey()],
      [rec.id, JSON.stringify(rec), this.ttlMs],
    );
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi().del(this.nodeKey(id)).zrem(this.indexKey(), id).exec();
  }

  async get(id: string): Promise<NodeRecord | undefined> {
    return parseNode(await this.redis.get(this.nodeKey(id)));
  }

  /** Every unexpired node record, sorted by id. */
  async list(): Promise<NodeRecord[]> {
    const ids = (await PRUNE_INDEX.run(this.redis, [this.indexKey()], [])) as string[];
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => this.nodeKey(id)));
    const nodes: NodeRecord[] = [];
    for (const value of values) {
      const node = parseNode(value);
      if (node) nodes.push(node);
    }
    return nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

/** A stored record, or undefined if absent or not a node record (a malformed value is treated as absent). */
function parseNode(value: string | null): NodeRecord | undefined {
  if (value === null) return undefined;
  try {
    const rec = JSON.parse(value) as NodeRecord;
    return rec && typeof rec === 'object' && typeof rec.id === 'string' ? rec : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An ioredis client that fails fast and never replays a command late:
 * - `enableOfflineQueue: false`: while disconnected (and before the first connection is ready) a command is rejected
 *   at once instead of being queued. Origins need an answer now to decide what happens to a new publish while Redis
 *   is down; and a queued claim that the caller already gave up on must not run minutes later when Redis comes back.
 *   Consequence: await `waitForRedis()` before first use.
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: commands in flight when the connection drops
 *   are rejected, not resent after reconnecting (their outcome is unknown to the caller; leases make that safe: an
 *   unknown claim expires after leaseMs, refresh and release are idempotent).
 * - `commandTimeout` (default 1000 ms): bounds a command on a connection that is dead but not yet closed (network
 *   partition). `connectTimeout` (default 2000 ms) bounds each connection attempt.
 * - `retryStrategy`: reconnects forever, exponential backoff from 50 ms capped at 2 s, with jitter.
 * Errors are passed to `onError` (reconnect noise included); without it ioredis prints unhandled ones to stderr.
 */
/** Where and how to connect: address, database, credentials, TLS (the connection policy is createRedis's). */
export type RedisConnectTarget = Pick<
  RedisOptions,
  'host' | 'port' | 'db' | 'family' | 'username' | 'password' | 'tls'
>;

/**
 * A client with the registry's connection policy (fail fast, no offline queue, capped backoff) for `target`: a
 * `redis://` / `rediss://` URL, or address + credentials + TLS (see connections.ts `redisConnectOptions`).
 */
export function createRedis(
  target: string | RedisConnectTarget,
  opts?: {
    connectTimeoutMs?: number;
    commandTimeoutMs?: number;
    connectionName?: string;
    onError?: (err: Error) => void;
  },
): Redis {
  const policy: RedisOptions = {
    lazyConnect: false,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: opts?.connectTimeoutMs ?? 2000,
    commandTimeout: opts?.commandTimeoutMs ?? 1000,
    keepAlive: 5000,
    ...(opts?.connectionName ? { connectionName: opts.connectionName } : {}),
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 10), 2000) + Math.floor(Math.random() * 100),
  };
  const redis = typeof target === 'string' ? new Redis(target, policy) : new Redis({ ...target, ...policy });
  if (opts?.onError) redis.on('error', opts.onError);
  return redis;
}

/** Resolves once `redis` is ready for commands; rejects after `timeoutMs` with the last connection error. */
export function waitForRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => {
      lastError = err;
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('redis connection closed for good before it was ready'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ''}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      redis.off('end', onEnd);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
    redis.on('end', onEnd);
  });
}
