/**
 * LL-HLS: the CMAF packager (boxes, parts cut at sample boundaries, segments at keyframes, continuous timestamps
 * across a gap, a bounded window, EXT-X-ENDLIST) on synthetic media, then a standalone node and an origin + edge
 * cluster with FFmpeg publishing: ffprobe/ffmpeg read the live playlist and decode frames, init and media segments
 * carry the right codec parameters and continuous timestamps (across segments and a publisher reconnect), blocking
 * reloads return the awaited part in bounded time and 400 for invalid requests, two viewers get the same bytes,
 * a stream that ends gets EXT-X-ENDLIST, unknown streams 404 and bad tokens 403.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signedQuery } from '../src/auth/index.js';
import { loadConfig } from '../src/config.js';
import { Packager } from '../src/hls/packager.js';
import { parseMediaName, partUri, renderPlaylist, segmentUri } from '../src/hls/playlist.js';
import { opusPacketSamples, videoCodecString } from '../src/hls/media.js';
import { startNode, type RunningNode } from '../src/node.js';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { run, stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices } from './support/services.js';
import { connectPublisher, loadFlvFixture, packageHevcAsErtmp, replayTags } from './support/ertmp-tools.js';

const tmp = mkdtempSync(join(tmpdir(), 'rtmp-relay-hls-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- a small ISO BMFF reader (what the tests check, independently of the writer) -------------------------------

interface Box {
  type: string;
  start: number;
  end: number;
  body: Buffer;
}

function boxes(buf: Buffer, from = 0, to = buf.length): Box[] {
  const out: Box[] = [];
  let pos = from;
  while (pos + 8 <= to) {
    const size = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    assert.ok(size >= 8 && pos + size <= to, `box ${type} at ${pos} has a sane size (${size})`);
    out.push({ type, start: pos, end: pos + size, body: buf.subarray(pos + 8, pos + size) });
    pos += size;
  }
  assert.equal(pos, to, 'boxes fill their parent exactly');
  return out;
}

function child(parent: Box | Buffer, type: string): Box | undefined {
  const body = Buffer.isBuffer(parent) ? parent : parent.body;
  return boxes(body).find((b) => b.type === type);
}

/** Per fragment and track: tfdt and the sum of trun sample durations (and the count, and key flags). */
interface TrackRun {
  trackId: number;
  baseDecodeTime: number;
  duration: number;
  samples: number;
  firstIsSync: boolean;
}

function fragmentRuns(seg: Buffer): TrackRun[][] {
  const runs: TrackRun[][] = [];
  for (const b of boxes(seg)) {
    if (b.type !== 'moof') continue;
    const frag: TrackRun[] = [];
    for (const traf of boxes(b.body).filter((x) => x.type === 'traf')) {
      const tfhd = child(traf, 'tfhd')!;
      const tfdt = child(traf, 'tfdt')!;
      const trun = child(traf, 'trun')!;
      const version = tfdt.body[0]!;
      const base = version === 1 ? Number(tfdt.body.readBigUInt64BE(4)) : tfdt.body.readUInt32BE(4);
      const flags = trun.body.readUIntBE(1, 3);
      const count = trun.body.readUInt32BE(4);
      let pos = 8;
      if (flags & 0x1) pos += 4;
      if (flags & 0x4) pos += 4;
      const per = (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0) + (flags & 0x400 ? 4 : 0) + (flags & 0x800 ? 4 : 0);
      assert.ok(flags & 0x100, 'trun carries durations');
      let duration = 0;
      let firstIsSync = false;
      for (let i = 0; i < count; i++) {
        duration += trun.body.readUInt32BE(pos + i * per);
        if (i === 0 && flags & 0x400) firstIsSync = (trun.body.readUInt32BE(pos + i * per + 8) & 0x10000) === 0;
      }
      frag.push({ trackId: tfhd.body.readUInt32BE(4), baseDecodeTime: base, duration, samples: count, firstIsSync });
    }
    runs.push(frag);
  }
  return runs;
}

/**
 * Asserts each track's fragments follow each other (tfdt = previous tfdt + previous durations): exactly, or with a
 * forward gap of at most `gapTicks` for that track (never overlapping).
 */
function assertContinuous(segments: Buffer[], what: string, gapTicks: Record<number, number> = {}): void {
  const next = new Map<number, number>();
  let fragments = 0;
  for (const seg of segments) {
    for (const frag of fragmentRuns(seg)) {
      fragments++;
      for (const r of frag) {
        const expected = next.get(r.trackId);
        if (expected !== undefined) {
          const gap = r.baseDecodeTime - expected;
          assert.ok(
            gap >= 0 && gap <= (gapTicks[r.trackId] ?? 0),
            `${what}: track ${r.trackId} continues at ${expected}, got ${r.baseDecodeTime} (fragment ${fragments})`,
          );
        }
        next.set(r.trackId, r.baseDecodeTime + r.duration);
      }
    }
  }
  assert.ok(fragments > 0, `${what}: some fragments`);
}

// ---- unit: packager and playlist -------------------------------------------------------------------------------

/** avcC for High profile level 3.1 (the codecs string is read from bytes 1..3; the rest is not parsed here). */
const AVCC = Buffer.from([1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00]);
/** AudioSpecificConfig: AAC-LC, 44.1 kHz, stereo. */
const ASC = Buffer.from([0x12, 0x10]);

function synthetic(o: {
  seconds: number;
  fps?: number;
  gopFrames?: number;
  startMs?: number;
  packager: Packager;
  wall?: number;
}): number {
  const fps = o.fps ?? 30;
  const gop = o.gopFrames ?? fps;
  const start = o.startMs ?? 0;
  const frames = Math.round(o.seconds * fps);
  let audioT = start;
  const audioStep = (1024 * 1000) / 44100;
  for (let i = 0; i < frames; i++) {
    const t = start + Math.round((i * 1000) / fps);
    while (audioT <= t) {
      o.packager.sample(
        { kind: 'audio', codec: 'mp4a', dts: Math.round(audioT), cts: 0, keyframe: true, data: Buffer.alloc(20, 1) },
        (o.wall ?? 0) + audioT,
      );
      audioT += audioStep;
    }
    o.packager.sample(
      { kind: 'video', codec: 'avc1', dts: t, cts: 0, keyframe: i % gop === 0, data: Buffer.alloc(100, i & 0xff) },
      (o.wall ?? 0) + t,
    );
  }
  return start + Math.round((frames * 1000) / fps);
}

describe('HLS packager (synthetic media)', () => {
  it('cuts segments at keyframes and parts within the target; timestamps continue across a 3 s gap; ENDLIST at the end', () => {
    const p = new Packager({ segmentMs: 2000, partMs: 500, windowSegments: 4, now: () => 0 });
    p.config({ kind: 'video', codec: 'avc1', config: AVCC });
    p.config({ kind: 'audio', codec: 'mp4a', config: ASC });
    const end = synthetic({ seconds: 6, packager: p });
    // A publisher reconnect: the hub timeline jumped 3 s ahead.
    synthetic({ seconds: 4, packager: p, startMs: end + 3000, wall: 0 });
    p.end();
    const segs = p.segments;
    assert.ok(
      segs.every((s) => s.complete),
      'every segment complete after end()',
    );
    assert.equal(segs.length, 4, 'the window holds 4 segments');
    for (const s of segs) {
      assert.ok(s.parts[0]!.independent, `segment ${s.msn} starts with a keyframe`);
      for (const part of s.parts)
        assert.ok(part.duration <= 0.5 + 0.002, `part ${s.msn}.${part.index} ${part.duration} s`);
      assert.ok(Math.abs(s.duration - 2) < 0.05 || s === segs.at(-1), `segment ${s.msn} lasts ${s.duration} s`);
    }
    assertContinuous(
      segs.map((s) => s.bytes!),
      'synthetic',
      { 2: 0 },
    );
    const text = renderPlaylist(
      {
        gen: 'g1',
        targetDuration: p.targetDuration,
        partTarget: p.partTarget,
        discontinuitySequence: 0,
        segments: segs,
        nextPart: p.nextPart(),
        ended: p.isEnded,
      },
      { skip: false, query: 'token=a' },
    );
    assert.match(text, /#EXT-X-ENDLIST\n$/);
    assert.doesNotMatch(text, /PRELOAD-HINT/);
    assert.match(text, new RegExp(`#EXT-X-MEDIA-SEQUENCE:${segs[0]!.msn}\n`));
    assert.match(text, /#EXT-X-MAP:URI="init-g1-0.mp4\?token=a"/);
    // Memory is bounded by the window: 4 segments of ~2 s.
    const perSecond = 30 * (100 + 16) + 43 * (20 + 16);
    assert.ok(p.memoryBytes() < 4 * 2.2 * perSecond + 10_000, `window bytes ${p.memoryBytes()}`);
  });

  it('renders LL-HLS tags, skips old segments in delta playlists, and names media URIs it can parse back', () => {
    const p = new Packager({ segmentMs: 1000, partMs: 250, windowSegments: 20, now: () => 1_700_000_000_000 });
    p.config({ kind: 'video', codec: 'avc1', config: AVCC });
    synthetic({ seconds: 12.2, packager: p, wall: 1_700_000_000_000 });
    const src = {
      gen: 'abc',
      targetDuration: p.targetDuration,
      partTarget: p.partTarget,
      discontinuitySequence: 0,
      segments: p.segments,
      nextPart: p.nextPart(),
      ended: false,
    };
    const full = renderPlaylist(src, { skip: false, query: '' });
    assert.match(full, /#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6\.00000,PART-HOLD-BACK=0\.50000\n/);
    assert.match(full, /#EXT-X-PART-INF:PART-TARGET=0\.25000\n/);
    assert.match(full, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-abc-12-\d+\.m4s"\n$/);
    assert.match(full, /#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20\.000Z\n/);
    const delta = renderPlaylist(src, { skip: true, query: '' });
    const skipped = Number(/#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)/.exec(delta)?.[1]);
    assert.equal(skipped, 6, 'a 12 s playlist skips what lies before the last 6 s');
    assert.ok(!delta.includes(segmentUri('abc', 0)) && delta.includes(segmentUri('abc', 6)));
    // Parts are listed only for the last 3 target durations.
    assert.ok(!full.includes(partUri('abc', 5, 0)) && full.includes(partUri('abc', 9, 0)));
    assert.deepEqual(parseMediaName(partUri('abc', 12, 3)), { type: 'part', gen: 'abc', msn: 12, index: 3 });
    assert.deepEqual(parseMediaName('seg-abc-4.m4s'), { type: 'segment', gen: 'abc', msn: 4 });
    assert.equal(parseMediaName('../etc/passwd'), undefined);
  });

  it('a new decoder configuration starts a segment with a new init segment after EXT-X-DISCONTINUITY', () => {
    const p = new Packager({ segmentMs: 1000, partMs: 500, windowSegments: 10, now: () => 0 });
    p.config({ kind: 'video', codec: 'avc1', config: AVCC });
    const end = synthetic({ seconds: 2.5, packager: p });
    const changed = Buffer.from([1, 0x4d, 0x00, 0x1e, 0xff, 0xe0, 0x00]); // Main 3.0 now
    p.config({ kind: 'video', codec: 'avc1', config: changed });
    p.config({ kind: 'video', codec: 'avc1', config: changed }); // the same again: no new init
    synthetic({ seconds: 2, packager: p, startMs: end });
    p.end();
    const versions = [...new Set(p.segments.map((s) => s.initVersion))];
    assert.deepEqual(versions, [0, 1]);
    const first1 = p.segments.find((s) => s.initVersion === 1)!;
    assert.equal(first1.discontinuity, true);
    const text = renderPlaylist(
      {
        gen: 'g',
        targetDuration: p.targetDuration,
        partTarget: p.partTarget,
        discontinuitySequence: 0,
        segments: p.segments,
        nextPart: undefined,
        ended: true,
      },
      { skip: false, query: '' },
    );
    assert.match(text, /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-g-1\.mp4"\n/);
    const avcC = (init: Buffer): string =>
      init.subarray(init.indexOf('avcC') + 4, init.indexOf('avcC') + 8).toString('hex');
    assert.equal(avcC(p.init(0)!), '0164001f');
    assert.equal(avcC(p.init(1)!), '014d001e');
  });

  it('packages audio-only streams: audio decides the cuts; durations are exact AAC frames', () => {
    const p = new Packager({ segmentMs: 2000, partMs: 500, windowSegments: 10, now: () => 0 });
    p.config({ kind: 'audio', codec: 'mp4a', config: ASC });
    for (let i = 0; i < 300; i++) {
      const t = Math.round((i * 1024 * 1000) / 44100);
      p.sample({ kind: 'audio', codec: 'mp4a', dts: t, cts: 0, keyframe: true, data: Buffer.alloc(30) }, t);
    }
    p.end();
    assert.equal(p.trackInfo.length, 1);
    assert.equal(p.trackInfo[0]!.timescale, 44100);
    assert.ok(p.segments.length >= 3);
    for (const s of p.segments.slice(0, -1)) assert.ok(Math.abs(s.duration - 2) < 0.03, `segment ${s.duration} s`);
    assertContinuous(
      p.segments.map((s) => s.bytes!),
      'audio only',
    );
    const runs = p.segments.flatMap((s) => fragmentRuns(s.bytes!)).flat();
    assert.equal(
      runs.reduce((n, r) => n + r.duration, 0),
      300 * 1024,
    );
  });

  it('reads codec strings and Opus packet durations', () => {
    assert.equal(videoCodecString('avc1', AVCC), 'avc1.64001f');
    // av1C: marker/version 0x81, profile 0 level 8 (4.0), 8-bit.
    assert.equal(videoCodecString('av01', Buffer.from([0x81, 0x08, 0x0c, 0x00])), 'av01.0.08M.08');
    assert.equal(opusPacketSamples(Buffer.from([0xfc])), 960); // CELT FB 20 ms, one frame
    assert.equal(opusPacketSamples(Buffer.from([0xf1])), 480 * 2); // CELT FB 10 ms, two frames
  });
});

// ---- a live node -------------------------------------------------------------------------------------------------

async function getText(url: string, timeoutMs = 10_000): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function getBytes(url: string): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200, `GET ${url}`);
  return Buffer.from(await res.arrayBuffer());
}

function playlistEntries(text: string): {
  init: string;
  segments: string[];
  parts: string[];
  hint: string | undefined;
} {
  const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1] ?? '';
  const lines = text.split('\n');
  const segments = lines.filter((l) => l.startsWith('seg-'));
  const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]!);
  const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)?.[1];
  return { init, segments, parts, hint };
}

async function ffprobeStreams(path: string): Promise<Array<Record<string, string>>> {
  const r = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_name,codec_tag_string,profile,width,height,sample_rate,channels',
      '-of',
      'json',
      path,
    ],
    { timeoutMs: 20_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { streams: Array<Record<string, string>> }).streams;
}

async function ffprobeFrames(path: string): Promise<number> {
  const r = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=nb_read_frames',
      '-of',
      'csv=p=0',
      path,
    ],
    { timeoutMs: 30_000 },
  );
  return Number(r.stdout.trim()) || 0;
}

describe('LL-HLS from a standalone node (FFmpeg publishing)', () => {
  let node: NodeUnderTest;
  let publisher: Running | undefined;
  const KEY = 'live/hls1';
  let base: string;

  before(async () => {
    node = await startTestNode({
      UNPUBLISH_GRACE_MS: '3000',
      PLAY_WAIT_MS: '1000',
      HLS_PART_MS: '500',
      HLS_LINGER_MS: '5000',
    });
    base = `http://127.0.0.1:${node.httpPort}/${KEY}/`;
    publisher = ffmpegPublish(node.rtmpUrl(KEY), { seconds: 60, gop: 30 });
    await waitLive(node, KEY);
  });
  after(async () => {
    await stopAll();
    await node.shutdown('test');
  });

  it('ffmpeg and ffprobe read the live playlist and decode frames; init and segments pass ffprobe with the codec parameters', async () => {
    const first = await getText(`${base}index.m3u8`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(first.headers.get('access-control-allow-origin'), '*');
    assert.match(first.headers.get('cache-control') ?? '', /max-age=1\b/);
    assert.ok(first.headers.get('etag'));
    assert.match(first.text, /#EXT-X-PART:/);
    const played = await ffmpegCountFrames(`${base}index.m3u8`, 4);
    assert.ok(played.frames >= 60, `ffmpeg decoded ${played.frames} frames from the live playlist (${played.stderr})`);
    // Two complete segments at least, then check them as files.
    const text = await waitFor(
      '3 segments listed',
      async () => {
        const t = (await getText(`${base}index.m3u8`)).text;
        return playlistEntries(t).segments.length >= 3 ? t : undefined;
      },
      15_000,
      200,
    );
    const e = playlistEntries(text);
    const init = await getBytes(base + e.init);
    const segs = await Promise.all(e.segments.slice(-3).map((s) => getBytes(base + s)));
    const initRes = await fetch(base + e.init);
    assert.match(initRes.headers.get('cache-control') ?? '', /immutable/);
    assert.equal(initRes.headers.get('content-type'), 'video/mp4');
    await initRes.arrayBuffer();
    const file = join(tmp, 'joined.mp4');
    writeFileSync(file, Buffer.concat([init, ...segs]));
    const streams = await ffprobeStreams(file);
    const v = streams.find((s) => s.codec_name === 'h264');
    const a = streams.find((s) => s.codec_name === 'aac');
    assert.ok(v && a, JSON.stringify(streams));
    assert.equal(v.codec_tag_string, 'avc1');
    assert.equal(Number(v.width), 320);
    assert.equal(Number(v.height), 240);
    assert.equal(a.codec_tag_string, 'mp4a');
    assert.equal(a.profile, 'LC');
    assert.equal(Number(a.sample_rate), 44100);
    const frames = await ffprobeFrames(file);
    assert.ok(frames >= 3 * 2 * 30 - 2, `ffprobe decoded ${frames} frames in 3 segments`);
    assertContinuous(segs, 'live segments', { 2: 0 });
    // Each segment starts with a sync sample.
    for (const s of segs)
      assert.ok(fragmentRuns(s)[0]!.find((r) => r.trackId === 1)?.firstIsSync, 'segment starts with a keyframe');
    const ffprobeLive = await run(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0', `${base}index.m3u8`],
      { timeoutMs: 30_000 },
    );
    assert.match(ffprobeLive.stdout, /h264,320,240/);
  });

  it('blocking reload returns the awaited part within a bounded time; invalid requests get 400', async () => {
    const { text } = await getText(`${base}index.m3u8`);
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-[a-z0-9]+-(\d+)-(\d+)\.m4s"/.exec(text);
    assert.ok(hint, text);
    // The part after the one being built: it can't exist yet, so the request must wait for it.
    const [msn, part] = [Number(hint[1]), Number(hint[2]) + 1];
    const started = performance.now();
    const blocked = await getText(`${base}index.m3u8?_HLS_msn=${msn}&_HLS_part=${part}`);
    const waited = performance.now() - started;
    assert.equal(blocked.status, 200);
    const name = new RegExp(`URI="part-[a-z0-9]+-${msn}-${part}\\.m4s"|part-[a-z0-9]+-${msn + 1}-0\\.m4s`);
    assert.match(blocked.text, name, 'the awaited part is in the playlist');
    assert.ok(waited > 100 && waited < 2000, `blocked ${waited.toFixed(0)} ms for the part after next (0.5 s parts)`);
    console.log(`# blocking reload answered in ${waited.toFixed(0)} ms`);
    // The preload-hinted part itself is held until it exists, then served.
    const next = playlistEntries(blocked.text).hint!;
    const t0 = performance.now();
    const partBytes = await getBytes(base + next);
    assert.ok(performance.now() - t0 < 1500 && boxes(partBytes).some((b) => b.type === 'moof'));
    for (const q of ['_HLS_part=1', '_HLS_msn=abc', '_HLS_msn=1&_HLS_part=-1', `_HLS_msn=${msn + 50}`]) {
      const r = await getText(`${base}index.m3u8?${q}`);
      assert.equal(r.status, 400, `${q} → ${r.status}`);
    }
    assert.ok((await node.metric('hls_blocking_reloads_total', { outcome: 'ready' })) >= 1);
    assert.ok((await node.metric('hls_requests_total', { type: 'part', status: '200' })) >= 1);
    assert.ok((await node.metric('hls_bytes_sent_total', { type: 'part' })) > 0);
  });

  it('two viewers get byte-identical playlists, parts and segments (built once); ETag revalidation answers 304', async () => {
    const { text } = await getText(`${base}index.m3u8`);
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-[a-z0-9]+-(\d+)-(\d+)\.m4s"/.exec(text)!;
    const url = `${base}index.m3u8?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}`;
    const [a, b] = await Promise.all([getText(url), getText(url)]);
    assert.equal(a.text, b.text);
    assert.equal(a.headers.get('etag'), b.headers.get('etag'));
    const e = playlistEntries(a.text);
    for (const uri of [e.init, e.segments.at(-1)!, e.parts.at(-1)!]) {
      const [x, y] = await Promise.all([getBytes(base + uri), getBytes(base + uri)]);
      assert.ok(x.equals(y), `${uri} identical for both viewers`);
    }
    const etag = a.headers.get('etag')!;
    const revalidated = await fetch(url, { headers: { 'if-none-match': etag } });
    assert.equal(revalidated.status, 304);
    assert.ok((await node.metric('hls_sessions')) >= 1);
    assert.equal(await node.metric('hls_packagers'), 1, 'one packager for the stream, whatever the viewers');
    assert.equal(await node.metric('rtmp_viewers', { protocol: 'hls' }), 1);
  });

  it('a crowd of blocking reloads for one part is answered together with one rendering; admitted requests answer like the first; 304 and HEAD from the shared headers', async () => {
    const token = `crowd=${Date.now()}`; // a new auth query: the first request goes through admission
    const first = await fetch(`${base}index.m3u8?${token}`, { signal: AbortSignal.timeout(10_000) });
    const firstText = await first.text();
    const again = await fetch(`${base}index.m3u8?${token}`, { signal: AbortSignal.timeout(10_000) });
    const againText = await again.text();
    const headerNames = (r: Response): string[] => [...r.headers.keys()].filter((k) => k !== 'date').sort();
    assert.deepEqual(headerNames(again), headerNames(first), 'an admitted request has the headers of the first');
    for (const h of ['content-type', 'cache-control', 'access-control-allow-origin', 'access-control-expose-headers'])
      assert.equal(again.headers.get(h), first.headers.get(h), h);
    if (again.headers.get('etag') === first.headers.get('etag')) assert.equal(againText, firstText);
    assert.equal(Number(again.headers.get('content-length')), Buffer.byteLength(againText));

    // Every viewer at the live edge asks for the part being built: all wait, all get the same bytes and ETag.
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-[a-z0-9]+-(\d+)-(\d+)\.m4s/.exec(againText)!;
    const url = `${base}index.m3u8?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}&${token}`;
    const crowd = await Promise.all(Array.from({ length: 20 }, () => getText(url)));
    const targetDuration = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(crowd[0]!.text)![1]);
    for (const r of crowd) {
      assert.equal(r.status, 200);
      assert.equal(r.text, crowd[0]!.text);
      assert.equal(r.headers.get('etag'), crowd[0]!.headers.get('etag'));
      assert.equal(r.headers.get('cache-control'), `public, max-age=${6 * targetDuration}`, 'twice the longest wait');
    }
    assert.match(crowd[0]!.text, new RegExp(`part-[a-z0-9]+-${hint[1]}-${hint[2]}\\.m4s\\?${token}`));
    assert.equal(
      (await fetch(url, { headers: { 'if-none-match': crowd[0]!.headers.get('etag')! } })).status,
      304,
      'the shared ETag revalidates',
    );

    const part = playlistEntries(crowd[0]!.text).parts.at(-1)!;
    const body = await getBytes(base + part);
    const head = await fetch(base + part, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), body.length);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const etag = head.headers.get('etag')!;
    assert.equal(etag, `"${part.split('?')[0]}"`);
    const notModified = await fetch(base + part, { headers: { 'if-none-match': etag } });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.get('etag'), etag);
    assert.equal((await notModified.arrayBuffer()).byteLength, 0);

    // Paths Fastify routes elsewhere are never taken for HLS, whatever streams are being packaged.
    const api = await fetch(`http://127.0.0.1:${node.httpPort}/api/streams/index.m3u8`);
    assert.deepEqual(await api.json(), { error: 'stream not found', key: 'index.m3u8' });
  });

  it('timestamps stay continuous across a publisher reconnect, and a stream that ends gets EXT-X-ENDLIST', async () => {
    const before = playlistEntries((await getText(`${base}index.m3u8`)).text);
    await publisher!.stop('SIGKILL');
    publisher = ffmpegPublish(node.rtmpUrl(KEY), { seconds: 5, gop: 30 });
    // The playlist keeps going (reload while waiting), then ends after the second publisher and the grace.
    const ended = await waitFor(
      'EXT-X-ENDLIST',
      async () => {
        const r = await getText(`${base}index.m3u8`);
        return r.text.includes('#EXT-X-ENDLIST') ? r.text : undefined;
      },
      25_000,
      250,
    );
    assert.doesNotMatch(ended, /PRELOAD-HINT/);
    const e = playlistEntries(ended);
    const firstNew = e.segments.indexOf(before.segments.at(-1)!);
    assert.ok(
      firstNew >= 0,
      `the window still holds segments from before the reconnect: ${before.segments.at(-1)} in\n${ended}`,
    );
    const segs = await Promise.all(e.segments.slice(firstNew).map((s) => getBytes(base + s)));
    assert.ok(segs.length >= 4, `${segs.length} segments across the reconnect`);
    // Video continues exactly; audio never overlaps and resumes within 1 s (where the new publisher's own
    // timestamps put its first audio frame relative to its first keyframe).
    assertContinuous(segs, 'across the reconnect', { 1: 0, 2: 44100 });
    const init = await getBytes(base + e.init);
    const file = join(tmp, 'reconnect.mp4');
    writeFileSync(file, Buffer.concat([init, ...segs]));
    assert.ok((await ffprobeFrames(file)) > 4 * 30);
  });

  it('a stream published again after it ended gets a new packager (new URIs, no EXT-X-ENDLIST)', async () => {
    const endedGen = /init-([a-z0-9]+)-/.exec((await getText(`${base}index.m3u8`)).text)?.[1];
    assert.ok(endedGen);
    publisher = ffmpegPublish(node.rtmpUrl(KEY), { seconds: 20, gop: 30 });
    const live = await waitFor(
      'a live playlist again',
      async () => {
        const r = await getText(`${base}index.m3u8`);
        return r.status === 200 && !r.text.includes('#EXT-X-ENDLIST') ? r.text : undefined;
      },
      25_000,
      250,
    );
    const gen = /init-([a-z0-9]+)-/.exec(live)?.[1];
    assert.ok(gen && gen !== endedGen, `a new generation (${gen} after ${endedGen})`);
    assert.match(live, /#EXT-X-PRELOAD-HINT/);
  });

  it('unknown stream → 404; unknown media file → 404', async () => {
    const r = await getText(`http://127.0.0.1:${node.httpPort}/live/nobody/index.m3u8`);
    assert.equal(r.status, 404);
    const m = await getText(`http://127.0.0.1:${node.httpPort}/live/nobody/seg-zz-1.m4s`);
    assert.equal(m.status, 404);
  });
});

describe('LL-HLS through an edge, with play tokens', () => {
  const SECRET = 'hls-test-secret';
  let origin: RunningNode;
  let edge: RunningNode;
  const query = (name: string): string =>
    signedQuery({ secret: SECRET, action: 'play', app: 'live', name, expiresAt: Math.floor(Date.now() / 1000) + 600 });

  before(async () => {
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = (id: string): Record<string, string> => ({
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      ADVERTISE_HOST: '127.0.0.1',
      RTMP_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SHUTDOWN_TIMEOUT_MS: '500',
      PLAY_WAIT_MS: '3000',
      NODE_ID: id,
      PLAY_SECRET: SECRET,
      REQUIRE_PLAY_TOKEN: 'true',
    });
    origin = await startNode(loadConfig({ env: env('origin-1') }), { role: 'origin' });
    edge = await startNode(loadConfig({ env: env('edge-1') }), { role: 'edge' });
    ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/e1`, { seconds: 60 });
    await waitFor(
      'live/e1 live on the origin',
      async () => {
        const res = await fetch(`http://127.0.0.1:${origin.httpPort}/api/streams/live/e1`, {
          signal: AbortSignal.timeout(2000),
        });
        return res.status === 200 && ((await res.json()) as { live: boolean }).live;
      },
      15_000,
      100,
    );
  });
  after(async () => {
    await stopAll();
    await edge?.shutdown('test');
    await origin?.shutdown('test');
    await stopAllServices();
  });

  it('the edge pulls on the first HLS request; ffmpeg decodes frames; the token is carried into every URI', async () => {
    const url = `http://127.0.0.1:${edge.httpPort}/live/e1/index.m3u8?${query('e1')}`;
    const r = await getText(url, 15_000);
    assert.equal(r.status, 200, r.text);
    const e = playlistEntries(r.text);
    const q = query('e1').split('&token=')[0]!.split('=')[0]!; // "expires"
    for (const uri of [e.init, ...e.parts]) assert.ok(uri.includes(`${q}=`) && uri.includes('token='), uri);
    const played = await ffmpegCountFrames(url, 4);
    assert.ok(played.frames >= 60, `ffmpeg decoded ${played.frames} frames through the edge (${played.stderr})`);
  });

  it('bad token → 403 (playlist and media); no token → 403', async () => {
    const bad = `expires=${Math.floor(Date.now() / 1000) + 600}&token=AAAA`;
    assert.equal((await getText(`http://127.0.0.1:${edge.httpPort}/live/e1/index.m3u8?${bad}`)).status, 403);
    assert.equal((await getText(`http://127.0.0.1:${edge.httpPort}/live/e1/index.m3u8`)).status, 403);
    assert.equal((await getText(`http://127.0.0.1:${edge.httpPort}/live/e1/seg-abc-1.m4s?${bad}`)).status, 403);
    assert.equal((await getText(`http://127.0.0.1:${origin.httpPort}/live/e1/index.m3u8?${bad}`)).status, 403);
  });
});

describe('LL-HLS from Enhanced RTMP: AV1 + Opus and HEVC', () => {
  let node: NodeUnderTest;
  const clients: Array<{ close(): void }> = [];

  before(async () => {
    node = await startTestNode({ UNPUBLISH_GRACE_MS: '300', PLAY_WAIT_MS: '3000', HLS_LINGER_MS: '1500' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopAll();
    await node.shutdown('test');
  });

  /**
   * Publishes `tags` (E-RTMP) with an HLS request made early in the replay (the packager joins from the hub's
   * cached GOP), waits for EXT-X-ENDLIST and returns the whole recording as one file: init + every segment.
   */
  async function packaged(
    key: string,
    fourCcs: string[],
    tags: Array<{ type: number; timestamp: number; data: Buffer }>,
  ): Promise<string> {
    const base = `http://127.0.0.1:${node.httpPort}/${key}/`;
    const publisher = await connectPublisher(node.rtmpUrl(key), fourCcs);
    clients.push(publisher);
    let first: Promise<unknown> | undefined;
    await replayTags(publisher, tags, {
      speed: 4,
      beforeTag: (i) => {
        if (i === 40) first = getText(`${base}index.m3u8`, 30_000);
      },
    });
    publisher.close();
    await first;
    const ended = await waitFor(
      `${key}: EXT-X-ENDLIST`,
      async () => {
        const t = (await getText(`${base}index.m3u8`)).text;
        return t.includes('#EXT-X-ENDLIST') ? t : undefined;
      },
      15_000,
      200,
    );
    const e = playlistEntries(ended);
    assert.ok(e.segments.length >= 1, ended);
    const file = join(tmp, `${key.replace('/', '-')}.mp4`);
    writeFileSync(
      file,
      Buffer.concat([await getBytes(base + e.init), ...(await Promise.all(e.segments.map((s) => getBytes(base + s))))]),
    );
    return file;
  }

  it('AV1 + Opus (E-FLV fixture): av01/av1C and Opus/dOps in the init segment; ffprobe decodes the frames', async () => {
    const tags = loadFlvFixture('testsrc.flv');
    const file = await packaged('ertmp/av1', ['av01', 'Opus'], tags);
    const streams = await ffprobeStreams(file);
    const v = streams.find((s) => s.codec_name === 'av1');
    const a = streams.find((s) => s.codec_name === 'opus');
    assert.ok(v && a, JSON.stringify(streams));
    assert.equal(v.codec_tag_string, 'av01');
    assert.equal(a.codec_tag_string, 'Opus');
    assert.equal(Number(a.sample_rate), 48000);
    const frames = await ffprobeFrames(file);
    const sent = tags.filter((t) => t.type === 9).length;
    console.log(`# AV1 + Opus: ${frames} frames decoded from HLS of ${sent} video tags`);
    assert.ok(frames >= sent * 0.9, `${frames} AV1 frames decoded`);
  });

  it('HEVC (x265 as E-RTMP hvc1): hvc1/hvcC in the init segment, segments at its keyframes; ffprobe decodes the frames', async () => {
    const src = join(tmp, 't.hevc');
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
        '8',
        '-c:v',
        'libx265',
        '-x265-params',
        'keyint=60:bframes=0:log-level=error',
        '-f',
        'hevc',
        '-y',
        src,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(enc.code, 0, enc.stderr);
    const pkg = packageHevcAsErtmp(readFileSync(src), 30);
    const file = await packaged('ertmp/hevc', ['hvc1'], pkg.messages);
    const streams = await ffprobeStreams(file);
    const v = streams.find((s) => s.codec_name === 'hevc');
    assert.ok(v, JSON.stringify(streams));
    assert.equal(v.codec_tag_string, 'hvc1');
    assert.equal(Number(v.width), 320);
    assert.equal(Number(v.height), 240);
    const frames = await ffprobeFrames(file);
    console.log(`# HEVC: ${frames} frames decoded from HLS of ${pkg.frames}`);
    assert.ok(frames >= pkg.frames - 60, `${frames} HEVC frames decoded of ${pkg.frames}`);
  });

  it('packaging stops once the last request lingers out (hub viewer gone, no packager left)', async () => {
    await waitFor('no HLS packager left', async () => (await node.metric('hls_packagers')) === 0, 10_000, 200);
    assert.equal(await node.metric('rtmp_viewers', { protocol: 'hls' }), 0);
    assert.equal(await node.metric('hls_window_bytes'), 0);
    // The ended streams' hubs are gone too (the packager left them when they ended).
    for (const key of ['ertmp/av1', 'ertmp/hevc']) {
      const res = await node.http(`/api/streams/${key}`);
      await res.arrayBuffer();
      assert.equal(res.status, 404, `${key} hub left behind`);
    }
  });
});
