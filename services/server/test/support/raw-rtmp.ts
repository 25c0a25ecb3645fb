import { connect, type Socket } from 'node:net';
import {
  ChunkReader,
  ClientHandshake,
  Command,
  MessageType,
  decodeAmf0,
  encodeAmf0,
  encodeMessageChunks,
  type AmfValue,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';

/**
 * A deliberately dumb RTMP peer for hostile-input tests: a raw TCP socket that sends exactly the bytes it is given
 * (no replies to pings, no acks unless asked), optionally runs a real client handshake, and parses what the server
 * sends back (chunk stream + AMF0 commands) so tests can wait for specific replies. Every wait is bounded.
 */

/** Every socket opened here, so a test's after() can destroy leftovers. */
const open = new Set<RawRtmpPeer>();

export function destroyAllRawPeers(): void {
  for (const p of open) p.destroy();
  open.clear();
}

export interface ServerCommand {
  name: string;
  transactionId: number;
  args: AmfValue[];
  streamId: number;
}

export interface CloseResult {
  /** The server closed (or reset) the connection within the wait. */
  closed: boolean;
  /** Milliseconds from the reference point (default: the last send) to the close, or to the end of the wait. */
  ms: number;
  /** Socket error seen on the way (ECONNRESET / EPIPE are normal for a server-side destroy). */
  error?: string;
}

/** Builds the chunks of one message on `csid` with chunk size `chunkSize` (default 128, the initial size). */
export function chunks(msg: RtmpMessage, csid: number, chunkSize = 128): Buffer {
  return encodeMessageChunks(msg, csid, chunkSize);
}

/** An AMF0 command message (type 20) on message stream `streamId`. */
export function commandMessage(
  streamId: number,
  name: string,
  txn: number,
  obj: AmfValue,
  ...args: AmfValue[]
): RtmpMessage {
  return { type: MessageType.CommandAmf0, streamId, timestamp: 0, payload: encodeAmf0(name, txn, obj, ...args) };
}

/** A protocol control message (types 1-6) carrying one u32. */
export function controlU32(type: number, value: number): RtmpMessage {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(value >>> 0, 0);
  return { type, streamId: 0, timestamp: 0, payload };
}

export function connectObject(app: string, port: number): Record<string, AmfValue> {
  return {
    app,
    flashVer: 'LNX 9,0,124,2',
    tcUrl: `rtmp://127.0.0.1:${port}/${app}`,
    fpad: false,
    capabilities: 15,
    audioCodecs: 4071,
    videoCodecs: 252,
    videoFunction: 1,
  };
}

export class RawRtmpPeer {
  readonly socket: Socket;
  /** Bytes received from the server (handshake included). */
  bytesReceived = 0;
  /** The first bytes received, raw (capped at 64 KiB), for diagnostics. */
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  closedAt: number | undefined;
  error: Error | undefined;
  readonly messages: RtmpMessage[] = [];
  readonly commands: ServerCommand[] = [];
  /** Set if the server's own bytes failed to parse (that would be a server bug too). */
  parseError: Error | undefined;
  private lastSendAt = performance.now();
  private handshake: ClientHandshake | undefined;
  private reader: ChunkReader | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly closePromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    open.add(this);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => {
      this.error ??= err;
    });
    this.closePromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now();
        open.delete(this);
        this.notify();
        resolve();
      }),
    );
  }

  /** Opens a TCP connection to 127.0.0.1:port (resolves once connected; the server may still drop it at once). */
  static open(port: number, timeoutMs = 5000): Promise<RawRtmpPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      const peer = new RawRtmpPeer(socket);
      const timer = setTimeout(() => {
        peer.destroy();
        reject(new Error(`TCP connect to ${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(peer);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Opens, runs a real (simple) client handshake and switches to parsing the server's chunk stream. */
  static async openReady(port: number, timeoutMs = 5000): Promise<RawRtmpPeer> {
    const peer = await RawRtmpPeer.open(port, timeoutMs);
    await peer.doHandshake(timeoutMs);
    return peer;
  }

  get closed(): boolean {
    return this.closedAt !== undefined;
  }

  /** When C2 went out (the end of the handshake for the server). */
  c2SentAt: number | undefined;
  private holdC2Ms = 0;

  /**
   * Runs C0+C1 → S0+S1+S2 → C2; afterwards everything received is parsed as chunks. With `holdC2Ms`, C2 is sent that
   * long after S1 arrived (a slow but legal client); the promise resolves once S2 is in, possibly before C2 went out.
   */
  async doHandshake(timeoutMs = 5000, opts: { holdC2Ms?: number } = {}): Promise<void> {
    const hs = new ClientHandshake();
    this.handshake = hs;
    this.holdC2Ms = opts.holdC2Ms ?? 0;
    this.send(hs.start());
    await this.waitUntil('handshake', () => this.reader !== undefined, timeoutMs);
  }

  send(data: Buffer): void {
    this.lastSendAt = performance.now();
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Sends a message as chunks (client-side chunk size `chunkSize`, default 128). */
  sendMessage(msg: RtmpMessage, csid = 3, chunkSize = 128): void {
    this.send(chunks(msg, csid, chunkSize));
  }

  sendCommand(streamId: number, name: string, txn: number, obj: AmfValue, ...args: AmfValue[]): void {
    this.sendMessage(commandMessage(streamId, name, txn, obj, ...args), streamId === 0 ? 3 : 8);
  }

  /** connect(app) and wait for its _result (throws if the server answers otherwise or closes). */
  async connectApp(app: string, port: number, timeoutMs = 5000): Promise<void> {
    this.sendCommand(0, Command.Connect, 1, connectObject(app, port));
    const reply = await this.waitCommand(
      (c) => c.transactionId === 1 && (c.name === '_result' || c.name === '_error'),
      timeoutMs,
    );
    if (reply.name !== '_result') throw new Error(`connect refused: ${JSON.stringify(reply.args)}`);
  }

  /** Waits for a command from the server matching `pred` (already received ones count). */
  async waitCommand(pred: (c: ServerCommand) => boolean, timeoutMs = 5000): Promise<ServerCommand> {
    return this.waitUntil('server command', () => this.commands.find(pred), timeoutMs);
  }

  /** onStatus info objects received for message stream `streamId`. */
  statusCodes(streamId?: number): string[] {
    return this.commands
      .filter((c) => c.name === 'onStatus' && (streamId === undefined || c.streamId === streamId))
      .map((c) => String((c.args[1] as Record<string, AmfValue> | null)?.['code'] ?? ''));
  }

  /**
   * Waits (bounded) for the server to close the connection. Times are measured from `since` (default: the last
   * send), so "closed within X ms of the offending bytes" can be asserted.
   */
  async waitClosed(timeoutMs: number, since = this.lastSendAt): Promise<CloseResult> {
    if (!this.closed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.closePromise, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    const end = this.closedAt ?? performance.now();
    const result: CloseResult = { closed: this.closed, ms: Math.round(end - since) };
    if (this.error) result.error = (this.error as NodeJS.ErrnoException).code ?? this.error.message;
    return result;
  }

  /** Stop reading from the kernel (the server's writes then back up). */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
    open.delete(this);
  }

  private async waitUntil<T>(what: string, check: () => T | undefined | false, timeoutMs: number): Promise<T> {
    const first = check();
    if (first) return first;
    if (this.closed) throw new Error(`connection closed before ${what}${this.error ? ` (${this.error.message})` : ''}`);
    return new Promise<T>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(poll);
      };
      const poll = (): void => {
        const v = check();
        if (v) {
          finish();
          resolve(v);
        } else if (this.closed) {
          finish();
          reject(
            new Error(`connection closed while waiting for ${what}${this.error ? ` (${this.error.message})` : ''}`),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(poll);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Raw received bytes in [from, to) (only within the first 64 KiB). */
  receivedBytes(from = 0, to = this.headBytes): Buffer {
    return Buffer.concat(this.head).subarray(from, to);
  }

  private onData(data: Buffer): void {
    this.bytesReceived += data.length;
    if (this.headBytes < 65536) {
      this.head.push(Buffer.from(data.subarray(0, 65536 - this.headBytes)));
      this.headBytes += Math.min(data.length, 65536 - this.headBytes);
    }
    try {
      if (this.handshake && !this.reader) {
        const step = this.handshake.push(data);
        const reply = step.reply;
        if (reply) {
          const sendC2 = (): void => {
            this.c2SentAt = performance.now();
            this.send(reply);
          };
          if (this.holdC2Ms > 0) setTimeout(sendC2, this.holdC2Ms);
          else sendC2();
        }
        if (step.done) {
          this.reader = new ChunkReader((m) => this.onMessage(m), { maxChunkStreams: 1000 });
          if (step.rest) this.reader.push(step.rest);
        }
      } else if (this.reader) {
        this.reader.push(data);
      }
    } catch (err) {
      this.parseError ??= err as Error;
    }
    this.notify();
  }

  private onMessage(m: RtmpMessage): void {
    this.messages.push(m);
    if (m.type !== MessageType.CommandAmf0) return;
    const [name, txn, obj, ...rest] = decodeAmf0(m.payload);
    // args[0] is the command object, args[1] the first argument (the info object of onStatus / _error).
    this.commands.push({
      name: String(name),
      transactionId: typeof txn === 'number' ? txn : 0,
      args: [obj ?? null, ...rest],
      streamId: m.streamId,
    });
  }
}
