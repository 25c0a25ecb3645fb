/**
 * The control-event bus over NATS (ControlBus), and the decoding of incoming messages.
 *
 * Incoming messages that are not JSON, have `v !== 1`, fail the schema, or whose subject does not match their payload
 * are ignored and reported through `onInvalid` (and counted in `stats.invalid`); they never throw into a subscriber.
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

import {
  CONTROL_EVENT_TYPES,
  ControlEventSchema,
  DEFAULT_PREFIX,
  isAdminEvent,
  PROTOCOL_VERSION,
  type AdminEvent,
  type ControlEvent,
  type ControlEventType,
  type EventOf,
} from './schema.js';
import { assertValidPrefix, subjectFor, subjects, subscriptionSubjectFor } from './subjects.js';

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
  private readonly counters = newStats();
  private readonly target: NatsConnectOptions;
  private readonly opts: ControlBusOptions;
  private readonly routes = new Map<string, Route>();
  private readonly encoder = new TextEncoder();
  private nc: NatsConnection | null = null;
  private isUp = false;
  private closing = false;
  private closePromise: Promise<void> | null = null;
  private loop: Promise<void> = Promise.resolve();
  private firstConnect: (() => void) | null = null;
  private sleepTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  private constructor(target: NatsConnectOptions, opts: ControlBusOptions) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX;
    assertValidPrefix(this.prefix);
    this.target = target;
    this.opts = opts;
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
    const first = new Promise<void>((resolve) => (bus.firstConnect = resolve));
    bus.loop = bus.run().catch((err: unknown) => bus.report(err, 'connect'));
    const waitMs = opts.initialWaitMs ?? 2000;
    if (waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([first, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return bus;
  }

  get connected(): boolean {
    return this.isUp;
  }

  get stats(): Readonly<ControlBusStats> {
    return this.counters;
  }

  publish(event: ControlEvent): boolean {
    let subject: string;
    let data: Uint8Array;
    try {
      const parsed = ControlEventSchema.safeParse(event);
      if (!parsed.success)
        throw new InvalidEventError('schema', z.prettifyError(parsed.error), { cause: parsed.error });
      subject = subjectFor(parsed.data, this.prefix);
      data = this.encoder.encode(JSON.stringify(parsed.data));
    } catch (err) {
      this.counters.rejected++;
      this.report(err, 'publish');
      return false;
    }
    const nc = this.nc;
    if (!this.isUp || this.closing || nc === null) {
      this.counters.dropped++;
      return false;
    }
    try {
      nc.publish(subject, data);
      this.counters.published++;
      return true;
    } catch {
      // Closed or draining between our checks and the call.
      this.counters.dropped++;
      return false;
    }
  }

  on<T extends ControlEventType>(type: T, handler: EventHandler<EventOf<T>>): () => void {
    if (!CONTROL_EVENT_TYPES.includes(type)) throw new TypeError(`unknown control event type ${JSON.stringify(type)}`);
    return this.listen(subscriptionSubjectFor(type, this.prefix), {
      accepts: (event) => event.type === type,
      handler: handler as EventHandler<ControlEvent>,
    });
  }

  onAdmin(nodeId: string, handler: EventHandler<AdminEvent>): () => void {
    const s = subjects(this.prefix);
    const listener: Listener = { accepts: isAdminEvent, handler: handler as EventHandler<ControlEvent> };
    const offOwn = this.listen(s.admin(nodeId), listener);
    const offAll = this.listen(s.adminAll, { ...listener });
    return () => {
      offOwn();
      offAll();
    };
  }

  async flush(): Promise<void> {
    const nc = this.nc;
    if (!this.isUp || nc === null) throw new Error('ControlBus is not connected');
    await nc.flush();
  }

  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.wake?.();
    const nc = this.nc;
    if (nc !== null && !nc.isClosed()) {
      if (this.isUp && !nc.isDraining()) {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.closeTimeoutMs ?? 2000)));
        await Promise.race([nc.drain().catch(() => undefined), bound]);
        clearTimeout(timer);
      }
      if (!nc.isClosed()) await nc.close().catch(() => undefined);
    }
    // The loop ends at once unless a connection attempt is in flight (bounded by connectTimeoutMs): it then closes
    // whatever that attempt returns. Don't hold close() for it.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loop, new Promise<void>((resolve) => (timer = setTimeout(resolve, 100)))]);
    clearTimeout(timer);
    this.setConnected(false);
  }

  /** One connection at a time, for as long as the bus is open. */
  private async run(): Promise<void> {
    let failing = false;
    while (!this.closing) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          ...this.target,
          name: this.opts.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.opts.reconnectWaitMs ?? 1000,
          reconnectJitter: 100,
          waitOnFirstConnect: false,
          timeout: this.opts.connectTimeoutMs ?? 5000,
          pingInterval: this.opts.pingIntervalMs ?? 5000,
          maxPingOut: this.opts.maxPingOut ?? 3,
        });
      } catch (err) {
        if (!failing) this.report(err, 'connect');
        failing = true;
        await this.sleep(this.opts.reconnectWaitMs ?? 1000);
        continue;
      }
      failing = false;
      if (this.closing) {
        await nc.close().catch(() => undefined);
        break;
      }
      this.nc = nc;
      const status = this.watchStatus(nc);
      for (const [subject, route] of this.routes) this.subscribe(nc, subject, route);
      this.setConnected(true);
      this.firstConnect?.();
      this.firstConnect = null;
      const err = await nc.closed();
      await status;
      this.nc = null;
      for (const route of this.routes.values()) route.sub = null;
      this.setConnected(false);
      if (!this.closing) {
        if (err) this.report(err, 'connect');
        await this.sleep(this.opts.reconnectWaitMs ?? 1000);
      }
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) this.setConnected(false);
        else if (s.type === Events.Reconnect) this.setConnected(!this.closing);
      }
    } catch {
      // The iterator only ends with the connection.
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.closing) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        if (this.sleepTimer) clearTimeout(this.sleepTimer);
        this.sleepTimer = null;
        this.wake = null;
        resolve();
      };
      this.sleepTimer = setTimeout(this.wake, ms);
    });
  }

  private setConnected(connected: boolean): void {
    if (this.isUp === connected) return;
    this.isUp = connected;
    try {
      this.opts.onStatus?.(connected);
    } catch (err) {
      this.report(err, 'handler');
    }
  }

  private report(err: unknown, context: 'handler' | 'publish' | 'subscribe' | 'connect'): void {
    try {
      (this.opts.onError ?? defaultOnError)(err, context);
    } catch {
      // A failing error reporter must not break the bus.
    }
  }

  private listen(subject: string, listener: Listener): () => void {
    let route = this.routes.get(subject);
    if (!route) {
      route = { listeners: new Set(), sub: null };
      this.routes.set(subject, route);
      const nc = this.nc;
      if (nc !== null && !this.closing) this.subscribe(nc, subject, route);
    }
    route.listeners.add(listener);
    const r = route;
    return () => {
      if (!r.listeners.delete(listener) || r.listeners.size > 0) return;
      if (this.routes.get(subject) === r) this.routes.delete(subject);
      try {
        r.sub?.unsubscribe();
      } catch {
        // Connection already closed: nothing to undo.
      }
      r.sub = null;
    };
  }

  private subscribe(nc: NatsConnection, subject: string, route: Route): void {
    if (nc.isClosed() || nc.isDraining()) return;
    try {
      route.sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) this.report(err, 'subscribe');
          else this.deliver(msg, route);
        },
      });
    } catch (err) {
      this.report(err, 'subscribe');
    }
  }

  private deliver(msg: Msg, route: Route): void {
    const result = decodeControlEvent(msg.subject, msg.data, this.prefix);
    if (!result.ok) {
      this.counters.invalid++;
      try {
        this.opts.onInvalid?.(msg.subject, result.error);
      } catch (err) {
        this.report(err, 'handler');
      }
      return;
    }
    this.counters.received++;
    for (const listener of [...route.listeners]) {
      if (!listener.accepts(result.event)) continue;
      try {
        const r: unknown = listener.handler(result.event, msg.subject);
        if (r instanceof Promise) {
          r.then(undefined, (err: unknown) => {
            this.counters.handlerErrors++;
            this.report(err, 'handler');
          });
        }
      } catch (err) {
        this.counters.handlerErrors++;
        this.report(err, 'handler');
      }
    }
  }
}

/** The bus of the standalone role: publishes nowhere (counted as dropped), never delivers, never connects. */
export class NoopBus implements EventBus {
  private readonly counters = newStats();
  readonly connected = false;

  get stats(): Readonly<ControlBusStats> {
    return this.counters;
  }

  publish(_event: ControlEvent): boolean {
    this.counters.dropped++;
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
