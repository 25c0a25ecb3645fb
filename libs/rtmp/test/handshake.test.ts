import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { RtmpProtocolError } from '../src/errors.js';
import {
  ClientHandshake,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  HANDSHAKE_SERVER_REPLY_SIZE,
  ServerHandshake,
  type HandshakeMode,
  type HandshakeStep,
} from '../src/handshake.js';

// ---------------------------------------------------------------------------------------------------------------
// Independent reference implementation of the FP9 digest math, written from docs/INTEROP.md §2.2 and kept apart
// from the code under test on purpose.
// ---------------------------------------------------------------------------------------------------------------
const SIZE = 1536;
const TAIL = Buffer.from('F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE', 'hex');
const FP_KEY_62 = Buffer.concat([Buffer.from('Genuine Adobe Flash Player 001'), TAIL]);
const FMS_KEY_68 = Buffer.concat([Buffer.from('Genuine Adobe Flash Media Server 001'), TAIL]);
const FP_KEY_30 = FP_KEY_62.subarray(0, 30);
const FMS_KEY_36 = FMS_KEY_68.subarray(0, 36);

function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}
function refDigestPos(b: Buffer, layout: 8 | 772): number {
  const sum = b[layout]! + b[layout + 1]! + b[layout + 2]! + b[layout + 3]!;
  return layout === 8 ? (sum % 728) + 12 : (sum % 728) + 776;
}
function refDigest(b: Buffer, pos: number, key: Buffer): Buffer {
  return hmac(key, b.subarray(0, pos), b.subarray(pos + 32));
}
function refVerifyDigest(b: Buffer, layout: 8 | 772, key: Buffer): Buffer | undefined {
  const pos = refDigestPos(b, layout);
  const d = refDigest(b, pos, key);
  return d.equals(b.subarray(pos, pos + 32)) ? d : undefined;
}
function refVerifySignature(b: Buffer, fullKey: Buffer, peerDigest: Buffer): boolean {
  return hmac(hmac(fullKey, peerDigest), b.subarray(0, 1504)).equals(b.subarray(1504));
}

/** Deterministic byte source: SHA-256 in counter mode over a seed. */
function seededRandom(seed: string): (n: number) => Buffer {
  let counter = 0;
  return (n: number) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) {
      createHash('sha256').update(`${seed}:${counter++}`).digest().copy(out, off);
    }
    return out;
  };
}

/** C0+C1 built the way FFmpeg's client does (version 9.0.124.2, FP digest) at the given layout. */
function digestC0C1(layout: 8 | 772, seed = 'ffmpeg'): Buffer {
  const c1 = seededRandom(seed)(SIZE);
  c1.writeUInt32BE(0, 0);
  Buffer.from([9, 0, 124, 2]).copy(c1, 4);
  const pos = refDigestPos(c1, layout);
  refDigest(c1, pos, FP_KEY_30).copy(c1, pos);
  return Buffer.concat([Buffer.from([3]), c1]);
}

/** C0+C1 as librtmp's simple handshake sends it: uptime, zero version, filler. */
function simpleC0C1(fill: 'zeros' | 'random'): Buffer {
  const c1 = fill === 'zeros' ? Buffer.alloc(SIZE) : seededRandom('rtmpdump')(SIZE);
  c1.writeUInt32BE(123456, 0);
  c1.writeUInt32BE(0, 4);
  return Buffer.concat([Buffer.from([3]), c1]);
}

function splitAt(data: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < data.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const c of sorted) {
    pieces.push(data.subarray(prev, c));
    prev = c;
  }
  pieces.push(data.subarray(prev));
  return pieces;
}

interface FeedResult {
  replies: Buffer[];
  rest: Buffer;
  doneAfter: number; // index of the piece that completed the handshake
}
function feed(side: { push(d: Buffer): HandshakeStep }, pieces: readonly Buffer[]): FeedResult {
  const replies: Buffer[] = [];
  const rests: Buffer[] = [];
  let doneAfter = -1;
  pieces.forEach((piece, i) => {
    const step = side.push(piece);
    if (step.reply) replies.push(step.reply);
    if (step.done && doneAfter < 0) doneAfter = i;
    if (step.rest) {
      assert.ok(step.done, 'rest only when done');
      rests.push(step.rest);
    }
    if (!step.done) assert.equal(step.rest, undefined);
  });
  return { replies, rest: Buffer.concat(rests), doneAfter };
}

const FIXED_NOW = () => 1000;
const TRAILER_FROM_CLIENT = Buffer.from('02000000000004010000000000001000', 'hex'); // SetChunkSize 4096
const TRAILER_FROM_SERVER = Buffer.from('0200000000000405000000000026 25a0'.replace(/ /g, ''), 'hex');

interface Transcript {
  c0c1: Buffer;
  s0s1s2: Buffer;
  c2: Buffer;
  serverMode: HandshakeMode | undefined;
}

/** Run a deterministic client/server exchange in memory and record every packet. */
function transcript(mode: HandshakeMode, digestLayout: 8 | 772 = 8): Transcript {
  const client = new ClientHandshake({ mode, digestLayout, randomBytes: seededRandom('c'), now: FIXED_NOW });
  const server = new ServerHandshake({ randomBytes: seededRandom('s'), now: FIXED_NOW });
  const c0c1 = client.start();
  const s = server.push(c0c1);
  assert.equal(s.done, false);
  assert.ok(s.reply);
  const c = client.push(s.reply);
  assert.equal(c.done, true);
  assert.ok(c.reply);
  const fin = server.push(c.reply);
  assert.equal(fin.done, true);
  assert.equal(fin.reply, undefined);
  assert.equal(fin.rest, undefined);
  return { c0c1, s0s1s2: s.reply, c2: c.reply, serverMode: server.mode };
}

const newServer = () => new ServerHandshake({ randomBytes: seededRandom('s'), now: FIXED_NOW });
function newStartedClient(mode: HandshakeMode, digestLayout: 8 | 772): ClientHandshake {
  const client = new ClientHandshake({ mode, digestLayout, randomBytes: seededRandom('c'), now: FIXED_NOW });
  client.start();
  return client;
}

const PAIRINGS: { name: string; mode: HandshakeMode; layout: 8 | 772 }[] = [
  { name: 'simple', mode: 'simple', layout: 8 },
  { name: 'digest@8', mode: 'digest', layout: 8 },
  { name: 'digest@772', mode: 'digest', layout: 772 },
];

// ---------------------------------------------------------------------------------------------------------------

describe('handshake: client against server', () => {
  it('exports the default timeout', () => {
    assert.equal(DEFAULT_HANDSHAKE_TIMEOUT_MS, 10_000);
  });

  for (const p of PAIRINGS) {
    it(`${p.name}: completes, modes agree, rest carries the trailing bytes on both sides`, () => {
      const client = new ClientHandshake({ mode: p.mode, digestLayout: p.layout });
      const server = new ServerHandshake();
      assert.equal(server.mode, undefined);
      const c0c1 = client.start();
      assert.equal(c0c1.length, 1537);
      const s = server.push(c0c1);
      assert.equal(s.reply?.length, HANDSHAKE_SERVER_REPLY_SIZE);
      assert.equal(server.mode, p.mode);
      assert.equal(server.digestLayout, p.mode === 'digest' ? p.layout : undefined);

      const c = client.push(Buffer.concat([s.reply!, TRAILER_FROM_SERVER]));
      assert.equal(c.done, true);
      assert.deepEqual(c.rest, TRAILER_FROM_SERVER);
      assert.equal(c.reply?.length, SIZE);
      assert.equal(client.serverVerified, p.mode === 'digest');

      const fin = server.push(Buffer.concat([c.reply!, TRAILER_FROM_CLIENT]));
      assert.equal(fin.done, true);
      assert.equal(fin.reply, undefined);
      assert.deepEqual(fin.rest, TRAILER_FROM_CLIENT);
      assert.equal(server.c2Verified, true);
      assert.equal(server.done, true);

      // After completion, further bytes pass straight through as rest.
      const more = Buffer.from([1, 2, 3]);
      assert.deepEqual(server.push(more), { done: true, rest: more });
      assert.deepEqual(client.push(more), { done: true, rest: more });
    });
  }

  it('client C1 is simple (C1[4..7] = 0) by default and FFmpeg-like in digest mode', () => {
    const simple = new ClientHandshake().start();
    assert.equal(simple[0], 3);
    assert.equal(simple.readUInt32BE(5), 0);
    assert.equal(refVerifyDigest(simple.subarray(1), 8, FP_KEY_30), undefined);

    const digest = new ClientHandshake({ mode: 'digest' }).start();
    assert.deepEqual([...digest.subarray(5, 9)], [9, 0, 124, 2]);
    assert.ok(refVerifyDigest(digest.subarray(1), 8, FP_KEY_30), 'FP digest at layout 8');
  });

  it('time fields come from now() modulo 2^32', () => {
    const client = new ClientHandshake({ now: () => 2 ** 32 + 7 });
    assert.equal(client.start().readUInt32BE(1), 7);
    const server = new ServerHandshake({ now: () => 42.9 });
    const reply = server.push(simpleC0C1('random')).reply!;
    assert.equal(reply.readUInt32BE(1), 42);
  });
});

describe('handshake: arbitrary input splits', () => {
  for (const p of PAIRINGS) {
    const t = transcript(p.mode, p.layout);
    const serverInput = Buffer.concat([t.c0c1, t.c2, TRAILER_FROM_CLIENT]);
    const clientInput = Buffer.concat([t.s0s1s2, TRAILER_FROM_SERVER]);

    it(`${p.name}: server, split in two at every byte boundary`, () => {
      for (let cut = 0; cut <= serverInput.length; cut++) {
        const r = feed(newServer(), splitAt(serverInput, [cut]));
        assert.equal(r.replies.length, 1, `cut ${cut}`);
        assert.ok(r.replies[0]!.equals(t.s0s1s2), `cut ${cut}`);
        assert.ok(r.rest.equals(TRAILER_FROM_CLIENT), `cut ${cut}`);
        assert.ok(r.doneAfter >= 0, `cut ${cut}`);
      }
    });

    it(`${p.name}: client, split in two at every byte boundary`, () => {
      for (let cut = 0; cut <= clientInput.length; cut++) {
        const r = feed(newStartedClient(p.mode, p.layout), splitAt(clientInput, [cut]));
        assert.equal(r.replies.length, 1, `cut ${cut}`);
        assert.ok(r.replies[0]!.equals(t.c2), `cut ${cut}`);
        assert.ok(r.rest.equals(TRAILER_FROM_SERVER), `cut ${cut}`);
      }
    });

    it(`${p.name}: one byte at a time`, () => {
      const oneByOne = (b: Buffer) => Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
      const sr = feed(newServer(), oneByOne(serverInput));
      assert.deepEqual(sr.replies, [t.s0s1s2]);
      assert.deepEqual(sr.rest, TRAILER_FROM_CLIENT);
      // the reply comes with the last byte of C1, not later
      const server = newServer();
      const c0c1Pieces = oneByOne(t.c0c1);
      c0c1Pieces.slice(0, -1).forEach((piece) => assert.equal(server.push(piece).reply, undefined));
      assert.ok(server.push(c0c1Pieces.at(-1)!).reply?.equals(t.s0s1s2));

      const cr = feed(newStartedClient(p.mode, p.layout), oneByOne(clientInput));
      assert.deepEqual(cr.replies, [t.c2]);
      assert.deepEqual(cr.rest, TRAILER_FROM_SERVER);
    });

    it(`${p.name}: random multi-way splits (fast-check)`, () => {
      const trailer = fc.uint8Array({ minLength: 0, maxLength: 64 });
      const cuts = (len: number) => fc.array(fc.integer({ min: 0, max: len + 64 }), { maxLength: 40 });
      fc.assert(
        fc.property(trailer, cuts(serverInput.length), cuts(clientInput.length), (tail, sCuts, cCuts) => {
          const tailBuf = Buffer.from(tail);
          const sIn = Buffer.concat([t.c0c1, t.c2, tailBuf]);
          const sr = feed(newServer(), splitAt(sIn, sCuts));
          assert.equal(sr.replies.length, 1);
          assert.ok(sr.replies[0]!.equals(t.s0s1s2));
          assert.ok(sr.rest.equals(tailBuf));
          assert.ok(sr.doneAfter >= 0);

          const cIn = Buffer.concat([t.s0s1s2, tailBuf]);
          const cr = feed(newStartedClient(p.mode, p.layout), splitAt(cIn, cCuts));
          assert.equal(cr.replies.length, 1);
          assert.ok(cr.replies[0]!.equals(t.c2));
          assert.ok(cr.rest.equals(tailBuf));
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe('handshake: server answers per client type', () => {
  for (const layout of [8, 772] as const) {
    it(`FFmpeg-like C1 with digest at layout ${layout} gets a digest S1 and a signed S2`, () => {
      const c0c1 = digestC0C1(layout);
      const c1 = c0c1.subarray(1);
      const c1Digest = refVerifyDigest(c1, layout, FP_KEY_30);
      assert.ok(c1Digest, 'fixture sanity');

      const server = new ServerHandshake();
      const { reply, done } = server.push(c0c1);
      assert.equal(done, false);
      assert.ok(reply);
      assert.equal(reply.length, 1 + 2 * SIZE);
      assert.equal(server.mode, 'digest');
      assert.equal(server.digestLayout, layout);
      assert.equal(server.clientVersion, '9.0.124.2');

      assert.equal(reply[0], 3, 'S0');
      const s1 = reply.subarray(1, 1 + SIZE);
      const s2 = reply.subarray(1 + SIZE);
      assert.notEqual(s1[4], 0, 'S1 version must be non-zero in digest mode');
      assert.ok(s1[4]! >= 3, 'FFmpeg players validate only when S1[4] >= 3: make sure they do');
      const s1Digest = refVerifyDigest(s1, layout, FMS_KEY_36);
      assert.ok(s1Digest, 'S1 digest verifies with FMSKey[0..36) at the client layout');
      assert.ok(
        refVerifySignature(s2, FMS_KEY_68, c1Digest),
        'S2 = random | HMAC(HMAC(FMSKey68, C1 digest), S2[0..1504))',
      );

      // A C2 from an FFmpeg player: random | HMAC(HMAC(FPKey62, S1 digest), C2[0..1504)).
      const c2 = seededRandom('c2')(SIZE);
      hmac(hmac(FP_KEY_62, s1Digest), c2.subarray(0, 1504)).copy(c2, 1504);
      const fin = server.push(c2);
      assert.equal(fin.done, true);
      assert.equal(server.c2Verified, true);
    });

    it(`FFmpeg's player check (S1[4] >= 3, try 772 then 8) passes against a layout-${layout} answer`, () => {
      const c0c1 = digestC0C1(layout, `ff-${layout}`);
      const reply = new ServerHandshake().push(c0c1).reply!;
      const s1 = reply.subarray(1, 1 + SIZE);
      const s2 = reply.subarray(1 + SIZE);
      assert.ok(s1[4]! >= 3);
      const found = refVerifyDigest(s1, 772, FMS_KEY_36) ?? refVerifyDigest(s1, 8, FMS_KEY_36);
      assert.ok(found, 'Server response validating failed');
      const clientPos = refDigestPos(c0c1.subarray(1), layout);
      const c1Digest = c0c1.subarray(1 + clientPos, 1 + clientPos + 32);
      assert.ok(refVerifySignature(s2, FMS_KEY_68, c1Digest), 'Signature mismatch');
    });
  }

  for (const fill of ['zeros', 'random'] as const) {
    it(`simple C1 (rtmpdump-like, ${fill} filler) gets S1[4..7] = 0 and S2 = echo of C1`, () => {
      const c0c1 = simpleC0C1(fill);
      const server = new ServerHandshake();
      const { reply } = server.push(c0c1);
      assert.ok(reply);
      assert.equal(server.mode, 'simple');
      assert.equal(server.digestLayout, undefined);
      assert.equal(reply[0], 3);
      assert.deepEqual([...reply.subarray(1 + 4, 1 + 8)], [0, 0, 0, 0]);
      assert.ok(reply.subarray(1 + SIZE).equals(c0c1.subarray(1)), 'S2 == C1');
      // librtmp's simple C2 is a copy of S1
      const fin = server.push(Buffer.from(reply.subarray(1, 1 + SIZE)));
      assert.equal(fin.done, true);
      assert.equal(server.c2Verified, true);
    });
  }

  it('a C1 with a version but no valid digest is answered simply', () => {
    const c0c1 = digestC0C1(8);
    c0c1[1 + 600] = c0c1[1 + 600]! ^ 0xff; // corrupt a hashed byte: the digest no longer verifies at either layout
    const server = new ServerHandshake();
    const reply = server.push(c0c1).reply!;
    assert.equal(server.mode, 'simple');
    assert.equal(reply.readUInt32BE(1 + 4), 0);
    assert.ok(reply.subarray(1 + SIZE).equals(c0c1.subarray(1)));
  });

  it('C2 is accepted without checks (garbage C2 still completes, flagged in c2Verified)', () => {
    for (const c0c1 of [simpleC0C1('random'), digestC0C1(8)]) {
      const server = new ServerHandshake();
      server.push(c0c1);
      const fin = server.push(Buffer.concat([Buffer.alloc(SIZE, 0x55), Buffer.from([0xc3])]));
      assert.equal(fin.done, true);
      assert.deepEqual(fin.rest, Buffer.from([0xc3]));
      assert.equal(server.c2Verified, false);
    }
  });
});

describe('handshake: refused first bytes', () => {
  const cases: { byte: number; reason: string }[] = [
    { byte: 6, reason: 'handshake_rtmpe_unsupported' },
    { byte: 8, reason: 'handshake_rtmpe_unsupported' },
    { byte: 9, reason: 'handshake_rtmpe_unsupported' },
    { byte: 0x16, reason: 'handshake_tls' },
    { byte: 'G'.charCodeAt(0), reason: 'handshake_http' },
    { byte: 'P'.charCodeAt(0), reason: 'handshake_http' },
    { byte: 0x20, reason: 'handshake_bad_version' },
    { byte: 0, reason: 'handshake_bad_version' },
    { byte: 4, reason: 'handshake_bad_version' },
    { byte: 0xff, reason: 'handshake_bad_version' },
  ];
  for (const { byte, reason } of cases) {
    it(`C0 = 0x${byte.toString(16)} -> ${reason}, no reply`, () => {
      const isReason = (err: unknown) => err instanceof RtmpProtocolError && err.reason === reason;
      // alone, as soon as the first byte arrives
      const s1 = new ServerHandshake();
      assert.throws(() => s1.push(Buffer.from([byte])), isReason);
      assert.equal(s1.mode, undefined);
      // with a whole C1 behind it: still no reply is produced
      const s2 = new ServerHandshake();
      const input = Buffer.concat([Buffer.from([byte]), simpleC0C1('random').subarray(1)]);
      let step: HandshakeStep | undefined;
      assert.throws(() => {
        step = s2.push(input);
      }, isReason);
      assert.equal(step, undefined);
      // the failure is latched
      assert.throws(() => s2.push(Buffer.alloc(10)), isReason);
    });
  }

  it('"GET / HTTP/1.1" and a TLS ClientHello are refused', () => {
    assert.throws(
      () => new ServerHandshake().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_http',
    );
    assert.throws(
      () => new ServerHandshake().push(Buffer.from('POST /open/1 HTTP/1.1\r\n')),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_http',
    );
    assert.throws(
      () => new ServerHandshake().push(Buffer.from('160301020001', 'hex')),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_tls',
    );
  });
});

describe('handshake: client validation rules', () => {
  function s0s1s2(s1: Buffer, s2: Buffer): Buffer {
    return Buffer.concat([Buffer.from([3]), s1, s2]);
  }

  it('digest client rejects S1 with a version and no digest (S1 version 4.5.0.1)', () => {
    const client = new ClientHandshake({ mode: 'digest' });
    client.start();
    const s1 = seededRandom('bad')(SIZE);
    Buffer.from([4, 5, 0, 1]).copy(s1, 4);
    assert.throws(
      () => client.push(s0s1s2(s1, Buffer.alloc(SIZE))),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_bad_digest',
    );
  });

  it('digest client rejects a valid S1 digest followed by a wrong S2 signature', () => {
    const client = new ClientHandshake({ mode: 'digest' });
    const c0c1 = client.start();
    const reply = Buffer.from(new ServerHandshake().push(c0c1).reply!);
    reply[reply.length - 1] = reply[reply.length - 1]! ^ 1;
    const first = client.push(reply.subarray(0, 1 + SIZE));
    assert.ok(first.reply, 'C2 goes out as soon as S1 verifies');
    assert.throws(
      () => client.push(reply.subarray(1 + SIZE)),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_bad_signature',
    );
  });

  it('digest client falls back to simple when S1[4] == 0 (C2 = echo of S1)', () => {
    const client = new ClientHandshake({ mode: 'digest' });
    const c0c1 = client.start();
    const s1 = seededRandom('simple-server')(SIZE);
    s1.writeUInt32BE(0, 4);
    const step = client.push(s0s1s2(s1, c0c1.subarray(1)));
    assert.equal(step.done, true);
    assert.ok(step.reply?.equals(s1));
    assert.equal(client.serverVerified, false);
    assert.equal(client.s2Echoed, true);
  });

  it('simple client never validates (non-zero S1 version without digest is fine)', () => {
    const client = new ClientHandshake();
    client.start();
    const s1 = seededRandom('odd-server')(SIZE);
    Buffer.from([4, 5, 0, 1]).copy(s1, 4);
    const step = client.push(s0s1s2(s1, Buffer.alloc(SIZE)));
    assert.equal(step.done, true);
    assert.ok(step.reply?.equals(s1));
    assert.equal(client.serverVersion, '4.5.0.1');
    assert.equal(client.s2Echoed, false);
  });

  it('client rejects S0 != 3 and misuse', () => {
    const client = new ClientHandshake();
    assert.throws(() => client.push(Buffer.from([3])), /before start/);
    client.start();
    assert.throws(() => client.start(), /twice/);
    assert.throws(
      () => client.push(Buffer.from([6])),
      (e: unknown) => e instanceof RtmpProtocolError && e.reason === 'handshake_bad_version',
    );
  });
});

describe('handshake: over real sockets (127.0.0.1, ephemeral port)', () => {
  for (const p of PAIRINGS) {
    it(`${p.name}: net.Server + net client complete and exchange post-handshake bytes`, async () => {
      const serverModes: (HandshakeMode | undefined)[] = [];
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        const hs = new ServerHandshake();
        let handshaking = true;
        socket.on('error', () => socket.destroy());
        socket.on('data', (data) => {
          if (!handshaking) {
            socket.write(data); // echo the "chunk stream"
            return;
          }
          try {
            const step = hs.push(data);
            if (step.reply) socket.write(step.reply);
            if (step.done) {
              handshaking = false;
              serverModes.push(hs.mode);
              if (step.rest) socket.write(step.rest);
            }
          } catch {
            socket.destroy();
          }
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;

      const client = new ClientHandshake({ mode: p.mode, digestLayout: p.layout });
      const socket = net.connect(port, '127.0.0.1');
      sockets.add(socket);
      const payload = Buffer.from('post-handshake chunk bytes');
      try {
        const echoed = await new Promise<Buffer>((resolve, reject) => {
          const received: Buffer[] = [];
          let handshaking = true;
          const collect = (b: Buffer) => {
            received.push(b);
            const all = Buffer.concat(received);
            if (all.length >= payload.length) resolve(all);
          };
          socket.on('error', reject);
          socket.on('close', () => reject(new Error('closed before echo')));
          socket.on('connect', () => socket.write(client.start()));
          socket.on('data', (data) => {
            if (!handshaking) return collect(data);
            try {
              const step = client.push(data);
              if (step.done) {
                handshaking = false;
                // C2 and the first chunk bytes in one write: the server must split them via `rest`.
                socket.write(Buffer.concat([step.reply ?? Buffer.alloc(0), payload]));
                if (step.rest) collect(step.rest);
              } else if (step.reply) {
                socket.write(step.reply);
              }
            } catch (err) {
              reject(err);
            }
          });
        });
        assert.deepEqual(echoed, payload);
        assert.deepEqual(serverModes, [p.mode]);
        assert.equal(client.serverVerified, p.mode === 'digest');
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  }
});
