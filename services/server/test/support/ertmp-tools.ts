import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  MessageType,
  RtmpClient,
  SoundFormat,
  parseAudioTag,
  parseVideoTag,
  readFlvFile,
  type FlvTag,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import {
  buildHevcDecoderConfig,
  groupAccessUnits,
  hevcNalType,
  HevcNalType,
  isKeyframeNal,
  isParameterSetNal,
  parseHevcDecoderConfig,
  splitAnnexB,
  toLengthPrefixed,
} from '@rtmp-relay/rtmp/testkit';
import { waitFor } from './processes.js';

/**
 * Enhanced RTMP test helpers: locating the shared E-FLV fixtures, replaying FLV tags through our RtmpClient,
 * recording what a player receives, packaging an HEVC Annex B stream as E-RTMP, and the hub's documented
 * transformations (setDataFrame stripping, duplicate sequence header dropping) as an "expected output" model.
 */

/** The shared/ directory beside the repo (RTMP_RELAY_SHARED_DIR overrides it). */
export function sharedDir(): string {
  const env = process.env.RTMP_RELAY_SHARED_DIR;
  if (env) return env;
  // support/ -> test/ -> server/ -> services/ -> repo -> parent (where shared/ lives)
  return fileURLToPath(new URL('../../../../../shared/', import.meta.url));
}

export function eRtmpFixtureDir(): string {
  return `${sharedDir().replace(/\/+$/, '')}/fixtures/e-rtmp`;
}

export function loadFlvFixture(name: string): FlvTag[] {
  const path = `${eRtmpFixtureDir()}/${name}`;
  if (!existsSync(path)) {
    throw new Error(`E-FLV fixture not found: ${path} (set RTMP_RELAY_SHARED_DIR to the shared/ directory)`);
  }
  return readFlvFile(readFileSync(path)).tags;
}

// ---------------------------------------------------------------------------------------------------------------
// Classification

/** Video byte 0 bit 7 (IsExHeader) or audio SoundFormat 9: an Enhanced RTMP frame. */
export function isExHeaderMessage(m: { type: number; payload: Buffer }): boolean {
  if (m.payload.length === 0) return false;
  if (m.type === MessageType.Video) return (m.payload[0]! & 0x80) !== 0;
  if (m.type === MessageType.Audio) return m.payload[0]! >> 4 === SoundFormat.ExHeader;
  return false;
}

export function isAv(m: { type: number }): boolean {
  return m.type === MessageType.Audio || m.type === MessageType.Video;
}

/** A header a relay caches per stream: video SequenceStart/Metadata, audio SequenceStart/MultichannelConfig, AAC/AVC headers. */
export function headerKind(m: { type: number; payload: Buffer }): string | undefined {
  if (m.payload.length === 0) return undefined;
  if (m.type === MessageType.Video) {
    const v = parseVideoTag(m.payload);
    if (v.isSequenceHeader) return `video/${v.fourCc ?? 'legacy'}/seq${v.packetType}`;
    if (v.isMetadata) return `video/${v.fourCc ?? 'legacy'}/metadata`;
  } else if (m.type === MessageType.Audio) {
    const a = parseAudioTag(m.payload);
    if (a.isSequenceHeader) return `audio/${a.fourCc ?? 'legacy'}/seq${a.packetType ?? -1}`;
  }
  return undefined;
}

export function isCodedVideo(m: { type: number; payload: Buffer }): boolean {
  return m.type === MessageType.Video && m.payload.length > 0 && parseVideoTag(m.payload).isCodedFrame;
}

export function isKeyframe(m: { type: number; payload: Buffer }): boolean {
  return m.type === MessageType.Video && m.payload.length > 0 && parseVideoTag(m.payload).isKeyframe;
}

export function describeMessage(m: { type: number; timestamp: number; payload: Buffer }): string {
  const head = m.payload.subarray(0, 12).toString('hex');
  if (m.type === MessageType.Video && m.payload.length > 0) {
    const v = parseVideoTag(m.payload);
    return `video ts=${m.timestamp} len=${m.payload.length} ${v.fourCc ?? 'legacy'} ft=${v.frameType} pt=${v.packetType} [${head}]`;
  }
  if (m.type === MessageType.Audio && m.payload.length > 0) {
    const a = parseAudioTag(m.payload);
    return `audio ts=${m.timestamp} len=${m.payload.length} ${a.fourCc ?? `sf${a.soundFormat}`} pt=${a.packetType ?? -1} [${head}]`;
  }
  return `type${m.type} ts=${m.timestamp} len=${m.payload.length} [${head}]`;
}

// ---------------------------------------------------------------------------------------------------------------
// The relay's documented output model (docs/INTEROP.md §6, §7.4) for a viewer that is attached before the first message.

const SET_DATA_FRAME = Buffer.from([0x02, 0x00, 0x0d, ...Buffer.from('@setDataFrame', 'latin1')]);

/** `@setDataFrame onMetaData {...}` -> `onMetaData {...}`; other data unchanged. */
export function stripSetDataFrame(payload: Buffer): Buffer {
  return payload.subarray(0, SET_DATA_FRAME.length).equals(SET_DATA_FRAME)
    ? payload.subarray(SET_DATA_FRAME.length)
    : payload;
}

export interface ExpectedMessage {
  type: number;
  timestamp: number;
  payload: Buffer;
  /** Index of the FLV tag it came from. */
  tagIndex: number;
}

/**
 * What a player attached from the start should receive, in order: every tag, with `@setDataFrame` stripped from
 * data, and a sequence header / E-RTMP video metadata dropped when it is byte-identical to the latest one of the same
 * kind (track, FourCC, packet type) -- SRS `reduce_sequence_header`. Timestamps pass through (first publisher).
 * `accepts(fourCc)` models per-player E-RTMP gating (undefined = accepts everything).
 */
export function expectedLiveOutput(tags: readonly FlvTag[], accepts?: (fourCc: string) => boolean): ExpectedMessage[] {
  const latest = new Map<string, Buffer>();
  const out: ExpectedMessage[] = [];
  tags.forEach((t, tagIndex) => {
    let payload = t.data;
    if (t.type === MessageType.DataAmf0) payload = stripSetDataFrame(payload);
    const msg = { type: t.type, timestamp: t.timestamp, payload, tagIndex };
    const kind = headerKind(msg);
    if (kind) {
      if (latest.get(kind)?.equals(payload)) return;
      latest.set(kind, payload);
    }
    if (accepts && isExHeaderMessage(msg)) {
      const fourCc = t.type === MessageType.Video ? parseVideoTag(payload).fourCc : parseAudioTag(payload).fourCc;
      if (fourCc === undefined || !accepts(fourCc)) return;
    }
    out.push(msg);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Players and publishers

/** Our client playing a stream and recording every audio/video/data message it receives. */
export class RecordingPlayer {
  readonly messages: RtmpMessage[] = [];
  ended = false;

  private constructor(readonly client: RtmpClient) {
    client.on('media', (m) => this.messages.push(m));
    client.on('end', () => {
      this.ended = true;
    });
  }

  static async connect(url: string, fourCcList?: string[]): Promise<RecordingPlayer> {
    const client = await RtmpClient.connect(
      url,
      fourCcList ? { fourCcList, connectTimeoutMs: 5000 } : { connectTimeoutMs: 5000 },
    );
    return new RecordingPlayer(client);
  }

  /** Sends play; resolves on NetStream.Play.Start (the server attaches the viewer to the hub in the same tick). */
  play(timeoutMs = 10_000): Promise<void> {
    return this.client.play(undefined, timeoutMs);
  }

  get av(): RtmpMessage[] {
    return this.messages.filter(isAv);
  }

  get data(): RtmpMessage[] {
    return this.messages.filter((m) => m.type === MessageType.DataAmf0 || m.type === MessageType.DataAmf3);
  }

  async waitForAv(count: number, timeoutMs: number, what = `${count} audio/video messages`): Promise<void> {
    await waitFor(
      what,
      () =>
        this.av.length >= count ||
        (this.client.closed
          ? Promise.reject(new Error(`player closed before ${what} (got ${this.av.length})`))
          : false),
      timeoutMs,
      10,
    );
  }

  close(): void {
    this.client.close();
  }
}

export interface ReplayOptions {
  /** Replay speed relative to the tag timestamps (default 10x). 0 = as fast as flow control allows. */
  speed?: number;
  /**
   * Flow control: before sending audio/video message n, wait until `pacer()` reports at least n - window received
   * (keeps a fast replay from building a viewer backlog that the slow-viewer policy would act on).
   */
  pacer?: () => number;
  window?: number;
  /** Called before tag `index` is sent (e.g. to attach a late joiner half way); may be async. */
  beforeTag?: (index: number) => void | Promise<void>;
  timeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends FLV tags in order as RTMP messages (type 8/9/18, timestamp as in the file). */
export async function replayTags(
  client: RtmpClient,
  tags: readonly { type: number; timestamp: number; data: Buffer }[],
  o: ReplayOptions = {},
): Promise<void> {
  const speed = o.speed ?? 10;
  const window = o.window ?? 48;
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  const t0 = performance.now();
  const ts0 = tags[0]?.timestamp ?? 0;
  let avSent = 0;
  for (let i = 0; i < tags.length; i++) {
    const tag = tags[i]!;
    await o.beforeTag?.(i);
    if (speed > 0) {
      const due = t0 + (tag.timestamp - ts0) / speed;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
    }
    if (o.pacer && isAv(tag)) {
      const pacer = o.pacer;
      const need = avSent - window;
      if (pacer() < need)
        await waitFor(
          `viewer to receive ${need} messages`,
          () => pacer() >= need,
          Math.max(1, deadline - Date.now()),
          2,
        );
    }
    if (client.closed) throw new Error(`publisher connection closed at tag ${i}`);
    client.sendMedia(tag.type, tag.timestamp, tag.data);
    if (isAv(tag)) avSent++;
    if (Date.now() > deadline) throw new Error(`replay did not finish in time (tag ${i} of ${tags.length})`);
  }
}

export async function connectPublisher(url: string, fourCcList?: string[]): Promise<RtmpClient> {
  const client = await RtmpClient.connect(url, {
    connectTimeoutMs: 5000,
    chunkSize: 4096,
    ...(fourCcList ? { fourCcList } : {}),
  });
  await client.publish(undefined, 5000);
  return client;
}

// ---------------------------------------------------------------------------------------------------------------
// HEVC Annex B <-> E-RTMP `hvc1`

export interface HevcPackaged {
  hvcC: Buffer;
  /** E-RTMP video messages: SequenceStart first, then one per access unit. */
  messages: { type: number; timestamp: number; data: Buffer }[];
  frames: number;
  keyframes: number;
}

function exVideoHeader(frameType: number, packetType: number, fourCc: string, cts?: number): Buffer {
  const h = Buffer.alloc(5 + (cts === undefined ? 0 : 3));
  h[0] = 0x80 | (frameType << 4) | packetType;
  h.write(fourCc, 1, 'latin1');
  if (cts !== undefined) h.writeIntBE(cts, 5, 3);
  return h;
}

/**
 * Packages an HEVC Annex B stream (no B-frames) as E-RTMP: SequenceStart `0x90 hvc1 hvcC`, keyframes
 * `0x91 hvc1 CTS=0`, inter frames alternately `0xA1 hvc1 CTS=0` and `0xA3 hvc1` (CodedFramesX). Parameter sets go
 * into the hvcC only; the other NAL units of each access unit are sent length-prefixed (4 bytes).
 */
export function packageHevcAsErtmp(annexB: Buffer, fps: number): HevcPackaged {
  const nals = splitAnnexB(annexB);
  const vps = nals.filter((n) => hevcNalType(n) === HevcNalType.Vps);
  const sps = nals.filter((n) => hevcNalType(n) === HevcNalType.Sps);
  const pps = nals.filter((n) => hevcNalType(n) === HevcNalType.Pps);
  const hvcC = buildHevcDecoderConfig(vps, sps, pps);
  const messages: HevcPackaged['messages'] = [
    { type: MessageType.Video, timestamp: 0, data: Buffer.concat([exVideoHeader(1, 0, 'hvc1'), hvcC]) },
  ];
  let frames = 0;
  let keyframes = 0;
  for (const au of groupAccessUnits(nals, 'hevc')) {
    const body = au.filter((n) => !isParameterSetNal(n, 'hevc'));
    if (!body.some((n) => hevcNalType(n) >= 0 && hevcNalType(n) <= 31)) continue; // no picture in it
    const key = au.some((n) => isKeyframeNal(n, 'hevc'));
    const timestamp = Math.round((frames * 1000) / fps);
    const header = key
      ? exVideoHeader(1, 1, 'hvc1', 0)
      : frames % 2 === 0
        ? exVideoHeader(2, 1, 'hvc1', 0)
        : exVideoHeader(2, 3, 'hvc1');
    messages.push({ type: MessageType.Video, timestamp, data: Buffer.concat([header, toLengthPrefixed(body)]) });
    frames++;
    if (key) keyframes++;
  }
  return { hvcC, messages, frames, keyframes };
}

/** The parameter sets (VPS, SPS, PPS) of an hvcC, in record order. */
export function hvcCParameterSets(hvcC: Buffer): Buffer[] {
  return parseHevcDecoderConfig(hvcC).arrays.flatMap((a) => a.nalus);
}
