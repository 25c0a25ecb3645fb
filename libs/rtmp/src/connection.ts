import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { AmfLimits, AmfValue } from './amf.js';
import { decodeAmf0, decodeAmf3MessagePayload, encodeAmf0 } from './amf0.js';
import { ChunkReader, type ChunkReaderLimits } from './chunk-reader.js';
import { ChunkWriter } from './chunk-writer.js';
import {
  CSID_COMMAND,
  CSID_PROTOCOL_CONTROL,
  DEFAULT_WINDOW_ACK_SIZE,
  MessageType,
  PeerBandwidthLimit,
  UserControlEvent,
} from './constants.js';
import {
  acknowledgement,
  parseUserControl,
  pingResponse,
  readControlU32,
  setChunkSize,
  windowAckSize,
  type UserControlEventData,
} from './control.js';
import { RtmpProtocolError } from './errors.js';
import { ClientHandshake, ServerHandshake, type HandshakeMode } from './handshake.js';
import type { RtmpMessage } from './message.js';

/** How long a graceful close may spend flushing queued bytes before the socket is destroyed. */
const CLOSE_FLUSH_TIMEOUT_MS = 5_000;

/** A decoded AMF command (types 20 and 17): `name(transactionId, commandObject, ...args)`. */
export interface RtmpCommand {
  name: string;
  transactionId: number;
  commandObject: AmfValue;
  args: AmfValue[];
  streamId: number;
}

export interface ConnectionLimits {
  handshakeTimeoutMs: number;
  chunk: Partial<ChunkReaderLimits>;
  amf: Partial<AmfLimits>;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 10_000,
  chunk: {},
  amf: {},
};

export interface ConnectionEvents {
  ready: [];
  command: [RtmpCommand];
  /** Audio, video, data (18/15) and aggregate messages. */
  media: [RtmpMessage];
  userControl: [UserControlEventData, RtmpMessage];
  /** Any other message type (shared objects, unknown types): ignorable. */
  other: [RtmpMessage];
  /** Fired once; `reason` is a stable code (protocol error reason, 'peer_closed', 'local_close', 'socket_error', ...). */
  close: [reason: string, error?: Error];
}

/**
 * One RTMP connection over a socket: handshake (with a timeout), chunk reading and writing, and the protocol
 * control plumbing that every role needs (acknowledgements at half the peer's window, ping responses, window and
 * bandwidth messages). Roles (server session, client) sit on top and only see commands and media.
 * Any protocol error closes this connection alone, with the error's reason.
 */
export class RtmpConnection extends EventEmitter<ConnectionEvents> {
  readonly writer = new ChunkWriter();
  private readonly reader: ChunkReader;
  private handshake: ServerHandshake | ClientHandshake | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private bytesIn = 0;
  private lastAckedAt = 0;
  /** Window the peer announced; we acknowledge at half of it so publishers never stall waiting for acks. */
  private peerWindow = DEFAULT_WINDOW_ACK_SIZE;
  /** Window we announced (used to answer Set Peer Bandwidth). */
  private announcedWindow = 0;
  /** Monotonic ms of the last byte received (read by the server's idle sweep). */
  lastReceiveAt = performance.now();
  handshakeMode: HandshakeMode | undefined;
  /** Monotonic ms when the handshake completed (undefined before). */
  readyAt: number | undefined;

  constructor(
    readonly socket: Socket,
    readonly role: 'server' | 'client',
    private readonly limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
    clientHandshakeMode: HandshakeMode = 'simple',
  ) {
    super();
    this.reader = new ChunkReader((msg) => this.onMessage(msg), limits.chunk);
    this.handshake = role === 'server' ? new ServerHandshake() : new ClientHandshake({ mode: clientHandshakeMode });
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (err) => this.close('socket_error', err));
    socket.on('close', () => this.close('peer_closed'));
    socket.on('end', () => this.close('peer_closed'));
    this.handshakeTimer = setTimeout(
      () =>
        this.fail(
          new RtmpProtocolError('handshake_timeout', `handshake not complete after ${limits.handshakeTimeoutMs} ms`),
        ),
      limits.handshakeTimeoutMs,
    );
    this.handshakeTimer.unref();
    if (this.handshake instanceof ClientHandshake) socket.write(this.handshake.start());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get bytesReceived(): number {
    return this.bytesIn;
  }

  get bytesSent(): number {
    return this.socket.bytesWritten;
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    this.bytesIn += data.length;
    this.lastReceiveAt = performance.now();
    try {
      if (this.handshake) {
        const step = this.handshake.push(data);
        if (step.reply) this.socket.write(step.reply);
        if (!step.done) return;
        this.handshakeMode = this.handshake.mode;
        this.handshake = undefined;
        this.readyAt = performance.now();
        clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.emit('ready');
        if (step.rest && step.rest.length > 0 && !this.closed) this.reader.push(step.rest);
      } else {
        this.reader.push(data);
      }
      this.maybeAcknowledge();
    } catch (err) {
      this.fail(err);
    }
  }

  private maybeAcknowledge(): void {
    if (this.closed || this.handshake) return;
    if (this.bytesIn - this.lastAckedAt >= this.peerWindow / 2) {
      this.lastAckedAt = this.bytesIn;
      this.send(acknowledgement(this.bytesIn % 0x1_0000_0000));
    }
  }

  private onMessage(msg: RtmpMessage): void {
    switch (msg.type) {
      case MessageType.Audio:
      case MessageType.Video:
      case MessageType.DataAmf0:
      case MessageType.DataAmf3:
      case MessageType.Aggregate:
        this.emit('media', msg);
        return;
      case MessageType.CommandAmf0:
      case MessageType.CommandAmf3:
        this.emit('command', this.decodeCommand(msg));
        return;
      case MessageType.SetChunkSize:
      case MessageType.Abort:
      case MessageType.Acknowledgement:
        if (msg.type === MessageType.Acknowledgement) readControlU32(msg);
        return; // the reader applied chunk size and abort already
      case MessageType.WindowAckSize: {
        const size = readControlU32(msg);
        if (size > 0) this.peerWindow = size;
        return;
      }
      case MessageType.SetPeerBandwidth: {
        const size = readControlU32(msg);
        const limitType = msg.payload[4];
        // Answer with our window when it differs (spec 5.4.5); a dynamic limit is treated like hard.
        if (limitType !== PeerBandwidthLimit.Soft && size !== this.announcedWindow) this.announceWindow(size);
        return;
      }
      case MessageType.UserControl: {
        const event = parseUserControl(msg);
        if (event.event === UserControlEvent.PingRequest) this.send(pingResponse(event.value ?? 0));
        this.emit('userControl', event, msg);
        return;
      }
      default:
        this.emit('other', msg);
    }
  }

  decodeCommand(msg: RtmpMessage): RtmpCommand {
    const values =
      msg.type === MessageType.CommandAmf3
        ? decodeAmf3MessagePayload(msg.payload, this.limits.amf)
        : decodeAmf0(msg.payload, this.limits.amf);
    const [name, txn, commandObject, ...args] = values;
    if (typeof name !== 'string') throw new RtmpProtocolError('bad_command', 'command name is not a string');
    const transactionId = typeof txn === 'number' && Number.isFinite(txn) ? txn : 0;
    return { name, transactionId, commandObject: commandObject ?? null, args, streamId: msg.streamId };
  }

  /** Decodes a data message (type 18 or 15) into its AMF values. */
  decodeData(msg: RtmpMessage): AmfValue[] {
    return msg.type === MessageType.DataAmf3
      ? decodeAmf3MessagePayload(msg.payload, this.limits.amf)
      : decodeAmf0(msg.payload, this.limits.amf);
  }

  announceWindow(size: number): void {
    this.announcedWindow = size;
    this.send(windowAckSize(size));
  }

  /** Sends Set Chunk Size and switches our writer to it for everything after. */
  setOutgoingChunkSize(size: number): void {
    this.send(setChunkSize(size));
    this.writer.setChunkSize(size);
  }

  /** Serializes and writes one message. Returns socket.write's backpressure signal. */
  send(
    msg: RtmpMessage,
    csid: number = msg.streamId === 0 && msg.type <= MessageType.SetPeerBandwidth
      ? CSID_PROTOCOL_CONTROL
      : CSID_COMMAND,
  ): boolean {
    if (this.closed || this.handshake) return false; // nothing but handshake bytes before the handshake is done
    return this.socket.write(this.writer.encode(msg, csid));
  }

  /** Writes bytes that are already chunked with this connection's outgoing chunk size (shared fan-out buffers). */
  writeRaw(chunks: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(chunks);
  }

  sendCommand(
    streamId: number,
    name: string,
    transactionId: number,
    commandObject: AmfValue,
    ...args: AmfValue[]
  ): void {
    this.send(
      {
        type: MessageType.CommandAmf0,
        streamId,
        timestamp: 0,
        payload: encodeAmf0(name, transactionId, commandObject, ...args),
      },
      CSID_COMMAND,
    );
  }

  /** Closes after a protocol error (or any thrown error) with its reason. */
  fail(err: unknown): void {
    const reason = err instanceof RtmpProtocolError ? err.reason : 'internal_error';
    this.close(reason, err instanceof Error ? err : new Error(String(err)));
  }

  /** Ends the connection once; queued writes are flushed unless `destroy` is set. */
  close(reason = 'local_close', error?: Error, destroy = reason !== 'local_close'): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.handshakeTimer);
    this.reader.stop();
    if (destroy) {
      this.socket.destroy();
    } else {
      this.socket.end();
      // A peer that never reads would keep a half-closed socket (and its queued bytes) forever.
      setTimeout(() => this.socket.destroy(), CLOSE_FLUSH_TIMEOUT_MS).unref();
    }
    this.emit('close', reason, error);
  }
}
