/**
 * RTMP handshake, server and client side, as pure incremental state machines.
 *
 * Neither class touches a socket: the connection code feeds every received buffer to `push()` and writes
 * whatever `reply` it returns; once `done` is true, `rest` holds the bytes that followed the handshake (they
 * belong to the chunk stream). Timeouts are the connection code's job (DEFAULT_HANDSHAKE_TIMEOUT_MS).
 *
 * Wire rules (docs/INTEROP.md §2, §8 rows 1-3):
 *  - C0/S0 = 3. RTMPE (6/8/9), TLS (0x16) and HTTP ('G'/'P') are recognised by the first byte and refused.
 *  - The server writes S0+S1+S2 in ONE buffer as soon as C0+C1 are complete; it never waits for C2 (FFmpeg and
 *    GStreamer read S2 before sending C2, so waiting deadlocks them).
 *  - C1 with a valid digest (layout 772 tried first, then 8) gets the complex answer: S1 with a non-zero version and
 *    an FMS-key digest at the client's layout, S2 = random | signature. Any other C1 gets the simple answer:
 *    S1[4..7] = 0 (FFmpeg play and librtmp FP9 validate S1 whenever its version is non-zero) and S2 = echo of C1.
 *  - C2 is accepted without checks; whether it matched is only reported (`c2Verified`).
 *  - The client speaks the simple handshake unless asked for 'digest' (FFmpeg-like: version 9.0.124.2, FP-key digest
 *    at layout 8); in digest mode it validates the server only when S1[4] != 0.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { HANDSHAKE_SIZE, RTMP_VERSION } from './constants.js';
import { RtmpProtocolError } from './errors.js';
import {
  C1_DIGEST_KEY,
  DIGEST_LAYOUT_8,
  DIGEST_LAYOUT_DETECTION_ORDER,
  FMS_KEY,
  FP_KEY,
  HANDSHAKE_SIZE_WITHOUT_DIGEST,
  S1_DIGEST_KEY,
  TIME_OFFSET,
  VERSION_LENGTH,
  VERSION_OFFSET,
  findDigest,
  hasValidSignature,
  imprintDigest,
  imprintSignature,
  type DigestLayout,
} from './handshake-digest.js';

export type { DigestLayout } from './handshake-digest.js';

/** How long the connection code should allow for C0+C1+C2 before closing (docs section 6). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export type HandshakeMode = 'simple' | 'digest';

/** Size of C0/S0. */
const HANDSHAKE_VERSION_SIZE = 1;
/** Size of C0+C1 (what the client sends first) and of S0+S1. */
const HANDSHAKE_HELLO_SIZE = HANDSHAKE_VERSION_SIZE + HANDSHAKE_SIZE;
/** Size of the server's single reply S0+S1+S2. */
export const HANDSHAKE_SERVER_REPLY_SIZE = HANDSHAKE_VERSION_SIZE + 2 * HANDSHAKE_SIZE;

/** Offset of the random (or echoed random) part of C1/S1/C2/S2, after time(4) and version/time2(4). */
const HANDSHAKE_RANDOM_OFFSET = VERSION_OFFSET + VERSION_LENGTH;

/** First bytes of encrypted RTMPE handshakes (librtmp/FFmpeg: 6 = DH, 8 = XTEA, 9 = Blowfish). */
const RTMPE_VERSION_BYTES: readonly number[] = [0x06, 0x08, 0x09];
/** TLS record type "handshake": someone speaks rtmps:// (or https://) to a plain RTMP port. */
const TLS_HANDSHAKE_BYTE = 0x16;
/** 'G' (GET) and 'P' (POST/PUT): an HTTP client, e.g. a health checker or RTMPT. */
const HTTP_FIRST_BYTES: readonly number[] = [0x47, 0x50];

/** Version field our server puts in a complex S1 (non-zero, and >= 3 so that FFmpeg players do validate it). */
const SERVER_DIGEST_VERSION: Buffer = Buffer.from([0x05, 0x00, 0x03, 0x01]);
/** Version field of a digest C1, as FFmpeg sends it (RTMP_CLIENT_VER1..4 = 9.0.124.2). */
const CLIENT_DIGEST_VERSION: Buffer = Buffer.from([0x09, 0x00, 0x7c, 0x02]);

/** Reasons thrown by the handshake (RtmpProtocolError.reason). */
const HandshakeErrorReason = {
  BadVersion: 'handshake_bad_version',
  RtmpeUnsupported: 'handshake_rtmpe_unsupported',
  Tls: 'handshake_tls',
  Http: 'handshake_http',
  /** Client side: S1 announces a version but carries no valid FMS-key digest. */
  BadServerDigest: 'handshake_bad_digest',
  /** Client side: S2's signature does not match our C1 digest. */
  BadServerSignature: 'handshake_bad_signature',
} as const;
type HandshakeErrorReason = (typeof HandshakeErrorReason)[keyof typeof HandshakeErrorReason];

/** Result of one `push()`. */
export interface HandshakeStep {
  /** Bytes to write to the peer now (server: S0+S1+S2; client: C2). */
  reply?: Buffer;
  /** True once the peer's last handshake packet has been received. */
  done: boolean;
  /** Bytes received after the handshake (a view on the pushed buffer); only when done and non-empty. */
  rest?: Buffer;
}

export interface HandshakeOptions {
  /** Source of the random fill (default node:crypto randomBytes). Tests inject a deterministic one. */
  randomBytes?: (n: number) => Buffer;
  /** Millisecond clock for the time field of C1/S1 (default: process uptime in ms); taken modulo 2^32. */
  now?: () => number;
}

export interface ClientHandshakeOptions extends HandshakeOptions {
  /** 'simple' (default: zero version, no digest, like librtmp/OBS/GStreamer) or 'digest' (FFmpeg-like FP9). */
  mode?: HandshakeMode;
  /** Digest layout of our C1 in digest mode (default 8, as FFmpeg and rtmpdump). */
  digestLayout?: DigestLayout;
}

/**
 * Classify the first byte the peer sent. Returns undefined for RTMP version 3, else the error to close with.
 * Used on C0 (server side); the client only accepts S0 = 3.
 */
function checkVersionByte(byte: number): RtmpProtocolError | undefined {
  if (byte === RTMP_VERSION) return undefined;
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  if (RTMPE_VERSION_BYTES.includes(byte)) {
    return new RtmpProtocolError(
      HandshakeErrorReason.RtmpeUnsupported,
      `RTMPE (encrypted RTMP, version byte ${hex}) is not supported`,
    );
  }
  if (byte === TLS_HANDSHAKE_BYTE) {
    return new RtmpProtocolError(HandshakeErrorReason.Tls, 'TLS handshake received on a plain RTMP port');
  }
  if (HTTP_FIRST_BYTES.includes(byte)) {
    return new RtmpProtocolError(HandshakeErrorReason.Http, 'HTTP request received on an RTMP port');
  }
  return new RtmpProtocolError(
    HandshakeErrorReason.BadVersion,
    `unsupported RTMP version byte ${hex} (expected ${RTMP_VERSION})`,
  );
}

function defaultNow(): number {
  return Math.floor(performance.now());
}

/** Format a 4-byte version field as "a.b.c.d". */
function formatVersion(field: Buffer): string {
  return Array.from(field).join('.');
}

/** Accumulates exactly one 1536-byte handshake packet from arbitrarily split input. */
class PacketAccumulator {
  readonly packet = Buffer.alloc(HANDSHAKE_SIZE);
  private filled = 0;

  /** Copy as much of data[offset..] as still fits; returns the offset of the first unused byte. */
  fill(data: Buffer, offset: number): number {
    const n = Math.min(HANDSHAKE_SIZE - this.filled, data.length - offset);
    data.copy(this.packet, this.filled, offset, offset + n);
    this.filled += n;
    return offset + n;
  }

  get complete(): boolean {
    return this.filled === HANDSHAKE_SIZE;
  }
}

/** Shared plumbing: options, error latching, the done/rest contract. */
abstract class HandshakeBase {
  protected readonly random: (n: number) => Buffer;
  protected readonly now: () => number;
  private failure: RtmpProtocolError | undefined;
  private finished = false;

  constructor(opts: HandshakeOptions | undefined) {
    this.random = opts?.randomBytes ?? cryptoRandomBytes;
    this.now = opts?.now ?? defaultNow;
  }

  /** True once the handshake completed. */
  get done(): boolean {
    return this.finished;
  }

  /** Fill target[start..end) with random bytes. */
  protected fillRandom(target: Buffer, start: number, end: number): void {
    const n = end - start;
    const bytes = this.random(n);
    if (bytes.length < n) throw new RangeError(`randomBytes(${n}) returned ${bytes.length} bytes`);
    bytes.copy(target, start, 0, n);
  }

  /** Write the time field (uint32 ms, wrapping). */
  protected writeTime(packet: Buffer): void {
    packet.writeUInt32BE(Math.floor(this.now()) >>> 0, TIME_OFFSET);
  }

  /** Consume data[offset..]; returns the new offset and any reply. Must set `finish()` when complete. */
  protected abstract consume(data: Buffer, offset: number): { offset: number; reply?: Buffer };

  protected finish(): void {
    this.finished = true;
  }

  protected runPush(data: Buffer): HandshakeStep {
    if (this.failure) throw this.failure;
    if (this.finished) return data.length > 0 ? { done: true, rest: data } : { done: true };
    let offset = 0;
    let reply: Buffer | undefined;
    try {
      while (offset < data.length && !this.finished) {
        const step = this.consume(data, offset);
        offset = step.offset;
        if (step.reply) reply = step.reply;
      }
    } catch (err) {
      if (err instanceof RtmpProtocolError) this.failure = err;
      throw err;
    }
    const result: HandshakeStep = { done: this.finished };
    if (reply) result.reply = reply;
    if (this.finished && offset < data.length) result.rest = data.subarray(offset);
    return result;
  }
}

type ServerState = 'c0' | 'c1' | 'c2' | 'done';

/**
 * Server side: receives C0, C1, C2; answers S0+S1+S2 in one buffer as soon as C1 is complete.
 * Throws RtmpProtocolError (reason in HandshakeErrorReason) on a bad C0, right after its first byte.
 */
export class ServerHandshake extends HandshakeBase {
  private state: ServerState = 'c0';
  private readonly c1 = new PacketAccumulator();
  private readonly c2 = new PacketAccumulator();
  private s1: Buffer | undefined;
  private s1Digest: Buffer | undefined;
  private detectedMode: HandshakeMode | undefined;
  private detectedLayout: DigestLayout | undefined;
  private c1Version: string | undefined;
  private c2Ok: boolean | undefined;

  constructor(opts?: HandshakeOptions) {
    super(opts);
  }

  /** 'digest' if C1 carried a valid digest (layout 772 or 8), else 'simple'; undefined until C1 is complete. */
  get mode(): HandshakeMode | undefined {
    return this.detectedMode;
  }

  /** Layout of the client's (and so our) digest in digest mode. */
  get digestLayout(): DigestLayout | undefined {
    return this.detectedLayout;
  }

  /** C1[4..7] as "a.b.c.d" (e.g. "9.0.124.2" for FFmpeg, "0.0.0.0" for simple clients). */
  get clientVersion(): string | undefined {
    return this.c1Version;
  }

  /**
   * Diagnostic only, never enforced: whether C2 matched what a conforming client sends (digest: signed with the
   * FP key over our S1 digest, or an echo of S1; simple: echo of S1's random part). Undefined until done.
   */
  get c2Verified(): boolean | undefined {
    return this.c2Ok;
  }

  /** Feed received bytes. */
  push(data: Buffer): HandshakeStep {
    return this.runPush(data);
  }

  protected consume(data: Buffer, offset: number): { offset: number; reply?: Buffer } {
    switch (this.state) {
      case 'c0': {
        const error = checkVersionByte(data[offset]!);
        if (error) throw error;
        this.state = 'c1';
        return { offset: offset + HANDSHAKE_VERSION_SIZE };
      }
      case 'c1': {
        const next = this.c1.fill(data, offset);
        if (!this.c1.complete) return { offset: next };
        this.state = 'c2';
        return { offset: next, reply: this.buildReply(this.c1.packet) };
      }
      case 'c2': {
        const next = this.c2.fill(data, offset);
        if (this.c2.complete) {
          this.checkC2(this.c2.packet);
          this.state = 'done';
          this.finish();
        }
        return { offset: next };
      }
      case 'done':
        return { offset };
    }
  }

  /** S0+S1+S2 for a complete C1. */
  private buildReply(c1: Buffer): Buffer {
    this.c1Version = formatVersion(c1.subarray(VERSION_OFFSET, VERSION_OFFSET + VERSION_LENGTH));
    const reply = Buffer.alloc(HANDSHAKE_SERVER_REPLY_SIZE);
    reply[0] = RTMP_VERSION;
    const s1 = reply.subarray(HANDSHAKE_VERSION_SIZE, HANDSHAKE_HELLO_SIZE);
    const s2 = reply.subarray(HANDSHAKE_HELLO_SIZE);

    this.writeTime(s1);
    this.fillRandom(s1, HANDSHAKE_RANDOM_OFFSET, HANDSHAKE_SIZE);

    const clientDigest = findDigest(c1, C1_DIGEST_KEY, DIGEST_LAYOUT_DETECTION_ORDER);
    if (clientDigest) {
      this.detectedMode = 'digest';
      this.detectedLayout = clientDigest.layout;
      SERVER_DIGEST_VERSION.copy(s1, VERSION_OFFSET);
      this.s1Digest = imprintDigest(s1, clientDigest.layout, S1_DIGEST_KEY).digest;
      this.fillRandom(s2, 0, HANDSHAKE_SIZE_WITHOUT_DIGEST);
      imprintSignature(s2, FMS_KEY, clientDigest.digest);
    } else {
      this.detectedMode = 'simple';
      // S1[4..7] stays zero: a non-zero version without a digest breaks FFmpeg play and librtmp FP9.
      c1.copy(s2);
    }
    this.s1 = Buffer.from(s1);
    return reply;
  }

  private checkC2(c2: Buffer): void {
    const s1 = this.s1!;
    const echoesS1Random = c2.subarray(HANDSHAKE_RANDOM_OFFSET).equals(s1.subarray(HANDSHAKE_RANDOM_OFFSET));
    if (this.detectedMode === 'digest') {
      this.c2Ok = echoesS1Random || hasValidSignature(c2, FP_KEY, this.s1Digest!);
    } else {
      this.c2Ok = echoesS1Random;
    }
  }
}

type ClientState = 'start' | 's0' | 's1' | 's2' | 'done';

/**
 * Client side: `start()` returns C0+C1; `push()` consumes S0, S1, S2 and returns C2 as soon as S1 is complete
 * (it does not wait for S2, so it also works against servers that hold S2 until C2 arrives).
 */
export class ClientHandshake extends HandshakeBase {
  /** Requested mode of our C1. */
  readonly mode: HandshakeMode;
  private readonly layout: DigestLayout;
  private state: ClientState = 'start';
  private readonly s1 = new PacketAccumulator();
  private readonly s2 = new PacketAccumulator();
  private c1: Buffer | undefined;
  private c1Digest: Buffer | undefined;
  private s1Version: string | undefined;
  private validating = false;
  private verified = false;
  private s2Echo: boolean | undefined;

  constructor(opts?: ClientHandshakeOptions) {
    super(opts);
    this.mode = opts?.mode ?? 'simple';
    this.layout = opts?.digestLayout ?? DIGEST_LAYOUT_8;
  }

  /** S1[4..7] as "a.b.c.d"; undefined until S1 is complete. */
  get serverVersion(): string | undefined {
    return this.s1Version;
  }

  /** True when (digest mode and S1[4] != 0) the S1 digest and the S2 signature were both verified. */
  get serverVerified(): boolean {
    return this.verified;
  }

  /** Diagnostic only: whether S2's random part echoed our C1 (simple servers). Undefined until done. */
  get s2Echoed(): boolean | undefined {
    return this.s2Echo;
  }

  /** C0+C1 to send first. Call once. */
  start(): Buffer {
    if (this.state !== 'start') throw new Error('ClientHandshake.start() called twice');
    const hello = Buffer.alloc(HANDSHAKE_HELLO_SIZE);
    hello[0] = RTMP_VERSION;
    const c1 = hello.subarray(HANDSHAKE_VERSION_SIZE);
    this.writeTime(c1);
    this.fillRandom(c1, HANDSHAKE_RANDOM_OFFSET, HANDSHAKE_SIZE);
    if (this.mode === 'digest') {
      CLIENT_DIGEST_VERSION.copy(c1, VERSION_OFFSET);
      this.c1Digest = imprintDigest(c1, this.layout, C1_DIGEST_KEY).digest;
    }
    // simple: C1[4..7] stays zero
    this.c1 = Buffer.from(c1);
    this.state = 's0';
    return hello;
  }

  /** Feed received bytes; returns C2 as `reply` once S1 is complete. */
  push(data: Buffer): HandshakeStep {
    if (this.state === 'start') throw new Error('ClientHandshake.push() before start()');
    return this.runPush(data);
  }

  protected consume(data: Buffer, offset: number): { offset: number; reply?: Buffer } {
    switch (this.state) {
      case 'start':
        throw new Error('ClientHandshake.push() before start()');
      case 's0': {
        const byte = data[offset]!;
        if (byte !== RTMP_VERSION) {
          throw new RtmpProtocolError(
            HandshakeErrorReason.BadVersion,
            `server answered version byte 0x${byte.toString(16).padStart(2, '0')} (expected ${RTMP_VERSION})`,
          );
        }
        this.state = 's1';
        return { offset: offset + HANDSHAKE_VERSION_SIZE };
      }
      case 's1': {
        const next = this.s1.fill(data, offset);
        if (!this.s1.complete) return { offset: next };
        this.state = 's2';
        return { offset: next, reply: this.buildC2(this.s1.packet) };
      }
      case 's2': {
        const next = this.s2.fill(data, offset);
        if (this.s2.complete) {
          this.checkS2(this.s2.packet);
          this.state = 'done';
          this.finish();
        }
        return { offset: next };
      }
      case 'done':
        return { offset };
    }
  }

  private buildC2(s1: Buffer): Buffer {
    this.s1Version = formatVersion(s1.subarray(VERSION_OFFSET, VERSION_OFFSET + VERSION_LENGTH));
    // FFmpeg/librtmp rule: validate only when the server announces a version (S1[4] != 0).
    if (this.mode === 'digest' && s1[VERSION_OFFSET] !== 0) {
      this.validating = true;
      const serverDigest = findDigest(s1, S1_DIGEST_KEY, DIGEST_LAYOUT_DETECTION_ORDER);
      if (!serverDigest) {
        throw new RtmpProtocolError(
          HandshakeErrorReason.BadServerDigest,
          `server S1 announces version ${this.s1Version} but carries no valid digest`,
        );
      }
      const c2 = Buffer.alloc(HANDSHAKE_SIZE);
      this.fillRandom(c2, 0, HANDSHAKE_SIZE_WITHOUT_DIGEST);
      imprintSignature(c2, FP_KEY, serverDigest.digest);
      return c2;
    }
    // Simple answer: C2 = echo of S1 (what librtmp and FFmpeg send).
    return Buffer.from(s1);
  }

  private checkS2(s2: Buffer): void {
    const c1 = this.c1!;
    this.s2Echo = s2.subarray(HANDSHAKE_RANDOM_OFFSET).equals(c1.subarray(HANDSHAKE_RANDOM_OFFSET));
    if (!this.validating) return;
    if (!hasValidSignature(s2, FMS_KEY, this.c1Digest!)) {
      throw new RtmpProtocolError(
        HandshakeErrorReason.BadServerSignature,
        'server S2 signature does not match our C1 digest',
      );
    }
    this.verified = true;
  }
}
