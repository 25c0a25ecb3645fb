import type { HubPublisher, StreamHub } from '@rtmp-relay/hub';
import {
  CapsEx,
  Command,
  MessageType,
  PeerBandwidthLimit,
  DEFAULT_WINDOW_ACK_SIZE,
  FIRST_NETSTREAM_ID,
  RtmpProtocolError,
  Status,
  connectResult,
  encodeAmf0,
  parseConnect,
  setPeerBandwidth,
  splitStreamName,
  statusInfo,
  streamBegin,
  streamEof,
  type AmfValue,
  type ConnectInfo,
  type RtmpCommand,
  type RtmpConnection,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import type { Logger } from 'pino';
import type { Membership, StreamAccess } from '../streams/access.js';
import { streamLabel } from '../streams/redact.js';
import type { PlayDecision, PublishDecision, StreamRequest } from '../streams/types.js';
import { tracer } from '../tracing.js';
import { RtmpViewer } from './viewer.js';

/** A hub publisher that can be asked to move (E-RTMP ReconnectRequest); see OriginPolicy.drain. */
export interface ReconnectablePublisher {
  /** Whether the client can take a request (its connect advertised capsEx Reconnect, still open); sends nothing. */
  canReconnect(): boolean;
  /** Sends the request when the client can take it; false when it cannot (legacy client, closed). */
  requestReconnect(tcUrl: string, description: string): boolean;
}

export interface SessionSettings {
  chunkSize: number;
  maxStreamsPerConnection: number;
}

/** What the server learns from a session beyond its close. */
export interface SessionEvents {
  /** The connection proved cluster credentials (an edge pulling): it no longer counts against its IP's cap. */
  clusterPeer(): void;
  /** A publish or play was refused for a reason the server counts (rejections themselves StreamAccess counts). */
  rejected(reason: string): void;
}

interface NetStream {
  id: number;
  key?: string;
  name?: string;
  request?: StreamRequest;
  /** publish/play accepted, waiting for the policy (auth, cluster claim, upstream pull). */
  pending?: boolean;
  publishing?: { hub: StreamHub; publisher: HubPublisher };
  viewer?: { membership: Membership; viewer: RtmpViewer };
}

const SAMPLE_ACCESS = encodeAmf0('|RtmpSampleAccess', true, true);

/** Connect fields are client text of any length: logs carry at most this much of them. */
const LOGGED_APP_CHARS = 64;

/** True when the play start argument asks for live (any negative start: -1000/-2000 from FFmpeg, -2 from GStreamer). */
const isLiveStart = (start: AmfValue | undefined): boolean =>
  typeof start !== 'number' || start < 0 || Number.isNaN(start);

/**
 * The server side of one RTMP connection: NetConnection and NetStream commands, answered with the transaction
 * ids, stream ids and onStatus codes real clients (FFmpeg, OBS, GStreamer, librtmp) expect, and the glue from
 * publish/play to the stream hubs.
 */
export class ServerSession {
  private connectInfo: ConnectInfo | undefined;
  private fourCcs: ReadonlySet<string> = new Set();
  private readonly streams = new Map<number, NetStream>();
  private nextStreamId = FIRST_NETSTREAM_ID;
  readonly createdAt = performance.now();

  constructor(
    readonly id: string,
    readonly connection: RtmpConnection,
    private readonly access: StreamAccess,
    private readonly settings: SessionSettings,
    private readonly log: Logger,
    private readonly events: SessionEvents,
  ) {
    connection.on('command', (cmd) => this.onCommand(cmd));
    connection.on('media', (msg) => this.onMedia(msg));
    connection.on('close', () => this.releaseAll());
  }

  get isConnected(): boolean {
    return this.connectInfo !== undefined;
  }

  get app(): string | undefined {
    return this.connectInfo?.app;
  }

  private onCommand(cmd: RtmpCommand): void {
    if (!this.connectInfo && cmd.name !== Command.Connect) {
      throw new RtmpProtocolError('command_before_connect', `'${cmd.name}' before connect`);
    }
    switch (cmd.name) {
      case Command.Connect:
        return this.onConnect(cmd);
      case Command.CreateStream:
        return this.onCreateStream(cmd);
      case Command.Publish:
        void this.onPublish(cmd).catch((err) => this.connection.fail(err));
        return;
      case Command.Play:
        void this.onPlay(cmd).catch((err) => this.connection.fail(err));
        return;
      case Command.DeleteStream:
      case Command.CloseStream:
        return this.onDeleteStream(cmd);
      case Command.FCPublish: {
        const name = typeof cmd.args[0] === 'string' ? cmd.args[0] : '';
        this.answerNull(cmd);
        this.connection.sendCommand(
          0,
          Command.OnFCPublish,
          0,
          null,
          statusInfo('status', Status.PublishStart, splitStreamName(name).name),
        );
        return;
      }
      case Command.GetStreamLength:
        // A number, not null: FFmpeg logs "Unexpected reply on getStreamLength()" otherwise. 0 = live.
        if (cmd.transactionId > 0) this.connection.sendCommand(0, Command.Result, cmd.transactionId, null, 0);
        return;
      case Command.Pause:
        return this.onPause(cmd);
      case Command.Seek: {
        const s = this.streams.get(cmd.streamId);
        if (s)
          this.connection.sendCommand(
            s.id,
            Command.OnStatus,
            0,
            null,
            statusInfo('status', Status.SeekNotify, 'Seeking is not possible in a live stream.'),
          );
        return;
      }
      case Command.ReceiveAudio:
      case Command.ReceiveVideo: {
        const s = this.streams.get(cmd.streamId);
        const on = cmd.args[0] !== false;
        if (s?.viewer)
          s.viewer.membership.hub.setViewerFlags(
            s.viewer.viewer,
            cmd.name === Command.ReceiveAudio ? { audio: on } : { video: on },
          );
        return;
      }
      case Command.Close:
        this.connection.close('client_close');
        return;
      default:
        // releaseStream, FCUnpublish, FCSubscribe, _checkbw and unknown calls: answer when a reply is expected.
        this.answerNull(cmd);
    }
  }

  private answerNull(cmd: RtmpCommand): void {
    if (cmd.transactionId > 0) this.connection.sendCommand(0, Command.Result, cmd.transactionId, null, null);
  }

  private onConnect(cmd: RtmpCommand): void {
    if (this.connectInfo) throw new RtmpProtocolError('duplicate_connect', 'second connect on one connection');
    const info = parseConnect(cmd.commandObject);
    this.connectInfo = info;
    tracer
      .startSpan('rtmp.connect', {
        attributes: { 'rtmp.app': info.app, 'rtmp.session': this.id, 'rtmp.flash_ver': info.flashVer ?? '' },
      })
      .end();
    this.fourCcs = new Set(info.fourCcList);
    // The app is client-chosen text of any length until admission checks it: log a bounded prefix.
    this.log.info(
      { app: info.app.slice(0, LOGGED_APP_CHARS), flashVer: info.flashVer?.slice(0, LOGGED_APP_CHARS) },
      'connect',
    );
    const c = this.connection;
    // NGINX's order, with Set Chunk Size before any reply over 128 bytes (OBS got stuck otherwise).
    c.announceWindow(DEFAULT_WINDOW_ACK_SIZE);
    c.send(setPeerBandwidth(DEFAULT_WINDOW_ACK_SIZE, PeerBandwidthLimit.Dynamic));
    c.setOutgoingChunkSize(this.settings.chunkSize);
    const [properties, information] = connectResult(info);
    c.sendCommand(0, Command.Result, cmd.transactionId, properties, information);
  }

  private onCreateStream(cmd: RtmpCommand): void {
    if (this.streams.size >= this.settings.maxStreamsPerConnection) {
      this.connection.sendCommand(
        0,
        Command.Error,
        cmd.transactionId,
        null,
        statusInfo('error', 'NetConnection.Call.Failed', 'Too many streams on this connection.'),
      );
      return;
    }
    // Skip ids a client already used implicitly (publish/play without createStream).
    while (this.streams.has(this.nextStreamId)) this.nextStreamId++;
    const id = this.nextStreamId++;
    this.streams.set(id, { id });
    this.connection.sendCommand(0, Command.Result, cmd.transactionId, null, id);
  }

  /** The NetStream a publish/play arrived on; created implicitly if the client skipped createStream's reply. */
  private streamFor(streamId: number): NetStream {
    let s = this.streams.get(streamId);
    if (!s) {
      if (streamId === 0 || this.streams.size >= this.settings.maxStreamsPerConnection) {
        throw new RtmpProtocolError('bad_stream_id', `publish/play on unknown stream ${streamId}`);
      }
      s = { id: streamId };
      this.streams.set(streamId, s);
    }
    return s;
  }

  private status(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    this.connection.sendCommand(streamId, Command.OnStatus, 0, null, statusInfo(level, code, description));
  }

  private request(name: string, query: URLSearchParams): StreamRequest {
    const app = this.connectInfo!.app;
    return {
      app,
      name,
      key: `${app}/${name}`,
      query,
      clientIp: this.connection.socket.remoteAddress ?? '',
      sessionId: this.id,
    };
  }

  /**
   * Admission (auth, limits, the role's policy) with the NetStream marked pending. Undefined when the connection or
   * the NetStream went away meanwhile (nothing left to answer).
   */
  private async decide<D extends PublishDecision | PlayDecision>(
    s: NetStream,
    req: StreamRequest,
    ask: () => Promise<D>,
  ): Promise<D | undefined> {
    s.pending = true;
    s.request = req;
    const decision = await ask().finally(() => (s.pending = false));
    if (this.connection.isClosed || !this.streams.has(s.id)) return undefined;
    return decision;
  }

  private async onPublish(cmd: RtmpCommand): Promise<void> {
    const s = this.streamFor(cmd.streamId);
    const raw = typeof cmd.args[0] === 'string' ? cmd.args[0] : '';
    const { name, query } = splitStreamName(raw);
    if (
      s.pending ||
      s.publishing ||
      s.viewer ||
      [...this.streams.values()].some((x) => x.publishing || (x.pending && x.request))
    ) {
      this.events.rejected('already_publishing');
      this.status(s.id, 'error', Status.PublishBadName, 'This connection is already publishing.');
      return;
    }
    const req = this.request(name, query);
    const decision = await this.decide(s, req, () => this.access.admitPublish(req));
    if (!decision) return;
    if (!decision.allow) {
      const code = decision.status === 'Denied' ? Status.PublishDenied : Status.PublishBadName;
      this.status(s.id, 'error', code, decision.description);
      return;
    }
    const publisher: HubPublisher & ReconnectablePublisher = {
      id: this.id,
      // E-RTMP v2 Reconnect Request (drain): only to clients whose connect advertised capsEx Reconnect. We keep
      // serving until the client goes, so it can publish to the new address first (no gap).
      canReconnect: (): boolean =>
        Boolean((this.connectInfo?.capsEx ?? 0) & CapsEx.Reconnect) && !this.connection.isClosed,
      requestReconnect: (tcUrl: string, description: string): boolean => {
        if (!publisher.canReconnect()) return false;
        this.connection.sendCommand(
          0,
          Command.OnStatus,
          0,
          null,
          statusInfo('status', Status.ConnectReconnectRequest, description, { tcUrl }),
        );
        return true;
      },
      kick: (reason: string) => {
        this.log.info({ stream: streamLabel(req.key), reason }, 'publisher kicked');
        const publishing = s.publishing;
        if (publishing) {
          s.publishing = undefined;
          // detach is a no-op when the hub itself replaced us (takeover); needed when a policy or an admin kicks.
          this.access.stopPublish(req, publishing.hub, publisher, reason);
        }
        this.connection.close(reason);
      },
    };
    const hub = this.access.startPublish(req, publisher);
    if (!hub) {
      this.status(s.id, 'error', Status.PublishBadName, `${name} is already being published.`);
      return;
    }
    s.key = req.key;
    s.name = name;
    s.publishing = { hub, publisher };
    this.connection.send(streamBegin(s.id));
    this.status(s.id, 'status', Status.PublishStart, `${name} is now published.`);
  }

  private async onPlay(cmd: RtmpCommand): Promise<void> {
    const s = this.streamFor(cmd.streamId);
    const raw = typeof cmd.args[0] === 'string' ? cmd.args[0] : '';
    const { name, query } = splitStreamName(raw);
    if (s.pending || s.publishing || s.viewer) {
      this.events.rejected('stream_busy');
      this.status(s.id, 'error', Status.PlayFailed, 'This stream is already in use.');
      return;
    }
    if (!isLiveStart(cmd.args[1])) this.log.debug({ start: cmd.args[1] }, 'recorded playback requested; serving live');
    const req = this.request(name, query);
    const decision = await this.decide(s, req, () => this.access.admitPlay(req));
    if (!decision) return;
    if (!decision.allow) {
      const code = decision.status === 'Denied' ? Status.PlayFailed : Status.PlayStreamNotFound;
      this.status(s.id, 'error', code, decision.description);
      return;
    }
    if (decision.clusterPeer) this.events.clusterPeer();
    const viewer = new RtmpViewer(`${this.id}/${s.id}`, s.id, name, this.connection, this.fourCcs, (reason) => {
      // The hub dropped this viewer (slow, stream closed): it is no longer in the hub.
      const joined = s.viewer;
      s.viewer = undefined;
      joined?.membership.leave(false);
      this.connection.close(reason);
    });
    s.key = req.key;
    s.name = name;
    const c = this.connection;
    c.send(streamBegin(s.id));
    this.status(s.id, 'status', Status.PlayReset, `Playing and resetting ${name}.`);
    this.status(s.id, 'status', Status.PlayStart, `Started playing ${name}.`);
    c.send({ type: MessageType.DataAmf0, streamId: s.id, timestamp: 0, payload: SAMPLE_ACCESS });
    const membership = this.access.join(req, viewer, 'rtmp', decision.clusterPeer);
    // Dropped during the join burst (the connection closed): leave now, nothing else will.
    if (this.connection.isClosed) membership.leave();
    else s.viewer = { membership, viewer };
  }

  private onPause(cmd: RtmpCommand): void {
    const s = this.streams.get(cmd.streamId);
    if (!s?.viewer) return;
    const pause = cmd.args[0] !== false;
    s.viewer.membership.hub.setViewerFlags(s.viewer.viewer, { paused: pause });
    if (pause) {
      this.status(s.id, 'status', Status.PauseNotify, `Paused ${s.name}.`);
      this.connection.send(streamEof(s.id));
    } else {
      this.status(s.id, 'status', Status.UnpauseNotify, `Unpaused ${s.name}.`);
      this.connection.send(streamBegin(s.id));
    }
  }

  private onDeleteStream(cmd: RtmpCommand): void {
    const arg = cmd.args[0];
    // GStreamer sends the stream *name* as a string; accept any form.
    let target: NetStream | undefined;
    if (typeof arg === 'number') target = this.streams.get(arg);
    else if (typeof arg === 'string')
      target = [...this.streams.values()].find((s) => s.name === splitStreamName(arg).name);
    target ??= this.streams.get(cmd.streamId);
    if (!target) return;
    this.releaseStream(target);
    this.streams.delete(target.id);
  }

  /** Audio/video/data from a publishing NetStream go to its hub (aggregates split, data held to the AMF limits). */
  private onMedia(msg: RtmpMessage): void {
    const pub = this.streams.get(msg.streamId)?.publishing;
    if (pub) this.access.ingest(pub.hub, msg, this.connection);
  }

  private releaseStream(s: NetStream): void {
    if (s.publishing) {
      const { hub, publisher } = s.publishing;
      s.publishing = undefined;
      this.access.stopPublish(s.request!, hub, publisher, 'unpublish');
    }
    if (s.viewer) {
      const { membership } = s.viewer;
      s.viewer = undefined;
      membership.leave();
    }
  }

  private releaseAll(): void {
    for (const s of this.streams.values()) this.releaseStream(s);
    this.streams.clear();
  }
}
