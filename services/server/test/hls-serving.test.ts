/**
 * What makes serving LL-HLS cheap, checked without a node: the query parser's common-case path gives exactly what
 * URLSearchParams gives; waiters for the same thing are grouped (one readiness check, one timer) and answered
 * together; a playlist rendering (body, ETag, headers) is built once per packager change and shared, and a part
 * that completes invalidates it; media headers are built once per file.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHlsQuery, parseHlsQuerySlow } from '../src/hls/query.js';
import { renderPlaylist } from '../src/hls/playlist.js';
import { prepareHeaders } from '../src/hls/responses.js';
import type { HeldRequest } from '../src/hls/service.js';
import { HlsStream } from '../src/hls/stream.js';
import { GROUP_JOIN_MS, WaitGroups } from '../src/hls/waiters.js';
import { waitFor } from './support/processes.js';

const AVCC = Buffer.from([1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00]);
const FRAME_MS = 1000 / 30;

describe('HLS query parsing', () => {
  it('gives what URLSearchParams gives, for common and odd queries alike', () => {
    const queries = [
      '',
      '_HLS_msn=12&_HLS_part=3',
      '_HLS_msn=12&_HLS_part=3&expires=1700000000&token=abc_DEF-12.x',
      'expires=1&_HLS_skip=YES&session=s1&token=t',
      '_HLS_skip=v2',
      '_HLS_skip=NO&_HLS_msn=0',
      '_HLS_msn=1&_HLS_msn=2&_HLS_part=5&_HLS_part=x',
      '_HLS_msn=abc',
      '_HLS_msn=1&_HLS_part=-1',
      '_HLS_msn=1234567890123',
      '&&token=a&&',
      'token=a+b&x=%2F',
      'token=a%20b',
      'token=a=b',
      'flag&token=t',
      '=x&token=t',
      'token=~tilde',
      'token=a:b/c',
      '_HLS%5Fmsn=4',
      'session=a%3Ab&token=t',
      'tok*en=v.a-l_ue',
      'token=%E2%9C%93',
    ];
    for (const q of queries) assert.deepEqual(parseHlsQuery(q), parseHlsQuerySlow(q), q);
  });
});

describe('HLS wait groups', () => {
  it('groups waits for the same key: one readiness check per change, answered together, in order', () => {
    const w = new WaitGroups<string>();
    let ready = false;
    let checks = 0;
    const answered: string[] = [];
    const cond = (): boolean => {
      checks++;
      return ready;
    };
    const answer = (id: string, ok: boolean): void => void answered.push(`${id}:${ok}`);
    // A whole-millisecond origin: t0 + GROUP_JOIN_MS - t0 is then exactly GROUP_JOIN_MS (a fractional t0 can
    // round it to 99.99999999999 and put the boundary case on the wrong side).
    const t0 = Math.floor(performance.now());
    w.wait('p1.0', cond, 10_000, answer, 'a', t0);
    assert.ok(w.join('p1.0', 'b', t0 + 1), 'a request for the same part joins the group');
    w.wait('p1.0', cond, 10_000, answer, 'c', t0 + 2);
    assert.equal(checks, 2, 'joining checks nothing; a wait checks once on arrival');
    assert.equal(w.join('p2.0', 'x', t0 + 3), false, 'no group for another part');
    checks = 0;
    w.check();
    assert.equal(checks, 1, 'one check for the group');
    assert.deepEqual(answered, []);
    ready = true;
    w.check();
    assert.deepEqual(answered, ['a:true', 'b:true', 'c:true']);
    assert.ok(w.isEmpty);
    // Already ready: answered at once, nothing kept.
    w.wait('p1.0', cond, 10_000, answer, 'd');
    assert.equal(answered.at(-1), 'd:true');
    assert.ok(w.isEmpty);
  });

  it('a group takes joiners only for a short while; each group times out on its own timer', async () => {
    const w = new WaitGroups<string>();
    const answered: Array<[string, boolean, number]> = [];
    // A whole-millisecond origin: t0 + GROUP_JOIN_MS - t0 is then exactly GROUP_JOIN_MS (a fractional t0 can
    // round it to 99.99999999999 and put the boundary case on the wrong side).
    const t0 = Math.floor(performance.now());
    const answer = (id: string, ok: boolean): void => void answered.push([id, ok, performance.now() - t0]);
    w.wait('k', () => false, 150, answer, 'first', t0);
    w.wait('k', () => false, 150, answer, 'joiner', t0 + GROUP_JOIN_MS - 1);
    assert.equal(w.join('k', 'too late to join', t0 + GROUP_JOIN_MS), false);
    w.wait('k', () => false, 400, answer, 'late', t0 + GROUP_JOIN_MS + 1);
    await waitFor('the late group times out', () => answered.length === 3 || undefined, 5000, 20);
    assert.deepEqual(
      answered.map(([id, ok]) => [id, ok]),
      [
        ['first', false],
        ['joiner', false],
        ['late', false],
      ],
    );
    assert.ok(answered[0]![2] >= 140 && answered[2]![2] >= 390, JSON.stringify(answered));
    assert.ok(w.isEmpty);
  });

  it('when the stream ends every waiter is answered with its condition; after stop, waits fail at once', () => {
    const w = new WaitGroups<string>();
    const answered: string[] = [];
    const answer = (id: string, ok: boolean): void => void answered.push(`${id}:${ok}`);
    w.wait('x', () => false, 10_000, answer, 'x');
    w.wait('y', () => answered.length > 100, 10_000, answer, 'y');
    w.check(true);
    assert.deepEqual(answered, ['x:false', 'y:false']);
    w.wait('z', () => false, 10_000, answer, 'z');
    w.stop();
    w.wait('z', () => false, 10_000, answer, 'late');
    assert.deepEqual(answered.slice(2), ['z:false', 'late:false']);
    assert.ok(w.isEmpty);
  });
});

/** An HlsStream fed `frames` of 30 fps video (keyframe every `gop` frames), its packager as a node's. */
function feed(s: HlsStream, from: number, frames: number, gop = 30): void {
  for (let i = from; i < from + frames; i++) {
    s.packager.sample(
      {
        kind: 'video',
        codec: 'avc1',
        dts: Math.round(i * FRAME_MS),
        cts: 0,
        keyframe: i % gop === 0,
        data: Buffer.alloc(100),
      },
      1_700_000_000_000 + Math.round(i * FRAME_MS),
    );
  }
}

describe('HLS shared renderings', () => {
  it('a playlist is rendered once per packager change and shared (same bytes, ETag, headers); a completed part renders anew', async () => {
    const s = new HlsStream('t', 'live/x', { segmentMs: 1000, partMs: 500, windowSegments: 5 });
    s.packager.config({ kind: 'video', codec: 'avc1', config: AVCC });
    feed(s, 0, 70);
    const a = s.playlist('token=t', false);
    const b = s.playlist('token=t', false);
    assert.equal(a, b, 'the same rendering object for every request');
    a.live ??= prepareHeaders('application/vnd.apple.mpegurl', 'public, max-age=1', a.etag, a.body.length);
    assert.equal(s.playlist('token=t', false).live, a.live, 'and the same headers');
    const fresh = renderPlaylist(
      {
        gen: s.gen,
        targetDuration: s.packager.targetDuration,
        partTarget: s.packager.partTarget,
        discontinuitySequence: s.packager.discontinuitySequence,
        segments: s.packager.segments,
        nextPart: s.packager.nextPart(),
        ended: false,
      },
      { skip: false, query: 'token=t' },
    );
    assert.equal(a.body.toString(), fresh, 'byte-identical to a fresh rendering');
    assert.notEqual(s.playlist('other=1', false), a, 'another query is another rendering');

    const parts = s.packager.lastPart()!;
    // Frames up to, but not past, the end of the open part: nothing new is listed, the rendering stays.
    feed(s, 70, 1);
    if (s.packager.lastPart() === parts) assert.equal(s.playlist('token=t', false), a);
    // Enough frames for the next part to complete.
    feed(s, 71, 16);
    assert.notEqual(s.packager.lastPart(), parts, 'a part completed');
    const c = s.playlist('token=t', false);
    assert.notEqual(c, a);
    assert.notEqual(c.etag, a.etag);
    assert.equal(c.live, undefined, 'headers are built again for the new rendering');
    assert.ok(c.body.length > a.body.length);

    // A waiter for the part that completed is woken after the change, seeing the finished window.
    const next = s.packager.nextPart()!;
    let seen: string | undefined;
    const held = {} as HeldRequest;
    s.waiters.wait(
      `p${next.msn}.${next.index}`,
      () => s.packager.lastPart()!.index >= next.index && s.packager.lastPart()!.msn === next.msn,
      10_000,
      (h) => {
        assert.equal(h, held);
        seen = s.playlist('token=t', false).body.toString();
      },
      held,
    );
    feed(s, 87, 16);
    assert.equal(seen, undefined, 'not inside the packager call');
    await waitFor('the waiter is answered', () => seen, 2000, 5);
    assert.match(seen!, new RegExp(`part-${s.gen}-${next.msn}-${next.index}\\.m4s`));
    assert.match(seen!, /#EXT-X-PRELOAD-HINT/, 'rendered with the next part open');
    s.stop();
  });

  it('media headers are built once per file name', () => {
    const s = new HlsStream('t', 'live/x', { segmentMs: 1000, partMs: 500, windowSegments: 5 });
    const h = s.mediaHeadersFor('part-g-1-0.m4s', 'video/iso.segment', 'immutable', 1234);
    assert.equal(s.mediaHeadersFor('part-g-1-0.m4s', 'video/iso.segment', 'immutable', 1234), h);
    assert.deepEqual(h.ok.slice(-4), ['etag', '"part-g-1-0.m4s"', 'content-length', '1234']);
    assert.equal(h.etag, '"part-g-1-0.m4s"');
    assert.ok(!h.notModified.includes('content-length'));
    s.stop();
  });
});
