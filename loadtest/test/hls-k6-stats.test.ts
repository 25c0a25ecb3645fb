/**
 * The k6 HLS suite's viewer logic (loadtest/k6/lib/hls-stats.js), run by Node: the same module k6 imports. Playlists
 * come from the server's own packager and renderer (synthetic media), so the parser is checked against what nodes
 * really serve: segments, parts, program date times, the preload hint, delta playlists and the end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packager } from '../../services/server/src/hls/packager.js';
import { renderPlaylist } from '../../services/server/src/hls/playlist.js';
import {
  HlsViewerStats,
  blockingUrl,
  newMedia,
  nextBlockingRequest,
  parseAttributes,
  parsePlaylist,
  resolveUri,
  segmentSpan,
} from '../k6/lib/hls-stats.js';

const AVCC = Buffer.from([1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00]);
const WALL0 = 1_700_000_000_000;

/** A packager fed `seconds` of 30 fps video with a keyframe every second, rendered as a node would. */
function served(seconds: number, o: { skip?: boolean; end?: boolean } = {}): string {
  const p = new Packager({ segmentMs: 1000, partMs: 250, windowSegments: 30, now: () => WALL0 });
  p.config({ kind: 'video', codec: 'avc1', config: AVCC });
  for (let i = 0; i < seconds * 30; i++) {
    const t = Math.round((i * 1000) / 30);
    p.sample(
      { kind: 'video', codec: 'avc1', dts: t, cts: 0, keyframe: i % 30 === 0, data: Buffer.alloc(50) },
      WALL0 + t,
    );
  }
  if (o.end) p.end();
  return renderPlaylist(
    {
      gen: 'g',
      targetDuration: p.targetDuration,
      partTarget: p.partTarget,
      discontinuitySequence: 0,
      segments: p.segments,
      nextPart: p.nextPart(),
      ended: p.isEnded,
    },
    { skip: o.skip ?? false, query: 'token=t' },
  );
}

describe('k6 HLS viewer logic', () => {
  it('parses a live LL-HLS playlist: segments, parts, PDT, server control, preload hint', () => {
    const pl = parsePlaylist(served(10.5));
    assert.equal(pl.targetDuration, 1);
    assert.equal(pl.partTarget, 0.25);
    assert.equal(pl.canBlockReload, true);
    assert.equal(pl.partHoldBack, 0.5);
    assert.equal(pl.map, 'init-g-0.mp4?token=t');
    assert.equal(pl.mediaSequence, 0);
    const complete = pl.segments.filter((s) => s.complete);
    assert.equal(complete.length, 10);
    assert.ok(complete.every((s, i) => s.msn === i && s.uri === `seg-g-${i}.m4s?token=t`));
    assert.ok(Math.abs(complete[3]!.duration - 1) < 1e-3);
    assert.equal(complete[0]!.programDateTime, WALL0);
    assert.equal(complete[4]!.programDateTime, WALL0 + 4000);
    const open = pl.segments.at(-1)!;
    assert.equal(open.complete, false);
    assert.equal(open.msn, 10);
    assert.ok(open.parts.length >= 1 && open.parts[0]!.independent);
    assert.ok(
      open.parts.every((x) => x.duration > 0.2 && x.duration <= 0.252),
      'parts within the part target',
    );
    assert.ok(Math.abs(segmentSpan(open) - open.parts.reduce((n, x) => n + x.duration, 0)) < 1e-9);
    assert.equal(pl.preloadHint, `part-g-10-${open.parts.length}.m4s?token=t`);
    assert.deepEqual(nextBlockingRequest(pl), { msn: 10, part: open.parts.length });
    assert.equal(pl.ended, false);
  });

  it('numbers segments after EXT-X-SKIP; sees EXT-X-ENDLIST; attributes with quoted commas', () => {
    const delta = parsePlaylist(served(20.2, { skip: true }));
    assert.ok(delta.skipped > 0);
    const first = delta.segments[0]!;
    assert.equal(first.msn, delta.skipped);
    assert.equal(first.uri, `seg-g-${delta.skipped}.m4s?token=t`);
    const ended = parsePlaylist(served(3.2, { end: true }));
    assert.equal(ended.ended, true);
    assert.equal(nextBlockingRequest(ended), undefined);
    assert.deepEqual(parseAttributes('URI="a,b.m4s",DURATION=0.5,INDEPENDENT=YES'), {
      URI: 'a,b.m4s',
      DURATION: '0.5',
      INDEPENDENT: 'YES',
    });
    assert.throws(() => parsePlaylist('<html>'), /not an HLS playlist/);
  });

  it('follows the live edge: LL joins at the newest independent part, then takes only new parts; plain takes segments', () => {
    const seen = new Set<string>();
    const first = newMedia(parsePlaylist(served(5.6)), seen, true);
    assert.match(first[0]!.uri, /^part-g-5-0\.m4s/, 'joins at the keyframe part of the segment in progress');
    assert.equal(first.at(-1)!.uri.split('?')[0], `part-g-5-${first.length - 1}.m4s`);
    assert.equal(first[0]!.programDateTime, WALL0 + 5000);
    const later = newMedia(parsePlaylist(served(6.3)), seen, true);
    assert.ok(later.length >= 2 && later.every((m) => !first.some((f) => f.uri === m.uri)));
    assert.deepEqual(newMedia(parsePlaylist(served(6.3)), seen, true), [], 'nothing twice');
    const plain = newMedia(parsePlaylist(served(8.1)), new Set(), false);
    assert.deepEqual(
      plain.map((m) => m.uri.split('?')[0]),
      ['seg-g-5.m4s', 'seg-g-6.m4s', 'seg-g-7.m4s'],
    );
  });

  it('builds blocking-reload and media URLs', () => {
    const url = 'http://edge:8090/live/cam/index.m3u8?expires=1&token=x';
    assert.equal(
      resolveUri(url, 'part-g-1-2.m4s?expires=1&token=x'),
      'http://edge:8090/live/cam/part-g-1-2.m4s?expires=1&token=x',
    );
    assert.equal(blockingUrl(url, { msn: 7, part: 2 }, true), `${url}&_HLS_msn=7&_HLS_part=2`);
    assert.equal(
      blockingUrl('http://e/live/a/index.m3u8', { msn: 7, part: 0 }, false),
      'http://e/live/a/index.m3u8?_HLS_msn=7',
    );
  });

  it('estimates stalls and live edge distance from arrival times', () => {
    const s = new HlsViewerStats(100);
    s.onMedia(0.5, 1000, 10_000, 9_900);
    s.onMedia(0.5, 1000, 10_450, 10_400); // in time
    s.onMedia(0.5, 1000, 11_050, 10_900); // 50 ms late: under the threshold
    assert.equal(s.stalls, 0);
    s.onMedia(0.5, 1000, 12_000, 11_400); // played out at 11 500: 500 ms stall
    assert.equal(s.stalls, 1);
    assert.equal(s.stallMs, 500);
    assert.deepEqual(s.edgeDistancesMs, [100, 50, 150, 600]);
    assert.equal(s.stallTimeAt(12_400), 500, 'media left until 12 500');
    assert.equal(s.stallTimeAt(13_000), 1000, 'ran out 500 ms before the end');
    assert.equal(s.bytes, 4000);
  });
});
