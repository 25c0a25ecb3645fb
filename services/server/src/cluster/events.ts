/**
 * Cluster control events over NATS: versioned JSON messages that wake nodes up ("push, don't poll").
 *
 * Redis stays the source of truth (ownership leases and epochs). These events only make nodes react at once
 * instead of on their next timeout or retry, so a lost event costs a slower path, never a wrong one. Consumers
 * must therefore be idempotent and fence by `epoch` (ignore a stream event whose epoch is lower than the one they
 * already know for that key); `at` is informational (sender clock, ms since the Unix epoch), not for ordering.
 *
 * ## Subjects and payloads (protocol version 1)
 *
 * `<prefix>` is configurable (default `rtmp`); the version segment is `v1`. Every payload is a UTF-8 JSON object
 * carrying `v: 1` and a `type` that matches its subject. Fields marked `?` are optional.
 *
 * | subject                           | type                     | payload fields                                                                 |
 * |-----------------------------------|--------------------------|--------------------------------------------------------------------------------|
 * | `<prefix>.v1.stream.published`    | `stream.published`       | `v, type, key, app, name, nodeId, addr, epoch, at`                             |
 * | `<prefix>.v1.stream.unpublished`  | `stream.unpublished`     | `v, type, key, nodeId, epoch, at`                                              |
 * | `<prefix>.v1.stream.moved`        | `stream.moved`           | `v, type, key, fromNodeId?, nodeId, addr, epoch, at`                           |
 * | `<prefix>.v1.node.up`             | `node.up`                | `v, type, nodeId, role, rtmpAddr, httpAddr, version?, load?, at`               |
 * | `<prefix>.v1.node.down`           | `node.down`              | same as `node.up`                                                              |
 * | `<prefix>.v1.node.load`           | `node.load`              | same as `node.up`                                                              |
 * | `<prefix>.v1.admin.<nodeId>`      | `admin.*` (see below)    | `v, type, key, target, sessionId?, reason?, from?, at` (`target` = `<nodeId>`) |
 * | `<prefix>.v1.admin.all`           | `admin.*` (see below)    | `v, type, key, sessionId?, reason?, from?, at` (no `target`: every node)       |
 *
 * Field meanings:
 * - `key`: the stream key (`<app>/<name>`); `app`, `name`: its two parts. Keys never appear in subjects (they may
 *   contain characters that are not valid in a NATS subject token).
 * - `nodeId`: the node the event is about: for stream events the (new) owner origin; `fromNodeId`: the previous owner.
 * - `addr`: `host:port` of the owner's RTMP listener, where edges pull from.
 * - `epoch`: the ownership fencing epoch from the Redis lease (a non-negative integer that only grows per key).
 *   `stream.moved` is a takeover or failover: a new owner with a higher epoch than the previous one.
 * - `role`: `standalone` | `origin` | `edge`; `rtmpAddr`, `httpAddr`: `host:port` of the node's listeners;
 *   `version`: software version; `load`: `{ viewers, streams, publishers, egressBps }` (non-negative numbers).
 *   `node.up` on start, `node.load` periodically (a heartbeat), `node.down` on a clean shutdown (a crash sends none:
 *   Redis lease expiry is the authority).
 * - `at`: sender's `Date.now()` when the event was built.
 * - Admin commands, addressed to one node (`target`, subject `admin.<target>`) or to all nodes (no `target`, subject
 *   `admin.all`); `from` says who sent it (a node id or an operator), `reason` is free text for logs:
 *   - `admin.kick_publisher`: close the publisher of `key` on the receiving node.
 *   - `admin.kick_viewer`: close the viewer connection `sessionId` of `key`, or every viewer of `key` without one.
 *   - `admin.drop_stream`: close the publisher and every viewer of `key`.
 *   - `admin.release_stream`: "you are no longer the owner of `key`: drop your publisher and release" (cross-origin
 *     takeover: the new owner already holds the lease with a higher epoch; the old owner must not touch the lease).
 *   `sessionId` is an extension of the admin payload (optional; only meaningful for `admin.kick_viewer`).
 *
 * Node ids used in admin subjects are used verbatim: they must not contain whitespace, `*` or `>`, nor empty
 * dot-separated parts, and `all` is reserved. Ids with dots (allowed by the config) span several subject tokens,
 * which is why monitors subscribe to `<prefix>.v1.admin.>` rather than `admin.*`.
 *
 * Compatibility: receivers ignore unknown fields (they are stripped), so v1 may gain optional fields. Anything else
 * (a new type, a changed field) is a new version with its own subjects (`<prefix>.v2...`). A message that is not
 * JSON, has `v !== 1`, fails the schema, or whose subject does not match its payload is ignored and reported through
 * `onInvalid` (and counted in `stats.invalid`); it never throws into the subscriber.
 *
 * ## Connection policy (ControlBus)
 *
 * - A node starts whether or not NATS is up: `ControlBus.connect()` waits at most `initialWaitMs` (default 2 s) for the
 *   first connection, then resolves with a disconnected bus that keeps trying in the background (every
 *   `reconnectWaitMs`, forever) and calls `onStatus(true)` when it gets there. We run that first-connection loop
 *   ourselves rather than using nats.js `waitOnFirstConnect`, whose `connect()` promise cannot be cancelled: a node
 *   shut down while NATS is unreachable would keep dialing. Handlers registered meanwhile are subscribed on connect.
 * - Once connected, nats.js reconnects forever (`maxReconnectAttempts: -1`, `reconnectTimeWait` = `reconnectWaitMs`
 *   plus jitter) and re-subscribes by itself. If the connection is closed anyway (e.g. repeated auth errors), the bus
 *   starts over with a new connection. Dead links are detected by pings (`pingIntervalMs` x `maxPingOut`, default
 *   5 s x 3) instead of nats.js's 2-minute default.
 * - `publish()` never throws. While disconnected (or after close) the event is dropped and counted (`stats.dropped`):
 *   nats.js v2 would discard it anyway (it resets its outbound buffer on every dial), and replaying stale commands
 *   after an outage (a kick or release minutes later) would be wrong. Redis remains the truth, so a dropped event only
 *   costs a slower path. `publish()` returns whether the event was handed to the connection.
 * - `close()` drains (bounded by `closeTimeoutMs`), then closes; it is idempotent.
 */
import { connect, Events, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from 'nats';
import { z } from 'zod';

export const PROTOCOL_VERSION = 1 as const;
export const DEFAULT_PREFIX = 'rtmp';

// ---------------------------------------------------------------------------------------------------------------
// Schemas and types

/** Node ids as they appear in admin subjects: subject tokens without wildcards or whitespace; `all` is reserved. */
const SUBJECT_TOKENS_RE = /^[^\s.*>]+(?:\.[^\s.*>]+)*$/;
const PREFIX_RE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

export function isValidAdminNodeId(nodeId: string): boolean {
  return nodeId !== 'all' && SUBJECT_TOKENS_RE.test(nodeId);
}

const id = z.string().min(1).max(1024);
const count = z.number().int().nonnegative();
const time = z.number().int().nonnegative();
const epoch = z.number().int().nonnegative();
const adminNodeId = id.refine(
  isValidAdminNodeId,
  'not usable in a subject (whitespace, "*", ">", empty part or "all")',
);

export const NODE_ROLES = ['standalone', 'origin', 'edge'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

const base = { v: z.literal(PROTOCOL_VERSION), at: time };

export const StreamPublishedSchema = z.object({
  ...base,
  type: z.literal('stream.published'),
  key: id,
  app: z.string().max(1024),
  name: z.string().max(1024),
  nodeId: id,
  addr: id,
  epoch,
});
export const StreamUnpublishedSchema = z.object({
  ...base,
  type: z.literal('stream.unpublished'),
  key: id,
  nodeId: id,
  epoch,
});
export const StreamMovedSchema = z.object({
  ...base,
  type: z.literal('stream.moved'),
  key: id,
  fromNodeId: id.optional(),
  nodeId: id,
  addr: id,
  epoch,
});

export const NodeLoadSchema = z.object({
  viewers: count,
  streams: count,
  publishers: count,
  egressBps: z.number().nonnegative(),
});
const nodeFields = {
  ...base,
  nodeId: id,
  role: z.enum(NODE_ROLES),
  rtmpAddr: id,
  httpAddr: id,
  version: z.string().max(256).optional(),
  load: NodeLoadSchema.optional(),
  /** Whether the sender reaches Redis now: origins tell a global Redis outage from their own partition by it. */
  redisUp: z.boolean().optional(),
};
export const NodeUpSchema = z.object({ ...nodeFields, type: z.literal('node.up') });
export const NodeDownSchema = z.object({ ...nodeFields, type: z.literal('node.down') });
export const NodeLoadEventSchema = z.object({ ...nodeFields, type: z.literal('node.load') });

export const ADMIN_TYPES = [
  'admin.kick_publisher',
  'admin.kick_viewer',
  'admin.drop_stream',
  'admin.release_stream',
] as const;
export type AdminType = (typeof ADMIN_TYPES)[number];
const adminFields = {
  ...base,
  key: id,
  /** Destination node; omitted: every node (subject `admin.all`). */
  target: adminNodeId.optional(),
  /** kick_viewer: one viewer connection; omitted: every viewer of `key`. */
  sessionId: id.optional(),
  reason: z.string().max(1024).optional(),
  from: z.string().max(1024).optional(),
};
export const AdminKickPublisherSchema = z.object({ ...adminFields, type: z.literal('admin.kick_publisher') });
export const AdminKickViewerSchema = z.object({ ...adminFields, type: z.literal('admin.kick_viewer') });
export const AdminDropStreamSchema = z.object({ ...adminFields, type: z.literal('admin.drop_stream') });
export const AdminReleaseStreamSchema = z.object({ ...adminFields, type: z.literal('admin.release_stream') });

export const ControlEventSchema = z.discriminatedUnion('type', [
  StreamPublishedSchema,
  StreamUnpublishedSchema,
  StreamMovedSchema,
  NodeUpSchema,
  NodeDownSchema,
  NodeLoadEventSchema,
  AdminKickPublisherSchema,
  AdminKickViewerSchema,
  AdminDropStreamSchema,
  AdminReleaseStreamSchema,
]);

export type StreamPublished = z.infer<typeof StreamPublishedSchema>;
export type StreamUnpublished = z.infer<typeof StreamUnpublishedSchema>;
export type StreamMoved = z.infer<typeof StreamMovedSchema>;
export type NodeLoad = z.infer<typeof NodeLoadSchema>;
export type NodeUp = z.infer<typeof NodeUpSchema>;
export type NodeDown = z.infer<typeof NodeDownSchema>;
export type NodeLoadEvent = z.infer<typeof NodeLoadEventSchema>;
export type AdminKickPublisher = z.infer<typeof AdminKickPublisherSchema>;
export type AdminKickViewer = z.infer<typeof AdminKickViewerSchema>;
export type AdminDropStream = z.infer<typeof AdminDropStreamSchema>;
export type AdminReleaseStream = z.infer<typeof AdminReleaseStreamSchema>;

/** Every control event (discriminated by `type`). */
export type ControlEvent = z.infer<typeof ControlEventSchema>;
export type ControlEventType = ControlEvent['type'];
export type EventOf<T extends ControlEventType> = Extract<ControlEvent, { type: T }>;
export type StreamEvent = StreamPublished | StreamUnpublished | StreamMoved;
export type NodeEvent = NodeUp | NodeDown | NodeLoadEvent;
export type AdminEvent = EventOf<AdminType>;

export const CONTROL_EVENT_TYPES: readonly ControlEventType[] = [
  'stream.published',
  'stream.unpublished',
  'stream.moved',
  'node.up',
  'node.down',
  'node.load',
  ...ADMIN_TYPES,
];

export function isAdminEvent(event: ControlEvent): event is AdminEvent {
  return event.type.startsWith('admin.');
}

/** The fields a caller supplies to build an event: everything but `v` and `type`; `at` defaults to now. */
export type EventFields<T extends ControlEventType> = Omit<EventOf<T>, 'v' | 'type' | 'at'> & { at?: number };

/** Builds a v1 event: `controlEvent('stream.published', { key, app, name, nodeId, addr, epoch })`. */
export function controlEvent<T extends ControlEventType>(type: T, fields: EventFields<T>): EventOf<T> {
  const { at, ...rest } = fields;
  return { v: PROTOCOL_VERSION, type, ...rest, at: at ?? Date.now() } as unknown as EventOf<T>;
}

// ---------------------------------------------------------------------------------------------------------------
// Subjects

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new TypeError(
      `invalid control subject prefix ${JSON.stringify(prefix)}: expected dot-separated [A-Za-z0-9_-] tokens`,
    );
  }
}

/** The subjects of one prefix (see the table at the top of this file). */
export function subjects(prefix: string = DEFAULT_PREFIX) {
  assertValidPrefix(prefix);
  const root = `${prefix}.v${PROTOCOL_VERSION}`;
  return {
    root,
    streamPublished: `${root}.stream.published`,
    streamUnpublished: `${root}.stream.unpublished`,
    streamMoved: `${root}.stream.moved`,
    nodeUp: `${root}.node.up`,
    nodeDown: `${root}.node.down`,
    nodeLoad: `${root}.node.load`,
    /** Commands for one node. */
    admin(nodeId: string): string {
      if (!isValidAdminNodeId(nodeId))
        throw new TypeError(`node id ${JSON.stringify(nodeId)} is not usable in an admin subject`);
      return `${root}.admin.${nodeId}`;
    },
    /** Commands for every node. */
    adminAll: `${root}.admin.all`,
    /** Every admin command, whatever its destination (monitoring). */
    adminAny: `${root}.admin.>`,
    /** Everything of this version (monitoring). */
    any: `${root}.>`,
  };
}

/** The subject an event is published on. Throws a TypeError for an admin `target` not usable in a subject. */
export function subjectFor(event: ControlEvent, prefix: string = DEFAULT_PREFIX): string {
  assertValidPrefix(prefix);
  const root = `${prefix}.v${PROTOCOL_VERSION}`;
  if (isAdminEvent(event)) {
    if (event.target === undefined) return `${root}.admin.all`;
    return subjects(prefix).admin(event.target);
  }
  // Stream and node event types are their subject suffixes.
  return `${root}.${event.type}`;
}

/** The subject `on(type)` listens on: the event's own subject, or every admin subject for admin types. */
function subscriptionSubjectFor(type: ControlEventType, prefix: string): string {
  const s = subjects(prefix);
  return type.startsWith('admin.') ? s.adminAny : `${s.root}.${type}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

export type InvalidReason = 'json' | 'version' | 'schema' | 'subject';

/** Why an incoming message was ignored (passed to `onInvalid`); `reason` is a stable label for metrics. */
export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
  readonly reason: InvalidReason;
  constructor(reason: InvalidReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export type DecodeResult = { ok: true; event: ControlEvent } | { ok: false; error: InvalidEventError };

/** Parses and validates one message; never throws. The subject must be the one `subjectFor` gives the payload. */
export function decodeControlEvent(subject: string, data: Uint8Array, prefix: string = DEFAULT_PREFIX): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(data));
  } catch (err) {
    return { ok: false, error: new InvalidEventError('json', 'payload is not UTF-8 JSON', { cause: err }) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: new InvalidEventError('schema', 'payload is not a JSON object') };
  }
  const v = (value as { v?: unknown }).v;
  if (v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      error: new InvalidEventError(
        'version',
        `unsupported version ${JSON.stringify(v ?? null)} (expected ${PROTOCOL_VERSION})`,
      ),
    };
  }
  const parsed = ControlEventSchema.safeParse(value);
  if (!parsed.success) {
    return {
      ok: false,
      error: new InvalidEventError('schema', z.prettifyError(parsed.error), { cause: parsed.error }),
    };
  }
  let expected: string;
  try {
    expected = subjectFor(parsed.data, prefix);
  } catch (err) {
    return { ok: false, error: new InvalidEventError('subject', String(err), { cause: err }) };
  }
  if (expected !== subject) {
    return {
      ok: false,
      error: new InvalidEventError('subject', `a ${parsed.data.type} event for ${expected} arrived on ${subject}`),
    };
  }
  return { ok: true, event: parsed.data };
}

// ---------------------------------------------------------------------------------------------------------------
// Bus

export type EventHandler<E> = (event: E, subject: string) => void | Promise<void>;

export interface ControlBusStats {
  /** Events handed to the connection. */
  published: number;
  /** Events not sent because the bus was disconnected or closed. */
  dropped: number;
  /** Outgoing events that failed validation (a caller bug; reported through onError). */
  rejected: number;
  /** Valid incoming messages (per subscription that received them). */
  received: number;
  /** Incoming messages ignored as malformed, of another version, or on the wrong subject. */
  invalid: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
}

/** What the node uses: implemented by ControlBus (NATS) and NoopBus (standalone). */
export interface EventBus {
  readonly connected: boolean;
  readonly stats: Readonly<ControlBusStats>;
  /** Never throws; returns whether the event was handed to the connection (false: dropped and counted). */
  publish(event: ControlEvent): boolean;
  /** Handler for one event type (admin types: every admin command, whatever its target). Returns an unsubscribe. */
  on<T extends ControlEventType>(type: T, handler: EventHandler<EventOf<T>>): () => void;
  /** Admin commands for `nodeId` (subject `admin.<nodeId>`) and for every node (`admin.all`). Returns an unsubscribe. */
  onAdmin(nodeId: string, handler: EventHandler<AdminEvent>): () => void;
  /** Resolves once the server has processed everything sent so far (subscriptions included); rejects if not connected. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where and how to connect: servers plus credentials and TLS (see connections.ts `natsConnectOptions`). The bus adds
 * its own connection policy (timeouts, reconnects, pings) on top.
 */
export type NatsConnectOptions = Pick<ConnectionOptions, 'user' | 'pass' | 'token' | 'authenticator' | 'tls'> & {
  servers: string[];
};

export interface ControlBusOptions {
  /** Client name shown by the NATS server (e.g. the node id). */
  name: string;
  /** Subject prefix (default `rtmp`). */
  prefix?: string;
  /** Called on every change of `connected` (first connect, disconnect, reconnect, close). */
  onStatus?: (connected: boolean) => void;
  /** Called for each incoming message that is ignored; `err` is an InvalidEventError. */
  onInvalid?: (subject: string, err: unknown) => void;
  /**
   * Called for handler errors (context `handler`), rejected outgoing events (`publish`), subscription errors
   * (`subscribe`) and failed connection attempts (`connect`, once per outage). Default: handler and publish errors are
   * written with console.error, the others are only reflected in `connected`.
   */
  onError?: (err: unknown, context: 'handler' | 'publish' | 'subscribe' | 'connect') => void;
  /** How long `connect()` waits for the first connection before resolving with a bus still trying (default 2000). */
  initialWaitMs?: number;
  /** Wait between connection attempts (default 1000; nats.js adds up to 100 ms of jitter). */
  reconnectWaitMs?: number;
  /** Handshake timeout of one connection attempt (default 5000). */
  connectTimeoutMs?: number;
  /** Client ping interval (default 5000); the link is declared dead after `maxPingOut` (default 3) unanswered pings. */
  pingIntervalMs?: number;
  maxPingOut?: number;
  /** Upper bound of the drain in `close()` (default 2000). */
  closeTimeoutMs?: number;
}

interface Listener {
  accepts(event: ControlEvent): boolean;
  handler: EventHandler<ControlEvent>;
}

interface Route {
  listeners: Set<Listener>;
  sub: Subscription | null;
}

function newStats(): ControlBusStats {
  return { published: 0, dropped: 0, rejected: 0, received: 0, invalid: 0, handlerErrors: 0 };
}

function defaultOnError(err: unknown, context: string): void {
  if (context === 'handler' || context === 'publish') console.error(`ControlBus ${context} error:`, err);
}

/** NATS-backed control bus. See the connection policy at the top of this file. */
export class ControlBus implements EventBus {
  readonly prefix: string;
  readonly #stats = newStats();
  readonly #target: NatsConnectOptions;
  readonly #opts: ControlBusOptions;
  readonly #routes = new Map<string, Route>();
  readonly #encoder = new TextEncoder();
  #nc: NatsConnection | null = null;
  #connected = false;
  #closing = false;
  #closePromise: Promise<void> | null = null;
  #loop: Promise<void> = Promise.resolve();
  #firstConnect: (() => void) | null = null;
  #sleepTimer: NodeJS.Timeout | null = null;
  #wake: (() => void) | null = null;

  private constructor(target: NatsConnectOptions, opts: ControlBusOptions) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX;
    assertValidPrefix(this.prefix);
    this.#target = target;
    this.#opts = opts;
  }

  /**
   * Starts connecting to `target` (a URL, or several separated by commas; or servers with credentials and TLS) and
   * resolves once connected or after `initialWaitMs`, whichever comes first: NATS being down never makes it reject
   * (invalid options do).
   */
  static async connect(target: string | NatsConnectOptions, opts: ControlBusOptions): Promise<ControlBus> {
    const resolved: NatsConnectOptions =
      typeof target === 'string'
        ? {
            servers: target
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s.length > 0),
          }
        : { ...target, servers: [...target.servers] };
    if (resolved.servers.length === 0) throw new TypeError('ControlBus.connect: no NATS server given');
    const bus = new ControlBus(resolved, opts);
    const first = new Promise<void>((resolve) => (bus.#firstConnect = resolve));
    bus.#loop = bus.#run().catch((err: unknown) => bus.#report(err, 'connect'));
    const waitMs = opts.initialWaitMs ?? 2000;
    if (waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([first, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return bus;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get stats(): Readonly<ControlBusStats> {
    return this.#stats;
  }

  publish(event: ControlEvent): boolean {
    let subject: string;
    let data: Uint8Array;
    try {
      const parsed = ControlEventSchema.safeParse(event);
      if (!parsed.success)
        throw new InvalidEventError('schema', z.prettifyError(parsed.error), { cause: parsed.error });
      subject = subjectFor(parsed.data, this.prefix);
      data = this.#encoder.encode(JSON.stringify(parsed.data));
    } catch (err) {
      this.#stats.rejected++;
      this.#report(err, 'publish');
      return false;
    }
    const nc = this.#nc;
    if (!this.#connected || this.#closing || nc === null) {
      this.#stats.dropped++;
      return false;
    }
    try {
      nc.publish(subject, data);
      this.#stats.published++;
      return true;
    } catch {
      // Closed or draining between our checks and the call.
      this.#stats.dropped++;
      return false;
    }
  }

  on<T extends ControlEventType>(type: T, handler: EventHandler<EventOf<T>>): () => void {
    if (!CONTROL_EVENT_TYPES.includes(type)) throw new TypeError(`unknown control event type ${JSON.stringify(type)}`);
    return this.#listen(subscriptionSubjectFor(type, this.prefix), {
      accepts: (event) => event.type === type,
      handler: handler as EventHandler<ControlEvent>,
    });
  }

  onAdmin(nodeId: string, handler: EventHandler<AdminEvent>): () => void {
    const s = subjects(this.prefix);
    const listener: Listener = { accepts: isAdminEvent, handler: handler as EventHandler<ControlEvent> };
    const offOwn = this.#listen(s.admin(nodeId), listener);
    const offAll = this.#listen(s.adminAll, { ...listener });
    return () => {
      offOwn();
      offAll();
    };
  }

  async flush(): Promise<void> {
    const nc = this.#nc;
    if (!this.#connected || nc === null) throw new Error('ControlBus is not connected');
    await nc.flush();
  }

  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    const nc = this.#nc;
    if (nc !== null && !nc.isClosed()) {
      if (this.#connected && !nc.isDraining()) {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#opts.closeTimeoutMs ?? 2000)));
        await Promise.race([nc.drain().catch(() => undefined), bound]);
        clearTimeout(timer);
      }
      if (!nc.isClosed()) await nc.close().catch(() => undefined);
    }
    // The loop ends at once unless a connection attempt is in flight (bounded by connectTimeoutMs): it then closes
    // whatever that attempt returns. Don't hold close() for it.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#loop, new Promise<void>((resolve) => (timer = setTimeout(resolve, 100)))]);
    clearTimeout(timer);
    this.#setConnected(false);
  }

  /** One connection at a time, for as long as the bus is open. */
  async #run(): Promise<void> {
    let failing = false;
    while (!this.#closing) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          ...this.#target,
          name: this.#opts.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.#opts.reconnectWaitMs ?? 1000,
          reconnectJitter: 100,
          waitOnFirstConnect: false,
          timeout: this.#opts.connectTimeoutMs ?? 5000,
          pingInterval: this.#opts.pingIntervalMs ?? 5000,
          maxPingOut: this.#opts.maxPingOut ?? 3,
        });
      } catch (err) {
        if (!failing) this.#report(err, 'connect');
        failing = true;
        await this.#sleep(this.#opts.reconnectWaitMs ?? 1000);
        continue;
      }
      failing = false;
      if (this.#closing) {
        await nc.close().catch(() => undefined);
        break;
      }
      this.#nc = nc;
      const status = this.#watchStatus(nc);
      for (const [subject, route] of this.#routes) this.#subscribe(nc, subject, route);
      this.#setConnected(true);
      this.#firstConnect?.();
      this.#firstConnect = null;
      const err = await nc.closed();
      await status;
      this.#nc = null;
      for (const route of this.#routes.values()) route.sub = null;
      this.#setConnected(false);
      if (!this.#closing) {
        if (err) this.#report(err, 'connect');
        await this.#sleep(this.#opts.reconnectWaitMs ?? 1000);
      }
    }
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) this.#setConnected(false);
        else if (s.type === Events.Reconnect) this.#setConnected(!this.#closing);
      }
    } catch {
      // The iterator only ends with the connection.
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#closing) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = () => {
        if (this.#sleepTimer) clearTimeout(this.#sleepTimer);
        this.#sleepTimer = null;
        this.#wake = null;
        resolve();
      };
      this.#sleepTimer = setTimeout(this.#wake, ms);
    });
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    try {
      this.#opts.onStatus?.(connected);
    } catch (err) {
      this.#report(err, 'handler');
    }
  }

  #report(err: unknown, context: 'handler' | 'publish' | 'subscribe' | 'connect'): void {
    try {
      (this.#opts.onError ?? defaultOnError)(err, context);
    } catch {
      // A failing error reporter must not break the bus.
    }
  }

  #listen(subject: string, listener: Listener): () => void {
    let route = this.#routes.get(subject);
    if (!route) {
      route = { listeners: new Set(), sub: null };
      this.#routes.set(subject, route);
      const nc = this.#nc;
      if (nc !== null && !this.#closing) this.#subscribe(nc, subject, route);
    }
    route.listeners.add(listener);
    const r = route;
    return () => {
      if (!r.listeners.delete(listener) || r.listeners.size > 0) return;
      if (this.#routes.get(subject) === r) this.#routes.delete(subject);
      try {
        r.sub?.unsubscribe();
      } catch {
        // Connection already closed: nothing to undo.
      }
      r.sub = null;
    };
  }

  #subscribe(nc: NatsConnection, subject: string, route: Route): void {
    if (nc.isClosed() || nc.isDraining()) return;
    try {
      route.sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) this.#report(err, 'subscribe');
          else this.#deliver(msg, route);
        },
      });
    } catch (err) {
      this.#report(err, 'subscribe');
    }
  }

  #deliver(msg: Msg, route: Route): void {
    const result = decodeControlEvent(msg.subject, msg.data, this.prefix);
    if (!result.ok) {
      this.#stats.invalid++;
      try {
        this.#opts.onInvalid?.(msg.subject, result.error);
      } catch (err) {
        this.#report(err, 'handler');
      }
      return;
    }
    this.#stats.received++;
    for (const listener of [...route.listeners]) {
      if (!listener.accepts(result.event)) continue;
      try {
        const r: unknown = listener.handler(result.event, msg.subject);
        if (r instanceof Promise) {
          r.then(undefined, (err: unknown) => {
            this.#stats.handlerErrors++;
            this.#report(err, 'handler');
          });
        }
      } catch (err) {
        this.#stats.handlerErrors++;
        this.#report(err, 'handler');
      }
    }
  }
}

/** The bus of the standalone role: publishes nowhere (counted as dropped), never delivers, never connects. */
export class NoopBus implements EventBus {
  readonly #stats = newStats();
  readonly connected = false;

  get stats(): Readonly<ControlBusStats> {
    return this.#stats;
  }

  publish(_event: ControlEvent): boolean {
    this.#stats.dropped++;
    return false;
  }

  on<T extends ControlEventType>(_type: T, _handler: EventHandler<EventOf<T>>): () => void {
    return () => undefined;
  }

  onAdmin(nodeId: string, _handler: EventHandler<AdminEvent>): () => void {
    subjects().admin(nodeId); // same validation as ControlBus
    return () => undefined;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}
