/**
 * Digest math of the "complex" (Flash Player 9, FP9) RTMP handshake: HMAC-SHA256 imprints hidden at a
 * data-dependent position inside C1/S1, and the signatures that close C2/S2.
 *
 * Pure functions over 1536-byte handshake packets; no state, no I/O. See docs/INTEROP.md §2.2.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import { HANDSHAKE_SIZE } from './constants.js';

/** Length of an HMAC-SHA256 output, i.e. of every digest and signature in the handshake. */
const DIGEST_LENGTH = 32;

/** Number of bytes that are hashed when the digest is left out of a 1536-byte packet (1504). */
export const HANDSHAKE_SIZE_WITHOUT_DIGEST = HANDSHAKE_SIZE - DIGEST_LENGTH;

/** Offset of the trailing signature in C2/S2 (the signature covers everything before it). */
const SIGNATURE_OFFSET = HANDSHAKE_SIZE - DIGEST_LENGTH;

/** Offset and length of the version field of C1/S1 (zero for the simple handshake). */
export const VERSION_OFFSET = 4;
export const VERSION_LENGTH = 4;

/** Offset of the time field (4 bytes) of C1/S1. */
export const TIME_OFFSET = 0;

/** Shared 32-byte tail appended to both public key texts. */
const KEY_TAIL: Buffer = Buffer.from('f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae', 'hex');

/** "Genuine Adobe Flash Player 001": the client's public key text. */
const FP_KEY_TEXT = 'Genuine Adobe Flash Player 001';
/** "Genuine Adobe Flash Media Server 001": the server's public key text. */
const FMS_KEY_TEXT = 'Genuine Adobe Flash Media Server 001';

/** Client key (62 bytes). The first FP_KEY_TEXT_LENGTH bytes sign C1; the whole key derives C2's signing key. */
export const FP_KEY: Buffer = Buffer.concat([Buffer.from(FP_KEY_TEXT, 'latin1'), KEY_TAIL]);
/** Server key (68 bytes). The first FMS_KEY_TEXT_LENGTH bytes sign S1; the whole key derives S2's signing key. */
export const FMS_KEY: Buffer = Buffer.concat([Buffer.from(FMS_KEY_TEXT, 'latin1'), KEY_TAIL]);

/** 30: length of the client key's text part, the key of the C1 digest. */
const FP_KEY_TEXT_LENGTH = FP_KEY_TEXT.length;
/** 36: length of the server key's text part, the key of the S1 digest. */
const FMS_KEY_TEXT_LENGTH = FMS_KEY_TEXT.length;

/** Key of the C1 digest: FPKey[0..30). */
export const C1_DIGEST_KEY: Buffer = FP_KEY.subarray(0, FP_KEY_TEXT_LENGTH);
/** Key of the S1 digest: FMSKey[0..36). */
export const S1_DIGEST_KEY: Buffer = FMS_KEY.subarray(0, FMS_KEY_TEXT_LENGTH);

/**
 * The two places a digest can live in C1/S1, named by the offset of the 4 bytes that select its position:
 *  - 8:   pos = (b[8]   + b[9]   + b[10]  + b[11])  % 728 + 12   (FFmpeg off=8, librtmp GetDigestOffset1)
 *  - 772: pos = (b[772] + b[773] + b[774] + b[775]) % 728 + 776  (FFmpeg off=772, librtmp GetDigestOffset2)
 */
export type DigestLayout = 8 | 772;
export const DIGEST_LAYOUT_8: DigestLayout = 8;
const DIGEST_LAYOUT_772: DigestLayout = 772;

/** Layout detection order on the server: 772 first, then 8 (nginx-rtmp, Node-Media-Server). */
export const DIGEST_LAYOUT_DETECTION_ORDER: readonly DigestLayout[] = [DIGEST_LAYOUT_772, DIGEST_LAYOUT_8];

/** Number of bytes summed to select the digest position. */
const DIGEST_SELECTOR_LENGTH = 4;
/** Modulus applied to the selector sum (the digest block is 728 + 4 + 32 = 764 bytes long). */
const DIGEST_POSITION_MODULUS = 728;

/** Offset added to the selector sum for each layout (selector offset + 4 selector bytes). */
const DIGEST_POSITION_BASE: Record<DigestLayout, number> = {
  8: DIGEST_LAYOUT_8 + DIGEST_SELECTOR_LENGTH, // 12
  772: DIGEST_LAYOUT_772 + DIGEST_SELECTOR_LENGTH, // 776
};

/** HMAC-SHA256(key, data...). */
function hmacSha256(key: Buffer, ...data: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const part of data) h.update(part);
  return h.digest();
}

function assertPacket(packet: Buffer, what: string): void {
  if (packet.length !== HANDSHAKE_SIZE) {
    throw new RangeError(`${what} must be ${HANDSHAKE_SIZE} bytes, got ${packet.length}`);
  }
}

/** Byte offset of the 32-byte digest inside a 1536-byte C1/S1 for the given layout. */
function digestPosition(packet: Buffer, layout: DigestLayout): number {
  assertPacket(packet, 'handshake packet');
  let sum = 0;
  for (let i = 0; i < DIGEST_SELECTOR_LENGTH; i++) sum += packet[layout + i]!;
  return (sum % DIGEST_POSITION_MODULUS) + DIGEST_POSITION_BASE[layout];
}

/** HMAC(key, packet without the 32 bytes at `pos`): the digest that belongs at `pos`. */
function computeDigest(packet: Buffer, pos: number, key: Buffer): Buffer {
  assertPacket(packet, 'handshake packet');
  return hmacSha256(key, packet.subarray(0, pos), packet.subarray(pos + DIGEST_LENGTH));
}

/** Constant-time equality for digests/signatures (false on length mismatch). */
function digestEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A digest found in a C1/S1: where it is and its 32 bytes (a copy). */
interface FoundDigest {
  layout: DigestLayout;
  position: number;
  digest: Buffer;
}

/**
 * Look for a valid digest keyed with `key`, trying the layouts in order. Returns undefined when none
 * verifies (the peer speaks the simple handshake, or signs with another key).
 */
export function findDigest(
  packet: Buffer,
  key: Buffer,
  layouts: readonly DigestLayout[] = DIGEST_LAYOUT_DETECTION_ORDER,
): FoundDigest | undefined {
  for (const layout of layouts) {
    const position = digestPosition(packet, layout);
    const expected = computeDigest(packet, position, key);
    if (digestEquals(expected, packet.subarray(position, position + DIGEST_LENGTH))) {
      return { layout, position, digest: Buffer.from(expected) };
    }
  }
  return undefined;
}

/** Write the digest for `key` into `packet` (in place) at `layout`; returns the position and the digest. */
export function imprintDigest(packet: Buffer, layout: DigestLayout, key: Buffer): FoundDigest {
  const position = digestPosition(packet, layout);
  const digest = computeDigest(packet, position, key);
  digest.copy(packet, position);
  return { layout, position, digest };
}

/**
 * Signature closing a C2/S2: HMAC(HMAC(fullKey, peerDigest), packet[0..1504)).
 * S2: fullKey = FMSKey (68 bytes), peerDigest = the C1 digest. C2: fullKey = FPKey (62), peerDigest = the S1 digest.
 */
function computeSignature(packet: Buffer, fullKey: Buffer, peerDigest: Buffer): Buffer {
  assertPacket(packet, 'handshake packet');
  const signingKey = hmacSha256(fullKey, peerDigest);
  return hmacSha256(signingKey, packet.subarray(0, SIGNATURE_OFFSET));
}

/** Write the signature (in place) into the last 32 bytes of `packet`. */
export function imprintSignature(packet: Buffer, fullKey: Buffer, peerDigest: Buffer): void {
  computeSignature(packet, fullKey, peerDigest).copy(packet, SIGNATURE_OFFSET);
}

/** True if the last 32 bytes of `packet` are the signature for (fullKey, peerDigest). */
export function hasValidSignature(packet: Buffer, fullKey: Buffer, peerDigest: Buffer): boolean {
  return digestEquals(computeSignature(packet, fullKey, peerDigest), packet.subarray(SIGNATURE_OFFSET));
}
