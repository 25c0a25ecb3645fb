import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import { RtmpProtocolError } from '../src/errors.js';
import {
  FLV_HEADER_SIZE,
  FLV_TAG_HEADER_SIZE,
  FlvReader,
  encodeFlvHeader,
  encodeFlvPreviousTagSize,
  encodeFlvTag,
  encodeFlvTagHeader,
  readFlvFile,
  type FlvTag,
} from '../src/flv.js';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: <repo>/../shared/fixtures/e-rtmp (the repo and shared/ are siblings), or $RTMP_RELAY_SHARED_DIR.
// ---------------------------------------------------------------------------------------------------------------
function fixtureDir(): string {
  const relative = fileURLToPath(new URL('../../../../shared/fixtures/e-rtmp/', import.meta.url));
  if (existsSync(relative)) return relative;
  const env = process.env.RTMP_RELAY_SHARED_DIR;
  if (env) {
    const dir = join(env, 'fixtures', 'e-rtmp');
    if (existsSync(dir)) return dir;
  }
  throw new Error(`E-RTMP fixtures not found at ${relative} (set RTMP_RELAY_SHARED_DIR to the shared/ directory)`);
}
const FIXTURE_DIR = fixtureDir();
const FIXTURES = ['testsrc.flv', 'testsrc2.flv', 'mptestsrc.flv'];
const fixture = (name: string): Buffer => readFileSync(join(FIXTURE_DIR, name));

function assertProtocolError(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RtmpProtocolError, `expected RtmpProtocolError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    return true;
  });
}

function sameTags(actual: FlvTag[], expected: FlvTag[]): void {
  assert.equal(actual.length, expected.length, 'tag count');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a.type !== e.type || a.timestamp !== e.timestamp || a.streamId !== e.streamId || !a.data.equals(e.data)) {
      assert.fail(
        `tag ${i} differs: ${a.type}/${a.timestamp}/${a.data.length} vs ${e.type}/${e.timestamp}/${e.data.length}`,
      );
    }
  }
}

/** Push `buf` in chunks of the given sizes (cycled). */
function pushInChunks(reader: FlvReader, buf: Buffer, sizes: readonly number[]): FlvTag[] {
  const tags: FlvTag[] = [];
  let pos = 0;
  let i = 0;
  while (pos < buf.length) {
    const n = sizes[i++ % sizes.length]!;
    for (const t of reader.push(buf.subarray(pos, pos + n))) tags.push(t);
    pos += n;
  }
  reader.end();
  return tags;
}

function buildFile(
  tags: { type: number; timestamp: number; data: Buffer }[],
  header = { audio: true, video: true },
): Buffer {
  return Buffer.concat([encodeFlvHeader(header), ...tags.map(encodeFlvTag)]);
}

describe('FLV encoding', () => {
  it('writes the 9-byte header plus PreviousTagSize0', () => {
    assert.deepEqual(
      encodeFlvHeader({ audio: true, video: true }),
      Buffer.from('464c56010500000009' + '00000000', 'hex'),
    );
    assert.equal(encodeFlvHeader({ audio: false, video: true })[4], 0x01);
    assert.equal(encodeFlvHeader({ audio: true, video: false })[4], 0x04);
    assert.equal(encodeFlvHeader({ audio: false, video: false }).length, FLV_HEADER_SIZE + 4);
  });

  it('writes tag headers with the extended timestamp byte', () => {
    const h = encodeFlvTagHeader(9, 0x12345678, 0x0a0b0c);
    assert.equal(h.length, FLV_TAG_HEADER_SIZE);
    assert.deepEqual(h, Buffer.from([9, 0x0a, 0x0b, 0x0c, 0x34, 0x56, 0x78, 0x12, 0, 0, 0]));
    // RTMP time is modulo 2^32
    assert.deepEqual(encodeFlvTagHeader(8, 2 ** 32 + 5, 0).subarray(4, 8), Buffer.from([0, 0, 5, 0]));
    assert.throws(() => encodeFlvTagHeader(9, 0, 0x1000000), RangeError);
    assert.throws(() => encodeFlvTagHeader(9, 1.5, 1), RangeError);
  });

  it('encodeFlvTag = header + data + PreviousTagSize', () => {
    const data = Buffer.from('af0112345678', 'hex');
    const tag = encodeFlvTag({ type: 8, timestamp: 0xff000001, data });
    assert.deepEqual(
      tag,
      Buffer.concat([encodeFlvTagHeader(8, 0xff000001, data.length), data, encodeFlvPreviousTagSize(data.length)]),
    );
    assert.equal(tag.readUInt32BE(tag.length - 4), FLV_TAG_HEADER_SIZE + data.length);
  });

  it('round-trips tags through readFlvFile, including 32-bit timestamps and empty tags', () => {
    const tags = [
      { type: 18, timestamp: 0, data: Buffer.from('0200', 'hex') },
      { type: 9, timestamp: 0xffffff, data: Buffer.from('1700000000', 'hex') },
      { type: 8, timestamp: 0x1000000, data: Buffer.alloc(0) },
      { type: 9, timestamp: 0xffffffff, data: Buffer.alloc(70000, 7) },
    ];
    const { header, tags: read } = readFlvFile(buildFile(tags, { audio: false, video: true }));
    assert.deepEqual(header, { audio: false, video: true });
    sameTags(
      read,
      tags.map((t) => ({ ...t, streamId: 0 })),
    );
  });
});

describe('FLV fixtures', () => {
  for (const name of FIXTURES) {
    describe(name, () => {
      const file = fixture(name);
      const { header, tags } = readFlvFile(file);

      it('reads every tag, zero-copy, with A/V flags', () => {
        assert.deepEqual(header, { audio: true, video: true });
        assert.ok(tags.length > 800);
        const types = new Set(tags.map((t) => t.type));
        assert.deepEqual([...types].sort(), [18, 8, 9].sort());
        assert.equal(tags.filter((t) => t.type === 18).length, 1);
        for (const t of tags) {
          assert.equal(t.data.buffer, file.buffer, 'tag data must be a view of the input');
          assert.equal(t.streamId, 0);
        }
        // Tags are in file order: byte offsets increase and the sizes add up to the file size.
        const total = 13 + tags.reduce((n, t) => n + FLV_TAG_HEADER_SIZE + t.data.length + 4, 0);
        assert.equal(total, file.length);
      });

      it('re-encodes byte-exact with encodeFlvHeader/encodeFlvTag', () => {
        const again = Buffer.concat([encodeFlvHeader(header), ...tags.map(encodeFlvTag)]);
        assert.ok(again.equals(file), 'encoded file differs from the fixture');
        const zeroCopy = Buffer.concat([
          encodeFlvHeader(header),
          ...tags.flatMap((t) => [
            encodeFlvTagHeader(t.type, t.timestamp, t.data.length),
            t.data,
            encodeFlvPreviousTagSize(t.data.length),
          ]),
        ]);
        assert.ok(zeroCopy.equals(file));
      });

      it('FlvReader yields the same tags for any split of the input (fast-check)', () => {
        fc.assert(
          fc.property(
            fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 40000 })), {
              minLength: 1,
              maxLength: 40,
            }),
            (sizes) => {
              sameTags(pushInChunks(new FlvReader(), file, sizes), tags);
            },
          ),
          { numRuns: name === 'testsrc2.flv' ? 30 : 100 },
        );
      });

      it('FlvReader copes with tiny chunks', () => {
        sameTags(pushInChunks(new FlvReader(), file, [1, 2, 3, 5, 7, 11, 13]), tags);
      });
    });
  }

  it('FlvReader reads byte by byte', () => {
    const file = fixture('testsrc.flv');
    sameTags(pushInChunks(new FlvReader(), file, [1]), readFlvFile(file).tags);
  });
});

describe('FlvReader validation', () => {
  const good = buildFile([
    { type: 9, timestamp: 0, data: Buffer.from('1700000000', 'hex') },
    { type: 8, timestamp: 23, data: Buffer.from('af00', 'hex') },
  ]);

  it('rejects a bad signature, version or data offset', () => {
    const bad = (mutate: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(good);
      mutate(b);
      return b;
    };
    assertProtocolError(() => readFlvFile(bad((b) => (b[0] = 0x47))), 'flv_bad_header');
    assertProtocolError(() => readFlvFile(bad((b) => (b[3] = 2))), 'flv_bad_header');
    assertProtocolError(() => readFlvFile(bad((b) => b.writeUInt32BE(8, 5))), 'flv_bad_header');
    assertProtocolError(() => readFlvFile(bad((b) => b.writeUInt32BE(0x7fffffff, 5))), 'flv_bad_header');
    assertProtocolError(() => new FlvReader().push(Buffer.from('GET / HTTP/1.1\r\n')), 'flv_bad_header');
  });

  it('skips extra header bytes announced by the data offset', () => {
    const padded = Buffer.concat([good.subarray(0, 9), Buffer.alloc(4, 0xee), good.subarray(9)]);
    padded.writeUInt32BE(13, 5);
    sameTags(readFlvFile(padded).tags, readFlvFile(good).tags);
  });

  it('checks PreviousTagSize unless told not to', () => {
    const b = Buffer.from(good);
    b.writeUInt32BE(5, 13 + 11 + 5); // PreviousTagSize after the first tag
    assertProtocolError(() => readFlvFile(b), 'flv_bad_previous_tag_size');
    assert.equal(readFlvFile(b, { strictPreviousTagSize: false }).tags.length, 2);
    const c = Buffer.from(good);
    c.writeUInt32BE(1, 9); // PreviousTagSize0
    assertProtocolError(() => readFlvFile(c), 'flv_bad_previous_tag_size');
  });

  it('rejects unknown, encrypted and reserved-bit tags', () => {
    for (const b0 of [7, 0x29, 0x49, 0x89, 1, 20]) {
      const b = Buffer.from(good);
      b[13] = b0;
      assertProtocolError(() => readFlvFile(b), 'flv_bad_tag');
    }
  });

  it('enforces the maximum tag size before buffering the data', () => {
    const reader = new FlvReader({ maxTagSize: 1000 });
    reader.push(encodeFlvHeader({ audio: false, video: true }));
    assertProtocolError(() => reader.push(encodeFlvTagHeader(9, 0, 1001)), 'flv_tag_too_large');
    // the error is sticky
    assertProtocolError(() => reader.push(Buffer.alloc(1)), 'flv_tag_too_large');
    const ok = new FlvReader({ maxTagSize: 1000 });
    ok.push(encodeFlvHeader({ audio: false, video: true }));
    assert.equal(ok.push(encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.alloc(1000) })).length, 1);
  });

  it('reports truncation at end() but tolerates a missing final PreviousTagSize', () => {
    for (let cut = 1; cut < good.length; cut++) {
      const part = good.subarray(0, cut);
      const reader = new FlvReader();
      reader.push(part);
      // clean ends: after the header (with or without PreviousTagSize0), after a tag (with or without its PTS)
      const complete = [9, 13, 13 + 11 + 5, 13 + 11 + 5 + 4, good.length - 4].includes(cut);
      if (complete) reader.end();
      else assertProtocolError(() => reader.end(), 'flv_truncated');
    }
    assert.equal(readFlvFile(good.subarray(0, good.length - 4)).tags.length, 2);
  });

  it('returns a tag as soon as its data is complete', () => {
    const reader = new FlvReader();
    assert.equal(reader.push(good.subarray(0, 13 + 11 + 4)).length, 0);
    assert.equal(reader.pendingBytes, 4);
    assert.ok(reader.header);
    const tags = reader.push(good.subarray(13 + 11 + 4, 13 + 11 + 5));
    assert.equal(tags.length, 1);
    assert.deepEqual(tags[0]!.data, Buffer.from('1700000000', 'hex'));
  });

  it('never throws anything but RtmpProtocolError on garbage (fast-check)', () => {
    const prefix = fixture('testsrc.flv').subarray(0, 4096);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 600 }),
        fc.integer({ min: 0, max: 4096 }),
        fc.integer({ min: 1, max: 64 }),
        (junk, keep, chunk) => {
          const input = Buffer.concat([prefix.subarray(0, keep), Buffer.from(junk)]);
          const reader = new FlvReader({ maxTagSize: 1 << 20 });
          try {
            for (let p = 0; p < input.length; p += chunk) reader.push(input.subarray(p, p + chunk));
            reader.end();
          } catch (err) {
            if (!(err instanceof RtmpProtocolError)) throw err;
            assert.match(err.reason, /^flv_/);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
