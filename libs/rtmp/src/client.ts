import { EventEmitter } from 'node:events';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { AmfObject, AmfValue } from './amf.js';
import { encodeAmf0 } from './amf0.js';
import { Command, Status } from './commands.js';
import { DEFAULT_CONNECTION_LIMITS, RtmpConnection, type ConnectionLimits, type RtmpCommand } from './connection.js';
import {
  CSID_AUDIO,
  CSID_DATA,
  CSID_VIDEO,
  DEFAULT_WINDOW_ACK_SIZE,
  FIRST_NETSTREAM_ID,
  MessageType,
  UserControlEvent,
} from './constants.js';
import { setBufferLength } from './control.js';
import { RtmpClientError, RtmpProtocolError } from './errors.js';
import type { HandshakeMode } from './handshake.js';
import type { RtmpMessage } from './message.js';

export interface RtmpUrl {
  host: string;
  port: number;
  app: string;
  /** Stream name including any `?query`. */
  stream: string;
  tcUrl: string;
  /** rtmps://: RTMP over TLS. */
  secure: boolean;
}

export const DEFAULT_RTMP_PORT = 1935;
/** rtmps:// without a port: 443, as FFmpeg, OBS and the big ingest services use. */
export const DEFAULT_RTMPS_PORT = 443;

/** Parses rtmp[s]://host[:port]/app/stream[?query]; the app is the first path segment. */
export function parseRtmpUrl(url: string): RtmpUrl {
  const u = new URL(url);
  if (u.protocol !== 'rtmp:' && u.protocol !== 'rtmps:') throw new Error(`not an rtmp:// or rtmps:// URL: ${url}`);
  const secure = u.protocol === 'rtmps:';
  const path = u.pathname.replace(/^\/+/, '');
  const slash = path.indexOf('/');
  const app = slash < 0 ? path : path.slice(0, slash);
  const stream = (slash < 0 ? '' : path.slice(slash + 1)) + u.search;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port ? Number(u.port) : secure ? DEFAULT_RTMPS_PORT : DEFAULT_RTMP_PORT;
  return { host, port, app, stream, tcUrl: `${u.protocol}//${u.host}/${app}`, secure };
}

/** TLS settings for rtmps:// URLs (ignored for rtmp://). */
export interface RtmpTlsOptions {
  /** Trusted CA certificates (PEM) instead of the system store: private CAs, tests. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the server certificate and host name (default true). */
  rejectUnauthorized?: boolean;
  /** SNI and the name the certificate must match (default: the URL's host unless it is an IP address). */
  servername?: string;
}

export interface RtmpClientOptions {
  /** TCP connect + handshake + connect command must finish within this (default 10 s). */
  connectTimeoutMs?: number;
  /** Close if nothing is received for this long once connected (0 = never; default 30 s). */
  readTimeoutMs?: number;
  handshake?: HandshakeMode;
  /** Enhanced RTMP codecs this client accepts (sent as connect's fourCcList). */
  fourCcList?: string[];
  /** E-RTMP v2 capsEx bits advertised in connect (e.g. CapsEx.Reconnect to receive ReconnectRequest). */
  capsEx?: number;
  /** Outgoing chunk size announced after connecting (publishers: fewer headers). */
  chunkSize?: number;
  flashVer?: string;
  limits?: ConnectionLimits;
  /** For rtmps:// URLs. */
  tls?: RtmpTlsOptions;
  /**
   * Play this stream name without waiting for replies: createStream and play (on the first NetStream id) go out
   * right behind connect, so the first media arrives two round trips sooner. For servers that number NetStreams
   * from 1 and take commands in order, as this project's nodes (the edges' upstreams) do; the replies are still
   * checked, and a server that creates another id fails the play (`bad_command`). Finish with `play()` of the same
   * name, which then waits for this play instead of starting one.
   */
  pipelinePlay?: { name: string; timeoutMs: number };
  /**
   * Called with the client before anything is sent: attach `media` listeners here when pipelining, since the
   * first media can arrive in the same read as connect's reply, before `connect()` resolves.
   */
  beforeConnect?: (client: RtmpClient) => void;
}

/** play's start argument: -1000 = the live stream only (RTMP spec 7.2.2.1). */
const PLAY_START_LIVE = -1000;
/** The buffer length announced after play (ms), as FFmpeg and Flash players send it. */
const PLAY_BUFFER_MS = 3000;

/** Minimum TLS version the client offers (TLS 1.0/1.1 are deprecated, RFC 8996). */
const MIN_TLS_VERSION = 'TLSv1.2';

export interface ClientEvents {
  /** Audio, video and data messages of the played stream. */
  media: [RtmpMessage];
  /** onStatus information objects, for any stream. */
  status: [AmfObject, number];
  /** StreamEOF / UnpublishNotify / Play.Stop: the live stream ended. */
  end: [string];
  /**
   * E-RTMP `NetConnection.Connect.ReconnectRequest` (only sent to clients that advertised capsEx Reconnect): the
   * server wants this connection moved, to `tcUrl` (rtmp[s]://host[:port]/app) when given, else to the same URL. The
   * server keeps serving until the client disconnects, so a publisher can connect anew first and then close this.
   */
  reconnectRequest: [{ tcUrl: string | undefined; description: string }];
  close: [string, Error | undefined];
}

interface Pending {
  resolve: (values: AmfValue[]) => void;
  reject: (err: Error) => void;
}

/**
 * An RTMP client on the same core as the server. One connection; publish or play one stream.
 * Commands are matched to replies by transaction id, as every real server expects.
 */
export class RtmpClient extends EventEmitter<ClientEvents> {
  private nextTxn = 1;
  private readonly pending = new Map<number, Pending>();
  private statusWaiters: Array<(info: AmfObject, streamId: number) => boolean> = [];
  private readTimer: NodeJS.Timeout | undefined;
  /** The play `pipelinePlay` started, awaited by play() of the same name. */
  private pipelined: { name: string; started: Promise<void> } | undefined;
  streamId = 0;

  private constructor(
    readonly connection: RtmpConnection,
    readonly url: RtmpUrl,
  ) {
    super();
    connection.on('command', (cmd) => this.onCommand(cmd));
    connection.on('media', (msg) => this.emit('media', msg));
    connection.on('userControl', (ev) => {
      if (ev.event === UserControlEvent.StreamEOF && ev.value === this.streamId && this.streamId !== 0)
        this.emit('end', 'stream_eof');
    });
    connection.on('close', (reason, err) => {
      clearInterval(this.readTimer);
      const error = err ?? new RtmpClientError('closed', `connection closed: ${reason}`, { reason });
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
      this.emit('close', reason, err);
    });
  }

  /**
   * Opens TCP (and TLS for rtmps://), handshakes and sends connect; resolves once the server accepted it.
   * The RTMP handshake is written at once; over TLS it is sent when the TLS handshake completes, and a failed
   * TLS handshake (e.g. an untrusted certificate) rejects with its error.
   */
  static async connect(url: string, opts: RtmpClientOptions = {}): Promise<RtmpClient> {
    const target = parseRtmpUrl(url);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const socket: Socket = target.secure
      ? tlsConnect(tlsConnectOptions(target, opts.tls))
      : netConnect({ host: target.host, port: target.port });
    const limits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits, handshakeTimeoutMs: timeoutMs };
    const connection = new RtmpConnection(socket, 'client', limits, opts.handshake ?? 'simple');
    const client = new RtmpClient(connection, target);
    opts.beforeConnect?.(client);
    const timer = setTimeout(
      () =>
        connection.close(
          'connect_timeout',
          new RtmpClientError('timeout', `connect to ${url} timed out after ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    try {
      await new Promise<void>((resolve, reject) => {
        connection.once('ready', resolve);
        connection.once('close', (reason, err) =>
          reject(classifyClose(reason, err, `connection closed during handshake: ${reason}`)),
        );
      });
      const commandObject: AmfObject = {
        app: target.app,
        flashVer: opts.flashVer ?? 'LNX 9,0,124,2',
        tcUrl: target.tcUrl,
        fpad: false,
        capabilities: 15,
        audioCodecs: 4071,
        videoCodecs: 252,
        videoFunction: 1,
      };
      if (opts.fourCcList?.length) commandObject['fourCcList'] = opts.fourCcList;
      if (opts.capsEx) commandObject['capsEx'] = opts.capsEx;
      const connected = client.call(Command.Connect, commandObject);
      if (opts.pipelinePlay) client.startPipelinedPlay(opts.pipelinePlay.name, opts.pipelinePlay.timeoutMs);
      const reply = await connected;
      const info = reply[1];
      if (!info || typeof info !== 'object' || (info as AmfObject)['code'] !== Status.ConnectSuccess) {
        const status = info && typeof info === 'object' ? String((info as AmfObject)['code'] ?? '') : '';
        throw new RtmpClientError('rejected', `connect rejected: ${JSON.stringify(info)}`, { status });
      }
      connection.announceWindow(DEFAULT_WINDOW_ACK_SIZE);
      if (opts.chunkSize) connection.setOutgoingChunkSize(opts.chunkSize);
    } catch (err) {
      connection.close('connect_failed', err as Error);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const readTimeoutMs = opts.readTimeoutMs ?? 30_000;
    if (readTimeoutMs > 0) {
      client.readTimer = setInterval(
        () => {
          if (performance.now() - connection.lastReceiveAt > readTimeoutMs) {
            connection.close(
              'read_timeout',
              new RtmpClientError('timeout', `nothing received for ${readTimeoutMs} ms`),
            );
          }
        },
        Math.min(readTimeoutMs, 1000),
      );
      client.readTimer.unref();
    }
    return client;
  }

  /** Sends a command with a fresh transaction id and waits for its _result/_error. */
  call(name: string, commandObject: AmfValue, ...args: AmfValue[]): Promise<AmfValue[]> {
    const txn = this.nextTxn++;
    return new Promise((resolve, reject) => {
      this.pending.set(txn, { resolve, reject });
      this.connection.sendCommand(0, name, txn, commandObject, ...args);
    });
  }

  private onCommand(cmd: RtmpCommand): void {
    if (cmd.name === Command.Result || cmd.name === Command.Error) {
      const p = this.pending.get(cmd.transactionId);
      if (!p) return;
      this.pending.delete(cmd.transactionId);
      if (cmd.name === Command.Result) p.resolve([cmd.commandObject, ...cmd.args]);
      else {
        const info = cmd.args[0] ?? cmd.commandObject;
        const status = info && typeof info === 'object' ? String((info as AmfObject)['code'] ?? '') : '';
        p.reject(new RtmpClientError('status', `${JSON.stringify(info)}`, { status }));
      }
      return;
    }
    if (cmd.name === Command.OnStatus) {
      const info = cmd.args[0];
      if (!info || typeof info !== 'object') return;
      const status = info as AmfObject;
      this.emit('status', status, cmd.streamId);
      this.statusWaiters = this.statusWaiters.filter((w) => !w(status, cmd.streamId));
      const code = status['code'];
      if (code === Status.ConnectReconnectRequest && cmd.streamId === 0) {
        const tcUrl = typeof status['tcUrl'] === 'string' ? status['tcUrl'] : undefined;
        this.emit('reconnectRequest', { tcUrl, description: String(status['description'] ?? '') });
        return;
      }
      if (code === Status.PlayUnpublishNotify || code === Status.PlayStop) this.emit('end', String(code));
    }
    // onBWDone, onFCPublish and other server calls need no answer.
  }

  private waitStatus(streamId: number, timeoutMs: number, accept: (code: string) => boolean): Promise<AmfObject> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RtmpClientError('timeout', `no onStatus within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onClose = (reason: string): void => {
        clearTimeout(timer);
        reject(new RtmpClientError('closed', `connection closed: ${reason}`, { reason }));
      };
      this.connection.once('close', onClose);
      this.statusWaiters.push((info, sid) => {
        if (sid !== streamId) return false;
        const code = String(info['code'] ?? '');
        clearTimeout(timer);
        this.connection.off('close', onClose);
        if (accept(code)) resolve(info);
        else
          reject(
            new RtmpClientError(
              code === Status.PlayStreamNotFound ? 'not_found' : 'status',
              `${code}: ${String(info['description'] ?? '')}`,
              { status: code },
            ),
          );
        return true;
      });
    });
  }

  private async createStream(): Promise<number> {
    const [, id] = await this.call(Command.CreateStream, null);
    if (typeof id !== 'number' || id < 1)
      throw new RtmpProtocolError('bad_command', `createStream returned ${String(id)}`);
    this.streamId = id;
    return id;
  }

  /** releaseStream + FCPublish + createStream + publish; resolves on NetStream.Publish.Start. */
  async publish(name = this.url.stream, timeoutMs = 10_000): Promise<void> {
    const bare = name.split('?')[0]!;
    this.connection.sendCommand(0, Command.ReleaseStream, this.nextTxn++, null, bare);
    this.connection.sendCommand(0, Command.FCPublish, this.nextTxn++, null, bare);
    const id = await this.createStream();
    const started = this.waitStatus(id, timeoutMs, (code) => code === Status.PublishStart);
    this.connection.sendCommand(id, Command.Publish, 0, null, name, 'live');
    await started;
  }

  /**
   * createStream and play on the first NetStream id at once (see `pipelinePlay`); the outcome is kept for play(),
   * and never left as an unhandled rejection when connect fails first.
   */
  private startPipelinedPlay(name: string, timeoutMs: number): void {
    const id = FIRST_NETSTREAM_ID;
    const created = this.call(Command.CreateStream, null);
    const started = this.waitStatus(id, timeoutMs, (code) => code === Status.PlayStart || code === Status.PlayReset);
    this.connection.sendCommand(id, Command.Play, 0, null, name, PLAY_START_LIVE);
    this.connection.send(setBufferLength(id, PLAY_BUFFER_MS));
    this.streamId = id;
    const done = (async () => {
      const [, createdId] = await created;
      if (createdId !== id)
        throw new RtmpProtocolError(
          'bad_command',
          `pipelined play on stream ${id}, but createStream made ${String(createdId)}`,
        );
      await started;
    })();
    // Both are awaited through `done`; these only keep an early failure from counting as unhandled.
    created.catch(() => undefined);
    started.catch(() => undefined);
    done.catch(() => undefined);
    this.pipelined = { name, started: done };
  }

  /** createStream + play (live); resolves on NetStream.Play.Start (rejects on StreamNotFound etc.). */
  async play(name = this.url.stream, timeoutMs = 10_000): Promise<void> {
    const pipelined = this.pipelined;
    if (pipelined) {
      this.pipelined = undefined;
      if (pipelined.name !== name)
        throw new RtmpClientError('status', `play(${name}) after a pipelined play of ${pipelined.name}`);
      return pipelined.started;
    }
    const id = await this.createStream();
    const started = this.waitStatus(id, timeoutMs, (code) => code === Status.PlayStart || code === Status.PlayReset);
    this.connection.sendCommand(id, Command.Play, 0, null, name, PLAY_START_LIVE);
    this.connection.send(setBufferLength(id, PLAY_BUFFER_MS));
    await started;
  }

  /** Sends an audio/video/data message on the published stream. Returns false under backpressure. */
  sendMedia(type: number, timestamp: number, payload: Buffer): boolean {
    const csid = type === MessageType.Audio ? CSID_AUDIO : type === MessageType.Video ? CSID_VIDEO : CSID_DATA;
    return this.connection.send({ type, streamId: this.streamId, timestamp, payload }, csid);
  }

  /** Sends `@setDataFrame onMetaData {...}` like encoders do. */
  sendMetadata(metadata: AmfObject): boolean {
    return this.sendMedia(MessageType.DataAmf0, 0, encodeAmf0('@setDataFrame', 'onMetaData', metadata));
  }

  /**
   * Where a ReconnectRequest says to go: `tcUrl` (its app) with this client's stream name, or this URL again.
   * Only rtmp:// and rtmps:// URLs are followed; anything else falls back to the current URL.
   */
  reconnectUrl(tcUrl: string | undefined): string {
    const stream = this.url.stream;
    const same = `${this.url.tcUrl}/${stream}`;
    if (!tcUrl) return same;
    try {
      const target = parseRtmpUrl(`${tcUrl.replace(/\/+$/, '')}/${stream}`);
      return `${target.tcUrl}/${target.stream}`;
    } catch {
      return same;
    }
  }

  /** FCUnpublish + deleteStream, then close. */
  close(): void {
    if (this.connection.isClosed) return;
    if (this.streamId) {
      this.connection.sendCommand(0, Command.FCUnpublish, this.nextTxn++, null, this.url.stream.split('?')[0]!);
      this.connection.sendCommand(0, Command.DeleteStream, this.nextTxn++, null, this.streamId);
    }
    this.connection.close('local_close');
  }

  get closed(): boolean {
    return this.connection.isClosed;
  }
}

function tlsConnectOptions(target: RtmpUrl, tls: RtmpTlsOptions = {}): ConnectionOptions {
  // SNI must not be an IP address (RFC 6066); the certificate is then checked against the IP itself.
  const servername = tls.servername ?? (isIP(target.host) ? undefined : target.host);
  return {
    host: target.host,
    port: target.port,
    minVersion: MIN_TLS_VERSION,
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
    ...(servername !== undefined ? { servername } : {}),
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
  };
}

/** A connection that closed before it was ready: refused, timed out, or closed (by the peer or a socket error). */
function classifyClose(reason: string, err: Error | undefined, message: string): RtmpClientError {
  if (err instanceof RtmpClientError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ECONNREFUSED') return new RtmpClientError('refused', err!.message, { reason, cause: err });
  if (reason.endsWith('timeout'))
    return new RtmpClientError('timeout', err?.message ?? message, { reason, cause: err });
  return new RtmpClientError('closed', err?.message ?? message, { reason, cause: err });
}
