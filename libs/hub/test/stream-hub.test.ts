import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  ChunkReader,
  MessageType,
  decodeAmf0,
  encodeAmf0,
  encodeFlvHeader,
  encodeMessageChunks,
  readFlvFile,
  setChunkSize,
  timestampDelta,
  type AmfObject,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import {
  DEFAULT_HUB_OPTIONS,
  StreamHub,
  type HubObserver,
  type HubOptions,
  type HubPublisher,
  type HubViewer,
} from '../src/index.js';

/**
 * StreamHub unit tests with fake viewers that record every Buffer written and simulate a socket backlog.
 * Chunk size 256 so that most media messages span several chunks (type-3 continuations are exercised).
 */

const CHUNK = 256;

// ---------------------------------------------------------------------------------------------------------------
// Payload builders (FLV tag bodies as publishers send them)

const bytes = (...parts: Array<number[] | Buffer | string>): Buffer =>
  Buffer.concat(
    parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.isBuffer(p) ? p : Buffer.from(p))),
  );
const fill = (n: number, size: number): Buffer => Buffer.alloc(size, n & 0xff);

const avcHeader = (variant = 1): Buffer => bytes([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, variant]);
const avcKey = (n: number, size = 700): Buffer => bytes([0x17, 0x01, 0, 0, 0], fill(n, size));
const avcInter = (n: number, size = 300): Buffer => bytes([0x27, 0x01, 0, 0, 0], fill(n, size));
const aacHeader = (variant = 0x10): Buffer => bytes([0xaf, 0x00, 0x12, variant]);
const aacFrame = (n: number, size = 60): Buffer => bytes([0xaf, 0x01], fill(n, size));
const publishedMetadata = (props: AmfObject): Buffer => encodeAmf0('@setDataFrame', 'onMetaData', props);

// Enhanced RTMP (ExHeader) video: byte 0 = 0x80 | FrameType << 4 | VideoPacketType, then the FourCC.
const exSeqStart = (fourCc: string, variant = 1): Buffer => bytes([0x80 | 0x10 | 0], fourCc, [0x01, 0x02, variant]);
const exKey = (fourCc: string, n: number, size = 600): Buffer =>
  bytes([0x80 | 0x10 | 1], fourCc, [0, 0, 0], fill(n, size));
const exInterX = (fourCc: string, n: number, size = 200): Buffer => bytes([0x80 | 0x20 | 3], fourCc, fill(n, size));
const exMetadata = (fourCc: string): Buffer =>
  bytes([0x80 | 0x10 | 4], fourCc, encodeAmf0('colorInfo', { colorConfig: { bitDepth: 10, colorPrimaries: 9 } }));
/** Multitrack (VideoPacketType 6), OneTrack layout: [0x80|FT<<4|6] [OneTrack<<4 | innerType] FourCC trackId body. */
const exOneTrack = (innerType: number, frameType: number, fourCc: string, trackId: number, body: Buffer): Buffer =>
  bytes([0x80 | (frameType << 4) | 6], [(0 << 4) | innerType], fourCc, [trackId], body);

const video = (timestamp: number, payload: Buffer): RtmpMessage => ({
  type: MessageType.Video,
  streamId: 1,
  timestamp,
  payload,
});
const audio = (timestamp: number, payload: Buffer): RtmpMessage => ({
  type: MessageType.Audio,
  streamId: 1,
  timestamp,
  payload,
});
const data = (timestamp: number, payload: Buffer): RtmpMessage => ({
  type: MessageType.DataAmf0,
  streamId: 1,
  timestamp,
  payload,
});

// ---------------------------------------------------------------------------------------------------------------
// Fakes

class FakeViewer implements HubViewer {
  readonly writes: Buffer[] = [];
  /** Simulated socket backlog (writableLength). */
  backlog = 0;
  /** When set, every write adds its size to the backlog (a peer that stopped reading). */
  stalled = false;
  corks = 0;
  uncorks = 0;
  corkDepth = 0;
  /** Writes made while corked (batched). */
  corkedWrites = 0;
  disconnects: string[] = [];
  ended = 0;
  restarted = 0;

  constructor(
    readonly id: string,
    private readonly fourCcs: readonly string[] = [],
    readonly streamId = 1,
  ) {}

  acceptsFourCc(fourCc: string): boolean {
    return this.fourCcs.includes(fourCc) || this.fourCcs.includes('*');
  }
  write(chunks: Buffer): void {
    this.writes.push(chunks);
    if (this.corkDepth > 0) this.corkedWrites++;
    if (this.stalled) this.backlog += chunks.length;
  }
  backlogBytes(): number {
    return this.backlog;
  }
  cork(): void {
    this.corks++;
    this.corkDepth++;
  }
  uncork(): void {
    this.uncorks++;
    this.corkDepth--;
  }
  disconnect(reason: string): void {
    this.disconnects.push(reason);
  }
  streamEnded(): void {
    this.ended++;
  }
  streamRestarted(): void {
    this.restarted++;
  }

  /** Parses everything written so far as a player would: Set Chunk Size (the hub's) first, then the bytes. */
  messages(chunkSize = CHUNK): RtmpMessage[] {
    return decodeWrites(this.writes, chunkSize);
  }
  videoMessages(): RtmpMessage[] {
    return this.messages().filter((m) => m.type === MessageType.Video);
  }
  audioMessages(): RtmpMessage[] {
    return this.messages().filter((m) => m.type === MessageType.Audio);
  }
}

function decodeWrites(writes: readonly Buffer[], chunkSize: number): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  const reader = new ChunkReader((m) => {
    if (m.type !== MessageType.SetChunkSize) out.push(m);
  });
  reader.push(encodeMessageChunks(setChunkSize(chunkSize), 2, 128));
  for (const w of writes) reader.push(w);
  assert.equal(reader.bufferedBytes, 0, 'every write must end on a message boundary');
  return out;
}

class FakePublisher implements HubPublisher {
  kicks: string[] = [];
  constructor(readonly id: string) {}
  kick(reason: string): void {
    this.kicks.push(reason);
  }
}

interface RecordingObserver extends HubObserver {
  drops: Array<[string, string]>;
  slow: Array<[string, string]>;
}

function recordingObserver(): RecordingObserver {
  const drops: Array<[string, string]> = [];
  const slow: Array<[string, string]> = [];
  return {
    drops,
    slow,
    dropped: (kind, reason) => drops.push([kind, reason]),
    slowViewerDisconnected: (id, reason) => slow.push([id, reason]),
  };
}

function newHub(options: Partial<HubOptions> = {}, observer: HubObserver = {}): StreamHub {
  // Audio coalescing has its own tests below; elsewhere audio goes out at once so each write is observable.
  // Adaptive batching too: the test process's own load must not decide when writes are corked.
  return new StreamHub(
    'live/test',
    { chunkSize: CHUNK, unpublishGraceMs: 0, audioCoalesceMs: 0, loadSignal: { busy: false }, ...options },
    observer,
  );
}

/** A live hub with a publisher attached. */
function liveHub(
  options: Partial<HubOptions> = {},
  observer: HubObserver = {},
): { hub: StreamHub; pub: FakePublisher } {
  const hub = newHub(options, observer);
  const pub = new FakePublisher('pub-1');
  assert.equal(hub.attachPublisher(pub), true);
  return { hub, pub };
}

/** First AMF0 value of a data message. */
const dataName = (m: RtmpMessage): unknown => decodeAmf0(m.payload)[0];

const isSameBytes = (a: Buffer, b: Buffer): boolean => a.equals(b);

async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe('StreamHub join sequence', () => {
  it('a late joiner gets metadata (no @setDataFrame), video header, audio header, then the GOP from its keyframe', () => {
    const { hub } = liveHub();
    hub.push(data(0, publishedMetadata({ width: 320, height: 240, videocodecid: 7, audiocodecid: 10 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(audio(10, aacFrame(1)));
    hub.push(video(33, avcInter(2)));
    // The second GOP: only this must reach the late joiner.
    hub.push(video(1000, avcKey(3)));
    hub.push(audio(1010, aacFrame(4)));
    hub.push(video(1033, avcInter(5)));
    hub.push(audio(1030, aacFrame(6)));
    assert.equal(hub.stats().gopMessages, 4);

    const v = new FakeViewer('late');
    hub.addViewer(v);
    assert.equal(v.corks, 1, 'the join sequence is written under one cork');
    assert.equal(v.uncorks, 1);
    const got = v.messages();
    assert.deepEqual(
      got.map((m) => [m.type, m.timestamp]),
      [
        [MessageType.DataAmf0, 0],
        [MessageType.Video, 0],
        [MessageType.Audio, 0],
        [MessageType.Video, 1000],
        [MessageType.Audio, 1010],
        [MessageType.Video, 1033],
        [MessageType.Audio, 1030],
      ],
    );
    const values = decodeAmf0(got[0]!.payload);
    assert.equal(values[0], 'onMetaData', 'metadata is forwarded without the @setDataFrame prefix');
    assert.ok(!got[0]!.payload.includes(Buffer.from('@setDataFrame')));
    assert.deepEqual(got[1]!.payload, avcHeader());
    assert.deepEqual(got[2]!.payload, aacHeader());
    assert.deepEqual(got[3]!.payload, avcKey(3));
    assert.deepEqual(got[5]!.payload, avcInter(5));
    for (const m of got) assert.equal(m.streamId, 1);
  });

  it('a viewer that joins before any media gets everything live, in order', () => {
    const { hub } = liveHub();
    const v = new FakeViewer('early');
    hub.addViewer(v);
    assert.equal(v.writes.length, 0);
    hub.push(data(0, publishedMetadata({ width: 1 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(video(33, avcInter(2)));
    assert.deepEqual(
      v.messages().map((m) => m.type),
      [MessageType.DataAmf0, MessageType.Video, MessageType.Audio, MessageType.Video, MessageType.Video],
    );
  });

  it('a viewer that joins before the first keyframe skips inter frames until one arrives', () => {
    const { hub } = liveHub();
    hub.push(video(0, avcHeader()));
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(video(0, avcInter(1))); // a publisher that starts mid-GOP
    hub.push(audio(5, aacFrame(1)));
    hub.push(video(40, avcKey(2)));
    hub.push(video(73, avcInter(3)));
    assert.deepEqual(
      v.videoMessages().map((m) => m.timestamp),
      [0, 40, 73],
      'header at 0, then keyframe and after',
    );
    assert.deepEqual(v.videoMessages()[1]!.payload, avcKey(2));
    assert.equal(v.audioMessages().length, 1, 'audio is not held back');
  });

  it('join-sequence headers are not later than the first cached frame (interop 4.2), even after a mid-GOP change', () => {
    const { hub } = liveHub();
    hub.push(data(0, publishedMetadata({ width: 320 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader(0x10)));
    hub.push(video(2000, avcKey(1)));
    hub.push(audio(2010, aacFrame(1)));
    // Mid-GOP: changed metadata (GStreamer/OBS update onMetaData) and a changed audio config.
    hub.push(data(2500, publishedMetadata({ width: 320, framerate: 30 })));
    hub.push(audio(2500, aacHeader(0x08)));
    hub.push(video(2533, avcInter(2)));

    const v = new FakeViewer('late');
    hub.addViewer(v);
    const got = v.messages();
    const firstFrame = got.find((m) => m.type === MessageType.Video && m.payload[1] === 1)!;
    assert.equal(firstFrame.timestamp, 2000);
    const headers = got.slice(0, got.indexOf(firstFrame));
    assert.equal(headers.length, 3, 'metadata + video header + audio header before the GOP');
    for (const h of headers) {
      assert.ok(
        timestampDelta(h.timestamp, firstFrame.timestamp) >= 0,
        `header (type ${h.type}) at ${h.timestamp} ms is later than the first cached frame at ${firstFrame.timestamp} ms`,
      );
    }
  });
});

describe('StreamHub serialize-once fan-out', () => {
  it('writes the SAME Buffer instance to every viewer, and the bytes decode to the published messages', () => {
    const { hub } = liveHub();
    const viewers = [new FakeViewer('a'), new FakeViewer('b'), new FakeViewer('c')];
    for (const v of viewers) hub.addViewer(v);
    const sent: RtmpMessage[] = [
      video(0, avcHeader()),
      audio(0, aacHeader()),
      video(0, avcKey(1, 2000)), // 8 chunks of 256
      audio(21, aacFrame(2)),
      video(33, avcInter(3, 900)),
      video(66, avcInter(4, 10)),
      audio(43, aacFrame(5)),
    ];
    for (const m of sent) hub.push(m);

    const [a, b, c] = viewers as [FakeViewer, FakeViewer, FakeViewer];
    assert.equal(a.writes.length, sent.length);
    for (let i = 0; i < sent.length; i++) {
      assert.ok(
        a.writes[i] === b.writes[i] && b.writes[i] === c.writes[i],
        `write #${i} is one shared Buffer (no per-viewer copy)`,
      );
    }
    for (const v of viewers) {
      const got = v.messages();
      assert.equal(got.length, sent.length);
      got.forEach((m, i) => {
        assert.equal(m.type, sent[i]!.type);
        assert.equal(m.timestamp, sent[i]!.timestamp);
        assert.equal(m.streamId, 1);
        assert.ok(isSameBytes(m.payload, sent[i]!.payload), `payload #${i} intact`);
      });
    }

    // Late joiners get the join sequence (headers, then the GOP) as two Buffers that every joiner of this GOP shares:
    // the same bytes the live viewers got, in the same order.
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.equal(late.writes.length, 2, 'headers + GOP: two writes, not one per cached message');
    assert.ok(isSameBytes(Buffer.concat(late.writes), Buffer.concat(a.writes)), 'same bytes as the live viewers');
    const late2 = new FakeViewer('late2');
    hub.addViewer(late2);
    late.writes.forEach((w, i) => assert.ok(w.buffer === late2.writes[i]!.buffer, `join write #${i} shared`));
    assert.equal(late2.writes[1]!.byteOffset, late.writes[1]!.byteOffset);
  });

  it('viewers playing on another message stream id share one variant among themselves', () => {
    const { hub } = liveHub();
    const primary = new FakeViewer('p', [], 1);
    const s2a = new FakeViewer('s2a', [], 2);
    const s2b = new FakeViewer('s2b', [], 2);
    for (const v of [primary, s2a, s2b]) hub.addViewer(v);
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1, 1000)));
    for (let i = 0; i < 2; i++) {
      assert.ok(s2a.writes[i] === s2b.writes[i], 'stream-2 viewers share one Buffer');
      assert.ok(s2a.writes[i] !== primary.writes[i]);
    }
    assert.deepEqual(
      s2a.messages().map((m) => m.streamId),
      [2, 2],
    );
    assert.deepEqual(s2a.messages()[1]!.payload, avcKey(1, 1000));
  });
});

describe('StreamHub GOP cache', () => {
  it('is reset on every keyframe', () => {
    const { hub } = liveHub();
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    assert.equal(hub.stats().gopMessages, 0, 'sequence headers are kept outside the GOP');
    hub.push(video(0, avcKey(1)));
    hub.push(video(33, avcInter(2)));
    hub.push(audio(40, aacFrame(3)));
    assert.equal(hub.stats().gopMessages, 3);
    hub.push(video(66, avcKey(4)));
    assert.equal(hub.stats().gopMessages, 1);
    assert.equal(hub.stats().gopBytes, avcKey(4).length);
  });

  it('is dropped whole when over the byte cap, and late joiners then wait for the next keyframe', () => {
    const { hub } = liveHub({ gopCacheMaxBytes: 2000 });
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1, 700))); // 705
    hub.push(video(33, avcInter(2, 600))); // 1310
    assert.equal(hub.stats().gopMessages, 2);
    hub.push(video(66, avcInter(3, 600))); // 1915
    assert.equal(hub.stats().gopMessages, 3);
    hub.push(video(100, avcInter(4, 600))); // 2520 > cap: dropped
    assert.equal(hub.stats().gopMessages, 0);
    assert.equal(hub.stats().gopBytes, 0);
    hub.push(video(133, avcInter(5, 10)));
    hub.push(audio(140, aacFrame(6)));
    assert.equal(hub.stats().gopMessages, 0, 'nothing is cached until the next keyframe');

    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.deepEqual(
      late.messages().map((m) => m.payload),
      [avcHeader()],
      'only the sequence header: no undecodable inter frames',
    );
    hub.push(video(166, avcInter(7, 10)));
    assert.equal(late.videoMessages().length, 1, 'inter frames are not sent before a keyframe');
    hub.push(video(200, avcKey(8, 100)));
    assert.equal(hub.stats().gopMessages, 1, 'caching restarts at the keyframe');
    assert.deepEqual(late.videoMessages().at(-1)!.payload, avcKey(8, 100));
  });

  it('is dropped when over the message cap', () => {
    const { hub } = liveHub({ gopCacheMaxMessages: 5 });
    hub.push(video(0, avcKey(1, 10)));
    for (let i = 1; i < 5; i++) hub.push(video(i * 33, avcInter(i, 10)));
    assert.equal(hub.stats().gopMessages, 5);
    hub.push(video(5 * 33, avcInter(5, 10)));
    assert.equal(hub.stats().gopMessages, 0);
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.equal(late.writes.length, 0);
  });

  it('is disabled with gopCacheMaxBytes 0', () => {
    const { hub } = liveHub({ gopCacheMaxBytes: 0 });
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1)));
    assert.equal(hub.stats().gopMessages, 0);
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.equal(late.messages().length, 1, 'headers only');
  });

  it('audio-only: keeps about audioOnlyCacheMs of audio for late joiners', () => {
    const { hub } = liveHub({ audioOnlyCacheMs: 1000 });
    hub.push(data(0, publishedMetadata({ audiocodecid: 10 })));
    hub.push(audio(0, aacHeader()));
    let ts = 0;
    for (let i = 0; i < 130; i++, ts += 23) hub.push(audio(ts, aacFrame(i)));
    const last = ts - 23;
    const late = new FakeViewer('late');
    hub.addViewer(late);
    const got = late.messages();
    assert.equal(dataName(got[0]!), 'onMetaData');
    assert.deepEqual(got[1]!.payload, aacHeader());
    const frames = got.slice(2);
    assert.ok(frames.every((m) => m.type === MessageType.Audio && m.payload[1] === 1));
    assert.equal(frames.at(-1)!.timestamp, last);
    const span = last - frames[0]!.timestamp;
    assert.ok(span <= 1000 && span >= 1000 - 23, `cached audio spans ${span} ms`);
    assert.ok(frames.length >= 40 && frames.length <= 45, `${frames.length} audio frames cached`);
  });
});

describe('StreamHub sequence headers and metadata', () => {
  it('byte-identical repeats of sequence headers and metadata are not re-sent', () => {
    const { hub } = liveHub();
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(data(0, publishedMetadata({ width: 320 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(video(33, avcInter(2)));
    const before = v.writes.length;
    hub.push(data(40, publishedMetadata({ width: 320 })));
    hub.push(data(40, encodeAmf0('onMetaData', { width: 320 }))); // same after stripping the prefix
    hub.push(video(40, avcHeader()));
    hub.push(audio(40, aacHeader()));
    assert.equal(v.writes.length, before, 'identical repeats are dropped');
    assert.equal(hub.stats().gopMessages, 2, 'an identical video header does not clear the GOP');
    // A changed metadata is forwarded.
    hub.push(data(50, publishedMetadata({ width: 640 })));
    assert.equal(v.writes.length, before + 1);
  });

  it('a changed video sequence header is forwarded at once and clears the GOP', () => {
    const { hub } = liveHub();
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(video(0, avcHeader(1)));
    hub.push(video(0, avcKey(1)));
    hub.push(video(33, avcInter(2)));
    hub.push(video(66, avcHeader(2)));
    assert.deepEqual(v.videoMessages().at(-1)!.payload, avcHeader(2));
    assert.equal(hub.stats().gopMessages, 0);
    hub.push(video(100, avcInter(3))); // still from the old encoder session: must not be cached
    assert.equal(hub.stats().gopMessages, 0);
    assert.equal(v.videoMessages().length, 5, 'the attached viewer keeps receiving');

    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.deepEqual(
      late.messages().map((m) => m.payload),
      [avcHeader(2)],
      'a late joiner gets the new header and no frames of the old one',
    );
    hub.push(video(133, avcKey(4)));
    assert.deepEqual(late.videoMessages().at(-1)!.payload, avcKey(4));
  });

  it('a changed audio sequence header is forwarded and replaces the cached one', () => {
    const { hub } = liveHub();
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(audio(0, aacHeader(0x10)));
    hub.push(audio(20, aacHeader(0x08)));
    assert.equal(v.audioMessages().length, 2);
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.deepEqual(
      late.audioMessages().map((m) => m.payload),
      [aacHeader(0x08)],
    );
  });

  it('@clearDataFrame clears the cached metadata', () => {
    const { hub } = liveHub();
    hub.push(data(0, publishedMetadata({ width: 320 })));
    hub.push(data(10, encodeAmf0('@clearDataFrame', 'onMetaData')));
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.equal(late.writes.length, 0);
  });
});

describe('StreamHub timeline', () => {
  const step = (hub: StreamHub, timestamps: number[]): void => {
    for (const ts of timestamps) hub.push(audio(ts, aacFrame(ts)));
  };

  it('the first publisher passes its timestamps through', () => {
    const { hub } = liveHub();
    const v = new FakeViewer('v');
    hub.addViewer(v);
    step(hub, [5000, 5023, 5046, 5040, 6000]);
    assert.deepEqual(
      v.audioMessages().map((m) => m.timestamp),
      [5000, 5023, 5046, 5040, 6000],
    );
  });

  it('a second publisher starting at 0 continues after the last timestamp (monotonic), viewers stay attached', async () => {
    const hub = newHub({ unpublishGraceMs: 5000 });
    const pub1 = new FakePublisher('p1');
    hub.attachPublisher(pub1);
    const v = new FakeViewer('v');
    hub.addViewer(v);
    step(hub, [1000, 1500, 2000]);
    hub.detachPublisher(pub1);
    await sleep(30);
    const pub2 = new FakePublisher('p2');
    hub.attachPublisher(pub2);
    step(hub, [0, 33, 66]);
    const ts = v.audioMessages().map((m) => m.timestamp);
    assert.equal(ts.length, 6);
    assert.deepEqual(ts.slice(0, 3), [1000, 1500, 2000]);
    assert.ok(ts[3]! > 2000, `the new publisher's first message at ${ts[3]} continues after 2000`);
    assert.ok(ts[3]! < 2000 + 1000, `and not far after it (${ts[3]})`);
    assert.equal(ts[4]! - ts[3]!, 33, 'the new publisher keeps its own spacing');
    assert.equal(ts[5]! - ts[4]!, 33);
    assert.equal(v.disconnects.length, 0);
    assert.equal(v.ended, 0);
    hub.close('test');
  });

  it('across the uint32 wrap: timestamps from 0xFFFFF000 past 0 stay monotonic, also for the next publisher', async () => {
    const hub = newHub({ unpublishGraceMs: 5000 });
    const pub1 = new FakePublisher('p1');
    hub.attachPublisher(pub1);
    const v = new FakeViewer('v');
    hub.addViewer(v);
    const first: number[] = [];
    for (let t = 0xfffff000; t < 0x1_0000_0000 + 0x800; t += 0x100) first.push(t >>> 0);
    step(hub, first);
    let got = v.audioMessages().map((m) => m.timestamp);
    assert.deepEqual(got, first, 'passed through, wrapping like the publisher (decoded from the chunk bytes)');

    hub.detachPublisher(pub1);
    await sleep(10);
    hub.attachPublisher(new FakePublisher('p2'));
    step(hub, [0, 40, 80]);
    got = v.audioMessages().map((m) => m.timestamp);
    for (let i = 1; i < got.length; i++) {
      const d = timestampDelta(got[i - 1]!, got[i]!);
      assert.ok(d > 0 && d < 1000, `step ${i}: ${got[i - 1]} -> ${got[i]} (delta ${d})`);
    }

    // A publisher that ends just before the wrap, then one starting at 0 that crosses it on the hub timeline.
    hub.detachPublisher(hub.currentPublisher!);
    const hub2 = newHub({ unpublishGraceMs: 5000 });
    const w = new FakeViewer('w');
    const p3 = new FakePublisher('p3');
    hub2.attachPublisher(p3);
    hub2.addViewer(w);
    step(hub2, [0xffffff00, 0xffffff80]);
    hub2.detachPublisher(p3);
    hub2.attachPublisher(new FakePublisher('p4'));
    step(hub2, [0, 100, 200, 300]);
    const ts = w.audioMessages().map((m) => m.timestamp);
    assert.ok(
      ts.some((t) => t < 0x1000),
      `the hub timeline wrapped: ${ts.map((t) => t.toString(16))}`,
    );
    for (let i = 1; i < ts.length; i++) {
      const d = timestampDelta(ts[i - 1]!, ts[i]!);
      assert.ok(d > 0 && d < 1000, `step ${i}: ${ts[i - 1]!.toString(16)} -> ${ts[i]!.toString(16)} (delta ${d})`);
    }
    hub.close('test');
    hub2.close('test');
  });
});

describe('StreamHub publisher changes', () => {
  it('takeover kicks the old publisher; viewers stay and get the new headers and frames', () => {
    const { hub, pub } = liveHub({ allowTakeover: true });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(video(0, avcHeader(1)));
    hub.push(video(0, avcKey(1)));
    const pub2 = new FakePublisher('pub-2');
    assert.equal(hub.attachPublisher(pub2), true);
    assert.deepEqual(pub.kicks, ['taken_over']);
    assert.equal(hub.currentPublisher, pub2);
    assert.equal(hub.viewerCount, 1);
    assert.deepEqual(v.disconnects, []);
    assert.equal(v.ended, 0);
    hub.push(video(0, avcHeader(1))); // same bytes as before, but a new publisher: must be re-sent
    hub.push(video(0, avcKey(2)));
    const vids = v.videoMessages();
    assert.equal(vids.length, 4);
    assert.deepEqual(vids[2]!.payload, avcHeader(1));
    assert.deepEqual(vids[3]!.payload, avcKey(2));
    assert.ok(timestampDelta(vids[1]!.timestamp, vids[3]!.timestamp) > 0, 'timeline continues');
  });

  it('without allowTakeover a second publisher is refused and the first is not kicked', () => {
    const { hub, pub } = liveHub({ allowTakeover: false });
    assert.equal(hub.attachPublisher(new FakePublisher('pub-2')), false);
    assert.deepEqual(pub.kicks, []);
    assert.equal(hub.currentPublisher, pub);
  });

  it("after a publisher change, viewers resume video at the new publisher's first keyframe", () => {
    const { hub } = liveHub();
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(video(0, avcHeader(1)));
    hub.push(video(0, avcKey(1)));
    hub.push(video(33, avcInter(2)));
    hub.attachPublisher(new FakePublisher('pub-2')); // takeover (same for a return within the grace period)
    hub.push(video(0, avcHeader(2)));
    hub.push(video(0, avcInter(3))); // the new encoder session starts mid-GOP (e.g. a pull joined mid-GOP)
    hub.push(video(33, avcKey(4)));
    const payloads = v.videoMessages().map((m) => m.payload);
    assert.ok(
      !payloads.some((p) => p.equals(avcInter(3))),
      "an inter frame of the new publisher (which references frames the viewer never got) was forwarded before the new publisher's first keyframe",
    );
    assert.deepEqual(payloads.at(-1), avcKey(4));
  });

  it('unpublish grace: streamEnded only after the grace period', async () => {
    const { hub, pub } = liveHub({ unpublishGraceMs: 100 });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.detachPublisher(pub);
    assert.equal(hub.isLive, false);
    await sleep(50);
    assert.equal(v.ended, 0, 'not before the grace period');
    await until('streamEnded', () => v.ended > 0);
    assert.equal(v.ended, 1);
    assert.equal(hub.viewerCount, 1, 'viewers stay attached, waiting');
    assert.deepEqual(v.disconnects, []);

    // A publisher that comes back after the grace: streamRestarted, and video resumes at a keyframe.
    hub.attachPublisher(new FakePublisher('pub-2'));
    assert.equal(v.restarted, 1);
    const before = v.videoMessages().length;
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcInter(1)));
    hub.push(video(33, avcKey(2)));
    const vids = v.videoMessages().slice(before);
    assert.deepEqual(
      vids.map((m) => m.payload),
      [avcHeader(), avcKey(2)],
    );
    hub.close('test');
  });

  it('unpublish grace: no streamEnded and no streamRestarted when a publisher returns within it', async () => {
    const { hub, pub } = liveHub({ unpublishGraceMs: 100 });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.detachPublisher(pub);
    await sleep(30);
    hub.attachPublisher(new FakePublisher('pub-2'));
    await sleep(150);
    assert.equal(v.ended, 0);
    assert.equal(v.restarted, 0);
    assert.equal(hub.viewerCount, 1);
    hub.close('test');
  });

  it('without viewers an unpublished hub goes idle at once', () => {
    const idle: StreamHub[] = [];
    const hub = new StreamHub('live/x', { unpublishGraceMs: 1000 }, {}, (h) => idle.push(h));
    const pub = new FakePublisher('p');
    hub.attachPublisher(pub);
    hub.detachPublisher(pub);
    assert.deepEqual(idle, [hub]);
  });
});

describe('StreamHub slow-viewer policy', () => {
  const policy: Partial<HubOptions> = {
    viewerSoftBacklogBytes: 10_000,
    viewerSoftBacklogMs: 60_000,
    viewerHardBacklogBytes: 100_000,
    viewerHardBacklogMs: 120_000,
  };

  function started(options: Partial<HubOptions> = {}) {
    const obs = recordingObserver();
    const { hub } = liveHub({ ...policy, ...options }, obs);
    hub.push(video(0, avcHeader(1)));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    const fast = new FakeViewer('fast');
    const slow = new FakeViewer('slow');
    hub.addViewer(fast);
    hub.addViewer(slow);
    return { hub, obs, fast, slow };
  }

  it('past the soft bound non-key video is dropped; audio, headers and metadata continue; a keyframe resumes video', () => {
    const { hub, obs, fast, slow } = started();
    slow.backlog = 20_000; // past soft, below hard
    hub.push(video(33, avcInter(2)));
    hub.push(audio(40, aacFrame(3)));
    hub.push(video(66, avcInter(4)));
    hub.push(data(70, publishedMetadata({ width: 640 })));
    hub.push(video(80, avcHeader(2)));
    hub.push(audio(90, aacHeader(0x08)));
    hub.push(video(100, avcInter(5))); // after the new header the GOP is invalid anyway
    assert.deepEqual(
      slow
        .messages()
        .slice(3)
        .map((m) => [m.type, m.timestamp]),
      [
        [MessageType.Audio, 40],
        [MessageType.DataAmf0, 70],
        [MessageType.Video, 80],
        [MessageType.Audio, 90],
      ],
    );
    assert.equal(fast.messages().length, 3 + 7, 'the fast viewer got everything');
    assert.equal(obs.drops.length, 3);
    assert.ok(obs.drops.every(([kind, reason]) => kind === 'video' && reason === 'slow_viewer'));
    assert.equal(hub.stats().framesDropped, 3, 'the stream counts the frames its slow viewer lost');

    slow.backlog = 0; // it caught up
    hub.push(video(133, avcInter(6)));
    assert.equal(slow.videoMessages().at(-1)!.timestamp, 80, 'still waiting for a keyframe');
    hub.push(video(166, avcKey(7)));
    hub.push(video(200, avcInter(8)));
    assert.deepEqual(
      slow
        .videoMessages()
        .slice(-2)
        .map((m) => m.timestamp),
      [166, 200],
      'video resumed at the keyframe',
    );
    assert.deepEqual(slow.disconnects, []);
    assert.equal(hub.viewerCount, 2);
  });

  it('the soft bound also applies to backlog age', async () => {
    const { hub, obs, slow } = started({ viewerSoftBacklogMs: 30 });
    slow.backlog = 100; // small but never drains
    hub.push(video(33, avcInter(2)));
    assert.equal(slow.videoMessages().at(-1)!.timestamp, 33, 'young backlog: still delivered');
    await sleep(60);
    hub.push(video(66, avcInter(3)));
    hub.push(audio(70, aacFrame(4)));
    assert.equal(slow.videoMessages().at(-1)!.timestamp, 33);
    assert.equal(slow.audioMessages().at(-1)!.timestamp, 70);
    assert.deepEqual(obs.drops, [['video', 'slow_viewer']]);
  });

  it('past the hard byte bound the viewer is disconnected with slow_viewer; others are unaffected', () => {
    const { hub, obs, fast, slow } = started();
    const others = [new FakeViewer('o1'), new FakeViewer('o2'), new FakeViewer('o3')];
    for (const o of others) hub.addViewer(o);
    slow.backlog = 100_001;
    hub.push(audio(40, aacFrame(2)));
    assert.deepEqual(slow.disconnects, ['slow_viewer']);
    assert.deepEqual(obs.slow, [['slow', 'backlog_bytes']]);
    assert.equal(hub.viewerCount, 4);
    assert.equal(hub.stats().slowViewersDisconnected, 1);
    const slowWrites = slow.writes.length;
    hub.push(video(66, avcInter(3)));
    hub.push(video(100, avcKey(4)));
    assert.equal(slow.writes.length, slowWrites, 'nothing more is written to a disconnected viewer');
    for (const v of [fast, ...others]) {
      assert.deepEqual(
        v
          .messages()
          .slice(-3)
          .map((m) => m.timestamp),
        [40, 66, 100],
        `${v.id} got every message`,
      );
      assert.deepEqual(v.disconnects, []);
    }
  });

  it('past the hard age bound the viewer is disconnected with slow_viewer', async () => {
    const { hub, obs, fast, slow } = started({ viewerSoftBacklogMs: 20, viewerHardBacklogMs: 50 });
    slow.backlog = 10;
    hub.push(audio(10, aacFrame(1)));
    await sleep(80);
    hub.push(audio(20, aacFrame(2)));
    assert.deepEqual(slow.disconnects, ['slow_viewer']);
    assert.deepEqual(obs.slow, [['slow', 'backlog_age']]);
    assert.equal(fast.audioMessages().at(-1)!.timestamp, 20);
    assert.deepEqual(fast.disconnects, []);
  });

  it('a viewer that stops reading is disconnected by its growing backlog, and several at once never skip another viewer', () => {
    const obs = recordingObserver();
    const { hub } = liveHub({ ...policy, viewerSoftBacklogBytes: 2_000, viewerHardBacklogBytes: 6_000 }, obs);
    const viewers = Array.from({ length: 8 }, (_, i) => new FakeViewer(`v${i}`));
    for (const v of viewers) hub.addViewer(v);
    const stalled = [viewers[0]!, viewers[3]!, viewers[7]!];
    for (const v of stalled) v.stalled = true;
    hub.push(video(0, avcHeader()));
    let ts = 0;
    for (let i = 0; i < 100; i++, ts += 33) hub.push(video(ts, i % 10 === 0 ? avcKey(i) : avcInter(i)));
    for (const v of stalled) assert.deepEqual(v.disconnects, ['slow_viewer'], `${v.id} disconnected`);
    assert.equal(hub.viewerCount, 5);
    assert.equal(hub.stats().slowViewersDisconnected, 3);
    assert.equal(hub.stats().framesDropped, obs.drops.length);
    for (const v of viewers.filter((x) => !stalled.includes(x))) {
      assert.equal(v.videoMessages().length, 101, `${v.id} got every message`);
    }
    assert.ok(obs.drops.length > 0, 'stalled viewers lost inter frames before being dropped');
  });
});

/** An HTTP-FLV / WebSocket-FLV viewer as the hub sees it: FLV tags instead of RTMP chunks. */
class FakeFlvViewer extends FakeViewer {
  readonly format = 'flv' as const;
}

describe("StreamHub forms built from a frame's chunks (it keeps no payload)", () => {
  it('FLV viewers and other stream ids get every frame byte-exact, extended timestamps included', () => {
    const { hub } = liveHub();
    const flv = new FakeFlvViewer('flv');
    const other = new FakeViewer('other', [], 3);
    hub.addViewer(flv);
    hub.addViewer(other);
    const base = 0xffff_f000; // past 0xFFFFFF: every chunk repeats the extended timestamp
    const sent = [video(base, avcHeader()), video(base, avcKey(1, 2000)), audio(base + 10, aacFrame(2, 700))];
    for (let i = 1; i <= 5; i++) sent.push(video(base + i * 33, avcInter(i, 1000 + i)));
    for (const m of sent) hub.push(m);
    const tags = readFlvFile(Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...flv.writes])).tags;
    assert.deepEqual(
      tags.map((t) => [t.type, t.timestamp, t.data.toString('hex')]),
      sent.map((m) => [m.type, m.timestamp, m.payload.toString('hex')]),
    );
    assert.deepEqual(
      other.messages().map((m) => [m.streamId, m.type, m.timestamp, m.payload.toString('hex')]),
      sent.map((m) => [3, m.type, m.timestamp, m.payload.toString('hex')]),
    );
  });
});

describe('StreamHub egress counter', () => {
  const written = (viewers: readonly FakeViewer[]): number =>
    viewers.reduce((n, v) => n + v.writes.reduce((m, w) => m + w.length, 0), 0);

  it('bytesOut is every byte written to every viewer: join bursts, coalesced audio, FLV tags, other stream ids', () => {
    const { hub } = liveHub({ audioCoalesceMs: 40 });
    hub.push(data(0, publishedMetadata({ width: 640 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    const viewers = [new FakeViewer('rtmp'), new FakeFlvViewer('flv'), new FakeViewer('sid3', [], 3)];
    for (const v of viewers) hub.addViewer(v); // join bursts (shared, per message, FLV)
    let ts = 0;
    for (let i = 1; i < 40; i++) {
      ts += 33;
      hub.push(audio(ts - 10, aacFrame(i))); // held for the next video frame: one shared write per viewer
      hub.push(video(ts, i % 10 === 0 ? avcKey(i) : avcInter(i)));
    }
    const late = new FakeViewer('late');
    hub.addViewer(late);
    hub.push(video(ts + 33, avcInter(99)));
    const all = [...viewers, late];
    assert.ok(written(all) > 40 * 300 * 4, `${written(all)} bytes written`);
    assert.equal(hub.stats().bytesOut, written(all));
    hub.close('test');
  });

  it('a dropped frame is not counted as egress; a disconnected viewer stops counting', () => {
    const { hub } = liveHub({ viewerSoftBacklogBytes: 1000, viewerHardBacklogBytes: 50_000 });
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1)));
    const fast = new FakeViewer('fast');
    const slow = new FakeViewer('slow');
    hub.addViewer(fast);
    hub.addViewer(slow);
    slow.backlog = 5000;
    for (let i = 1; i <= 5; i++) hub.push(video(i * 33, avcInter(i)));
    assert.equal(hub.stats().framesDropped, 5);
    assert.equal(hub.stats().bytesOut, written([fast, slow]));
    slow.backlog = 60_000;
    hub.push(video(200, avcInter(6)));
    assert.deepEqual(slow.disconnects, ['slow_viewer']);
    assert.deepEqual([hub.stats().slowViewersDisconnected, hub.stats().bytesOut], [1, written([fast, slow])]);
  });
});

describe('StreamHub slow-viewer policy and the join burst', () => {
  /**
   * The join sequence is written in one synchronous burst, so none of it can have reached the kernel's buffer by the
   * time the hub looks at backlogBytes() for the next GOP message: the fake models exactly that (`stalled` during
   * addViewer), then drains at once like a healthy loopback socket.
   */
  function lateJoin(gopFrames: number, frameBytes: number, options: Partial<HubOptions>) {
    const obs = recordingObserver();
    const { hub } = liveHub({ viewerSoftBacklogMs: 60_000, viewerHardBacklogMs: 120_000, ...options }, obs);
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(0, frameBytes)));
    for (let i = 1; i < gopFrames; i++) hub.push(video(i * 33, avcInter(i, frameBytes)));
    const v = new FakeViewer('late');
    v.stalled = true;
    hub.addViewer(v);
    v.stalled = false;
    v.backlog = 0; // a fast reader: everything was delivered right after the burst
    return { hub, obs, v };
  }

  it('a late joiner gets the whole cached GOP even when it is larger than the soft backlog bound', () => {
    const { obs, v } = lateJoin(30, 10_000, { viewerSoftBacklogBytes: 100_000, viewerHardBacklogBytes: 1_000_000 });
    const frames = v.videoMessages().length - 1;
    assert.equal(
      frames,
      30,
      `the join burst counted as slow-viewer backlog: ${30 - frames} of 30 GOP frames dropped (${obs.drops.length} 'slow_viewer' drops), the player freezes until the next keyframe`,
    );
    assert.deepEqual(v.disconnects, []);
  });

  it('a late joiner is not disconnected because the cached GOP is larger than the hard backlog bound', () => {
    const { hub, obs, v } = lateJoin(120, 10_000, {
      viewerSoftBacklogBytes: 100_000,
      viewerHardBacklogBytes: 1_000_000,
    });
    assert.deepEqual(
      v.disconnects,
      [],
      `a viewer disconnected as ${JSON.stringify(obs.slow)} by its own join sequence (GOP cache ${hub.stats().gopBytes} bytes > hard bound 1000000)`,
    );
  });
});

describe('StreamHub Enhanced RTMP FourCC gating', () => {
  it('ExHeader frames go only to viewers that accept the FourCC; legacy media goes to all', () => {
    const { hub } = liveHub();
    const legacy = new FakeViewer('legacy');
    const hevc = new FakeViewer('hevc', ['hvc1']);
    const av1 = new FakeViewer('av1', ['av01']);
    const any = new FakeViewer('any', ['*']);
    for (const v of [legacy, hevc, av1, any]) hub.addViewer(v);
    hub.push(video(0, exSeqStart('hvc1')));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, exKey('hvc1', 1)));
    hub.push(audio(20, aacFrame(2)));
    hub.push(video(33, exInterX('hvc1', 3)));
    assert.equal(legacy.videoMessages().length, 0);
    assert.equal(av1.videoMessages().length, 0);
    assert.equal(legacy.audioMessages().length, 2, 'legacy AAC still reaches a legacy player');
    for (const v of [hevc, any]) {
      assert.deepEqual(
        v.videoMessages().map((m) => m.payload),
        [exSeqStart('hvc1'), exKey('hvc1', 1), exInterX('hvc1', 3)],
      );
    }
    assert.ok(hevc.writes[0] === any.writes[0], 'gated messages are still shared Buffers');

    // Late joiners: same gating on the join sequence.
    const lateLegacy = new FakeViewer('late-legacy');
    const lateHevc = new FakeViewer('late-hevc', ['hvc1']);
    hub.addViewer(lateLegacy);
    hub.addViewer(lateHevc);
    assert.equal(lateLegacy.videoMessages().length, 0);
    assert.equal(lateLegacy.audioMessages().length, 2);
    assert.equal(lateHevc.videoMessages().length, 3);
  });

  it('an E-RTMP video Metadata (colorInfo) message does not replace the cached SequenceStart of its FourCC', () => {
    const { hub } = liveHub();
    hub.push(video(0, exSeqStart('hvc1')));
    hub.push(video(0, exMetadata('hvc1'))); // OBS sends HDR colorInfo next to the sequence start
    hub.push(video(0, exKey('hvc1', 1)));
    hub.push(video(33, exInterX('hvc1', 2)));
    const late = new FakeViewer('late', ['hvc1']);
    hub.addViewer(late);
    const payloads = late.videoMessages().map((m) => m.payload);
    assert.ok(
      payloads.some((p) => p.equals(exSeqStart('hvc1'))),
      `a late joiner must get the hvc1 SequenceStart; got packet types ${payloads.map((p) => p[0]! & 0x0f).join(',')}`,
    );
    assert.ok(
      payloads.some((p) => p.equals(exMetadata('hvc1'))),
      'and the latest video Metadata',
    );
    assert.ok(
      payloads.some((p) => p.equals(exKey('hvc1', 1))),
      'and the GOP',
    );
  });

  it('E-RTMP multitrack: a sequence header per track is cached (track 1 does not replace track 0)', () => {
    const { hub } = liveHub();
    const track0Header = exSeqStart('hvc1', 0);
    const track1Header = exOneTrack(0, 1, 'hvc1', 1, Buffer.from([0x01, 0x02, 0x09]));
    hub.push(video(0, track0Header));
    hub.push(video(0, track1Header));
    hub.push(video(0, exKey('hvc1', 1)));
    const late = new FakeViewer('late', ['hvc1']);
    hub.addViewer(late);
    const payloads = late.videoMessages().map((m) => m.payload);
    assert.ok(
      payloads.some((p) => p.equals(track0Header)),
      'track 0 SequenceStart cached',
    );
    assert.ok(
      payloads.some((p) => p.equals(track1Header)),
      'track 1 SequenceStart cached',
    );
    assert.ok(
      payloads.some((p) => p.equals(exKey('hvc1', 1))),
      'the GOP survives a second track header',
    );
  });
});

describe('StreamHub pause and receiveVideo/receiveAudio', () => {
  function playing() {
    const { hub } = liveHub();
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    const v = new FakeViewer('v');
    hub.addViewer(v);
    return { hub, v };
  }

  it('pause stops audio and video; unpause resumes audio at once and video at the next keyframe', () => {
    const { hub, v } = playing();
    hub.setViewerFlags(v, { paused: true });
    hub.push(video(33, avcInter(2)));
    hub.push(audio(40, aacFrame(3)));
    hub.push(video(66, avcKey(4)));
    assert.equal(v.messages().length, 3, 'nothing while paused');
    hub.setViewerFlags(v, { paused: false });
    hub.push(video(100, avcInter(5)));
    hub.push(audio(110, aacFrame(6)));
    hub.push(video(133, avcKey(7)));
    hub.push(video(166, avcInter(8)));
    assert.deepEqual(
      v
        .messages()
        .slice(3)
        .map((m) => [m.type, m.timestamp]),
      [
        [MessageType.Audio, 110],
        [MessageType.Video, 133],
        [MessageType.Video, 166],
      ],
    );
  });

  it('receiveVideo(false) stops video only; receiveVideo(true) resumes at the next keyframe', () => {
    const { hub, v } = playing();
    hub.setViewerFlags(v, { video: false });
    hub.push(video(33, avcInter(2)));
    hub.push(audio(40, aacFrame(3)));
    hub.push(video(66, avcHeader(2)));
    hub.setViewerFlags(v, { video: true });
    hub.push(video(100, avcInter(4)));
    hub.push(video(133, avcKey(5)));
    assert.deepEqual(
      v
        .messages()
        .slice(3)
        .map((m) => [m.type, m.timestamp]),
      [
        [MessageType.Audio, 40],
        [MessageType.Video, 66], // sequence headers are always sent
        [MessageType.Video, 133],
      ],
    );
  });

  it('receiveAudio(false) stops audio frames only', () => {
    const { hub, v } = playing();
    hub.setViewerFlags(v, { audio: false });
    hub.push(audio(10, aacFrame(1)));
    hub.push(video(33, avcInter(2)));
    hub.setViewerFlags(v, { audio: true });
    hub.push(audio(40, aacFrame(3)));
    assert.deepEqual(
      v
        .messages()
        .slice(3)
        .map((m) => [m.type, m.timestamp]),
      [
        [MessageType.Video, 33],
        [MessageType.Audio, 40],
      ],
    );
  });
});

describe('StreamHub write batching', () => {
  it('with batchWindowMs 0 live messages are written without corking', () => {
    const { hub } = liveHub({ batchWindowMs: 0 });
    const v = new FakeViewer('v');
    hub.addViewer(v); // the join sequence is corked once
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1)));
    assert.equal(v.corks, 1);
    assert.equal(v.uncorks, 1);
    assert.equal(v.corkedWrites, 0);
  });

  it('with batchWindowMs > 0 viewers are corked once per window and uncorked when it ends', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { hub } = liveHub({ batchWindowMs: 20 });
    const a = new FakeViewer('a');
    const b = new FakeViewer('b');
    hub.addViewer(a);
    hub.addViewer(b);
    const joinCorks = a.corks;
    for (let i = 0; i < 5; i++) hub.push(audio(i * 5, aacFrame(i)));
    for (const v of [a, b]) {
      assert.equal(v.corks - joinCorks, 1, `${v.id}: one cork for the window`);
      assert.equal(v.corkDepth, 1, `${v.id}: still corked inside the window`);
      assert.equal(v.corkedWrites, 5, `${v.id}: every write of the window is batched`);
    }
    t.mock.timers.tick(19);
    assert.equal(a.corkDepth, 1);
    t.mock.timers.tick(1);
    for (const v of [a, b]) {
      assert.equal(v.corkDepth, 0, `${v.id}: uncorked at the end of the window`);
      assert.equal(v.uncorks - joinCorks, 1, `${v.id}: one uncork per window`);
    }
    // The next message opens the next window.
    hub.push(audio(50, aacFrame(9)));
    hub.push(audio(55, aacFrame(10)));
    assert.equal(a.corks - joinCorks, 2);
    assert.equal(a.corkDepth, 1);
    t.mock.timers.tick(20);
    assert.equal(a.uncorks - joinCorks, 2);
    assert.equal(a.corkDepth, 0);
    // No messages: no windows, no timers firing cork/uncork.
    t.mock.timers.tick(200);
    assert.equal(a.corks - joinCorks, 2);
    assert.equal(a.uncorks - joinCorks, 2);
    hub.close('test');
  });

  it('with real timers: batched writes are flushed within the window', async () => {
    const { hub } = liveHub({ batchWindowMs: 15 });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(audio(0, aacFrame(1)));
    hub.push(audio(5, aacFrame(2)));
    assert.equal(v.corkDepth, 1);
    await until('the window to end', () => v.corkDepth === 0, 1000);
    assert.equal(v.uncorks, 2); // join + window
    hub.close('test');
  });

  it('a viewer removed inside a batch window is not left corked', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { hub } = liveHub({ batchWindowMs: 20 });
    const stays = new FakeViewer('stays');
    const leaves = new FakeViewer('leaves'); // e.g. closeStream then play another stream on the same connection
    hub.addViewer(stays);
    hub.addViewer(leaves);
    hub.push(audio(0, aacFrame(1)));
    assert.equal(leaves.corkDepth, 1);
    hub.removeViewer(leaves);
    t.mock.timers.tick(20);
    assert.equal(stays.corkDepth, 0);
    assert.equal(
      leaves.corkDepth,
      0,
      `the removed viewer's connection is left corked (cork ${leaves.corks} times, uncork ${leaves.uncorks} times): its later writes are never flushed`,
    );
    hub.close('test');
  });

  it('a viewer that joins inside a batch window gets balanced cork/uncork calls', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { hub } = liveHub({ batchWindowMs: 20 });
    const first = new FakeViewer('first');
    hub.addViewer(first);
    hub.push(audio(0, aacFrame(1)));
    const joiner = new FakeViewer('joiner');
    hub.addViewer(joiner);
    hub.push(audio(5, aacFrame(2)));
    t.mock.timers.tick(20);
    assert.equal(first.corkDepth, 0);
    assert.equal(
      joiner.corkDepth,
      0,
      `joiner: cork ${joiner.corks} times, uncork ${joiner.uncorks} times (an unmatched uncork releases someone else's cork)`,
    );
    hub.close('test');
  });
});

describe('StreamHub memory', () => {
  function getGc(): (() => void) | undefined {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') return g;
    try {
      v8.setFlagsFromString('--expose-gc');
      const fn = vm.runInNewContext('gc') as unknown;
      return typeof fn === 'function' ? (fn as () => void) : undefined;
    } catch {
      return undefined;
    }
  }

  class IdleViewer implements HubViewer {
    constructor(readonly id: string) {}
    readonly streamId = 1;
    acceptsFourCc(): boolean {
      return false;
    }
    write(): void {}
    backlogBytes(): number {
      return 0;
    }
    cork(): void {}
    uncork(): void {}
    disconnect(): void {}
    streamEnded(): void {}
    streamRestarted(): void {}
  }

  it('10,000 idle viewers cost well under 2 KiB of heap each in the hub', () => {
    const N = 10_000;
    const gc = getGc();
    const { hub } = liveHub();
    hub.push(data(0, publishedMetadata({ width: 320 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1, 20_000)));
    for (let i = 1; i < 30; i++) hub.push(video(i * 33, avcInter(i, 2000)));
    const viewers = Array.from({ length: N }, (_, i) => new IdleViewer(`viewer-${i}`));
    gc?.();
    gc?.();
    const before = process.memoryUsage().heapUsed;
    for (const v of viewers) hub.addViewer(v);
    // Live traffic to all of them must not allocate per viewer either.
    for (let i = 30; i < 60; i++) hub.push(audio(i * 33, aacFrame(i)));
    gc?.();
    gc?.();
    const after = process.memoryUsage().heapUsed;
    const perViewer = (after - before) / N;
    assert.equal(hub.viewerCount, N);
    t_log(`heap per idle viewer: ${perViewer.toFixed(0)} bytes (gc ${gc ? 'available' : 'not available'})`);
    assert.ok(perViewer < 2048, `${perViewer.toFixed(0)} bytes of heap per viewer`);
    for (const v of viewers.slice(0, 10)) hub.removeViewer(v);
    assert.equal(hub.viewerCount, N - 10);
  });
});

function t_log(msg: string): void {
  if (process.env.HUB_TEST_VERBOSE) console.log(msg);
}

describe('StreamHub audio coalescing (one write per viewer per video frame)', () => {
  it('audio waits for the next video frame and all go out in one write (one Buffer shared by every viewer), in order', () => {
    const { hub } = liveHub({ audioCoalesceMs: 1000 });
    const v = new FakeViewer('v');
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(0)));
    hub.addViewer(v);
    const w = new FakeViewer('w');
    hub.addViewer(w);
    const writesBefore = v.writes.length;
    const corksBefore = v.corks;
    hub.push(audio(10, aacFrame(1)));
    hub.push(audio(33, aacFrame(2)));
    assert.equal(v.writes.length, writesBefore, 'audio is held, not written');
    hub.push(video(33, avcInter(1)));
    assert.equal(v.writes.length, writesBefore + 1, 'two audio frames and the video frame written together');
    assert.equal(v.corks, corksBefore, 'one write: no cork needed');
    assert.equal(v.writes.at(-1), w.writes.at(-1), 'the same Buffer for every viewer');
    assert.deepEqual(
      v
        .messages()
        .slice(-3)
        .map((m) => [m.type, m.timestamp]),
      [
        [8, 10],
        [8, 33],
        [9, 33],
      ],
    );
  });

  it('held audio is flushed by the hub timer when no video follows', async () => {
    const { hub } = liveHub({ audioCoalesceMs: 20 });
    const v = new FakeViewer('v');
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(0)));
    hub.addViewer(v);
    const before = v.audioMessages().length;
    hub.push(audio(10, aacFrame(1)));
    assert.equal(v.audioMessages().length, before);
    for (let i = 0; i < 100 && v.audioMessages().length === before; i++) await sleep(10);
    assert.equal(v.audioMessages().length, before + 1, 'flushed by the timer');
    hub.close('test');
  });

  it('a viewer joining while audio is held gets it once (from the GOP cache), not twice', () => {
    const { hub } = liveHub({ audioCoalesceMs: 1000 });
    const early = new FakeViewer('early');
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(0)));
    hub.addViewer(early);
    hub.push(audio(10, aacFrame(1)));
    const late = new FakeViewer('late');
    hub.addViewer(late);
    hub.push(video(33, avcInter(1)));
    for (const v of [early, late]) {
      assert.deepEqual(
        v.audioMessages().map((m) => m.timestamp),
        [10],
        `${v.id} got the held audio frame exactly once`,
      );
    }
  });

  it('audio-only streams are never held', () => {
    const { hub } = liveHub({ audioCoalesceMs: 1000 });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(audio(0, aacHeader()));
    hub.push(audio(23, aacFrame(1)));
    assert.equal(v.audioMessages().length, 2);
  });
});

describe('StreamHub sequence-header cache cap', () => {
  const LEGACY_VIEWER_FOURCCS: string[] = [];
  const fourCc = (i: number): string => `x${String(i).padStart(3, '0')}`;

  it('defaults: 40 headers of 512 KiB with different FourCCs keep at most 16 entries and 4 MiB', () => {
    assert.equal(DEFAULT_HUB_OPTIONS.headerCacheMaxEntries, 16);
    assert.equal(DEFAULT_HUB_OPTIONS.headerCacheMaxBytes, 4 * 1024 * 1024);
    const obs = recordingObserver();
    const { hub } = liveHub({}, obs);
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1)));
    for (let i = 0; i < 40; i++) hub.push(video(33, bytes([0x80 | 0x10 | 0], fourCc(i), fill(i, 512 * 1024))));
    const s = hub.stats();
    assert.ok(s.headerEntries <= 16, `${s.headerEntries} entries`);
    assert.ok(s.headerBytes <= 4 * 1024 * 1024, `${s.headerBytes} bytes`);
    assert.ok(obs.drops.filter(([k, r]) => k === 'video' && r === 'header_cache_full').length >= 32);
  });

  it('when full, the oldest header of a codec not in use makes room; the played codec stays for joiners', () => {
    const obs = recordingObserver();
    const { hub } = liveHub({ headerCacheMaxEntries: 4, headerCacheMaxBytes: 64 * 1024 }, obs);
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(audio(0, aacFrame(1)));
    for (let i = 0; i < 10; i++) hub.push(video(33, exSeqStart(fourCc(i), i)));
    hub.push(video(66, avcKey(2))); // a SequenceStart clears the GOP: the next keyframe starts a new one
    assert.equal(hub.stats().headerEntries, 4);
    assert.deepEqual(
      obs.drops,
      Array.from({ length: 8 }, () => ['video', 'header_cache_full']),
    );

    const legacy = new FakeViewer('legacy', LEGACY_VIEWER_FOURCCS);
    hub.addViewer(legacy);
    assert.ok(legacy.videoMessages()[0]!.payload.equals(avcHeader()), 'AVC header first');
    assert.ok(legacy.audioMessages()[0]!.payload.equals(aacHeader()), 'AAC header kept');
    assert.ok(legacy.videoMessages()[1]!.payload.equals(avcKey(2)), 'then the GOP');

    const all = new FakeViewer('all', ['*']);
    hub.addViewer(all);
    const headers = all
      .videoMessages()
      .filter((m) => (m.payload[0]! & 0x80) !== 0)
      .map((m) => m.payload);
    assert.deepEqual(headers, [exSeqStart(fourCc(8), 8), exSeqStart(fourCc(9), 9)], 'the newest two flood headers');
  });

  it('the byte cap: a header that does not fit is not cached (counted) but still reaches current viewers', () => {
    const obs = recordingObserver();
    const { hub } = liveHub({ headerCacheMaxBytes: 16 * 1024 }, obs);
    const viewer = new FakeViewer('v', ['av01']);
    hub.addViewer(viewer);
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1)));
    const huge = bytes([0x80 | 0x10 | 0], 'av01', fill(7, 20 * 1024));
    hub.push(video(33, huge));
    assert.ok(
      viewer.videoMessages().some((m) => m.payload.equals(huge)),
      'forwarded live',
    );
    assert.deepEqual(obs.drops, [['video', 'header_cache_full']]);
    assert.equal(hub.stats().headerEntries, 1);
    const late = new FakeViewer('late', ['av01']);
    hub.addViewer(late);
    assert.ok(!late.videoMessages().some((m) => m.payload.equals(huge)), 'not replayed to joiners');
  });

  it('headers of codecs in use are never evicted: a newcomer is refused instead', () => {
    const obs = recordingObserver();
    const { hub } = liveHub({ headerCacheMaxEntries: 2 }, obs);
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(audio(0, aacFrame(1)));
    hub.push(video(33, exSeqStart('hvc1')));
    assert.deepEqual(obs.drops, [['video', 'header_cache_full']]);
    const late = new FakeViewer('late', ['hvc1']);
    hub.addViewer(late);
    assert.ok(late.videoMessages()[0]!.payload.equals(avcHeader()));
    assert.ok(late.audioMessages()[0]!.payload.equals(aacHeader()));
    assert.ok(!late.videoMessages().some((m) => m.payload.equals(exSeqStart('hvc1'))));
  });

  it('an updated header replaces its entry in place (join order kept, bytes re-counted), also when full', () => {
    const obs = recordingObserver();
    const { hub } = liveHub({ headerCacheMaxEntries: 2 }, obs);
    hub.push(video(0, exSeqStart('av01', 1)));
    hub.push(video(0, exMetadata('av01')));
    hub.push(video(0, exKey('av01', 1)));
    const before = hub.stats().headerBytes;
    hub.push(video(33, exSeqStart('av01', 2)));
    assert.deepEqual(obs.drops, []);
    assert.equal(hub.stats().headerEntries, 2);
    assert.equal(hub.stats().headerBytes, before);
    const late = new FakeViewer('late', ['av01']);
    hub.addViewer(late);
    const payloads = late.videoMessages().map((m) => m.payload);
    assert.ok(payloads[0]!.equals(exSeqStart('av01', 2)), 'the updated SequenceStart, still first');
    assert.ok(payloads[1]!.equals(exMetadata('av01')));
  });

  it('a new publisher starts with an empty header cache', () => {
    const { hub } = liveHub({ headerCacheMaxEntries: 2 });
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    assert.equal(hub.stats().headerEntries, 2);
    hub.attachPublisher(new FakePublisher('pub-2'));
    assert.equal(hub.stats().headerEntries, 0);
    assert.equal(hub.stats().headerBytes, 0);
  });
});

describe('StreamHub adaptive batching (one busy/idle decision, no per-viewer timers)', () => {
  it('writes at once while the loop is idle and merges writes per viewer while it is busy', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const load = { busy: false };
    const { hub } = liveHub({ batchWindowMs: 0, adaptiveBatchMs: 15, audioCoalesceMs: 0, loadSignal: load });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    const joinCorks = v.corks;
    hub.push(audio(0, aacFrame(1)));
    assert.equal(v.corks, joinCorks, 'idle: no cork');
    assert.equal(v.corkedWrites, 0);
    load.busy = true;
    hub.push(audio(5, aacFrame(2)));
    hub.push(audio(10, aacFrame(3)));
    assert.equal(v.corks - joinCorks, 1, 'busy: one cork for the window');
    assert.equal(v.corkedWrites, 2, 'both writes merged');
    t.mock.timers.tick(14);
    assert.equal(v.corkDepth, 1);
    t.mock.timers.tick(1);
    assert.equal(v.corkDepth, 0, 'uncorked when the adaptive window ends');
    load.busy = false;
    hub.push(audio(20, aacFrame(4)));
    assert.equal(v.corkDepth, 0, 'idle again: written at once');
    assert.deepEqual(
      v.audioMessages().map((m) => m.timestamp),
      [0, 5, 10, 20],
    );
  });

  it('an explicit batchWindowMs overrides the adaptive decision', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { hub } = liveHub({ batchWindowMs: 30, adaptiveBatchMs: 5, audioCoalesceMs: 0, loadSignal: { busy: false } });
    const v = new FakeViewer('v');
    hub.addViewer(v);
    hub.push(audio(0, aacFrame(1)));
    assert.equal(v.corkDepth, 1, 'fixed window even though the loop is idle');
    t.mock.timers.tick(29);
    assert.equal(v.corkDepth, 1);
    t.mock.timers.tick(1);
    assert.equal(v.corkDepth, 0);
  });

  it('LoadGauge: busy at or above the threshold, idle again only below the lower one', async () => {
    const { LoadGauge } = await import('../src/index.js');
    // Wide thresholds: other processes on a shared machine stretch both the spin and the idle wait.
    const gauge = new LoadGauge({ busyAbove: 0.8, idleBelow: 0.5, periodMs: 1000 });
    gauge.sample();
    const spin = (ms: number): void => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    spin(50); // the loop ran callbacks the whole time: utilization ~1
    gauge.sample();
    assert.equal(gauge.busy, true, `busy at utilization ${gauge.utilization}`);
    await sleep(300); // idle in epoll: utilization ~0
    gauge.sample();
    assert.equal(gauge.busy, false, `idle at utilization ${gauge.utilization}`);
  });
});

describe('StreamHub shared join burst (one Buffer per GOP generation for every joiner)', () => {
  const started = (): { hub: StreamHub; live: FakeViewer } => {
    const { hub } = liveHub({ audioCoalesceMs: 0 });
    const live = new FakeViewer('live');
    hub.addViewer(live);
    hub.push(data(0, publishedMetadata({ width: 1280, videocodecid: 7 })));
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(1)));
    hub.push(audio(10, aacFrame(1)));
    hub.push(video(33, avcInter(2)));
    return { hub, live };
  };

  it('joiners of one GOP share the bytes; what an earlier joiner holds never changes as the GOP grows', () => {
    const { hub } = started();
    const a = new FakeViewer('a');
    hub.addViewer(a);
    const aGop = a.writes[1]!;
    const aGopCopy = Buffer.from(aGop);
    hub.push(audio(40, aacFrame(3)));
    hub.push(video(66, avcInter(4)));
    const b = new FakeViewer('b');
    hub.addViewer(b);
    assert.equal(b.writes.length, 2);
    assert.equal(b.writes[1]!.buffer, aGop.buffer, 'the same arena');
    assert.ok(b.writes[1]!.length > aGop.length, 'b gets the grown GOP');
    assert.ok(aGop.equals(aGopCopy), "a's queued bytes are untouched");
    assert.deepEqual(
      b.messages().map((m) => [m.type, m.timestamp]),
      [
        [18, 0],
        [9, 0],
        [8, 0],
        [9, 0],
        [8, 10],
        [9, 33],
        [8, 40],
        [9, 66],
      ],
    );
    // A keyframe starts a new generation: a new arena.
    hub.push(video(100, avcKey(5)));
    const c = new FakeViewer('c');
    hub.addViewer(c);
    assert.notEqual(c.writes[1]!.buffer, aGop.buffer);
    assert.deepEqual(
      c.videoMessages().map((m) => m.timestamp),
      [0, 100],
    );
    // Live messages after the join are delivered on top, in order.
    hub.push(video(133, avcInter(6)));
    assert.deepEqual(
      c.videoMessages().map((m) => m.timestamp),
      [0, 100, 133],
    );
  });

  it('a GOP that outgrows its arena moves to a larger one: earlier joiners keep their bytes, later ones and FLV viewers decode every frame', () => {
    const { hub } = liveHub({ audioCoalesceMs: 0, gopCacheMaxBytes: 10_000_000 });
    hub.push(video(0, avcHeader()));
    hub.push(video(0, avcKey(1, 1000))); // a small GOP first: the next GOP's arena is sized from it (64 KiB)
    hub.push(video(33, avcKey(2, 20_000)));
    const early = new FakeViewer('early');
    hub.addViewer(early);
    const earlyGop = Buffer.from(early.writes[1]!);
    const frames = [avcKey(2, 20_000)];
    for (let i = 1; i <= 30; i++) {
      frames.push(avcInter(i, 5000)); // 170 KB in all: past the first arena
      hub.push(video(33 + i * 33, frames.at(-1)!));
    }
    assert.ok(early.writes[1]!.equals(earlyGop), "the early joiner's queued bytes did not change");
    const late = new FakeViewer('late');
    hub.addViewer(late);
    assert.notEqual(late.writes[1]!.buffer, early.writes[1]!.buffer, 'a new arena');
    const flv = new FakeFlvViewer('flv'); // the per-message path: payloads rebuilt from the re-pointed chunks
    hub.addViewer(flv);
    const flvTags = readFlvFile(Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...flv.writes])).tags;
    for (const [label, got] of [
      ['late joiner', late.videoMessages().slice(1)],
      ['early joiner (join bytes + live frames)', early.videoMessages().slice(1)],
      ['FLV joiner', flvTags.filter((t) => t.type === MessageType.Video).slice(1)],
    ] as const) {
      assert.deepEqual(
        got.map((m) => m.timestamp),
        frames.map((_, i) => 33 + i * 33),
        label,
      );
      got.forEach((m, i) =>
        assert.ok(('payload' in m ? m.payload : m.data).equals(frames[i]!), `${label}: frame ${i}`),
      );
    }
  });

  it('joiners that can not take the shared bytes get the per-message join (other stream id, audio only)', () => {
    const { hub } = started();
    const shared = new FakeViewer('shared');
    hub.addViewer(shared);
    const other = new FakeViewer('other', [], 2);
    hub.addViewer(other);
    assert.ok(other.writes.length > 2, 'per message');
    assert.ok(other.messages().every((m) => m.streamId === 2));
    const audioOnly = new FakeViewer('audio-only');
    hub.addViewer(audioOnly, { video: false });
    assert.deepEqual(
      audioOnly.videoMessages().map((m) => m.payload[1]),
      [0],
      'only the video sequence header, no frames',
    );
    const key = (m: RtmpMessage): string => `${m.type}@${m.timestamp}`;
    assert.deepEqual(other.messages().map(key), shared.messages().map(key));
  });

  it('a GOP with an Enhanced RTMP codec the joiner did not negotiate takes the per-message path', () => {
    const { hub } = liveHub({ audioCoalesceMs: 0 });
    hub.push(video(0, avcHeader()));
    hub.push(video(0, exSeqStart('hvc1')));
    hub.push(video(0, exKey('hvc1', 1)));
    const legacy = new FakeViewer('legacy');
    hub.addViewer(legacy);
    assert.deepEqual(
      legacy.videoMessages().map((m) => m.payload[0]),
      [0x17],
      'the AVC header only: no HEVC bytes to a viewer that did not ask for them',
    );
    const hevc = new FakeViewer('hevc', ['hvc1']);
    hub.addViewer(hevc);
    assert.equal(hevc.writes.length, 2, 'shared bytes for a viewer that accepts every codec in them');
    assert.equal(hevc.videoMessages().length, 3);
  });
});

describe('StreamHub coalesced audio + video under the slow-viewer policy', () => {
  it('the shared group write applies the policy: a dropping viewer gets the audio without the inter frame, a stalled one is cut', () => {
    const obs = recordingObserver();
    const { hub } = liveHub(
      {
        audioCoalesceMs: 1000,
        viewerSoftBacklogBytes: 10_000,
        viewerSoftBacklogMs: 60_000,
        viewerHardBacklogBytes: 100_000,
        viewerHardBacklogMs: 120_000,
      },
      obs,
    );
    hub.push(video(0, avcHeader()));
    hub.push(audio(0, aacHeader()));
    hub.push(video(0, avcKey(0)));
    const fast = new FakeViewer('fast');
    const slow = new FakeViewer('slow');
    const stalled = new FakeViewer('stalled');
    for (const v of [fast, slow, stalled]) hub.addViewer(v);
    slow.backlog = 20_000; // past soft, below hard
    stalled.backlog = 200_000; // past hard
    hub.push(audio(10, aacFrame(1)));
    hub.push(video(33, avcInter(1)));
    const key = (m: RtmpMessage): string => `${m.type}@${m.timestamp}`;
    assert.deepEqual(fast.messages().slice(-2).map(key), ['8@10', '9@33']);
    assert.deepEqual(slow.messages().slice(-1).map(key), ['8@10'], 'audio kept, inter frame dropped');
    assert.deepEqual(stalled.disconnects, ['slow_viewer']);
    assert.deepEqual(obs.slow, [['stalled', 'backlog_bytes']]);
    assert.equal(hub.viewerCount, 2);
  });
});
