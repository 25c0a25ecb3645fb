import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  MessageType,
  parseVideoTag,
  readFlvFile,
  type FlvTag,
  type RtmpClient,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import { joinAnnexB, lengthPrefixedToAnnexB } from '@rtmp-relay/rtmp/testkit';
import { ffprobeFileFrames } from './support/media-tools.js';
import { startTestNode, type NodeUnderTest } from './support/node-under-test.js';
import { run, start, stopAll, waitFor, type RunResult } from './support/processes.js';
import {
  RecordingPlayer,
  connectPublisher,
  describeMessage,
  eRtmpFixtureDir,
  expectedLiveOutput,
  headerKind,
  hvcCParameterSets,
  isAv,
  isCodedVideo,
  isExHeaderMessage,
  isKeyframe,
  loadFlvFixture,
  packageHevcAsErtmp,
  replayTags,
} from './support/ertmp-tools.js';

/**
 * Enhanced RTMP through the relay (docs/INTEROP.md §6.2, §7.1-7.2 and §10):
 * - the AV1 + Opus E-FLV fixtures from veovera/enhanced-rtmp replayed tag by tag with our client, checked byte-exact
 *   at a player attached from the start and at a late joiner;
 * - per-player gating: ExHeader frames only go to players that listed the FourCC in connect's fourCcList, and
 *   FFmpeg 5.1 (no E-RTMP support) gets the legacy part of a stream only;
 * - HEVC (`hvc1`) packaged from an x265 Annex B stream, played back and decoded by ffprobe;
 * - publishers that do not announce fourCcList still have their ExHeader frames relayed.
 */

const FIXTURES = ['testsrc.flv', 'testsrc2.flv', 'mptestsrc.flv'];
const ERTMP_CAPS = ['av01', 'Opus'];
/** SRS/NGINX/our server send `|RtmpSampleAccess true true` right after Play.Start. */
const isSampleAccess = (m: RtmpMessage): boolean =>
  m.type === MessageType.DataAmf0 && m.payload.subarray(3, 20).toString('latin1') === '|RtmpSampleAccess';

/** Compares received messages with expected ones: same count, type, timestamp and bytes, in order. */
type Msg = { type: number; timestamp: number; payload: Buffer; tagIndex?: number };
function assertSameMessages(got: readonly Msg[], want: readonly Msg[], what: string): void {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const ctx = (): string =>
      `${what}: message ${i}${w.tagIndex !== undefined ? ` (FLV tag ${w.tagIndex})` : ''}: got ${describeMessage(g)}, want ${describeMessage(w)}`;
    assert.equal(g.type, w.type, ctx());
    assert.ok(g.payload.equals(w.payload), `payload differs; ${ctx()}`);
    assert.equal(g.timestamp, w.timestamp, `timestamp differs; ${ctx()}`);
  }
  assert.equal(got.length, want.length, `${what}: received ${got.length} messages, expected ${want.length}`);
}

interface FixtureReplay {
  tags: FlvTag[];
  /** Attached before the publish, fourCcList av01+Opus. */
  live: RecordingPlayer;
  /** Joined after `joinedAtTag` tags had been sent, fourCcList av01+Opus. */
  late: RecordingPlayer;
  joinedAtTag: number;
  /** No fourCcList. */
  legacy: RecordingPlayer;
  /** fourCcList av01 only. */
  av01Only: RecordingPlayer;
  /** `ffmpeg -i url -t 2 -f null -` started before the publish (only for the first fixture). */
  ffmpeg?: RunResult;
}

describe('E-RTMP: AV1 + Opus fixtures replayed through the relay', () => {
  let node: NodeUnderTest;
  const players: RecordingPlayer[] = [];
  const publishers: RtmpClient[] = [];
  const replays = new Map<string, Promise<FixtureReplay>>();

  before(async () => {
    node = await startTestNode({ PLAY_WAIT_MS: '10000', UNPUBLISH_GRACE_MS: '200' });
  });
  after(async () => {
    for (const p of players) p.close();
    for (const p of publishers) p.close();
    await stopAll();
    await node?.shutdown('test');
  });

  async function player(url: string, fourCcList?: string[]): Promise<RecordingPlayer> {
    const p = await RecordingPlayer.connect(url, fourCcList);
    players.push(p);
    return p;
  }

  /** Publishes one fixture with E-RTMP players attached from the start, a late joiner and legacy players. */
  async function doReplay(
    fixture: string,
    opts: { legacyPublisher?: boolean; withFfmpeg?: boolean; key?: string; tags?: FlvTag[] } = {},
  ): Promise<FixtureReplay> {
    const tags = opts.tags ?? loadFlvFixture(fixture);
    const key = opts.key ?? `ertmp/${fixture.replace(/\.flv$/, '')}`;
    const url = node.rtmpUrl(key);
    const expected = expectedLiveOutput(tags).filter(isAv);

    const live = await player(url, ERTMP_CAPS);
    const legacy = await player(url);
    const av01Only = await player(url, ['av01']);
    // Plays wait for the stream to go live (PLAY_WAIT_MS); the viewers are attached when Play.Start arrives.
    const plays = [live.play(), legacy.play(), av01Only.play()];
    // FFmpeg 5.1 as a real legacy player, from before the publish (its play also waits for the stream).
    const ffmpeg = opts.withFfmpeg
      ? start(
          'ffmpeg',
          ['-hide_banner', '-v', 'verbose', '-rw_timeout', '8000000', '-i', url, '-t', '2', '-f', 'null', '-'],
          { timeoutMs: 30_000 },
        )
      : undefined;
    if (ffmpeg)
      await waitFor(
        'FFmpeg to connect and play',
        async () => (await node.metric('rtmp_connections')) >= 4,
        5_000,
      ).catch(() => undefined);

    // E-RTMP publishers announce their codecs like viewers do (OBS 29.1+, FFmpeg 6.1+); legacyPublisher omits it.
    const publisher = await connectPublisher(url, opts.legacyPublisher ? undefined : ERTMP_CAPS);
    publishers.push(publisher);
    await Promise.all(plays);
    if (ffmpeg)
      await waitFor(
        'FFmpeg to be attached',
        async () => (await node.json<{ viewers?: number }>(`/api/streams/${key}`)).viewers === 4,
        10_000,
      );

    const joinedAtTag = Math.floor(tags.length / 2);
    let late: RecordingPlayer | undefined;
    await replayTags(publisher, tags, {
      speed: 10,
      pacer: () => live.av.length,
      beforeTag: async (i) => {
        if (i !== joinedAtTag) return;
        // Let the live viewer catch up, so the hub has processed everything sent so far, then join.
        const sentAv = expectedLiveOutput(tags.slice(0, i)).filter(isAv).length; // what the hub forwards
        await live.waitForAv(sentAv, 10_000, `live viewer to catch up with ${sentAv} messages`);
        late = await player(url, ERTMP_CAPS);
        await late.play(5_000);
      },
    });
    await live.waitForAv(expected.length, 10_000).catch(() => undefined); // the assertions report a shortfall
    // Give the others a moment to get the tail, then end the stream (UnpublishNotify after the grace period).
    await new Promise((r) => setTimeout(r, 200));
    publisher.close();
    const result: FixtureReplay = { tags, live, late: late!, joinedAtTag, legacy, av01Only };
    if (ffmpeg) result.ffmpeg = await ffmpeg.exited;
    return result;
  }

  function replay(fixture: string): Promise<FixtureReplay> {
    let p = replays.get(fixture);
    if (!p) {
      p = doReplay(fixture, { withFfmpeg: fixture === FIXTURES[0] });
      replays.set(fixture, p);
    }
    return p;
  }

  it('the shared E-FLV fixtures are present', () => {
    for (const f of FIXTURES)
      assert.ok(existsSync(join(eRtmpFixtureDir(), f)), `${f} in ${eRtmpFixtureDir()} (set RTMP_RELAY_SHARED_DIR)`);
  });

  for (const fixture of FIXTURES) {
    it(`${fixture}: a viewer attached from the start gets every audio/video tag byte-exact, in order, same timestamps`, async () => {
      const r = await replay(fixture);
      const want = expectedLiveOutput(r.tags).filter(isAv);
      const fileAv = r.tags.filter(isAv).length;
      // The fixtures repeat no sequence header byte-for-byte, so nothing is dropped: same count as the file.
      assert.equal(want.length, fileAv, 'the model drops nothing for this fixture');
      assertSameMessages(r.live.av, want, `${fixture} live viewer`);
    });

    it(`${fixture}: metadata arrives without @setDataFrame, after |RtmpSampleAccess`, async () => {
      const r = await replay(fixture);
      const wantData = expectedLiveOutput(r.tags).filter((m) => m.type === MessageType.DataAmf0);
      const data = r.live.data;
      assert.ok(data.length > 0 && isSampleAccess(data[0]!), 'first data message is |RtmpSampleAccess');
      assertSameMessages(data.slice(1), wantData, `${fixture} live viewer data`);
      assert.ok(data.slice(1).every((m) => m.payload.subarray(3, 16).toString('latin1') !== '@setDataFrame'));
    });

    /** The late joiner's messages split at the first non-header, and the file's header state at the join. */
    async function lateJoin(fixture: string) {
      const r = await replay(fixture);
      const av = r.late.av;
      const latestHeaders = new Map<string, Buffer>();
      for (const t of r.tags.slice(0, r.joinedAtTag)) {
        const k = headerKind({ type: t.type, payload: t.data });
        if (k) latestHeaders.set(k, t.data);
      }
      const firstFrame = av.findIndex((m) => !headerKind(m));
      return { r, av, latestHeaders, firstFrame, headers: av.slice(0, Math.max(0, firstFrame)) };
    }

    it(`${fixture}: a late joiner first gets the cached AV1 SequenceStart, Opus SequenceStart + MultichannelConfig and video Metadata`, async () => {
      const { av, latestHeaders, firstFrame, headers } = await lateJoin(fixture);
      assert.ok(av.length > 0, 'late joiner received media');
      assert.ok(
        firstFrame > 0,
        `headers before the first frame; got ${av.slice(0, 6).map(describeMessage).join(' | ')}`,
      );
      const got = new Map(headers.map((m) => [headerKind(m)!, m.payload]));
      // AV1 SequenceStart (av1C), Opus SequenceStart (OpusHead) and MultichannelConfig are all needed to decode;
      // docs/INTEROP.md §7.1 also caches the latest E-RTMP video Metadata (colorInfo).
      const kinds = ['video/av01/seq0', 'video/av01/metadata', 'audio/Opus/seq0', 'audio/Opus/seq4'];
      for (const k of kinds) assert.ok(latestHeaders.has(k), `fixture has ${k} before the join`);
      const missing = kinds.filter((k) => !got.get(k)?.equals(latestHeaders.get(k)!));
      assert.deepEqual(
        missing,
        [],
        `late joiner lacks these headers (latest before the join); it got: ${headers.map(describeMessage).join(' | ')}`,
      );
      const data = (await replay(fixture)).late.data;
      assert.ok(
        isSampleAccess(data[0]!) && data[1]?.payload.subarray(3, 13).toString('latin1') === 'onMetaData',
        'late joiner got |RtmpSampleAccess then onMetaData',
      );
    });

    it(`${fixture}: after the headers a late joiner gets a keyframe, then the file byte-exact from that GOP on`, async () => {
      const { r, av, firstFrame } = await lateJoin(fixture);
      assert.ok(firstFrame >= 0, 'late joiner received frames');
      assert.ok(
        isCodedVideo(av[firstFrame]!) && isKeyframe(av[firstFrame]!),
        `first frame is a video keyframe; got ${describeMessage(av[firstFrame]!)}`,
      );
      let gopStart = -1;
      for (let i = 0; i < r.joinedAtTag; i++)
        if (isKeyframe({ type: r.tags[i]!.type, payload: r.tags[i]!.data })) gopStart = i;
      assert.ok(gopStart >= 0);
      const want = expectedLiveOutput(r.tags).filter((m) => isAv(m) && m.tagIndex >= gopStart);
      assertSameMessages(
        av.slice(firstFrame),
        want,
        `${fixture} late joiner from the GOP keyframe (FLV tag ${gopStart})`,
      );
    });

    it(`${fixture}: gating — a legacy viewer gets no ExHeader frames, an av01-only viewer gets no Opus`, async () => {
      const r = await replay(fixture);
      const exLegacy = r.legacy.messages.filter(isExHeaderMessage);
      assert.equal(
        exLegacy.length,
        0,
        `legacy viewer got ExHeader frames: ${exLegacy.slice(0, 3).map(describeMessage).join(' | ')}`,
      );
      assert.equal(r.legacy.av.length, 0, 'the stream has nothing but E-RTMP audio/video');
      assert.ok(
        r.legacy.data.some((m) => m.payload.subarray(3, 13).toString('latin1') === 'onMetaData'),
        'legacy viewer was attached (got onMetaData)',
      );

      const opus = r.av01Only.av.filter((m) => m.type === MessageType.Audio);
      assert.equal(opus.length, 0, `av01-only viewer got audio: ${opus.slice(0, 3).map(describeMessage).join(' | ')}`);
      const wantVideo = expectedLiveOutput(r.tags, (f) => f === 'av01').filter(isAv);
      assert.ok(wantVideo.every((m) => m.type === MessageType.Video));
      assertSameMessages(r.av01Only.av, wantVideo, `${fixture} av01-only viewer`);
    });
  }

  it('FFmpeg 5.1 (no E-RTMP) playing the AV1/Opus stream is sent metadata only, no ExHeader frames', async () => {
    const r = await replay(FIXTURES[0]!);
    const ff = r.ffmpeg!;
    assert.equal(ff.timedOut, false, 'FFmpeg ended by itself (UnpublishNotify)');
    assert.equal(ff.signal, null, `FFmpeg crashed: ${ff.stderr.slice(-800)}`);
    // It has no legacy track to find, so it ends with "could not find codec parameters" -- but it must not have
    // been fed ExHeader frames, which it would misread as legacy codec ids (e.g. "Unsupported video codec (1)").
    assert.doesNotMatch(
      ff.stderr,
      /Unsupported (video|audio) codec|Unknown (video|audio) codec|invalid/i,
      ff.stderr.slice(-800),
    );
    const bytes = Number(/Statistics: (\d+) bytes read/.exec(ff.stderr)?.[1] ?? NaN);
    const fileBytes = r.tags.reduce((s, t) => s + t.data.length, 0);
    assert.ok(Number.isFinite(bytes), `FFmpeg read statistics: ${ff.stderr.slice(-800)}`);
    assert.ok(bytes < 4096, `FFmpeg read ${bytes} bytes of a ${fileBytes}-byte E-RTMP stream (expected metadata only)`);
  });

  it('byte-identical repeats of the latest sequence headers are dropped (docs/INTEROP.md §7.4), everything else passes', async () => {
    // mptestsrc's first 300 tags with repeats injected: the AV1 SequenceStart right after itself, and after the first
    // keyframe (tag 7) the AV1 SequenceStart, Opus SequenceStart and Opus MultichannelConfig again -- each identical to
    // the latest header of its kind, so a viewer must see the original file and nothing more.
    const orig = loadFlvFixture('mptestsrc.flv').slice(0, 300);
    const kind = (t: FlvTag): string | undefined => headerKind({ type: t.type, payload: t.data });
    const av1Seq = orig.findLast((t, i) => i < 7 && kind(t) === 'video/av01/seq0')!;
    const opusSeq = orig.find((t) => kind(t) === 'audio/Opus/seq0')!;
    const opusMc = orig.find((t) => kind(t) === 'audio/Opus/seq4')!;
    const key = orig.findIndex((t) => isKeyframe({ type: t.type, payload: t.data }));
    const seqIdx = orig.indexOf(av1Seq);
    assert.ok(av1Seq && opusSeq && opusMc && key > seqIdx);
    const ts = orig[key]!.timestamp;
    const repeat = (t: FlvTag): FlvTag => ({ ...t, timestamp: ts, data: Buffer.from(t.data) });
    const tags = [
      ...orig.slice(0, seqIdx + 1),
      { ...av1Seq, data: Buffer.from(av1Seq.data) },
      ...orig.slice(seqIdx + 1, key + 1),
      repeat(av1Seq),
      repeat(opusSeq),
      repeat(opusMc),
      ...orig.slice(key + 1),
    ];
    const r = await doReplay('mptestsrc.flv', { key: 'ertmp/repeated-headers', tags });
    const want = expectedLiveOutput(tags).filter(isAv);
    assertSameMessages(want, expectedLiveOutput(orig).filter(isAv), 'model: the repeats are dropped');
    const extra = r.live.av.filter((m) => headerKind(m)).length - want.filter((m) => headerKind(m)).length;
    assertSameMessages(r.live.av, want, `viewer (${extra} extra header message(s) forwarded)`);
  });

  it('a publisher without fourCcList still has its ExHeader frames relayed to E-RTMP viewers', async () => {
    const r = await doReplay('mptestsrc.flv', { key: 'ertmp/no-fourcclist-publisher', legacyPublisher: true });
    const want = expectedLiveOutput(r.tags).filter(isAv);
    assertSameMessages(r.live.av, want, 'E-RTMP viewer of a publisher without fourCcList');
    assert.equal(r.legacy.messages.filter(isExHeaderMessage).length, 0, 'legacy viewer still gated');
  });
});

describe('E-RTMP gating: FFmpeg 5.1 plays the legacy part of a mixed stream', () => {
  let node: NodeUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'rtmp-ertmp-mixed-'));
  const clients: { close(): void }[] = [];

  before(async () => {
    node = await startTestNode({ PLAY_WAIT_MS: '15000', UNPUBLISH_GRACE_MS: '200' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopAll();
    await node?.shutdown('test');
    rmSync(dir, { recursive: true, force: true });
  });

  it('H.264/AAC + AV1/Opus ExHeader frames: FFmpeg records and decodes only the legacy tracks', async () => {
    // A legacy H.264/AAC FLV, interleaved by timestamp with the AV1/Opus ExHeader frames of a fixture.
    const legacyFlv = join(dir, 'legacy.flv');
    const gen = await run(
      'ffmpeg',
      [
        '-hide_banner',
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=320x240:rate=30',
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=1000:sample_rate=44100',
        '-t',
        '6',
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-g',
        '30',
        '-pix_fmt',
        'yuv420p',
        '-c:a',
        'aac',
        '-b:a',
        '64k',
        '-f',
        'flv',
        '-y',
        legacyFlv,
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(gen.code, 0, gen.stderr);
    const legacyTags = readFlvFile(readFileSync(legacyFlv)).tags;
    const exTags = loadFlvFixture('testsrc.flv').filter((t) => isAv(t) && t.timestamp <= 6000);
    const mixed = [...legacyTags.map((t, i) => ({ t, o: i * 2 })), ...exTags.map((t, i) => ({ t, o: i * 2 + 1 }))]
      .sort(
        (a, b) =>
          a.t.timestamp - b.t.timestamp ||
          (a.t.type === MessageType.DataAmf0 ? -1 : 0) - (b.t.type === MessageType.DataAmf0 ? -1 : 0) ||
          a.o - b.o,
      )
      .map((x) => x.t);

    const url = node.rtmpUrl('ertmp/mixed');
    const out = join(dir, 'ffmpeg-copy.flv');
    const rec = start(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-rw_timeout', '8000000', '-i', url, '-c', 'copy', '-t', '3', '-y', out],
      { timeoutMs: 40_000 },
    );
    const dec = start(
      'ffmpeg',
      [
        '-hide_banner',
        '-v',
        'error',
        '-rw_timeout',
        '8000000',
        '-i',
        url,
        '-t',
        '2',
        '-map',
        '0:v:0',
        '-f',
        'null',
        '-',
        '-progress',
        'pipe:1',
      ],
      { timeoutMs: 40_000 },
    );
    const ours = await RecordingPlayer.connect(url, ERTMP_CAPS);
    const legacy = await RecordingPlayer.connect(url);
    clients.push(ours, legacy);
    const plays = [ours.play(), legacy.play()];
    await waitFor('both FFmpeg players to connect', async () => (await node.metric('rtmp_connections')) >= 4, 10_000);
    const publisher = await connectPublisher(url, ERTMP_CAPS);
    clients.push(publisher);
    await Promise.all(plays);
    await waitFor(
      '4 viewers attached',
      async () => (await node.json<{ viewers?: number }>('/api/streams/ertmp/mixed')).viewers === 4,
      10_000,
    );
    // Real time x2: FFmpeg's -t counts stream time, so it stops after 1-1.5 s of wall time.
    await replayTags(publisher, mixed, { speed: 2, pacer: () => ours.av.length });
    const [r, d] = await Promise.all([rec.exited, dec.exited]);
    publisher.close();

    assert.equal(d.timedOut, false, 'FFmpeg (decode) ended by itself');
    assert.equal(d.code, 0, `FFmpeg decode: ${d.stderr.slice(-800)}`);
    const frames = Number([...d.stdout.matchAll(/^frame=(\d+)/gm)].at(-1)?.[1] ?? 0);
    assert.ok(frames >= 50, `FFmpeg decoded ${frames} H.264 frames in 2 s of stream`);

    assert.equal(r.timedOut, false, 'FFmpeg (copy) ended by itself');
    assert.equal(r.code, 0, `FFmpeg -c copy: ${r.stderr.slice(-800)}`);
    const recorded = readFlvFile(readFileSync(out)).tags;
    const ex = recorded.filter((t) => isExHeaderMessage({ type: t.type, payload: t.data }));
    assert.equal(
      ex.length,
      0,
      `FFmpeg recorded ExHeader tags: ${ex
        .slice(0, 3)
        .map((t) => describeMessage({ type: t.type, timestamp: t.timestamp, payload: t.data }))
        .join(' | ')}`,
    );
    const video = recorded.filter((t) => t.type === MessageType.Video);
    assert.ok(video.length >= 60, `recorded ${video.length} video tags`);
    assert.ok(
      video.every((t) => (t.data[0]! & 0x0f) === 7),
      'recorded video is AVC only',
    );
    assert.ok(
      recorded.filter((t) => t.type === MessageType.Audio).every((t) => t.data[0]! >> 4 === 10),
      'recorded audio is AAC only',
    );
    assert.ok((await ffprobeFileFrames(out)) >= 60, 'the recording decodes');

    // Our players, for the exact picture: the E-RTMP one got everything, the legacy one exactly the legacy tags.
    const ordered = mixed.map((t) => ({ type: t.type, timestamp: t.timestamp, data: t.data, streamId: 0 }));
    assertSameMessages(ours.av, expectedLiveOutput(ordered).filter(isAv), 'E-RTMP viewer of the mixed stream');
    assertSameMessages(
      legacy.av,
      expectedLiveOutput(ordered, () => false).filter(isAv),
      'legacy viewer of the mixed stream',
    );
  });
});

describe('E-RTMP HEVC (hvc1): x265 Annex B published and played back with our client', () => {
  let node: NodeUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'rtmp-ertmp-hevc-'));
  const clients: { close(): void }[] = [];

  before(async () => {
    node = await startTestNode({ PLAY_WAIT_MS: '10000', UNPUBLISH_GRACE_MS: '200' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopAll();
    await node?.shutdown('test');
    rmSync(dir, { recursive: true, force: true });
  });

  it('300 frames in, 300 frames decoded by ffprobe from what the hvc1 viewer wrote', async () => {
    const src = join(dir, 't.hevc');
    const enc = await run(
      'ffmpeg',
      [
        '-hide_banner',
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=320x240:rate=30',
        '-t',
        '10',
        '-c:v',
        'libx265',
        '-x265-params',
        'keyint=60:bframes=0:log-level=error',
        '-f',
        'hevc',
        '-y',
        src,
      ],
      { timeoutMs: 45_000 },
    );
    assert.equal(enc.code, 0, enc.stderr);
    const pkg = packageHevcAsErtmp(readFileSync(src), 30);
    assert.equal(pkg.frames, 300, 'access units in the x265 output');
    assert.ok(pkg.keyframes >= 5, `${pkg.keyframes} keyframes (keyint 60)`);

    const url = node.rtmpUrl('ertmp/hevc');
    const viewer = await RecordingPlayer.connect(url, ['hvc1']);
    const legacy = await RecordingPlayer.connect(url);
    clients.push(viewer, legacy);
    const plays = [viewer.play(), legacy.play()];
    const publisher = await connectPublisher(url, ['hvc1']);
    clients.push(publisher);
    await Promise.all(plays);
    await replayTags(publisher, pkg.messages, { speed: 10, pacer: () => viewer.av.length });
    await viewer.waitForAv(pkg.messages.length, 10_000).catch(() => undefined);
    publisher.close();

    assertSameMessages(
      viewer.av,
      pkg.messages.map((m, tagIndex) => ({ type: m.type, timestamp: m.timestamp, payload: m.data, tagIndex })),
      'hvc1 viewer',
    );
    assert.equal(legacy.messages.filter(isExHeaderMessage).length, 0, 'legacy viewer gets no hvc1 frames');

    // Annex B: parameter sets from the hvcC before the first keyframe, then every frame's NAL units.
    const parts: Buffer[] = [];
    let parameterSets: Buffer[] | undefined;
    let wroteParameterSets = false;
    for (const m of viewer.av) {
      const v = parseVideoTag(m.payload);
      assert.equal(v.fourCc, 'hvc1');
      if (v.isSequenceHeader) {
        parameterSets = hvcCParameterSets(m.payload.subarray(v.payloadOffset));
        continue;
      }
      if (!v.isCodedFrame) continue;
      if (!wroteParameterSets) {
        assert.ok(v.isKeyframe, 'the first frame is a keyframe');
        assert.ok(parameterSets, 'SequenceStart before the first frame');
        parts.push(joinAnnexB(parameterSets));
        wroteParameterSets = true;
      }
      assert.equal(v.compositionTime, 0);
      parts.push(lengthPrefixedToAnnexB(m.payload.subarray(v.payloadOffset)));
    }
    const out = join(dir, 'out.hevc');
    writeFileSync(out, Buffer.concat(parts));
    const r = await run(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', '-f', 'hevc', out],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '300', `ffprobe: ${r.stdout} ${r.stderr.slice(-500)}`);
  });
});
