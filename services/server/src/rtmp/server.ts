import { createServer, type Server, type Socket } from 'node:net';
import type { HubRegistry } from '@rtmp-relay/hub';
import { RtmpConnection, pingRequest, type ConnectionLimits } from '@rtmp-relay/rtmp';
import type { Logger } from 'pino';
import { LocalStreamPolicy, type StreamPolicy } from './policy.js';
import { ServerSession, type SessionObserver, type SessionSettings } from './session.js';

export interface RtmpServerSettings extends SessionSettings {
  host: string;
  port: number;
  maxConnections: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  limits: ConnectionLimits;
  /** How long a play waits for a stream that is not live yet (standalone policy). */
  playWaitMs: number;
}

export interface RtmpServerObserver extends SessionObserver {
  connectionOpened(): void;
  connectionClosed(reason: string, protocolError: boolean): void;
  connectionRejected(reason: string): void;
  bytesReceived(n: number): void;
}

/** Reasons that are normal endings, not errors worth counting as such. */
const NORMAL_CLOSE_REASONS = new Set([
  'peer_closed',
  'local_close',
  'client_close',
  'taken_over',
  'shutdown',
  'socket_error',
]);

/**
 * The RTMP listener: accepts sockets up to the connection limit, runs one ServerSession per connection and
 * sweeps all of them with a single timer (connect deadline, keep-alive pings, idle timeout) so no per-connection
 * timers exist after the handshake.
 */
export class RtmpServer {
  private readonly server: Server;
  private readonly sessions = new Set<ServerSession>();
  private readonly liveWaiters = new Map<string, Set<(live: boolean) => void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private lastPingAt = new WeakMap<ServerSession, number>();
  /** Role behaviour around publish/play; the standalone default waits for local publishers. */
  policy: StreamPolicy;

  constructor(
    private readonly settings: RtmpServerSettings,
    private readonly registry: HubRegistry,
    private readonly log: Logger,
    private readonly observer: RtmpServerObserver,
  ) {
    this.server = createServer({ noDelay: true }, (socket) => this.onSocket(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'rtmp listener error'));
    this.policy = new LocalStreamPolicy(this.waitForLive, settings.playWaitMs);
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.settings.host, port: this.settings.port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const sweepEvery = Math.max(
      100,
      Math.min(this.settings.connectTimeoutMs, this.settings.pingIntervalMs, this.settings.idleTimeoutMs) / 4,
    );
    this.sweepTimer = setInterval(() => this.sweep(), sweepEvery);
    this.sweepTimer.unref();
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : this.settings.port;
  }

  /** Stops accepting new connections; existing ones continue (server.close's callback waits for them all). */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Closes every connection. */
  closeAll(reason: string): void {
    clearInterval(this.sweepTimer);
    for (const s of [...this.sessions]) s.connection.close(reason);
  }

  /** Resolves true as soon as `key` goes live, false after `timeoutMs`. */
  waitForLive = (key: string, timeoutMs: number): Promise<boolean> => {
    if (this.registry.get(key)?.isLive) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      let waiters = this.liveWaiters.get(key);
      if (!waiters) this.liveWaiters.set(key, (waiters = new Set()));
      const done = (live: boolean): void => {
        clearTimeout(timer);
        waiters!.delete(done);
        if (waiters!.size === 0) this.liveWaiters.delete(key);
        resolve(live);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      waiters.add(done);
    });
  };

  /** Wakes plays waiting for `key` (called when its hub gets a publisher). */
  notifyLive(key: string): void {
    const waiters = this.liveWaiters.get(key);
    if (waiters) for (const w of [...waiters]) w(true);
  }

  private onSocket(socket: Socket): void {
    if (this.sessions.size >= this.settings.maxConnections) {
      this.observer.connectionRejected('max_connections');
      socket.destroy();
      return;
    }
    const id = (++this.nextId).toString(36);
    const log = this.log.child({ conn: id });
    const connection = new RtmpConnection(socket, 'server', this.settings.limits);
    socket.on('data', (data: Buffer) => this.observer.bytesReceived(data.length));
    const session = new ServerSession(id, connection, this.registry, this.settings, log, this.observer, this.policy);
    this.sessions.add(session);
    this.observer.connectionOpened();
    log.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection open');
    connection.on('close', (reason, err) => {
      this.sessions.delete(session);
      const protocolError = !NORMAL_CLOSE_REASONS.has(reason);
      this.observer.connectionClosed(reason, protocolError);
      if (protocolError) log.warn({ reason, err: err?.message }, 'connection closed on error');
      else log.debug({ reason }, 'connection closed');
    });
  }

  /** One pass over all sessions: connect deadline, keep-alive pings, idle timeout. */
  private sweep(): void {
    const now = performance.now();
    const { connectTimeoutMs, idleTimeoutMs, pingIntervalMs } = this.settings;
    for (const s of this.sessions) {
      const c = s.connection;
      if (c.readyAt === undefined) continue; // still handshaking: its own timer bounds it, and no pings before S0
      if (!s.isConnected && now - c.readyAt > connectTimeoutMs) {
        c.close('connect_timeout');
        continue;
      }
      const idle = now - c.lastReceiveAt;
      if (idle > idleTimeoutMs) {
        c.close('idle_timeout');
      } else if (idle > pingIntervalMs && now - (this.lastPingAt.get(s) ?? 0) > pingIntervalMs) {
        this.lastPingAt.set(s, now);
        c.send(pingRequest(Math.round(now) >>> 0));
      }
    }
  }
}
