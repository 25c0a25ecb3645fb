/**
 * The benchmark's light LL-HLS client: the parts it reads from a playlist the server's packager renders, the next
 * blocking request, and the first video decode time of a fragment (for publish-to-view latency).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packager } from '../../services/server/src/hls/packager.js';
import { renderPlaylist } from '../../services/server/src/hls/playlist.js';
import { firstVideoDecodeMs, listParts } from '../src/hls-client.js';

const AVCC = Buffer.from([1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00]);

function packager(seconds: number, startMs: number): Packager {
  const p = new Packager({ segmentMs: 1000, partMs: 500, windowSegments: 10, now: () => 0 });
  p.config({ kind: 'video', codec: 'avc1', config: AVCC });
  for (let i = 0; i < seconds * 30; i++) {
    const t = startMs + Math.round((i * 1000) / 30);
    p.sample(
      { kind: 'video', codec: 'avc1', dts: t, cts: 0, keyframe: i % 30 === 0, data: Buffer.alloc(40) },
      5000 + t,
    );
  }
  return p;
}

const render = (p: Packager, ended = false): string =>
  renderPlaylist(
    {
      gen: 'g',
      targetDuration: p.targetDuration,
      partTarget: p.partTarget,
      discontinuitySequence: 0,
      segments: p.segments,
      nextPart: p.nextPart(),
      ended,
    },
    { skip: false, query: '' },
  );

describe('light LL-HLS client', () => {
  it('lists parts with their segment, index and start time, and asks for the part after the newest', () => {
    const p = packager(3.6, 0);
    const { parts, next } = listParts(render(p));
    const open = p.segments.at(-1)!;
    assert.equal(parts.at(-1)!.uri, `part-g-${open.msn}-${open.parts.length - 1}.m4s`);
    assert.deepEqual(next, { msn: open.msn, part: open.parts.length });
    const first = parts.find((x) => x.msn === 1 && x.index === 0)!;
    assert.equal(first.independent, true);
    assert.equal(first.pdt, 5000 + 1000);
    p.end();
    assert.equal(listParts(render(p, true)).next, undefined);
  });

  it('reads the first video decode time (ms) from a fragment', () => {
    const p = packager(2.2, 123_456);
    const part = p.segments[1]!.parts[0]!;
    assert.equal(firstVideoDecodeMs(part.bytes), 124_456);
    assert.equal(firstVideoDecodeMs(Buffer.alloc(16)), undefined);
  });
});
