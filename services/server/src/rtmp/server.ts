import { createServer, type Server, type Socket } from 'node:net';
import { RtmpConnection, pingRequest, type ConnectionLimits } from '@rtmp-relay/rtmp';
import type { Logger } from 'pino';
import type { StreamAccess } from '../streams/access.js';
import type { AuthFailureLimiter } from '../streams/client-limits.js';
import { ConnectionsPerIp } from '../streams/client-limits.js';
import { ServerSession, type SessionSettings } from './session.js';

export interface RtmpServerSettings extends SessionSettings {
  host: string;
  port: number;
  maxConnections: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  limits: ConnectionLimits;
  /** Connections one client IP may hold at once (0 = no cap); cluster peers stop counting once authenticated. */
  maxConnectionsPerIp: number;
}

export interface RtmpServerObserver {
  connectionOpened(): void;
  connectionClosed(reason: string, protocolError: boolean): void;
  connectionRejected(reason: string): void;
  bytesReceived(n: number): void;
  /** Publish/play refusals decided by the session itself (busy NetStream), not by admission. */
  sessionRejected(reason: string): void;
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
  private readonly perIp: ConnectionsPerIp;
  private sweepTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private lastPingAt = new WeakMap<ServerSession, number>();

  constructor(
    private readonly settings: RtmpServerSettings,
    private readonly access: StreamAccess,
    private readonly authFailures: AuthFailureLimiter,
    private readonly log: Logger,
    private readonly observer: RtmpServerObserver,
  ) {
    this.perIp = new ConnectionsPerIp(settings.maxConnectionsPerIp);
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'rtmp listener error'));
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

  /**
   * Runs an RTMP session on a connected socket (from this listener, or TLS-terminated by the RTMPS listener), after
   * the connection limits: the node's total, the client IP's share, and IPs refused for failed authorizations.
   */
  accept(socket: Socket): void {
    const ip = socket.remoteAddress ?? '';
    const refused =
      this.sessions.size >= this.settings.maxConnections
        ? 'max_connections'
        : this.authFailures.isLimited(ip)
          ? 'auth_rate_limited'
          : !this.perIp.tryAcquire(ip)
            ? 'max_connections_per_ip'
            : undefined;
    if (refused) {
      this.observer.connectionRejected(refused);
      this.log.debug({ ip, reason: refused }, 'connection refused');
      socket.destroy();
      return;
    }
    let countedForIp = true;
    const releaseIpSlot = (): void => {
      if (countedForIp) this.perIp.release(ip);
      countedForIp = false;
    };
    const id = (++this.nextId).toString(36);
    const log = this.log.child({ conn: id });
    const connection = new RtmpConnection(socket, 'server', this.settings.limits);
    socket.on('data', (data: Buffer) => this.observer.bytesReceived(data.length));
    const session = new ServerSession(id, connection, this.access, this.settings, log, {
      clusterPeer: releaseIpSlot,
      rejected: (reason) => this.observer.sessionRejected(reason),
    });
    this.sessions.add(session);
    this.observer.connectionOpened();
    log.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection open');
    connection.on('close', (reason, err) => {
      this.sessions.delete(session);
      releaseIpSlot();
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
