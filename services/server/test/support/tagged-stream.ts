/**
 * A paced synthetic publisher whose video payloads carry a tag byte (so a viewer can tell which connection a frame
 * came through) and whose timeline continues when it moves to another connection (like an encoder reconnecting), plus
 * a viewer that records those tags.
 */
import { CapsEx, MessageType, RtmpClient, parseVideoTag, type RtmpMessage } from '@rtmp-relay/rtmp';

const FRAME_MS = 33;
const GOP_FRAMES = 15;
const TAG_OFFSET = 5;

export class MovablePublisher {
  client: RtmpClient | undefined;
  readonly reconnectRequests: Array<string | undefined> = [];
  /** performance.now() at the arrival of each of `reconnectRequests`. */
  readonly reconnectRequestAt: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();
  private n = 0;

  constructor(private readonly opts: { ertmp: boolean }) {}

  /** Connects and publishes at `url`, then sends from this connection with `tag` (the previous one is closed). */
  async moveTo(url: string, tag: number): Promise<RtmpClient> {
    const client = await RtmpClient.connect(url, {
      readTimeoutMs: 0,
      connectTimeoutMs: 5000,
      ...(this.opts.ertmp ? { capsEx: CapsEx.Reconnect } : {}),
    });
    client.on('reconnectRequest', ({ tcUrl }) => {
      this.reconnectRequestAt.push(performance.now());
      this.reconnectRequests.push(tcUrl);
    });
    try {
      await client.publish(undefined, 10_000);
    } catch (err) {
      client.close();
      throw err;
    }
    const old = this.client;
    this.client = client;
    old?.close();
    clearInterval(this.timer);
    this.n = 0; // a new connection starts with a keyframe
    client.sendMedia(
      MessageType.Video,
      this.ts(),
      Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, tag]),
    );
    this.timer = setInterval(() => {
      if (client.closed) return clearInterval(this.timer);
      const key = this.n++ % GOP_FRAMES === 0;
      client.sendMedia(
        MessageType.Video,
        this.ts(),
        Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 0x01, 0, 0, 0]), Buffer.alloc(200, tag)]),
      );
    }, FRAME_MS);
    return client;
  }

  private ts(): number {
    return Math.round(performance.now() - this.t0);
  }

  stop(): void {
    clearInterval(this.timer);
    this.client?.close();
  }
}

export interface TaggedFrame {
  at: number;
  ts: number;
  tag: number;
  key: boolean;
}

export class TagViewer {
  readonly frames: TaggedFrame[] = [];
  readonly ends: string[] = [];
  closedAt: number | undefined;

  private constructor(readonly client: RtmpClient) {
    client.on('media', (m: RtmpMessage) => {
      if (m.type !== MessageType.Video || m.payload.length <= TAG_OFFSET) return;
      const info = parseVideoTag(m.payload);
      if (info.isSequenceHeader) return;
      this.frames.push({ at: performance.now(), ts: m.timestamp, tag: m.payload[TAG_OFFSET]!, key: info.isKeyframe });
    });
    client.on('end', (r) => this.ends.push(r));
    client.on('close', () => (this.closedAt ??= performance.now()));
  }

  static async open(url: string): Promise<TagViewer> {
    const client = await RtmpClient.connect(url, { readTimeoutMs: 30_000, connectTimeoutMs: 5000 });
    const v = new TagViewer(client);
    await client.play(undefined, 10_000);
    return v;
  }

  count(tag?: number): number {
    return tag === undefined ? this.frames.length : this.frames.filter((f) => f.tag === tag).length;
  }

  /** The longest time between two frames received after `since`. */
  maxGapAfter(since: number): number {
    let max = 0;
    for (let i = 1; i < this.frames.length; i++) {
      if (this.frames[i]!.at < since) continue;
      max = Math.max(max, this.frames[i]!.at - this.frames[i - 1]!.at);
    }
    return max;
  }

  /** Frames whose timestamp does not grow over the previous one's. */
  regressions(): number {
    return this.frames.filter((f, i) => i > 0 && f.ts <= this.frames[i - 1]!.ts).length;
  }

  /** Frames of another tag after the first frame of `tag` (two owners interleaved). */
  interleavedAfter(tag: number): number {
    const first = this.frames.findIndex((f) => f.tag === tag);
    return first < 0 ? 0 : this.frames.slice(first).filter((f) => f.tag !== tag).length;
  }

  close(): void {
    this.client.close();
  }
}
