/**
 * Chunk stream layer (docs/INTEROP.md §3): ChunkReader, encodeMessageChunks/ChunkWriter, control message encodings and
 * uint32 timestamp arithmetic. Byte streams come from our writer and from an independent reference writer
 * (test/support/reference-chunk-writer.ts) that emits every header form real senders use.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { ChunkReader, defaultMaxMessageSize, type ChunkReaderLimits } from '../src/chunk-reader.js';
import { ChunkWriter, encodeMessageChunks, encodedMessageSize, payloadFromMessageChunks } from '../src/chunk-writer.js';
import { CSID_MIN, MAX_CHUNK_SIZE, MessageType, PeerBandwidthLimit } from '../src/constants.js';
import { abortMessage, setChunkSize, setPeerBandwidth, streamBegin, windowAckSize } from '../src/control.js';
import { RtmpProtocolError } from '../src/errors.js';
import { TimestampUnwrapper, addTimestamp, timestampDelta, type RtmpMessage } from '../src/message.js';
import {
  ReferenceChunkWriter,
  basicHeader,
  emptyStats,
  mulberry32,
  writeInterleaved,
  type ExtendedInContinuation,
  type PlannedMessage,
  type WriterStats,
} from './support/reference-chunk-writer.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** Hex with spaces and `|` separators allowed, as written in docs/INTEROP.md. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

function filled(length: number, start = 0): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (start + i * 7) & 0xff;
  return b;
}

function msg(type: number, streamId: number, timestamp: number, payload: Buffer): RtmpMessage {
  return { type, streamId, timestamp, payload };
}

interface Decoded {
  reader: ChunkReader;
  messages: RtmpMessage[];
}

function newReader(limits?: Partial<ChunkReaderLimits>): Decoded {
  const messages: RtmpMessage[] = [];
  const reader = new ChunkReader((m) => messages.push(m), limits);
  return { reader, messages };
}

function decode(parts: Buffer | Buffer[], limits?: Partial<ChunkReaderLimits>): Decoded {
  const d = newReader(limits);
  for (const p of Array.isArray(parts) ? parts : [parts]) d.reader.push(p);
  return d;
}

/** Pushes one byte at a time. */
function decodeBytewise(bytes: Buffer, limits?: Partial<ChunkReaderLimits>): Decoded {
  const d = newReader(limits);
  for (let i = 0; i < bytes.length; i++) d.reader.push(bytes.subarray(i, i + 1));
  return d;
}

type SplitMode = 'whole' | 'bursts' | 'tiny' | 'small' | 'large';
interface Split {
  mode: SplitMode;
  seed: number;
}

/**
 * Splits like TCP would, at arbitrary byte boundaries. 'bursts' alternates runs of 1-byte pieces with larger pieces so
 * that 1-byte splitting lands on headers all over a large stream without pushing 10^5 single bytes.
 */
function pieces(buf: Buffer, split: Split): Buffer[] {
  const rng = mulberry32(split.seed);
  const out: Buffer[] = [];
  let o = 0;
  let burst = 0;
  while (o < buf.length) {
    let n: number;
    switch (split.mode) {
      case 'whole':
        n = buf.length;
        break;
      case 'tiny':
        n = 1 + Math.floor(rng() * 3);
        break;
      case 'small':
        n = 1 + Math.floor(rng() * 40);
        break;
      case 'large':
        n = 1 + Math.floor(rng() * 70_000);
        break;
      case 'bursts':
        if (burst > 0) {
          burst--;
          n = 1;
        } else {
          n = 1 + Math.floor(rng() * 6000);
          burst = Math.floor(rng() * 400);
        }
        break;
    }
    out.push(buf.subarray(o, o + n));
    o += n;
  }
  return out;
}

function assertSameMessages(actual: readonly RtmpMessage[], expected: readonly RtmpMessage[]): void {
  // Expected values are normalised to uint32; actual ones are compared raw (a reader must yield uint32 itself).
  const summary = (m: RtmpMessage, normalise: boolean) => ({
    type: m.type,
    streamId: m.streamId,
    timestamp: normalise ? m.timestamp >>> 0 : m.timestamp,
    length: m.payload.length,
  });
  assert.equal(actual.length, expected.length, 'number of messages');
  for (let i = 0; i < expected.length; i++) {
    assert.deepEqual(summary(actual[i]!, false), summary(expected[i]!, true), `message ${i}`);
    assert.ok(actual[i]!.payload.equals(expected[i]!.payload), `payload bytes of message ${i}`);
  }
}

function assertProtocolError(fn: () => void, reason: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RtmpProtocolError, `expected RtmpProtocolError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    return true;
  });
}

const PROTOCOL_REASONS = new Set([
  'chunk_size_too_small',
  'bad_chunk_size',
  'bad_control_message',
  'message_too_large',
  'too_many_chunk_streams',
  'partial_bytes_exceeded',
  'chunk_stream_not_started',
  'chunk_header_mid_message',
]);

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------------------------

type Pattern = 'random' | 'zero' | 'ff' | 'counter';
interface PayloadSpec {
  length: number;
  seed: number;
  pattern: Pattern;
}

/** Payload bytes from a seed: generating 20 000 bytes element by element with fast-check would dominate run time. */
function makePayload(length: number, seed: number, pattern: Pattern): Buffer {
  const b = Buffer.alloc(length);
  if (pattern === 'zero') return b;
  if (pattern === 'ff') return b.fill(0xff);
  if (pattern === 'counter') {
    for (let i = 0; i < length; i++) b[i] = i & 0xff;
    return b;
  }
  const rng = mulberry32(seed);
  for (let i = 0; i < length; i += 4) {
    const v = Math.floor(rng() * 0x1_0000_0000);
    for (let k = 0; k < 4 && i + k < length; k++) b[i + k] = (v >>> (8 * k)) & 0xff;
  }
  return b;
}

const EDGE_LENGTHS = [0, 1, 3, 4, 5, 127, 128, 129, 255, 256, 4095, 4096, 4097, 16_383, 16_384, 20_000];

function payloadSpecArb(maxLength: number): fc.Arbitrary<PayloadSpec> {
  return fc.record({
    length: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 0, max: maxLength }) },
      { weight: 1, arbitrary: fc.constantFrom(...EDGE_LENGTHS.filter((l) => l <= maxLength)) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: Math.min(maxLength, 300) }) },
    ),
    seed: fc.integer(),
    pattern: fc.constantFrom<Pattern>('random', 'random', 'random', 'zero', 'ff', 'counter'),
  });
}

const csidArb = fc.oneof(
  fc.integer({ min: 2, max: 63 }),
  fc.integer({ min: 64, max: 319 }),
  fc.integer({ min: 320, max: 65_599 }),
  fc.constantFrom(2, 3, 4, 6, 63, 64, 65, 319, 320, 321, 65_598, 65_599),
);

/** uint32 start timestamps: 0, small, around the 24-bit extended threshold, just before the 2^32 wrap, anywhere. */
const tsStartArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 1000 }),
  fc.integer({ min: 0xffffff - 300, max: 0xffffff + 300 }),
  fc.integer({ min: -600, max: -1 }).map((x) => x >>> 0),
  fc.integer().map((x) => x >>> 0),
);

/** Signed per-chunk-stream steps: repeated deltas (fmt3), jitter, backwards steps, extended deltas, huge jumps. */
const stepArb = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(0, 23, 33, 40) },
  { weight: 2, arbitrary: fc.integer({ min: -2000, max: 5000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xffffff, 0x1000000, 0x7fffffff, -0x7fffffff) },
  { weight: 1, arbitrary: fc.integer({ min: 0xffff00, max: 0x1000100 }) },
  { weight: 1, arbitrary: fc.integer({ min: -0x7fffffff, max: 0x7fffffff }) },
);

interface MessageSpec {
  type: number;
  streamId: number;
  payload: PayloadSpec;
  step: number;
  /**
   * 'repeat': reuse the previous step on this chunk stream (same delta: fmt3 new message, also with extended deltas);
   * 'absolute': step = previous timestamp, the delta a fmt3 right after a fmt0 reuses (spec 5.3.1.2.4).
   */
  stepMode: 'given' | 'repeat' | 'absolute';
  csidIndex: number;
  /** Copy type, length and stream id from the previous message on the same chunk stream (enables fmt2/fmt3). */
  sameShape: boolean;
  /** encodeMessageChunks scenarios: Set Chunk Size written before this message. */
  chunkSizeBefore: number | null;
}

interface Scenario {
  tsStart: number;
  csids: number[];
  messages: MessageSpec[];
  chunkSizes: number[];
  seed: number;
  split: Split;
}

const splitArb: fc.Arbitrary<Split> = fc.record({
  mode: fc.constantFrom<SplitMode>('whole', 'bursts', 'bursts', 'tiny', 'small', 'large'),
  seed: fc.integer(),
});

function scenarioArb(opts: {
  maxPayload: number;
  chunkSize: fc.Arbitrary<number>;
  maxMessages?: number;
  split?: fc.Arbitrary<Split>;
}): fc.Arbitrary<Scenario> {
  const message = fc.record({
    type: fc.constantFrom(MessageType.Audio, MessageType.Video, MessageType.DataAmf0, MessageType.CommandAmf0),
    streamId: fc.oneof(
      { weight: 3, arbitrary: fc.constant(1) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }) },
    ),
    payload: payloadSpecArb(opts.maxPayload),
    step: stepArb,
    stepMode: fc.constantFrom<'given' | 'repeat' | 'absolute'>('given', 'given', 'given', 'repeat', 'absolute'),
    csidIndex: fc.nat(3),
    sameShape: fc.boolean(),
    chunkSizeBefore: fc.option(opts.chunkSize, { freq: 3 }),
  });
  return fc.record({
    tsStart: tsStartArb,
    csids: fc.uniqueArray(csidArb, { minLength: 1, maxLength: 4 }),
    messages: fc.array(message, { minLength: 1, maxLength: opts.maxMessages ?? 12, size: 'max' }),
    chunkSizes: fc.array(opts.chunkSize, { maxLength: 4 }),
    seed: fc.integer(),
    split: opts.split ?? splitArb,
  });
}

/** Turns specs into messages with per-chunk-stream timelines (so repeated steps give repeated deltas). */
function materialize(s: Scenario): PlannedMessage[] {
  const last = new Map<number, RtmpMessage>();
  const lastStep = new Map<number, number>();
  return s.messages.map((spec) => {
    const csid = s.csids[spec.csidIndex % s.csids.length]!;
    const prev = last.get(csid);
    let step = spec.step;
    if (spec.stepMode === 'repeat') step = lastStep.get(csid) ?? step;
    if (spec.stepMode === 'absolute' && prev) step = prev.timestamp;
    const timestamp = addTimestamp(prev ? prev.timestamp : s.tsStart, prev ? step : 0);
    if (prev) lastStep.set(csid, step);
    const shape = spec.sameShape && prev ? prev : undefined;
    const m = msg(
      shape ? shape.type : spec.type,
      shape ? shape.streamId : spec.streamId,
      timestamp,
      makePayload(shape ? shape.payload.length : spec.payload.length, spec.payload.seed, spec.payload.pattern),
    );
    last.set(csid, m);
    return { msg: m, csid };
  });
}

/** Stream written by encodeMessageChunks, with Set Chunk Size (via encodeMessageChunks too) between messages. */
function encodeWithOurWriter(s: Scenario): { bytes: Buffer; expected: RtmpMessage[] } {
  const out: Buffer[] = [];
  const expected: RtmpMessage[] = [];
  let size = 128;
  const planned = materialize(s);
  planned.forEach(({ msg: m, csid }, i) => {
    const newSize = s.messages[i]!.chunkSizeBefore;
    if (newSize !== null) {
      const sc = setChunkSize(newSize);
      out.push(encodeMessageChunks(sc, 2, size));
      expected.push(sc);
      size = newSize;
    }
    const bytes = encodeMessageChunks(m, csid, size);
    assert.equal(bytes.length, encodedMessageSize(m.payload.length, m.timestamp, csid, size), 'encodedMessageSize');
    out.push(bytes);
    expected.push(m);
  });
  return { bytes: Buffer.concat(out), expected };
}

/** The lowest chunk stream id that neither the scenario nor the control messages use. */
function unusedCsid(used: readonly number[], controlCsid: number): number {
  let csid = CSID_MIN;
  while (csid === controlCsid || used.includes(csid)) csid++;
  return csid;
}

/** Stream written by the reference writer with chunk-level interleaving and mid-message Set Chunk Size. */
function encodeWithReference(
  s: Scenario,
  options: { extendedInContinuation: ExtendedInContinuation; csidForm: 'shortest' | 'wide'; compress?: boolean },
  stats: WriterStats,
): { bytes: Buffer; expected: RtmpMessage[]; writer: ReferenceChunkWriter } {
  const writer = new ReferenceChunkWriter(options, stats);
  const controlCsid = 2;
  const bytes = [writeInterleaved(writer, materialize(s), s.chunkSizes, mulberry32(s.seed), controlCsid)];
  if (options.extendedInContinuation === 'omit') {
    // Peek-and-compare needs the 4 bytes after a continuation's basic header before it can decide that the field is
    // absent; a trailing message provides them when the stream's last chunk is shorter than that. The trailer must not
    // need that lookahead itself, so it goes on a chunk stream the scenario never used: fmt0 at timestamp 0, no
    // extended field. (On csid 3 after a message at 0xFF000001 it was fmt1 with the extended delta 0xFFFFFF, and at
    // chunk sizes below 4 its own last continuation was left undecidable: seed 2001481797, see the explicit case.)
    bytes.push(writer.write(msg(MessageType.Acknowledgement, 0, 0, hex('0badf00d')), unusedCsid(s.csids, controlCsid)));
  }
  return { bytes: Buffer.concat(bytes), expected: writer.completed, writer };
}

const NUM_RUNS = 200;

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

describe('chunk stream round trip (properties)', () => {
  it('reader yields exactly what encodeMessageChunks wrote (chunk sizes 128..70000, any csid, any split)', () => {
    fc.assert(
      fc.property(scenarioArb({ maxPayload: 20_000, chunkSize: fc.integer({ min: 128, max: 70_000 }) }), (s) => {
        const { bytes, expected } = encodeWithOurWriter(s);
        const { messages } = decode(pieces(bytes, s.split));
        assertSameMessages(messages, expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('reader yields exactly what encodeMessageChunks wrote with chunk size down to 1 (minChunkSize: 1)', () => {
    const chunkSize = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 70_000 }));
    fc.assert(
      fc.property(scenarioArb({ maxPayload: 4000, chunkSize, maxMessages: 8 }), (s) => {
        const { bytes, expected } = encodeWithOurWriter(s);
        const { messages } = decode(pieces(bytes, s.split), { minChunkSize: 1 });
        assertSameMessages(messages, expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  for (const ext of ['repeat', 'omit'] as const) {
    const label = ext === 'repeat' ? 'FFmpeg style: extended field repeated' : 'old OBS style: extended field omitted';
    it(`reader yields exactly what the reference writer wrote (fmt0-3, interleaved, mid-message Set Chunk Size; ${label})`, () => {
      const stats = emptyStats();
      fc.assert(
        fc.property(
          scenarioArb({ maxPayload: 20_000, chunkSize: fc.integer({ min: 128, max: 70_000 }) }),
          fc.constantFrom<'shortest' | 'wide'>('shortest', 'wide'),
          (s, csidForm) => {
            const runStats = emptyStats();
            const { bytes, expected } = encodeWithReference(s, { extendedInContinuation: ext, csidForm }, runStats);
            // 'omit' only: continuation payload that starts with the extended value is indistinguishable from the
            // repeated field for any peek-and-compare reader (GStreamer, SRS, ours); not a reader property.
            fc.pre(runStats.ambiguousContinuations === 0);
            mergeStats(stats, runStats);
            const { messages } = decode(pieces(bytes, s.split));
            assertSameMessages(messages, expected);
          },
        ),
        { numRuns: NUM_RUNS },
      );
      // The generators must actually exercise every header form this property claims to cover.
      assert.ok(stats.fmt[0] > 0 && stats.fmt[1] > 0 && stats.fmt[2] > 0 && stats.fmt[3] > 0, JSON.stringify(stats));
      assert.ok(stats.basicHeaderSizes[1] > 0 && stats.basicHeaderSizes[2] > 0 && stats.basicHeaderSizes[3] > 0);
      assert.ok(stats.extContinuations > 0, 'extended timestamps in continuation chunks');
      assert.ok(stats.fmt3NewWithExt > 0, 'fmt3 new message carrying an extended delta');
      assert.ok(stats.midMessageChunkSizeChanges > 0, 'Set Chunk Size while a message is half written');
    });
  }

  it('reference writer with chunk size down to 1 (minChunkSize: 1), both extended-field styles', () => {
    const chunkSize = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 70_000 }));
    fc.assert(
      fc.property(
        scenarioArb({ maxPayload: 3000, chunkSize, maxMessages: 8 }),
        fc.constantFrom<ExtendedInContinuation>('repeat', 'omit'),
        fc.constantFrom<'shortest' | 'wide'>('shortest', 'wide'),
        (s, ext, csidForm) => {
          const runStats = emptyStats();
          const { bytes, expected } = encodeWithReference(s, { extendedInContinuation: ext, csidForm }, runStats);
          fc.pre(runStats.ambiguousContinuations === 0);
          const { messages } = decode(pieces(bytes, s.split), { minChunkSize: 1 });
          assertSameMessages(messages, expected);
        },
      ),
      // Random seeds again: the counterexamples once pinned away (seed 2001481797 and others) were the harness's, see
      // 'zero-length extended message, then 1-byte chunks with the field omitted' and the wire-bytes ambiguity case.
      { numRuns: NUM_RUNS },
    );
  });

  it('every header split position: small messages pushed one byte at a time', () => {
    fc.assert(
      fc.property(
        scenarioArb({ maxPayload: 300, chunkSize: fc.integer({ min: 128, max: 400 }), maxMessages: 6 }),
        fc.constantFrom<ExtendedInContinuation>('repeat', 'omit'),
        fc.boolean(),
        (s, ext, ours) => {
          const runStats = emptyStats();
          const { bytes, expected } = ours
            ? encodeWithOurWriter(s)
            : encodeWithReference(s, { extendedInContinuation: ext, csidForm: 'shortest' }, runStats);
          fc.pre(runStats.ambiguousContinuations === 0);
          assertSameMessages(decodeBytewise(bytes).messages, expected);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

function mergeStats(into: WriterStats, from: WriterStats): void {
  const sum = (a: number[], b: readonly number[]) => b.forEach((v, i) => (a[i] = (a[i] ?? 0) + v));
  sum(into.fmt, from.fmt);
  sum(into.basicHeaderSizes, from.basicHeaderSizes);
  into.fmt3NewWithExt += from.fmt3NewWithExt;
  into.extContinuations += from.extContinuations;
  into.midMessageChunkSizeChanges += from.midMessageChunkSizeChanges;
  into.ambiguousContinuations += from.ambiguousContinuations;
}

// ---------------------------------------------------------------------------------------------------------------
// Protocol-edge unit fixtures (docs/INTEROP.md §10, byte-level unit fixtures)
// ---------------------------------------------------------------------------------------------------------------

describe('serialized messages kept by holders (payloadFromMessageChunks)', () => {
  it('payloadFromMessageChunks gives back the payload for any size, chunk size, csid form and timestamp', () => {
    const timestamp = fc.oneof(fc.integer({ min: 0, max: 0xfffffe }), fc.integer({ min: 0xffffff, max: 0xffffffff }));
    const csid = fc.oneof(
      fc.integer({ min: CSID_MIN, max: 63 }),
      fc.integer({ min: 64, max: 319 }),
      fc.integer({ min: 320, max: 65_599 }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 17, max: 4096 })),
        csid,
        timestamp,
        (length, chunkSize, id, ts) => {
          const payload = randomBytes(length);
          const chunks = encodeMessageChunks(
            { type: MessageType.Video, streamId: 1, timestamp: ts, payload },
            id,
            chunkSize,
          );
          const back = payloadFromMessageChunks(chunks, chunkSize);
          assert.ok(back.equals(payload), `length ${length}, chunk size ${chunkSize}, csid ${id}, timestamp ${ts}`);
          const before = Buffer.from(chunks);
          back.fill(0x5a);
          assert.ok(chunks.equals(before), 'a copy: the chunks are shared and must never change');
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('basic header: chunk stream ids', () => {
  const payload = Buffer.from('abc');
  const m = msg(MessageType.CommandAmf0, 0, 0, payload);

  it('encodeMessageChunks writes the shortest form; 3-byte form has the LOW byte first', () => {
    const body = '000000 000003 14 00000000 616263';
    assert.equal(encodeMessageChunks(m, 2, 128).toString('hex'), hex(`02 ${body}`).toString('hex'));
    assert.equal(encodeMessageChunks(m, 63, 128).toString('hex'), hex(`3f ${body}`).toString('hex'));
    assert.equal(encodeMessageChunks(m, 64, 128).toString('hex'), hex(`00 00 ${body}`).toString('hex'));
    assert.equal(encodeMessageChunks(m, 319, 128).toString('hex'), hex(`00 ff ${body}`).toString('hex'));
    assert.equal(encodeMessageChunks(m, 320, 128).toString('hex'), hex(`01 00 01 ${body}`).toString('hex'));
    assert.equal(encodeMessageChunks(m, 65_599, 128).toString('hex'), hex(`01 ff ff ${body}`).toString('hex'));
    // 3-byte continuation header: fmt3 | 1, low, high
    const two = encodeMessageChunks(msg(MessageType.Video, 1, 0, filled(130)), 320, 128);
    assert.equal(two.subarray(3 + 11 + 128, 3 + 11 + 128 + 3).toString('hex'), 'c10001');
    assert.equal(two.length, 3 + 11 + 130 + 3);
  });

  it('encodeMessageChunks rejects csid 0/1/65600 and chunk size 0 with RangeError (caller bug, not peer input)', () => {
    assert.throws(() => encodeMessageChunks(m, 1, 128), RangeError);
    assert.throws(() => encodeMessageChunks(m, 65_600, 128), RangeError);
    assert.throws(() => encodeMessageChunks(m, 3, 0), RangeError);
  });

  it('reader decodes csid 320 and 65599 (3-byte form), interleaved with csid 64 and 319', () => {
    const a = msg(MessageType.Video, 1, 10, filled(200, 1));
    const b = msg(MessageType.Audio, 1, 20, filled(150, 2));
    const c = msg(MessageType.DataAmf0, 1, 30, filled(140, 3));
    const d = msg(MessageType.CommandAmf0, 0, 40, filled(129, 4));
    // first chunks of all four, then the continuations in reverse order
    const ea = encodeMessageChunks(a, 320, 128);
    const eb = encodeMessageChunks(b, 65_599, 128);
    const ec = encodeMessageChunks(c, 64, 128);
    const ed = encodeMessageChunks(d, 319, 128);
    assert.equal(ea.subarray(0, 3).toString('hex'), '010001');
    assert.equal(eb.subarray(0, 3).toString('hex'), '01ffff');
    const firstA = 3 + 11 + 128;
    const firstB = 3 + 11 + 128;
    const firstC = 2 + 11 + 128;
    const firstD = 2 + 11 + 128;
    const stream = Buffer.concat([
      ea.subarray(0, firstA),
      eb.subarray(0, firstB),
      ec.subarray(0, firstC),
      ed.subarray(0, firstD),
      ed.subarray(firstD),
      ec.subarray(firstC),
      eb.subarray(firstB),
      ea.subarray(firstA),
    ]);
    assertSameMessages(decode(stream).messages, [d, c, b, a]);
    assertSameMessages(decodeBytewise(stream).messages, [d, c, b, a]);
  });

  it("3-byte csid is b1 + b2*256 + 64 (not NMS's (64+b1+b2)<<8, not b1 as the high byte): exact bytes", () => {
    // `01 01 00` = 1 + 0*256 + 64 = csid 65 (NMS: (64+1+0)<<8 = 16640; high-byte-first: 64 + 256 = 320).
    // The message starts there and continues with the 2-byte form of csid 65 (`c0 01`): one message.
    const payload = filled(200, 9);
    const stream = Buffer.concat([
      hex('01 01 00 | 000064 0000c8 09 01000000'),
      payload.subarray(0, 128),
      hex('c0 01'),
      payload.subarray(128),
    ]);
    assertSameMessages(decode(stream).messages, [msg(MessageType.Video, 1, 100, payload)]);

    // `01 05 02` = 5 + 2*256 + 64 = 581; continuation written with the same 3 bytes while messages on csid
    // 18176 (= NMS's value for these bytes) and 1346 (= byte-swapped value) are in progress.
    const p581 = filled(200, 1);
    const p18176 = filled(130, 2);
    const p1346 = filled(129, 3);
    const s2 = Buffer.concat([
      hex('01 05 02 | 000001 0000c8 08 01000000'),
      p581.subarray(0, 128),
      basicHeader(0, 18_176),
      hex('000002 000082 08 01000000'),
      p18176.subarray(0, 128),
      basicHeader(0, 1346),
      hex('000003 000081 08 01000000'),
      p1346.subarray(0, 128),
      hex('c1 05 02'),
      p581.subarray(128),
      basicHeader(3, 18_176),
      p18176.subarray(128),
      basicHeader(3, 1346),
      p1346.subarray(128),
    ]);
    assert.equal(basicHeader(0, 18_176).toString('hex'), '01c046');
    assert.equal(basicHeader(0, 1346).toString('hex'), '010205');
    assertSameMessages(decode(s2).messages, [
      msg(MessageType.Audio, 1, 1, p581),
      msg(MessageType.Audio, 1, 2, p18176),
      msg(MessageType.Audio, 1, 3, p1346),
    ]);
  });

  it('reader accepts csids 64..319 in the 3-byte form as the same chunk stream as the 2-byte form', () => {
    // csid 100: `01 24 00` (3-byte) starts, `c0 24` (2-byte) continues, then a fmt3 new message in 3-byte form.
    const p = filled(200);
    const stream = Buffer.concat([
      hex('01 24 00 | 000010 0000c8 09 01000000'),
      p.subarray(0, 128),
      hex('c0 24'),
      p.subarray(128),
      hex('c1 24 00'), // fmt3 new message: delta 0x10 reused
      p.subarray(0, 128),
      hex('c0 24'),
      p.subarray(128),
    ]);
    const { messages } = decode(stream, { maxChunkStreams: 1 });
    assertSameMessages(messages, [msg(MessageType.Video, 1, 0x10, p), msg(MessageType.Video, 1, 0x20, p)]);
  });
});

describe('message header timestamps', () => {
  it('fmt3 after fmt0 reuses the fmt0 timestamp as the delta; fmt2/fmt1 deltas are then reused by fmt3', () => {
    const stream = hex(`
      06 0003e8 000002 08 01000000 | aabb
      c6 | ccdd
      86 000028 | eeff
      c6 | 1122
      46 00000a 000001 09 | 33
      c6 | 44
    `);
    const expected = [
      msg(8, 1, 1000, hex('aabb')),
      msg(8, 1, 2000, hex('ccdd')),
      msg(8, 1, 2040, hex('eeff')),
      msg(8, 1, 2080, hex('1122')),
      msg(9, 1, 2090, hex('33')),
      msg(9, 1, 2100, hex('44')),
    ];
    assertSameMessages(decode(stream).messages, expected);
    assertSameMessages(decodeBytewise(stream).messages, expected);
  });

  it('fmt3 new message after an extended fmt0 consumes the 4-byte field as the (reused) delta', () => {
    const stream = hex(`
      06 ffffff 000001 08 01000000 01000000 | aa
      c6 01000000 | bb
      86 000021 | cc
      c6 | dd
    `);
    assertSameMessages(decodeBytewise(stream).messages, [
      msg(8, 1, 0x1000000, hex('aa')),
      msg(8, 1, 0x2000000, hex('bb')),
      msg(8, 1, 0x2000021, hex('cc')),
      msg(8, 1, 0x2000042, hex('dd')),
    ]);
  });

  it('extended delta in fmt1/fmt2 is a delta, not an absolute timestamp', () => {
    const stream = hex(`
      06 000100 000001 09 01000000 | 01
      46 ffffff 000001 08 01000000 | 02
      86 ffffff 7fffffff | 03
    `);
    assertSameMessages(decode(stream).messages, [
      msg(9, 1, 0x100, hex('01')),
      msg(8, 1, 0x1000100, hex('02')),
      msg(8, 1, (0x1000100 + 0x7fffffff) >>> 0, hex('03')),
    ]);
  });

  it('24-bit field: 0xFFFFFE inline, 0xFFFFFF and above extended (byte-exact encodeMessageChunks)', () => {
    assert.equal(
      encodeMessageChunks(msg(9, 1, 0xfffffe, hex('17')), 6, 128).toString('hex'),
      hex('06 fffffe 000001 09 01000000 | 17').toString('hex'),
    );
    assert.equal(
      encodeMessageChunks(msg(9, 1, 0xffffff, hex('17')), 6, 128).toString('hex'),
      hex('06 ffffff 000001 09 01000000 00ffffff | 17').toString('hex'),
    );
    const p = filled(200);
    assert.equal(
      encodeMessageChunks(msg(9, 1, 0x1234567, p), 6, 128).toString('hex'),
      Buffer.concat([
        hex('06 ffffff 0000c8 09 01000000 01234567'),
        p.subarray(0, 128),
        hex('c6 01234567'), // FFmpeg style: the field is repeated in every type-3 chunk
        p.subarray(128),
      ]).toString('hex'),
    );
  });

  describe('extended timestamp present/absent in continuation chunks (peek and compare)', () => {
    const p = filled(300, 5);
    const head = hex('06 ffffff 00012c 09 01000000 01234567');
    const present = Buffer.concat([
      head,
      p.subarray(0, 128),
      hex('c6 01234567'),
      p.subarray(128, 256),
      hex('c6 01234567'),
      p.subarray(256),
    ]);
    const absent = Buffer.concat([
      head,
      p.subarray(0, 128),
      hex('c6'),
      p.subarray(128, 256),
      hex('c6'),
      p.subarray(256),
    ]);
    const mixed = Buffer.concat([
      head,
      p.subarray(0, 128),
      hex('c6'),
      p.subarray(128, 256),
      hex('c6 01234567'),
      p.subarray(256),
    ]);
    const expected = [msg(9, 1, 0x1234567, p)];
    for (const [name, bytes] of [
      ['present (FFmpeg)', present],
      ['absent (old OBS)', absent],
      ['mixed', mixed],
    ] as const) {
      it(name, () => {
        assertSameMessages(decode(bytes).messages, expected);
        assertSameMessages(decodeBytewise(bytes).messages, expected);
      });
    }

    it('after an extended fmt1 delta the continuation carries the delta; the absolute value is payload', () => {
      const q = filled(132, 1);
      // First message ts 0x100 (fmt0), then fmt1 with extended delta 0x01000000 -> ts 0x01000100.
      const withDelta = Buffer.concat([
        hex('06 000100 000001 09 01000000 | 00'),
        hex('46 ffffff 000084 09 01000000'),
        q.subarray(0, 128),
        hex('c6 01000000'),
        q.subarray(128),
      ]);
      assertSameMessages(decodeBytewise(withDelta).messages, [msg(9, 1, 0x100, hex('00')), msg(9, 1, 0x1000100, q)]);
      // A continuation that starts with the absolute timestamp instead is not the field: those bytes are payload.
      const payloadLooksAbsolute = Buffer.concat([q.subarray(0, 128), hex('01000100')]);
      const wrongValue = Buffer.concat([
        hex('06 000100 000001 09 01000000 | 00'),
        hex('46 ffffff 000084 09 01000000'),
        payloadLooksAbsolute.subarray(0, 128),
        hex('c6'),
        payloadLooksAbsolute.subarray(128),
      ]);
      assertSameMessages(decode(wrongValue).messages, [
        msg(9, 1, 0x100, hex('00')),
        msg(9, 1, 0x1000100, payloadLooksAbsolute),
      ]);
    });

    it('field omitted and the last continuation shorter than 4 bytes: decided once the next header arrives', () => {
      const q = filled(130, 2);
      const bytes = Buffer.concat([
        hex('06 ffffff 000082 09 01000000 01234567'),
        q.subarray(0, 128),
        hex('c6'),
        q.subarray(128),
        hex('03 000000 000004 03 00000000 | 00001000'), // next message on csid 3
      ]);
      assertSameMessages(decodeBytewise(bytes).messages, [
        msg(9, 1, 0x1234567, q),
        msg(MessageType.Acknowledgement, 0, 0, hex('00001000')),
      ]);
    });

    it('a type-3 header after a zero-length message starts a new message: nothing is left to continue', () => {
      // A zero-length message is complete on its header (FFmpeg and librtmp complete it there too), so the type-3
      // headers that follow are new messages reusing the delta; after an extended fmt0 the 4-byte field is that delta.
      const extended = hex('03 ffffff 000000 08 00000000 ff000001 | c3 ff000001 | c3 ff000001');
      const inline = hex('03 000010 000000 08 00000000 | c3 | c3');
      const empty = Buffer.alloc(0);
      for (const [bytes, timestamps] of [
        [extended, [0xff000001, 0xfe000002, 0xfd000003]],
        [inline, [0x10, 0x20, 0x30]],
      ] as const) {
        const expected = timestamps.map((ts) => msg(MessageType.Audio, 0, ts, empty));
        assertSameMessages(decode(bytes).messages, expected);
        assertSameMessages(decodeBytewise(bytes).messages, expected);
      }
    });

    it('zero-length extended message, then 1-byte chunks with the field omitted: held until the next header (seed 2001481797)', () => {
      // The chunk-size-1 property's counterexample, shrunk. After the zero-length message at 0xFF000001, the next
      // message on csid 3 at timestamp 0 is a forward delta of 0xFFFFFF: fmt1 with an extended delta, whose
      // continuations omit the field. The zero length is incidental (any message at 0xFF000001 leads there).
      const zeroLength = msg(MessageType.Audio, 0, 0xff000001, Buffer.alloc(0));
      const ack = msg(MessageType.Acknowledgement, 0, 0, hex('0badf00d'));
      const wire = [
        hex('03 ffffff 000000 08 00000000 ff000001'),
        hex('02 000000 000004 01 00000000 | 00000001'),
        hex('43 ffffff 000004 03 00ffffff | 0b | c3 ad | c3 f0 | c3 0d'),
      ];
      const writer = new ReferenceChunkWriter({ extendedInContinuation: 'omit' });
      const written = [writer.write(zeroLength, 3), writer.setChunkSize(1), writer.write(ack, 3)];
      assert.equal(
        Buffer.concat(written).toString('hex'),
        Buffer.concat(wire).toString('hex'),
        'the property wrote this',
      );

      // Valid RTMP, and decoded right: only the last two continuations stay undecided, because a peeking reader
      // needs the 4 bytes after `c3` before it can compare (GStreamer and SRS read them first too). The property's
      // old trailing message was this Ack, so the stream ended there and the count differed by one.
      const next = msg(MessageType.CommandAmf0, 0, 0, Buffer.alloc(0));
      const nextHeader = hex('04 000000 000000 14 00000000');
      for (const d of [decode(wire, { minChunkSize: 1 }), decodeBytewise(Buffer.concat(wire), { minChunkSize: 1 })]) {
        assertSameMessages(d.messages, [zeroLength, setChunkSize(1)]);
        assert.equal(d.reader.bufferedBytes, 6, 'payload 0b ad and the unfinished `c3 f0 c3 0d`');
        d.reader.push(nextHeader);
        assertSameMessages(d.messages, [zeroLength, setChunkSize(1), ack, next]);
        assert.equal(d.reader.bufferedBytes, 0);
      }
    });

    it('omitted field: the reference writer judges ambiguity on the wire bytes, past a short chunk', () => {
      // 3-byte chunks on csid 53 (type-3 basic header f5) at 0xFFFFFFF5: after the first continuation's header come
      // its payload `ff ff ff` and the next header `f5`, i.e. exactly the extended value. No peek-and-compare reader
      // can tell that from a repeated field, so the properties leave such streams out (fc.pre).
      const stats = emptyStats();
      const writer = new ReferenceChunkWriter({ extendedInContinuation: 'omit' }, stats);
      const m = msg(MessageType.Audio, 1, 0xfffffff5, Buffer.alloc(7, 0xff));
      const bytes = Buffer.concat([
        writer.setChunkSize(3),
        writer.write(m, 53),
        writer.write(msg(MessageType.Acknowledgement, 0, 0, hex('0badf00d')), 4),
      ]);
      assert.equal(stats.ambiguousContinuations, 1);
      assert.throws(() => assertSameMessages(decode(bytes, { minChunkSize: 1 }).messages, writer.completed));
    });
  });
});

describe('Set Chunk Size', () => {
  const sc = (size: number) => encodeMessageChunks(setChunkSize(size), 2, 128);

  it('takes effect for the next chunk, also in the middle of a message on another chunk stream', () => {
    const p = filled(5000, 3);
    const stream = Buffer.concat([
      hex('06 000000 001388 09 01000000'),
      p.subarray(0, 128),
      sc(4096),
      hex('c6'),
      p.subarray(128, 128 + 4096),
      sc(200),
      hex('c6'),
      p.subarray(4224, 4424),
      hex('c6'),
      p.subarray(4424, 4624),
      hex('c6'),
      p.subarray(4624, 4824),
      hex('c6'),
      p.subarray(4824),
    ]);
    const { messages, reader } = decode(stream);
    assert.equal(reader.incomingChunkSize, 200);
    assertSameMessages(
      messages.filter((m) => m.type === MessageType.Video),
      [msg(9, 1, 0, p)],
    );
    // Set Chunk Size is still reported, in wire order
    assert.deepEqual(
      messages.map((m) => m.type),
      [1, 1, 9],
    );
  });

  it('between messages: 128 -> 4096 -> 128 -> 65536', () => {
    const m1 = msg(9, 1, 0, filled(10_000));
    const m2 = msg(8, 1, 0, filled(300));
    const m3 = msg(9, 1, 40, filled(70_000));
    const stream = Buffer.concat([
      sc(4096),
      encodeMessageChunks(m1, 6, 4096),
      encodeMessageChunks(setChunkSize(128), 2, 4096),
      encodeMessageChunks(m2, 4, 128),
      sc(65_536),
      encodeMessageChunks(m3, 6, 65_536),
    ]);
    const { messages, reader } = decode(stream);
    assert.equal(reader.incomingChunkSize, 65_536);
    assertSameMessages(
      messages.filter((m) => m.type !== MessageType.SetChunkSize),
      [m1, m2, m3],
    );
  });

  it('= 1 is accepted with minChunkSize: 1 (1-byte chunks, also for the control message itself)', () => {
    const m = msg(20, 0, 0, Buffer.from('hello'));
    const one = encodeMessageChunks(m, 3, 1);
    assert.equal(
      one.toString('hex'),
      hex('03 000000 000005 14 00000000 68 | c3 65 | c3 6c | c3 6c | c3 6f').toString('hex'),
    );
    const stream = Buffer.concat([
      sc(1),
      one,
      encodeMessageChunks(setChunkSize(128), 2, 1),
      encodeMessageChunks(m, 3, 128),
    ]);
    const { messages, reader } = decode(stream, { minChunkSize: 1 });
    assert.equal(reader.incomingChunkSize, 128);
    assertSameMessages(
      messages.filter((x) => x.type === 20),
      [m, m],
    );
  });

  it('below the minimum is rejected: chunk_size_too_small (default minimum 128; 1 without minChunkSize: 1)', () => {
    assertProtocolError(() => decode(sc(127)), 'chunk_size_too_small');
    assertProtocolError(() => decode(sc(1)), 'chunk_size_too_small');
    assertProtocolError(() => decode(sc(99), { minChunkSize: 100 }), 'chunk_size_too_small');
    assert.equal(decode(sc(128)).reader.incomingChunkSize, 128);
    assert.equal(decode(sc(100), { minChunkSize: 100 }).reader.incomingChunkSize, 100);
  });

  it('0 and bit 31 set are rejected: bad_chunk_size', () => {
    for (const v of [0, 0x8000_0000, 0x8000_0080, 0xffff_ffff]) {
      assertProtocolError(() => decode(sc(v)), 'bad_chunk_size');
      assertProtocolError(() => decode(sc(v), { minChunkSize: 1 }), 'bad_chunk_size');
    }
  });

  it('> 0xFFFFFF is clamped to 0xFFFFFF (never used to allocate)', () => {
    for (const v of [0x100_0000, 0x7fff_ffff]) {
      const big = msg(9, 1, 0, filled(100_000));
      const { reader, messages } = decode([sc(v), encodeMessageChunks(big, 6, MAX_CHUNK_SIZE)]);
      assert.equal(reader.incomingChunkSize, MAX_CHUNK_SIZE);
      assertSameMessages(messages.slice(1), [big]);
      assert.equal(reader.bufferedBytes, 0);
    }
    assert.equal(decode(sc(0xffffff)).reader.incomingChunkSize, 0xffffff);
  });

  it('shorter than 4 bytes: bad_control_message', () => {
    assertProtocolError(() => decode(hex('02 000000 000002 01 00000000 | 0010')), 'bad_control_message');
  });
});

describe('large messages', () => {
  it('16 MiB - 1 video message in 128-byte chunks (131 072 chunks) decodes in linear time', () => {
    const payload = randomBytes(16 * 1024 * 1024 - 1);
    const m = msg(MessageType.Video, 1, 0x1234, payload);
    const bytes = encodeMessageChunks(m, 6, 128);
    assert.equal(bytes.length, payload.length + 12 + 131_071);
    const d = newReader();
    for (let o = 0; o < bytes.length; o += 65_536) d.reader.push(bytes.subarray(o, o + 65_536));
    assertSameMessages(d.messages, [m]);
    assert.equal(d.reader.bufferedBytes, 0);
  });

  it('16 MiB - 1 with an extended timestamp, field omitted in continuations (peek on each of 131 071 chunks)', () => {
    const payload = Buffer.alloc(16 * 1024 * 1024 - 1, 0x5a);
    const m = msg(MessageType.Video, 1, 0xfedcba98, payload);
    const writer = new ReferenceChunkWriter({ extendedInContinuation: 'omit' });
    const bytes = Buffer.concat([writer.write(m, 6), writer.write(msg(8, 1, 0xfedcba98, hex('af01')), 4)]);
    const d = newReader();
    for (let o = 0; o < bytes.length; o += 16_384) d.reader.push(bytes.subarray(o, o + 16_384));
    assertSameMessages(d.messages, writer.completed);
  });
});

describe('uint32 timestamps', () => {
  it('wrap from 0xFFFFFF00 across 0 via fmt0/fmt2/fmt3 deltas; TimestampUnwrapper gives a monotonic timeline', () => {
    const writer = new ReferenceChunkWriter();
    const sent: RtmpMessage[] = [];
    const parts: Buffer[] = [];
    for (let k = 0; k < 40; k++) {
      const m = msg(MessageType.Audio, 1, addTimestamp(0xffffff00, 23 * k), filled(4, k));
      sent.push(m);
      parts.push(writer.write(m, 4));
    }
    assert.ok(writer.stats.fmt[0] === 1 && writer.stats.fmt[2] === 1 && writer.stats.fmt[3] === 38);
    assert.equal(sent[12]!.timestamp, 0x14); // 0xFFFFFF00 + 276 wrapped
    const { messages } = decode(Buffer.concat(parts));
    assertSameMessages(messages, sent);
    const unwrap = new TimestampUnwrapper();
    const timeline = messages.map((m) => unwrap.unwrap(m.timestamp));
    timeline.forEach((t, k) => assert.equal(t, 0xffffff00 + 23 * k));
  });

  it('encodeMessageChunks (fmt0 each) across the wrap, and unwrapping with small backward steps', () => {
    const ts = [0xfffffff0, 0xfffffffa, 0x4, 0x2, 0x30];
    const ms = ts.map((t, i) => msg(9, 1, t, filled(3, i)));
    const { messages } = decode(Buffer.concat(ms.map((m) => encodeMessageChunks(m, 6, 128))));
    assertSameMessages(messages, ms);
    const unwrap = new TimestampUnwrapper();
    assert.deepEqual(
      messages.map((m) => unwrap.unwrap(m.timestamp)),
      [0xfffffff0, 0xfffffffa, 0x1_0000_0004, 0x1_0000_0002, 0x1_0000_0030],
    );
  });

  it('timestampDelta / addTimestamp are serial-number arithmetic on uint32', () => {
    assert.equal(timestampDelta(0xfffffff0, 0x10), 0x20);
    assert.equal(timestampDelta(0x10, 0xfffffff0), -0x20);
    assert.equal(timestampDelta(0, 0x7fffffff), 0x7fffffff);
    assert.equal(addTimestamp(0xfffffff0, 0x20), 0x10);
    assert.equal(addTimestamp(5, -10), 0xfffffffb);
    assert.equal(addTimestamp(0xffffffff, 1), 0);
    fc.assert(
      fc.property(
        fc.integer().map((x) => x >>> 0),
        fc.integer({ min: -0x7fffffff, max: 0x7fffffff }),
        (a, d) => {
          const b = addTimestamp(a, d);
          assert.ok(Number.isInteger(b) && b >= 0 && b <= 0xffffffff);
          assert.equal(timestampDelta(a, b), d);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('control message encodings (docs/INTEROP.md §3.4, byte-exact)', () => {
  const cases: [string, RtmpMessage, string][] = [
    ['SetChunkSize 4096', setChunkSize(4096), '02 000000 000004 01 00000000 | 00 00 10 00'],
    ['WinAckSize 2.5M', windowAckSize(2_500_000), '02 000000 000004 05 00000000 | 00 26 25 A0'],
    [
      'SetPeerBW 2.5M dynamic',
      setPeerBandwidth(2_500_000, PeerBandwidthLimit.Dynamic),
      '02 000000 000005 06 00000000 | 00 26 25 A0 02',
    ],
    ['StreamBegin(1)', streamBegin(1), '02 000000 000006 04 00000000 | 00 00 00 00 00 01'],
  ];
  for (const [name, m, wire] of cases) {
    it(name, () => {
      assert.equal(encodeMessageChunks(m, 2, 128).toString('hex'), hex(wire).toString('hex'));
      assertSameMessages(decode(hex(wire)).messages, [m]);
    });
  }

  it('ChunkWriter: default 128, setChunkSize applies to the following messages', () => {
    const w = new ChunkWriter();
    assert.equal(w.chunkSize, 128);
    const m = msg(9, 1, 0, filled(300));
    assert.deepEqual(w.encode(m, 6), encodeMessageChunks(m, 6, 128));
    w.setChunkSize(4096);
    assert.deepEqual(w.encode(m, 6), encodeMessageChunks(m, 6, 4096));
    assert.throws(() => w.setChunkSize(0), RangeError);
    assert.throws(() => w.setChunkSize(0x1000000), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Limits and malformed input
// ---------------------------------------------------------------------------------------------------------------

describe('reader limits', () => {
  it('message_too_large is thrown on the header, before any payload byte arrives', () => {
    // audio cap is 1 MiB by default
    const header = hex('06 000000 100001 08 01000000');
    const d = newReader();
    assertProtocolError(() => d.reader.push(header), 'message_too_large');
    // exactly 1 MiB is fine, and no memory is reserved for the declared length
    const ok = newReader();
    ok.reader.push(hex('06 000000 100000 08 01000000'));
    assert.equal(ok.reader.bufferedBytes, 0);
    // custom per-type limit, also through fmt1 and a fmt3 new message reusing a length
    const limits = { maxMessageSize: (t: number) => (t === MessageType.CommandAmf0 ? 100 : defaultMaxMessageSize(t)) };
    assertProtocolError(() => decode(hex('03 000000 000065 14 00000000'), limits), 'message_too_large');
    const big = Buffer.concat([hex('03 000000 000065 12 00000000'), filled(101)]);
    assert.equal(decode(big, limits).messages.length, 1);
    assertProtocolError(() => decode([big, hex('43 000000 000065 14')], limits), 'message_too_large');
    // video: protocol maximum accepted, nothing allocated for it up front
    const v = newReader();
    v.reader.push(Buffer.concat([hex('06 000000 ffffff 09 01000000'), filled(10)]));
    assert.equal(v.reader.bufferedBytes, 10);
  });

  it('too_many_chunk_streams: more chunk streams than maxChunkStreams', () => {
    // Messages stay unfinished, so the streams count as in use under any reading of the limit.
    const p = filled(200);
    const first = (csid: number) =>
      encodeMessageChunks(msg(9, 1, 0, p), csid, 128).subarray(0, basicHeader(0, csid).length + 11 + 128);
    const rest = (csid: number) => Buffer.concat([basicHeader(3, csid), p.subarray(128)]);
    const d = newReader({ maxChunkStreams: 3 });
    d.reader.push(Buffer.concat([first(3), first(4), first(65_599), rest(3), first(3)]));
    assert.equal(d.messages.length, 1);
    assertProtocolError(() => d.reader.push(first(5)), 'too_many_chunk_streams');
    // default: 64
    const e = newReader();
    for (let c = 2; c < 66; c++) e.reader.push(first(c));
    assert.equal(e.reader.bufferedBytes, 64 * 128);
    assertProtocolError(() => e.reader.push(first(400)), 'too_many_chunk_streams');
  });

  it('partial_bytes_exceeded: incomplete messages across chunk streams over maxPartialBytes', () => {
    const first = (csid: number) =>
      encodeMessageChunks(msg(9, 1, 0, filled(1000)), csid, 128).subarray(0, 1 + 11 + 128);
    const d = newReader({ maxPartialBytes: 300 });
    d.reader.push(first(4));
    d.reader.push(first(5));
    assert.equal(d.reader.bufferedBytes, 256);
    assertProtocolError(() => d.reader.push(first(6)), 'partial_bytes_exceeded');
    // a complete message releases its bytes
    const e = newReader({ maxPartialBytes: 300 });
    for (let i = 0; i < 10; i++) e.reader.push(encodeMessageChunks(msg(9, 1, i, filled(250)), 6, 128));
    assert.equal(e.messages.length, 10);
    assert.equal(e.reader.bufferedBytes, 0);
  });

  it('chunk_stream_not_started: a new csid that starts with fmt2 or fmt3', () => {
    assertProtocolError(() => decode(hex('86 000028 | 00')), 'chunk_stream_not_started');
    assertProtocolError(() => decode(hex('c6 00')), 'chunk_stream_not_started');
    assertProtocolError(() => decode(hex('c1 00 01')), 'chunk_stream_not_started');
    // another csid's state does not count
    assertProtocolError(() => decode(hex('06 000000 000001 08 01000000 | 00 c7 00')), 'chunk_stream_not_started');
  });

  it('a new csid starting with fmt1 is tolerated like SRS does (librtmp pings): stream id 0, delta from 0', () => {
    assertSameMessages(decode(hex('42 000010 000006 04 | 0006 00001234')).messages, [
      msg(4, 0, 0x10, hex('0006 00001234')),
    ]);
  });

  it('chunk_header_mid_message: fmt0 or fmt1 on a csid whose message is unfinished', () => {
    const firstChunk = Buffer.concat([hex('06 000000 0000c8 09 01000000'), filled(128)]);
    assertProtocolError(
      () => decode([firstChunk, hex('06 000000 000001 09 01000000 | 00')]),
      'chunk_header_mid_message',
    );
    assertProtocolError(() => decode([firstChunk, hex('46 000000 0000c8 09')]), 'chunk_header_mid_message');
    // other chunk streams may start messages meanwhile
    const { messages } = decode([
      firstChunk,
      hex('04 000000 000002 08 01000000 | af01'),
      hex('c6'),
      filled(200).subarray(128),
    ]);
    assertSameMessages(messages, [msg(8, 1, 0, hex('af01')), msg(9, 1, 0, filled(200))]);
  });

  it('Abort discards the partial message of the named csid only', () => {
    const p = filled(300, 1);
    const q = filled(200, 2);
    const abortBytes = encodeMessageChunks(abortMessage(6), 2, 128);
    assert.equal(abortBytes.toString('hex'), hex('02 000000 000004 02 00000000 | 00000006').toString('hex'));
    const d = newReader();
    d.reader.push(Buffer.concat([hex('06 000000 00012c 09 01000000'), p.subarray(0, 128)]));
    d.reader.push(Buffer.concat([hex('04 000000 0000c8 08 01000000'), q.subarray(0, 128)]));
    assert.equal(d.reader.bufferedBytes, 256);
    d.reader.push(abortBytes);
    assert.equal(d.reader.bufferedBytes, 128, 'csid 6 bytes released, csid 4 kept');
    // abort of unknown / idle chunk streams is ignored
    d.reader.push(encodeMessageChunks(abortMessage(77), 2, 128));
    d.reader.push(encodeMessageChunks(abortMessage(6), 2, 128));
    // csid 6 may start over with fmt0 (no chunk_header_mid_message), csid 4 continues
    d.reader.push(Buffer.concat([hex('06 000064 000003 09 01000000 | 010203'), hex('c4'), q.subarray(128)]));
    assertSameMessages(
      d.messages.filter((m) => m.type !== MessageType.Abort),
      [msg(9, 1, 0x64, hex('010203')), msg(8, 1, 0, q)],
    );
    assert.equal(d.messages.filter((m) => m.type === MessageType.Abort).length, 3);
    assert.equal(d.reader.bufferedBytes, 0);
  });

  it('stop() drops everything and ignores further input', () => {
    const d = newReader();
    d.reader.push(hex('06 000000 00012c 09 01000000 0102'));
    d.reader.stop();
    d.reader.push(hex('c6 ffff 06 000000 000001 09 01000000 00'));
    assert.equal(d.messages.length, 0);
  });
});

describe('malformed input (properties)', () => {
  const limitsArb = fc.constantFrom<Partial<ChunkReaderLimits>>(
    {},
    { minChunkSize: 1 },
    { minChunkSize: 1, maxChunkStreams: 4, maxPartialBytes: 5000, maxMessageSize: () => 4000 },
  );

  // Without size: 'max', fast-check keeps arrays to about ten elements.
  const garbageArb = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 4000, size: 'max' }));

  function feedGarbage(bytes: Buffer, split: Split, limits: Partial<ChunkReaderLimits>): void {
    let delivered = 0;
    const reader = new ChunkReader((m) => {
      delivered += m.payload.length;
    }, limits);
    let pushed = 0;
    try {
      for (const piece of pieces(bytes, split)) {
        reader.push(piece);
        pushed += piece.length;
        // never more payload or buffered bytes than input: nothing is allocated by a declared length
        assert.ok(delivered + reader.bufferedBytes <= pushed, 'bytes out <= bytes in');
      }
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof RtmpProtocolError, `non-protocol error: ${(err as Error)?.stack ?? String(err)}`);
      assert.ok(PROTOCOL_REASONS.has(err.reason), `unknown reason ${err.reason}`);
    }
  }

  it('random bytes only ever throw RtmpProtocolError', () => {
    fc.assert(
      fc.property(garbageArb, splitArb, limitsArb, (bytes, split, limits) => {
        feedGarbage(Buffer.from(bytes), split, limits);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('random bytes after a valid prefix (deeper parser states) only ever throw RtmpProtocolError', () => {
    fc.assert(
      fc.property(
        garbageArb,
        fc.constantFrom(
          hex('06 000000 00012c 09 01000000'), // unfinished video message
          hex('06 ffffff 00012c 09 01000000 01234567'), // extended timestamp
          hex('02 000000 000004 01 00000000 00000001'), // chunk size 1 (rejected unless minChunkSize 1)
          hex('02 000000 000004 01 00000000 7fffffff'), // chunk size clamped
          hex(''),
        ),
        splitArb,
        limitsArb,
        (bytes, prefix, split, limits) => {
          feedGarbage(Buffer.concat([prefix, Buffer.from(bytes)]), split, limits);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('mutated valid streams (byte overwrites, truncation) only ever throw RtmpProtocolError', () => {
    fc.assert(
      fc.property(
        scenarioArb({ maxPayload: 2000, chunkSize: fc.integer({ min: 1, max: 3000 }), maxMessages: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        limitsArb,
        (s, edits, cut, limits) => {
          const stats = emptyStats();
          const { bytes } = encodeWithReference(s, { extendedInContinuation: 'repeat', csidForm: 'shortest' }, stats);
          const b = Buffer.from(bytes);
          for (const [at, v] of edits) b[at % b.length] = v;
          feedGarbage(b.subarray(0, b.length - (cut % Math.max(1, b.length))), s.split, limits);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
